//! Inputs the fuzz targets (`fuzz/`, see BENCHMARKS.md) found to panic, minimised. Each must
//! now decode without a panic, whatever the chunking, and end in `Finished`.
//!
//! The fuzz input of `ndjson_decode` is a mode byte followed by the body; only the body is
//! kept here (the crash did not depend on the mode).

use bytes::Bytes;
use docker_build::decode::BuildEvent;
use docker_build::ndjson::parse_line;
use workspace_tests::body::decode_body;

/// `(name, body)` of the `ndjson_decode` crashes.
const NDJSON_DECODE: &[(&str, &[u8])] = &[
    // The trace-line prefix whose closing `"` is also the `"` of `"}`: the fast path in
    // `ndjson::parse_line` sliced `35..34` and panicked ("range start must not be greater than
    // end: 35 <= 34"). Fuzz input (hex): 00 then the 36 bytes below.
    (
        "trace_prefix_overlapping_suffix",
        br#"{"id":"moby.buildkit.trace","aux":"}"#,
    ),
];

#[test]
fn ndjson_decode_crashes_decode_without_panic() {
    for (name, body) in NDJSON_DECODE {
        for chunk in [body.len(), 1, 7] {
            let events = decode_body(body, chunk);
            assert!(
                matches!(events.last(), Some(BuildEvent::Finished(_))),
                "{name} in chunks of {chunk}: {events:?}"
            );
        }
        // The line alone, through the typing step the decoder uses.
        let trimmed = body.strip_suffix(b"\r\n").unwrap_or(body);
        let _ = parse_line(Bytes::copy_from_slice(trimmed), 1);
    }
}

//! Inputs the fuzz targets (`fuzz/`, see BENCHMARKS.md) found to panic, minimised. Each must
//! now decode without a panic, whatever the chunking, and end in `Finished`.
//!
//! The fuzz input of `ndjson_decode` is a mode byte followed by the body; only the body is
//! kept here (the crash did not depend on the mode).

use buildkit_events::Time;
use bytes::Bytes;
use docker_build::decode::{BuildDecoder, BuildEvent};
use docker_build::ndjson::parse_line;

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

fn decode(body: &[u8], chunk: usize) -> Vec<BuildEvent> {
    let body = Bytes::copy_from_slice(body);
    let mut decoder = BuildDecoder::new();
    let mut events = Vec::new();
    for at in (0..body.len()).step_by(chunk.max(1)) {
        decoder.push(body.slice(at..(at + chunk).min(body.len())), Time(0));
        events.extend(std::iter::from_fn(|| decoder.poll_event()));
    }
    decoder.finish(Time(0));
    events.extend(std::iter::from_fn(|| decoder.poll_event()));
    events
}

#[test]
fn ndjson_decode_crashes_decode_without_panic() {
    for (name, body) in NDJSON_DECODE {
        for chunk in [body.len(), 1, 7] {
            let events = decode(body, chunk);
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

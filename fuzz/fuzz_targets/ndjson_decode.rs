//! `BuildDecoder` over arbitrary bodies in arbitrary chunkings.
//!
//! Input: one mode byte, then the body.
//! - bit 3 set: the rest is a list of raw protobuf records, each `[len_hi, len_lo, bytes…]`;
//!   the harness wraps each in a `{"id":"moby.buildkit.trace","aux":"<base64>"}\r\n` line, so
//!   the fuzzer mutates the protobuf (and so the tracker's input) directly;
//!   otherwise the rest is the body as is (NDJSON, base64 and all);
//! - bit 2 set: small limits (`max_line` 256 bytes, tracker `max_line_len` 16, tail of 3);
//! - bits 4–7: the chunk bound `1 << n`; chunk sizes are drawn in `1..=bound` from a PRNG
//!   seeded by the mode byte and the body length.
//!
//! Checks, besides "no panic" (the pairing and lossless-log checks are the workspace tests' own,
//! from `workspace_tests::invariants`):
//! - the events are the same whatever the chunking (compared with the body in one chunk);
//! - `Finished` comes exactly once, last, and `Failed` at most once, just before it;
//! - per digest, `Started`/`Completed` pair up with consecutive interval numbers, a completion
//!   never precedes its start, and nothing is left running after `Finished`;
//! - no log line holds a `\n` or is longer than the tracker's `max_line_len`;
//! - in record mode, when no line was rejected, the log bytes of every (vertex, stream) come
//!   out exactly as the records carried them.

#![no_main]

use buildkit_events::{Event, Time};
use buildkit_proto::{Message as _, StatusResponse};
use bytes::Bytes;
use docker_build::decode::{BuildDecoder, BuildEvent, DecoderConfig};
use libfuzzer_sys::fuzz_target;
use workspace_tests::body::{finish, push_chunks, push_trace_aux};
use workspace_tests::invariants::{check_lossless_logs, check_pairing};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let records = mode & 0x08 != 0;
    let body = if records {
        wrap_records(rest)
    } else {
        rest.to_vec()
    };
    let config = if mode & 0x04 != 0 {
        let mut config = DecoderConfig {
            max_line: 256,
            ..DecoderConfig::default()
        };
        config.tracker.max_line_len = 16;
        config.tracker.log_tail_lines = 3;
        config
    } else {
        DecoderConfig::default()
    };
    let max_line_len = config.tracker.max_line_len.max(1);

    let body = Bytes::from(body);
    let whole = run(&body, &[body.len()], config.clone());
    let sizes = chunk_sizes(mode, body.len());
    let chunked = run(&body, &sizes, config);
    assert!(
        whole == chunked,
        "events depend on the chunking {sizes:?}:\n{whole:#?}\n{chunked:#?}"
    );

    check_order(&whole);
    if let Err(e) = check_pairing(&whole) {
        panic!("{e}");
    }
    for event in &whole {
        if let BuildEvent::Vertex(Event::Log(l)) = event {
            assert!(!l.bytes.contains(&b'\n'), "newline inside a line: {l:?}");
            assert!(l.bytes.len() <= max_line_len, "line over the bound: {l:?}");
        }
    }
    if records && !whole.iter().any(|e| matches!(e, BuildEvent::BadLine(_))) {
        check_lossless(rest, &whole);
    }
});

fn run(body: &Bytes, sizes: &[usize], config: DecoderConfig) -> Vec<BuildEvent> {
    let mut chunks = Vec::with_capacity(sizes.len());
    let mut at = 0;
    for &size in sizes {
        let end = (at + size).min(body.len());
        chunks.push(body.slice(at..end));
        at = end;
    }
    assert_eq!(at, body.len());
    let mut decoder = BuildDecoder::with_config(config);
    let mut events = Vec::new();
    push_chunks(&mut decoder, chunks, &mut events);
    finish(&mut decoder, &mut events);
    // Finishing twice adds nothing.
    decoder.finish(Time(0));
    assert!(
        decoder.poll_event().is_none(),
        "events after a second finish"
    );
    events
}

fn chunk_sizes(mode: u8, len: usize) -> Vec<usize> {
    let bound = 1usize << (mode >> 4);
    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ (u64::from(mode) << 32) ^ len as u64;
    let mut sizes = Vec::new();
    let mut total = 0;
    while total < len {
        // xorshift64
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let size = 1 + (state % bound as u64) as usize;
        sizes.push(size);
        total += size;
    }
    sizes
}

/// `[len_hi, len_lo, bytes…]…` → trace lines; a truncated last record takes what is left.
fn split_records(mut rest: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while rest.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]])).min(rest.len() - 2);
        out.push(&rest[2..2 + len]);
        rest = &rest[2 + len..];
    }
    out
}

fn wrap_records(rest: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    for record in split_records(rest) {
        push_trace_aux(&mut body, record);
    }
    body
}

fn check_order(events: &[BuildEvent]) {
    let finished = events
        .iter()
        .filter(|e| matches!(e, BuildEvent::Finished(_)))
        .count();
    assert_eq!(finished, 1, "Finished {finished} times");
    assert!(matches!(events.last(), Some(BuildEvent::Finished(_))));
    let failed: Vec<usize> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| matches!(e, BuildEvent::Failed(_)))
        .map(|(i, _)| i)
        .collect();
    assert!(failed.len() <= 1, "Failed {} times", failed.len());
    if let Some(&i) = failed.first() {
        assert_eq!(i + 2, events.len(), "Failed is not just before Finished");
    }
}

/// The log bytes per (vertex, stream) that the records carry, decoded independently of the
/// tracker, against what the events carry.
fn check_lossless(rest: &[u8], events: &[BuildEvent]) {
    // Every record decoded: one the tracker rejected would have been a BadLine. (One that does
    // not decode here carries no logs the events could show.)
    let records: Vec<StatusResponse> = split_records(rest)
        .into_iter()
        .filter_map(|r| StatusResponse::decode(r).ok())
        .collect();
    if let Err(e) = check_lossless_logs(&records, events) {
        panic!("{e}");
    }
}

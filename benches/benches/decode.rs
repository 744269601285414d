//! The corpus stream: BuildKit recordings concatenated to ~100 MB, fed in 64 KiB chunks.
//! "decode_only" (framing + base64 + protobuf) versus "decode_track" (the whole
//! `BuildDecoder`, events polled). Prints the ratio at the end.

use std::time::SystemTime;

use benchmarks::{CHUNK, chunked, corpus_stream, decode_and_track, decode_only, print_ratio};
use criterion::{Criterion, Throughput};

mod common;

const GROUP: &str = "corpus_100MB";
const STREAM_BYTES: usize = 100_000_000;

fn corpus(c: &mut Criterion) {
    let data = corpus_stream(STREAM_BYTES);
    let chunks = chunked(&data, CHUNK);
    // Check the inputs once, outside the measurements.
    let decoded = decode_only(&chunks);
    let tracked = decode_and_track(&chunks);
    assert_eq!(decoded.errors, 0, "{decoded:?}");
    assert_eq!(tracked.bad_lines, 0, "{tracked:?}");
    eprintln!(
        "{GROUP}: {} bytes, {} chunks, {} trace records ({} items), {} other lines; {} events, {} log lines",
        data.len(),
        chunks.len(),
        decoded.records,
        decoded.items,
        decoded.other_lines,
        tracked.events,
        tracked.log_lines
    );

    common::decode_pair(
        c,
        GROUP,
        Throughput::BytesDecimal(data.len() as u64),
        &chunks,
    );
}

fn main() {
    let start = SystemTime::now();
    let mut criterion = Criterion::default().configure_from_args();
    corpus(&mut criterion);
    criterion.final_summary();
    print_ratio(GROUP, "decode_only", "decode_track", start);
}

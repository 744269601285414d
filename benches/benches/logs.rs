//! Log-heavy streams, fed in 64 KiB chunks, throughput in log lines per second:
//! - `short_lines`: one vertex printing 2 million short lines (31 bytes each), in 32 KiB
//!   `VertexLog` chunks (one record each);
//! - `long_lines`: one vertex printing 8 lines of 8 MB each, in 32 KiB chunks (the tracker
//!   emits each as 8 pieces of its 1 MiB `max_line_len`; the element count is the 8 lines).
//!
//! Each group measures the decode path alone and with tracking, and prints the ratio.

use std::time::SystemTime;

use benchmarks::{
    CHUNK, chunked, decode_and_track, log_stream, long_lines_text, print_ratio, short_lines_text,
};
use criterion::{Criterion, Throughput};

mod common;

const SHORT_LINES: usize = 2_000_000;
const LONG_LINES: usize = 8;
const LONG_LEN: usize = 8_000_000;

fn group(c: &mut Criterion, name: &str, text: &[u8], lines: u64, min_pieces: u64) {
    let data = log_stream(text);
    let chunks = chunked(&data, CHUNK);
    let tracked = decode_and_track(&chunks);
    assert_eq!(tracked.bad_lines, 0, "{tracked:?}");
    assert!(tracked.log_lines >= min_pieces, "{tracked:?}");
    assert_eq!(tracked.log_bytes as usize + lines as usize, text.len());
    eprintln!(
        "{name}: {} lines of log text ({} bytes) in a {}-byte body; {} log events",
        lines,
        text.len(),
        data.len(),
        tracked.log_lines
    );
    common::decode_pair(c, name, Throughput::Elements(lines), &chunks);
}

fn main() {
    let start = SystemTime::now();
    let mut criterion = Criterion::default().configure_from_args();
    let text = short_lines_text(SHORT_LINES);
    group(
        &mut criterion,
        "short_lines",
        &text,
        SHORT_LINES as u64,
        SHORT_LINES as u64,
    );
    drop(text);
    let text = long_lines_text(LONG_LINES, LONG_LEN);
    let pieces = (LONG_LINES * LONG_LEN.div_ceil(1 << 20)) as u64;
    group(
        &mut criterion,
        "long_lines",
        &text,
        LONG_LINES as u64,
        pieces,
    );
    criterion.final_summary();
    print_ratio("short_lines", "decode_only", "decode_track", start);
    print_ratio("long_lines", "decode_only", "decode_track", start);
}

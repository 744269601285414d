//! The corpus stream: BuildKit recordings concatenated to ~100 MB, fed in 64 KiB chunks.
//! "decode_only" (framing + base64 + protobuf) versus "decode_track" (the whole
//! `BuildDecoder`, events polled). Prints the ratio at the end.

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use benchmarks::{CHUNK, chunked, corpus_stream, decode_and_track, decode_only, print_ratio};
use criterion::{Criterion, SamplingMode, Throughput};

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

    let mut group = c.benchmark_group(GROUP);
    group
        .throughput(Throughput::BytesDecimal(data.len() as u64))
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(12));
    group.bench_function("decode_only", |b| {
        b.iter(|| decode_only(black_box(&chunks)))
    });
    group.bench_function("decode_track", |b| {
        b.iter(|| decode_and_track(black_box(&chunks)))
    });
    group.finish();
}

fn main() {
    let start = SystemTime::now();
    let mut criterion = Criterion::default().configure_from_args();
    corpus(&mut criterion);
    criterion.final_summary();
    print_ratio(GROUP, "decode_only", "decode_track", start);
}

//! What both benchmark files measure the same way: a group timing the decode path alone and
//! with tracking, over the same chunks.

use std::hint::black_box;
use std::time::Duration;

use benchmarks::{decode_and_track, decode_only};
use bytes::Bytes;
use criterion::{Criterion, SamplingMode, Throughput};

/// Runs `decode_only` and `decode_track` over `chunks` in one criterion group: 10 flat samples
/// (the inputs are large), 2 s warm-up, 12 s of measurement.
pub fn decode_pair(c: &mut Criterion, group: &str, throughput: Throughput, chunks: &[Bytes]) {
    let mut group = c.benchmark_group(group);
    group
        .throughput(throughput)
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(12));
    group.bench_function("decode_only", |b| b.iter(|| decode_only(black_box(chunks))));
    group.bench_function("decode_track", |b| {
        b.iter(|| decode_and_track(black_box(chunks)))
    });
    group.finish();
}

//! The output path (issue 14, item 1): `bktrace replay --progress json|plain|rawjson` without
//! the file and the terminal, against the decode path alone and against a seed-style baseline
//! (`benchmarks::baseline`: hand-rolled protowire subset, one `serde_json` object per event),
//! all over the same corpus stream (the BuildKit recordings concatenated to ~20 MB, fed in
//! 64 KiB chunks), the output into an 8 KiB `BufWriter` over a byte-counting sink.
//!
//! - `decode_only`: framing + base64 + protobuf, the records dropped;
//! - `decode_track`: the whole `BuildDecoder`, every event polled and dropped (the issue's
//!   "decode-only time": framing + base64 + protobuf + tracking, no output);
//! - `json`, `plain`, `rawjson`: `decode_track` plus the renderer (rawjson with records on);
//! - `baseline`: the seed-style decoder and writer, building a `serde_json::Value` per event
//!   (`Style::Value`, what `json!` builds); `baseline_derive`: the same writing a
//!   `#[derive(Serialize)]` struct per event (`Style::Derive`), the leaner variant.
//!
//! Prints the ratios at the end: json / decode_track (target ≤ 3) and baseline / json
//! (target ≥ 2), and the same for plain and rawjson.

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use benchmarks::baseline::Style;
use benchmarks::{
    CHUNK, baseline_to_sink, chunked, corpus_stream, decode_and_track, decode_only, print_ratio,
    render_to_sink,
};
use buildkit_progressui::Mode;
use criterion::{Criterion, SamplingMode, Throughput};

const GROUP: &str = "output_20MB";
const STREAM_BYTES: usize = 20_000_000;

fn output(c: &mut Criterion) {
    let data = corpus_stream(STREAM_BYTES);
    let chunks = chunked(&data, CHUNK);
    // Check the inputs once, outside the measurements.
    let tracked = decode_and_track(&chunks);
    assert_eq!(tracked.bad_lines, 0, "{tracked:?}");
    let modes = [
        ("json", Mode::Json),
        ("plain", Mode::Plain),
        ("rawjson", Mode::RawJson),
    ];
    for (name, mode) in modes {
        let out = render_to_sink(&chunks, mode);
        eprintln!(
            "{GROUP}: {name}: {} events, {} bytes out",
            out.events, out.bytes
        );
    }
    let base = baseline_to_sink(&chunks, Style::Value);
    eprintln!(
        "{GROUP}: {} bytes in, {} events ({} log lines); baseline: {} events, {} bytes out",
        data.len(),
        tracked.events,
        tracked.log_lines,
        base.events,
        base.bytes
    );

    let mut group = c.benchmark_group(GROUP);
    group
        .throughput(Throughput::BytesDecimal(data.len() as u64))
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(6));
    group.bench_function("decode_only", |b| {
        b.iter(|| decode_only(black_box(&chunks)))
    });
    group.bench_function("decode_track", |b| {
        b.iter(|| decode_and_track(black_box(&chunks)))
    });
    for (name, mode) in modes {
        group.bench_function(name, |b| {
            b.iter(|| render_to_sink(black_box(&chunks), mode))
        });
    }
    group.bench_function("baseline", |b| {
        b.iter(|| baseline_to_sink(black_box(&chunks), Style::Value))
    });
    group.bench_function("baseline_derive", |b| {
        b.iter(|| baseline_to_sink(black_box(&chunks), Style::Derive))
    });
    group.finish();
}

fn main() {
    let start = SystemTime::now();
    let mut criterion = Criterion::default().configure_from_args();
    output(&mut criterion);
    criterion.final_summary();
    print_ratio(GROUP, "decode_only", "decode_track", start);
    for mode in ["json", "plain", "rawjson"] {
        print_ratio(GROUP, "decode_track", mode, start);
    }
    for mode in ["json", "plain", "rawjson"] {
        print_ratio(GROUP, mode, "baseline", start);
    }
    print_ratio(GROUP, "json", "baseline_derive", start);
}

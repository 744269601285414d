//! A plain driver for profiling (callgrind, perf) and quick A/B timing of the decode path,
//! without criterion's analysis:
//!
//! ```text
//! cargo run --release -p benchmarks --example profile -- <input> <mode> [reps] [MB]
//! ```
//!
//! `input` is `corpus` (the BuildKit recordings concatenated to `MB` megabytes, default 100),
//! `short` (2 million short log lines) or `long` (8 lines of 8 MB); `mode` is `decode`
//! (framing + base64 + protobuf), `track` (the whole `BuildDecoder`), `json`, `plain` or
//! `rawjson` (`track` plus that renderer, into an 8 KiB `BufWriter` over a counting sink), or
//! `baseline` / `baseline_derive` (the seed-style decoder and writer of
//! `benchmarks::baseline`, `Style::Value` / `Style::Derive`, same sink). Prints the fastest and
//! the median of `reps` runs (default 5): the fastest is the figure least disturbed by other
//! work on the machine.

use std::time::Instant;

use benchmarks::baseline::Style;
use benchmarks::{
    CHUNK, baseline_to_sink, chunked, corpus_stream, decode_and_track, decode_only, log_stream,
    long_lines_text, render_to_sink, short_lines_text,
};
use buildkit_progressui::Mode;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: profile <corpus|short|long> <decode|track|json|plain|rawjson|baseline|baseline_derive> [reps] [MB]";
    let (Some(input), Some(mode)) = (args.first(), args.get(1)) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let reps: usize = args.get(2).map_or(5, |r| r.parse().expect("reps"));
    let mb: usize = args.get(3).map_or(100, |m| m.parse().expect("MB"));
    let (data, elements, unit) = match input.as_str() {
        "corpus" => {
            let data = corpus_stream(mb * 1_000_000);
            let len = data.len() as f64 / 1e6;
            (data, len, "MB")
        }
        "short" => (log_stream(&short_lines_text(2_000_000)), 2e6, "lines"),
        "long" => (log_stream(&long_lines_text(8, 8_000_000)), 8.0, "lines"),
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    let chunks = chunked(&data, CHUNK);
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        let start = Instant::now();
        match mode.as_str() {
            "decode" => {
                std::hint::black_box(decode_only(&chunks));
            }
            "track" => {
                std::hint::black_box(decode_and_track(&chunks));
            }
            "json" => {
                std::hint::black_box(render_to_sink(&chunks, Mode::Json));
            }
            "plain" => {
                std::hint::black_box(render_to_sink(&chunks, Mode::Plain));
            }
            "rawjson" => {
                std::hint::black_box(render_to_sink(&chunks, Mode::RawJson));
            }
            "baseline" => {
                std::hint::black_box(baseline_to_sink(&chunks, Style::Value));
            }
            "baseline_derive" => {
                std::hint::black_box(baseline_to_sink(&chunks, Style::Derive));
            }
            _ => {
                eprintln!("{usage}");
                std::process::exit(2);
            }
        }
        times.push(start.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let min = times[0];
    let median = times[times.len() / 2];
    println!(
        "{input} {mode}: {} bytes, min {:.1} ms ({:.1} {unit}/s), median {:.1} ms ({:.1} {unit}/s)",
        data.len(),
        min * 1e3,
        elements / min,
        median * 1e3,
        elements / median,
    );
}

//! Writes what a renderer (or the seed-style baseline) makes of the corpus stream to standard
//! output, to compare the output of two trees byte for byte:
//!
//! ```text
//! cargo run --release -p benchmarks --example render -- <json|plain|rawjson|baseline|baseline_derive> [MB]
//! ```
//!
//! `MB` (default 1: one pass over the recordings) sizes the corpus stream as in `profile`.

use std::io::{self, Write as _};

use benchmarks::baseline::{Style, baseline};
use benchmarks::{CHUNK, chunked, corpus_stream, decode_and_render};
use buildkit_progressui::Mode;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: render <json|plain|rawjson|baseline|baseline_derive> [MB]";
    let mb: usize = args.get(1).map_or(1, |m| m.parse().expect("MB"));
    let data = corpus_stream(mb * 1_000_000);
    let chunks = chunked(&data, CHUNK);
    let out = match args.first().map(String::as_str) {
        Some("json") => decode_and_render(&chunks, Mode::Json, Vec::new()).1,
        Some("plain") => decode_and_render(&chunks, Mode::Plain, Vec::new()).1,
        Some("rawjson") => decode_and_render(&chunks, Mode::RawJson, Vec::new()).1,
        Some("baseline") => baseline(&chunks, Style::Value, Vec::new()).1,
        Some("baseline_derive") => baseline(&chunks, Style::Derive, Vec::new()).1,
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    io::stdout().lock().write_all(&out).expect("stdout");
}

//! Writes one of the benchmark inputs to a file, e.g. for end-to-end runs of `bktrace replay`:
//!
//! ```text
//! cargo run --release -p benchmarks --example write_stream -- corpus 1000 /tmp/bk-1GB.ndjson
//! cargo run --release -p benchmarks --example write_stream -- short /tmp/short-lines.ndjson
//! cargo run --release -p benchmarks --example write_stream -- long /tmp/long-lines.ndjson
//! cargo run --release -p benchmarks --example write_stream -- long-parallel 4 /tmp/long-x4.ndjson
//! ```
//!
//! `corpus MB` is the BuildKit recordings concatenated until the file holds at least `MB`
//! megabytes (written body by body, so even 1 GB needs little memory); `short` and `long` are
//! the log-heavy streams of the `logs` benchmark; `long-parallel N` is `N` vertices printing
//! the `long` text (8 lines of 8 MB) at once, their chunks taking turns.

use std::fs::File;
use std::io::{BufWriter, Write};

use benchmarks::{
    buildkit_bodies, log_stream, long_lines_text, parallel_log_stream, short_lines_text,
};

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: write_stream (corpus MB | short | long | long-parallel N) FILE";
    let fail = || -> ! {
        eprintln!("{usage}");
        std::process::exit(2)
    };
    let (kind, path) = match args.as_slice() {
        [kind, path] if kind == "short" || kind == "long" => (kind.as_str(), path),
        [kind, _, path] if kind == "corpus" || kind == "long-parallel" => (kind.as_str(), path),
        _ => fail(),
    };
    let mut out = BufWriter::new(File::create(path)?);
    let mut written = 0usize;
    match kind {
        "corpus" => {
            let mb: usize = args[1].parse().unwrap_or_else(|_| fail());
            let bodies = buildkit_bodies();
            while written < mb * 1_000_000 {
                for (_, body) in &bodies {
                    out.write_all(body)?;
                    written += body.len();
                }
            }
        }
        "short" => {
            let body = log_stream(&short_lines_text(2_000_000));
            out.write_all(&body)?;
            written = body.len();
        }
        "long" => {
            let body = log_stream(&long_lines_text(8, 8_000_000));
            out.write_all(&body)?;
            written = body.len();
        }
        "long-parallel" => {
            let n: usize = args[1].parse().unwrap_or_else(|_| fail());
            let body = parallel_log_stream(n, &long_lines_text(8, 8_000_000));
            out.write_all(&body)?;
            written = body.len();
        }
        _ => fail(),
    }
    out.flush()?;
    eprintln!("{path}: {written} bytes");
    Ok(())
}

//! Writes the memory stress input: every recorded body of the corpus (`tests/data/corpus`,
//! BuildKit and classic builder alike) concatenated, over and over, until the file holds at
//! least SIZE bytes (whole passes over the corpus, written body by body, so 1 GB needs little
//! memory).
//!
//! ```text
//! cargo run --release -p benchmarks --example big_stream -- 200M /tmp/bk-200MB.ndjson
//! cargo run --release -p benchmarks --example big_stream -- 1G /tmp/bk-1GB.ndjson
//! cargo run --release -p benchmarks --example big_stream -- --shift 1G /tmp/bk-1GB-shifted.ndjson
//! ```
//!
//! Digests repeat from one pass to the next, which is the point: the number of distinct
//! vertices stays that of one pass over the corpus however big the file gets, so a renderer
//! or tracker whose memory grows with the file keeps something per record. As recorded, the
//! times repeat too, so a repeated record is stale; with `--shift` every pass's record times
//! are moved past the previous pass's (the records re-encoded), so every vertex starts again in
//! each pass and the renderers' clocks run forward.

use std::fs::File;
use std::io::{BufWriter, Write};

use benchmarks::{all_bodies, parse_size, shift_times, time_range};

fn main() -> std::io::Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let shift = args.first().is_some_and(|a| a == "--shift");
    if shift {
        args.remove(0);
    }
    let [size, path] = args.as_slice() else {
        eprintln!(
            "usage: big_stream [--shift] SIZE FILE   (SIZE: bytes, or with K, M or G: 200M, 1G)"
        );
        std::process::exit(2)
    };
    let Some(target) = parse_size(size) else {
        eprintln!("big_stream: bad size {size:?}");
        std::process::exit(2)
    };
    let bodies = all_bodies();
    // One pass later than the whole corpus spans, plus an hour.
    let step = time_range(&bodies).map_or(0, |(lo, hi)| hi - lo + 3600);
    let mut out = BufWriter::new(File::create(path)?);
    let (mut written, mut passes) = (0u64, 0i64);
    while written < target {
        for (_, body) in &bodies {
            if shift && passes > 0 {
                let shifted = shift_times(body, passes * step);
                out.write_all(&shifted)?;
                written += shifted.len() as u64;
            } else {
                out.write_all(body)?;
                written += body.len() as u64;
            }
        }
        passes += 1;
    }
    out.flush()?;
    eprintln!(
        "{path}: {written} bytes, {passes} passes over {} recordings{}",
        bodies.len(),
        if shift {
            format!(", times {step} s later in each pass")
        } else {
            String::new()
        }
    );
    Ok(())
}

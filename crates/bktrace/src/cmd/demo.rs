//! `bktrace demo`: replay a small recorded build bundled in the binary.

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use super::replay::{REPLAY_CHUNK, replay};
use super::{after_output, conclude, renderer};
use crate::DemoArgs;
use crate::error::CliError;

/// The recorded build `bktrace demo` replays: two stages logging in parallel (stdout and
/// stderr), then a stage copying from both, on Docker 28.5.
const DEMO: &[u8] =
    include_bytes!("../../../../tests/data/corpus/docker-28.5/multistage-parallel.ndjson");

/// `bktrace demo`.
pub(crate) fn run(args: DemoArgs) -> Result<ExitCode, CliError> {
    eprintln!(
        "bktrace demo: replaying a recorded BuildKit build (two stages logging in parallel); \
         `bktrace build DIR` runs a real one"
    );
    let out: Box<dyn Write> = Box::new(BufWriter::new(io::stdout().lock()));
    let mut renderer = renderer(args.progress.progress, false, out);
    let outcome = replay(DEMO, &mut renderer, REPLAY_CHUNK)?;
    after_output(&mut renderer, &outcome, None, None)?;
    Ok(conclude(&outcome))
}

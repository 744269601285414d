//! `bktrace replay`: render a recorded `POST /build` body; and [`replay`] itself, which
//! `bktrace demo` uses too.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;
use std::process::ExitCode;

use buildkit_events::Time;
use buildkit_progressui::{Render, Renderer};
use bytes::Bytes;
use docker_build::decode::{BuildDecoder, DecoderConfig};

use super::{BuildOutcome, conclude, renderer};
use crate::ReplayArgs;
use crate::error::{CliError, one_line};

/// How much of a recording [`replay`] reads at a time.
pub(crate) const REPLAY_CHUNK: usize = 64 * 1024;

/// Why a replay stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReplayError {
    /// Reading the recorded body failed.
    #[error("reading the recording failed")]
    Read(#[source] io::Error),
    /// Writing the rendered output failed.
    #[error("writing the output failed")]
    Write(#[source] io::Error),
}

/// Renders a recorded `POST /build` body read from `input`, `chunk` bytes at a time, through
/// a [`BuildDecoder`] into `renderer`. A replay has no clock: every chunk is pushed, and every
/// event rendered, at `Time(0)` (BuildKit records carry their own times).
pub(crate) fn replay<R: Read, W: Write>(
    mut input: R,
    renderer: &mut Renderer<W>,
    chunk: usize,
) -> Result<BuildOutcome, ReplayError> {
    let mut decoder = BuildDecoder::with_config(DecoderConfig {
        records: renderer.wants_records(),
        ..DecoderConfig::default()
    });
    let mut outcome = BuildOutcome::default();
    let mut buf = vec![0u8; chunk.max(1)];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ReplayError::Read(e)),
        };
        decoder.push(Bytes::copy_from_slice(&buf[..n]), Time(0));
        drain(&mut decoder, renderer, &mut outcome)?;
    }
    decoder.finish(Time(0));
    drain(&mut decoder, renderer, &mut outcome)?;
    Ok(outcome)
}

fn drain<W: Write>(
    decoder: &mut BuildDecoder,
    renderer: &mut Renderer<W>,
    outcome: &mut BuildOutcome,
) -> Result<(), ReplayError> {
    while let Some(event) = decoder.poll_event() {
        outcome.note(&event);
        renderer
            .event(&event, Time(0))
            .map_err(ReplayError::Write)?;
    }
    Ok(())
}

/// `bktrace replay FILE|-`.
pub(crate) fn run(args: ReplayArgs) -> Result<ExitCode, CliError> {
    let input: Box<dyn Read> = if args.file == Path::new("-") {
        Box::new(io::stdin().lock())
    } else {
        let file = File::open(&args.file).map_err(|source| CliError::Open {
            path: args.file.clone(),
            source,
        })?;
        Box::new(file)
    };
    let out: Box<dyn Write> = Box::new(BufWriter::new(io::stdout().lock()));
    let mut renderer = renderer(args.progress.progress, false, out);
    let outcome = replay(input, &mut renderer, REPLAY_CHUNK)?;
    for bad in &outcome.bad_lines {
        eprintln!("warning: {}", one_line(bad));
    }
    if outcome.more_bad_lines > 0 {
        eprintln!(
            "warning: {} more lines of the body could not be used",
            outcome.more_bad_lines
        );
    }
    Ok(conclude(&outcome))
}

#[cfg(test)]
mod tests {
    use buildkit_progressui::{Mode, Options};

    use super::*;

    #[test]
    fn a_replay_renders_in_any_chunking_and_reports_the_outcome() {
        let body =
            b"{\"stream\":\"Step 1/1 : FROM scratch\\n\"}\r\n{\"aux\":{\"ID\":\"sha256:0\"}}\r\n";
        let mut renderer = Renderer::new(Mode::Plain, Vec::new(), Options::default());
        let outcome = replay(&body[..], &mut renderer, 7).unwrap();
        let summary = outcome.finished.expect("the decoder always finishes");
        assert!(summary.failure.is_none());
        assert!(summary.succeeded());
        assert_eq!(summary.image_id.as_deref(), Some("sha256:0"));
        let text = String::from_utf8(renderer.into_inner()).unwrap();
        assert!(text.starts_with("#1 "), "{text}");
    }
}

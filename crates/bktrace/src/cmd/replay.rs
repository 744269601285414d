//! `bktrace replay`: render a recorded build — a `POST /build` body, a BuildKit history logs
//! blob or buildx rawjson output, told apart by their first bytes
//! ([`docker_build::recording`]); and [`replay`] itself, which `bktrace demo` uses too.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;
use std::process::ExitCode;

use buildkit_events::Time;
use buildkit_progressui::{Render, Renderer};
use bytes::Bytes;
use docker_build::decode::{BuildEvent, DecoderConfig, InputKind};
use docker_build::recording::{RecordingDecoder, RecordingError};

use super::{BuildOutcome, after_output, conclude, renderer};
use crate::ReplayArgs;
use crate::error::{CliError, one_line, printable};

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
    /// The input is none of the formats bktrace reads.
    #[error(
        "not a recording bktrace knows: expected a POST /build body, a BuildKit history logs \
         blob or buildx rawjson output"
    )]
    UnknownFormat,
    /// The recording broke off or is damaged (what was read before is rendered).
    #[error("the recording cannot be read to its end")]
    Recording(#[source] RecordingError),
}

/// Renders a recording read from `input` (any [`docker_build::recording::Format`]), `chunk`
/// bytes at a time, through a [`RecordingDecoder`] into `renderer`. A replay has no clock:
/// every event is rendered at `Time(0)` (BuildKit records carry their own times). An input
/// of no known format renders nothing; a damaged one renders what came before the damage,
/// then gives its error.
pub(crate) fn replay<R: Read, W: Write>(
    input: R,
    renderer: &mut Renderer<W>,
    chunk: usize,
) -> Result<BuildOutcome, ReplayError> {
    let config = renderer.mode().decoder_config();
    replay_with(input, config, chunk, |event| renderer.event(event, Time(0)))
}

/// [`replay`] into any `sink` of events, decoded with `config` (e.g. whether the decoder emits
/// [`BuildEvent::Record`]s). An error of the sink stops the replay as
/// [`ReplayError::Write`].
pub(crate) fn replay_with<R: Read>(
    mut input: R,
    config: DecoderConfig,
    chunk: usize,
    mut sink: impl FnMut(&BuildEvent) -> io::Result<()>,
) -> Result<BuildOutcome, ReplayError> {
    let mut decoder = RecordingDecoder::with_config(config);
    let mut outcome = BuildOutcome::default();
    let mut buf = vec![0u8; chunk.max(1)];
    let mut stopped = Ok(());
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ReplayError::Read(e)),
        };
        stopped = decoder.push(Bytes::copy_from_slice(&buf[..n]));
        drain(&mut decoder, &mut sink, &mut outcome)?;
        if stopped.is_err() {
            break;
        }
    }
    let end = decoder.finish();
    let stopped = stopped.and(end);
    if stopped == Err(RecordingError::UnknownFormat) {
        return Err(ReplayError::UnknownFormat);
    }
    drain(&mut decoder, &mut sink, &mut outcome)?;
    stopped.map_err(ReplayError::Recording)?;
    Ok(outcome)
}

fn drain(
    decoder: &mut RecordingDecoder,
    sink: &mut impl FnMut(&BuildEvent) -> io::Result<()>,
    outcome: &mut BuildOutcome,
) -> Result<(), ReplayError> {
    while let Some(event) = decoder.poll_event() {
        outcome.note(&event);
        sink(&event).map_err(ReplayError::Write)?;
    }
    Ok(())
}

/// `bktrace replay FILE|-`.
pub(crate) fn run(args: ReplayArgs) -> Result<ExitCode, CliError> {
    let input = open_recording(&args.file)?;
    let out: Box<dyn Write> = Box::new(BufWriter::new(io::stdout().lock()));
    let mut renderer = renderer(args.progress.progress, false, out);
    let outcome = replay(input, &mut renderer, REPLAY_CHUNK)?;
    after_output(&mut renderer, &outcome, None, None)?;
    warn_bad_lines(&outcome);
    require_build(&outcome, &args.file)?;
    if outcome
        .finished
        .as_ref()
        .is_some_and(|s| s.input == InputKind::ClassicBody)
    {
        eprintln!(
            "note: the classic builder's output carries no times, so this replay shows none \
             (every step at 1970-01-01, 0.0s)"
        );
    }
    Ok(conclude(&outcome))
}

/// The recording at `path`, or standard input for `-`.
pub(crate) fn open_recording(path: &Path) -> Result<Box<dyn Read>, CliError> {
    if path == Path::new("-") {
        return Ok(Box::new(io::stdin().lock()));
    }
    let file = File::open(path).map_err(|source| CliError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(Box::new(file))
}

/// Warns on stderr of the lines of the body that could not be used.
pub(crate) fn warn_bad_lines(outcome: &BuildOutcome) {
    for bad in &outcome.bad_lines {
        eprintln!("warning: {}", one_line(bad));
    }
    if outcome.more_bad_lines > 0 {
        eprintln!(
            "warning: {} more lines of the body could not be used",
            outcome.more_bad_lines
        );
    }
}

/// Refuses an input that held nothing of a build (an empty file, daemon messages alone,
/// unusable lines): [`CliError::NoRecords`] naming `path` (`-` is standard input).
pub(crate) fn require_build(outcome: &BuildOutcome, path: &Path) -> Result<(), CliError> {
    if outcome.saw_build {
        return Ok(());
    }
    let input = if path == Path::new("-") {
        "standard input".to_string()
    } else {
        printable(&path.display().to_string())
    };
    Err(CliError::NoRecords { input })
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

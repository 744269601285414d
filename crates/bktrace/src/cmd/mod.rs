//! One module per command, and what they share: the renderer for `--progress`, the wall
//! clock and terminal size the renderers are given, `KEY=VALUE` flags, and the exit status of
//! a build or replay.

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

use buildkit_events::Time;
use buildkit_progressui::{Mode, Options, Renderer};
use docker_build::decode::{BuildEvent, BuildSummary};
use docker_build::ndjson::LineError;

use crate::Progress;
use crate::error::{CliError, printable};

pub(crate) mod build_command;
pub(crate) mod demo;
pub(crate) mod history;
pub(crate) mod images;
pub(crate) mod replay;
pub(crate) mod report;
pub(crate) mod watch;

/// The renderer for `--progress`, writing to `out` (stdout).
fn renderer(progress: Progress, live: bool, out: Box<dyn Write>) -> Renderer<Box<dyn Write>> {
    let terminal = io::stdout().is_terminal();
    let mode = progress_mode(progress);
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let options = Options {
        live,
        color: terminal && !no_color,
        size: stdout_size,
    };
    Renderer::new(mode, out, options)
}

/// The output format of `--progress`, `auto` resolved by whether stdout is a terminal.
fn progress_mode(progress: Progress) -> Mode {
    match progress {
        Progress::Auto if io::stdout().is_terminal() => Mode::Tty,
        Progress::Auto | Progress::Plain => Mode::Plain,
        Progress::Tty => Mode::Tty,
        Progress::Json => Mode::Json,
        Progress::Rawjson => Mode::RawJson,
    }
}

/// The size of the terminal on stdout, or 80 columns and no height limit.
fn stdout_size() -> (usize, Option<usize>) {
    match terminal_size::terminal_size() {
        Some((terminal_size::Width(w), terminal_size::Height(h))) if w > 0 => {
            (usize::from(w), (h > 0).then_some(usize::from(h)))
        }
        _ => (80, None),
    }
}

/// The wall-clock time, for the renderers (which read no clock).
fn wall_clock() -> Time {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => Time(d.as_nanos() as i128),
        Err(e) => Time(-(e.duration().as_nanos() as i128)),
    }
}

/// Prints what the caller needs to know after a replay or a build, and the exit status.
fn conclude(outcome: &BuildOutcome) -> ExitCode {
    let Some(summary) = &outcome.finished else {
        // The decoder always ends with a summary; without one nothing says the build worked.
        eprintln!("error: the build's output ended without a result");
        return ExitCode::FAILURE;
    };
    let interrupted = || {
        printable(
            &summary
                .interrupted()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        )
    };
    if let Some(failure) = &summary.failure {
        let message = printable(&failure.message);
        eprintln!("error: build failed: {message}");
        ExitCode::FAILURE
    } else if !summary.succeeded() {
        if summary.interrupted().next().is_some() {
            eprintln!(
                "error: the build did not finish: the daemon's output ends while steps were running: {}",
                interrupted()
            );
        } else {
            eprintln!(
                "error: the build did not finish: the daemon's output ends without the image id or an error"
            );
        }
        ExitCode::FAILURE
    } else if summary.interrupted().next().is_some() {
        // The daemon built the image; it just never said that these steps completed.
        eprintln!(
            "warning: the daemon built the image but never reported these steps complete: {}",
            interrupted()
        );
        ExitCode::SUCCESS
    } else {
        ExitCode::SUCCESS
    }
}

/// What a build, live or replayed, came to: what [`conclude`] needs, gathered from the events.
#[derive(Debug, Default)]
pub(crate) struct BuildOutcome {
    /// The decoder's closing summary ([`BuildEvent::Finished`]), once it came.
    finished: Option<Box<BuildSummary>>,
    /// The first [`BAD_LINES_KEPT`] lines of the body that could not be used.
    bad_lines: Vec<LineError>,
    /// How many more there were.
    more_bad_lines: u64,
    /// Something of a build came: a vertex, a record, an image id or a failure (a body of
    /// daemon messages alone, or of unusable lines, holds no build).
    saw_build: bool,
}

/// How many unusable lines a build's outcome keeps to report (the rest are counted).
const BAD_LINES_KEPT: usize = 20;

impl BuildOutcome {
    /// Whether the build ended with a failure.
    fn failed(&self) -> bool {
        self.finished
            .as_ref()
            .is_some_and(|summary| summary.failure.is_some())
    }

    /// Keeps what the caller of a replay or a build needs from an event.
    fn note(&mut self, event: &BuildEvent) {
        match event {
            BuildEvent::BadLine(_) if self.bad_lines.len() >= BAD_LINES_KEPT => {
                self.more_bad_lines += 1;
            }
            BuildEvent::BadLine(e) => self.bad_lines.push(e.clone()),
            BuildEvent::Finished(summary) => {
                self.saw_build |= summary.summary.pending > 0;
                self.finished = Some(summary.clone());
            }
            BuildEvent::Vertex(_)
            | BuildEvent::Record(_)
            | BuildEvent::ImageBuilt { .. }
            | BuildEvent::Failed(_) => self.saw_build = true,
            _ => {}
        }
    }
}

/// `KEY=VALUE` pairs of a repeatable flag; with `env_fallback`, `KEY` alone takes the value of
/// the environment variable (and is skipped when it is unset, as the Docker CLI does).
fn key_values(
    flag: &'static str,
    values: &[String],
    env_fallback: bool,
) -> Result<Vec<(String, String)>, CliError> {
    let mut pairs = Vec::new();
    for value in values {
        let invalid = || CliError::KeyValue {
            flag,
            value: value.clone(),
        };
        match value.split_once('=') {
            Some(("", _)) => return Err(invalid()),
            Some((k, v)) => pairs.push((k.to_string(), v.to_string())),
            None if env_fallback && !value.is_empty() => {
                if let Ok(v) = std::env::var(value) {
                    pairs.push((value.clone(), v));
                }
            }
            None => return Err(invalid()),
        }
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values_split_on_the_first_equals_sign() {
        let pairs = key_values("--label", &["a=b=c".into(), "empty=".into()], false).unwrap();
        assert_eq!(
            pairs,
            [("a".into(), "b=c".into()), ("empty".into(), String::new())]
        );
        let err = key_values("--label", &["novalue".into()], false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid --label \"novalue\": expected KEY=VALUE"
        );
        assert!(key_values("--build-arg", &["=x".into()], true).is_err());
    }

    /// A body full of unusable lines costs a bounded outcome: the first ones and a count.
    #[test]
    fn the_outcome_keeps_the_first_bad_lines_and_counts_the_rest() {
        let mut outcome = BuildOutcome::default();
        for line in 0..10_000 {
            outcome.note(&BuildEvent::BadLine(LineError::TooLong {
                line,
                len: 10,
                max: 5,
            }));
        }
        assert_eq!(outcome.bad_lines.len(), BAD_LINES_KEPT);
        assert_eq!(outcome.more_bad_lines, 10_000 - BAD_LINES_KEPT as u64);
    }

    #[test]
    fn a_build_arg_without_value_comes_from_the_environment() {
        let path = std::env::var("PATH").expect("PATH is set for tests");
        let pairs = key_values(
            "--build-arg",
            &["PATH".into(), "BKTRACE_SURELY_UNSET_VARIABLE".into()],
            true,
        )
        .unwrap();
        assert_eq!(pairs, [("PATH".to_string(), path)]);
    }
}

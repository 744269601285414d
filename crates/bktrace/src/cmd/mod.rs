//! One module per command, and what they share: the renderer for `--progress`, the wall
//! clock and terminal size the renderers are given, `KEY=VALUE` flags, and the exit status of
//! a build or replay.

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

use buildkit_events::Time;
use buildkit_progressui::github::Location;
use buildkit_progressui::warnings::Warnings;
use buildkit_progressui::{Mode, Options, Renderer};
use buildkit_proto::control::ErrorSource;
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
    renderer_with(mode, live, out, terminal)
}

/// The renderer for `--progress` on standard error, `auto` resolved by whether stderr is a
/// terminal: for a build whose output goes to stdout (`--output type=tar,dest=-`).
fn stderr_renderer(progress: Progress, live: bool) -> Renderer<Box<dyn Write>> {
    let terminal = io::stderr().is_terminal();
    renderer_with(
        stderr_mode(progress),
        live,
        Box::new(io::stderr()),
        terminal,
    )
}

/// [`progress_mode`] for progress on standard error.
fn stderr_mode(progress: Progress) -> Mode {
    let github_actions = std::env::var_os("GITHUB_ACTIONS").is_some_and(|v| v == "true");
    resolve_mode(progress, io::stderr().is_terminal(), github_actions)
}

fn renderer_with(
    mode: Mode,
    live: bool,
    out: Box<dyn Write>,
    terminal: bool,
) -> Renderer<Box<dyn Write>> {
    let options = Options {
        live,
        color: terminal && !no_color(),
        size: stdout_size,
        github_token: random_token(),
    };
    Renderer::new(mode, out, options)
}

/// Whether NO_COLOR asks for no colours.
fn no_color() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

/// The output format of `--progress`, `auto` resolved by whether stdout is a terminal and
/// whether GitHub Actions runs us.
fn progress_mode(progress: Progress) -> Mode {
    let github_actions = std::env::var_os("GITHUB_ACTIONS").is_some_and(|v| v == "true");
    resolve_mode(progress, io::stdout().is_terminal(), github_actions)
}

/// `--progress` resolved: `auto` is `tty` on a terminal, else `github` under GitHub Actions
/// (`GITHUB_ACTIONS=true`), else `plain`.
fn resolve_mode(progress: Progress, terminal: bool, github_actions: bool) -> Mode {
    match progress {
        Progress::Auto if terminal => Mode::Tty,
        Progress::Auto if github_actions => Mode::Github,
        Progress::Auto | Progress::Plain => Mode::Plain,
        Progress::Tty => Mode::Tty,
        Progress::Json => Mode::Json,
        Progress::Rawjson => Mode::RawJson,
        Progress::Github => Mode::Github,
    }
}

/// 128 random bits for the GitHub mode's stop-commands token, which the build's output must
/// not be able to guess. Hand-written from std rather than a new dependency (`getrandom`):
/// std's `RandomState` keys its SipHash with random bits from the operating system, so two
/// hashers of one random state give two independent 64-bit values.
fn random_token() -> u128 {
    use std::hash::{BuildHasher, Hasher};
    let state = std::collections::hash_map::RandomState::new();
    let half = |salt: u64| {
        let mut hasher = state.build_hasher();
        hasher.write_u64(salt);
        hasher.write_u32(std::process::id());
        hasher.write_u128(wall_clock().0 as u128);
        hasher.finish()
    };
    (u128::from(half(1)) << 64) | u128::from(half(2))
}

/// What follows the progress output once a build or replay is over, before the verdict
/// ([`conclude`]): the warnings summary in `docker --debug buildx build`'s form (with each
/// warning's `>>>` Dockerfile lines) on stderr, as buildx prints it; in GitHub mode that
/// summary and the annotations (the failure at `failure_at`, the warnings on `dockerfile`)
/// on stdout, through the renderer. Nothing for the JSON modes, whose events carry the
/// warnings.
fn after_output(
    renderer: &mut Renderer<Box<dyn Write>>,
    outcome: &BuildOutcome,
    failure_at: Option<&Location>,
    dockerfile: Option<&str>,
) -> Result<(), CliError> {
    match renderer.mode() {
        Mode::Github => {
            if let Some(github) = renderer.github() {
                github
                    .conclude(failure_at, dockerfile)
                    .map_err(CliError::Output)?;
            }
        }
        Mode::Plain | Mode::Tty => {
            let color = io::stderr().is_terminal() && !no_color();
            eprint!("{}", outcome.warnings.summary(true, color));
        }
        _ => {}
    }
    Ok(())
}

/// Appends `markdown` to the file `$GITHUB_STEP_SUMMARY` names, when it is set and not
/// empty: GitHub shows that file's Markdown on the run's summary page. Several steps (and
/// several builds in one step) append to one file, so it is opened for appending, never
/// truncated.
fn append_step_summary(markdown: &str) -> Result<(), CliError> {
    let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) else {
        return Ok(());
    };
    let path = std::path::PathBuf::from(path);
    let append = || -> io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)?;
        file.write_all(markdown.as_bytes())?;
        if !markdown.ends_with('\n') {
            file.write_all(b"\n")?;
        }
        file.flush()
    };
    append().map_err(|source| CliError::StepSummary {
        path: path.clone(),
        source,
    })
}

/// Where the build's error points in the Dockerfile, from the `errdefs.Source` the daemon's
/// history keeps for it (Docker ≥ 27.1): the file (`dockerfile`, the path in the
/// repository, when the source names it by its base name) and the lines of its ranges.
fn source_location(source: &ErrorSource, dockerfile: Option<&str>) -> Option<Location> {
    let info = source.info.as_ref()?;
    let start = source
        .ranges
        .iter()
        .filter_map(|r| r.start.map(|p| p.line))
        .min()?;
    let end = source
        .ranges
        .iter()
        .filter_map(|r| r.end.or(r.start).map(|p| p.line))
        .max()
        .unwrap_or(start)
        .max(start);
    let file = match dockerfile {
        Some(path) if path == info.filename || path.ends_with(&format!("/{}", info.filename)) => {
            path.to_string()
        }
        _ => info.filename.clone(),
    };
    Some(Location {
        file: (!file.is_empty()).then_some(file),
        line: u32::try_from(start).ok().filter(|&l| l > 0),
        end_line: u32::try_from(end).ok().filter(|&l| l > 0),
    })
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
                "error: the build did not finish: the daemon's output ends without the image id (or the written output) or an error"
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
    /// The warnings the build raised, for the summary after it.
    warnings: Warnings,
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
            other => {
                if matches!(
                    other,
                    BuildEvent::Vertex(_)
                        | BuildEvent::Record(_)
                        | BuildEvent::ImageBuilt { .. }
                        | BuildEvent::Failed(_)
                ) {
                    self.saw_build = true;
                }
                self.warnings.note(other);
            }
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

    /// `auto`: the terminal first, then GitHub Actions, then plain; explicit modes stay.
    #[test]
    fn auto_resolves_by_terminal_then_github_actions() {
        assert_eq!(resolve_mode(Progress::Auto, true, true), Mode::Tty);
        assert_eq!(resolve_mode(Progress::Auto, false, true), Mode::Github);
        assert_eq!(resolve_mode(Progress::Auto, false, false), Mode::Plain);
        assert_eq!(resolve_mode(Progress::Plain, false, true), Mode::Plain);
        assert_eq!(resolve_mode(Progress::Github, true, false), Mode::Github);
    }

    /// An error source's ranges give the lines; the file is the repository's path when the
    /// source names the Dockerfile by its base name.
    #[test]
    fn an_error_source_is_located_in_the_repository() {
        use buildkit_proto::pb::{Position, Range, SourceInfo};
        let position = |line| Some(Position { line, character: 0 });
        let source = ErrorSource {
            info: Some(SourceInfo {
                filename: "Dockerfile".into(),
                data: "FROM x\nRUN a \\\n  b\n".into(),
                ..Default::default()
            }),
            ranges: vec![Range {
                start: position(2),
                end: position(3),
            }],
        };
        let at = source_location(&source, Some("app/Dockerfile")).unwrap();
        assert_eq!(
            at,
            Location {
                file: Some("app/Dockerfile".into()),
                line: Some(2),
                end_line: Some(3),
            }
        );
        let at = source_location(&source, Some("app/Other.Dockerfile")).unwrap();
        assert_eq!(at.file.as_deref(), Some("Dockerfile"));
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

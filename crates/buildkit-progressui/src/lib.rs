#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

use std::io::{self, Write};
use std::time::Duration;

use buildkit_events::Time;
use docker_build::decode::{BuildEvent, DecoderConfig};

mod escape;
pub mod format;
pub mod github;
mod gojson;
pub mod json;
pub mod plain;
pub mod rawjson;
pub mod report;
pub mod tty;
pub mod upload;
pub mod view;
pub mod warnings;

#[cfg(test)]
pub(crate) mod testing;

/// A renderer of build events.
pub trait Render {
    /// Shows one event, which arrived at `now` (wall-clock time, nanoseconds since the Unix
    /// epoch; a replay passes [`Time(0)`](Time)). [`BuildEvent::Finished`] is the last event;
    /// renderers flush on it.
    fn event(&mut self, event: &BuildEvent, now: Time) -> io::Result<()>;

    /// Live builds call this about every 100 ms of wall time: `now` is the wall-clock time (as
    /// for [`Render::event`]), `quiet` the wall time since the last event. Replays never call
    /// it, so their output does not depend on timing. Passing [`Duration::MAX`] as `quiet`
    /// shows whatever is held back (e.g. before reporting that the build broke off).
    fn idle(&mut self, now: Time, quiet: Duration) -> io::Result<()> {
        let _ = (now, quiet);
        Ok(())
    }
}

/// The output formats (BuildKit's `--progress` values, after `auto` is resolved).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mode {
    /// BuildKit's plain text.
    Plain,
    /// The live terminal view.
    Tty,
    /// Our JSON lines, one per event.
    Json,
    /// buildx's rawjson: one `SolveStatus` object per trace record.
    RawJson,
    /// Plain text for a GitHub Actions job log: groups per step, commands from the build
    /// neutralised, annotations ([`github`]).
    Github,
}

impl Mode {
    /// Whether the renderer uses [`BuildEvent::Record`]s, which a decoder emits only when
    /// asked (`docker_build::DecoderConfig::records`, also in `BuildOptions::decoder`): true
    /// for [`Mode::RawJson`], which prints them, and [`Mode::Tty`], which counts the vertices
    /// they describe, started or not, and shows a running step's raw output (a `\r` progress
    /// bar as it moves). Without them the tty view counts started vertices and shows whole
    /// lines.
    pub fn wants_records(self) -> bool {
        matches!(self, Mode::RawJson | Mode::Tty)
    }

    /// Whether the renderer uses [`BuildEvent::RecordApplied`], which a decoder emits only
    /// when asked (`docker_build::DecoderConfig::boundaries`): true for [`Mode::Plain`] and
    /// [`Mode::Github`], which apply a whole record before a printing pass, as BuildKit's
    /// printer does. Without them (or [`BuildEvent::Record`]s) each event counts as a record
    /// of its own.
    pub fn wants_boundaries(self) -> bool {
        matches!(self, Mode::Plain | Mode::Github)
    }

    /// The decoder configuration this mode's renderer wants: the default one with
    /// [`Mode::wants_records`] and [`Mode::wants_boundaries`].
    pub fn decoder_config(self) -> DecoderConfig {
        DecoderConfig {
            records: self.wants_records(),
            boundaries: self.wants_boundaries(),
            ..DecoderConfig::default()
        }
    }
}

/// Any renderer, chosen at run time.
#[derive(Debug)]
#[non_exhaustive]
pub enum Renderer<W: Write> {
    /// See [`plain::Plain`].
    Plain(plain::Plain<W>),
    /// See [`tty::Tty`].
    Tty(tty::Tty<W>),
    /// See [`json::Json`].
    Json(json::Json<W>),
    /// See [`rawjson::RawJson`].
    RawJson(rawjson::RawJson<W>),
    /// See [`github::Github`] (boxed: it holds a [`plain::Plain`] and more).
    Github(Box<github::Github<W>>),
}

/// How to build a [`Renderer`].
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Redraw the tty view as events arrive (a build) rather than once (a replay).
    pub live: bool,
    /// Colours in the tty view.
    pub color: bool,
    /// Terminal size for the tty view, asked before each frame.
    pub size: tty::SizeFn,
    /// The GitHub mode's stop-commands token (written as 32 hex digits, see
    /// [`github::Github::new`]): set it to a random value the build cannot guess (bktrace
    /// draws one per run); the default, 0, is fit for tests only.
    pub github_token: u128,
}

impl Default for Options {
    /// Not live, no colours, 80 columns and no height limit.
    fn default() -> Self {
        Self {
            live: false,
            color: false,
            size: || (80, None),
            github_token: 0,
        }
    }
}

impl<W: Write> Renderer<W> {
    /// A renderer of `mode` writing to `out`.
    pub fn new(mode: Mode, out: W, options: Options) -> Self {
        match mode {
            Mode::Plain => Renderer::Plain(plain::Plain::new(out)),
            Mode::Tty => Renderer::Tty(tty::Tty::new(
                out,
                options.live,
                options.color,
                options.size,
            )),
            Mode::Json => Renderer::Json(json::Json::new(out)),
            Mode::RawJson => Renderer::RawJson(rawjson::RawJson::new(out)),
            Mode::Github => Renderer::Github(Box::new(github::Github::new(
                out,
                &format!("{:032x}", options.github_token),
            ))),
        }
    }

    /// The mode of this renderer.
    pub fn mode(&self) -> Mode {
        match self {
            Renderer::Plain(_) => Mode::Plain,
            Renderer::Tty(_) => Mode::Tty,
            Renderer::Json(_) => Mode::Json,
            Renderer::RawJson(_) => Mode::RawJson,
            Renderer::Github(_) => Mode::Github,
        }
    }

    /// The GitHub renderer, for what it writes once the build is over
    /// ([`github::Github::conclude`]); `None` in the other modes.
    pub fn github(&mut self) -> Option<&mut github::Github<W>> {
        match self {
            Renderer::Github(r) => Some(&mut **r),
            _ => None,
        }
    }

    /// Whether this renderer shows [`BuildEvent::Record`]s (see [`Mode::wants_records`]).
    pub fn wants_records(&self) -> bool {
        self.mode().wants_records()
    }

    /// The writer back.
    pub fn into_inner(self) -> W {
        match self {
            Renderer::Plain(r) => r.into_inner(),
            Renderer::Tty(r) => r.into_inner(),
            Renderer::Json(r) => r.into_inner(),
            Renderer::RawJson(r) => r.into_inner(),
            Renderer::Github(r) => r.into_inner(),
        }
    }
}

impl<W: Write> Render for Renderer<W> {
    fn event(&mut self, event: &BuildEvent, now: Time) -> io::Result<()> {
        match self {
            Renderer::Plain(r) => r.event(event, now),
            Renderer::Tty(r) => r.event(event, now),
            Renderer::Json(r) => r.event(event, now),
            Renderer::RawJson(r) => r.event(event, now),
            Renderer::Github(r) => r.event(event, now),
        }
    }

    fn idle(&mut self, now: Time, quiet: Duration) -> io::Result<()> {
        match self {
            Renderer::Plain(r) => r.idle(now, quiet),
            Renderer::Tty(r) => r.idle(now, quiet),
            Renderer::Github(r) => r.idle(now, quiet),
            Renderer::Json(_) | Renderer::RawJson(_) => Ok(()),
        }
    }
}

/// The workspace README's Rust examples (a live build, a replay rendered as plain text),
/// compiled and run as doctests so they cannot rot.
#[cfg(all(doctest, unix))]
#[doc = include_str!("../../../README.md")]
pub struct WorkspaceReadmeDoctests;

//! The renderers: build events in, text out to any [`std::io::Write`].
//!
//! - [`plain::Plain`]: BuildKit's plain format (`#N …` blocks);
//! - [`tty::Tty`]: a live view redrawn in place, built from the pure [`tty::frame`];
//! - [`json::Json`]: one JSON object per event (schema in the crate's README);
//! - [`rawjson::RawJson`]: buildx's `--progress=rawjson` objects, one per trace record (it
//!   reads the raw body, not events).

use std::io::{self, Write};
use std::time::Duration;

use bytes::Bytes;
use docker_build::decode::BuildEvent;

pub mod format;
pub mod gojson;
pub mod json;
pub mod plain;
pub mod rawjson;
pub mod tty;

#[cfg(test)]
pub(crate) mod testing;

/// A renderer of build events.
pub trait Render {
    /// Shows one event. [`BuildEvent::Finished`] is the last one; renderers flush on it.
    fn event(&mut self, event: &BuildEvent) -> io::Result<()>;

    /// Live builds call this about every 100 ms of wall time; `quiet` is the wall time since
    /// the last event. Replays never call it, so their output does not depend on timing.
    fn idle(&mut self, quiet: Duration) -> io::Result<()> {
        let _ = quiet;
        Ok(())
    }
}

/// The output formats of `--progress` (after `auto` is resolved).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// BuildKit's plain text.
    Plain,
    /// The live terminal view.
    Tty,
    /// Our JSON lines, one per event.
    Json,
    /// buildx's rawjson: one `SolveStatus` object per trace record.
    RawJson,
}

/// Any renderer, chosen at run time.
#[derive(Debug)]
pub enum Renderer<W: Write> {
    /// See [`plain::Plain`].
    Plain(plain::Plain<W>),
    /// See [`tty::Tty`].
    Tty(tty::Tty<W>),
    /// See [`json::Json`].
    Json(json::Json<W>),
    /// See [`rawjson::RawJson`].
    RawJson(rawjson::RawJson<W>),
}

/// How to build a [`Renderer`].
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Redraw the tty view as events arrive (a build) rather than once (a replay).
    pub live: bool,
    /// Colours in the tty view.
    pub color: bool,
    /// Terminal size for the tty view.
    pub size: tty::SizeFn,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            live: false,
            color: false,
            size: || (80, None),
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
        }
    }

    /// A raw body chunk, before it is decoded (only rawjson uses it).
    pub fn chunk(&mut self, chunk: &Bytes) -> io::Result<()> {
        match self {
            Renderer::RawJson(r) => r.push(chunk.clone()),
            _ => Ok(()),
        }
    }

    /// The writer back.
    pub fn into_inner(self) -> W {
        match self {
            Renderer::Plain(r) => r.into_inner(),
            Renderer::Tty(r) => r.into_inner(),
            Renderer::Json(r) => r.into_inner(),
            Renderer::RawJson(r) => r.into_inner(),
        }
    }
}

impl<W: Write> Render for Renderer<W> {
    fn event(&mut self, event: &BuildEvent) -> io::Result<()> {
        match self {
            Renderer::Plain(r) => r.event(event),
            Renderer::Tty(r) => r.event(event),
            Renderer::Json(r) => r.event(event),
            Renderer::RawJson(r) => match event {
                BuildEvent::Finished(_) => r.finish(),
                _ => Ok(()),
            },
        }
    }

    fn idle(&mut self, quiet: Duration) -> io::Result<()> {
        match self {
            Renderer::Plain(r) => r.idle(quiet),
            Renderer::Tty(r) => r.idle(quiet),
            Renderer::Json(_) | Renderer::RawJson(_) => Ok(()),
        }
    }
}

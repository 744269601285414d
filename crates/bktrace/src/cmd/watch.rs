//! `bktrace watch`: every build on the daemon as it runs, whoever started it.
//!
//! The history (`ListenBuildHistory`, followed) tells when a build starts; each build's
//! progress then comes from its own `Status` call, on the same HTTP/2 connection, into its own
//! decoder and renderer. The renderers write into a buffer per build, from which whole lines
//! go to stdout marked with their build:
//!
//! - `plain`: each line prefixed with the build's short ref, plus a line when a build starts
//!   and when it ends, so that interleaved builds stay readable;
//! - `json` and `rawjson`: every object gets the keys `ref` and `build_name` first (`name` is
//!   taken: it is the vertex's name in the json schema);
//! - `tty`: one live frame per running build, stacked; a build's final frame stays above the
//!   live area when it ends.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::io::{self, Write};
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use buildkit_progressui::tty::{TtyState, frame};
use buildkit_progressui::{Mode, Options, Render, Renderer};
use buildkit_proto::StatusResponse;
use buildkit_proto::control::{BuildHistoryEventType, BuildHistoryRecord};
use docker_build::Time;
use docker_build::control::{BuildState, Control, HistoryRequest, RequestError, build_name};
use docker_build::decode::{BuildDecoder, BuildEvent};
use tokio::sync::mpsc;

use super::history::{Filter, Row, control, runtime};
use super::{progress_mode, stdout_size, wall_clock};
use crate::WatchArgs;
use crate::error::CliError;

/// How many characters of a ref mark a plain line.
const SHORT_REF: usize = 12;

/// `bktrace watch`.
pub(crate) fn run(args: WatchArgs) -> Result<ExitCode, CliError> {
    runtime()?.block_on(watch(args))
}

/// What a build's `Status` task sends back.
enum Message {
    Record(StatusResponse),
    End(Option<RequestError>),
}

async fn watch(args: WatchArgs) -> Result<ExitCode, CliError> {
    let filters = args
        .filter
        .iter()
        .map(|f| Filter::parse(f))
        .collect::<Result<Vec<_>, _>>()?;
    let control = control().await?;
    // Concurrent builds interleave their lines, each marked with its build: GitHub's groups
    // cannot show that, so `github` (and `auto` under GitHub Actions) is the plain form here.
    let mode = match progress_mode(args.progress.progress) {
        Mode::Github => Mode::Plain,
        mode => mode,
    };
    // The builds there are when attaching; anything else the followed history reports is new.
    let mut existing = HashSet::new();
    let mut listing = control
        .history(HistoryRequest::existing())
        .await
        .map_err(CliError::Request)?;
    while let Some(event) = listing.next().await {
        if let Some(record) = event.map_err(CliError::Request)?.record {
            existing.insert(record.r#ref);
        }
    }
    let since = args.since.map(|d| wall_clock().0 - d.as_nanos() as i128);
    let mut history = control
        .history(HistoryRequest::follow())
        .await
        .map_err(CliError::Request)?;

    // Said once attached, so that whoever starts builds next knows they will be seen.
    eprintln!(
        "watching the builds of {} ({}); Ctrl-C detaches",
        control.target(),
        control.transport()
    );
    let (tx, mut rx) = mpsc::channel::<(String, Message)>(64);
    let mut out = Output::new(mode);
    let mut builds: HashMap<String, Build> = HashMap::new();
    let mut started: HashSet<String> = HashSet::new();
    let mut ended = 0usize;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut history_open = true;

    loop {
        if args.count.is_some_and(|n| ended >= n) {
            break;
        }
        tokio::select! {
            event = history.next(), if history_open => match event {
                Some(Ok(event)) => {
                    let deleted = event.r#type() == BuildHistoryEventType::Deleted;
                    let Some(record) = event.record else { continue };
                    if deleted
                        || started.contains(&record.r#ref)
                        || !wanted(&record, &existing, since)
                        || !filters.iter().all(|f| f.matches(&Row::of(&record)))
                    {
                        continue;
                    }
                    started.insert(record.r#ref.clone());
                    let build = Build::new(&record, mode);
                    out.started(&build)?;
                    spawn_status(&control, record.r#ref.clone(), tx.clone());
                    builds.insert(record.r#ref.clone(), build);
                }
                Some(Err(e)) => return Err(CliError::Request(e)),
                // The daemon ended the history stream (it is shutting down): let the builds
                // being shown end, then stop.
                None => history_open = false,
            },
            Some((build_ref, message)) = rx.recv() => {
                let Some(build) = builds.get_mut(&build_ref) else { continue };
                match message {
                    Message::Record(record) => {
                        build.decoder.push_record(record);
                        build.drain(&mut out)?;
                    }
                    Message::End(error) => {
                        build.decoder.finish(wall_clock());
                        build.drain(&mut out)?;
                        let build = builds.remove(&build_ref).expect("the build is there");
                        out.ended(&build, error.as_ref())?;
                        ended += 1;
                    }
                }
            }
            _ = tick.tick() => out.tick(&builds)?,
            _ = &mut ctrl_c => break,
        }
        if !history_open && builds.is_empty() {
            break;
        }
    }
    out.detach(&builds)?;
    Ok(ExitCode::SUCCESS)
}

/// Whether to show a build the history reports.
fn wanted(record: &BuildHistoryRecord, existing: &HashSet<String>, since: Option<i128>) -> bool {
    if !existing.contains(&record.r#ref) {
        return true;
    }
    match (since, record.created_at) {
        (Some(since), Some(created)) => created.unix_nanos() >= since,
        _ => false,
    }
}

/// Streams a build's records to the main loop, then its end.
fn spawn_status(control: &Control, build_ref: String, tx: mpsc::Sender<(String, Message)>) {
    let control = control.clone();
    tokio::spawn(async move {
        let error = match control.status(&build_ref).await {
            Ok(mut stream) => loop {
                match stream.next().await {
                    Some(Ok(record)) => {
                        if tx
                            .send((build_ref.clone(), Message::Record(record)))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    Some(Err(e)) => break Some(e),
                    None => break None,
                }
            },
            Err(e) => Some(e),
        };
        let _ = tx.send((build_ref, Message::End(error))).await;
    });
}

/// A writer whose bytes the watch takes out after each event.
#[derive(Clone, Default)]
struct Buffer(Rc<RefCell<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// One build being shown.
struct Build {
    build_ref: String,
    name: String,
    created: Option<Time>,
    decoder: BuildDecoder,
    show: Show,
    buffer: Buffer,
    state: BuildState,
}

/// How a build's events are shown.
enum Show {
    /// A renderer writing into the build's buffer.
    Render(Box<Renderer<Buffer>>),
    /// The tty view's state, drawn by [`Output`].
    Tty(Box<TtyState>),
}

impl Build {
    fn new(record: &BuildHistoryRecord, mode: Mode) -> Self {
        let buffer = Buffer::default();
        let show = match mode {
            Mode::Tty => Show::Tty(Box::default()),
            mode => Show::Render(Box::new(Renderer::new(
                mode,
                buffer.clone(),
                Options {
                    live: false,
                    color: false,
                    size: stdout_size,
                    ..Options::default()
                },
            ))),
        };
        Build {
            build_ref: record.r#ref.clone(),
            name: build_name(&record.frontend_attrs),
            created: record.created_at.map(|t| Time(t.unix_nanos())),
            decoder: BuildDecoder::with_config(mode.decoder_config()),
            show,
            buffer,
            state: BuildState::Running,
        }
    }

    fn short_ref(&self) -> &str {
        let end = self
            .build_ref
            .char_indices()
            .nth(SHORT_REF)
            .map_or(self.build_ref.len(), |(i, _)| i);
        &self.build_ref[..end]
    }

    /// Renders the decoder's pending events and hands the finished lines to `out`.
    fn drain(&mut self, out: &mut Output) -> Result<(), CliError> {
        while let Some(event) = self.decoder.poll_event() {
            if let BuildEvent::Finished(summary) = &event {
                self.state = if summary.failure.is_some() {
                    BuildState::Error
                } else if summary.succeeded() {
                    BuildState::Completed
                } else {
                    BuildState::Canceled
                };
            }
            match &mut self.show {
                Show::Render(renderer) => {
                    renderer
                        .event(&event, wall_clock())
                        .map_err(CliError::Output)?;
                }
                Show::Tty(state) => state.apply(&event),
            }
        }
        let bytes = std::mem::take(&mut *self.buffer.0.borrow_mut());
        out.lines(self, &bytes)
    }
}

/// stdout, and what the tty view has drawn on it.
struct Output {
    mode: Mode,
    out: io::Stdout,
    /// Lines of the live area the tty view drew last.
    live_lines: usize,
    /// A partial line per build (renderers may write a line in pieces).
    partial: HashMap<String, Vec<u8>>,
}

impl Output {
    fn new(mode: Mode) -> Self {
        Output {
            mode,
            out: io::stdout(),
            live_lines: 0,
            partial: HashMap::new(),
        }
    }

    fn started(&mut self, build: &Build) -> Result<(), CliError> {
        if self.mode == Mode::Plain {
            let name = if build.name.is_empty() {
                String::new()
            } else {
                format!(" ({})", build.name)
            };
            let mut out = self.out.lock();
            writeln!(
                out,
                "{} === build {}{name} started",
                build.short_ref(),
                build.build_ref
            )
            .and_then(|()| out.flush())
            .map_err(CliError::Output)?;
        }
        Ok(())
    }

    /// Writes the whole lines of `bytes` (a build's rendered output), marked with the build.
    fn lines(&mut self, build: &Build, bytes: &[u8]) -> Result<(), CliError> {
        if bytes.is_empty() {
            return Ok(());
        }
        let pending = self.partial.entry(build.build_ref.clone()).or_default();
        pending.extend_from_slice(bytes);
        let Some(end) = pending.iter().rposition(|&b| b == b'\n') else {
            return Ok(());
        };
        let rest = pending.split_off(end + 1);
        let whole = std::mem::replace(pending, rest);
        let mut text = Vec::with_capacity(whole.len() + 64);
        for line in whole.split(|&b| b == b'\n') {
            if line.is_empty() {
                continue;
            }
            match self.mode {
                Mode::Json | Mode::RawJson => tag_json(&mut text, line, build),
                _ => {
                    text.extend_from_slice(build.short_ref().as_bytes());
                    text.push(b' ');
                    text.extend_from_slice(line);
                }
            }
            text.push(b'\n');
        }
        let mut out = self.out.lock();
        out.write_all(&text)
            .and_then(|()| out.flush())
            .map_err(CliError::Output)
    }

    fn ended(&mut self, build: &Build, error: Option<&RequestError>) -> Result<(), CliError> {
        if let Some(rest) = self.partial.remove(&build.build_ref) {
            if !rest.is_empty() {
                let mut rest = rest;
                rest.push(b'\n');
                self.lines(build, &rest)?;
                self.partial.remove(&build.build_ref);
            }
        }
        if let Some(e) = error {
            eprintln!(
                "warning: the progress of build {} broke off: {}",
                build.build_ref,
                crate::error::one_line(e)
            );
        }
        match self.mode {
            Mode::Plain => {
                let took = build
                    .created
                    .map(|c| format!(" after {:.1}s", (wall_clock().0 - c.0) as f64 / 1e9))
                    .unwrap_or_default();
                let mut out = self.out.lock();
                writeln!(
                    out,
                    "{} === build {} {}{took}",
                    build.short_ref(),
                    build.build_ref,
                    build.state
                )
                .and_then(|()| out.flush())
                .map_err(CliError::Output)
            }
            Mode::Tty => {
                // The final frame stays above the live area.
                if let Show::Tty(state) = &build.show {
                    let (width, _) = stdout_size();
                    let lines = titled_frame(build, state, width, None);
                    self.redraw(&lines, true)?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Redraws the tty view's live area.
    fn tick(&mut self, builds: &HashMap<String, Build>) -> Result<(), CliError> {
        if self.mode != Mode::Tty {
            return Ok(());
        }
        let (width, height) = stdout_size();
        let mut running: Vec<&Build> = builds.values().collect();
        running.sort_by(|a, b| {
            a.created
                .cmp(&b.created)
                .then(a.build_ref.cmp(&b.build_ref))
        });
        let per_build = height.map(|h| (h / running.len().max(1)).max(3));
        let mut lines = Vec::new();
        for build in running {
            if let Show::Tty(state) = &build.show {
                lines.extend(titled_frame(build, state, width, per_build));
            }
        }
        self.redraw(&lines, false)
    }

    /// Replaces the live area with `lines`; `settled` lines stay above it for good.
    fn redraw(&mut self, lines: &[String], settled: bool) -> Result<(), CliError> {
        let mut text = String::new();
        if self.live_lines > 0 {
            text.push_str(&format!("\x1b[{}A\r\x1b[J", self.live_lines));
        }
        for line in lines {
            text.push_str(line);
            text.push('\n');
        }
        self.live_lines = if settled { 0 } else { lines.len() };
        let mut out = self.out.lock();
        out.write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .map_err(CliError::Output)
    }

    /// Leaves the screen tidy when watching stops while builds are still running.
    fn detach(&mut self, builds: &HashMap<String, Build>) -> Result<(), CliError> {
        if self.mode == Mode::Plain {
            let mut out = self.out.lock();
            for build in builds.values() {
                writeln!(
                    out,
                    "{} === detached from build {} (still running)",
                    build.short_ref(),
                    build.build_ref
                )
                .map_err(CliError::Output)?;
            }
            out.flush().map_err(CliError::Output)?;
        }
        Ok(())
    }
}

/// A build's tty frame, its header naming the build.
fn titled_frame(
    build: &Build,
    state: &TtyState,
    width: usize,
    height: Option<usize>,
) -> Vec<String> {
    let now = state.latest().unwrap_or(Time(0)).max(wall_clock());
    let mut lines = frame(state, width, height, now, false);
    if let Some(header) = lines.first_mut() {
        let title = if build.name.is_empty() {
            build.short_ref().to_string()
        } else {
            format!("{} {}", build.short_ref(), build.name)
        };
        *header = header.replacen("[+] ", &format!("[+] {title}: "), 1);
    }
    lines
}

/// `{"ref":…,"build_name":…,` then the rest of the object `line`.
fn tag_json(text: &mut Vec<u8>, line: &[u8], build: &Build) {
    let Some(rest) = line.strip_prefix(b"{") else {
        text.extend_from_slice(line);
        return;
    };
    text.extend_from_slice(b"{\"ref\":");
    text.extend_from_slice(
        serde_json::Value::from(build.build_ref.as_str())
            .to_string()
            .as_bytes(),
    );
    text.extend_from_slice(b",\"build_name\":");
    text.extend_from_slice(
        serde_json::Value::from(build.name.as_str())
            .to_string()
            .as_bytes(),
    );
    if rest.first() != Some(&b'}') {
        text.push(b',');
    }
    text.extend_from_slice(rest);
}

#[cfg(test)]
mod tests {
    use super::*;
    use buildkit_proto::Timestamp;

    fn record(build_ref: &str, created: i64) -> BuildHistoryRecord {
        BuildHistoryRecord {
            r#ref: build_ref.into(),
            created_at: Some(Timestamp {
                seconds: created,
                nanos: 0,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn new_builds_are_wanted_old_ones_only_within_since() {
        let existing: HashSet<String> = ["old".to_string()].into();
        assert!(wanted(&record("new", 0), &existing, None));
        assert!(!wanted(&record("old", 100), &existing, None));
        assert!(wanted(&record("old", 100), &existing, Some(99_000_000_000)));
        assert!(!wanted(
            &record("old", 100),
            &existing,
            Some(101_000_000_000)
        ));
    }

    #[test]
    fn json_lines_get_the_build_first() {
        let build = Build::new(
            &BuildHistoryRecord {
                r#ref: "r1".into(),
                frontend_attrs: [(
                    "build-arg:BUILDKIT_BUILD_NAME".to_string(),
                    "web \"x\"".to_string(),
                )]
                .into(),
                ..Default::default()
            },
            Mode::Json,
        );
        let mut text = Vec::new();
        tag_json(&mut text, br#"{"type":"started"}"#, &build);
        assert_eq!(
            String::from_utf8(text).unwrap(),
            r#"{"ref":"r1","build_name":"web \"x\"","type":"started"}"#
        );
        let mut text = Vec::new();
        tag_json(&mut text, b"{}", &build);
        assert_eq!(
            String::from_utf8(text).unwrap(),
            r#"{"ref":"r1","build_name":"web \"x\""}"#
        );
    }
}

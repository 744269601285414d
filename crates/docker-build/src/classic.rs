//! The classic builder (`version=1`) in BuildKit's vocabulary (sans-IO).
//!
//! The classic builder writes text, not records: `Step 2/3 : RUN …`, ` ---> Running in …`,
//! the command's output, ` ---> Using cache`, ` ---> <image id>`, and an `errorDetail` line on
//! failure. [`ClassicMapper`] turns that text into synthetic `StatusResponse` records (one
//! vertex per step, the step's output as stdout logs), so the same
//! [`buildkit_events::Tracker`] serves both builders and callers handle one model.
//!
//! The text carries no times, so the caller passes the time each piece arrived.

use buildkit_events::Time;
use buildkit_proto::{
    STREAM_STDERR, STREAM_STDOUT, StatusResponse, Timestamp, Vertex, VertexLog, VertexStatus,
};
use bytes::Bytes;

/// Longest unfinished line of text the mapper holds, in bytes: a step's output line beyond
/// it goes to the tracker in pieces (which joins them again); other text is cut.
const PARTIAL_MAX: usize = 64 * 1024;

/// The escape codes the daemon puts around a step's stderr.
const STDERR_ON: &str = "\x1b[91m";
const STDERR_OFF: &str = "\x1b[0m";

/// What a complete line of classic text means, once the step bookkeeping is done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ClassicLine {
    /// Bookkeeping the mapper consumed (step headers, ` ---> …` lines).
    Consumed,
    /// A daemon message that belongs to no step (`Successfully built …`, `Successfully tagged …`).
    Message(String),
}

/// Maps classic-builder text to synthetic BuildKit records.
///
/// ```
/// use buildkit_events::Time;
/// use docker_build::classic::ClassicMapper;
///
/// let mut mapper = ClassicMapper::default();
/// let mut records = Vec::new();
/// mapper.text("Step 1/2 : RUN echo hi\n", Time(1_000), &mut records);
/// mapper.text("hi\n", Time(2_000), &mut records);
/// mapper.text("Successfully built 0123abcd\n", Time(3_000), &mut records);
/// let names: Vec<_> = records.iter().flat_map(|r| &r.vertexes).map(|v| v.name.as_str()).collect();
/// assert_eq!(names, ["[1/2] RUN echo hi", "[1/2] RUN echo hi"]);
/// assert_eq!(&records[1].logs[0].msg[..], b"hi\n");
/// ```
#[derive(Debug, Default)]
pub struct ClassicMapper {
    /// Text of the line being assembled (the daemon sends `Step …` and its `\n` apart).
    partial: String,
    /// Between `ESC[91m` and `ESC[0m`: the step's stderr.
    stderr: bool,
    step: Option<Step>,
    seen_step: bool,
    /// The start of the line being assembled went to the step's output already.
    continued: bool,
}

#[derive(Debug)]
struct Step {
    digest: String,
    name: String,
    started: Timestamp,
    cached: bool,
}

fn timestamp(t: Time) -> Timestamp {
    Timestamp {
        seconds: t.0.div_euclid(1_000_000_000) as i64,
        nanos: t.0.rem_euclid(1_000_000_000) as i32,
    }
}

impl ClassicMapper {
    /// Whether any `Step N/M :` line was seen (the stream is the classic builder's).
    pub fn is_classic(&self) -> bool {
        self.seen_step
    }

    /// The digest of the step now running, if any.
    pub fn current_step(&self) -> Option<&str> {
        self.step.as_ref().map(|s| s.digest.as_str())
    }

    /// Feeds a `{"stream": …}` text; records go to `out`, and daemon messages that belong to no
    /// step are returned.
    ///
    /// The daemon wraps what a step writes to stderr in `ESC[91m` … `ESC[0m`; that text becomes
    /// the step's stderr log, without the escape codes.
    pub fn text(&mut self, text: &str, now: Time, out: &mut Vec<StatusResponse>) -> Vec<String> {
        let mut messages = Vec::new();
        let mut rest = text;
        loop {
            let next = [(STDERR_ON, true), (STDERR_OFF, false)]
                .into_iter()
                .filter_map(|(marker, on)| rest.find(marker).map(|i| (i, marker.len(), on)))
                .min();
            let Some((at, len, on)) = next else { break };
            self.segment(&rest[..at], now, out, &mut messages);
            self.stderr = on;
            rest = &rest[at + len..];
        }
        self.segment(rest, now, out, &mut messages);
        messages
    }

    fn segment(
        &mut self,
        text: &str,
        now: Time,
        out: &mut Vec<StatusResponse>,
        messages: &mut Vec<String>,
    ) {
        if text.is_empty() {
            return;
        }
        if self.stderr && self.step.is_some() {
            self.log(text.to_string(), STREAM_STDERR, now, out);
            return;
        }
        let mut rest = text;
        while let Some(i) = rest.find('\n') {
            self.partial.push_str(&rest[..=i]);
            rest = &rest[i + 1..];
            let line = std::mem::take(&mut self.partial);
            if std::mem::take(&mut self.continued) && self.step.is_some() {
                // The rest of a long output line: no bookkeeping.
                self.log(line, STREAM_STDOUT, now, out);
                continue;
            }
            if let ClassicLine::Message(m) = self.line(line, now, out) {
                messages.push(m);
            }
        }
        self.partial.push_str(rest);
        if self.partial.len() > PARTIAL_MAX {
            if self.step.is_some() {
                self.flush_partial(now, out);
                self.continued = true;
            } else {
                let mut end = PARTIAL_MAX;
                while !self.partial.is_char_boundary(end) {
                    end -= 1;
                }
                self.partial.truncate(end);
            }
        }
    }

    /// Classic pull progress (`{"status":…}` lines) becomes a status of the running step.
    pub fn status(
        &mut self,
        id: Option<&str>,
        status: &str,
        current: Option<i64>,
        total: Option<i64>,
        now: Time,
        out: &mut Vec<StatusResponse>,
    ) {
        let Some(step) = &self.step else { return };
        let ts = timestamp(now);
        let done = status.contains("complete") || status.starts_with("Already exists");
        out.push(StatusResponse {
            statuses: vec![VertexStatus {
                id: match id {
                    Some(id) => format!("{id} {status}"),
                    None => status.to_string(),
                },
                vertex: step.digest.clone(),
                name: status.to_string(),
                current: current.unwrap_or(0),
                total: total.unwrap_or(0),
                timestamp: Some(ts),
                started: Some(ts),
                completed: done.then_some(ts),
            }],
            ..Default::default()
        });
    }

    /// The build failed with `message`: the running step fails with it.
    pub fn error(&mut self, message: &str, now: Time, out: &mut Vec<StatusResponse>) {
        self.flush_partial(now, out);
        self.complete(message, now, out);
    }

    /// The end of the body: a pending partial line is flushed and a step still running stays
    /// running (the tracker reports it as interrupted).
    pub fn finish(&mut self, now: Time, out: &mut Vec<StatusResponse>) {
        self.flush_partial(now, out);
    }

    fn flush_partial(&mut self, now: Time, out: &mut Vec<StatusResponse>) {
        if !self.partial.is_empty() {
            let text = std::mem::take(&mut self.partial);
            self.log(text, STREAM_STDOUT, now, out);
        }
    }

    fn line(&mut self, line: String, now: Time, out: &mut Vec<StatusResponse>) -> ClassicLine {
        let trimmed = line.trim_end_matches(['\n', '\r']);
        if let Some((index, total, instruction)) = parse_step(trimmed) {
            self.complete("", now, out);
            self.seen_step = true;
            let step = Step {
                digest: format!("classic:step-{index}"),
                name: format!("[{index}/{total}] {instruction}"),
                started: timestamp(now),
                cached: false,
            };
            out.push(StatusResponse {
                vertexes: vec![self.vertex(&step, None, "")],
                ..Default::default()
            });
            self.step = Some(step);
            return ClassicLine::Consumed;
        }
        if let Some(arrow) = trimmed.strip_prefix(" ---> ") {
            if arrow == "Using cache" {
                if let Some(step) = &mut self.step {
                    step.cached = true;
                }
            }
            // ` ---> <id>` closes nothing by itself: the next step or the end does.
            return ClassicLine::Consumed;
        }
        if trimmed.starts_with("Removing intermediate container ")
            || trimmed.starts_with("Removed intermediate container ")
        {
            return ClassicLine::Consumed;
        }
        if trimmed.starts_with("Successfully built ") || trimmed.starts_with("Successfully tagged ")
        {
            self.complete("", now, out);
            return ClassicLine::Message(trimmed.to_string());
        }
        if self.step.is_none() {
            return ClassicLine::Message(trimmed.to_string());
        }
        self.log(line, STREAM_STDOUT, now, out);
        ClassicLine::Consumed
    }

    fn log(&mut self, text: String, stream: i64, now: Time, out: &mut Vec<StatusResponse>) {
        let Some(step) = &self.step else { return };
        out.push(StatusResponse {
            logs: vec![VertexLog {
                vertex: step.digest.clone(),
                timestamp: Some(timestamp(now)),
                stream,
                msg: Bytes::from(text.into_bytes()),
            }],
            ..Default::default()
        });
    }

    fn complete(&mut self, error: &str, now: Time, out: &mut Vec<StatusResponse>) {
        if let Some(step) = self.step.take() {
            let vertex = self.vertex(&step, Some(timestamp(now)), error);
            out.push(StatusResponse {
                vertexes: vec![vertex],
                ..Default::default()
            });
        }
    }

    fn vertex(&self, step: &Step, completed: Option<Timestamp>, error: &str) -> Vertex {
        Vertex {
            digest: step.digest.clone(),
            inputs: Vec::new(),
            name: step.name.clone(),
            cached: step.cached,
            started: Some(step.started),
            completed,
            error: error.to_string(),
            progress_group: None,
        }
    }
}

/// `Step 2/3 : RUN echo hi` → (2, 3, "RUN echo hi").
fn parse_step(line: &str) -> Option<(u32, u32, &str)> {
    let rest = line.strip_prefix("Step ")?;
    let (counts, instruction) = rest.split_once(" : ")?;
    let (index, total) = counts.split_once('/')?;
    Some((index.parse().ok()?, total.parse().ok()?, instruction))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Text that never ends a line costs bounded memory: a step's output goes on to the
    /// tracker in pieces, other text is cut.
    #[test]
    fn an_endless_line_is_not_held_whole() {
        let mut m = ClassicMapper::default();
        let mut out = Vec::new();
        m.text("Step 1/1 : RUN yes | tr -d '\\n'\n", Time(0), &mut out);
        let chunk = "y".repeat(1000);
        for _ in 0..1_000 {
            m.text(&chunk, Time(1), &mut out);
            assert!(m.partial.len() <= PARTIAL_MAX + 1000);
        }
        // The rest of the line looks like bookkeeping, but it is output.
        m.text(" ---> Using cache\n", Time(2), &mut out);
        let logged: Vec<u8> = out
            .iter()
            .flat_map(|r| &r.logs)
            .flat_map(|l| l.msg.to_vec())
            .collect();
        assert_eq!(logged.len(), 1_000_000 + " ---> Using cache\n".len());
        assert!(logged.ends_with(b"yyy ---> Using cache\n"));
        assert!(!m.step.as_ref().unwrap().cached);
        // Outside a step, a message is cut.
        m.text("Successfully built 0123\n", Time(3), &mut out);
        for _ in 0..1_000 {
            m.text(&chunk, Time(4), &mut out);
        }
        assert_eq!(m.partial.len(), PARTIAL_MAX);
    }

    #[test]
    fn stderr_is_unwrapped_from_its_escape_codes() {
        let mut m = ClassicMapper::default();
        let mut out = Vec::new();
        for t in [
            "Step 1/1 : RUN echo out && echo err >&2",
            "\n",
            " ---> Running in 0ab\n",
            "out\n",
            "\u{1b}[91merr\n\u{1b}[0m",
            "\u{1b}[0mRemoving intermediate container 0ab\n",
            " ---> 0123456789ab\n",
            "Successfully built 0123456789ab\n",
        ] {
            m.text(t, Time(0), &mut out);
        }
        let logs: Vec<(i64, &[u8])> = out
            .iter()
            .flat_map(|r| &r.logs)
            .map(|l| (l.stream, &l.msg[..]))
            .collect();
        assert_eq!(
            logs,
            [
                (STREAM_STDOUT, &b"out\n"[..]),
                (STREAM_STDERR, &b"err\n"[..])
            ]
        );
    }

    #[test]
    fn step_headers() {
        assert_eq!(
            parse_step("Step 2/3 : RUN echo a : b"),
            Some((2, 3, "RUN echo a : b"))
        );
        assert_eq!(parse_step("Step x/3 : RUN"), None);
        assert_eq!(parse_step("Stepping 1/2 : RUN"), None);
    }

    #[test]
    fn cached_steps_complete_cached_and_the_error_fails_the_running_step() {
        let mut m = ClassicMapper::default();
        let mut out = Vec::new();
        for (i, t) in [
            "Step 1/2 : FROM base",
            "\n",
            " ---> Using cache\n",
            " ---> 0123456789ab\n",
            "Step 2/2 : RUN false",
            "\n",
            " ---> Running in abc\n",
            "partial out",
        ]
        .iter()
        .enumerate()
        {
            m.text(t, Time(i as i128 * 1000), &mut out);
        }
        m.error(
            "The command '/bin/sh -c false' returned a non-zero code: 1",
            Time(9000),
            &mut out,
        );
        let vertexes: Vec<_> = out.iter().flat_map(|r| &r.vertexes).collect();
        assert_eq!(vertexes.len(), 4);
        assert!(vertexes[1].cached && vertexes[1].completed.is_some());
        assert_eq!(vertexes[3].name, "[2/2] RUN false");
        assert!(vertexes[3].error.contains("non-zero code: 1"));
        let logs: Vec<_> = out.iter().flat_map(|r| &r.logs).collect();
        assert_eq!(logs.len(), 1);
        assert_eq!(&logs[0].msg[..], b"partial out");
        assert!(m.is_classic());
    }
}

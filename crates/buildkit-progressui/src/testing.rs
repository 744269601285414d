//! Event constructors for the renderers' unit tests (times in milliseconds).

use buildkit_events::{
    Elapsed, Event, FailedVertex, LineEnd, LogLine, Outcome, OutcomeCounts, Progress, Stream,
    Summary, Time, VertexCompleted, VertexStarted, Warning,
};
use bytes::Bytes;
use docker_build::decode::{BuildEvent, BuildFailure, BuildSummary};

pub(crate) fn ms(t: i64) -> Time {
    Time(i128::from(t) * 1_000_000)
}

pub(crate) fn started(digest: &str, name: &str, t: i64) -> BuildEvent {
    BuildEvent::Vertex(Event::Started(VertexStarted {
        digest: digest.into(),
        name: name.into(),
        inputs: Vec::new(),
        started: ms(t),
        interval: 0,
    }))
}

pub(crate) fn completed(
    digest: &str,
    outcome: Outcome,
    start: i64,
    end: i64,
    duration: i64,
) -> BuildEvent {
    BuildEvent::Vertex(Event::Completed(VertexCompleted {
        digest: digest.into(),
        name: String::new(),
        outcome,
        started: ms(start),
        completed: ms(end),
        duration: Elapsed(u128::try_from(duration).unwrap() * 1_000_000),
        interval: 0,
    }))
}

pub(crate) fn log_piece(digest: &str, text: &str, end: LineEnd, t: i64) -> BuildEvent {
    BuildEvent::Vertex(Event::Log(LogLine {
        digest: digest.into(),
        stream: Stream::Stdout,
        bytes: Bytes::copy_from_slice(text.as_bytes()),
        end,
        timestamp: ms(t),
        clipped_notice: false,
    }))
}

pub(crate) fn log(digest: &str, text: &str, t: i64) -> BuildEvent {
    log_piece(digest, text, LineEnd::Newline, t)
}

pub(crate) fn progress(
    digest: &str,
    id: &str,
    current: i64,
    total: Option<i64>,
    t: i64,
    started: Option<i64>,
    completed: Option<i64>,
) -> BuildEvent {
    BuildEvent::Vertex(Event::Progress(Progress {
        digest: digest.into(),
        id: id.into(),
        action: String::new(),
        current,
        total,
        timestamp: ms(t),
        started: started.map(ms),
        completed: completed.map(ms),
    }))
}

pub(crate) fn warning(digest: &str, short: &str) -> BuildEvent {
    BuildEvent::Vertex(Event::Warning(Warning {
        digest: digest.into(),
        level: 1,
        short: Bytes::copy_from_slice(short.as_bytes()),
        detail: Vec::new(),
        url: String::new(),
        source_file: None,
        lines: Vec::new(),
        source_data: Bytes::new(),
    }))
}

/// A warning with its source: `file`'s `text` and the 1-based `lines`.
pub(crate) fn warning_at(
    digest: &str,
    short: &str,
    file: &str,
    text: &str,
    lines: (i32, i32),
) -> BuildEvent {
    BuildEvent::Vertex(Event::Warning(Warning {
        digest: digest.into(),
        level: 1,
        short: Bytes::copy_from_slice(short.as_bytes()),
        detail: vec![Bytes::from_static(b"Details of the rule.")],
        url: "https://docs.docker.com/go/rule/".into(),
        source_file: Some(file.into()),
        lines: vec![lines],
        source_data: Bytes::copy_from_slice(text.as_bytes()),
    }))
}

pub(crate) fn finished() -> BuildEvent {
    finished_with(None)
}

/// The end of a build whose step `digest` (`name`) failed with `error`.
pub(crate) fn finished_failed(digest: &str, name: &str, error: &str) -> BuildEvent {
    finished_with(Some(BuildFailure {
        message: format!("failed to solve: {error}"),
        code: None,
        step: Some(FailedVertex {
            digest: digest.into(),
            name: name.into(),
            error: error.into(),
            last_lines: Vec::new(),
        }),
    }))
}

fn finished_with(failure: Option<BuildFailure>) -> BuildEvent {
    BuildEvent::Finished(Box::new(BuildSummary {
        summary: Summary {
            counts: OutcomeCounts::default(),
            pending: 0,
            first_started: None,
            last_completed: None,
            wall_time: Elapsed(0),
            steps: Vec::new(),
            failed: None,
        },
        image_id: None,
        failure,
        input: docker_build::InputKind::Records,
        exported: false,
        canceled: false,
    }))
}

/// Feeds every recording of the corpus (`tests/data/corpus`), `passes` times over, through one
/// decoder (records included), as the memory stress input does (`benches/examples/big_stream.rs`):
/// digests and times repeat. Each event goes to `render`; `after_pass(n)` runs after pass `n`
/// (0-based). The decoder is finished after the last pass.
pub(crate) fn repeat_corpus(
    passes: usize,
    mut render: impl FnMut(&BuildEvent),
    mut after_pass: impl FnMut(usize),
) {
    use docker_build::decode::{BuildDecoder, DecoderConfig};
    let bodies: Vec<Bytes> = workspace_tests::corpus::all()
        .iter()
        .map(|r| Bytes::from(r.bytes()))
        .collect();
    let mut decoder = BuildDecoder::with_config(DecoderConfig {
        records: true,
        boundaries: true,
        ..DecoderConfig::default()
    });
    for pass in 0..passes {
        for body in &bodies {
            decoder.push(body.clone(), Time(0));
            while let Some(event) = decoder.poll_event() {
                render(&event);
            }
        }
        after_pass(pass);
    }
    decoder.finish(Time(0));
    while let Some(event) = decoder.poll_event() {
        render(&event);
    }
}

/// A record's vertex: `started` and `completed` in milliseconds, `error` empty for none.
pub(crate) fn vertex(
    digest: &str,
    name: &str,
    started: Option<i64>,
    completed: Option<i64>,
    error: &str,
) -> buildkit_proto::Vertex {
    buildkit_proto::Vertex {
        digest: digest.into(),
        name: name.into(),
        started: started.map(timestamp),
        completed: completed.map(timestamp),
        error: error.into(),
        ..Default::default()
    }
}

/// A record's log chunk of `digest` on stdout at `t` milliseconds.
pub(crate) fn vertex_log(digest: &str, data: &[u8], t: i64) -> buildkit_proto::VertexLog {
    buildkit_proto::VertexLog {
        vertex: digest.into(),
        timestamp: Some(timestamp(t)),
        stream: 1,
        msg: Bytes::copy_from_slice(data),
    }
}

/// A record's status (sub-task) of `digest`.
pub(crate) fn vertex_status(
    digest: &str,
    id: &str,
    t: i64,
    started: Option<i64>,
    completed: Option<i64>,
) -> buildkit_proto::VertexStatus {
    buildkit_proto::VertexStatus {
        id: id.into(),
        vertex: digest.into(),
        timestamp: Some(timestamp(t)),
        started: started.map(timestamp),
        completed: completed.map(timestamp),
        ..Default::default()
    }
}

fn timestamp(t: i64) -> buildkit_proto::Timestamp {
    buildkit_proto::Timestamp {
        seconds: t.div_euclid(1000),
        nanos: (t.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// The events a decoder configured for the tty view gives for `records`, in order, without
/// finishing the build.
pub(crate) fn decode_records(
    records: impl IntoIterator<Item = buildkit_proto::StatusResponse>,
) -> Vec<BuildEvent> {
    decode_records_for(crate::Mode::Tty, records)
}

/// [`decode_records`] with the decoder configured for `mode` (as bktrace configures it).
pub(crate) fn decode_records_for(
    mode: crate::Mode,
    records: impl IntoIterator<Item = buildkit_proto::StatusResponse>,
) -> Vec<BuildEvent> {
    use docker_build::decode::BuildDecoder;
    let mut decoder = BuildDecoder::with_config(mode.decoder_config());
    let mut events = Vec::new();
    for record in records {
        decoder.push_record(record);
        events.extend(std::iter::from_fn(|| decoder.poll_event()));
    }
    events
}

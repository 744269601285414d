//! The report's timeline as Chrome trace-event JSON (the format of `chrome://tracing`, read
//! by Perfetto too): <https://docs.google.com/document/d/1CvAClvFfyA5R-PhYUmn5OOQtYMH4h6I0nSsKchNAySU>.

use std::io::{self, Write};

use serde::Serialize;
use serde_json::json;

use super::Report;
use super::text::stage_label;

/// The one process of the trace.
const PID: u32 = 1;

/// One complete event (`"ph": "X"`): a run of a step.
#[derive(Serialize)]
struct Complete<'a> {
    name: &'a str,
    /// The step's outcome (`done`, `cached`, `failed`, …), so that cached steps can be told
    /// apart (and filtered) by category.
    cat: &'static str,
    ph: &'static str,
    /// Microseconds from the first start of the build.
    ts: f64,
    /// Microseconds.
    dur: f64,
    pid: u32,
    tid: usize,
    args: Args<'a>,
}

#[derive(Serialize)]
struct Args<'a> {
    digest: &'a str,
    outcome: &'static str,
    cached: bool,
    critical: bool,
    /// The step's whole duration (the sum of its runs), seconds.
    duration_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

/// Writes the trace: `{"traceEvents": [...]}` with a metadata event naming the process, one
/// row (`tid`) per stage in the order of the stages' first start (named by `"M"`
/// `thread_name` events, ordered by `thread_sort_index`), a last row for BuildKit's internal
/// and other steps, and one complete event (`"ph": "X"`, `ts`/`dur` in microseconds from the
/// build's first start) per merged run interval of each step, with `args.digest`; cached steps
/// have `cat` `"cached"` and `args.cached: true`.
pub fn write_chrome_trace(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    let rows: Vec<&str> = report.stages.iter().map(|s| s.stage.as_str()).collect();
    let other = rows.len() + 1;
    let tid = |stage: Option<&str>| {
        stage
            .and_then(|s| rows.iter().position(|r| *r == s))
            .map_or(other, |i| i + 1)
    };
    out.write_all(b"{\"traceEvents\":[\n")?;
    let mut first = true;
    let mut emit = |out: &mut dyn Write, value: &dyn erased::Json| -> io::Result<()> {
        if !first {
            out.write_all(b",\n")?;
        }
        first = false;
        value.write(out)
    };
    emit(
        out,
        &json!({"name": "process_name", "ph": "M", "pid": PID, "tid": 0,
                "args": {"name": "docker build"}}),
    )?;
    let mut names: Vec<(usize, String)> = rows
        .iter()
        .enumerate()
        .map(|(i, stage)| (i + 1, format!("stage {}", stage_label(stage))))
        .collect();
    if report
        .timeline
        .iter()
        .any(|s| tid(s.stage.as_deref()) == other)
    {
        names.push((other, "internal and other steps".to_string()));
    }
    for (tid, name) in &names {
        emit(
            out,
            &json!({"name": "thread_name", "ph": "M", "pid": PID, "tid": tid,
                    "args": {"name": name}}),
        )?;
        emit(
            out,
            &json!({"name": "thread_sort_index", "ph": "M", "pid": PID, "tid": tid,
                    "args": {"sort_index": tid}}),
        )?;
    }
    for step in &report.timeline {
        let label = step.outcome.label();
        let error = step.error.as_deref();
        for (start, end) in &step.intervals {
            let event = Complete {
                name: &step.name,
                cat: label,
                ph: "X",
                ts: micros(start.0),
                dur: micros(end.0.saturating_sub(start.0)),
                pid: PID,
                tid: tid(step.stage.as_deref()),
                args: Args {
                    digest: &step.digest,
                    outcome: label,
                    cached: label == "cached",
                    critical: step.critical,
                    duration_s: step.duration.as_secs_f64(),
                    error,
                },
            };
            emit(out, &event)?;
        }
    }
    out.write_all(b"\n]}\n")
}

/// Nanoseconds as microseconds.
fn micros(nanos: u128) -> f64 {
    nanos as f64 / 1000.0
}

/// Serializable values behind one `dyn` (serde's `Serialize` is not object safe).
mod erased {
    use std::io::{self, Write};

    pub(super) trait Json {
        fn write(&self, out: &mut dyn Write) -> io::Result<()>;
    }

    impl<T: serde::Serialize> Json for T {
        fn write(&self, out: &mut dyn Write) -> io::Result<()> {
            serde_json::to_writer(out, self).map_err(io::Error::from)
        }
    }
}

//! `bktrace history ls` and `bktrace history logs`: the daemon's build history, through
//! BuildKit's Control API (`docker_build::control`).

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use buildkit_progressui::Render;
use buildkit_progressui::format::rfc3339;
use buildkit_proto::Timestamp;
use buildkit_proto::control::BuildHistoryRecord;
use docker_build::Time;
use docker_build::connection::Daemon;
use docker_build::control::{BuildState, BuildkitHost, Control, HistoryRequest, build_name};
use docker_build::decode::{BuildDecoder, BuildEvent};

use super::{BuildOutcome, after_output, conclude, renderer, source_location, wall_clock};
use crate::error::CliError;
use crate::{HistoryLogsArgs, HistoryLsArgs};

/// Connects to the Control API: of the standalone buildkitd named by `BUILDKIT_HOST` when it
/// is set (as `buildctl` finds it), else of the Docker daemon (found as the docker CLI finds
/// it).
pub(crate) async fn control() -> Result<Control, CliError> {
    if let Some(address) = std::env::var("BUILDKIT_HOST")
        .ok()
        .filter(|v| !v.is_empty())
    {
        let host = BuildkitHost::parse(&address).map_err(CliError::BuildkitHost)?;
        return Control::connect_buildkit(&host)
            .await
            .map_err(CliError::Control);
    }
    let daemon = Daemon::connect().await.map_err(CliError::Connect)?;
    daemon.control().await.map_err(CliError::Control)
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)
}

/// One row of `history ls`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row {
    pub(crate) build_ref: String,
    pub(crate) name: String,
    pub(crate) state: BuildState,
    pub(crate) created: Option<Timestamp>,
    pub(crate) completed: Option<Timestamp>,
    pub(crate) steps_total: i32,
    pub(crate) steps_cached: i32,
    pub(crate) steps_completed: i32,
    pub(crate) warnings: i32,
}

impl Row {
    pub(crate) fn of(record: &BuildHistoryRecord) -> Self {
        Row {
            build_ref: record.r#ref.clone(),
            name: build_name(&record.frontend_attrs),
            state: BuildState::of(record),
            created: record.created_at,
            completed: record.completed_at,
            steps_total: record.num_total_steps,
            steps_cached: record.num_cached_steps,
            steps_completed: record.num_completed_steps,
            warnings: record.num_warnings,
        }
    }

    /// Seconds from creation to completion (`None` while running).
    fn duration(&self) -> Option<f64> {
        let (created, completed) = (self.created?, self.completed?);
        Some((completed.unix_nanos() - created.unix_nanos()) as f64 / 1e9)
    }

    fn json(&self) -> serde_json::Value {
        let time = |t: Option<Timestamp>| t.map(|t| rfc3339(Time(t.unix_nanos())));
        serde_json::json!({
            "ref": self.build_ref,
            "name": self.name,
            "status": self.state.as_str(),
            "created": time(self.created),
            "completed": time(self.completed),
            "duration_s": self.duration().map(|d| (d * 1000.0).round() / 1000.0),
            "steps_total": self.steps_total,
            "steps_cached": self.steps_cached,
            "steps_completed": self.steps_completed,
            "warnings": self.warnings,
        })
    }
}

/// A `--filter KEY=VALUE` / `KEY!=VALUE` on `ref`, `name` (substring) or `status` (exact), as
/// `docker buildx history ls --filter` takes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Filter {
    key: FilterKey,
    negate: bool,
    value: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FilterKey {
    Ref,
    Name,
    Status,
}

impl Filter {
    pub(crate) fn parse(text: &str) -> Result<Self, CliError> {
        let invalid = || CliError::Filter {
            filter: text.to_string(),
        };
        let (key, negate, value) = match text.split_once("!=") {
            Some((k, v)) => (k, true, v),
            None => {
                let (k, v) = text.split_once('=').ok_or_else(invalid)?;
                (k, false, v)
            }
        };
        let key = match key.trim() {
            "ref" => FilterKey::Ref,
            "name" => FilterKey::Name,
            "status" => FilterKey::Status,
            _ => return Err(invalid()),
        };
        Ok(Filter {
            key,
            negate,
            value: value.trim().to_string(),
        })
    }

    pub(crate) fn matches(&self, row: &Row) -> bool {
        let hit = match self.key {
            FilterKey::Ref => row.build_ref.contains(&self.value),
            FilterKey::Name => row.name.contains(&self.value),
            FilterKey::Status => row.state.as_str() == self.value,
        };
        hit != self.negate
    }
}

/// `bktrace history ls`.
pub(crate) fn ls(args: HistoryLsArgs) -> Result<ExitCode, CliError> {
    let filters = args
        .filter
        .iter()
        .map(|f| Filter::parse(f))
        .collect::<Result<Vec<_>, _>>()?;
    let rows = runtime()?.block_on(async {
        let control = control().await?;
        list(&control).await
    })?;
    let rows: Vec<Row> = rows
        .into_iter()
        .filter(|row| filters.iter().all(|f| f.matches(row)))
        .collect();
    let mut out = BufWriter::new(io::stdout().lock());
    if args.json {
        for row in &rows {
            writeln!(out, "{}", row.json()).map_err(CliError::Output)?;
        }
    } else {
        write_table(&mut out, &rows).map_err(CliError::Output)?;
    }
    out.flush().map_err(CliError::Output)?;
    Ok(ExitCode::SUCCESS)
}

/// Every record in the history, newest first.
pub(crate) async fn list(control: &Control) -> Result<Vec<Row>, CliError> {
    let mut history = control
        .history(HistoryRequest::existing())
        .await
        .map_err(CliError::Request)?;
    let mut rows = Vec::new();
    while let Some(event) = history.next().await {
        let event = event.map_err(CliError::Request)?;
        if let Some(record) = &event.record {
            rows.push(Row::of(record));
        }
    }
    rows.sort_by_key(|row| std::cmp::Reverse(row.created.map(|t| t.unix_nanos())));
    Ok(rows)
}

fn write_table(out: &mut impl Write, rows: &[Row]) -> io::Result<()> {
    let header = [
        "BUILD ID", "NAME", "STATUS", "CREATED", "DURATION", "STEPS", "CACHED", "WARNINGS",
    ];
    let cells: Vec<[String; 8]> = rows
        .iter()
        .map(|row| {
            [
                row.build_ref.clone(),
                row.name.clone(),
                row.state.as_str().to_string(),
                row.created
                    .map(|t| rfc3339_seconds(Time(t.unix_nanos())))
                    .unwrap_or_default(),
                row.duration()
                    .map(|d| format!("{d:.1}s"))
                    .unwrap_or_else(|| "-".to_string()),
                format!("{}/{}", row.steps_completed, row.steps_total),
                row.steps_cached.to_string(),
                row.warnings.to_string(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |out: &mut dyn Write, cells: &[&str]| -> io::Result<()> {
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<w$}   "));
            }
        }
        writeln!(out, "{}", text.trim_end())
    };
    line(out, &header)?;
    for row in &cells {
        let refs: Vec<&str> = row.iter().map(String::as_str).collect();
        line(out, &refs)?;
    }
    Ok(())
}

/// `2026-12-02T05:48:43Z`: RFC 3339 to the second.
fn rfc3339_seconds(t: Time) -> String {
    let full = rfc3339(t);
    match full.split_once('.') {
        Some((seconds, _)) => format!("{seconds}Z"),
        None => full,
    }
}

/// `bktrace history logs REF`.
pub(crate) fn logs(args: HistoryLogsArgs) -> Result<ExitCode, CliError> {
    runtime()?.block_on(async {
        let control = control().await?;
        let mut records = control
            .history(HistoryRequest::existing().build_ref(&args.build_ref))
            .await
            .map_err(CliError::Request)?;
        let mut record = None;
        while let Some(event) = records.next().await {
            let event = event.map_err(CliError::Request)?;
            if let Some(r) = event.record.filter(|r| r.r#ref == args.build_ref) {
                record = Some(r);
            }
        }
        let Some(record) = record else {
            return Err(CliError::NoSuchBuild {
                build_ref: args.build_ref.clone(),
            });
        };
        let running = BuildState::of(&record) == BuildState::Running;
        if running && !args.follow {
            return Err(CliError::StillRunning {
                build_ref: args.build_ref.clone(),
            });
        }
        let mut renderer = renderer(args.progress.progress, running, Box::new(io::stdout()));
        let mut decoder = BuildDecoder::with_config(renderer.mode().decoder_config());
        let mut stream = control
            .status(&args.build_ref)
            .await
            .map_err(CliError::Request)?;
        let mut outcome = BuildOutcome::default();
        // A replay of a finished build renders at record time (Time(0), as `bktrace replay`);
        // a followed build at the wall clock.
        let now = || if running { wall_clock() } else { Time(0) };
        while let Some(next) = stream.next().await {
            let response = next.map_err(CliError::Request)?;
            decoder.push_record(response);
            drain(&mut decoder, &mut renderer, &mut outcome, now())?;
        }
        decoder.finish(now());
        drain(&mut decoder, &mut renderer, &mut outcome, now())?;
        // Where the error points in the Dockerfile, for the GitHub annotation.
        let failure_at = match record.external_error.is_some() {
            true => control
                .error_sources(&record)
                .await
                .unwrap_or_default()
                .iter()
                .find_map(|s| source_location(s, None)),
            false => None,
        };
        after_output(&mut renderer, &outcome, failure_at.as_ref(), None)?;
        renderer.into_inner().flush().map_err(CliError::Output)?;
        // The history knows how the build ended even where the progress does not say.
        if let Some(error) = history_error(&control, &args.build_ref).await {
            eprintln!("error: build failed: {error}");
            return Ok(ExitCode::FAILURE);
        }
        Ok(conclude(&outcome))
    })
}

/// The error the history records for a finished build, if any.
async fn history_error(control: &Control, build_ref: &str) -> Option<String> {
    let mut records = control
        .history(HistoryRequest::existing().build_ref(build_ref))
        .await
        .ok()?;
    let mut error = None;
    while let Some(Ok(event)) = records.next().await {
        if let Some(record) = event.record.filter(|r| r.r#ref == build_ref) {
            error = record.error.map(|e| e.message);
        }
    }
    error
}

fn drain(
    decoder: &mut BuildDecoder,
    renderer: &mut impl Render,
    outcome: &mut BuildOutcome,
    now: Time,
) -> Result<(), CliError> {
    while let Some(event) = decoder.poll_event() {
        outcome.note(&event);
        if let BuildEvent::BadLine(e) = &event {
            eprintln!("warning: {}", crate::error::one_line(e));
        }
        renderer.event(&event, now).map_err(CliError::Output)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, state: BuildState) -> Row {
        Row {
            build_ref: "abc123".into(),
            name: name.into(),
            state,
            created: Some(Timestamp {
                seconds: 1_700_000_000,
                nanos: 0,
            }),
            completed: Some(Timestamp {
                seconds: 1_700_000_002,
                nanos: 500_000_000,
            }),
            steps_total: 5,
            steps_cached: 1,
            steps_completed: 5,
            warnings: 0,
        }
    }

    #[test]
    fn filters_match_like_buildx() {
        let r = row("web (test)", BuildState::Error);
        assert!(Filter::parse("status=error").unwrap().matches(&r));
        assert!(!Filter::parse("status=err").unwrap().matches(&r));
        assert!(Filter::parse("name=web").unwrap().matches(&r));
        assert!(!Filter::parse("name!=web").unwrap().matches(&r));
        assert!(Filter::parse("ref=c12").unwrap().matches(&r));
        for bad in ["status", "color=red", "=x"] {
            let err = Filter::parse(bad).unwrap_err();
            assert!(err.to_string().contains(bad), "{err}");
        }
    }

    #[test]
    fn json_rows_have_the_documented_keys() {
        let v = row("web", BuildState::Completed).json();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        let mut want = [
            "ref",
            "name",
            "status",
            "created",
            "completed",
            "duration_s",
            "steps_total",
            "steps_cached",
            "steps_completed",
            "warnings",
        ];
        want.sort();
        let mut keys = keys;
        keys.sort();
        assert_eq!(keys, want);
        assert_eq!(v["duration_s"], 2.5);
        assert_eq!(v["status"], "completed");
        assert_eq!(v["created"], "2023-11-14T22:13:20Z");
    }

    #[test]
    fn the_table_aligns_columns() {
        let mut out = Vec::new();
        write_table(&mut out, &[row("web", BuildState::Completed)]).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("BUILD ID   NAME   STATUS"), "{text}");
        assert!(
            lines[1].starts_with("abc123     web    completed   2023-11-14T22:13:20Z   2.5s"),
            "{text}"
        );
    }
}

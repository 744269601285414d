//! The report as a short summary for a terminal.

use std::io::{self, Write};

use buildkit_events::Elapsed;

use super::Report;

/// A share as a whole percentage, e.g. `43%`.
pub(super) fn percent(share: f64) -> String {
    format!("{:.0}%", share * 100.0)
}

/// `d` in seconds with two decimals, `4.20s` (one more than BuildKit's `DONE 4.2s`: a report
/// compares steps, many of which take less than a tenth of a second).
pub(super) fn secs(d: Elapsed) -> String {
    format!("{d:.2}")
}

/// Bytes with a binary unit: `512 B`, `5.0 KiB`, `1.2 MiB`.
pub(super) fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `4 done, 3 cached, 1 failed`: the non-zero counts (`0 steps` when there are none).
pub(super) fn outcome_counts(report: &Report) -> String {
    let c = &report.steps;
    let parts: Vec<String> = [
        (c.done, "done"),
        (c.cached, "cached"),
        (c.failed, "failed"),
        (c.canceled, "canceled"),
        (c.interrupted, "interrupted"),
    ]
    .into_iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{n} {what}"))
    .collect();
    parts.join(", ")
}

/// One line of text: control characters (a log line's `\r`, ANSI escapes) shown as `?`, so
/// that the summary cannot move the terminal's cursor.
pub(super) fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Writes the summary: totals, the slowest steps, the stages, the critical path with each
/// step's duration and share of the wall time, and the failure with its last lines.
///
/// ```text
/// Build: 12.30s wall time, 9 steps (4 done, 3 cached, 1 failed, 1 canceled), 2 pending
/// Cache: 43% of the steps that ran were cached · 1 warning · 5.0 KiB of logs
///
/// Slowest steps:
///    4.20s  [build 2/3] RUN make
/// …
/// ```
pub fn write_text(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    let c = &report.steps;
    write!(
        out,
        "Build: {} wall time, {} step{}",
        secs(report.wall_time),
        c.total,
        if c.total == 1 { "" } else { "s" }
    )?;
    if c.total > 0 {
        write!(out, " ({})", outcome_counts(report))?;
    }
    if c.pending > 0 {
        write!(out, ", {} pending", c.pending)?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "Cache: {} of the steps that ran were cached · {} warning{} · {} of logs",
        percent(report.cache_ratio),
        report.warnings,
        if report.warnings == 1 { "" } else { "s" },
        bytes(report.log_bytes)
    )?;
    if let Some(error) = daemon_error(report) {
        writeln!(out, "Error: {}", clean(&one_line(error)))?;
    }

    if !report.slowest.is_empty() {
        writeln!(out, "\nSlowest steps:")?;
        for step in &report.slowest {
            writeln!(out, "  {:>7}  {}", secs(step.duration), clean(&step.name))?;
        }
    }

    if !report.stages.is_empty() {
        writeln!(out, "\nStages:")?;
        let width = report
            .stages
            .iter()
            .map(|s| stage_label(&s.stage).chars().count())
            .max()
            .unwrap_or(0);
        for stage in &report.stages {
            writeln!(
                out,
                "  {:<width$}  {:>3} step{}  {:>7}  ({} → {})",
                clean(&stage_label(&stage.stage)),
                stage.steps,
                if stage.steps == 1 { " " } else { "s" },
                secs(stage.duration),
                secs(stage.start),
                secs(stage.end),
            )?;
        }
    }

    writeln!(
        out,
        "\nCritical path: {} ({} of the wall time)",
        secs(report.critical_path_time),
        percent(share(report.critical_path_time, report.wall_time))
    )?;
    for step in &report.critical_path {
        writeln!(
            out,
            "  {:>7} {:>4}  {}",
            secs(step.duration),
            percent(step.share),
            clean(&step.name)
        )?;
    }

    if let Some(failed) = &report.failed {
        writeln!(out, "\nFailed: {}", clean(&failed.name))?;
        writeln!(out, "  {}", clean(&one_line(&failed.error)))?;
        for line in &failed.last_lines {
            writeln!(out, "  > {}", clean(line))?;
        }
    }
    Ok(())
}

/// A stage's name for people: `(single stage)` for the `[N/M]` steps of a one-stage build.
pub(super) fn stage_label(stage: &str) -> String {
    if stage.is_empty() {
        "(single stage)".to_string()
    } else {
        stage.to_string()
    }
}

/// `part / whole`, 0 when `whole` is 0.
pub(super) fn share(part: Elapsed, whole: Elapsed) -> f64 {
    if whole.0 == 0 {
        0.0
    } else {
        part.as_secs_f64() / whole.as_secs_f64()
    }
}

/// `text` with its runs of white space (newlines too) made one space.
pub(super) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The daemon's error of a failed build, unless it only repeats the failed step's error
/// (shown with the step).
pub(super) fn daemon_error(report: &Report) -> Option<&str> {
    let error = report.build_error.as_deref()?;
    match &report.failed {
        Some(failed) if one_line(error).contains(&one_line(&failed.error)) => None,
        _ => Some(error),
    }
}

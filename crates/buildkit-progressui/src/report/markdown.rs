//! The report as GitHub-flavoured Markdown, fit for `$GITHUB_STEP_SUMMARY`.

use std::io::{self, Write};

use super::Report;
use super::text::{
    bytes, daemon_error, one_line, outcome_counts, percent, secs, share, stage_label,
};

/// Text made literal in Markdown: the ASCII punctuation Markdown reads as syntax inline (`|`
/// of a table, a backtick of a code span, `*`, `_`, `~`, `[`, `]`, `<`, `>`, `\`), `&` that
/// could start an entity, and `#`, `-`, `+` at the start (a heading or a list) are
/// backslash-escaped (CommonMark allows it for any ASCII punctuation); white space runs
/// (newlines too) become one space, so a cell stays one table cell.
pub(super) fn escape(text: &str) -> String {
    let text = one_line(text);
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut first = true;
    while let Some(c) = chars.next() {
        let syntax = match c {
            '\\' | '`' | '*' | '_' | '~' | '[' | ']' | '<' | '>' | '|' => true,
            '&' => chars
                .peek()
                .is_some_and(|n| n.is_ascii_alphanumeric() || *n == '#'),
            '#' | '-' | '+' => first,
            _ => false,
        };
        first = false;
        if syntax {
            out.push('\\');
            out.push(c);
        } else if c.is_control() {
            out.push(' ');
        } else {
            out.push(c);
        }
    }
    out
}

/// A code fence longer than any run of backticks in `lines` (CommonMark: the closing fence
/// must be at least as long as the opening one, so content cannot close it).
fn fence(lines: &[String]) -> String {
    let longest = lines
        .iter()
        .map(|l| l.split(|c| c != '`').map(str::len).max().unwrap_or(0))
        .max()
        .unwrap_or(0);
    "`".repeat((longest + 1).max(3))
}

/// Writes the summary: a table of the totals, a table of the steps (outcome, duration, start,
/// whether on the critical path), the critical path, and the failing step with its last lines
/// in a fenced block.
pub fn write_markdown(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    let c = &report.steps;
    writeln!(out, "## Build report\n")?;
    writeln!(out, "| | |")?;
    writeln!(out, "|---|---|")?;
    writeln!(out, "| Wall time | {} |", secs(report.wall_time))?;
    let mut steps = c.total.to_string();
    if c.total > 0 {
        steps.push_str(&format!(" ({})", outcome_counts(report)));
    }
    if c.pending > 0 {
        steps.push_str(&format!(", {} pending", c.pending));
    }
    writeln!(out, "| Steps | {steps} |")?;
    writeln!(out, "| Cache ratio | {} |", percent(report.cache_ratio))?;
    writeln!(out, "| Warnings | {} |", report.warnings)?;
    writeln!(out, "| Log output | {} |", bytes(report.log_bytes))?;
    writeln!(
        out,
        "| Critical path | {} ({} of the wall time) |",
        secs(report.critical_path_time),
        percent(share(report.critical_path_time, report.wall_time))
    )?;
    if let Some(error) = daemon_error(report) {
        writeln!(out, "| Error | {} |", escape(error))?;
    }

    if !report.timeline.is_empty() {
        writeln!(out, "\n### Steps\n")?;
        writeln!(
            out,
            "| # | Step | Stage | Outcome | Duration | Start | Critical |"
        )?;
        writeln!(out, "|---:|---|---|---|---:|---:|:---:|")?;
        for (i, step) in report.timeline.iter().enumerate() {
            writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                i + 1,
                escape(&step.name),
                step.stage
                    .as_deref()
                    .map_or(String::new(), |s| escape(&stage_label(s))),
                step.outcome.label(),
                secs(step.duration),
                secs(step.start),
                if step.critical { "●" } else { "" }
            )?;
        }
    }

    if !report.stages.is_empty() {
        writeln!(out, "\n### Stages\n")?;
        writeln!(out, "| Stage | Steps | Busy | Start | End |")?;
        writeln!(out, "|---|---:|---:|---:|---:|")?;
        for stage in &report.stages {
            writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                escape(&stage_label(&stage.stage)),
                stage.steps,
                secs(stage.duration),
                secs(stage.start),
                secs(stage.end)
            )?;
        }
    }

    writeln!(
        out,
        "\n### Critical path: {}\n",
        secs(report.critical_path_time)
    )?;
    if report.critical_path.is_empty() {
        writeln!(out, "No step took any time.")?;
    }
    for (i, step) in report.critical_path.iter().enumerate() {
        writeln!(
            out,
            "{}. {} — {} ({})",
            i + 1,
            escape(&step.name),
            secs(step.duration),
            percent(step.share)
        )?;
    }

    if let Some(failed) = &report.failed {
        writeln!(out, "\n### Failed: {}\n", escape(&failed.name))?;
        writeln!(out, "{}", escape(&failed.error))?;
        if !failed.last_lines.is_empty() {
            let fence = fence(&failed.last_lines);
            writeln!(out, "\n{fence}text")?;
            for line in &failed.last_lines {
                // Inside a fence nothing is syntax; only control characters are replaced.
                let line: String = line
                    .chars()
                    .map(|c| if c.is_control() && c != '\t' { '?' } else { c })
                    .collect();
                writeln!(out, "{line}")?;
            }
            writeln!(out, "{fence}")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_keeps_table_cells_and_code_spans_literal() {
        assert_eq!(escape("RUN a | b `c`"), "RUN a \\| b \\`c\\`");
        assert_eq!(escape("x\ny\r\tz"), "x y z");
        assert_eq!(escape("<b>&amp; a && b"), "\\<b\\>\\&amp; a && b");
        assert_eq!(escape("# not-a-heading"), "\\# not-a-heading");
        assert_eq!(fence(&["a ``` b".into()]), "````");
        assert_eq!(fence(&["plain".into()]), "```");
    }
}

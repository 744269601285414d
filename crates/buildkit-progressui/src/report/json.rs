//! The report as one JSON object: the `--format json` schema (workspace README), which the
//! HTML report embeds.

use std::io::{self, Write};

use super::Report;

/// Writes `report` as one JSON object and a newline: the keys of [`Report`]'s fields in
/// their order (`version`, `wall_time_s`, `steps`, …, `timeline`, `build_error`); times in
/// seconds. The schema is documented in the workspace README and only grows.
pub fn write_json(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    serde_json::to_writer(&mut *out, report).map_err(io::Error::from)?;
    out.write_all(b"\n")
}

//! `bktrace report`: the report of a recorded build, and writing a report to a file or
//! standard output (also for `bktrace build --report`). The report itself is computed and
//! written by `buildkit_progressui::report`; this module reads the recording and opens the
//! output.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;

use buildkit_progressui::report::{self, Format, Report, ReportBuilder};

use super::replay::{REPLAY_CHUNK, open_recording, replay_with, warn_bad_lines};
use crate::error::CliError;
use crate::{ReportArgs, ReportFormat};

/// The library's format of a `--format` value.
pub(crate) fn library_format(format: ReportFormat) -> Format {
    match format {
        ReportFormat::Text => Format::Text,
        ReportFormat::Markdown => Format::Markdown,
        ReportFormat::Json => Format::Json,
        ReportFormat::ChromeTrace => Format::ChromeTrace,
    }
}

/// Writes `report` in `format` to the file `path`, or to standard output when `None`.
pub(crate) fn write_report(
    report: &Report,
    format: ReportFormat,
    path: Option<&Path>,
) -> Result<(), CliError> {
    let format = library_format(format);
    match path {
        None => {
            let mut out = BufWriter::new(io::stdout().lock());
            report::write(report, format, &mut out)
                .and_then(|()| out.flush())
                .map_err(CliError::Output)
        }
        Some(path) => {
            let failed = |source| CliError::Report {
                path: path.to_path_buf(),
                source,
            };
            let mut out = BufWriter::new(File::create(path).map_err(failed)?);
            report::write(report, format, &mut out)
                .and_then(|()| out.flush())
                .map_err(failed)
        }
    }
}

/// `bktrace report [FILE|-] --format … [-o OUT]`. Exits 0 when the report is written, whether
/// the build succeeded or not; a recording damaged part way gets the report of what came
/// before the damage, then its error (exit 1).
pub(crate) fn run(args: ReportArgs) -> Result<ExitCode, CliError> {
    let input = open_recording(&args.file)?;
    let mut builder = ReportBuilder::new();
    let replayed = replay_with(input, false, REPLAY_CHUNK, |event| {
        builder.apply(event);
        Ok(())
    });
    if let Ok(outcome) = &replayed {
        warn_bad_lines(outcome);
    }
    if let Err(
        e @ (super::replay::ReplayError::UnknownFormat | super::replay::ReplayError::Read(_)),
    ) = replayed
    {
        return Err(e.into());
    }
    write_report(&builder.finish(), args.format, args.output.as_deref())?;
    replayed?;
    Ok(ExitCode::SUCCESS)
}

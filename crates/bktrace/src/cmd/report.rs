//! `bktrace report`: the report of a recorded build, and writing a report to a file or
//! standard output (also for `bktrace build --report`). The report itself is computed and
//! written by `buildkit_progressui::report`; this module reads the recording and opens the
//! output.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;

use buildkit_progressui::report::{self, Format, Report, ReportBuilder};
use docker_build::DecoderConfig;

use super::replay::{REPLAY_CHUNK, open_recording, replay_with, require_build, warn_bad_lines};
use crate::error::CliError;
use crate::{ReportArgs, ReportFormat};

/// The library's format of a `--format` value.
pub(crate) fn library_format(format: ReportFormat) -> Format {
    match format {
        ReportFormat::Text => Format::Text,
        ReportFormat::Markdown => Format::Markdown,
        ReportFormat::Json => Format::Json,
        ReportFormat::ChromeTrace => Format::ChromeTrace,
        ReportFormat::Html => Format::Html,
    }
}

/// Writes `report` in `format` to the file `path`, or to standard output when `None`; `title`
/// names the build in the HTML page.
pub(crate) fn write_report(
    report: &Report,
    format: ReportFormat,
    path: Option<&Path>,
    title: &str,
) -> Result<(), CliError> {
    let format = library_format(format);
    let write = |out: &mut dyn Write| match format {
        Format::Html => report::write_html_report(report, title, out),
        other => report::write(report, other, out),
    };
    match path {
        None => {
            let mut out = BufWriter::new(io::stdout().lock());
            write(&mut out)
                .and_then(|()| out.flush())
                .map_err(CliError::Output)
        }
        Some(path) => {
            let failed = |source| CliError::Report {
                path: path.to_path_buf(),
                source,
            };
            let mut out = BufWriter::new(File::create(path).map_err(failed)?);
            write(&mut out).and_then(|()| out.flush()).map_err(failed)
        }
    }
}

/// `bktrace report [FILE|-] --format … [-o OUT]`. Exits 0 when the report is written, whether
/// the build succeeded or not; a recording damaged part way gets the report of what came
/// before the damage, then its error (exit 1); an input that holds no build gets no report
/// (exit 1, `no build records found in …`).
pub(crate) fn run(args: ReportArgs) -> Result<ExitCode, CliError> {
    let input = open_recording(&args.file)?;
    let mut builder = ReportBuilder::new();
    let replayed = replay_with(input, DecoderConfig::default(), REPLAY_CHUNK, |event| {
        builder.apply(event);
        Ok(())
    });
    if let Ok(outcome) = &replayed {
        warn_bad_lines(outcome);
        require_build(outcome, &args.file)?;
    }
    if let Err(
        e @ (super::replay::ReplayError::UnknownFormat | super::replay::ReplayError::Read(_)),
    ) = replayed
    {
        return Err(e.into());
    }
    let title = if args.file == Path::new("-") {
        "Build report".to_string()
    } else {
        let name = args.file.file_name().unwrap_or(args.file.as_os_str());
        format!("Build report: {}", name.to_string_lossy())
    };
    write_report(
        &builder.finish(),
        args.format,
        args.output.as_deref(),
        &title,
    )?;
    replayed?;
    Ok(ExitCode::SUCCESS)
}

//! `bktrace build`: send a directory to the daemon and show the build's progress.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use buildkit_progressui::Render;
use buildkit_progressui::report::{Report, ReportBuilder, write_markdown};
use docker_build::connection::Daemon;
use docker_build::control::source_snippet;
use docker_build::decode::{BuildDecoder, BuildEvent};
use docker_build::{
    BuildOptions, Builder, ContextTransport, SessionMode, UploadProgress, build_with_progress,
};
use docker_context::Context;

use buildkit_events::StepName;
use buildkit_progressui::Mode;
use buildkit_progressui::github::Location;
use buildkit_proto::control::ErrorSource;

use super::report::write_report;
use super::{
    BuildOutcome, after_output, append_step_summary, conclude, key_values, progress_mode, renderer,
    source_location, stderr_mode, stderr_renderer, wall_clock,
};
use crate::error::{CliError, one_line};
use crate::{BuildArgs, ContextTransportArg, ReportFormat};

/// `bktrace build`.
pub(crate) fn run(args: BuildArgs) -> Result<ExitCode, CliError> {
    // A tar on stdout: stdout carries nothing else (the progress goes to stderr), and never a
    // terminal (as buildx refuses).
    let output_to_stdout = args.outputs.iter().any(docker_build::Output::is_stdout);
    if output_to_stdout && io::stdout().is_terminal() {
        return Err(CliError::TarToTerminal);
    }
    let options = BuildOptions {
        tags: args.tags.clone(),
        build_args: key_values("--build-arg", &args.build_args, true)?,
        target: args.target.clone(),
        no_cache: args.no_cache,
        pull: args.pull,
        labels: key_values("--label", &args.labels, false)?,
        platform: args.platform.clone(),
        builder: if args.classic {
            Builder::Classic
        } else {
            Builder::BuildKit
        },
        decoder: if output_to_stdout {
            stderr_mode(args.progress.progress)
        } else {
            progress_mode(args.progress.progress)
        }
        .decoder_config(),
        build_name: (!args.classic)
            .then(|| args.name.clone().unwrap_or_else(|| default_name(&args.dir))),
        secrets: args.secrets.clone(),
        ssh: args.ssh.clone(),
        // A session whenever the daemon takes one: it serves the registry credentials of the
        // docker CLI's configuration, so private base images pull with no flag.
        session: SessionMode::Prefer,
        // By default the context goes through the session when the daemon takes one, as buildx
        // sends it.
        context_transport: match args.context_transport {
            ContextTransportArg::Auto => ContextTransport::Auto,
            ContextTransportArg::Session => ContextTransport::Session,
            ContextTransportArg::Tar => ContextTransport::Tar,
        },
        outputs: args.outputs.clone(),
    };
    // The Dockerfile as the repository names it, for annotations and the step-name mapping.
    let dockerfile_path = args
        .file
        .clone()
        .unwrap_or_else(|| args.dir.join("Dockerfile"));
    let (dir, dockerfile) = match &args.file {
        // Like the Docker CLI, -f is relative to the current directory, not to DIR.
        Some(file) => (absolute(&args.dir), Some(absolute(file))),
        None => (args.dir.clone(), None),
    };
    // A Dockerfile outside the context: a session serves it from its own folder, the tar
    // holds it as `.dockerfile.<hex>`.
    let context = match &dockerfile {
        Some(file) => Context::builder(&dir).dockerfile(file).plan()?,
        None => Context::from_dir(&dir)?,
    };
    // Shown only if the context goes as the tar (known once the build has started).
    let tar_warning = dockerfile_in_tar_warning(&context, &options, &dockerfile_path);
    let record = match &args.record {
        Some(path) => Some(BufWriter::new(File::create(path).map_err(|source| {
            CliError::Record {
                path: path.clone(),
                source,
            }
        })?)),
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)?;
    // With the output's archive on stdout, the progress goes to stderr.
    let renderer = if output_to_stdout {
        stderr_renderer(args.progress.progress, true)
    } else {
        renderer(args.progress.progress, true, Box::new(io::stdout()))
    };
    runtime.block_on(build_and_render(
        context,
        options,
        renderer,
        record,
        &dockerfile_path,
        tar_warning,
        &args.reports,
    ))
}

async fn build_and_render(
    context: Context,
    options: BuildOptions,
    mut renderer: buildkit_progressui::Renderer<Box<dyn std::io::Write>>,
    record: Option<BufWriter<File>>,
    dockerfile: &Path,
    tar_warning: Option<String>,
    reports: &[(ReportFormat, PathBuf)],
) -> Result<ExitCode, CliError> {
    let daemon = Daemon::connect().await.map_err(CliError::Connect)?;
    // The context's upload is shown while the request starts (the classic builder answers
    // only once the whole context is in) and while the build runs.
    let upload = UploadProgress::new();
    let mut signals = Signals::new()?;
    let mut stream = {
        let starting = build_with_progress(&daemon, context, &options, upload.clone());
        tokio::pin!(starting);
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
        loop {
            tokio::select! {
                started = &mut starting => break started?,
                _ = tick.tick() => show_upload(&upload, &mut renderer, false)?,
                signal = signals.next() => {
                    // Interrupted while the context uploads (the classic daemon answers only
                    // once all of it is in): the request is dropped on return, and the output
                    // ends as for any interrupted build, with the build's end.
                    show_upload(&upload, &mut renderer, false)?;
                    let mut decoder = BuildDecoder::with_config(options.decoder.clone());
                    decoder.cancel(wall_clock());
                    while let Some(event) = decoder.poll_event() {
                        renderer.event(&event, wall_clock()).map_err(CliError::Output)?;
                    }
                    eprintln!("error: interrupted by {}: context canceled", signal.name);
                    return Ok(ExitCode::from(signal.status));
                }
            }
        }
    };
    show_upload(&upload, &mut renderer, false)?;
    if let Some(refused) = stream.session_refused() {
        eprintln!(
            "warning: building without a BuildKit session (the context goes as a tar, registry \
             credentials of the docker configuration are not offered): {}",
            one_line(refused)
        );
    }
    if let Some(warning) = tar_warning.filter(|_| !stream.context_through_session()) {
        eprintln!("{warning}");
    }
    let build_name = options.build_name.clone();
    // What the HTML report is titled.
    let title = match (options.tags.first(), &build_name) {
        (Some(tag), _) => format!("Build of {tag}"),
        (None, Some(name)) => format!("Build {name}"),
        (None, None) => "Build report".to_string(),
    };
    if let Some(file) = record {
        stream = stream.record_to(file);
    }
    let mut outcome = BuildOutcome::default();
    // GitHub mode appends the report's Markdown to $GITHUB_STEP_SUMMARY when it is set.
    let step_summary = renderer.mode() == Mode::Github
        && std::env::var_os("GITHUB_STEP_SUMMARY").is_some_and(|p| !p.is_empty());
    // The report of `--report` (and of the step summary), folded from the same events as the
    // progress.
    let mut report = (!reports.is_empty() || step_summary).then(ReportBuilder::new);
    let mut last_event = std::time::Instant::now();
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut interrupted = None;
    loop {
        tokio::select! {
            signal = signals.next() => {
                interrupted = Some(signal);
                break;
            }
            next = stream.next_event() => match next {
                None => break,
                Some(Ok(event)) => {
                    // The upload's end comes before what the daemon says after it.
                    show_upload(&upload, &mut renderer, true)?;
                    last_event = std::time::Instant::now();
                    outcome.note(&event);
                    if let Some(report) = &mut report {
                        report.apply(&event);
                    }
                    if let BuildEvent::BadLine(e) = &event {
                        eprintln!("warning: {}", one_line(e));
                    }
                    renderer.event(&event, wall_clock()).map_err(CliError::Output)?;
                }
                Some(Err(e)) => {
                    // Show what was decoded before the break, then the reason.
                    renderer
                        .idle(wall_clock(), std::time::Duration::MAX)
                        .map_err(CliError::Output)?;
                    // The reports of what came before the break.
                    write_reports(report.map(ReportBuilder::finish).as_ref(), reports, &title)?;
                    return Err(CliError::Stream(e));
                }
            },
            _ = tick.tick() => {
                show_upload(&upload, &mut renderer, false)?;
                renderer
                    .idle(wall_clock(), last_event.elapsed())
                    .map_err(CliError::Output)?;
            }
        }
    }
    if let Some(signal) = interrupted {
        // The build is canceled as the connection closes; what was received is shown to its
        // end: the running steps canceled (as BuildKit reports them), the closing summary, the
        // reports.
        for event in stream.cancel() {
            outcome.note(&event);
            if let Some(report) = &mut report {
                report.apply(&event);
            }
            renderer
                .event(&event, wall_clock())
                .map_err(CliError::Output)?;
        }
        let report = report.map(ReportBuilder::finish);
        write_reports(report.as_ref(), reports, &title)?;
        eprintln!("error: interrupted by {}: context canceled", signal.name);
        return Ok(ExitCode::from(signal.status));
    }
    let report = report.map(ReportBuilder::finish);
    write_reports(report.as_ref(), reports, &title)?;
    // The history knows the build's ref and, for a failure, where in the Dockerfile it is.
    let found = match &build_name {
        Some(name) => find_in_history(&daemon, name, outcome.failed()).await,
        None => None,
    };
    let repo_path = repository_path(dockerfile);
    let failure_at = match &found {
        Some((_, sources)) if !sources.is_empty() => sources
            .iter()
            .find_map(|s| source_location(s, Some(&repo_path))),
        _ => None,
    }
    .or_else(|| step_location(&outcome, dockerfile, &repo_path));
    after_output(
        &mut renderer,
        &outcome,
        failure_at.as_ref(),
        Some(&repo_path),
    )?;
    if let Some(report) = report.as_ref().filter(|_| step_summary) {
        let mut markdown = Vec::new();
        write_markdown(report, &mut markdown).map_err(CliError::Output)?;
        append_step_summary(&String::from_utf8_lossy(&markdown))?;
    }
    if let Some((_, sources)) = &found {
        for snippet in sources.iter().filter_map(source_snippet) {
            eprint!("{snippet}");
        }
    }
    let code = conclude(&outcome);
    if let Some((build_ref, _)) = found {
        eprintln!("build ref: {build_ref} (bktrace history logs {build_ref})");
    }
    Ok(code)
}

/// Renders the context upload's progress if it changed since it was last shown (with
/// `only_the_end`, only once it has ended).
fn show_upload(
    upload: &UploadProgress,
    renderer: &mut impl Render,
    only_the_end: bool,
) -> Result<(), CliError> {
    if only_the_end && !upload.is_done() {
        return Ok(());
    }
    match upload.update() {
        Some(update) => renderer
            .event(&BuildEvent::ContextUpload(update), wall_clock())
            .map_err(CliError::Output),
        None => Ok(()),
    }
}

/// Writes the report of `--report` to each of its files.
fn write_reports(
    report: Option<&Report>,
    reports: &[(ReportFormat, PathBuf)],
    title: &str,
) -> Result<(), CliError> {
    let Some(report) = report else {
        return Ok(());
    };
    for (format, path) in reports {
        write_report(report, *format, Some(path), title)?;
    }
    Ok(())
}

/// The ref under which the daemon's history keeps the build named `name`, and, when
/// `failed`, the Dockerfile sources of its error (Docker ≥ 27.1 keeps them). `None` when the
/// daemon has no history (Docker < 24) or does not answer within 10 s.
async fn find_in_history(
    daemon: &Daemon,
    name: &str,
    failed: bool,
) -> Option<(String, Vec<ErrorSource>)> {
    let find = async {
        let control = daemon.control().await.ok()?;
        // The daemon completes the record just after the build's output ends: wait for it.
        let mut record = control.find_build(name).await.ok()??;
        for _ in 0..50 {
            if record.completed_at.is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            record = control.find_build(name).await.ok()??;
        }
        let sources = match failed {
            true => control.error_sources(&record).await.unwrap_or_default(),
            false => Vec::new(),
        };
        Some((record.r#ref, sources))
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), find)
        .await
        .ok()
        .flatten()
}

/// Where the failed step's instruction is in the Dockerfile on disk, from the step's name
/// (`[stage N/M] INSTRUCTION …`, see [`dockerfile_analysis::step_lines`]): for daemons whose
/// history keeps no error source (Docker < 27.1). `None` when the build did not fail in a
/// Dockerfile step or the file is not the one built.
fn step_location(outcome: &BuildOutcome, dockerfile: &Path, repo_path: &str) -> Option<Location> {
    let step = outcome.finished.as_ref()?.failure.as_ref()?.step.as_ref()?;
    let name = StepName::parse(&step.name);
    let (index, total) = (name.index?, name.total?);
    let text = std::fs::read_to_string(dockerfile).ok()?;
    let lines = dockerfile_analysis::step_lines(
        &text,
        name.stage,
        usize::try_from(index).ok()?,
        usize::try_from(total).ok()?,
    )
    .ok()??;
    Some(Location {
        file: Some(repo_path.to_string()),
        line: u32::try_from(lines.start).ok(),
        end_line: u32::try_from(lines.end).ok(),
    })
}

/// `path` as GitHub names files in annotations: relative to the current directory (the
/// workspace, in a job) when it is inside it, with `/` separators and no leading `./`.
fn repository_path(path: &Path) -> String {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let relative = std::env::current_dir()
        .ok()
        .and_then(|cwd| absolute.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| path.to_path_buf());
    let text = relative
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/");
    if relative.is_absolute() && !text.starts_with('/') {
        format!("/{}", text.trim_start_matches('/'))
    } else {
        text
    }
}

/// The warning of a BuildKit build that gets its context as the tar body (no FileSync
/// session): BuildKit reads that tar as a remote context and applies no ignore rules, so a
/// Dockerfile the `.dockerignore` excludes, or one from outside the context (sent as
/// `.dockerfile.<hex>`), is visible to `COPY .`. The classic builder removes such a file
/// itself: no warning.
fn dockerfile_in_tar_warning(
    context: &Context,
    options: &BuildOptions,
    dockerfile: &Path,
) -> Option<String> {
    if options.builder == Builder::Classic || !context.dockerfile_ignored() {
        return None;
    }
    let shown = crate::error::printable(&dockerfile.display().to_string());
    Some(if context.dockerfile_outside() {
        format!(
            "warning: the Dockerfile {shown} is outside the build context: it is sent in the \
             context as {} and, without a BuildKit session, COPY . will copy it",
            context.dockerfile_path_in_context()
        )
    } else {
        format!(
            "warning: the Dockerfile {shown} is excluded by {} but, without a BuildKit \
             session, it is sent in the context and COPY . will copy it",
            context.ignore_file_in_context().unwrap_or(".dockerignore")
        )
    })
}

/// `DIR`'s name and a suffix unique to this run, e.g. `app-k3j9x2q1`.
fn default_name(dir: &Path) -> String {
    let base = std::path::absolute(dir)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "build".to_string());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    // Time and process id, mixed (FNV-1a) and written in base 36: unique enough to tell this
    // build from the others in one daemon's history.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in nanos
        .to_le_bytes()
        .into_iter()
        .chain(std::process::id().to_le_bytes())
    {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    let mut suffix = String::new();
    for _ in 0..8 {
        suffix.push(char::from_digit((hash % 36) as u32, 36).unwrap_or('0'));
        hash /= 36;
    }
    format!("{base}-{suffix}")
}

/// An absolute form of `path` that `Context::from_dir` can compare with the context
/// directory: canonical when it exists.
fn absolute(path: &Path) -> PathBuf {
    path.canonicalize()
        .or_else(|_| std::path::absolute(path))
        .unwrap_or_else(|_| path.to_path_buf())
}

/// A signal that ends a build: its name and the exit status of a process it killed.
#[derive(Debug, Clone, Copy)]
struct Signal {
    name: &'static str,
    status: u8,
}

/// SIGINT (Ctrl-C) and SIGTERM, caught while a build runs so that it ends with its output
/// complete instead of mid-line.
struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Result<Self, CliError> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                interrupt: signal(SignalKind::interrupt()).map_err(CliError::Signals)?,
                terminate: signal(SignalKind::terminate()).map_err(CliError::Signals)?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// The next signal (never, where there are none to catch).
    async fn next(&mut self) -> Signal {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.interrupt.recv() => Signal { name: "SIGINT", status: 130 },
                _ = self.terminate.recv() => Signal { name: "SIGTERM", status: 143 },
            }
        }
        #[cfg(not(unix))]
        std::future::pending().await
    }
}

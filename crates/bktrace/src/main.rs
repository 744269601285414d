//! `bktrace`: build Docker images with BuildKit's progress output, replay recorded builds,
//! and emit JSON for tools. See `bktrace --help` and the crate's README.md.

use std::error::Error as StdError;
use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use bktrace::render::{self, Mode, Render, Renderer};
use bktrace::{REPLAY_CHUNK, ReplayError, ReplayOutcome};
use bytes::Bytes;
use clap::error::ErrorKind;
use clap::{Args, Parser, Subcommand, ValueEnum};
use docker_build::connection::{ConnectError, Daemon};
use docker_build::decode::BuildEvent;
use docker_build::{BuildError, BuildOptions, BuildStreamError, Builder, build};
use docker_context::{Context, ContextError};
use dockerfile_analysis::{DockerfileError, ReferenceError, base_images};

/// The recorded build `bktrace demo` replays: two stages logging in parallel (stdout and
/// stderr), then a stage copying from both, on Docker 28.5.
const DEMO: &[u8] =
    include_bytes!("../../../tests/data/corpus/docker-28.5/multistage-parallel.ndjson");

#[derive(Debug, Parser)]
#[command(
    name = "bktrace",
    version,
    about = "Docker builds with BuildKit's progress output: live, replayed, or as JSON",
    long_about = "Docker builds with BuildKit's progress output: live, replayed, or as JSON.\n\n\
        `bktrace build` sends a directory to the Docker daemon (DOCKER_HOST, default \
        unix:///var/run/docker.sock) and shows the build's progress the way \
        `docker buildx build` does. `bktrace replay` renders a recorded build (the raw body of \
        `POST /build`, e.g. from `bktrace build --record`). `bktrace demo` replays a small \
        recorded build, no daemon needed.\n\n\
        Exit status: 0 when the build succeeded, 1 when it failed or bktrace could not run it \
        (the reason is printed on stderr as one line), 2 for invalid arguments.",
    arg_required_else_help = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build an image from a directory on the Docker daemon and show its progress.
    Build(BuildArgs),
    /// Render a recorded build: the NDJSON body of a `POST /build` response.
    Replay(ReplayArgs),
    /// Replay a small recorded build bundled in bktrace (no Docker daemon needed).
    Demo(DemoArgs),
    /// List the external images a build will use (FROM, COPY --from, RUN --mount from), one per
    /// line: reference, line, how it is used, the stages that need it. No daemon needed.
    Images(ImagesArgs),
}

/// The output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Progress {
    /// `tty` when stdout is a terminal, else `plain`.
    Auto,
    /// BuildKit's plain text: `#N` blocks, one line per event.
    Plain,
    /// A live view redrawn in place (colours unless NO_COLOR is set).
    Tty,
    /// One JSON object per event (schema in bktrace's README).
    Json,
    /// What `docker buildx build --progress=rawjson` prints: one BuildKit SolveStatus per line.
    Rawjson,
}

#[derive(Debug, Args)]
struct ProgressArg {
    /// How to show progress.
    #[arg(long, value_enum, default_value = "auto", value_name = "MODE")]
    progress: Progress,
}

#[derive(Debug, Args)]
struct BuildArgs {
    /// The build context: a directory sent to the daemon (honouring .dockerignore).
    #[arg(value_name = "DIR", default_value = ".")]
    dir: PathBuf,
    /// The Dockerfile, relative to the current directory (default: DIR/Dockerfile).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Option<PathBuf>,
    /// Name the image `name:tag` (repeatable).
    #[arg(short = 't', long = "tag", value_name = "NAME[:TAG]")]
    tags: Vec<String>,
    /// Set a build-time ARG (repeatable); `KEY` alone takes the value from the environment.
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    build_args: Vec<String>,
    /// Build this stage of a multi-stage Dockerfile.
    #[arg(long, value_name = "STAGE")]
    target: Option<String>,
    /// Do not use the build cache.
    #[arg(long)]
    no_cache: bool,
    /// Always try to pull newer versions of the base images.
    #[arg(long)]
    pull: bool,
    /// Use the daemon's classic builder instead of BuildKit.
    #[arg(long)]
    classic: bool,
    /// Set an image label (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// Target platform, e.g. linux/amd64.
    #[arg(long, value_name = "OS/ARCH")]
    platform: Option<String>,
    #[command(flatten)]
    progress: ProgressArg,
    /// Also write the daemon's raw response body to FILE (replay it with `bktrace replay`).
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ReplayArgs {
    /// The recorded body (NDJSON), or `-` for standard input.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    #[command(flatten)]
    progress: ProgressArg,
}

#[derive(Debug, Args)]
struct ImagesArgs {
    /// The build context directory.
    #[arg(value_name = "DIR", default_value = ".")]
    dir: PathBuf,
    /// The Dockerfile, relative to the current directory (default: DIR/Dockerfile).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Option<PathBuf>,
    /// Set a build-time ARG (repeatable); `KEY` alone takes the value from the environment.
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    build_args: Vec<String>,
    /// Print fully qualified references (`busybox` → `docker.io/library/busybox:latest`).
    #[arg(long)]
    normalize: bool,
    /// Print one JSON object with the frontend image and every image, with all their uses.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct DemoArgs {
    #[command(flatten)]
    progress: ProgressArg,
}

/// Why bktrace could not do what it was asked (a failed build is not one of these).
#[derive(Debug, thiserror::Error)]
enum CliError {
    /// The file to replay could not be opened.
    #[error("cannot read {}", path.display())]
    Open {
        /// The path given.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Reading the recording or writing the output failed during a replay.
    #[error(transparent)]
    Replay(#[from] ReplayError),
    /// Writing the output of a build failed.
    #[error("writing the output failed")]
    Output(#[source] io::Error),
    /// The recording file of `--record` could not be created.
    #[error("cannot create the recording {}", path.display())]
    Record {
        /// The path given.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A `--build-arg` or `--label` is not `KEY=VALUE`.
    #[error("invalid {flag} {value:?}: expected KEY=VALUE")]
    KeyValue {
        /// The flag, e.g. `--label`.
        flag: &'static str,
        /// What was given.
        value: String,
    },
    /// The build context could not be read.
    #[error(transparent)]
    Context(#[from] ContextError),
    /// The async runtime could not start.
    #[error("cannot start the async runtime")]
    Runtime(#[source] io::Error),
    /// The Docker daemon could not be reached.
    #[error("{}", connect_message(.0))]
    Connect(#[source] ConnectError),
    /// The daemon refused the build or could not be sent it.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The build's event stream broke off.
    #[error(transparent)]
    Stream(#[from] BuildStreamError),
    /// The Dockerfile could not be analysed.
    #[error("{}: {source}", path.display())]
    Dockerfile {
        /// The Dockerfile.
        path: PathBuf,
        /// What is wrong with it (with its line).
        #[source]
        source: DockerfileError,
    },
    /// A reference could not be normalised.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
}

fn connect_message(e: &ConnectError) -> String {
    match e {
        ConnectError::Unreachable { host, .. } => {
            format!("cannot connect to the Docker daemon at {host}")
        }
        other => other.to_string(),
    }
}

/// `e` and its sources on one line, `: `-separated (a source already quoted by its parent is
/// left out).
fn one_line(e: &dyn StdError) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !part.is_empty() && !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            return match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    let _ = e.print();
                    ExitCode::SUCCESS
                }
                ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    let _ = e.print();
                    ExitCode::from(2)
                }
                _ => {
                    let text = e.to_string();
                    let first = text.lines().next().unwrap_or("error: invalid arguments");
                    eprintln!("{first} (see `bktrace --help`)");
                    ExitCode::from(2)
                }
            };
        }
    };
    let result = match cli.command {
        Command::Build(args) => run_build(args),
        Command::Replay(args) => run_replay(args),
        Command::Demo(args) => run_demo(args),
        Command::Images(args) => run_images(args),
    };
    match result {
        Ok(code) => code,
        Err(CliError::Replay(ReplayError::Write(e)) | CliError::Output(e))
            if e.kind() == io::ErrorKind::BrokenPipe =>
        {
            // The reader went away (e.g. `| head`): nothing left to tell anyone.
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The renderer for `--progress`, writing to stdout.
fn renderer(progress: Progress, live: bool, out: Box<dyn Write>) -> Renderer<Box<dyn Write>> {
    let terminal = io::stdout().is_terminal();
    let mode = match progress {
        Progress::Auto if terminal => Mode::Tty,
        Progress::Auto | Progress::Plain => Mode::Plain,
        Progress::Tty => Mode::Tty,
        Progress::Json => Mode::Json,
        Progress::Rawjson => Mode::RawJson,
    };
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let options = render::Options {
        live,
        color: terminal && !no_color,
        size: render::tty::stdout_size,
    };
    Renderer::new(mode, out, options)
}

/// Prints what the caller needs to know after a replay or a build, and the exit status.
fn conclude(outcome: &ReplayOutcome) -> ExitCode {
    match &outcome.failure {
        Some(failure) => {
            let message = failure
                .message
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            eprintln!("error: build failed: {message}");
            ExitCode::FAILURE
        }
        None if !outcome.interrupted.is_empty() && outcome.image_id.is_none() => {
            eprintln!(
                "error: the build did not finish: the daemon's output ends while steps were running: {}",
                outcome.interrupted.join(", ")
            );
            ExitCode::FAILURE
        }
        None if !outcome.interrupted.is_empty() => {
            // The daemon built the image; it just never said that these steps completed.
            eprintln!(
                "warning: the daemon built the image but never reported these steps complete: {}",
                outcome.interrupted.join(", ")
            );
            ExitCode::SUCCESS
        }
        None => ExitCode::SUCCESS,
    }
}

fn run_replay(args: ReplayArgs) -> Result<ExitCode, CliError> {
    let input: Box<dyn Read> = if args.file == Path::new("-") {
        Box::new(io::stdin().lock())
    } else {
        let file = File::open(&args.file).map_err(|source| CliError::Open {
            path: args.file.clone(),
            source,
        })?;
        Box::new(file)
    };
    let out: Box<dyn Write> = Box::new(BufWriter::new(io::stdout().lock()));
    let mut renderer = renderer(args.progress.progress, false, out);
    let outcome = bktrace::replay(input, &mut renderer, REPLAY_CHUNK)?;
    for bad in &outcome.bad_lines {
        eprintln!("warning: {}", one_line(bad));
    }
    Ok(conclude(&outcome))
}

fn run_demo(args: DemoArgs) -> Result<ExitCode, CliError> {
    eprintln!(
        "bktrace demo: replaying a recorded BuildKit build (two stages logging in parallel); \
         `bktrace build DIR` runs a real one"
    );
    let out: Box<dyn Write> = Box::new(BufWriter::new(io::stdout().lock()));
    let mut renderer = renderer(args.progress.progress, false, out);
    let outcome = bktrace::replay(DEMO, &mut renderer, REPLAY_CHUNK)?;
    Ok(conclude(&outcome))
}

/// `KEY=VALUE` pairs of a repeatable flag; with `env_fallback`, `KEY` alone takes the value of
/// the environment variable (and is skipped when it is unset, as the Docker CLI does).
fn key_values(
    flag: &'static str,
    values: &[String],
    env_fallback: bool,
) -> Result<Vec<(String, String)>, CliError> {
    let mut pairs = Vec::new();
    for value in values {
        let invalid = || CliError::KeyValue {
            flag,
            value: value.clone(),
        };
        match value.split_once('=') {
            Some(("", _)) => return Err(invalid()),
            Some((k, v)) => pairs.push((k.to_string(), v.to_string())),
            None if env_fallback && !value.is_empty() => {
                if let Ok(v) = std::env::var(value) {
                    pairs.push((value.clone(), v));
                }
            }
            None => return Err(invalid()),
        }
    }
    Ok(pairs)
}

/// A `--record` file and/or a queue of raw chunks for rawjson: what `BuildStream::record_to`
/// is given.
struct Tee {
    file: Option<BufWriter<File>>,
    chunks: Option<Arc<Mutex<Vec<Bytes>>>>,
}

impl Write for Tee {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(file) = &mut self.file {
            file.write_all(buf)?;
        }
        if let Some(chunks) = &self.chunks {
            chunks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(Bytes::copy_from_slice(buf));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.file {
            Some(file) => file.flush(),
            None => Ok(()),
        }
    }
}

/// An absolute form of `path` that `Context::from_dir` can compare with the context
/// directory: canonical when it exists.
fn absolute(path: &Path) -> PathBuf {
    path.canonicalize()
        .or_else(|_| std::path::absolute(path))
        .unwrap_or_else(|_| path.to_path_buf())
}

fn run_images(args: ImagesArgs) -> Result<ExitCode, CliError> {
    let build_args = key_values("--build-arg", &args.build_args, true)?;
    let path = match &args.file {
        Some(file) => file.clone(),
        None => {
            let upper = args.dir.join("Dockerfile");
            let lower = args.dir.join("dockerfile");
            if !upper.exists() && lower.exists() {
                lower
            } else {
                upper
            }
        }
    };
    let text = std::fs::read_to_string(&path).map_err(|source| CliError::Open {
        path: path.clone(),
        source,
    })?;
    let found = base_images(&text, build_args.iter().map(|(k, v)| (k, v))).map_err(|source| {
        CliError::Dockerfile {
            path: path.clone(),
            source,
        }
    })?;
    let shown = |reference: &str| -> Result<String, CliError> {
        Ok(if args.normalize {
            dockerfile_analysis::normalize(reference)?
        } else {
            reference.to_string()
        })
    };
    let mut out = io::stdout().lock();
    if args.json {
        let images = found
            .images
            .iter()
            .map(|image| {
                Ok(serde_json::json!({
                    "reference": shown(&image.reference)?,
                    "line": image.line,
                    "kind": image.kind.to_string(),
                    "stages": image.stages,
                    "uses": image.uses.iter().map(|u| serde_json::json!({
                        "line": u.line,
                        "kind": u.kind.to_string(),
                        "stage": found.stages.get(u.stage).map(|s| s.label()),
                    })).collect::<Vec<_>>(),
                }))
            })
            .collect::<Result<Vec<_>, CliError>>()?;
        let syntax = match &found.syntax {
            Some(f) => serde_json::json!({ "reference": shown(&f.reference)?, "line": f.line }),
            None => serde_json::Value::Null,
        };
        let doc = serde_json::json!({ "syntax": syntax, "images": images });
        writeln!(out, "{doc}").map_err(CliError::Output)?;
    } else {
        if let Some(f) = &found.syntax {
            let line = f
                .line
                .map_or_else(|| "build-arg".to_string(), |l| format!("line {l}"));
            writeln!(out, "{}\t{line}\tsyntax\t-", shown(&f.reference)?)
                .map_err(CliError::Output)?;
        }
        for image in &found.images {
            writeln!(
                out,
                "{}\tline {}\t{}\t{}",
                shown(&image.reference)?,
                image.line,
                image.kind,
                image.stages.join(",")
            )
            .map_err(CliError::Output)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn run_build(args: BuildArgs) -> Result<ExitCode, CliError> {
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
        ..Default::default()
    };
    let (dir, dockerfile) = match &args.file {
        // Like the Docker CLI, -f is relative to the current directory, not to DIR.
        Some(file) => (absolute(&args.dir), Some(absolute(file))),
        None => (args.dir.clone(), None),
    };
    let context = match &dockerfile {
        Some(file) => Context::builder(&dir).dockerfile(file).plan()?,
        None => Context::from_dir(&dir)?,
    };
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
    runtime.block_on(build_and_render(
        context,
        options,
        args.progress.progress,
        record,
    ))
}

async fn build_and_render(
    context: Context,
    options: BuildOptions,
    progress: Progress,
    record: Option<BufWriter<File>>,
) -> Result<ExitCode, CliError> {
    let daemon = Daemon::connect().await.map_err(CliError::Connect)?;
    let mut stream = build(&daemon, context, &options).await?;
    let mut renderer = renderer(progress, true, Box::new(io::stdout()));
    let chunks = matches!(renderer, Renderer::RawJson(_)).then(|| Arc::new(Mutex::new(Vec::new())));
    if record.is_some() || chunks.is_some() {
        stream = stream.record_to(Tee {
            file: record,
            chunks: chunks.clone(),
        });
    }
    let forward = |renderer: &mut Renderer<Box<dyn Write>>| -> io::Result<()> {
        if let Some(chunks) = &chunks {
            let taken = std::mem::take(&mut *chunks.lock().unwrap_or_else(|p| p.into_inner()));
            for chunk in &taken {
                renderer.chunk(chunk)?;
            }
        }
        Ok(())
    };
    let mut outcome = ReplayOutcome::default();
    let mut last_event = std::time::Instant::now();
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            next = stream.next_event() => match next {
                None => break,
                Some(Ok(event)) => {
                    last_event = std::time::Instant::now();
                    forward(&mut renderer).map_err(CliError::Output)?;
                    bktrace::note(&event, &mut outcome);
                    if let BuildEvent::BadLine(e) = &event {
                        eprintln!("warning: {}", one_line(e));
                    }
                    renderer.event(&event).map_err(CliError::Output)?;
                }
                Some(Err(e)) => {
                    // Show what was decoded before the break, then the reason.
                    forward(&mut renderer).map_err(CliError::Output)?;
                    renderer.idle(std::time::Duration::MAX).map_err(CliError::Output)?;
                    return Err(CliError::Stream(e));
                }
            },
            _ = tick.tick() => {
                renderer.idle(last_event.elapsed()).map_err(CliError::Output)?;
            }
        }
    }
    Ok(conclude(&outcome))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values_split_on_the_first_equals_sign() {
        let pairs = key_values("--label", &["a=b=c".into(), "empty=".into()], false).unwrap();
        assert_eq!(
            pairs,
            [("a".into(), "b=c".into()), ("empty".into(), String::new())]
        );
        let err = key_values("--label", &["novalue".into()], false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid --label \"novalue\": expected KEY=VALUE"
        );
        assert!(key_values("--build-arg", &["=x".into()], true).is_err());
    }

    #[test]
    fn a_build_arg_without_value_comes_from_the_environment() {
        let path = std::env::var("PATH").expect("PATH is set for tests");
        let pairs = key_values(
            "--build-arg",
            &["PATH".into(), "BKTRACE_SURELY_UNSET_VARIABLE".into()],
            true,
        )
        .unwrap();
        assert_eq!(pairs, [("PATH".to_string(), path)]);
    }

    #[test]
    fn errors_are_one_line_with_their_sources() {
        let inner = io::Error::new(io::ErrorKind::NotFound, "no such\nfile");
        let e = CliError::Open {
            path: "x.ndjson".into(),
            source: inner,
        };
        assert_eq!(one_line(&e), "cannot read x.ndjson: no such file");
        // A transparent wrapper does not repeat its source.
        let e = CliError::Replay(ReplayError::Read(io::Error::other("boom")));
        assert_eq!(one_line(&e), "reading the recording failed: boom");
    }
}

//! `bktrace`: build Docker images with BuildKit's progress output, replay recorded builds,
//! and emit JSON for tools. See `bktrace --help` and the crate's README.md.
//!
//! This file is the command line: its definitions and the dispatch into one module per
//! command (`cmd/`). The renderers are the `buildkit-progressui` crate; decoding and the
//! daemon connection are `docker-build`'s.

use std::io;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{Args, Parser, Subcommand, ValueEnum};

mod cmd;
mod error;

use cmd::replay::ReplayError;
use error::{CliError, one_line};

#[derive(Debug, Parser)]
#[command(
    name = "bktrace",
    version,
    about = "Docker builds with BuildKit's progress output: live, replayed, or as JSON",
    long_about = "Docker builds with BuildKit's progress output: live, replayed, or as JSON.\n\n\
        `bktrace build` sends a directory to the Docker daemon, found as the docker CLI \
        finds it (DOCKER_HOST, else DOCKER_CONTEXT or the current context in \
        $DOCKER_CONFIG/config.json, else unix:///var/run/docker.sock; TLS with \
        DOCKER_TLS_VERIFY and DOCKER_CERT_PATH) and shows the build's progress the way \
        `docker buildx build` does. `bktrace replay` renders a recorded build (the raw body of \
        `POST /build`, e.g. from `bktrace build --record`, a BuildKit history logs blob, or \
        `docker buildx build --progress=rawjson` output). `bktrace demo` replays a small \
        recorded build, no daemon needed. `bktrace watch` shows every build on the daemon as \
        it runs, and `bktrace history` lists and replays its build history (Docker 24 or \
        later; with BUILDKIT_HOST set, a standalone buildkitd instead). `bktrace report` \
        sums a recorded build up: totals, slowest steps, the critical path, a timeline.\n\n\
        Exit status: 0 when the build succeeded, 1 when it failed or bktrace could not run it \
        (the reason is printed on stderr as one line), 2 for invalid arguments, 141 when the \
        reader of the output went away (as a process killed by SIGPIPE).",
    arg_required_else_help = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build an image from a directory on the Docker daemon and show its progress.
    Build(Box<BuildArgs>),
    /// Render a recorded build: a `POST /build` response body, a BuildKit history logs blob or
    /// buildx rawjson output (told apart by their first bytes).
    Replay(ReplayArgs),
    /// Replay a small recorded build bundled in bktrace (no Docker daemon needed).
    Demo(DemoArgs),
    /// The daemon's build history (BuildKit's Control API; Docker 24 or later).
    #[command(subcommand)]
    History(HistoryCommand),
    /// Show every build on the daemon as it runs, whoever started it (Docker 24 or later).
    /// Ctrl-C detaches; the builds go on.
    Watch(WatchArgs),
    /// List the external images a build will use (FROM, COPY --from, RUN --mount from), one per
    /// line: reference, line, how it is used, the stages that need it. No daemon needed.
    Images(ImagesArgs),
    /// Report on a recorded build (any input `replay` reads): totals, slowest steps, time per
    /// stage, the critical path (the chain of steps that set the wall time), the failure, and
    /// a timeline.
    Report(ReportArgs),
}

/// The formats of `bktrace report --format` and `bktrace build --report FORMAT=PATH`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ReportFormat {
    /// A short summary for a terminal.
    Text,
    /// A summary for `$GITHUB_STEP_SUMMARY`: tables of the totals and the steps, the critical
    /// path, the failing step with its last lines.
    Markdown,
    /// One JSON object (schema in the README): totals, slowest, stages, critical_path, failed,
    /// timeline.
    Json,
    /// Chrome trace-event JSON of every step's runs, one row per stage: open it in
    /// Perfetto (ui.perfetto.dev) or chrome://tracing.
    ChromeTrace,
    /// One self-contained HTML page (nothing fetched): a waterfall of every step on a time
    /// axis, the critical path highlighted, a step's last log lines on hover or click.
    Html,
}

#[derive(Debug, Args)]
struct ReportArgs {
    /// The recording, or `-` for standard input (the default): a `POST /build` body, a
    /// BuildKit history logs blob, or buildx rawjson output.
    #[arg(value_name = "FILE", default_value = "-")]
    file: PathBuf,
    /// The report's format.
    #[arg(long, value_enum, default_value = "text", value_name = "FORMAT")]
    format: ReportFormat,
    /// Write the report to OUT instead of standard output.
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    output: Option<PathBuf>,
}

/// `FORMAT=PATH` of `build --report`.
fn parse_report_target(text: &str) -> Result<(ReportFormat, PathBuf), String> {
    let formats = || {
        ReportFormat::value_variants()
            .iter()
            .filter_map(|f| f.to_possible_value())
            .map(|v| v.get_name().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let invalid = || format!("expected FORMAT=PATH, FORMAT one of {}", formats());
    let (format, path) = text.split_once('=').ok_or_else(invalid)?;
    if path.is_empty() {
        return Err(invalid());
    }
    let format = ReportFormat::from_str(format, true).map_err(|_| invalid())?;
    Ok((format, PathBuf::from(path)))
}

/// The output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Progress {
    /// `tty` when stdout is a terminal, else `github` when GITHUB_ACTIONS=true, else `plain`.
    Auto,
    /// BuildKit's plain text: `#N` blocks, one line per event.
    Plain,
    /// A live view redrawn in place (colours unless NO_COLOR is set).
    Tty,
    /// One JSON object per event (schema in bktrace's README).
    Json,
    /// What `docker buildx build --progress=rawjson` prints: one BuildKit SolveStatus per line.
    Rawjson,
    /// `plain` for a GitHub Actions job log: a folding group per step, the build's output kept
    /// from being read as workflow commands, the failure annotated on its Dockerfile line, the
    /// summary appended to $GITHUB_STEP_SUMMARY (`watch` shows `plain`).
    Github,
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
    /// When the build ends (also when it failed), write its report in FORMAT to PATH
    /// (repeatable); FORMAT as `bktrace report --format`, e.g. `--report markdown=summary.md`.
    #[arg(long = "report", value_name = "FORMAT=PATH", value_parser = parse_report_target)]
    reports: Vec<(ReportFormat, PathBuf)>,
    /// The build's name in the daemon's history (default: DIR's name and a unique suffix, by
    /// which bktrace finds the build's history ref afterwards).
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// A secret for `RUN --mount=type=secret,id=ID` (repeatable), as buildx takes it:
    /// `id=ID,src=PATH` (a file) or `id=ID,env=VAR` (an environment variable); served through a
    /// BuildKit session, never shown or recorded.
    #[arg(long = "secret", value_name = "id=ID,src=PATH|env=VAR")]
    secrets: Vec<docker_build::Secret>,
    /// An SSH agent for `RUN --mount=type=ssh` (repeatable): `default` (the agent at
    /// $SSH_AUTH_SOCK), `ID=SOCKET`, or `ID=KEY_FILE[,KEY_FILE…]` (unencrypted Ed25519
    /// OpenSSH private keys, served by an agent of bktrace's own), forwarded through a BuildKit
    /// session.
    #[arg(long = "ssh", value_name = "default|ID=SOCKET|ID=KEY_FILE")]
    ssh: Vec<docker_build::SshAgent>,
    /// Write the result instead of building an image, as buildx takes it: `type=local,dest=DIR`
    /// (its files under DIR), `type=tar,dest=FILE` (one archive; `dest=-` for standard output,
    /// the progress then going to standard error), or just `DIR`. Received through a BuildKit
    /// session.
    #[arg(
        short = 'o',
        long = "output",
        value_name = "type=local,dest=DIR|type=tar,dest=FILE|-"
    )]
    outputs: Vec<docker_build::Output>,
    /// How the context reaches the daemon: `auto` (BuildKit: through a BuildKit session as
    /// buildx sends it, only what changed, else as a tar), `session` (fail without one) or
    /// `tar` (the request's body, as `docker build` without buildx sends it).
    #[arg(long, value_enum, default_value = "auto", value_name = "HOW")]
    context_transport: ContextTransportArg,
}

/// `--context-transport`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ContextTransportArg {
    /// Through the session when one is possible, else as a tar.
    Auto,
    /// Through the session, or fail.
    Session,
    /// As the tar body of the request.
    Tar,
}

#[derive(Debug, Args)]
struct ReplayArgs {
    /// The recording, or `-` for standard input: a `POST /build` body (NDJSON, e.g. from
    /// `bktrace build --record`), a BuildKit history logs blob, or `docker buildx build
    /// --progress=rawjson` output; the format is told by the first bytes.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    #[command(flatten)]
    progress: ProgressArg,
}

#[derive(Debug, Subcommand)]
enum HistoryCommand {
    /// List the builds the daemon remembers, newest first (like `docker buildx history ls`).
    Ls(HistoryLsArgs),
    /// Show a build's progress from the history (like `docker buildx history logs`).
    Logs(HistoryLogsArgs),
}

#[derive(Debug, Args)]
struct HistoryLsArgs {
    /// One JSON object per build and line: ref, name, status, created, completed, duration_s,
    /// steps_total, steps_cached, steps_completed, warnings.
    #[arg(long)]
    json: bool,
    /// Only builds matching KEY=VALUE or KEY!=VALUE (repeatable): ref and name match a
    /// substring, status one of running, completed, error, canceled.
    #[arg(long, value_name = "FILTER")]
    filter: Vec<String>,
}

#[derive(Debug, Args)]
struct HistoryLogsArgs {
    /// The build's ref (BUILD ID in `bktrace history ls`).
    #[arg(value_name = "REF")]
    build_ref: String,
    /// Follow a build that is still running until it ends.
    #[arg(long)]
    follow: bool,
    #[command(flatten)]
    progress: ProgressArg,
}

#[derive(Debug, Args)]
struct WatchArgs {
    /// Also show the builds started this long ago or less (finished or still running), e.g.
    /// `90s`, `10m`, `1h`; without it only builds that start after attaching are shown.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    since: Option<std::time::Duration>,
    /// Only builds matching KEY=VALUE or KEY!=VALUE (repeatable; `ref` or `name`, matching a
    /// substring), as `history ls --filter`.
    #[arg(long, value_name = "FILTER")]
    filter: Vec<String>,
    /// Stop after this many builds (of those shown) have ended.
    #[arg(long, value_name = "N")]
    count: Option<usize>,
    #[command(flatten)]
    progress: ProgressArg,
}

/// `90s`, `10m`, `1h`, `2d`, or plain seconds.
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?}: expected e.g. 90s, 10m, 1h"))?;
    let seconds = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => {
            return Err(format!(
                "invalid duration {text:?}: expected e.g. 90s, 10m, 1h"
            ));
        }
    };
    Ok(std::time::Duration::from_secs(seconds))
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
    /// Only the images a build of this stage needs (default: the last stage, as a build
    /// without --target).
    #[arg(long, value_name = "STAGE", conflicts_with = "all_stages")]
    target: Option<String>,
    /// Every stage's images, also those of stages the build does not reach.
    #[arg(long)]
    all_stages: bool,
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

/// The exit status when standard output's reader went away: that of a process killed by
/// SIGPIPE (128 + 13), as a shell reports `cat` in `cat big | head -1`.
const BROKEN_PIPE: u8 = 141;

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
        Command::Build(args) => cmd::build_command::run(*args),
        Command::Replay(args) => cmd::replay::run(args),
        Command::Demo(args) => cmd::demo::run(args),
        Command::Images(args) => cmd::images::run(args),
        Command::History(HistoryCommand::Ls(args)) => cmd::history::ls(args),
        Command::History(HistoryCommand::Logs(args)) => cmd::history::logs(args),
        Command::Watch(args) => cmd::watch::run(args),
        Command::Report(args) => cmd::report::run(args),
    };
    match result {
        Ok(code) => code,
        Err(CliError::Replay(ReplayError::Write(e)) | CliError::Output(e))
            if e.kind() == io::ErrorKind::BrokenPipe =>
        {
            // The reader went away (e.g. `| head`): nothing left to tell it, and the build was
            // not seen to its end (a live one is canceled as its stream is dropped). Exit as a
            // process killed by SIGPIPE does, like `cat`: 128 + 13.
            ExitCode::from(BROKEN_PIPE)
        }
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

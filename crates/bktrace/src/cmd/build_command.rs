//! `bktrace build`: send a directory to the daemon and show the build's progress.

use std::fs::File;
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use buildkit_progressui::Render;
use docker_build::connection::Daemon;
use docker_build::control::source_snippet;
use docker_build::decode::BuildEvent;
use docker_build::{BuildOptions, Builder, DecoderConfig, SessionMode, build};
use docker_context::Context;

use super::{BuildOutcome, conclude, key_values, progress_mode, renderer, wall_clock};
use crate::error::{CliError, one_line};
use crate::{BuildArgs, Progress};

/// `bktrace build`.
pub(crate) fn run(args: BuildArgs) -> Result<ExitCode, CliError> {
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
        decoder: DecoderConfig {
            records: progress_mode(args.progress.progress).wants_records(),
            ..DecoderConfig::default()
        },
        build_name: (!args.classic)
            .then(|| args.name.clone().unwrap_or_else(|| default_name(&args.dir))),
        secrets: args.secrets.clone(),
        ssh: args.ssh.clone(),
        // A session whenever the daemon takes one: it serves the registry credentials of the
        // docker CLI's configuration, so private base images pull with no flag.
        session: SessionMode::Prefer,
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
    let build_name = options.build_name.clone();
    let mut renderer = renderer(progress, true, Box::new(io::stdout()));
    if let Some(file) = record {
        stream = stream.record_to(file);
    }
    let mut outcome = BuildOutcome::default();
    let mut last_event = std::time::Instant::now();
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            next = stream.next_event() => match next {
                None => break,
                Some(Ok(event)) => {
                    last_event = std::time::Instant::now();
                    outcome.note(&event);
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
                    return Err(CliError::Stream(e));
                }
            },
            _ = tick.tick() => {
                renderer
                    .idle(wall_clock(), last_event.elapsed())
                    .map_err(CliError::Output)?;
            }
        }
    }
    // The history knows the build's ref and, for a failure, where in the Dockerfile it is.
    let found = match &build_name {
        Some(name) => find_in_history(&daemon, name, outcome.failed()).await,
        None => None,
    };
    if let Some((_, snippets)) = &found {
        for snippet in snippets {
            eprint!("{snippet}");
        }
    }
    let code = conclude(&outcome);
    if let Some((build_ref, _)) = found {
        eprintln!("build ref: {build_ref} (bktrace history logs {build_ref})");
    }
    Ok(code)
}

/// The ref under which the daemon's history keeps the build named `name`, and, when
/// `failed`, the Dockerfile snippets of its error (Docker ≥ 27.1 keeps them). `None` when the
/// daemon has no history (Docker < 24) or does not answer within 10 s.
async fn find_in_history(
    daemon: &Daemon,
    name: &str,
    failed: bool,
) -> Option<(String, Vec<String>)> {
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
        let snippets = match failed {
            true => control
                .error_sources(&record)
                .await
                .unwrap_or_default()
                .iter()
                .filter_map(source_snippet)
                .collect(),
            false => Vec::new(),
        };
        Some((record.r#ref, snippets))
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), find)
        .await
        .ok()
        .flatten()
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

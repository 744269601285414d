//! Why bktrace could not do what it was asked, and how that is printed: one line.

use std::error::Error as StdError;
use std::io;
use std::path::PathBuf;

use docker_build::connection::ConnectError;
use docker_build::control::{BuildkitHostError, ControlError, RequestError};
use docker_build::{BuildError, BuildStreamError};
use docker_context::ContextError;
use dockerfile_analysis::{DockerfileError, ReferenceError, UnknownTarget};

use crate::cmd::replay::ReplayError;

/// Why bktrace could not do what it was asked (a failed build is not one of these).
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
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
    /// `--output type=tar,dest=-` with a terminal on standard output.
    #[error(
        "refusing to write the tar output to a terminal: redirect standard output, or give dest=FILE"
    )]
    TarToTerminal,
    /// The recording file of `--record` could not be created.
    #[error("cannot create the recording {}", path.display())]
    Record {
        /// The path given.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The build's summary could not be appended to `$GITHUB_STEP_SUMMARY`.
    #[error("cannot append the build summary to {} ($GITHUB_STEP_SUMMARY)", path.display())]
    StepSummary {
        /// The file the variable names.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A report could not be written to its file.
    #[error("cannot write the report {}", path.display())]
    Report {
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
    #[error(transparent)]
    Connect(ConnectError),
    /// The daemon refused the build or could not be sent it.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The build's event stream broke off.
    #[error(transparent)]
    Stream(#[from] BuildStreamError),
    /// The Dockerfile could not be analysed.
    #[error("{}", path.display())]
    Dockerfile {
        /// The Dockerfile.
        path: PathBuf,
        /// What is wrong with it (with its line).
        #[source]
        source: DockerfileError,
    },
    /// The daemon's BuildKit Control API could not be reached.
    #[error(transparent)]
    Control(ControlError),
    /// `BUILDKIT_HOST` is not an address bktrace can use.
    #[error("cannot use BUILDKIT_HOST")]
    BuildkitHost(#[source] BuildkitHostError),
    /// A request to the Control API failed.
    #[error(transparent)]
    Request(RequestError),
    /// A `--filter` of `history ls` is not understood.
    #[error("invalid filter {filter:?}: expected ref, name or status, then = or !=, then a value")]
    Filter {
        /// What was given.
        filter: String,
    },
    /// `history logs` of a ref the history does not hold.
    #[error("no build with ref {build_ref:?} in the daemon's history (see `bktrace history ls`)")]
    NoSuchBuild {
        /// The ref given.
        build_ref: String,
    },
    /// `history logs` of a running build without `--follow`.
    #[error("build {build_ref} is still running; pass --follow to follow it to its end")]
    StillRunning {
        /// The ref given.
        build_ref: String,
    },
    /// A reference could not be normalised.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// SIGINT and SIGTERM could not be caught.
    #[error("cannot catch SIGINT and SIGTERM")]
    Signals(#[source] io::Error),
    /// `images --target` names no stage.
    #[error(transparent)]
    Target(UnknownTarget),
    /// A replayed input held nothing of a build: no vertex, image id or error.
    #[error("no build records found in {input}")]
    NoRecords {
        /// The file, or `standard input`.
        input: String,
    },
}

/// `e` and its sources on one line, `: `-separated. No error of this workspace repeats its
/// source in its own message, but some of the libraries' errors do (bollard's hyper error
/// quotes hyper's), so a source whose text is already there is left out.
pub(crate) fn one_line(e: &dyn StdError) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !part.is_empty() && !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    printable(&text.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// `text` with its whitespace runs folded to one space and every other control character
/// (ESC of terminal colour codes, NUL, DEL, C1 codes) written as an escape (`\x1b`,
/// `\u{85}`), so that what a daemon or a recording says cannot move the cursor, recolour or
/// clear the terminal it is printed on.
pub(crate) fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, word) in text.split_whitespace().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        for c in word.chars() {
            match c {
                '\0'..='\x1f' | '\x7f' => out.push_str(&format!("\\x{:02x}", c as u32)),
                '\u{80}'..='\u{9f}' => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
                _ => out.push(c),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
        // A library error that quotes its source in its own message: the source comes once.
        #[derive(Debug, thiserror::Error)]
        #[error("Error in the client: {0}")]
        struct Quoting(#[source] io::Error);
        let e = CliError::Output(io::Error::other(Quoting(io::Error::other("refused"))));
        assert_eq!(
            one_line(&e),
            "writing the output failed: Error in the client: refused"
        );
    }

    #[test]
    fn control_characters_are_escaped_and_whitespace_folded() {
        assert_eq!(
            printable("\x1b[31mred\x1b[0m\tand\r\nnul\0 del\x7f c1\u{9b}2J é"),
            "\\x1b[31mred\\x1b[0m and nul\\x00 del\\x7f c1\\u{9b}2J é"
        );
        let e = CliError::Open {
            path: "\x1b]0;title\x07.ndjson".into(),
            source: io::Error::other("gone"),
        };
        assert_eq!(one_line(&e), "cannot read \\x1b]0;title\\x07.ndjson: gone");
    }
}

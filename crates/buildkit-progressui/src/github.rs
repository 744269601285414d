//! `--progress=github`: the [plain](crate::plain) output for a GitHub Actions job log, with
//! GitHub's [workflow commands] so that the log folds and the failure is annotated.
//!
//! ```text
//! ::group::#5 [2/3] RUN make
//! ::stop-commands::7f3a…
//! #5 [2/3] RUN make
//! #5 0.084 cc -c main.c
//! #5 ERROR: process "/bin/sh -c make" did not complete successfully: exit code: 2
//! ::7f3a…::
//! ::endgroup::
//! ::stop-commands::7f3a…
//! ------
//!  > [2/3] RUN make:
//! 0.084 cc -c main.c
//! ------
//! ::7f3a…::
//! ::error file=Dockerfile,line=2,endLine=2,title=[2/3] RUN make::process "/bin/sh -c make" did not complete successfully: exit code: 2
//! ```
//!
//! - **Groups.** Each run of consecutive lines of one step (a `#N` block of the plain output)
//!   is a `::group::` titled with the block's first line, `#N <step name>`. The plain output
//!   interleaves concurrent steps and GitHub's groups cannot nest or interleave, so a step the
//!   printer comes back to gets a new group with the same title. The blank lines between
//!   blocks, daemon text (`Successfully built …`) and the closing `------` blocks of the
//!   failed steps are outside any group, so the failure shows without unfolding anything.
//! - **No command from the build.** The runner reads a line as a command when it starts with
//!   `::` (after leading white space) or holds `##[` anywhere, and it splits lines at `\r` as
//!   well as `\n`; a build's own output (a `RUN` printing `::add-mask::…` or
//!   `::set-output …`, a step name, a warning, daemon text) could be any of these. Every byte
//!   of the plain output is therefore written between `::stop-commands::<token>` and
//!   `::<token>::` (GitHub's documented way to print untrusted text; the runner ignores every
//!   command until it sees the token), and commands are ours only: the groups and
//!   annotations are written while commands run, nothing else. The token comes from the caller
//!   ([`Github::new`]): it must be unguessable by the build (bktrace draws 128 random bits per
//!   run) and is masked in the log by the runner.
//! - **Annotations.** [`Github::annotate`], once the build is over: an `::error` for the
//!   failure (the failed step's name as the title, its error as the message) at the
//!   Dockerfile lines the caller found ([`Location`]), or without a file when it found none;
//!   a `::warning` for each distinct warning of the build at the lines it carries. Property
//!   values are escaped as GitHub's toolkit does ([`escape_property`]), messages as its data
//!   ([`escape_data`]).
//!
//! [workflow commands]: https://docs.github.com/en/actions/reference/workflows-and-actions/workflow-commands

use std::io::{self, Write};
use std::time::Duration;

use buildkit_events::Time;
use docker_build::decode::{BuildEvent, BuildFailure};

use crate::Render;
use crate::plain::Plain;
use crate::warnings::Warnings;

/// The GitHub renderer: [`Plain`] inside workflow commands. See the [module docs](self).
#[derive(Debug)]
pub struct Github<W> {
    plain: Plain<W>,
    failure: Option<BuildFailure>,
    warnings: Warnings,
}

impl<W: Write> Github<W> {
    /// A renderer writing to `out`; `stop_token` ends the runs of plain output in which the
    /// runner ignores commands (see the module docs): it must not be guessable by the build,
    /// and be a word of letters and digits (the runner splits a command at spaces and `::`).
    ///
    /// # Panics
    ///
    /// When the token is shorter than 8 characters or holds anything but ASCII letters and
    /// digits.
    pub fn new(out: W, stop_token: &str) -> Self {
        assert!(
            stop_token.len() >= 8 && stop_token.bytes().all(|b| b.is_ascii_alphanumeric()),
            "a stop-commands token is 8 or more ASCII letters and digits"
        );
        Self {
            plain: Plain::framed(
                out,
                Some(Commands {
                    token: stop_token.to_owned(),
                    stopped: false,
                    group: false,
                    at_line_start: true,
                }),
            ),
            failure: None,
            warnings: Warnings::default(),
        }
    }

    /// The writer back.
    pub fn into_inner(self) -> W {
        self.plain.into_inner()
    }

    /// The build's failure, once [`BuildEvent::Finished`] reported it.
    pub fn failure(&self) -> Option<&BuildFailure> {
        self.failure.as_ref()
    }

    /// Writes `text` (e.g. a summary) outside any group, with commands stopped around it.
    pub fn text(&mut self, text: &str) -> io::Result<()> {
        let (out, commands) = self.commands();
        commands.end_group(out)?;
        commands.stop(out)?;
        out.write_all(text.as_bytes())?;
        commands.wrote(text.as_bytes());
        commands.resume(out)?;
        out.flush()
    }

    /// What follows the plain output once the build is over: the warnings summary in
    /// `docker --debug buildx build`'s form ([`Warnings::summary`], commands stopped), then
    /// the annotations ([`Github::annotate`]).
    pub fn conclude(
        &mut self,
        failure_at: Option<&Location>,
        dockerfile: Option<&str>,
    ) -> io::Result<()> {
        let summary = self.warnings.summary(true, false);
        if !summary.is_empty() {
            self.text(&summary)?;
        }
        self.annotate(failure_at, dockerfile)
    }

    /// The warnings the build raised.
    pub fn warnings(&self) -> &Warnings {
        &self.warnings
    }

    /// The annotations of the build, written once it is over: `::error` for its failure (if
    /// it failed) at `failure_at`, and `::warning` for each distinct warning it raised (at
    /// most [`MAX_WARNING_ANNOTATIONS`]; GitHub shows 10 of each kind per step). `dockerfile`,
    /// when given, is the path of the Dockerfile in the repository: warnings about the
    /// Dockerfile are annotated on it (BuildKit names it by its base name only).
    pub fn annotate(
        &mut self,
        failure_at: Option<&Location>,
        dockerfile: Option<&str>,
    ) -> io::Result<()> {
        let mut lines = Vec::new();
        for w in self.warnings.iter().take(MAX_WARNING_ANNOTATIONS) {
            let (file, line, end_line) = match (&w.file, w.lines.first()) {
                (Some(file), Some(&(start, end))) if start > 0 => {
                    let file = match dockerfile {
                        Some(path) if is_base_name_of(file, path) => path.to_owned(),
                        _ => file.clone(),
                    };
                    (Some(file), Some(start as u32), Some(end.max(start) as u32))
                }
                _ => (None, None, None),
            };
            let at = Location {
                file,
                line,
                end_line,
            };
            let (title, message) = match w.short.split_once(": ") {
                Some((rule, message)) if !rule.contains(' ') => (rule, message),
                _ => ("Build warning", w.short.as_str()),
            };
            lines.push(annotation("warning", &at, title, message));
        }
        if let Some(failure) = &self.failure {
            let (title, message) = match &failure.step {
                Some(step) => (step.name.as_str(), step.error.as_str()),
                None => ("Build failed", failure.message.as_str()),
            };
            let none = Location::default();
            lines.push(annotation(
                "error",
                failure_at.unwrap_or(&none),
                title,
                message,
            ));
        }
        let (out, commands) = self.commands();
        commands.end_group(out)?;
        commands.resume(out)?;
        for line in lines {
            commands.command(out, &line)?;
        }
        out.flush()
    }

    fn commands(&mut self) -> (&mut W, &mut Commands) {
        self.plain
            .github()
            .expect("a GitHub renderer frames its plain output")
    }
}

/// Whether `name` (as BuildKit names a source file, e.g. `Dockerfile`) is the file `path`.
fn is_base_name_of(name: &str, path: &str) -> bool {
    path == name || path.rsplit(['/', '\\']).next() == Some(name)
}

/// At most this many `::warning` annotations are written (GitHub shows 10 per step).
pub const MAX_WARNING_ANNOTATIONS: usize = 50;

impl<W: Write> Render for Github<W> {
    fn event(&mut self, event: &BuildEvent, now: Time) -> io::Result<()> {
        self.warnings.note(event);
        if let BuildEvent::Finished(summary) = event {
            self.failure = summary.failure.clone();
        }
        self.plain.event(event, now)
    }

    /// As [`Plain`]; with [`Duration::MAX`] (the build broke off) the open group is closed and
    /// commands are resumed as well, so that what the caller prints next is outside it (any
    /// later output of the renderer is framed again).
    fn idle(&mut self, now: Time, quiet: Duration) -> io::Result<()> {
        self.plain.idle(now, quiet)?;
        if quiet == Duration::MAX {
            let (out, commands) = self.commands();
            commands.end_group(out)?;
            commands.resume(out)?;
            out.flush()?;
        }
        Ok(())
    }
}

/// Where in the repository an annotation points; every part is optional (an annotation
/// without a file shows on the job only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    /// The file, relative to the repository's root (e.g. `app/Dockerfile`).
    pub file: Option<String>,
    /// Its 1-based first line.
    pub line: Option<u32>,
    /// Its last line.
    pub end_line: Option<u32>,
}

/// The workflow commands around plain output: the state of the runner's command processing
/// as this output left it.
#[derive(Debug)]
pub(crate) struct Commands {
    token: String,
    /// Commands are stopped (`::stop-commands::` written, its token not yet).
    stopped: bool,
    /// A group is open.
    group: bool,
    /// The last byte written ended a line (or nothing was written).
    at_line_start: bool,
}

impl Commands {
    /// Notes bytes written to the output.
    pub(crate) fn wrote(&mut self, bytes: &[u8]) {
        if let Some(&last) = bytes.last() {
            self.at_line_start = last == b'\n';
        }
    }

    /// Starts a line for a command.
    fn line_start(&mut self, out: &mut impl Write) -> io::Result<()> {
        if !self.at_line_start {
            out.write_all(b"\n")?;
            self.at_line_start = true;
        }
        Ok(())
    }

    /// Writes the command `line` on a line of its own.
    fn command(&mut self, out: &mut impl Write, line: &str) -> io::Result<()> {
        self.line_start(out)?;
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")
    }

    /// Stops commands, unless they are stopped: plain output follows.
    pub(crate) fn stop(&mut self, out: &mut impl Write) -> io::Result<()> {
        if !self.stopped {
            let line = format!("::stop-commands::{}", self.token);
            self.command(out, &line)?;
            self.stopped = true;
        }
        Ok(())
    }

    /// Resumes commands, if they are stopped.
    pub(crate) fn resume(&mut self, out: &mut impl Write) -> io::Result<()> {
        if self.stopped {
            let line = format!("::{}::", self.token);
            self.command(out, &line)?;
            self.stopped = false;
        }
        Ok(())
    }

    /// Opens a group titled `title` (closing the open one).
    pub(crate) fn group(&mut self, out: &mut impl Write, title: &str) -> io::Result<()> {
        self.end_group(out)?;
        self.resume(out)?;
        self.command(out, &format!("::group::{}", escape_data(title)))?;
        self.group = true;
        Ok(())
    }

    /// Closes the open group, if any.
    pub(crate) fn end_group(&mut self, out: &mut impl Write) -> io::Result<()> {
        if self.group {
            self.resume(out)?;
            self.command(out, "::endgroup::")?;
            self.group = false;
        }
        Ok(())
    }
}

/// One annotation command: `::error file=…,line=…,endLine=…,title=…::message`.
///
/// ```
/// use buildkit_progressui::github::{Location, annotation};
///
/// let at = Location { file: Some("app/Dockerfile".into()), line: Some(4), end_line: Some(5) };
/// assert_eq!(
///     annotation("error", &at, "[build 2/3] RUN make", "exit code: 2\nmake: *** [all] 50%"),
///     "::error file=app/Dockerfile,line=4,endLine=5,title=[build 2/3] RUN make::exit code: 2%0Amake: *** [all] 50%25"
/// );
/// ```
pub fn annotation(command: &str, at: &Location, title: &str, message: &str) -> String {
    let mut properties = Vec::new();
    if let Some(file) = &at.file {
        properties.push(format!("file={}", escape_property(file)));
    }
    if let Some(line) = at.line {
        properties.push(format!("line={line}"));
    }
    if let Some(end) = at.end_line {
        properties.push(format!("endLine={end}"));
    }
    properties.push(format!("title={}", escape_property(title)));
    format!(
        "::{command} {}::{}",
        properties.join(","),
        escape_data(message)
    )
}

/// A command's data (the text after the second `::`) escaped as GitHub's toolkit escapes it
/// (`escapeData`): `%` → `%25`, `\r` → `%0D`, `\n` → `%0A`.
pub fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// A command's property value escaped as GitHub's toolkit escapes it (`escapeProperty`): as
/// [`escape_data`], and `:` → `%3A`, `,` → `%2C`.
pub fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use buildkit_events::{LineEnd, Outcome};

    const TOKEN: &str = "T0KENT0KEN";

    fn render(events: &[BuildEvent]) -> String {
        let mut github = Github::new(Vec::new(), TOKEN);
        for e in events {
            github.event(e, Time(0)).unwrap();
        }
        github.event(&finished(), Time(0)).unwrap();
        github.annotate(None, None).unwrap();
        String::from_utf8(github.into_inner()).unwrap()
    }

    /// What the runner would take as commands, read as it reads them (lines split at `\r` and
    /// `\n`; `::` after leading white space, or `##[` anywhere), with `stop-commands` honoured.
    fn commands_seen(text: &str) -> Vec<String> {
        let mut seen = Vec::new();
        let mut stopped: Option<String> = None;
        for line in text.split(['\r', '\n']) {
            let trimmed = line.trim_start();
            let v2 = trimmed
                .strip_prefix("::")
                .and_then(|rest| rest.split_once("::"))
                .map(|(info, data)| (info.split(' ').next().unwrap().to_string(), data));
            let v1 = line
                .find("##[")
                .and_then(|i| line[i + 3..].split_once(']'))
                .map(|(info, data)| (info.split(' ').next().unwrap().to_string(), data));
            let Some((command, data)) = v2.or(v1) else {
                continue;
            };
            match &stopped {
                Some(token) if *token == command => stopped = None,
                Some(_) => {}
                None if command == "stop-commands" => stopped = Some(data.to_string()),
                None => seen.push(line.to_string()),
            }
        }
        seen
    }

    #[test]
    fn each_run_of_a_steps_lines_is_a_group_and_a_step_returned_to_gets_another() {
        let text = render(&[
            started("a", "[1/2] RUN a", 0),
            started("b", "[2/2] RUN b", 0),
            log("a", "a1", 10),
            log("b", "b1", 6_000),
            log("b", "b2", 12_000),
            completed("b", Outcome::Done, 0, 12_100, 12_100),
            completed("a", Outcome::Done, 0, 12_200, 12_200),
        ]);
        let t = TOKEN;
        assert_eq!(
            text,
            format!(
                "::group::#1 [1/2] RUN a\n::stop-commands::{t}\n#1 [1/2] RUN a\n#1 0.010 a1\n#1 ...\n\
                 ::{t}::\n::endgroup::\n\n\
                 ::group::#2 [2/2] RUN b\n::stop-commands::{t}\n#2 [2/2] RUN b\n#2 6.000 b1\n#2 12.00 b2\n#2 DONE 12.1s\n\
                 ::{t}::\n::endgroup::\n\n\
                 ::group::#1 [1/2] RUN a\n::stop-commands::{t}\n#1 [1/2] RUN a\n#1 DONE 12.2s\n\
                 ::{t}::\n::endgroup::\n"
            )
        );
        let groups: Vec<&str> = commands_seen(&text)
            .into_iter()
            .filter(|c| c.starts_with("::group::"))
            .map(|_| "g")
            .collect();
        assert_eq!(groups.len(), 3);
    }

    /// A build printing workflow commands, in every place the runner could find one: only
    /// our own groups and annotation are commands.
    #[test]
    fn commands_in_the_build_output_are_not_commands() {
        let evil = [
            "::add-mask::hunter2",
            "  ::set-output name=x::y",
            "##[add-mask]hunter2",
            "progress\r::error::from a carriage return",
            "::stop-commands::guess",
            "::guess::",
            &format!("::{}::", "T0KEN"),
        ];
        let mut events = vec![started("a", "[1/2] RUN ::warning::in-the-name", 0)];
        for (i, line) in evil.iter().enumerate() {
            events.push(log("a", line, 100 + i as i64));
        }
        events.push(log_piece("a", "::error::split ", LineEnd::Split, 200));
        events.push(log_piece("a", "across pieces", LineEnd::Newline, 300));
        events.push(warning("a", "##[warning]from a warning"));
        events.push(BuildEvent::Message("::notice::daemon text\n".into()));
        events.push(completed(
            "a",
            Outcome::Failed("::error::in the error".into()),
            0,
            400,
            400,
        ));
        let text = render(&events);
        let seen = commands_seen(&text);
        for line in &seen {
            assert!(
                line.starts_with("::group::")
                    || line == "::endgroup::"
                    || line.starts_with("::warning title=Build warning::")
                    || line.starts_with("::error title=Build failed::"),
                "{line:?} is a command:\n{text}"
            );
        }
        // Every evil line is in the output, as the build wrote it.
        for line in evil {
            assert!(text.contains(line), "{line}");
        }
    }

    #[test]
    fn a_failure_is_annotated_where_the_caller_found_it() {
        let mut github = Github::new(Vec::new(), TOKEN);
        github
            .event(&started("a", "[2/3] RUN make", 0), Time(0))
            .unwrap();
        let failed = completed("a", Outcome::Failed("exit code: 2".into()), 0, 10, 10);
        github.event(&failed, Time(0)).unwrap();
        github
            .event(
                &finished_failed("a", "[2/3] RUN make", "exit code: 2"),
                Time(0),
            )
            .unwrap();
        let at = Location {
            file: Some("app/Docker,file".into()),
            line: Some(7),
            end_line: Some(8),
        };
        github.annotate(Some(&at), None).unwrap();
        let text = String::from_utf8(github.into_inner()).unwrap();
        assert!(
            text.ends_with(
                "::error file=app/Docker%2Cfile,line=7,endLine=8,title=[2/3] RUN make::exit code: 2\n"
            ),
            "{text}"
        );
        // The closing block is outside the groups, with commands stopped.
        let t = TOKEN;
        assert!(
            text.contains(&format!(
                "::endgroup::\n::stop-commands::{t}\n------\n > [2/3] RUN make:\n------\n::{t}::\n"
            )),
            "{text}"
        );
    }

    #[test]
    fn escaping_follows_the_toolkit() {
        assert_eq!(escape_data("50% a\r\nb:c,d"), "50%25 a%0D%0Ab:c,d");
        assert_eq!(escape_property("50% a\r\nb:c,d"), "50%25 a%0D%0Ab%3Ac%2Cd");
        // `%` first: an escape in the input stays literal.
        assert_eq!(escape_data("%0A"), "%250A");
        let at = Location::default();
        assert_eq!(
            annotation("warning", &at, "t:1,2", "m"),
            "::warning title=t%3A1%2C2::m"
        );
    }

    #[test]
    fn breaking_off_closes_the_group_and_resumes_commands() {
        let mut github = Github::new(Vec::new(), TOKEN);
        github.event(&started("a", "A", 0), Time(0)).unwrap();
        github.event(&log("a", "x", 200), Time(0)).unwrap();
        github.idle(Time(0), Duration::MAX).unwrap();
        let text = String::from_utf8(github.into_inner()).unwrap();
        assert!(
            text.ends_with(&format!("#1 0.200 x\n::{TOKEN}::\n::endgroup::\n")),
            "{text}"
        );
    }
}

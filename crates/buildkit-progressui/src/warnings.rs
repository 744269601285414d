//! The warnings summary `docker buildx build` prints once a build is over (`commands/build.go`
//! `printWarnings`), from the build's [`Warning`] events.
//!
//! buildx prints, after the progress output:
//!
//! ```text
//!
//!  2 warnings found (use docker --debug to expand):
//!  - StageNameCasing: Stage name 'Second' should be lowercase (line 5)
//!  - NoEmptyContinuation: Empty continuation line (line 4)
//! ```
//!
//! and with `docker --debug` each warning expanded: its detail lines, `More info: <url>`, and
//! the Dockerfile lines it points at, marked `>>>` (BuildKit's `Source.Print`, see
//! [`buildkit_events::source_snippet`]), then a blank line. [`Warnings::summary`] writes
//! either form, byte for byte, with the header in yellow when asked. Where it differs:
//! - the warnings come in the order the build raised them; buildx de-duplicates them through
//!   a Go map and prints them in the map's (random) order;
//! - what is kept is bounded: the first [`MAX_KEPT`] distinct warnings are shown, a count of
//!   the others closes the list (`… and N more`), and a snippet longer than
//!   [`MAX_SNIPPET`] bytes is cut at a line.
//!
//! (BuildKit's plain printer shows each warning where it comes, as `#N WARN: <short>`: that is
//! [`crate::plain`]'s.)

use std::collections::HashSet;
use std::hash::{Hash, Hasher};

use buildkit_events::{Event, Warning};
use docker_build::decode::BuildEvent;

/// At most this many distinct warnings are kept for the summary; the rest are counted.
pub const MAX_KEPT: usize = 100;
/// A warning's snippet is cut (at a line) beyond this many bytes.
pub const MAX_SNIPPET: usize = 16 * 1024;
/// Distinct warnings remembered to tell a repeat (beyond this, a warning counts as new).
const MAX_SEEN: usize = 4096;

/// One warning as the summary shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    /// The one-line message, e.g. `StageNameCasing: Stage name 'Second' should be lowercase
    /// (line 5)` (invalid UTF-8 replaced).
    pub short: String,
    /// The description paragraphs.
    pub detail: Vec<String>,
    /// The documentation link, empty if none.
    pub url: String,
    /// The file the warning points into, e.g. `Dockerfile`.
    pub file: Option<String>,
    /// 1-based (start, end) line ranges in that file.
    pub lines: Vec<(i32, i32)>,
    /// The `>>>` snippet of those lines ([`Warning::snippet`]), if the warning carried the
    /// file's text.
    pub snippet: Option<String>,
}

/// The distinct warnings of a build, in the order they came, for the summary. Feed it every
/// event with [`Warnings::note`].
#[derive(Debug, Default)]
pub struct Warnings {
    kept: Vec<Kept>,
    /// Distinct warnings beyond [`MAX_KEPT`].
    more: usize,
    /// Hashes of the warnings seen (all but the vertex, as buildx de-duplicates them).
    seen: HashSet<u64>,
}

impl Warnings {
    /// Keeps the warning of a [`Event::Warning`]; other events are ignored.
    pub fn note(&mut self, event: &BuildEvent) {
        if let BuildEvent::Vertex(Event::Warning(w)) = event {
            self.add(w);
        }
    }

    /// Keeps `warning` unless the same one (from any vertex) was kept already.
    pub fn add(&mut self, warning: &Warning) {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        warning.level.hash(&mut hasher);
        warning.short.hash(&mut hasher);
        warning.detail.hash(&mut hasher);
        warning.url.hash(&mut hasher);
        warning.source_file.hash(&mut hasher);
        warning.lines.hash(&mut hasher);
        warning.source_data.hash(&mut hasher);
        let hash = hasher.finish();
        if self.seen.len() < MAX_SEEN {
            if !self.seen.insert(hash) {
                return;
            }
        } else if self.seen.contains(&hash) {
            return;
        }
        if self.kept.len() >= MAX_KEPT {
            self.more += 1;
            return;
        }
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        self.kept.push(Kept {
            short: text(&warning.short),
            detail: warning.detail.iter().map(|d| text(d)).collect(),
            url: warning.url.clone(),
            file: warning.source_file.clone(),
            lines: warning.lines.clone(),
            snippet: warning.snippet().map(cut_snippet),
        });
    }

    /// How many distinct warnings the build raised.
    pub fn len(&self) -> usize {
        self.kept.len() + self.more
    }

    /// Whether the build raised none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The kept warnings, in the order they came.
    pub fn iter(&self) -> impl Iterator<Item = &Kept> {
        self.kept.iter()
    }

    /// buildx's summary (empty without warnings): the short form, or with `expand` the form of
    /// `docker --debug buildx build` (detail, link, `>>>` snippet). `color` puts the header
    /// in yellow, as buildx always does.
    ///
    /// ```
    /// use buildkit_progressui::warnings::Warnings;
    ///
    /// let warnings = Warnings::default();
    /// assert_eq!(warnings.summary(true, false), "");
    /// ```
    pub fn summary(&self, expand: bool, color: bool) -> String {
        if self.is_empty() {
            return String::new();
        }
        let mut header = match self.len() {
            1 => "1 warning found".to_string(),
            n => format!("{n} warnings found"),
        };
        if !expand {
            header.push_str(" (use docker --debug to expand)");
        }
        header.push_str(":\n");
        let mut out = String::from("\n ");
        if color {
            // aec.Apply(…, aec.YellowF): the reset follows the newline.
            out.push_str(&format!("\x1b[33m{header}\x1b[0m"));
        } else {
            out.push_str(&header);
        }
        for w in &self.kept {
            out.push_str(&format!(" - {}\n", w.short));
            if !expand {
                continue;
            }
            for d in &w.detail {
                out.push_str(d);
                out.push('\n');
            }
            if !w.url.is_empty() {
                out.push_str(&format!("More info: {}\n", w.url));
            }
            if let Some(snippet) = &w.snippet {
                out.push_str(snippet);
            }
            out.push('\n');
        }
        if self.more > 0 {
            out.push_str(&format!(" … and {} more\n", self.more));
        }
        out
    }
}

/// `snippet` cut at the last line that fits in [`MAX_SNIPPET`] bytes.
fn cut_snippet(snippet: String) -> String {
    if snippet.len() <= MAX_SNIPPET {
        return snippet;
    }
    let mut end = MAX_SNIPPET;
    while !snippet.is_char_boundary(end) {
        end -= 1;
    }
    let cut = snippet[..end].rfind('\n').map_or(0, |i| i + 1);
    format!("{}…\n--------------------\n", &snippet[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    const DOCKERFILE: &str = "FROM bbase:latest\nRUN echo a \\\n\n    && echo b\nfrom bbase:latest as Second\nRUN echo c\n";

    fn two() -> Warnings {
        let mut warnings = Warnings::default();
        for digest in ["a", "b"] {
            // The same warning from two vertices counts once, as in buildx.
            warnings.note(&warning_at(
                digest,
                "StageNameCasing: Stage name 'Second' should be lowercase (line 5)",
                "Dockerfile",
                DOCKERFILE,
                (5, 5),
            ));
        }
        warnings.note(&warning("a", "Deprecated: something"));
        warnings
    }

    #[test]
    fn the_short_form_is_buildx_default() {
        assert_eq!(
            two().summary(false, false),
            "\n 2 warnings found (use docker --debug to expand):\n \
             - StageNameCasing: Stage name 'Second' should be lowercase (line 5)\n \
             - Deprecated: something\n"
        );
        assert!(two().summary(false, true).starts_with(
            "\n \x1b[33m2 warnings found (use docker --debug to expand):\n\x1b[0m - "
        ));
    }

    #[test]
    fn the_expanded_form_is_buildx_debug_with_the_snippet() {
        assert_eq!(
            two().summary(true, false),
            "\n 2 warnings found:\n \
             - StageNameCasing: Stage name 'Second' should be lowercase (line 5)\n\
             Details of the rule.\n\
             More info: https://docs.docker.com/go/rule/\n\
             Dockerfile:5\n\
             --------------------\n   \
             3 |     \n   \
             4 |         && echo b\n   \
             5 | >>> from bbase:latest as Second\n   \
             6 |     RUN echo c\n   \
             7 |     \n\
             --------------------\n\
             \n \
             - Deprecated: something\n\n"
        );
    }

    #[test]
    fn kept_warnings_and_snippets_are_bounded() {
        let mut warnings = Warnings::default();
        let long = "x".repeat(1000);
        let text: String = (0..100).map(|_| format!("{long}\n")).collect();
        for i in 0..MAX_KEPT + 7 {
            warnings.note(&warning_at("a", &format!("W{i}"), "f", &text, (1, 100)));
        }
        assert_eq!(warnings.len(), MAX_KEPT + 7);
        assert_eq!(warnings.iter().count(), MAX_KEPT);
        let snippet = warnings.iter().next().unwrap().snippet.as_ref().unwrap();
        assert!(snippet.len() <= MAX_SNIPPET + 100, "{}", snippet.len());
        assert!(snippet.ends_with("…\n--------------------\n"));
        assert!(warnings.summary(false, false).ends_with(" … and 7 more\n"));
    }
}

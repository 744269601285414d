//! `.dockerignore` matching with Docker's rules.
//!
//! Docker reads the ignore file as a newline-separated list of patterns and drops every file and
//! directory of the build context that they exclude before sending the context to the daemon.
//! [`DockerIgnore`] implements the rules of Docker's documentation (and of moby's
//! `patternmatcher`, which implements them):
//!
//! - A line whose **first column** is `#` is a comment. Surrounding whitespace is then trimmed,
//!   and lines that are blank after trimming are ignored. (A line `  # x` is therefore not a
//!   comment but the pattern `# x`.)
//! - A line starting with `!` is an **exception**: it re-includes what earlier lines excluded.
//!   The **last line that matches** a path decides whether it is excluded. A lone `!` is an error.
//! - Each pattern is cleaned like Go's `filepath.Clean` (`.` elements dropped, `..` resolved,
//!   duplicate and trailing `/` removed) and a leading `/` is removed, so `/foo/bar`, `./foo/bar`
//!   and `foo/bar/` all mean `foo/bar`. The root of the context is both the working and the root
//!   directory. The pattern `.` matches nothing.
//! - Globs follow Go's `filepath.Match`: `*` matches any sequence of non-`/` characters, `?` one
//!   non-`/` character, `[...]` a character class (`[^...]` negates it, ranges `a-z`), and `\`
//!   makes the next character literal. Beyond that, `**` matches any number of directories,
//!   including none: `**/*.go` excludes `.go` files everywhere, `a/**/b` matches `a/b` and
//!   `a/x/y/b`, and a trailing `**` (`dir/**`) matches everything below.
//! - A pattern excludes a path when it matches the path **or any of its parent directories**:
//!   `node_modules` excludes `node_modules/x/y.js` too (moby's `MatchesOrParentMatches`).
//! - Matching does not distinguish files from directories: a trailing `/` is cleaned away, so
//!   `build/` also excludes a file named `build` (unlike `.gitignore`).
//!
//! The Dockerfile and the ignore file itself are always sent, even when a pattern matches them;
//! that is applied by [`Context`](crate::Context) when it plans a directory, not here. [`dockerfile_ignore_file`] names the
//! Dockerfile-specific ignore file (`<Dockerfile>.dockerignore`) that takes precedence over the
//! root `.dockerignore`.
//!
//! ```
//! use docker_context::dockerignore::DockerIgnore;
//!
//! let ignore = DockerIgnore::parse(
//!     "# Markdown stays out, except the READMEs, except the secret one.\n\
//!      *.md\n\
//!      !README*.md\n\
//!      README-secret.md\n\
//!      node_modules\n",
//! )?;
//! assert!(ignore.is_excluded("CHANGELOG.md"));
//! assert!(!ignore.is_excluded("README.md"));
//! assert!(ignore.is_excluded("README-secret.md"));
//! assert!(!ignore.is_excluded("docs/guide.md")); // `*` does not cross `/`
//! assert!(ignore.is_excluded("node_modules/left-pad/index.js")); // a parent matches
//! # Ok::<(), docker_context::dockerignore::IgnoreError>(())
//! ```

use std::fmt;

/// Name of the ignore file at the root of a build context.
pub const DOCKERIGNORE_FILE: &str = ".dockerignore";

/// The Dockerfile-specific ignore file for a Dockerfile at `dockerfile` (a `/`-separated path
/// relative to the context): `<dockerfile>.dockerignore`, in the same directory.
///
/// When it exists, BuildKit uses it instead of the root `.dockerignore` (Docker's documentation,
/// "Filename and location" of `.dockerignore` files).
///
/// ```
/// use docker_context::dockerignore::dockerfile_ignore_file;
///
/// assert_eq!(dockerfile_ignore_file("build/app.Dockerfile"), "build/app.Dockerfile.dockerignore");
/// assert_eq!(dockerfile_ignore_file("Dockerfile"), "Dockerfile.dockerignore");
/// ```
pub fn dockerfile_ignore_file(dockerfile: &str) -> String {
    format!("{dockerfile}{DOCKERIGNORE_FILE}")
}

/// An invalid line of an ignore file; Docker refuses to build with such a file.
///
/// Every variant carries the 1-based `line` number in the ignore file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IgnoreError {
    /// The line is `!` with no pattern after it (Docker: `illegal exclusion pattern: "!"`).
    #[error("line {line}: illegal exclusion pattern \"!\": an exception needs a pattern")]
    EmptyException {
        /// 1-based line number.
        line: usize,
    },
    /// A `[` opens a character class that no `]` closes.
    #[error("line {line}: invalid pattern `{pattern}`: unterminated character class `[`")]
    UnterminatedClass {
        /// 1-based line number.
        line: usize,
        /// The pattern as cleaned (without a leading `!`).
        pattern: String,
    },
    /// A character class element starts with `-` or `]`, e.g. `[]` or `[-a]`, which Go's
    /// `filepath.Match` rejects (write `\-` or `\]` to mean the character).
    #[error(
        "line {line}: invalid pattern `{pattern}`: `{found}` cannot start a character class \
         element (escape it as `\\{found}`)"
    )]
    InvalidClassElement {
        /// 1-based line number.
        line: usize,
        /// The pattern as cleaned (without a leading `!`).
        pattern: String,
        /// The offending character.
        found: char,
    },
    /// A character class range whose end is below its start, e.g. `[z-a]`.
    #[error("line {line}: invalid pattern `{pattern}`: character range `{low}-{high}` is reversed")]
    ReversedRange {
        /// 1-based line number.
        line: usize,
        /// The pattern as cleaned (without a leading `!`).
        pattern: String,
        /// Start of the range.
        low: char,
        /// End of the range (less than `low`).
        high: char,
    },
    /// The pattern ends with a `\` that escapes nothing.
    #[error("line {line}: invalid pattern `{pattern}`: trailing `\\` escapes nothing")]
    TrailingBackslash {
        /// 1-based line number.
        line: usize,
        /// The pattern as cleaned (without a leading `!`).
        pattern: String,
    },
}

impl IgnoreError {
    /// The 1-based line number of the invalid line.
    pub fn line(&self) -> usize {
        match self {
            Self::EmptyException { line }
            | Self::UnterminatedClass { line, .. }
            | Self::InvalidClassElement { line, .. }
            | Self::ReversedRange { line, .. }
            | Self::TrailingBackslash { line, .. } => *line,
        }
    }
}

/// One element of a compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// A character matched literally.
    Literal(char),
    /// `?`: one character other than `/`.
    AnyChar,
    /// `*`: any run of characters other than `/`.
    Star,
    /// `**` followed by more pattern: nothing, or anything ending in `/` (whole directories).
    AnyDirs,
    /// `**` at the end of the pattern: anything at all.
    AnyRest,
    /// `[...]`: a character class.
    Class {
        /// `[^...]`.
        negated: bool,
        /// Inclusive ranges; a single character is a range of one.
        ranges: Vec<(char, char)>,
    },
}

impl Token {
    /// Whether this single-character token accepts `c` (false for the repeating tokens).
    fn accepts(&self, c: char) -> bool {
        match self {
            Token::Literal(l) => *l == c,
            Token::AnyChar => c != '/',
            Token::Class { negated, ranges } => {
                ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
            }
            Token::Star | Token::AnyDirs | Token::AnyRest => false,
        }
    }
}

/// One pattern line of an ignore file, cleaned and compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    text: String,
    exception: bool,
    line: usize,
    tokens: Vec<Token>,
}

impl Pattern {
    /// The cleaned pattern, without the `!` of an exception.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether this is an exception (`!pattern`), which re-includes what it matches.
    pub fn is_exception(&self) -> bool {
        self.exception
    }

    /// The 1-based line of the ignore file this pattern came from.
    pub fn line(&self) -> usize {
        self.line
    }

    /// Whether this pattern matches `relative_path` or one of its parent directories, ignoring
    /// whether it is an exception (the path is cleaned first).
    ///
    /// ```
    /// use docker_context::dockerignore::DockerIgnore;
    ///
    /// let ignore = DockerIgnore::parse("!logs")?;
    /// assert!(ignore.patterns()[0].matches("logs/today.txt"));
    /// # Ok::<(), docker_context::dockerignore::IgnoreError>(())
    /// ```
    pub fn matches(&self, relative_path: &str) -> bool {
        let path = clean(relative_path);
        self.matches_or_parent(path.trim_start_matches('/'))
    }

    /// Whether the pattern matches `path` or one of its parent directories.
    fn matches_or_parent(&self, path: &str) -> bool {
        // One pass over the path: a parent directory `a/b` of `a/b/c` is a prefix ending just
        // before a `/`, so check acceptance there.
        let mut run = Nfa::new(&self.tokens);
        for c in path.chars() {
            if c == '/' && run.accepts() {
                return true;
            }
            run.step(c);
            if run.is_dead() {
                return false;
            }
        }
        run.accepts()
    }

    /// Whether the pattern could match some path strictly beneath the directory `dir` (or
    /// matches `dir` or one of its parents, which also covers everything beneath).
    ///
    /// This may answer `true` when nothing beneath matches (it is used to decide whether a walk
    /// must look inside an excluded directory), never `false` when something does.
    fn may_match_beneath(&self, dir: &str) -> bool {
        if self.matches_or_parent(dir) {
            return true;
        }
        let mut run = Nfa::new(&self.tokens);
        for c in dir.chars().chain(['/']) {
            run.step(c);
            if run.is_dead() {
                return false;
            }
        }
        true
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.exception {
            f.write_str("!")?;
        }
        f.write_str(&self.text)
    }
}

/// A running match of a token list against a path, one character at a time.
///
/// States are token positions: state `2*i` means "at token `i`", and for an `AnyDirs` token
/// state `2*i + 1` means "inside it, after its `.*` consumed something but before its final
/// `/`". The final state `2*len` accepts. This runs in time linear in the path for any pattern.
struct Nfa<'a> {
    tokens: &'a [Token],
    current: Vec<bool>,
    next: Vec<bool>,
}

impl<'a> Nfa<'a> {
    fn new(tokens: &'a [Token]) -> Self {
        let size = 2 * tokens.len() + 2;
        let mut nfa = Nfa {
            tokens,
            current: vec![false; size],
            next: vec![false; size],
        };
        nfa.current[0] = true;
        Self::close(tokens, &mut nfa.current);
        nfa
    }

    /// Adds the states reachable without consuming a character: every repeating token may
    /// match nothing.
    fn close(tokens: &[Token], states: &mut [bool]) {
        // Epsilon moves only go forward (token i to token i + 1), so one pass suffices.
        for (i, token) in tokens.iter().enumerate() {
            if states[2 * i] && matches!(token, Token::Star | Token::AnyDirs | Token::AnyRest) {
                states[2 * (i + 1)] = true;
            }
        }
    }

    fn step(&mut self, c: char) {
        self.next.iter_mut().for_each(|s| *s = false);
        for (i, token) in self.tokens.iter().enumerate() {
            let at = self.current[2 * i];
            let inside = self.current[2 * i + 1];
            if !at && !inside {
                continue;
            }
            match token {
                Token::Star => {
                    if at && c != '/' {
                        self.next[2 * i] = true;
                    }
                }
                Token::AnyRest => {
                    if at {
                        self.next[2 * i] = true;
                    }
                }
                Token::AnyDirs => {
                    // `(.*/)?`: `c` is consumed by the `.*`, or it is the closing `/`.
                    self.next[2 * i + 1] = true;
                    if c == '/' {
                        self.next[2 * (i + 1)] = true;
                    }
                }
                single => {
                    if at && single.accepts(c) {
                        self.next[2 * (i + 1)] = true;
                    }
                }
            }
        }
        Self::close(self.tokens, &mut self.next);
        std::mem::swap(&mut self.current, &mut self.next);
    }

    fn accepts(&self) -> bool {
        self.current[2 * self.tokens.len()]
    }

    fn is_dead(&self) -> bool {
        !self.current.iter().any(|&s| s)
    }
}

/// The parsed patterns of a `.dockerignore` file.
///
/// See the [module documentation](self) for the rules.
///
/// ```
/// use docker_context::dockerignore::DockerIgnore;
///
/// // Send only `src/` and the lock file: exclude everything, then re-include.
/// let ignore = DockerIgnore::parse("*\n!src\n!Cargo.lock\n")?;
/// assert!(ignore.is_excluded("target"));
/// assert!(ignore.is_excluded("target/debug/app"));
/// assert!(!ignore.is_excluded("src/main.rs"));
/// assert!(!ignore.is_excluded("Cargo.lock"));
///
/// let bad = DockerIgnore::parse("ok\n[a-\n").unwrap_err();
/// assert_eq!(bad.line(), 2);
/// # Ok::<(), docker_context::dockerignore::IgnoreError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DockerIgnore {
    patterns: Vec<Pattern>,
}

impl DockerIgnore {
    /// Parses the text of an ignore file.
    ///
    /// A UTF-8 byte-order mark at the start and `\r\n` line ends are accepted.
    ///
    /// # Errors
    ///
    /// An [`IgnoreError`] naming the first invalid line: a lone `!`, or a pattern that Go's
    /// `filepath.Match` rejects (unterminated or malformed character class, trailing `\`), or a
    /// reversed class range.
    pub fn parse(text: &str) -> Result<Self, IgnoreError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        // Comments are recognised before trimming: only `#` in column 1 starts one.
        Self::from_lines(
            text.lines()
                .map(|raw| (!raw.starts_with('#')).then_some(raw)),
        )
    }

    /// The rules of a list of patterns, one pattern each (as BuildKit sends a local source's
    /// include and exclude patterns): the same as [`DockerIgnore::parse`] of their lines,
    /// except that nothing is a comment. Errors name the pattern's 1-based position as its
    /// line.
    ///
    /// ```
    /// use docker_context::dockerignore::DockerIgnore;
    ///
    /// let rules = DockerIgnore::from_patterns(["#notes", "src", "!src/keep.rs"])?;
    /// assert!(rules.is_excluded("#notes"));
    /// assert!(rules.is_excluded("src/lib.rs"));
    /// assert!(!rules.is_excluded("src/keep.rs"));
    /// # Ok::<(), docker_context::dockerignore::IgnoreError>(())
    /// ```
    pub fn from_patterns<'a>(
        patterns: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, IgnoreError> {
        Self::from_lines(patterns.into_iter().map(Some))
    }

    /// Compiles lines (`None`: a comment).
    fn from_lines<'a>(lines: impl Iterator<Item = Option<&'a str>>) -> Result<Self, IgnoreError> {
        let mut patterns = Vec::new();
        for (index, raw) in lines.enumerate() {
            let line = index + 1;
            let Some(raw) = raw else {
                continue;
            };
            let trimmed = raw.trim();
            if trimmed.is_empty() {
                continue;
            }
            let (exception, body) = match trimmed.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, trimmed),
            };
            if body.is_empty() {
                return Err(IgnoreError::EmptyException { line });
            }
            let mut cleaned = clean(body);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
            let tokens = compile(&cleaned, line)?;
            if cleaned == "." || cleaned == "/" {
                // Docker's documentation: "For historical reasons, the pattern `.` is ignored."
                // (It could never match a path inside the context anyway; neither can `/`.)
                continue;
            }
            patterns.push(Pattern {
                text: cleaned,
                exception,
                line,
                tokens,
            });
        }
        Ok(Self { patterns })
    }

    /// The patterns, in file order (comments, blank lines and `.` left out).
    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }

    /// Whether there are no patterns (nothing is excluded).
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether any pattern is an exception (`!pattern`).
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(Pattern::is_exception)
    }

    /// Whether `relative_path` (a `/`-separated path relative to the context root) is excluded
    /// from the build context.
    ///
    /// The last pattern that matches the path or one of its parent directories decides; a path
    /// no pattern matches is included. The path is cleaned first (`./a//b` is `a/b`); the
    /// context root itself (`.` or an empty path) is never excluded.
    ///
    /// ```
    /// use docker_context::dockerignore::DockerIgnore;
    ///
    /// let ignore = DockerIgnore::parse("docs\n!docs/keep.txt\n")?;
    /// assert!(ignore.is_excluded("docs"));
    /// assert!(ignore.is_excluded("docs/drop.txt"));
    /// assert!(!ignore.is_excluded("docs/keep.txt"));
    /// # Ok::<(), docker_context::dockerignore::IgnoreError>(())
    /// ```
    pub fn is_excluded(&self, relative_path: &str) -> bool {
        let path = clean(relative_path);
        let path = path.trim_start_matches('/');
        if path.is_empty() || path == "." {
            return false;
        }
        let mut excluded = false;
        for pattern in &self.patterns {
            // An exclusion only matters while the path is included, an exception only while it
            // is excluded.
            if pattern.exception != excluded {
                continue;
            }
            if pattern.matches_or_parent(path) {
                excluded = !pattern.exception;
            }
        }
        excluded
    }

    /// Whether some exception could re-include a path strictly beneath the directory `dir`.
    ///
    /// A walk may skip an excluded directory entirely when this is `false`. It never answers
    /// `false` when something beneath could be re-included (so `!**/*.rs` keeps every directory
    /// open); it may answer `true` when nothing is.
    ///
    /// ```
    /// use docker_context::dockerignore::DockerIgnore;
    ///
    /// let ignore = DockerIgnore::parse("vendor\n!vendor/patched/**\n")?;
    /// assert!(ignore.may_include_beneath("vendor"));
    /// assert!(!ignore.may_include_beneath("vendor/other"));
    /// # Ok::<(), docker_context::dockerignore::IgnoreError>(())
    /// ```
    pub fn may_include_beneath(&self, dir: &str) -> bool {
        let dir = clean(dir);
        let dir = dir.trim_start_matches('/');
        if dir.is_empty() || dir == "." {
            return self.has_exceptions();
        }
        self.patterns
            .iter()
            .any(|p| p.exception && p.may_match_beneath(dir))
    }
}

/// Cleans a `/`-separated path like Go's `filepath.Clean`: duplicate `/` and `.` elements are
/// removed, `..` cancels the element before it (and is dropped at the root of a rooted path),
/// and an empty result is `.`.
fn clean(path: &str) -> String {
    if path.is_empty() {
        return ".".to_owned();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                _ if rooted => {}
                _ => parts.push(".."),
            },
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    if rooted {
        format!("/{joined}")
    } else if joined.is_empty() {
        ".".to_owned()
    } else {
        joined
    }
}

/// Compiles a cleaned pattern into tokens, with the syntax checks of Go's `filepath.Match`.
fn compile(pattern: &str, line: usize) -> Result<Vec<Token>, IgnoreError> {
    let mut tokens = Vec::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                // `**/` is `**`: the slash belongs to the directory wildcard.
                if chars.peek() == Some(&'/') {
                    chars.next();
                }
                tokens.push(if chars.peek().is_none() {
                    Token::AnyRest
                } else {
                    Token::AnyDirs
                });
            }
            '*' => tokens.push(Token::Star),
            '?' => tokens.push(Token::AnyChar),
            '\\' => match chars.next() {
                Some(escaped) => tokens.push(Token::Literal(escaped)),
                None => {
                    return Err(IgnoreError::TrailingBackslash {
                        line,
                        pattern: pattern.to_owned(),
                    });
                }
            },
            '[' => tokens.push(compile_class(&mut chars, pattern, line)?),
            other => tokens.push(Token::Literal(other)),
        }
    }
    Ok(tokens)
}

/// Compiles a character class; the opening `[` has been consumed.
fn compile_class(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    pattern: &str,
    line: usize,
) -> Result<Token, IgnoreError> {
    let unterminated = || IgnoreError::UnterminatedClass {
        line,
        pattern: pattern.to_owned(),
    };
    let negated = chars.next_if_eq(&'^').is_some();
    let mut ranges = Vec::new();
    loop {
        if !ranges.is_empty() && chars.next_if_eq(&']').is_some() {
            return Ok(Token::Class { negated, ranges });
        }
        let low = class_char(chars, pattern, line)?;
        let high = if chars.next_if_eq(&'-').is_some() {
            class_char(chars, pattern, line)?
        } else {
            low
        };
        if high < low {
            return Err(IgnoreError::ReversedRange {
                line,
                pattern: pattern.to_owned(),
                low,
                high,
            });
        }
        ranges.push((low, high));
        if chars.peek().is_none() {
            return Err(unterminated());
        }
    }
}

/// One (possibly escaped) character of a class, as Go's `getEsc` reads it.
fn class_char(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    pattern: &str,
    line: usize,
) -> Result<char, IgnoreError> {
    let unterminated = || IgnoreError::UnterminatedClass {
        line,
        pattern: pattern.to_owned(),
    };
    match chars.next() {
        None => Err(unterminated()),
        Some(found @ ('-' | ']')) => Err(IgnoreError::InvalidClassElement {
            line,
            pattern: pattern.to_owned(),
            found,
        }),
        Some('\\') => chars.next().ok_or_else(unterminated),
        Some(c) => Ok(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ignore(text: &str) -> DockerIgnore {
        DockerIgnore::parse(text).expect("valid ignore file")
    }

    #[test]
    fn clean_follows_go_filepath_clean() {
        // Go's documented examples for filepath.Clean.
        assert_eq!(clean("abc"), "abc");
        assert_eq!(clean("abc/def"), "abc/def");
        assert_eq!(clean("a/b/c/."), "a/b/c");
        assert_eq!(clean("a/b/c/.."), "a/b");
        assert_eq!(clean("a//b"), "a/b");
        assert_eq!(clean("a/./b"), "a/b");
        assert_eq!(clean("a/../b"), "b");
        assert_eq!(clean("a/../.."), "..");
        assert_eq!(clean("/../a"), "/a");
        assert_eq!(clean("/"), "/");
        assert_eq!(clean(""), ".");
        assert_eq!(clean("./"), ".");
        assert_eq!(clean("abc/"), "abc");
    }

    #[test]
    fn documented_example_temp_patterns() {
        // Docker's documented example file.
        let ig = ignore("# comment\n*/temp*\n*/*/temp*\ntemp?\n");
        // `*/temp*`: names starting with temp in any immediate subdirectory of the root.
        assert!(ig.is_excluded("somedir/temporary.txt"));
        assert!(ig.is_excluded("somedir/temp"));
        // `*/*/temp*`: two levels below the root.
        assert!(ig.is_excluded("somedir/subdir/temporary.txt"));
        // `temp?`: in the root, `temp` plus one character.
        assert!(ig.is_excluded("tempa"));
        assert!(ig.is_excluded("tempb"));
        // None of them reaches the root's own `temp*` files or deeper levels.
        assert!(!ig.is_excluded("temporary.txt"));
        assert!(!ig.is_excluded("temp"));
        assert!(!ig.is_excluded("a/b/c/temp.txt"));
        // `?` is exactly one character.
        assert!(!ig.is_excluded("tempab"));
    }

    #[test]
    fn star_and_question_do_not_cross_separators() {
        // filepath.Match: `*` is any sequence of non-separator characters, `?` one.
        let ig = ignore("*.log\nfile?.txt\n");
        assert!(ig.is_excluded("debug.log"));
        assert!(ig.is_excluded(".log"));
        assert!(!ig.is_excluded("logs/debug.log"));
        assert!(ig.is_excluded("file1.txt"));
        assert!(!ig.is_excluded("file.txt"));
        assert!(!ig.is_excluded("file/.txt"));
    }

    #[test]
    fn double_star_at_start_middle_and_end() {
        // "`**` matches any number of directories (including zero)".
        let start = ignore("**/*.go\n");
        assert!(start.is_excluded("main.go"));
        assert!(start.is_excluded("cmd/app/main.go"));
        assert!(!start.is_excluded("main.go.txt"));

        let middle = ignore("a/**/b\n");
        assert!(middle.is_excluded("a/b"));
        assert!(middle.is_excluded("a/x/b"));
        assert!(middle.is_excluded("a/x/y/b"));
        assert!(middle.is_excluded("a/x/b/inside")); // via the parent `a/x/b`
        assert!(!middle.is_excluded("a/xb"));
        assert!(!middle.is_excluded("ab"));

        let end = ignore("build/**\n");
        assert!(end.is_excluded("build/out"));
        assert!(end.is_excluded("build/a/b/c"));
        assert!(!end.is_excluded("build")); // `build/**` needs something below `build`
        assert!(!end.is_excluded("builder"));

        let everything = ignore("**\n");
        assert!(everything.is_excluded("x"));
        assert!(everything.is_excluded("x/y/z"));

        let named = ignore("**/node_modules\n");
        assert!(named.is_excluded("node_modules"));
        assert!(named.is_excluded("web/node_modules/x/index.js"));
        assert!(!named.is_excluded("my_node_modules"));
    }

    #[test]
    fn exceptions_last_match_wins() {
        // Docker's documented example: README files are included, except README-secret.md.
        let ig = ignore("*.md\n!README*.md\nREADME-secret.md\n");
        assert!(ig.is_excluded("CHANGELOG.md"));
        assert!(!ig.is_excluded("README.md"));
        assert!(!ig.is_excluded("README-public.md"));
        assert!(ig.is_excluded("README-secret.md"));

        // Reordered: `!README*.md` comes last and re-includes README-secret.md too.
        let ig = ignore("*.md\nREADME-secret.md\n!README*.md\n");
        assert!(ig.is_excluded("CHANGELOG.md"));
        assert!(!ig.is_excluded("README-secret.md"));
    }

    #[test]
    fn exception_reincludes_file_in_excluded_directory() {
        let ig = ignore("dir\n!dir/keep.txt\n");
        assert!(ig.is_excluded("dir"));
        assert!(ig.is_excluded("dir/other.txt"));
        assert!(ig.is_excluded("dir/sub/keep.txt"));
        assert!(!ig.is_excluded("dir/keep.txt"));
        assert!(ig.may_include_beneath("dir"));
        assert!(!ig.may_include_beneath("dir/sub"));
        assert!(!ig.may_include_beneath("other"));
    }

    #[test]
    fn exclude_everything_then_allow_list() {
        // "you may want to specify which files to include... specify * as the first pattern,
        // followed by one or more ! exception patterns."
        let ig = ignore("*\n!src\n!*.toml\n");
        assert!(ig.is_excluded("target/debug/app"));
        assert!(!ig.is_excluded("src/lib.rs"));
        assert!(!ig.is_excluded("src/deep/mod.rs"));
        assert!(!ig.is_excluded("Cargo.toml"));
        assert!(ig.is_excluded("docs/Cargo.toml")); // `*.toml` is root-only
    }

    #[test]
    fn leading_slash_dot_slash_and_trailing_slash_are_cleaned() {
        // "/foo/bar and foo/bar both exclude a file or directory named bar in foo".
        for pattern in [
            "/foo/bar",
            "foo/bar",
            "./foo/bar",
            "foo/bar/",
            "foo//bar",
            "foo/x/../bar",
        ] {
            let ig = ignore(pattern);
            assert!(ig.is_excluded("foo/bar"), "{pattern}");
            assert!(ig.is_excluded("foo/bar/baz"), "{pattern}");
            assert!(!ig.is_excluded("bar"), "{pattern}");
            assert!(!ig.is_excluded("x/foo/bar"), "{pattern}");
            assert_eq!(ig.patterns()[0].as_str(), "foo/bar");
        }
        let ig = ignore("!/keep\n");
        assert_eq!(ig.patterns()[0].as_str(), "keep");
        assert!(ig.patterns()[0].is_exception());
    }

    #[test]
    fn comments_blank_lines_and_whitespace() {
        let ig = ignore("# a comment\n\n   \n  secret.txt   \n\t*.tmp\r\n! keep.tmp\n");
        assert_eq!(ig.patterns().len(), 3);
        assert!(ig.is_excluded("secret.txt")); // trailing spaces trimmed
        assert!(ig.is_excluded("x.tmp")); // leading tab trimmed, CRLF accepted
        assert!(!ig.is_excluded("keep.tmp")); // space after `!` trimmed
        assert!(!ig.is_excluded("# a comment"));

        // Only `#` in column 1 starts a comment; an indented `#` is a pattern.
        let ig = ignore("  #hash\n");
        assert!(ig.is_excluded("#hash"));
    }

    #[test]
    fn dot_pattern_is_ignored() {
        // "For historical reasons, the pattern . is ignored."
        let ig = ignore(".\n./\n");
        assert!(ig.is_empty());
        assert!(!ig.is_excluded("anything"));
    }

    #[test]
    fn character_classes() {
        // filepath.Match: `[` [ `^` ] { character-range } `]`.
        let ig = ignore("file[0-9].txt\nlog[^a-c]\n[ab]x\n");
        assert!(ig.is_excluded("file7.txt"));
        assert!(!ig.is_excluded("filex.txt"));
        assert!(ig.is_excluded("logd"));
        assert!(!ig.is_excluded("logb"));
        assert!(ig.is_excluded("ax"));
        assert!(ig.is_excluded("bx"));
        assert!(!ig.is_excluded("cx"));
        // `!` does not negate in Go's syntax: it is a member of the class.
        let ig = ignore("[!a]b\n");
        assert!(ig.is_excluded("!b"));
        assert!(ig.is_excluded("ab"));
        assert!(!ig.is_excluded("cb"));
    }

    #[test]
    fn escapes_make_characters_literal() {
        let ig = ignore("literal\\*star\nq\\?\n\\[x]\n");
        assert!(ig.is_excluded("literal*star"));
        assert!(!ig.is_excluded("literalXstar"));
        assert!(ig.is_excluded("q?"));
        assert!(!ig.is_excluded("qa"));
        assert!(ig.is_excluded("[x]"));
        assert!(!ig.is_excluded("x"));
        // Escapes inside a class.
        let ig = ignore("a[\\]\\-]b\n");
        assert!(ig.is_excluded("a]b"));
        assert!(ig.is_excluded("a-b"));
        assert!(!ig.is_excluded("a\\b"));
    }

    #[test]
    fn regex_metacharacters_are_literal() {
        let ig = ignore("a.b\n(x)+{y}$|z\n");
        assert!(ig.is_excluded("a.b"));
        assert!(!ig.is_excluded("axb"));
        assert!(ig.is_excluded("(x)+{y}$|z"));
    }

    #[test]
    fn invalid_patterns_report_the_line() {
        let err = DockerIgnore::parse("ok\n# fine\n!\n").unwrap_err();
        assert_eq!(err, IgnoreError::EmptyException { line: 3 });
        assert!(err.to_string().contains("line 3"), "{err}");

        let err = DockerIgnore::parse("a\nb[cd\n").unwrap_err();
        assert!(
            matches!(err, IgnoreError::UnterminatedClass { line: 2, ref pattern } if pattern == "b[cd")
        );
        assert!(err.to_string().contains("line 2") && err.to_string().contains("b[cd"));

        assert!(matches!(
            DockerIgnore::parse("x[]y").unwrap_err(),
            IgnoreError::InvalidClassElement {
                line: 1,
                found: ']',
                ..
            }
        ));
        assert!(matches!(
            DockerIgnore::parse("[-a]").unwrap_err(),
            IgnoreError::InvalidClassElement { found: '-', .. }
        ));
        assert!(matches!(
            DockerIgnore::parse("[a-]").unwrap_err(),
            IgnoreError::InvalidClassElement { found: ']', .. }
        ));
        assert!(matches!(
            DockerIgnore::parse("\n[z-a]").unwrap_err(),
            IgnoreError::ReversedRange {
                line: 2,
                low: 'z',
                high: 'a',
                ..
            }
        ));
        assert!(matches!(
            DockerIgnore::parse("abc\\").unwrap_err(),
            IgnoreError::TrailingBackslash { line: 1, .. }
        ));
        assert!(matches!(
            DockerIgnore::parse("[a\\").unwrap_err(),
            IgnoreError::UnterminatedClass { .. }
        ));
    }

    #[test]
    fn byte_order_mark_is_skipped() {
        let ig = ignore("\u{feff}secret\n");
        assert!(ig.is_excluded("secret"));
    }

    #[test]
    fn paths_are_cleaned_before_matching() {
        let ig = ignore("a/b\n");
        assert!(ig.is_excluded("./a/b"));
        assert!(ig.is_excluded("a//b/"));
        assert!(!ig.is_excluded("."));
        assert!(!ig.is_excluded(""));
    }

    #[test]
    fn may_include_beneath_is_conservative() {
        let ig = ignore("*\n!**/*.rs\n");
        assert!(ig.may_include_beneath("target"));
        assert!(ig.may_include_beneath("a/b/c"));

        let ig = ignore("vendor\n!vendor/*/LICENSE\n");
        assert!(ig.may_include_beneath("vendor"));
        assert!(ig.may_include_beneath("vendor/x"));
        assert!(!ig.may_include_beneath("vendor/x/y"));

        let ig = ignore("build\n");
        assert!(!ig.may_include_beneath("build"));
    }

    #[test]
    fn pathological_pattern_is_fast() {
        let ig = ignore(&format!("{}b\n", "*a".repeat(30)));
        let path = "a".repeat(200);
        assert!(!ig.is_excluded(&path));
    }

    #[test]
    fn dockerfile_specific_ignore_name() {
        assert_eq!(
            dockerfile_ignore_file("dev.Dockerfile"),
            "dev.Dockerfile.dockerignore"
        );
    }
}

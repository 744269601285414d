//! Shell-like word processing as the Dockerfile builder does it: quote removal,
//! escapes and `$VAR` / `${VAR…}` substitution.
//!
//! Rules (Dockerfile reference, "Environment replacement"):
//!
//! * `$name` and `${name}` are equivalent; a variable that is not set expands
//!   to the empty string. `$` followed by something that is not a name (or
//!   nothing) stays a literal `$`.
//! * `${name:-word}` gives `word` when `name` is unset *or empty*,
//!   `${name-word}` only when it is unset.
//! * `${name:+word}` gives `word` when `name` is set *and non-empty*,
//!   `${name+word}` whenever it is set.
//! * `${name:?msg}` / `${name?msg}` fail the build when `name` is unset (or,
//!   with `:`, empty).
//! * `${name#pattern}`, `${name##pattern}`, `${name%pattern}`,
//!   `${name%%pattern}`, `${name/pattern/repl}` and `${name//pattern/repl}`
//!   trim or replace glob matches (`*`, `?`; `\*`, `\?`, `\\` are literal).
//! * Single quotes keep everything literal; double quotes keep everything but
//!   `$` expansions, and the escape character only escapes `"`, `$` and
//!   itself inside them. Outside quotes the escape character makes the next
//!   character literal.
//!
//! Limits, so that no input can exhaust the stack, the memory or the time:
//!
//! * `${…}` substitutions nest at most [`MAX_NESTING`] deep
//!   ([`ExpandError::TooDeep`]);
//! * the expansions of one Dockerfile may do at most [`MAX_EXPANSION_WORK`]
//!   steps ([`ExpandError::TooLarge`]): a step is a character a substitution
//!   produces, or one character of a value run through a pattern's matcher
//!   (which costs the pattern's length plus one). Without it, `ARG A=$A$A`
//!   repeated doubles the value on every line.
//!
//! Patterns are matched by simulating their automaton (one state per pattern
//! element, a `*` looping on itself) over the value, all states at once: a
//! prefix, suffix or leftmost-longest match costs O(value × pattern), never
//! the exponential number of ways a backtracking matcher can split a value
//! between the stars.

use std::cell::Cell;
use std::fmt;

/// How deep `${…}` substitutions may nest: `${A:-${B:-${C}}}` is 3 deep.
/// Deeper nesting is an [`ExpandError::TooDeep`] (the Dockerfile reference
/// sets no limit; real Dockerfiles nest two or three deep).
pub const MAX_NESTING: usize = 64;

/// How many steps (characters produced by substitutions, and characters of
/// values run through a pattern matcher times the pattern's length plus one)
/// the expansions of one Dockerfile may take before
/// [`ExpandError::TooLarge`]: 2²⁴, a few tens of milliseconds of work.
pub const MAX_EXPANSION_WORK: usize = 1 << 24;

/// An error while expanding variables in a Dockerfile word.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExpandError {
    /// `${` was opened but never closed with `}`.
    #[error("missing '}}' in `${{…}}` substitution")]
    MissingBrace,
    /// `${}`, `${:…}` or `${{…}` — there is no variable name.
    #[error("bad substitution: `${{` must be followed by a variable name")]
    BadSubstitution,
    /// A modifier other than the supported ones, such as `${name^}`.
    #[error("unsupported modifier `{0}` in substitution")]
    UnsupportedModifier(String),
    /// `${name:?message}` or `${name?message}` hit an unset (or empty) variable.
    #[error("{name}: {message}")]
    Required {
        /// The variable that was required.
        name: String,
        /// The message given in the substitution, or Docker's default.
        message: String,
    },
    /// A quoted string was not closed before the end of the word.
    #[error("unterminated {0} quote")]
    UnterminatedQuote(Quote),
    /// A `#`, `%` or `/` pattern contains an escape other than `\*`, `\?`,
    /// `\\`, `\}` or `\/`.
    #[error("invalid pattern `{0}` in substitution")]
    InvalidPattern(String),
    /// The word uses one of BuildKit's automatic platform ARGs (such as
    /// `TARGETARCH`), whose value the builder sets from the platforms of the
    /// build and which was not given as a build arg.
    #[error(
        "`{0}` is set by the builder from the build platform; pass it as a build arg to resolve it"
    )]
    PlatformArg(String),
    /// `${…}` substitutions nested more than [`MAX_NESTING`] deep.
    #[error("`${{…}}` substitutions nested more than {MAX_NESTING} deep")]
    TooDeep,
    /// The expansions would take more than [`MAX_EXPANSION_WORK`] steps (see
    /// there); values that keep doubling, or patterns run over huge values.
    #[error(
        "expansion too large: more than {MAX_EXPANSION_WORK} steps (characters produced, pattern-matching work)"
    )]
    TooLarge,
}

/// Which kind of quote was left open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quote {
    /// `'…`
    Single,
    /// `"…`
    Double,
}

impl fmt::Display for Quote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Quote::Single => "single",
            Quote::Double => "double",
        })
    }
}

/// Looks a variable up: `Ok(None)` when it is not set.
/// The values (`'v`) may outlive the lookup itself (`'a`).
pub(crate) type Lookup<'a, 'v> = &'a dyn Fn(&str) -> Result<Option<&'v str>, ExpandError>;

/// A lookup in which no variable is set.
pub(crate) fn no_vars<'a>(_: &str) -> Result<Option<&'a str>, ExpandError> {
    Ok(None)
}

/// What is left of the [`MAX_EXPANSION_WORK`] steps, shared by the
/// expansions of one Dockerfile.
#[derive(Debug)]
pub(crate) struct Budget(Cell<usize>);

impl Budget {
    pub(crate) fn new() -> Self {
        Budget(Cell::new(MAX_EXPANSION_WORK))
    }

    /// No limit, for text in which no variable is set: there the output is
    /// at most the input times the nesting depth.
    fn unlimited() -> Self {
        Budget(Cell::new(usize::MAX))
    }

    /// Takes `steps` from the budget, or fails when fewer are left.
    fn spend(&self, steps: usize) -> Result<(), ExpandError> {
        let left = self.0.get();
        if steps > left {
            self.0.set(0);
            return Err(ExpandError::TooLarge);
        }
        self.0.set(left - steps);
        Ok(())
    }
}

/// Options of one lexing pass.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mode {
    /// The escape character (`\` or the `# escape=` directive's).
    pub escape: char,
    /// Keep quote characters in the output.
    pub raw_quotes: bool,
    /// Keep escape characters in the output.
    pub raw_escapes: bool,
    /// Leave references to unset variables as written.
    pub skip_unset: bool,
}

impl Mode {
    /// Normal processing: quotes and escapes removed, variables substituted.
    pub(crate) fn expand(escape: char) -> Self {
        Mode {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_unset: false,
        }
    }
}

/// Expands `word` as one word (spaces are kept), spending from `budget`.
pub(crate) fn expand_word(
    word: &str,
    escape: char,
    vars: Lookup<'_, '_>,
    budget: &Budget,
) -> Result<String, ExpandError> {
    Ok(Lexer::new(word, Mode::expand(escape), vars, budget, false)
        .run()?
        .0)
}

/// Processes `text` without variables (as the parser does to find
/// here-documents) and splits the result into words at unquoted whitespace.
pub(crate) fn split_words(text: &str, mode: Mode) -> Result<Vec<String>, ExpandError> {
    Ok(Lexer::new(text, mode, &no_vars, &Budget::unlimited(), true)
        .run()?
        .1)
}

/// The words of the text at the top level, when they are asked for.
#[derive(Default)]
struct Words {
    enabled: bool,
    word: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, ch: char) {
        if !self.enabled {
            return;
        }
        if ch.is_whitespace() {
            if self.in_word && !self.word.is_empty() {
                self.words.push(std::mem::take(&mut self.word));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(ch);
        }
    }

    fn add_raw_char(&mut self, ch: char) {
        if !self.enabled {
            return;
        }
        self.word.push(ch);
        self.in_word = true;
    }

    fn add_str(&mut self, s: &str) {
        if self.enabled {
            s.chars().for_each(|c| self.add_char(c));
        }
    }

    fn add_raw_str(&mut self, s: &str) {
        if !self.enabled {
            return;
        }
        self.word.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.word.is_empty() {
            self.words.push(self.word);
        }
        self.words
    }
}

struct Lexer<'a, 'v> {
    chars: Vec<char>,
    pos: usize,
    mode: Mode,
    vars: Lookup<'a, 'v>,
    budget: &'a Budget,
    /// How many `${` are open.
    depth: usize,
    /// Whether the caller wants the words (`split_words`).
    split: bool,
}

impl<'a, 'v> Lexer<'a, 'v> {
    fn new(text: &str, mode: Mode, vars: Lookup<'a, 'v>, budget: &'a Budget, split: bool) -> Self {
        Lexer {
            chars: text.chars().collect(),
            pos: 0,
            mode,
            vars,
            budget,
            depth: 0,
            split,
        }
    }

    fn run(mut self) -> Result<(String, Vec<String>), ExpandError> {
        let raw = self.mode.raw_escapes;
        self.until(None, raw)
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    /// Processes up to (and consuming) `stop`, or to the end when `stop` is
    /// `None`. Returns the text and its whitespace-separated words.
    fn until(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<(String, Vec<String>), ExpandError> {
        let mut out = String::new();
        // Only the top level is split into words.
        let mut words = Words {
            enabled: self.split && stop.is_none(),
            ..Words::default()
        };
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.pos += 1;
                return Ok((out, words.finish()));
            }
            match ch {
                '$' => {
                    let v = self.dollar()?;
                    out.push_str(&v);
                    words.add_str(&v);
                }
                '\'' => {
                    let v = self.single_quoted()?;
                    out.push_str(&v);
                    words.add_raw_str(&v);
                }
                '"' => {
                    let v = self.double_quoted()?;
                    out.push_str(&v);
                    words.add_raw_str(&v);
                }
                _ => {
                    self.pos += 1;
                    if ch == self.mode.escape {
                        if raw_escapes {
                            words.add_raw_char(ch);
                            out.push(ch);
                        }
                        // An escape at the very end is dropped.
                        let Some(next) = self.next() else { break };
                        words.add_raw_char(next);
                        out.push(next);
                    } else {
                        words.add_char(ch);
                        out.push(ch);
                    }
                }
            }
        }
        match stop {
            // Callers turn this into the error that fits them.
            Some(_) => Err(ExpandError::MissingBrace),
            None => Ok((out, words.finish())),
        }
    }

    fn single_quoted(&mut self) -> Result<String, ExpandError> {
        let mut out = String::new();
        self.pos += 1;
        if self.mode.raw_quotes {
            out.push('\'');
        }
        loop {
            match self.next() {
                None => return Err(ExpandError::UnterminatedQuote(Quote::Single)),
                Some('\'') => {
                    if self.mode.raw_quotes {
                        out.push('\'');
                    }
                    return Ok(out);
                }
                Some(c) => out.push(c),
            }
        }
    }

    fn double_quoted(&mut self) -> Result<String, ExpandError> {
        let mut out = String::new();
        self.pos += 1;
        if self.mode.raw_quotes {
            out.push('"');
        }
        loop {
            match self.peek() {
                None => return Err(ExpandError::UnterminatedQuote(Quote::Double)),
                Some('"') => {
                    self.pos += 1;
                    if self.mode.raw_quotes {
                        out.push('"');
                    }
                    return Ok(out);
                }
                Some('$') => {
                    let v = self.dollar()?;
                    out.push_str(&v);
                }
                Some(mut ch) => {
                    self.pos += 1;
                    if ch == self.mode.escape {
                        if self.mode.raw_escapes {
                            out.push(ch);
                        }
                        match self.peek() {
                            None => continue,
                            Some(n) if n == '"' || n == '$' || n == self.mode.escape => {
                                ch = n;
                                self.pos += 1;
                            }
                            Some(_) => {}
                        }
                    }
                    out.push(ch);
                }
            }
        }
    }

    fn lookup(&self, name: &str) -> Result<Option<&'v str>, ExpandError> {
        (self.vars)(name)
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        match self.peek() {
            Some(c) if c.is_ascii_digit() => {
                while let Some(c) = self.peek().filter(char::is_ascii_digit) {
                    name.push(c);
                    self.pos += 1;
                }
                return name;
            }
            Some(c @ ('@' | '*' | '#' | '?' | '-' | '$' | '!')) => {
                self.pos += 1;
                name.push(c);
                return name;
            }
            _ => {}
        }
        while let Some(c) = self.peek().filter(|c| c.is_alphanumeric() || *c == '_') {
            name.push(c);
            self.pos += 1;
        }
        name
    }

    /// A `$` substitution; the characters it produces are paid for from the
    /// budget.
    fn dollar(&mut self) -> Result<String, ExpandError> {
        self.pos += 1; // '$'
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".to_owned());
            }
            return Ok(match self.lookup(&name)? {
                Some(v) => {
                    self.budget.spend(v.len())?;
                    v.to_owned()
                }
                None if self.mode.skip_unset => format!("${name}"),
                None => String::new(),
            });
        }
        self.pos += 1; // '{'
        if self.depth >= MAX_NESTING {
            return Err(ExpandError::TooDeep);
        }
        self.depth += 1;
        let value = self.braced();
        self.depth -= 1;
        let value = value?;
        self.budget.spend(value.len())?;
        Ok(value)
    }

    /// `${…}`, after the `{`.
    fn braced(&mut self) -> Result<String, ExpandError> {
        match self.peek() {
            None => return Err(ExpandError::MissingBrace),
            Some('{' | '}' | ':') => return Err(ExpandError::BadSubstitution),
            Some(_) => {}
        }
        let name = self.name();
        let Some(mut op) = self.next() else {
            return Err(ExpandError::MissingBrace);
        };
        let mut op_text = op.to_string();
        match op {
            '}' => Ok(match self.lookup(&name)? {
                Some(v) => v.to_owned(),
                None if self.mode.skip_unset => format!("${{{name}}}"),
                None => String::new(),
            }),
            ':' => {
                op = self.next().ok_or(ExpandError::MissingBrace)?;
                op_text.push(op);
                self.modifier(&name, op, &op_text, true)
            }
            '+' | '-' | '?' | '#' | '%' => self.modifier(&name, op, &op_text, false),
            '/' => self.replace(&name),
            _ => Err(ExpandError::UnsupportedModifier(op_text)),
        }
    }

    /// `${name<op>word}` for the `+ - ? # %` operators (with or without `:`).
    fn modifier(
        &mut self,
        name: &str,
        op: char,
        op_text: &str,
        null_is_unset: bool,
    ) -> Result<String, ExpandError> {
        let raw = op == '#' || op == '%';
        let (mut word, _) = self.until(Some('}'), raw)?;
        let value = self.lookup(name)?;
        if self.mode.skip_unset && value.is_none() {
            return Ok(format!("${{{name}{op_text}{word}}}"));
        }
        let unset = value.is_none() || (null_is_unset && value == Some(""));
        match op {
            '-' => Ok(if unset {
                word
            } else {
                value.unwrap_or_default().to_owned()
            }),
            '+' => Ok(if unset { String::new() } else { word }),
            '?' => match value {
                None => Err(required(name, word, "is not allowed to be unset")),
                Some(v) if null_is_unset && v.is_empty() => {
                    Err(required(name, word, "is not allowed to be empty"))
                }
                Some(v) => Ok(v.to_owned()),
            },
            '#' | '%' => {
                let greedy = word.starts_with(op);
                if greedy {
                    word.remove(0);
                }
                let pattern = Glob::parse(&word)?;
                let value = value.unwrap_or_default();
                if op == '#' {
                    pattern.trim_prefix(value, greedy, self.budget)
                } else {
                    pattern.trim_suffix(value, greedy, self.budget)
                }
            }
            _ => Err(ExpandError::UnsupportedModifier(op_text.to_owned())),
        }
    }

    /// `${name/pattern/replacement}` and `${name//pattern/replacement}`.
    fn replace(&mut self, name: &str) -> Result<String, ExpandError> {
        let all = self.peek() == Some('/');
        if all {
            self.pos += 1;
        }
        let (pattern, _) = self.until(Some('/'), true)?;
        let (replacement, _) = self.until(Some('}'), true)?;
        let value = self.lookup(name)?;
        let Some(value) = value else {
            return Ok(if self.mode.skip_unset {
                format!("${{{name}/{pattern}/{replacement}}}")
            } else {
                String::new()
            });
        };
        Glob::parse(&pattern)?.replace(value, &replacement, all, self.budget)
    }
}

fn required(name: &str, word: String, default: &str) -> ExpandError {
    ExpandError::Required {
        name: name.to_owned(),
        message: if word.is_empty() {
            default.to_owned()
        } else {
            word
        },
    }
}

/// A shell glob of literals, `?` (any one character) and `*` (any run).
#[derive(Debug)]
struct Glob(Vec<GlobPart>);

#[derive(Debug, Clone, Copy, PartialEq)]
enum GlobPart {
    Lit(char),
    Any,
    Star,
}

impl Glob {
    fn parse(pattern: &str) -> Result<Self, ExpandError> {
        let mut parts = Vec::new();
        let mut it = pattern.chars().peekable();
        while let Some(c) = it.next() {
            parts.push(match c {
                '*' => GlobPart::Star,
                '?' => GlobPart::Any,
                '\\' => match it.next() {
                    Some(e @ ('*' | '?' | '\\' | '}' | '/')) => GlobPart::Lit(e),
                    _ => return Err(ExpandError::InvalidPattern(pattern.to_owned())),
                },
                c => GlobPart::Lit(c),
            });
        }
        Ok(Glob(parts))
    }

    /// The same glob read backwards: it matches the reversed strings. (Each
    /// element matches one character or any run, so reversing the elements
    /// reverses what the whole matches.)
    fn reversed(&self) -> Glob {
        Glob(self.0.iter().rev().copied().collect())
    }

    /// Adds the states reachable without reading a character: past any `*`.
    /// State `k` means "the first `k` elements have matched"; `states[k]` is
    /// the smallest start position of a match attempt in that state (the
    /// anchored matches use 0 for every live state).
    fn close(&self, states: &mut [Option<usize>]) {
        for (k, part) in self.0.iter().enumerate() {
            if let (GlobPart::Star, Some(start)) = (part, states[k]) {
                states[k + 1] = Some(states[k + 1].map_or(start, |s| s.min(start)));
            }
        }
    }

    /// Reads `c` in every state of `from` into `to` (not closed), keeping the
    /// smallest start per state.
    fn step(&self, from: &[Option<usize>], to: &mut [Option<usize>], c: char) {
        to.fill(None);
        for (k, part) in self.0.iter().enumerate() {
            let Some(start) = from[k] else { continue };
            let next = match part {
                GlobPart::Lit(l) if *l != c => continue,
                GlobPart::Lit(_) | GlobPart::Any => k + 1,
                GlobPart::Star => k,
            };
            to[next] = Some(to[next].map_or(start, |s| s.min(start)));
        }
    }

    /// The length of the shortest (or longest) prefix of `v` that matches
    /// the whole glob. Costs at most `(v.len() + 1) × (parts + 1)` steps; stops
    /// as soon as no state is live.
    fn prefix_match(
        &self,
        v: &[char],
        longest: bool,
        budget: &Budget,
    ) -> Result<Option<usize>, ExpandError> {
        let m = self.0.len();
        let mut cur = vec![None; m + 1];
        let mut next = vec![None; m + 1];
        cur[0] = Some(0);
        self.close(&mut cur);
        let mut found = None;
        for i in 0..=v.len() {
            if cur[m].is_some() {
                found = Some(i);
                if !longest {
                    break;
                }
            }
            if i == v.len() || cur.iter().all(Option::is_none) {
                break;
            }
            budget.spend(m + 1)?;
            self.step(&cur, &mut next, v[i]);
            self.close(&mut next);
            std::mem::swap(&mut cur, &mut next);
        }
        Ok(found)
    }

    /// `${name#pattern}` (`longest`: `##`): the value without the shortest
    /// (longest) matching prefix.
    fn trim_prefix(
        &self,
        value: &str,
        longest: bool,
        budget: &Budget,
    ) -> Result<String, ExpandError> {
        let v: Vec<char> = value.chars().collect();
        Ok(match self.prefix_match(&v, longest, budget)? {
            Some(end) => v[end..].iter().collect(),
            None => value.to_owned(),
        })
    }

    /// `${name%pattern}` (`longest`: `%%`): the value without the shortest
    /// (longest) matching suffix — a prefix of the reversed value matched by
    /// the reversed glob.
    fn trim_suffix(
        &self,
        value: &str,
        longest: bool,
        budget: &Budget,
    ) -> Result<String, ExpandError> {
        let reversed: Vec<char> = value.chars().rev().collect();
        Ok(
            match self.reversed().prefix_match(&reversed, longest, budget)? {
                Some(len) => reversed[len..].iter().rev().collect(),
                None => value.to_owned(),
            },
        )
    }

    /// The leftmost, longest match starting at or after `from`.
    ///
    /// One pass finds the leftmost start: a match attempt begins at every
    /// position, and each state keeps only the smallest start that reached it
    /// (whether a state leads to a match does not depend on where the attempt
    /// began). The pass stops once a match is known and no attempt that began
    /// earlier is still live. A second, anchored pass finds the longest end.
    fn find(
        &self,
        v: &[char],
        from: usize,
        budget: &Budget,
    ) -> Result<Option<(usize, usize)>, ExpandError> {
        let m = self.0.len();
        let mut cur = vec![None; m + 1];
        let mut next = vec![None; m + 1];
        let mut best: Option<usize> = None;
        for i in from..=v.len() {
            if best.is_none() && cur[0].is_none() {
                cur[0] = Some(i);
            }
            self.close(&mut cur);
            if let Some(start) = cur[m] {
                best = Some(best.map_or(start, |b| b.min(start)));
            }
            if let Some(b) = best {
                // Attempts that began at or after the best start cannot win.
                for state in &mut cur {
                    if state.is_some_and(|s| s >= b) {
                        *state = None;
                    }
                }
                if cur.iter().all(Option::is_none) {
                    break;
                }
            }
            if i == v.len() {
                break;
            }
            budget.spend(m + 1)?;
            self.step(&cur, &mut next, v[i]);
            std::mem::swap(&mut cur, &mut next);
        }
        let Some(start) = best else { return Ok(None) };
        let len = self.prefix_match(&v[start..], true, budget)?;
        Ok(len.map(|len| (start, start + len)))
    }

    fn replace(
        &self,
        value: &str,
        replacement: &str,
        all: bool,
        budget: &Budget,
    ) -> Result<String, ExpandError> {
        let v: Vec<char> = value.chars().collect();
        let mut out = String::new();
        let mut pos = 0;
        let mut last_match_end = None;
        while let Some((start, end)) = self.find(&v, pos, budget)? {
            // An empty match right after the previous match does not count.
            if start == end && last_match_end == Some(start) {
                if start >= v.len() {
                    break;
                }
                out.push(v[start]);
                pos = start + 1;
                continue;
            }
            out.extend(&v[pos..start]);
            budget.spend(replacement.len())?;
            out.push_str(replacement);
            last_match_end = Some(end);
            pos = end;
            if !all {
                break;
            }
            if start == end {
                if end >= v.len() {
                    break;
                }
                out.push(v[end]);
                pos = end + 1;
            }
        }
        out.extend(v.get(pos..).unwrap_or_default());
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(
        pairs: &'static [(&'static str, &'static str)],
    ) -> impl Fn(&str) -> Result<Option<&'static str>, ExpandError> {
        move |name| Ok(pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| *v))
    }

    fn ex(
        word: &str,
        pairs: &'static [(&'static str, &'static str)],
    ) -> Result<String, ExpandError> {
        expand_word(word, '\\', &vars(pairs), &Budget::new())
    }

    #[test]
    fn dollar_forms_are_equivalent_and_unset_is_empty() {
        let v = &[("V", "1.22")];
        assert_eq!(ex("golang:$V", v).unwrap(), "golang:1.22");
        assert_eq!(ex("golang:${V}", v).unwrap(), "golang:1.22");
        assert_eq!(ex("${V}-alpine", v).unwrap(), "1.22-alpine");
        assert_eq!(ex("img:$NOPE", v).unwrap(), "img:");
        assert_eq!(ex("img:${NOPE}x", v).unwrap(), "img:x");
        // `$` not followed by a name stays literal.
        assert_eq!(ex("a$", v).unwrap(), "a$");
        assert_eq!(ex("a$/b", v).unwrap(), "a$/b");
    }

    #[test]
    fn colon_forms_treat_empty_as_unset_plain_forms_do_not() {
        let v = &[("SET", "x"), ("EMPTY", "")];
        assert_eq!(ex("${SET:-d}", v).unwrap(), "x");
        assert_eq!(ex("${EMPTY:-d}", v).unwrap(), "d");
        assert_eq!(ex("${UNSET:-d}", v).unwrap(), "d");
        assert_eq!(ex("${EMPTY-d}", v).unwrap(), "");
        assert_eq!(ex("${UNSET-d}", v).unwrap(), "d");

        assert_eq!(ex("${SET:+alt}", v).unwrap(), "alt");
        assert_eq!(ex("${EMPTY:+alt}", v).unwrap(), "");
        assert_eq!(ex("${UNSET:+alt}", v).unwrap(), "");
        assert_eq!(ex("${EMPTY+alt}", v).unwrap(), "alt");
        assert_eq!(ex("${UNSET+alt}", v).unwrap(), "");
    }

    #[test]
    fn modifier_words_are_expanded_themselves() {
        let v = &[("A", "a")];
        assert_eq!(ex("${NOPE:-${A}b}", v).unwrap(), "ab");
        assert_eq!(ex("${A:+<$A>}", v).unwrap(), "<a>");
    }

    #[test]
    fn required_variables_fail_with_the_given_or_default_message() {
        let v = &[("EMPTY", "")];
        assert_eq!(
            ex("${X:?give X}", v).unwrap_err(),
            ExpandError::Required {
                name: "X".into(),
                message: "give X".into()
            }
        );
        assert_eq!(
            ex("${X?}", v).unwrap_err().to_string(),
            "X: is not allowed to be unset"
        );
        assert_eq!(ex("${EMPTY?}", v).unwrap(), "");
        assert_eq!(
            ex("${EMPTY:?}", v).unwrap_err().to_string(),
            "EMPTY: is not allowed to be empty"
        );
    }

    #[test]
    fn malformed_substitutions_are_errors() {
        assert_eq!(ex("${A", &[]).unwrap_err(), ExpandError::MissingBrace);
        assert_eq!(ex("img:${", &[]).unwrap_err(), ExpandError::MissingBrace);
        assert_eq!(ex("${A:-x", &[]).unwrap_err(), ExpandError::MissingBrace);
        assert_eq!(ex("${}", &[]).unwrap_err(), ExpandError::BadSubstitution);
        assert_eq!(ex("${:-x}", &[]).unwrap_err(), ExpandError::BadSubstitution);
        assert_eq!(
            ex("${A^}", &[]).unwrap_err(),
            ExpandError::UnsupportedModifier("^".into())
        );
        assert_eq!(
            ex("'abc", &[]).unwrap_err(),
            ExpandError::UnterminatedQuote(Quote::Single)
        );
    }

    #[test]
    fn quotes_and_escapes() {
        let v = &[("A", "x")];
        assert_eq!(ex("'$A'", v).unwrap(), "$A");
        assert_eq!(ex("\"$A\"", v).unwrap(), "x");
        assert_eq!(ex("\\$A", v).unwrap(), "$A");
        assert_eq!(ex("\"\\$A\"", v).unwrap(), "$A");
        // Inside double quotes other escapes stay.
        assert_eq!(ex("\"a\\b\"", v).unwrap(), "a\\b");
        assert_eq!(ex("a\\b", v).unwrap(), "ab");
        // With the backtick escape, a backslash is an ordinary character.
        assert_eq!(
            expand_word("c:\\$A", '`', &vars(v), &Budget::new()).unwrap(),
            "c:\\x"
        );
        assert_eq!(
            expand_word("`$A", '`', &vars(v), &Budget::new()).unwrap(),
            "$A"
        );
    }

    #[test]
    fn pattern_trimming_and_replacement() {
        let v = &[("S", "foobarbaz")];
        // The reference's own examples.
        assert_eq!(ex("${S#f*b}", v).unwrap(), "arbaz");
        assert_eq!(ex("${S##f*b}", v).unwrap(), "az");
        assert_eq!(ex("${S%b*}", v).unwrap(), "foobar");
        assert_eq!(ex("${S%%b*}", v).unwrap(), "foo");
        assert_eq!(ex("${S/ba/fo}", v).unwrap(), "fooforbaz");
        assert_eq!(ex("${S//ba/fo}", v).unwrap(), "fooforfoz");
        assert_eq!(ex("${S#nomatch}", v).unwrap(), "foobarbaz");
        assert_eq!(ex("${S/?/X}", v).unwrap(), "Xoobarbaz");
        assert_eq!(ex("${NOPE/a/b}", v).unwrap(), "");
    }

    /// The backtracking matcher the automaton replaced, kept as the
    /// reference for its semantics (exponential in the number of stars).
    mod backtracking {
        use super::super::{Glob, GlobPart};

        fn matches(p: &[GlobPart], s: &[char]) -> bool {
            match p.split_first() {
                None => s.is_empty(),
                Some((GlobPart::Star, rest)) => (0..=s.len()).any(|i| matches(rest, &s[i..])),
                Some((GlobPart::Any, rest)) => !s.is_empty() && matches(rest, &s[1..]),
                Some((GlobPart::Lit(c), rest)) => s.first() == Some(c) && matches(rest, &s[1..]),
            }
        }

        pub fn trim_prefix(g: &Glob, v: &[char], longest: bool) -> String {
            let ends: Vec<usize> = if longest {
                (0..=v.len()).rev().collect()
            } else {
                (0..=v.len()).collect()
            };
            match ends.into_iter().find(|&end| matches(&g.0, &v[..end])) {
                Some(end) => v[end..].iter().collect(),
                None => v.iter().collect(),
            }
        }

        pub fn trim_suffix(g: &Glob, v: &[char], longest: bool) -> String {
            let starts: Vec<usize> = if longest {
                (0..=v.len()).collect()
            } else {
                (0..=v.len()).rev().collect()
            };
            match starts.into_iter().find(|&start| matches(&g.0, &v[start..])) {
                Some(start) => v[..start].iter().collect(),
                None => v.iter().collect(),
            }
        }

        fn find(g: &Glob, v: &[char], from: usize) -> Option<(usize, usize)> {
            (from..=v.len()).find_map(|start| {
                (start..=v.len())
                    .rev()
                    .find(|&end| matches(&g.0, &v[start..end]))
                    .map(|end| (start, end))
            })
        }

        pub fn replace(g: &Glob, v: &[char], replacement: &str, all: bool) -> String {
            let mut out = String::new();
            let mut pos = 0;
            let mut last_match_end = None;
            while let Some((start, end)) = find(g, v, pos) {
                if start == end && last_match_end == Some(start) {
                    if start >= v.len() {
                        break;
                    }
                    out.push(v[start]);
                    pos = start + 1;
                    continue;
                }
                out.extend(&v[pos..start]);
                out.push_str(replacement);
                last_match_end = Some(end);
                pos = end;
                if !all {
                    break;
                }
                if start == end {
                    if end >= v.len() {
                        break;
                    }
                    out.push(v[end]);
                    pos = end + 1;
                }
            }
            out.extend(v.get(pos..).unwrap_or_default());
            out
        }
    }

    /// A lookup in which only `name` is set, to `value`.
    fn one_var<'v>(
        name: &'static str,
        value: &'v str,
    ) -> impl Fn(&str) -> Result<Option<&'v str>, ExpandError> {
        move |n| Ok((n == name).then_some(value))
    }

    /// Every string over `alphabet` of length `0..=max`.
    fn strings(alphabet: &[char], max: usize) -> Vec<String> {
        let mut all = vec![String::new()];
        let mut last = vec![String::new()];
        for _ in 0..max {
            last = last
                .iter()
                .flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}")))
                .collect();
            all.extend(last.iter().cloned());
        }
        all
    }

    #[test]
    fn the_automaton_matches_like_the_backtracking_matcher() {
        let values = strings(&['a', 'b'], 6);
        for pattern in strings(&['a', 'b', '*', '?'], 4) {
            let g = Glob::parse(&pattern).unwrap();
            for value in &values {
                let v: Vec<char> = value.chars().collect();
                let budget = Budget::new();
                for longest in [false, true] {
                    assert_eq!(
                        g.trim_prefix(value, longest, &budget).unwrap(),
                        backtracking::trim_prefix(&g, &v, longest),
                        "{value:?} # {pattern:?}, longest: {longest}"
                    );
                    assert_eq!(
                        g.trim_suffix(value, longest, &budget).unwrap(),
                        backtracking::trim_suffix(&g, &v, longest),
                        "{value:?} % {pattern:?}, longest: {longest}"
                    );
                }
                for all in [false, true] {
                    assert_eq!(
                        g.replace(value, "<>", all, &budget).unwrap(),
                        backtracking::replace(&g, &v, "<>", all),
                        "{value:?} / {pattern:?}, all: {all}"
                    );
                }
            }
        }
    }

    #[test]
    fn star_heavy_patterns_take_linear_steps() {
        let v = "a".repeat(1000);
        let vars = one_var("V", &v);
        for (word, want) in [
            ("${V%%*a*a*a*a*a*a*a*a*b}", 1000),
            ("${V##*a*a*a*a*a*a*a*a*b}", 1000),
            ("${V%*a*a*a*a*a*a*a*a*b}", 1000),
            ("${V#*a*a*a*a*a*a*a*a*b}", 1000),
            ("${V/*a*a*a*a*a*a*a*a*b/x}", 1000),
            ("${V//*a*a*a*a*a*a*a*a*b/x}", 1000),
            ("${V%%*a*a}", 0),
            ("${V%*a*a}", 998),
            ("${V//a/}", 0),
            ("${V//?a/b}", 500),
        ] {
            let budget = Budget::new();
            let out = expand_word(word, '\\', &vars, &budget).unwrap();
            assert_eq!(out.len(), want, "{word}");
            // 18 pattern elements, 1000 characters, a few passes: far below
            // what trying every split between the stars would take.
            let spent = MAX_EXPANSION_WORK - budget.0.get();
            assert!(spent < 100_000, "{word}: {spent} steps");
        }
    }

    #[test]
    fn nesting_is_bounded() {
        let nested = |depth: usize| format!("{}img{}", "${A:-".repeat(depth), "}".repeat(depth));
        assert_eq!(ex(&nested(MAX_NESTING), &[]).unwrap(), "img");
        assert_eq!(
            ex(&nested(MAX_NESTING + 1), &[]).unwrap_err(),
            ExpandError::TooDeep
        );
        assert_eq!(ex(&nested(20_000), &[]).unwrap_err(), ExpandError::TooDeep);
        assert_eq!(
            ExpandError::TooDeep.to_string(),
            "`${…}` substitutions nested more than 64 deep"
        );
        // Side by side is not nesting.
        let flat = "${A:-a}".repeat(10_000);
        assert_eq!(ex(&flat, &[]).unwrap(), "a".repeat(10_000));
        // Also in the raw mode of the heredoc scan.
        let mode = Mode {
            escape: '\\',
            raw_quotes: true,
            raw_escapes: true,
            skip_unset: true,
        };
        assert_eq!(
            split_words(&nested(20_000), mode).unwrap_err(),
            ExpandError::TooDeep
        );
    }

    #[test]
    fn the_work_is_bounded() {
        let big = "a".repeat(1 << 20);
        let vars = one_var("B", &big);
        let budget = Budget::new();
        // 2²⁰ × 2²⁰ characters if it were done.
        assert_eq!(
            expand_word("${B//?/$B}", '\\', &vars, &budget).unwrap_err(),
            ExpandError::TooLarge
        );
        // The budget is spent for good.
        assert_eq!(
            expand_word("$B", '\\', &vars, &budget).unwrap_err(),
            ExpandError::TooLarge
        );
        assert_eq!(
            expand_word("$B", '\\', &vars, &Budget::new())
                .unwrap()
                .len(),
            1 << 20
        );
    }

    #[test]
    fn platform_args_propagate_as_errors() {
        let lookup = |name: &str| {
            if name == "TARGETARCH" {
                Err(ExpandError::PlatformArg(name.to_owned()))
            } else {
                Ok(None)
            }
        };
        assert_eq!(
            expand_word("img-${TARGETARCH}", '\\', &lookup, &Budget::new()).unwrap_err(),
            ExpandError::PlatformArg("TARGETARCH".into())
        );
        assert_eq!(
            expand_word("img", '\\', &lookup, &Budget::new()).unwrap(),
            "img"
        );
    }

    #[test]
    fn raw_word_splitting_keeps_quotes_escapes_and_unset_variables() {
        let mode = Mode {
            escape: '\\',
            raw_quotes: true,
            raw_escapes: true,
            skip_unset: true,
        };
        assert_eq!(
            split_words("RUN <<EOF cat \"a b\" $X ${Y:-z}", mode).unwrap(),
            ["RUN", "<<EOF", "cat", "\"a b\"", "$X", "${Y:-z}"]
        );
        assert_eq!(
            split_words("a\\ b 'c d'", mode).unwrap(),
            ["a\\ b", "'c d'"]
        );
    }
}

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

use std::fmt;

/// An error while expanding variables in a Dockerfile word.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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
pub(crate) type Lookup<'a> = &'a dyn Fn(&str) -> Result<Option<String>, ExpandError>;

/// A lookup in which no variable is set.
pub(crate) fn no_vars(_: &str) -> Result<Option<String>, ExpandError> {
    Ok(None)
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

/// Expands `word` as one word (spaces are kept).
pub(crate) fn expand_word(
    word: &str,
    escape: char,
    vars: Lookup<'_>,
) -> Result<String, ExpandError> {
    Ok(Lexer::new(word, Mode::expand(escape), vars).run()?.0)
}

/// Processes `text` and also splits the result into words at unquoted
/// whitespace.
pub(crate) fn split_words(
    text: &str,
    mode: Mode,
    vars: Lookup<'_>,
) -> Result<Vec<String>, ExpandError> {
    Ok(Lexer::new(text, mode, vars).run()?.1)
}

#[derive(Default)]
struct Words {
    word: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, ch: char) {
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
        self.word.push(ch);
        self.in_word = true;
    }

    fn add_str(&mut self, s: &str) {
        s.chars().for_each(|c| self.add_char(c));
    }

    fn add_raw_str(&mut self, s: &str) {
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

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    mode: Mode,
    vars: Lookup<'a>,
}

impl<'a> Lexer<'a> {
    fn new(text: &str, mode: Mode, vars: Lookup<'a>) -> Self {
        Lexer {
            chars: text.chars().collect(),
            pos: 0,
            mode,
            vars,
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
        let mut words = Words::default();
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

    fn lookup(&self, name: &str) -> Result<Option<String>, ExpandError> {
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

    fn dollar(&mut self) -> Result<String, ExpandError> {
        self.pos += 1; // '$'
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".to_owned());
            }
            return Ok(match self.lookup(&name)? {
                Some(v) => v,
                None if self.mode.skip_unset => format!("${name}"),
                None => String::new(),
            });
        }
        self.pos += 1; // '{'
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
                Some(v) => v,
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
        let unset = value.is_none() || (null_is_unset && value.as_deref() == Some(""));
        match op {
            '-' => Ok(if unset {
                word
            } else {
                value.unwrap_or_default()
            }),
            '+' => Ok(if unset { String::new() } else { word }),
            '?' => match value {
                None => Err(required(name, word, "is not allowed to be unset")),
                Some(v) if null_is_unset && v.is_empty() => {
                    Err(required(name, word, "is not allowed to be empty"))
                }
                Some(v) => Ok(v),
            },
            '#' | '%' => {
                let greedy = word.starts_with(op);
                if greedy {
                    word.remove(0);
                }
                let pattern = Glob::parse(&word)?;
                let value = value.unwrap_or_default();
                Ok(if op == '#' {
                    pattern.trim_prefix(&value, greedy)
                } else {
                    pattern.trim_suffix(&value, greedy)
                })
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
        Ok(Glob::parse(&pattern)?.replace(&value, &replacement, all))
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

    /// Whether the whole of `s` matches.
    fn matches(&self, s: &[char]) -> bool {
        fn go(p: &[GlobPart], s: &[char]) -> bool {
            match p.split_first() {
                None => s.is_empty(),
                Some((GlobPart::Star, rest)) => (0..=s.len()).any(|i| go(rest, &s[i..])),
                Some((GlobPart::Any, rest)) => !s.is_empty() && go(rest, &s[1..]),
                Some((GlobPart::Lit(c), rest)) => s.first() == Some(c) && go(rest, &s[1..]),
            }
        }
        go(&self.0, s)
    }

    fn trim_prefix(&self, value: &str, longest: bool) -> String {
        let v: Vec<char> = value.chars().collect();
        let ends: Box<dyn Iterator<Item = usize>> = if longest {
            Box::new((0..=v.len()).rev())
        } else {
            Box::new(0..=v.len())
        };
        for end in ends {
            if self.matches(&v[..end]) {
                return v[end..].iter().collect();
            }
        }
        value.to_owned()
    }

    fn trim_suffix(&self, value: &str, longest: bool) -> String {
        let v: Vec<char> = value.chars().collect();
        let starts: Box<dyn Iterator<Item = usize>> = if longest {
            Box::new(0..=v.len())
        } else {
            Box::new((0..=v.len()).rev())
        };
        for start in starts {
            if self.matches(&v[start..]) {
                return v[..start].iter().collect();
            }
        }
        value.to_owned()
    }

    /// The leftmost, longest match starting at or after `from`.
    fn find(&self, v: &[char], from: usize) -> Option<(usize, usize)> {
        (from..=v.len()).find_map(|start| {
            (start..=v.len())
                .rev()
                .find(|&end| self.matches(&v[start..end]))
                .map(|end| (start, end))
        })
    }

    fn replace(&self, value: &str, replacement: &str, all: bool) -> String {
        let v: Vec<char> = value.chars().collect();
        let mut out = String::new();
        let mut pos = 0;
        let mut last_match_end = None;
        while let Some((start, end)) = self.find(&v, pos) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(
        pairs: &'static [(&'static str, &'static str)],
    ) -> impl Fn(&str) -> Result<Option<String>, ExpandError> {
        move |name| {
            Ok(pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string()))
        }
    }

    fn ex(
        word: &str,
        pairs: &'static [(&'static str, &'static str)],
    ) -> Result<String, ExpandError> {
        expand_word(word, '\\', &vars(pairs))
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
        assert_eq!(expand_word("c:\\$A", '`', &vars(v)).unwrap(), "c:\\x");
        assert_eq!(expand_word("`$A", '`', &vars(v)).unwrap(), "$A");
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
            expand_word("img-${TARGETARCH}", '\\', &lookup).unwrap_err(),
            ExpandError::PlatformArg("TARGETARCH".into())
        );
        assert_eq!(expand_word("img", '\\', &lookup).unwrap(), "img");
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
            split_words("RUN <<EOF cat \"a b\" $X ${Y:-z}", mode, &no_vars).unwrap(),
            ["RUN", "<<EOF", "cat", "\"a b\"", "$X", "${Y:-z}"]
        );
        assert_eq!(
            split_words("a\\ b 'c d'", mode, &no_vars).unwrap(),
            ["a\\ b", "'c d'"]
        );
    }
}

//! From Dockerfile text to logical instructions: parser directives, comments,
//! line continuations, empty continuation lines and here-documents, following
//! the rules of the Dockerfile reference (sections "Format", "Parser
//! directives", "escape" and "Here-Documents").

use super::DockerfileError;
use super::expand::{self, Mode};

/// The parser directives found at the top of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Directives {
    /// The escape character: `\` unless `# escape=` set it to `` ` ``.
    pub escape: char,
    /// The value of `# syntax=` and its line.
    pub syntax: Option<(String, usize)>,
}

/// One instruction, continuation lines joined and heredoc bodies set aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Instruction {
    /// 1-based line on which the instruction starts.
    pub line: usize,
    /// 1-based line on which it ends (its last continuation line or here-document line).
    pub end_line: usize,
    /// The keyword, lowercased (`from`, `run`, …).
    pub keyword: String,
    /// The keyword as written.
    pub keyword_as_written: String,
    /// Leading `--name[=value]` flags, quotes and escapes removed.
    pub flags: Vec<String>,
    /// Everything after the flags, trimmed.
    pub args: String,
    /// Names of the here-documents whose bodies followed the instruction.
    pub heredocs: Vec<String>,
}

/// The result of [`parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Parsed {
    pub directives: Directives,
    pub instructions: Vec<Instruction>,
}

/// Splits the text into logical instructions.
pub(crate) fn parse(text: &str) -> Result<Parsed, DockerfileError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text
        .split_inclusive('\n')
        .map(|l| l.trim_end_matches(['\r', '\n']))
        .collect();
    let mut directives = DirectiveScanner::default();
    let mut instructions = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let start = i + 1;
        let first = lines[i].trim_start();
        i += 1;
        directives.scan(first, start)?;
        // A comment line is removed entirely; comments cannot be continued.
        let first = if first.starts_with('#') { "" } else { first };
        let (mut joined, mut done) = trim_continuation(first, directives.escape);
        if done && joined.is_empty() {
            continue;
        }
        while !done && i < lines.len() {
            let line = lines[i];
            i += 1;
            let trimmed = line.trim_start();
            // Comment lines inside a continued instruction are dropped, and so
            // are empty continuation lines (BuildKit only warns about those).
            if trimmed.starts_with('#') || trimmed.is_empty() {
                continue;
            }
            let (part, end) = trim_continuation(line, directives.escape);
            joined.push_str(&part);
            done = end;
        }
        let (keyword_as_written, flags, args) = split_command(&joined);
        let keyword = keyword_as_written.to_lowercase();
        let mut heredocs = Vec::new();
        if can_contain_heredoc(&keyword, &args) {
            for (name, chomp) in heredocs_in(&joined) {
                let mut terminated = false;
                while i < lines.len() {
                    let line = lines[i];
                    i += 1;
                    let candidate = if chomp {
                        line.trim_start_matches('\t')
                    } else {
                        line
                    };
                    if candidate == name {
                        terminated = true;
                        break;
                    }
                }
                if !terminated {
                    return Err(DockerfileError::UnterminatedHeredoc { line: start, name });
                }
                heredocs.push(name);
            }
        }
        instructions.push(Instruction {
            line: start,
            end_line: i,
            keyword,
            keyword_as_written,
            flags,
            args,
            heredocs,
        });
    }
    Ok(Parsed {
        directives: Directives {
            escape: directives.escape,
            syntax: directives.syntax,
        },
        instructions,
    })
}

/// Tracks parser directives, which are only recognised until the first line
/// that is not one (a comment, an empty line or an instruction).
#[derive(Debug)]
struct DirectiveScanner {
    done: bool,
    seen: Vec<String>,
    escape: char,
    syntax: Option<(String, usize)>,
}

impl Default for DirectiveScanner {
    fn default() -> Self {
        DirectiveScanner {
            done: false,
            seen: Vec::new(),
            escape: '\\',
            syntax: None,
        }
    }
}

impl DirectiveScanner {
    fn scan(&mut self, line: &str, line_no: usize) -> Result<(), DockerfileError> {
        if self.done {
            return Ok(());
        }
        let Some((key, value)) = directive(line) else {
            self.done = true;
            return Ok(());
        };
        let key = key.to_ascii_lowercase();
        if !matches!(key.as_str(), "syntax" | "escape" | "check") {
            // An unknown directive is a comment, and ends the directives.
            self.done = true;
            return Ok(());
        }
        if self.seen.contains(&key) {
            return Err(DockerfileError::Directive {
                line: line_no,
                message: format!("only one `{key}` parser directive can be used"),
            });
        }
        match key.as_str() {
            "escape" => match value {
                "\\" => self.escape = '\\',
                "`" => self.escape = '`',
                other => {
                    return Err(DockerfileError::Directive {
                        line: line_no,
                        message: format!("invalid escape character `{other}`: it must be ` or \\"),
                    });
                }
            },
            "syntax" => self.syntax = Some((value.to_owned(), line_no)),
            _ => {}
        }
        self.seen.push(key);
        Ok(())
    }
}

/// Matches `#\s*key\s*=\s*value` (key: a letter then letters and digits).
fn directive(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix('#')?.trim_start();
    let key_len = rest
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())))
        .map_or(rest.len(), |(i, _)| i);
    if key_len == 0 {
        return None;
    }
    let (key, rest) = rest.split_at(key_len);
    let value = rest.trim_start().strip_prefix('=')?.trim();
    (!value.is_empty()).then_some((key, value))
}

/// Removes a trailing escape character (and any spaces or tabs after it).
/// Returns the line and whether the instruction ends here. An escape
/// preceded by another escape is not a continuation.
pub(crate) fn trim_continuation(line: &str, escape: char) -> (String, bool) {
    let trimmed = line.trim_end_matches([' ', '\t']);
    match trimmed.strip_suffix(escape) {
        Some(before) if !before.ends_with(escape) => (before.to_owned(), false),
        _ => (line.to_owned(), true),
    }
}

const COMMAND_SPACE: [char; 5] = [' ', '\t', '\x0b', '\x0c', '\r'];

/// Splits an instruction into its keyword, its leading flags and the rest.
pub(crate) fn split_command(line: &str) -> (String, Vec<String>, String) {
    let line = line.trim();
    let (keyword, rest) = match line.find(COMMAND_SPACE) {
        Some(i) => (&line[..i], line[i..].trim_start_matches(COMMAND_SPACE)),
        None => (line, ""),
    };
    let (args, flags) = extract_flags(rest);
    (keyword.to_owned(), flags, args.trim().to_owned())
}

/// Takes the leading words that start with `--` as flags (quotes and
/// backslash escapes removed); a lone `--` ends the flags.
fn extract_flags(line: &str) -> (String, Vec<String>) {
    let chars: Vec<char> = line.chars().collect();
    let rest = |pos: usize| chars[pos..].iter().collect::<String>();
    let mut flags = Vec::new();
    let mut pos = 0;
    loop {
        while pos < chars.len() && chars[pos].is_whitespace() {
            pos += 1;
        }
        if pos == chars.len() {
            return (String::new(), flags);
        }
        if !(chars[pos] == '-' && chars.get(pos + 1) == Some(&'-')) {
            return (rest(pos), flags);
        }
        let mut word = String::new();
        let mut blank_ok = false;
        let mut quote: Option<char> = None;
        loop {
            let Some(&ch) = chars.get(pos) else {
                if word != "--" && (blank_ok || !word.is_empty()) {
                    flags.push(word);
                }
                return (String::new(), flags);
            };
            pos += 1;
            match quote {
                None if ch.is_whitespace() => {
                    if word == "--" {
                        return (rest(pos - 1), flags);
                    }
                    if blank_ok || !word.is_empty() {
                        flags.push(word);
                    }
                    break;
                }
                None if ch == '\'' || ch == '"' => {
                    quote = Some(ch);
                    blank_ok = true;
                }
                Some(q) if ch == q => quote = None,
                _ if ch == '\\' => match chars.get(pos) {
                    Some(&next) => {
                        word.push(next);
                        pos += 1;
                    }
                    None => quote = None,
                },
                _ => word.push(ch),
            }
        }
    }
}

/// Heredocs are recognised in `RUN`, `COPY` and `ADD` (also behind
/// `ONBUILD`), but not in their JSON (exec) form.
fn can_contain_heredoc(keyword: &str, args: &str) -> bool {
    match keyword {
        "run" | "copy" | "add" => !is_json_array(args),
        "onbuild" => {
            let (sub, _, sub_args) = split_command(args);
            matches!(sub.to_lowercase().as_str(), "run" | "copy" | "add")
                && !is_json_array(&sub_args)
        }
        _ => false,
    }
}

/// The here-documents an instruction opens, in order: `(name, strip tabs)`.
/// A word is a heredoc when it has the form `[n]<<[-]WORD` where `WORD`
/// contains no `<`; quotes around `WORD` are removed.
pub(crate) fn heredocs_in(line: &str) -> Vec<(String, bool)> {
    let raw = Mode {
        escape: '\\',
        raw_quotes: true,
        raw_escapes: true,
        skip_unset: true,
    };
    let Ok(words) = expand::split_words(line, raw) else {
        return Vec::new();
    };
    words.iter().filter_map(|w| heredoc(w)).collect()
}

fn heredoc(word: &str) -> Option<(String, bool)> {
    let rest = word.trim_start_matches(|c: char| c.is_ascii_digit());
    let rest = rest.strip_prefix("<<")?;
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    if rest.is_empty() || rest.contains('<') {
        return None;
    }
    let unquote = Mode {
        escape: '\\',
        raw_quotes: false,
        raw_escapes: false,
        skip_unset: true,
    };
    match expand::split_words(rest, unquote).ok()?.as_slice() {
        [name] => Some((name.clone(), chomp)),
        _ => None,
    }
}

/// Whether `s` is a JSON array of strings (the exec form).
pub(crate) fn is_json_array(s: &str) -> bool {
    fn ws(b: &[u8], mut i: usize) -> usize {
        while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
            i += 1;
        }
        i
    }
    fn string(b: &[u8], mut i: usize) -> Option<usize> {
        if b.get(i) != Some(&b'"') {
            return None;
        }
        i += 1;
        loop {
            match *b.get(i)? {
                b'"' => return Some(i + 1),
                b'\\' => match *b.get(i + 1)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                    b'u' if b.get(i + 2..i + 6)?.iter().all(u8::is_ascii_hexdigit) => i += 6,
                    _ => return None,
                },
                c if c < 0x20 => return None,
                _ => i += 1,
            }
        }
    }
    let b = s.trim().as_bytes();
    if b.first() != Some(&b'[') {
        return false;
    }
    let mut i = ws(b, 1);
    if b.get(i) == Some(&b']') {
        return ws(b, i + 1) == b.len();
    }
    loop {
        let Some(end) = string(b, i) else {
            return false;
        };
        i = ws(b, end);
        match b.get(i) {
            Some(b',') => i = ws(b, i + 1),
            Some(b']') => return ws(b, i + 1) == b.len(),
            _ => return false,
        }
    }
}

/// Splits on whitespace, keeping quoted parts (and escapes) as written —
/// how `ARG` separates its `name[=value]` words.
pub(crate) fn split_args(rest: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut blank_ok = false;
    let mut quote: Option<char> = None;
    let mut it = rest.chars().peekable();
    while let Some(ch) = it.next() {
        match quote {
            None if ch.is_whitespace() => {
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                blank_ok = false;
            }
            None => {
                if ch == '\'' || ch == '"' {
                    quote = Some(ch);
                    blank_ok = true;
                }
                if ch == escape {
                    // An escape at the very end is dropped.
                    if let Some(next) = it.next() {
                        word.push(ch);
                        word.push(next);
                    }
                    continue;
                }
                word.push(ch);
            }
            Some(q) => {
                if ch == q {
                    quote = None;
                } else if ch == escape && q != '\'' {
                    match it.next() {
                        Some(next) => {
                            word.push(ch);
                            word.push(next);
                        }
                        None => quote = None,
                    }
                    continue;
                }
                word.push(ch);
            }
        }
    }
    if blank_ok || !word.is_empty() {
        words.push(word);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instructions(text: &str) -> Vec<(usize, String, String)> {
        parse(text)
            .unwrap()
            .instructions
            .into_iter()
            .map(|i| {
                let mut rest = i.flags.join(" ");
                if !rest.is_empty() && !i.args.is_empty() {
                    rest.push(' ');
                }
                rest.push_str(&i.args);
                (i.line, i.keyword, rest)
            })
            .collect()
    }

    fn ins(line: usize, keyword: &str, rest: &str) -> (usize, String, String) {
        (line, keyword.to_owned(), rest.to_owned())
    }

    #[test]
    fn keywords_are_case_insensitive_and_leading_whitespace_is_ignored() {
        assert_eq!(
            instructions("from a\n  From b AS c\nrUn x\n"),
            [
                ins(1, "from", "a"),
                ins(2, "from", "b AS c"),
                ins(3, "run", "x")
            ]
        );
    }

    #[test]
    fn continuations_join_lines_and_skip_comments_and_empty_lines() {
        let text = "RUN a \\\n# comment\n   # indented comment\n\n  \t\n  b \\  \t\nc\nFROM x\n";
        assert_eq!(
            instructions(text),
            [ins(1, "run", "a   b c"), ins(8, "from", "x")]
        );
    }

    #[test]
    fn escaped_escape_at_end_of_line_is_not_a_continuation() {
        assert_eq!(
            instructions("RUN echo a\\\\\nRUN b\n"),
            [ins(1, "run", "echo a\\\\"), ins(2, "run", "b")]
        );
    }

    #[test]
    fn comments_cannot_be_continued() {
        assert_eq!(
            instructions("# comment \\\nFROM a\n"),
            [ins(2, "from", "a")]
        );
    }

    #[test]
    fn crlf_and_bom_are_handled() {
        assert_eq!(
            instructions("\u{feff}FROM a \\\r\n  AS b\r\nRUN c\r\n"),
            [ins(1, "from", "a   AS b"), ins(3, "run", "c")]
        );
    }

    #[test]
    fn directives_only_at_the_top() {
        let p = parse("# syntax=docker/dockerfile:1\n# escape=`\n\nFROM a `\n  AS b\n").unwrap();
        assert_eq!(p.directives.escape, '`');
        assert_eq!(p.directives.syntax, Some(("docker/dockerfile:1".into(), 1)));
        assert_eq!(p.instructions.len(), 1);

        // After a blank line, a comment or an instruction they are comments.
        for text in [
            "\n# escape=`\nFROM a\n",
            "# hello\n# escape=`\nFROM a\n",
            "FROM a\n# escape=`\n",
            "# unknowndirective=x\n# escape=`\nFROM a\n",
        ] {
            assert_eq!(parse(text).unwrap().directives.escape, '\\', "{text:?}");
        }
        // Keys are case-insensitive and whitespace around `=` is allowed.
        let p = parse("#\t  SyNtAx = img:1 \nFROM a\n").unwrap();
        assert_eq!(p.directives.syntax, Some(("img:1".into(), 1)));
        // `check` is a directive too, so it does not end the directives.
        let p = parse("# check=skip=all\n# escape=`\nFROM a\n").unwrap();
        assert_eq!(p.directives.escape, '`');
    }

    #[test]
    fn bad_directives_are_errors() {
        let err = parse("# escape=`\n# escape=\\\nFROM a\n").unwrap_err();
        assert!(
            matches!(err, DockerfileError::Directive { line: 2, .. }),
            "{err}"
        );
        let err = parse("# escape=x\nFROM a\n").unwrap_err();
        assert!(
            matches!(err, DockerfileError::Directive { line: 1, .. }),
            "{err}"
        );
    }

    #[test]
    fn heredoc_bodies_are_not_instructions() {
        let text = "FROM a\nRUN <<EOF\nFROM evil\nEOF\nCOPY <<-\"A\" <<'B' /dst/\n\tFROM evil2\n\tA\nFROM evil3\nB\nFROM b\n";
        let p = parse(text).unwrap();
        let kw: Vec<_> = p
            .instructions
            .iter()
            .map(|i| (i.line, i.args.as_str()))
            .collect();
        assert_eq!(
            kw,
            [
                (1, "a"),
                (2, "<<EOF"),
                (5, "<<-\"A\" <<'B' /dst/"),
                (10, "b")
            ]
        );
        assert_eq!(p.instructions[2].heredocs, ["A", "B"]);
    }

    #[test]
    fn heredoc_terminator_must_match_exactly() {
        // `<<EOF` does not strip tabs, so a tab-indented terminator is body.
        let err = parse("FROM a\nRUN <<EOF\n\tEOF\n").unwrap_err();
        assert_eq!(
            err,
            DockerfileError::UnterminatedHeredoc {
                line: 2,
                name: "EOF".into()
            }
        );
    }

    #[test]
    fn heredocs_only_in_run_copy_add_and_not_in_exec_form() {
        // In ENV, `<<EOF` is just text.
        let p = parse("FROM a\nENV X=<<EOF\nFROM b\n").unwrap();
        assert_eq!(p.instructions.len(), 3);
        // Exec form: no heredoc.
        let p = parse("FROM a\nRUN [\"cat\", \"<<EOF\"]\nFROM b\n").unwrap();
        assert_eq!(p.instructions.len(), 3);
        // ONBUILD RUN takes its heredoc body with it.
        let p = parse("FROM a\nONBUILD RUN <<EOF\nFROM evil\nEOF\n").unwrap();
        assert_eq!(p.instructions.len(), 2);
    }

    #[test]
    fn heredoc_words() {
        assert_eq!(heredocs_in("RUN <<EOF"), [("EOF".to_owned(), false)]);
        assert_eq!(heredocs_in("RUN 3<<-'E O F'"), [("E O F".to_owned(), true)]);
        assert_eq!(
            heredocs_in("RUN <<A cat > a && <<\"B\" cat > b"),
            [("A".to_owned(), false), ("B".to_owned(), false)]
        );
        // Not heredocs: here-strings, quoted text, `<<` inside a word.
        assert!(heredocs_in("RUN cat <<< x").is_empty());
        assert!(heredocs_in("RUN echo \"<<EOF\"").is_empty());
        assert!(heredocs_in("RUN cat<<EOF").is_empty());
        assert!(heredocs_in("RUN echo <<").is_empty());
    }

    #[test]
    fn flags_are_split_off_with_quotes_removed() {
        assert_eq!(
            split_command("COPY --from=\"a b\" --link src dst"),
            (
                "COPY".into(),
                vec!["--from=a b".into(), "--link".into()],
                "src dst".into()
            )
        );
        assert_eq!(
            split_command("RUN --mount=type=cache,target=/x -- --not-a-flag"),
            (
                "RUN".into(),
                vec!["--mount=type=cache,target=/x".into()],
                "--not-a-flag".into()
            )
        );
        assert_eq!(
            split_command("FROM"),
            ("FROM".into(), vec![], String::new())
        );
    }

    #[test]
    fn json_arrays() {
        assert!(is_json_array("[\"a\", \"b\\\"c\"]"));
        assert!(is_json_array(" [ ] "));
        assert!(!is_json_array("[\"a\", 1]"));
        assert!(!is_json_array("[a]"));
        assert!(!is_json_array("[\"a\"] x"));
    }

    #[test]
    fn arg_words_keep_quotes() {
        assert_eq!(
            split_args("A=1 B=\"x y\" C='$v' D", '\\'),
            ["A=1", "B=\"x y\"", "C='$v'", "D"]
        );
    }
}

//! The lines of a source file around a range, marked `>>>`, as BuildKit prints them
//! (`solver/errdefs` `Source.Print`): under a failed step when `docker buildx build` fails, and
//! under each warning of `docker --debug buildx build`'s warnings summary.
//!
//! It lives here, beside [`Warning`](crate::Warning) whose source it shows, so that the
//! renderers (warnings) and the daemon client (a failed build's error source) print one format
//! from one function.

/// The snippet of `data` (the file's text, as a `SourceInfo` carries it) around the 1-based
/// line `ranges` (start, end), headed by `filename:first-line`:
///
/// ```
/// let text = b"FROM bb\nRUN exit 3\nRUN echo two\n";
/// assert_eq!(
///     buildkit_events::source_snippet("Dockerfile", text, &[(2, 2)]).unwrap(),
///     "Dockerfile:2\n\
///      --------------------\n   \
///      1 |     FROM bb\n   \
///      2 | >>> RUN exit 3\n   \
///      3 |     RUN echo two\n   \
///      4 |     \n\
///      --------------------\n"
/// );
/// ```
///
/// Context as BuildKit gives it: two lines' worth around a range of several lines, four around
/// a single line; each round widens both ends where it can, and counts even when it cannot.
/// A range's end before its start counts as its start. `None` when there is no range or the
/// first line is outside the file.
pub fn source_snippet(filename: &str, data: &[u8], ranges: &[(i32, i32)]) -> Option<String> {
    let text = String::from_utf8_lossy(data);
    let lines: Vec<&str> = text.split('\n').collect();
    let spans: Vec<(i64, i64)> = ranges
        .iter()
        .map(|&(start, end)| (i64::from(start), i64::from(start.max(end))))
        .collect();
    let mut start = spans.iter().map(|s| s.0).min()?;
    let mut end = spans.iter().map(|s| s.1).max()?;
    let count = lines.len() as i64;
    if start < 1 || start > count {
        return None;
    }
    end = end.min(count);
    let pad = if end == start { 4 } else { 2 };
    let first = start;
    let mut p = 0;
    while p < pad {
        if start > 1 {
            start -= 1;
            p += 1;
        }
        if end != count {
            end += 1;
            p += 1;
        }
        p += 1;
    }
    let mut out = format!("{filename}:{first}\n--------------------\n");
    for i in start..=end {
        let marked = spans.iter().any(|&(s, e)| s <= i && i <= e);
        let prefix = if marked { ">>>" } else { "   " };
        out.push_str(&format!(" {i:>3} | {prefix} {}\n", lines[(i - 1) as usize]));
    }
    out.push_str("--------------------\n");
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::source_snippet;

    /// A range of several lines gets less context, and every line inside it is marked.
    #[test]
    fn a_multi_line_range_is_marked_whole_with_two_lines_of_context() {
        let text = b"A\nB\nC\nD\nE\nF\nG\n";
        assert_eq!(
            source_snippet("f", text, &[(3, 4)]).unwrap(),
            "f:3\n--------------------\n   \
             2 |     B\n   3 | >>> C\n   4 | >>> D\n   5 |     E\n\
             --------------------\n"
        );
    }

    #[test]
    fn no_range_or_a_range_outside_the_file_gives_nothing() {
        assert_eq!(source_snippet("f", b"A\n", &[]), None);
        assert_eq!(source_snippet("f", b"A\n", &[(0, 0)]), None);
        assert_eq!(source_snippet("f", b"A\n", &[(9, 9)]), None);
        // An end past the file is cut at its last line.
        assert!(source_snippet("f", b"A", &[(1, 40)]).is_some());
    }
}

//! Golden files, with one rule for every golden test of the workspace:
//!
//! - a golden file is rewritten only when `UPDATE_GOLDEN=1` and the run is not CI
//!   ([`crate::ci`]: `CI=true`); then the test passes and says on stderr what it wrote;
//! - otherwise (always under `CI=true`) a missing or different file fails the test, naming the
//!   file and the first differing line, and nothing is written.
//!
//! Re-bless after an intended change, then read the diff:
//!
//! ```text
//! UPDATE_GOLDEN=1 cargo test --workspace
//! git diff
//! ```
//!
//! [`test_each_recording!`](crate::test_each_recording) makes one `#[test]` per corpus
//! recording, so a failure names the recording.

use std::path::{Path, PathBuf};

/// Whether golden files may be rewritten: `UPDATE_GOLDEN=1`, and not under CI.
pub fn update_requested() -> bool {
    std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") && !crate::ci()
}

/// Compares `actual` with the golden file at `path`, or rewrites the file (see the module
/// docs). Panics on a mismatch or a missing file.
#[track_caller]
pub fn assert_golden(path: impl AsRef<Path>, actual: &str) {
    let path = path.as_ref();
    let expected = std::fs::read_to_string(path);
    if expected.as_deref().is_ok_and(|e| e == actual) {
        return;
    }
    if update_requested() {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        }
        std::fs::write(path, actual).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        eprintln!("UPDATE_GOLDEN: wrote {}", path.display());
        return;
    }
    let how = if crate::ci() {
        "golden files are never rewritten under CI=true"
    } else {
        "re-bless with UPDATE_GOLDEN=1 if the change is intended, and read the diff"
    };
    match expected {
        Err(e) => panic!("golden file {} is missing ({e}); {how}", path.display()),
        Ok(expected) => panic!(
            "output differs from the golden file {}; {how}\n{}",
            path.display(),
            diff_hint(&expected, actual)
        ),
    }
}

/// Where two texts first differ: the line number and up to three lines of each from there.
pub fn diff_hint(expected: &str, actual: &str) -> String {
    let exp: Vec<&str> = expected.lines().collect();
    let act: Vec<&str> = actual.lines().collect();
    let first = exp
        .iter()
        .zip(&act)
        .position(|(a, b)| a != b)
        .unwrap_or(exp.len().min(act.len()));
    let show = |lines: &[&str]| -> String {
        lines
            .iter()
            .skip(first)
            .take(3)
            .map(|l| format!("      {l}\n"))
            .collect()
    };
    let ends = if first == exp.len() && first == act.len() {
        " (the texts differ only in their line ends)"
    } else {
        ""
    };
    format!(
        "first difference at line {}{ends} ({} expected lines, {} actual)\n    expected:\n{}    actual:\n{}",
        first + 1,
        exp.len(),
        act.len(),
        show(&exp),
        show(&act)
    )
}

/// The files under `dir` (recursively) that are not in `expected`, sorted: golden files that
/// outlived what they were made from.
pub fn unexpected_files(dir: impl AsRef<Path>, expected: &[PathBuf]) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let entries =
            std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
        for entry in entries {
            let path = entry
                .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
                .path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut found = Vec::new();
    walk(dir.as_ref(), &mut found);
    found.retain(|p| !expected.contains(p));
    found.sort();
    found
}

/// One `#[test]` per corpus recording, each calling `check(&Recording)`, grouped in a module
/// per daemon, plus a test `list_names_every_recording` that fails when the corpus holds a
/// recording the list leaves out (or the list names one the corpus lacks). Test names are the
/// recording names with `-` written `_`:
///
/// ```ignore
/// fn golden_transcript(rec: &workspace_tests::corpus::Recording) { /* … */ }
///
/// // Every recording of the corpus (the list is kept in this macro, once):
/// workspace_tests::test_each_recording!(golden_transcript);
/// // Or a list of one's own:
/// workspace_tests::test_each_recording! {
///     golden_transcript;
///     docker_20_10 = "docker-20.10": basic_cached, run_fails;
///     docker_28_5 = "docker-28.5": basic_cached, registry_pull;
/// }
/// // → tests docker_20_10::basic_cached, …, docker_28_5::registry_pull
/// ```
#[macro_export]
macro_rules! test_each_recording {
    // The corpus, listed once for every golden test of the workspace.
    ($check:ident) => {
        $crate::test_each_recording! {
            $check;
            docker_20_10 = "docker-20.10":
                basic_cached, basic_nocache, biglog, build_args, classic_v1, classic_v1_cached,
                classic_v1_fails, client_cancel, copy_context, missing_base, multistage_parallel,
                parallel_double_start, run_fails, scratch_copy, syntax_error, warnings;
            docker_26_1 = "docker-26.1":
                basic_cached, basic_nocache, biglog, build_args, classic_v1, classic_v1_cached,
                classic_v1_fails, client_cancel, copy_context, missing_base, multistage_parallel,
                run_fails, scratch_copy, syntax_error, warnings;
            docker_28_5 = "docker-28.5":
                basic_cached, basic_nocache, biglog, build_args, classic_v1, classic_v1_cached,
                classic_v1_fails, client_cancel, copy_context, missing_base, multistage_parallel,
                registry_pull, run_fails, scratch_copy, syntax_error, warnings;
        }
    };
    (
        $check:ident;
        $( $module:ident = $daemon:literal : $( $test:ident ),+ $(,)? ; )+
    ) => {
        $(
            mod $module {
                $(
                    #[test]
                    fn $test() {
                        let name = stringify!($test).replace('_', "-");
                        super::$check(&$crate::corpus::get($daemon, &name));
                    }
                )+
            }
        )+

        #[test]
        fn list_names_every_recording() {
            let mut listed: Vec<String> = Vec::new();
            $( $(
                listed.push(format!("{}/{}", $daemon, stringify!($test).replace('_', "-")));
            )+ )+
            listed.sort();
            let mut corpus: Vec<String> =
                $crate::corpus::all().iter().map(|r| r.id()).collect();
            corpus.sort();
            assert_eq!(
                listed, corpus,
                "the test list and the corpus name different recordings"
            );
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hint_names_the_first_differing_line() {
        let hint = diff_hint("a\nb\nc\n", "a\nx\nc\n");
        assert!(hint.starts_with("first difference at line 2 (3 expected lines, 3 actual)"));
        assert!(
            hint.contains("      b\n") && hint.contains("      x\n"),
            "{hint}"
        );
        assert!(diff_hint("a\n", "a\nb\n").starts_with("first difference at line 2"));
        assert!(diff_hint("a\n", "a").contains("only in their line ends"));
    }

    #[test]
    fn a_matching_file_passes_and_a_missing_one_fails() {
        let dir = std::env::temp_dir().join(format!("golden-selftest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("same.txt");
        std::fs::write(&file, "same\n").unwrap();
        assert_golden(&file, "same\n");
        assert_eq!(
            unexpected_files(&dir, std::slice::from_ref(&file)),
            Vec::<PathBuf>::new()
        );
        assert_eq!(unexpected_files(&dir, &[]), [file]);
        if !update_requested() {
            let missing = dir.join("missing.txt");
            let panic = std::panic::catch_unwind(|| assert_golden(&missing, "x")).unwrap_err();
            let message = panic.downcast_ref::<String>().unwrap();
            assert!(message.contains("missing.txt is missing"), "{message}");
            assert!(!missing.exists());
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! `.dockerignore` parsing and matching.
//!
//! Input: the ignore file's text, then a NUL byte, then paths separated by NUL bytes (both
//! decoded lossily as UTF-8).
//!
//! Checks, besides "no panic" in `parse`, `is_excluded` and `may_include_beneath`:
//! - a path and its spellings `./path` (unless it is rooted) and `path/` are excluded alike
//!   (paths are cleaned);
//! - the walker's shortcut is sound: when a directory is excluded and
//!   `may_include_beneath(dir)` is false, every path beneath it is excluded too.

#![no_main]

use docker_context::dockerignore::DockerIgnore;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.split(|&b| b == 0);
    let text = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let paths: Vec<String> = parts
        .take(16)
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    let Ok(ignore) = DockerIgnore::parse(&text) else {
        return;
    };
    let _ = (ignore.is_empty(), ignore.has_exceptions());
    for pattern in ignore.patterns() {
        let _ = (pattern.as_str(), pattern.is_exception(), pattern.line());
    }

    for path in &paths {
        let excluded = ignore.is_excluded(path);
        let _ = ignore.may_include_beneath(path);
        // (`./` before a rooted path would make it relative: `/..` is the root, `./..` not.)
        if !path.starts_with('/') {
            assert_eq!(
                excluded,
                ignore.is_excluded(&format!("./{path}")),
                "{path:?} vs ./{path:?} with {text:?}"
            );
        }
        assert_eq!(
            excluded,
            ignore.is_excluded(&format!("{path}/")),
            "{path:?} vs {path:?}/ with {text:?}"
        );
        for pattern in ignore.patterns() {
            let _ = pattern.matches(path);
        }
    }

    // Only plain relative paths (no empty, `.` or `..` element, no leading `/`), whose
    // children are plainly beneath them once cleaned.
    let plain =
        |p: &str| !p.is_empty() && p.split('/').all(|e| !e.is_empty() && e != "." && e != "..");
    for dir in paths.iter().filter(|p| plain(p)) {
        if !ignore.is_excluded(dir) || ignore.may_include_beneath(dir) {
            continue;
        }
        for child in paths.iter().filter(|p| plain(p)) {
            let beneath = format!("{dir}/{child}");
            assert!(
                ignore.is_excluded(&beneath),
                "{beneath:?} is re-included although may_include_beneath({dir:?}) is false, with {text:?}"
            );
        }
    }
});

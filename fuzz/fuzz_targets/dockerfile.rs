//! Dockerfile analysis: `base_images` and `normalize`.
//!
//! Input: the Dockerfile's text, then a NUL byte, then up to 8 build args as NUL-separated
//! `name=value` pairs (a pair without `=` is a name with an empty value), all decoded lossily
//! as UTF-8.
//!
//! Checks, besides "no panic, no stack overflow, no runaway time or memory":
//! - every image is listed once, its `line`/`kind` are its first use, every use is in a stage
//!   that exists, and the stages that need it are in stage order and include the stages that
//!   use it;
//! - every error and reference error prints, and an error's line is a line of the file;
//! - `normalize` is idempotent: a normalized reference normalizes to itself.

#![no_main]

use std::collections::HashSet;

use dockerfile_analysis::{base_images, normalize};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.split(|&b| b == 0);
    let text = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let args: Vec<(String, String)> = parts
        .take(8)
        .map(|p| {
            let p = String::from_utf8_lossy(p);
            match p.split_once('=') {
                Some((k, v)) => (k.to_owned(), v.to_owned()),
                None => (p.into_owned(), String::new()),
            }
        })
        .collect();
    let lines = text.split('\n').count();

    let found = match base_images(&text, args) {
        Ok(found) => found,
        Err(err) => {
            let _ = err.to_string();
            let mut source = std::error::Error::source(&err);
            while let Some(s) = source {
                let _ = s.to_string();
                source = s.source();
            }
            if let Some(line) = err.line() {
                assert!((1..=lines).contains(&line), "line {line} of {lines}: {err}");
            }
            return;
        }
    };

    let labels: Vec<String> = found.stages.iter().map(|s| s.label()).collect();
    let mut references = HashSet::new();
    for image in &found.images {
        assert!(references.insert(&image.reference), "{} twice", image.reference);
        let first = image.uses.first().expect("an image without a use");
        assert_eq!((image.line, image.kind), (first.line, first.kind));
        // The stages that need the image are in stage order (labels repeat when names do,
        // so: a subsequence of the labels) and include those that use it.
        let mut rest = labels.iter();
        for label in &image.stages {
            assert!(
                rest.any(|l| l == label),
                "{label} out of order in {:?}",
                image.stages
            );
        }
        for u in &image.uses {
            assert!(u.stage < found.stages.len());
            assert!((1..=lines).contains(&u.line));
            assert!(image.stages.contains(&labels[u.stage]), "{image:?}");
        }
        let _ = image.uses.iter().map(|u| u.kind.to_string()).count();
        check_normalize(&image.reference);
    }
    if let Some(syntax) = &found.syntax {
        check_normalize(&syntax.reference);
    }
});

fn check_normalize(reference: &str) {
    match normalize(reference) {
        Ok(normal) => assert_eq!(
            normalize(&normal).as_deref(),
            Ok(normal.as_str()),
            "{reference:?}"
        ),
        Err(err) => {
            let _ = err.to_string();
        }
    }
}

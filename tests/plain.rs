//! What a transcript of BuildKit's plain progress printer says, step by step: each step's log
//! lines and closing marker, and the closing blocks of failed steps, whatever the `#N` numbers
//! and the order of the blocks. Two printers (ours and BuildKit's) are compared through it.

use std::collections::BTreeMap;

/// What a plain transcript says about one step.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Step {
    /// Its log lines, without their time prefix, in order.
    pub logs: Vec<String>,
    /// The last closing marker: `DONE`, `CACHED`, `ERROR: …` or `CANCELED`.
    pub marker: Option<String>,
}

/// Steps by name, plus the closing blocks (` > name:` → lines without their time prefix).
#[derive(Debug, Default)]
pub struct Transcript {
    /// Each step (by its name) and what was printed of it.
    pub steps: BTreeMap<String, Step>,
    /// The closing block of each failed step.
    pub closing: BTreeMap<String, Vec<String>>,
}

fn is_time(word: &str) -> bool {
    word.split_once('.').is_some_and(|(a, b)| {
        !a.is_empty() && !b.is_empty() && (a.to_owned() + b).bytes().all(|c| c.is_ascii_digit())
    })
}

/// Reads a transcript of BuildKit's plain printer (ours or BuildKit's own).
pub fn parse(text: &str) -> Transcript {
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    let mut t = Transcript::default();
    let mut closing: Option<String> = None;
    for line in text.lines() {
        if line == "------" {
            continue;
        }
        if let Some(name) = line.strip_prefix(" > ").and_then(|l| l.strip_suffix(':')) {
            closing = Some(name.to_string());
            t.closing.entry(name.to_string()).or_default();
            continue;
        }
        if let Some(name) = &closing {
            match line.trim_start().split_once(' ') {
                Some((time, rest)) if is_time(time) => {
                    t.closing.get_mut(name).unwrap().push(rest.to_string());
                    continue;
                }
                _ => {}
            }
            closing = None;
        }
        let Some(rest) = line.strip_prefix('#') else {
            continue;
        };
        let Some((n, body)) = rest.split_once(' ') else {
            continue;
        };
        if !n.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Some(name) = names.get(n).cloned() else {
            names.insert(n.to_string(), body.to_string());
            t.steps.entry(body.to_string()).or_default();
            continue;
        };
        let step = t.steps.get_mut(&name).unwrap();
        let (first, tail) = body.split_once(' ').unwrap_or((body, ""));
        if is_time(first) {
            step.logs.push(tail.to_string());
        } else if first == "DONE" || first == "CACHED" || first == "CANCELED" {
            step.marker = Some(first.to_string());
        } else if first == "ERROR:" {
            step.marker = Some(body.to_string());
        }
    }
    t
}

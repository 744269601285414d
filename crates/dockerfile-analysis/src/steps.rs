//! Where a build step's instruction is in the Dockerfile, from the name BuildKit gives the
//! step's vertex (`[build 2/3] RUN make`).

use super::DockerfileError;
use super::parse::{self, Instruction};

/// The lines of one instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstructionLines {
    /// The 1-based line where the instruction starts.
    pub start: usize,
    /// The 1-based line where it ends (its last continuation or here-document line).
    pub end: usize,
}

/// The lines of the instruction BuildKit's Dockerfile frontend names `[stage index/total]`:
/// the `index`-th instruction (the stage's `FROM` is 1) of the stage labelled `stage`, which
/// has `total` instructions.
///
/// BuildKit labels the steps of a stage only in a multi-stage Dockerfile: with its `AS` name
/// (lowercased), or `stage-K` (the stage's position from 0) when it has none; the steps of a
/// single-stage Dockerfile have no label (`stage` is `None`), named or not. A platform before the label (`[linux/amd64 build
/// 2/3]`) is ignored. `total` guards against a Dockerfile that is not the one built: when the
/// stage has another number of instructions, the answer is `None`, as it is when the stage or
/// the instruction does not exist.
///
/// ```
/// use dockerfile_analysis::{InstructionLines, step_lines};
///
/// let dockerfile = "FROM alpine AS build\nRUN make \\\n  all\n\nFROM scratch\nCOPY --from=build /a /\n";
/// assert_eq!(
///     step_lines(dockerfile, Some("build"), 2, 2).unwrap(),
///     Some(InstructionLines { start: 2, end: 3 })
/// );
/// assert_eq!(
///     step_lines(dockerfile, Some("stage-1"), 2, 2).unwrap(),
///     Some(InstructionLines { start: 6, end: 6 })
/// );
/// assert_eq!(step_lines(dockerfile, Some("build"), 2, 5).unwrap(), None);
/// ```
///
/// # Errors
///
/// A [`DockerfileError`] when the Dockerfile cannot be split into instructions.
pub fn step_lines(
    dockerfile: &str,
    stage: Option<&str>,
    index: usize,
    total: usize,
) -> Result<Option<InstructionLines>, DockerfileError> {
    let parsed = parse::parse(dockerfile)?;
    let mut stages: Vec<Vec<&Instruction>> = Vec::new();
    for i in &parsed.instructions {
        if i.keyword == "from" {
            stages.push(Vec::new());
        }
        if let Some(stage) = stages.last_mut() {
            stage.push(i);
        }
    }
    let label = stage
        .and_then(|s| s.rsplit(' ').next())
        .filter(|s| !s.is_empty());
    let found = match label {
        None if stages.len() == 1 => stages.first(),
        None => None,
        Some(label) => stages
            .iter()
            .enumerate()
            .find(|(k, instructions)| match stage_name(instructions[0]) {
                Some(name) => name == label,
                None => format!("stage-{k}") == label,
            })
            .map(|(_, instructions)| instructions),
    };
    Ok(found
        .filter(|instructions| instructions.len() == total)
        .and_then(|instructions| instructions.get(index.checked_sub(1)?))
        .map(|i| InstructionLines {
            start: i.line,
            end: i.end_line,
        }))
}

/// The `AS` name of a `FROM`, lowercased.
fn stage_name(from: &Instruction) -> Option<String> {
    let args: Vec<&str> = from.args.split_whitespace().collect();
    match args.as_slice() {
        [_, as_, name] if as_.eq_ignore_ascii_case("as") => Some(name.to_lowercase()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_stage_steps_have_no_label_and_count_every_instruction() {
        let dockerfile = "# syntax=docker/dockerfile:1\nARG BASE=alpine\nFROM $BASE\nENV A=1\nWORKDIR /x\nRUN <<EOF\necho hi\nEOF\nCMD [\"sh\"]\n";
        assert_eq!(
            step_lines(dockerfile, None, 4, 5).unwrap(),
            Some(InstructionLines { start: 6, end: 8 })
        );
        assert_eq!(
            step_lines(dockerfile, None, 1, 5).unwrap(),
            Some(InstructionLines { start: 3, end: 3 })
        );
        assert_eq!(step_lines(dockerfile, None, 6, 5).unwrap(), None);
        assert_eq!(step_lines(dockerfile, None, 0, 5).unwrap(), None);
    }

    #[test]
    fn named_unnamed_and_platform_labels() {
        let dockerfile = "FROM a AS Build\nRUN x\nFROM b\nRUN y\nRUN z\n";
        assert_eq!(
            step_lines(dockerfile, Some("build"), 2, 2).unwrap(),
            Some(InstructionLines { start: 2, end: 2 })
        );
        assert_eq!(
            step_lines(dockerfile, Some("linux/amd64 stage-1"), 3, 3).unwrap(),
            Some(InstructionLines { start: 5, end: 5 })
        );
        // Without a label a multi-stage Dockerfile is ambiguous.
        assert_eq!(step_lines(dockerfile, None, 2, 2).unwrap(), None);
        assert_eq!(step_lines(dockerfile, Some("other"), 2, 2).unwrap(), None);
    }

    /// The corpus's warnings build: an empty continuation line and a lowercase `from`.
    #[test]
    fn continuation_lines_and_lowercase_keywords() {
        let dockerfile = "FROM bbase:latest\nRUN echo a \\\n\n    && echo b\nfrom bbase:latest as Second\nRUN echo c\n";
        assert_eq!(
            step_lines(dockerfile, Some("second"), 2, 2).unwrap(),
            Some(InstructionLines { start: 6, end: 6 })
        );
        assert_eq!(
            step_lines(dockerfile, Some("stage-0"), 2, 2).unwrap(),
            Some(InstructionLines { start: 2, end: 4 })
        );
    }
}

//! Hostile Dockerfiles (issue 14, item 3): each one used to take seconds, to grow without bound
//! or to overflow the stack. Each must now give the right answer or a limit error, quickly
//! (no test here measures time; with the old code these took seconds or aborted).

use dockerfile_analysis::{
    DockerfileError, ExpandError, MAX_NESTING, NO_BUILD_ARGS, StageBase, UseKind, base_images,
};

fn image(text: &str) -> Result<String, DockerfileError> {
    let found = base_images(text, NO_BUILD_ARGS)?;
    assert_eq!(found.images.len(), 1, "{found:?}");
    Ok(found.images[0].reference.clone())
}

/// The message with its sources, as a program prints the chain.
fn chain(err: &DockerfileError) -> String {
    let mut message = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        message = format!("{message}: {s}");
        source = s.source();
    }
    message
}

/// `ARG V=<n × a>` + `FROM x${V%%*a*a*a*a*a*a*a*a*b}`: eight stars and a `b` that never comes.
/// A backtracking matcher tries every way to share the value among the stars (×3.3 per 4
/// characters: seconds at 40).
#[test]
fn star_heavy_patterns_over_long_values() {
    for n in [0, 8, 40, 200, 2_000] {
        let a = "a".repeat(n);
        for op in ["%%", "%", "##", "#"] {
            let text = format!("ARG V={a}\nFROM x${{V{op}*a*a*a*a*a*a*a*a*b}}\n");
            assert_eq!(image(&text).unwrap(), format!("x{a}"), "n = {n}, {op}");
        }
        for op in ["/", "//"] {
            let text = format!("ARG V={a}\nFROM x${{V{op}*a*a*a*a*a*a*a*a*b/r}}\n");
            assert_eq!(image(&text).unwrap(), format!("x{a}"), "n = {n}, {op}");
        }
        // Patterns that do match.
        if n >= 8 {
            let text = format!("ARG V={a}\nFROM x${{V%%*a*a*a*a*a*a*a*a}}y\n");
            assert_eq!(image(&text).unwrap(), "xy");
            let text = format!("ARG V={a}b\nFROM x${{V%*a*a*a*a*a*a*a*a*b}}y\n");
            assert_eq!(image(&text).unwrap(), format!("x{}y", "a".repeat(n - 8)));
            let text = format!("ARG V={a}b\nFROM x${{V#*a*a*a*a*a*a*a*a*b}}y\n");
            assert_eq!(image(&text).unwrap(), "xy");
            let text = format!("ARG V={a}\nFROM x${{V//*a*a/r}}\n");
            assert_eq!(image(&text).unwrap(), "xr");
        }
    }
}

/// `FROM ${A:-${A:-…img…}}`: nested 20,000 deep, this aborted the process with a stack overflow.
#[test]
fn deep_nesting_is_an_error() {
    let nested = |depth: usize| format!("{}img{}", "${A:-".repeat(depth), "}".repeat(depth));
    for depth in [1, 10, MAX_NESTING] {
        assert_eq!(image(&format!("FROM {}\n", nested(depth))).unwrap(), "img");
    }
    for depth in [MAX_NESTING + 1, 1_000, 20_000, 100_000] {
        let err = base_images(&format!("FROM {}\n", nested(depth)), NO_BUILD_ARGS).unwrap_err();
        assert!(
            matches!(
                err,
                DockerfileError::Expansion {
                    line: 1,
                    source: ExpandError::TooDeep,
                    ..
                }
            ),
            "{err:?}"
        );
        let message = chain(&err);
        assert_eq!(
            message,
            "line 1: cannot expand `${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-…`: \
             `${…}` substitutions nested more than 64 deep"
        );
    }
    // In a meta ARG's default, in COPY --from (no variables allowed there) and in a RUN
    // (scanned for heredocs).
    let deep = nested(20_000);
    let err = base_images(&format!("ARG X={deep}\nFROM img\n"), NO_BUILD_ARGS).unwrap_err();
    assert!(matches!(
        err,
        DockerfileError::Expansion {
            line: 1,
            source: ExpandError::TooDeep,
            ..
        }
    ));
    let err = base_images(
        &format!("FROM img\nCOPY --from={deep} / /\n"),
        NO_BUILD_ARGS,
    )
    .unwrap_err();
    assert!(
        matches!(err, DockerfileError::VariableInFrom { line: 2, .. }),
        "{err:?}"
    );
    assert_eq!(
        image(&format!("FROM img\nRUN echo {deep}\n")).unwrap(),
        "img"
    );
    // Side by side is not nesting.
    let flat = "${A:-a}".repeat(10_000);
    assert_eq!(
        image(&format!("FROM {flat}\n")).unwrap(),
        "a".repeat(10_000)
    );
}

/// 20,000 stages, each `FROM` the previous one: the dependency closure was an n × n matrix
/// (seconds, and 400 MB).
#[test]
fn long_stage_chains() {
    for n in [1, 1_000, 20_000] {
        let mut text = String::from("FROM img AS s0\n");
        for i in 1..n {
            text.push_str(&format!("FROM s{} AS s{i}\n", i - 1));
        }
        let found = base_images(&text, NO_BUILD_ARGS).unwrap();
        assert_eq!(found.stages.len(), n);
        assert_eq!(found.stages[0].base, StageBase::Image("img".into()));
        for (i, stage) in found.stages.iter().enumerate().skip(1) {
            assert_eq!(stage.base, StageBase::Stage(i - 1));
        }
        assert_eq!(found.images.len(), 1);
        let want: Vec<String> = (0..n).map(|i| format!("s{i}")).collect();
        assert_eq!(found.images[0].stages, want);
    }
}

/// The same chain through `COPY --from` and `RUN --mount=from=`, with an image per stage and
/// reused names (a `FROM`, `--from` or `from=` names the last earlier stage of that name).
#[test]
fn long_chains_of_copies_and_mounts() {
    let n = 500;
    let mut text = String::from("FROM img0 AS s0\n");
    for i in 1..n {
        let (name, previous) = (i % 2, (i + 1) % 2);
        text.push_str(&format!(
            "FROM img{i} AS s{name}\nCOPY --from=s{previous} / /\nRUN --mount=from=s{previous},target=/m --mount=from=m{i} true\n"
        ));
    }
    let found = base_images(&text, NO_BUILD_ARGS).unwrap();
    assert_eq!(found.images.len(), 2 * n - 1);
    // img0 is needed by every stage; img{i} by stages i.., m{i} likewise.
    for image in &found.images {
        let first = image.uses[0].stage;
        assert_eq!(image.stages.len(), n - first, "{}", image.reference);
        assert_eq!(image.stages[0], format!("s{}", first % 2));
        let kind = if image.reference.starts_with('m') {
            UseKind::MountFrom
        } else {
            UseKind::From
        };
        assert_eq!(image.kind, kind);
    }
    // A reference to a later stage is still found.
    let mut text = String::from("FROM img AS s0\n");
    for i in 1..n {
        text.push_str(&format!("FROM s{} AS s{i}\n", i - 1));
    }
    text.push_str("COPY --from=later / /\nFROM scratch AS later\n");
    let err = base_images(&text, NO_BUILD_ARGS).unwrap_err();
    assert!(
        matches!(err, DockerfileError::ForwardStageReference { line, stage_line, .. }
            if line == n + 1 && stage_line == n + 2),
        "{err:?}"
    );
}

/// `ARG A=$A$A`, again and again: the value doubles on every line.
#[test]
fn doubling_values_hit_the_work_limit() {
    let doubling = |lines: usize| {
        let mut text = String::from("ARG A=x\n");
        for _ in 0..lines {
            text.push_str("ARG A=$A$A\n");
        }
        text + "FROM img:$A\n"
    };
    assert_eq!(
        image(&doubling(10)).unwrap(),
        format!("img:{}", "x".repeat(1024))
    );
    for lines in [40, 1_000] {
        let err = base_images(&doubling(lines), NO_BUILD_ARGS).unwrap_err();
        assert!(
            matches!(
                err,
                DockerfileError::Expansion {
                    source: ExpandError::TooLarge,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(
            chain(&err).contains("expansion too large"),
            "{}",
            chain(&err)
        );
    }
    // A replacement that multiplies: each character of a 2¹⁶-character value by the value.
    let mut text = String::from("ARG A=x\n");
    for _ in 0..16 {
        text.push_str("ARG A=$A$A\n");
    }
    text.push_str("ARG B=${A//?/$A}\nFROM img\n");
    let err = base_images(&text, NO_BUILD_ARGS).unwrap_err();
    assert!(
        matches!(
            err,
            DockerfileError::Expansion {
                line: 18,
                source: ExpandError::TooLarge,
                ..
            }
        ),
        "{err:?}"
    );
}

//! A table of tricky Dockerfiles and the external images a build of each one
//! uses. Every row names the documented Dockerfile rule (Dockerfile
//! reference at docs.docker.com/reference/dockerfile, or BuildKit's parser
//! where the reference is silent) its expectation follows from.

use UseKind::{CopyFrom, From, MountFrom};
use dockerfile_analysis::{
    BaseImages, DockerfileError, ExpandError, ReferenceError, StageBase, UseKind, base_images,
    normalize,
};

/// What a row expects.
enum Expect {
    /// These images (in order of first use) and this `# syntax` frontend.
    Images {
        syntax: Option<&'static str>,
        images: Vec<Img>,
    },
    /// An error about this line whose message contains this text.
    Error {
        line: Option<usize>,
        contains: &'static str,
    },
}

/// One expected image: its reference, every use (line, kind) and the labels
/// of the stages whose build needs it.
struct Img {
    reference: &'static str,
    uses: &'static [(usize, UseKind)],
    stages: &'static [&'static str],
}

fn img(
    reference: &'static str,
    uses: &'static [(usize, UseKind)],
    stages: &'static [&'static str],
) -> Img {
    Img {
        reference,
        uses,
        stages,
    }
}

struct Row {
    name: &'static str,
    dockerfile: &'static str,
    args: &'static [(&'static str, &'static str)],
    expect: Expect,
}

fn row(name: &'static str, dockerfile: &'static str) -> Row {
    Row {
        name,
        dockerfile,
        args: &[],
        expect: Expect::Images {
            syntax: None,
            images: Vec::new(),
        },
    }
}

impl Row {
    fn args(mut self, args: &'static [(&'static str, &'static str)]) -> Self {
        self.args = args;
        self
    }

    fn images(mut self, images: Vec<Img>) -> Self {
        self.expect = Expect::Images {
            syntax: None,
            images,
        };
        self
    }

    fn syntax(mut self, frontend: &'static str, images: Vec<Img>) -> Self {
        self.expect = Expect::Images {
            syntax: Some(frontend),
            images,
        };
        self
    }

    fn error(mut self, line: usize, contains: &'static str) -> Self {
        self.expect = Expect::Error {
            line: Some(line),
            contains,
        };
        self
    }

    fn error_without_line(mut self, contains: &'static str) -> Self {
        self.expect = Expect::Error {
            line: None,
            contains,
        };
        self
    }

    /// Compares the result with the expectation; `Err` describes a mismatch.
    fn check(&self) -> Result<(), String> {
        let result = base_images(self.dockerfile, self.args.iter().copied());
        match (&self.expect, result) {
            (Expect::Images { syntax, images }, Ok(found)) => compare(found, *syntax, images),
            (Expect::Error { line, contains }, Err(err)) => {
                // The message with its sources, as a program prints the chain (each error's
                // own message never repeats its source).
                let mut message = err.to_string();
                let mut source = std::error::Error::source(&err);
                while let Some(s) = source {
                    message = format!("{message}: {s}");
                    source = s.source();
                }
                if err.line() != *line {
                    return Err(format!(
                        "error line {:?}, expected {line:?}: {message}",
                        err.line()
                    ));
                }
                if let Some(l) = line {
                    if !message.starts_with(&format!("line {l}: ")) {
                        return Err(format!(
                            "message does not start with `line {l}: `: {message}"
                        ));
                    }
                }
                if !message.contains(contains) {
                    return Err(format!("message does not contain `{contains}`: {message}"));
                }
                Ok(())
            }
            (Expect::Images { .. }, Err(err)) => Err(format!("unexpected error: {err}")),
            (Expect::Error { .. }, Ok(found)) => Err(format!("expected an error, got {found:#?}")),
        }
    }
}

/// An image as compared: reference, uses (line, kind), stage labels.
type Summary<'a> = (&'a str, Vec<(usize, UseKind)>, Vec<&'a str>);

fn compare(found: BaseImages, syntax: Option<&str>, images: &[Img]) -> Result<(), String> {
    let got_syntax = found.syntax.as_ref().map(|f| f.reference.as_str());
    if got_syntax != syntax {
        return Err(format!("syntax {got_syntax:?}, expected {syntax:?}"));
    }
    let got: Vec<Summary<'_>> = found
        .images
        .iter()
        .map(|i| {
            (
                i.reference.as_str(),
                i.uses.iter().map(|u| (u.line, u.kind)).collect(),
                i.stages.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    let want: Vec<Summary<'_>> = images
        .iter()
        .map(|i| (i.reference, i.uses.to_vec(), i.stages.to_vec()))
        .collect();
    if got != want {
        return Err(format!("images\n  got:      {got:?}\n  expected: {want:?}"));
    }
    // The summary fields describe the first use.
    for i in &found.images {
        if (i.line, i.kind) != (i.uses[0].line, i.uses[0].kind) {
            return Err(format!(
                "{}: line/kind differ from the first use",
                i.reference
            ));
        }
    }
    Ok(())
}

const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn rows() -> Vec<Row> {
    vec![
        // ---- FROM --------------------------------------------------------
        // FROM <image>: the image is the base of the (only) stage, index 0.
        row("plain FROM", "FROM busybox\n").images(vec![img("busybox", &[(1, From)], &["0"])]),
        // FROM <image>[:<tag>][@<digest>]: tag and digest are part of the image.
        row(
            "tag and digest",
            "FROM alpine:3.20@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n",
        )
        .images(vec![img(
            "alpine:3.20@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            &[(1, From)],
            &["0"],
        )]),
        // "The instruction is not case-sensitive": from / From / fRoM, and `as`.
        row("keywords in any case", "from a\nFrom b AS c\nfRoM c as D\n")
            .images(vec![img("a", &[(1, From)], &["0"]), img("b", &[(2, From)], &["c", "d"])]),
        // Leading whitespace before instructions is ignored ("Note on whitespace").
        row("indented instructions", "   FROM a AS x\n\tRUN true\n  FROM x\n").images(vec![img(
            "a",
            &[(1, From)],
            &["x", "1"],
        )]),
        // --platform selects a platform of the image; its value is not an image.
        row("platform flag", "FROM --platform=linux/arm64 alpine AS a\n")
            .images(vec![img("alpine", &[(1, From)], &["a"])]),
        // "The name can be used in subsequent FROM <name>": a stage named like
        // an image shadows the image.
        row("stage named like an image", "FROM busybox AS alpine\nRUN true\nFROM alpine\n").images(vec![img(
            "busybox",
            &[(1, From)],
            &["alpine", "1"],
        )]),
        // Stage names are lowercased (AS Builder is stored as builder) and
        // matched without regard to case.
        row(
            "stage names are case-insensitive",
            "FROM busybox AS Builder\nFROM builder AS b2\nFROM BUILDER\n",
        )
        .images(vec![img("busybox", &[(1, From)], &["builder", "b2", "2"])]),
        // Only *earlier* stages can be a base: `FROM x AS x` uses the image x.
        row("FROM x AS x", "FROM x AS x\n").images(vec![img("x", &[(1, From)], &["x"])]),
        // A FROM naming a stage defined later is an image, not that stage.
        row("FROM names a later stage", "FROM later\nFROM alpine AS later\n").images(vec![
            img("later", &[(1, From)], &["0"]),
            img("alpine", &[(2, From)], &["later"]),
        ]),
        // FROM scratch is the empty image: nothing to pull (recorded build scratch-copy).
        row("corpus scratch-copy", "FROM scratch\nCOPY hello.txt /\n"),
        // The same image in several stages is one entry with every use.
        row(
            "one entry per distinct reference",
            "FROM golang AS a\nFROM golang AS b\nFROM scratch\nCOPY --from=golang /x /x\n",
        )
        .images(vec![img("golang", &[(1, From), (2, From), (4, CopyFrom)], &["a", "b", "2"])]),
        // "FROM requires either one or three arguments".
        row("FROM without image", "ARG X\nFROM\n").error(2, "FROM needs an image"),
        row("FROM with only a flag", "FROM --platform=linux/amd64\n").error(1, "FROM needs an image"),
        row("FROM with two words", "FROM alpine AS\n").error(1, "FROM takes `image` or `image AS name`"),
        // Stage names must start with a letter.
        row("invalid stage name", "FROM alpine AS 1st\n").error(1, "invalid stage name `1st`"),
        // "ARG is the only instruction that may precede FROM".
        row("instruction before FROM", "ARG A=1\nRUN echo hi\nFROM a\n").error(2, "before the first FROM"),
        // "A Dockerfile must begin with a FROM instruction"; none means no stage.
        row("no FROM", "ARG A=1\n# nothing else\n").error_without_line("no FROM"),
        row("empty Dockerfile", "").error_without_line("no FROM"),
        // Unknown instructions fail the build (recorded build syntax-error).
        row("corpus syntax-error", "FROM bbase:latest\nRUNN echo bad\n").error(2, "unknown instruction `RUNN`"),
        // ---- ARG and FROM -----------------------------------------------
        // "Understand how ARG and FROM interact" (recorded build build-args;
        // the MSG build arg is for a stage ARG and does not change the image).
        row(
            "corpus build-args",
            "ARG BASE=bbase\nARG TAG=latest\nFROM ${BASE}:${TAG}\nARG MSG=default\nRUN echo \"msg=$MSG\"\n",
        )
        .args(&[("MSG", "from-api")])
        .images(vec![img("bbase:latest", &[(3, From)], &["0"])]),
        // The reference's own example: one meta ARG used by two FROMs.
        row(
            "reference example CODE_VERSION",
            "ARG  CODE_VERSION=latest\nFROM base:${CODE_VERSION}\nCMD  /code/run-app\n\nFROM extras:${CODE_VERSION}\nCMD  /code/run-extras\n",
        )
        .images(vec![
            img("base:latest", &[(2, From)], &["0"]),
            img("extras:latest", &[(5, From)], &["1"]),
        ]),
        // "If an ARG instruction has a default value and if there is no value
        // passed at build-time, the builder uses the default" — and a passed
        // value wins.
        row("build arg overrides default", "ARG TAG=1.0\nFROM img:$TAG\n")
            .args(&[("TAG", "2.0")])
            .images(vec![img("img:2.0", &[(2, From)], &["0"])]),
        // $VAR and ${VAR} are equivalent.
        row("both variable forms", "ARG REPO=library/img\nARG TAG=1\nFROM $REPO:${TAG}\n")
            .images(vec![img("library/img:1", &[(3, From)], &["0"])]),
        // An ARG without default and no build arg: "any use of a variable
        // results in an empty string".
        row("declared without value, not given", "ARG SUFFIX\nFROM img${SUFFIX}\n")
            .images(vec![img("img", &[(2, From)], &["0"])]),
        // ${variable:-word}: unset -> word.
        row(
            "default via :-",
            "ARG GO_VERSION\nFROM --platform=$BUILDPLATFORM golang:${GO_VERSION:-1.22} AS build\n",
        )
        .images(vec![img("golang:1.22", &[(2, From)], &["build"])]),
        row(
            "default via :- overridden",
            "ARG GO_VERSION\nFROM --platform=$BUILDPLATFORM golang:${GO_VERSION:-1.22} AS build\n",
        )
        .args(&[("GO_VERSION", "1.23")])
        .images(vec![img("golang:1.23", &[(2, From)], &["build"])]),
        // ${variable:-word}: set but empty -> word.
        row("empty value and :-", "ARG V\nFROM img:${V:-1}\n")
            .args(&[("V", "")])
            .images(vec![img("img:1", &[(2, From)], &["0"])]),
        // ${variable-word}: set (even empty) -> the value.
        row("empty value and -", "ARG V\nFROM img${V-:2}\n")
            .args(&[("V", "")])
            .images(vec![img("img", &[(2, From)], &["0"])]),
        row("unset value and -", "ARG V\nFROM img${V-:2}\n").images(vec![img("img:2", &[(2, From)], &["0"])]),
        // ${variable:+word}: set and non-empty -> word, otherwise empty.
        row("alt via :+ when set", "ARG TAG\nFROM img${TAG:+:$TAG}\n")
            .args(&[("TAG", "3")])
            .images(vec![img("img:3", &[(2, From)], &["0"])]),
        row("alt via :+ when unset", "ARG TAG\nFROM img${TAG:+:$TAG}\n").images(vec![img("img", &[(2, From)], &["0"])]),
        // ${variable+word}: set, even empty -> word.
        row("alt via + when empty", "ARG TAG\nFROM img${TAG+:edge}\n")
            .args(&[("TAG", "")])
            .images(vec![img("img:edge", &[(2, From)], &["0"])]),
        // "FROM instructions support variables that are declared by any ARG
        // instructions that occur before the first FROM": a build arg with
        // no ARG is not consumed.
        row("undeclared build arg is ignored", "FROM golang:${GO_VERSION:-1.22}\n")
            .args(&[("GO_VERSION", "1.23")])
            .images(vec![img("golang:1.22", &[(1, From)], &["0"])]),
        // "An ARG declared before a FROM is outside of a build stage" — and an
        // ARG after the first FROM is inside one: not visible to later FROMs.
        row("stage ARG does not reach FROM", "FROM scratch AS config\nARG UP=alpine\nFROM ${UP:-busybox}\n")
            .args(&[("UP", "debian")])
            .images(vec![img("busybox", &[(3, From)], &["1"])]),
        row("stage ARG alone leaves FROM empty", "FROM scratch AS config\nARG UP=alpine\nFROM ${UP}\n")
            .error(3, "FROM image `${UP}` expands to an empty name"),
        // An ARG default may use ARGs declared before it ("comes into effect
        // from the line on which it is declared").
        row("ARG default uses earlier ARG", "ARG REG=ghcr.io\nARG IMG=$REG/app\nFROM $IMG\n")
            .images(vec![img("ghcr.io/app", &[(3, From)], &["0"])]),
        row("ARG default uses earlier ARG, overridden", "ARG REG=ghcr.io\nARG IMG=$REG/app\nFROM $IMG\n")
            .args(&[("REG", "quay.io")])
            .images(vec![img("quay.io/app", &[(3, From)], &["0"])]),
        // A variable used before its ARG is empty.
        row("ARG used before declaration", "ARG IMG=${REG}x\nARG REG=ghcr.io/\nFROM $IMG\n")
            .images(vec![img("x", &[(3, From)], &["0"])]),
        // ARG <name>[=<default value>] [<name>[=<default value>]...]
        row("several ARGs on one line", "ARG A=1 B=2\nFROM x:$A.$B\n").images(vec![img("x:1.2", &[(2, From)], &["0"])]),
        // Quotes in ARG defaults are removed like in a shell.
        row("quoted ARG default", "ARG V=\"1.0\"\nFROM x:${V}\n").images(vec![img("x:1.0", &[(2, From)], &["0"])]),
        // FROM <image>[@<digest>] with the digest from a meta ARG.
        row("digest from an ARG", "ARG DIGEST=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\nFROM alpine@${DIGEST}\n")
            .images(vec![img(
                "alpine@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                &[(2, From)],
                &["0"],
            )]),
        // Automatic platform ARGs are in the global scope without an ARG; a
        // build arg sets them.
        row("automatic platform arg given", "FROM img-${TARGETARCH}\n")
            .args(&[("TARGETARCH", "arm64")])
            .images(vec![img("img-arm64", &[(1, From)], &["0"])]),
        // ... otherwise only the builder knows their value.
        row("automatic platform arg unknown", "FROM img-${TARGETARCH}\n").error(1, "TARGETARCH"),
        row(
            "automatic platform arg through an ARG default",
            "ARG IMG=img-$TARGETOS\nFROM scratch\nFROM $IMG\n",
        )
        .error(3, "TARGETOS"),
        // Malformed substitutions fail the build.
        row("unterminated ${", "FROM img:${TAG\n").error(1, "missing '}'"),
        row("required variable", "ARG TAG\nFROM img:${TAG:?required}\n").error(2, "TAG: required"),
        // FROM's arguments are split at whitespace before expansion.
        row("space inside a substitution", "ARG TAG\nFROM img:${TAG:-a b}\n").error(2, "FROM takes"),
        // ---- COPY --from -------------------------------------------------
        // The reference's example: "COPY --from=nginx:latest /etc/nginx/nginx.conf /nginx.conf".
        row("COPY --from image", "FROM alpine\nCOPY --from=nginx:latest /etc/nginx/nginx.conf /nginx.conf\n")
            .images(vec![img("alpine", &[(1, From)], &["0"]), img("nginx:latest", &[(2, CopyFrom)], &["0"])]),
        // Recorded build multistage-parallel: COPY --from=<stage name>.
        row(
            "corpus multistage-parallel",
            "FROM bbase:latest AS a\nRUN for i in 1 2 3 4 5; do echo a-$i; sleep 0.2; done\nFROM bbase:latest AS b\nRUN for i in 1 2 3 4 5; do echo b-$i >&2; sleep 0.2; done\nFROM bbase:latest\nCOPY --from=a /bin/busybox /a-busybox\nCOPY --from=b /bin/busybox /b-busybox\nRUN echo final\n",
        )
        .images(vec![img("bbase:latest", &[(1, From), (3, From), (5, From)], &["a", "b", "2"])]),
        // COPY --from=<index> names a stage by position.
        row("COPY --from index", "FROM golang AS build\nFROM scratch\nCOPY --from=0 /app /app\n")
            .images(vec![img("golang", &[(1, From)], &["build", "1"])]),
        // Stage names match whatever their case.
        row("COPY --from name case", "FROM golang AS build\nFROM scratch\nCOPY --from=BUILD /app /app\n")
            .images(vec![img("golang", &[(1, From)], &["build", "1"])]),
        // A name given twice: `--from` names the last stage of that name before the
        // instruction, as `FROM <name>` does; the labels repeat (the fuzz target's first find
        // was its own check assuming they do not).
        row(
            "COPY --from repeated stage name",
            "FROM golang AS build\nFROM scg AS build\nFROM scratch\nCOPY --from=BUILD /app /app\n",
        )
        .images(vec![
            img("golang", &[(1, From)], &["build"]),
            img("scg", &[(2, From)], &["build", "2"]),
        ]),
        // "In case a build stage with a specified name can't be found an image
        // with the same name is attempted to be used instead".
        row("COPY --from unknown name is an image", "FROM alpine\nCOPY --from=builder /x /x\n").images(vec![
            img("alpine", &[(1, From)], &["0"]),
            img("builder", &[(2, CopyFrom)], &["0"]),
        ]),
        // --from=<n> must name a stage that exists before the instruction.
        row("COPY --from index before the stage exists", "FROM a\nCOPY --from=1 / /\nFROM b\n")
            .error(2, "`--from=1` does not name a stage defined before this instruction (there is none)"),
        row("COPY --from index of own stage", "FROM a AS one\nFROM b\nCOPY --from=1 / /\n")
            .error(3, "(only stage 0 is)"),
        row("COPY --from negative index", "FROM a\nFROM b\nCOPY --from=-1 / /\n").error(3, "--from=-1"),
        // A stage cannot copy from itself, or (portably) from a later stage.
        row("COPY --from own name", "FROM a AS self\nCOPY --from=self / /\n").error(2, "`self` is the stage this instruction is in"),
        row("COPY --from later stage", "FROM a\nCOPY --from=later / /\nFROM b AS later\n")
            .error(2, "defined on line 3"),
        // BuildKit: "variable expansion is not supported for --from".
        row("COPY --from with a variable", "ARG IMG=nginx\nFROM alpine\nCOPY --from=${IMG} / /\n")
            .error(3, "variable expansion is not supported in COPY --from"),
        // --from=scratch is the empty image.
        row("COPY --from scratch", "FROM alpine\nCOPY --from=scratch / /\n").images(vec![img("alpine", &[(1, From)], &["0"])]),
        // ADD has no --from option in the reference; it is not a use.
        row("ADD --from is not a use", "FROM alpine\nADD --from=img src /dst\n").images(vec![img("alpine", &[(1, From)], &["0"])]),
        // A string flag needs a value.
        row("COPY --from without value", "FROM alpine\nCOPY --from /x /y\n").error(2, "`--from` needs a value"),
        // Flag values lose their quotes.
        row("COPY --from quoted", "FROM alpine\nCOPY --from=\"nginx:1\" /x /y\n").images(vec![
            img("alpine", &[(1, From)], &["0"]),
            img("nginx:1", &[(2, CopyFrom)], &["0"]),
        ]),
        // ---- RUN --mount from ---------------------------------------------
        // --mount from: "Build stage, context, or image name": a stage...
        row(
            "RUN --mount from a stage vs an image",
            "FROM golang AS builder\nFROM alpine\nRUN --mount=type=cache,from=builder,target=/c \\\n    --mount=type=bind,from=someimage,target=/s true\n",
        )
        .images(vec![
            img("golang", &[(1, From)], &["builder", "1"]),
            img("alpine", &[(2, From)], &["1"]),
            img("someimage", &[(3, MountFrom)], &["1"]),
        ]),
        // type defaults to bind; a cache mount without from uses an empty directory.
        row(
            "RUN --mount without type, cache without from",
            "FROM alpine\nRUN --mount=from=busybox,target=/b --mount=type=cache,target=/c true\n",
        )
        .images(vec![img("alpine", &[(1, From)], &["0"]), img("busybox", &[(2, MountFrom)], &["0"])]),
        // The reference's --device example: mounts from stages, one image.
        row(
            "reference llama.cpp example",
            "# syntax=docker/dockerfile:1\n\nFROM scratch AS model\nADD https://example.com/model.gguf /model.gguf\n\nFROM scratch AS prompt\nCOPY <<EOF prompt.txt\nQ: Generate a list\nA:\n[\n    {\n\nEOF\n\nFROM ghcr.io/ggml-org/llama.cpp:full-cuda-b5124\nRUN --device=nvidia.com/gpu=all \\\n    --mount=from=model,target=/models \\\n    --mount=from=prompt,target=/tmp \\\n    ./llama-cli -m /models/model.gguf -no-cnv -ngl 99 -f /tmp/prompt.txt\n",
        )
        .syntax(
            "docker/dockerfile:1",
            vec![img("ghcr.io/ggml-org/llama.cpp:full-cuda-b5124", &[(15, From)], &["2"])],
        ),
        // --mount's from is a "build stage, context, or image name": no index form.
        row("RUN --mount from=0 is a name", "FROM golang AS b\nFROM alpine\nRUN --mount=from=0,target=/x true\n")
            .images(vec![
                img("golang", &[(1, From)], &["b"]),
                img("alpine", &[(2, From)], &["1"]),
                img("0", &[(3, MountFrom)], &["1"]),
            ]),
        row("RUN --mount from scratch", "FROM alpine\nRUN --mount=type=cache,from=scratch,target=/c true\n")
            .images(vec![img("alpine", &[(1, From)], &["0"])]),
        row("RUN --mount from later stage", "FROM alpine\nRUN --mount=from=tools,target=/t true\nFROM busybox AS tools\n")
            .error(2, "defined on line 3"),
        // ONBUILD triggers run "in the context of the downstream build".
        row("ONBUILD COPY --from is not a use", "FROM alpine\nONBUILD COPY --from=nginx / /\n")
            .images(vec![img("alpine", &[(1, From)], &["0"])]),
        row("ONBUILD RUN heredoc", "FROM alpine\nONBUILD RUN <<EOF\nFROM evil\nEOF\n")
            .images(vec![img("alpine", &[(1, From)], &["0"])]),
        // BuildKit: "'from' doesn't support variable expansion".
        row("RUN --mount from with a variable", "FROM alpine\nRUN --mount=type=bind,from=$IMG,target=/x true\n")
            .error(2, "RUN --mount from"),
        // Mount options are CSV: a quoted field may hold commas; the flag's own
        // quotes are removed first.
        row("RUN --mount quoted", "FROM alpine\nRUN --mount=\"type=bind,from=tools:1,target=/t\" true\n")
            .images(vec![img("alpine", &[(1, From)], &["0"]), img("tools:1", &[(2, MountFrom)], &["0"])]),
        row("RUN --mount malformed CSV", "FROM alpine\nRUN --mount=type=bind,fr\\\"om=x true\n").error(2, "invalid --mount"),
        // ---- parser directives ---------------------------------------------
        // "# syntax=": the frontend image, not a base image.
        row("syntax directive", "# syntax=docker/dockerfile:1\nFROM alpine\n")
            .syntax("docker/dockerfile:1", vec![img("alpine", &[(2, From)], &["0"])]),
        // Directive keys are not case-sensitive; whitespace is allowed.
        row("syntax directive key case", "#  SYNTAX = docker/dockerfile:1.7\nFROM alpine\n")
            .syntax("docker/dockerfile:1.7", vec![img("alpine", &[(2, From)], &["0"])]),
        // "Once a comment, empty line or builder instruction has been
        // processed, BuildKit no longer looks for parser directives".
        row("directive after a comment", "# About my dockerfile\n# syntax=docker/dockerfile:1\nFROM alpine\n")
            .images(vec![img("alpine", &[(3, From)], &["0"])]),
        row("directive after an empty line", "\n# syntax=docker/dockerfile:1\nFROM alpine\n")
            .images(vec![img("alpine", &[(3, From)], &["0"])]),
        // An unknown directive is a comment, so the syntax after it is too.
        row("directive after an unknown directive", "# unknowndirective=value\n# syntax=value\nFROM alpine\n")
            .images(vec![img("alpine", &[(3, From)], &["0"])]),
        // `check` is a directive: the ones after it still count.
        row("check then syntax", "# check=skip=all\n# syntax=docker/dockerfile:1\nFROM alpine\n")
            .syntax("docker/dockerfile:1", vec![img("alpine", &[(3, From)], &["0"])]),
        // "A single directive may only be used once".
        row("duplicate directive", "# syntax=a\n# syntax=b\nFROM alpine\n").error(2, "only one `syntax`"),
        // escape=`: the backtick continues lines, and `c:\` is just a path.
        row(
            "escape backtick",
            "# escape=`\n\nFROM mcr.microsoft.com/windows/nanoserver:ltsc2022 `\n    AS base\nCOPY testfile.txt c:\\\nRUN dir c:\\\nFROM base AS final\n",
        )
        .images(vec![img(
            "mcr.microsoft.com/windows/nanoserver:ltsc2022",
            &[(3, From)],
            &["base", "final"],
        )]),
        // With escape=`, variables are escaped with the backtick too.
        row("escape backtick and variables", "# escape=`\nARG TAG=1\nFROM img:`$TAG${TAG}\n")
            .images(vec![img("img:$TAG1", &[(3, From)], &["0"])]),
        // The escape must be ` or \.
        row("invalid escape", "# escape=x\nFROM alpine\n").error(1, "invalid escape character"),
        // ---- continuations and comments --------------------------------------
        // Recorded build warnings: an empty continuation line is accepted (with a
        // warning), and `from ... as Second` is a lowercase FROM naming stage `second`.
        row(
            "corpus warnings",
            "FROM bbase:latest\nRUN echo a \\\n\n    && echo b\nfrom bbase:latest as Second\nRUN echo c\n",
        )
        .images(vec![img("bbase:latest", &[(1, From), (5, From)], &["0", "second"])]),
        // "Comment lines are removed before the Dockerfile instructions are
        // executed", also inside a continued instruction.
        row("comment inside continuation", "FROM \\\n# the base image\n    # indented comment\n  alpine \\\n  AS base\nFROM base\n")
            .images(vec![img("alpine", &[(1, From)], &["base", "1"])]),
        // Spaces and tabs after the escape character still continue the line.
        row("whitespace after escape", "FROM alpine \\ \t\n  AS base\nFROM base\n")
            .images(vec![img("alpine", &[(1, From)], &["base", "1"])]),
        // "Comments don't support line continuation characters".
        row("comment ending in escape", "# a comment \\\nFROM alpine\n").images(vec![img("alpine", &[(2, From)], &["0"])]),
        // BuildKit: an escaped escape at the end of a line is not a continuation.
        row("escaped escape at end of line", "FROM alpine\nRUN echo c:\\\\\nFROM busybox\n")
            .images(vec![img("alpine", &[(1, From)], &["0"]), img("busybox", &[(3, From)], &["1"])]),
        // Windows line endings.
        row("CRLF", "FROM alpine \\\r\n  AS a\r\nFROM a\r\n").images(vec![img("alpine", &[(1, From)], &["a", "1"])]),
        // A `#` in the middle of a line is an argument, not a comment.
        row("hash inside a line", "FROM alpine\nRUN echo 'we run some # of things'\nFROM busybox\n")
            .images(vec![img("alpine", &[(1, From)], &["0"]), img("busybox", &[(3, From)], &["1"])]),
        // ---- here-documents ------------------------------------------------
        // "the Dockerfile considers the next lines until the line only
        // containing a here-doc delimiter as part of the same command".
        row("heredoc body with FROM", "FROM alpine\nRUN <<EOF\nFROM evil\nCOPY --from=evil2 / /\nEOF\nFROM busybox\n")
            .images(vec![img("alpine", &[(1, From)], &["0"]), img("busybox", &[(6, From)], &["1"])]),
        // <<- strips leading tabs, also from the delimiter line.
        row("heredoc <<- with tabs", "FROM alpine\nRUN <<-EOT\n\tFROM evil\n\tEOT\nFROM busybox\n")
            .images(vec![img("alpine", &[(1, From)], &["0"]), img("busybox", &[(5, From)], &["1"])]),
        // Quoted delimiters: "If instead you were to quote any part of the
        // here-document word" — the delimiter is the unquoted word.
        row(
            "two quoted heredocs on one line",
            "FROM alpine\nRUN <<\"FILE1\" cat > file1 && <<'FILE2' cat > file2\nI am\nFROM evil1\nFILE1\nI am\nFROM evil2\nFILE2\nFROM busybox\n",
        )
        .images(vec![img("alpine", &[(1, From)], &["0"]), img("busybox", &[(9, From)], &["1"])]),
        // COPY <<EOF creates a file.
        row("COPY heredoc", "FROM alpine\nCOPY <<EOF greeting.txt\nFROM evil\nEOF\n").images(vec![img("alpine", &[(1, From)], &["0"])]),
        // A heredoc opened on a continued line starts after its last line.
        row("heredoc after continuation", "FROM alpine\nRUN \\\n  <<EOF cat\nFROM evil\nEOF\nFROM busybox\n")
            .images(vec![img("alpine", &[(1, From)], &["0"]), img("busybox", &[(6, From)], &["1"])]),
        // Heredocs redirect input of RUN/COPY(/ADD) only: in ENV it is text.
        row("<<EOF in ENV is text", "FROM alpine\nENV A=<<EOF\nFROM busybox\nEOF\n")
            .error(4, "unknown instruction `EOF`"),
        // Exec (JSON) form has no heredocs.
        row("<<EOF in exec form is text", "FROM alpine\nRUN [\"cat\", \"<<EOF\"]\nFROM busybox\n")
            .images(vec![img("alpine", &[(1, From)], &["0"]), img("busybox", &[(3, From)], &["1"])]),
        // A heredoc whose delimiter never comes.
        row("unterminated heredoc", "FROM alpine\nRUN <<EOF\necho hi\n").error(2, "unterminated heredoc"),
        // ---- more recorded builds (capture.sh) ------------------------------------
        row("corpus basic", "FROM bbase:latest\nRUN echo marker && echo line-two\nRUN echo second-step\n")
            .images(vec![img("bbase:latest", &[(1, From)], &["0"])]),
        row("corpus missing-base", "FROM does-not-exist-anywhere:1.0\nRUN echo x\n")
            .images(vec![img("does-not-exist-anywhere:1.0", &[(1, From)], &["0"])]),
        row(
            "corpus copy-context",
            "FROM bbase:latest\nCOPY src /src\nRUN ls /src | wc -l\nWORKDIR /src\nENV A=1\nARG B=2\nRUN echo $A $B\n",
        )
        .images(vec![img("bbase:latest", &[(1, From)], &["0"])]),
        // ---- limits (issue 14; see tests/limits.rs) ----------------------------------
        // `%%`: the longest suffix matching the pattern; there is none (no `b`), so the value
        // stays. Matched by an automaton: backtracking took seconds here.
        row(
            "eight stars and no match",
            "ARG V=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\nFROM x${V%%*a*a*a*a*a*a*a*a*b}\n",
        )
        .images(vec![img("xaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", &[(2, From)], &["0"])]),
        // `${…}` nests at most 64 deep (MAX_NESTING).
        row("nesting 65 deep", "FROM ${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-img}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}\n")
            .error(1, "substitutions nested more than 64 deep"),
    ]
}

#[test]
fn table_of_dockerfiles() {
    let rows = rows();
    let failures: Vec<String> = rows
        .iter()
        .filter_map(|r| r.check().err().map(|e| format!("[{}] {e}", r.name)))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

#[test]
fn row_names_are_unique() {
    let rows = rows();
    let mut names: Vec<_> = rows.iter().map(|r| r.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), rows.len());
}

#[test]
fn stages_record_names_bases_and_platforms() {
    let found = base_images(
        "FROM --platform=$BUILDPLATFORM golang AS Build\nFROM build AS test\nFROM scratch\n",
        dockerfile_analysis::NO_BUILD_ARGS,
    )
    .unwrap();
    let stages: Vec<_> = found
        .stages
        .iter()
        .map(|s| {
            (
                s.index,
                s.name.as_deref(),
                s.line,
                s.base.clone(),
                s.platform.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        stages,
        [
            (
                0,
                Some("build"),
                1,
                StageBase::Image("golang".into()),
                Some("$BUILDPLATFORM")
            ),
            (1, Some("test"), 2, StageBase::Stage(0), None),
            (2, None, 3, StageBase::Scratch, None),
        ]
    );
}

#[test]
fn build_args_accept_maps_and_owned_pairs() {
    let text = "ARG TAG=1\nFROM img:$TAG\n";
    let map: std::collections::HashMap<String, String> =
        [("TAG".to_owned(), "2".to_owned())].into();
    assert_eq!(
        base_images(text, &map).unwrap().images[0].reference,
        "img:2"
    );
    let pairs = vec![
        ("TAG".to_owned(), "3".to_owned()),
        ("TAG".to_owned(), "4".to_owned()),
    ];
    // A later pair overrides an earlier one.
    assert_eq!(
        base_images(text, pairs).unwrap().images[0].reference,
        "img:4"
    );
}

#[test]
fn errors_are_typed() {
    let none = dockerfile_analysis::NO_BUILD_ARGS;
    assert_eq!(
        base_images("FROM a\nRUN <<EOF\n", none).unwrap_err(),
        DockerfileError::UnterminatedHeredoc {
            line: 2,
            name: "EOF".into()
        }
    );
    assert!(matches!(
        base_images("FROM img:${X\n", none).unwrap_err(),
        DockerfileError::Expansion {
            line: 1,
            source: ExpandError::MissingBrace,
            ..
        }
    ));
    assert!(matches!(
        base_images("FROM $TARGETPLATFORM\n", none).unwrap_err(),
        DockerfileError::Expansion {
            source: ExpandError::PlatformArg(_),
            ..
        }
    ));
}

/// Docker's reference rules: the first component is a registry if it has `.`
/// or `:` or is `localhost`; Docker Hub images get `docker.io/` and, with one
/// component, `library/`; no tag and no digest means `:latest`.
#[test]
fn normalization_table() {
    let digest_ref = format!("img@{DIGEST}");
    let tag_digest_ref = format!("img:tag@{DIGEST}");
    let expect_digest = format!("docker.io/library/img@{DIGEST}");
    let expect_tag_digest = format!("docker.io/library/img:tag@{DIGEST}");
    let rows: Vec<(&str, Result<&str, ()>)> = vec![
        ("busybox", Ok("docker.io/library/busybox:latest")),
        ("busybox:1.36", Ok("docker.io/library/busybox:1.36")),
        ("user/img:1", Ok("docker.io/user/img:1")),
        ("docker.io/user/img", Ok("docker.io/user/img:latest")),
        (
            "index.docker.io/library/busybox",
            Ok("docker.io/library/busybox:latest"),
        ),
        ("ghcr.io/x/y", Ok("ghcr.io/x/y:latest")),
        ("localhost:5000/x", Ok("localhost:5000/x:latest")),
        ("localhost/x:dev", Ok("localhost/x:dev")),
        (
            "registry.example.com:443/team/app:v1.2.3",
            Ok("registry.example.com:443/team/app:v1.2.3"),
        ),
        (digest_ref.as_str(), Ok(expect_digest.as_str())),
        (tag_digest_ref.as_str(), Ok(expect_tag_digest.as_str())),
        ("Busybox", Err(())),
        ("img:", Err(())),
        ("img@sha256:123", Err(())),
        ("", Err(())),
    ];
    for (input, want) in rows {
        let got = normalize(input);
        match want {
            Ok(w) => assert_eq!(got.as_deref(), Ok(w), "{input}"),
            Err(()) => assert!(got.is_err(), "{input}: {got:?}"),
        }
    }
    assert_eq!(
        normalize("Busybox"),
        Err(ReferenceError::Uppercase("Busybox".into()))
    );
}

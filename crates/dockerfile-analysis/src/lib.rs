//! Which external images a Dockerfile build uses.
//!
//! [`base_images`] reads a Dockerfile and the build args and lists every
//! image the build references — in `FROM`, `COPY --from` and
//! `RUN --mount=…,from=…` — with the lines and stages that use it, plus the
//! `# syntax=` frontend image. [`normalize`] turns a reference into its fully
//! qualified form (`busybox` → `docker.io/library/busybox:latest`).
//! [`step_lines`] finds the instruction a BuildKit step name (`[build 2/3] RUN make`) stands
//! for.
//!
//! ```
//! use dockerfile_analysis::{base_images, UseKind};
//!
//! let dockerfile = "\
//! ## syntax=docker/dockerfile:1
//! ARG GO_VERSION
//! FROM --platform=$BUILDPLATFORM golang:${GO_VERSION:-1.22} AS build
//! RUN --mount=type=cache,target=/root/.cache go build -o /app .
//!
//! FROM scratch
//! COPY --from=build /app /app
//! COPY --from=nginx:latest /etc/nginx/nginx.conf /etc/
//! ";
//! let found = base_images(dockerfile, [("GO_VERSION", "1.23")]).unwrap();
//! assert_eq!(found.syntax.unwrap().reference, "docker/dockerfile:1");
//! let images: Vec<_> = found
//!     .images
//!     .iter()
//!     .map(|i| (i.reference.as_str(), i.line, i.kind, i.stages.clone()))
//!     .collect();
//! assert_eq!(
//!     images,
//!     [
//!         ("golang:1.23", 3, UseKind::From, vec!["build".to_owned(), "1".to_owned()]),
//!         ("nginx:latest", 8, UseKind::CopyFrom, vec!["1".to_owned()]),
//!     ]
//! );
//! ```
//!
//! # What is recognised
//!
//! The parser follows the Dockerfile reference and BuildKit's parser:
//!
//! * **Parser directives** (`# syntax=`, `# escape=`, `# check=`; keys are
//!   case-insensitive) are only recognised at the top of the file: once a
//!   comment, an empty line or an instruction has been seen, a line that
//!   looks like a directive is a comment. A directive may appear only once;
//!   `escape` must be `\` or `` ` ``. The `syntax` frontend is reported in
//!   [`BaseImages::syntax`], not as an image; its value is cut at the first
//!   space, as BuildKit does, and a `BUILDKIT_SYNTAX` build arg overrides it
//!   (`dockerfile.v0` meaning the built-in frontend).
//! * **Instructions** are case-insensitive (`from`, `From`); leading
//!   whitespace is ignored. A line whose first non-blank character is `#` is
//!   a comment, also in the middle of a continued instruction; comments
//!   cannot themselves be continued.
//! * **Line continuation**: the escape character as the last character of a
//!   line, spaces and tabs after it allowed, joins the next line. An escape
//!   preceded by another escape (`c:\\`) is not a continuation — BuildKit's
//!   rule; the reference's `escape` example shows the older behaviour of the
//!   classic builder, which continued such a line. Empty (or blank)
//!   continuation lines are skipped — BuildKit accepts them with a warning.
//! * **Here-documents** (`<<EOF`, `<<-EOF`, `<<"EOF"`, `<<'EOF'`, an optional
//!   file descriptor such as `3<<EOF`, several on one line) in `RUN`, `COPY`
//!   and `ADD` (also after `ONBUILD`), except in the JSON form: their bodies
//!   are read up to the line that is exactly the delimiter (after removing
//!   leading tabs for `<<-`) and are never parsed as instructions. (The
//!   classic, non-BuildKit builder has no here-documents and ignores
//!   `# syntax`; this module follows BuildKit.)
//! * `FROM`'s arguments are split at whitespace *before* expansion, so
//!   `FROM ${IMG:-a b}` is two words (an error), not an image with a space.
//! * Instructions Docker does not know (`RUNN`), instructions other than
//!   `ARG` before the first `FROM`, and a file without `FROM` are errors, as
//!   they fail the build.
//!
//! # Which variables are expanded
//!
//! * In `FROM`, the image is expanded with the *meta* ARGs only: the `ARG`
//!   instructions before the first `FROM` ("Understand how ARG and FROM
//!   interact"). An `ARG` after the first `FROM` belongs to a stage and does
//!   not apply to any `FROM`. A meta ARG takes the build arg of the same name
//!   if given, otherwise its default (itself expanded with the meta ARGs
//!   declared before it); declared without either, it is unset and expands
//!   to the empty string. Build args that no meta `ARG` declares are ignored
//!   for `FROM`, as Docker ignores (and warns about) build args the
//!   Dockerfile does not consume. The exceptions are BuildKit's automatic
//!   platform ARGs (`TARGETPLATFORM`, `TARGETOS`, `TARGETARCH`,
//!   `TARGETVARIANT`, `BUILDPLATFORM`, `BUILDOS`, `BUILDARCH`,
//!   `BUILDVARIANT`, plus `TARGETOSVERSION`, `BUILDOSVERSION`,
//!   `TARGETSTAGE`): they are in the global scope without an `ARG`. The
//!   builder sets them from the platforms of the build, which a Dockerfile
//!   alone does not tell, so an image that depends on one is an error
//!   ([`ExpandError::PlatformArg`]) unless it is given as a build arg.
//!   The supported forms are those of the reference: `$VAR`, `${VAR}`,
//!   `${VAR:-default}`, `${VAR-default}`, `${VAR:+alt}`, `${VAR+alt}`,
//!   `${VAR:?msg}`, `${VAR?msg}`, and the pattern forms `#`, `##`, `%`, `%%`,
//!   `/`, `//`; quotes and escapes are removed as the builder does.
//! * The `--platform` value is not expanded; [`Stage::platform`] keeps it as
//!   written.
//! * `COPY --from` and `RUN --mount=…,from=…` are **not** expanded: BuildKit
//!   rejects variables there ("variable expansion is not supported for
//!   --from, define a new stage with FROM using ARG from global scope as a
//!   workaround"), and so does [`base_images`]
//!   ([`DockerfileError::VariableInFrom`]).
//! * `ONBUILD` instructions run in the builds of images based on this one, so
//!   their `COPY --from`/`--mount` are not uses of this build.
//!
//! # Stages and images
//!
//! * `FROM scratch` (exactly, lowercase) is the empty image, not an image
//!   to pull; so are `COPY --from=scratch` and `--mount=from=scratch`.
//! * Stage names are stored lowercased and matched case-insensitively.
//!   `FROM <name>` names a stage only if that stage was defined *earlier*
//!   (so `FROM x AS x` uses the image `x`); otherwise it is an image.
//! * `COPY --from=<name>` and `RUN --mount=from=<name>` name a stage defined
//!   before the instruction, else an image (Docker: "a build stage, context,
//!   or image"). A name of the stage the instruction is in, or of a stage
//!   defined further down, is an error: the reference describes the name as
//!   usable in *subsequent* instructions, and builders disagree on forward
//!   references (BuildKit resolves them, the classic builder pulls an image).
//! * `COPY --from=<n>` with a number names the stage with that index; the
//!   stage must be defined before the instruction. `--mount` has no index
//!   form (its `from` is a "build stage, context, or image name", and
//!   BuildKit looks it up by name only), so `from=0` is an image named `0`.
//! * Named build contexts (`--build-context name=…`) can replace any of these
//!   at build time; they are not known here.
//!
//! # Representation
//!
//! [`BaseImages::images`] has **one entry per distinct reference** (exactly
//! as written after expansion, so `alpine` and `alpine:latest` are
//! different entries — [`normalize`] them to merge), in order of first use.
//! [`ImageUse::line`] and [`ImageUse::kind`] describe the first use and
//! [`ImageUse::uses`] lists all of them. [`ImageUse::stages`] names every
//! stage whose build needs the image: the stages that use it directly and
//! every stage that depends on one of those through `FROM <stage>`,
//! `COPY --from=<stage>` or `--mount=from=<stage>` — building such a stage as
//! the target needs the image.
//!
//! Image references are reported as written; they are not checked against
//! the reference grammar (use [`normalize`] or [`ImageUse::normalized`]).
//!
//! # Limits
//!
//! Any input is analysed in time about linear in its size (and in the size
//! of the answer) and in bounded stack and memory:
//!
//! * `${…}` substitutions nest at most [`MAX_NESTING`] (64) deep; deeper is
//!   [`ExpandError::TooDeep`], with the message
//!   ``line N: cannot expand `…`: `${…}` substitutions nested more than 64
//!   deep``.
//! * The expansions of one Dockerfile (meta `ARG` defaults and `FROM`
//!   images) may take at most [`MAX_EXPANSION_WORK`] steps: characters
//!   produced plus pattern-matching work. Beyond it, [`ExpandError::TooLarge`]
//!   — without a bound, `ARG A=$A$A` repeated 40 times asks for 2⁴⁰
//!   characters.
//! * Patterns (`#`, `%`, `/` forms) are matched by an automaton simulation in
//!   O(value length × pattern length), not by backtracking.
//! * Stage names are looked up in maps, and the stages that need an image are
//!   found by a search over the stage dependencies that visits each of them
//!   once per image.

#![warn(missing_docs)]

mod expand;
mod parse;
mod reference;
mod steps;

use std::collections::HashMap;

pub use expand::{ExpandError, MAX_EXPANSION_WORK, MAX_NESTING, Quote};
pub use reference::{ReferenceError, normalize};
pub use steps::{InstructionLines, step_lines};

use expand::{Budget, expand_word};
use parse::{Instruction, split_args};

/// Everything [`base_images`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseImages {
    /// The frontend image of the `# syntax=` directive (or of the
    /// `BUILDKIT_SYNTAX` build arg). `None` means the builder's built-in
    /// Dockerfile frontend.
    pub syntax: Option<Frontend>,
    /// The external images, one entry per distinct reference, in order of
    /// first use.
    pub images: Vec<ImageUse>,
    /// The stages, in order.
    pub stages: Vec<Stage>,
}

impl BaseImages {
    /// The images a build of `target` needs, in order of first use: those of the target stage
    /// and of the stages it depends on, the way BuildKit loads only what the target reaches.
    /// `None` is the default build, of the last stage; a target names a stage by its `AS`
    /// name, case-insensitively, as `docker build --target` does.
    ///
    /// ```
    /// let found = dockerfile_analysis::base_images(
    ///     "FROM alpine AS test\nRUN true\nFROM golang AS build\nFROM scratch\nCOPY --from=build /a /a\n",
    ///     dockerfile_analysis::NO_BUILD_ARGS,
    /// )
    /// .unwrap();
    /// let refs = |images: Vec<&dockerfile_analysis::ImageUse>| {
    ///     images.iter().map(|i| i.reference.clone()).collect::<Vec<_>>()
    /// };
    /// assert_eq!(refs(found.needed_by(None).unwrap()), ["golang"]);
    /// assert_eq!(refs(found.needed_by(Some("Test")).unwrap()), ["alpine"]);
    /// assert_eq!(
    ///     found.needed_by(Some("lint")).unwrap_err().to_string(),
    ///     "target stage \"lint\" could not be found"
    /// );
    /// ```
    ///
    /// # Errors
    ///
    /// [`UnknownTarget`] when no stage has that name.
    pub fn needed_by(&self, target: Option<&str>) -> Result<Vec<&ImageUse>, UnknownTarget> {
        let stage = match target {
            None => self.stages.last(),
            Some(name) => {
                let lower = name.to_lowercase();
                self.stages
                    .iter()
                    .find(|s| s.name.as_deref() == Some(lower.as_str()))
            }
        };
        let Some(stage) = stage else {
            return match target {
                Some(name) => Err(UnknownTarget(name.to_string())),
                None => Ok(Vec::new()),
            };
        };
        let label = stage.label();
        Ok(self
            .images
            .iter()
            .filter(|image| image.stages.contains(&label))
            .collect())
    }
}

/// A `--target` that names no stage of the Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("target stage {0:?} could not be found")]
pub struct UnknownTarget(pub String);

/// The Dockerfile frontend image chosen by `# syntax=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frontend {
    /// The image reference, as written.
    pub reference: String,
    /// The line of the directive; `None` when the `BUILDKIT_SYNTAX` build arg
    /// chose the frontend.
    pub line: Option<usize>,
}

/// One external image and where the build uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUse {
    /// The reference as written, after variable expansion.
    pub reference: String,
    /// The 1-based line of the instruction that first uses the image.
    pub line: usize,
    /// How the first use refers to the image.
    pub kind: UseKind,
    /// Every use, in file order (the first one is `line` and `kind`).
    pub uses: Vec<Use>,
    /// Labels ([`Stage::label`]) of the stages whose build needs the image,
    /// in stage order: the stages using it directly and those depending on
    /// them.
    pub stages: Vec<String>,
}

impl ImageUse {
    /// The fully qualified form of [`ImageUse::reference`]; see [`normalize`].
    ///
    /// ```
    /// let found = dockerfile_analysis::base_images("FROM alpine\n", dockerfile_analysis::NO_BUILD_ARGS).unwrap();
    /// assert_eq!(found.images[0].normalized().unwrap(), "docker.io/library/alpine:latest");
    /// ```
    ///
    /// # Errors
    ///
    /// A [`ReferenceError`] when the reference is not a valid image reference.
    pub fn normalized(&self) -> Result<String, ReferenceError> {
        normalize(&self.reference)
    }
}

/// One instruction that uses an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Use {
    /// The 1-based line where the instruction starts.
    pub line: usize,
    /// How the instruction refers to the image.
    pub kind: UseKind,
    /// Index in [`BaseImages::stages`] of the stage the instruction is in.
    pub stage: usize,
}

/// How an instruction refers to an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UseKind {
    /// `FROM image`: the base of a stage.
    From,
    /// `COPY --from=image`.
    CopyFrom,
    /// `RUN --mount=…,from=image`.
    MountFrom,
}

impl std::fmt::Display for UseKind {
    /// The instruction form: `FROM`, `COPY --from` or `RUN --mount from`.
    ///
    /// ```
    /// assert_eq!(dockerfile_analysis::UseKind::CopyFrom.to_string(), "COPY --from");
    /// ```
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            UseKind::From => "FROM",
            UseKind::CopyFrom => "COPY --from",
            UseKind::MountFrom => "RUN --mount from",
        })
    }
}

/// A build stage (one `FROM`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// Position among the stages, from 0.
    pub index: usize,
    /// The `AS` name, lowercased as Docker stores it.
    pub name: Option<String>,
    /// The 1-based line of the `FROM`.
    pub line: usize,
    /// What the stage starts from.
    pub base: StageBase,
    /// The `--platform` value, as written (not expanded).
    pub platform: Option<String>,
}

impl Stage {
    /// The name of the stage, or its index when it has none.
    ///
    /// ```
    /// let found = dockerfile_analysis::base_images(
    ///     "FROM alpine AS Build\nFROM build\n",
    ///     dockerfile_analysis::NO_BUILD_ARGS,
    /// )
    /// .unwrap();
    /// assert_eq!(found.stages[0].label(), "build");
    /// assert_eq!(found.stages[1].label(), "1");
    /// ```
    pub fn label(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.index.to_string())
    }
}

/// What a stage's `FROM` refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageBase {
    /// An external image (the reference after expansion).
    Image(String),
    /// An earlier stage, by index.
    Stage(usize),
    /// `scratch`, the empty image.
    Scratch,
}

/// Why a Dockerfile could not be analysed. Every variant but
/// [`DockerfileError::NoStages`] carries the 1-based line of the instruction
/// (or directive) at fault, and its message starts with `line N:`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DockerfileError {
    /// A parser directive is repeated, or `escape` is not `\` or `` ` ``.
    #[error("line {line}: {message}")]
    Directive {
        /// Line of the directive.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A here-document's delimiter line never came.
    #[error(
        "line {line}: unterminated heredoc: no line `{name}` closes `<<{name}` before the end of the file"
    )]
    UnterminatedHeredoc {
        /// Line of the instruction that opens the here-document.
        line: usize,
        /// The delimiter.
        name: String,
    },
    /// An instruction Docker does not know, such as `RUNN`.
    #[error("line {line}: unknown instruction `{instruction}`")]
    UnknownInstruction {
        /// Line of the instruction.
        line: usize,
        /// The keyword as written.
        instruction: String,
    },
    /// An instruction other than `ARG` before the first `FROM`.
    #[error("line {line}: `{instruction}` before the first FROM (only ARG may precede FROM)")]
    InstructionBeforeFrom {
        /// Line of the instruction.
        line: usize,
        /// The keyword as written.
        instruction: String,
    },
    /// The Dockerfile has no `FROM`, hence no stage to build.
    #[error("the Dockerfile has no FROM instruction")]
    NoStages,
    /// A malformed meta `ARG` (no name, or an empty name).
    #[error("line {line}: {message}")]
    InvalidArg {
        /// Line of the `ARG`.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// `FROM` without an image.
    #[error("line {line}: FROM needs an image")]
    FromWithoutImage {
        /// Line of the `FROM`.
        line: usize,
    },
    /// `FROM` with arguments other than `image` or `image AS name`.
    #[error("line {line}: FROM takes `image` or `image AS name`, not `{args}`")]
    FromArguments {
        /// Line of the `FROM`.
        line: usize,
        /// The arguments as written.
        args: String,
    },
    /// A stage name that does not match `[a-z][a-z0-9-_.]*` once lowercased.
    #[error(
        "line {line}: invalid stage name `{name}`: it must start with a letter and contain only letters, digits, `-`, `_` and `.`"
    )]
    InvalidStageName {
        /// Line of the `FROM`.
        line: usize,
        /// The name as written.
        name: String,
    },
    /// The `FROM` image expands to the empty string.
    #[error("line {line}: FROM image `{written}` expands to an empty name")]
    EmptyBaseImage {
        /// Line of the `FROM`.
        line: usize,
        /// The image as written.
        written: String,
    },
    /// Variable expansion failed (unterminated `${`, unclosed quote,
    /// `${VAR:?}` on an unset variable, an automatic platform ARG, …). The
    /// message shows at most the first 60 characters of the word.
    #[error("line {line}: cannot expand `{}`", shorten(written))]
    Expansion {
        /// Line of the instruction.
        line: usize,
        /// The word as written.
        written: String,
        /// What went wrong.
        source: ExpandError,
    },
    /// A flag that needs a value (`--from`, `--platform`, `--mount`) has none.
    #[error("line {line}: flag `--{flag}` needs a value (`--{flag}=…`)")]
    FlagWithoutValue {
        /// Line of the instruction.
        line: usize,
        /// The flag name.
        flag: String,
    },
    /// `--from` or `--platform` given twice.
    #[error("line {line}: flag `--{flag}` given more than once")]
    DuplicateFlag {
        /// Line of the instruction.
        line: usize,
        /// The flag name.
        flag: String,
    },
    /// A variable in `COPY --from` or `RUN --mount=from=`, which Docker
    /// rejects.
    #[error(
        "line {line}: variable expansion is not supported in {instruction} (`{value}`); declare the ARG before the first FROM and use `FROM {value} AS <name>`, then refer to that stage"
    )]
    VariableInFrom {
        /// Line of the instruction.
        line: usize,
        /// `COPY --from` or `RUN --mount from`.
        instruction: &'static str,
        /// The value as written.
        value: String,
    },
    /// `COPY --from=<n>` where no stage `n` is defined before the instruction.
    #[error("line {line}: `--from={index}` does not name a stage defined before this instruction ({})", defined_stages(*defined))]
    StageIndex {
        /// Line of the `COPY`.
        line: usize,
        /// The index as written.
        index: String,
        /// How many stages are defined before the instruction.
        defined: usize,
    },
    /// `--from` names the stage the instruction is in.
    #[error(
        "line {line}: `{name}` is the stage this instruction is in; a stage cannot copy or mount from itself"
    )]
    StageSelfReference {
        /// Line of the instruction.
        line: usize,
        /// The name as written.
        name: String,
    },
    /// `--from` names a stage defined further down.
    #[error(
        "line {line}: `{name}` names the stage defined on line {stage_line}, after this instruction; refer only to earlier stages (builders disagree on forward references)"
    )]
    ForwardStageReference {
        /// Line of the instruction.
        line: usize,
        /// The name as written.
        name: String,
        /// Line of the `FROM` of the later stage.
        stage_line: usize,
    },
    /// A `--mount` value that is not valid comma-separated `key=value` text.
    #[error("line {line}: invalid --mount `{value}`: {message}")]
    InvalidMount {
        /// Line of the `RUN`.
        line: usize,
        /// The `--mount` value.
        value: String,
        /// What is wrong.
        message: &'static str,
    },
}

/// `s`, or its first 60 characters and `…` when it is longer than 80.
fn shorten(s: &str) -> std::borrow::Cow<'_, str> {
    if s.chars().nth(80).is_none() {
        return s.into();
    }
    let mut short: String = s.chars().take(60).collect();
    short.push('…');
    short.into()
}

fn defined_stages(n: usize) -> String {
    match n {
        0 => "there is none".to_owned(),
        1 => "only stage 0 is".to_owned(),
        n => format!("stages 0 to {} are", n - 1),
    }
}

impl DockerfileError {
    /// The 1-based line the error is about, if any.
    ///
    /// ```
    /// let err = dockerfile_analysis::base_images("ARG A\nFROM\n", dockerfile_analysis::NO_BUILD_ARGS).unwrap_err();
    /// assert_eq!(err.line(), Some(2));
    /// assert_eq!(err.to_string(), "line 2: FROM needs an image");
    /// ```
    pub fn line(&self) -> Option<usize> {
        use DockerfileError as E;
        match self {
            E::NoStages => None,
            E::Directive { line, .. }
            | E::UnterminatedHeredoc { line, .. }
            | E::UnknownInstruction { line, .. }
            | E::InstructionBeforeFrom { line, .. }
            | E::InvalidArg { line, .. }
            | E::FromWithoutImage { line }
            | E::FromArguments { line, .. }
            | E::InvalidStageName { line, .. }
            | E::EmptyBaseImage { line, .. }
            | E::Expansion { line, .. }
            | E::FlagWithoutValue { line, .. }
            | E::DuplicateFlag { line, .. }
            | E::VariableInFrom { line, .. }
            | E::StageIndex { line, .. }
            | E::StageSelfReference { line, .. }
            | E::ForwardStageReference { line, .. }
            | E::InvalidMount { line, .. } => Some(*line),
        }
    }
}

/// An empty list of build args, for [`base_images`].
///
/// ```
/// use dockerfile_analysis::{base_images, NO_BUILD_ARGS};
///
/// let found = base_images("FROM alpine:3.20\n", NO_BUILD_ARGS).unwrap();
/// assert_eq!(found.images[0].reference, "alpine:3.20");
/// ```
pub const NO_BUILD_ARGS: [(&str, &str); 0] = [];

/// BuildKit's automatic platform ARGs, in the global scope without `ARG`.
const PLATFORM_ARGS: [&str; 11] = [
    "BUILDPLATFORM",
    "BUILDOS",
    "BUILDOSVERSION",
    "BUILDARCH",
    "BUILDVARIANT",
    "TARGETPLATFORM",
    "TARGETOS",
    "TARGETOSVERSION",
    "TARGETARCH",
    "TARGETVARIANT",
    "TARGETSTAGE",
];

const INSTRUCTIONS: [&str; 18] = [
    "add",
    "arg",
    "cmd",
    "copy",
    "entrypoint",
    "env",
    "expose",
    "from",
    "healthcheck",
    "label",
    "maintainer",
    "onbuild",
    "run",
    "shell",
    "stopsignal",
    "user",
    "volume",
    "workdir",
];

/// A meta ARG's value.
#[derive(Debug, Clone)]
enum MetaVar {
    Value(String),
    /// Set by the builder from the platform; the automatic ARG it comes from.
    Platform(String),
}

/// Lists the external images a build of `dockerfile` with `build_args` uses.
///
/// `build_args` is any list of name/value pairs (a slice of tuples, an array,
/// a `HashMap`, …); a later pair overrides an earlier one with the same name.
/// See the [module documentation](self) for the rules.
///
/// ```
/// use dockerfile_analysis::{NO_BUILD_ARGS, StageBase, base_images};
///
/// let dockerfile = "ARG BASE=bbase\nARG TAG=latest\nFROM ${BASE}:${TAG}\n";
/// let found = base_images(dockerfile, [("TAG", "1.0")]).unwrap();
/// assert_eq!(found.images[0].reference, "bbase:1.0");
/// assert_eq!(found.stages[0].base, StageBase::Image("bbase:1.0".into()));
///
/// let err = base_images("FROM a AS one\nFROM b\nCOPY --from=2 / /\n", NO_BUILD_ARGS).unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "line 3: `--from=2` does not name a stage defined before this instruction (only stage 0 is)"
/// );
/// ```
///
/// # Errors
///
/// A [`DockerfileError`] when the Dockerfile is malformed in a way that makes
/// the images unknowable or that Docker rejects.
pub fn base_images<I, K, V>(dockerfile: &str, build_args: I) -> Result<BaseImages, DockerfileError>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: AsRef<str>,
{
    let build_args: HashMap<String, String> = build_args
        .into_iter()
        .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned()))
        .collect();
    let parsed = parse::parse(dockerfile)?;
    let mut analysis = Analysis {
        escape: parsed.directives.escape,
        build_args: &build_args,
        meta: PLATFORM_ARGS
            .iter()
            .map(|&name| {
                let value = match build_args.get(name) {
                    Some(v) => MetaVar::Value(v.clone()),
                    None => MetaVar::Platform(name.to_owned()),
                };
                (name.to_owned(), value)
            })
            .collect(),
        budget: Budget::new(),
        stages: Vec::new(),
        stage_by_name: HashMap::new(),
        deps: Vec::new(),
        uses: Vec::new(),
        first_stage_named: HashMap::new(),
    };
    analysis.collect_stage_names(&parsed.instructions);
    for instruction in &parsed.instructions {
        analysis.instruction(instruction)?;
    }
    if analysis.stages.is_empty() {
        return Err(DockerfileError::NoStages);
    }
    let syntax = frontend(&build_args, parsed.directives.syntax);
    Ok(analysis.finish(syntax))
}

fn frontend(
    build_args: &HashMap<String, String>,
    directive: Option<(String, usize)>,
) -> Option<Frontend> {
    let first_word = |s: &str| s.trim().split(' ').next().unwrap_or_default().to_owned();
    if let Some(arg) = build_args.get("BUILDKIT_SYNTAX").map(|a| first_word(a)) {
        if arg == "dockerfile.v0" {
            return None;
        }
        if !arg.is_empty() {
            return Some(Frontend {
                reference: arg,
                line: None,
            });
        }
    }
    directive.map(|(value, line)| Frontend {
        reference: first_word(&value),
        line: Some(line),
    })
}

struct Analysis<'a> {
    escape: char,
    build_args: &'a HashMap<String, String>,
    meta: HashMap<String, MetaVar>,
    /// What is left of the expansion work for the whole Dockerfile.
    budget: Budget,
    stages: Vec<Stage>,
    /// The last stage defined so far with each (lowercased) name.
    stage_by_name: HashMap<String, usize>,
    /// Stages each stage depends on (its base and its `--from` stages).
    deps: Vec<Vec<usize>>,
    /// (reference, use), in file order.
    uses: Vec<(String, Use)>,
    /// The index and `FROM` line of the first stage with each lowercased
    /// name, known in advance to recognise forward references.
    first_stage_named: HashMap<String, (usize, usize)>,
}

impl Analysis<'_> {
    /// A first pass over the `FROM`s, for their names.
    fn collect_stage_names(&mut self, instructions: &[Instruction]) {
        // Errors are reported by the main pass, in file order (so the k-th
        // `FROM` is stage k whenever the main pass gets past it).
        for (index, i) in instructions
            .iter()
            .filter(|i| i.keyword == "from")
            .enumerate()
        {
            if let Some(name) = from_args(i).ok().and_then(|(_, name)| name) {
                self.first_stage_named
                    .entry(name)
                    .or_insert((index, i.line));
            }
        }
    }

    fn instruction(&mut self, i: &Instruction) -> Result<(), DockerfileError> {
        if !INSTRUCTIONS.contains(&i.keyword.as_str()) {
            return Err(DockerfileError::UnknownInstruction {
                line: i.line,
                instruction: i.keyword_as_written.clone(),
            });
        }
        match (i.keyword.as_str(), self.stages.is_empty()) {
            ("from", _) => self.from(i),
            ("arg", true) => self.meta_arg(i),
            (_, true) => Err(DockerfileError::InstructionBeforeFrom {
                line: i.line,
                instruction: i.keyword_as_written.clone(),
            }),
            ("copy", false) => self.copy(i),
            ("run", false) => self.run(i),
            _ => Ok(()),
        }
    }

    fn lookup(&self, name: &str) -> Result<Option<&str>, ExpandError> {
        match self.meta.get(name) {
            Some(MetaVar::Value(v)) => Ok(Some(v)),
            Some(MetaVar::Platform(root)) => Err(ExpandError::PlatformArg(root.clone())),
            None => Ok(None),
        }
    }

    fn meta_arg(&mut self, i: &Instruction) -> Result<(), DockerfileError> {
        let words = split_args(&i.args, self.escape);
        if words.is_empty() {
            return Err(DockerfileError::InvalidArg {
                line: i.line,
                message: "ARG needs a name".to_owned(),
            });
        }
        for word in words {
            let (key, default) = match word.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (word.as_str(), None),
            };
            if key.is_empty() {
                return Err(DockerfileError::InvalidArg {
                    line: i.line,
                    message: format!("ARG `{word}` has an empty name"),
                });
            }
            let value = if let Some(v) = self.build_args.get(key) {
                MetaVar::Value(v.clone())
            } else if let Some(default) = default {
                match expand_word(default, self.escape, &|n| self.lookup(n), &self.budget) {
                    Ok(v) => MetaVar::Value(v),
                    // Only an error if a FROM ends up using it.
                    Err(ExpandError::PlatformArg(root)) => MetaVar::Platform(root),
                    Err(source) => {
                        return Err(DockerfileError::Expansion {
                            line: i.line,
                            written: default.to_owned(),
                            source,
                        });
                    }
                }
            } else {
                // Declared without a value: unset, unless it is an automatic
                // platform ARG, which keeps the builder's value.
                continue;
            };
            self.meta.insert(key.to_owned(), value);
        }
        Ok(())
    }

    fn from(&mut self, i: &Instruction) -> Result<(), DockerfileError> {
        let (written, name) = from_args(i)?;
        let platform = string_flag(i, "platform")?;
        let image = expand_word(&written, self.escape, &|n| self.lookup(n), &self.budget).map_err(
            |source| DockerfileError::Expansion {
                line: i.line,
                written: written.clone(),
                source,
            },
        )?;
        if image.is_empty() {
            return Err(DockerfileError::EmptyBaseImage {
                line: i.line,
                written,
            });
        }
        let index = self.stages.len();
        let lower = image.to_lowercase();
        let base = match self.stage_by_name.get(&lower) {
            Some(&stage) => StageBase::Stage(stage),
            None if image == "scratch" => StageBase::Scratch,
            None => {
                self.uses.push((
                    image.clone(),
                    Use {
                        line: i.line,
                        kind: UseKind::From,
                        stage: index,
                    },
                ));
                StageBase::Image(image)
            }
        };
        self.deps.push(match base {
            StageBase::Stage(s) => vec![s],
            _ => Vec::new(),
        });
        if let Some(name) = &name {
            self.stage_by_name.insert(name.clone(), index);
        }
        self.stages.push(Stage {
            index,
            name,
            line: i.line,
            base,
            platform,
        });
        Ok(())
    }

    fn copy(&mut self, i: &Instruction) -> Result<(), DockerfileError> {
        let Some(from) = string_flag(i, "from")? else {
            return Ok(());
        };
        if from.is_empty() {
            return Ok(());
        }
        // BuildKit refuses anything the shell lexer would change: variables,
        // quotes, escapes.
        let unchanged = expand_word(&from, self.escape, &expand::no_vars, &Budget::new());
        if unchanged.as_deref() != Ok(from.as_str()) {
            return Err(DockerfileError::VariableInFrom {
                line: i.line,
                instruction: "COPY --from",
                value: from,
            });
        }
        if let Some(index) = parse_index(&from) {
            let current = self.stages.len() - 1;
            return match usize::try_from(index) {
                Ok(n) if n < current => {
                    self.deps[current].push(n);
                    Ok(())
                }
                _ => Err(DockerfileError::StageIndex {
                    line: i.line,
                    index: from,
                    defined: current,
                }),
            };
        }
        self.named_source(i, from, UseKind::CopyFrom)
    }

    fn run(&mut self, i: &Instruction) -> Result<(), DockerfileError> {
        for flag in &i.flags {
            let Some(body) = flag.strip_prefix("--") else {
                continue;
            };
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (body, None),
            };
            if name != "mount" {
                continue;
            }
            let Some(value) = value else {
                return Err(DockerfileError::FlagWithoutValue {
                    line: i.line,
                    flag: "mount".to_owned(),
                });
            };
            let fields = csv_fields(value).map_err(|message| DockerfileError::InvalidMount {
                line: i.line,
                value: value.to_owned(),
                message,
            })?;
            let mut from = None;
            for field in fields {
                if let Some((key, v)) = field.split_once('=') {
                    if key.eq_ignore_ascii_case("from") {
                        from = Some(v.to_owned());
                    }
                }
            }
            let Some(from) = from.filter(|f| !f.is_empty()) else {
                continue;
            };
            // BuildKit: "'from' doesn't support variable expansion".
            if from.trim_end_matches('$').contains('$') {
                return Err(DockerfileError::VariableInFrom {
                    line: i.line,
                    instruction: "RUN --mount from",
                    value: from,
                });
            }
            self.named_source(i, from, UseKind::MountFrom)?;
        }
        Ok(())
    }

    /// A `--from` name: an earlier stage, `scratch`, or an image.
    fn named_source(
        &mut self,
        i: &Instruction,
        from: String,
        kind: UseKind,
    ) -> Result<(), DockerfileError> {
        let current = self.stages.len() - 1;
        let lower = from.to_lowercase();
        if self.stages[current].name.as_deref() == Some(lower.as_str()) {
            return Err(DockerfileError::StageSelfReference {
                line: i.line,
                name: from,
            });
        }
        // The current stage does not have the name: this is the last stage
        // before it that has.
        if let Some(&stage) = self.stage_by_name.get(&lower) {
            self.deps[current].push(stage);
            return Ok(());
        }
        // No stage up to this one has the name, so the first that has is a
        // later one.
        if let Some(&(_, stage_line)) = self
            .first_stage_named
            .get(&lower)
            .filter(|(stage, _)| *stage > current)
        {
            return Err(DockerfileError::ForwardStageReference {
                line: i.line,
                name: from,
                stage_line,
            });
        }
        if from != "scratch" {
            self.uses.push((
                from,
                Use {
                    line: i.line,
                    kind,
                    stage: current,
                },
            ));
        }
        Ok(())
    }

    fn finish(self, syntax: Option<Frontend>) -> BaseImages {
        // dependents[t]: the stages that depend directly on stage t.
        let n = self.stages.len();
        let mut dependents = vec![Vec::new(); n];
        for (s, deps) in self.deps.iter().enumerate() {
            for &d in deps {
                dependents[d].push(s);
            }
        }
        let mut images: Vec<ImageUse> = Vec::new();
        let mut by_reference: HashMap<String, usize> = HashMap::new();
        for (reference, u) in self.uses {
            match by_reference.get(&reference) {
                Some(&entry) => images[entry].uses.push(u),
                None => {
                    by_reference.insert(reference.clone(), images.len());
                    images.push(ImageUse {
                        reference,
                        line: u.line,
                        kind: u.kind,
                        uses: vec![u],
                        stages: Vec::new(),
                    });
                }
            }
        }
        // Per image, the stages that reach a stage using it through their
        // dependencies: a search over `dependents` that visits each of those
        // stages once, so the work is that of the answer, not n².
        let mut seen = vec![false; n];
        let mut reached = Vec::new();
        for image in &mut images {
            reached.clear();
            for u in &image.uses {
                if !std::mem::replace(&mut seen[u.stage], true) {
                    reached.push(u.stage);
                }
            }
            let mut next = 0;
            while let Some(&t) = reached.get(next) {
                next += 1;
                for &s in &dependents[t] {
                    if !std::mem::replace(&mut seen[s], true) {
                        reached.push(s);
                    }
                }
            }
            reached.sort_unstable();
            image.stages = reached.iter().map(|&s| self.stages[s].label()).collect();
            for &s in &reached {
                seen[s] = false;
            }
        }
        BaseImages {
            syntax,
            images,
            stages: self.stages,
        }
    }
}

/// The image as written and the lowercased stage name of a `FROM`.
fn from_args(i: &Instruction) -> Result<(String, Option<String>), DockerfileError> {
    let args: Vec<&str> = i
        .args
        .split([' ', '\t', '\x0b', '\x0c', '\r'])
        .filter(|a| !a.is_empty())
        .collect();
    match args.as_slice() {
        [] => Err(DockerfileError::FromWithoutImage { line: i.line }),
        [image] => Ok(((*image).to_owned(), None)),
        [image, as_, name] if as_.eq_ignore_ascii_case("as") => {
            let lower = name.to_lowercase();
            let mut chars = lower.chars();
            let valid = chars.next().is_some_and(|c| c.is_ascii_lowercase())
                && chars.all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.')
                });
            if !valid {
                return Err(DockerfileError::InvalidStageName {
                    line: i.line,
                    name: (*name).to_owned(),
                });
            }
            Ok(((*image).to_owned(), Some(lower)))
        }
        _ => Err(DockerfileError::FromArguments {
            line: i.line,
            args: i.args.clone(),
        }),
    }
}

/// The value of a `--name=value` flag that may appear once.
fn string_flag(i: &Instruction, name: &str) -> Result<Option<String>, DockerfileError> {
    let mut found = None;
    for flag in &i.flags {
        let Some(body) = flag.strip_prefix("--") else {
            continue;
        };
        let (n, value) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (body, None),
        };
        if n != name {
            continue;
        }
        let Some(value) = value else {
            return Err(DockerfileError::FlagWithoutValue {
                line: i.line,
                flag: name.to_owned(),
            });
        };
        if found.is_some() {
            return Err(DockerfileError::DuplicateFlag {
                line: i.line,
                flag: name.to_owned(),
            });
        }
        found = Some(value.to_owned());
    }
    Ok(found)
}

/// A stage index as Go's `strconv.Atoi` reads it (optional sign, digits).
fn parse_index(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Out of range: still a number, never a valid index.
    Some(s.parse().unwrap_or(i64::MAX))
}

/// Splits one line of comma-separated values (RFC 4180 quoting, as Go's
/// `encoding/csv` reads `--mount` values).
fn csv_fields(s: &str) -> Result<Vec<String>, &'static str> {
    if s.is_empty() {
        return Err("it is empty");
    }
    let mut fields = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err("a quoted field is not closed"),
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                }
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => fields.push(field),
                Some(_) => return Err("unexpected text after a quoted field"),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field);
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some('"') => return Err("a quote inside an unquoted field"),
                    Some(c) => field.push(c),
                }
            }
            fields.push(field);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_follow_rfc_4180() {
        assert_eq!(
            csv_fields("type=cache,from=a").unwrap(),
            ["type=cache", "from=a"]
        );
        assert_eq!(csv_fields("\"from=a,b\",x").unwrap(), ["from=a,b", "x"]);
        assert_eq!(csv_fields("\"a\"\"b\"").unwrap(), ["a\"b"]);
        assert_eq!(csv_fields("a,").unwrap(), ["a", ""]);
        assert!(csv_fields("").is_err());
        assert!(csv_fields("a\"b").is_err());
        assert!(csv_fields("\"ab").is_err());
        assert!(csv_fields("\"a\"b").is_err());
    }

    #[test]
    fn stage_indexes_parse_like_atoi() {
        assert_eq!(parse_index("0"), Some(0));
        assert_eq!(parse_index("+1"), Some(1));
        assert_eq!(parse_index("-1"), Some(-1));
        assert_eq!(parse_index("007"), Some(7));
        assert_eq!(parse_index("99999999999999999999"), Some(i64::MAX));
        assert_eq!(parse_index("1a"), None);
        assert_eq!(parse_index("-"), None);
        assert_eq!(parse_index("builder"), None);
    }

    #[test]
    fn frontend_from_directive_or_build_arg() {
        let found = base_images(
            "# syntax=docker/dockerfile:1.7 extra\nFROM a\n",
            NO_BUILD_ARGS,
        )
        .unwrap();
        assert_eq!(
            found.syntax,
            Some(Frontend {
                reference: "docker/dockerfile:1.7".into(),
                line: Some(1)
            })
        );
        let found = base_images("# syntax=x\nFROM a\n", [("BUILDKIT_SYNTAX", "y:1")]).unwrap();
        assert_eq!(
            found.syntax,
            Some(Frontend {
                reference: "y:1".into(),
                line: None
            })
        );
        let found = base_images(
            "# syntax=x\nFROM a\n",
            [("BUILDKIT_SYNTAX", "dockerfile.v0")],
        )
        .unwrap();
        assert_eq!(found.syntax, None);
    }

    #[test]
    fn transitive_stage_needs() {
        let text = "FROM alpine AS base\nFROM base AS dev\nFROM golang AS build\nFROM scratch AS out\nCOPY --from=build / /\nFROM dev\n";
        let found = base_images(text, NO_BUILD_ARGS).unwrap();
        let stages = |r: &str| {
            found
                .images
                .iter()
                .find(|i| i.reference == r)
                .unwrap()
                .stages
                .clone()
        };
        assert_eq!(stages("alpine"), ["base", "dev", "4"]);
        assert_eq!(stages("golang"), ["build", "out"]);
    }
}

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

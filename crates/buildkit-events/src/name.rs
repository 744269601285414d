//! What a vertex name says about its step: BuildKit's Dockerfile frontend names the vertices of
//! Dockerfile instructions `[stage N/M] INSTRUCTION …`, its own work `[internal] …`.

/// A vertex name taken apart, e.g. `[build 2/3] RUN make`.
///
/// ```
/// use buildkit_events::StepName;
///
/// let step = StepName::parse("[build 2/3] RUN make");
/// assert_eq!(step.stage, Some("build"));
/// assert_eq!((step.index, step.total), (Some(2), Some(3)));
/// assert_eq!(step.command, "RUN make");
/// assert!(!step.internal);
///
/// let internal = StepName::parse("[internal] load metadata for docker.io/library/alpine:latest");
/// assert!(internal.internal);
/// assert_eq!(internal.command, "load metadata for docker.io/library/alpine:latest");
///
/// let other = StepName::parse("exporting to image");
/// assert_eq!((other.stage, other.index, other.internal), (None, None, false));
/// assert_eq!(other.command, "exporting to image");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StepName<'a> {
    /// The stage name of a named stage (`[build 2/3]` → `build`; `stage-1` for an unnamed stage
    /// of a multi-stage build); `None` for `[2/3]` (a single-stage build) and names without a
    /// bracket.
    pub stage: Option<&'a str>,
    /// The instruction's position in its stage (`2` of `[2/3]`).
    pub index: Option<u32>,
    /// How many instructions the stage has (`3` of `[2/3]`).
    pub total: Option<u32>,
    /// BuildKit's own work (`[internal] …`, `[auth] …`), not a Dockerfile instruction.
    pub internal: bool,
    /// The rest of the name after the bracket, e.g. `RUN make`; the whole name when it has no
    /// bracket.
    pub command: &'a str,
}

impl<'a> StepName<'a> {
    /// Takes a vertex name apart; never fails (a name it does not recognise is all `command`).
    pub fn parse(name: &'a str) -> Self {
        let unrecognised = StepName {
            command: name,
            ..StepName::default()
        };
        let Some(rest) = name.strip_prefix('[') else {
            return unrecognised;
        };
        let Some((inside, command)) = rest.split_once(']') else {
            return unrecognised;
        };
        let command = command.strip_prefix(' ').unwrap_or(command);
        if matches!(inside, "internal" | "auth") {
            return StepName {
                internal: true,
                command,
                ..StepName::default()
            };
        }
        let (stage, position) = match inside.rsplit_once(' ') {
            Some((stage, position)) => (Some(stage), position),
            None => (None, inside),
        };
        let Some((index, total)) = position.split_once('/') else {
            return unrecognised;
        };
        let (Ok(index), Ok(total)) = (index.parse(), total.parse()) else {
            return unrecognised;
        };
        StepName {
            stage,
            index: Some(index),
            total: Some(total),
            internal: false,
            command,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_every_shape() {
        let p = StepName::parse;
        assert_eq!(p("[2/3] RUN echo hi").index, Some(2));
        assert_eq!(p("[2/3] RUN echo hi").stage, None);
        assert_eq!(p("[stage-1 1/2] FROM busybox").stage, Some("stage-1"));
        assert_eq!(p("[stage-1 1/2] FROM busybox").command, "FROM busybox");
        assert!(p("[auth] library/alpine:pull token for registry-1.docker.io").internal);
        assert!(p("[internal] load .dockerignore").internal);
        // Not a position: the whole name is the command.
        for odd in ["[a b] x", "[1/x] y", "[unclosed", "[] z", "plain", ""] {
            let step = p(odd);
            assert_eq!(
                (step.command, step.index, step.internal),
                (odd, None, false),
                "{odd}"
            );
        }
        // A stage name with a space cannot be a Dockerfile stage; the last word is the position.
        assert_eq!(p("[a b 1/2] RUN x").stage, Some("a b"));
        assert_eq!(p("[1/2]").command, "");
    }
}

//! Where a build's result goes instead of an image (sans-IO): buildx's `--output`. The files
//! are received through the build's BuildKit session (`crate::session`, feature `session`).

use std::path::PathBuf;
use std::str::FromStr;

use super::session::csv_fields;

/// A build output: the build's result written by the client instead of an image in the
/// daemon (buildx's `--output type=local|tar`). The daemon's exporter sends it through the
/// build's BuildKit session (`moby.filesync.v1.FileSend`), so an output needs a session; with
/// an output the daemon builds no image and reports none.
///
/// ```
/// use docker_build::{Output, TarDest};
///
/// let local: Output = "type=local,dest=out".parse()?;
/// assert_eq!(local, Output::Local { dest: "out".into() });
/// // buildx's short form: a bare path is a local output, `-` a tar on stdout.
/// assert_eq!("out".parse::<Output>()?, local);
/// assert_eq!("-".parse::<Output>()?, Output::Tar { dest: TarDest::Stdout });
/// assert_eq!(
///     "type=tar,dest=rootfs.tar".parse::<Output>()?,
///     Output::Tar { dest: TarDest::File("rootfs.tar".into()) }
/// );
/// # Ok::<(), docker_build::OutputSpecError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Output {
    /// The result's files written under `dest` (created if missing; files already there stay
    /// unless the result replaces them). Nothing is written outside `dest`.
    Local {
        /// The folder.
        dest: PathBuf,
    },
    /// The result as one tar archive.
    Tar {
        /// Where the archive goes.
        dest: TarDest,
    },
}

/// Where a [`Output::Tar`] archive goes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TarDest {
    /// This file (created or truncated).
    File(PathBuf),
    /// The process's standard output (`dest=-`): the caller must write nothing else there.
    Stdout,
}

impl Output {
    /// The exporter's name as the daemon knows it (`local`, `tar`).
    pub fn exporter(&self) -> &'static str {
        match self {
            Output::Local { .. } => "local",
            Output::Tar { .. } => "tar",
        }
    }

    /// Whether the output writes to standard output (`type=tar,dest=-`).
    pub fn is_stdout(&self) -> bool {
        matches!(
            self,
            Output::Tar {
                dest: TarDest::Stdout
            }
        )
    }
}

impl FromStr for Output {
    type Err = OutputSpecError;

    /// Parses buildx's `--output` syntax: comma-separated `key=value` fields (CSV) with
    /// `type=local,dest=DIR` or `type=tar,dest=FILE` (`dest=-`: standard output); or one
    /// bare value, a folder for a local output (`-` for a tar on standard output).
    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let fields = csv_fields(spec).ok_or_else(|| OutputSpecError::Csv {
            spec: spec.to_string(),
        })?;
        if let [only] = fields.as_slice() {
            if !only.contains('=') {
                return Ok(match only.as_str() {
                    "" => return Err(OutputSpecError::Empty),
                    "-" => Output::Tar {
                        dest: TarDest::Stdout,
                    },
                    dir => Output::Local { dest: dir.into() },
                });
            }
        }
        let (mut kind, mut dest) = (None, None);
        for field in fields {
            let Some((key, value)) = field.split_once('=') else {
                return Err(OutputSpecError::NotKeyValue { field });
            };
            let value = value.to_string();
            match key.trim().to_ascii_lowercase().as_str() {
                "type" => kind = Some(value),
                "dest" => dest = Some(value),
                key => {
                    return Err(OutputSpecError::UnknownKey {
                        key: key.to_string(),
                        field,
                    });
                }
            }
        }
        let Some(kind) = kind else {
            return Err(OutputSpecError::MissingType {
                spec: spec.to_string(),
            });
        };
        let dest = dest.filter(|d| !d.is_empty());
        match kind.as_str() {
            "local" => match dest {
                Some(dest) => Ok(Output::Local { dest: dest.into() }),
                None => Err(OutputSpecError::MissingDest { kind: "local" }),
            },
            "tar" => match dest.as_deref() {
                Some("-") => Ok(Output::Tar {
                    dest: TarDest::Stdout,
                }),
                Some(file) => Ok(Output::Tar {
                    dest: TarDest::File(file.into()),
                }),
                None => Err(OutputSpecError::MissingDest { kind: "tar" }),
            },
            _ => Err(OutputSpecError::UnsupportedType { kind }),
        }
    }
}

/// Why an `--output` value could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OutputSpecError {
    /// The value is empty.
    #[error("empty output: expected type=local,dest=DIR or type=tar,dest=FILE")]
    Empty,
    /// A double quote is not closed, or text follows a closing quote.
    #[error("invalid output {spec:?}: not valid CSV")]
    Csv {
        /// The value as given.
        spec: String,
    },
    /// A field without `=` among several.
    #[error("invalid output field {field:?}: must be a key=value pair")]
    NotKeyValue {
        /// The field.
        field: String,
    },
    /// A key other than `type` and `dest`.
    #[error("unsupported key {key:?} in output field {field:?}: expected type= and dest=")]
    UnknownKey {
        /// The key, lowercased.
        key: String,
        /// The whole field.
        field: String,
    },
    /// Fields without `type=`.
    #[error("output {spec:?} has no type: expected type=local,dest=DIR or type=tar,dest=FILE")]
    MissingType {
        /// The value as given.
        spec: String,
    },
    /// A type other than `local` and `tar`.
    #[error("unsupported output type {kind:?}: expected local or tar")]
    UnsupportedType {
        /// The type given.
        kind: String,
    },
    /// No `dest=` (or an empty one).
    #[error("the {kind} output needs dest=")]
    MissingDest {
        /// `local` or `tar`.
        kind: &'static str,
    },
}

/// The `outputs` parameter of `POST /build` (API ≥ 1.40): a JSON list of `{Type, Attrs}`, as
/// moby's `ImageBuildOutput` decodes it. The destination is the client's business and is not
/// sent.
pub(crate) fn outputs_json(outputs: &[Output]) -> String {
    let list: Vec<serde_json::Value> = outputs
        .iter()
        .map(|output| serde_json::json!({ "Type": output.exporter(), "Attrs": {} }))
        .collect();
    serde_json::Value::Array(list).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_specs_in_every_syntax() {
        let cases = [
            ("type=local,dest=out", Output::Local { dest: "out".into() }),
            (
                "TYPE=local,Dest=/tmp/o",
                Output::Local {
                    dest: "/tmp/o".into(),
                },
            ),
            (
                "out/dir",
                Output::Local {
                    dest: "out/dir".into(),
                },
            ),
            ("\"a,b\"", Output::Local { dest: "a,b".into() }),
            (
                "type=tar,dest=r.tar",
                Output::Tar {
                    dest: TarDest::File("r.tar".into()),
                },
            ),
            (
                "dest=-,type=tar",
                Output::Tar {
                    dest: TarDest::Stdout,
                },
            ),
            (
                "-",
                Output::Tar {
                    dest: TarDest::Stdout,
                },
            ),
        ];
        for (spec, output) in cases {
            assert_eq!(spec.parse::<Output>(), Ok(output), "{spec}");
        }
    }

    #[test]
    fn output_spec_errors_are_one_clear_line() {
        let cases = [
            (
                "",
                "empty output: expected type=local,dest=DIR or type=tar,dest=FILE",
            ),
            (
                "type=image,name=x",
                r#"unsupported key "name" in output field "name=x": expected type= and dest="#,
            ),
            (
                "type=image",
                r#"unsupported output type "image": expected local or tar"#,
            ),
            (
                "type=docker,dest=x",
                r#"unsupported output type "docker": expected local or tar"#,
            ),
            ("type=local", "the local output needs dest="),
            ("type=tar,dest=", "the tar output needs dest="),
            (
                "dest=out",
                r#"output "dest=out" has no type: expected type=local,dest=DIR or type=tar,dest=FILE"#,
            ),
            (
                "type=local,out",
                r#"invalid output field "out": must be a key=value pair"#,
            ),
            (
                r#"type=local,"dest=x"#,
                r#"invalid output "type=local,\"dest=x": not valid CSV"#,
            ),
        ];
        for (spec, message) in cases {
            let error = spec.parse::<Output>().unwrap_err();
            assert_eq!(error.to_string(), message, "{spec}");
        }
    }

    #[test]
    fn outputs_are_sent_as_moby_decodes_them() {
        let json = outputs_json(&[Output::Local {
            dest: "/home/me/out".into(),
        }]);
        assert_eq!(json, r#"[{"Attrs":{},"Type":"local"}]"#);
        let tar = outputs_json(&[Output::Tar {
            dest: TarDest::Stdout,
        }]);
        assert_eq!(tar, r#"[{"Attrs":{},"Type":"tar"}]"#);
    }
}

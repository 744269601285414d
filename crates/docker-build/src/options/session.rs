//! What a build's BuildKit session serves (sans-IO): secrets, SSH agents, and whether to serve a
//! session at all. The session itself (feature `session`) is `crate::session`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use bytes::Bytes;

/// The most a secret may hold: BuildKit refuses larger ones (`MaxSecretSize`, 500 KiB).
pub const MAX_SECRET_SIZE: u64 = 500 * 1024;

/// The id of the SSH agent a `RUN --mount=type=ssh` without `id=` asks for.
pub const DEFAULT_SSH_ID: &str = "default";

/// A secret a build can mount with `RUN --mount=type=secret,id=ID`, served through the build's
/// BuildKit session when BuildKit asks for it.
///
/// Its value never appears in events, recordings, `Debug` output or error messages: `Debug`
/// shows the id and where the value comes from (a file's path, a variable's name), and for
/// [`Secret::bytes`] only the length.
///
/// ```
/// use docker_build::Secret;
///
/// let token = Secret::bytes("token", "hunter2");
/// assert_eq!(format!("{token:?}"), r#"Secret { id: "token", source: Bytes(<redacted 7 bytes>) }"#);
///
/// // buildx's `--secret` syntax.
/// let npmrc: Secret = "id=npmrc,src=/home/me/.npmrc".parse()?;
/// assert_eq!(npmrc, Secret::file("npmrc", "/home/me/.npmrc"));
/// let aws: Secret = "id=aws,env=AWS_SECRET_ACCESS_KEY".parse()?;
/// assert_eq!(aws, Secret::env("aws", "AWS_SECRET_ACCESS_KEY"));
/// # Ok::<(), docker_build::SecretSpecError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Secret {
    id: String,
    source: SecretSource,
}

/// Where a [`Secret`]'s value comes from.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SecretSource {
    /// The contents of this file, read when BuildKit asks.
    File(PathBuf),
    /// The value of this environment variable, read when BuildKit asks.
    Env(String),
    /// These bytes.
    Bytes(Bytes),
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::File(path) => f.debug_tuple("File").field(path).finish(),
            SecretSource::Env(var) => f.debug_tuple("Env").field(var).finish(),
            SecretSource::Bytes(value) => write!(f, "Bytes(<redacted {} bytes>)", value.len()),
        }
    }
}

impl Secret {
    /// The secret `id` is the contents of the file at `path` (buildx's `id=ID,src=PATH`).
    pub fn file(id: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        Secret {
            id: id.into(),
            source: SecretSource::File(path.into()),
        }
    }

    /// The secret `id` is the value of the environment variable `var` (buildx's
    /// `id=ID,env=VAR`).
    pub fn env(id: impl Into<String>, var: impl Into<String>) -> Self {
        Secret {
            id: id.into(),
            source: SecretSource::Env(var.into()),
        }
    }

    /// The secret `id` is `value`.
    pub fn bytes(id: impl Into<String>, value: impl Into<Bytes>) -> Self {
        Secret {
            id: id.into(),
            source: SecretSource::Bytes(value.into()),
        }
    }

    /// The id a `RUN --mount=type=secret,id=…` names.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Where the value comes from.
    pub fn source(&self) -> &SecretSource {
        &self.source
    }

    /// Parses buildx's `--secret` syntax, comma-separated `key=value` fields (CSV: a field may
    /// be double-quoted): `id=ID` with `src=PATH` (or `source=PATH`) or `env=VAR`, and
    /// optionally `type=file|env` (`type=env,src=VAR` names a variable). With an id and
    /// neither source, the variable named like the id when `has_env(id)`, else the file named
    /// like the id, as buildx does. `has_env` answers whether an environment variable is set
    /// ([`FromStr`] asks the process environment).
    ///
    /// ```
    /// use docker_build::{Secret, SecretSpecError};
    ///
    /// let set = |var: &str| var == "GITHUB_TOKEN";
    /// assert_eq!(
    ///     Secret::parse_with("id=GITHUB_TOKEN", set)?,
    ///     Secret::env("GITHUB_TOKEN", "GITHUB_TOKEN")
    /// );
    /// assert_eq!(Secret::parse_with("id=cert.pem", set)?, Secret::file("cert.pem", "cert.pem"));
    /// assert_eq!(
    ///     Secret::parse_with("type=env,id=t,src=TOKEN", set)?,
    ///     Secret::env("t", "TOKEN")
    /// );
    /// assert!(matches!(
    ///     Secret::parse_with("src=cert.pem", set),
    ///     Err(SecretSpecError::MissingId { .. })
    /// ));
    /// # Ok::<(), SecretSpecError>(())
    /// ```
    pub fn parse_with(spec: &str, has_env: impl Fn(&str) -> bool) -> Result<Self, SecretSpecError> {
        let fields = csv_fields(spec).ok_or_else(|| SecretSpecError::Csv {
            spec: spec.to_string(),
        })?;
        let (mut id, mut src, mut env, mut kind) = (None, None, None, None);
        for field in fields {
            let Some((key, value)) = field.split_once('=') else {
                return Err(SecretSpecError::NotKeyValue { field });
            };
            let value = value.to_string();
            match key.to_ascii_lowercase().as_str() {
                "type" => match value.as_str() {
                    "file" | "env" => kind = Some(value),
                    _ => return Err(SecretSpecError::UnsupportedType { value }),
                },
                "id" => id = Some(value),
                "src" | "source" => src = Some(value),
                "env" => env = Some(value),
                key => {
                    return Err(SecretSpecError::UnknownKey {
                        key: key.to_string(),
                        field,
                    });
                }
            }
        }
        let (src, env) = (src.filter(|s| !s.is_empty()), env.filter(|e| !e.is_empty()));
        // `type=env,src=VAR`: the source names a variable.
        let (src, env) = match (kind.as_deref(), src, env) {
            (Some("env"), Some(src), None) => (None, Some(src)),
            (_, src, env) => (src, env),
        };
        let Some(id) = id.filter(|id| !id.is_empty()) else {
            return Err(SecretSpecError::MissingId {
                spec: spec.to_string(),
            });
        };
        Ok(match (src, env) {
            // buildx reads the variable when both are given.
            (_, Some(env)) => Secret::env(id, env),
            (Some(src), None) => Secret::file(id, src),
            (None, None) if has_env(&id) => Secret::env(id.clone(), id),
            (None, None) => Secret::file(id.clone(), id),
        })
    }
}

impl FromStr for Secret {
    type Err = SecretSpecError;

    /// [`Secret::parse_with`], asking the process environment whether a variable is set.
    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        Secret::parse_with(spec, |var| std::env::var_os(var).is_some())
    }
}

/// Why a `--secret` value could not be parsed. The messages name the fields, which hold no
/// secret (ids, paths and variable names).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretSpecError {
    /// A double quote is not closed, or text follows a closing quote.
    #[error("invalid secret {spec:?}: not valid CSV")]
    Csv {
        /// The value as given.
        spec: String,
    },
    /// A field without `=`.
    #[error("invalid secret field {field:?}: must be a key=value pair")]
    NotKeyValue {
        /// The field.
        field: String,
    },
    /// `type=` other than `file` or `env`.
    #[error("unsupported secret type {value:?}: expected file or env")]
    UnsupportedType {
        /// The type given.
        value: String,
    },
    /// A key other than `type`, `id`, `src`, `source`, `env`.
    #[error("unexpected key {key:?} in secret field {field:?}")]
    UnknownKey {
        /// The key, lowercased.
        key: String,
        /// The whole field.
        field: String,
    },
    /// No `id=`.
    #[error("secret {spec:?} has no id: expected id=ID,src=PATH or id=ID,env=VAR")]
    MissingId {
        /// The value as given.
        spec: String,
    },
}

/// Splits one CSV record into its fields: `,` separates, a field that starts with `"` runs to
/// the next lone `"` (`""` inside is a quote). `None` for an unterminated quote or text after
/// a closing one. (The record grammar of buildx's `csvvalue.Fields`; ten lines do not justify
/// the `csv` crate, which would be the crate's only use of it.)
pub(super) fn csv_fields(record: &str) -> Option<Vec<String>> {
    let mut fields = Vec::new();
    let mut chars = record.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    '"' => break,
                    c => field.push(c),
                }
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Some(fields);
                }
                Some(',') => fields.push(field),
                Some(_) => return None,
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field);
                        return Some(fields);
                    }
                    Some(',') => break,
                    Some(c) => field.push(c),
                }
            }
            fields.push(field);
        }
    }
}

/// An SSH agent a build can use with `RUN --mount=type=ssh[,id=ID]`: the agent's socket is
/// forwarded through the build's BuildKit session, or, given private key files (as buildx
/// takes them), the session serves those keys with an SSH agent of its own.
///
/// [`SshAgent::default()`] is buildx's `--ssh default`: the agent at `$SSH_AUTH_SOCK`, looked up
/// when the session starts.
///
/// ```
/// use docker_build::SshAgent;
///
/// assert_eq!("default".parse::<SshAgent>()?, SshAgent::default());
/// let github: SshAgent = "github=/run/user/1000/gh-agent.sock".parse()?;
/// assert_eq!(github, SshAgent::socket("github", "/run/user/1000/gh-agent.sock"));
/// assert_eq!(github.id(), "github");
/// # Ok::<(), docker_build::SshSpecError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshAgent {
    id: String,
    paths: Vec<PathBuf>,
}

impl Default for SshAgent {
    /// The agent `default` at `$SSH_AUTH_SOCK`.
    fn default() -> Self {
        SshAgent {
            id: DEFAULT_SSH_ID.to_string(),
            paths: Vec::new(),
        }
    }
}

impl SshAgent {
    /// The agent `id` at `$SSH_AUTH_SOCK` (looked up when the session starts).
    pub fn from_env(id: impl Into<String>) -> Self {
        SshAgent {
            id: id.into(),
            paths: Vec::new(),
        }
    }

    /// The agent `id` listening on the Unix socket `path`.
    pub fn socket(id: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        SshAgent {
            id: id.into(),
            paths: vec![path.into()],
        }
    }

    /// The id a `RUN --mount=type=ssh,id=…` names ([`DEFAULT_SSH_ID`] without `id=`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The agent `id` serving the (unencrypted, Ed25519) OpenSSH private key files `paths`.
    pub fn keys(
        id: impl Into<String>,
        paths: impl IntoIterator<Item = impl Into<PathBuf>>,
    ) -> Self {
        SshAgent {
            id: id.into(),
            paths: paths.into_iter().map(Into::into).collect(),
        }
    }

    /// The paths given (empty: `$SSH_AUTH_SOCK`): one agent socket, or private key files (an
    /// in-process agent serves all their keys). The session checks them when it is set up.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }
}

impl FromStr for SshAgent {
    type Err = SshSpecError;

    /// buildx's `--ssh` syntax: `ID` (the agent at `$SSH_AUTH_SOCK`) or `ID=PATH[,PATH…]`; an
    /// empty id is `default`.
    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let (id, paths) = match spec.split_once('=') {
            Some((id, paths)) => (id, paths.split(',').map(PathBuf::from).collect()),
            None => (spec, Vec::new()),
        };
        let id = if id.is_empty() { DEFAULT_SSH_ID } else { id };
        let paths: Vec<PathBuf> = paths;
        if paths.iter().any(|p| p.as_os_str().is_empty()) && paths.len() > 1 {
            return Err(SshSpecError::EmptyPath {
                spec: spec.to_string(),
            });
        }
        Ok(SshAgent {
            id: id.to_string(),
            paths: paths
                .into_iter()
                .filter(|p| !p.as_os_str().is_empty())
                .collect(),
        })
    }
}

/// Why an `--ssh` value could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SshSpecError {
    /// A list of paths with an empty one (`id=a,,b`).
    #[error("invalid --ssh {spec:?}: empty path in the list")]
    EmptyPath {
        /// The value as given.
        spec: String,
    },
}

/// Whether a build serves a BuildKit session (`POST /session`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionMode {
    /// A session when the build needs one (secrets or SSH agents given), none otherwise.
    #[default]
    Auto,
    /// Always a session (BuildKit builds); the build fails when the daemon refuses it.
    Always,
    /// A session whenever the daemon takes one (BuildKit builds), so that the daemon can ask
    /// for registry credentials (a private base image pulls with the docker CLI's login, as
    /// with `docker buildx build`); when the daemon refuses it the build goes on without one,
    /// unless it needs one (secrets, SSH agents). What `bktrace build` uses.
    Prefer,
    /// Never: a build given secrets or SSH agents fails before it starts.
    Never,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(spec: &str) -> Result<Secret, SecretSpecError> {
        Secret::parse_with(spec, |var| var == "SET_VAR")
    }

    #[test]
    fn secret_specs_in_every_syntax() {
        let file = Secret::file("a", "/p/a.txt");
        for spec in [
            "id=a,src=/p/a.txt",
            "id=a,source=/p/a.txt",
            "src=/p/a.txt,id=a",
            "type=file,id=a,src=/p/a.txt",
            "ID=a,SRC=/p/a.txt",
            r#""id=a","src=/p/a.txt""#,
        ] {
            assert_eq!(parse(spec), Ok(file.clone()), "{spec}");
        }
        let env = Secret::env("a", "VAR");
        for spec in [
            "id=a,env=VAR",
            "type=env,id=a,env=VAR",
            "type=env,id=a,src=VAR",
            "type=env,id=a,source=VAR",
            // buildx prefers the variable when both are given.
            "id=a,src=/p,env=VAR",
        ] {
            assert_eq!(parse(spec), Ok(env.clone()), "{spec}");
        }
        // The id alone: the variable of that name when it is set, else the file.
        assert_eq!(parse("id=SET_VAR"), Ok(Secret::env("SET_VAR", "SET_VAR")));
        assert_eq!(parse("id=key.pem"), Ok(Secret::file("key.pem", "key.pem")));
        assert_eq!(
            parse("type=file,id=SET_VAR,src="),
            Ok(Secret::env("SET_VAR", "SET_VAR"))
        );
        // A quoted field may hold commas and quotes.
        assert_eq!(
            parse(r#"id=a,"src=/p/with,comma ""q""""#),
            Ok(Secret::file("a", r#"/p/with,comma "q""#))
        );
        // Values may hold `=`.
        assert_eq!(parse("id=a,src=/p/x=y"), Ok(Secret::file("a", "/p/x=y")));
    }

    #[test]
    fn secret_spec_errors_name_the_field() {
        let cases: [(&str, SecretSpecError, &str); 7] = [
            (
                "id=a,oops",
                SecretSpecError::NotKeyValue {
                    field: "oops".into(),
                },
                r#"invalid secret field "oops": must be a key=value pair"#,
            ),
            (
                "type=ssh,id=a",
                SecretSpecError::UnsupportedType {
                    value: "ssh".into(),
                },
                r#"unsupported secret type "ssh": expected file or env"#,
            ),
            (
                "id=a,Mode=0400",
                SecretSpecError::UnknownKey {
                    key: "mode".into(),
                    field: "Mode=0400".into(),
                },
                r#"unexpected key "mode" in secret field "Mode=0400""#,
            ),
            (
                "src=/p",
                SecretSpecError::MissingId {
                    spec: "src=/p".into(),
                },
                r#"secret "src=/p" has no id: expected id=ID,src=PATH or id=ID,env=VAR"#,
            ),
            (
                "",
                SecretSpecError::NotKeyValue { field: "".into() },
                r#"invalid secret field "": must be a key=value pair"#,
            ),
            (
                r#"id=a,"src=/p"x"#,
                SecretSpecError::Csv {
                    spec: r#"id=a,"src=/p"x"#.into(),
                },
                r#"invalid secret "id=a,\"src=/p\"x": not valid CSV"#,
            ),
            (
                r#"id=a,"src=/p"#,
                SecretSpecError::Csv {
                    spec: r#"id=a,"src=/p"#.into(),
                },
                r#"invalid secret "id=a,\"src=/p": not valid CSV"#,
            ),
        ];
        for (spec, error, message) in cases {
            let got = parse(spec).unwrap_err();
            assert_eq!(got, error, "{spec}");
            assert_eq!(got.to_string(), message, "{spec}");
        }
    }

    #[test]
    fn a_secret_value_is_redacted_from_debug() {
        let secret = Secret::bytes("db", Bytes::from_static(b"p4ssw0rd-value"));
        let options = crate::BuildOptions {
            secrets: vec![secret.clone(), Secret::file("f", "/run/f")],
            ..Default::default()
        };
        for text in [
            format!("{secret:?}"),
            format!("{options:?}"),
            format!("{options:#?}"),
        ] {
            assert!(!text.contains("p4ssw0rd"), "{text}");
            assert!(text.contains("<redacted 14 bytes>"), "{text}");
        }
        assert!(format!("{options:?}").contains(r#"File("/run/f")"#));
    }

    #[test]
    fn ssh_specs() {
        let cases = [
            ("default", SshAgent::default()),
            ("", SshAgent::default()),
            ("=/s.sock", SshAgent::socket("default", "/s.sock")),
            ("gh", SshAgent::from_env("gh")),
            ("gh=/run/gh.sock", SshAgent::socket("gh", "/run/gh.sock")),
            ("gh=", SshAgent::from_env("gh")),
        ];
        for (spec, agent) in cases {
            assert_eq!(spec.parse::<SshAgent>(), Ok(agent), "{spec:?}");
        }
        let two: SshAgent = "k=/a,/b".parse().unwrap();
        assert_eq!(two.paths(), [PathBuf::from("/a"), PathBuf::from("/b")]);
        let err = "k=/a,,/b".parse::<SshAgent>().unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"invalid --ssh "k=/a,,/b": empty path in the list"#
        );
    }
}

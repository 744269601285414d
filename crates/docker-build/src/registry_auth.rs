//! Registry credentials, found the way the docker CLI finds them.
//!
//! A build that pulls from a registry needing a login asks its client for credentials through
//! the BuildKit session (`moby.filesync.v1.Auth/Credentials`, with the registry's `host[:port]`).
//! `docker buildx build` answers from the CLI's configuration; this module does the same, so
//! `docker login` is all a user of `bktrace build` or of this crate needs:
//!
//! 1. The configuration is `$DOCKER_CONFIG/config.json`, default `$HOME/.docker/config.json`
//!    ([`DockerConfig::load`]). A missing file is an empty configuration: every registry is
//!    anonymous.
//! 2. The key of a registry is its `host[:port]`; Docker Hub's (`docker.io`, `index.docker.io`,
//!    and `registry-1.docker.io` as BuildKit names it) is `https://index.docker.io/v1/`
//!    ([`auth_key`]). A host given as a URL (`https://host:5000/v2/`) is cut to `host:5000`.
//! 3. `credHelpers[key]`, else `credsStore`, names a helper: `docker-credential-<name> get` is
//!    run with the key on stdin and answers `{"ServerURL","Username","Secret"}`; the user name
//!    `<token>` means the secret is an identity token. A helper that answers `credentials not
//!    found in native keychain` has none, and with a helper configured `auths` is not consulted
//!    (as with the CLI).
//! 4. Else `auths`: the entry under the key, else the first (in key order) whose key, cut to
//!    `host[:port]` as in 2., is the key (`"https://registry.example:5000/v1/"` is found for
//!    `registry.example:5000`). `auth` (base64 of `user:password`) wins over `username` and
//!    `password`; `identitytoken` wins over both.
//! 5. None of these, or an entry without a password or token: anonymous (`Ok(None)`).
//!
//! Not supported: the `DOCKER_AUTH_CONFIG` variable of docker CLI 28.2+, and `registrytoken`.
//!
//! Secrets are [`Secret`]s: no `Display`, a `Debug` that prints `<redacted>`, and no error of
//! this module carries one (a malformed `auth` names its key, not its value; JSON is parsed
//! into values first, so no type error quotes a field).
//!
//! ```
//! use docker_build::registry_auth::{Credentials, DockerConfig};
//!
//! let config = DockerConfig::from_json(
//!     br#"{"auths": {"registry.example:5000": {"auth": "dXNlcjpodW50ZXIy"}}}"#,
//! )?;
//! let credentials = config.credentials("registry.example:5000")?.expect("configured");
//! assert_eq!(credentials.username(), "user");
//! assert_eq!(credentials.secret().expose(), "hunter2");
//! assert!(!format!("{credentials:?}").contains("hunter2"));
//! assert_eq!(config.credentials("other.example")?, None);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use base64::Engine;
use serde_json::{Map, Value};

#[cfg(feature = "session")]
#[cfg_attr(docsrs, doc(cfg(feature = "session")))]
pub mod service;
#[cfg(feature = "session")]
#[cfg_attr(docsrs, doc(cfg(feature = "session")))]
pub use service::AuthService;

/// The key under which the docker CLI stores Docker Hub's credentials.
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// The prefix of a credential helper's program name.
const HELPER_PREFIX: &str = "docker-credential-";

/// The user name a helper answers for an identity token.
const TOKEN_USERNAME: &str = "<token>";

/// What a helper prints (on stdout) when it has no credentials for the server.
const NOT_FOUND: &str = "credentials not found in native keychain";

/// A password, token or other secret: readable only through [`Secret::expose`], never printed.
///
/// Hand-written rather than the `secrecy` crate: the value is copied into protobuf messages and
/// HTTP requests whose buffers are not ours, so zeroizing this copy (secrecy's other half)
/// would promise what the program does not keep; what is needed is the redacting `Debug` and no
/// `Display`, which is this type.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Secret(secret.into())
    }

    /// The secret itself, to hand to the daemon or a registry; never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The credentials for one registry.
#[derive(Clone, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum Credentials {
    /// A user name and a password (or an access token used as one).
    Basic {
        /// The user name.
        username: String,
        /// The password.
        password: Secret,
    },
    /// An identity token (an OAuth2 refresh token) that `docker login` stored for a registry
    /// that issues them.
    IdentityToken(Secret),
}

impl Credentials {
    /// The user name BuildKit gets: empty for an identity token (as buildx sends it).
    pub fn username(&self) -> &str {
        match self {
            Credentials::Basic { username, .. } => username,
            Credentials::IdentityToken(_) => "",
        }
    }

    /// The password or identity token.
    pub fn secret(&self) -> &Secret {
        match self {
            Credentials::Basic { password, .. } => password,
            Credentials::IdentityToken(token) => token,
        }
    }
}

/// One `auths` entry, decoded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct AuthEntry {
    username: String,
    password: Secret,
    identity_token: Secret,
}

impl AuthEntry {
    fn credentials(&self) -> Option<Credentials> {
        if !self.identity_token.is_empty() {
            Some(Credentials::IdentityToken(self.identity_token.clone()))
        } else if !self.password.is_empty() {
            Some(Credentials::Basic {
                username: self.username.clone(),
                password: self.password.clone(),
            })
        } else {
            None
        }
    }
}

/// The credential settings of a docker CLI configuration (`config.json`).
///
/// `Debug` shows the registries and helpers configured, never a secret.
#[derive(Clone, Debug, Default)]
pub struct DockerConfig {
    /// The file read, if any (for messages).
    path: Option<PathBuf>,
    auths: BTreeMap<String, AuthEntry>,
    creds_store: Option<String>,
    cred_helpers: BTreeMap<String, String>,
    /// `PATH` for finding helpers; `None` is the process's.
    helper_path: Option<OsString>,
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file exists but could not be read.
    #[error("cannot read the Docker configuration {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The file is not JSON.
    #[error("the Docker configuration {} is not valid JSON", path.display())]
    Json {
        /// The file (`config.json` for [`DockerConfig::from_json`]).
        path: PathBuf,
        /// Where the JSON breaks (line and column; it quotes no content).
        #[source]
        source: serde_json::Error,
    },
    /// A field the credentials are read from has another JSON type than the CLI writes.
    #[error("the Docker configuration {}: {field} is not {expected}", path.display())]
    Field {
        /// The file.
        path: PathBuf,
        /// The field, as a path (`auths."host".username`).
        field: String,
        /// What it should be (`an object`, `a string`).
        expected: &'static str,
    },
    /// An `auth` value is not the base64 of `user:password` (its value is not repeated here).
    #[error(
        "the Docker configuration {}: the auth of {key:?} is not base64 of user:password",
        path.display()
    )]
    InvalidAuth {
        /// The file.
        path: PathBuf,
        /// The registry key the entry is under.
        key: String,
    },
    /// An environment variable naming the configuration is not valid Unicode.
    #[error("environment variable {variable} is not valid Unicode")]
    NotUnicode {
        /// The variable's name.
        variable: &'static str,
    },
}

/// Why a registry's credentials could not be found (not: that there are none).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialsError {
    /// The credential helper could not be started (not on `PATH`, not executable, …).
    #[error("cannot run the credential helper {HELPER_PREFIX}{helper}")]
    Spawn {
        /// The helper's name (`credsStore` or a `credHelpers` value).
        helper: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The helper exited unsuccessfully for another reason than having no credentials.
    #[error("the credential helper {HELPER_PREFIX}{helper} failed ({status}): {message}")]
    Failed {
        /// The helper's name.
        helper: String,
        /// Its exit status.
        status: ExitStatus,
        /// The first non-empty line of its output (helpers print their error on stdout), else
        /// of its stderr.
        message: String,
    },
    /// The helper succeeded but did not print its credentials JSON.
    #[error("the credential helper {HELPER_PREFIX}{helper} answered no credentials JSON: {reason}")]
    Output {
        /// The helper's name.
        helper: String,
        /// What is wrong (a JSON syntax error's position, or the field that is not a string).
        reason: String,
    },
}

impl DockerConfig {
    /// [`DockerConfig::from_vars`] with the process's environment.
    pub fn load() -> Result<Self, ConfigError> {
        let mut values = Vec::new();
        for variable in ["DOCKER_CONFIG", "HOME"] {
            match std::env::var(variable) {
                Ok(value) => values.push((variable, value)),
                Err(std::env::VarError::NotPresent) => {}
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(ConfigError::NotUnicode { variable });
                }
            }
        }
        Self::from_vars(|name| {
            values
                .iter()
                .find(|(variable, _)| *variable == name)
                .map(|(_, value)| value.clone())
        })
    }

    /// The configuration in `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`,
    /// with `var` giving the value of an environment variable (`None` or empty meaning unset).
    /// With neither variable set, the empty configuration.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| var(name).filter(|value| !value.is_empty());
        let dir = get("DOCKER_CONFIG")
            .map(PathBuf::from)
            .or_else(|| get("HOME").map(|home| Path::new(&home).join(".docker")));
        match dir {
            Some(dir) => Self::from_path(dir.join("config.json")),
            None => Ok(Self::default()),
        }
    }

    /// The configuration in the file `path` (a `config.json`). A missing or empty file is the
    /// empty configuration, as for the CLI.
    pub fn from_path(path: impl Into<PathBuf>) -> Result<Self, ConfigError> {
        let path = path.into();
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(DockerConfig {
                    path: Some(path),
                    ..Self::default()
                });
            }
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        Self::parse(&bytes, path)
    }

    /// The configuration in `json`, the contents of a `config.json`.
    pub fn from_json(json: &[u8]) -> Result<Self, ConfigError> {
        Self::parse(json, PathBuf::from("config.json"))
    }

    /// The `PATH` searched for `docker-credential-*` helpers, instead of the process's.
    #[must_use]
    pub fn with_helper_path(mut self, path: impl Into<OsString>) -> Self {
        self.helper_path = Some(path.into());
        self
    }

    /// The file this configuration was read from, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    fn parse(bytes: &[u8], path: PathBuf) -> Result<Self, ConfigError> {
        let mut config = DockerConfig {
            path: Some(path.clone()),
            ..Self::default()
        };
        // The CLI reads an empty file as "no configuration" too.
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(config);
        }
        // Into values first: serde_json's syntax errors give a position only, while a typed
        // deserialization's errors quote the offending value, which may be a secret.
        let root: Value = serde_json::from_slice(bytes).map_err(|source| ConfigError::Json {
            path: path.clone(),
            source,
        })?;
        let field_error = |field: String, expected| ConfigError::Field {
            path: path.clone(),
            field,
            expected,
        };
        let root = root
            .as_object()
            .ok_or_else(|| field_error("the top level".into(), "an object"))?;
        if let Some(auths) = object_field(root, "auths", "auths", &field_error)? {
            for (key, entry) in auths {
                let field = |name: &str| format!("auths.{key:?}.{name}");
                let entry = entry
                    .as_object()
                    .ok_or_else(|| field_error(format!("auths.{key:?}"), "an object"))?;
                let string = |name: &str| string_field(entry, name, &field(name), &field_error);
                let mut decoded = AuthEntry {
                    username: string("username")?.unwrap_or_default(),
                    password: Secret(string("password")?.unwrap_or_default()),
                    identity_token: Secret(string("identitytoken")?.unwrap_or_default()),
                };
                if let Some(auth) = string("auth")?.filter(|auth| !auth.is_empty()) {
                    let (username, password) =
                        decode_auth(&auth).ok_or_else(|| ConfigError::InvalidAuth {
                            path: path.clone(),
                            key: key.clone(),
                        })?;
                    decoded.username = username;
                    decoded.password = Secret(password);
                }
                config.auths.insert(key.clone(), decoded);
            }
        }
        config.creds_store =
            string_field(root, "credsStore", "credsStore", &field_error)?.filter(|s| !s.is_empty());
        if let Some(helpers) = object_field(root, "credHelpers", "credHelpers", &field_error)? {
            for (key, helper) in helpers {
                let helper = helper
                    .as_str()
                    .ok_or_else(|| field_error(format!("credHelpers.{key:?}"), "a string"))?;
                config.cred_helpers.insert(key.clone(), helper.to_owned());
            }
        }
        Ok(config)
    }

    /// The credentials for the registry `host` (`host[:port]` as BuildKit asks, or a URL), or
    /// `None` for anonymous access; the lookup is in the [module docs](self).
    pub fn credentials(&self, host: &str) -> Result<Option<Credentials>, CredentialsError> {
        let key = auth_key(host);
        let helper = self
            .cred_helpers
            .get(&key)
            .filter(|helper| !helper.is_empty())
            .or(self.creds_store.as_ref());
        if let Some(helper) = helper {
            return self.run_helper(helper, &key);
        }
        let entry = self.auths.get(&key).or_else(|| {
            self.auths
                .iter()
                .find(|(stored, _)| convert_to_hostname(stored) == key)
                .map(|(_, entry)| entry)
        });
        Ok(entry.and_then(AuthEntry::credentials))
    }

    /// `docker-credential-<helper> get` with `key` on stdin.
    fn run_helper(&self, helper: &str, key: &str) -> Result<Option<Credentials>, CredentialsError> {
        let program = format!("{HELPER_PREFIX}{helper}");
        let mut command = Command::new(&program);
        command
            .arg("get")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(path) = &self.helper_path {
            // On Unix the child's PATH is the one searched for the program.
            command.env("PATH", path);
        }
        let spawn_error = |source| CredentialsError::Spawn {
            helper: helper.to_owned(),
            source,
        };
        let mut child = command.spawn().map_err(spawn_error)?;
        if let Some(mut stdin) = child.stdin.take() {
            // A helper may exit without reading its input; its exit status tells the rest.
            match stdin.write_all(key.as_bytes()) {
                Err(e) if e.kind() != io::ErrorKind::BrokenPipe => return Err(spawn_error(e)),
                _ => {}
            }
        }
        let output = child.wait_with_output().map_err(spawn_error)?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            if stdout.trim() == NOT_FOUND {
                return Ok(None);
            }
            let stderr = String::from_utf8_lossy(&output.stderr);
            let message = first_line(&stdout)
                .or_else(|| first_line(&stderr))
                .unwrap_or("no message")
                .to_owned();
            return Err(CredentialsError::Failed {
                helper: helper.to_owned(),
                status: output.status,
                message,
            });
        }
        let output_error = |reason: String| CredentialsError::Output {
            helper: helper.to_owned(),
            reason,
        };
        let value: Value =
            serde_json::from_slice(&output.stdout).map_err(|e| output_error(e.to_string()))?;
        let object = value
            .as_object()
            .ok_or_else(|| output_error("not a JSON object".into()))?;
        let string = |name: &str| match object.get(name) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(output_error(format!("{name} is not a string"))),
        };
        let username = string("Username")?;
        let secret = Secret(string("Secret")?);
        if secret.is_empty() {
            return Ok(None);
        }
        Ok(Some(if username == TOKEN_USERNAME {
            Credentials::IdentityToken(secret)
        } else {
            Credentials::Basic {
                username,
                password: secret,
            }
        }))
    }
}

/// The key under which the docker CLI stores the credentials of the registry `host`: Docker
/// Hub's [`DOCKER_HUB_KEY`] for `docker.io`, `index.docker.io` and `registry-1.docker.io`,
/// else `host[:port]` (a URL is cut to it).
///
/// ```
/// use docker_build::registry_auth::{DOCKER_HUB_KEY, auth_key};
///
/// assert_eq!(auth_key("registry-1.docker.io"), DOCKER_HUB_KEY);
/// assert_eq!(auth_key("https://index.docker.io/v1/"), DOCKER_HUB_KEY);
/// assert_eq!(auth_key("https://127.0.0.1:5000/v2/"), "127.0.0.1:5000");
/// ```
pub fn auth_key(host: &str) -> String {
    let host = convert_to_hostname(host);
    match host {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB_KEY.to_owned(),
        _ => host.to_owned(),
    }
}

/// `host[:port]` of a registry address that may carry a scheme and a path, as the CLI's
/// `ConvertToHostname` cuts it.
fn convert_to_hostname(address: &str) -> &str {
    let rest = match address.split_once("://") {
        Some((_, rest)) => {
            let authority = rest.split('/').next().unwrap_or_default();
            // A URL's user information is not part of its host.
            let host = authority
                .rsplit_once('@')
                .map_or(authority, |(_, host)| host);
            if !host.is_empty() {
                return host;
            }
            rest
        }
        None => address,
    };
    rest.split('/').next().unwrap_or_default()
}

/// `user:password` from the base64 `auth`, as the CLI decodes it (the user name must not be
/// empty; NULs around the password are dropped).
fn decode_auth(auth: &str) -> Option<(String, String)> {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth)
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (username, password) = decoded.split_once(':')?;
    if username.is_empty() {
        return None;
    }
    Some((username.to_owned(), password.trim_matches('\0').to_owned()))
}

fn first_line(text: &str) -> Option<&str> {
    text.lines().map(str::trim).find(|line| !line.is_empty())
}

/// The object `name` of `parent`; absent or `null` is `None`.
fn object_field<'a>(
    parent: &'a Map<String, Value>,
    name: &str,
    field: &str,
    error: &impl Fn(String, &'static str) -> ConfigError,
) -> Result<Option<&'a Map<String, Value>>, ConfigError> {
    match parent.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(object)) => Ok(Some(object)),
        Some(_) => Err(error(field.to_owned(), "an object")),
    }
}

/// The string `name` of `parent`; absent or `null` is `None`.
fn string_field(
    parent: &Map<String, Value>,
    name: &str,
    field: &str,
    error: &impl Fn(String, &'static str) -> ConfigError,
) -> Result<Option<String>, ConfigError> {
    match parent.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(value)) => Ok(Some(value.clone())),
        Some(_) => Err(error(field.to_owned(), "a string")),
    }
}

#[cfg(all(test, unix))]
mod tests;

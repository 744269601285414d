//! Which daemon, found the way the docker CLI finds it: `DOCKER_HOST`, Docker contexts, TLS.

use std::io;
use std::path::{Path, PathBuf};

use serde::Deserialize as _;

use super::tls::{CA_FILE, CERT_FILE, KEY_FILE, TlsConfig};
use super::{DEFAULT_DOCKER_HOST, DockerHost, HostError, Io};

/// The port of the daemon address used when TLS is asked for and `DOCKER_HOST` is unset.
const DEFAULT_TLS_PORT: u16 = 2376;

/// The name of the context that means "`DOCKER_HOST` and the TLS variables".
const DEFAULT_CONTEXT: &str = "default";

/// Where the Docker daemon is and how to talk to it: the address, and TLS for a TCP address
/// that needs it.
///
/// [`Endpoint::from_env`] finds it as the docker CLI does (the order is spelled out there);
/// [`Daemon::connect`](super::Daemon::connect) uses that. A [`DockerHost`] converts into an
/// endpoint without TLS.
///
/// ```
/// use docker_build::connection::{DockerHost, Endpoint};
///
/// let endpoint: Endpoint = DockerHost::parse("tcp://127.0.0.1:2375")?.into();
/// assert!(endpoint.tls.is_none());
/// assert_eq!(endpoint.context, None);
/// # Ok::<(), docker_build::connection::HostError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Endpoint {
    /// The daemon's address.
    pub host: DockerHost,
    /// TLS settings; `None` for plain HTTP and for Unix sockets.
    pub tls: Option<TlsConfig>,
    /// The Docker context the endpoint was read from; `None` for the `default` context
    /// (`DOCKER_HOST` and the TLS variables) and for endpoints made in code.
    pub context: Option<String>,
}

impl From<DockerHost> for Endpoint {
    fn from(host: DockerHost) -> Self {
        Endpoint::new(host, None)
    }
}

impl Endpoint {
    /// An endpoint made in code. `tls` is used for TCP addresses only (a Unix socket is
    /// reached without TLS, as by the docker CLI).
    pub fn new(host: DockerHost, tls: Option<TlsConfig>) -> Self {
        let tls = tls.filter(|_| matches!(host, DockerHost::Tcp { .. }));
        Endpoint {
            host,
            tls,
            context: None,
        }
    }

    /// [`Endpoint::from_vars`] with the process's environment.
    pub fn from_env() -> Result<Self, HostError> {
        const VARIABLES: [&str; 7] = [
            "DOCKER_HOST",
            "DOCKER_CONTEXT",
            "DOCKER_CONFIG",
            "DOCKER_TLS_VERIFY",
            "DOCKER_TLS",
            "DOCKER_CERT_PATH",
            "HOME",
        ];
        let mut values = Vec::with_capacity(VARIABLES.len());
        for variable in VARIABLES {
            match std::env::var(variable) {
                Ok(value) => values.push((variable, value)),
                Err(std::env::VarError::NotPresent) => {}
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(HostError::NotUnicode { variable });
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

    /// Finds the daemon as the docker CLI does, with `var` giving the value of an environment
    /// variable (`None` or empty meaning unset). The files read are the CLI's: `config.json` and
    /// the contexts under `$DOCKER_CONFIG` (default `$HOME/.docker`), and the PEM files.
    ///
    /// 1. `DOCKER_HOST` set: that address, in the `default` context below.
    /// 2. Else `DOCKER_CONTEXT`, else `currentContext` in `$DOCKER_CONFIG/config.json`, names
    ///    the context; none, or `default`, is the default context.
    /// 3. A named context is read from `contexts/meta/<sha256 of the name>/meta.json`: its
    ///    `docker` endpoint's `Host` and `SkipTLSVerify`, and the TLS files `ca.pem`, `cert.pem`,
    ///    `key.pem` in `contexts/tls/<sha256 of the name>/docker/`, each optional. A TCP host
    ///    uses TLS when any of them exists or `SkipTLSVerify` is true.
    /// 4. The default context: `DOCKER_HOST`, else `unix:///var/run/docker.sock`. TLS is on when
    ///    `DOCKER_TLS_VERIFY` or `DOCKER_TLS` is set to anything non-empty (`0` included, as
    ///    for the CLI) or the address is `https://`; then an unset `DOCKER_HOST` means
    ///    `tcp://localhost:2376`, and the daemon's certificate is verified unless only
    ///    `DOCKER_TLS` is set. The TLS files are read from `DOCKER_CERT_PATH`, default
    ///    `$DOCKER_CONFIG` ([`TlsConfig::from_dir`]). `DOCKER_CERT_PATH` alone does not turn
    ///    TLS on (the CLI ignores it too).
    ///
    /// Differences from the CLI: a malformed `config.json` is an error (the CLI warns and goes
    /// on with the default context); verifying a daemon's certificate needs a `ca.pem`, where
    /// the CLI would fall back to the system's roots for a context without one; `ssh://`
    /// contexts are not supported.
    ///
    /// ```
    /// use docker_build::connection::{DockerHost, Endpoint};
    ///
    /// let env = |name: &str| match name {
    ///     "DOCKER_HOST" => Some("tcp://build-box:2375".to_string()),
    ///     "DOCKER_CONTEXT" => Some("ignored-when-DOCKER_HOST-is-set".to_string()),
    ///     _ => None,
    /// };
    /// let endpoint = Endpoint::from_vars(env)?;
    /// assert_eq!(endpoint.host, DockerHost::Tcp { host: "build-box".into(), port: 2375 });
    /// assert!(endpoint.tls.is_none());
    /// # Ok::<(), docker_build::connection::HostError>(())
    /// ```
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, HostError> {
        let get = |name: &str| var(name).filter(|value| !value.is_empty());
        let config_dir = get("DOCKER_CONFIG")
            .map(PathBuf::from)
            .or_else(|| get("HOME").map(|home| Path::new(&home).join(".docker")));
        let docker_host = get("DOCKER_HOST");
        let context = if docker_host.is_some() {
            None
        } else if let Some(name) = get("DOCKER_CONTEXT") {
            Some(name)
        } else {
            match &config_dir {
                Some(dir) => current_context(dir)?,
                None => None,
            }
        };
        match context.filter(|name| name != DEFAULT_CONTEXT) {
            Some(name) => from_context(name, config_dir.as_deref()),
            None => {
                let tls = if get("DOCKER_TLS_VERIFY").is_some() {
                    Some(true)
                } else if get("DOCKER_TLS").is_some() {
                    Some(false)
                } else {
                    None
                };
                let cert_path = get("DOCKER_CERT_PATH").map(PathBuf::from).or(config_dir);
                default_context(docker_host.as_deref(), tls, cert_path.as_deref())
            }
        }
    }

    /// Opens a byte stream to the daemon: the socket, and the TLS handshake over it if TLS is on.
    pub(crate) async fn open_io(&self) -> io::Result<Io> {
        match &self.host {
            #[cfg(unix)]
            DockerHost::Unix(path) => Ok(Box::pin(tokio::net::UnixStream::connect(path).await?)),
            #[cfg(not(unix))]
            DockerHost::Unix(_) => Err(super::unix_unsupported()),
            DockerHost::Tcp { host, port } => {
                let tcp = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
                match &self.tls {
                    None => Ok(Box::pin(tcp)),
                    Some(tls) => Ok(Box::pin(tls.handshake(host, tcp).await?)),
                }
            }
        }
    }
}

/// The `default` context: `DOCKER_HOST` (`docker_host`) and the TLS variables (`tls`: `None`
/// off, `Some(verify)` on).
fn default_context(
    docker_host: Option<&str>,
    tls: Option<bool>,
    cert_path: Option<&Path>,
) -> Result<Endpoint, HostError> {
    let https = docker_host.is_some_and(|h| h.starts_with("https://"));
    let tls = if https { Some(true) } else { tls };
    let host = match docker_host {
        Some(address) => DockerHost::parse(address)?,
        None if tls.is_some() => DockerHost::Tcp {
            host: "localhost".to_string(),
            port: DEFAULT_TLS_PORT,
        },
        None => DockerHost::parse(DEFAULT_DOCKER_HOST)?,
    };
    let tls = match (tls, &host) {
        (Some(verify), DockerHost::Tcp { .. }) => {
            let dir = cert_path.ok_or(HostError::NoCertPath)?;
            Some(TlsConfig::from_dir(dir, verify)?)
        }
        _ => None,
    };
    Ok(Endpoint {
        host,
        tls,
        context: None,
    })
}

/// The `currentContext` of `config.json` in `config_dir`, if the file exists and names one.
fn current_context(config_dir: &Path) -> Result<Option<String>, HostError> {
    #[derive(serde::Deserialize)]
    struct ConfigFile {
        #[serde(rename = "currentContext", default)]
        current_context: Option<String>,
    }
    let path = config_dir.join("config.json");
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(HostError::Config {
                path,
                source: Box::new(e),
            });
        }
    };
    // The CLI writes an empty file as "no configuration" too.
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let config: ConfigFile = serde_json::from_slice(&bytes).map_err(|e| HostError::Config {
        path,
        source: Box::new(e),
    })?;
    Ok(config.current_context.filter(|name| !name.is_empty()))
}

/// The directory name of a context in the store: the hex SHA-256 of its name.
fn context_id(name: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, name.as_bytes());
    digest
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The endpoint of the context `name` in the store under `config_dir`.
fn from_context(name: String, config_dir: Option<&Path>) -> Result<Endpoint, HostError> {
    #[derive(serde::Deserialize)]
    struct Meta {
        #[serde(rename = "Endpoints", default)]
        endpoints: std::collections::HashMap<String, serde_json::Value>,
    }
    #[derive(serde::Deserialize)]
    struct DockerEndpoint {
        #[serde(rename = "Host", default)]
        host: Option<String>,
        #[serde(rename = "SkipTLSVerify", default)]
        skip_tls_verify: bool,
    }

    let Some(config_dir) = config_dir else {
        return Err(HostError::ContextNotFound { name });
    };
    let id = context_id(&name);
    let path = config_dir.join("contexts/meta").join(&id).join("meta.json");
    let malformed = |path: &Path, source: super::BoxError| HostError::Context {
        name: name.clone(),
        path: path.to_path_buf(),
        source,
    };
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(HostError::ContextNotFound { name });
        }
        Err(e) => return Err(malformed(&path, Box::new(e))),
    };
    let meta: Meta = serde_json::from_slice(&bytes).map_err(|e| malformed(&path, Box::new(e)))?;
    let Some(docker) = meta.endpoints.get("docker") else {
        return Err(HostError::ContextWithoutDocker { name, path });
    };
    let docker = DockerEndpoint::deserialize(docker).map_err(|e| malformed(&path, Box::new(e)))?;
    let address = docker
        .host
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| DEFAULT_DOCKER_HOST.to_string());
    let host = DockerHost::parse(&address)?;

    let tls_dir = config_dir.join("contexts/tls").join(&id).join("docker");
    let ca = tls_dir.join(CA_FILE);
    let (cert, key) = (tls_dir.join(CERT_FILE), tls_dir.join(KEY_FILE));
    let (has_ca, has_cert, has_key) = (ca.exists(), cert.exists(), key.exists());
    let wants_tls =
        has_ca || has_cert || has_key || docker.skip_tls_verify || address.starts_with("https://");
    let tls = match &host {
        DockerHost::Tcp { .. } if wants_tls => {
            let client = (has_cert || has_key).then_some((cert, key));
            let ca = has_ca.then_some(ca.as_path());
            Some(TlsConfig::from_files(
                &tls_dir,
                ca,
                client,
                !docker.skip_tls_verify,
            )?)
        }
        _ => None,
    };
    Ok(Endpoint {
        host,
        tls,
        context: Some(name),
    })
}

#[cfg(all(test, unix))]
mod tests;

//! Endpoint resolution (a table of environments and configuration directories), loading TLS
//! material, and TLS handshakes against an in-process rustls daemon.
//!
//! The certificates are fixtures in `../testdata` (made by its `gen.sh`, valid for 100 years).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::connection::tests::fake;
use crate::connection::{BuildRequestError, ConnectError, Daemon, TlsError};

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/connection/testdata")
}

/// A directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "docker-build-endpoint-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `contents` to `relative` (making its directories); returns the full path.
    fn write(&self, relative: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.0.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// Copies fixture files: `(fixture, name in dir)`.
    fn copy(&self, dir: impl AsRef<Path>, files: &[(&str, &str)]) -> PathBuf {
        let dir = self.0.join(dir);
        for (fixture, name) in files {
            self.write(
                dir.join(name),
                std::fs::read(testdata().join(fixture)).unwrap(),
            );
        }
        dir
    }

    /// Writes the context `name` as `docker context create` does.
    fn context(&self, name: &str, meta: &str) {
        self.write(
            format!("contexts/meta/{}/meta.json", context_id(name)),
            meta,
        );
    }

    fn context_tls(&self, name: &str, files: &[(&str, &str)]) -> PathBuf {
        self.copy(format!("contexts/tls/{}/docker", context_id(name)), files)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const CLIENT_FILES: [(&str, &str); 3] = [
    ("ca.pem", "ca.pem"),
    ("cert.pem", "cert.pem"),
    ("key.pem", "key.pem"),
];

fn resolve(vars: &[(&str, &str)]) -> Result<Endpoint, HostError> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Endpoint::from_vars(|name| vars.get(name).cloned())
}

fn tcp(host: &str, port: u16) -> DockerHost {
    DockerHost::Tcp {
        host: host.into(),
        port,
    }
}

fn unix_default() -> DockerHost {
    DockerHost::Unix("/var/run/docker.sock".into())
}

/// `error` and its sources, `: `-joined, as bktrace prints errors.
fn one_line(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
}

#[test]
fn context_ids_are_the_sha256_of_the_name() {
    assert_eq!(
        context_id("foo"),
        "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
    );
}

#[test]
fn the_default_context_without_tls() {
    // Nothing set, no configuration directory.
    let endpoint = resolve(&[]).unwrap();
    assert_eq!(endpoint.host, unix_default());
    assert_eq!((endpoint.tls, endpoint.context), (None, None));

    // DOCKER_HOST wins over DOCKER_CONTEXT, even one that does not exist (as for the CLI).
    let endpoint = resolve(&[
        ("DOCKER_HOST", "tcp://docker:2375"),
        ("DOCKER_CONTEXT", "nowhere"),
    ])
    .unwrap();
    assert_eq!(endpoint.host, tcp("docker", 2375));
    assert!(endpoint.tls.is_none());

    // DOCKER_CERT_PATH alone does not turn TLS on.
    let endpoint = resolve(&[
        ("DOCKER_HOST", "tcp://docker:2376"),
        ("DOCKER_CERT_PATH", "/no/such/dir"),
    ])
    .unwrap();
    assert!(endpoint.tls.is_none());

    // Empty values are unset.
    let endpoint = resolve(&[
        ("DOCKER_HOST", ""),
        ("DOCKER_CONTEXT", ""),
        ("DOCKER_TLS_VERIFY", ""),
        ("DOCKER_TLS", ""),
    ])
    .unwrap();
    assert_eq!(endpoint.host, unix_default());

    // TLS is not spoken on a Unix socket, and its files are not read.
    let endpoint = resolve(&[
        ("DOCKER_HOST", "unix:///run/docker.sock"),
        ("DOCKER_TLS_VERIFY", "1"),
        ("DOCKER_CERT_PATH", "/no/such/dir"),
    ])
    .unwrap();
    assert!(endpoint.tls.is_none());

    let err = resolve(&[("DOCKER_HOST", "ssh://me@docker")]).unwrap_err();
    assert!(
        matches!(err, HostError::UnsupportedScheme { .. }),
        "{err:?}"
    );
}

#[test]
fn the_default_context_with_tls() {
    let certs = testdata();
    let certs = certs.to_str().unwrap();

    let endpoint = resolve(&[
        ("DOCKER_HOST", "tcp://127.0.0.1:2376"),
        ("DOCKER_TLS_VERIFY", "1"),
        ("DOCKER_CERT_PATH", certs),
    ])
    .unwrap();
    assert_eq!(endpoint.host, tcp("127.0.0.1", 2376));
    let tls = endpoint.tls.unwrap();
    assert!(tls.verifies_daemon() && tls.has_client_certificate());
    assert_eq!(tls.source(), testdata());

    // Any non-empty DOCKER_TLS_VERIFY means verify, "0" too (as for the CLI).
    let endpoint = resolve(&[
        ("DOCKER_HOST", "tcp://127.0.0.1:2376"),
        ("DOCKER_TLS_VERIFY", "0"),
        ("DOCKER_CERT_PATH", certs),
    ])
    .unwrap();
    assert!(endpoint.tls.unwrap().verifies_daemon());

    // DOCKER_TLS: encrypted, not verified.
    let endpoint = resolve(&[
        ("DOCKER_HOST", "tcp://127.0.0.1:2376"),
        ("DOCKER_TLS", "1"),
        ("DOCKER_CERT_PATH", certs),
    ])
    .unwrap();
    assert!(!endpoint.tls.unwrap().verifies_daemon());

    // https:// turns TLS on, verified.
    let endpoint = resolve(&[
        ("DOCKER_HOST", "https://127.0.0.1:2376"),
        ("DOCKER_CERT_PATH", certs),
    ])
    .unwrap();
    assert_eq!(endpoint.host, tcp("127.0.0.1", 2376));
    assert!(endpoint.tls.unwrap().verifies_daemon());

    // No DOCKER_HOST: localhost:2376, certificates from DOCKER_CONFIG.
    let config = TempDir::new();
    config.copy("", &CLIENT_FILES);
    let endpoint = resolve(&[
        ("DOCKER_TLS_VERIFY", "1"),
        ("DOCKER_CONFIG", config.path().to_str().unwrap()),
    ])
    .unwrap();
    assert_eq!(endpoint.host, tcp("localhost", 2376));
    assert_eq!(endpoint.tls.unwrap().source(), config.path());

    // ... or from $HOME/.docker.
    let home = TempDir::new();
    home.copy(".docker", &CLIENT_FILES);
    let endpoint = resolve(&[
        ("DOCKER_TLS_VERIFY", "1"),
        ("HOME", home.path().to_str().unwrap()),
    ])
    .unwrap();
    assert_eq!(endpoint.tls.unwrap().source(), home.path().join(".docker"));

    let err = resolve(&[("DOCKER_TLS_VERIFY", "1")]).unwrap_err();
    assert!(matches!(err, HostError::NoCertPath), "{err:?}");
}

#[test]
fn contexts_are_found_as_the_cli_finds_them() {
    let config = TempDir::new();
    let dir = config.path().to_str().unwrap();
    config.context(
        "remote",
        r#"{"Name":"remote","Metadata":{"Description":"x"},
            "Endpoints":{"docker":{"Host":"tcp://remote:2375","SkipTLSVerify":false}}}"#,
    );
    config.context(
        "other",
        r#"{"Name":"other","Endpoints":{"docker":{"Host":"unix:///run/other.sock"}}}"#,
    );

    // DOCKER_CONTEXT names it.
    let endpoint = resolve(&[("DOCKER_CONFIG", dir), ("DOCKER_CONTEXT", "remote")]).unwrap();
    assert_eq!(endpoint.host, tcp("remote", 2375));
    assert_eq!(endpoint.context.as_deref(), Some("remote"));
    assert!(endpoint.tls.is_none());

    // config.json's currentContext names it.
    config.write("config.json", r#"{"auths":{},"currentContext":"other"}"#);
    let endpoint = resolve(&[("DOCKER_CONFIG", dir)]).unwrap();
    assert_eq!(endpoint.host, DockerHost::Unix("/run/other.sock".into()));
    assert_eq!(endpoint.context.as_deref(), Some("other"));

    // DOCKER_CONTEXT wins over config.json; `default` is the default context.
    let endpoint = resolve(&[("DOCKER_CONFIG", dir), ("DOCKER_CONTEXT", "remote")]).unwrap();
    assert_eq!(endpoint.context.as_deref(), Some("remote"));
    let endpoint = resolve(&[("DOCKER_CONFIG", dir), ("DOCKER_CONTEXT", "default")]).unwrap();
    assert_eq!((endpoint.host, endpoint.context), (unix_default(), None));

    // DOCKER_HOST wins over both.
    let endpoint = resolve(&[("DOCKER_CONFIG", dir), ("DOCKER_HOST", "tcp://h:1")]).unwrap();
    assert_eq!((endpoint.host, endpoint.context), (tcp("h", 1), None));

    // $HOME/.docker when DOCKER_CONFIG is unset.
    let home = TempDir::new();
    home.write(".docker/config.json", r#"{"currentContext":"remote"}"#);
    home.write(
        format!(".docker/contexts/meta/{}/meta.json", context_id("remote")),
        r#"{"Endpoints":{"docker":{"Host":"tcp://home:2375"}}}"#,
    );
    let endpoint = resolve(&[("HOME", home.path().to_str().unwrap())]).unwrap();
    assert_eq!(endpoint.host, tcp("home", 2375));

    // An empty or absent config.json is no configuration.
    config.write("config.json", "");
    assert_eq!(resolve(&[("DOCKER_CONFIG", dir)]).unwrap().context, None);
}

#[test]
fn context_tls() {
    let config = TempDir::new();
    let dir = config.path().to_str().unwrap();
    let meta = |host: &str, skip: bool| {
        format!(r#"{{"Endpoints":{{"docker":{{"Host":"{host}","SkipTLSVerify":{skip}}}}}}}"#)
    };

    config.context("tls", &meta("tcp://127.0.0.1:2376", false));
    let tls_dir = config.context_tls("tls", &CLIENT_FILES);
    let endpoint = resolve(&[("DOCKER_CONFIG", dir), ("DOCKER_CONTEXT", "tls")]).unwrap();
    let tls = endpoint.tls.unwrap();
    assert!(tls.verifies_daemon() && tls.has_client_certificate());
    assert_eq!(tls.source(), tls_dir);

    // SkipTLSVerify alone turns TLS on, unverified.
    config.context("skip", &meta("tcp://127.0.0.1:2376", true));
    let endpoint = resolve(&[("DOCKER_CONFIG", dir), ("DOCKER_CONTEXT", "skip")]).unwrap();
    let tls = endpoint.tls.unwrap();
    assert!(!tls.verifies_daemon() && !tls.has_client_certificate());

    // No TLS files, no SkipTLSVerify: plain TCP.
    config.context("plain", &meta("tcp://127.0.0.1:2375", false));
    let endpoint = resolve(&[("DOCKER_CONFIG", dir), ("DOCKER_CONTEXT", "plain")]).unwrap();
    assert!(endpoint.tls.is_none());

    // A Unix socket ignores the TLS files.
    config.context("sock", &meta("unix:///run/x.sock", false));
    config.context_tls("sock", &CLIENT_FILES);
    let endpoint = resolve(&[("DOCKER_CONFIG", dir), ("DOCKER_CONTEXT", "sock")]).unwrap();
    assert!(endpoint.tls.is_none());

    // A client certificate without a CA cannot be verified: no system roots are used.
    config.context("noca", &meta("tcp://127.0.0.1:2376", false));
    let noca = config.context_tls("noca", &CLIENT_FILES[1..]);
    let err = resolve(&[("DOCKER_CONFIG", dir), ("DOCKER_CONTEXT", "noca")]).unwrap_err();
    assert!(
        matches!(err, HostError::Tls(TlsError::NoCa { .. })),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains(&noca.join("ca.pem").display().to_string()),
        "{err}"
    );
}

#[test]
fn context_errors_read_as_one_line() {
    let config = TempDir::new();
    let dir = config.path().to_str().unwrap();

    let err = resolve(&[("DOCKER_CONFIG", dir), ("DOCKER_CONTEXT", "foo")]).unwrap_err();
    assert!(matches!(err, HostError::ContextNotFound { .. }), "{err:?}");
    assert_eq!(err.to_string(), r#"context "foo" does not exist"#);
    // Without any configuration directory too.
    let err = resolve(&[("DOCKER_CONTEXT", "foo")]).unwrap_err();
    assert_eq!(err.to_string(), r#"context "foo" does not exist"#);

    // config.json names a context that is not there.
    config.write("config.json", r#"{"currentContext":"gone"}"#);
    let err = resolve(&[("DOCKER_CONFIG", dir)]).unwrap_err();
    assert_eq!(err.to_string(), r#"context "gone" does not exist"#);

    let path = config.write("config.json", "{not json");
    let err = resolve(&[("DOCKER_CONFIG", dir)]).unwrap_err();
    assert!(matches!(err, HostError::Config { .. }), "{err:?}");
    let line = one_line(&err);
    assert!(
        line.starts_with(&format!(
            "cannot read the Docker configuration {}: ",
            path.display()
        )),
        "{line}"
    );

    config.write("config.json", "{}");
    config.context("broken", "{\"Endpoints\": [");
    let err = resolve(&[("DOCKER_CONFIG", dir), ("DOCKER_CONTEXT", "broken")]).unwrap_err();
    assert!(matches!(err, HostError::Context { .. }), "{err:?}");
    assert!(
        one_line(&err).starts_with(r#"cannot read the Docker context "broken" from "#),
        "{err}"
    );

    config.context("typed", r#"{"Endpoints":{"docker":{"Host":42}}}"#);
    let err = resolve(&[("DOCKER_CONFIG", dir), ("DOCKER_CONTEXT", "typed")]).unwrap_err();
    assert!(matches!(err, HostError::Context { .. }), "{err:?}");

    config.context("k8s", r#"{"Endpoints":{"kubernetes":{}}}"#);
    let err = resolve(&[("DOCKER_CONFIG", dir), ("DOCKER_CONTEXT", "k8s")]).unwrap_err();
    assert!(
        matches!(err, HostError::ContextWithoutDocker { .. }),
        "{err:?}"
    );

    config.context("ssh", r#"{"Endpoints":{"docker":{"Host":"ssh://me@box"}}}"#);
    let err = resolve(&[("DOCKER_CONFIG", dir), ("DOCKER_CONTEXT", "ssh")]).unwrap_err();
    assert!(
        matches!(err, HostError::UnsupportedScheme { .. }),
        "{err:?}"
    );
}

#[test]
fn tls_material_errors_name_the_file() {
    let dir = TempDir::new();

    // Verification needs ca.pem.
    let err = TlsConfig::from_dir(dir.path(), true).unwrap_err();
    assert!(matches!(err, TlsError::NoCa { .. }), "{err:?}");
    let ca = dir.path().join("ca.pem");
    assert!(err.to_string().contains(&ca.display().to_string()), "{err}");
    // Without verification it is not needed, nor is a client certificate.
    let tls = TlsConfig::from_dir(dir.path(), false).unwrap();
    assert!(!tls.verifies_daemon() && !tls.has_client_certificate());

    // cert.pem without key.pem.
    dir.copy("", &CLIENT_FILES[..2]);
    let err = TlsConfig::from_dir(dir.path(), true).unwrap_err();
    let key = dir.path().join("key.pem");
    assert!(
        matches!(&err, TlsError::Read { path, .. } if *path == key),
        "{err:?}"
    );
    assert!(
        one_line(&err).starts_with(&format!("cannot read {}: ", key.display())),
        "{err}"
    );

    // A key that does not go with the certificate.
    dir.copy("", &[("wrong-key.pem", "key.pem")]);
    let err = TlsConfig::from_dir(dir.path(), true).unwrap_err();
    assert!(matches!(err, TlsError::ClientCertificate { .. }), "{err:?}");

    // A key file with no key.
    dir.copy("", &[("cert.pem", "key.pem")]);
    let err = TlsConfig::from_dir(dir.path(), true).unwrap_err();
    assert!(matches!(err, TlsError::NoKey { .. }), "{err:?}");

    dir.copy("", &[("key.pem", "key.pem")]);
    TlsConfig::from_dir(dir.path(), true).unwrap();

    // Broken PEM, and text that is no PEM at all.
    dir.write(
        "ca.pem",
        "-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----\n",
    );
    let err = TlsConfig::from_dir(dir.path(), true).unwrap_err();
    assert!(matches!(err, TlsError::Pem { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with(&format!("{} is not valid PEM", ca.display())),
        "{err}"
    );
    dir.write("ca.pem", "hello\n");
    let err = TlsConfig::from_dir(dir.path(), true).unwrap_err();
    assert!(matches!(err, TlsError::NoCertificate { .. }), "{err:?}");
    // A broken ca.pem is reported even when it is not used.
    let err = TlsConfig::from_dir(dir.path(), false).unwrap_err();
    assert!(matches!(err, TlsError::NoCertificate { .. }), "{err:?}");
}

/// A rustls server configuration for the fake daemon: its certificate from the fixtures, and
/// client certificates required and verified against the fixtures' CA (as `dockerd --tlsverify`).
fn daemon_tls() -> Arc<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(testdata().join("ca.pem")).unwrap() {
        roots.add(ca.unwrap()).unwrap();
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let chain = CertificateDer::pem_file_iter(testdata().join("server-cert.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(testdata().join("server-key.pem")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .unwrap();
    Arc::new(config)
}

fn tar_body() -> http_body_util::BodyDataStream<http_body_util::Full<bytes::Bytes>> {
    http_body_util::BodyDataStream::new(http_body_util::Full::new(bytes::Bytes::from_static(
        b"CONTEXT",
    )))
}

#[tokio::test]
async fn builds_over_tls_with_a_client_certificate() {
    let mut fake = fake::start_tls("1.41", fake::Build::Complete, daemon_tls()).await;
    let tls = TlsConfig::from_dir(&testdata(), true).unwrap();
    let endpoint = Endpoint::new(fake.host.clone(), Some(tls));
    // Through the bollard client: ping and version.
    let daemon = Daemon::connect_to(endpoint.clone()).await.unwrap();
    assert_eq!(daemon.api_version(), "1.41");
    assert_eq!(daemon.endpoint(), &endpoint);
    // Through open_io: POST /build.
    let mut response = daemon.post_build("version=2", tar_body()).await.unwrap();
    let mut body = Vec::new();
    while let Some(chunk) = response.next_chunk().await {
        body.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(body, b"one\ntwo\n");
    let request = fake.events.recv().await.unwrap();
    assert!(
        request.starts_with("POST /v1.41/build?version=2 HTTP/1.1\r\n"),
        "{request}"
    );
}

#[tokio::test]
async fn a_wrong_ca_fails_with_one_clear_line() {
    let fake = fake::start_tls("1.41", fake::Build::Complete, daemon_tls()).await;
    let dir = TempDir::new();
    dir.copy(
        "",
        &[
            ("other-ca.pem", "ca.pem"),
            ("cert.pem", "cert.pem"),
            ("key.pem", "key.pem"),
        ],
    );
    let tls = TlsConfig::from_dir(dir.path(), true).unwrap();
    let endpoint = Endpoint::new(fake.host.clone(), Some(tls));

    let err = Daemon::connect_to(endpoint.clone()).await.unwrap_err();
    assert!(matches!(err, ConnectError::Unreachable { .. }), "{err:?}");
    assert_eq!(
        one_line(&err),
        format!(
            "cannot connect to the Docker daemon at {}: TLS handshake failed: \
             invalid peer certificate: UnknownIssuer",
            fake.host
        )
    );

    // POST /build over a daemon made from a client of the caller's says the same.
    let docker = bollard::Docker::connect_with_http(
        &fake.host.to_string(),
        120,
        bollard::API_DEFAULT_VERSION,
    )
    .unwrap();
    let daemon = Daemon::from_bollard(docker, endpoint);
    let err = daemon
        .post_build("version=2", tar_body())
        .await
        .unwrap_err();
    assert!(matches!(err, BuildRequestError::Connect { .. }), "{err:?}");
    assert_eq!(
        one_line(&err),
        format!(
            "cannot connect to the Docker daemon at {}: TLS handshake failed: \
             invalid peer certificate: UnknownIssuer",
            fake.host
        )
    );
}

#[tokio::test]
async fn without_verification_any_daemon_certificate_is_accepted() {
    let fake = fake::start_tls("1.41", fake::Build::Complete, daemon_tls()).await;
    let dir = TempDir::new();
    dir.copy(
        "",
        &[
            ("other-ca.pem", "ca.pem"),
            ("cert.pem", "cert.pem"),
            ("key.pem", "key.pem"),
        ],
    );
    let tls = TlsConfig::from_dir(dir.path(), false).unwrap();
    let daemon = Daemon::connect_to(Endpoint::new(fake.host.clone(), Some(tls)))
        .await
        .unwrap();
    assert_eq!(daemon.api_version(), "1.41");
}

#[tokio::test]
async fn a_daemon_that_requires_a_client_certificate_refuses_none() {
    let fake = fake::start_tls("1.41", fake::Build::Complete, daemon_tls()).await;
    let dir = TempDir::new();
    dir.copy("", &[("ca.pem", "ca.pem")]);
    let tls = TlsConfig::from_dir(dir.path(), true).unwrap();
    let err = Daemon::connect_to(Endpoint::new(fake.host.clone(), Some(tls)))
        .await
        .unwrap_err();
    // TLS 1.3: the server's refusal arrives after the client's handshake, with the first read.
    assert!(matches!(err, ConnectError::Unreachable { .. }), "{err:?}");
    assert!(
        one_line(&err).contains("CertificateRequired"),
        "{}",
        one_line(&err)
    );
}

#[tokio::test]
async fn a_context_from_config_json_is_connected_to() {
    let fake = fake::start_tls("1.41", fake::Build::Complete, daemon_tls()).await;
    let config = TempDir::new();
    config.write("config.json", r#"{"currentContext":"fake"}"#);
    config.context(
        "fake",
        &format!(r#"{{"Endpoints":{{"docker":{{"Host":"{}"}}}}}}"#, fake.host),
    );
    config.context_tls("fake", &CLIENT_FILES);
    let endpoint = resolve(&[("DOCKER_CONFIG", config.path().to_str().unwrap())]).unwrap();
    assert_eq!(endpoint.context.as_deref(), Some("fake"));
    let daemon = Daemon::connect_to(endpoint).await.unwrap();
    assert_eq!(daemon.host(), &fake.host);
    assert_eq!(daemon.endpoint().context.as_deref(), Some("fake"));
}

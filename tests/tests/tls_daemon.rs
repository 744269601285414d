//! A Docker daemon that speaks only TLS, found the way the docker CLI finds it.
//!
//! The test makes a CA, a server certificate for `127.0.0.1` and a client certificate with
//! `openssl`, and a second, unrelated CA; starts `dockerd --tlsverify` on a free port of
//! `127.0.0.1` as a child process, with its own data root, exec root, pidfile, socket and network
//! bridge next to any other daemon on the machine; and stops it by its PID at the end, also when
//! the test fails. Then:
//! - `DOCKER_HOST=tcp://127.0.0.1:PORT DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=…` builds an image
//!   (for `POST /build` and the bollard calls of the harness alike), and reaches BuildKit's
//!   Control API;
//! - the same with the other CA in `DOCKER_CERT_PATH` fails with one clear line;
//! - a Docker context named by `currentContext` in `$DOCKER_CONFIG/config.json`, holding the
//!   endpoint and its TLS files as `docker context create` stores them, is used.
//!
//! Without `dockerd`, `openssl`, `ip` or Debian's static busybox it prints `SKIPPED: …` and
//! passes; under `CI=true` that is a failure. Root is needed (dockerd, the bridge).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use workspace_tests::error_chain;

use buildkit_events::Event;
use bytes::Bytes;
use docker_build::connection::{ConnectError, Daemon, DockerHost, Endpoint};
use docker_build::control::RequestError;
use docker_build::decode::BuildEvent;
use docker_build::{BuildOptions, build};
use docker_context::Context;
use workspace_tests::daemon::{base_image, ci, skipped, tar_context, unique_marker};
use workspace_tests::events::{log_lines, summary};

/// How long the started dockerd may take to answer, and to exit after SIGTERM.
const START_TIMEOUT: Duration = Duration::from_secs(90);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// The first of `candidates` that exists, or the name found on `PATH`.
fn find_tool(name: &str, candidates: &[&str]) -> Option<PathBuf> {
    if let Some(found) = candidates.iter().map(PathBuf::from).find(|p| p.exists()) {
        return Some(found);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.exists())
}

/// Runs a command to success; panics with its output otherwise.
fn run(command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("running {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The certificates of one test run.
struct Certificates {
    /// `ca.pem`, `cert.pem`, `key.pem` for the client (a `DOCKER_CERT_PATH`).
    client: PathBuf,
    /// The same client certificate and key, and an unrelated CA as `ca.pem`.
    wrong_ca: PathBuf,
    /// The daemon's `ca.pem`, `server-cert.pem`, `server-key.pem`.
    server: PathBuf,
}

fn make_certificates(openssl: &Path, dir: &Path) -> Certificates {
    let client = dir.join("client");
    let wrong_ca = dir.join("wrong-ca");
    let server = dir.join("server");
    for d in [&client, &wrong_ca, &server] {
        std::fs::create_dir_all(d).unwrap();
    }
    let openssl = |args: &[&str]| run(Command::new(openssl).args(args).current_dir(dir));
    let key = |path: &str| {
        openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            path,
        ])
    };
    let ca = |name: &str, subject: &str| {
        key(&format!("{name}-key.pem"));
        openssl(&[
            "req",
            "-x509",
            "-new",
            "-key",
            &format!("{name}-key.pem"),
            "-days",
            "2",
            "-subj",
            subject,
            "-out",
            &format!("{name}.pem"),
        ]);
    };
    let sign = |name: &str, subject: &str, extensions: &str| {
        key(&format!("{name}-key.pem"));
        openssl(&[
            "req",
            "-new",
            "-key",
            &format!("{name}-key.pem"),
            "-subj",
            subject,
            "-out",
            &format!("{name}.csr"),
        ]);
        std::fs::write(dir.join(format!("{name}.ext")), extensions).unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
            "-out",
            &format!("{name}-cert.pem"),
        ]);
    };
    ca("ca", "/CN=bktrace-test-ca");
    ca("other-ca", "/CN=bktrace-test-other-ca");
    sign(
        "server",
        "/CN=localhost",
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    );
    sign("client", "/CN=client", "extendedKeyUsage=clientAuth\n");

    let copy = |from: &str, to: &Path| {
        std::fs::copy(dir.join(from), to).unwrap();
    };
    copy("ca.pem", &client.join("ca.pem"));
    copy("client-cert.pem", &client.join("cert.pem"));
    copy("client-key.pem", &client.join("key.pem"));
    copy("other-ca.pem", &wrong_ca.join("ca.pem"));
    copy("client-cert.pem", &wrong_ca.join("cert.pem"));
    copy("client-key.pem", &wrong_ca.join("key.pem"));
    copy("ca.pem", &server.join("ca.pem"));
    copy("server-cert.pem", &server.join("server-cert.pem"));
    copy("server-key.pem", &server.join("server-key.pem"));
    Certificates {
        client,
        wrong_ca,
        server,
    }
}

/// The network bridge of the test's dockerd: its own, made with `ip` and deleted on drop.
///
/// Not `--bridge=none`: a dockerd started with it deletes the `docker0` interface, which the
/// machine's main daemon uses for every container it runs.
struct Bridge {
    ip: PathBuf,
    name: String,
}

impl Bridge {
    fn create(ip: &Path) -> Self {
        let pid = std::process::id();
        // At most 15 characters; a /24 per process, away from docker0's 172.17.0.0/16.
        let name = format!("bktls{}", pid % 10_000_000);
        let address = format!("172.31.{}.1/24", 100 + pid % 100);
        let bridge = Bridge {
            ip: ip.to_path_buf(),
            name,
        };
        let _ = Command::new(ip)
            .args(["link", "delete", &bridge.name])
            .stderr(Stdio::null())
            .status();
        run(Command::new(ip).args(["link", "add", "name", &bridge.name, "type", "bridge"]));
        run(Command::new(ip).args(["addr", "add", &address, "dev", &bridge.name]));
        run(Command::new(ip).args(["link", "set", &bridge.name, "up"]));
        bridge
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        // dockerd may leave a container's veth attached (BuildKit's network namespaces outlive
        // the step): delete what is still on the bridge, then the bridge.
        let attached = Command::new(&self.ip)
            .args(["-o", "link", "show", "master", &self.name])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        for line in attached.lines() {
            // `7: veth1234@if6: <…> …`
            let Some(name) = line.split(": ").nth(1) else {
                continue;
            };
            let name = name.split('@').next().unwrap_or(name);
            let _ = Command::new(&self.ip)
                .args(["link", "delete", name])
                .status();
        }
        let _ = Command::new(&self.ip)
            .args(["link", "delete", &self.name])
            .status();
    }
}

/// The dockerd child: stopped by its PID (SIGTERM, then SIGKILL), then its bridge deleted and
/// its directory removed on drop, also when the test panics.
struct TlsDockerd {
    child: Child,
    dir: PathBuf,
    port: u16,
    // Dropped after `drop` below has stopped the daemon.
    _bridge: Bridge,
}

impl TlsDockerd {
    fn start(dockerd: &Path, bridge: Bridge, dir: &Path, certs: &Certificates) -> Self {
        // A free port: bound, read, released. Nothing else on the machine races for it here.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::File::create(dir.join("dockerd.log")).unwrap();
        let path = |name: &str| dir.join(name).display().to_string();
        let server = |name: &str| certs.server.join(name).display().to_string();
        let child = Command::new(dockerd)
            .args(["--tlsverify", "--tlscacert", &server("ca.pem")])
            .args(["--tlscert", &server("server-cert.pem")])
            .args(["--tlskey", &server("server-key.pem")])
            .args(["-H", &format!("tcp://127.0.0.1:{port}")])
            .args(["-H", &format!("unix://{}", path("docker.sock"))])
            .args(["--data-root", &path("data")])
            .args(["--exec-root", &path("exec")])
            .args(["--pidfile", &path("dockerd.pid")])
            .args(["--iptables=false", "--ip6tables=false"])
            .arg(format!("--bridge={}", bridge.name))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", dockerd.display()));
        TlsDockerd {
            child,
            dir: dir.to_path_buf(),
            port,
            _bridge: bridge,
        }
    }

    /// The end of the daemon's log, for failure messages.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Waits until the daemon answers over TLS at `endpoint`.
    async fn wait_until_it_answers(&mut self, endpoint: &Endpoint) -> Daemon {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("dockerd exited with {status}:\n{}", self.log_tail());
            }
            match Daemon::connect_to(endpoint.clone()).await {
                Ok(daemon) => return daemon,
                Err(e) if Instant::now() > deadline => {
                    panic!(
                        "dockerd did not answer within {START_TIMEOUT:?} ({}):\n{}",
                        error_chain(&e),
                        self.log_tail()
                    )
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
    }
}

impl Drop for TlsDockerd {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        if matches!(self.child.try_wait(), Ok(None)) {
            // SIGTERM, so that dockerd stops its containerd and unmounts; SIGKILL if it hangs.
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            let deadline = Instant::now() + STOP_TIMEOUT;
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The endpoint `vars` give, as `Daemon::connect()` would find it with that environment.
fn resolve(vars: &[(&str, String)]) -> Endpoint {
    Endpoint::from_vars(|name| {
        vars.iter()
            .find(|(variable, _)| *variable == name)
            .map(|(_, value)| value.clone())
    })
    .unwrap_or_else(|e| panic!("resolving the endpoint: {}", error_chain(&e)))
}

/// Builds `FROM base`, a `COPY` of a file named after a fresh marker and a `RUN cat` of it;
/// returns the marker and the events.
async fn build_marker(daemon: &Daemon, base: &str, prefix: &str) -> (String, Vec<BuildEvent>) {
    let marker = unique_marker(prefix);
    let dockerfile = format!("FROM {base}\nCOPY {marker} /\nRUN cat /{marker}\n");
    let context = Context::from_tar(Bytes::from(tar_context(&[
        ("Dockerfile", dockerfile.as_bytes()),
        (&marker, marker.as_bytes()),
    ])));
    let mut stream = build(daemon, context, &BuildOptions::default())
        .await
        .unwrap_or_else(|e| panic!("the build does not start: {}", error_chain(&e)));
    let mut events = Vec::new();
    while let Some(event) = stream.next_event().await {
        events
            .push(event.unwrap_or_else(|e| panic!("the build stream broke: {}", error_chain(&e))));
    }
    (marker, events)
}

fn assert_built(marker: &str, events: &[BuildEvent]) {
    assert!(
        summary(events).succeeded(),
        "the build failed: {:?}",
        summary(events)
    );
    assert!(summary(events).image_id.is_some(), "no image id");
    assert!(
        log_lines(events).iter().any(|line| line == marker),
        "no log line {marker:?}: {:?}",
        log_lines(events)
    );
    let completed: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            BuildEvent::Vertex(Event::Completed(step)) => Some(step.name.as_str()),
            _ => None,
        })
        .collect();
    assert!(
        completed
            .iter()
            .any(|name| name.contains("COPY") && name.contains(marker)),
        "no completed COPY of {marker}: {completed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_daemon_builds_refuses_a_wrong_ca_and_is_found_through_a_context() {
    let dockerd = find_tool("dockerd", &["/usr/sbin/dockerd", "/usr/bin/dockerd"]);
    let openssl = find_tool("openssl", &[]);
    let ip = find_tool("ip", &["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip"]);
    let (Some(dockerd), Some(openssl), Some(ip)) = (dockerd, openssl, ip) else {
        let reason = "dockerd, openssl or ip is missing (Debian: apt-get install docker.io openssl \
                      iproute2)";
        assert!(!ci(), "{reason}; CI=true makes this a failure");
        skipped(reason);
        return;
    };
    // Unix socket paths are short: stay directly under the temporary directory.
    let dir = std::env::temp_dir().join(format!("bktls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let certs = make_certificates(&openssl, &dir);
    let bridge = Bridge::create(&ip);
    let mut daemon_process = TlsDockerd::start(&dockerd, bridge, &dir, &certs);
    let port = daemon_process.port;
    let host = format!("tcp://127.0.0.1:{port}");

    // DOCKER_TLS_VERIFY=1 with the client certificates.
    let env = |cert_path: &Path| {
        vec![
            ("DOCKER_HOST", host.clone()),
            ("DOCKER_TLS_VERIFY", "1".to_string()),
            ("DOCKER_CERT_PATH", cert_path.display().to_string()),
        ]
    };
    let endpoint = resolve(&env(&certs.client));
    let tls = endpoint.tls.as_ref().expect("TLS is on");
    assert!(tls.verifies_daemon() && tls.has_client_certificate());
    let daemon = daemon_process.wait_until_it_answers(&endpoint).await;
    assert_eq!(
        daemon.host(),
        &DockerHost::Tcp {
            host: "127.0.0.1".into(),
            port
        }
    );
    let base = base_image(&daemon).await;
    let (marker, events) = build_marker(&daemon, &base, "tls-verify").await;
    assert_built(&marker, &events);

    // The Control API goes over the same TLS connection: the `/grpc` upgrade, then HTTP/2.
    // BuildKit answers `Info` (0.11 and later), or says it does not know it (Docker 20.10):
    // either is an answer over TLS.
    let control = daemon
        .control()
        .await
        .unwrap_or_else(|e| panic!("the Control API over TLS: {}", error_chain(&e)));
    match control.version().await {
        Ok(_) | Err(RequestError::NoHistoryApi { method: "Info" }) => {}
        Err(e) => panic!("Info over TLS: {}", error_chain(&e)),
    }

    // The other CA: one clear line.
    let endpoint = resolve(&env(&certs.wrong_ca));
    let error = Daemon::connect_to(endpoint).await.unwrap_err();
    assert!(
        matches!(error, ConnectError::Unreachable { .. }),
        "{error:?}"
    );
    assert_eq!(
        error_chain(&error),
        format!(
            "cannot connect to the Docker daemon at {host}: TLS handshake failed: \
             invalid peer certificate: UnknownIssuer"
        )
    );

    // A context in config.json, as `docker context create tls-test --docker host=…,ca=…,cert=…,
    // key=…` followed by `docker context use tls-test` store it.
    let config = dir.join("config");
    let id = context_id(&openssl, &dir, "tls-test");
    let meta = config.join("contexts/meta").join(&id);
    let tls_dir = config.join("contexts/tls").join(&id).join("docker");
    std::fs::create_dir_all(&meta).unwrap();
    std::fs::create_dir_all(&tls_dir).unwrap();
    std::fs::write(
        meta.join("meta.json"),
        format!(
            r#"{{"Name":"tls-test","Metadata":{{}},"Endpoints":{{"docker":{{"Host":"{host}","SkipTLSVerify":false}}}}}}"#
        ),
    )
    .unwrap();
    for file in ["ca.pem", "cert.pem", "key.pem"] {
        std::fs::copy(certs.client.join(file), tls_dir.join(file)).unwrap();
    }
    std::fs::write(
        config.join("config.json"),
        r#"{"auths":{},"currentContext":"tls-test"}"#,
    )
    .unwrap();
    let endpoint = resolve(&[("DOCKER_CONFIG", config.display().to_string())]);
    assert_eq!(endpoint.context.as_deref(), Some("tls-test"));
    let daemon = Daemon::connect_to(endpoint)
        .await
        .unwrap_or_else(|e| panic!("connecting through the context: {}", error_chain(&e)));
    let (marker, events) = build_marker(&daemon, &base, "tls-context").await;
    assert_built(&marker, &events);

    drop(daemon_process);
    assert!(!dir.exists(), "{} was not removed", dir.display());
}

/// The directory name of a context: the hex SHA-256 of its name (computed with openssl, so the
/// test does not trust the code under test for it).
fn context_id(openssl: &Path, dir: &Path, name: &str) -> String {
    let file = dir.join("context-name");
    std::fs::write(&file, name).unwrap();
    let output = Command::new(openssl)
        .args(["dgst", "-sha256", "-r"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

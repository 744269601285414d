//! A private registry for the live tests: Debian's `docker-registry` (distribution 2.8) on
//! `127.0.0.1:<free port>` with an htpasswd file made by `htpasswd -Bbn`, storage in a
//! temporary directory, started by the test and killed when the [`Registry`] is dropped.
//! Docker treats loopback registries as insecure (plain HTTP) by default, so no TLS is needed.
//!
//! ```no_run
//! # async fn test(daemon: docker_build::connection::Daemon) {
//! use workspace_tests::{daemon, registry::Registry};
//!
//! let Some(registry) = Registry::start("user", "pass") else { return };
//! let base = daemon::base_image(&daemon).await;
//! let pushed = registry.push(&daemon, &base, "base").await; // 127.0.0.1:PORT/base:latest
//! # let _ = pushed;
//! # }
//! ```

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use bollard::auth::DockerCredentials;
use bollard::query_parameters::{PushImageOptionsBuilder, TagImageOptionsBuilder};
use docker_build::connection::Daemon;
use futures_util::StreamExt as _;

/// The registry's program (Debian's `docker-registry` package).
const REGISTRY: &str = "docker-registry";
/// How long a started registry may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running registry that wants a login; killed, and its storage removed, on drop.
#[derive(Debug)]
pub struct Registry {
    /// `127.0.0.1:PORT`.
    pub address: String,
    /// The user the htpasswd file knows.
    pub user: String,
    /// Its password.
    pub password: String,
    child: Child,
    dir: PathBuf,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Registry {
    /// Starts a registry that knows only `user` with `password`; `None` after a `SKIPPED`
    /// line when `docker-registry` or `htpasswd` is missing (a panic under `CI=true`).
    pub fn start(user: &str, password: &str) -> Option<Registry> {
        for program in [REGISTRY, "htpasswd"] {
            if Command::new(program)
                .arg("--help")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_err()
            {
                let reason = format!(
                    "{program} is not installed (Debian: docker-registry, apache2-utils; .ci/run installs them)"
                );
                if crate::ci() {
                    panic!("{reason}; CI=true makes this a failure");
                }
                crate::daemon::skipped(&reason);
                return None;
            }
        }
        let dir = std::env::temp_dir().join(crate::daemon::unique_marker("bktrace-registry"));
        std::fs::create_dir_all(dir.join("storage")).expect("registry directory");
        let htpasswd = Command::new("htpasswd")
            .args(["-Bbn", user, password])
            .output()
            .expect("run htpasswd");
        assert!(htpasswd.status.success(), "htpasswd -Bbn failed");
        std::fs::write(dir.join("htpasswd"), &htpasswd.stdout).expect("write htpasswd");

        // A free port may be taken between asking and binding: a few tries.
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|listener| listener.local_addr())
                .expect("a free port")
                .port();
            let address = format!("127.0.0.1:{port}");
            let config = dir.join("config.yml");
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
                     http:\n  addr: {address}\n  secret: bktrace-test\n\
                     auth:\n  htpasswd:\n    realm: bktrace-test\n    path: {}\n",
                    dir.join("storage").display(),
                    dir.join("htpasswd").display(),
                ),
            )
            .expect("write the registry configuration");
            let mut child = Command::new(REGISTRY)
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start docker-registry");
            // Its log goes to stderr: wait for "listening on", keep draining it afterwards.
            let stderr = child.stderr.take().expect("piped stderr");
            let (listening, wait) = mpsc::channel();
            std::thread::spawn(move || {
                let mut lines = Vec::new();
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if line.contains("listening on") {
                        let _ = listening.send(Ok(()));
                    } else if lines.len() < 20 {
                        lines.push(line);
                    }
                }
                let _ = listening.send(Err(lines.join("\n")));
            });
            match wait.recv_timeout(START_TIMEOUT) {
                Ok(Ok(())) => {
                    return Some(Registry {
                        address,
                        user: user.to_owned(),
                        password: password.to_owned(),
                        child,
                        dir,
                    });
                }
                Ok(Err(log)) => last_error = log,
                Err(_) => last_error = format!("not listening after {START_TIMEOUT:?}"),
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&dir);
        panic!("docker-registry did not start: {last_error}");
    }

    /// Tags `image` as `ADDRESS/repository:latest`, pushes it with the registry's login (the
    /// Engine API's `X-Registry-Auth`) and removes the tag again, so the daemon has to pull it
    /// to use it. Returns the pushed name.
    pub async fn push(&self, daemon: &Daemon, image: &str, repository: &str) -> String {
        let docker = daemon.bollard();
        let repo = format!("{}/{repository}", self.address);
        let name = format!("{repo}:latest");
        docker
            .tag_image(
                image,
                Some(
                    TagImageOptionsBuilder::default()
                        .repo(&repo)
                        .tag("latest")
                        .build(),
                ),
            )
            .await
            .unwrap_or_else(|e| panic!("tagging {image} as {name}: {e}"));
        let credentials = DockerCredentials {
            username: Some(self.user.clone()),
            password: Some(self.password.clone()),
            serveraddress: Some(self.address.clone()),
            ..Default::default()
        };
        let mut progress = docker.push_image(
            &repo,
            Some(PushImageOptionsBuilder::default().tag("latest").build()),
            Some(credentials),
        );
        while let Some(item) = progress.next().await {
            match item {
                Ok(info) => {
                    if let Some(error) = info.error_detail.and_then(|detail| detail.message) {
                        panic!("pushing {name}: {error}");
                    }
                }
                Err(e) => panic!("pushing {name}: {e}"),
            }
        }
        docker
            .remove_image(
                &name,
                None::<bollard::query_parameters::RemoveImageOptions>,
                None,
            )
            .await
            .unwrap_or_else(|e| panic!("removing the local tag {name}: {e}"));
        name
    }
}

//! `bktrace build --pull` of a base image in a private registry, against both CI daemons
//! (Docker 20.10 and 28): the image is pushed to a `docker-registry` with an htpasswd login,
//! started by the test on 127.0.0.1, and its tag removed locally; the build's session answers
//! the daemon's `Auth/Credentials` from a temporary `DOCKER_CONFIG`. With credentials (plain
//! `auths`, and a `credsStore` helper script written by the test) the build succeeds; without
//! them, or with a wrong password, it fails with the registry's 401 on the step that loads the
//! image's metadata (`#3 ERROR: … 401 Unauthorized` in the plain progress, the 401 in the
//! error on stderr).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use docker_build::connection::Daemon;
use workspace_tests::daemon::{base_image, daemon, daemon28, unique_marker};
use workspace_tests::registry::Registry;

const BKTRACE: &str = env!("CARGO_BIN_EXE_bktrace");
const USER: &str = "bktrace";
const PASSWORD: &str = "s3cret-registry-pw";

/// A directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(prefix: &str) -> Self {
        let path = std::env::temp_dir().join(unique_marker(prefix));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, contents).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One build of `FROM {image}` with `--pull` on `daemon`, with `docker_config` as
/// `DOCKER_CONFIG` and `path` prepended to `PATH` (for a credential helper). The image built
/// is tagged `tag` (removed by the caller).
fn build(
    daemon: &Daemon,
    image: &str,
    docker_config: &Path,
    path: Option<&Path>,
    tag: &str,
) -> Output {
    let context = TempDir::new("bktrace-auth-context");
    context.write(
        "Dockerfile",
        &format!("FROM {image}\nRUN echo pulled-with-credentials\n"),
    );
    let mut command = Command::new(BKTRACE);
    command
        .args(["build", "--pull", "--progress", "plain", "-t", tag])
        .arg(&context.0)
        .env("DOCKER_HOST", daemon.host().to_string())
        .env("DOCKER_CONFIG", docker_config)
        .env_remove("DOCKER_CONTEXT")
        .env_remove("DOCKER_AUTH_CONFIG");
    if let Some(dir) = path {
        let system = std::env::var_os("PATH").unwrap_or_default();
        let mut paths = vec![dir.to_path_buf()];
        paths.extend(std::env::split_paths(&system));
        command.env("PATH", std::env::join_paths(paths).unwrap());
    }
    command.output().expect("run bktrace")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn assert_built(output: &Output, what: &str) {
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(
        output.status.success(),
        "{what}: the build failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        !stdout.contains(PASSWORD) && !stderr.contains(PASSWORD),
        "{what}"
    );
}

/// The build failed on the step that loads the image's metadata, with the registry's 401: the
/// plain progress shows `#N [internal] load metadata for IMAGE` and `#N ERROR: … 401
/// Unauthorized`, and the error on stderr carries the 401.
fn assert_unauthorized(output: &Output, image: &str, what: &str) {
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    let context = format!("{what}\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(output.status.code(), Some(1), "{context}");
    let step = stdout
        .lines()
        .find(|line| line.ends_with(&format!("] load metadata for {image}")))
        .and_then(|line| line.split_whitespace().next())
        .unwrap_or_else(|| panic!("no metadata step for {image}: {context}"));
    let error = stdout
        .lines()
        .find(|line| line.starts_with(&format!("{step} ERROR: ")))
        .unwrap_or_else(|| panic!("step {step} has no error: {context}"));
    assert!(error.contains("401 Unauthorized"), "{context}");
    assert!(
        stderr.starts_with("error: build failed: ") || stderr.contains("\nerror: build failed: "),
        "{context}"
    );
    assert!(stderr.contains("401 Unauthorized"), "{context}");
    assert!(
        !stdout.contains(PASSWORD) && !stderr.contains(PASSWORD),
        "{what}"
    );
}

/// Removes the image tag the builds made, also when an assertion failed.
struct RemoveTag {
    daemon: Daemon,
    tag: String,
}

impl Drop for RemoveTag {
    fn drop(&mut self) {
        let (daemon, tag) = (self.daemon.clone(), self.tag.clone());
        // Drop runs inside the test's runtime: remove on a thread with a runtime of its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let _ = daemon
                    .bollard()
                    .remove_image(
                        &tag,
                        None::<docker_build::bollard::query_parameters::RemoveImageOptions>,
                        None,
                    )
                    .await;
            });
        })
        .join();
    }
}

async fn private_registry_builds(daemon: Daemon) {
    let Some(registry) = Registry::start(USER, PASSWORD) else {
        return;
    };
    let base = base_image(&daemon).await;
    let image = registry
        .push(&daemon, &base, &unique_marker("private-base"))
        .await;
    let tag = format!("bktrace-auth-test:{}", unique_marker("t"));
    let _remove = RemoveTag {
        daemon: daemon.clone(),
        tag: tag.clone(),
    };

    // Plain `auths` (the `auth` encoding is covered by docker-build's unit tests).
    let plain = TempDir::new("bktrace-auth-plain");
    plain.write(
        "config.json",
        &format!(
            r#"{{"auths": {{"{}": {{"username": "{USER}", "password": "{PASSWORD}"}}}}}}"#,
            registry.address
        ),
    );
    assert_built(&build(&daemon, &image, &plain.0, None, &tag), "auths");

    // A credsStore helper, which answers only for the registry.
    let helper = TempDir::new("bktrace-auth-helper");
    let script = helper.write(
        "bin/docker-credential-bktracetest",
        &format!(
            "#!/bin/sh\nIFS= read -r key || true\n\
             if [ \"$1\" = get ] && [ \"$key\" = '{}' ]; then\n\
             printf '{{\"ServerURL\":\"%s\",\"Username\":\"{USER}\",\"Secret\":\"{PASSWORD}\"}}' \"$key\"\n\
             else echo 'credentials not found in native keychain'; exit 1; fi\n",
            registry.address
        ),
    );
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    helper.write("config.json", r#"{"credsStore": "bktracetest"}"#);
    assert_built(
        &build(
            &daemon,
            &image,
            &helper.0,
            Some(&helper.0.join("bin")),
            &tag,
        ),
        "credsStore",
    );

    // No credentials: anonymous, which the registry refuses.
    let empty = TempDir::new("bktrace-auth-empty");
    assert_unauthorized(
        &build(&daemon, &image, &empty.0, None, &tag),
        &image,
        "anonymous",
    );

    // A wrong password.
    let wrong = TempDir::new("bktrace-auth-wrong");
    wrong.write(
        "config.json",
        &format!(
            r#"{{"auths": {{"{}": {{"username": "{USER}", "password": "not-the-password"}}}}}}"#,
            registry.address
        ),
    );
    assert_unauthorized(
        &build(&daemon, &image, &wrong.0, None, &tag),
        &image,
        "wrong password",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_private_base_image_is_pulled_with_the_cli_credentials_on_docker_20() {
    let Some(daemon) = daemon().await else { return };
    private_registry_builds(daemon).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_private_base_image_is_pulled_with_the_cli_credentials_on_docker_28() {
    let Some(daemon) = daemon28().await else {
        return;
    };
    private_registry_builds(daemon).await;
}

//! An `ssh-agent` of a test's own, for `RUN --mount=type=ssh` (`.ci/run` installs
//! openssh-client).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::ci;
use crate::daemon::{skipped, unique_marker};

/// How long the agent may take to make its socket.
const SOCKET_WAIT: Duration = Duration::from_secs(60);

/// `ssh-agent -D` on a socket in a temporary directory of its own; killed, and the directory
/// removed, on drop.
#[derive(Debug)]
pub struct Agent {
    child: Child,
    /// The agent's socket (what `SSH_AUTH_SOCK` names).
    pub socket: PathBuf,
    dir: PathBuf,
}

impl Agent {
    /// A started agent whose socket exists; `None` (after a `SKIPPED` line; a panic under
    /// `CI=true`) without `ssh-agent`.
    pub fn start() -> Option<Agent> {
        let dir = std::env::temp_dir().join(unique_marker("bktrace-ssh-agent"));
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("agent.sock");
        let child = match Command::new("ssh-agent")
            .args(["-D", "-a"])
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
        {
            Ok(child) => child,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                let reason = format!("cannot run ssh-agent ({e}); .ci/run installs openssh-client");
                assert!(!ci(), "{reason}; CI=true makes this a failure");
                skipped(&reason);
                return None;
            }
        };
        let agent = Agent { child, socket, dir };
        // The agent creates its socket before it serves; wait for that (bounded).
        let start = Instant::now();
        while !agent.socket.exists() {
            assert!(
                start.elapsed() < SOCKET_WAIT,
                "ssh-agent made no socket within {SOCKET_WAIT:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(agent)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `ssh-keygen -t ed25519 -N PASSPHRASE -C COMMENT -f PATH`: a new private key file at `path`
/// (and `path.pub`); `None` (after a `SKIPPED` line; a panic under `CI=true`) without
/// `ssh-keygen`.
pub fn keygen(path: &std::path::Path, passphrase: &str, comment: &str) -> Option<()> {
    let status = match Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", passphrase, "-C", comment, "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .status()
    {
        Ok(status) => status,
        Err(e) => {
            let reason = format!("cannot run ssh-keygen ({e}); .ci/run installs openssh-client");
            assert!(!ci(), "{reason}; CI=true makes this a failure");
            skipped(&reason);
            return None;
        }
    };
    assert!(status.success(), "ssh-keygen failed: {status}");
    Some(())
}

/// Copies the host's `ssh-add` and `ssh-keygen` into `dir` with every shared library they load
/// (`ldd`) and the dynamic loader, so that a step of the busybox base image (which has no libc)
/// can run them as `DIR/ld-linux-x86-64.so.2 --library-path DIR DIR/ssh-add …` from a bind
/// mount: a real OpenSSH client for the agent a build forwards. Returns the loader's file name;
/// `None` (after a `SKIPPED` line; a panic under `CI=true`) without them.
pub fn openssh_client_tools(dir: &std::path::Path) -> Option<String> {
    std::fs::create_dir_all(dir).unwrap();
    let mut loader = None;
    for tool in ["ssh-add", "ssh-keygen"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .ok()
            .filter(|o| o.status.success());
        let Some(found) = found else {
            let reason = format!("no {tool}; .ci/run installs openssh-client");
            assert!(!ci(), "{reason}; CI=true makes this a failure");
            skipped(&reason);
            return None;
        };
        let path = PathBuf::from(String::from_utf8(found.stdout).unwrap().trim());
        std::fs::copy(&path, dir.join(tool)).unwrap();
        let ldd = Command::new("ldd").arg(&path).output().unwrap();
        assert!(ldd.status.success(), "ldd {}", path.display());
        // `libc.so.6 => /lib/…/libc.so.6 (0x…)` and `/lib64/ld-linux-x86-64.so.2 (0x…)`.
        for library in String::from_utf8(ldd.stdout)
            .unwrap()
            .split_whitespace()
            .filter(|word| word.starts_with('/'))
        {
            let library = std::path::Path::new(library);
            let name = library.file_name().unwrap().to_str().unwrap().to_string();
            if name.starts_with("ld-linux") {
                loader = Some(name.clone());
            }
            std::fs::copy(library, dir.join(&name)).unwrap();
        }
    }
    Some(loader.expect("ldd names the dynamic loader"))
}

//! Tests of the invariants ARCHITECTURE.md states about the dependency graph and the tree.

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::process::Command;

    use crate::proto::workspace_root;

    /// Names of the crates in `package`'s normal (non-dev, non-build) dependency tree.
    /// `features` names features to enable; an entry starting with `--` is passed as a flag
    /// (`--no-default-features`).
    fn normal_deps(package: &str, features: &[&str]) -> Vec<String> {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.current_dir(workspace_root())
            .args([
                "tree",
                "--offline",
                "-e",
                "normal",
                "--prefix",
                "none",
                "--format",
                "{p}",
                "-p",
            ])
            .arg(package);
        let (flags, features): (Vec<&str>, Vec<&str>) =
            features.iter().partition(|f| f.starts_with("--"));
        cmd.args(flags);
        if !features.is_empty() {
            cmd.arg("--features").arg(features.join(","));
        }
        let out = cmd.output().expect("run cargo tree");
        assert!(
            out.status.success(),
            "cargo tree failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().next().map(str::to_string))
            .collect()
    }

    #[test]
    fn buildkit_events_has_no_async_runtime_and_no_http_stack() {
        let deps = normal_deps("buildkit-events", &[]);
        assert!(deps.contains(&"prost".to_string()), "{deps:?}");
        for forbidden in ["tokio", "hyper", "http", "bollard", "tonic", "futures-core"] {
            assert!(
                !deps.iter().any(|d| d == forbidden),
                "buildkit-events depends on {forbidden}: {deps:?}"
            );
        }
    }

    /// Asserts that none of `forbidden` is in `package`'s normal dependency tree.
    fn assert_free_of(package: &str, features: &[&str], forbidden: &[&str]) {
        let deps = normal_deps(package, features);
        assert!(deps.iter().any(|d| d == package), "{deps:?}");
        for name in forbidden {
            assert!(
                !deps.iter().any(|d| d == name),
                "{package} depends on {name}: {deps:?}"
            );
        }
    }

    /// What a crate without network I/O must not pull in.
    const ASYNC_AND_HTTP: &[&str] = &[
        "tokio",
        "hyper",
        "hyper-util",
        "http",
        "bollard",
        "tonic",
        "futures-core",
    ];

    #[test]
    fn dockerfile_analysis_has_no_io_stack() {
        let mut forbidden = ASYNC_AND_HTTP.to_vec();
        forbidden.push("tar");
        assert_free_of("dockerfile-analysis", &[], &forbidden);
    }

    #[test]
    fn docker_context_has_no_async_runtime_and_no_http_stack() {
        assert_free_of("docker-context", &[], ASYNC_AND_HTTP);
    }

    /// The renderers are pure: no terminal library and no command-line parser (the caller
    /// detects the terminal), and no clock read in their source.
    #[test]
    fn buildkit_progressui_is_pure() {
        let mut forbidden = ASYNC_AND_HTTP.to_vec();
        forbidden.extend(["clap", "terminal_size", "crossterm", "indicatif"]);
        assert_free_of("buildkit-progressui", &[], &forbidden);
    }

    /// The `.rs` files under `dir` (relative to the workspace root), recursively.
    fn rust_files(dir: &str) -> Vec<std::path::PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
            for entry in std::fs::read_dir(dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    if entry.file_name() != "target" {
                        walk(&path, out);
                    }
                } else if path.extension().is_some_and(|e| e == "rs") {
                    out.push(path);
                }
            }
        }
        let mut out = Vec::new();
        walk(&workspace_root().join(dir), &mut out);
        out
    }

    /// The sans-IO code takes every time from its input or its caller: it never reads a clock.
    #[test]
    fn sans_io_code_reads_no_clock() {
        let mut files = rust_files("crates/buildkit-progressui/src");
        files.extend(rust_files("crates/buildkit-events/src"));
        files.extend(rust_files("crates/dockerfile-analysis/src"));
        for module in ["ndjson", "classic", "decode", "options", "options/session"] {
            files.push(workspace_root().join(format!("crates/docker-build/src/{module}.rs")));
        }
        for path in files {
            let text = std::fs::read_to_string(&path).unwrap();
            for clock in ["Instant", "SystemTime", "UNIX_EPOCH"] {
                assert!(
                    !text.contains(clock),
                    "{} mentions {clock}: sans-IO code takes the time from its input",
                    path.display()
                );
            }
        }
    }

    /// Every protobuf type comes from `proto/` through `cargo xtask proto`.
    #[test]
    fn no_hand_written_protobuf_messages() {
        let mut files = Vec::new();
        for dir in ["crates", "tests", "benches", "xtask", "fuzz"] {
            files.extend(rust_files(dir));
        }
        let generated = workspace_root().join("crates/buildkit-proto/src/generated");
        // Spelled in two pieces so that this file does not match itself.
        let derive = ["prost::", "Message)"].concat();
        for path in files.iter().filter(|p| !p.starts_with(&generated)) {
            let text = std::fs::read_to_string(path).unwrap();
            assert!(
                !text.contains(&derive),
                "{} derives a protobuf message by hand; add it to proto/ instead",
                path.display()
            );
        }
    }

    /// The features enabled on `dependency` in `package`'s normal dependency tree when
    /// `package` is built with `features` (flags as in [`normal_deps`]); `None` when it is not
    /// in the tree.
    fn features_of(package: &str, features: &[&str], dependency: &str) -> Option<Vec<String>> {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.current_dir(workspace_root())
            .args([
                "tree",
                "--offline",
                "-e",
                "normal",
                "--prefix",
                "none",
                "--format",
                "{p}|{f}",
                "-p",
            ])
            .arg(package);
        let (flags, features): (Vec<&str>, Vec<&str>) =
            features.iter().partition(|f| f.starts_with("--"));
        cmd.args(flags);
        if !features.is_empty() {
            cmd.arg("--features").arg(features.join(","));
        }
        let out = cmd.output().expect("run cargo tree");
        assert!(
            out.status.success(),
            "cargo tree failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|line| {
                let (name, enabled) = line.split_once('|')?;
                (name.split_whitespace().next() == Some(dependency)).then(|| {
                    enabled
                        .split(',')
                        .filter(|f| !f.is_empty())
                        .map(str::to_string)
                        .collect()
                })
            })
    }

    #[test]
    fn buildkit_proto_needs_tonic_only_for_its_client_and_session_servers() {
        let plain = normal_deps("buildkit-proto", &[]);
        assert!(!plain.iter().any(|d| d.starts_with("tonic")), "{plain:?}");
        for feature in ["client", "session"] {
            let deps = normal_deps("buildkit-proto", &[feature]);
            assert!(deps.iter().any(|d| d == "tonic"), "{feature}: {deps:?}");
        }
    }

    #[test]
    fn docker_build_core_has_no_async_runtime_no_http_stack_and_no_context() {
        let core = normal_deps("docker-build", &["--no-default-features"]);
        assert!(core.iter().any(|d| d == "buildkit-events"), "{core:?}");
        let forbidden = [
            "tokio",
            "hyper",
            "hyper-util",
            "http",
            "http-body-util",
            "bollard",
            "tonic",
            "futures-core",
            "docker-context",
            "tar",
            // The TLS stack is the daemon side's too.
            "rustls",
            "tokio-rustls",
            "ring",
        ];
        for name in forbidden {
            assert!(
                !core.iter().any(|d| d == name),
                "docker-build without default features depends on {name}: {core:?}"
            );
        }
        // The default features are the daemon side, so the check above is not vacuous.
        let daemon = normal_deps("docker-build", &[]);
        for name in ["tokio", "hyper", "bollard", "docker-context", "rustls"] {
            assert!(daemon.iter().any(|d| d == name), "{name}: {daemon:?}");
        }
    }

    /// gRPC (tonic, h2) is paid for only by those who ask for the Control API.
    #[test]
    fn docker_build_compiles_grpc_only_with_its_control_feature() {
        assert_free_of("docker-build", &[], &["tonic", "h2"]);
        let control = normal_deps("docker-build", &["control"]);
        for name in ["tonic", "h2"] {
            assert!(control.iter().any(|d| d == name), "{name}: {control:?}");
        }
    }

    /// The gRPC servers of the BuildKit session (buildkit-proto's `session` feature) are paid
    /// for only by those who serve a session. (hyper's server side is not checked: bollard's
    /// hyperlocal turns it on anyway.)
    #[test]
    fn docker_build_compiles_the_grpc_server_only_with_its_session_feature() {
        for without in [&[][..], &["control"][..]] {
            let proto = features_of("docker-build", without, "buildkit-proto").unwrap_or_default();
            assert!(
                !proto.iter().any(|f| f == "session"),
                "{without:?}: {proto:?}"
            );
        }
        let proto = features_of("docker-build", &["session"], "buildkit-proto");
        assert!(
            proto
                .as_ref()
                .is_some_and(|f| f.iter().any(|f| f == "session")),
            "{proto:?}"
        );
        let deps = normal_deps("docker-build", &["session"]);
        for name in ["tonic", "h2"] {
            assert!(deps.iter().any(|d| d == name), "{name}: {deps:?}");
        }
    }

    /// The in-process SSH agent's crypto (ssh-key, ed25519-dalek) is paid for only by those who
    /// serve a session, and only Ed25519: no RSA or ECDSA stack.
    #[test]
    fn docker_build_signs_ssh_keys_only_with_its_session_feature() {
        for without in [&["--no-default-features"][..], &[][..], &["control"][..]] {
            let deps = normal_deps("docker-build", without);
            for name in ["ssh-key", "ed25519-dalek"] {
                assert!(!deps.iter().any(|d| d == name), "{without:?}: {name}");
            }
        }
        let deps = normal_deps("docker-build", &["session"]);
        assert!(deps.iter().any(|d| d == "ssh-key"), "{deps:?}");
        for name in ["rsa", "p256", "p384", "p521"] {
            assert!(!deps.iter().any(|d| d == name), "{name}: {deps:?}");
        }
    }

    #[test]
    fn buildkit_events_does_not_decode_base64() {
        // Undoing the daemon's base64 is docker-build's job; the tracker takes protobuf.
        assert_free_of("buildkit-events", &[], &["base64"]);
    }

    /// No build scripts: no manifest's `build = …`, and no file named `build.rs` anywhere, not
    /// even a module (it would read as one; bktrace's is `cmd/build_command.rs`).
    #[test]
    fn no_build_scripts_anywhere() {
        fn walk(dir: &Path, found: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap().flatten() {
                let path = entry.path();
                let name = entry.file_name();
                if path.is_dir() {
                    if !matches!(name.to_str(), Some("target" | ".git" | "fuzz" | "data")) {
                        walk(&path, found);
                    }
                } else if name == "build.rs"
                    || (name == "Cargo.toml" && is_build_script_manifest(&path))
                {
                    found.push(path.display().to_string());
                }
            }
        }
        fn is_build_script_manifest(path: &Path) -> bool {
            std::fs::read_to_string(path)
                .is_ok_and(|t| t.lines().any(|l| l.trim_start().starts_with("build =")))
        }
        let mut found = Vec::new();
        walk(&workspace_root(), &mut found);
        assert!(found.is_empty(), "build scripts: {found:?}");
    }
}

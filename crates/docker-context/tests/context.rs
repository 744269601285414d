//! Build contexts from real directories, streamed and read back with the `tar` crate.
//!
//! Expectations follow Docker's documented `.dockerignore` rules and the Docker CLI's context
//! archive (walk order, kept links and modes); each test says which rule it checks.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use docker_context::{CHUNK_SIZE, Context, ContextError, EntryKind};

/// A unique directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let unique = format!(
            "docker-build-context-{}-{}-{name}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(unique);
        fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    /// Writes a file, creating its parent directories.
    fn file(&self, relative: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.0.join(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, contents).unwrap();
        path
    }

    fn dir(&self, relative: &str) -> PathBuf {
        let path = self.0.join(relative);
        fs::create_dir_all(&path).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Every chunk of the archive; panics on an error item.
fn chunks(context: Context) -> Vec<Bytes> {
    context
        .into_chunks()
        .map(|chunk| chunk.expect("archive chunk"))
        .collect()
}

fn tar_bytes(context: Context) -> Vec<u8> {
    chunks(context).concat()
}

/// One entry read back from the archive.
#[derive(Debug)]
struct TarEntry {
    path: String,
    kind: tar::EntryType,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
    link: Option<String>,
    data: Vec<u8>,
}

fn read_tar(bytes: &[u8]) -> Vec<TarEntry> {
    let mut archive = tar::Archive::new(bytes);
    let mut out = Vec::new();
    for entry in archive.entries().expect("tar entries") {
        let mut entry = entry.expect("tar entry");
        let path = String::from_utf8(entry.path_bytes().into_owned()).unwrap();
        let link = entry
            .link_name_bytes()
            .map(|l| String::from_utf8(l.into_owned()).unwrap());
        let header = entry.header();
        let (kind, mode, uid, gid, mtime) = (
            header.entry_type(),
            header.mode().unwrap(),
            header.uid().unwrap(),
            header.gid().unwrap(),
            header.mtime().unwrap(),
        );
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        out.push(TarEntry {
            path,
            kind,
            mode,
            uid,
            gid,
            mtime,
            link,
            data,
        });
    }
    out
}

fn names(entries: &[TarEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.path.as_str()).collect()
}

fn find<'a>(entries: &'a [TarEntry], path: &str) -> &'a TarEntry {
    entries
        .iter()
        .find(|e| e.path == path)
        .unwrap_or_else(|| panic!("{path} not in {:?}", names(entries)))
}

fn planned(context: &Context) -> Vec<&str> {
    context.entries().iter().map(|e| e.path()).collect()
}

#[test]
fn ignore_rules_entry_order_and_contents() {
    let dir = TempDir::new("order");
    dir.file("Dockerfile", "FROM scratch\n");
    dir.file(
        ".dockerignore",
        // Docker's documented README example, a directory name, `**` and a root-anchored glob.
        "# comment\n*.md\n!README*.md\nREADME-secret.md\nnode_modules\n**/*.log\n/tmp_*\n",
    );
    dir.file("README.md", "readme");
    dir.file("README-secret.md", "secret");
    dir.file("CHANGELOG.md", "changes");
    dir.file("a-b.txt", "dash");
    dir.file("a/b.txt", "ab");
    dir.file("a/c.log", "log");
    dir.file("a/deep/x.log", "deep log");
    dir.file("node_modules/pkg/index.js", "js");
    dir.file("src/main.rs", "fn main() {}");
    dir.file("src/tmp_x", "not at the root");
    dir.file("tmp_y", "at the root");
    dir.dir("empty");

    let context = Context::from_dir(dir.path()).unwrap();
    assert_eq!(context.dockerfile_path_in_context(), "Dockerfile");
    assert_eq!(context.ignore_file_in_context(), Some(".dockerignore"));
    // Walk order: depth first, names sorted by bytes within each directory, like Go's
    // filepath.Walk in the Docker CLI (so `a/…` comes before `a-b.txt`).
    // - `*.md` then `!README*.md` then `README-secret.md`: the last matching line wins, so only
    //   README.md of the Markdown files stays.
    // - `node_modules` excludes the directory and everything under it.
    // - `**/*.log` excludes .log files at any depth, but not the directories holding them.
    // - `/tmp_*` is anchored at the root: `src/tmp_x` stays.
    let expected = [
        ".dockerignore",
        "Dockerfile",
        "README.md",
        "a",
        "a/b.txt",
        "a/deep",
        "a-b.txt",
        "empty",
        "src",
        "src/main.rs",
        "src/tmp_x",
    ];
    assert_eq!(planned(&context), expected);

    let entries = read_tar(&tar_bytes(context));
    let with_slashes: Vec<String> = expected
        .iter()
        .map(|p| match *p {
            "a" | "a/deep" | "empty" | "src" => format!("{p}/"),
            other => other.to_owned(),
        })
        .collect();
    assert_eq!(names(&entries), with_slashes);
    assert_eq!(find(&entries, "README.md").data, b"readme");
    assert_eq!(find(&entries, "a/b.txt").data, b"ab");
    assert_eq!(find(&entries, "src/tmp_x").data, b"not at the root");
    assert_eq!(find(&entries, "Dockerfile").data, b"FROM scratch\n");
    // An empty directory is sent as a directory entry.
    assert_eq!(find(&entries, "empty/").kind, tar::EntryType::Directory);
    assert_eq!(find(&entries, "a/deep/").kind, tar::EntryType::Directory);
    for entry in &entries {
        assert_eq!((entry.uid, entry.gid), (0, 0), "{}", entry.path);
        assert!(!entry.path.starts_with('/'), "{}", entry.path);
    }
}

#[test]
fn symlinks_are_kept_as_links() {
    let dir = TempDir::new("symlinks");
    dir.file("Dockerfile", "FROM scratch\n");
    dir.file("target.txt", "target");
    dir.file("sub/inside.txt", "inside");
    symlink("target.txt", dir.path().join("link")).unwrap();
    symlink("does/not/exist", dir.path().join("dangling")).unwrap();
    symlink("sub", dir.path().join("dirlink")).unwrap();
    symlink("/etc/passwd", dir.path().join("absolute")).unwrap();

    let context = Context::from_dir(dir.path()).unwrap();
    let kinds: Vec<(&str, EntryKind)> = context
        .entries()
        .iter()
        .map(|e| (e.path(), e.kind()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("Dockerfile", EntryKind::File),
            ("absolute", EntryKind::Symlink),
            ("dangling", EntryKind::Symlink),
            ("dirlink", EntryKind::Symlink),
            ("link", EntryKind::Symlink),
            ("sub", EntryKind::Directory),
            ("sub/inside.txt", EntryKind::File),
            ("target.txt", EntryKind::File),
        ]
    );

    let entries = read_tar(&tar_bytes(context));
    for (name, target) in [
        ("link", "target.txt"),
        ("dangling", "does/not/exist"),
        ("dirlink", "sub"),
        ("absolute", "/etc/passwd"),
    ] {
        let entry = find(&entries, name);
        assert_eq!(entry.kind, tar::EntryType::Symlink, "{name}");
        assert_eq!(entry.link.as_deref(), Some(target), "{name}");
        assert!(entry.data.is_empty(), "{name}");
    }
    // The directory link was not followed: nothing was sent under it.
    assert!(!entries.iter().any(|e| e.path.starts_with("dirlink/")));
}

#[test]
fn modes_and_mtimes_are_kept() {
    let dir = TempDir::new("modes");
    dir.file("Dockerfile", "FROM scratch\n");
    let script = dir.file("bin/run.sh", "#!/bin/sh\n");
    let private = dir.file("private.txt", "p");
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(&private, fs::Permissions::from_mode(0o640)).unwrap();
    fs::set_permissions(dir.path().join("bin"), fs::Permissions::from_mode(0o750)).unwrap();
    let mtime = SystemTime::UNIX_EPOCH + Duration::from_millis(1_600_000_000_700);
    fs::File::options()
        .write(true)
        .open(&private)
        .unwrap()
        .set_modified(mtime)
        .unwrap();

    let entries = read_tar(&tar_bytes(Context::from_dir(dir.path()).unwrap()));
    assert_eq!(find(&entries, "bin/run.sh").mode, 0o755);
    assert_eq!(find(&entries, "private.txt").mode, 0o640);
    assert_eq!(find(&entries, "bin/").mode, 0o750);
    // Docker keeps modification times, truncated to whole seconds.
    assert_eq!(find(&entries, "private.txt").mtime, 1_600_000_000);
}

#[test]
fn large_file_is_streamed_in_bounded_chunks() {
    let dir = TempDir::new("large");
    dir.file("Dockerfile", "FROM scratch\n");
    let size = 20 * 1024 * 1024 + 123;
    let data: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
    dir.file("big.bin", &data);

    let chunks = chunks(Context::from_dir(dir.path()).unwrap());
    // The memory property: the archive arrives in many chunks, none above the bound.
    assert!(chunks.len() > 1);
    assert!(chunks.len() >= size / CHUNK_SIZE, "{} chunks", chunks.len());
    assert!(
        chunks
            .iter()
            .all(|c| !c.is_empty() && c.len() <= CHUNK_SIZE)
    );

    let entries = read_tar(&chunks.concat());
    assert_eq!(names(&entries), ["Dockerfile", "big.bin"]);
    assert!(find(&entries, "big.bin").data == data);
}

#[test]
fn dockerfile_and_dockerignore_are_always_sent() {
    // "You can even use the .dockerignore file to exclude the Dockerfile and .dockerignore
    // files. These files are still sent to the builder as they're needed for running the build."
    let dir = TempDir::new("always");
    dir.file("Dockerfile", "FROM scratch\n");
    dir.file(".dockerignore", "Dockerfile\n.dockerignore\n*\n");
    dir.file("app.txt", "app");
    dir.file("sub/file.txt", "sub");

    let context = Context::from_dir(dir.path()).unwrap();
    assert_eq!(planned(&context), [".dockerignore", "Dockerfile"]);
    let entries = read_tar(&tar_bytes(context));
    assert_eq!(names(&entries), [".dockerignore", "Dockerfile"]);
    assert_eq!(find(&entries, "Dockerfile").data, b"FROM scratch\n");
}

#[test]
fn dockerfile_in_an_excluded_directory_is_sent() {
    let dir = TempDir::new("excluded-dockerfile");
    dir.file("build/app.Dockerfile", "FROM scratch\n");
    dir.file("build/other.txt", "other");
    dir.file(".dockerignore", "build\n");
    dir.file("main.txt", "main");

    let context = Context::builder(dir.path())
        .dockerfile("build/app.Dockerfile")
        .plan()
        .unwrap();
    assert_eq!(context.dockerfile_path_in_context(), "build/app.Dockerfile");
    // The directory entry is sent just before the Dockerfile so the archive holds its parent.
    assert_eq!(
        planned(&context),
        [".dockerignore", "build", "build/app.Dockerfile", "main.txt"]
    );
    let entries = read_tar(&tar_bytes(context));
    assert_eq!(
        names(&entries),
        [
            ".dockerignore",
            "build/",
            "build/app.Dockerfile",
            "main.txt"
        ]
    );
}

#[test]
fn dockerfile_specific_ignore_file_takes_precedence() {
    // "A Dockerfile-specific ignore-file takes precedence over the .dockerignore file at the
    // root of the build context if both exist."
    let dir = TempDir::new("specific");
    dir.file("Dockerfile", "FROM scratch\n");
    dir.file("build/app.Dockerfile", "FROM scratch\n");
    dir.file("build/app.Dockerfile.dockerignore", "b.txt\n");
    dir.file(".dockerignore", "a.txt\n");
    dir.file("a.txt", "a");
    dir.file("b.txt", "b");

    let specific = Context::builder(dir.path())
        .dockerfile("build/app.Dockerfile")
        .plan()
        .unwrap();
    assert_eq!(
        specific.ignore_file_in_context(),
        Some("build/app.Dockerfile.dockerignore")
    );
    assert_eq!(
        planned(&specific),
        [
            ".dockerignore",
            "Dockerfile",
            "a.txt",
            "build",
            "build/app.Dockerfile",
            "build/app.Dockerfile.dockerignore",
        ]
    );

    // The default Dockerfile has no specific ignore file: the root one applies.
    let root = Context::from_dir(dir.path()).unwrap();
    assert_eq!(root.ignore_file_in_context(), Some(".dockerignore"));
    let paths = planned(&root);
    assert!(!paths.contains(&"a.txt"), "{paths:?}");
    assert!(paths.contains(&"b.txt"), "{paths:?}");

    // `Dockerfile.dockerignore` beside the default Dockerfile wins over `.dockerignore` too.
    dir.file("Dockerfile.dockerignore", "b.txt\n");
    let root = Context::from_dir(dir.path()).unwrap();
    assert_eq!(
        root.ignore_file_in_context(),
        Some("Dockerfile.dockerignore")
    );
    let paths = planned(&root);
    assert!(
        paths.contains(&"a.txt") && !paths.contains(&"b.txt"),
        "{paths:?}"
    );
}

#[test]
fn exception_reincludes_files_inside_excluded_directories() {
    let dir = TempDir::new("exceptions");
    dir.file("Dockerfile", "FROM scratch\n");
    // `dir` excludes the directory and all it holds; the later `!dir/keep.txt` matches the file
    // and, being the last matching line, re-includes it. `dir/sub/keep.txt` only matches `dir`.
    dir.file(".dockerignore", "dir\n!dir/keep.txt\n");
    dir.file("dir/keep.txt", "kept");
    dir.file("dir/drop.txt", "dropped");
    dir.file("dir/sub/keep.txt", "dropped too");

    let context = Context::from_dir(dir.path()).unwrap();
    assert_eq!(
        planned(&context),
        [".dockerignore", "Dockerfile", "dir", "dir/keep.txt"]
    );
    let entries = read_tar(&tar_bytes(context));
    assert_eq!(find(&entries, "dir/keep.txt").data, b"kept");
}

#[test]
fn allow_list_with_double_star_exception_descends_everywhere() {
    // "specify * as the first pattern, followed by one or more ! exception patterns";
    // `!**/*.rs` re-includes .rs files at any depth, so excluded directories must be walked.
    let dir = TempDir::new("allow-list");
    dir.file("Dockerfile", "FROM scratch\n");
    dir.file(".dockerignore", "*\n!**/*.rs\n");
    dir.file("lib.rs", "");
    dir.file("notes.txt", "");
    dir.file("crates/a/src/main.rs", "");
    dir.file("crates/a/Cargo.toml", "");
    dir.dir("crates/empty");

    let context = Context::from_dir(dir.path()).unwrap();
    assert_eq!(
        planned(&context),
        [
            ".dockerignore",
            "Dockerfile",
            "crates",
            "crates/a",
            "crates/a/src",
            "crates/a/src/main.rs",
            "lib.rs",
        ]
    );
}

#[test]
fn special_files_hard_links_and_long_names() {
    let dir = TempDir::new("special");
    dir.file("Dockerfile", "FROM scratch\n");
    dir.file("original.txt", "shared");
    fs::hard_link(
        dir.path().join("original.txt"),
        dir.path().join("second.txt"),
    )
    .unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(dir.path().join("pipe"))
        .status()
        .expect("mkfifo runs");
    assert!(status.success());
    // A socket cannot be archived; Docker skips sockets.
    let _listener = std::os::unix::net::UnixListener::bind(dir.path().join("sock")).unwrap();
    let long_dir = "d".repeat(120);
    let long_name = format!("{long_dir}/{}.txt", "f".repeat(150));
    dir.file(&long_name, "long");
    let long_target = format!("{long_dir}/{}", "t".repeat(140));
    symlink(&long_target, dir.path().join("long-link")).unwrap();

    let context = Context::from_dir(dir.path()).unwrap();
    assert!(!planned(&context).contains(&"sock"));
    let entries = read_tar(&tar_bytes(context));
    let long_dir_entry = format!("{long_dir}/");
    assert_eq!(
        names(&entries),
        [
            "Dockerfile",
            long_dir_entry.as_str(),
            long_name.as_str(),
            "long-link",
            "original.txt",
            "pipe",
            "second.txt",
        ]
    );
    assert_eq!(find(&entries, &long_name).data, b"long");
    assert_eq!(
        find(&entries, "long-link").link.as_deref(),
        Some(long_target.as_str())
    );
    assert_eq!(find(&entries, "pipe").kind, tar::EntryType::Fifo);
    assert_eq!(find(&entries, "original.txt").data, b"shared");
    let second = find(&entries, "second.txt");
    assert_eq!(second.kind, tar::EntryType::Link);
    assert_eq!(second.link.as_deref(), Some("original.txt"));
}

#[test]
fn same_tree_gives_the_same_archive() {
    let dir = TempDir::new("deterministic");
    dir.file("Dockerfile", "FROM scratch\n");
    for name in ["z", "b", "a/y", "a/x", "C", "_"] {
        dir.file(name, name);
    }
    let first = tar_bytes(Context::from_dir(dir.path()).unwrap());
    let second = tar_bytes(Context::from_dir(dir.path()).unwrap());
    assert_eq!(first, second);
    assert_eq!(
        names(&read_tar(&first)),
        ["C", "Dockerfile", "_", "a/", "a/x", "a/y", "b", "z"]
    );
}

#[test]
fn lowercase_dockerfile_is_the_fallback() {
    // The Docker CLI uses `dockerfile` when `Dockerfile` does not exist and no -f was given.
    let dir = TempDir::new("lowercase");
    dir.file("dockerfile", "FROM scratch\n");
    let context = Context::from_dir(dir.path()).unwrap();
    assert_eq!(context.dockerfile_path_in_context(), "dockerfile");
}

#[test]
fn missing_directory_is_named() {
    let path = std::env::temp_dir().join("docker-build-context-does-not-exist-4711");
    let err = Context::from_dir(&path).unwrap_err();
    assert!(
        matches!(&err, ContextError::DirectoryNotFound { path: p } if *p == path),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "the build context directory {} does not exist",
            path.display()
        )
    );
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );

    let dir = TempDir::new("not-a-dir");
    let file = dir.file("file", "x");
    let err = Context::from_dir(&file).unwrap_err();
    assert!(
        matches!(&err, ContextError::NotADirectory { path } if *path == file),
        "{err:?}"
    );
}

#[test]
fn missing_dockerfile_is_named() {
    let dir = TempDir::new("no-dockerfile");
    dir.file("app.txt", "x");
    let err = Context::from_dir(dir.path()).unwrap_err();
    let expected = dir.path().join("Dockerfile");
    assert!(
        matches!(&err, ContextError::DockerfileNotFound { path, .. } if *path == expected),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(&expected.display().to_string()),
        "{err}"
    );

    let err = Context::builder(dir.path())
        .dockerfile("build/prod.Dockerfile")
        .plan()
        .unwrap_err();
    let expected = dir.path().join("build/prod.Dockerfile");
    assert!(
        matches!(&err, ContextError::DockerfileNotFound { path, .. } if *path == expected),
        "{err:?}"
    );

    dir.dir("adir");
    let err = Context::builder(dir.path())
        .dockerfile("adir")
        .plan()
        .unwrap_err();
    let expected = dir.path().join("adir");
    assert!(
        matches!(&err, ContextError::DockerfileIsADirectory { path } if *path == expected),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "the Dockerfile path {} is a directory, not a file",
            expected.display()
        )
    );

    // Outside the context, each gets its own error too (not "outside the context").
    let elsewhere = TempDir::new("elsewhere");
    let missing = elsewhere.path().join("prod.Dockerfile");
    let err = Context::builder(dir.path())
        .dockerfile(&missing)
        .plan()
        .unwrap_err();
    assert!(
        matches!(&err, ContextError::DockerfileNotFound { path, .. } if *path == missing),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!("cannot locate the Dockerfile {}", missing.display())
    );
    let err = Context::builder(dir.path())
        .dockerfile(elsewhere.path())
        .plan()
        .unwrap_err();
    assert!(
        matches!(&err, ContextError::DockerfileIsADirectory { path } if path == elsewhere.path()),
        "{err:?}"
    );
}

#[test]
fn a_dockerfile_outside_the_context_is_added_under_a_generated_name() {
    // The Docker CLI's AddDockerfileToBuildContext: the Dockerfile goes in as
    // `.dockerfile.<hex>` (mode 0600) and a `.dockerignore` listing it is added, so the
    // classic builder leaves it out of the build.
    let dir = TempDir::new("outside-ctx");
    dir.file("app.txt", "app");
    let elsewhere = TempDir::new("outside-df");
    let dockerfile = elsewhere.file("prod.Dockerfile", "FROM scratch\nCOPY . /\n");
    let context = Context::builder(dir.path())
        .dockerfile(&dockerfile)
        .plan()
        .unwrap();
    let name = context.dockerfile_path_in_context().to_owned();
    assert!(name.starts_with(".dockerfile."), "{name}");
    assert_eq!(name.len(), ".dockerfile.".len() + 20);
    assert!(context.dockerfile_outside());
    assert!(context.dockerfile_ignored());
    assert_eq!(planned(&context), ["app.txt"]);

    let entries = read_tar(&tar_bytes(context));
    assert_eq!(names(&entries), ["app.txt", name.as_str(), ".dockerignore"]);
    let generated = find(&entries, &name);
    assert_eq!(generated.data, b"FROM scratch\nCOPY . /\n");
    assert_eq!(
        (generated.mode, generated.uid, generated.gid),
        (0o600, 0, 0)
    );
    assert_eq!(
        find(&entries, ".dockerignore").data,
        format!(".dockerignore\n{name}\n").as_bytes()
    );

    // A relative path climbing out of the context is outside too; the same Dockerfile gets
    // the same name.
    let context = Context::builder(dir.path())
        .dockerfile(
            Path::new("..")
                .join(elsewhere.path().file_name().unwrap())
                .join("prod.Dockerfile"),
        )
        .plan()
        .unwrap();
    assert_eq!(context.dockerfile_path_in_context(), name);
}

#[test]
fn an_outside_dockerfile_is_appended_to_the_existing_dockerignore() {
    let dir = TempDir::new("outside-ignore-ctx");
    let ignore_file = dir.file(".dockerignore", "*.log");
    fs::set_permissions(&ignore_file, fs::Permissions::from_mode(0o640)).unwrap();
    dir.file("app.txt", "app");
    dir.file("debug.log", "log");
    let elsewhere = TempDir::new("outside-ignore-df");
    let dockerfile = elsewhere.file("Dockerfile", "FROM scratch\n");
    let context = Context::builder(dir.path())
        .dockerfile(&dockerfile)
        .plan()
        .unwrap();
    let name = context.dockerfile_path_in_context().to_owned();
    assert_eq!(context.ignore_file_in_context(), Some(".dockerignore"));
    let entries = read_tar(&tar_bytes(context));
    // The amended file keeps its place; only the generated Dockerfile is added at the end.
    assert_eq!(names(&entries), [".dockerignore", "app.txt", name.as_str()]);
    let ignore = find(&entries, ".dockerignore");
    assert_eq!(ignore.data, format!("*.log\n{name}\n").as_bytes());
    assert_eq!(ignore.mode, 0o640);
}

#[test]
fn an_ignored_dockerfile_is_sent_and_reported() {
    let dir = TempDir::new("ignored-df");
    dir.file("Dockerfile", "FROM scratch\n");
    dir.file("app.txt", "app");
    let context = Context::from_dir(dir.path()).unwrap();
    assert!(!context.dockerfile_ignored());
    assert!(!context.dockerfile_outside());

    dir.file(".dockerignore", "Dockerfile\n");
    let context = Context::from_dir(dir.path()).unwrap();
    assert!(context.dockerfile_ignored());
    assert_eq!(
        planned(&context),
        [".dockerignore", "Dockerfile", "app.txt"]
    );
}

#[test]
fn invalid_ignore_file_names_file_and_line() {
    let dir = TempDir::new("bad-ignore");
    dir.file("Dockerfile", "FROM scratch\n");
    let ignore = dir.file(".dockerignore", "# ok\n*.tmp\nsrc/[a-\n");
    let err = Context::from_dir(dir.path()).unwrap_err();
    let ContextError::InvalidIgnoreFile { path, source } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(*path, ignore);
    assert_eq!(source.line(), 3);
    let chained = std::error::Error::source(&err).unwrap().to_string();
    assert!(chained.contains("line 3"), "{chained}");
}

#[test]
fn file_vanishing_before_streaming_ends_the_stream_with_its_name() {
    let dir = TempDir::new("vanish");
    dir.file("Dockerfile", "FROM scratch\n");
    dir.file("a.txt", "a");
    let vanishing = dir.file("b.txt", "b");
    dir.file("c.txt", "c");
    let context = Context::from_dir(dir.path()).unwrap();
    fs::remove_file(&vanishing).unwrap();

    let mut stream = context.into_chunks();
    let mut data = Vec::new();
    let error = loop {
        match stream.next() {
            Some(Ok(chunk)) => data.extend_from_slice(&chunk),
            Some(Err(error)) => break error,
            None => panic!("the stream ended without reporting b.txt"),
        }
    };
    assert!(
        matches!(&error, ContextError::Read { path, source }
            if *path == vanishing && source.kind() == std::io::ErrorKind::NotFound),
        "{error:?}"
    );
    assert!(error.to_string().contains("b.txt"), "{error}");
    // The error is the last item.
    assert!(stream.next().is_none());
}

#[test]
fn unreadable_directory_is_found_while_walking() {
    // Root can open any file whatever its mode, so make a path the kernel refuses to resolve:
    // a chain of directories whose full path exceeds PATH_MAX (4096 bytes). Each directory is
    // created with a short name and renamed from the deepest up, so every call uses a short path.
    let dir = TempDir::new("too-long");
    dir.file("Dockerfile", "FROM scratch\n");
    let levels = 18;
    let short: PathBuf = (0..levels).map(|_| "s").collect();
    fs::create_dir_all(dir.path().join(&short)).unwrap();
    fs::write(dir.path().join(&short).join("leaf.txt"), "leaf").unwrap();
    let long_name = "L".repeat(250);
    for depth in (1..=levels).rev() {
        let parent: PathBuf = (0..depth - 1).map(|_| "s").collect();
        let parent = dir.path().join(parent);
        fs::rename(parent.join("s"), parent.join(&long_name)).unwrap();
    }

    let err = Context::from_dir(dir.path()).unwrap_err();
    let path = match &err {
        ContextError::ReadDirectory { path, .. }
        | ContextError::UnreadableFile { path, .. }
        | ContextError::Stat { path, .. } => path,
        other => panic!("unexpected error {other:?}"),
    };
    let source = std::error::Error::source(&err).unwrap().to_string();
    assert!(path.starts_with(dir.path()), "{}", path.display());
    assert!(
        path.as_os_str().len() >= 4096,
        "{} bytes",
        path.as_os_str().len()
    );
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    assert!(!source.is_empty());
}

#[test]
fn dropping_the_stream_stops_the_writer() {
    // The writer blocks on the bounded channel; dropping the iterator must release it (or the
    // writer thread would block forever).
    let dir = TempDir::new("drop");
    dir.file("Dockerfile", "FROM scratch\n");
    dir.file("big.bin", vec![1u8; 8 * 1024 * 1024]);
    let mut stream = Context::from_dir(dir.path()).unwrap().into_chunks();
    let first = stream.next().unwrap().unwrap();
    assert_eq!(first.len(), CHUNK_SIZE);
    drop(stream);
}

#[test]
fn tar_context_is_sent_as_is() {
    let tar = Bytes::from(vec![0u8; 1024]);
    let context = Context::from_tar_with_dockerfile(tar.clone(), "ci/Dockerfile");
    assert_eq!(context.dockerfile_path_in_context(), "ci/Dockerfile");
    assert!(context.entries().is_empty());
    assert_eq!(chunks(context), [tar]);
}

#[test]
fn the_dockerfile_on_disk_and_the_rules_are_kept_for_a_session() {
    let ctx = TempDir::new("outside-ctx");
    ctx.file("app.txt", "app");
    ctx.file(".dockerignore", "*.log\n");
    ctx.file("Dockerfile", "FROM scratch\n");
    let elsewhere = TempDir::new("outside-df");
    let dockerfile = elsewhere.file("Dockerfile", "FROM scratch\nCOPY . /\n");

    // A session serves an outside Dockerfile from its own folder, under its own name; the
    // archive (the tar path) holds it under the generated name instead.
    let context = Context::builder(ctx.path())
        .dockerfile(&dockerfile)
        .plan()
        .unwrap();
    assert!(context.dockerfile_outside());
    assert!(
        context
            .dockerfile_path_in_context()
            .starts_with(".dockerfile.")
    );
    assert_eq!(context.dockerfile_file(), Some(dockerfile.as_path()));
    // The context's own ignore file applies.
    assert!(context.ignore_rules().is_excluded("debug.log"));
    assert!(!context.ignore_rules().is_excluded("app.txt"));

    // Inside the directory: the file is the directory's.
    let inside = Context::builder(ctx.path())
        .dockerfile("Dockerfile")
        .plan()
        .unwrap();
    assert!(!inside.dockerfile_outside());
    assert_eq!(
        inside.dockerfile_file(),
        Some(ctx.path().join("Dockerfile").as_path())
    );
    assert!(inside.ignore_rules().is_excluded("debug.log"));
    assert_eq!(Context::from_tar(Bytes::new()).dockerfile_file(), None);
}

use super::*;

/// A temporary folder, removed on drop.
struct Tree(PathBuf);

impl Tree {
    fn new(files: &[&str]) -> Self {
        use std::sync::atomic::AtomicUsize;
        static N: AtomicUsize = AtomicUsize::new(0);
        let root = std::env::temp_dir().join(format!(
            "filesync-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).unwrap();
        for file in files {
            let path = root.join(file);
            if let Some(dir) = file.strip_suffix('/') {
                fs::create_dir_all(root.join(dir)).unwrap();
                continue;
            }
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, file.as_bytes()).unwrap();
        }
        Tree(root)
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn listed(tree: &Tree, filter: &Filter) -> Vec<String> {
    walk(&tree.0, filter)
        .unwrap()
        .into_iter()
        .map(|e| e.stat.path)
        .collect()
}

fn filter(
    tree: &Tree,
    include: &[&str],
    exclude: &[&str],
    follow: &[&str],
    ignore: &str,
) -> Filter {
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    Filter::new(
        &tree.0,
        &strings(include),
        &strings(exclude),
        &strings(follow),
        DockerIgnore::parse(ignore).unwrap(),
    )
    .unwrap()
}

#[test]
fn unix_modes_become_go_file_modes() {
    assert_eq!(go_file_mode(0o100644), 0o644);
    assert_eq!(go_file_mode(0o100755), 0o755);
    assert_eq!(go_file_mode(0o040755), go_mode::DIR | 0o755);
    assert_eq!(go_file_mode(0o120777), go_mode::SYMLINK | 0o777);
    assert_eq!(go_file_mode(0o010644), go_mode::NAMED_PIPE | 0o644);
    assert_eq!(go_file_mode(0o140755), go_mode::SOCKET | 0o755);
    assert_eq!(go_file_mode(0o060660), go_mode::DEVICE | 0o660);
    assert_eq!(
        go_file_mode(0o020666),
        go_mode::DEVICE | go_mode::CHAR_DEVICE | 0o666
    );
    assert_eq!(
        go_file_mode(0o104755),
        go_mode::SETUID | 0o755,
        "setuid is a Go bit, not 0o4000"
    );
    assert_eq!(go_file_mode(0o102755), go_mode::SETGID | 0o755);
    assert_eq!(
        go_file_mode(0o041777),
        go_mode::DIR | go_mode::STICKY | 0o777
    );
    assert!(is_regular(go_file_mode(0o100600)));
    assert!(!is_regular(go_file_mode(0o040700)));
    assert!(!is_regular(go_file_mode(0o120777)));
}

#[test]
fn the_listing_is_in_fsutil_walk_order_with_real_metadata() {
    // `a/` before `a.txt` (each directory's contents right after it), names in byte order.
    let tree = Tree::new(&["a.txt", "a/b", "a/c/d", "B", "empty/"]);
    std::os::unix::fs::symlink("a.txt", tree.0.join("link")).unwrap();
    let entries = walk(&tree.0, &Filter::default()).unwrap();
    let paths: Vec<&str> = entries.iter().map(|e| e.stat.path.as_str()).collect();
    assert_eq!(
        paths,
        ["B", "a", "a/b", "a/c", "a/c/d", "a.txt", "empty", "link"]
    );

    let meta = fs::metadata(tree.0.join("a.txt")).unwrap();
    let file = &entries[5];
    assert_eq!(file.stat.size, "a.txt".len() as i64);
    assert_eq!(file.stat.mode, go_file_mode(meta.mode()));
    assert_eq!(file.stat.uid, meta.uid());
    assert_eq!(file.stat.gid, meta.gid());
    assert_eq!(
        file.stat.mod_time,
        meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
        "nanoseconds, for BuildKit's comparison with its copy"
    );
    assert_eq!(file.file.as_deref(), Some(tree.0.join("a.txt").as_path()));
    let dir = &entries[1];
    assert_eq!(dir.stat.mode & go_mode::DIR, go_mode::DIR);
    assert_eq!((dir.stat.size, &dir.file), (0, &None));
    let link = &entries[7];
    assert_eq!(link.stat.mode & go_mode::SYMLINK, go_mode::SYMLINK);
    assert_eq!(link.stat.linkname, "a.txt");
    assert_eq!(link.file, None, "a link's target is never read");
}

#[test]
fn the_exchange_lists_then_sends_only_what_is_requested_once() {
    let tree = Tree::new(&["dir/f", "g"]);
    let listing = walk(&tree.0, &Filter::default()).unwrap();
    let mut exchange = Exchange::new(listing);
    let packets: Vec<Packet> = exchange.listing_packets().collect();
    let kinds: Vec<(PacketType, Option<String>)> = packets
        .iter()
        .map(|p| (p.r#type(), p.stat.as_ref().map(|s| s.path.clone())))
        .collect();
    assert_eq!(
        kinds,
        [
            (PacketType::PacketStat, Some("dir".into())),
            (PacketType::PacketStat, Some("dir/f".into())),
            (PacketType::PacketStat, Some("g".into())),
            (PacketType::PacketStat, None),
        ]
    );
    let req = |id| Packet {
        r#type: PacketType::PacketReq.into(),
        id,
        ..Default::default()
    };
    // Ids are positions in the listing; a directory cannot be asked for.
    assert_eq!(
        exchange.receive(&req(2)),
        Step::SendFile {
            id: 2,
            path: tree.0.join("g")
        }
    );
    assert_eq!(
        exchange.receive(&req(2)),
        Step::Fail("invalid file id 2".into())
    );
    assert_eq!(
        exchange.receive(&req(0)),
        Step::Fail("invalid file id 0".into())
    );
    assert_eq!(
        exchange.receive(&req(9)),
        Step::Fail("invalid file id 9".into())
    );
    let fin = Packet {
        r#type: PacketType::PacketFin.into(),
        ..Default::default()
    };
    assert_eq!(exchange.receive(&fin), Step::Finish);
    let data = data_packet(1, Bytes::new());
    assert_eq!(data.r#type(), PacketType::PacketData);
    assert!(data.data.is_empty(), "an empty DATA packet ends a file");
}

#[tokio::test]
async fn a_requested_file_goes_as_data_chunks_and_an_empty_one() {
    let tree = Tree::new(&[]);
    let big = vec![7u8; DATA_CHUNK * 2 + 10];
    fs::write(tree.0.join("big"), &big).unwrap();
    let (sender, mut receiver) = mpsc::channel(16);
    let sent = AtomicU64::new(0);
    let task = tokio::spawn(async move {
        send_file(&sender, 4, &tree.0.join("big"), &sent)
            .await
            .unwrap();
        sent.load(Ordering::Relaxed)
    });
    let mut sizes = Vec::new();
    while let Some(packet) = receiver.recv().await {
        let packet = packet.unwrap();
        assert_eq!((packet.r#type(), packet.id), (PacketType::PacketData, 4));
        sizes.push(packet.data.len());
    }
    assert_eq!(sizes, [DATA_CHUNK, DATA_CHUNK, 10, 0]);
    assert_eq!(
        task.await.unwrap(),
        big.len() as u64,
        "DATA payloads are counted"
    );
}

#[test]
fn exclude_patterns_with_exceptions_and_the_ignore_file() {
    let tree = Tree::new(&[
        "Dockerfile",
        ".dockerignore",
        "docs/a.md",
        "docs/keep.md",
        "src/main.rs",
        "target/x/out",
        "secret.key",
    ]);
    // The daemon's excludes, with an exception beneath an excluded directory.
    let f = filter(&tree, &[], &["docs", "!docs/keep.md"], &[], "");
    assert_eq!(
        listed(&tree, &f),
        [
            ".dockerignore",
            "Dockerfile",
            "docs",
            "docs/keep.md",
            "secret.key",
            "src",
            "src/main.rs",
            "target",
            "target/x",
            "target/x/out"
        ]
    );
    // Our own .dockerignore: the Dockerfile too, with a `!` exception; an excluded directory
    // without exceptions beneath is not walked.
    let f = filter(
        &tree,
        &[],
        &[],
        &[],
        "Dockerfile\n*.key\ntarget\ndocs\n!docs/keep.md\n",
    );
    assert_eq!(
        listed(&tree, &f),
        [
            ".dockerignore",
            "docs",
            "docs/keep.md",
            "src",
            "src/main.rs"
        ]
    );
    assert_eq!(f.decide("target", true), Decision::Skip);
    assert_eq!(f.decide("docs", true), Decision::WalkOnly);
    assert_eq!(f.decide("Dockerfile", false), Decision::Skip);
}

#[test]
fn include_patterns_and_the_dockerfile_folder() {
    let tree = Tree::new(&[
        "Dockerfile",
        "Dockerfile.dockerignore",
        "other",
        "sub/Dockerfile",
        "src/a/b.rs",
        "src/c.txt",
    ]);
    // As BuildKit asks for the .dockerignore or a COPY source.
    let f = filter(&tree, &["src/a"], &[], &[], "");
    assert_eq!(listed(&tree, &f), ["src", "src/a", "src/a/b.rs"]);
    assert_eq!(
        f.decide("sub", true),
        Decision::Skip,
        "no include beneath: not walked"
    );
    let f = filter(&tree, &["**/*.rs"], &[], &[], "");
    assert_eq!(listed(&tree, &f), ["src", "src/a", "src/a/b.rs"]);
    // The dockerfile folder: only the Dockerfile and its ignore file, whatever is asked.
    let only = filter(&tree, &[], &[], &[], "")
        .only(vec!["Dockerfile.dockerignore".into(), "Dockerfile".into()]);
    assert_eq!(
        listed(&tree, &only),
        ["Dockerfile", "Dockerfile.dockerignore"]
    );
    let only =
        filter(&tree, &["Dockerfile", "other"], &[], &[], "").only(vec!["Dockerfile".into()]);
    assert_eq!(listed(&tree, &only), ["Dockerfile"]);
}

#[test]
fn follow_paths_include_the_targets_of_links() {
    let tree = Tree::new(&["real/file", "other/x", "unrelated"]);
    std::os::unix::fs::symlink("real", tree.0.join("link")).unwrap();
    let f = filter(&tree, &[], &[], &["link/file"], "");
    assert_eq!(listed(&tree, &f), ["link", "real", "real/file"]);
    // `.` is the whole folder: no filter.
    let f = filter(&tree, &[], &[], &["."], "");
    assert_eq!(listed(&tree, &f).len(), 6);
    assert_eq!(clean("/a/../../x"), "/x");
    assert_eq!(clean("./a//b/"), "a/b");
    assert_eq!(
        dedupe_paths(&["a".into(), "a/b".into(), "ab".into()]),
        Some(vec!["a".into(), "ab".into()])
    );
}

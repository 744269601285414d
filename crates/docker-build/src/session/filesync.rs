//! `moby.filesync.v1.FileSync/DiffCopy`: the build context and the Dockerfile's folder, sent
//! the way `docker buildx build` sends them (fsutil's protocol).
//!
//! BuildKit asks for a folder by name in the request metadata (`dir-name`: `context` or
//! `dockerfile`), with `include-patterns`, `exclude-patterns` and `followpaths`. The sender
//! lists every entry the filters let through ([`PacketType::PacketStat`] in fsutil's walk
//! order, then one without a stat), the daemon compares the listing with the copy it kept
//! from the last build and asks for the files that differ by their position in the listing
//! ([`PacketType::PacketReq`]); each is answered with [`PacketType::PacketData`] chunks and an
//! empty one, and [`PacketType::PacketFin`] from the daemon is answered with one.
//!
//! What is sent is decided here, not by the daemon's patterns alone:
//! - the `context` folder never yields a path its `.dockerignore` (or
//!   `<Dockerfile>.dockerignore`) excludes, the Dockerfile included;
//! - the `dockerfile` folder holds only the Dockerfile and its own ignore file;
//! - only files the daemon asked for by id are read, and each at most once.
//!
//! The listing ([`walk`]), the filters ([`Filter`]), the mode bits ([`go_file_mode`]) and the
//! packet exchange ([`Exchange`]) are plain functions of their inputs; [`FileSyncService`] is
//! the thin async part.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use buildkit_proto::session::filesync::file_sync_server::FileSync;
use buildkit_proto::session::filesync::{
    KEY_DIR_NAME, KEY_EXCLUDE_PATTERNS, KEY_FOLLOW_PATHS, KEY_INCLUDE_PATTERNS, Packet, PacketType,
    Stat,
};
use bytes::Bytes;
use docker_context::dockerignore::{DockerIgnore, dockerfile_ignore_file};
use tokio::io::AsyncReadExt as _;
use tokio::sync::mpsc;

use super::Tasks;

/// The name BuildKit asks for the build context by.
pub const DIR_CONTEXT: &str = "context";
/// The name BuildKit asks for the Dockerfile's folder by.
pub const DIR_DOCKERFILE: &str = "dockerfile";

/// How much of a file one DATA packet carries.
const DATA_CHUNK: usize = 64 * 1024;

/// Go's `os.FileMode` bits (the `mode` of fsutil's `Stat`): the type bits are Go's own, not the
/// Unix `S_IF*` ones.
pub mod go_mode {
    /// `os.ModeDir`.
    pub const DIR: u32 = 1 << 31;
    /// `os.ModeSymlink`.
    pub const SYMLINK: u32 = 1 << 27;
    /// `os.ModeDevice`.
    pub const DEVICE: u32 = 1 << 26;
    /// `os.ModeNamedPipe`.
    pub const NAMED_PIPE: u32 = 1 << 25;
    /// `os.ModeSocket`.
    pub const SOCKET: u32 = 1 << 24;
    /// `os.ModeSetuid`.
    pub const SETUID: u32 = 1 << 23;
    /// `os.ModeSetgid`.
    pub const SETGID: u32 = 1 << 22;
    /// `os.ModeCharDevice`.
    pub const CHAR_DEVICE: u32 = 1 << 21;
    /// `os.ModeSticky`.
    pub const STICKY: u32 = 1 << 20;
    /// `os.ModeIrregular`.
    pub const IRREGULAR: u32 = 1 << 19;
    /// `os.ModeType`: every type bit; a mode without them is a regular file.
    pub const TYPE: u32 = DIR | SYMLINK | NAMED_PIPE | SOCKET | DEVICE | CHAR_DEVICE | IRREGULAR;
}

/// Go's `os.FileMode` of a Unix `st_mode` (as Go's `os.Lstat` computes it).
pub fn go_file_mode(st_mode: u32) -> u32 {
    const S_IFMT: u32 = 0o170000;
    let mut mode = st_mode & 0o777;
    mode |= match st_mode & S_IFMT {
        0o060000 => go_mode::DEVICE,
        0o020000 => go_mode::DEVICE | go_mode::CHAR_DEVICE,
        0o040000 => go_mode::DIR,
        0o010000 => go_mode::NAMED_PIPE,
        0o120000 => go_mode::SYMLINK,
        0o140000 => go_mode::SOCKET,
        _ => 0,
    };
    if st_mode & 0o4000 != 0 {
        mode |= go_mode::SETUID;
    }
    if st_mode & 0o2000 != 0 {
        mode |= go_mode::SETGID;
    }
    if st_mode & 0o1000 != 0 {
        mode |= go_mode::STICKY;
    }
    mode
}

/// Whether the daemon may ask for an entry's contents (fsutil's `fileCanRequestData`).
fn is_regular(go_mode: u32) -> bool {
    go_mode & go_mode::TYPE == 0
}

/// The folders a session serves to FileSync.
#[derive(Debug, Clone)]
pub(crate) struct LocalDirs {
    /// The build context.
    pub(crate) context: PathBuf,
    /// Its ignore rules, applied to everything listed from it.
    pub(crate) ignore: DockerIgnore,
    /// The Dockerfile's folder.
    pub(crate) dockerfile_dir: PathBuf,
    /// The only names served from it: the Dockerfile and its own ignore file.
    pub(crate) dockerfile_names: Vec<String>,
}

impl LocalDirs {
    /// The folders of a directory context; `None` for a tar context.
    pub(crate) fn of(context: &docker_context::Context) -> Option<Self> {
        let root = context.root()?;
        let dockerfile = context.dockerfile_file()?;
        let dir = dockerfile.parent().unwrap_or(Path::new("."));
        let name = dockerfile.file_name()?.to_str()?.to_owned();
        Some(LocalDirs {
            context: root.to_path_buf(),
            ignore: context.ignore_rules().clone(),
            dockerfile_dir: dir.to_path_buf(),
            dockerfile_names: vec![dockerfile_ignore_file(&name), name],
        })
    }
}

/// A request's filters, as fsutil's `FilterOpt` (include and exclude patterns, follow paths)
/// plus the ignore rules of the folder.
#[derive(Debug, Default)]
pub struct Filter {
    include: Option<DockerIgnore>,
    /// Every include is a plain path (maybe ending in `/*` or `/**`): a directory that no
    /// include starts with is not walked.
    only_prefix_includes: bool,
    exclude: Option<DockerIgnore>,
    /// Every exception of the excludes is a plain path: an excluded directory that no
    /// exception starts with is not walked.
    only_prefix_exceptions: bool,
    ignore: DockerIgnore,
    /// Only these names, at the top level only (the `dockerfile` folder).
    only: Option<Vec<String>>,
}

/// Why a request's filters cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FilterError {
    /// An include or exclude pattern is not valid.
    #[error("invalid {kind} pattern")]
    Pattern {
        /// `include` or `exclude`.
        kind: &'static str,
        /// What is wrong with it.
        #[source]
        source: docker_context::dockerignore::IgnoreError,
    },
    /// A follow path's symbolic links could not be read.
    #[error("cannot resolve the follow path {path}")]
    FollowPath {
        /// The path.
        path: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

/// What the walk does with one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// List it (and walk it, for a directory).
    List,
    /// Do not list it, but walk it (a directory something beneath may be listed from; listed
    /// just before the first such thing).
    WalkOnly,
    /// Neither list nor walk it.
    Skip,
}

impl Filter {
    /// The filters of a request for `root`: its include and exclude patterns, its follow paths
    /// (whose symbolic links are resolved in `root`, the targets then included), and the
    /// folder's own ignore rules.
    pub fn new(
        root: &Path,
        includes: &[String],
        excludes: &[String],
        follow_paths: &[String],
        ignore: DockerIgnore,
    ) -> Result<Self, FilterError> {
        let mut includes: Option<Vec<String>> = (!includes.is_empty()).then(|| includes.to_vec());
        if !follow_paths.is_empty() {
            if let Some(targets) = follow_links(root, follow_paths)? {
                let mut all = includes.unwrap_or_default();
                all.extend(targets);
                includes = dedupe_paths(&all);
            }
        }
        let pattern = |kind| move |source| FilterError::Pattern { kind, source };
        let include = match includes.filter(|i| !i.is_empty()) {
            Some(list) => Some(
                DockerIgnore::from_patterns(list.iter().map(String::as_str))
                    .map_err(pattern("include"))?,
            ),
            None => None,
        };
        let exclude = match excludes {
            [] => None,
            list => Some(
                DockerIgnore::from_patterns(list.iter().map(String::as_str))
                    .map_err(pattern("exclude"))?,
            ),
        };
        let plain = |p: &docker_context::dockerignore::Pattern| {
            !without_trailing_glob(p.as_str()).contains(['*', '[', ']', '?', '^', '\\'])
        };
        let only_prefix_includes = include
            .as_ref()
            .is_none_or(|i| i.patterns().iter().filter(|p| !p.is_exception()).all(plain));
        let only_prefix_exceptions = exclude
            .as_ref()
            .is_none_or(|e| e.patterns().iter().filter(|p| p.is_exception()).all(plain));
        Ok(Filter {
            include,
            only_prefix_includes,
            exclude,
            only_prefix_exceptions,
            ignore,
            only: None,
        })
    }

    /// Serves only `names` at the top level, and nothing beneath.
    pub fn only(mut self, names: Vec<String>) -> Self {
        self.only = Some(names);
        self
    }

    /// What to do with `path` (relative, `/`-separated), a directory or not.
    pub fn decide(&self, path: &str, is_dir: bool) -> Decision {
        if let Some(only) = &self.only {
            if path.contains('/') || is_dir || !only.iter().any(|n| n == path) {
                return Decision::Skip;
            }
        }
        let mut walk_only = false;
        if let Some(include) = &self.include {
            // `is_excluded` is patternmatcher's "matches or a parent matches".
            if !include.is_excluded(path) {
                if is_dir && self.only_prefix_includes {
                    let dir = format!("{path}/");
                    let beneath = include.patterns().iter().any(|p| {
                        !p.is_exception()
                            && format!("{}/", without_trailing_glob(p.as_str())).starts_with(&dir)
                    });
                    if !beneath {
                        return Decision::Skip;
                    }
                }
                walk_only = true;
            }
        }
        if let Some(exclude) = &self.exclude {
            if exclude.is_excluded(path) {
                if is_dir && self.only_prefix_exceptions {
                    let dir = format!("{path}/");
                    let beneath = exclude.patterns().iter().any(|p| {
                        p.is_exception()
                            && format!("{}/", without_trailing_glob(p.as_str())).starts_with(&dir)
                    });
                    if !beneath {
                        return Decision::Skip;
                    }
                }
                walk_only = true;
            }
        }
        if self.ignore.is_excluded(path) {
            if is_dir && self.ignore.may_include_beneath(path) {
                walk_only = true;
            } else {
                return Decision::Skip;
            }
        }
        if walk_only {
            if is_dir {
                Decision::WalkOnly
            } else {
                Decision::Skip
            }
        } else {
            Decision::List
        }
    }
}

/// A pattern without a trailing `/**` or `/*` (fsutil's `patternWithoutTrailingGlob`).
fn without_trailing_glob(pattern: &str) -> &str {
    let p = pattern.strip_suffix("/**").unwrap_or(pattern);
    p.strip_suffix("/*").unwrap_or(p)
}

/// fsutil's `dedupePaths`: drops a path beneath the one before it; `None` (no filter) when one
/// is `.`.
fn dedupe_paths(paths: &[String]) -> Option<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    let mut last: Option<&str> = None;
    for path in paths {
        if path == "." {
            return None;
        }
        if let Some(last) = last {
            if path.starts_with(&format!("{last}/")) {
                continue;
            }
        }
        out.push(path.clone());
        last = Some(path);
    }
    Some(out)
}

/// Cleans a `/`-separated path like Go's `filepath.Clean` (`.` when empty).
fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            part => parts.push(part),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// fsutil's `FollowLinks`: the follow paths with every symbolic link on the way resolved
/// (inside `root`; a link's own path is kept too), sorted and deduplicated; `None` when one
/// is the whole folder.
fn follow_links(root: &Path, paths: &[String]) -> Result<Option<Vec<String>>, FilterError> {
    let mut resolved = BTreeSet::new();
    for path in paths {
        resolve(root, path, &mut resolved, 0).map_err(|source| FilterError::FollowPath {
            path: path.clone(),
            source,
        })?;
    }
    let sorted: Vec<String> = resolved.into_iter().collect();
    Ok(dedupe_paths(&sorted))
}

/// How many links one follow path may go through (fsutil stops at paths seen before; this is a
/// second guard).
const MAX_LINKS: usize = 255;

fn resolve(
    root: &Path,
    path: &str,
    resolved: &mut BTreeSet<String>,
    depth: usize,
) -> io::Result<()> {
    if depth > MAX_LINKS {
        return Err(io::Error::other("too many levels of symbolic links"));
    }
    let mut rest = clean(path.trim_start_matches('/'));
    let mut current = ".".to_string();
    loop {
        let (first, tail) = match rest.split_once('/') {
            Some((first, tail)) => (first.to_string(), tail.to_string()),
            None => (rest.clone(), String::new()),
        };
        current = clean(&format!("{current}/{first}"));
        let targets = read_symlink(root, &current, true)?;
        rest = tail;
        if (rest.is_empty() || targets.is_some()) && resolved.contains(&current) {
            return Ok(());
        }
        if let Some(targets) = targets {
            resolved.insert(current);
            for target in targets {
                resolve(root, &format!("{target}/{rest}"), resolved, depth + 1)?;
            }
            return Ok(());
        }
        if rest.is_empty() {
            resolved.insert(current);
            return Ok(());
        }
    }
}

/// The targets of the symbolic link at `path` (rooted at the folder), `None` when it is not
/// one; a last element with wildcards stands for every matching name.
fn read_symlink(root: &Path, path: &str, wildcards: bool) -> io::Result<Option<Vec<String>>> {
    if path == "." {
        return Ok(None);
    }
    let (dir, base) = path.rsplit_once('/').unwrap_or((".", path));
    if wildcards && base.contains(['*', '?', '[']) {
        let Ok(glob) = DockerIgnore::from_patterns([base]) else {
            return Ok(None);
        };
        let entries = match fs::read_dir(root.join(dir)) {
            Ok(entries) => entries,
            Err(e) if not_found(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|name| glob.is_excluded(name))
            .collect();
        names.sort();
        let mut out = Vec::new();
        for name in names {
            out.extend(
                read_symlink(root, &clean(&format!("{dir}/{name}")), false)?
                    .into_iter()
                    .flatten(),
            );
        }
        return Ok((!out.is_empty()).then_some(out));
    }
    let full = root.join(path);
    match fs::symlink_metadata(&full) {
        Ok(m) if m.file_type().is_symlink() => {}
        Ok(_) => return Ok(None),
        Err(e) if not_found(&e) => return Ok(None),
        Err(e) => return Err(e),
    }
    let link = fs::read_link(&full)?;
    let link = link
        .to_str()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "a link target is not UTF-8"))?;
    let link = clean(link);
    if link.starts_with('/') {
        return Ok(Some(vec![link]));
    }
    Ok(Some(vec![clean(&format!("/{dir}/{link}"))]))
}

fn not_found(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

/// One listed entry: its stat, and for a regular file where its contents are.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// As sent.
    pub stat: Stat,
    /// The file to read when the daemon asks (regular files only).
    pub file: Option<PathBuf>,
}

/// Why a folder could not be listed.
#[derive(Debug, thiserror::Error)]
#[error("cannot list {}", path.display())]
pub struct WalkError {
    /// What could not be read.
    pub path: PathBuf,
    /// The I/O error.
    #[source]
    pub source: io::Error,
}

/// Lists `root` as fsutil walks it: depth first, each directory before its contents, the
/// names of a directory in byte order; what `filter` lets through, directories that are only
/// walked listed just before the first thing listed beneath them. Symbolic links are listed
/// as links, never followed; sockets are left out.
pub fn walk(root: &Path, filter: &Filter) -> Result<Vec<Entry>, WalkError> {
    let mut walker = Walker {
        root,
        filter,
        entries: Vec::new(),
        open: Vec::new(),
    };
    walker.walk("")?;
    Ok(walker.entries)
}

struct Walker<'a> {
    root: &'a Path,
    filter: &'a Filter,
    entries: Vec<Entry>,
    /// The directories being walked and not listed yet.
    open: Vec<Option<Entry>>,
}

impl Walker<'_> {
    fn walk(&mut self, dir: &str) -> Result<(), WalkError> {
        let dir_path = self.root.join(dir);
        let error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| WalkError { path, source }
        };
        let mut children: Vec<(String, PathBuf)> = Vec::new();
        for entry in fs::read_dir(&dir_path).map_err(error(&dir_path))? {
            let entry = entry.map_err(error(&dir_path))?;
            let name = entry.file_name().into_string().map_err(|_| WalkError {
                path: entry.path(),
                source: io::Error::new(io::ErrorKind::InvalidData, "the name is not UTF-8"),
            })?;
            children.push((name, entry.path()));
        }
        children.sort();
        for (name, path) in children {
            let relative = if dir.is_empty() {
                name
            } else {
                format!("{dir}/{name}")
            };
            let metadata = fs::symlink_metadata(&path).map_err(error(&path))?;
            let file_type = metadata.file_type();
            if file_type.is_socket() {
                continue;
            }
            let is_dir = file_type.is_dir();
            let decision = self.filter.decide(&relative, is_dir);
            if decision == Decision::Skip {
                continue;
            }
            let mode = go_file_mode(metadata.mode());
            let mut stat = Stat {
                path: relative.clone(),
                mode,
                uid: metadata.uid(),
                gid: metadata.gid(),
                size: if is_dir { 0 } else { metadata.size() as i64 },
                mod_time: metadata.mtime() * 1_000_000_000 + metadata.mtime_nsec(),
                ..Default::default()
            };
            if file_type.is_symlink() {
                let target = fs::read_link(&path).map_err(error(&path))?;
                stat.linkname = target.to_string_lossy().into_owned();
            }
            if file_type.is_block_device() || file_type.is_char_device() {
                let dev = metadata.rdev();
                stat.devmajor = ((dev >> 8) & 0xfff) as i64;
                stat.devminor = ((dev & 0xff) | ((dev >> 12) & 0xfff00)) as i64;
            }
            let entry = Entry {
                file: is_regular(mode).then_some(path),
                stat,
            };
            if decision == Decision::List {
                self.list_open();
                self.entries.push(entry);
                if is_dir {
                    self.open.push(None);
                }
            } else {
                self.open.push(Some(entry));
            }
            if is_dir {
                let walked = self.walk(&relative);
                self.open.pop();
                walked?;
            }
        }
        Ok(())
    }

    fn list_open(&mut self) {
        for entry in &mut self.open {
            if let Some(entry) = entry.take() {
                self.entries.push(entry);
            }
        }
    }
}

/// The sender's side of one DiffCopy exchange once the listing is made: which ids may be
/// asked for (regular files, each once), and what each packet from the daemon calls for.
#[derive(Debug)]
pub struct Exchange {
    listing: Vec<Entry>,
    requestable: HashMap<u32, PathBuf>,
}

/// What to do after a packet from the daemon.
#[derive(Debug, PartialEq)]
pub enum Step {
    /// Send the file's contents as DATA packets with this id, then an empty DATA packet.
    SendFile {
        /// The entry's id.
        id: u32,
        /// Its file.
        path: PathBuf,
    },
    /// Answer FIN with FIN; the exchange is over.
    Finish,
    /// The exchange failed: send ERR with this message (unless the daemon's error ended it)
    /// and stop.
    Fail(String),
    /// Nothing (a packet the sender takes no action on).
    Nothing,
}

impl Exchange {
    /// The exchange of `listing`.
    pub fn new(listing: Vec<Entry>) -> Self {
        let requestable = listing
            .iter()
            .enumerate()
            .filter_map(|(id, e)| Some((id as u32, e.file.clone()?)))
            .collect();
        Exchange {
            listing,
            requestable,
        }
    }

    /// The packets that open the exchange: a STAT per entry, then an empty STAT.
    pub fn listing_packets(&self) -> impl Iterator<Item = Packet> + '_ {
        self.listing
            .iter()
            .map(|e| Packet {
                r#type: PacketType::PacketStat.into(),
                stat: Some(e.stat.clone()),
                ..Default::default()
            })
            .chain([Packet {
                r#type: PacketType::PacketStat.into(),
                ..Default::default()
            }])
    }

    /// What the daemon's `packet` calls for.
    pub fn receive(&mut self, packet: &Packet) -> Step {
        match PacketType::try_from(packet.r#type) {
            Ok(PacketType::PacketReq) => match self.requestable.remove(&packet.id) {
                Some(path) => Step::SendFile {
                    id: packet.id,
                    path,
                },
                None => Step::Fail(format!("invalid file id {}", packet.id)),
            },
            Ok(PacketType::PacketFin) => Step::Finish,
            Ok(PacketType::PacketErr) => Step::Fail(format!(
                "error from receiver: {}",
                String::from_utf8_lossy(&packet.data)
            )),
            _ => Step::Nothing,
        }
    }
}

/// A DATA packet.
pub fn data_packet(id: u32, data: Bytes) -> Packet {
    Packet {
        r#type: PacketType::PacketData.into(),
        id,
        data,
        ..Default::default()
    }
}

/// `moby.filesync.v1.FileSync`: the session's folders.
pub(crate) struct FileSyncService {
    pub(crate) dirs: Option<Arc<LocalDirs>>,
    /// File bytes sent in DATA packets, over every call of the session.
    pub(crate) sent: Arc<AtomicU64>,
    pub(crate) tasks: Tasks,
}

/// The values of a metadata key, percent-decoded when `<key>-encoded` says so (BuildKit
/// escapes non-ASCII patterns).
fn metadata_values(metadata: &tonic::metadata::MetadataMap, key: &str) -> Vec<String> {
    let encoded = metadata
        .get(format!("{key}-encoded"))
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| matches!(v, "1" | "t" | "T" | "true" | "TRUE" | "True"));
    metadata
        .get_all(key)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| {
            if encoded {
                form_urlencoded::parse(format!("v={v}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            } else {
                v.to_string()
            }
        })
        .collect()
}

#[tonic::async_trait]
impl FileSync for FileSyncService {
    type DiffCopyStream = PacketStream;

    async fn diff_copy(
        &self,
        request: tonic::Request<tonic::Streaming<Packet>>,
    ) -> Result<tonic::Response<PacketStream>, tonic::Status> {
        let metadata = request.metadata();
        let name = metadata_values(metadata, KEY_DIR_NAME)
            .into_iter()
            .next()
            .unwrap_or_default();
        let no_access = || tonic::Status::not_found(format!("no access allowed to dir {name:?}"));
        let dirs = self.dirs.as_ref().ok_or_else(no_access)?;
        let includes = metadata_values(metadata, KEY_INCLUDE_PATTERNS);
        let excludes = metadata_values(metadata, KEY_EXCLUDE_PATTERNS);
        let follow = metadata_values(metadata, KEY_FOLLOW_PATHS);
        let (root, ignore, only) = match name.as_str() {
            DIR_CONTEXT => (dirs.context.clone(), dirs.ignore.clone(), None),
            DIR_DOCKERFILE => (
                dirs.dockerfile_dir.clone(),
                DockerIgnore::default(),
                Some(dirs.dockerfile_names.clone()),
            ),
            _ => return Err(no_access()),
        };
        let mut incoming = request.into_inner();
        let (sender, receiver) = mpsc::channel(16);
        let sent = Arc::clone(&self.sent);
        self.tasks.spawn(async move {
            let listing = tokio::task::spawn_blocking(move || {
                let mut filter = Filter::new(&root, &includes, &excludes, &follow, ignore)
                    .map_err(|e| error_chain(&e))?;
                if let Some(only) = only {
                    filter = filter.only(only);
                }
                walk(&root, &filter).map_err(|e| error_chain(&e))
            })
            .await
            .unwrap_or_else(|e| Err(format!("listing the folder failed: {e}")));
            let send = |packet: Packet| {
                let sender = sender.clone();
                async move { sender.send(Ok(packet)).await.is_ok() }
            };
            let mut exchange = match listing {
                Ok(listing) => Exchange::new(listing),
                Err(message) => {
                    let _ = send(err_packet(&message)).await;
                    return;
                }
            };
            for packet in exchange.listing_packets() {
                if !send(packet).await {
                    return;
                }
            }
            while let Ok(Some(packet)) = incoming.message().await {
                match exchange.receive(&packet) {
                    Step::SendFile { id, path } => {
                        if let Err(message) = send_file(&sender, id, &path, &sent).await {
                            let _ = send(err_packet(&message)).await;
                            return;
                        }
                    }
                    Step::Finish => {
                        let _ = send(Packet {
                            r#type: PacketType::PacketFin.into(),
                            ..Default::default()
                        })
                        .await;
                        return;
                    }
                    Step::Fail(message) => {
                        if packet.r#type != i32::from(PacketType::PacketErr) {
                            let _ = send(err_packet(&message)).await;
                        }
                        return;
                    }
                    Step::Nothing => {}
                }
            }
        });
        Ok(tonic::Response::new(PacketStream { receiver }))
    }

    type TarStreamStream = PacketStream;

    async fn tar_stream(
        &self,
        _request: tonic::Request<tonic::Streaming<Packet>>,
    ) -> Result<tonic::Response<PacketStream>, tonic::Status> {
        Err(tonic::Status::unimplemented(
            "TarStream is not served; use DiffCopy",
        ))
    }
}

fn err_packet(message: &str) -> Packet {
    Packet {
        r#type: PacketType::PacketErr.into(),
        data: Bytes::from(message.to_string()),
        ..Default::default()
    }
}

/// An error and its sources on one line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// Sends the file at `path` as DATA packets of id `id` and an empty one, counting its bytes.
async fn send_file(
    sender: &mpsc::Sender<Result<Packet, tonic::Status>>,
    id: u32,
    path: &Path,
    sent: &AtomicU64,
) -> Result<(), String> {
    // fsutil sends an empty file when it cannot be opened any more (removed since the listing).
    if let Ok(mut file) = tokio::fs::File::open(path).await {
        loop {
            let mut buf = vec![0u8; DATA_CHUNK];
            let n = file
                .read(&mut buf)
                .await
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            if n == 0 {
                break;
            }
            buf.truncate(n);
            if sender
                .send(Ok(data_packet(id, Bytes::from(buf))))
                .await
                .is_err()
            {
                return Ok(());
            }
            sent.fetch_add(n as u64, Ordering::Relaxed);
        }
    }
    let _ = sender.send(Ok(data_packet(id, Bytes::new()))).await;
    Ok(())
}

/// The packets of a DiffCopy answer, as they are produced.
pub(crate) struct PacketStream {
    receiver: mpsc::Receiver<Result<Packet, tonic::Status>>,
}

impl fmt::Debug for PacketStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PacketStream").finish_non_exhaustive()
    }
}

impl futures_core::Stream for PacketStream {
    type Item = Result<Packet, tonic::Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.receiver.poll_recv(cx)
    }
}

#[cfg(test)]
mod tests;

//! Build contexts: a directory filtered by its ignore file, or a ready-made tar, sent to the daemon
//! as a tar stream.
//!
//! [`Context::from_dir`] plans a context the way the Docker CLI does: it checks the directory and
//! the Dockerfile, picks the ignore file (`<Dockerfile>.dockerignore` beside the Dockerfile if it
//! exists, else the root `.dockerignore`), walks the tree applying the
//! [`dockerignore`](crate::dockerignore) rules, and checks that every file it will send can be
//! opened. Nothing is read yet. [`Context::into_stream`] then writes the tar on a blocking thread,
//! reading each file only as its entry is written, and hands it out in chunks of at most
//! [`CHUNK_SIZE`] bytes through a channel of [`CHANNEL_CAPACITY`] chunks, so a context of any size
//! is sent in bounded memory and at the pace the consumer takes it.
//!
//! # The archive
//!
//! - Entries appear in walk order: depth first, each directory before its contents, the entries
//!   of a directory sorted by the bytes of their names (the order of Go's `filepath.Walk`, which
//!   the Docker CLI uses). The same tree therefore always gives the same archive.
//! - Names are relative, `/`-separated, directories end in `/`; long names and link targets use
//!   GNU extensions.
//! - Directories (empty ones too), regular files, symbolic links (kept as links, never followed),
//!   FIFOs and device nodes are sent; sockets are skipped, as Docker skips them. A file with
//!   several hard links inside the context is sent once and then as hard links to that entry.
//! - Permission bits (including the executable bits) and the modification time, truncated to whole
//!   seconds, are kept, as Docker's own archiver keeps them; uid and gid are 0 and no user or
//!   group names are written, as the Docker CLI sends contexts.
//! - The Dockerfile, `.dockerignore` and the Dockerfile-specific ignore file in use are always
//!   sent, even when the ignore rules match them (the daemon needs them); a directory that is
//!   excluded but holds something re-included is sent as a directory entry before its first
//!   included descendant, so the archive stays self-contained.
//!
//! ```
//! use std::future::poll_fn;
//! use std::pin::Pin;
//!
//! use docker_build::context::Context;
//! use futures_core::Stream;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = std::env::temp_dir().join(format!("context-doc-{}", std::process::id()));
//! std::fs::create_dir_all(dir.join("target"))?;
//! std::fs::write(dir.join("Dockerfile"), "FROM scratch\nCOPY . /\n")?;
//! std::fs::write(dir.join(".dockerignore"), "target\n")?;
//! std::fs::write(dir.join("target/big.bin"), [0u8; 1024])?;
//!
//! let context = Context::from_dir(&dir, None)?;
//! assert_eq!(context.dockerfile_path_in_context(), "Dockerfile");
//! let paths: Vec<&str> = context.entries().iter().map(|e| e.path()).collect();
//! assert_eq!(paths, [".dockerignore", "Dockerfile"]);
//!
//! let runtime = tokio::runtime::Builder::new_current_thread().build()?;
//! let tar = runtime.block_on(async {
//!     let mut stream = context.into_stream();
//!     let mut tar = Vec::new();
//!     while let Some(chunk) = poll_fn(|cx| Pin::new(&mut stream).poll_next(cx)).await {
//!         tar.extend_from_slice(&chunk?);
//!     }
//!     Ok::<_, docker_build::context::ContextError>(tar)
//! })?;
//! assert_eq!(tar.len() % 512, 0);
//! std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};
use std::pin::Pin;
use std::task::{self, Poll};

use bytes::Bytes;
use futures_core::Stream;
use tokio::sync::mpsc;

use crate::dockerignore::{DOCKERIGNORE_FILE, DockerIgnore, IgnoreError, dockerfile_ignore_file};

/// Largest chunk [`ContextStream`] yields, in bytes (64 KiB). Every chunk but the last is exactly
/// this size.
pub const CHUNK_SIZE: usize = 64 * 1024;

/// How many chunks may wait in the channel between the thread writing the tar and the consumer.
///
/// With the chunk being filled and the one the consumer holds, at most `CHANNEL_CAPACITY + 2`
/// chunks (384 KiB) of the archive are in memory at once.
pub const CHANNEL_CAPACITY: usize = 4;

/// The Dockerfile name used when none is given.
pub const DEFAULT_DOCKERFILE: &str = "Dockerfile";

/// The name the Docker CLI falls back to when `Dockerfile` does not exist and none was given.
const FALLBACK_DOCKERFILE: &str = "dockerfile";

/// Why a build context could not be planned ([`Context::from_dir`]) or streamed
/// ([`Context::into_stream`]).
///
/// Every variant that concerns a file system object names it by its path (the context directory
/// joined with the relative path).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ContextError {
    /// Planning: the context directory does not exist or cannot be inspected.
    #[error("cannot access the build context directory {}", path.display())]
    Directory {
        /// The directory as given.
        path: PathBuf,
        /// Why it could not be inspected.
        #[source]
        source: io::Error,
    },
    /// Planning: the context path exists but is not a directory.
    #[error("the build context {} is not a directory", path.display())]
    NotADirectory {
        /// The path as given.
        path: PathBuf,
    },
    /// Planning: the Dockerfile path is not inside the context directory (it is absolute and
    /// elsewhere, climbs out with `..`, or is empty).
    #[error("the Dockerfile path {} is not inside the build context", path.display())]
    DockerfileOutsideContext {
        /// The Dockerfile path as given.
        path: PathBuf,
    },
    /// Planning: the Dockerfile does not exist or cannot be inspected.
    #[error("cannot locate the Dockerfile {}", path.display())]
    DockerfileNotFound {
        /// Where the Dockerfile was looked for.
        path: PathBuf,
        /// Why it could not be inspected.
        #[source]
        source: io::Error,
    },
    /// Planning: the Dockerfile path names something other than a file (e.g. a directory).
    #[error("the Dockerfile {} is not a file", path.display())]
    DockerfileNotAFile {
        /// The Dockerfile path in the context directory.
        path: PathBuf,
    },
    /// Planning: the ignore file exists but cannot be read.
    #[error("cannot read the ignore file {}", path.display())]
    ReadIgnoreFile {
        /// The ignore file.
        path: PathBuf,
        /// Why it could not be read.
        #[source]
        source: io::Error,
    },
    /// Planning: the ignore file has an invalid line.
    #[error("invalid ignore file {}", path.display())]
    InvalidIgnoreFile {
        /// The ignore file.
        path: PathBuf,
        /// The invalid line and what is wrong with it.
        #[source]
        source: IgnoreError,
    },
    /// Planning: a directory of the context cannot be listed.
    #[error("cannot read the directory {} of the build context", path.display())]
    ReadDirectory {
        /// The directory.
        path: PathBuf,
        /// Why it could not be listed.
        #[source]
        source: io::Error,
    },
    /// Planning: the type of a directory entry cannot be determined.
    #[error("cannot inspect {} in the build context", path.display())]
    Stat {
        /// The entry.
        path: PathBuf,
        /// Why it could not be inspected.
        #[source]
        source: io::Error,
    },
    /// Planning: a file that would be sent cannot be opened for reading.
    #[error("cannot read {} in the build context", path.display())]
    UnreadableFile {
        /// The file.
        path: PathBuf,
        /// Why it could not be opened.
        #[source]
        source: io::Error,
    },
    /// Planning: a name in the context (or the Dockerfile path) is not valid UTF-8, which the
    /// ignore rules cannot be matched against.
    #[error("{} is not a valid UTF-8 path", path.display())]
    NonUtf8Path {
        /// The path.
        path: PathBuf,
    },
    /// Streaming: a planned entry could not be read (it vanished, changed type, shrank while
    /// being read, or an I/O error occurred). It is the stream's last item.
    #[error("cannot read {} while sending the build context", path.display())]
    Read {
        /// The entry.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: io::Error,
    },
    /// Streaming: the tar format cannot represent an entry. It is the stream's last item.
    #[error("cannot add {} to the build context archive", path.display())]
    Archive {
        /// The entry.
        path: PathBuf,
        /// What the tar writer reported.
        #[source]
        source: io::Error,
    },
    /// Streaming: the stream was polled outside a Tokio runtime, which it needs to run the
    /// blocking thread that writes the archive.
    #[error("the build context stream must be polled within a Tokio runtime")]
    NoRuntime,
    /// Streaming: the thread writing the archive stopped without finishing or reporting an
    /// error (it panicked, or the runtime shut down).
    #[error("the build context archive writer stopped unexpectedly")]
    Interrupted,
}

/// What kind of file system object a [`ContextEntry`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EntryKind {
    /// A regular file; its contents are sent.
    File,
    /// A directory.
    Directory,
    /// A symbolic link, sent as a link with its target (never followed).
    Symlink,
    /// A named pipe, sent as a FIFO entry without contents.
    Fifo,
    /// A character device node.
    CharDevice,
    /// A block device node.
    BlockDevice,
}

/// One planned entry of a directory context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextEntry {
    path: String,
    kind: EntryKind,
}

impl ContextEntry {
    /// The `/`-separated path relative to the context root (without the trailing `/` that the
    /// archive gives directory names).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// What kind of object it is.
    pub fn kind(&self) -> EntryKind {
        self.kind
    }
}

/// A build context, ready to be sent as the body of `POST /build`.
///
/// See the [module documentation](self) for what the archive holds.
#[derive(Debug, Clone)]
pub struct Context {
    source: Source,
    dockerfile: String,
    ignore_file: Option<String>,
}

#[derive(Debug, Clone)]
enum Source {
    Directory {
        root: PathBuf,
        entries: Vec<ContextEntry>,
    },
    Tar(Bytes),
}

impl Context {
    /// Plans the context of the directory `dir`, with the Dockerfile at `dockerfile` (relative to
    /// `dir`; an absolute path inside `dir` is accepted too).
    ///
    /// Without `dockerfile`, `Dockerfile` is used, or `dockerfile` if only that exists (as the
    /// Docker CLI does). The ignore file is `<Dockerfile>.dockerignore` beside the Dockerfile if
    /// it exists, else `.dockerignore` at the root of `dir`, else none.
    ///
    /// This does blocking file system I/O (it walks the whole tree); from async code, run it with
    /// `tokio::task::spawn_blocking` when the tree may be large.
    ///
    /// # Errors
    ///
    /// A [`ContextError`] naming the path: the directory is missing or not a directory; the
    /// Dockerfile is outside the context, missing, or not a file; the ignore file cannot be read
    /// or is invalid (with the line); a directory cannot be listed or a file to send cannot be
    /// opened; a name is not UTF-8.
    pub fn from_dir(
        dir: impl AsRef<Path>,
        dockerfile: Option<&Path>,
    ) -> Result<Self, ContextError> {
        let root = dir.as_ref().to_path_buf();
        let metadata = fs::metadata(&root).map_err(|source| ContextError::Directory {
            path: root.clone(),
            source,
        })?;
        if !metadata.is_dir() {
            return Err(ContextError::NotADirectory { path: root });
        }

        let dockerfile = match dockerfile {
            Some(path) => relative_dockerfile(&root, path)?,
            None => default_dockerfile(&root),
        };
        let dockerfile_path = root.join(&dockerfile);
        match fs::metadata(&dockerfile_path) {
            Ok(metadata) if metadata.is_file() => {}
            Ok(_) => {
                return Err(ContextError::DockerfileNotAFile {
                    path: dockerfile_path,
                });
            }
            Err(source) => {
                return Err(ContextError::DockerfileNotFound {
                    path: dockerfile_path,
                    source,
                });
            }
        }

        let specific = dockerfile_ignore_file(&dockerfile);
        let (ignore_file, ignore) = match read_ignore_file(&root, &specific)? {
            Some(ignore) => (Some(specific), ignore),
            None => match read_ignore_file(&root, DOCKERIGNORE_FILE)? {
                Some(ignore) => (Some(DOCKERIGNORE_FILE.to_owned()), ignore),
                None => (None, DockerIgnore::default()),
            },
        };

        // Always sent, whatever the rules say: the daemon needs them.
        let mut always = vec![dockerfile.clone(), DOCKERIGNORE_FILE.to_owned()];
        always.extend(ignore_file.clone());

        let mut walker = Walker {
            root: &root,
            ignore: &ignore,
            always: &always,
            entries: Vec::new(),
            open_dirs: Vec::new(),
        };
        walker.walk("")?;
        let entries = walker.entries;

        Ok(Self {
            source: Source::Directory { root, entries },
            dockerfile,
            ignore_file,
        })
    }

    /// A context that is already a tar archive, with the Dockerfile at `Dockerfile`.
    ///
    /// The archive is sent as it is, in one chunk.
    ///
    /// ```
    /// use docker_build::context::Context;
    ///
    /// let context = Context::from_tar(bytes::Bytes::from_static(&[0; 1024]));
    /// assert_eq!(context.dockerfile_path_in_context(), "Dockerfile");
    /// assert!(context.entries().is_empty());
    /// ```
    pub fn from_tar(tar: Bytes) -> Self {
        Self::from_tar_with_dockerfile(tar, DEFAULT_DOCKERFILE)
    }

    /// A context that is already a tar archive, with the Dockerfile at `dockerfile` (its
    /// `/`-separated path inside the archive).
    pub fn from_tar_with_dockerfile(tar: Bytes, dockerfile: impl Into<String>) -> Self {
        Self {
            source: Source::Tar(tar),
            dockerfile: dockerfile.into(),
            ignore_file: None,
        }
    }

    /// The Dockerfile's `/`-separated path inside the context: the value of the `dockerfile`
    /// query parameter of `POST /build`.
    pub fn dockerfile_path_in_context(&self) -> &str {
        &self.dockerfile
    }

    /// The ignore file that was applied (`.dockerignore` or `<Dockerfile>.dockerignore`), as a
    /// path inside the context; `None` when there was none, or for a tar context.
    pub fn ignore_file_in_context(&self) -> Option<&str> {
        self.ignore_file.as_deref()
    }

    /// The directory a directory context was planned from; `None` for a tar context.
    pub fn root(&self) -> Option<&Path> {
        match &self.source {
            Source::Directory { root, .. } => Some(root),
            Source::Tar(_) => None,
        }
    }

    /// The planned entries of a directory context, in archive order; empty for a tar context.
    pub fn entries(&self) -> &[ContextEntry] {
        match &self.source {
            Source::Directory { entries, .. } => entries,
            Source::Tar(_) => &[],
        }
    }

    /// The context as a stream of tar chunks.
    ///
    /// For a directory context, the first poll starts a blocking thread (which is why the stream
    /// must be polled within a Tokio runtime) that writes the archive, reading each file as its
    /// entry is written. Chunks hold at most [`CHUNK_SIZE`] bytes and at most
    /// [`CHANNEL_CAPACITY`] wait for the consumer, so the writer pauses while the consumer is
    /// slow. If an entry cannot be read, the stream yields an `Err` naming it and ends; dropping
    /// the stream stops the writer.
    pub fn into_stream(self) -> ContextStream {
        let state = match self.source {
            Source::Tar(tar) => State::Tar(tar),
            Source::Directory { root, entries } => State::NotStarted { root, entries },
        };
        ContextStream { state }
    }
}

/// Resolves a Dockerfile path given by the caller to a `/`-separated path inside `root`.
fn relative_dockerfile(root: &Path, path: &Path) -> Result<String, ContextError> {
    let outside = || ContextError::DockerfileOutsideContext {
        path: path.to_path_buf(),
    };
    let relative = if path.is_absolute() {
        path.strip_prefix(root).map_err(|_| outside())?
    } else {
        path
    };
    let mut parts: Vec<&str> = Vec::new();
    for component in relative.components() {
        match component {
            Component::Normal(name) => {
                parts.push(name.to_str().ok_or_else(|| ContextError::NonUtf8Path {
                    path: path.to_path_buf(),
                })?)
            }
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop().ok_or_else(outside)?;
            }
            Component::RootDir | Component::Prefix(_) => return Err(outside()),
        }
    }
    if parts.is_empty() {
        return Err(outside());
    }
    Ok(parts.join("/"))
}

/// `Dockerfile`, or `dockerfile` when only that exists.
fn default_dockerfile(root: &Path) -> String {
    let missing = |name: &str| matches!(fs::symlink_metadata(root.join(name)), Err(e) if e.kind() == io::ErrorKind::NotFound);
    if missing(DEFAULT_DOCKERFILE) && !missing(FALLBACK_DOCKERFILE) {
        FALLBACK_DOCKERFILE.to_owned()
    } else {
        DEFAULT_DOCKERFILE.to_owned()
    }
}

/// Reads and parses the ignore file `name` of `root`; `None` if it does not exist.
fn read_ignore_file(root: &Path, name: &str) -> Result<Option<DockerIgnore>, ContextError> {
    let path = root.join(name);
    let text = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(ContextError::ReadIgnoreFile { path, source }),
    };
    DockerIgnore::parse(&String::from_utf8_lossy(&text))
        .map(Some)
        .map_err(|source| ContextError::InvalidIgnoreFile { path, source })
}

/// The planning walk.
struct Walker<'a> {
    root: &'a Path,
    ignore: &'a DockerIgnore,
    /// Paths sent whatever the ignore rules say.
    always: &'a [String],
    entries: Vec<ContextEntry>,
    /// The directories being walked, outermost first, each with whether its entry was planned.
    /// An excluded directory is walked only when something beneath may be re-included; its entry
    /// is planned just before the first such thing.
    open_dirs: Vec<(String, bool)>,
}

impl Walker<'_> {
    fn walk(&mut self, dir: &str) -> Result<(), ContextError> {
        let dir_path = if dir.is_empty() {
            self.root.to_path_buf()
        } else {
            self.root.join(dir)
        };
        let read_error = |source| ContextError::ReadDirectory {
            path: dir_path.clone(),
            source,
        };
        let mut children: Vec<(OsString, fs::FileType)> = Vec::new();
        for entry in fs::read_dir(&dir_path).map_err(read_error)? {
            let entry = entry.map_err(read_error)?;
            let file_type = entry.file_type().map_err(|source| ContextError::Stat {
                path: entry.path(),
                source,
            })?;
            children.push((entry.file_name(), file_type));
        }
        // On Unix, `OsString` orders by bytes.
        children.sort_by(|a, b| a.0.cmp(&b.0));

        for (name, file_type) in children {
            let path = dir_path.join(&name);
            let name = name
                .to_str()
                .ok_or_else(|| ContextError::NonUtf8Path { path: path.clone() })?;
            let relative = if dir.is_empty() {
                name.to_owned()
            } else {
                format!("{dir}/{name}")
            };
            let included = self.always.contains(&relative) || !self.ignore.is_excluded(&relative);

            if file_type.is_dir() {
                if included {
                    self.plan_open_dirs();
                    self.entries.push(ContextEntry {
                        path: relative.clone(),
                        kind: EntryKind::Directory,
                    });
                } else if !self.may_include_beneath(&relative) {
                    continue;
                }
                self.open_dirs.push((relative.clone(), included));
                let walked = self.walk(&relative);
                self.open_dirs.pop();
                walked?;
                continue;
            }

            if !included {
                continue;
            }
            let kind = if file_type.is_file() {
                // Like the Docker CLI, make sure every file can be read before sending anything.
                File::open(&path)
                    .map_err(|source| ContextError::UnreadableFile { path, source })?;
                EntryKind::File
            } else if file_type.is_symlink() {
                EntryKind::Symlink
            } else if file_type.is_fifo() {
                EntryKind::Fifo
            } else if file_type.is_char_device() {
                EntryKind::CharDevice
            } else if file_type.is_block_device() {
                EntryKind::BlockDevice
            } else {
                // Sockets cannot be archived; Docker skips them too.
                continue;
            };
            self.plan_open_dirs();
            self.entries.push(ContextEntry {
                path: relative,
                kind,
            });
        }
        Ok(())
    }

    /// Whether an excluded directory must still be walked.
    fn may_include_beneath(&self, dir: &str) -> bool {
        self.ignore.may_include_beneath(dir)
            || self.always.iter().any(|path| {
                path.len() > dir.len()
                    && path.starts_with(dir)
                    && path.as_bytes()[dir.len()] == b'/'
            })
    }

    /// Plans the entries of the excluded directories being walked, before something inside them.
    fn plan_open_dirs(&mut self) {
        for (path, planned) in &mut self.open_dirs {
            if !*planned {
                *planned = true;
                self.entries.push(ContextEntry {
                    path: path.clone(),
                    kind: EntryKind::Directory,
                });
            }
        }
    }
}

/// The tar stream of a [`Context`], from [`Context::into_stream`].
///
/// Yields chunks of at most [`CHUNK_SIZE`] bytes; an `Err` is always the last item.
#[derive(Debug)]
pub struct ContextStream {
    state: State,
}

#[derive(Debug)]
enum State {
    /// A ready-made tar, not yet yielded.
    Tar(Bytes),
    /// A directory context whose writer has not started.
    NotStarted {
        root: PathBuf,
        entries: Vec<ContextEntry>,
    },
    /// The writer is running.
    Running(mpsc::Receiver<Message>),
    /// Everything was yielded.
    Done,
}

/// What the writer thread sends.
#[derive(Debug)]
enum Message {
    Data(Bytes),
    Failed(ContextError),
    Finished,
}

impl Stream for ContextStream {
    type Item = Result<Bytes, ContextError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut task::Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            match std::mem::replace(&mut this.state, State::Done) {
                State::Done => return Poll::Ready(None),
                State::Tar(tar) if tar.is_empty() => return Poll::Ready(None),
                State::Tar(tar) => return Poll::Ready(Some(Ok(tar))),
                State::NotStarted { root, entries } => {
                    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                        return Poll::Ready(Some(Err(ContextError::NoRuntime)));
                    };
                    let (sender, receiver) = mpsc::channel(CHANNEL_CAPACITY);
                    runtime.spawn_blocking(move || write_archive(&root, &entries, &sender));
                    this.state = State::Running(receiver);
                }
                State::Running(mut receiver) => {
                    return match receiver.poll_recv(cx) {
                        Poll::Pending => {
                            this.state = State::Running(receiver);
                            Poll::Pending
                        }
                        Poll::Ready(Some(Message::Data(chunk))) => {
                            this.state = State::Running(receiver);
                            Poll::Ready(Some(Ok(chunk)))
                        }
                        Poll::Ready(Some(Message::Failed(error))) => Poll::Ready(Some(Err(error))),
                        Poll::Ready(Some(Message::Finished)) => Poll::Ready(None),
                        Poll::Ready(None) => Poll::Ready(Some(Err(ContextError::Interrupted))),
                    };
                }
            }
        }
    }
}

/// Cuts what the tar writer writes into chunks of [`CHUNK_SIZE`] and sends them, blocking while
/// the channel is full.
struct ChunkWriter {
    sender: mpsc::Sender<Message>,
    buffer: Vec<u8>,
    /// The consumer dropped the stream.
    disconnected: bool,
    /// Writing failed: whatever comes next (the trailer the tar builder writes when dropped) is
    /// thrown away, so that the error stays the last item.
    discarding: bool,
}

impl ChunkWriter {
    fn new(sender: mpsc::Sender<Message>) -> Self {
        Self {
            sender,
            buffer: Vec::with_capacity(CHUNK_SIZE),
            disconnected: false,
            discarding: false,
        }
    }

    fn send_buffer(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK_SIZE));
        self.sender
            .blocking_send(Message::Data(Bytes::from(chunk)))
            .map_err(|_| {
                self.disconnected = true;
                io::Error::new(io::ErrorKind::BrokenPipe, "the context stream was dropped")
            })
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.discarding {
            return Ok(data.len());
        }
        if self.disconnected {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the context stream was dropped",
            ));
        }
        let taken = data.len().min(CHUNK_SIZE - self.buffer.len());
        self.buffer.extend_from_slice(&data[..taken]);
        if self.buffer.len() == CHUNK_SIZE {
            self.send_buffer()?;
        }
        Ok(taken)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Partial chunks are sent when the archive is complete, not on flush.
        Ok(())
    }
}

/// Reads exactly the size recorded in the header, and remembers whether reading failed.
struct ExactReader {
    file: File,
    remaining: u64,
    failed: bool,
}

impl Read for ExactReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let limit = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        match self.file.read(&mut buf[..limit]) {
            Ok(0) => {
                self.failed = true;
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the file shrank while it was being sent",
                ))
            }
            Ok(n) => {
                self.remaining -= n as u64;
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                self.failed = true;
                Err(e)
            }
        }
    }
}

/// Why writing the archive stopped early.
enum Stop {
    Failed(ContextError),
    ConsumerGone,
}

/// The body of the writer thread.
fn write_archive(root: &Path, entries: &[ContextEntry], sender: &mpsc::Sender<Message>) {
    let mut builder = tar::Builder::new(ChunkWriter::new(sender.clone()));
    let mut hard_links = HashMap::new();
    for entry in entries {
        if let Err(stop) = append_entry(&mut builder, root, entry, &mut hard_links) {
            builder.get_mut().discarding = true;
            if let Stop::Failed(error) = stop {
                // If the consumer is gone too, there is nobody to tell.
                let _ = sender.blocking_send(Message::Failed(error));
            }
            return;
        }
    }
    let finished = builder
        .into_inner()
        .and_then(|mut writer| writer.send_buffer());
    if finished.is_ok() {
        let _ = sender.blocking_send(Message::Finished);
    }
}

/// Appends one planned entry, reading it from disk now.
fn append_entry(
    builder: &mut tar::Builder<ChunkWriter>,
    root: &Path,
    entry: &ContextEntry,
    hard_links: &mut HashMap<(u64, u64), String>,
) -> Result<(), Stop> {
    let path = root.join(&entry.path);
    let read_failed = |source| {
        Stop::Failed(ContextError::Read {
            path: path.clone(),
            source,
        })
    };
    let changed = || {
        read_failed(io::Error::other(
            "it changed type since the build context was planned",
        ))
    };
    // Writing failed because the consumer left, or because the tar format refused the entry.
    let write_failed = |builder: &tar::Builder<ChunkWriter>, source| {
        if builder.get_ref().disconnected {
            Stop::ConsumerGone
        } else {
            Stop::Failed(ContextError::Archive {
                path: path.clone(),
                source,
            })
        }
    };

    let special = |builder: &mut tar::Builder<ChunkWriter>,
                   is_type: fn(&fs::FileType) -> bool,
                   entry_type| {
        let metadata = fs::symlink_metadata(&path).map_err(read_failed)?;
        if !is_type(&metadata.file_type()) {
            return Err(changed());
        }
        let mut header = header(&metadata, entry_type);
        if matches!(entry_type, tar::EntryType::Char | tar::EntryType::Block) {
            let (major, minor) = device_numbers(metadata.rdev());
            header
                .set_device_major(major)
                .and_then(|()| header.set_device_minor(minor))
                .map_err(|source| {
                    Stop::Failed(ContextError::Archive {
                        path: path.clone(),
                        source,
                    })
                })?;
        }
        builder
            .append_data(&mut header, &entry.path, io::empty())
            .map_err(|e| write_failed(builder, e))
    };

    match entry.kind {
        EntryKind::File => {
            let file = File::open(&path).map_err(read_failed)?;
            let metadata = file.metadata().map_err(read_failed)?;
            if !metadata.is_file() {
                return Err(changed());
            }
            let mut header = header(&metadata, tar::EntryType::Regular);
            if metadata.nlink() > 1 {
                let key = (metadata.dev(), metadata.ino());
                if let Some(first) = hard_links.get(&key) {
                    header.set_entry_type(tar::EntryType::Link);
                    return builder
                        .append_link(&mut header, &entry.path, first)
                        .map_err(|e| write_failed(builder, e));
                }
                hard_links.insert(key, entry.path.clone());
            }
            header.set_size(metadata.len());
            let mut reader = ExactReader {
                file,
                remaining: metadata.len(),
                failed: false,
            };
            match builder.append_data(&mut header, &entry.path, &mut reader) {
                Ok(()) => Ok(()),
                Err(e) if reader.failed => Err(read_failed(e)),
                Err(e) => Err(write_failed(builder, e)),
            }
        }
        EntryKind::Directory => {
            let metadata = fs::symlink_metadata(&path).map_err(read_failed)?;
            if !metadata.is_dir() {
                return Err(changed());
            }
            let mut header = header(&metadata, tar::EntryType::Directory);
            builder
                .append_data(&mut header, format!("{}/", entry.path), io::empty())
                .map_err(|e| write_failed(builder, e))
        }
        EntryKind::Symlink => {
            let metadata = fs::symlink_metadata(&path).map_err(read_failed)?;
            if !metadata.is_symlink() {
                return Err(changed());
            }
            let target = fs::read_link(&path).map_err(read_failed)?;
            let mut header = header(&metadata, tar::EntryType::Symlink);
            builder
                .append_link(&mut header, &entry.path, target)
                .map_err(|e| write_failed(builder, e))
        }
        EntryKind::Fifo => special(builder, fs::FileType::is_fifo, tar::EntryType::Fifo),
        EntryKind::CharDevice => {
            special(builder, fs::FileType::is_char_device, tar::EntryType::Char)
        }
        EntryKind::BlockDevice => special(
            builder,
            fs::FileType::is_block_device,
            tar::EntryType::Block,
        ),
    }
}

/// A header with the metadata Docker keeps: type, permission bits, mtime in whole seconds, and
/// owner 0:0 without names.
fn header(metadata: &fs::Metadata, entry_type: tar::EntryType) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(entry_type);
    header.set_mode(metadata.mode() & 0o7777);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(u64::try_from(metadata.mtime()).unwrap_or(0));
    header.set_size(0);
    header
}

/// Splits a Linux `dev_t` into its major and minor numbers (glibc's encoding).
fn device_numbers(rdev: u64) -> (u32, u32) {
    let major = ((rdev >> 32) & 0xffff_f000) | ((rdev >> 8) & 0x0000_0fff);
    let minor = ((rdev >> 12) & 0xffff_ff00) | (rdev & 0x0000_00ff);
    // Both fit in 32 bits by construction.
    (major as u32, minor as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerfile_paths_are_resolved_inside_the_context() {
        let root = Path::new("/ctx");
        let ok = |p: &str| relative_dockerfile(root, Path::new(p)).unwrap();
        assert_eq!(ok("Dockerfile"), "Dockerfile");
        assert_eq!(ok("./build/app.Dockerfile"), "build/app.Dockerfile");
        assert_eq!(ok("build/../Dockerfile"), "Dockerfile");
        assert_eq!(ok("/ctx/sub/Dockerfile"), "sub/Dockerfile");
        for outside in ["../Dockerfile", "/elsewhere/Dockerfile", "", ".", "a/../.."] {
            assert!(
                matches!(
                    relative_dockerfile(root, Path::new(outside)),
                    Err(ContextError::DockerfileOutsideContext { .. })
                ),
                "{outside}"
            );
        }
    }

    #[test]
    fn device_numbers_follow_the_linux_encoding() {
        // /dev/null is 1:3, /dev/sda1 8:1; a large minor uses the high bits.
        assert_eq!(device_numbers(0x0103), (1, 3));
        assert_eq!(device_numbers(0x0801), (8, 1));
        // glibc's makedev(259, 0x10001): minor bits above 8 go to bits 20 and up.
        assert_eq!(device_numbers(0x1001_0301), (259, 0x10001));
        // And the real /dev/null, which Linux documents as character device 1:3.
        let null = fs::metadata("/dev/null").unwrap();
        assert_eq!(device_numbers(null.rdev()), (1, 3));
    }

    #[test]
    fn chunk_writer_cuts_exact_chunks() {
        let (sender, mut receiver) = mpsc::channel(64);
        let handle = std::thread::spawn(move || {
            let mut writer = ChunkWriter::new(sender);
            writer.write_all(&vec![7u8; CHUNK_SIZE * 2 + 10]).unwrap();
            writer.send_buffer().unwrap();
        });
        handle.join().unwrap();
        let mut sizes = Vec::new();
        while let Ok(Message::Data(chunk)) = receiver.try_recv() {
            sizes.push(chunk.len());
        }
        assert_eq!(sizes, [CHUNK_SIZE, CHUNK_SIZE, 10]);
    }

    #[test]
    fn chunk_writer_reports_a_dropped_consumer() {
        let (sender, receiver) = mpsc::channel(1);
        drop(receiver);
        let handle = std::thread::spawn(move || {
            let mut writer = ChunkWriter::new(sender);
            let err = writer.write_all(&vec![0u8; CHUNK_SIZE]).unwrap_err();
            (err.kind(), writer.disconnected)
        });
        assert_eq!(handle.join().unwrap(), (io::ErrorKind::BrokenPipe, true));
    }
}

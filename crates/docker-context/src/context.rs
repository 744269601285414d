//! Planning a directory context and writing it as a tar (Unix only: it archives Unix file
//! metadata).

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};
use std::sync::mpsc;

use bytes::Bytes;

use crate::dockerignore::{DOCKERIGNORE_FILE, DockerIgnore, IgnoreError, dockerfile_ignore_file};

/// Largest chunk [`Context::write_chunks`] hands out, in bytes (64 KiB). Every chunk but the last is exactly
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
/// ([`Context::write_chunks`], [`Context::into_chunks`]).
///
/// Every variant that concerns a file system object names it by its path (the context directory
/// joined with the relative path).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ContextError {
    /// Planning: the context directory does not exist.
    #[error("the build context directory {} does not exist", path.display())]
    DirectoryNotFound {
        /// The directory as given.
        path: PathBuf,
    },
    /// Planning: the context directory cannot be inspected (other than missing).
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
    /// Planning: the Dockerfile does not exist (or cannot be inspected, as `source` says).
    #[error("cannot locate the Dockerfile {}", path.display())]
    DockerfileNotFound {
        /// Where the Dockerfile was looked for.
        path: PathBuf,
        /// Why it could not be inspected.
        #[source]
        source: io::Error,
    },
    /// Planning: the Dockerfile path names a directory (the context directory itself, too).
    #[error("the Dockerfile path {} is a directory, not a file", path.display())]
    DockerfileIsADirectory {
        /// The Dockerfile path as resolved.
        path: PathBuf,
    },
    /// Planning: the Dockerfile path names something other than a file or a directory (a
    /// FIFO, a device).
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
/// See the [crate documentation](crate) for what the archive holds.
#[derive(Debug, Clone)]
pub struct Context {
    source: Source,
    dockerfile: String,
    ignore_file: Option<String>,
    /// The ignore rules exclude the Dockerfile (it is sent all the same).
    dockerfile_ignored: bool,
    /// The ignore rules applied to a directory context.
    ignore: DockerIgnore,
    /// The Dockerfile on disk, for a directory context.
    dockerfile_file: Option<PathBuf>,
}

#[derive(Debug, Clone)]
enum Source {
    Directory {
        root: PathBuf,
        entries: Vec<ContextEntry>,
        outside: Option<Box<OutsideDockerfile>>,
    },
    Tar(Bytes),
}

/// A Dockerfile from outside the context directory, added to the archive under a generated
/// name, as the Docker CLI's `AddDockerfileToBuildContext` does.
#[derive(Debug, Clone)]
struct OutsideDockerfile {
    /// `.dockerfile.<20 hex digits>`.
    name: String,
    /// Its contents, read when the context was planned.
    contents: Bytes,
    /// Its modification time (seconds), given to the generated entries.
    mtime: u64,
    /// The root `.dockerignore` is a planned regular file: it is sent with the generated name
    /// appended, instead of a new one being added at the end.
    amend_ignore_file: bool,
}

/// Plans a directory context with options; from [`Context::builder`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `plan` is called"]
pub struct ContextBuilder {
    dir: PathBuf,
    dockerfile: Option<PathBuf>,
}

impl ContextBuilder {
    /// The Dockerfile, relative to the directory, or absolute. One outside the directory
    /// (absolute elsewhere, or climbing out with `..`) is read when planning and added to the
    /// archive as `.dockerfile.<hex>`, listed in the `.dockerignore` sent with it, as the
    /// Docker CLI does ([`Context::dockerfile_outside`]); it uses the root `.dockerignore`.
    pub fn dockerfile(mut self, path: impl AsRef<Path>) -> Self {
        self.dockerfile = Some(path.as_ref().to_path_buf());
        self
    }

    /// Plans the context: checks the directory and the Dockerfile, picks the ignore file
    /// (`<Dockerfile>.dockerignore` beside the Dockerfile if it exists, else `.dockerignore` at
    /// the root of the directory, else none), walks the tree applying the rules, and checks
    /// that every file to send can be opened.
    ///
    /// This does blocking file system I/O (it walks the whole tree); from async code, run it on
    /// a blocking thread when the tree may be large.
    ///
    /// # Errors
    ///
    /// A [`ContextError`] naming the path: the directory is missing or not a directory; the
    /// Dockerfile is missing, a directory, or not a file; the ignore file cannot be read
    /// or is invalid (with the line); a directory cannot be listed or a file to send cannot be
    /// opened; a name is not UTF-8.
    pub fn plan(self) -> Result<Context, ContextError> {
        Context::plan(&self.dir, self.dockerfile.as_deref())
    }
}

impl Context {
    /// Plans the context of the directory `dir` with its default Dockerfile: `Dockerfile`, or
    /// `dockerfile` if only that exists (as the Docker CLI does). The same as
    /// `Context::builder(dir).plan()`; see [`ContextBuilder::plan`] for what is checked.
    ///
    /// # Errors
    ///
    /// As [`ContextBuilder::plan`].
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self, ContextError> {
        Self::builder(dir).plan()
    }

    /// A builder for the context of the directory `dir`, to name another Dockerfile.
    ///
    /// ```no_run
    /// let context = docker_context::Context::builder("./app")
    ///     .dockerfile("./app/build/release.Dockerfile")
    ///     .plan()?;
    /// # Ok::<(), docker_context::ContextError>(())
    /// ```
    pub fn builder(dir: impl AsRef<Path>) -> ContextBuilder {
        ContextBuilder {
            dir: dir.as_ref().to_path_buf(),
            dockerfile: None,
        }
    }

    fn plan(dir: &Path, dockerfile: Option<&Path>) -> Result<Self, ContextError> {
        let root = dir.to_path_buf();
        let metadata = fs::metadata(&root).map_err(|source| {
            if source.kind() == io::ErrorKind::NotFound {
                ContextError::DirectoryNotFound { path: root.clone() }
            } else {
                ContextError::Directory {
                    path: root.clone(),
                    source,
                }
            }
        })?;
        if !metadata.is_dir() {
            return Err(ContextError::NotADirectory { path: root });
        }

        let located = match dockerfile {
            Some(path) => locate_dockerfile(&root, path)?,
            None => Located::Inside(default_dockerfile(&root)),
        };
        let (dockerfile, dockerfile_file, mut outside) = match located {
            Located::Inside(dockerfile) => {
                let file = root.join(&dockerfile);
                check_dockerfile(&file)?;
                (dockerfile, file, None)
            }
            Located::Outside(path) => {
                let outside = read_outside_dockerfile(&path)?;
                (outside.name.clone(), path, Some(Box::new(outside)))
            }
        };

        // The Dockerfile-specific ignore file lives beside a Dockerfile inside the context.
        let specific = outside
            .is_none()
            .then(|| dockerfile_ignore_file(&dockerfile));
        let specific = match &specific {
            Some(name) => read_ignore_file(&root, name)?.map(|ignore| (name.clone(), ignore)),
            None => None,
        };
        let (ignore_file, ignore) = match specific {
            Some((name, ignore)) => (Some(name), ignore),
            None => match read_ignore_file(&root, DOCKERIGNORE_FILE)? {
                Some(ignore) => (Some(DOCKERIGNORE_FILE.to_owned()), ignore),
                None => (None, DockerIgnore::default()),
            },
        };
        // An outside Dockerfile is listed in the `.dockerignore` sent with it.
        let dockerfile_ignored = outside.is_some() || ignore.is_excluded(&dockerfile);

        // Always sent, whatever the rules say: the daemon needs them.
        let mut always = vec![DOCKERIGNORE_FILE.to_owned()];
        if outside.is_none() {
            always.push(dockerfile.clone());
        }
        always.extend(ignore_file.clone());

        let mut walker = Walker {
            root: &root,
            ignore: &ignore,
            always: &always,
            entries: Vec::new(),
            open_dirs: Vec::new(),
        };
        walker.walk("")?;
        let mut entries = walker.entries;
        if let Some(outside) = &mut outside {
            // A file of the context with the generated name would be replaced by it.
            entries.retain(|e| e.path != outside.name);
            outside.amend_ignore_file = entries
                .iter()
                .any(|e| e.path == DOCKERIGNORE_FILE && e.kind == EntryKind::File);
        }

        Ok(Self {
            source: Source::Directory {
                root,
                entries,
                outside,
            },
            dockerfile,
            ignore_file,
            dockerfile_ignored,
            ignore,
            dockerfile_file: Some(dockerfile_file),
        })
    }

    /// A context that is already a tar archive, with the Dockerfile at `Dockerfile`.
    ///
    /// The archive is sent as it is, in one chunk.
    ///
    /// ```
    /// use docker_context::Context;
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
            dockerfile_ignored: false,
            ignore: DockerIgnore::default(),
            dockerfile_file: None,
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

    /// The rules of the [ignore file](Self::ignore_file_in_context) that was applied (empty
    /// when there was none, or for a tar context).
    pub fn ignore_rules(&self) -> &DockerIgnore {
        &self.ignore
    }

    /// The Dockerfile on disk: the directory joined with its path inside, or the file outside
    /// the directory that [`ContextBuilder::dockerfile`] named; `None` for a tar context. A
    /// BuildKit session serves the Dockerfile from this file's folder, under this file's name.
    pub fn dockerfile_file(&self) -> Option<&Path> {
        self.dockerfile_file.as_deref()
    }

    /// Whether the Dockerfile is in the archive although the build's ignore rules leave it
    /// out: the ignore file excludes it, or it came from outside the directory (sent as
    /// `.dockerfile.<hex>` and listed in the `.dockerignore` sent with it, as the Docker CLI
    /// does). The classic builder removes such a file from the context itself; a BuildKit
    /// build that gets the context as this archive (no session) applies no ignore rules, so
    /// `COPY .` copies it. Always `false` for a tar context.
    pub fn dockerfile_ignored(&self) -> bool {
        self.dockerfile_ignored
    }

    /// Whether the Dockerfile came from outside the context directory and is sent under the
    /// generated name [`Context::dockerfile_path_in_context`] (`.dockerfile.<hex>`).
    pub fn dockerfile_outside(&self) -> bool {
        matches!(
            &self.source,
            Source::Directory {
                outside: Some(_),
                ..
            }
        )
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

    /// Writes the archive on the calling thread, handing each chunk to `send` as soon as it is
    /// full, and reading each file only as its entry is written.
    ///
    /// Chunks hold exactly [`CHUNK_SIZE`] bytes, the last one at most that (a tar context is
    /// handed out as it is, in one chunk). When `send` returns [`Disconnected`] the writer stops
    /// and returns `Ok`: nobody is left to tell. This blocks on file I/O; from async code run it
    /// on a blocking thread (as `docker-build` does).
    ///
    /// # Errors
    ///
    /// [`ContextError::Read`] or [`ContextError::Archive`] naming the entry that could not be
    /// read or archived; chunks handed out before it stay valid.
    pub fn write_chunks(
        self,
        mut send: impl FnMut(Bytes) -> Result<(), Disconnected>,
    ) -> Result<(), ContextError> {
        match self.source {
            Source::Tar(tar) if tar.is_empty() => Ok(()),
            Source::Tar(tar) => {
                let _ = send(tar);
                Ok(())
            }
            Source::Directory {
                root,
                entries,
                outside,
            } => write_archive(&root, &entries, outside.as_deref(), send),
        }
    }

    /// The archive as an iterator of chunks, written by a thread that stays at most
    /// [`CHANNEL_CAPACITY`] chunks ahead of the consumer, so a context of any size is sent in
    /// bounded memory. An `Err` naming the entry that could not be read is the last item;
    /// dropping the iterator stops the writer.
    pub fn into_chunks(self) -> Chunks {
        let (sender, receiver) = mpsc::sync_channel(CHANNEL_CAPACITY);
        std::thread::spawn(move || {
            let data = sender.clone();
            let result = self
                .write_chunks(|chunk| data.send(Message::Data(chunk)).map_err(|_| Disconnected));
            let _ = sender.send(match result {
                Ok(()) => Message::Finished,
                Err(error) => Message::Failed(error),
            });
        });
        Chunks {
            receiver,
            done: false,
        }
    }
}

/// Where a Dockerfile named by the caller is.
#[derive(Debug, PartialEq, Eq)]
enum Located {
    /// Inside the context: its `/`-separated path there.
    Inside(String),
    /// Outside the context: the file.
    Outside(PathBuf),
}

/// Resolves a Dockerfile path given by the caller: relative to `root`, or absolute. A path
/// that leaves `root` (absolute elsewhere, or climbing out with `..`) is outside.
fn locate_dockerfile(root: &Path, path: &Path) -> Result<Located, ContextError> {
    let outside = || Located::Outside(root.join(path));
    let relative = if path.is_absolute() {
        match path.strip_prefix(root) {
            Ok(relative) => relative,
            Err(_) => return Ok(outside()),
        }
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
                if parts.pop().is_none() {
                    return Ok(outside());
                }
            }
            Component::RootDir | Component::Prefix(_) => return Ok(outside()),
        }
    }
    if parts.is_empty() {
        // The context directory itself.
        return Err(ContextError::DockerfileIsADirectory {
            path: root.join(path),
        });
    }
    Ok(Located::Inside(parts.join("/")))
}

/// Checks that the Dockerfile at `path` is a file (following links, as the daemon does).
fn check_dockerfile(path: &Path) -> Result<fs::Metadata, ContextError> {
    match fs::metadata(path) {
        Ok(metadata) if metadata.is_file() => Ok(metadata),
        Ok(metadata) if metadata.is_dir() => Err(ContextError::DockerfileIsADirectory {
            path: path.to_path_buf(),
        }),
        Ok(_) => Err(ContextError::DockerfileNotAFile {
            path: path.to_path_buf(),
        }),
        Err(source) => Err(ContextError::DockerfileNotFound {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Reads a Dockerfile from outside the context and names it `.dockerfile.<hex>`.
fn read_outside_dockerfile(path: &Path) -> Result<OutsideDockerfile, ContextError> {
    let metadata = check_dockerfile(path)?;
    let contents = fs::read(path).map_err(|source| ContextError::UnreadableFile {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(OutsideDockerfile {
        name: generated_dockerfile_name(&contents),
        contents: Bytes::from(contents),
        mtime: u64::try_from(metadata.mtime()).unwrap_or(0),
        amend_ignore_file: false,
    })
}

/// `.dockerfile.` and 20 hex digits, as the Docker CLI names a Dockerfile it adds to the
/// context. The CLI draws them at random; here they are a hash of the contents (two FNV-1a
/// passes), so the same Dockerfile gets the same name and a build that sees the file (BuildKit
/// without a session, where `COPY .` copies it) keeps its cache while the Dockerfile does not
/// change.
fn generated_dockerfile_name(contents: &[u8]) -> String {
    let fnv = |seed: u64| {
        contents.iter().fold(seed, |hash, &byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        })
    };
    let (a, b) = (fnv(0xcbf2_9ce4_8422_2325), fnv(0x6c62_272e_07bb_0142));
    let hex = format!("{a:016x}{b:016x}");
    format!(".dockerfile.{}", &hex[..20])
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

/// The archive as an iterator of chunks, from [`Context::into_chunks`].
///
/// Yields chunks of at most [`CHUNK_SIZE`] bytes; an `Err` is always the last item. A thread
/// writes the archive ahead of the consumer, at most [`CHANNEL_CAPACITY`] chunks ahead; dropping
/// the iterator stops it.
#[derive(Debug)]
pub struct Chunks {
    receiver: mpsc::Receiver<Message>,
    done: bool,
}

/// What the writer thread sends.
#[derive(Debug)]
enum Message {
    Data(Bytes),
    Failed(ContextError),
    Finished,
}

impl Iterator for Chunks {
    type Item = Result<Bytes, ContextError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.receiver.recv() {
            Ok(Message::Data(chunk)) => Some(Ok(chunk)),
            Ok(Message::Finished) => {
                self.done = true;
                None
            }
            Ok(Message::Failed(error)) => {
                self.done = true;
                Some(Err(error))
            }
            Err(mpsc::RecvError) => {
                self.done = true;
                Some(Err(ContextError::Interrupted))
            }
        }
    }
}

impl std::iter::FusedIterator for Chunks {}

/// The consumer of [`Context::write_chunks`] has gone away; the writer stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Disconnected;

/// Cuts what the tar writer writes into chunks of [`CHUNK_SIZE`] and hands them to `send`.
struct ChunkWriter<F> {
    send: F,
    buffer: Vec<u8>,
    /// The consumer went away.
    disconnected: bool,
    /// Writing failed: whatever comes next (the trailer the tar builder writes when dropped) is
    /// thrown away, so that the error stays the last item.
    discarding: bool,
}

impl<F: FnMut(Bytes) -> Result<(), Disconnected>> ChunkWriter<F> {
    fn new(send: F) -> Self {
        Self {
            send,
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
        (self.send)(Bytes::from(chunk)).map_err(|Disconnected| {
            self.disconnected = true;
            io::Error::new(io::ErrorKind::BrokenPipe, "the context consumer went away")
        })
    }
}

impl<F: FnMut(Bytes) -> Result<(), Disconnected>> Write for ChunkWriter<F> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.discarding {
            return Ok(data.len());
        }
        if self.disconnected {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the context consumer went away",
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

/// The tar builder's writer, as [`append_entry`] needs it.
trait Sink: Write {
    /// Writing failed because the consumer went away.
    fn disconnected(&self) -> bool;
}

impl<F: FnMut(Bytes) -> Result<(), Disconnected>> Sink for ChunkWriter<F> {
    fn disconnected(&self) -> bool {
        self.disconnected
    }
}

/// Why writing the archive stopped early.
enum Stop {
    Failed(ContextError),
    ConsumerGone,
}

/// Writes the archive of `entries` to `send`; see [`Context::write_chunks`].
fn write_archive(
    root: &Path,
    entries: &[ContextEntry],
    outside: Option<&OutsideDockerfile>,
    send: impl FnMut(Bytes) -> Result<(), Disconnected>,
) -> Result<(), ContextError> {
    let mut builder = tar::Builder::new(ChunkWriter::new(send));
    let mut hard_links = HashMap::new();
    let stopped = |builder: &mut tar::Builder<ChunkWriter<_>>, stop| {
        builder.get_mut().discarding = true;
        match stop {
            Stop::Failed(error) => Err(error),
            Stop::ConsumerGone => Ok(()),
        }
    };
    for entry in entries {
        let appended = match outside {
            Some(outside) if outside.amend_ignore_file && entry.path == DOCKERIGNORE_FILE => {
                append_amended_ignore_file(&mut builder, root, outside)
            }
            _ => append_entry(&mut builder, root, entry, &mut hard_links),
        };
        if let Err(stop) = appended {
            return stopped(&mut builder, stop);
        }
    }
    if let Some(outside) = outside {
        if let Err(stop) = append_generated(&mut builder, outside) {
            return stopped(&mut builder, stop);
        }
    }
    // An error here means the consumer went away: nobody is left to tell.
    let _ = builder
        .into_inner()
        .and_then(|mut writer| writer.send_buffer());
    Ok(())
}

/// Appends the root `.dockerignore` with the generated Dockerfile name as a last line, as
/// the Docker CLI amends it (the classic builder then leaves the file out of the build).
fn append_amended_ignore_file<W: Sink>(
    builder: &mut tar::Builder<W>,
    root: &Path,
    outside: &OutsideDockerfile,
) -> Result<(), Stop> {
    let path = root.join(DOCKERIGNORE_FILE);
    let read_failed = |source| {
        Stop::Failed(ContextError::Read {
            path: path.clone(),
            source,
        })
    };
    let metadata = fs::metadata(&path).map_err(read_failed)?;
    let mut contents = fs::read(&path).map_err(read_failed)?;
    contents.extend_from_slice(format!("\n{}\n", outside.name).as_bytes());
    let mut header = header(&metadata, tar::EntryType::Regular);
    append_bytes(builder, &path, &mut header, DOCKERIGNORE_FILE, &contents)
}

/// Appends the generated entries of an outside Dockerfile at the end of the archive: the
/// Dockerfile under its generated name and, when the context has no `.dockerignore`, one that
/// lists it (the Docker CLI's `.dockerignore` then the name).
fn append_generated<W: Sink>(
    builder: &mut tar::Builder<W>,
    outside: &OutsideDockerfile,
) -> Result<(), Stop> {
    let generated = |name: &str| {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o600);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(outside.mtime);
        (header, PathBuf::from(name))
    };
    let (mut header, path) = generated(&outside.name);
    append_bytes(
        builder,
        &path,
        &mut header,
        &outside.name,
        &outside.contents,
    )?;
    if !outside.amend_ignore_file {
        let contents = format!("{DOCKERIGNORE_FILE}\n{}\n", outside.name);
        let (mut header, path) = generated(DOCKERIGNORE_FILE);
        append_bytes(
            builder,
            &path,
            &mut header,
            DOCKERIGNORE_FILE,
            contents.as_bytes(),
        )?;
    }
    Ok(())
}

/// Appends a regular file with `contents` under `name`; `path` names it in an error.
fn append_bytes<W: Sink>(
    builder: &mut tar::Builder<W>,
    path: &Path,
    header: &mut tar::Header,
    name: &str,
    contents: &[u8],
) -> Result<(), Stop> {
    header.set_size(contents.len() as u64);
    builder
        .append_data(header, name, contents)
        .map_err(|source| {
            if builder.get_ref().disconnected() {
                Stop::ConsumerGone
            } else {
                Stop::Failed(ContextError::Archive {
                    path: path.to_path_buf(),
                    source,
                })
            }
        })
}

/// Appends one planned entry, reading it from disk now.
fn append_entry<W: Sink>(
    builder: &mut tar::Builder<W>,
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
    let write_failed = |builder: &tar::Builder<W>, source| {
        if builder.get_ref().disconnected() {
            Stop::ConsumerGone
        } else {
            Stop::Failed(ContextError::Archive {
                path: path.clone(),
                source,
            })
        }
    };

    let special =
        |builder: &mut tar::Builder<W>, is_type: fn(&fs::FileType) -> bool, entry_type| {
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
    fn dockerfile_paths_are_resolved_inside_or_outside_the_context() {
        let root = Path::new("/ctx");
        let locate = |p: &str| locate_dockerfile(root, Path::new(p)).unwrap();
        let inside = |p: &str| Located::Inside(p.to_owned());
        assert_eq!(locate("Dockerfile"), inside("Dockerfile"));
        assert_eq!(
            locate("./build/app.Dockerfile"),
            inside("build/app.Dockerfile")
        );
        assert_eq!(locate("build/../Dockerfile"), inside("Dockerfile"));
        assert_eq!(locate("/ctx/sub/Dockerfile"), inside("sub/Dockerfile"));
        assert_eq!(
            locate("../Dockerfile"),
            Located::Outside(PathBuf::from("/ctx/../Dockerfile"))
        );
        assert_eq!(
            locate("/elsewhere/Dockerfile"),
            Located::Outside(PathBuf::from("/elsewhere/Dockerfile"))
        );
        for root_itself in ["", ".", "a/.."] {
            assert!(
                matches!(
                    locate_dockerfile(root, Path::new(root_itself)),
                    Err(ContextError::DockerfileIsADirectory { .. })
                ),
                "{root_itself}"
            );
        }
    }

    #[test]
    fn the_generated_name_is_the_clis_shape_and_follows_the_contents() {
        let name = generated_dockerfile_name(b"FROM scratch\n");
        let hex = name.strip_prefix(".dockerfile.").unwrap();
        assert_eq!(hex.len(), 20);
        assert!(
            hex.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(name, generated_dockerfile_name(b"FROM scratch\n"));
        assert_ne!(name, generated_dockerfile_name(b"FROM busybox\n"));
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
        let mut sizes = Vec::new();
        let mut writer = ChunkWriter::new(|chunk: Bytes| {
            sizes.push(chunk.len());
            Ok(())
        });
        writer.write_all(&vec![7u8; CHUNK_SIZE * 2 + 10]).unwrap();
        writer.send_buffer().unwrap();
        drop(writer);
        assert_eq!(sizes, [CHUNK_SIZE, CHUNK_SIZE, 10]);
    }

    #[test]
    fn chunk_writer_reports_a_dropped_consumer() {
        let mut writer = ChunkWriter::new(|_: Bytes| Err(Disconnected));
        let err = writer.write_all(&vec![0u8; CHUNK_SIZE]).unwrap_err();
        assert_eq!(
            (err.kind(), writer.disconnected),
            (io::ErrorKind::BrokenPipe, true)
        );
    }
}

//! A build's outputs received through the session: `moby.filesync.v1.FileSend/DiffCopy`.
//!
//! The daemon's exporter calls this method once, at the end of the build, and waits for it:
//!
//! - the `tar` exporter sends the archive as `BytesMessage` chunks and closes its side; the
//!   call ends when we have written every byte ([`TarReceiver`], the generated server);
//! - the `local` exporter (BuildKit's `filesync.CopyToCaller`, fsutil's sender) sends fsutil
//!   `Packet`s **on the same method**: a STAT per entry in lexical order, an empty STAT, then
//!   the DATA of every regular file we request by its number (REQ; an empty DATA ends a file),
//!   and a FIN answering ours. The generated server is typed for `BytesMessage`, so this path
//!   is served by [`LocalService`], tonic's `Grpc` with a `Packet` codec.
//!
//! The fsutil side is split in two: [`Receiver`] is the protocol, sans-IO (packets in, what to
//! do out: create this entry, write this chunk, send this packet), and [`DiskWriter`] does
//! it under the destination folder. Nothing is written outside that folder: the receiver
//! refuses absolute paths, `..`, `.` and empty components, entries whose parent was not
//! listed before as a directory (so nothing goes below a symlink or a file of the stream) and
//! hard links to anything but an earlier regular file; the writer replaces whatever is in the
//! way of an entry (a symlink already in the folder is removed, never followed) and creates
//! files with `O_EXCL`.
//!
//! A build with an output succeeds only when the export finished: [`ExportStatus`] is set
//! when every file is written (before our FIN, which the exporter waits for) or the archive
//! is flushed (before the call ends), so it is set before the daemon ends the build's body.

use std::collections::HashMap;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use buildkit_proto::session::filesend::file_send_server::FileSend;
use buildkit_proto::session::filesend::{BytesMessage, Packet, PacketType, Stat};
use bytes::Bytes;
use tokio::sync::mpsc;

use crate::options::{Output, TarDest};

/// Whether a build's output was written in full; shared by the session's receiver (which sets
/// it) and the build's stream (which reads it when the body ends).
#[derive(Debug, Default)]
pub(crate) struct ExportStatus {
    finished: AtomicBool,
}

impl ExportStatus {
    fn set(&self) {
        self.finished.store(true, Ordering::SeqCst);
    }

    /// Whether the export finished.
    pub(crate) fn finished(&self) -> bool {
        self.finished.load(Ordering::SeqCst)
    }
}

// Go's `os.FileMode` bits, as fsutil's `Stat.mode` carries them.
const MODE_DIR: u32 = 1 << 31;
const MODE_SYMLINK: u32 = 1 << 27;
const MODE_DEVICE: u32 = 1 << 26;
const MODE_NAMED_PIPE: u32 = 1 << 25;
const MODE_SOCKET: u32 = 1 << 24;
const MODE_SETUID: u32 = 1 << 23;
const MODE_SETGID: u32 = 1 << 22;
const MODE_CHAR_DEVICE: u32 = 1 << 21;
const MODE_STICKY: u32 = 1 << 20;
const MODE_IRREGULAR: u32 = 1 << 19;
const MODE_TYPE: u32 = MODE_DIR
    | MODE_SYMLINK
    | MODE_NAMED_PIPE
    | MODE_SOCKET
    | MODE_DEVICE
    | MODE_CHAR_DEVICE
    | MODE_IRREGULAR;

/// The Unix permission bits of a Go file mode (permissions, setuid, setgid, sticky).
fn unix_permissions(mode: u32) -> u32 {
    let mut unix = mode & 0o777;
    for (go, bit) in [
        (MODE_SETUID, 0o4000),
        (MODE_SETGID, 0o2000),
        (MODE_STICKY, 0o1000),
    ] {
        if mode & go != 0 {
            unix |= bit;
        }
    }
    unix
}

/// Why a `local` output could not be received. Sent to the daemon as the call's error (the
/// build fails with it) and kept as one line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiveError {
    /// An entry's path could escape the destination: absolute, empty, or with a `..`, `.` or
    /// empty component.
    #[error("refusing the output entry {path:?}: {reason}")]
    UnsafePath {
        /// The path as sent.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An entry whose parent was not listed before it as a directory (it is a symlink, a file,
    /// or missing): writing it would follow a symlink or leave the listed tree.
    #[error(
        "refusing the output entry {path:?}: its parent {parent:?} is not a directory of the output"
    )]
    NotBelowDirectory {
        /// The entry.
        path: String,
        /// Its parent.
        parent: String,
    },
    /// A hard link to something other than an earlier regular file of the output.
    #[error(
        "refusing the output hard link {path:?}: {target:?} is not an earlier file of the output"
    )]
    BadHardLink {
        /// The link.
        path: String,
        /// What it links to.
        target: String,
    },
    /// A device, named pipe or socket: not written.
    #[error("the output entry {path:?} is a device, named pipe or socket, which is not written")]
    UnsupportedType {
        /// The entry.
        path: String,
    },
    /// A packet the protocol does not allow at this point.
    #[error("unexpected {packet} packet from the exporter {when}")]
    Protocol {
        /// The packet's type.
        packet: &'static str,
        /// Where in the exchange it came.
        when: &'static str,
    },
    /// DATA for a file that was not requested or has ended.
    #[error("the exporter sent data for entry {id}, which was not requested")]
    UnknownFile {
        /// The entry's number.
        id: u32,
    },
    /// The exporter reported an error (its ERR packet).
    #[error("the exporter failed: {message}")]
    Sender {
        /// The exporter's message.
        message: String,
    },
    /// The exporter's stream ended (or broke) before the transfer was complete.
    #[error("the exporter's stream ended before the output was complete")]
    Incomplete,
    /// Writing under the destination failed.
    #[error("cannot write {}", path.display())]
    Io {
        /// The path written.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// A path inside the destination, checked: relative, each component a plain name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RelPath(String);

impl RelPath {
    fn parse(path: &str) -> Result<Self, ReceiveError> {
        let unsafe_path = |reason| ReceiveError::UnsafePath {
            path: path.to_string(),
            reason,
        };
        if path.is_empty() {
            return Err(unsafe_path("the path is empty"));
        }
        if path.starts_with('/') {
            return Err(unsafe_path("the path is absolute"));
        }
        if path.contains('\0') {
            return Err(unsafe_path("the path holds a NUL byte"));
        }
        for component in path.split('/') {
            match component {
                "" => return Err(unsafe_path("the path has an empty component")),
                "." => return Err(unsafe_path("the path has a `.` component")),
                ".." => return Err(unsafe_path("the path has a `..` component")),
                _ => {}
            }
        }
        Ok(RelPath(path.to_string()))
    }

    /// The parent's path; `None` at the top of the destination.
    fn parent(&self) -> Option<&str> {
        self.0.rsplit_once('/').map(|(parent, _)| parent)
    }

    fn under(&self, dest: &Path) -> PathBuf {
        dest.join(&self.0)
    }
}

/// What the [`Receiver`] asks the writer (and the connection) to do, in order.
#[derive(Debug, PartialEq)]
pub(crate) enum Action {
    /// Make a directory (its mode and time are set at [`Action::Finish`]).
    Dir {
        path: RelPath,
        mode: u32,
        mod_time: i64,
    },
    /// Make a symbolic link (never followed).
    Symlink { path: RelPath, target: String },
    /// Make a hard link to an earlier file.
    HardLink { path: RelPath, target: RelPath },
    /// Create a regular file; its data comes as [`Action::Write`]s for `id`.
    File {
        id: u32,
        path: RelPath,
        mode: u32,
        mod_time: i64,
    },
    /// Append to the file `id`.
    Write { id: u32, data: Bytes },
    /// The file `id` is complete.
    Close { id: u32 },
    /// Everything is written: set the directories' modes and times.
    Finish,
    /// Send this packet to the exporter.
    Send(Packet),
}

/// What kind of entry a path of the output is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dir,
    File,
    Other,
}

/// fsutil's receiving side of the transfer protocol, sans-IO: [`Receiver::packet`] takes each
/// packet from the exporter and says what to do.
#[derive(Debug, Default)]
pub(crate) struct Receiver {
    /// The number of the next STAT entry.
    next_id: u32,
    /// Every entry's kind by path.
    kinds: HashMap<String, Kind>,
    /// Files requested whose data has not ended.
    open: std::collections::HashSet<u32>,
    /// The empty STAT has come.
    listed: bool,
    /// Our FIN is sent (everything is written).
    fin_sent: bool,
    /// The exporter's FIN has come: the transfer is over.
    done: bool,
}

fn packet(kind: PacketType) -> Packet {
    Packet {
        r#type: kind.into(),
        ..Default::default()
    }
}

impl Receiver {
    /// Whether the transfer is over (both FINs).
    pub(crate) fn is_done(&self) -> bool {
        self.done
    }

    /// The actions for the exporter's next packet.
    pub(crate) fn packet(&mut self, p: Packet) -> Result<Vec<Action>, ReceiveError> {
        let protocol = |packet, when| Err(ReceiveError::Protocol { packet, when });
        if self.done {
            return protocol(kind_name(p.r#type), "after the end of the transfer");
        }
        match PacketType::try_from(p.r#type) {
            Ok(PacketType::PacketStat) => match p.stat {
                Some(_) if self.listed => protocol("STAT", "after the end of the listing"),
                Some(stat) => self.stat(stat),
                None if self.listed => protocol("STAT", "after the end of the listing"),
                None => {
                    self.listed = true;
                    Ok(self.finish_if_complete())
                }
            },
            Ok(PacketType::PacketData) => {
                if !self.open.contains(&p.id) {
                    return Err(ReceiveError::UnknownFile { id: p.id });
                }
                if p.data.is_empty() {
                    self.open.remove(&p.id);
                    let mut actions = vec![Action::Close { id: p.id }];
                    actions.extend(self.finish_if_complete());
                    Ok(actions)
                } else {
                    Ok(vec![Action::Write {
                        id: p.id,
                        data: p.data,
                    }])
                }
            }
            Ok(PacketType::PacketFin) if self.fin_sent => {
                self.done = true;
                Ok(Vec::new())
            }
            Ok(PacketType::PacketFin) => protocol("FIN", "before the transfer was complete"),
            Ok(PacketType::PacketErr) => Err(ReceiveError::Sender {
                message: String::from_utf8_lossy(&p.data).into_owned(),
            }),
            _ => protocol(kind_name(p.r#type), "(a receiver's packet)"),
        }
    }

    /// Our FIN once the listing has ended and every requested file has ended.
    fn finish_if_complete(&mut self) -> Vec<Action> {
        if self.listed && self.open.is_empty() && !self.fin_sent {
            self.fin_sent = true;
            vec![Action::Finish, Action::Send(packet(PacketType::PacketFin))]
        } else {
            Vec::new()
        }
    }

    fn stat(&mut self, stat: Stat) -> Result<Vec<Action>, ReceiveError> {
        let id = self.next_id;
        self.next_id += 1;
        let path = RelPath::parse(&stat.path)?;
        if let Some(parent) = path.parent() {
            if self.kinds.get(parent) != Some(&Kind::Dir) {
                return Err(ReceiveError::NotBelowDirectory {
                    path: path.0.clone(),
                    parent: parent.to_string(),
                });
            }
        }
        let mode = stat.mode;
        let (kind, actions) = if mode & MODE_DIR != 0 {
            let action = Action::Dir {
                path: path.clone(),
                mode: unix_permissions(mode),
                mod_time: stat.mod_time,
            };
            (Kind::Dir, vec![action])
        } else if mode & MODE_SYMLINK != 0 {
            let action = Action::Symlink {
                path: path.clone(),
                target: stat.linkname,
            };
            (Kind::Other, vec![action])
        } else if mode & MODE_TYPE != 0 {
            return Err(ReceiveError::UnsupportedType { path: path.0 });
        } else if !stat.linkname.is_empty() {
            let bad = || ReceiveError::BadHardLink {
                path: path.0.clone(),
                target: stat.linkname.clone(),
            };
            let target = RelPath::parse(&stat.linkname).map_err(|_| bad())?;
            if self.kinds.get(&target.0) != Some(&Kind::File) {
                return Err(bad());
            }
            let action = Action::HardLink {
                path: path.clone(),
                target,
            };
            (Kind::Other, vec![action])
        } else {
            self.open.insert(id);
            let mut request = packet(PacketType::PacketReq);
            request.id = id;
            let actions = vec![
                Action::File {
                    id,
                    path: path.clone(),
                    mode: unix_permissions(mode),
                    mod_time: stat.mod_time,
                },
                Action::Send(request),
            ];
            (Kind::File, actions)
        };
        // A later entry for the same path (fsutil sends none) replaces the earlier one.
        self.kinds.insert(path.0, kind);
        Ok(actions)
    }
}

fn kind_name(kind: i32) -> &'static str {
    match PacketType::try_from(kind) {
        Ok(PacketType::PacketStat) => "STAT",
        Ok(PacketType::PacketReq) => "REQ",
        Ok(PacketType::PacketData) => "DATA",
        Ok(PacketType::PacketFin) => "FIN",
        Ok(PacketType::PacketErr) => "ERR",
        Ok(PacketType::PacketHashReq) => "HASH_REQ",
        Ok(PacketType::PacketHash) => "HASH",
        Err(_) => "unknown",
    }
}

/// Does the [`Receiver`]'s actions under `dest` (blocking file I/O: run it off the async
/// threads).
#[derive(Debug)]
pub(crate) struct DiskWriter {
    dest: PathBuf,
    /// Open files by entry number, with their final mode and time.
    files: HashMap<u32, (PathBuf, File, u32, i64)>,
    /// Directories, in listing order, with their final mode and time.
    dirs: Vec<(PathBuf, u32, i64)>,
}

fn time_of(nanos: i64) -> SystemTime {
    if nanos >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_nanos(nanos as u64)
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_nanos(nanos.unsigned_abs())
    }
}

impl DiskWriter {
    /// A writer into `dest`, created if missing.
    pub(crate) fn new(dest: &Path) -> Result<Self, ReceiveError> {
        std::fs::create_dir_all(dest).map_err(|source| ReceiveError::Io {
            path: dest.to_path_buf(),
            source,
        })?;
        Ok(DiskWriter {
            dest: dest.to_path_buf(),
            files: HashMap::new(),
            dirs: Vec::new(),
        })
    }

    /// Does `action` (packets to send are the caller's).
    pub(crate) fn apply(&mut self, action: Action) -> Result<(), ReceiveError> {
        match action {
            Action::Dir {
                path,
                mode,
                mod_time,
            } => {
                let full = path.under(&self.dest);
                let io = |source| ReceiveError::Io {
                    path: full.clone(),
                    source,
                };
                match std::fs::symlink_metadata(&full) {
                    // A real directory (not a symlink to one) stays, with what is in it.
                    Ok(meta) if meta.is_dir() => {}
                    Ok(_) => {
                        std::fs::remove_file(&full).map_err(io)?;
                        std::fs::create_dir(&full).map_err(io)?;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        std::fs::create_dir(&full).map_err(io)?;
                    }
                    Err(e) => return Err(io(e)),
                }
                // Writable by us until every entry is in.
                std::fs::set_permissions(&full, std::fs::Permissions::from_mode(0o700))
                    .map_err(io)?;
                self.dirs.push((full, mode, mod_time));
            }
            Action::Symlink { path, target } => {
                let full = self.clear(&path)?;
                std::os::unix::fs::symlink(&target, &full)
                    .map_err(|source| ReceiveError::Io { path: full, source })?;
            }
            Action::HardLink { path, target } => {
                let full = self.clear(&path)?;
                std::fs::hard_link(target.under(&self.dest), &full)
                    .map_err(|source| ReceiveError::Io { path: full, source })?;
            }
            Action::File {
                id,
                path,
                mode,
                mod_time,
            } => {
                let full = self.clear(&path)?;
                // O_EXCL: never through a symlink that appeared in the meantime.
                let file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&full)
                    .map_err(|source| ReceiveError::Io {
                        path: full.clone(),
                        source,
                    })?;
                self.files.insert(id, (full, file, mode, mod_time));
            }
            Action::Write { id, data } => {
                let (path, file, ..) = self
                    .files
                    .get_mut(&id)
                    .ok_or(ReceiveError::UnknownFile { id })?;
                file.write_all(&data).map_err(|source| ReceiveError::Io {
                    path: path.clone(),
                    source,
                })?;
            }
            Action::Close { id } => {
                let (path, file, mode, mod_time) = self
                    .files
                    .remove(&id)
                    .ok_or(ReceiveError::UnknownFile { id })?;
                let io = |source| ReceiveError::Io {
                    path: path.clone(),
                    source,
                };
                file.set_modified(time_of(mod_time)).map_err(io)?;
                file.set_permissions(std::fs::Permissions::from_mode(mode))
                    .map_err(io)?;
            }
            Action::Finish => {
                // Deepest first: a directory's own mode may forbid changing what is in it.
                for (path, mode, mod_time) in self.dirs.drain(..).rev() {
                    let io = |source| ReceiveError::Io {
                        path: path.clone(),
                        source,
                    };
                    File::open(&path)
                        .and_then(|dir| dir.set_modified(time_of(mod_time)))
                        .map_err(io)?;
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                        .map_err(io)?;
                }
            }
            Action::Send(_) => {}
        }
        Ok(())
    }

    /// Makes room for a non-directory entry at `path`: whatever is there goes (a symlink is
    /// removed, not followed; a directory with its contents, as fsutil does).
    fn clear(&self, path: &RelPath) -> Result<PathBuf, ReceiveError> {
        let full = path.under(&self.dest);
        let io = |source| ReceiveError::Io {
            path: full.clone(),
            source,
        };
        match std::fs::symlink_metadata(&full) {
            Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(&full).map_err(io)?,
            Ok(_) => std::fs::remove_file(&full).map_err(io)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        Ok(full)
    }
}

/// The output's error as the call's status (the daemon fails the build with its message).
fn status(error: &ReceiveError) -> tonic::Status {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    tonic::Status::internal(message)
}

/// The `tar` output: the generated FileSend server's service, writing the archive's bytes to
/// its file or standard output.
#[derive(Debug)]
pub(crate) struct TarReceiver {
    pub(crate) dest: TarDest,
    pub(crate) status: Arc<ExportStatus>,
}

/// An empty response stream: the call's answer is its status.
pub(crate) struct NoMessages<T>(std::marker::PhantomData<T>);

impl<T> fmt::Debug for NoMessages<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NoMessages")
    }
}

impl<T> futures_core::Stream for NoMessages<T> {
    type Item = Result<T, tonic::Status>;

    fn poll_next(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Ready(None)
    }
}

/// Where the archive's bytes go.
fn tar_sink(dest: &TarDest) -> Result<Box<dyn Write + Send>, ReceiveError> {
    Ok(match dest {
        TarDest::File(path) => Box::new(File::create(path).map_err(|source| ReceiveError::Io {
            path: path.clone(),
            source,
        })?),
        TarDest::Stdout => Box::new(std::io::stdout()),
    })
}

fn tar_path(dest: &TarDest) -> PathBuf {
    match dest {
        TarDest::File(path) => path.clone(),
        TarDest::Stdout => PathBuf::from("standard output"),
    }
}

#[tonic::async_trait]
impl FileSend for TarReceiver {
    type DiffCopyStream = NoMessages<BytesMessage>;

    async fn diff_copy(
        &self,
        request: tonic::Request<tonic::Streaming<BytesMessage>>,
    ) -> Result<tonic::Response<Self::DiffCopyStream>, tonic::Status> {
        let dest = self.dest.clone();
        let path = tar_path(&dest);
        // One blocking thread writes the chunks in order (the exporter sends 4 KiB at a time),
        // fed through a bounded channel; it ends when the channel closes or at an error.
        let (chunks, mut todo) = mpsc::channel::<Bytes>(256);
        let mut writer = tokio::task::spawn_blocking(move || {
            let mut sink = tar_sink(&dest)?;
            let io = |source| ReceiveError::Io {
                path: tar_path(&dest),
                source,
            };
            while let Some(chunk) = todo.blocking_recv() {
                sink.write_all(&chunk).map_err(io)?;
            }
            sink.flush().map_err(io)
        });
        let stopped =
            |result: Result<Result<(), ReceiveError>, tokio::task::JoinError>| match result {
                Ok(Err(error)) => status(&error),
                _ => status(&ReceiveError::Io {
                    path: path.clone(),
                    source: std::io::Error::other("the writer stopped"),
                }),
            };
        let mut incoming = request.into_inner();
        loop {
            let next = tokio::select! {
                next = incoming.message() => next?,
                result = &mut writer => return Err(stopped(result)),
            };
            let Some(message) = next else { break };
            if !message.data.is_empty() && chunks.send(message.data).await.is_err() {
                return Err(stopped(writer.await));
            }
        }
        drop(chunks);
        match writer.await {
            Ok(Ok(())) => {}
            result => return Err(stopped(result)),
        }
        self.status.set();
        Ok(tonic::Response::new(NoMessages(std::marker::PhantomData)))
    }
}

/// The `local` output: `FileSend/DiffCopy` with fsutil `Packet`s both ways (tonic's `Grpc`
/// with a `Packet` codec, since the generated server decodes `BytesMessage`s on this path).
#[derive(Clone)]
pub(crate) struct LocalService {
    pub(crate) dest: PathBuf,
    pub(crate) status: Arc<ExportStatus>,
    pub(crate) tasks: super::Tasks,
}

impl LocalService {
    /// Serves one call.
    pub(crate) async fn call<B>(
        self,
        request: hyper::Request<B>,
    ) -> hyper::Response<tonic::body::Body>
    where
        B: hyper::body::Body + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send,
    {
        let codec = tonic_prost::ProstCodec::<Packet, Packet>::default();
        tonic::server::Grpc::new(codec)
            .streaming(self, request)
            .await
    }

    /// Receives the transfer, answering through `answer`; the error ends the call. The files
    /// are written by one blocking thread fed in order through a bounded channel (a slow disk
    /// holds the exporter back), so the packets of many files need no hand-off each.
    async fn receive(
        &self,
        mut incoming: tonic::Streaming<Packet>,
        answer: &mpsc::Sender<Result<Packet, tonic::Status>>,
    ) -> Result<(), ReceiveError> {
        let dest = self.dest.clone();
        let (work, mut todo) = mpsc::channel::<Action>(256);
        let (finished, mut written) = mpsc::channel::<()>(1);
        // Ends when `work` is dropped (the transfer ended, or the session closed) or at the
        // first error.
        let mut writer = tokio::task::spawn_blocking(move || {
            // DEST is made with the first entry: a refused transfer leaves none.
            let mut made = None;
            while let Some(action) = todo.blocking_recv() {
                let disk = match &mut made {
                    Some(disk) => disk,
                    None => made.insert(DiskWriter::new(&dest)?),
                };
                let finish = action == Action::Finish;
                disk.apply(action)?;
                if finish {
                    let _ = finished.blocking_send(());
                }
            }
            Ok::<(), ReceiveError>(())
        });
        // The writer's error once it has stopped early.
        async fn stopped(
            writer: &mut tokio::task::JoinHandle<Result<(), ReceiveError>>,
        ) -> ReceiveError {
            match writer.await {
                Ok(Err(error)) => error,
                _ => ReceiveError::Incomplete,
            }
        }
        let mut receiver = Receiver::default();
        while !receiver.is_done() {
            // A writer that stopped fails the call now, not at the exporter's next packet.
            let next = tokio::select! {
                next = incoming.message() => next,
                result = &mut writer => {
                    return Err(match result {
                        Ok(Err(error)) => error,
                        _ => ReceiveError::Incomplete,
                    });
                }
            };
            let Ok(Some(packet)) = next else {
                return Err(ReceiveError::Incomplete);
            };
            for action in receiver.packet(packet)? {
                match action {
                    Action::Send(p) => {
                        if p.r#type == i32::from(PacketType::PacketFin) {
                            // Everything is on disk before our FIN, which the exporter waits
                            // for.
                            if written.recv().await.is_none() {
                                return Err(stopped(&mut writer).await);
                            }
                            self.status.set();
                        }
                        if answer.send(Ok(p)).await.is_err() {
                            return Err(ReceiveError::Incomplete);
                        }
                    }
                    other => {
                        if work.send(other).await.is_err() {
                            return Err(stopped(&mut writer).await);
                        }
                    }
                }
            }
        }
        drop(work);
        match writer.await {
            Ok(result) => result,
            Err(_) => Err(ReceiveError::Incomplete),
        }
    }
}

impl tonic::server::StreamingService<Packet> for LocalService {
    type Response = Packet;
    type ResponseStream = Answers;
    type Future = Pin<
        Box<
            dyn std::future::Future<Output = Result<tonic::Response<Answers>, tonic::Status>>
                + Send,
        >,
    >;

    fn call(&mut self, request: tonic::Request<tonic::Streaming<Packet>>) -> Self::Future {
        let service = self.clone();
        Box::pin(async move {
            let (answer, answers) = mpsc::channel(64);
            let incoming = request.into_inner();
            let tasks = service.tasks.clone();
            tasks.spawn(async move {
                if let Err(error) = service.receive(incoming, &answer).await {
                    // fsutil's sender reads our ERR; the call's status tells the rest.
                    let mut err = packet(PacketType::PacketErr);
                    err.data = Bytes::from(error.to_string());
                    let _ = answer.send(Ok(err)).await;
                    let _ = answer.send(Err(status(&error))).await;
                }
            });
            Ok(tonic::Response::new(Answers(answers)))
        })
    }
}

/// Our packets to the exporter, as the call's response stream.
#[derive(Debug)]
pub(crate) struct Answers(mpsc::Receiver<Result<Packet, tonic::Status>>);

impl futures_core::Stream for Answers {
    type Item = Result<Packet, tonic::Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

/// What serves `FileSend` for a session's output.
#[derive(Clone)]
pub(crate) enum FileSendService {
    /// No output: the call is refused.
    None,
    /// A tar archive.
    Tar(buildkit_proto::session::filesend::file_send_server::FileSendServer<TarReceiver>),
    /// Files under a folder.
    Local(LocalService),
}

impl FileSendService {
    /// The service for `output`, reporting to `status`.
    pub(crate) fn new(
        output: Option<&Output>,
        status: &Arc<ExportStatus>,
        tasks: &super::Tasks,
    ) -> Self {
        use buildkit_proto::session::filesend::file_send_server::FileSendServer;
        match output {
            None => FileSendService::None,
            Some(Output::Tar { dest }) => FileSendService::Tar(FileSendServer::new(TarReceiver {
                dest: dest.clone(),
                status: Arc::clone(status),
            })),
            Some(Output::Local { dest }) => FileSendService::Local(LocalService {
                dest: dest.clone(),
                status: Arc::clone(status),
                tasks: tasks.clone(),
            }),
        }
    }
}

#[cfg(test)]
mod tests;

//! Build contexts: a directory filtered by its ignore file, or a ready-made tar, sent to the daemon
//! as a tar stream.
//!
//! [`Context::from_dir`] plans a context the way the Docker CLI does: it checks the directory and
//! the Dockerfile, picks the ignore file (`<Dockerfile>.dockerignore` beside the Dockerfile if it
//! exists, else the root `.dockerignore`), walks the tree applying the
//! [`dockerignore`] rules, and checks that every file it will send can be
//! opened. Nothing is read yet. [`Context::write_chunks`] then writes the tar, reading each file
//! only as its entry is written, and hands it out in chunks of at most [`CHUNK_SIZE`] bytes;
//! [`Context::into_chunks`] does the same on a thread that stays at most [`CHANNEL_CAPACITY`]
//! chunks ahead of its consumer, so a context of any size is sent in bounded memory and at the
//! pace the consumer takes it.
//!
//! This crate does blocking file-system I/O and nothing else: no async runtime, no HTTP.
//! `docker-build` sends a [`Context`] as the body of `POST /build`. Special files (FIFOs,
//! devices, hard links, permission bits) are archived with their Unix metadata, so the crate is
//! Unix-only (`cfg(unix)`).
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
//! - A Dockerfile from outside the directory is added at the end as `.dockerfile.<20 hex
//!   digits>` (a hash of its contents; mode 0600), and its name is appended to the root
//!   `.dockerignore` (or a `.dockerignore` listing itself and the name is added), as the Docker
//!   CLI's `AddDockerfileToBuildContext` does: the classic builder then removes it from the
//!   build. [`Context::dockerfile_ignored`] says when the archive holds a Dockerfile the ignore
//!   rules leave out (a BuildKit build given this archive sees it).
//!
//! ```
//! use docker_context::Context;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = std::env::temp_dir().join(format!("context-doc-{}", std::process::id()));
//! std::fs::create_dir_all(dir.join("target"))?;
//! std::fs::write(dir.join("Dockerfile"), "FROM scratch\nCOPY . /\n")?;
//! std::fs::write(dir.join(".dockerignore"), "target\n")?;
//! std::fs::write(dir.join("target/big.bin"), [0u8; 1024])?;
//!
//! let context = Context::from_dir(&dir)?;
//! assert_eq!(context.dockerfile_path_in_context(), "Dockerfile");
//! let paths: Vec<&str> = context.entries().iter().map(|e| e.path()).collect();
//! assert_eq!(paths, [".dockerignore", "Dockerfile"]);
//!
//! let mut tar = Vec::new();
//! for chunk in context.into_chunks() {
//!     tar.extend_from_slice(&chunk?);
//! }
//! assert_eq!(tar.len() % 512, 0);
//! std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! ```
//!
//! The ignore rules themselves are in [`dockerignore`], which is platform independent.

#![warn(missing_docs)]

#[cfg(unix)]
mod context;
pub mod dockerignore;

#[cfg(unix)]
pub use context::*;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

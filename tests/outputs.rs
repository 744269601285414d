//! Builds whose result is files (`--output type=local|tar`): one Dockerfile whose `FROM
//! scratch` stage holds an executable, a nested folder with a file of mode 0640 and a symlink,
//! and the checks of a folder or an archive holding them.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

/// A Dockerfile on `base` (a busybox image) whose last stage holds what [`expected`] lists
/// (read back with [`read_dir`] or [`read_tar`]); `marker` goes into a file so that each test
/// checks its own build.
pub fn dockerfile(base: &str, marker: &str) -> String {
    format!(
        "FROM {base} AS files\n\
         RUN mkdir -p /out/nested/deeper \
         && printf '#!/bin/sh\\necho tool\\n' > /out/tool.sh && chmod 0755 /out/tool.sh \
         && printf '{marker}\\n' > /out/nested/deeper/note.txt \
         && chmod 0640 /out/nested/deeper/note.txt \
         && ln -s tool.sh /out/link\n\
         FROM scratch\n\
         COPY --from=files /out/ /\n"
    )
}

/// What an entry of the output is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A regular file: its permission bits and contents.
    File(u32, Vec<u8>),
    /// A directory.
    Dir,
    /// A symlink and its target.
    Symlink(String),
}

/// The entries [`dockerfile`] makes, by path.
pub fn expected(marker: &str) -> BTreeMap<String, Entry> {
    BTreeMap::from([
        (
            "tool.sh".into(),
            Entry::File(0o755, b"#!/bin/sh\necho tool\n".to_vec()),
        ),
        ("nested".into(), Entry::Dir),
        ("nested/deeper".into(), Entry::Dir),
        (
            "nested/deeper/note.txt".into(),
            Entry::File(0o640, format!("{marker}\n").into_bytes()),
        ),
        ("link".into(), Entry::Symlink("tool.sh".into())),
    ])
}

/// Every entry under `dir`, by path relative to it (symlinks not followed).
pub fn read_dir(dir: &Path) -> BTreeMap<String, Entry> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Entry>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                out.insert(name, Entry::Symlink(target.to_string_lossy().into_owned()));
            } else if meta.is_dir() {
                out.insert(name, Entry::Dir);
                walk(root, &path, out);
            } else {
                let mode = meta.permissions().mode() & 0o7777;
                out.insert(name, Entry::File(mode, std::fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Every entry of a tar archive, by path (without a leading `./` or `/`, directories without
/// their trailing `/`). Panics if `archive` is not a tar.
pub fn read_tar(archive: &[u8]) -> BTreeMap<String, Entry> {
    let mut out = BTreeMap::new();
    let mut tar = tar::Archive::new(archive);
    for entry in tar.entries().expect("a tar archive") {
        let mut entry = entry.expect("a tar entry");
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let path = path
            .trim_start_matches("./")
            .trim_start_matches('/')
            .trim_end_matches('/')
            .to_string();
        if path.is_empty() {
            continue;
        }
        let header = entry.header().clone();
        let value = match header.entry_type() {
            tar::EntryType::Directory => Entry::Dir,
            tar::EntryType::Symlink => Entry::Symlink(
                entry
                    .link_name()
                    .unwrap()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            ),
            _ => {
                let mut contents = Vec::new();
                entry.read_to_end(&mut contents).unwrap();
                Entry::File(header.mode().unwrap() & 0o7777, contents)
            }
        };
        out.insert(path, value);
    }
    out
}

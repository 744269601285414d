//! The recorded daemon streams under `tests/data/corpus/` (copied from `shared/corpus`).

use std::path::{Path, PathBuf};

/// `tests/data/corpus`.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/corpus")
}

/// One recorded `POST /build` response body.
#[derive(Debug, Clone)]
pub struct Recording {
    /// Daemon folder, e.g. `docker-26.1`.
    pub daemon: String,
    /// File stem, e.g. `basic-nocache`.
    pub name: String,
    pub path: PathBuf,
}

impl Recording {
    /// `docker-26.1/basic-nocache`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.daemon, self.name)
    }

    pub fn bytes(&self) -> Vec<u8> {
        std::fs::read(&self.path).unwrap_or_else(|e| panic!("{}: {e}", self.path.display()))
    }

    /// The JSON lines of the body (framing on `\n`, a trailing `\r` removed).
    pub fn lines(&self) -> Vec<serde_json::Value> {
        let bytes = self.bytes();
        bytes
            .split(|&b| b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap_or_else(|e| panic!("{}: {e}", self.id())))
            .collect()
    }

    /// The base64 `aux` strings of the `moby.buildkit.trace` lines, in order.
    pub fn trace_aux(&self) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter(|v| v["id"] == "moby.buildkit.trace")
            .map(|v| {
                v["aux"]
                    .as_str()
                    .expect("trace aux is a string")
                    .to_string()
            })
            .collect()
    }
}

/// Every recording, sorted by daemon then name. Panics if the corpus is missing.
pub fn all() -> Vec<Recording> {
    let mut out = Vec::new();
    let mut daemons: Vec<_> = std::fs::read_dir(dir())
        .expect("tests/data/corpus exists")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .collect();
    daemons.sort_by_key(|e| e.file_name());
    for d in daemons {
        let daemon = d.file_name().to_string_lossy().into_owned();
        let mut files: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "ndjson"))
            .collect();
        files.sort();
        for path in files {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            out.push(Recording {
                daemon: daemon.clone(),
                name,
                path,
            });
        }
    }
    out
}

/// The recording `daemon/name`, e.g. `("docker-26.1", "run-fails")`. Panics if there is none.
pub fn get(daemon: &str, name: &str) -> Recording {
    all()
        .into_iter()
        .find(|r| r.daemon == daemon && r.name == name)
        .unwrap_or_else(|| panic!("no recording {daemon}/{name}"))
}

/// The recordings of one build on every daemon that has it. Panics if there is none.
pub fn named(name: &str) -> Vec<Recording> {
    let found: Vec<_> = all().into_iter().filter(|r| r.name == name).collect();
    assert!(!found.is_empty(), "no recording named {name}");
    found
}

//! The recorded daemon streams under `tests/data/corpus/` (copied from `shared/corpus`): the
//! one listing of the corpus, for the tests, the benchmarks and the fuzz seeds alike.

use std::path::{Path, PathBuf};

use buildkit_proto::{Message as _, StatusResponse};
use bytes::Bytes;

use crate::body;

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
        body::json_lines(&self.bytes())
    }

    /// Whether BuildKit wrote the body (it holds trace records), rather than the classic builder.
    pub fn is_buildkit(&self) -> bool {
        self.bytes()
            .windows(body::TRACE_PREFIX.len())
            .any(|w| w == body::TRACE_PREFIX)
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

    /// The protobuf bytes of the trace records, in order. Panics, naming the record, if an
    /// `aux` string is not base64.
    pub fn trace_records(&self) -> Vec<Bytes> {
        self.trace_aux()
            .iter()
            .enumerate()
            .map(|(i, aux)| {
                body::decode_aux(aux)
                    .unwrap_or_else(|e| panic!("{} record {i}: base64: {e}", self.id()))
            })
            .collect()
    }

    /// The trace records decoded. Panics, naming the record, if one does not decode.
    pub fn statuses(&self) -> Vec<StatusResponse> {
        self.trace_records()
            .into_iter()
            .enumerate()
            .map(|(i, wire)| {
                StatusResponse::decode(wire)
                    .unwrap_or_else(|e| panic!("{} record {i}: protobuf: {e}", self.id()))
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

/// The recordings BuildKit wrote (see [`Recording::is_buildkit`]), in the order of [`all`].
/// Panics if there are none.
pub fn buildkit() -> Vec<Recording> {
    let found: Vec<_> = all().into_iter().filter(Recording::is_buildkit).collect();
    assert!(
        !found.is_empty(),
        "no BuildKit recordings in {}",
        dir().display()
    );
    found
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

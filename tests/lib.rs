//! Test support shared by the workspace: the tests in `tests/tests/`, the crates' own tests, the
//! benchmarks (`benches/`) and the fuzz targets (`fuzz/`). One helper for each job:
//!
//! | job | helper |
//! |---|---|
//! | list the recorded daemon bodies | [`corpus::all`], [`corpus::buildkit`], [`corpus::get`], [`corpus::named`] |
//! | a record as the daemon's NDJSON line | [`body::trace_line`], [`body::push_trace_line`], [`body::push_trace_aux`] |
//! | an `aux` string back to its protobuf | [`body::decode_aux`], [`corpus::Recording::trace_records`] |
//! | a whole body into events | [`body::decode_body`], [`body::push_chunked`] + [`body::finish`] |
//! | per-digest `Started`/`Completed` pairing | [`invariants::check_pairing`] |
//! | lossless log output | [`invariants::check_lossless_logs`] |
//! | golden files (`UPDATE_GOLDEN=1`) | [`golden::assert_golden`], [`test_each_recording!`] |
//! | a plain transcript, step by step | [`plain::parse`] |
//! | a live daemon | [`daemon`] (feature `daemon`, on by default) |
//! | a private registry with a login | [`registry::Registry`] (feature `daemon`) |
//! | a build whose output is files, and checks of what it wrote | [`outputs`] (feature `daemon`) |
//!
//! Everything but [`daemon`] is sans-IO apart from reading the corpus and golden files, so the
//! benchmarks and the fuzz targets take this crate with `default-features = false`.

pub mod body;
pub mod corpus;
#[cfg(feature = "daemon")]
pub mod daemon;
pub mod events;
pub mod golden;
pub mod invariants;
#[cfg(feature = "daemon")]
pub mod outputs;
pub mod plain;
#[cfg(feature = "daemon")]
pub mod registry;
#[cfg(feature = "daemon")]
pub mod ssh_agent;

/// `error` and its sources, `: `-joined on one line, as bktrace prints errors.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
}

/// Whether the environment says the run is CI (`CI=true`, any case, or `CI=1`): a missing
/// daemon fails instead of skipping, and golden files are never rewritten.
pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

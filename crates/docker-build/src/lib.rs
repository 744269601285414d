//! Run Docker image builds and stream typed progress events.

pub mod build;
pub mod classic;
pub mod connection;
pub mod context;
pub mod decode;
pub mod dockerfile;
pub mod dockerignore;
pub mod ndjson;

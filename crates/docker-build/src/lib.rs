//! Run Docker image builds and stream typed progress events.

pub mod connection;
pub mod context;
pub mod dockerfile;
pub mod dockerignore;

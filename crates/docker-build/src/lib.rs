//! Run Docker image builds and stream typed progress events.

pub mod connection;

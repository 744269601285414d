//! Support code shared by the workspace-level tests in `tests/tests/`.

pub mod corpus;
pub mod daemon;
pub mod events;

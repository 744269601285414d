//! (being written)
mod event;
pub use event::*;

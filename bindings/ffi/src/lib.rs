//! The `SyncNode` API of `stocksync-node`, exported through uniffi to Kotlin, Swift and Python.
//!
//! Thin on purpose: every method forwards to the same method of `stocksync_node::SyncNode` (the
//! one the desktop's `stocksync node …` commands call), and the types here only translate values
//! into shapes every language has: decimals as strings (`"12.5"`, exact), integers as `i64`
//! (Kotlin's unsigned types are awkward), timestamps as `SystemTime`, JSON as text.

uniffi::setup_scaffolding!();

mod error;
mod listener;
mod node;
mod types;

pub use error::{FieldError, StocksyncError};
pub use listener::{ListenerHandle, SyncListener};
pub use node::SyncNode;
pub use types::*;

/// The version of the core library (the crate's version).
#[uniffi::export]
pub fn core_version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}

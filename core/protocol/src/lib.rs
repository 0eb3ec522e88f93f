//! The stocksync wire contract as Rust types: the response envelope, error codes, header names
//! and the ops a node pushes. serde only; shared by the node and the hub so they cannot drift.
//!
//! The full contract is `docs/protocol.md`. Delta pages and WebSocket frames join this crate
//! with the hub.

pub mod envelope;
pub mod headers;
pub mod ops;

pub use envelope::{ErrorBody, ErrorCode};
pub use ops::{
    AllocationBody, LocationCreateBody, OpBody, OpKind, ProductChangeBody, ProductCreateBody,
    PushOp, ReleaseBody, TransactionBody, TransactionType, TransferBody,
};

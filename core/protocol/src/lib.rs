//! The stocksync wire contract as Rust types: the response envelope, error codes, header names
//! and the ops a node pushes. serde only; shared by the node and the hub so they cannot drift.
//!
//! The full contract is `docs/protocol.md`.

pub mod checksum;
pub mod envelope;
pub mod headers;
pub mod ops;
pub mod sync;
pub mod ws;

pub use envelope::{ErrorBody, ErrorCode};
pub use ops::{
    AllocationBody, ConflictResolutionBody, LocationCreateBody, OpBody, OpKind, ProductChangeBody,
    ProductCreateBody, PushOp, ReleaseBody, Resolution, TransactionBody, TransactionType,
    TransferBody,
};
pub use sync::{
    DeltaItem, DeltaMeta, DeltaPage, Entity, OpResult, OpStatus, PushRequest, PushResponse,
};

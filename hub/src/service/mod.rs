//! The hub's domain logic, run inside one write transaction ([`Ctx`]) against the storage
//! trait. Business rules come from `stocksync-model`, the same code the node runs offline.

pub mod catalog;
pub mod conflicts;
pub mod delta;
pub mod feed;
pub mod idempotency;
pub mod push;
pub mod stock;

pub use crate::state::Ctx;

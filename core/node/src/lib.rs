//! `SyncNode`: the device-side API of stocksync, the one surface the command line, the desktop
//! app and (next) the Kotlin/Swift/Python bindings all call.
//!
//! Today it holds the offline node: a local SQLite store where every read and write works with
//! no network. The sync engine (push, pull, live) joins it in the sync issue.

mod error;
mod node;

pub use error::NodeError;
pub use node::{Movement, SyncNode};
pub use stocksync_store::{
    Allocation, DeviceInfo, DeviceRole, LedgerRow, NewDevice, OutboxRow, Recorded, StockRow,
    StoreOptions, Synchronous,
};

//! `SyncNode`: the device-side API of stocksync, the one surface the command line, the desktop
//! app and the Kotlin/Swift/Python bindings all call.
//!
//! Every local read and write works offline against the device's SQLite file; the sync engine
//! (`sync`) pushes the outbox, pulls the hub's changes and stays live over a WebSocket.

mod error;
mod node;
pub mod sync;

pub use error::NodeError;
pub use node::{Movement, SyncNode};
pub use stocksync_protocol::{OpStatus, Resolution};
pub use stocksync_store::{
    Allocation, ConflictRow, DeviceInfo, DeviceRole, LedgerRow, NewDevice, OpOutcome, OutboxRow,
    Recorded, StockRow, StoreOptions, Synchronous,
};
pub use sync::{
    ListenerHandle, NodeStatus, SyncConfig, SyncEvent, SyncListener, SyncProgress, SyncReport,
    SyncState,
};

//! `SyncNode` for apps: each method forwards to `stocksync_node::SyncNode`.
//!
//! Local reads and writes are plain (blocking) calls: they touch only the device's SQLite file
//! and answer in microseconds to milliseconds, so the Kotlin/Swift layers run them on an I/O
//! dispatcher/task. Calls that talk to the hub are `async`.

use crate::error::StocksyncError;
use crate::listener::{Forward, ListenerHandle, SyncListener};
use crate::types::*;
use std::sync::{Arc, OnceLock};
use stocksync_node as node;

type Result<T> = std::result::Result<T, StocksyncError>;

/// The runtime background sync runs on: one per process, shared by every node. (Async methods
/// run on uniffi's tokio integration; `start()` needs a runtime that outlives the call.)
fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> =
        OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("stocksync-sync")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| StocksyncError::Storage {
            reason: format!("cannot start the sync runtime: {e}"),
        })
}

fn all<T, U: From<T>>(items: Vec<T>) -> Vec<U> {
    items.into_iter().map(U::from).collect()
}

/// A device's inventory and its sync with a hub. Open one per database file and share it
/// (it is thread-safe); every local read and write works offline.
#[derive(uniffi::Object)]
pub struct SyncNode(node::SyncNode);

#[uniffi::export(async_runtime = "tokio")]
impl SyncNode {
    /// Opens (or creates) the device's database at `path`.
    #[uniffi::constructor]
    pub fn open(path: String) -> Result<Arc<Self>> {
        let inner = node::SyncNode::open(path, &node::StoreOptions::default())?;
        Ok(Arc::new(SyncNode(inner)))
    }

    // ---- device ----------------------------------------------------------------------------

    /// Makes this database a device without a hub (offline use). `enroll` does this itself.
    /// (`init` is a keyword in Swift, hence the exported name.)
    #[uniffi::method(name = "init_device")]
    pub fn init(&self, device: NewDevice) -> Result<DeviceInfo> {
        Ok(self.0.init(&device.into())?.into())
    }

    /// The device this database belongs to.
    pub fn device(&self) -> Result<DeviceInfo> {
        Ok(self.0.device()?.into())
    }

    /// Enrolls this device with a hub, using an enrollment key from the hub's admin. A device
    /// already in use keeps its id and its unsent ops.
    pub async fn enroll(
        &self,
        hub_url: String,
        enrollment_key: String,
        role: DeviceRole,
        name: String,
    ) -> Result<DeviceInfo> {
        let device = self
            .0
            .enroll(&hub_url, &enrollment_key, role.into(), &name)
            .await?;
        Ok(device.into())
    }

    // ---- catalog ---------------------------------------------------------------------------

    /// Adds a location.
    pub fn add_location(&self, code: String, name: String) -> Result<Location> {
        Ok(self.0.add_location(&code, &name)?.into())
    }

    /// Every location.
    pub fn locations(&self) -> Result<Vec<Location>> {
        Ok(all(self.0.locations()?))
    }

    /// A location by code or id.
    pub fn location(&self, code_or_id: String) -> Result<Location> {
        Ok(self.0.location(&code_or_id)?.into())
    }

    /// Adds a product.
    pub fn add_product(&self, product: NewProduct) -> Result<Product> {
        Ok(self.0.add_product(&product.to_model()?)?.into())
    }

    /// Adds many products: all or none. Returns how many.
    pub fn import_products(&self, products: Vec<NewProduct>) -> Result<i64> {
        let products = products
            .iter()
            .map(NewProduct::to_model)
            .collect::<Result<Vec<_>>>()?;
        Ok(i64::try_from(self.0.import_products(&products)?).unwrap_or(i64::MAX))
    }

    /// Changes a product's fields (product by barcode, SKU or id).
    pub fn edit_product(&self, product: String, edits: Vec<ProductEdit>) -> Result<Product> {
        Ok(self.0.edit_product(&product, &patch(&edits)?)?.into())
    }

    /// The scan lookup: a product by barcode, SKU or id.
    pub fn find_product(&self, code: String) -> Result<Product> {
        Ok(self.0.find_product(&code)?.into())
    }

    /// Every product.
    pub fn products(&self) -> Result<Vec<Product>> {
        Ok(all(self.0.products()?))
    }

    // ---- stock -----------------------------------------------------------------------------

    /// Records a movement, or refuses it (`StocksyncError.Rule` with the rule's name) and
    /// writes nothing.
    pub fn record(&self, movement: Movement) -> Result<Recorded> {
        Ok(self.0.record(&movement.to_node()?)?.into())
    }

    /// An allocation by id.
    pub fn allocation(&self, id: String) -> Result<Allocation> {
        Ok(self.0.allocation(&id)?.into())
    }

    /// Stock rows, optionally for one product and/or one location.
    pub fn stock(
        &self,
        product: Option<String>,
        location: Option<String>,
    ) -> Result<Vec<StockRow>> {
        Ok(all(self
            .0
            .stock(product.as_deref(), location.as_deref())?))
    }

    /// This device's ledger, newest first.
    pub fn ledger(&self, product: Option<String>, limit: u32) -> Result<Vec<LedgerRow>> {
        Ok(all(self.0.ledger(product.as_deref(), limit)?))
    }

    /// The outbox, in push order.
    pub fn outbox(&self) -> Result<Vec<OutboxRow>> {
        Ok(all(self.0.outbox()?))
    }

    /// Consistency problems of the local database (empty when healthy).
    pub fn check(&self) -> Result<Vec<String>> {
        Ok(self.0.check()?)
    }

    // ---- sync ------------------------------------------------------------------------------

    /// Pushes every unsent op and pulls every change now.
    pub async fn sync_now(&self) -> Result<SyncReport> {
        Ok(self.0.sync_now().await?.into())
    }

    /// Starts background sync: pushes soon after each write, follows the hub live, retries
    /// with backoff. Idempotent.
    pub fn start(&self) -> Result<()> {
        let _entered = runtime()?.enter();
        Ok(self.0.start()?)
    }

    /// Stops background sync and waits until it has stopped.
    pub async fn stop(&self) {
        self.0.stop().await
    }

    /// Another process wrote to this database: push soon.
    pub fn notify_local_write(&self) {
        self.0.notify_local_write()
    }

    /// Sync state and counts, for a status bar.
    pub fn status(&self) -> Result<NodeStatus> {
        Ok(self.0.status()?.into())
    }

    /// Registers a listener; it receives events until the handle is closed or dropped.
    pub fn add_listener(&self, listener: Arc<dyn SyncListener>) -> Arc<ListenerHandle> {
        ListenerHandle::new(self.0.add_listener(Arc::new(Forward(listener))))
    }

    /// The hub's conflicts as last pulled: open ones, or all.
    pub fn conflicts(&self, all_of_them: bool) -> Result<Vec<Conflict>> {
        Ok(all(self.0.conflicts(all_of_them)?))
    }

    /// Settles a conflict from this device (works offline; syncs like any change). Returns
    /// the id of the op that carries the decision.
    pub fn resolve_conflict(
        &self,
        conflict_id: String,
        resolution: ConflictResolution,
    ) -> Result<String> {
        let (resolution, value) = resolution.to_node();
        Ok(self.0.resolve_conflict(&conflict_id, resolution, value)?)
    }

    /// A support bundle as JSON (no credentials).
    pub fn diagnostics(&self) -> Result<String> {
        Ok(self.0.diagnostics()?.to_string())
    }
}

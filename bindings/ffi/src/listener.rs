//! Listeners implemented in Kotlin, Swift or Python, and the handle that keeps one registered.

use crate::types::SyncEvent;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

/// Receives the node's events (stock, product and conflict changes, op outcomes, status,
/// progress). Called on a background thread: return quickly and hand work to the UI thread.
#[uniffi::export(foreign)]
pub trait SyncListener: Send + Sync {
    /// One event.
    fn on_event(&self, event: SyncEvent);
}

/// Keeps a listener registered. `close()` (or dropping/destroying the handle) stops delivery.
#[derive(uniffi::Object)]
pub struct ListenerHandle(stocksync_node::ListenerHandle);

impl ListenerHandle {
    pub(crate) fn new(handle: stocksync_node::ListenerHandle) -> Arc<Self> {
        Arc::new(ListenerHandle(handle))
    }
}

#[uniffi::export]
impl ListenerHandle {
    /// Stops delivery now (idempotent).
    pub fn close(&self) {
        self.0.close()
    }
}

/// Adapts a foreign listener to the core's trait.
pub(crate) struct Forward(pub(crate) Arc<dyn SyncListener>);

impl stocksync_node::SyncListener for Forward {
    fn on_event(&self, event: &stocksync_node::SyncEvent) {
        // A listener that throws must not take the sync task down with it: uniffi turns an
        // unexpected foreign exception into a panic here. The event is lost for that listener.
        let delivered = catch_unwind(AssertUnwindSafe(|| self.0.on_event(event.clone().into())));
        if delivered.is_err() {
            eprintln!("stocksync: a listener failed on {event:?}; the event was dropped");
        }
    }
}

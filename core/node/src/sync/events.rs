//! What the node tells the app: a report per sync, events as things change, and the listeners
//! that receive them.

use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex, Weak};
pub use stocksync_store::OpOutcome;

/// The outcome of one `sync_now` (or one background round).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SyncReport {
    /// Ops sent to the hub.
    pub pushed: u64,
    /// Ops the hub applied now.
    pub applied: u64,
    /// Ops the hub had already applied (a resend after a lost answer).
    pub duplicates: u64,
    /// Ops a rule refused (final; the view was corrected and the reason kept).
    pub rejected: u64,
    /// Ops parked: the hub refuses them as sent; they wait for a person.
    pub parked: u64,
    /// Changes pulled from the hub.
    pub pulled: u64,
    /// Delta pages applied.
    pub pages: u64,
    /// Conflict records created or changed, as pulled in this round (records opened by this
    /// round's own ops come back in its pull, so each counts once).
    pub conflicts: u64,
    /// The device's view was found to differ from the hub's and was rebuilt from a snapshot.
    pub repaired: bool,
    /// The checksum matched at the end of the pull.
    pub checksum_ok: Option<bool>,
    /// Wall time, milliseconds.
    pub duration_ms: u64,
    /// What happened to each op sent in this round.
    pub outcomes: Vec<OpOutcome>,
}

/// Progress of a long pull (the first sync of a big catalog).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncProgress {
    /// `push` or `pull`.
    pub phase: String,
    /// Ops pushed so far in this round.
    pub pushed: u64,
    /// Changes pulled so far in this round.
    pub pulled: u64,
    /// Pages applied so far.
    pub pages: u64,
    /// The hub has more to send.
    pub has_more: bool,
}

/// Something changed: the app refreshes what shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SyncEvent {
    /// A stock level's view changed (pulled, live frame, or a rejected op withdrawn).
    StockChanged {
        /// Product.
        product_id: String,
        /// Location.
        location_id: String,
    },
    /// A product changed or was deleted at the hub.
    ProductChanged {
        /// Product.
        product_id: String,
    },
    /// A conflict appeared, changed or was settled.
    ConflictChanged {
        /// Conflict.
        conflict_id: String,
    },
    /// The hub answered an op.
    OpSettled {
        /// The answer as the user should see it.
        outcome: OpOutcome,
    },
    /// Sync state changed.
    StatusChanged {
        /// The new status.
        status: crate::sync::NodeStatus,
    },
    /// A pull is under way.
    Progress {
        /// How far.
        progress: SyncProgress,
    },
}

/// Receives events. Called from the sync task: return quickly (hand work to the UI thread).
pub trait SyncListener: Send + Sync {
    /// One event.
    fn on_event(&self, event: &SyncEvent);
}

type Slot = (u64, Arc<dyn SyncListener>);

/// The registered listeners.
#[derive(Default)]
pub(crate) struct Listeners {
    slots: Mutex<(u64, Vec<Slot>)>,
}

impl Listeners {
    pub(crate) fn add(self: &Arc<Self>, listener: Arc<dyn SyncListener>) -> ListenerHandle {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.0 += 1;
        let id = slots.0;
        slots.1.push((id, listener));
        ListenerHandle {
            id,
            listeners: Arc::downgrade(self),
        }
    }

    fn remove(&self, id: u64) {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.1.retain(|(i, _)| *i != id);
    }

    pub(crate) fn emit(&self, event: &SyncEvent) {
        // Call outside the lock: a listener may add or remove listeners.
        let current: Vec<Arc<dyn SyncListener>> = {
            let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots.1.iter().map(|(_, l)| l.clone()).collect()
        };
        for l in current {
            l.on_event(event);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.1.is_empty()
    }
}

/// Keeps a listener registered; closing or dropping it stops delivery.
pub struct ListenerHandle {
    id: u64,
    listeners: Weak<Listeners>,
}

impl ListenerHandle {
    /// Stops delivery now.
    pub fn close(&self) {
        if let Some(l) = self.listeners.upgrade() {
            l.remove(self.id);
        }
    }
}

impl Drop for ListenerHandle {
    fn drop(&mut self) {
        self.close();
    }
}

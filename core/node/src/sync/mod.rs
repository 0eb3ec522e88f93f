//! Sync with the hub.
//!
//! - [`engine`]: the sans-I/O machine that decides *when* (debounce, backoff, breaker, auth,
//!   live reconnects): events in, actions out, no sockets or clocks.
//! - [`policy`]: the retry classification, backoff with jitter, circuit breaker it uses.
//! - [`transport`] and [`live`]: the hub's HTTP API and WebSocket (reqwest, tokio-tungstenite).
//! - `round`: one push-then-pull pass against the store; `driver`: the tokio task that feeds
//!   the engine and performs its actions; `api`: the `SyncNode` methods apps call.

mod api;
mod driver;
pub mod engine;
pub mod events;
pub mod live;
pub mod policy;
mod round;
pub mod transport;

pub use engine::{SyncState, SyncStatus};
pub use events::{ListenerHandle, SyncEvent, SyncListener, SyncProgress, SyncReport};
pub use round::RoundError;

use crate::NodeError;
use events::Listeners;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use stocksync_protocol::ws::{CHANNELS, Filters};
use stocksync_store::Store;

/// How a node syncs. The defaults suit a handheld on warehouse Wi-Fi.
#[derive(Clone, Debug)]
pub struct SyncConfig {
    /// Ops per push request (the hub takes at most 1000).
    pub push_batch: usize,
    /// Changes per delta page (1–1000).
    pub pull_limit: u32,
    /// WebSocket channels to follow while running (empty: no live connection, poll only).
    pub channels: Vec<String>,
    /// Only changes matching these (location, product, category).
    pub filters: Filters,
    /// Timeouts and user agent.
    pub transport: transport::TransportConfig,
    /// Debounce, polling, backoff, breaker.
    pub engine: engine::EngineConfig,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            push_batch: 500,
            pull_limit: 1000,
            channels: CHANNELS.iter().map(|c| (*c).to_owned()).collect(),
            filters: Filters::default(),
            transport: transport::TransportConfig::default(),
            // The contract's numbers (docs/protocol.md): backoff 1 s doubling to 30 s with
            // jitter; the breaker opens after 5 failures and lets a probe round through after
            // 60 s.
            engine: engine::EngineConfig {
                backoff: policy::Backoff {
                    base_ms: 1_000,
                    max_ms: 30_000,
                    factor: 2,
                },
                breaker_threshold: 5,
                breaker_cooldown_ms: 60_000,
                ..engine::EngineConfig::default()
            },
        }
    }
}

/// What a status bar shows: the sync state and the device's counts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// Stopped, connecting, syncing, live, idle, offline, backing off, circuit open, auth required.
    pub state: SyncState,
    /// Enrolled with a hub.
    pub enrolled: bool,
    /// The hub.
    pub hub_url: Option<String>,
    /// The WebSocket is up.
    pub live: bool,
    /// Ops not yet answered by the hub.
    pub pending: u64,
    /// Ops waiting for a person.
    pub parked: u64,
    /// Ops the hub rejected.
    pub rejected: u64,
    /// Open conflicts.
    pub conflicts: u64,
    /// Last push answer (RFC 3339).
    pub last_push_at: Option<String>,
    /// Last page applied (RFC 3339).
    pub last_pull_at: Option<String>,
    /// Last error, if the last attempt failed.
    pub last_error: Option<String>,
    /// When the next attempt is due (RFC 3339), while backing off.
    pub next_retry_at: Option<String>,
    /// Failures in a row.
    pub consecutive_failures: u32,
}

/// State shared by every clone of a `SyncNode`.
pub(crate) struct NodeInner {
    pub(crate) store: Arc<Store>,
    pub(crate) listeners: Arc<Listeners>,
    pub(crate) config: SyncConfig,
    /// One round at a time, whoever asks (the background task or `sync_now`).
    pub(crate) round_lock: tokio::sync::Mutex<()>,
    pub(crate) runner: Mutex<Option<driver::Runner>>,
    pub(crate) status: Mutex<(SyncStatus, Option<chrono::DateTime<chrono::Utc>>)>,
}

impl NodeInner {
    pub(crate) fn new(store: Store, config: SyncConfig) -> Self {
        NodeInner {
            store: Arc::new(store),
            listeners: Arc::new(Listeners::default()),
            config,
            round_lock: tokio::sync::Mutex::new(()),
            runner: Mutex::new(None),
            status: Mutex::new((SyncStatus::default(), None)),
        }
    }

    /// A local op was recorded: the background task (if running) pushes it soon, and the
    /// listeners see the new pending count (a status bar must not wait for a sync to show it).
    pub(crate) fn local_write(&self) {
        {
            let runner = self.runner.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(r) = runner.as_ref() {
                r.send(engine::Input::LocalWrite);
            }
        }
        self.announce_status();
    }

    /// Tells the listeners the current status (read only when someone listens).
    pub(crate) fn announce_status(&self) {
        if self.listeners.is_empty() {
            return;
        }
        if let Ok(status) = self.current_status() {
            self.listeners.emit(&SyncEvent::StatusChanged { status });
        }
    }

    /// The sync state and the device's counts.
    pub(crate) fn current_status(&self) -> Result<NodeStatus, NodeError> {
        let counts = self.store.sync_counts()?;
        let enrolled = self.store.credentials()?.is_some();
        let (engine, next_retry_at) = self
            .status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let last_error = engine.last_error.clone().or(counts.last_error);
        Ok(NodeStatus {
            state: if enrolled || engine.state != SyncState::Stopped {
                engine.state
            } else {
                SyncState::AuthRequired
            },
            enrolled,
            hub_url: counts.hub_url,
            live: engine.live,
            pending: counts.pending,
            parked: counts.parked,
            rejected: counts.rejected,
            conflicts: counts.open_conflicts,
            last_push_at: counts.last_push_at,
            last_pull_at: counts.last_pull_at,
            last_error,
            next_retry_at: next_retry_at.map(|t| t.to_rfc3339()),
            consecutive_failures: engine.consecutive_failures,
        })
    }
}

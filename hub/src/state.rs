//! What every handler shares, and the two ways to reach storage: [`AppState::read`] and
//! [`AppState::write`], which run the closure on a blocking thread inside one transaction.

use crate::auth::Directory;
use crate::auth::secret::HubSecrets;
use crate::config::HubConfig;
use crate::error::ApiError;
use crate::events::{Bus, Event};
use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;
use crate::storage::{Storage, Tx};
use std::sync::{Arc, Mutex, RwLock};
use stocksync_model::Clock;

/// Shared state (cheap to clone).
#[derive(Clone)]
pub struct AppState(pub Arc<Inner>);

/// The parts.
pub struct Inner {
    /// Limits and lifetimes.
    pub config: HubConfig,
    /// Where everything is kept.
    pub storage: Arc<dyn Storage>,
    /// Signing keys.
    pub secrets: HubSecrets,
    /// Orgs, branches, keys, revocations.
    pub directory: RwLock<Directory>,
    /// Per-credential request limits.
    pub limiter: RateLimiter,
    /// Per-address limits of the enrollment and refresh routes, and of failed authentications
    /// (counted under separate keys).
    pub auth_limiter: RateLimiter,
    /// (address, API key id) pairs that authenticated lately: such a key keeps working while
    /// its address is refused for failed guesses.
    pub known_keys: crate::ratelimit::Recent,
    /// Counters for `/metrics`.
    pub metrics: Metrics,
    /// Committed changes for WebSocket subscribers.
    pub bus: Bus,
    /// The hub's hybrid logical clock (for its own product edits).
    pub clock: Mutex<Clock>,
    /// Flips to true on shutdown, so WebSocket tasks close.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// Bumped whenever a refresh-token family is revoked, so WebSocket sessions of that family
    /// close (they look their family up in [`Directory::revoked_families`]).
    pub revocations: tokio::sync::watch::Sender<u64>,
    /// Held from before a commit until its events are sent, so frames leave in `seq` order.
    pub publish: Mutex<()>,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// A write in progress: the transaction, the organization, the time, and the events to publish
/// once (and only if) it commits.
pub struct Ctx<'t> {
    /// The transaction.
    pub tx: Box<dyn Tx + 't>,
    /// The organization written to.
    pub org: String,
    /// The commit's timestamp (RFC 3339).
    pub now: String,
    /// Changes to fan out after commit.
    pub events: Vec<Event>,
    /// The hub's clock.
    pub clock: &'t Mutex<Clock>,
}

impl AppState {
    /// Revokes a refresh-token family in memory (storage has it already): its access tokens are
    /// refused from now on and its open WebSocket sessions close.
    pub fn revoke_family(&self, family: String) {
        self.directory
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .revoked_families
            .insert(family);
        self.revocations.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Whether a family was revoked.
    pub fn family_revoked(&self, family: &str) -> bool {
        self.directory
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .revoked_families
            .contains(family)
    }

    /// Runs `f` against a read snapshot.
    pub async fn read<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Tx) -> Result<T, ApiError> + Send + 'static,
    {
        let state = self.clone();
        blocking(move || {
            let tx = state.storage.read()?;
            f(&*tx)
        })
        .await
    }

    /// Runs `f` in one write transaction for `org`; commits when it returns `Ok`, then
    /// publishes its events.
    pub async fn write<T, F>(&self, org: &str, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Ctx<'_>) -> Result<T, ApiError> + Send + 'static,
    {
        let state = self.clone();
        let org = org.to_owned();
        blocking(move || {
            let tx = state.storage.write()?;
            let mut ctx = Ctx {
                tx,
                org,
                now: crate::clock::now_rfc3339(),
                events: Vec::new(),
                clock: &state.clock,
            };
            let out = f(&mut ctx)?;
            let events = std::mem::take(&mut ctx.events);
            let _in_order = state.publish.lock().unwrap_or_else(|p| p.into_inner());
            ctx.tx.commit()?;
            for e in events {
                // No subscriber is not an error.
                let _ = state.bus.send(Arc::new(e));
            }
            Ok(out)
        })
        .await
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(ApiError::internal(format!("storage task failed: {e}"))))
}

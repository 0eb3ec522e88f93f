//! The sync half of `SyncNode`'s API: enroll, sync once, run in the background, status,
//! listeners, conflicts, diagnostics.

use super::events::{ListenerHandle, SyncListener};
use super::round::{Round, RoundError, blocking};
use super::transport::HubClient;
use super::{NodeStatus, SyncReport, driver};
use crate::{NodeError, SyncNode};
use std::sync::Arc;
use stocksync_model::{ConflictId, DeviceId};
use stocksync_protocol::Resolution;
use stocksync_store::{ConflictRow, DeviceInfo, DeviceRole, HubCredentials, NewDevice};

impl SyncNode {
    /// Enrolls this device with a hub using an enrollment key from the hub's admin.
    ///
    /// A new database becomes a device of the key's organization and branch, with an id it
    /// mints itself; a device already in use (offline, with `init`) keeps its id and its ops,
    /// and must belong to the key's organization and branch.
    pub async fn enroll(
        &self,
        hub_url: &str,
        enrollment_key: &str,
        role: DeviceRole,
        name: &str,
    ) -> Result<DeviceInfo, NodeError> {
        let existing = match self.inner.store.device() {
            Ok(d) => Some(d),
            Err(stocksync_store::StoreError::NotInitialised) => None,
            Err(e) => return Err(e.into()),
        };
        let device_id = existing
            .as_ref()
            .map(|d| d.device_id.clone())
            .unwrap_or_else(DeviceId::new);
        let (role, name) = match &existing {
            Some(d) => (d.role, d.name.clone()),
            None => (role, name.to_owned()),
        };
        let client = HubClient::new(hub_url, device_id.as_str(), &self.inner.config.transport)
            .map_err(RoundError::from)?;
        let enrolled = client
            .enroll(enrollment_key, role.as_str(), &name)
            .await
            .map_err(RoundError::from)?;
        let re_enrolled = existing.is_some();
        let device = match existing {
            Some(d) => {
                if d.org_id != enrolled.organization_id || d.branch_id != enrolled.branch_id {
                    return Err(NodeError::invalid(
                        "enrollment_key",
                        format!(
                            "This device belongs to {}/{}; the key enrolls into {}/{}",
                            d.org_id, d.branch_id, enrolled.organization_id, enrolled.branch_id
                        ),
                    ));
                }
                d
            }
            None => self.inner.store.init_device_with_id(
                &NewDevice {
                    org_id: enrolled.organization_id.clone(),
                    branch_id: enrolled.branch_id.clone(),
                    name,
                    role,
                },
                &device_id,
            )?,
        };
        self.inner.store.save_credentials(&HubCredentials {
            hub_url: client.base_url().to_owned(),
            access_token: enrolled.access_token,
            refresh_token: enrolled.refresh_token,
            access_expires_at: chrono::Utc::now()
                + chrono::Duration::seconds(i64::try_from(enrolled.expires_in).unwrap_or(3600)),
        })?;
        if re_enrolled {
            // The pull position was issued under the old enrollment, maybe by a hub that has
            // since lost its data: the next pull is a fresh snapshot. Unsent ops stay.
            self.inner
                .store
                .restart_snapshot("enrolled again: fresh snapshot")?;
        }
        self.inner.announce_status();
        Ok(device)
    }

    /// Pushes every unsent op and pulls every change now; returns what happened. Waits for a
    /// background round in progress to finish first (rounds never overlap).
    pub async fn sync_now(&self) -> Result<SyncReport, NodeError> {
        let result = self.round().await;
        let error = result.as_ref().err().map(ToString::to_string);
        let store = self.inner.store.clone();
        // The status bar shows the last error until a round succeeds.
        let _ = blocking(&store, move |s| s.set_sync_error(error.as_deref())).await;
        self.inner.announce_status();
        Ok(result?)
    }

    pub(crate) async fn round(&self) -> Result<SyncReport, RoundError> {
        let _turn = self.inner.round_lock.lock().await;
        let (device, creds) = self.enrolled().await?;
        let client = self.client(&device, &creds)?;
        self.round_of(&device, &client).run().await
    }

    /// Refreshes the access token now (the background task does this on a 401).
    pub(crate) async fn refresh_auth(&self) -> Result<(), RoundError> {
        let _turn = self.inner.round_lock.lock().await;
        let (device, creds) = self.enrolled().await?;
        let client = self.client(&device, &creds)?;
        self.round_of(&device, &client).auth(true).await.map(|_| ())
    }

    /// The device and its hub credentials, or `AuthRequired` when it is not enrolled.
    pub(crate) async fn enrolled(&self) -> Result<(DeviceInfo, HubCredentials), RoundError> {
        let device = blocking(&self.inner.store, |s| s.device()).await?;
        let creds = blocking(&self.inner.store, |s| s.credentials())
            .await?
            .ok_or_else(|| {
                RoundError::AuthRequired("this device is not enrolled with a hub".into())
            })?;
        Ok((device, creds))
    }

    fn client(&self, device: &DeviceInfo, creds: &HubCredentials) -> Result<HubClient, RoundError> {
        Ok(HubClient::new(
            &creds.hub_url,
            device.device_id.as_str(),
            &self.inner.config.transport,
        )?)
    }

    fn round_of<'a>(&'a self, device: &'a DeviceInfo, client: &'a HubClient) -> Round<'a> {
        Round {
            store: &self.inner.store,
            client,
            org_id: &device.org_id,
            listeners: &self.inner.listeners,
            push_batch: self.inner.config.push_batch,
            pull_limit: self.inner.config.pull_limit,
        }
    }

    /// Starts background sync on the current tokio runtime: pushes soon after each local
    /// write, follows the hub live over a WebSocket, retries with backoff. Idempotent.
    pub fn start(&self) -> Result<(), NodeError> {
        let handle = tokio::runtime::Handle::try_current().map_err(|_| NodeError::Storage {
            message: "start() needs a tokio runtime".into(),
        })?;
        self.inner.store.device()?;
        let mut runner = self.inner.runner.lock().unwrap_or_else(|p| p.into_inner());
        if runner.as_ref().is_some_and(|r| !r.is_finished()) {
            return Ok(());
        }
        *runner = Some(driver::Runner::spawn(&handle, self.clone()));
        Ok(())
    }

    /// Stops background sync and waits for the task to end (a round in flight is abandoned;
    /// its ops are resent next time, and the hub answers `duplicate`).
    pub async fn stop(&self) {
        let runner = self
            .inner
            .runner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(r) = runner {
            r.stop().await;
        }
    }

    /// Tells the background sync that another process (or connection) wrote to this database,
    /// so it pushes soon. Writes through this `SyncNode` notify it themselves.
    pub fn notify_local_write(&self) {
        self.inner.local_write();
    }

    /// The sync state and the device's counts.
    pub fn status(&self) -> Result<NodeStatus, NodeError> {
        self.inner.current_status()
    }

    /// Registers a listener; it receives events until the handle is closed or dropped.
    pub fn add_listener(&self, listener: Arc<dyn SyncListener>) -> ListenerHandle {
        self.inner.listeners.add(listener)
    }

    /// The hub's conflicts as last pulled (open ones only unless `all`).
    pub fn conflicts(&self, all: bool) -> Result<Vec<ConflictRow>, NodeError> {
        Ok(self.inner.store.conflicts(!all)?)
    }

    /// Settles a conflict from this device (works offline; syncs like any change).
    /// `value` is the chosen value for `use_value` (`None` clears an optional field).
    pub fn resolve_conflict(
        &self,
        conflict_id: &str,
        resolution: Resolution,
        value: Option<String>,
    ) -> Result<String, NodeError> {
        let id: ConflictId =
            conflict_id
                .trim()
                .parse()
                .map_err(|e: stocksync_model::IdError| {
                    NodeError::invalid("conflict_id", e.to_string())
                })?;
        let op = self.inner.store.resolve_conflict(&id, resolution, value)?;
        self.inner.local_write();
        Ok(op.to_string())
    }

    /// A support bundle: schema, counts, outbox states, ops needing attention, rows waiting,
    /// last errors, consistency problems, and the sync status. No credentials.
    pub fn diagnostics(&self) -> Result<serde_json::Value, NodeError> {
        let mut bundle = self.inner.store.diagnostics()?;
        bundle["status"] = serde_json::to_value(self.status()?).unwrap_or_default();
        bundle["device"] = serde_json::to_value(self.inner.store.device().ok()).unwrap_or_default();
        bundle["node_version"] = env!("CARGO_PKG_VERSION").into();
        Ok(bundle)
    }
}

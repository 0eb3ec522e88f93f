//! One sync round: push the outbox until it is empty, then pull until the head of the feed.
//!
//! Each push is answered op by op and recorded in one transaction; each page is applied with
//! its token in one transaction. So a round can stop at any instant (crash, network, kill) and
//! the next one carries on: in-flight ops are resent (the hub answers `duplicate`), the pull
//! resumes from the last applied page.

use crate::sync::events::{Listeners, SyncEvent, SyncProgress, SyncReport};
use crate::sync::transport::{Auth, DeltaResponse, HubClient, PushAnswer, TransportError};
use sha2::{Digest, Sha256};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;
use stocksync_model::OpId;
use stocksync_protocol::{ErrorCode, OpStatus, PushOp};
use stocksync_store::{HubCredentials, PageApplied, PushApplied, Store, StoreError};

/// Why a round stopped.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RoundError {
    /// The hub could not be reached or answered with an error.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The device has no credentials, or the hub refused them and the refresh too.
    #[error("{0}")]
    AuthRequired(String),
    /// The local database failed.
    #[error("local storage: {0}")]
    Store(String),
}

impl From<StoreError> for RoundError {
    fn from(e: StoreError) -> Self {
        match e {
            // A database that is no device yet gets one by enrolling, not by fixing the disk.
            StoreError::NotInitialised => {
                RoundError::AuthRequired("this device is not set up yet: enroll it".into())
            }
            other => RoundError::Store(other.to_string()),
        }
    }
}

/// What a round needs.
pub(crate) struct Round<'a> {
    pub store: &'a Arc<Store>,
    pub client: &'a HubClient,
    pub org_id: &'a str,
    pub listeners: &'a Listeners,
    pub push_batch: usize,
    pub pull_limit: u32,
}

/// Runs a blocking store call off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    store: &Arc<Store>,
    f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, RoundError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(|e| RoundError::Store(format!("store task failed: {e}")))?
        .map_err(RoundError::from)
}

/// A push the hub refused as a whole, for reasons in the request itself (not the network or
/// the hub's health): sending fewer ops finds the one it refuses.
fn refused_as_sent(e: &TransportError) -> bool {
    matches!(e.status(), Some(400 | 404 | 409 | 413 | 422))
}

/// The same ops always get the same key, so a resend after a lost answer replays the stored
/// answer instead of applying anything again.
fn idempotency_key(ops: &[PushOp]) -> String {
    let mut h = Sha256::new();
    for op in ops {
        h.update(op.op_id.as_str().as_bytes());
        h.update(b"\n");
    }
    let digest = h.finalize();
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("push-{hex}")
}

impl Round<'_> {
    /// Push then pull.
    pub async fn run(&self) -> Result<SyncReport, RoundError> {
        let started = Instant::now();
        let mut report = SyncReport::default();
        self.push_all(&mut report).await?;
        self.pull_all(&mut report).await?;
        report.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        Ok(report)
    }

    /// A valid access token: the stored one, or a fresh one if it runs out within a minute.
    pub async fn auth(&self, force_refresh: bool) -> Result<Auth, RoundError> {
        let creds = blocking(self.store, |s| s.credentials())
            .await?
            .ok_or_else(|| RoundError::AuthRequired("this device is not enrolled".into()))?;
        let soon = chrono::Utc::now() + chrono::Duration::seconds(60);
        if !force_refresh && creds.access_expires_at > soon {
            return Ok(Auth {
                access_token: creds.access_token,
                organization_id: self.org_id.to_owned(),
            });
        }
        self.refresh(creds).await
    }

    async fn refresh(&self, creds: HubCredentials) -> Result<Auth, RoundError> {
        let pair = match self.client.refresh(&creds.refresh_token).await {
            Ok(pair) => pair,
            Err(e) if matches!(e.status(), Some(400 | 401 | 403)) => {
                return Err(RoundError::AuthRequired(format!(
                    "the hub refused this device's credentials ({e}): enroll it again"
                )));
            }
            Err(e) => return Err(e.into()),
        };
        let fresh = HubCredentials {
            hub_url: creds.hub_url,
            access_token: pair.access_token.clone(),
            refresh_token: pair.refresh_token,
            access_expires_at: chrono::Utc::now()
                + chrono::Duration::seconds(i64::try_from(pair.expires_in).unwrap_or(3600)),
        };
        // The old refresh token is spent now: keep the new pair before anything else.
        blocking(self.store, move |s| s.save_credentials(&fresh)).await?;
        Ok(Auth {
            access_token: pair.access_token,
            organization_id: self.org_id.to_owned(),
        })
    }

    /// Calls the hub; on 401 refreshes once and calls again.
    async fn authed<T, F, Fut>(&self, call: F) -> Result<T, RoundError>
    where
        F: Fn(Auth) -> Fut,
        Fut: Future<Output = Result<T, TransportError>>,
    {
        let auth = self.auth(false).await?;
        match call(auth).await {
            Err(e) if e.is_auth() => {
                let auth = self.auth(true).await?;
                match call(auth).await {
                    Err(e) if e.is_auth() => Err(RoundError::AuthRequired(format!(
                        "the hub refused a fresh token ({e}): enroll this device again"
                    ))),
                    other => other.map_err(RoundError::from),
                }
            }
            other => other.map_err(RoundError::from),
        }
    }

    /// Pushes the outbox in batches, in order. While a batch is at the hub, the device records
    /// the previous batch's answers and prepares the next batch, so local work and the hub's
    /// overlap; the next batch is sent only once the previous one is answered (the hub applies
    /// a device's ops in `device_seq` order).
    async fn push_all(&self, report: &mut SyncReport) -> Result<(), RoundError> {
        let limit = self.push_batch;
        let mut batch = blocking(self.store, move |s| s.next_push_batch(0, limit)).await?;
        let mut answered: Option<PushAnswer> = None;
        loop {
            report.parked += batch.parked.len() as u64;
            let Some(last) = batch.ops.last().map(|o| o.device_seq) else {
                if let Some(answer) = answered.take() {
                    self.record(answer, report).await?;
                }
                return Ok(());
            };
            let previous = answered.take();
            let (sent, recorded, next) = tokio::join!(
                self.send(&batch.ops),
                async {
                    match previous {
                        Some(answer) => {
                            let store = self.store.clone();
                            blocking(&store, move |s| s.record_push_results(&answer.results))
                                .await
                                .map(|applied| Some((applied, answer.replayed)))
                        }
                        None => Ok(None),
                    }
                },
                blocking(self.store, move |s| s.next_push_batch(last, limit)),
            );
            if let Some((applied, replayed)) = recorded? {
                self.tell_pushed(applied, replayed, report);
            }
            match sent {
                Ok(answer) => {
                    report.pushed += batch.ops.len() as u64;
                    answered = Some(answer);
                }
                Err(RoundError::Transport(e)) if refused_as_sent(&e) => {
                    self.isolate(&batch.ops, e, report).await?;
                }
                Err(e) => {
                    self.release(&batch.ops, &e).await?;
                    return Err(e);
                }
            }
            batch = next?;
            self.listeners.emit(&SyncEvent::Progress {
                progress: SyncProgress {
                    phase: "push".into(),
                    pushed: report.pushed,
                    ..SyncProgress::default()
                },
            });
        }
    }

    async fn send(&self, ops: &[PushOp]) -> Result<PushAnswer, RoundError> {
        let key = idempotency_key(ops);
        self.authed(|auth| {
            let key = key.clone();
            async move { self.client.push(&auth, ops, &key).await }
        })
        .await
    }

    async fn record(&self, answer: PushAnswer, report: &mut SyncReport) -> Result<(), RoundError> {
        let replayed = answer.replayed;
        let applied = blocking(self.store, move |s| s.record_push_results(&answer.results)).await?;
        self.tell_pushed(applied, replayed, report);
        Ok(())
    }

    async fn release(&self, ops: &[PushOp], e: &RoundError) -> Result<(), RoundError> {
        let ids: Vec<OpId> = ops.iter().map(|o| o.op_id.clone()).collect();
        let why = e.to_string();
        blocking(self.store, move |s| s.release_in_flight(&ids, &why)).await
    }

    /// The hub refused `ops` as a whole (`refusal`): halve them until the op it refuses is
    /// alone, park that op, and let the others through.
    fn isolate<'b>(
        &'b self,
        ops: &'b [PushOp],
        refusal: TransportError,
        report: &'b mut SyncReport,
    ) -> Pin<Box<dyn Future<Output = Result<(), RoundError>> + Send + 'b>> {
        Box::pin(async move {
            if let [op] = ops {
                let id = op.op_id.clone();
                let why = format!("the hub refuses this op as sent: {refusal}");
                blocking(self.store, move |s| s.park_op(&id, &why)).await?;
                report.parked += 1;
                return Ok(());
            }
            let (left, right) = ops.split_at(ops.len() / 2);
            for half in [left, right] {
                match self.send(half).await {
                    Ok(answer) => {
                        report.pushed += half.len() as u64;
                        self.record(answer, report).await?;
                    }
                    Err(RoundError::Transport(e)) if refused_as_sent(&e) => {
                        self.isolate(half, e, report).await?;
                    }
                    Err(e) => {
                        self.release(half, &e).await?;
                        return Err(e);
                    }
                }
            }
            Ok(())
        })
    }

    fn tell_pushed(&self, mut applied: PushApplied, replayed: bool, report: &mut SyncReport) {
        // A replayed answer is the hub's first answer to these ops: they were applied by the
        // request whose answer was lost, not now.
        for o in &mut applied.outcomes {
            o.duplicate |= replayed;
        }
        for o in &applied.outcomes {
            match o.status {
                _ if o.duplicate => report.duplicates += 1,
                OpStatus::Rejected => report.rejected += 1,
                _ => report.applied += 1,
            }
            self.listeners
                .emit(&SyncEvent::OpSettled { outcome: o.clone() });
        }
        for (product_id, location_id) in applied.stock {
            self.listeners.emit(&SyncEvent::StockChanged {
                product_id,
                location_id,
            });
        }
        report.outcomes.extend(applied.outcomes);
    }

    async fn fetch(&self, token: Option<String>) -> Result<DeltaResponse, RoundError> {
        let limit = self.pull_limit;
        self.authed(|auth| {
            let token = token.clone();
            async move { self.client.pull(&auth, token.as_deref(), limit).await }
        })
        .await
    }

    /// Pulls until the head. The next page is fetched while the current one is applied (its
    /// token is known before the apply), so the network and the disk work at the same time.
    async fn pull_all(&self, report: &mut SyncReport) -> Result<(), RoundError> {
        let token = blocking(self.store, |s| s.delta_token()).await?;
        let resuming = token.is_some();
        let mut response = match self.fetch(token).await {
            // The hub does not know this pull position: it lost its data or its secret, or the
            // token came from another hub or scope. Like `full_sync_required`: start a fresh
            // snapshot; unsent ops stay in the outbox and go out as usual.
            Err(RoundError::Transport(e))
                if resuming && e.code() == Some(ErrorCode::InvalidSyncToken) =>
            {
                let why = format!("the hub refused the pull position ({e}): fresh snapshot");
                blocking(self.store, move |s| s.restart_snapshot(&why)).await?;
                self.fetch(None).await?
            }
            other => other?,
        };
        loop {
            let items = response.page.created.len()
                + response.page.updated.len()
                + response.page.deleted.len();
            let has_more = response.meta.has_more;
            let next_token = response.meta.next_sync_token.clone();
            let apply = blocking(self.store, move |s| {
                s.apply_delta_page(&response.page, &response.meta)
            });
            let (applied, next) = if has_more {
                let (applied, next) = tokio::join!(apply, self.fetch(Some(next_token)));
                (applied?, Some(next))
            } else {
                (apply.await?, None)
            };
            report.pulled += items as u64;
            report.pages += 1;
            report.conflicts += applied.conflicts.len() as u64;
            let check = applied.checksum.clone();
            self.tell_pulled(applied, report, has_more);
            if let Some(check) = check {
                if check.matches() {
                    report.checksum_ok = Some(true);
                } else if !report.repaired {
                    // The device's view differs from the hub's: rebuild it from a snapshot.
                    // Unsent ops are untouched; they stay on top of the rebuilt view.
                    report.repaired = true;
                    let why = format!(
                        "checksum mismatch (hub {}, device {}): re-snapshot",
                        check.hub, check.local
                    );
                    blocking(self.store, move |s| s.restart_snapshot(&why)).await?;
                    response = self.fetch(None).await?;
                    continue;
                } else {
                    report.checksum_ok = Some(false);
                    let why = format!(
                        "checksum still differs after a repair (hub {}, device {})",
                        check.hub, check.local
                    );
                    blocking(self.store, move |s| s.set_sync_error(Some(&why))).await?;
                }
            }
            match next {
                Some(next) => response = next?,
                None => return Ok(()),
            }
        }
    }

    fn tell_pulled(&self, applied: PageApplied, report: &SyncReport, has_more: bool) {
        self.listeners.emit(&SyncEvent::Progress {
            progress: SyncProgress {
                phase: if applied.snapshot { "snapshot" } else { "pull" }.into(),
                pushed: report.pushed,
                pulled: report.pulled,
                pages: report.pages,
                has_more,
            },
        });
        // A snapshot rewrites every row: listeners get progress, and refresh at its end.
        if applied.snapshot && !applied.snapshot_completed {
            return;
        }
        emit_changes(self.listeners, &applied);
    }
}

/// One event per changed row.
pub(crate) fn emit_changes(listeners: &Listeners, applied: &PageApplied) {
    if listeners.is_empty() {
        return;
    }
    for (product_id, location_id) in &applied.stock {
        listeners.emit(&SyncEvent::StockChanged {
            product_id: product_id.clone(),
            location_id: location_id.clone(),
        });
    }
    for product_id in &applied.products {
        listeners.emit(&SyncEvent::ProductChanged {
            product_id: product_id.clone(),
        });
    }
    for conflict_id in &applied.conflicts {
        listeners.emit(&SyncEvent::ConflictChanged {
            conflict_id: conflict_id.clone(),
        });
    }
}

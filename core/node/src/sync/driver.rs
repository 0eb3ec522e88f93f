//! The tokio task behind `SyncNode::start`: feeds the engine its events (local writes, timers,
//! round results, WebSocket frames) and performs the actions it returns. All decisions about
//! *when* live in the engine; this file only does I/O.

use super::engine::{Action, Engine, Input, RoundOutcome, SyncStatus};
use super::events::SyncEvent;
use super::live::{self, LiveEvent};
use super::policy::{Failure, FailureKind};
use super::round::{RoundError, blocking, emit_changes};
use super::transport::{Auth, TransportError};
use crate::SyncNode;
use std::collections::VecDeque;
use std::sync::Weak;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// A running background task.
pub(crate) struct Runner {
    tx: mpsc::UnboundedSender<Input>,
    task: JoinHandle<()>,
}

impl Runner {
    pub(crate) fn spawn(handle: &tokio::runtime::Handle, node: SyncNode) -> Runner {
        let (tx, rx) = mpsc::unbounded_channel();
        let weak = std::sync::Arc::downgrade(&node.inner);
        let engine = Engine::new(node.inner.config.engine.clone());
        let task = handle.spawn(drive(weak, engine, rx, tx.clone()));
        Runner { tx, task }
    }

    pub(crate) fn send(&self, input: Input) {
        let _ = self.tx.send(input);
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    pub(crate) async fn stop(self) {
        let _ = self.tx.send(Input::Stop);
        // The task ends at once on Stop; a round in flight is dropped with it.
        if tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .is_err()
        {
            tracing::warn!("sync task did not stop within 5 s");
        }
    }
}

/// What the engine needs to know about a failure.
pub(crate) fn failure(e: &RoundError) -> Failure {
    match e {
        RoundError::AuthRequired(m) => Failure::new(FailureKind::Auth, m.clone()),
        RoundError::Store(m) => Failure::new(FailureKind::Decode, m.clone()),
        RoundError::Transport(t) => transport_failure(t),
    }
}

fn transport_failure(t: &TransportError) -> Failure {
    let kind = match t {
        TransportError::Offline { .. } => FailureKind::Offline,
        TransportError::Timeout { .. } => FailureKind::Timeout,
        TransportError::Http { status: 401, .. } => FailureKind::Auth,
        TransportError::Http { status, .. } => FailureKind::Status(*status),
        TransportError::Decode { .. } | TransportError::InvalidConfig { .. } => FailureKind::Decode,
    };
    let f = Failure::new(kind, t.to_string());
    match t.retry_after() {
        Some(d) => f.with_retry_after(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        None => f,
    }
}

async fn drive(
    node: Weak<super::NodeInner>,
    mut engine: Engine,
    mut rx: mpsc::UnboundedReceiver<Input>,
    tx: mpsc::UnboundedSender<Input>,
) {
    let epoch = Instant::now();
    let now_ms = move || u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
    let mut queue: VecDeque<Input> = VecDeque::from([Input::Start]);
    let mut round: Option<JoinHandle<Result<super::SyncReport, RoundError>>> = None;
    let mut live: Option<JoinHandle<()>> = None;
    loop {
        while let Some(input) = queue.pop_front() {
            let stop = input == Input::Stop;
            let actions = engine.handle(input, now_ms());
            let Some(inner) = node.upgrade() else {
                return;
            };
            let node = SyncNode { inner };
            for action in actions {
                match action {
                    Action::RunRound => {
                        let n = node.clone();
                        round = Some(tokio::spawn(async move { n.round().await }));
                    }
                    Action::RefreshAuth => {
                        let input = match node.refresh_auth().await {
                            Ok(()) => Input::AuthRefreshed,
                            Err(e) => Input::AuthRefreshFailed(failure(&e)),
                        };
                        queue.push_back(input);
                    }
                    Action::OpenLive => {
                        if let Some(old) = live.take() {
                            old.abort();
                        }
                        live = Some(tokio::spawn(follow_live(node.clone(), tx.clone())));
                    }
                    Action::CloseLive => {
                        if let Some(old) = live.take() {
                            old.abort();
                        }
                    }
                    Action::StatusChanged(status) => publish(&node, status, epoch),
                }
            }
            if stop {
                if let Some(r) = round.take() {
                    r.abort();
                }
                if let Some(l) = live.take() {
                    l.abort();
                }
                return;
            }
        }
        let wake = engine
            .next_wake()
            .map(|ms| epoch + Duration::from_millis(ms));
        tokio::select! {
            input = rx.recv() => match input {
                Some(i) => queue.push_back(i),
                None => queue.push_back(Input::Stop),
            },
            joined = async {
                match round.as_mut() {
                    Some(r) => r.await,
                    None => std::future::pending().await,
                }
            }, if round.is_some() => {
                round = None;
                let outcome = match joined {
                    Ok(Ok(report)) => RoundOutcome::Ok {
                        pushed: usize::try_from(report.pushed).unwrap_or(usize::MAX),
                        pulled: usize::try_from(report.pulled).unwrap_or(usize::MAX),
                        more: false,
                    },
                    Ok(Err(e)) => RoundOutcome::Failed(failure(&e)),
                    Err(e) => RoundOutcome::Failed(Failure::new(
                        FailureKind::Decode,
                        format!("sync round failed: {e}"),
                    )),
                };
                if let (Some(inner), RoundOutcome::Failed(f)) = (node.upgrade(), &outcome) {
                    let message = f.message.clone();
                    let _ = blocking(&inner.store, move |s| s.set_sync_error(Some(&message))).await;
                } else if let Some(inner) = node.upgrade() {
                    let _ = blocking(&inner.store, |s| s.set_sync_error(None)).await;
                }
                queue.push_back(Input::RoundFinished(outcome));
            }
            () = sleep_until(wake), if wake.is_some() => queue.push_back(Input::Tick),
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}

/// Keeps the engine's status for `status()` and tells the listeners.
fn publish(node: &SyncNode, status: SyncStatus, epoch: Instant) {
    let next_retry_at = status.next_retry_ms.map(|ms| {
        let wait = Duration::from_millis(ms).saturating_sub(epoch.elapsed());
        chrono::Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default()
    });
    *node.inner.status.lock().unwrap_or_else(|p| p.into_inner()) = (status, next_retry_at);
    if let Ok(status) = node.status() {
        node.inner
            .listeners
            .emit(&SyncEvent::StatusChanged { status });
    }
}

/// The WebSocket: apply each change frame at once, tell the engine (which pulls to confirm).
async fn follow_live(node: SyncNode, tx: mpsc::UnboundedSender<Input>) {
    let closed = match connect_and_follow(&node, &tx).await {
        Ok(()) => None,
        Err(e) => {
            tracing::warn!("live connection ended: {e}");
            Some(failure(&e))
        }
    };
    let _ = tx.send(Input::LiveClosed(closed));
}

async fn connect_and_follow(
    node: &SyncNode,
    tx: &mpsc::UnboundedSender<Input>,
) -> Result<(), RoundError> {
    let store = node.inner.store.clone();
    let (device, creds) = node.enrolled().await?;
    let config = &node.inner.config;
    if config.channels.is_empty() {
        return Ok(());
    }
    let auth = Auth {
        access_token: creds.access_token,
        organization_id: device.org_id.clone(),
    };
    let mut conn = live::connect(
        &creds.hub_url,
        device.device_id.as_str(),
        &auth,
        &[(config.channels.clone(), config.filters.clone())],
        &config.transport,
    )
    .await?;
    let _ = tx.send(Input::LiveOpened);
    while let Some(event) = conn.next().await {
        match event? {
            LiveEvent::Change(frame) => {
                let seq = frame.seq;
                // A frame the device cannot apply is skipped, not fatal: the pull it triggers
                // brings the same state from the feed.
                match blocking(&store, move |s| s.apply_live_change(&frame)).await {
                    Ok(applied) => emit_changes(&node.inner.listeners, &applied),
                    Err(e) => tracing::warn!(seq, "live frame not applied: {e}"),
                }
                let _ = tx.send(Input::LiveFrame { seq });
            }
            LiveEvent::ServerError(e) => {
                tracing::warn!(code = ?e.code, "hub WebSocket error frame: {}", e.message);
            }
        }
    }
    Ok(())
}

//! The sans-I/O sync machine: events in, actions out.
//!
//! [`Engine`] decides *when* to run a sync round, refresh the token or (re)open the live socket;
//! the driver does the I/O and reports back. It owns no socket, clock or randomness: every call
//! carries `now_ms`, and jitter comes from a [`XorShift64`] seeded by the config, so a test can
//! replay any sequence exactly.
//!
//! The driver's contract:
//! - call [`Engine::handle`] for every event and execute the returned actions in order;
//! - send [`Input::Tick`] at [`Engine::next_wake`] (re-read it after every call);
//! - report every `RunRound` with `RoundFinished`, every `RefreshAuth` with `AuthRefreshed` or
//!   `AuthRefreshFailed`, and the socket with `LiveOpened`/`LiveFrame`/`LiveClosed`;
//! - after `Stop` (or `AuthRequired`), abandon work in flight without reporting it.

use serde::{Deserialize, Serialize};

use super::policy::{Backoff, Breaker, BreakerState, Failure, FailureKind, XorShift64};

/// Tuning of the engine. `Default` gives the production values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// How long a local write or live frame waits, so a burst of scans goes in one round.
    pub debounce_ms: u64,
    /// The periodic round when the live socket is not open.
    pub poll_interval_ms: u64,
    /// The safety round while the live socket is open (frames are hints; the pull is the truth).
    pub live_poll_interval_ms: u64,
    /// Whether to keep a WebSocket open to the hub.
    pub live: bool,
    /// Delays between retries of rounds and of the socket.
    pub backoff: Backoff,
    /// Consecutive transport failures that open the circuit breaker.
    pub breaker_threshold: u32,
    /// How long the breaker stays open at first (doubles after each failed probe).
    pub breaker_cooldown_ms: u64,
    /// Seed of the jitter generator.
    pub seed: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            debounce_ms: 300,
            poll_interval_ms: 30_000,
            live_poll_interval_ms: 300_000,
            live: true,
            backoff: Backoff::default(),
            breaker_threshold: 5,
            breaker_cooldown_ms: 30_000,
            seed: 0x5EED,
        }
    }
}

/// How a round ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoundOutcome {
    /// The outbox was pushed and the feed pulled.
    Ok {
        /// Ops the hub acknowledged.
        pushed: usize,
        /// Changes applied from the feed.
        pulled: usize,
        /// Work was left over (outbox or feed not drained): run another round at once.
        more: bool,
    },
    /// The round stopped on this failure.
    Failed(Failure),
}

/// An event fed to the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Begin syncing (also after new credentials once auth was required).
    Start,
    /// Stop syncing: the engine closes the socket and stays silent until `Start`.
    Stop,
    /// A local op was recorded.
    LocalWrite,
    /// The user asked to sync now.
    SyncRequested,
    /// The driver's timer fired (at or after [`Engine::next_wake`]).
    Tick,
    /// The round asked for by [`Action::RunRound`] ended.
    RoundFinished(RoundOutcome),
    /// The live socket is open.
    LiveOpened,
    /// A change frame arrived (the driver has applied it to the local view).
    LiveFrame {
        /// The frame's organization sequence.
        seq: u64,
    },
    /// The live socket closed, with the reason when it failed.
    LiveClosed(Option<Failure>),
    /// The token refresh asked for by [`Action::RefreshAuth`] succeeded.
    AuthRefreshed,
    /// The token refresh failed.
    AuthRefreshFailed(Failure),
    /// The OS's reachability hint changed.
    NetworkChanged {
        /// Whether a network is available.
        online: bool,
    },
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Push the outbox, pull to the head, then report `RoundFinished`.
    RunRound,
    /// Refresh the access token, then report `AuthRefreshed` or `AuthRefreshFailed`.
    RefreshAuth,
    /// Open the live socket.
    OpenLive,
    /// Close the live socket.
    CloseLive,
    /// The status changed (sent only on a real change).
    StatusChanged(SyncStatus),
}

/// The headline of [`SyncStatus`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncState {
    /// Not started, or stopped.
    #[default]
    Stopped,
    /// The first round since start, or a round after a failure, is in flight.
    Connecting,
    /// A round is in flight and the previous one succeeded.
    Syncing,
    /// The last round succeeded and the live socket is open.
    Live,
    /// The last round succeeded; no live socket, so polling.
    Idle,
    /// No network, or the hub is unreachable.
    Offline,
    /// The last round failed; retrying at `next_retry_ms`.
    BackingOff,
    /// Too many transport failures: no requests until `next_retry_ms`.
    CircuitOpen,
    /// The credentials were refused after a refresh: the device must enroll again.
    AuthRequired,
}

/// What a front end shows about sync.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SyncStatus {
    /// Where sync stands.
    pub state: SyncState,
    /// When the next attempt is due (on the `now_ms` clock), while backing off, offline or
    /// circuit-open.
    pub next_retry_ms: Option<u64>,
    /// Rounds failed in a row.
    pub consecutive_failures: u32,
    /// The last failure's message, until a round succeeds.
    pub last_error: Option<String>,
    /// When a round last succeeded (on the `now_ms` clock).
    pub last_success_ms: Option<u64>,
    /// Whether the live socket is open.
    pub live: bool,
    /// Gaps seen in live frame sequences (each healed by the next pull).
    pub ws_gaps: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Stopped,
    Running,
    AuthRequired,
}

/// The one request flow that may be in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Busy {
    Idle,
    Round,
    Refresh,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Auth {
    Valid,
    /// The hub refused the token: the next due flow is a refresh.
    NeedsRefresh,
    /// Refreshed, and no round has succeeded since: another refusal means enroll again.
    JustRefreshed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Socket {
    Closed,
    Opening,
    Open,
}

/// The sync state machine. See the module documentation for the driver's contract.
#[derive(Debug, Clone)]
pub struct Engine {
    config: EngineConfig,
    rng: XorShift64,
    breaker: Breaker,
    phase: Phase,
    online: bool,
    busy: Busy,
    auth: Auth,
    /// When the next round (or refresh) is due; `None` while one is in flight.
    due_at: Option<u64>,
    /// Something changed during the flow in flight: run a round right after it.
    again: bool,
    failures: u32,
    last_kind: Option<FailureKind>,
    last_error: Option<String>,
    last_success_ms: Option<u64>,
    /// The last round succeeded (and the network has not gone away since).
    healthy: bool,
    socket: Socket,
    socket_due_at: Option<u64>,
    socket_failures: u32,
    socket_opened_before: bool,
    last_seq: Option<u64>,
    ws_gaps: u64,
    status: SyncStatus,
}

impl Engine {
    /// A stopped engine; send [`Input::Start`] to begin.
    pub fn new(config: EngineConfig) -> Self {
        Self {
            rng: XorShift64::new(config.seed),
            breaker: Breaker::new(config.breaker_threshold, config.breaker_cooldown_ms),
            config,
            phase: Phase::Stopped,
            online: true,
            busy: Busy::Idle,
            auth: Auth::Valid,
            due_at: None,
            again: false,
            failures: 0,
            last_kind: None,
            last_error: None,
            last_success_ms: None,
            healthy: false,
            socket: Socket::Closed,
            socket_due_at: None,
            socket_failures: 0,
            socket_opened_before: false,
            last_seq: None,
            ws_gaps: 0,
            status: SyncStatus::default(),
        }
    }

    /// The current status (as last announced by `StatusChanged`).
    pub fn status(&self) -> SyncStatus {
        self.status.clone()
    }

    /// Feed one event at `now_ms`; returns what the driver must do, in order.
    pub fn handle(&mut self, input: Input, now_ms: u64) -> Vec<Action> {
        let now = now_ms;
        let mut out = Vec::new();
        if self.phase == Phase::Running {
            match input {
                Input::Start | Input::Tick => {}
                Input::Stop => self.stop(&mut out),
                Input::LocalWrite => self.soon(now),
                Input::SyncRequested => self.sync_now(now, &mut out),
                Input::RoundFinished(outcome) => self.round_finished(outcome, now, &mut out),
                Input::LiveOpened => self.live_opened(now, &mut out),
                Input::LiveFrame { seq } => self.live_frame(seq, now),
                Input::LiveClosed(failure) => self.live_closed(failure, now, &mut out),
                Input::AuthRefreshed => self.refreshed(now),
                Input::AuthRefreshFailed(failure) => self.refresh_failed(failure, now, &mut out),
                Input::NetworkChanged { online } => self.network_changed(online, now, &mut out),
            }
        } else {
            // Stopped or waiting for new credentials: only these matter, and silently.
            match input {
                Input::Start => self.start(now),
                Input::Stop => self.phase = Phase::Stopped,
                Input::NetworkChanged { online } => self.online = online,
                _ => {}
            }
        }
        if self.phase == Phase::Running {
            self.drive(now, &mut out);
        }
        self.publish(now, &mut out);
        out
    }

    /// When the driver must send [`Input::Tick`] (absolute ms), or `None` to wait for events.
    pub fn next_wake(&self) -> Option<u64> {
        if self.phase != Phase::Running || !self.online {
            return None;
        }
        let round = self.next_round_at();
        let socket = if self.socket_may_open() {
            self.socket_due_at.map(|t| self.gate(t))
        } else {
            None
        };
        match (round, socket) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn start(&mut self, now: u64) {
        self.phase = Phase::Running;
        self.breaker = Breaker::new(
            self.config.breaker_threshold,
            self.config.breaker_cooldown_ms,
        );
        self.busy = Busy::Idle;
        self.auth = Auth::Valid;
        self.due_at = Some(now);
        self.again = false;
        self.failures = 0;
        self.last_kind = None;
        self.last_error = None;
        self.healthy = false;
        self.socket = Socket::Closed;
        self.socket_due_at = self.config.live.then_some(now);
        self.socket_failures = 0;
        self.socket_opened_before = false;
        self.last_seq = None;
    }

    fn stop(&mut self, out: &mut Vec<Action>) {
        self.phase = Phase::Stopped;
        self.close_socket(out);
        self.busy = Busy::Idle;
        self.due_at = None;
        self.again = false;
    }

    /// Start whatever is due: the socket first (so `Start` reads `OpenLive`, `RunRound`), then
    /// the round, unless the OS says there is no network.
    fn drive(&mut self, now: u64, out: &mut Vec<Action>) {
        if self.online
            && self.socket_may_open()
            && self.socket_due_at.is_some_and(|t| t <= now)
            && !matches!(self.breaker.state(now), BreakerState::Open { .. })
        {
            self.socket = Socket::Opening;
            self.socket_due_at = None;
            out.push(Action::OpenLive);
        }
        if self.online && self.due_at.is_some_and(|t| t <= now) {
            self.begin(now, out);
        }
    }

    /// Run the due flow now if nothing is in flight and the breaker lets it (a half-open
    /// breaker hands out its single probe here). A pending refresh goes before any round.
    fn begin(&mut self, now: u64, out: &mut Vec<Action>) {
        if self.busy != Busy::Idle || !self.breaker.allow(now) {
            return;
        }
        self.due_at = None;
        self.again = false;
        if self.auth == Auth::NeedsRefresh {
            self.busy = Busy::Refresh;
            out.push(Action::RefreshAuth);
        } else {
            self.busy = Busy::Round;
            out.push(Action::RunRound);
        }
    }

    /// Something to send or fetch: a round after the debounce window, which opens at the first
    /// event and is not extended, so a steady stream of scans still syncs every `debounce_ms`.
    /// While backing off the retry will carry it: a scan must not defeat the backoff.
    fn soon(&mut self, now: u64) {
        if self.busy != Busy::Idle {
            self.again = true;
        } else if self.failures == 0 {
            self.due_at = Some(earliest(
                self.due_at,
                now.saturating_add(self.config.debounce_ms),
            ));
        }
    }

    /// The user asked: bypass debounce and backoff, and cut an open breaker's cooldown short so
    /// the request goes as its one probe (a failed probe reopens it, cooldown doubled). The OS's
    /// offline hint is not trusted here: it may be wrong, and the user is looking.
    fn sync_now(&mut self, now: u64, out: &mut Vec<Action>) {
        if self.busy != Busy::Idle {
            self.again = true;
            return;
        }
        self.breaker.force_half_open(now);
        self.due_at = Some(now);
        if self.config.live && self.socket == Socket::Closed {
            self.socket_due_at = Some(now);
        }
        self.begin(now, out);
    }

    fn round_finished(&mut self, outcome: RoundOutcome, now: u64, out: &mut Vec<Action>) {
        if self.busy != Busy::Round {
            return; // Not ours (e.g. from before a Stop).
        }
        self.busy = Busy::Idle;
        match outcome {
            RoundOutcome::Ok { more, .. } => {
                self.breaker.on_success();
                self.auth = Auth::Valid;
                self.failures = 0;
                self.last_kind = None;
                self.last_error = None;
                self.last_success_ms = Some(now);
                self.healthy = true;
                let next = if more || self.again {
                    now
                } else {
                    now.saturating_add(self.poll_interval())
                };
                self.due_at = Some(next);
            }
            RoundOutcome::Failed(failure) => self.failed(failure, now, out),
        }
    }

    /// A round or refresh failed. A refused token is refreshed once; anything else is retried
    /// later — nothing is ever dropped, answers that retrying cannot fix just wait the longest.
    fn failed(&mut self, failure: Failure, now: u64, out: &mut Vec<Action>) {
        if failure.kind.is_auth() {
            self.breaker.on_success(); // The hub answered.
            if self.auth == Auth::JustRefreshed {
                self.require_auth(&failure, out);
            } else {
                self.auth = Auth::NeedsRefresh;
                self.due_at = Some(now);
            }
            return;
        }
        self.failures = self.failures.saturating_add(1);
        self.healthy = false;
        self.last_kind = Some(failure.kind);
        self.last_error = Some(failure.message.clone());
        if failure.kind.is_transport() {
            self.breaker.on_failure(now);
        } else {
            self.breaker.on_success();
        }
        let delay = self.retry_delay(self.failures - 1, Some(&failure));
        self.due_at = Some(now.saturating_add(delay));
    }

    fn refreshed(&mut self, now: u64) {
        if self.busy != Busy::Refresh {
            return;
        }
        self.busy = Busy::Idle;
        self.breaker.on_success();
        self.auth = Auth::JustRefreshed;
        self.due_at = Some(now);
        if self.config.live && self.socket == Socket::Closed {
            self.socket_due_at = Some(now);
        }
    }

    /// A 401 on refresh means the refresh token is gone: enroll again. Any other failure is an
    /// ordinary one; the retry is the refresh again (auth stays `NeedsRefresh`).
    fn refresh_failed(&mut self, failure: Failure, now: u64, out: &mut Vec<Action>) {
        if self.busy != Busy::Refresh {
            return;
        }
        self.busy = Busy::Idle;
        if failure.kind.is_auth() {
            self.require_auth(&failure, out);
        } else {
            self.failed(failure, now, out);
        }
    }

    fn require_auth(&mut self, failure: &Failure, out: &mut Vec<Action>) {
        self.phase = Phase::AuthRequired;
        self.close_socket(out);
        self.due_at = None;
        self.again = false;
        self.last_error = Some(failure.message.clone());
    }

    fn live_opened(&mut self, now: u64, out: &mut Vec<Action>) {
        match self.socket {
            Socket::Opening => {
                self.socket = Socket::Open;
                self.socket_failures = 0;
                self.last_seq = None;
                if self.socket_opened_before {
                    self.soon(now); // Frames sent while it was down are lost: pull them.
                }
                self.socket_opened_before = true;
            }
            // It opened after we stopped wanting it (e.g. the network went away meanwhile).
            Socket::Closed => out.push(Action::CloseLive),
            Socket::Open => {}
        }
    }

    /// A frame is a hint to pull; a gap in `seq` (a slow subscriber misses frames) is counted
    /// and healed by that same pull.
    fn live_frame(&mut self, seq: u64, now: u64) {
        if let Some(last) = self.last_seq {
            if seq > last.saturating_add(1) {
                self.ws_gaps = self.ws_gaps.saturating_add(1);
            }
            self.last_seq = Some(last.max(seq));
        } else {
            self.last_seq = Some(seq);
        }
        self.soon(now);
    }

    fn live_closed(&mut self, failure: Option<Failure>, now: u64, out: &mut Vec<Action>) {
        if self.socket == Socket::Closed {
            return; // We closed it, or it never opened for us.
        }
        self.socket = Socket::Closed;
        self.last_seq = None;
        // A refused token while idle: refresh, then reopen at once (the socket waits for the
        // refresh). While a flow is in flight, that flow will tell whether the token works; the
        // socket just backs off, so a socket-only refusal cannot loop refreshes.
        if let Some(f) = failure.as_ref().filter(|f| f.kind.is_auth())
            && self.busy == Busy::Idle
        {
            self.socket_due_at = Some(now);
            if self.auth == Auth::JustRefreshed {
                self.require_auth(f, out);
            } else {
                self.auth = Auth::NeedsRefresh;
                self.due_at = Some(earliest(self.due_at, now));
            }
            return;
        }
        self.socket_failures = self.socket_failures.saturating_add(1);
        let delay = self.retry_delay(self.socket_failures - 1, failure.as_ref());
        self.socket_due_at = Some(now.saturating_add(delay));
        // Rounds keep polling, at the pace for no socket.
        if self.busy == Busy::Idle && self.failures == 0 {
            let poll = now.saturating_add(self.config.poll_interval_ms);
            self.due_at = Some(earliest(self.due_at, poll));
        }
    }

    /// Offline: close the socket and try nothing. Online (or another network): what failed
    /// before may work now, and the failures counted say nothing about this network, so reset
    /// the backoff and the breaker and retry at once.
    fn network_changed(&mut self, online: bool, now: u64, out: &mut Vec<Action>) {
        self.online = online;
        if !online {
            self.healthy = false;
            self.close_socket(out);
            return;
        }
        self.failures = 0;
        self.last_kind = None;
        self.breaker.on_success();
        if self.busy == Busy::Idle {
            self.due_at = Some(now);
        } else {
            self.again = true;
        }
        if self.config.live && self.socket == Socket::Closed {
            self.socket_failures = 0;
            self.socket_due_at = Some(now);
        }
    }

    fn close_socket(&mut self, out: &mut Vec<Action>) {
        if self.socket != Socket::Closed {
            out.push(Action::CloseLive);
        }
        self.socket = Socket::Closed;
        self.socket_due_at = None;
        self.last_seq = None;
    }

    /// Jittered backoff for a retryable failure (a longer `Retry-After` wins); the longest
    /// delay for one retrying cannot fix, so it is retried without a hot loop.
    fn retry_delay(&mut self, attempt: u32, failure: Option<&Failure>) -> u64 {
        let retry_after = failure.and_then(|f| f.retry_after_ms);
        if failure.is_none_or(Failure::is_retryable) {
            self.config
                .backoff
                .delay(attempt, retry_after, &mut self.rng)
        } else {
            self.config.backoff.max_ms.max(retry_after.unwrap_or(0))
        }
    }

    fn poll_interval(&self) -> u64 {
        if self.socket == Socket::Open {
            self.config.live_poll_interval_ms
        } else {
            self.config.poll_interval_ms
        }
    }

    /// The socket needs a usable token; it waits while one is being refreshed.
    fn socket_may_open(&self) -> bool {
        self.config.live
            && self.socket == Socket::Closed
            && self.auth != Auth::NeedsRefresh
            && self.busy != Busy::Refresh
    }

    /// `t`, or later if the breaker will still be open then.
    fn gate(&self, t: u64) -> u64 {
        match self.breaker.state(t) {
            BreakerState::Open { until_ms } => until_ms,
            _ => t,
        }
    }

    fn next_round_at(&self) -> Option<u64> {
        if self.busy == Busy::Idle {
            self.due_at.map(|t| self.gate(t))
        } else {
            None
        }
    }

    fn compute_status(&self, now: u64) -> SyncStatus {
        let state = match self.phase {
            Phase::Stopped => SyncState::Stopped,
            Phase::AuthRequired => SyncState::AuthRequired,
            Phase::Running if self.busy != Busy::Idle => {
                if self.healthy {
                    SyncState::Syncing
                } else {
                    SyncState::Connecting
                }
            }
            Phase::Running if !self.online => SyncState::Offline,
            Phase::Running if matches!(self.breaker.state(now), BreakerState::Open { .. }) => {
                SyncState::CircuitOpen
            }
            Phase::Running if self.failures > 0 => {
                if self.last_kind == Some(FailureKind::Offline) {
                    SyncState::Offline
                } else {
                    SyncState::BackingOff
                }
            }
            Phase::Running if !self.healthy => SyncState::Connecting,
            Phase::Running if self.socket == Socket::Open => SyncState::Live,
            Phase::Running => SyncState::Idle,
        };
        let retrying = matches!(
            state,
            SyncState::Offline | SyncState::BackingOff | SyncState::CircuitOpen
        );
        SyncStatus {
            state,
            next_retry_ms: if retrying && self.online {
                self.next_round_at()
            } else {
                None
            },
            consecutive_failures: self.failures,
            last_error: self.last_error.clone(),
            last_success_ms: self.last_success_ms,
            live: self.phase == Phase::Running && self.socket == Socket::Open,
            ws_gaps: self.ws_gaps,
        }
    }

    fn publish(&mut self, now: u64, out: &mut Vec<Action>) {
        let status = self.compute_status(now);
        if status != self.status {
            self.status = status.clone();
            out.push(Action::StatusChanged(status));
        }
    }
}

fn earliest(current: Option<u64>, t: u64) -> u64 {
    current.map_or(t, |c| c.min(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_000_000;

    fn config(live: bool) -> EngineConfig {
        EngineConfig {
            live,
            ..EngineConfig::default()
        }
    }

    fn fail(kind: FailureKind) -> Failure {
        Failure::new(kind, format!("{kind:?}"))
    }

    fn ok(more: bool) -> Input {
        Input::RoundFinished(RoundOutcome::Ok {
            pushed: 1,
            pulled: 1,
            more,
        })
    }

    fn failed(kind: FailureKind) -> Input {
        Input::RoundFinished(RoundOutcome::Failed(fail(kind)))
    }

    fn requests(actions: &[Action]) -> Vec<Action> {
        actions
            .iter()
            .filter(|a| !matches!(a, Action::StatusChanged(_)))
            .cloned()
            .collect()
    }

    /// An engine and a fake clock.
    struct Harness {
        e: Engine,
        now: u64,
    }

    impl Harness {
        fn new(config: EngineConfig) -> Self {
            Self {
                e: Engine::new(config),
                now: T0,
            }
        }

        /// Started, first round done, socket (if any) open.
        fn running(config: EngineConfig) -> Self {
            let live = config.live;
            let mut h = Self::new(config);
            h.send(Input::Start);
            if live {
                h.send(Input::LiveOpened);
            }
            h.send(ok(false));
            h
        }

        fn send(&mut self, input: Input) -> Vec<Action> {
            self.e.handle(input, self.now)
        }

        fn at(&mut self, t: u64, input: Input) -> Vec<Action> {
            assert!(t >= self.now);
            self.now = t;
            self.send(input)
        }

        /// Advance to the next wake and tick.
        fn wake(&mut self) -> Vec<Action> {
            let w = self.e.next_wake().expect("a wake is scheduled");
            assert!(w > self.now, "wake {w} not after {}", self.now);
            self.at(w, Input::Tick)
        }

        fn state(&self) -> SyncState {
            self.e.status().state
        }
    }

    #[test]
    fn start_opens_live_then_runs_a_round() {
        let mut h = Harness::new(config(true));
        let a = h.send(Input::Start);
        assert_eq!(requests(&a), [Action::OpenLive, Action::RunRound]);
        assert_eq!(h.state(), SyncState::Connecting);
        h.send(Input::LiveOpened);
        assert_eq!(h.state(), SyncState::Connecting);
        let a = h.send(ok(false));
        assert!(requests(&a).is_empty());
        let s = h.e.status();
        assert_eq!((s.state, s.live), (SyncState::Live, true));
        assert_eq!(s.last_success_ms, Some(T0));
        // Live: only the slow safety round is scheduled.
        assert_eq!(h.e.next_wake(), Some(T0 + 300_000));
        assert_eq!(requests(&h.wake()), [Action::RunRound]);
        assert_eq!(h.state(), SyncState::Syncing);
    }

    #[test]
    fn without_live_it_polls() {
        let mut h = Harness::new(config(false));
        assert_eq!(requests(&h.send(Input::Start)), [Action::RunRound]);
        h.send(ok(false));
        assert_eq!(h.state(), SyncState::Idle);
        for _ in 0..3 {
            let before = h.now;
            assert_eq!(requests(&h.wake()), [Action::RunRound]);
            assert_eq!(h.now, before + 30_000);
            h.send(ok(false));
        }
    }

    #[test]
    fn start_twice_is_harmless() {
        let mut h = Harness::new(config(true));
        h.send(Input::Start);
        assert!(requests(&h.send(Input::Start)).is_empty());
    }

    #[test]
    fn a_burst_of_local_writes_makes_one_round_after_the_debounce() {
        let mut h = Harness::running(config(false));
        let t = h.now + 5_000;
        for dt in [0, 50, 120, 250, 299] {
            assert!(requests(&h.at(t + dt, Input::LocalWrite)).is_empty());
            assert_eq!(h.e.next_wake(), Some(t + 300), "the window is not extended");
        }
        assert!(requests(&h.at(t + 299, Input::Tick)).is_empty());
        assert_eq!(requests(&h.wake()), [Action::RunRound]);
        assert_eq!(h.now, t + 300);
        assert_eq!(h.e.next_wake(), None, "nothing until the round reports");
        assert!(requests(&h.send(Input::Tick)).is_empty());
    }

    #[test]
    fn a_local_write_during_a_round_runs_another_right_after() {
        let mut h = Harness::new(config(false));
        h.send(Input::Start);
        for _ in 0..3 {
            assert!(requests(&h.send(Input::LocalWrite)).is_empty());
        }
        assert!(requests(&h.send(Input::SyncRequested)).is_empty());
        assert_eq!(requests(&h.at(T0 + 10, ok(false))), [Action::RunRound]);
        assert!(requests(&h.at(T0 + 20, ok(false))).is_empty());
        assert_eq!(h.e.next_wake(), Some(T0 + 20 + 30_000));
    }

    #[test]
    fn more_runs_another_round_at_once() {
        let mut h = Harness::new(config(false));
        h.send(Input::Start);
        assert_eq!(requests(&h.send(ok(true))), [Action::RunRound]);
        assert!(requests(&h.send(ok(false))).is_empty());
    }

    #[test]
    fn failures_back_off_with_growing_jittered_delays() {
        let mut all = Vec::new();
        for seed in 1..=20 {
            let mut h = Harness::new(EngineConfig {
                breaker_threshold: 1000,
                seed,
                ..config(false)
            });
            h.send(Input::Start);
            let mut delays = Vec::new();
            for n in 0..10u32 {
                h.send(failed(FailureKind::Timeout));
                let s = h.e.status();
                assert_eq!(s.state, SyncState::BackingOff);
                assert_eq!(s.consecutive_failures, n + 1);
                assert_eq!(s.last_error.as_deref(), Some("Timeout"));
                let wake = h.e.next_wake().expect("retry");
                assert_eq!(s.next_retry_ms, Some(wake));
                let delay = wake - h.now;
                let ceiling = (500u64 << (n + 1)).min(60_000);
                assert!((500..=ceiling).contains(&delay), "{n}: {delay}");
                // Nothing before the retry, not even for a local write.
                assert!(requests(&h.at(wake - 1, Input::LocalWrite)).is_empty());
                assert_eq!(requests(&h.wake()), [Action::RunRound]);
                assert_eq!(h.state(), SyncState::Connecting);
                delays.push(delay);
            }
            all.push(delays);
        }
        assert!(all.iter().any(|d| *d != all[0]), "jittered by seed");
        // On average the delays grow.
        let mean = |n: usize| all.iter().map(|d| d[n]).sum::<u64>() / all.len() as u64;
        assert!(mean(0) < mean(3) && mean(3) < mean(7));
    }

    #[test]
    fn retry_after_is_respected_exactly() {
        let mut h = Harness::new(config(false));
        h.send(Input::Start);
        let f = fail(FailureKind::Status(429)).with_retry_after(10_000);
        h.send(Input::RoundFinished(RoundOutcome::Failed(f)));
        assert_eq!(h.e.next_wake(), Some(T0 + 10_000));
        assert_eq!(h.e.status().next_retry_ms, Some(T0 + 10_000));
        assert!(requests(&h.at(T0 + 9_999, Input::Tick)).is_empty());
        assert_eq!(
            requests(&h.at(T0 + 10_000, Input::Tick)),
            [Action::RunRound]
        );
    }

    #[test]
    fn offline_failures_show_offline_and_keep_retrying() {
        let mut h = Harness::new(config(false));
        h.send(Input::Start);
        h.send(failed(FailureKind::Offline));
        let s = h.e.status();
        assert_eq!(s.state, SyncState::Offline);
        assert!(s.next_retry_ms.is_some());
        assert_eq!(requests(&h.wake()), [Action::RunRound]);
        h.send(ok(false));
        assert_eq!(h.state(), SyncState::Idle);
        assert_eq!(h.e.status().last_error, None);
    }

    /// Fails rounds until the breaker opens; returns when it opens.
    fn open_breaker(h: &mut Harness) -> u64 {
        h.send(failed(FailureKind::Timeout));
        for _ in 1..5 {
            assert_eq!(requests(&h.wake()), [Action::RunRound]);
            h.send(failed(FailureKind::Status(503)));
        }
        assert_eq!(h.state(), SyncState::CircuitOpen);
        h.now + 30_000
    }

    #[test]
    fn five_transport_failures_open_the_circuit_then_one_probe_closes_it() {
        let mut h = Harness::new(config(false));
        h.send(Input::Start);
        let until = open_breaker(&mut h);
        assert_eq!(h.e.next_wake(), Some(until));
        assert_eq!(h.e.status().next_retry_ms, Some(until));
        assert_eq!(h.e.status().consecutive_failures, 5);
        for t in [h.now + 1, until - 1] {
            assert!(requests(&h.at(t, Input::LocalWrite)).is_empty());
            assert!(requests(&h.at(t, Input::Tick)).is_empty());
        }
        assert_eq!(requests(&h.at(until, Input::Tick)), [Action::RunRound]);
        assert_eq!(h.state(), SyncState::Connecting);
        assert!(requests(&h.send(Input::Tick)).is_empty());
        h.send(ok(false));
        assert_eq!(h.state(), SyncState::Idle);
        // Rounds resume.
        h.at(until + 1_000, Input::LocalWrite);
        assert_eq!(h.e.next_wake(), Some(until + 1_300));
        assert_eq!(requests(&h.wake()), [Action::RunRound]);
    }

    #[test]
    fn a_failed_probe_reopens_with_a_longer_cooldown() {
        let mut h = Harness::new(config(false));
        h.send(Input::Start);
        let until = open_breaker(&mut h);
        assert_eq!(requests(&h.at(until, Input::Tick)), [Action::RunRound]);
        h.at(until + 100, failed(FailureKind::Offline));
        assert_eq!(h.state(), SyncState::CircuitOpen);
        assert_eq!(h.e.next_wake(), Some(until + 100 + 60_000));
        assert_eq!(requests(&h.wake()), [Action::RunRound]);
        h.send(failed(FailureKind::Offline));
        assert_eq!(h.e.next_wake(), Some(h.now + 120_000));
    }

    #[test]
    fn sync_now_probes_an_open_circuit() {
        let mut h = Harness::new(config(false));
        h.send(Input::Start);
        open_breaker(&mut h);
        let t = h.now + 1_000;
        assert_eq!(requests(&h.at(t, Input::SyncRequested)), [Action::RunRound]);
        // Only one probe.
        assert!(requests(&h.send(Input::SyncRequested)).is_empty());
        h.send(failed(FailureKind::Timeout));
        assert_eq!(h.state(), SyncState::CircuitOpen);
        assert_eq!(h.e.next_wake(), Some(t + 60_000));
    }

    #[test]
    fn sync_now_bypasses_debounce_and_backoff() {
        let mut h = Harness::running(config(false));
        h.send(Input::LocalWrite);
        assert_eq!(requests(&h.send(Input::SyncRequested)), [Action::RunRound]);
        h.send(failed(FailureKind::Status(503)));
        assert_eq!(requests(&h.send(Input::SyncRequested)), [Action::RunRound]);
        // The failure count keeps growing: sync now does not reset the backoff.
        h.send(failed(FailureKind::Status(503)));
        assert_eq!(h.e.status().consecutive_failures, 2);
    }

    #[test]
    fn answers_that_retrying_cannot_fix_wait_the_longest_and_never_open_the_circuit() {
        let mut h = Harness::new(config(false));
        h.send(Input::Start);
        for n in 1..=10 {
            h.send(failed(FailureKind::Status(403)));
            let s = h.e.status();
            assert_eq!(s.state, SyncState::BackingOff);
            assert_eq!(s.consecutive_failures, n);
            assert_eq!(s.last_error.as_deref(), Some("Status(403)"));
            assert_eq!(h.e.next_wake(), Some(h.now + 60_000));
            assert_eq!(requests(&h.wake()), [Action::RunRound]);
        }
        h.send(failed(FailureKind::Decode));
        assert_eq!(h.e.next_wake(), Some(h.now + 60_000));
    }

    #[test]
    fn a_refused_token_is_refreshed_then_the_round_runs_again() {
        let mut h = Harness::running(config(false));
        h.send(Input::SyncRequested);
        assert_eq!(
            requests(&h.send(failed(FailureKind::Auth))),
            [Action::RefreshAuth]
        );
        assert_eq!(h.state(), SyncState::Syncing);
        assert!(requests(&h.send(Input::SyncRequested)).is_empty());
        assert_eq!(requests(&h.send(Input::AuthRefreshed)), [Action::RunRound]);
        h.send(ok(false));
        assert_eq!(h.state(), SyncState::Idle);
        // A later expiry refreshes again (the earlier refresh was vindicated).
        h.send(Input::SyncRequested);
        assert_eq!(
            requests(&h.send(failed(FailureKind::Status(401)))),
            [Action::RefreshAuth]
        );
    }

    fn assert_silent_until_start(h: &mut Harness) {
        for input in [
            Input::LocalWrite,
            Input::SyncRequested,
            Input::Tick,
            Input::LiveOpened,
            Input::LiveFrame { seq: 9 },
            Input::NetworkChanged { online: true },
            Input::AuthRefreshed,
            ok(true),
        ] {
            assert!(h.send(input).is_empty());
        }
        assert_eq!(h.e.next_wake(), None);
    }

    #[test]
    fn a_second_refusal_right_after_a_refresh_requires_auth() {
        let mut h = Harness::new(config(true));
        h.send(Input::Start);
        h.send(Input::LiveOpened);
        h.send(failed(FailureKind::Auth));
        assert_eq!(requests(&h.send(Input::AuthRefreshed)), [Action::RunRound]);
        let a = h.send(failed(FailureKind::Auth));
        assert_eq!(requests(&a), [Action::CloseLive]);
        let s = h.e.status();
        assert_eq!((s.state, s.live), (SyncState::AuthRequired, false));
        assert_eq!(s.last_error.as_deref(), Some("Auth"));
        assert_silent_until_start(&mut h);
        assert_eq!(
            requests(&h.send(Input::Start)),
            [Action::OpenLive, Action::RunRound]
        );
    }

    #[test]
    fn a_refused_refresh_requires_auth() {
        let mut h = Harness::new(config(false));
        h.send(Input::Start);
        h.send(failed(FailureKind::Auth));
        let a = h.send(Input::AuthRefreshFailed(fail(FailureKind::Auth)));
        assert_eq!(a, [Action::StatusChanged(h.e.status())]);
        assert_eq!(h.state(), SyncState::AuthRequired);
        assert_silent_until_start(&mut h);
        assert_eq!(h.send(Input::Stop), [Action::StatusChanged(h.e.status())]);
        assert_eq!(h.state(), SyncState::Stopped);
    }

    #[test]
    fn a_refresh_lost_to_the_network_is_retried_with_backoff() {
        let mut h = Harness::new(config(false));
        h.send(Input::Start);
        h.send(failed(FailureKind::Auth));
        h.send(Input::AuthRefreshFailed(fail(FailureKind::Offline)));
        assert_eq!(h.state(), SyncState::Offline);
        assert_eq!(requests(&h.wake()), [Action::RefreshAuth]);
        assert_eq!(requests(&h.send(Input::AuthRefreshed)), [Action::RunRound]);
    }

    #[test]
    fn a_socket_refused_for_auth_refreshes_then_reopens() {
        let mut h = Harness::running(config(true));
        assert_eq!(
            requests(&h.send(Input::LiveClosed(Some(fail(FailureKind::Auth))))),
            [Action::RefreshAuth]
        );
        assert_eq!(
            requests(&h.send(Input::AuthRefreshed)),
            [Action::OpenLive, Action::RunRound]
        );
    }

    #[test]
    fn a_closed_socket_reconnects_with_backoff_while_rounds_keep_polling() {
        let mut h = Harness::running(config(true));
        let closed_at = h.now + 1_000;
        let a = h.at(closed_at, Input::LiveClosed(None));
        assert!(requests(&a).is_empty());
        let s = h.e.status();
        assert_eq!((s.state, s.live), (SyncState::Idle, false));
        let mut opens = Vec::new();
        let mut rounds = Vec::new();
        while h.now < closed_at + 40_000 {
            for action in requests(&h.wake()) {
                match action {
                    Action::OpenLive => {
                        opens.push(h.now);
                        h.send(Input::LiveClosed(Some(fail(FailureKind::Timeout))));
                    }
                    Action::RunRound => {
                        rounds.push(h.now);
                        h.send(ok(false));
                    }
                    other => panic!("{other:?}"),
                }
            }
        }
        assert!(opens.len() >= 4);
        let mut last = closed_at;
        for (n, t) in opens.iter().enumerate() {
            let ceiling = (500u64 << (n + 1)).min(60_000);
            assert!((500..=ceiling).contains(&(t - last)), "{n}");
            last = *t;
        }
        assert_eq!(rounds.first(), Some(&(closed_at + 30_000)));
        // Open again: a round catches up on frames missed meanwhile, then back to Live.
        h.e.next_wake().expect("socket retry");
        loop {
            if requests(&h.wake()).contains(&Action::OpenLive) {
                break;
            }
            h.send(ok(false));
        }
        h.send(Input::LiveOpened);
        assert_eq!(h.e.next_wake(), Some(h.now + 300));
        assert_eq!(requests(&h.wake()), [Action::RunRound]);
        h.send(ok(false));
        assert_eq!(h.state(), SyncState::Live);
    }

    #[test]
    fn live_frames_make_a_debounced_round_and_gaps_are_counted() {
        let mut h = Harness::running(config(true));
        let t = h.now + 100;
        h.at(t, Input::LiveFrame { seq: 10 });
        h.at(t + 10, Input::LiveFrame { seq: 11 });
        assert_eq!(h.e.status().ws_gaps, 0);
        h.at(t + 20, Input::LiveFrame { seq: 13 });
        assert_eq!(h.e.status().ws_gaps, 1);
        h.at(t + 30, Input::LiveFrame { seq: 12 }); // late, not a gap
        h.at(t + 40, Input::LiveFrame { seq: 14 });
        assert_eq!(h.e.status().ws_gaps, 1);
        assert_eq!(h.e.next_wake(), Some(t + 300));
        assert_eq!(requests(&h.wake()), [Action::RunRound]);
        // A frame during the round: one more round after it.
        h.send(Input::LiveFrame { seq: 15 });
        assert_eq!(requests(&h.send(ok(false))), [Action::RunRound]);
    }

    #[test]
    fn stop_closes_the_socket_and_silences_the_engine() {
        let mut h = Harness::running(config(true));
        let a = h.send(Input::Stop);
        assert_eq!(
            a,
            [
                Action::CloseLive,
                Action::StatusChanged(SyncStatus {
                    state: SyncState::Stopped,
                    last_success_ms: Some(T0),
                    ..SyncStatus::default()
                })
            ]
        );
        assert_silent_until_start(&mut h);
        assert!(h.send(Input::Stop).is_empty());
        assert!(h.send(Input::LiveClosed(None)).is_empty());
    }

    #[test]
    fn the_network_hint_pauses_and_resumes() {
        let mut h = Harness::running(EngineConfig {
            breaker_threshold: 1000,
            ..config(true)
        });
        let a = h.send(Input::NetworkChanged { online: false });
        assert_eq!(requests(&a), [Action::CloseLive]);
        assert_eq!(h.state(), SyncState::Offline);
        assert!(requests(&h.send(Input::LocalWrite)).is_empty());
        assert_eq!(h.e.next_wake(), None);
        // The socket opened just as the network went: close it.
        assert_eq!(requests(&h.send(Input::LiveOpened)), [Action::CloseLive]);
        let a = h.send(Input::NetworkChanged { online: true });
        assert_eq!(requests(&a), [Action::OpenLive, Action::RunRound]);
        assert_eq!(h.state(), SyncState::Connecting);
        // Back online resets the backoff.
        for _ in 0..6 {
            h.send(failed(FailureKind::Timeout));
            h.wake();
        }
        h.send(Input::NetworkChanged { online: true });
        h.send(failed(FailureKind::Timeout));
        let delay = h.e.next_wake().expect("retry") - h.now;
        assert!((500..=1_000).contains(&delay), "{delay}");
    }

    #[test]
    fn sync_now_tries_even_when_the_os_says_offline() {
        let mut h = Harness::running(config(false));
        h.send(Input::NetworkChanged { online: false });
        assert_eq!(requests(&h.send(Input::SyncRequested)), [Action::RunRound]);
    }

    #[test]
    fn status_is_announced_only_when_it_changes() {
        let mut h = Harness::running(config(false));
        assert!(h.send(Input::LocalWrite).is_empty());
        assert!(h.send(Input::LocalWrite).is_empty());
        assert!(h.send(Input::Tick).is_empty());
    }

    #[test]
    fn status_serializes_in_snake_case() {
        let status = SyncStatus {
            state: SyncState::BackingOff,
            next_retry_ms: Some(5),
            ..SyncStatus::default()
        };
        let json = serde_json::to_value(&status).expect("serialize");
        assert_eq!(json["state"], "backing_off");
        assert_eq!(json["next_retry_ms"], 5);
        assert_eq!(json["ws_gaps"], 0);
        let back: SyncStatus = serde_json::from_value(json).expect("deserialize");
        assert_eq!(back, status);
        let json = serde_json::to_value(SyncState::AuthRequired).expect("serialize");
        assert_eq!(json, "auth_required");
    }

    fn random_failure(rng: &mut XorShift64, harsh: bool) -> Failure {
        let kind = match rng.range(0, if harsh { 2 } else { 6 }) {
            0 => FailureKind::Offline,
            1 => FailureKind::Timeout,
            2 => FailureKind::Status(503),
            3 => FailureKind::Status(429),
            4 => FailureKind::Status(403),
            5 => FailureKind::Auth,
            _ => FailureKind::Decode,
        };
        let f = fail(kind);
        if rng.range(0, 4) == 0 {
            f.with_retry_after(rng.range(0, 120_000))
        } else {
            f
        }
    }

    /// Mostly plausible driver behaviour, with stray and late reports mixed in. `harsh`: a hub
    /// that is mostly down and a network hint that never helps, so the breaker gets exercised.
    fn random_input(rng: &mut XorShift64, harsh: bool) -> Input {
        match rng.range(0, 15) {
            0 => Input::Start,
            1 if rng.range(0, 5) == 0 => Input::Stop,
            1 | 2 => Input::LocalWrite,
            3 => Input::SyncRequested,
            4 | 5 => Input::RoundFinished(if rng.range(0, if harsh { 10 } else { 1 }) == 0 {
                RoundOutcome::Ok {
                    pushed: 0,
                    pulled: 0,
                    more: rng.range(0, 4) == 0,
                }
            } else {
                RoundOutcome::Failed(random_failure(rng, harsh))
            }),
            6 => Input::LiveOpened,
            7 => Input::LiveFrame {
                seq: rng.range(0, 40),
            },
            8 => Input::LiveClosed((rng.range(0, 2) == 0).then(|| random_failure(rng, harsh))),
            9 => Input::AuthRefreshed,
            10 => Input::AuthRefreshFailed(random_failure(rng, harsh)),
            11 if !harsh => Input::NetworkChanged {
                online: rng.range(0, 3) != 0,
            },
            _ => Input::Tick,
        }
    }

    #[test]
    fn invariants_hold_under_random_inputs() {
        #[derive(Clone, Copy, PartialEq, Eq, Debug)]
        enum Flight {
            Round,
            Refresh,
        }
        for seed in 1..=300u64 {
            let mut rng = XorShift64::new(seed.wrapping_mul(0x9E37_79B9));
            let mut e = Engine::new(EngineConfig {
                live: seed % 3 != 0,
                seed,
                ..EngineConfig::default()
            });
            let mut now = 0u64;
            let mut flight: Option<Flight> = None;
            let mut socket = false; // asked to open, not closed since
            for step in 0..500 {
                match rng.range(0, 3) {
                    0 => now = e.next_wake().unwrap_or(now),
                    1 => now += rng.range(0, 20_000),
                    _ => {}
                }
                let input = random_input(&mut rng, seed % 2 == 0);
                let before = e.status();
                let ctx = format!("seed {seed} step {step} t {now} {input:?} from {before:?}");
                // The driver's view of its own work.
                match &input {
                    Input::RoundFinished(_) if flight == Some(Flight::Round) => flight = None,
                    Input::AuthRefreshed | Input::AuthRefreshFailed(_)
                        if flight == Some(Flight::Refresh) =>
                    {
                        flight = None
                    }
                    Input::LiveClosed(_) => socket = false,
                    _ => {}
                }
                let stopped = before.state == SyncState::Stopped;
                let auth_required = before.state == SyncState::AuthRequired;
                let is_start = input == Input::Start;
                if matches!(input, Input::Stop) && before.state != SyncState::Stopped {
                    flight = None; // The driver abandons it.
                }
                let actions = e.handle(input, now);

                if stopped && !is_start {
                    assert!(actions.is_empty(), "{ctx}: {actions:?}");
                }
                let starts = actions
                    .iter()
                    .filter(|a| matches!(a, Action::RunRound | Action::RefreshAuth))
                    .count();
                assert!(starts <= 1, "{ctx}: {actions:?}");
                if auth_required && !is_start {
                    assert_eq!(starts, 0, "{ctx}");
                    assert!(!actions.contains(&Action::OpenLive), "{ctx}");
                }
                for action in &actions {
                    match action {
                        Action::RunRound | Action::RefreshAuth => {
                            assert_eq!(flight, None, "{ctx}: two in flight");
                            assert!(
                                !matches!(e.breaker.state(now), BreakerState::Open { .. }),
                                "{ctx}: request while the circuit is open"
                            );
                            flight = Some(if *action == Action::RunRound {
                                Flight::Round
                            } else {
                                Flight::Refresh
                            });
                        }
                        Action::OpenLive => {
                            assert!(!socket, "{ctx}: socket opened twice");
                            socket = true;
                        }
                        Action::CloseLive => socket = false,
                        Action::StatusChanged(s) => {
                            assert_ne!(*s, before, "{ctx}: no change announced");
                            assert_eq!(*s, e.status(), "{ctx}");
                        }
                    }
                }
                if !actions
                    .iter()
                    .any(|a| matches!(a, Action::StatusChanged(_)))
                {
                    assert_eq!(e.status(), before, "{ctx}: change not announced");
                }
                if let Some(w) = e.next_wake() {
                    assert!(w > now, "{ctx}: wake {w} not in the future");
                }
                if matches!(
                    e.status().state,
                    SyncState::Stopped | SyncState::AuthRequired
                ) {
                    assert_eq!(e.next_wake(), None, "{ctx}");
                }
            }
        }
    }
}

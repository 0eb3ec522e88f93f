//! Retry policy for the sync engine: how a failure is classified, how long to wait before the next
//! attempt, and when to stop trying for a while (the circuit breaker). Pure: time comes in as
//! `now_ms`, randomness from a seeded [`XorShift64`].

/// What kind of failure a round, a refresh or the live socket ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// No connection could be made (DNS, refused, no route, TLS handshake).
    Offline,
    /// The request or the connection timed out.
    Timeout,
    /// The hub answered with this HTTP status (401 is treated as [`FailureKind::Auth`]).
    Status(u16),
    /// The credentials were refused (401).
    Auth,
    /// The hub's answer could not be decoded.
    Decode,
}

impl FailureKind {
    /// Whether the same request may succeed if simply sent again later.
    pub fn is_retryable(self) -> bool {
        match self {
            Self::Offline | Self::Timeout => true,
            Self::Status(code) => matches!(code, 408 | 429 | 500 | 502 | 503 | 504),
            Self::Auth | Self::Decode => false,
        }
    }

    /// Whether this says the hub is unreachable or overloaded (what the breaker counts), as
    /// opposed to an answer about the request itself.
    pub fn is_transport(self) -> bool {
        match self {
            Self::Offline | Self::Timeout => true,
            Self::Status(code) => code == 429 || (500..=599).contains(&code),
            Self::Auth | Self::Decode => false,
        }
    }

    /// Whether the credentials were refused (`Auth` or a bare 401).
    pub fn is_auth(self) -> bool {
        matches!(self, Self::Auth | Self::Status(401))
    }
}

/// A failed round, token refresh or live connection, as the driver reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The classification that drives the retry policy.
    pub kind: FailureKind,
    /// The hub's `Retry-After`, in milliseconds, when it sent one.
    pub retry_after_ms: Option<u64>,
    /// A human-readable description, shown as the status's `last_error`.
    pub message: String,
}

impl Failure {
    /// A failure without `Retry-After`.
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            retry_after_ms: None,
            message: message.into(),
        }
    }

    /// The same failure with the hub's `Retry-After` (milliseconds).
    pub fn with_retry_after(mut self, ms: u64) -> Self {
        self.retry_after_ms = Some(ms);
        self
    }

    /// See [`FailureKind::is_retryable`].
    pub fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }
}

/// A small xorshift64 generator: deterministic from its seed, so every jittered delay can be
/// replayed in a test. Not for anything secret.
#[derive(Debug, Clone)]
pub struct XorShift64 {
    state: u64,
}

impl XorShift64 {
    /// A generator from `seed` (0, a fixed point of xorshift, is replaced by a constant).
    pub fn new(seed: u64) -> Self {
        Self {
            state: if seed == 0 {
                0x9E37_79B9_7F4A_7C15
            } else {
                seed
            },
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        x
    }

    /// A value in `lo..=hi` (`lo` when `hi <= lo`). The modulo bias is negligible for delays.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        match (hi - lo).checked_add(1) {
            Some(span) => lo + self.next_u64() % span,
            None => self.next_u64(),
        }
    }
}

/// Exponential backoff with full jitter.
///
/// Full jitter (uniform over the whole window up to the exponential ceiling) rather than
/// decorrelated jitter: it needs no state but the attempt number, which the engine already keeps,
/// and it spreads a herd best — every device of a shop loses the same hub at the same instant.
/// The window's floor is `base_ms` rather than 0, so a retry is never immediate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    /// The shortest delay, and the unit the ceiling grows from.
    pub base_ms: u64,
    /// The longest delay (also used for failures that are not retryable).
    pub max_ms: u64,
    /// How much the ceiling grows per attempt.
    pub factor: u64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base_ms: 500,
            max_ms: 60_000,
            factor: 2,
        }
    }
}

impl Backoff {
    /// The delay before retry number `attempt` (0 after the first failure): uniform in
    /// `base_ms ..= min(max_ms, base_ms × factor^(attempt+1))`.
    pub fn next_delay(&self, attempt: u32, rng: &mut XorShift64) -> u64 {
        let floor = self.base_ms.min(self.max_ms);
        let ceiling = self
            .base_ms
            .saturating_mul(self.factor.saturating_pow(attempt.saturating_add(1)))
            .min(self.max_ms);
        rng.range(floor, ceiling)
    }

    /// [`Backoff::next_delay`], unless the hub's `Retry-After` is longer: then exactly that.
    pub fn delay(&self, attempt: u32, retry_after_ms: Option<u64>, rng: &mut XorShift64) -> u64 {
        self.next_delay(attempt, rng)
            .max(retry_after_ms.unwrap_or(0))
    }
}

/// The longest a breaker stays open between probes.
pub const MAX_COOLDOWN_MS: u64 = 300_000;

/// Where a [`Breaker`] stands at a given instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Requests flow.
    Closed,
    /// No requests until `until_ms`.
    Open {
        /// When the breaker turns half-open.
        until_ms: u64,
    },
    /// One probe may go; its outcome closes or reopens the breaker.
    HalfOpen,
}

/// A circuit breaker over the hub: after `threshold` consecutive transport failures it stops
/// requests for a cooldown (doubling after every failed probe, up to [`MAX_COOLDOWN_MS`]), then
/// lets exactly one probe through.
///
/// It does not classify failures: the engine reports only transport failures
/// ([`FailureKind::is_transport`]) as failures and any answer from the hub as a success.
#[derive(Debug, Clone)]
pub struct Breaker {
    threshold: u32,
    base_cooldown_ms: u64,
    cooldown_ms: u64,
    failures: u32,
    open_until: Option<u64>,
    probing: bool,
}

impl Default for Breaker {
    fn default() -> Self {
        Self::new(5, 30_000)
    }
}

impl Breaker {
    /// A closed breaker that opens after `threshold` consecutive failures for `cooldown_ms`.
    pub fn new(threshold: u32, cooldown_ms: u64) -> Self {
        Self {
            threshold: threshold.max(1),
            base_cooldown_ms: cooldown_ms,
            cooldown_ms,
            failures: 0,
            open_until: None,
            probing: false,
        }
    }

    /// The state at `now_ms` (open turns half-open by itself when the cooldown ends).
    pub fn state(&self, now_ms: u64) -> BreakerState {
        match self.open_until {
            None => BreakerState::Closed,
            Some(until_ms) if now_ms < until_ms => BreakerState::Open { until_ms },
            Some(_) => BreakerState::HalfOpen,
        }
    }

    /// Whether a request may go now. When half-open this hands out the single probe: it returns
    /// `true` once, then `false` until the probe's outcome is reported.
    pub fn allow(&mut self, now_ms: u64) -> bool {
        match self.state(now_ms) {
            BreakerState::Closed => true,
            BreakerState::Open { .. } => false,
            BreakerState::HalfOpen if self.probing => false,
            BreakerState::HalfOpen => {
                self.probing = true;
                true
            }
        }
    }

    /// Cut an open breaker's cooldown short (the user asked to sync now): it is half-open at
    /// once, so [`Breaker::allow`] hands out the probe. No effect when closed.
    pub fn force_half_open(&mut self, now_ms: u64) {
        if let Some(until) = self.open_until.as_mut() {
            *until = (*until).min(now_ms);
        }
    }

    /// The hub answered: close and forget past failures.
    pub fn on_success(&mut self) {
        self.failures = 0;
        self.open_until = None;
        self.probing = false;
        self.cooldown_ms = self.base_cooldown_ms;
    }

    /// A transport failure at `now_ms`: count it while closed (opening at the threshold); a
    /// failed probe reopens the breaker with twice the previous cooldown.
    pub fn on_failure(&mut self, now_ms: u64) {
        if self.open_until.is_some() {
            self.cooldown_ms = self
                .cooldown_ms
                .saturating_mul(2)
                .min(MAX_COOLDOWN_MS.max(self.base_cooldown_ms));
        } else {
            self.failures = self.failures.saturating_add(1);
            if self.failures < self.threshold {
                return;
            }
            self.cooldown_ms = self.base_cooldown_ms;
        }
        self.probing = false;
        self.open_until = Some(now_ms.saturating_add(self.cooldown_ms));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_follows_the_contract() {
        use FailureKind::*;
        for kind in [Offline, Timeout] {
            assert!(kind.is_retryable() && kind.is_transport());
        }
        for code in [408, 429, 500, 502, 503, 504] {
            assert!(Status(code).is_retryable(), "{code}");
        }
        for code in [400, 403, 404, 409, 422, 501] {
            assert!(!Status(code).is_retryable(), "{code}");
        }
        for code in [429, 500, 503, 599] {
            assert!(Status(code).is_transport(), "{code}");
        }
        for code in [400, 403, 408, 409, 422] {
            assert!(!Status(code).is_transport(), "{code}");
        }
        assert!(!Decode.is_retryable() && !Decode.is_transport());
        assert!(!Auth.is_retryable() && !Auth.is_transport());
        assert!(Auth.is_auth() && Status(401).is_auth() && !Status(403).is_auth());
    }

    #[test]
    fn rng_is_deterministic_and_survives_seed_zero() {
        let mut a = XorShift64::new(42);
        let mut b = XorShift64::new(42);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        let mut z = XorShift64::new(0);
        assert_ne!(z.next_u64(), 0);
        for _ in 0..1000 {
            let v = z.range(10, 20);
            assert!((10..=20).contains(&v));
        }
        assert_eq!(z.range(7, 3), 7);
        let _ = z.range(0, u64::MAX);
    }

    #[test]
    fn backoff_stays_in_its_growing_window() {
        let b = Backoff::default();
        let mut rng = XorShift64::new(7);
        for attempt in 0..40u32 {
            let ceiling = 500u64
                .saturating_mul(2u64.saturating_pow(attempt + 1))
                .min(60_000);
            let delays: Vec<u64> = (0..200).map(|_| b.next_delay(attempt, &mut rng)).collect();
            assert!(
                delays.iter().all(|d| (500..=ceiling).contains(d)),
                "{attempt}"
            );
            if attempt >= 2 {
                // Jittered: not all the same.
                assert!(delays.iter().any(|d| *d != delays[0]));
            }
        }
    }

    #[test]
    fn retry_after_wins_only_when_longer() {
        let b = Backoff::default();
        let mut rng = XorShift64::new(1);
        assert_eq!(b.delay(0, Some(10_000), &mut rng), 10_000);
        let d = b.delay(0, Some(1), &mut rng);
        assert!((500..=1000).contains(&d));
    }

    #[test]
    fn breaker_opens_probes_and_backs_off() {
        let mut br = Breaker::new(5, 30_000);
        for _ in 0..4 {
            br.on_failure(0);
            assert_eq!(br.state(0), BreakerState::Closed);
        }
        br.on_failure(1_000);
        assert_eq!(br.state(1_000), BreakerState::Open { until_ms: 31_000 });
        assert!(!br.allow(30_999));
        assert_eq!(br.state(31_000), BreakerState::HalfOpen);
        assert!(br.allow(31_000));
        assert!(!br.allow(31_000), "exactly one probe");
        br.on_failure(32_000);
        assert_eq!(br.state(32_000), BreakerState::Open { until_ms: 92_000 });
        // Doubling is capped at five minutes.
        let mut now = 92_000;
        for _ in 0..10 {
            assert!(br.allow(now));
            br.on_failure(now);
            match br.state(now) {
                BreakerState::Open { until_ms } => {
                    assert!(until_ms - now <= MAX_COOLDOWN_MS);
                    now = until_ms;
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(br.allow(now));
        br.on_success();
        assert_eq!(br.state(now), BreakerState::Closed);
        // Reset: the count starts again, and so does the cooldown.
        for _ in 0..5 {
            br.on_failure(now);
        }
        assert_eq!(
            br.state(now),
            BreakerState::Open {
                until_ms: now + 30_000
            }
        );
    }

    #[test]
    fn success_in_between_resets_the_count_and_force_half_open_probes() {
        let mut br = Breaker::default();
        for _ in 0..4 {
            br.on_failure(0);
        }
        br.on_success();
        for _ in 0..4 {
            br.on_failure(0);
        }
        assert_eq!(br.state(0), BreakerState::Closed);
        br.force_half_open(0);
        assert_eq!(br.state(0), BreakerState::Closed);
        br.on_failure(10);
        br.force_half_open(20);
        assert_eq!(br.state(20), BreakerState::HalfOpen);
        assert!(br.allow(20));
        assert!(!br.allow(20));
    }
}

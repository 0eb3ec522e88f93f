//! Fixed-window rate limiting (per credential, and per client address for the routes that take
//! secrets and for failed authentications). Pure logic: the caller passes
//! the current time, so the limiter is deterministic under test.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// Key count above which windows that have ended are pruned.
const PRUNE_THRESHOLD: usize = 10_000;

/// The outcome of [`RateLimiter::check`], enough to fill the usual
/// `X-RateLimit-*` and `Retry-After` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    /// Whether the request may proceed (it has been counted if so).
    pub allowed: bool,
    /// Requests allowed per window (`0` means unlimited).
    pub limit: u32,
    /// Requests left in the current window (`u32::MAX` when unlimited).
    pub remaining: u32,
    /// When the current window ends, epoch seconds (`now` when unlimited).
    pub reset_unix: u64,
    /// Seconds to wait before retrying: `0` when allowed, else at least `1`.
    pub retry_after_secs: u64,
}

#[derive(Debug)]
struct Window {
    start: u64,
    count: u32,
}

#[derive(Debug)]
struct State {
    windows: HashMap<String, Window>,
    /// Prune when the map grows past this many keys.
    prune_at: usize,
}

/// A thread-safe fixed-window limiter: each key may make `limit` requests per
/// `window`, the window starting at that key's first request.
///
/// Memory stays bounded by the number of keys active within one window:
/// once the map holds more than 10 000 keys, entries whose window has ended
/// are dropped (and the next prune is deferred until the map has doubled, so
/// pruning stays amortised O(1) per request).
#[derive(Debug)]
pub struct RateLimiter {
    limit: u32,
    window_secs: u64,
    state: Mutex<State>,
}

impl RateLimiter {
    /// Allows `limit` requests per key per `window`. `limit == 0` means
    /// unlimited. Windows are whole seconds: sub-second windows count as 1 s.
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window_secs: window.as_secs().max(1),
            state: Mutex::new(State {
                windows: HashMap::new(),
                prune_at: PRUNE_THRESHOLD,
            }),
        }
    }

    /// Counts one request for `key` at `now_unix_secs` and says whether it
    /// may proceed. Refused requests are not counted.
    ///
    /// With an unlimited limiter (`limit == 0`) every request is allowed with
    /// `remaining == u32::MAX` and `reset_unix == now_unix_secs`.
    pub fn check(&self, key: &str, now_unix_secs: u64) -> RateDecision {
        let now = now_unix_secs;
        if self.limit == 0 {
            return RateDecision {
                allowed: true,
                limit: 0,
                remaining: u32::MAX,
                reset_unix: now,
                retry_after_secs: 0,
            };
        }

        // The map is only ever left consistent between statements, so a
        // panic elsewhere while holding the lock cannot corrupt it.
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let window_secs = self.window_secs;

        if !state.windows.contains_key(key) && state.windows.len() >= state.prune_at {
            state
                .windows
                .retain(|_, w| now >= w.start && now < w.start.saturating_add(window_secs));
            state.prune_at = PRUNE_THRESHOLD.max(state.windows.len().saturating_mul(2));
        }

        let window = state.windows.entry(key.to_owned()).or_insert(Window {
            start: now,
            count: 0,
        });
        // Start a new window when the old one ended (or the clock went back).
        if now < window.start || now >= window.start.saturating_add(window_secs) {
            *window = Window {
                start: now,
                count: 0,
            };
        }
        let reset_unix = window.start.saturating_add(window_secs);

        if window.count < self.limit {
            window.count += 1;
            RateDecision {
                allowed: true,
                limit: self.limit,
                remaining: self.limit - window.count,
                reset_unix,
                retry_after_secs: 0,
            }
        } else {
            RateDecision {
                allowed: false,
                limit: self.limit,
                remaining: 0,
                reset_unix,
                retry_after_secs: reset_unix.saturating_sub(now).max(1),
            }
        }
    }

    /// Whether `key` has used up its window at `now_unix_secs`, without counting a request:
    /// `Some` (a refusal, with when to retry) when the next [`RateLimiter::check`] would refuse.
    pub fn exhausted(&self, key: &str, now_unix_secs: u64) -> Option<RateDecision> {
        if self.limit == 0 {
            return None;
        }
        let now = now_unix_secs;
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let window = state.windows.get(key)?;
        let reset_unix = window.start.saturating_add(self.window_secs);
        let current = now >= window.start && now < reset_unix;
        (current && window.count >= self.limit).then(|| RateDecision {
            allowed: false,
            limit: self.limit,
            remaining: 0,
            reset_unix,
            retry_after_secs: reset_unix.saturating_sub(now).max(1),
        })
    }
}

/// Keys seen recently (within `ttl`), for "this API key has worked from this address before":
/// such a key keeps working while the address is refused for others' failed guesses, so a
/// guesser sharing the address (a shop's NAT) does not lock a working integration out.
///
/// Bounded like [`RateLimiter`]: past 10 000 keys, entries older than `ttl` are dropped.
#[derive(Debug)]
pub struct Recent {
    ttl_secs: u64,
    state: Mutex<State>,
}

impl Recent {
    /// Remembers keys for `ttl` (whole seconds, at least 1).
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl_secs: ttl.as_secs().max(1),
            state: Mutex::new(State {
                windows: HashMap::new(),
                prune_at: PRUNE_THRESHOLD,
            }),
        }
    }

    /// Notes `key` at `now_unix_secs`.
    pub fn mark(&self, key: &str, now_unix_secs: u64) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let ttl = self.ttl_secs;
        if !state.windows.contains_key(key) && state.windows.len() >= state.prune_at {
            state
                .windows
                .retain(|_, w| now_unix_secs >= w.start && now_unix_secs - w.start < ttl);
            state.prune_at = PRUNE_THRESHOLD.max(state.windows.len().saturating_mul(2));
        }
        state.windows.insert(
            key.to_owned(),
            Window {
                start: now_unix_secs,
                count: 1,
            },
        );
    }

    /// Whether `key` was noted less than `ttl` before `now_unix_secs`.
    pub fn contains(&self, key: &str, now_unix_secs: u64) -> bool {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state
            .windows
            .get(key)
            .is_some_and(|w| now_unix_secs >= w.start && now_unix_secs - w.start < self.ttl_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_000;

    #[test]
    fn allows_limit_then_refuses() {
        let rl = RateLimiter::new(3, Duration::from_secs(60));
        for i in 0..3 {
            let d = rl.check("k", T0 + i);
            assert!(d.allowed);
            assert_eq!(d.limit, 3);
            assert_eq!(d.remaining, 2 - i as u32);
            assert_eq!(d.reset_unix, T0 + 60);
            assert_eq!(d.retry_after_secs, 0);
        }
        let d = rl.check("k", T0 + 10);
        assert!(!d.allowed);
        assert_eq!(d.remaining, 0);
        assert_eq!(d.reset_unix, T0 + 60);
        assert_eq!(d.retry_after_secs, 50);
        let d = rl.check("k", T0 + 59);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_secs, 1);
    }

    #[test]
    fn exhausted_looks_without_counting() {
        let rl = RateLimiter::new(2, Duration::from_secs(60));
        assert_eq!(rl.exhausted("k", T0), None);
        assert!(rl.check("k", T0).allowed);
        for _ in 0..5 {
            assert_eq!(rl.exhausted("k", T0 + 1), None);
        }
        assert!(rl.check("k", T0 + 2).allowed);
        let d = rl.exhausted("k", T0 + 10).unwrap();
        assert!(!d.allowed);
        assert_eq!(d.retry_after_secs, 50);
        assert_eq!(d.reset_unix, T0 + 60);
        // The window ends: free again, for both.
        assert_eq!(rl.exhausted("k", T0 + 60), None);
        assert!(rl.check("k", T0 + 60).allowed);
        assert_eq!(rl.exhausted("other", T0), None);
        assert_eq!(
            RateLimiter::new(0, Duration::from_secs(1)).exhausted("k", T0),
            None
        );
    }

    #[test]
    fn recent_keys_expire_and_stay_bounded() {
        let r = Recent::new(Duration::from_secs(100));
        assert!(!r.contains("a", T0));
        r.mark("a", T0);
        assert!(r.contains("a", T0 + 99));
        assert!(!r.contains("a", T0 + 100));
        assert!(!r.contains("a", T0 - 1));
        r.mark("a", T0 + 150);
        assert!(r.contains("a", T0 + 200));
        let r = Recent::new(Duration::from_secs(100));
        for i in 0..PRUNE_THRESHOLD {
            r.mark(&format!("old{i}"), T0);
        }
        r.mark("fresh", T0 + 1000);
        assert_eq!(r.state.lock().unwrap().windows.len(), 1);
        assert!(r.contains("fresh", T0 + 1000));
    }

    #[test]
    fn new_window_resets() {
        let rl = RateLimiter::new(2, Duration::from_secs(10));
        assert!(rl.check("k", T0 + 5).allowed);
        assert!(rl.check("k", T0 + 6).allowed);
        assert!(!rl.check("k", T0 + 14).allowed);
        // The window is aligned to the first request (T0 + 5).
        let d = rl.check("k", T0 + 15);
        assert!(d.allowed);
        assert_eq!(d.remaining, 1);
        assert_eq!(d.reset_unix, T0 + 25);
    }

    #[test]
    fn keys_are_independent() {
        let rl = RateLimiter::new(1, Duration::from_secs(60));
        assert!(rl.check("a", T0).allowed);
        assert!(!rl.check("a", T0).allowed);
        let d = rl.check("b", T0 + 30);
        assert!(d.allowed);
        assert_eq!(d.reset_unix, T0 + 90);
        assert!(!rl.check("b", T0 + 31).allowed);
    }

    #[test]
    fn unlimited() {
        let rl = RateLimiter::new(0, Duration::from_secs(60));
        for _ in 0..1000 {
            let d = rl.check("k", T0);
            assert!(d.allowed);
            assert_eq!(d.remaining, u32::MAX);
            assert_eq!(d.retry_after_secs, 0);
        }
    }

    #[test]
    fn sub_second_window_is_one_second() {
        let rl = RateLimiter::new(1, Duration::from_millis(10));
        assert!(rl.check("k", T0).allowed);
        let d = rl.check("k", T0);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_secs, 1);
        assert!(rl.check("k", T0 + 1).allowed);
    }

    #[test]
    fn clock_going_back_starts_a_new_window() {
        let rl = RateLimiter::new(1, Duration::from_secs(60));
        assert!(rl.check("k", T0).allowed);
        let d = rl.check("k", T0 - 100);
        assert!(d.allowed);
        assert_eq!(d.reset_unix, T0 - 40);
    }

    #[test]
    fn prunes_stale_keys() {
        let rl = RateLimiter::new(5, Duration::from_secs(60));
        for i in 0..PRUNE_THRESHOLD {
            rl.check(&format!("old{i}"), T0);
        }
        assert_eq!(rl.state.lock().unwrap().windows.len(), PRUNE_THRESHOLD);
        // All old windows have ended; a new key triggers a prune.
        rl.check("fresh", T0 + 60);
        assert_eq!(rl.state.lock().unwrap().windows.len(), 1);
    }

    #[test]
    fn prune_keeps_active_keys_and_is_amortised() {
        let rl = RateLimiter::new(5, Duration::from_secs(60));
        for i in 0..PRUNE_THRESHOLD {
            rl.check(&format!("k{i}"), T0);
        }
        rl.check("new", T0 + 1);
        let state = rl.state.lock().unwrap();
        assert_eq!(state.windows.len(), PRUNE_THRESHOLD + 1);
        assert_eq!(state.prune_at, PRUNE_THRESHOLD * 2);
        assert_eq!(state.windows["k0"].count, 1);
    }

    #[test]
    fn poisoned_lock_recovers() {
        let rl = std::sync::Arc::new(RateLimiter::new(2, Duration::from_secs(60)));
        assert!(rl.check("k", T0).allowed);
        let rl2 = rl.clone();
        let _ = std::thread::spawn(move || {
            let _guard = rl2.state.lock().unwrap();
            panic!("poison the lock");
        })
        .join();
        assert!(rl.state.is_poisoned());
        let d = rl.check("k", T0 + 1);
        assert!(d.allowed);
        assert_eq!(d.remaining, 0);
        assert!(!rl.check("k", T0 + 2).allowed);
    }

    #[test]
    fn concurrent_checks_never_exceed_limit() {
        let rl = std::sync::Arc::new(RateLimiter::new(100, Duration::from_secs(60)));
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let rl = rl.clone();
                std::thread::spawn(move || (0..50).filter(|_| rl.check("k", T0).allowed).count())
            })
            .collect();
        let allowed: usize = handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect::<Vec<_>>()
            .iter()
            .sum();
        assert_eq!(allowed, 100);
    }
}

//! Wall-clock helpers (the only place the hub reads the time of day), and the hub's hybrid
//! logical clock's check of the timestamps devices send.

use crate::error::ApiError;
use chrono::{SecondsFormat, Utc};
use std::sync::Mutex;
use stocksync_model::{Clock, HlcTimestamp};

/// How far ahead of the hub's wall clock a pushed op's `hlc` may be: 5 minutes, as
/// `docs/protocol.md` promises (the same bound a node applies to what it pulls).
pub const MAX_SKEW_MS: u64 = Clock::MAX_DRIFT_MS;

/// Now, RFC 3339 UTC with milliseconds (`2026-11-20T10:30:00.123Z`).
pub fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Now, Unix seconds.
pub fn now_unix() -> i64 {
    Utc::now().timestamp()
}

/// Now, Unix milliseconds (for hybrid logical clocks).
pub fn now_millis() -> u64 {
    u64::try_from(Utc::now().timestamp_millis()).unwrap_or(0)
}

/// Takes a pushed op's timestamp into the hub's clock, so the hub's own edits order after it.
/// One more than [`MAX_SKEW_MS`] ahead of the hub's wall clock is refused with a field error on
/// `hlc`, and the clock is left as it was: accepting it would let that device's last-write-wins
/// edits beat every later edit until the wall clock caught up, and carry the bogus time into
/// every edit the hub makes meanwhile.
pub fn observe_op(clock: &Mutex<Clock>, hlc: &HlcTimestamp) -> Result<(), ApiError> {
    observe_at(clock, hlc, now_millis())
}

/// [`observe_op`] at a given wall time.
pub fn observe_at(clock: &Mutex<Clock>, hlc: &HlcTimestamp, now_ms: u64) -> Result<(), ApiError> {
    let mut clock = clock.lock().unwrap_or_else(|p| p.into_inner());
    match clock.observe(hlc, now_ms) {
        Ok(_) => Ok(()),
        Err(drift) => {
            let minutes = drift.max_ms / 60_000;
            let mut e = ApiError::field(
                "hlc",
                format!(
                    "Is {} ms ahead of the hub's clock; at most {} ms ({minutes} min) is accepted",
                    drift.ahead_ms, drift.max_ms
                ),
            );
            e.message = format!(
                "The op's hlc is {} s ahead of the hub's clock (at most {minutes} min is \
                 accepted): check the device's clock",
                drift.ahead_ms / 1000
            );
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const NOW: u64 = 1_800_000_000_000;

    fn at(wall_ms: u64) -> HlcTimestamp {
        HlcTimestamp {
            wall_ms,
            counter: 0,
            node: "dev_x".into(),
        }
    }

    #[test]
    fn up_to_the_skew_ahead_is_taken_in() {
        let clock = Mutex::new(Clock::resume("hub", 0, 0));
        observe_at(&clock, &at(NOW + MAX_SKEW_MS), NOW).unwrap();
        assert_eq!(clock.lock().unwrap().state().0, NOW + MAX_SKEW_MS);
        observe_at(&clock, &at(NOW - 1_000), NOW).unwrap();
    }

    #[test]
    fn further_ahead_is_a_field_error_and_leaves_the_clock_alone() {
        let clock = Mutex::new(Clock::resume("hub", NOW, 3));
        let e = observe_at(&clock, &at(NOW + MAX_SKEW_MS + 1), NOW).unwrap_err();
        assert_eq!(e.code, stocksync_protocol::ErrorCode::ValidationFailed);
        let reason = e.details["hlc"][0].as_str().unwrap();
        assert!(reason.contains("300001 ms ahead"), "{reason}");
        assert!(e.message.contains("device's clock"), "{}", e.message);
        assert_eq!(clock.lock().unwrap().state(), (NOW, 3));
    }
}

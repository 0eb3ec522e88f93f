//! Wall-clock helpers (the only place the hub reads the time of day).

use chrono::{SecondsFormat, Utc};

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

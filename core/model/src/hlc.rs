//! A hybrid logical clock: timestamps that follow wall time, never go backwards on one device,
//! and order causally related events across devices even when their clocks disagree.
//! Used to settle `last_write_wins` fields.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A point in hybrid logical time. Orders by wall time, then counter, then node.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HlcTimestamp {
    /// Milliseconds since the Unix epoch (the larger of wall time and what was seen).
    pub wall_ms: u64,
    /// Orders events within one millisecond.
    pub counter: u32,
    /// The node that made it, so two timestamps are never equal.
    pub node: String,
}

impl fmt::Display for HlcTimestamp {
    /// Fixed-width, so that text order is time order: `0001732060000000.00000@dev_…`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016}.{:05}@{}", self.wall_ms, self.counter, self.node)
    }
}

impl FromStr for HlcTimestamp {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a hybrid logical timestamp");
        let (time, node) = s.split_once('@').ok_or_else(bad)?;
        let (wall, counter) = time.split_once('.').ok_or_else(bad)?;
        Ok(HlcTimestamp {
            wall_ms: wall.parse().map_err(|_| bad())?,
            counter: counter.parse().map_err(|_| bad())?,
            node: node.to_owned(),
        })
    }
}

impl Serialize for HlcTimestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HlcTimestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// The clock state of one node. The wall time is passed in, so the clock is testable and the
/// caller decides where time comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Clock {
    node: String,
    wall_ms: u64,
    counter: u32,
}

/// A remote timestamp too far ahead of the local wall clock to be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("remote clock is {ahead_ms} ms ahead, more than the {max_ms} ms allowed")]
pub struct ClockDrift {
    /// How far ahead the remote was.
    pub ahead_ms: u64,
    /// The limit.
    pub max_ms: u64,
}

impl Clock {
    /// Largest drift accepted from a remote timestamp (5 minutes).
    pub const MAX_DRIFT_MS: u64 = 5 * 60 * 1000;

    /// A clock resumed from its last state (`0, 0` for a new node).
    pub fn resume(node: impl Into<String>, wall_ms: u64, counter: u32) -> Self {
        Clock {
            node: node.into(),
            wall_ms,
            counter,
        }
    }

    /// The state to persist: (wall ms, counter).
    pub fn state(&self) -> (u64, u32) {
        (self.wall_ms, self.counter)
    }

    /// A timestamp for a local event at wall time `now_ms`.
    pub fn now(&mut self, now_ms: u64) -> HlcTimestamp {
        if now_ms > self.wall_ms {
            self.wall_ms = now_ms;
            self.counter = 0;
        } else {
            self.bump();
        }
        self.stamp()
    }

    /// Takes in a timestamp seen from another node, so later local events order after it.
    pub fn observe(
        &mut self,
        remote: &HlcTimestamp,
        now_ms: u64,
    ) -> Result<HlcTimestamp, ClockDrift> {
        let ahead = remote.wall_ms.saturating_sub(now_ms);
        if ahead > Self::MAX_DRIFT_MS {
            return Err(ClockDrift {
                ahead_ms: ahead,
                max_ms: Self::MAX_DRIFT_MS,
            });
        }
        let top = now_ms.max(self.wall_ms).max(remote.wall_ms);
        self.counter = if top == self.wall_ms && top == remote.wall_ms {
            self.counter.max(remote.counter).saturating_add(1)
        } else if top == self.wall_ms {
            self.counter.saturating_add(1)
        } else if top == remote.wall_ms {
            remote.counter.saturating_add(1)
        } else {
            0
        };
        self.wall_ms = top;
        Ok(self.stamp())
    }

    fn bump(&mut self) {
        match self.counter.checked_add(1) {
            Some(c) => self.counter = c,
            // Counter exhausted within one millisecond: borrow the next millisecond.
            None => {
                self.wall_ms += 1;
                self.counter = 0;
            }
        }
    }

    fn stamp(&self) -> HlcTimestamp {
        HlcTimestamp {
            wall_ms: self.wall_ms,
            counter: self.counter,
            node: self.node.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_goes_backwards_when_the_wall_clock_does() {
        let mut c = Clock::resume("a", 0, 0);
        let t1 = c.now(1_000);
        let t2 = c.now(900);
        let t3 = c.now(900);
        assert!(t1 < t2 && t2 < t3);
        assert_eq!(t3.wall_ms, 1_000);
    }

    #[test]
    fn orders_after_what_it_observed() {
        let mut a = Clock::resume("a", 0, 0);
        let mut b = Clock::resume("b", 0, 0);
        let ta = a.now(5_000);
        b.observe(&ta, 4_000).unwrap();
        let tb = b.now(4_001);
        assert!(tb > ta, "{tb} should be after {ta}");
    }

    #[test]
    fn refuses_a_remote_far_in_the_future() {
        let mut a = Clock::resume("a", 0, 0);
        let far = HlcTimestamp {
            wall_ms: 10_000_000,
            counter: 0,
            node: "z".into(),
        };
        assert!(a.observe(&far, 1_000).is_err());
    }

    #[test]
    fn text_form_sorts_like_the_timestamps_and_round_trips() {
        let a = HlcTimestamp {
            wall_ms: 999,
            counter: 12,
            node: "dev_a".into(),
        };
        let b = HlcTimestamp {
            wall_ms: 1000,
            counter: 1,
            node: "dev_a".into(),
        };
        assert!(a.to_string() < b.to_string());
        assert_eq!(a.to_string().parse::<HlcTimestamp>().unwrap(), a);
    }
}

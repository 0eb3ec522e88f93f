//! Exact decimal numbers with up to four places, for quantities and money.
//!
//! Stored as an `i64` count of ten-thousandths, so sums are exact and SQLite can keep them as
//! plain integers. On the wire a decimal is a JSON string (`"12.5"`) so no client parses it into a
//! binary float; a JSON number is accepted on input when it has at most four places.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// Number of decimal places kept.
pub const SCALE: u32 = 4;
const FACTOR: i64 = 10_000;

/// An exact decimal with four places.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Decimal(i64);

/// Why a text is not a decimal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecimalError {
    /// Not a number at all.
    #[error("not a decimal number")]
    Malformed,
    /// More than four places after the point.
    #[error("at most {SCALE} decimal places")]
    TooPrecise,
    /// Beyond the range kept.
    #[error("number out of range")]
    OutOfRange,
}

impl Decimal {
    /// Zero.
    pub const ZERO: Decimal = Decimal(0);

    /// From a count of ten-thousandths (the stored form).
    pub const fn from_scaled(scaled: i64) -> Self {
        Decimal(scaled)
    }

    /// The count of ten-thousandths (the stored form).
    pub const fn scaled(self) -> i64 {
        self.0
    }

    /// A whole number.
    pub fn from_int(n: i64) -> Option<Self> {
        n.checked_mul(FACTOR).map(Decimal)
    }

    /// True when there is nothing after the point.
    pub fn is_whole(self) -> bool {
        self.0 % FACTOR == 0
    }

    /// Strictly above zero.
    pub fn is_positive(self) -> bool {
        self.0 > 0
    }

    /// Strictly below zero.
    pub fn is_negative(self) -> bool {
        self.0 < 0
    }

    /// Sum, or `None` on overflow.
    pub fn checked_add(self, other: Decimal) -> Option<Decimal> {
        self.0.checked_add(other.0).map(Decimal)
    }

    /// Difference, or `None` on overflow.
    pub fn checked_sub(self, other: Decimal) -> Option<Decimal> {
        self.0.checked_sub(other.0).map(Decimal)
    }

    /// Negation, or `None` on overflow.
    pub fn checked_neg(self) -> Option<Decimal> {
        self.0.checked_neg().map(Decimal)
    }

    /// Absolute value (saturating at the top of the range).
    pub fn abs(self) -> Decimal {
        Decimal(self.0.saturating_abs())
    }
}

impl FromStr for Decimal {
    type Err = DecimalError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (negative, digits) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s.strip_prefix('+').unwrap_or(s)),
        };
        let (int_part, frac_part) = match digits.split_once('.') {
            Some((i, f)) => (i, f),
            None => (digits, ""),
        };
        let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
        if (int_part.is_empty() && frac_part.is_empty())
            || !all_digits(int_part)
            || !all_digits(frac_part)
            || (digits.contains('.') && frac_part.is_empty() && int_part.is_empty())
        {
            return Err(DecimalError::Malformed);
        }
        let frac_trimmed = frac_part.trim_end_matches('0');
        if frac_trimmed.len() > SCALE as usize {
            return Err(DecimalError::TooPrecise);
        }
        let int_value: i64 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| DecimalError::OutOfRange)?
        };
        let mut frac_value: i64 = 0;
        for (i, b) in frac_trimmed.bytes().enumerate() {
            frac_value += i64::from(b - b'0') * 10_i64.pow(SCALE - 1 - i as u32);
        }
        let magnitude = int_value
            .checked_mul(FACTOR)
            .and_then(|v| v.checked_add(frac_value))
            .ok_or(DecimalError::OutOfRange)?;
        Ok(Decimal(if negative { -magnitude } else { magnitude }))
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let int = abs / FACTOR as u64;
        let frac = abs % FACTOR as u64;
        if frac == 0 {
            write!(f, "{sign}{int}")
        } else {
            let frac = format!("{frac:04}");
            write!(f, "{sign}{int}.{}", frac.trim_end_matches('0'))
        }
    }
}

impl Serialize for Decimal {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Decimal {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Decimal;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a decimal number with at most 4 places, as a string or a number")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Decimal, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Decimal, E> {
                Decimal::from_int(v).ok_or_else(|| E::custom(DecimalError::OutOfRange))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Decimal, E> {
                i64::try_from(v)
                    .ok()
                    .and_then(Decimal::from_int)
                    .ok_or_else(|| E::custom(DecimalError::OutOfRange))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Decimal, E> {
                // The shortest text that reads back as this float is what the sender wrote.
                if !v.is_finite() {
                    return Err(E::custom(DecimalError::Malformed));
                }
                format!("{v}").parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_prints_exactly() {
        for (input, shown) in [
            ("0", "0"),
            ("12", "12"),
            ("12.50", "12.5"),
            ("-0.0001", "-0.0001"),
            (".5", "0.5"),
            ("+3.1400", "3.14"),
            ("922337203685477.5807", "922337203685477.5807"),
        ] {
            assert_eq!(d(input).to_string(), shown, "{input}");
        }
        assert_eq!(d("0.1").checked_add(d("0.2")), Some(d("0.3")));
    }

    #[test]
    fn refuses_what_it_cannot_keep_exactly() {
        assert_eq!("1.00001".parse::<Decimal>(), Err(DecimalError::TooPrecise));
        assert_eq!("1.000010".parse::<Decimal>(), Err(DecimalError::TooPrecise));
        for bad in ["", "-", ".", "1.2.3", "1e5", "abc", "1,5", " - 1"] {
            assert_eq!(
                bad.parse::<Decimal>(),
                Err(DecimalError::Malformed),
                "{bad:?}"
            );
        }
        assert_eq!(
            "99999999999999999999".parse::<Decimal>(),
            Err(DecimalError::OutOfRange)
        );
    }

    #[test]
    fn json_is_a_string_and_numbers_are_accepted() {
        assert_eq!(serde_json::to_string(&d("2.25")).unwrap(), "\"2.25\"");
        let from_num: Decimal = serde_json::from_str("0.1").unwrap();
        assert_eq!(from_num, d("0.1"));
        let from_int: Decimal = serde_json::from_str("7").unwrap();
        assert_eq!(from_int, d("7"));
        assert!(serde_json::from_str::<Decimal>("0.12345").is_err());
        assert!(serde_json::from_str::<Decimal>("true").is_err());
    }
}

//! Typed ids with a type prefix (`prod_…`, `loc_…`).
//!
//! Ids minted here are UUIDv7-based (time-ordered, random tail), so any device can make them
//! offline without asking the hub and they still sort roughly by creation time.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// Why a text is not an id of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected an id starting with `{prefix}` followed by letters, digits, `-` or `_`")]
pub struct IdError {
    /// The prefix that was expected.
    pub prefix: &'static str,
}

/// The longest id accepted (prefix included).
pub const MAX_ID_LEN: usize = 80;

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// The type prefix, underscore included.
            pub const PREFIX: &'static str = $prefix;

            /// A new id, unique without coordination (UUIDv7).
            #[allow(clippy::new_without_default)]
            pub fn new() -> Self {
                $name(format!("{}{}", $prefix, uuid::Uuid::now_v7().simple()))
            }

            /// Checks the prefix and the characters.
            pub fn parse(s: &str) -> Result<Self, IdError> {
                let err = IdError { prefix: $prefix };
                let rest = s.strip_prefix($prefix).ok_or(err.clone())?;
                let ok = !rest.is_empty()
                    && s.len() <= MAX_ID_LEN
                    && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                if ok { Ok($name(s.to_owned())) } else { Err(err) }
            }

            /// True when the text has this id's prefix (a quick test before parsing).
            pub fn looks_like(s: &str) -> bool {
                s.starts_with($prefix)
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

typed_id!(
    /// A product.
    ProductId, "prod_");
typed_id!(
    /// A location (bin, shelf, store room).
    LocationId, "loc_");
typed_id!(
    /// A stock transaction (receipt, shipment, adjustment, count).
    TransactionId, "txn_");
typed_id!(
    /// A transfer between two locations (two ledger legs).
    TransferId, "xfer_");
typed_id!(
    /// An allocation of stock to an order.
    AllocationId, "alloc_");
typed_id!(
    /// An op in a device's outbox.
    OpId, "op_");
typed_id!(
    /// A device (node).
    DeviceId, "dev_");
typed_id!(
    /// A conflict record.
    ConflictId, "conf_");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_ids_parse_and_are_unique() {
        let a = ProductId::new();
        let b = ProductId::new();
        assert_ne!(a, b);
        assert!(a.as_str().starts_with("prod_"));
        assert_eq!(ProductId::parse(a.as_str()), Ok(a.clone()));
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<ProductId>(&json).unwrap(), a);
    }

    #[test]
    fn wrong_prefix_or_characters_are_refused() {
        assert!(ProductId::parse("loc_123").is_err());
        assert!(ProductId::parse("prod_").is_err());
        assert!(ProductId::parse("prod_a b").is_err());
        assert!(ProductId::parse(&format!("prod_{}", "x".repeat(90))).is_err());
        assert!(serde_json::from_str::<LocationId>("\"prod_1\"").is_err());
    }
}

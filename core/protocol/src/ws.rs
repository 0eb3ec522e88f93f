//! WebSocket frames (`GET /v1/ws`): JSON text, tagged by `type`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Channel of stock changes (`inventory.update` frames).
pub const CHANNEL_INVENTORY: &str = "inventory.updates";
/// Channel of product changes (`product.update` frames).
pub const CHANNEL_PRODUCTS: &str = "products.changes";
/// Channel of conflict records (`conflict.created`, `conflict.resolved` frames).
pub const CHANNEL_CONFLICTS: &str = "conflicts.changes";
/// Every channel.
pub const CHANNELS: [&str; 3] = [CHANNEL_INVENTORY, CHANNEL_PRODUCTS, CHANNEL_CONFLICTS];

/// Narrows a subscription; every given filter must match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filters {
    /// Only this location's stock (and conflicts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_id: Option<String>,
    /// Only this product.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_id: Option<String>,
    /// Only products of this category.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_category: Option<String>,
}

/// Frames a client sends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    /// Start receiving changes of these channels.
    Subscribe {
        /// Channel names (see [`CHANNELS`]).
        channels: Vec<String>,
        /// Optional narrowing.
        #[serde(default)]
        filters: Filters,
    },
    /// Stop a subscription.
    Unsubscribe {
        /// As answered by `subscribed`.
        subscription_id: String,
    },
    /// Are you there?
    Ping,
    /// Yes, I am.
    Pong,
}

/// Frames the hub sends. Change frames (`inventory.update`, …) are [`ChangeFrame`]s.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// A subscription started.
    Subscribed {
        /// Its id, for `unsubscribe`.
        subscription_id: String,
        /// The channels it covers.
        channels: Vec<String>,
    },
    /// A subscription stopped.
    Unsubscribed {
        /// Its id.
        subscription_id: String,
    },
    /// Are you there?
    Ping,
    /// Yes, I am.
    Pong,
    /// A bad frame; the connection stays up.
    Error {
        /// Code and message.
        error: crate::ErrorBody,
    },
}

/// A committed change, as fanned out to matching subscribers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChangeFrame {
    /// `inventory.update`, `product.update`, `conflict.created` or `conflict.resolved`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The organization's change sequence (a gap is healed by the next delta pull).
    pub seq: u64,
    /// When it was committed (RFC 3339 UTC).
    pub timestamp: String,
    /// What changed.
    pub data: Value,
}

//! Committed changes on their way to WebSocket subscribers: one broadcast channel per hub,
//! each frame serialised once, each subscriber filtering for itself.

use axum::extract::ws::Utf8Bytes;
use std::sync::Arc;

/// One committed change.
#[derive(Clone, Debug)]
pub struct Event {
    /// Its organization (subscribers of others never see it).
    pub org: String,
    /// Its channel (`inventory.updates`, `products.changes`, `conflicts.changes`).
    pub channel: &'static str,
    /// Its branch (`None`: every branch).
    pub branch_id: Option<String>,
    /// For filters.
    pub location_id: Option<String>,
    /// For filters.
    pub product_id: Option<String>,
    /// For filters.
    pub category: Option<String>,
    /// The frame, as JSON text (cheap to clone for every subscriber).
    pub frame: Utf8Bytes,
}

/// How many events a slow subscriber may lag before it misses some (the seq gap tells it to pull).
pub const BUS_CAPACITY: usize = 4096;

/// The sending side.
pub type Bus = tokio::sync::broadcast::Sender<Arc<Event>>;

//! Push (`POST /v1/sync/push`) and pull (`GET /v1/inventory/delta`) bodies.

use crate::envelope::ErrorBody;
use crate::ops::PushOp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use stocksync_model::OpId;

/// The most ops one push may carry.
pub const MAX_PUSH_OPS: usize = 1000;

/// The body of a push.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushRequest {
    /// Ops of one device, any order (the hub applies them by `device_seq`).
    pub ops: Vec<PushOp>,
}

/// What became of one pushed op.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpStatus {
    /// It took effect now.
    Applied,
    /// It had been pushed before; `original_status` says what became of it then.
    Duplicate,
    /// Refused for good (`error` says why; a conflict record was opened). Not to be retried.
    Rejected,
    /// Applied, but a field clash went to the manual queue (`conflict_id`).
    Conflict,
}

/// One entry of `data.results[]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpResult {
    /// The op.
    pub op_id: OpId,
    /// What became of it.
    pub status: OpStatus,
    /// The organization's change sequence its effect (or its conflict record) got.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// The product's version after a product op.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// The conflict record opened for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict_id: Option<String>,
    /// For `duplicate`: the status of the first push.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_status: Option<OpStatus>,
    /// For a `product_create` or `location_create` whose SKU (or code, in its branch) the hub
    /// already had: the existing entity's id. The device's id is an alias of it from now on
    /// (later ops naming either apply to it), and the device re-points its rows to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canonical_id: Option<String>,
    /// Why it was rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

/// `data` of a push response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PushResponse {
    /// One result per op, in the order the ops were sent.
    pub results: Vec<OpResult>,
}

/// Entities of the delta feed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Entity {
    /// A product (its fields and `version`).
    Product,
    /// A location.
    Location,
    /// The stock of one product at one location; id `"{product_id}@{location_id}"`.
    StockLevel,
    /// One movement (append-only: only ever created).
    Transaction,
    /// A conflict record.
    Conflict,
}

impl Entity {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Entity::Product => "product",
            Entity::Location => "location",
            Entity::StockLevel => "stock_level",
            Entity::Transaction => "transaction",
            Entity::Conflict => "conflict",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Entity> {
        [
            Entity::Product,
            Entity::Location,
            Entity::StockLevel,
            Entity::Transaction,
            Entity::Conflict,
        ]
        .into_iter()
        .find(|e| e.as_str() == s)
    }
}

/// One item of `created[]`, `updated[]` or `deleted[]`: the entity's state as of the page.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeltaItem {
    /// What kind of thing.
    pub entity: Entity,
    /// Its id.
    pub id: String,
    /// The change sequence of this state.
    pub seq: u64,
    /// Its version.
    pub version: u64,
    /// Its fields (for `deleted[]`, only the id).
    #[serde(flatten)]
    pub fields: serde_json::Map<String, Value>,
}

/// `data` of a delta page.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DeltaPage {
    /// Things new to the caller.
    pub created: Vec<DeltaItem>,
    /// Things changed.
    pub updated: Vec<DeltaItem>,
    /// Things gone.
    pub deleted: Vec<DeltaItem>,
}

/// `meta` of a delta page (besides `request_id`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeltaMeta {
    /// Pass back as `since_token` (or `X-Sync-Token`) for the next page.
    pub next_sync_token: String,
    /// Items in this page.
    pub changes_count: usize,
    /// More pages wait: call again at once.
    pub has_more: bool,
    /// The token was too old: start over from a snapshot (keeping unsent ops).
    pub full_sync_required: bool,
    /// Digest of the scope's state at `next_sync_token` (last page only; see `checksum`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
}

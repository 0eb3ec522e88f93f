//! The ops a node records in its outbox and later pushes (`POST /v1/sync/push`).
//!
//! `{"op_id", "device_seq", "kind", "occurred_at", "hlc", "body"}`: the `kind` names the body's
//! shape. `location_create` is our addition to the contract's kinds, so that a location made
//! offline reaches the hub like everything else (see `docs/protocol.md`).

use serde::{Deserialize, Serialize};
use stocksync_model::{
    AllocationId, ConflictId, HlcTimestamp, LocationId, Money, OpId, ProductId, Quantity,
    ReasonCode, TransactionId, TransferId, Uom,
};

/// One op as pushed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PushOp {
    /// Unique forever; the hub applies it at most once.
    pub op_id: OpId,
    /// The device's own counter: its ops apply in this order.
    pub device_seq: u64,
    /// When the user did it (RFC 3339 UTC).
    pub occurred_at: String,
    /// Hybrid logical time, for last-write-wins fields.
    pub hlc: HlcTimestamp,
    /// What it is.
    #[serde(flatten)]
    pub body: OpBody,
}

/// The kinds of op.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// Receipt, shipment, adjustment or count.
    Transaction,
    /// Two-legged move between locations.
    Transfer,
    /// Stock promised to an order.
    Allocation,
    /// An allocation given back.
    AllocationRelease,
    /// A new product with its document.
    ProductCreate,
    /// An edit of a product's document.
    ProductChange,
    /// A new location (our addition).
    LocationCreate,
    /// A manual conflict settled on a device.
    ConflictResolution,
}

impl OpKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            OpKind::Transaction => "transaction",
            OpKind::Transfer => "transfer",
            OpKind::Allocation => "allocation",
            OpKind::AllocationRelease => "allocation_release",
            OpKind::ProductCreate => "product_create",
            OpKind::ProductChange => "product_change",
            OpKind::LocationCreate => "location_create",
            OpKind::ConflictResolution => "conflict_resolution",
        }
    }
}

/// The body of an op, tagged by its kind.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "body", rename_all = "snake_case")]
pub enum OpBody {
    /// See [`TransactionBody`].
    Transaction(TransactionBody),
    /// See [`TransferBody`].
    Transfer(TransferBody),
    /// See [`AllocationBody`].
    Allocation(AllocationBody),
    /// See [`ReleaseBody`].
    AllocationRelease(ReleaseBody),
    /// See [`ProductCreateBody`].
    ProductCreate(ProductCreateBody),
    /// See [`ProductChangeBody`].
    ProductChange(ProductChangeBody),
    /// See [`LocationCreateBody`].
    LocationCreate(LocationCreateBody),
    /// See [`ConflictResolutionBody`].
    ConflictResolution(ConflictResolutionBody),
}

impl OpBody {
    /// The body's kind.
    pub fn kind(&self) -> OpKind {
        match self {
            OpBody::Transaction(_) => OpKind::Transaction,
            OpBody::Transfer(_) => OpKind::Transfer,
            OpBody::Allocation(_) => OpKind::Allocation,
            OpBody::AllocationRelease(_) => OpKind::AllocationRelease,
            OpBody::ProductCreate(_) => OpKind::ProductCreate,
            OpBody::ProductChange(_) => OpKind::ProductChange,
            OpBody::LocationCreate(_) => OpKind::LocationCreate,
            OpBody::ConflictResolution(_) => OpKind::ConflictResolution,
        }
    }
}

/// `transaction_type` of a transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransactionType {
    /// Goods in.
    Receipt,
    /// Goods out.
    Shipment,
    /// Correction with a reason.
    Adjustment,
    /// Count: the hub posts `counted − expected`.
    Count,
}

/// A receipt, shipment, adjustment or count.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransactionBody {
    /// Id minted on the device.
    pub transaction_id: TransactionId,
    /// Which kind.
    pub transaction_type: TransactionType,
    /// Which product.
    pub product_id: ProductId,
    /// Where.
    pub location_id: LocationId,
    /// How much (signed for adjustments; the counted quantity for counts).
    pub quantity: Quantity,
    /// For adjustments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<ReasonCode>,
    /// For counts: what was counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counted: Option<Quantity>,
    /// For counts: what the counter's device showed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<Quantity>,
    /// For receipts: cost of one unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_cost: Option<Money>,
    /// Delivery note, order number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

/// A transfer: both legs or neither.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferBody {
    /// Id minted on the device.
    pub transfer_id: TransferId,
    /// Which product.
    pub product_id: ProductId,
    /// Out of here.
    pub from_location_id: LocationId,
    /// Into here.
    pub to_location_id: LocationId,
    /// How much.
    pub quantity: Quantity,
}

/// An allocation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllocationBody {
    /// Id minted on the device.
    pub allocation_id: AllocationId,
    /// Which product.
    pub product_id: ProductId,
    /// Where.
    pub location_id: LocationId,
    /// How much.
    pub quantity: Quantity,
}

/// A release of a whole allocation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseBody {
    /// The allocation.
    pub allocation_id: AllocationId,
    /// How much it held (as the device saw it).
    pub quantity: Quantity,
}

/// A new product and its document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductCreateBody {
    /// Id minted on the device.
    pub product_id: ProductId,
    /// Stock keeping unit.
    pub sku: String,
    /// Readable name.
    pub name: String,
    /// Unit of measure.
    pub uom: Uom,
    /// The whole automerge document, base64: every later `product_change` builds on it.
    pub doc: String,
}

/// An edit of a product.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductChangeBody {
    /// Which product.
    pub product_id: ProductId,
    /// The hub version the edit was made on.
    pub base_version: u64,
    /// The fields it touches.
    pub fields: Vec<String>,
    /// One automerge change, base64.
    pub changes: String,
}

/// A new location.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocationCreateBody {
    /// Id minted on the device.
    pub location_id: LocationId,
    /// Short unique code.
    pub code: String,
    /// Readable name.
    pub name: String,
}

/// How a conflict is settled (the body of `conflict_resolution` ops and of
/// `POST /v1/conflicts/{id}/resolve`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConflictResolutionBody {
    /// Which conflict.
    pub conflict_id: ConflictId,
    /// `use_value` (a field conflict: `value` becomes the field's value) or `dismiss`
    /// (acknowledged; nothing changes).
    pub resolution: Resolution,
    /// The chosen value, for `use_value`; `null` clears an optional field.
    #[serde(default)]
    pub value: Option<String>,
}

/// The ways to settle a conflict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// The field takes the given value.
    UseValue,
    /// Acknowledged; nothing changes.
    Dismiss,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_op_has_the_contracts_shape() {
        let op = PushOp {
            op_id: OpId::parse("op_1").unwrap(),
            device_seq: 41,
            occurred_at: "2026-11-20T10:00:00Z".into(),
            hlc: "0001763632800000.00000@dev_1".parse().unwrap(),
            body: OpBody::Transaction(TransactionBody {
                transaction_id: TransactionId::parse("txn_1").unwrap(),
                transaction_type: TransactionType::Receipt,
                product_id: ProductId::parse("prod_1").unwrap(),
                location_id: LocationId::parse("loc_1").unwrap(),
                quantity: Quantity::new("5".parse().unwrap(), Uom::Each),
                reason_code: None,
                counted: None,
                expected: None,
                unit_cost: None,
                reference: None,
            }),
        };
        let json = serde_json::to_value(&op).unwrap();
        assert_eq!(json["kind"], "transaction");
        assert_eq!(json["device_seq"], 41);
        assert_eq!(json["body"]["transaction_type"], "receipt");
        assert_eq!(json["body"]["quantity"]["value"], "5");
        let back: PushOp = serde_json::from_value(json).unwrap();
        assert_eq!(back, op);
    }
}

//! The records and enums apps see, and their translation to and from the core's types.
//! Decimals travel as exact strings, counts as `i64`, times as `SystemTime`, JSON as text.

use crate::error::StocksyncError;
use std::time::SystemTime;
use stocksync_model as model;
use stocksync_node as node;

/// Unit of measure of a product's stock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum Uom {
    /// Pieces (whole numbers only).
    Each,
    /// Kilograms.
    Kg,
    /// Metres.
    M,
    /// Litres.
    L,
}

/// Whether a product is sold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum ProductStatus {
    /// On sale.
    Active,
    /// Paused.
    Inactive,
    /// No longer sold.
    Discontinued,
}

/// What kind of device this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum DeviceRole {
    /// A warehouse scanner.
    Handheld,
    /// A store tablet.
    Tablet,
    /// A back-office desktop.
    Desktop,
}

/// Why stock was adjusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum ReasonCode {
    /// Broken goods.
    Damage,
    /// Missing goods.
    Shrinkage,
    /// Goods turned up.
    Found,
    /// A count said otherwise.
    CountCorrection,
    /// Something else (say what in the reference).
    Other,
}

/// An amount of money: `amount` is an exact decimal string (`"4.99"`), `currency` ISO 4217.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Money {
    /// How much, e.g. `"4.99"`.
    pub amount: String,
    /// `EUR`, `USD`, …
    pub currency: String,
}

/// A product as this device sees it now.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct Product {
    /// Id.
    pub id: String,
    /// Stock keeping unit (unique).
    pub sku: String,
    /// Scannable code (unique when present).
    pub barcode: Option<String>,
    /// Readable name.
    pub name: String,
    /// Longer text.
    pub description: Option<String>,
    /// Category.
    pub category: Option<String>,
    /// Whether it is sold.
    pub status: ProductStatus,
    /// Unit its stock is kept in.
    pub uom: Uom,
    /// Selling price.
    pub price: Option<Money>,
    /// Hub version this view builds on (0 until the hub has confirmed it).
    pub version: i64,
    /// When it was made.
    pub created_at: SystemTime,
    /// When it last changed.
    pub updated_at: SystemTime,
}

/// What it takes to make a product.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct NewProduct {
    /// Stock keeping unit.
    pub sku: String,
    /// Readable name.
    pub name: String,
    /// Scannable code.
    #[uniffi(default)]
    pub barcode: Option<String>,
    /// Longer text.
    #[uniffi(default)]
    pub description: Option<String>,
    /// Category.
    #[uniffi(default)]
    pub category: Option<String>,
    /// Unit (default `Each`).
    #[uniffi(default)]
    pub uom: Option<Uom>,
    /// Selling price.
    #[uniffi(default)]
    pub price: Option<Money>,
}

/// One change to a product's fields (`edit_product` takes a list; fields not named keep their
/// value). `None` clears an optional field.
#[derive(Clone, Debug, PartialEq, uniffi::Enum)]
pub enum ProductEdit {
    /// New SKU.
    Sku {
        /// The SKU.
        value: String,
    },
    /// New name.
    Name {
        /// The name.
        value: String,
    },
    /// New barcode, or none.
    Barcode {
        /// The barcode.
        value: Option<String>,
    },
    /// New description, or none.
    Description {
        /// The text.
        value: Option<String>,
    },
    /// New category, or none.
    Category {
        /// The category.
        value: Option<String>,
    },
    /// New status.
    Status {
        /// The status.
        value: ProductStatus,
    },
    /// New price, or none.
    Price {
        /// The price.
        value: Option<Money>,
    },
}

/// A location (bin, shelf, store).
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct Location {
    /// Id.
    pub id: String,
    /// Short code staff scan or type (`A-01`).
    pub code: String,
    /// Readable name.
    pub name: String,
    /// When it was made.
    pub created_at: SystemTime,
}

/// A stock movement as a user asks for it: products by barcode, SKU or id; locations by code or
/// id; quantities as decimal strings in the product's unit unless `uom` is given.
#[derive(Clone, Debug, PartialEq, uniffi::Enum)]
pub enum Movement {
    /// Goods in.
    Receive {
        /// Barcode, SKU or id.
        product: String,
        /// Code or id.
        location: String,
        /// How much (> 0).
        quantity: String,
        /// Unit, if the user named one.
        #[uniffi(default)]
        uom: Option<Uom>,
        /// Cost of one unit.
        #[uniffi(default)]
        unit_cost: Option<Money>,
        /// Delivery note, PO.
        #[uniffi(default)]
        reference: Option<String>,
    },
    /// Goods out; refused (`no_negative_inventory`) when this device's view cannot cover it.
    Ship {
        /// Barcode, SKU or id.
        product: String,
        /// Code or id.
        location: String,
        /// How much (> 0).
        quantity: String,
        /// Unit, if the user named one.
        #[uniffi(default)]
        uom: Option<Uom>,
        /// Order number.
        #[uniffi(default)]
        reference: Option<String>,
    },
    /// A signed correction with a reason.
    Adjust {
        /// Barcode, SKU or id.
        product: String,
        /// Code or id.
        location: String,
        /// Signed change (≠ 0).
        delta: String,
        /// Why.
        reason: ReasonCode,
        /// Unit, if the user named one (last: Python wants defaulted arguments after the rest).
        #[uniffi(default)]
        uom: Option<Uom>,
    },
    /// A count: posts the difference from what this device shows now.
    Count {
        /// Barcode, SKU or id.
        product: String,
        /// Code or id.
        location: String,
        /// What was counted.
        counted: String,
        /// Unit, if the user named one.
        #[uniffi(default)]
        uom: Option<Uom>,
    },
    /// Between two locations, both legs or neither.
    Transfer {
        /// Barcode, SKU or id.
        product: String,
        /// Code or id.
        from: String,
        /// Code or id.
        to: String,
        /// How much (> 0).
        quantity: String,
        /// Unit, if the user named one.
        #[uniffi(default)]
        uom: Option<Uom>,
    },
    /// Promise stock to an order.
    Allocate {
        /// Barcode, SKU or id.
        product: String,
        /// Code or id.
        location: String,
        /// How much (> 0, ≤ available).
        quantity: String,
        /// Unit, if the user named one.
        #[uniffi(default)]
        uom: Option<Uom>,
    },
    /// Give an allocation back.
    Release {
        /// The allocation's id.
        allocation_id: String,
    },
}

/// One stock change a movement made.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct Leg {
    /// Product id.
    pub product_id: String,
    /// Location id.
    pub location_id: String,
    /// Change of on-hand.
    pub on_hand_delta: String,
    /// Change of allocated.
    pub allocated_delta: String,
}

/// What a recorded movement became: an op in the outbox, waiting to sync.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct Recorded {
    /// The op (its outcome arrives as `SyncEvent.OpSettled`).
    pub op_id: String,
    /// Its place in this device's outbox.
    pub device_seq: i64,
    /// The movement (for an allocation: the allocation's id).
    pub movement_id: String,
    /// The stock it changed.
    pub legs: Vec<Leg>,
}

/// Stock promised to an order.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct Allocation {
    /// Id.
    pub id: String,
    /// Product id.
    pub product_id: String,
    /// Location id.
    pub location_id: String,
    /// How much.
    pub quantity: String,
    /// In which unit.
    pub uom: Uom,
    /// `open`, `released` or `rejected`.
    pub status: String,
}

/// One product at one location.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct StockRow {
    /// Product id.
    pub product_id: String,
    /// Product SKU.
    pub sku: String,
    /// Product name.
    pub name: String,
    /// Location id.
    pub location_id: String,
    /// Location code.
    pub location_code: String,
    /// Unit.
    pub uom: Uom,
    /// What the hub last confirmed.
    pub synced_on_hand: String,
    /// This device's changes the hub has not confirmed yet.
    pub pending: String,
    /// On hand as this device sees it (`synced_on_hand + pending`).
    pub on_hand: String,
    /// Promised to orders.
    pub allocated: String,
    /// Free to ship (`on_hand - allocated`).
    pub available: String,
}

/// One entry of this device's ledger.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct LedgerRow {
    /// Order of recording.
    pub seq: i64,
    /// The op.
    pub op_id: String,
    /// The movement.
    pub movement_id: String,
    /// `receipt`, `shipment`, …
    pub kind: String,
    /// Product SKU.
    pub sku: String,
    /// Location code.
    pub location_code: String,
    /// Change of on-hand.
    pub on_hand_delta: String,
    /// Change of allocated.
    pub allocated_delta: String,
    /// Adjustment reason.
    pub reason_code: Option<String>,
    /// Reference.
    pub reference: Option<String>,
    /// When (RFC 3339).
    pub occurred_at: String,
    /// `pending`, `synced` or `rejected`.
    pub state: String,
}

/// One op in the outbox.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct OutboxRow {
    /// Its place in the outbox.
    pub device_seq: i64,
    /// The op.
    pub op_id: String,
    /// Op type.
    pub kind: String,
    /// `pending`, `in_flight`, `acked`, `rejected`, `parked`.
    pub state: String,
    /// Push attempts so far.
    pub attempts: i64,
    /// The last error, if any.
    pub last_error: Option<String>,
    /// When it was recorded (RFC 3339).
    pub created_at: String,
    /// The op's body as JSON.
    pub body_json: String,
}

/// The device this database belongs to.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct DeviceInfo {
    /// Its id (sent as `X-Mobile-Device-Id`).
    pub device_id: String,
    /// Organization.
    pub org_id: String,
    /// Branch.
    pub branch_id: String,
    /// A name staff recognise.
    pub name: String,
    /// Kind of device.
    pub role: DeviceRole,
    /// When it was set up.
    pub created_at: SystemTime,
}

/// A device set up without a hub (offline use; `enroll` later keeps its id and ops).
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct NewDevice {
    /// Organization.
    pub org_id: String,
    /// Branch.
    pub branch_id: String,
    /// A name staff recognise.
    pub name: String,
    /// Kind of device.
    pub role: DeviceRole,
}

/// A conflict from the hub's queue.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct Conflict {
    /// Id.
    pub id: String,
    /// `field_conflict` (a price clash), `business_rule`, …
    pub kind: String,
    /// `open`, `resolved`, …
    pub status: String,
    /// Product concerned.
    pub product_id: Option<String>,
    /// Location concerned.
    pub location_id: Option<String>,
    /// Field concerned (`price`).
    pub field: Option<String>,
    /// Rule concerned.
    pub rule: Option<String>,
    /// What a person should read.
    pub message: Option<String>,
    /// The op that raised it.
    pub op_id: Option<String>,
    /// How this device settled it, while the hub has not confirmed yet.
    pub local_resolution: Option<String>,
    /// The hub's whole record as JSON (the competing values are in it).
    pub record_json: String,
}

/// How to settle a conflict.
#[derive(Clone, Debug, PartialEq, uniffi::Enum)]
pub enum ConflictResolution {
    /// The field takes this value (`None` clears an optional field), e.g. `"4.99 EUR"`.
    UseValue {
        /// The chosen value.
        value: Option<String>,
    },
    /// Acknowledge it; nothing changes.
    Dismiss,
}

/// What the hub did with an op.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum OpStatus {
    /// It took effect.
    Applied,
    /// It had been applied before (a resend after a lost answer).
    Duplicate,
    /// Refused for good; the view was corrected and `rule`/`message` say why.
    Rejected,
    /// Applied, but a field clash went to the manual queue (`conflict_id`).
    Conflict,
}

/// The hub's answer to one op, as the user should see it.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct OpOutcome {
    /// The op.
    pub op_id: String,
    /// Its place in the outbox.
    pub device_seq: i64,
    /// Op type.
    pub kind: String,
    /// What happened.
    pub status: OpStatus,
    /// It had been answered before (a resend).
    pub duplicate: bool,
    /// The contract's error code, when refused.
    pub code: Option<String>,
    /// Why, when refused.
    pub message: Option<String>,
    /// The rule that refused it (`no_negative_inventory`).
    pub rule: Option<String>,
    /// The conflict it opened.
    pub conflict_id: Option<String>,
    /// A create of a SKU or location code the hub already had: the existing entity's id, which
    /// this device now uses for it.
    pub canonical_id: Option<String>,
}

/// What background sync is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum SyncState {
    /// Not started, or stopped.
    Stopped,
    /// Reaching the hub.
    Connecting,
    /// Pushing or pulling.
    Syncing,
    /// Up to date and following the hub live.
    Live,
    /// Up to date, polling.
    Idle,
    /// No network; retrying.
    Offline,
    /// Waiting before a retry.
    BackingOff,
    /// Too many failures: waiting longer before one probe.
    CircuitOpen,
    /// Enroll (again).
    AuthRequired,
}

/// Sync state and this device's counts: what a status bar shows.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct NodeStatus {
    /// What sync is doing.
    pub state: SyncState,
    /// The device has hub credentials.
    pub enrolled: bool,
    /// The hub.
    pub hub_url: Option<String>,
    /// A live connection is open.
    pub live: bool,
    /// Ops waiting to be pushed.
    pub pending: i64,
    /// Ops the hub refuses as sent; they wait for a person.
    pub parked: i64,
    /// Ops refused by a rule.
    pub rejected: i64,
    /// Open conflicts.
    pub conflicts: i64,
    /// Last successful push.
    pub last_push_at: Option<SystemTime>,
    /// Last successful pull.
    pub last_pull_at: Option<SystemTime>,
    /// The last error, until a round succeeds.
    pub last_error: Option<String>,
    /// When the next retry is due.
    pub next_retry_at: Option<SystemTime>,
    /// Failures in a row.
    pub consecutive_failures: i64,
}

/// The outcome of one `sync_now`.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct SyncReport {
    /// Ops sent to the hub.
    pub pushed: i64,
    /// Ops the hub applied now.
    pub applied: i64,
    /// Ops the hub had already applied.
    pub duplicates: i64,
    /// Ops a rule refused (final; the view was corrected).
    pub rejected: i64,
    /// Ops parked: refused as sent, waiting for a person.
    pub parked: i64,
    /// Changes pulled.
    pub pulled: i64,
    /// Delta pages applied.
    pub pages: i64,
    /// Conflict records created or changed.
    pub conflicts: i64,
    /// The view differed from the hub's and was rebuilt.
    pub repaired: bool,
    /// The checksum matched at the end of the pull.
    pub checksum_ok: Option<bool>,
    /// Wall time, milliseconds.
    pub duration_ms: i64,
    /// What happened to each op sent.
    pub outcomes: Vec<OpOutcome>,
}

/// Progress of a long pull.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct SyncProgress {
    /// `push` or `pull`.
    pub phase: String,
    /// Ops pushed so far in this round.
    pub pushed: i64,
    /// Changes pulled so far.
    pub pulled: i64,
    /// Pages applied so far.
    pub pages: i64,
    /// The hub has more to send.
    pub has_more: bool,
}

/// Something changed: refresh what shows it.
#[derive(Clone, Debug, PartialEq, uniffi::Enum)]
pub enum SyncEvent {
    /// A stock level changed (pulled, live, or a rejected op withdrawn).
    StockChanged {
        /// Product.
        product_id: String,
        /// Location.
        location_id: String,
    },
    /// A product changed or was deleted at the hub.
    ProductChanged {
        /// Product.
        product_id: String,
    },
    /// A conflict appeared, changed or was settled.
    ConflictChanged {
        /// Conflict.
        conflict_id: String,
    },
    /// The hub answered an op.
    OpSettled {
        /// The answer.
        outcome: OpOutcome,
    },
    /// Sync state changed.
    StatusChanged {
        /// The new status.
        status: NodeStatus,
    },
    /// A pull is under way.
    Progress {
        /// How far.
        progress: SyncProgress,
    },
}

// ---- translation -------------------------------------------------------------------------

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn time(text: Option<String>) -> Option<SystemTime> {
    let parsed = chrono::DateTime::parse_from_rfc3339(text.as_deref()?).ok()?;
    Some(parsed.into())
}

fn decimal(field: &str, text: &str) -> Result<model::Decimal, StocksyncError> {
    text.parse()
        .map_err(|e: model::decimal::DecimalError| StocksyncError::invalid(field, e.to_string()))
}

macro_rules! same_variants {
    ($ours:ident <=> $theirs:path { $($v:ident),+ }) => {
        impl From<$ours> for $theirs {
            fn from(x: $ours) -> Self {
                match x { $($ours::$v => <$theirs>::$v),+ }
            }
        }
        impl From<$theirs> for $ours {
            fn from(x: $theirs) -> Self {
                match x { $(<$theirs>::$v => $ours::$v),+ }
            }
        }
    };
}

same_variants!(Uom <=> model::Uom { Each, Kg, M, L });
same_variants!(ProductStatus <=> model::ProductStatus { Active, Inactive, Discontinued });
same_variants!(DeviceRole <=> node::DeviceRole { Handheld, Tablet, Desktop });
same_variants!(ReasonCode <=> model::ReasonCode { Damage, Shrinkage, Found, CountCorrection, Other });
same_variants!(OpStatus <=> node::OpStatus { Applied, Duplicate, Rejected, Conflict });
same_variants!(SyncState <=> node::SyncState {
    Stopped, Connecting, Syncing, Live, Idle, Offline, BackingOff, CircuitOpen, AuthRequired
});

impl From<model::Money> for Money {
    fn from(m: model::Money) -> Self {
        Money {
            amount: m.amount.to_string(),
            currency: m.currency.to_string(),
        }
    }
}

impl Money {
    pub(crate) fn to_model(&self, field: &str) -> Result<model::Money, StocksyncError> {
        Ok(model::Money {
            amount: decimal(&format!("{field}.amount"), &self.amount)?,
            currency: self
                .currency
                .parse()
                .map_err(|e| StocksyncError::invalid(&format!("{field}.currency"), e))?,
        })
    }
}

fn money(m: Option<&Money>, field: &str) -> Result<Option<model::Money>, StocksyncError> {
    m.map(|m| m.to_model(field)).transpose()
}

impl From<model::Product> for Product {
    fn from(p: model::Product) -> Self {
        Product {
            id: p.id.to_string(),
            sku: p.sku,
            barcode: p.barcode,
            name: p.name,
            description: p.description,
            category: p.category,
            status: p.status.into(),
            uom: p.uom.into(),
            price: p.price.map(Money::from),
            version: count(p.version),
            created_at: p.created_at.into(),
            updated_at: p.updated_at.into(),
        }
    }
}

impl NewProduct {
    pub(crate) fn to_model(&self) -> Result<model::NewProduct, StocksyncError> {
        Ok(model::NewProduct {
            sku: self.sku.clone(),
            name: self.name.clone(),
            barcode: self.barcode.clone(),
            description: self.description.clone(),
            category: self.category.clone(),
            uom: self.uom.map_or(model::Uom::Each, Into::into),
            price: money(self.price.as_ref(), "price")?,
        })
    }
}

/// Folds a list of edits into the core's patch (a later edit of the same field wins).
pub(crate) fn patch(edits: &[ProductEdit]) -> Result<model::ProductPatch, StocksyncError> {
    let mut p = model::ProductPatch::default();
    for edit in edits {
        match edit {
            ProductEdit::Sku { value } => p.sku = Some(value.clone()),
            ProductEdit::Name { value } => p.name = Some(value.clone()),
            ProductEdit::Barcode { value } => p.barcode = Some(value.clone()),
            ProductEdit::Description { value } => p.description = Some(value.clone()),
            ProductEdit::Category { value } => p.category = Some(value.clone()),
            ProductEdit::Status { value } => p.status = Some((*value).into()),
            ProductEdit::Price { value } => p.price = Some(money(value.as_ref(), "price")?),
        }
    }
    Ok(p)
}

impl From<model::Location> for Location {
    fn from(l: model::Location) -> Self {
        Location {
            id: l.id.to_string(),
            code: l.code,
            name: l.name,
            created_at: l.created_at.into(),
        }
    }
}

impl Movement {
    pub(crate) fn to_node(&self) -> Result<node::Movement, StocksyncError> {
        let uom = |u: &Option<Uom>| u.map(model::Uom::from);
        Ok(match self {
            Movement::Receive {
                product,
                location,
                quantity,
                uom: u,
                unit_cost,
                reference,
            } => node::Movement::Receive {
                product: product.clone(),
                location: location.clone(),
                quantity: decimal("quantity", quantity)?,
                uom: uom(u),
                unit_cost: money(unit_cost.as_ref(), "unit_cost")?,
                reference: reference.clone(),
            },
            Movement::Ship {
                product,
                location,
                quantity,
                uom: u,
                reference,
            } => node::Movement::Ship {
                product: product.clone(),
                location: location.clone(),
                quantity: decimal("quantity", quantity)?,
                uom: uom(u),
                reference: reference.clone(),
            },
            Movement::Adjust {
                product,
                location,
                delta,
                uom: u,
                reason,
            } => node::Movement::Adjust {
                product: product.clone(),
                location: location.clone(),
                delta: decimal("delta", delta)?,
                uom: uom(u),
                reason: (*reason).into(),
            },
            Movement::Count {
                product,
                location,
                counted,
                uom: u,
            } => node::Movement::Count {
                product: product.clone(),
                location: location.clone(),
                counted: decimal("counted", counted)?,
                uom: uom(u),
            },
            Movement::Transfer {
                product,
                from,
                to,
                quantity,
                uom: u,
            } => node::Movement::Transfer {
                product: product.clone(),
                from: from.clone(),
                to: to.clone(),
                quantity: decimal("quantity", quantity)?,
                uom: uom(u),
            },
            Movement::Allocate {
                product,
                location,
                quantity,
                uom: u,
            } => node::Movement::Allocate {
                product: product.clone(),
                location: location.clone(),
                quantity: decimal("quantity", quantity)?,
                uom: uom(u),
            },
            Movement::Release { allocation_id } => node::Movement::Release {
                allocation_id: allocation_id.clone(),
            },
        })
    }
}

impl From<node::Recorded> for Recorded {
    fn from(r: node::Recorded) -> Self {
        Recorded {
            op_id: r.op_id.to_string(),
            device_seq: count(r.device_seq),
            movement_id: r.movement_id,
            legs: r
                .legs
                .into_iter()
                .map(|l| Leg {
                    product_id: l.product_id.to_string(),
                    location_id: l.location_id.to_string(),
                    on_hand_delta: l.on_hand_delta.to_string(),
                    allocated_delta: l.allocated_delta.to_string(),
                })
                .collect(),
        }
    }
}

impl From<node::Allocation> for Allocation {
    fn from(a: node::Allocation) -> Self {
        Allocation {
            id: a.id.to_string(),
            product_id: a.product_id.to_string(),
            location_id: a.location_id.to_string(),
            quantity: a.quantity.value.to_string(),
            uom: a.quantity.uom.into(),
            status: a.status,
        }
    }
}

impl From<node::StockRow> for StockRow {
    fn from(s: node::StockRow) -> Self {
        StockRow {
            product_id: s.product_id.to_string(),
            sku: s.sku,
            name: s.name,
            location_id: s.location_id.to_string(),
            location_code: s.location_code,
            uom: s.uom.into(),
            synced_on_hand: s.synced_on_hand.to_string(),
            pending: s.pending.to_string(),
            on_hand: s.on_hand.to_string(),
            allocated: s.allocated.to_string(),
            available: s.available.to_string(),
        }
    }
}

impl From<node::LedgerRow> for LedgerRow {
    fn from(l: node::LedgerRow) -> Self {
        LedgerRow {
            seq: l.seq,
            op_id: l.op_id,
            movement_id: l.movement_id,
            kind: l.kind,
            sku: l.sku,
            location_code: l.location_code,
            on_hand_delta: l.on_hand_delta.to_string(),
            allocated_delta: l.allocated_delta.to_string(),
            reason_code: l.reason_code,
            reference: l.reference,
            occurred_at: l.occurred_at,
            state: l.state,
        }
    }
}

impl From<node::OutboxRow> for OutboxRow {
    fn from(o: node::OutboxRow) -> Self {
        OutboxRow {
            device_seq: count(o.device_seq),
            op_id: o.op_id,
            kind: o.kind,
            state: o.state,
            attempts: o.attempts,
            last_error: o.last_error,
            created_at: o.created_at,
            body_json: o.body.to_string(),
        }
    }
}

impl From<node::DeviceInfo> for DeviceInfo {
    fn from(d: node::DeviceInfo) -> Self {
        DeviceInfo {
            device_id: d.device_id.to_string(),
            org_id: d.org_id,
            branch_id: d.branch_id,
            name: d.name,
            role: d.role.into(),
            created_at: d.created_at.into(),
        }
    }
}

impl From<NewDevice> for node::NewDevice {
    fn from(d: NewDevice) -> Self {
        node::NewDevice {
            org_id: d.org_id,
            branch_id: d.branch_id,
            name: d.name,
            role: d.role.into(),
        }
    }
}

impl From<node::ConflictRow> for Conflict {
    fn from(c: node::ConflictRow) -> Self {
        Conflict {
            id: c.id,
            kind: c.kind,
            status: c.status,
            product_id: c.product_id,
            location_id: c.location_id,
            field: c.field,
            rule: c.rule,
            message: c.message,
            op_id: c.op_id,
            local_resolution: c.local_resolution,
            record_json: c.record.to_string(),
        }
    }
}

impl ConflictResolution {
    pub(crate) fn to_node(&self) -> (node::Resolution, Option<String>) {
        match self {
            ConflictResolution::UseValue { value } => (node::Resolution::UseValue, value.clone()),
            ConflictResolution::Dismiss => (node::Resolution::Dismiss, None),
        }
    }
}

impl From<node::OpOutcome> for OpOutcome {
    fn from(o: node::OpOutcome) -> Self {
        OpOutcome {
            op_id: o.op_id,
            device_seq: count(o.device_seq),
            kind: o.kind,
            status: o.status.into(),
            duplicate: o.duplicate,
            code: o.code,
            message: o.message,
            rule: o.rule,
            conflict_id: o.conflict_id,
            canonical_id: o.canonical_id,
        }
    }
}

impl From<node::NodeStatus> for NodeStatus {
    fn from(s: node::NodeStatus) -> Self {
        NodeStatus {
            state: s.state.into(),
            enrolled: s.enrolled,
            hub_url: s.hub_url,
            live: s.live,
            pending: count(s.pending),
            parked: count(s.parked),
            rejected: count(s.rejected),
            conflicts: count(s.conflicts),
            last_push_at: time(s.last_push_at),
            last_pull_at: time(s.last_pull_at),
            last_error: s.last_error,
            next_retry_at: time(s.next_retry_at),
            consecutive_failures: i64::from(s.consecutive_failures),
        }
    }
}

impl From<node::SyncReport> for SyncReport {
    fn from(r: node::SyncReport) -> Self {
        SyncReport {
            pushed: count(r.pushed),
            applied: count(r.applied),
            duplicates: count(r.duplicates),
            rejected: count(r.rejected),
            parked: count(r.parked),
            pulled: count(r.pulled),
            pages: count(r.pages),
            conflicts: count(r.conflicts),
            repaired: r.repaired,
            checksum_ok: r.checksum_ok,
            duration_ms: count(r.duration_ms),
            outcomes: r.outcomes.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<node::SyncProgress> for SyncProgress {
    fn from(p: node::SyncProgress) -> Self {
        SyncProgress {
            phase: p.phase,
            pushed: count(p.pushed),
            pulled: count(p.pulled),
            pages: count(p.pages),
            has_more: p.has_more,
        }
    }
}

impl From<node::SyncEvent> for SyncEvent {
    fn from(e: node::SyncEvent) -> Self {
        match e {
            node::SyncEvent::StockChanged {
                product_id,
                location_id,
            } => SyncEvent::StockChanged {
                product_id,
                location_id,
            },
            node::SyncEvent::ProductChanged { product_id } => {
                SyncEvent::ProductChanged { product_id }
            }
            node::SyncEvent::ConflictChanged { conflict_id } => {
                SyncEvent::ConflictChanged { conflict_id }
            }
            node::SyncEvent::OpSettled { outcome } => SyncEvent::OpSettled {
                outcome: outcome.into(),
            },
            node::SyncEvent::StatusChanged { status } => SyncEvent::StatusChanged {
                status: status.into(),
            },
            node::SyncEvent::Progress { progress } => SyncEvent::Progress {
                progress: progress.into(),
            },
        }
    }
}

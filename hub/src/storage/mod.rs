//! Storage behind a trait, so the handlers and the domain services never see SQL.
//!
//! A [`Storage`] hands out transactions: [`Storage::read`] for a consistent snapshot,
//! [`Storage::write`] for one serialised unit of work that commits all or nothing. The domain
//! code in `service/` runs against `&mut dyn Tx`, so a Postgres backend implements these
//! methods (each a plain statement or two) and nothing above this module changes. The SQLite
//! implementation is in [`sqlite`].

pub mod sqlite;

use serde_json::Value;
use stocksync_model::Decimal;
use stocksync_protocol::Entity;
use stocksync_protocol::checksum::StateDigest;

/// A storage failure. Bad input never gets here: the services check it first.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The database said no.
    #[error("database: {0}")]
    Db(String),
    /// A stored row could not be read back.
    #[error("stored data unreadable: {0}")]
    Corrupt(String),
}

impl From<rusqlite::Error> for StorageError {
    fn from(e: rusqlite::Error) -> Self {
        StorageError::Db(e.to_string())
    }
}

impl From<serde_json::Error> for StorageError {
    fn from(e: serde_json::Error) -> Self {
        StorageError::Corrupt(e.to_string())
    }
}

/// Shorthand.
pub type Result<T> = std::result::Result<T, StorageError>;

/// A storage backend.
pub trait Storage: Send + Sync + 'static {
    /// A read-only snapshot.
    fn read(&self) -> Result<Box<dyn Tx + '_>>;
    /// A write transaction; writers are serialised. Dropped without [`Tx::commit`]: rolled back.
    fn write(&self) -> Result<Box<dyn Tx + '_>>;
}

/// An organization.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrgRecord {
    /// `org_…`.
    pub id: String,
    /// Readable name.
    pub name: String,
}

/// A branch of an organization.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BranchRecord {
    /// Owner.
    pub org_id: String,
    /// `br_…`.
    pub id: String,
    /// Readable name.
    pub name: String,
}

/// An API key (stored by the hash of its secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// SHA-256 of the key.
    pub key_hash: String,
    /// `key_…`, safe to log.
    pub id: String,
    /// Owner.
    pub org_id: String,
    /// `None`: every branch.
    pub branch_id: Option<String>,
    /// Readable name.
    pub name: String,
    /// Scopes granted.
    pub scopes: Vec<String>,
}

/// An enrollment key: lets a device join a branch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnrollmentKeyRecord {
    /// SHA-256 of the key.
    pub key_hash: String,
    /// Owner.
    pub org_id: String,
    /// The branch devices join.
    pub branch_id: String,
    /// Scopes enrolled devices get.
    pub scopes: Vec<String>,
}

/// An enrolled device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceRecord {
    /// `dev_…` (minted by the device).
    pub id: String,
    /// Owner.
    pub org_id: String,
    /// Home branch.
    pub branch_id: String,
    /// handheld, tablet or desktop.
    pub role: String,
    /// Readable name.
    pub name: String,
    /// Scopes granted.
    pub scopes: Vec<String>,
    /// Highest `device_seq` applied.
    pub last_seq: u64,
}

/// A refresh token (stored by its hash).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefreshRecord {
    /// The device it belongs to.
    pub device_id: String,
    /// Its family: every token rotated from one enrollment.
    pub family_id: String,
    /// When it was first presented (Unix seconds), if it was.
    pub used_at: Option<i64>,
    /// Unix seconds.
    pub expires_at: i64,
}

/// A stored response for an idempotency key.
#[derive(Clone, Debug, PartialEq)]
pub struct IdemRecord {
    /// SHA-256 of the canonical request.
    pub request_hash: String,
    /// HTTP status of the first response.
    pub status: u16,
    /// Its `data`.
    pub response: Value,
    /// When (RFC 3339).
    pub created_at: String,
}

/// A product row: the readable fields as JSON (the Product resource) plus what only the hub keeps.
#[derive(Clone, Debug, PartialEq)]
pub struct ProductRow {
    /// `prod_…`.
    pub id: String,
    /// The Product resource (`id, sku, …, version, created_at, updated_at`).
    pub resource: Value,
    /// The automerge document.
    pub doc: Vec<u8>,
    /// Field → HLC text of the write that holds the field.
    pub field_hlcs: Value,
    /// Current version.
    pub version: u64,
    /// Soft-deleted.
    pub deleted: bool,
}

/// A device's id for an entity that turned out to exist already (same SKU or location code).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AliasRow {
    /// The device's id (`prod_…`, `loc_…`).
    pub alias_id: String,
    /// The existing entity's id.
    pub canonical_id: String,
    /// `product` or `location`.
    pub entity: Entity,
    /// When the collision was settled.
    pub created_at: String,
}

/// A location.
#[derive(Clone, Debug, PartialEq)]
pub struct LocationRow {
    /// `loc_…`.
    pub id: String,
    /// Its branch.
    pub branch_id: String,
    /// Unique code.
    pub code: String,
    /// The Location resource.
    pub resource: Value,
}

/// Stock of one product at one location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StockRow {
    /// Product.
    pub product_id: String,
    /// Location.
    pub location_id: String,
    /// On hand.
    pub on_hand: Decimal,
    /// Promised to orders.
    pub allocated: Decimal,
    /// Bumped on every change.
    pub version: u64,
    /// RFC 3339.
    pub updated_at: String,
}

/// One movement (the Transaction resource).
#[derive(Clone, Debug, PartialEq)]
pub struct MovementRow {
    /// `txn_…`, `xfer_…` or `alloc_…`.
    pub id: String,
    /// Kind.
    pub transaction_type: String,
    /// Product.
    pub product_id: String,
    /// Every location it touches.
    pub location_ids: Vec<String>,
    /// The resource.
    pub resource: Value,
    /// RFC 3339.
    pub created_at: String,
}

/// Filters of the transaction list.
#[derive(Clone, Debug, Default)]
pub struct MovementQuery {
    /// Only this product.
    pub product_id: Option<String>,
    /// Only movements touching this location.
    pub location_id: Option<String>,
    /// Only these locations (the caller's branch).
    pub branches_locations: Option<Vec<String>>,
    /// `created_at >=`.
    pub start: Option<String>,
    /// `created_at <=`.
    pub end: Option<String>,
    /// Offset paging.
    pub offset: u64,
    /// Page size.
    pub limit: u64,
}

/// An allocation.
#[derive(Clone, Debug, PartialEq)]
pub struct AllocationRow {
    /// `alloc_…`.
    pub id: String,
    /// The Allocation resource.
    pub resource: Value,
    /// open or released.
    pub status: String,
}

/// A pushed op and its first outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct OpRow {
    /// `op_…`.
    pub op_id: String,
    /// Who pushed it.
    pub device_id: String,
    /// Its device sequence.
    pub device_seq: u64,
    /// Its kind.
    pub kind: String,
    /// applied, rejected or conflict.
    pub status: String,
    /// The first `OpResult`.
    pub result: Value,
}

/// A conflict record.
#[derive(Clone, Debug, PartialEq)]
pub struct ConflictRow {
    /// `conf_…`.
    pub id: String,
    /// open, resolved or dismissed.
    pub status: String,
    /// The branch whose queue it is in (`None`: every branch's, as for a product's field clash).
    pub branch_id: Option<String>,
    /// The Conflict resource.
    pub resource: Value,
}

/// The latest state of one entity in the change feed.
#[derive(Clone, Debug, PartialEq)]
pub struct FeedRow {
    /// product, location, stock_level, transaction or conflict.
    pub entity: String,
    /// Its id.
    pub entity_id: String,
    /// Sequence of its last change.
    pub seq: u64,
    /// Sequence at which it appeared.
    pub created_seq: u64,
    /// `None`: visible to every branch.
    pub branch_id: Option<String>,
    /// A tombstone.
    pub deleted: bool,
    /// Its version.
    pub version: u64,
    /// Its fields as the text of one JSON object, without the members a delta item takes from
    /// the columns (`entity`, `id`, `seq`, `version`), so a page splices it in unparsed. `{}` for
    /// a tombstone.
    pub data: String,
}

/// Which feed rows a page wants.
#[derive(Clone, Debug)]
pub struct FeedQuery {
    /// Rows with `seq >` this.
    pub after: u64,
    /// Rows with `seq <=` this (the snapshot's horizon).
    pub upto: u64,
    /// `Some`: only rows of these branches and branch-less rows.
    pub branches: Option<Vec<String>>,
    /// Snapshot: no tombstones and no transactions (history is not state).
    pub snapshot: bool,
    /// Page size.
    pub limit: u64,
}

/// Sort and paging of a product list.
#[derive(Clone, Debug)]
pub struct ProductQuery {
    /// `filters[status]`.
    pub status: Option<String>,
    /// `filters[category]`.
    pub category: Option<String>,
    /// `filters[sku]`.
    pub sku: Option<String>,
    /// `filters[barcode]`.
    pub barcode: Option<String>,
    /// Column to sort by (one of created_at, updated_at, sku, name).
    pub sort_column: &'static str,
    /// Descending.
    pub descending: bool,
    /// Keyset paging: rows after `(sort value, id)`.
    pub after: Option<(String, String)>,
    /// Offset paging (ignored with `after`).
    pub offset: u64,
    /// Page size.
    pub limit: u64,
}

/// One transaction of a storage backend. Every method is scoped to one organization.
pub trait Tx {
    /// Makes the writes durable. A read transaction just ends.
    fn commit(self: Box<Self>) -> Result<()>;
    /// Opens a nested savepoint (one op of a push).
    fn savepoint(&mut self) -> Result<()>;
    /// Keeps the savepoint's writes.
    fn release_savepoint(&mut self) -> Result<()>;
    /// Undoes the savepoint's writes.
    fn rollback_savepoint(&mut self) -> Result<()>;

    // --- tenancy and credentials -------------------------------------------------------------

    /// Adds an organization if it is not there yet.
    fn ensure_org(&mut self, org: &OrgRecord) -> Result<()>;
    /// Adds a branch if it is not there yet.
    fn ensure_branch(&mut self, branch: &BranchRecord) -> Result<()>;
    /// Every organization.
    fn orgs(&self) -> Result<Vec<OrgRecord>>;
    /// Every branch.
    fn branches(&self) -> Result<Vec<BranchRecord>>;
    /// Adds an API key if its hash is new.
    fn ensure_api_key(&mut self, key: &ApiKeyRecord) -> Result<()>;
    /// Every API key.
    fn api_keys(&self) -> Result<Vec<ApiKeyRecord>>;
    /// Adds an enrollment key if its hash is new.
    fn ensure_enrollment_key(&mut self, key: &EnrollmentKeyRecord) -> Result<()>;
    /// Every enrollment key.
    fn enrollment_keys(&self) -> Result<Vec<EnrollmentKeyRecord>>;
    /// A device by id, in any organization (ids are global so a device cannot join two).
    fn device(&self, id: &str) -> Result<Option<DeviceRecord>>;
    /// Adds or replaces a device.
    fn put_device(&mut self, device: &DeviceRecord) -> Result<()>;
    /// Records the highest `device_seq` applied.
    fn set_device_seq(&mut self, device_id: &str, seq: u64) -> Result<()>;
    /// Stores a refresh token.
    fn insert_refresh(&mut self, token_hash: &str, record: &RefreshRecord) -> Result<()>;
    /// A refresh token by hash.
    fn refresh(&self, token_hash: &str) -> Result<Option<RefreshRecord>>;
    /// Marks a refresh token used.
    fn use_refresh(&mut self, token_hash: &str, at: &str) -> Result<()>;
    /// Revokes a token family.
    fn revoke_family(&mut self, family_id: &str, at: &str) -> Result<()>;
    /// Every revoked family.
    fn revoked_families(&self) -> Result<Vec<String>>;

    // --- idempotency ---------------------------------------------------------------------------

    /// The stored response for a key.
    fn idempotency(&self, org: &str, endpoint: &str, key: &str) -> Result<Option<IdemRecord>>;
    /// Stores a response for a key.
    fn put_idempotency(
        &mut self,
        org: &str,
        endpoint: &str,
        key: &str,
        record: &IdemRecord,
    ) -> Result<()>;
    /// Forgets keys stored before `before` (RFC 3339); returns how many.
    fn purge_idempotency(&mut self, before: &str) -> Result<u64>;

    // --- catalog -------------------------------------------------------------------------------

    /// A product (deleted ones too).
    fn product(&self, org: &str, id: &str) -> Result<Option<ProductRow>>;
    /// The live product with this SKU or barcode.
    fn product_by_code(
        &self,
        org: &str,
        column: &'static str,
        code: &str,
    ) -> Result<Option<ProductRow>>;
    /// Adds or replaces a product; the readable columns come from `resource`.
    fn put_product(&mut self, org: &str, row: &ProductRow) -> Result<()>;
    /// A page of live products and the total that match.
    fn products(&self, org: &str, query: &ProductQuery) -> Result<(Vec<ProductRow>, u64)>;
    /// A location.
    fn location(&self, org: &str, id: &str) -> Result<Option<LocationRow>>;
    /// The location with this code in a branch (codes are unique per branch).
    fn location_by_code(
        &self,
        org: &str,
        branch_id: &str,
        code: &str,
    ) -> Result<Option<LocationRow>>;
    /// The entity a device's id was merged into, when a create of it collided on a natural key.
    fn alias(&self, org: &str, id: &str) -> Result<Option<String>>;
    /// Records that `alias_id` names `canonical_id` from now on.
    fn put_alias(&mut self, org: &str, alias: &AliasRow) -> Result<()>;
    /// Adds a location.
    fn insert_location(&mut self, org: &str, row: &LocationRow) -> Result<()>;
    /// A page of locations (of some branches) and the total.
    fn locations(
        &self,
        org: &str,
        branches: Option<&[String]>,
        offset: u64,
        limit: u64,
    ) -> Result<(Vec<LocationRow>, u64)>;

    // --- stock and movements -------------------------------------------------------------------

    /// The stock of a product at a location.
    fn stock(&self, org: &str, product_id: &str, location_id: &str) -> Result<Option<StockRow>>;
    /// Adds or replaces a stock row.
    fn put_stock(&mut self, org: &str, row: &StockRow) -> Result<()>;
    /// A product's stock everywhere.
    fn stock_of_product(&self, org: &str, product_id: &str) -> Result<Vec<StockRow>>;
    /// Everything at a location.
    fn stock_at_location(&self, org: &str, location_id: &str) -> Result<Vec<StockRow>>;
    /// Records a movement.
    fn insert_movement(&mut self, org: &str, row: &MovementRow, seq: u64) -> Result<()>;
    /// A movement by id.
    fn movement(&self, org: &str, id: &str) -> Result<Option<MovementRow>>;
    /// A page of movements, newest first, and the total.
    fn movements(&self, org: &str, query: &MovementQuery) -> Result<(Vec<MovementRow>, u64)>;
    /// An allocation.
    fn allocation(&self, org: &str, id: &str) -> Result<Option<AllocationRow>>;
    /// Adds or replaces an allocation.
    fn put_allocation(&mut self, org: &str, row: &AllocationRow) -> Result<()>;

    // --- push and conflicts --------------------------------------------------------------------

    /// A pushed op by id.
    fn op(&self, org: &str, op_id: &str) -> Result<Option<OpRow>>;
    /// Records a pushed op's first outcome.
    fn insert_op(&mut self, org: &str, row: &OpRow) -> Result<()>;
    /// A conflict record.
    fn conflict(&self, org: &str, id: &str) -> Result<Option<ConflictRow>>;
    /// Adds or replaces a conflict record.
    fn put_conflict(&mut self, org: &str, row: &ConflictRow) -> Result<()>;
    /// A page of conflicts (optionally of one status; with `branches`, only theirs and the
    /// branch-less ones), newest first, and the total.
    fn conflicts(
        &self,
        org: &str,
        status: Option<&str>,
        branches: Option<&[String]>,
        offset: u64,
        limit: u64,
    ) -> Result<(Vec<ConflictRow>, u64)>;

    // --- change feed ---------------------------------------------------------------------------

    /// Hands out the organization's next change sequence.
    fn next_seq(&mut self, org: &str) -> Result<u64>;
    /// The last sequence handed out and the purge horizon.
    fn feed_state(&self, org: &str) -> Result<(u64, u64)>;
    /// An entity's latest feed row.
    fn feed_row(&self, org: &str, entity: &str, entity_id: &str) -> Result<Option<FeedRow>>;
    /// Adds or replaces an entity's feed row.
    fn put_feed_row(&mut self, org: &str, row: &FeedRow) -> Result<()>;
    /// Rows in sequence order.
    fn feed_page(&self, org: &str, query: &FeedQuery) -> Result<Vec<FeedRow>>;
    /// Drops tombstones with `seq <= upto` and raises the purge horizon.
    fn purge_tombstones(&mut self, org: &str, upto: u64) -> Result<u64>;
    /// The running state digest of a branch (`""`: the branch-less part).
    fn digest(&self, org: &str, branch_id: &str) -> Result<StateDigest>;
    /// Every branch's digest.
    fn digests(&self, org: &str) -> Result<Vec<(String, StateDigest)>>;
    /// Stores a running digest.
    fn put_digest(&mut self, org: &str, branch_id: &str, digest: &StateDigest) -> Result<()>;
}

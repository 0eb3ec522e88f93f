//! Bulk seeding of a hub data dir, for benchmarks and load tests: N products, M locations and
//! N × M stock levels written through the same services as the REST routes, so the feed, its
//! sequence numbers and the per-branch checksum digest are exactly what normal writes leave.
//!
//! ```no_run
//! # fn run() -> Result<(), stocksync_hub::seed::SeedError> {
//! use stocksync_hub::{seed, server};
//! let dir = std::path::Path::new("/tmp/hub-bench");
//! let (bootstrap, _creds) = server::dev_bootstrap(dir);
//! server::init_data_dir(dir, &bootstrap)?; // the organization and branch must exist
//! let summary = seed::bulk(dir, "org_demo", "br_main", 100_000, 10)?;
//! println!("{} stock levels, feed head {}", summary.stock_levels, summary.head_seq);
//! // then Hub::start(HubConfig::new(dir), &bootstrap, "127.0.0.1:0") serves them
//! # Ok(()) }
//! ```
//!
//! What is written, in this order (so a snapshot delivers products before their stock):
//!
//! - products `SKU-000001` … (`Seeded item N`, barcode `2000000000001` + N − 1, category
//!   `cat-0` … `cat-19`, unit `EACH`, a price), each with an automerge document made by
//!   [`ProductDoc::create`](stocksync_model::ProductDoc::create) with the hub's actor: each goes
//!   through [`catalog::create`], as `POST /v1/products` does;
//! - locations `SEED-0001` … in the branch, through [`catalog::create_location`];
//! - for every product and every location a stock level with a non-zero `on_hand` (whole units,
//!   1–997) and nothing allocated, through [`stock::save_level`] (the stock row and its feed entry;
//!   no movement is recorded, so there is no transaction history for these levels).
//!
//! Writes go in transactions of [`SeedSpec::batch`] entities. The hub may be running on the same
//! data dir meanwhile (SQLite serialises the writers), but its writes then wait for each batch;
//! seeding before [`Hub::start`](crate::Hub::start) is the usual way. Product and location ids
//! are new each run; SKUs and codes are fixed, so seeding one organization twice fails on the
//! first duplicate SKU (`VALIDATION_FAILED`) and writes nothing more.

use crate::error::ApiError;
use crate::server::{DB_FILE, HubError};
use crate::service::{Ctx, catalog, delta, stock};
use crate::storage::sqlite::SqliteStorage;
use crate::storage::{StockRow, Storage, StorageError};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use stocksync_model::{Clock, Decimal, LocationId, Money, NewLocation, ProductId, Uom};

/// What to seed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeedSpec {
    /// An organization the data dir already knows.
    pub org: String,
    /// One of its branches: the locations (and so the stock levels) go there.
    pub branch: String,
    /// Products to create.
    pub products: usize,
    /// Locations to create; every product gets a stock level at each.
    pub locations: usize,
    /// Entities per transaction (default 20,000).
    pub batch: usize,
}

impl SeedSpec {
    /// `products` products, `locations` locations, `products × locations` stock levels.
    pub fn new(org: &str, branch: &str, products: usize, locations: usize) -> Self {
        SeedSpec {
            org: org.to_owned(),
            branch: branch.to_owned(),
            products,
            locations,
            batch: 20_000,
        }
    }
}

/// What was seeded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeedSummary {
    /// Products created.
    pub products: usize,
    /// Locations created.
    pub locations: usize,
    /// Stock levels created.
    pub stock_levels: usize,
    /// The ids of the products, in SKU order.
    pub product_ids: Vec<String>,
    /// The ids of the locations, in code order.
    pub location_ids: Vec<String>,
    /// The feed sequence of the first entity written (one past the head when nothing was).
    pub first_seq: u64,
    /// The feed's head afterwards (the last entity written).
    pub head_seq: u64,
    /// `meta.checksum` a caller scoped to the branch gets at the head (everything it can see,
    /// seeded or not).
    pub checksum: String,
    /// Wall time of the whole seeding.
    pub elapsed: Duration,
}

/// Why seeding failed. Batches committed before the failure stay.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// Opening the data dir or its database.
    #[error(transparent)]
    Hub(#[from] HubError),
    /// The database.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The organization or branch is unknown, or a service refused an entity.
    #[error("{0}")]
    Refused(String),
}

impl From<ApiError> for SeedError {
    fn from(e: ApiError) -> Self {
        let details = if e.details.is_null() {
            String::new()
        } else {
            format!(" {}", e.details)
        };
        SeedError::Refused(format!(
            "{}: {}{details}",
            serde_json::json!(e.code).as_str().unwrap_or("ERROR"),
            e.message
        ))
    }
}

/// Seeds the hub database in `data_dir` (see the module docs). The organization and branch must
/// exist: apply the bootstrap first ([`crate::server::init_data_dir`], or start the hub once).
pub fn bulk(
    data_dir: &Path,
    org: &str,
    branch: &str,
    products: usize,
    locations: usize,
) -> Result<SeedSummary, SeedError> {
    bulk_with(data_dir, &SeedSpec::new(org, branch, products, locations))
}

/// [`bulk`] with every knob.
pub fn bulk_with(data_dir: &Path, spec: &SeedSpec) -> Result<SeedSummary, SeedError> {
    let storage = SqliteStorage::open(&data_dir.join(DB_FILE))?;
    bulk_into(&storage, spec)
}

/// [`bulk`] into any storage backend.
pub fn bulk_into(storage: &dyn Storage, spec: &SeedSpec) -> Result<SeedSummary, SeedError> {
    let started = Instant::now();
    let batch = spec.batch.max(1);
    let head_before = {
        let tx = storage.read()?;
        if !tx.orgs()?.iter().any(|o| o.id == spec.org) {
            return Err(SeedError::Refused(format!(
                "no organization `{}` in this data dir; apply the bootstrap first",
                spec.org
            )));
        }
        if !tx
            .branches()?
            .iter()
            .any(|b| b.org_id == spec.org && b.id == spec.branch)
        {
            return Err(SeedError::Refused(format!(
                "organization `{}` has no branch `{}`",
                spec.org, spec.branch
            )));
        }
        tx.feed_state(&spec.org)?.0 + 1
    };
    // The hub's own clock (the HLC of the fields' first writes), as a running hub would keep.
    let clock = Mutex::new(Clock::resume("hub", 0, 0));
    let mut writer = Writer {
        storage,
        org: &spec.org,
        clock: &clock,
        ctx: None,
        pending: 0,
        batch,
        first_seq: None,
    };

    let mut product_ids = Vec::with_capacity(spec.products);
    for i in 0..spec.products {
        let n = i + 1;
        let req = catalog::CreateProduct {
            id: Some(ProductId::new()),
            sku: format!("SKU-{n:06}"),
            name: format!("Seeded item {n}"),
            barcode: Some(format!("{}", 2_000_000_000_000u64 + i as u64 + 1)),
            description: None,
            category: Some(format!("cat-{}", i % 20)),
            uom: Some(Uom::Each),
            price: Some(price(i)?),
        };
        let resource = writer.with(|ctx| catalog::create(ctx, &req))?;
        let id = resource["id"].as_str().unwrap_or_default().to_owned();
        product_ids.push(id);
    }

    let mut location_ids = Vec::with_capacity(spec.locations);
    for j in 0..spec.locations {
        let n = j + 1;
        let new = NewLocation {
            code: format!("SEED-{n:04}"),
            name: format!("Seeded shelf {n}"),
        };
        let id = LocationId::new();
        writer.with(|ctx| catalog::create_location(ctx, Some(id.clone()), &new, &spec.branch))?;
        location_ids.push(id.to_string());
    }

    let uom = Uom::Each.to_string();
    for (i, product) in product_ids.iter().enumerate() {
        for (j, location) in location_ids.iter().enumerate() {
            let units = ((i * 31 + j * 17) % 997 + 1) as i64;
            writer.with(|ctx| {
                let row = StockRow {
                    product_id: product.clone(),
                    location_id: location.clone(),
                    on_hand: Decimal::from_int(units).unwrap_or(Decimal::ZERO),
                    allocated: Decimal::ZERO,
                    version: 1,
                    updated_at: ctx.now.clone(),
                };
                stock::save_level(ctx, &row, &spec.branch, &uom)
            })?;
        }
    }
    writer.finish()?;

    let first_seq = writer.first_seq.unwrap_or(head_before);
    let tx = storage.read()?;
    let head_seq = tx.feed_state(&spec.org)?.0;
    let checksum =
        delta::scope_digest(&*tx, &spec.org, Some(std::slice::from_ref(&spec.branch)))?.to_hex();
    Ok(SeedSummary {
        products: product_ids.len(),
        locations: location_ids.len(),
        stock_levels: product_ids.len() * location_ids.len(),
        product_ids,
        location_ids,
        first_seq,
        head_seq,
        checksum,
        elapsed: started.elapsed(),
    })
}

/// A price between 1.00 and 500.99 EUR.
fn price(i: usize) -> Result<Money, SeedError> {
    format!("{}.{:02} EUR", i % 500 + 1, (i * 7) % 100)
        .parse()
        .map_err(|e| SeedError::Refused(format!("seed price: {e}")))
}

/// Runs entities through one write transaction at a time, committing every `batch`.
struct Writer<'s> {
    storage: &'s dyn Storage,
    org: &'s str,
    clock: &'s Mutex<Clock>,
    ctx: Option<Ctx<'s>>,
    pending: usize,
    batch: usize,
    /// The sequence the first entity got (read inside the first write transaction).
    first_seq: Option<u64>,
}

impl<'s> Writer<'s> {
    fn with<T>(
        &mut self,
        f: impl FnOnce(&mut Ctx<'s>) -> Result<T, ApiError>,
    ) -> Result<T, SeedError> {
        let ctx = match &mut self.ctx {
            Some(ctx) => ctx,
            empty => {
                let tx = self.storage.write()?;
                if self.first_seq.is_none() {
                    self.first_seq = Some(tx.feed_state(self.org)?.0 + 1);
                }
                empty.insert(Ctx {
                    tx,
                    org: self.org.to_owned(),
                    now: crate::clock::now_rfc3339(),
                    events: Vec::new(),
                    clock: self.clock,
                })
            }
        };
        let out = f(ctx)?;
        // No one is subscribed to a seeding: its WebSocket frames go nowhere.
        ctx.events.clear();
        self.pending += 1;
        if self.pending >= self.batch {
            self.finish()?;
        }
        Ok(out)
    }

    fn finish(&mut self) -> Result<(), SeedError> {
        if let Some(ctx) = self.ctx.take() {
            ctx.tx.commit()?;
        }
        self.pending = 0;
        Ok(())
    }
}

//! Integration tests of `stocksync-store` through its public API, on real SQLite files.
//!
//! - [`migrations`]: a committed version-1 database (`tests/fixtures/v001.sql`) upgrades to the
//!   same schema a fresh file gets and keeps its data; so does every intermediate version; a file
//!   from a newer program is refused; re-opening runs nothing.
//! - [`movements`]: every movement kind writes ledger, stock view and outbox together; a refused
//!   movement writes nothing; `device_seq` is contiguous; two handles on one file cannot both
//!   take the last unit.
//! - [`catalog`]: locations and products: uniqueness by field, lookups, bulk import (all or
//!   nothing), edits as real automerge changes, the device lifecycle.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod catalog;
mod migrations;
mod movements;
mod sync;

use rusqlite::Connection;
use std::path::{Path, PathBuf};
use stocksync_model::{
    Decimal, Location, LocationId, Movement, MovementKind, NewLocation, NewProduct, Product,
    ProductId, Quantity, TransactionId, Uom,
};
use stocksync_store::{
    DeviceInfo, DeviceRole, LedgerFilter, LedgerRow, NewDevice, OutboxRow, StockFilter, StockRow,
    Store, StoreError, StoreOptions,
};
use tempfile::TempDir;

/// A decimal from text.
pub fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

/// A quantity from text and a unit.
pub fn q(s: &str, uom: Uom) -> Quantity {
    Quantity::new(d(s), uom)
}

/// The device every test node is made as.
pub fn new_device() -> NewDevice {
    NewDevice {
        org_id: "org_test".into(),
        branch_id: "branch_test".into(),
        name: "Test scanner".into(),
        role: DeviceRole::Handheld,
    }
}

/// Opens a store on `path` with the default options (WAL, `synchronous=FULL`).
pub fn open(path: &Path) -> Store {
    Store::open(path, &StoreOptions::default()).unwrap()
}

/// A raw connection to the same file, for looking at what the store wrote.
pub fn raw(path: &Path) -> Connection {
    Connection::open(path).unwrap()
}

/// Every op's hybrid logical timestamp, in `device_seq` order, straight from the file.
pub fn outbox_hlcs(path: &Path) -> Vec<stocksync_model::HlcTimestamp> {
    raw(path)
        .prepare("SELECT hlc FROM outbox ORDER BY device_seq")
        .unwrap()
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|h| h.unwrap().parse().unwrap())
        .collect()
}

/// One integer from a query.
pub fn scalar(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// `(type, name, tbl_name, sql)` of every schema object, whitespace normalised, in a stable
/// order: what "the same schema" means.
pub fn schema(conn: &Connection) -> Vec<(String, String, String, Option<String>)> {
    let mut stmt = conn
        .prepare("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name")
        .unwrap();
    stmt.query_map([], |r| {
        let sql: Option<String> = r.get(3)?;
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            sql.map(|s| s.split_whitespace().collect::<Vec<_>>().join(" ")),
        ))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

/// The schema of a brand-new store file.
pub fn fresh_schema() -> Vec<(String, String, String, Option<String>)> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fresh.db");
    drop(open(&path));
    schema(&raw(&path))
}

/// The field paths of a [`StoreError::Invalid`]; panics on any other outcome.
pub fn invalid_fields<T: std::fmt::Debug>(result: Result<T, StoreError>) -> Vec<String> {
    match result {
        Err(StoreError::Invalid(errors)) => errors.0.keys().cloned().collect(),
        other => panic!("expected StoreError::Invalid, got {other:?}"),
    }
}

/// The rule name of a [`StoreError::Rule`]; panics on any other outcome.
pub fn rule<T: std::fmt::Debug>(result: Result<T, StoreError>) -> String {
    match result {
        Err(StoreError::Rule(violation)) => violation.rule,
        other => panic!("expected StoreError::Rule, got {other:?}"),
    }
}

/// An initialised store on a file in its own temp dir.
pub struct Node {
    /// Keeps the directory alive.
    pub dir: TempDir,
    /// The database file.
    pub path: PathBuf,
    /// The store.
    pub store: Store,
    /// What `init_device` returned.
    pub device: DeviceInfo,
}

impl Node {
    /// A fresh, initialised node.
    pub fn fresh() -> Node {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.db");
        let store = open(&path);
        let device = store.init_device(&new_device()).unwrap();
        Node {
            dir,
            path,
            store,
            device,
        }
    }

    /// Adds a location.
    pub fn location(&self, code: &str) -> Location {
        self.store
            .add_location(&NewLocation {
                code: code.into(),
                name: format!("Location {code}"),
            })
            .unwrap()
    }

    /// Adds a product kept in `uom`.
    pub fn product(&self, sku: &str, uom: Uom) -> Product {
        self.store
            .add_product(&NewProduct {
                uom,
                ..NewProduct::new(sku, format!("Product {sku}"))
            })
            .unwrap()
    }

    /// Every ledger leg, newest first.
    pub fn ledger(&self) -> Vec<LedgerRow> {
        self.store
            .ledger(&LedgerFilter {
                product_id: None,
                limit: u32::MAX,
            })
            .unwrap()
    }

    /// Every stock row.
    pub fn stock(&self) -> Vec<StockRow> {
        self.store.stock(&StockFilter::default()).unwrap()
    }

    /// The stock row of one product at one location.
    pub fn stock_row(&self, product: &ProductId, location: &LocationId) -> StockRow {
        let rows = self
            .store
            .stock(&StockFilter {
                product_id: Some(product.clone()),
                location_id: Some(location.clone()),
            })
            .unwrap();
        assert_eq!(rows.len(), 1, "{rows:?}");
        rows.into_iter().next().unwrap()
    }

    /// Every outbox op.
    pub fn outbox(&self) -> Vec<OutboxRow> {
        self.store.outbox().unwrap()
    }

    /// The device's next `device_seq`, straight from the file.
    pub fn next_seq(&self) -> i64 {
        scalar(
            &raw(&self.path),
            "SELECT coalesce(max(device_seq), 0) + 1 FROM outbox",
        )
    }

    /// Asserts the store's own consistency check finds nothing.
    pub fn assert_consistent(&self) {
        assert_eq!(self.store.check().unwrap(), Vec::<String>::new());
    }
}

/// A receipt of `qty` of `product` at `location`.
pub fn receipt(product: &ProductId, location: &LocationId, qty: Quantity) -> Movement {
    Movement {
        product_id: product.clone(),
        kind: MovementKind::Receipt {
            transaction_id: TransactionId::new(),
            location_id: location.clone(),
            quantity: qty,
            unit_cost: None,
            reference: None,
        },
    }
}

/// A shipment of `qty` of `product` from `location`.
pub fn shipment(product: &ProductId, location: &LocationId, qty: Quantity) -> Movement {
    Movement {
        product_id: product.clone(),
        kind: MovementKind::Shipment {
            transaction_id: TransactionId::new(),
            location_id: location.clone(),
            quantity: qty,
            reference: None,
        },
    }
}

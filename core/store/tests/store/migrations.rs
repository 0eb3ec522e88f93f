//! Append-only migrations: old files upgrade to exactly the schema a fresh file gets, with their
//! data; newer files are refused untouched; re-opening changes nothing.

use crate::{Node, d, fresh_schema, open, outbox_hlcs, q, raw, scalar, schema, shipment};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use rusqlite::Connection;
use std::path::Path;
use stocksync_model::{
    AllocationId, LocationId, Movement, MovementKind, ProductDoc, ProductId, ProductStatus, Uom,
};
use stocksync_store::{
    DeviceRole, LedgerFilter, MIGRATIONS, SCHEMA_VERSION, StockFilter, Store, StoreError,
    StoreOptions, migrate_to,
};

/// A version-1 database: see the comment at the top of the file.
const FIXTURE_V1: &str = include_str!("../fixtures/v001.sql");

const DEVICE: &str = "dev_01a1fb2c7be57761ba36a503977bb600";
const LOC_A01: &str = "loc_01a1fb2c7be57761ba36a50446a6b125";
const LOC_BACK: &str = "loc_01a1fb2c7be57761ba36a506ff34abe2";
const WIDGET: &str = "prod_01a1fb2c7be671078861c055b9c66d1e";
const ROPE: &str = "prod_01a1fb2c7be7741e953320214b7a6460";
/// The fixture's outbox holds device_seq 1..=10.
const FIXTURE_OPS: u64 = 10;

fn load_fixture(path: &Path) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(FIXTURE_V1).unwrap();
}

fn user_version(conn: &Connection) -> i64 {
    scalar(conn, "PRAGMA user_version")
}

fn time(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// id, sku, barcode, name, uom, doc.
type ProductRow = (String, String, Option<String>, String, String, Vec<u8>);

/// The fixture is what version 1 makes. If this fails, `001_initial.sql` was edited after
/// release: put the change in a new numbered migration instead.
#[test]
fn fixture_is_a_version_1_database() {
    let fixture = Connection::open_in_memory().unwrap();
    fixture.execute_batch(FIXTURE_V1).unwrap();
    assert_eq!(user_version(&fixture), 1);

    let mut v1 = Connection::open_in_memory().unwrap();
    migrate_to(&mut v1, 1).unwrap();
    assert_eq!(user_version(&v1), 1);
    assert_eq!(
        schema(&fixture),
        schema(&v1),
        "the schema of version 1 changed: was 001_initial.sql edited?"
    );

    // Each product's doc is a loadable automerge document agreeing with the row, and is the
    // document its product_create op carries.
    let mut stmt = fixture
        .prepare("SELECT id, sku, barcode, name, uom, doc FROM products ORDER BY sku")
        .unwrap();
    let rows: Vec<ProductRow> = stmt
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows.len(), 2);
    for (id, sku, barcode, name, uom, doc) in rows {
        let fields = ProductDoc::load(&doc).unwrap().fields().unwrap();
        assert_eq!(fields.sku, sku);
        assert_eq!(fields.barcode, barcode);
        assert_eq!(fields.name, name);
        assert_eq!(fields.uom.as_str(), uom);
        let body: String = fixture
            .query_row(
                "SELECT body FROM outbox WHERE kind = 'product_create'
                 AND json_extract(body, '$.product_id') = ?1",
                [&id],
                |r| r.get(0),
            )
            .unwrap();
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        let carried = BASE64.decode(body["doc"].as_str().unwrap()).unwrap();
        assert_eq!(carried, doc, "product_create doc of {sku}");
    }
}

#[test]
fn version_1_fixture_upgrades_to_the_fresh_schema_and_keeps_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.db");
    load_fixture(&path);
    let fixture_bodies: Vec<(i64, String, String, String)> = raw(&path)
        .prepare("SELECT device_seq, op_id, kind, body FROM outbox ORDER BY device_seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(fixture_bodies.len() as u64, FIXTURE_OPS);

    let store = open(&path);

    // (a) version, (b) schema.
    let conn = raw(&path);
    assert_eq!(user_version(&conn), SCHEMA_VERSION);
    assert_eq!(schema(&conn), fresh_schema());

    // (c) the data survived.
    let device = store.device().unwrap();
    assert_eq!(device.device_id.as_str(), DEVICE);
    assert_eq!(device.org_id, "org_acme");
    assert_eq!(device.branch_id, "branch_north");
    assert_eq!(device.name, "Scanner 3");
    assert_eq!(device.role, DeviceRole::Handheld);
    assert_eq!(device.created_at, time("2026-11-20T22:55:58.949Z"));

    let locations = store.locations().unwrap();
    let locations: Vec<_> = locations
        .iter()
        .map(|l| (l.id.as_str(), l.code.as_str(), l.name.as_str()))
        .collect();
    assert_eq!(
        locations,
        [
            (LOC_A01, "A-01", "Aisle 1, shelf 1"),
            (LOC_BACK, "BACK", "Back room")
        ]
    );

    let products = store.products().unwrap();
    assert_eq!(products.len(), 2);
    let (rope, widget) = (&products[0], &products[1]);
    assert_eq!(rope.id.as_str(), ROPE);
    assert_eq!(rope.sku, "ROPE-10");
    assert_eq!(rope.name, "Rope, 10 mm");
    assert_eq!(rope.barcode, None);
    assert_eq!(rope.description, None);
    assert_eq!(rope.category.as_deref(), Some("rigging"));
    assert_eq!(rope.uom, Uom::M);
    assert_eq!(rope.price, Some("1.25 EUR".parse().unwrap()));
    assert_eq!(widget.id.as_str(), WIDGET);
    assert_eq!(widget.sku, "WID-001");
    assert_eq!(widget.name, "Widget, blue");
    assert_eq!(widget.barcode.as_deref(), Some("4006381333931"));
    assert_eq!(
        widget.description.as_deref(),
        Some("Blue anodised widget, 40 mm")
    );
    assert_eq!(widget.category.as_deref(), Some("hardware"));
    assert_eq!(widget.status, ProductStatus::Active);
    assert_eq!(widget.uom, Uom::Each);
    assert_eq!(widget.price, Some("9.99 EUR".parse().unwrap()));
    assert_eq!(widget.version, 0);
    assert_eq!(widget.created_at, time("2026-11-20T22:55:58.950Z"));
    for p in &products {
        let fields = store.product_doc(&p.id).unwrap().fields().unwrap();
        assert_eq!(
            (fields.sku, fields.barcode, fields.name, fields.price),
            (p.sku.clone(), p.barcode.clone(), p.name.clone(), p.price)
        );
    }
    assert_eq!(
        store.find_product("4006381333931").unwrap().map(|p| p.sku),
        Some("WID-001".to_owned())
    );

    let stock = store.stock(&StockFilter::default()).unwrap();
    let stock: Vec<_> = stock
        .iter()
        .map(|s| {
            assert_eq!(s.synced_on_hand, d("0"));
            assert_eq!(s.allocated, d("0"));
            assert_eq!(s.on_hand, s.pending);
            assert_eq!(s.available, s.on_hand);
            (
                s.sku.as_str(),
                s.location_code.as_str(),
                s.uom,
                s.on_hand.to_string(),
            )
        })
        .collect();
    assert_eq!(
        stock,
        [
            ("ROPE-10", "BACK", Uom::M, "48.25".to_owned()),
            ("WID-001", "A-01", Uom::Each, "15".to_owned()),
            ("WID-001", "BACK", Uom::Each, "5".to_owned()),
        ]
    );

    let ledger = store
        .ledger(&LedgerFilter {
            product_id: None,
            limit: 100,
        })
        .unwrap();
    let legs: Vec<_> = ledger
        .iter()
        .rev()
        .map(|l| {
            (
                l.kind.as_str(),
                l.sku.as_str(),
                l.location_code.as_str(),
                l.on_hand_delta.to_string(),
            )
        })
        .collect();
    assert_eq!(
        legs,
        [
            ("receipt", "WID-001", "A-01", "24".to_owned()),
            ("receipt", "ROPE-10", "BACK", "50.5".to_owned()),
            ("shipment", "WID-001", "A-01", "-3".to_owned()),
            ("transfer", "WID-001", "A-01", "-6".to_owned()),
            ("transfer", "WID-001", "BACK", "6".to_owned()),
            ("adjustment", "WID-001", "BACK", "-1".to_owned()),
            ("count", "ROPE-10", "BACK", "-2.25".to_owned()),
        ]
    );
    assert_eq!(ledger[1].reason_code.as_deref(), Some("DAMAGE"));

    let outbox = store.outbox().unwrap();
    assert_eq!(outbox.len(), fixture_bodies.len());
    for (row, (seq, op_id, kind, body)) in outbox.iter().zip(&fixture_bodies) {
        assert_eq!(row.device_seq as i64, *seq);
        assert_eq!(&row.op_id, op_id);
        assert_eq!(&row.kind, kind);
        assert_eq!(row.state, "pending");
        assert_eq!(row.attempts, 0);
        assert_eq!(
            row.body,
            serde_json::from_str::<serde_json::Value>(body).unwrap()
        );
    }
    let kinds: Vec<_> = outbox.iter().map(|o| o.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "location_create",
            "location_create",
            "product_create",
            "product_create",
            "transaction",
            "transaction",
            "transaction",
            "transfer",
            "transaction",
            "transaction"
        ]
    );
    assert_eq!(outbox[4].body["quantity"]["value"], "24");
    assert_eq!(outbox[4].body["unit_cost"]["amount"], "4.1");
    assert_eq!(outbox[9].body["counted"]["value"], "48.25");
    assert_eq!(outbox[9].body["expected"]["value"], "50.5");

    assert_eq!(store.check().unwrap(), Vec::<String>::new());

    // (d) the upgraded store records on: the outbox continues at 11, and the table version 2
    // added (allocations) works.
    let widget_id: ProductId = WIDGET.parse().unwrap();
    let a01: LocationId = LOC_A01.parse().unwrap();
    let recorded = store
        .record_movement(&shipment(&widget_id, &a01, q("1", Uom::Each)))
        .unwrap();
    assert_eq!(recorded.device_seq, FIXTURE_OPS + 1);
    let allocation_id = AllocationId::new();
    let allocate = Movement {
        product_id: widget_id.clone(),
        kind: MovementKind::Allocation {
            allocation_id: allocation_id.clone(),
            location_id: a01.clone(),
            quantity: q("4", Uom::Each),
        },
    };
    assert_eq!(
        store.record_movement(&allocate).unwrap().device_seq,
        FIXTURE_OPS + 2
    );
    assert_eq!(store.allocation(&allocation_id).unwrap().status, "open");
    let level = store.stock_level(&widget_id, &a01).unwrap();
    assert_eq!(
        (level.on_hand, level.allocated, level.available),
        (d("14"), d("4"), d("10"))
    );
    let outbox = store.outbox().unwrap();
    let seqs: Vec<u64> = outbox.iter().map(|o| o.device_seq).collect();
    assert_eq!(seqs, (1..=FIXTURE_OPS + 2).collect::<Vec<_>>());
    // The clock carried on from the fixture's state, so hlc order is push order.
    let hlcs = outbox_hlcs(&path);
    assert!(hlcs.windows(2).all(|w| w[0] < w[1]), "{hlcs:?}");
    assert_eq!(store.check().unwrap(), Vec::<String>::new());
}

#[test]
fn every_older_version_upgrades_to_the_fresh_schema() {
    let fresh = fresh_schema();
    let dir = tempfile::tempdir().unwrap();
    for k in 0..SCHEMA_VERSION {
        let path = dir.path().join(format!("v{k}.db"));
        let mut conn = Connection::open(&path).unwrap();
        migrate_to(&mut conn, k).unwrap();
        assert_eq!(user_version(&conn), k);
        // Each migration adds something, so an old version really is different.
        assert_ne!(
            schema(&conn),
            fresh,
            "version {k} already has the full schema"
        );
        drop(conn);

        let store = open(&path);
        let conn = raw(&path);
        assert_eq!(user_version(&conn), SCHEMA_VERSION, "from version {k}");
        assert_eq!(schema(&conn), fresh, "upgraded from version {k}");
        // And it is a working store.
        store.init_device(&crate::new_device()).unwrap();
        assert_eq!(store.check().unwrap(), Vec::<String>::new());
    }
}

/// Append-only, numbered: `migrations/` holds exactly the registered files, in order, with the
/// SQL that is compiled in.
#[test]
fn migrations_are_numbered_and_every_file_is_registered() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".sql"))
        .collect();
    files.sort();
    let names: Vec<&str> = MIGRATIONS.iter().map(|m| m.name).collect();
    assert_eq!(files, names);
    assert_eq!(SCHEMA_VERSION, MIGRATIONS.len() as i64);
    for (i, m) in MIGRATIONS.iter().enumerate() {
        assert_eq!(m.version, i as i64 + 1, "{}", m.name);
        assert!(
            m.name.starts_with(&format!("{:03}_", m.version)),
            "{} is not numbered {:03}",
            m.name,
            m.version
        );
        assert_eq!(
            m.sql,
            std::fs::read_to_string(dir.join(m.name)).unwrap(),
            "{}",
            m.name
        );
    }
}

/// A file written by a newer program: some table, some data, a higher version.
fn newer_file(path: &Path) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(&format!(
        "CREATE TABLE from_the_future (id INTEGER PRIMARY KEY, note TEXT NOT NULL);
         INSERT INTO from_the_future (note) VALUES ('unsent op'), ('another');
         PRAGMA user_version = {};",
        SCHEMA_VERSION + 1
    ))
    .unwrap();
}

fn assert_too_new(result: Result<Store, StoreError>) {
    match result {
        Err(StoreError::SchemaTooNew { found, known }) => {
            assert_eq!(found, SCHEMA_VERSION + 1);
            assert_eq!(known, SCHEMA_VERSION);
        }
        Err(other) => panic!("expected SchemaTooNew, got {other:?}"),
        Ok(_) => panic!("expected SchemaTooNew, the store opened"),
    }
}

#[test]
fn a_newer_schema_is_refused_and_its_data_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("newer.db");
    newer_file(&path);
    let schema_before = schema(&raw(&path));

    assert_too_new(Store::open(&path, &StoreOptions::default()));
    // Asking again gives the same answer (nothing was half-done the first time).
    assert_too_new(Store::open(&path, &StoreOptions::default()));

    let conn = raw(&path);
    assert_eq!(user_version(&conn), SCHEMA_VERSION + 1);
    assert_eq!(schema(&conn), schema_before, "no table was created");
    let notes: Vec<String> = conn
        .prepare("SELECT note FROM from_the_future ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(notes, ["unsent op", "another"]);
}

/// Refusing a file from a newer program leaves it byte for byte as it was: the version is read
/// before anything (even the journal mode) is changed.
#[test]
fn a_newer_schema_is_refused_without_changing_a_byte() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("newer.db");
    newer_file(&path);
    let before = std::fs::read(&path).unwrap();

    assert_too_new(Store::open(&path, &StoreOptions::default()));

    let after = std::fs::read(&path).unwrap();
    assert_eq!(
        after.len(),
        before.len(),
        "the refused file changed its size"
    );
    let changed: Vec<usize> = (0..before.len())
        .filter(|&i| before[i] != after[i])
        .collect();
    assert!(
        changed.is_empty(),
        "the refused file changed at byte offsets {changed:?}; journal_mode is now {}",
        raw(&path)
            .query_row("PRAGMA journal_mode", [], |r| r.get::<_, String>(0))
            .unwrap()
    );
}

#[test]
fn reopening_keeps_the_data_and_runs_no_migration() {
    let node = Node::fresh();
    let loc = node.location("A-01");
    let product = node.product("SKU-1", Uom::Kg);
    node.store
        .record_movement(&crate::receipt(&product.id, &loc.id, q("2.5", Uom::Kg)))
        .unwrap();
    let (device, stock, outbox) = (node.device.clone(), node.stock(), node.outbox());
    let Node {
        dir, path, store, ..
    } = node;
    drop(store);

    let cookie = |path: &Path| {
        let conn = raw(path);
        (
            scalar(&conn, "PRAGMA schema_version"),
            user_version(&conn),
            schema(&conn),
        )
    };
    let before = cookie(&path);
    assert_eq!(before.1, SCHEMA_VERSION);
    for _ in 0..2 {
        let store = open(&path);
        assert_eq!(store.device().unwrap(), device);
        assert_eq!(store.stock(&StockFilter::default()).unwrap(), stock);
        assert_eq!(store.outbox().unwrap(), outbox);
        drop(store);
        // The schema cookie changes with any CREATE/ALTER/DROP: none ran.
        assert_eq!(cookie(&path), before);
    }

    // The device carries on where it stopped.
    let store = open(&path);
    let recorded = store
        .record_movement(&shipment(&product.id, &loc.id, q("0.5", Uom::Kg)))
        .unwrap();
    assert_eq!(recorded.device_seq, outbox.last().unwrap().device_seq + 1);
    assert_eq!(
        store.stock_level(&product.id, &loc.id).unwrap().on_hand,
        d("2")
    );
    drop(store);
    drop(dir);
}

#[test]
fn an_upgraded_fixture_reopens_without_migrating_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.db");
    load_fixture(&path);
    drop(open(&path));
    let cookie = scalar(&raw(&path), "PRAGMA schema_version");
    let store = open(&path);
    assert_eq!(scalar(&raw(&path), "PRAGMA schema_version"), cookie);
    assert_eq!(store.outbox().unwrap().len() as u64, FIXTURE_OPS);
    assert_eq!(store.device().unwrap().device_id.as_str(), DEVICE);
}

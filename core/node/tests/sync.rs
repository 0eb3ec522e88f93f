//! The sync engine against a real hub on a loopback port: two devices, offline work, rounds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use stocksync_hub::Hub;
use stocksync_hub::config::HubConfig;
use stocksync_hub::server;
use stocksync_model::{Decimal, Money, NewProduct, ProductPatch};
use stocksync_node::{DeviceRole, Movement, Resolution, StoreOptions, SyncNode};

#[path = "sync/catalog_disagreements.rs"]
mod catalog_disagreements;

struct World {
    hub: Hub,
    key: String,
    api_key: String,
    dir: tempfile::TempDir,
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let hub_dir = dir.path().join("hub");
    std::fs::create_dir_all(&hub_dir).unwrap();
    let (bootstrap, creds) = server::dev_bootstrap(&hub_dir);
    let mut config = HubConfig::new(&hub_dir);
    config.rate_limit = 0;
    let hub = Hub::start(config, &bootstrap, "127.0.0.1:0").await.unwrap();
    World {
        hub,
        key: creds.enrollment_key,
        api_key: creds.api_key,
        dir,
    }
}

impl World {
    async fn node(&self, name: &str, role: DeviceRole) -> SyncNode {
        let node = SyncNode::open(
            self.dir.path().join(format!("{name}.db")),
            &StoreOptions::default(),
        )
        .unwrap();
        node.enroll(&self.hub.base_url(), &self.key, role, name)
            .await
            .unwrap();
        node
    }
}

fn d(n: i64) -> Decimal {
    Decimal::from_int(n).unwrap()
}

fn eur(amount: Decimal) -> Money {
    Money {
        amount,
        currency: "EUR".parse().unwrap(),
    }
}

fn on_hand(node: &SyncNode, sku: &str) -> Decimal {
    node.stock(Some(sku), Some("A-01")).unwrap()[0].on_hand
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_devices_converge_and_the_rule_rejects_one_shipment() {
    let w = world().await;
    let a = w.node("handheld", DeviceRole::Handheld).await;
    let b = w.node("tablet", DeviceRole::Tablet).await;
    a.add_location("A-01", "Aisle 1").unwrap();
    a.add_product(&NewProduct {
        barcode: Some("4006381333931".into()),
        category: Some("hardware".into()),
        price: Some(eur(d(10))),
        ..NewProduct::new("WID-1", "Widget")
    })
    .unwrap();
    a.record(&Movement::Receive {
        product: "WID-1".into(),
        location: "A-01".into(),
        quantity: d(10),
        uom: None,
        unit_cost: None,
        reference: None,
    })
    .unwrap();
    let r = a.sync_now().await.unwrap();
    assert_eq!(r.applied, 3, "{r:?}");
    assert_eq!(r.checksum_ok, Some(true), "{r:?}");
    let r = b.sync_now().await.unwrap();
    assert_eq!(r.checksum_ok, Some(true), "{r:?}");
    assert_eq!(on_hand(&b, "WID-1"), d(10));

    // Both ship offline: 8 from the handheld, 4 from the tablet. Only 10 exist.
    let ship = |q| Movement::Ship {
        product: "4006381333931".into(),
        location: "A-01".into(),
        quantity: d(q),
        uom: None,
        reference: None,
    };
    a.record(&ship(8)).unwrap();
    b.record(&ship(4)).unwrap();
    // Same price, two values; different fields too.
    a.edit_product(
        "WID-1",
        &ProductPatch {
            price: Some(Some(eur(d(12)))),
            name: Some("Widget, blue".into()),
            ..ProductPatch::default()
        },
    )
    .unwrap();
    b.edit_product(
        "WID-1",
        &ProductPatch {
            price: Some(Some(eur(d(11)))),
            category: Some(Some("tools".into())),
            ..ProductPatch::default()
        },
    )
    .unwrap();

    let ra = a.sync_now().await.unwrap();
    assert_eq!(ra.applied, 2, "{ra:?}");
    let rb = b.sync_now().await.unwrap();
    assert_eq!(rb.rejected, 1, "{rb:?}");
    let rejected = rb.outcomes.iter().find(|o| o.rule.is_some()).unwrap();
    assert_eq!(rejected.rule.as_deref(), Some("no_negative_inventory"));
    assert_eq!(on_hand(&b, "WID-1"), d(2));
    let ra = a.sync_now().await.unwrap();
    assert_eq!(ra.checksum_ok, Some(true));
    assert_eq!(on_hand(&a, "WID-1"), d(2));

    let pa = a.find_product("WID-1").unwrap();
    let pb = b.find_product("WID-1").unwrap();
    assert_eq!(pa, pb);
    assert_eq!(pa.name, "Widget, blue");
    assert_eq!(pa.category.as_deref(), Some("tools"));

    // The price clash waits in the manual queue, on both devices.
    let open = a.conflicts(false).unwrap();
    assert!(
        open.iter().any(|c| c.field.as_deref() == Some("price")),
        "{open:?}"
    );
    let price = open
        .iter()
        .find(|c| c.field.as_deref() == Some("price"))
        .unwrap();
    b.resolve_conflict(&price.id, Resolution::UseValue, Some("11.50 EUR".into()))
        .unwrap();
    b.sync_now().await.unwrap();
    a.sync_now().await.unwrap();
    assert!(
        a.conflicts(false)
            .unwrap()
            .iter()
            .all(|c| c.field.as_deref() != Some("price"))
    );
    assert_eq!(
        a.find_product("WID-1").unwrap().price,
        Some(eur("11.50".parse().unwrap()))
    );
    assert!(a.check().unwrap().is_empty(), "{:?}", a.check());
    assert!(b.check().unwrap().is_empty(), "{:?}", b.check());
}

fn delta_token(db: &std::path::Path) -> Option<String> {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row("SELECT delta_token FROM sync_state", [], |r| r.get(0))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_position_the_hub_refuses_starts_a_fresh_snapshot() {
    let w = world().await;
    let a = w.node("handheld", DeviceRole::Handheld).await;
    a.add_location("A-01", "Aisle 1").unwrap();
    a.sync_now().await.unwrap();
    // A token this hub did not sign (as after it lost its secret): another hub's.
    let other = world().await;
    let b = other.node("elsewhere", DeviceRole::Tablet).await;
    b.sync_now().await.unwrap();
    let foreign = delta_token(&other.dir.path().join("elsewhere.db")).unwrap();
    let db = w.dir.path().join("handheld.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute("UPDATE sync_state SET delta_token = ?1", [&foreign])
        .unwrap();

    a.add_product(&NewProduct::new("WID-1", "Widget")).unwrap();
    let report = a.sync_now().await.unwrap();
    assert_eq!(report.applied, 1, "the unsent op went out: {report:?}");
    assert_eq!(report.checksum_ok, Some(true), "{report:?}");
    assert!(report.pulled >= 2, "a snapshot: {report:?}");
    assert_ne!(delta_token(&db).as_deref(), Some(foreign.as_str()));
    assert!(a.status().unwrap().last_error.is_none());
    assert_eq!(a.find_product("WID-1").unwrap().sku, "WID-1");
}

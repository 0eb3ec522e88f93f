//! Catalog disagreements between devices and the hub: the same product or location created on
//! several devices offline, a product deleted while goods were recorded on it. A movement of
//! real goods is never lost because of one: creates that collide on the SKU (or location code)
//! become one entity at the hub and on every device, and the goods recorded against each
//! device's copy all count.

use super::*;
use serde_json::Value;
use std::collections::BTreeMap;
use stocksync_node::OpStatus;

impl World {
    /// `GET` on the hub's REST API with the dev API key; the envelope's `data`.
    async fn get(&self, path: &str) -> Value {
        let r = reqwest::Client::new()
            .get(format!(
                "{}{}",
                self.hub.base_url().trim_end_matches('/'),
                path
            ))
            .header("X-API-Key", &self.api_key)
            .header("X-Organization-ID", "org_demo")
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json::<Value>().await.unwrap()["data"].clone()
    }

    /// The hub's live products: SKU → (id, barcode).
    async fn hub_products(&self) -> BTreeMap<String, (String, Option<String>)> {
        let data = self.get("/v1/products?limit=100").await;
        data.as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["sku"].as_str().unwrap().to_owned(),
                    (
                        p["id"].as_str().unwrap().to_owned(),
                        p["barcode"].as_str().map(str::to_owned),
                    ),
                )
            })
            .collect()
    }

    /// The hub's locations: code → id.
    async fn hub_locations(&self) -> BTreeMap<String, String> {
        let data = self.get("/v1/inventory/locations?limit=100").await;
        data.as_array()
            .unwrap()
            .iter()
            .map(|l| {
                (
                    l["code"].as_str().unwrap().to_owned(),
                    l["id"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    /// The hub's on hand per (SKU, location code).
    async fn hub_stock(&self) -> BTreeMap<(String, String), Decimal> {
        let codes: BTreeMap<String, String> = self
            .hub_locations()
            .await
            .into_iter()
            .map(|(code, id)| (id, code))
            .collect();
        let mut out = BTreeMap::new();
        for (sku, (id, _)) in self.hub_products().await {
            let data = self.get(&format!("/v1/products/{id}/inventory")).await;
            for level in data.as_array().unwrap() {
                let location = level["location_id"].as_str().unwrap();
                let qty: Decimal = level["on_hand"].as_str().unwrap().parse().unwrap();
                if qty != Decimal::ZERO {
                    out.insert((sku.clone(), codes[location].clone()), qty);
                }
            }
        }
        out
    }
}

/// A device's on hand per (SKU, location code), zero rows left out.
fn device_stock(node: &SyncNode) -> BTreeMap<(String, String), Decimal> {
    node.stock(None, None)
        .unwrap()
        .into_iter()
        .filter(|r| r.on_hand != Decimal::ZERO)
        .map(|r| ((r.sku, r.location_code), r.on_hand))
        .collect()
}

/// Every product and location row in the device's file, hidden ones too: `(table, id, key)`.
fn raw_rows(w: &World, name: &str) -> Vec<(String, String, String)> {
    let conn = rusqlite::Connection::open(w.dir.path().join(format!("{name}.db"))).unwrap();
    let mut out = Vec::new();
    for (table, key) in [("products", "sku"), ("locations", "code")] {
        let mut st = conn
            .prepare(&format!("SELECT id, {key} FROM {table}"))
            .unwrap();
        let rows = st
            .query_map([], |r| Ok((table.to_owned(), r.get(0)?, r.get(1)?)))
            .unwrap();
        out.extend(rows.map(Result::unwrap));
    }
    out
}

fn receive(sku: &str, location: &str, qty: i64) -> Movement {
    Movement::Receive {
        product: sku.into(),
        location: location.into(),
        quantity: d(qty),
        uom: None,
        unit_cost: None,
        reference: None,
    }
}

/// Each device, offline, adds location X-01 and product DUP-1 and receives 3 units.
async fn same_sku_on(devices: usize) {
    let w = world().await;
    let mut nodes = Vec::new();
    for i in 0..devices {
        let n = w.node(&format!("dev{i}"), DeviceRole::Handheld).await;
        n.sync_now().await.unwrap();
        nodes.push(n);
    }
    for (i, n) in nodes.iter().enumerate() {
        n.add_location("X-01", &format!("Bay X, as device {i} named it"))
            .unwrap();
        n.add_product(&NewProduct {
            price: Some(eur(d(10 + i64::try_from(i).unwrap()))),
            ..NewProduct::new("DUP-1", "Duplicate")
        })
        .unwrap();
        n.record(&receive("DUP-1", "X-01", 3)).unwrap();
    }
    let first = nodes[0].sync_now().await.unwrap();
    assert_eq!(first.applied, 3, "{first:?}");
    let canonical = nodes[0].find_product("DUP-1").unwrap().id;
    let location = nodes[0].location("X-01").unwrap().id;
    for n in &nodes[1..] {
        let r = n.sync_now().await.unwrap();
        assert_eq!(r.rejected, 0, "nothing refused: {r:?}");
        let product = r
            .outcomes
            .iter()
            .find(|o| o.kind == "product_create")
            .unwrap();
        assert_eq!(product.canonical_id.as_deref(), Some(canonical.as_str()));
        // A different price is a clash for a person, like any concurrent price edit.
        assert_eq!(product.status, OpStatus::Conflict, "{product:?}");
        let loc = r
            .outcomes
            .iter()
            .find(|o| o.kind == "location_create")
            .unwrap();
        assert_eq!(loc.canonical_id.as_deref(), Some(location.as_str()));
        let receipt = r.outcomes.iter().find(|o| o.kind == "transaction").unwrap();
        assert_eq!(receipt.status, OpStatus::Applied, "{receipt:?}");
    }
    for n in &nodes {
        n.sync_now().await.unwrap();
    }

    let total = d(3 * i64::try_from(devices).unwrap());
    let key = ("DUP-1".to_owned(), "X-01".to_owned());
    let hub_stock = w.hub_stock().await;
    assert_eq!(hub_stock, BTreeMap::from([(key.clone(), total)]));
    assert_eq!(w.hub_products().await.len(), 1);
    assert_eq!(w.hub_locations().await.len(), 1);
    for (i, n) in nodes.iter().enumerate() {
        assert_eq!(device_stock(n), hub_stock, "device {i}");
        assert_eq!(n.find_product("DUP-1").unwrap().id, canonical, "device {i}");
        assert_eq!(
            raw_rows(&w, &format!("dev{i}")),
            vec![
                ("products".into(), canonical.to_string(), "DUP-1".into()),
                ("locations".into(), location.to_string(), "X-01".into()),
            ],
            "device {i}: one row each, nothing left behind"
        );
        assert!(n.check().unwrap().is_empty(), "{:?}", n.check());
        let prices: Vec<_> = n
            .conflicts(false)
            .unwrap()
            .into_iter()
            .filter(|c| c.field.as_deref() == Some("price"))
            .collect();
        assert!(!prices.is_empty(), "device {i}: the price clash is open");
        assert_eq!(n.status().unwrap().pending, 0);
    }
    let pa = nodes[0].find_product("DUP-1").unwrap();
    // Until a person chooses, the product shows the price it had at the hub first.
    assert_eq!(pa.price, Some(eur(d(10))));
    for n in &nodes[1..] {
        assert_eq!(n.find_product("DUP-1").unwrap(), pa);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_devices_create_the_same_sku_and_location_offline() {
    same_sku_on(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_devices_create_the_same_sku_and_location_offline() {
    same_sku_on(3).await;
}

/// Later ops that name the device's own id, pushed after the merge (another round), still apply;
/// an edit made offline on the device's copy reaches the one product.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_after_the_merge_still_name_the_same_goods() {
    let w = world().await;
    let a = w.node("a", DeviceRole::Handheld).await;
    let b = w.node("b", DeviceRole::Tablet).await;
    for n in [&a, &b] {
        n.add_location("X-01", "Bay X").unwrap();
        n.add_product(&NewProduct::new("DUP-2", "Duplicate"))
            .unwrap();
        n.record(&receive("DUP-2", "X-01", 5)).unwrap();
    }
    a.sync_now().await.unwrap();
    // b's create goes out alone; its receipt and an edit wait for a later push.
    b.add_location("X-02", "Bay X, upper").unwrap();
    b.edit_product(
        "DUP-2",
        &ProductPatch {
            category: Some(Some("spares".into())),
            ..ProductPatch::default()
        },
    )
    .unwrap();
    b.record(&Movement::Transfer {
        product: "DUP-2".into(),
        from: "X-01".into(),
        to: "X-02".into(),
        quantity: d(2),
        uom: None,
    })
    .unwrap();
    let r = b.sync_now().await.unwrap();
    assert_eq!(r.rejected, 0, "{r:?}");
    a.sync_now().await.unwrap();
    b.sync_now().await.unwrap();
    let hub = w.hub_stock().await;
    assert_eq!(
        hub,
        BTreeMap::from([
            (("DUP-2".into(), "X-01".into()), d(8)),
            (("DUP-2".into(), "X-02".into()), d(2)),
        ])
    );
    assert_eq!(device_stock(&a), hub);
    assert_eq!(device_stock(&b), hub);
    assert_eq!(
        a.find_product("DUP-2").unwrap().category.as_deref(),
        Some("spares")
    );
    assert_eq!(
        a.find_product("DUP-2").unwrap(),
        b.find_product("DUP-2").unwrap()
    );
}

/// A barcode another SKU already holds is a real clash: the product is made without it, its
/// goods count, and a person settles the barcode from the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_barcode_held_by_another_sku_goes_to_the_queue() {
    let w = world().await;
    let a = w.node("a", DeviceRole::Handheld).await;
    let b = w.node("b", DeviceRole::Tablet).await;
    a.add_location("A-01", "Aisle 1").unwrap();
    a.add_product(&NewProduct {
        barcode: Some("4006381333931".into()),
        ..NewProduct::new("LAMP-1", "Head lamp")
    })
    .unwrap();
    a.sync_now().await.unwrap();
    // b has not pulled: it gives the same barcode to another SKU and receives goods on it.
    b.add_location("B-01", "Back room").unwrap();
    b.add_product(&NewProduct {
        barcode: Some("4006381333931".into()),
        ..NewProduct::new("LAMP-2", "Head lamp, red")
    })
    .unwrap();
    b.record(&receive("LAMP-2", "B-01", 2)).unwrap();
    let r = b.sync_now().await.unwrap();
    assert_eq!(r.rejected, 0, "{r:?}");
    let create = r
        .outcomes
        .iter()
        .find(|o| o.kind == "product_create")
        .unwrap();
    assert_eq!(create.status, OpStatus::Conflict, "{create:?}");
    assert_eq!(create.canonical_id, None);
    a.sync_now().await.unwrap();

    let products = w.hub_products().await;
    assert_eq!(products["LAMP-1"].1.as_deref(), Some("4006381333931"));
    assert_eq!(products["LAMP-2"].1, None);
    assert_eq!(
        w.hub_stock().await,
        BTreeMap::from([(("LAMP-2".into(), "B-01".into()), d(2))])
    );
    for n in [&a, &b] {
        assert_eq!(n.find_product("4006381333931").unwrap().sku, "LAMP-1");
        assert_eq!(n.find_product("LAMP-2").unwrap().barcode, None);
        let clash = n
            .conflicts(false)
            .unwrap()
            .into_iter()
            .find(|c| c.field.as_deref() == Some("barcode"))
            .expect("the barcode clash is open");
        let message = clash.message.unwrap();
        assert!(message.contains("LAMP-1"), "{message}");
        assert!(n.check().unwrap().is_empty());
    }
}

/// The one disagreement that still stops goods: the same SKU created in another unit. The
/// product keeps its unit, the unit clash is queued, and the movement in the other unit waits in
/// the queue as a rejection with its quantity (quantities in two units cannot be added).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_sku_in_another_unit_keeps_the_first_unit() {
    let w = world().await;
    let a = w.node("a", DeviceRole::Handheld).await;
    let b = w.node("b", DeviceRole::Tablet).await;
    for n in [&a, &b] {
        n.add_location("X-01", "Bay X").unwrap();
    }
    a.add_product(&NewProduct::new("ROPE", "Rope")).unwrap();
    a.record(&receive("ROPE", "X-01", 3)).unwrap();
    b.add_product(&NewProduct {
        uom: "M".parse().unwrap(),
        ..NewProduct::new("ROPE", "Rope")
    })
    .unwrap();
    b.record(&Movement::Receive {
        product: "ROPE".into(),
        location: "X-01".into(),
        quantity: "12.5".parse().unwrap(),
        uom: None,
        unit_cost: None,
        reference: None,
    })
    .unwrap();
    a.sync_now().await.unwrap();
    let r = b.sync_now().await.unwrap();
    let receipt = r.outcomes.iter().find(|o| o.kind == "transaction").unwrap();
    assert_eq!(
        receipt.rule.as_deref(),
        Some("uom_must_match"),
        "{receipt:?}"
    );
    a.sync_now().await.unwrap();
    for n in [&a, &b] {
        assert_eq!(n.find_product("ROPE").unwrap().uom.as_str(), "EACH");
        let open = n.conflicts(false).unwrap();
        assert!(
            open.iter().any(|c| c.field.as_deref() == Some("uom")),
            "{open:?}"
        );
        assert!(
            open.iter()
                .any(|c| c.rule.as_deref() == Some("uom_must_match"))
        );
        assert_eq!(
            device_stock(n),
            BTreeMap::from([(("ROPE".into(), "X-01".into()), d(3))])
        );
    }
}

impl World {
    /// `DELETE` on the hub's REST API with the dev API key.
    async fn delete(&self, path: &str) {
        let r = reqwest::Client::new()
            .delete(format!(
                "{}{}",
                self.hub.base_url().trim_end_matches('/'),
                path
            ))
            .header("X-API-Key", &self.api_key)
            .header("X-Organization-ID", "org_demo")
            .header("Idempotency-Key", path)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
    }
}

/// Goods recorded offline on a product the back office deleted meanwhile still count: the
/// product comes back, and the queue says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goods_on_a_product_deleted_meanwhile_bring_it_back() {
    let w = world().await;
    let a = w.node("a", DeviceRole::Desktop).await;
    let b = w.node("b", DeviceRole::Handheld).await;
    a.add_location("A-01", "Aisle 1").unwrap();
    a.add_product(&NewProduct::new("OLD-1", "Old stock"))
        .unwrap();
    a.record(&receive("OLD-1", "A-01", 10)).unwrap();
    a.sync_now().await.unwrap();
    b.sync_now().await.unwrap();
    let id = b.find_product("OLD-1").unwrap().id;
    b.record(&receive("OLD-1", "A-01", 4)).unwrap();
    w.delete(&format!("/v1/products/{id}")).await;
    a.sync_now().await.unwrap();
    assert!(a.find_product("OLD-1").is_err(), "deleted on a");

    let r = b.sync_now().await.unwrap();
    assert_eq!(r.rejected, 0, "{r:?}");
    a.sync_now().await.unwrap();
    let hub = w.hub_stock().await;
    assert_eq!(
        hub,
        BTreeMap::from([(("OLD-1".into(), "A-01".into()), d(14))])
    );
    for n in [&a, &b] {
        assert_eq!(device_stock(n), hub);
        let notice = n
            .conflicts(false)
            .unwrap()
            .into_iter()
            .find(|c| c.rule.as_deref() == Some("deleted_product_moved"))
            .expect("the queue says why the product is back");
        assert!(notice.message.unwrap().contains("OLD-1"));
    }
}

/// A small deterministic generator (xorshift), so a failing case can be replayed by its seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Random offline creates whose SKUs and codes collide across devices, receipts and transfers
/// on them, and syncs in random order: the goods the hub holds always equal the goods the
/// devices received, and every device ends with the hub's catalog and stock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_colliding_creates_never_lose_goods() {
    let cases: u64 = std::env::var("PROP_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(6);
    let mut merges = 0;
    for case in 0..cases {
        let seed = 0x9E37_79B9_7F4A_7C15 ^ (case + 1).wrapping_mul(0x2545_F491_4F6C_DD1D);
        merges += colliding_world(seed).await;
    }
    assert!(
        merges > 0,
        "no case made colliding creates: the test proves nothing"
    );
}

/// Returns how many creates the hub merged into an existing entity.
async fn colliding_world(seed: u64) -> usize {
    const SKUS: [&str; 3] = ["S-1", "S-2", "S-3"];
    const CODES: [&str; 2] = ["L-1", "L-2"];
    let mut rng = Rng(seed);
    let w = world().await;
    let mut nodes = Vec::new();
    for i in 0..3 {
        nodes.push(w.node(&format!("n{i}"), DeviceRole::Handheld).await);
    }
    let mut received = Decimal::ZERO;
    let mut merges = 0;
    for _ in 0..40 {
        let n = &nodes[usize::try_from(rng.below(3)).unwrap()];
        let sku = SKUS[usize::try_from(rng.below(3)).unwrap()];
        let code = CODES[usize::try_from(rng.below(2)).unwrap()];
        match rng.below(10) {
            0 => {
                let _ = n.add_product(&NewProduct::new(sku, "Thing"));
            }
            1 => {
                let _ = n.add_location(code, "Place");
            }
            2 => {
                let r = n.sync_now().await.unwrap();
                merges += r
                    .outcomes
                    .iter()
                    .filter(|o| o.canonical_id.is_some())
                    .count();
            }
            3..=6 => {
                let qty = i64::try_from(rng.below(5) + 1).unwrap();
                if n.record(&receive(sku, code, qty)).is_ok() {
                    received = received.checked_add(d(qty)).unwrap();
                }
            }
            _ => {
                let to = CODES[usize::try_from(rng.below(2)).unwrap()];
                let _ = n.record(&Movement::Transfer {
                    product: sku.into(),
                    from: code.into(),
                    to: to.into(),
                    quantity: d(1),
                    uom: None,
                });
            }
        }
    }
    for _ in 0..2 {
        for n in &nodes {
            let r = n.sync_now().await.unwrap();
            merges += r
                .outcomes
                .iter()
                .filter(|o| o.canonical_id.is_some())
                .count();
            let lost: Vec<_> = r
                .outcomes
                .iter()
                .filter(|o| o.status == OpStatus::Rejected && o.kind != "transfer")
                .collect();
            assert!(lost.is_empty(), "seed {seed:#x}: {lost:?}");
        }
    }
    let hub = w.hub_stock().await;
    let at_hub = hub
        .values()
        .fold(Decimal::ZERO, |a, b| a.checked_add(*b).unwrap());
    assert_eq!(at_hub, received, "seed {seed:#x}: {hub:?}");
    let skus = w.hub_products().await;
    let codes = w.hub_locations().await;
    for (i, n) in nodes.iter().enumerate() {
        assert_eq!(device_stock(n), hub, "seed {seed:#x}, device {i}");
        let mine: Vec<String> = n.products().unwrap().into_iter().map(|p| p.sku).collect();
        assert_eq!(
            mine,
            skus.keys().cloned().collect::<Vec<_>>(),
            "seed {seed:#x}"
        );
        let rows = raw_rows(&w, &format!("n{i}"));
        assert_eq!(
            rows.len(),
            skus.len() + codes.len(),
            "seed {seed:#x}: {rows:?}"
        );
        assert!(
            n.check().unwrap().is_empty(),
            "seed {seed:#x}: {:?}",
            n.check()
        );
    }
    merges
}

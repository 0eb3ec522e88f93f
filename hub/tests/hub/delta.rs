//! `GET /v1/inventory/delta`: snapshots, deltas, signed tokens, checksums, retention, gzip.

use crate::common::*;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;
use stocksync_model::product_doc::{ProductDoc, ProductFields};
use stocksync_model::{Decimal, DeviceId, NewProduct, ProductPatch};
use stocksync_protocol::checksum::{StateDigest, product_line, stock_line};

/// Pulls until `has_more` is false; returns the items by (entity, id) and the last meta.
pub(crate) async fn pull_all(
    client: &Client,
    token: Option<&str>,
    limit: u64,
) -> (BTreeMap<(String, String), (String, Value)>, Value, usize) {
    let mut items = BTreeMap::new();
    let mut token = token.map(str::to_owned);
    let mut pages = 0;
    loop {
        let path = match &token {
            Some(t) => format!("/v1/inventory/delta?limit={limit}&since_token={t}"),
            None => format!("/v1/inventory/delta?limit={limit}"),
        };
        let r = client.get(&path).await;
        assert_eq!(r.status, 200, "{}", r.text);
        pages += 1;
        assert_eq!(
            r.header("x-next-sync-token"),
            r.body["meta"]["next_sync_token"].as_str()
        );
        for bucket in ["created", "updated", "deleted"] {
            for item in r.data()[bucket].as_array().unwrap() {
                let key = (
                    item["entity"].as_str().unwrap().to_owned(),
                    item["id"].as_str().unwrap().to_owned(),
                );
                items.insert(key, (bucket.to_owned(), item.clone()));
            }
        }
        let meta = r.body["meta"].clone();
        token = Some(meta["next_sync_token"].as_str().unwrap().to_owned());
        if meta["has_more"] == false {
            assert!(
                meta["checksum"].is_string(),
                "the last page carries the checksum"
            );
            return (items, meta, pages);
        }
        assert!(
            meta["checksum"].is_null(),
            "only the last page carries the checksum"
        );
    }
}

/// What a node would compute from the state it holds.
pub(crate) fn digest_of(state: &BTreeMap<(String, String), (String, Value)>) -> String {
    let mut d = StateDigest::default();
    for ((entity, id), (bucket, item)) in state {
        if bucket == "deleted" {
            continue;
        }
        match entity.as_str() {
            "product" => d.add(&product_line(id, item["version"].as_u64().unwrap())),
            "stock_level" => {
                let dec = |k: &str| item[k].as_str().unwrap().parse::<Decimal>().unwrap();
                d.add(&stock_line(
                    item["product_id"].as_str().unwrap(),
                    item["location_id"].as_str().unwrap(),
                    dec("on_hand"),
                    dec("allocated"),
                ));
            }
            _ => {}
        }
    }
    d.to_hex()
}

#[tokio::test]
async fn snapshot_then_deltas_with_a_checksum_the_client_can_recompute() {
    let hub = TestHub::start().await;
    let api = hub.api();
    let seed = hub.seed().await;
    for i in 0..4 {
        api.post(
            "/v1/products",
            json!({ "sku": format!("D-{i}"), "name": "Thing" }),
        )
        .await;
    }
    hub.receive(&seed.product, &seed.a, "7").await;
    hub.receive(&seed.product, &seed.b, "2").await;

    let (mut state, meta, pages) = pull_all(&api, None, 2).await;
    assert!(
        pages >= 4,
        "a snapshot of 11 items in pages of 2: {pages} pages"
    );
    assert!(state.values().all(|(bucket, _)| bucket == "created"));
    assert!(
        !state.keys().any(|(e, _)| e == "transaction"),
        "a snapshot holds state, not history"
    );
    assert_eq!(state.keys().filter(|(e, _)| e == "product").count(), 5);
    assert_eq!(state.keys().filter(|(e, _)| e == "stock_level").count(), 2);
    assert_eq!(meta["checksum"].as_str().unwrap(), digest_of(&state));

    // Changes after the snapshot come as a delta.
    let token = meta["next_sync_token"].as_str().unwrap().to_owned();
    hub.receive(&seed.product, &seed.a, "1").await;
    let p = api.get("/v1/products?filters[sku]=D-0").await;
    let gone = p.data()[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        api.delete(&format!("/v1/products/{gone}"), None)
            .await
            .status,
        200
    );
    let (delta, meta2, _) = pull_all(&api, Some(&token), 100).await;
    let level = &delta[&(
        "stock_level".to_owned(),
        format!("{}@{}", seed.product, seed.a),
    )];
    assert_eq!(level.0, "updated");
    assert_eq!(level.1["on_hand"], "8");
    assert_eq!(delta[&("product".to_owned(), gone.clone())].0, "deleted");
    assert_eq!(delta.keys().filter(|(e, _)| e == "transaction").count(), 1);
    for (k, v) in delta {
        state.insert(k, v);
    }
    assert_eq!(meta2["checksum"].as_str().unwrap(), digest_of(&state));

    // Nothing new: an empty page with the same checksum.
    let token2 = meta2["next_sync_token"].as_str().unwrap();
    let r = api
        .get(&format!("/v1/inventory/delta?since_token={token2}"))
        .await;
    assert_eq!(r.body["meta"]["changes_count"], 0);
    assert_eq!(r.body["meta"]["checksum"], meta2["checksum"]);
    // The header works like the query parameter.
    let r = api
        .with("X-Sync-Token", token2)
        .get("/v1/inventory/delta")
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["meta"]["changes_count"], 0);
}

#[tokio::test]
async fn changes_during_a_snapshot_arrive_in_the_following_deltas() {
    let hub = TestHub::start().await;
    let api = hub.api();
    let seed = hub.seed().await;
    for i in 0..6 {
        api.post(
            "/v1/products",
            json!({ "sku": format!("S-{i}"), "name": "Thing" }),
        )
        .await;
    }
    let first = api.get("/v1/inventory/delta?limit=2").await;
    let token = first.body["meta"]["next_sync_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // Mid-snapshot: a new product and a stock change.
    api.post("/v1/products", json!({ "sku": "LATE", "name": "Late" }))
        .await;
    hub.receive(&seed.product, &seed.a, "3").await;
    let (rest, meta, _) = pull_all(&api, Some(&token), 2).await;
    let mut all: BTreeMap<_, _> = BTreeMap::new();
    for bucket in ["created", "updated"] {
        for item in first.data()[bucket].as_array().unwrap() {
            all.insert(
                (
                    item["entity"].as_str().unwrap().to_owned(),
                    item["id"].as_str().unwrap().to_owned(),
                ),
                (bucket.to_owned(), item.clone()),
            );
        }
    }
    all.extend(rest);
    assert!(all.values().any(|(_, i)| i["sku"] == "LATE"));
    assert!(all.contains_key(&(
        "stock_level".to_owned(),
        format!("{}@{}", seed.product, seed.a)
    )));
    assert_eq!(meta["checksum"].as_str().unwrap(), digest_of(&all));
}

#[tokio::test]
async fn tampered_truncated_and_foreign_tokens_are_refused() {
    let hub = TestHub::start().await;
    let api = hub.api();
    hub.seed().await;
    let r = api.get("/v1/inventory/delta").await;
    let token = r.body["meta"]["next_sync_token"]
        .as_str()
        .unwrap()
        .to_owned();

    let mut bytes = token.clone().into_bytes();
    bytes[3] = if bytes[3] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(bytes).unwrap();
    let truncated = &token[..token.len() - 5];
    for bad in [tampered.as_str(), truncated, "garbage", "a.b", "...."] {
        let r = api
            .get(&format!("/v1/inventory/delta?since_token={bad}"))
            .await;
        assert_eq!(r.status, 400, "{bad}");
        assert_eq!(r.code(), "INVALID_SYNC_TOKEN");
    }
    // Another organization's token is refused even though the hub signed it.
    let other = hub.other_api().get("/v1/inventory/delta").await;
    let foreign = other.body["meta"]["next_sync_token"].as_str().unwrap();
    let r = api
        .get(&format!("/v1/inventory/delta?since_token={foreign}"))
        .await;
    assert_eq!(r.code(), "INVALID_SYNC_TOKEN");
    // Query and header must agree when both are given.
    let r = api
        .with("X-Sync-Token", "other")
        .get(&format!("/v1/inventory/delta?since_token={token}"))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(api.get("/v1/inventory/delta?limit=0").await.status, 400);
    let r = api.get("/v1/inventory/delta?limit=1001").await;
    assert_eq!(r.status, 400);
    assert!(r.body["error"]["details"]["limit"].is_array(), "{}", r.text);
    assert_eq!(api.get("/v1/inventory/delta?limit=1000").await.status, 200);
}

#[tokio::test]
async fn a_token_past_retention_asks_for_a_full_sync() {
    let hub = TestHub::start_with(|c| {
        c.rate_limit = 0;
        c.retention = Duration::from_secs(1);
    })
    .await;
    let api = hub.api();
    hub.seed().await;
    let (_, meta, _) = pull_all(&api, None, 100).await;
    let token = meta["next_sync_token"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = api
        .get(&format!("/v1/inventory/delta?since_token={token}"))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["meta"]["full_sync_required"], true);
    // The token it gives starts a new snapshot.
    let fresh = r.body["meta"]["next_sync_token"].as_str().unwrap();
    let r = api
        .get(&format!("/v1/inventory/delta?since_token={fresh}"))
        .await;
    assert_eq!(r.body["meta"]["full_sync_required"], false);
    assert!(r.data()["created"].as_array().unwrap().len() >= 3);
}

#[tokio::test]
async fn a_branch_scoped_caller_sees_only_its_branch() {
    let hub = TestHub::start().await;
    let seed = hub.seed().await;
    hub.receive(&seed.product, &seed.a, "4").await;
    let north = hub
        .anonymous()
        .with("X-API-Key", NORTH_KEY)
        .with("X-Organization-ID", &hub.creds.organization_id);
    let (items, _, _) = pull_all(&north, None, 100).await;
    assert!(
        items.keys().any(|(e, _)| e == "product"),
        "products are organization-wide"
    );
    assert!(
        !items
            .keys()
            .any(|(e, _)| e == "stock_level" || e == "location"),
        "{items:?}"
    );
    // A token issued for one scope is no good for another.
    let r = north.get("/v1/inventory/delta").await;
    let token = r.body["meta"]["next_sync_token"].as_str().unwrap();
    let r = hub
        .api()
        .get(&format!("/v1/inventory/delta?since_token={token}"))
        .await;
    assert_eq!(r.code(), "INVALID_SYNC_TOKEN");
}

#[tokio::test]
async fn delta_pages_are_gzipped_when_asked() {
    let hub = TestHub::start().await;
    let api = hub.api();
    for i in 0..30 {
        api.post(
            "/v1/products",
            json!({ "sku": format!("Z-{i}"), "name": "Compressible thing" }),
        )
        .await;
    }
    let raw = reqwest::Client::builder().no_gzip().build().unwrap();
    let r = raw
        .get(format!("{}/v1/inventory/delta", hub.base))
        .header("X-API-Key", &hub.creds.api_key)
        .header("X-Organization-ID", &hub.creds.organization_id)
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-encoding"], "gzip");
    let bytes = r.bytes().await.unwrap();
    assert_eq!(&bytes[..2], &[0x1f, 0x8b], "a gzip stream");
}

#[tokio::test]
async fn tombstones_older_than_the_retention_are_purged() {
    let hub = TestHub::start_with(|c| {
        c.rate_limit = 0;
        c.retention = Duration::from_millis(1500);
        c.housekeeping_every = Duration::from_millis(200);
    })
    .await;
    let api = hub.api();
    let r = api
        .post(
            "/v1/products",
            json!({ "sku": "GONE", "name": "Soon gone" }),
        )
        .await;
    let id = r.data()["id"].as_str().unwrap().to_owned();
    assert_eq!(
        api.delete(&format!("/v1/products/{id}"), None).await.status,
        200
    );
    let db = hub.dir.path().join("hub.db");
    let tombstones = || {
        let c =
            rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .unwrap();
        c.query_row("SELECT count(*) FROM feed WHERE deleted = 1", [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap()
    };
    assert_eq!(tombstones(), 1);
    // A snapshot started now keeps working while the purge runs.
    let first = api.get("/v1/inventory/delta?limit=1").await;
    let mut waited = 0;
    while tombstones() > 0 && waited < 50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    assert_eq!(tombstones(), 0, "purged after the retention");
    let token = first.body["meta"]["next_sync_token"].as_str().unwrap();
    let r = api
        .get(&format!("/v1/inventory/delta?since_token={token}"))
        .await;
    assert_eq!(r.status, 200);
}

/// Loads a product item's `doc` and checks that its fields read as the item's.
fn doc_of(item: &Value) -> ProductDoc {
    let text = item["doc"]
        .as_str()
        .unwrap_or_else(|| panic!("no doc: {item}"));
    let doc = ProductDoc::load(&B64.decode(text).unwrap()).unwrap();
    let fields = serde_json::to_value(doc.fields().unwrap()).unwrap();
    for (k, v) in fields.as_object().unwrap() {
        assert_eq!(&item[k], v, "`{k}` of the document and of the item: {item}");
    }
    doc
}

/// The product item of a pull.
fn product_item<'a>(
    items: &'a BTreeMap<(String, String), (String, Value)>,
    id: &str,
) -> &'a (String, Value) {
    &items[&("product".to_owned(), id.to_owned())]
}

#[tokio::test]
async fn product_items_carry_their_automerge_document() {
    let hub = TestHub::start().await;
    let api = hub.api();
    let dev = hub.enroll().await;
    // One product made on the hub (REST), one made on a device (its own document).
    let r = api
        .post(
            "/v1/products",
            json!({ "sku": "DOC-1", "name": "Hub made", "price": { "amount": "2.5", "currency": "EUR" } }),
        )
        .await;
    let hub_made = r.data()["id"].as_str().unwrap().to_owned();
    assert!(r.data().get("doc").is_none(), "REST resources have no doc");
    let device = DeviceId::parse(&dev.id).unwrap();
    let mut new = NewProduct::new("DOC-2", "Device made");
    new.barcode = Some("4006381333931".into());
    let mut mine = ProductDoc::create(&device, &ProductFields::from(&new)).unwrap();
    let dev_made = format!("prod_{}", uuid_tail());
    let r = dev
        .push(vec![dev.op(
            "product_create",
            json!({ "product_id": dev_made, "sku": new.sku, "name": new.name, "uom": "EACH",
                    "doc": B64.encode(mine.save()) }),
        )])
        .await;
    assert_eq!(r.data()["results"][0]["status"], "applied", "{}", r.text);

    // The snapshot: both documents load and read as their items.
    let (items, meta, _) = pull_all(&api, None, 1).await;
    let (bucket, item) = product_item(&items, &hub_made);
    assert_eq!(bucket, "created");
    assert_eq!(item["price"]["amount"], "2.5");
    doc_of(item);
    let (_, item) = product_item(&items, &dev_made);
    let mut theirs = doc_of(item);
    // The device merges the hub's copy into its own: nothing changes, nothing clashes.
    mine.merge(&mut theirs).unwrap();
    assert_eq!(mine.fields().unwrap(), ProductFields::from(&new));
    assert!(mine.conflicts().unwrap().is_empty());
    // REST products never carry the document.
    let p = api.get(&format!("/v1/products/{dev_made}")).await;
    assert!(p.data().get("doc").is_none());
    let list = api.get("/v1/products").await;
    assert!(
        list.data()
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p.get("doc").is_none())
    );

    // A REST edit: the delta item's document has the hub's change.
    let token = meta["next_sync_token"].as_str().unwrap().to_owned();
    let r = api
        .put(
            &format!("/v1/products/{dev_made}"),
            json!({ "name": "Renamed on the hub", "category": "tools" }),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let (items, meta, _) = pull_all(&api, Some(&token), 100).await;
    let (bucket, item) = product_item(&items, &dev_made);
    assert_eq!(bucket, "updated");
    assert_eq!(item["name"], "Renamed on the hub");
    assert_eq!(item["version"], 2);
    let mut theirs = doc_of(item);
    mine.merge(&mut theirs).unwrap();
    assert_eq!(mine.fields().unwrap().name, "Renamed on the hub");

    // A pushed product_change made on top of the merged copy: the next item has it too.
    let change = mine
        .edit(
            &device,
            &ProductPatch {
                description: Some(Some("Edited on the device".into())),
                ..Default::default()
            },
        )
        .unwrap()
        .unwrap();
    let r = dev
        .push(vec![dev.op(
            "product_change",
            json!({ "product_id": dev_made, "base_version": 2, "fields": change.fields,
                    "changes": B64.encode(&change.changes) }),
        )])
        .await;
    assert_eq!(r.data()["results"][0]["status"], "applied", "{}", r.text);
    let token = meta["next_sync_token"].as_str().unwrap().to_owned();
    let (items, meta, _) = pull_all(&api, Some(&token), 100).await;
    let (_, item) = product_item(&items, &dev_made);
    assert_eq!(item["description"], "Edited on the device");
    assert_eq!(item["name"], "Renamed on the hub");
    assert_eq!(item["version"], 3);
    let theirs = doc_of(item);
    assert_eq!(theirs.fields().unwrap(), mine.fields().unwrap());
    // The checksum still covers the products by id and version.
    assert!(meta["checksum"].is_string());

    // A deleted product's tombstone carries only entity, id, seq and version.
    let token = meta["next_sync_token"].as_str().unwrap().to_owned();
    assert_eq!(
        api.delete(&format!("/v1/products/{hub_made}"), None)
            .await
            .status,
        200
    );
    let (items, _, _) = pull_all(&api, Some(&token), 100).await;
    let (bucket, item) = product_item(&items, &hub_made);
    assert_eq!(bucket, "deleted");
    let mut keys: Vec<&str> = item
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(keys, ["entity", "id", "seq", "version"]);
}

/// The member names of one JSON object, duplicates kept (a `Value` would silently keep one).
struct Keys(Vec<String>);

impl<'de> serde::Deserialize<'de> for Keys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Keys;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Keys, A::Error> {
                let mut keys = Vec::new();
                while let Some(k) = m.next_key::<String>()? {
                    m.next_value::<serde::de::IgnoredAny>()?;
                    keys.push(k);
                }
                Ok(Keys(keys))
            }
        }
        d.deserialize_map(V)
    }
}

#[derive(serde::Deserialize)]
struct KeysPage {
    created: Vec<Keys>,
    updated: Vec<Keys>,
    deleted: Vec<Keys>,
}

#[derive(serde::Deserialize)]
struct KeysEnvelope {
    data: KeysPage,
}

#[tokio::test]
async fn items_name_each_member_once() {
    // A page splices the stored fields after the members taken from the feed's columns; a
    // repeated `id` or `version` would break clients that refuse duplicate keys.
    let hub = TestHub::start().await;
    let api = hub.api();
    let seed = hub.seed().await;
    hub.receive(&seed.product, &seed.a, "3").await;
    let first = api.get("/v1/inventory/delta").await;
    let token = first.body["meta"]["next_sync_token"]
        .as_str()
        .unwrap()
        .to_owned();
    hub.receive(&seed.product, &seed.a, "1").await;
    api.put(
        &format!("/v1/products/{}", seed.product),
        json!({ "name": "Again" }),
        None,
    )
    .await;
    let second = api
        .get(&format!("/v1/inventory/delta?since_token={token}"))
        .await;
    let mut seen = 0;
    for r in [first, second] {
        let page: KeysEnvelope = serde_json::from_str(&r.text).unwrap();
        for item in page
            .data
            .created
            .iter()
            .chain(&page.data.updated)
            .chain(&page.data.deleted)
        {
            let mut keys = item.0.clone();
            keys.sort();
            let n = keys.len();
            keys.dedup();
            assert_eq!(keys.len(), n, "a member twice: {:?} in {}", item.0, r.text);
            assert_eq!(&item.0[..4], ["entity", "id", "seq", "version"]);
            seen += 1;
        }
    }
    assert_eq!(
        seen,
        4 + 3,
        "product, 2 locations, stock; then stock, transaction, product"
    );
}

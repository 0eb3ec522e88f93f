//! Tenant isolation: what one organization makes, another never sees or touches, over REST, the
//! delta feed and WebSocket; and a branch-scoped credential stays inside its branch.
// Unwrap and expect are fine in tests; clippy only knows that inside #[test] fns.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// Everything the demo organization made, by id.
struct DemoWorld {
    seed: Seed,
    receipt: String,
    transfer: String,
    allocation: String,
    conflict: String,
    device: Device,
}

impl DemoWorld {
    /// Text that must never show in another organization's responses.
    fn secrets(&self) -> Vec<String> {
        vec![
            self.seed.product.clone(),
            self.seed.sku.clone(),
            self.seed.a.clone(),
            self.seed.b.clone(),
            self.receipt.clone(),
            self.transfer.clone(),
            self.allocation.clone(),
            self.conflict.clone(),
            self.device.id.clone(),
            "org_demo".into(),
            "br_main".into(),
            "Widget".into(),
        ]
    }

    /// Asserts `r` shows none of the demo organization's data, except `asked` (an id the caller
    /// itself put in the request).
    #[track_caller]
    fn assert_hidden(&self, r: &Resp, asked: &str) {
        for s in self.secrets() {
            if s != asked {
                assert!(!r.text.contains(&s), "shows `{s}`: {}", r.text);
            }
        }
    }
}

/// Products, locations, stock, movements, an allocation and a conflict in org_demo.
async fn demo_world(hub: &TestHub) -> DemoWorld {
    let api = hub.api();
    let seed = hub.seed().await;
    let r = api
        .post(
            "/v1/inventory/transactions",
            json!({ "transaction_type": "receipt", "product_id": seed.product,
                    "location_id": seed.a, "quantity": { "value": "10", "uom": "EACH" } }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let receipt = r.data()["id"].as_str().unwrap().to_owned();
    let r = api
        .post(
            "/v1/inventory/transfers",
            json!({ "product_id": seed.product, "from_location_id": seed.a,
                    "to_location_id": seed.b, "quantity": { "value": "3", "uom": "EACH" } }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let transfer = r.data()["id"].as_str().unwrap().to_owned();
    let r = api
        .post(
            "/v1/allocations",
            json!({ "product_id": seed.product, "location_id": seed.a,
                    "quantity": { "value": "2", "uom": "EACH" } }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let allocation = r.data()["id"].as_str().unwrap().to_owned();
    // A shipment the stock cannot cover: rejected, with a conflict record.
    let device = hub.enroll().await;
    let r = device
        .push(vec![device.movement(
            "shipment",
            &seed.product,
            &seed.b,
            "1000",
        )])
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["results"][0]["status"], "rejected", "{}", r.text);
    let conflict = r.data()["results"][0]["conflict_id"]
        .as_str()
        .unwrap()
        .to_owned();
    DemoWorld {
        seed,
        receipt,
        transfer,
        allocation,
        conflict,
        device,
    }
}

/// The demo organization's state, to show nothing changed.
async fn demo_state(hub: &TestHub, w: &DemoWorld) -> Value {
    let api = hub.api();
    let product = api.get(&format!("/v1/products/{}", w.seed.product)).await;
    let allocation = api.get(&format!("/v1/allocations/{}", w.allocation)).await;
    let conflict = api.get(&format!("/v1/conflicts/{}", w.conflict)).await;
    json!({
        "name": product.data()["name"],
        "version": product.data()["version"],
        "a": hub.on_hand(&w.seed.product, &w.seed.a).await,
        "b": hub.on_hand(&w.seed.product, &w.seed.b).await,
        "allocation": allocation.data()["status"],
        "conflict": conflict.data()["status"],
        "conflicts": api.get("/v1/conflicts").await.body["meta"]["pagination"]["total"],
        "transactions": api.get("/v1/inventory/transactions").await.body["meta"]["pagination"]["total"],
    })
}

#[track_caller]
fn assert_empty_list(r: &Resp) {
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data().as_array().unwrap().len(), 0, "{}", r.text);
    assert_eq!(r.body["meta"]["pagination"]["total"], 0, "{}", r.text);
}

#[tokio::test]
async fn lists_of_another_organization_are_empty() {
    let hub = TestHub::start().await;
    let w = demo_world(&hub).await;
    let other = hub.other_api();
    let (p, a) = (&w.seed.product, &w.seed.a);
    for path in [
        "/v1/products".to_owned(),
        format!("/v1/products?filters[sku]={}", w.seed.sku),
        "/v1/inventory/locations".to_owned(),
        "/v1/inventory/transactions".to_owned(),
        format!("/v1/inventory/transactions?product_id={p}"),
        format!("/v1/inventory/transactions?location_id={a}"),
        "/v1/conflicts".to_owned(),
        "/v1/conflicts?status=open".to_owned(),
    ] {
        let r = other.get(&path).await;
        assert_empty_list(&r);
        w.assert_hidden(&r, "");
    }
    // Control: the demo organization sees its own.
    let api = hub.api();
    let total = |r: Resp| r.body["meta"]["pagination"]["total"].as_u64().unwrap();
    assert_eq!(total(api.get("/v1/products").await), 1);
    assert_eq!(total(api.get("/v1/inventory/locations").await), 2);
    assert_eq!(total(api.get("/v1/inventory/transactions").await), 3);
    assert_eq!(total(api.get("/v1/conflicts?status=open").await), 1);
}

#[tokio::test]
async fn ids_of_another_organization_are_404_not_403() {
    let hub = TestHub::start().await;
    let w = demo_world(&hub).await;
    let before = demo_state(&hub, &w).await;
    let other = hub.other_api();
    let (p, a) = (w.seed.product.as_str(), w.seed.a.as_str());
    let reads = [
        (format!("/v1/products/{p}"), p),
        (format!("/v1/products/{p}/inventory"), p),
        (format!("/v1/locations/{a}/inventory"), a),
        (format!("/v1/inventory/locations/{a}/products"), a),
        (
            format!("/v1/inventory/transactions/{}", w.receipt),
            &w.receipt,
        ),
        (
            format!("/v1/inventory/transactions/{}", w.transfer),
            &w.transfer,
        ),
        (format!("/v1/allocations/{}", w.allocation), &w.allocation),
        (format!("/v1/conflicts/{}", w.conflict), &w.conflict),
    ];
    for (path, id) in &reads {
        let r = other.get(path).await;
        assert_eq!(r.status, 404, "{path}: {}", r.text);
        assert_eq!(r.code(), "NOT_FOUND");
        w.assert_hidden(&r, id);
    }
    // Writes on those ids.
    let r = other
        .put(
            &format!("/v1/products/{p}"),
            json!({ "name": "Stolen" }),
            Some("\"version-1\""),
        )
        .await;
    assert_eq!((r.status, r.code()), (404, "NOT_FOUND"), "{}", r.text);
    w.assert_hidden(&r, p);
    let r = other.delete(&format!("/v1/products/{p}"), None).await;
    assert_eq!((r.status, r.code()), (404, "NOT_FOUND"), "{}", r.text);
    let r = other
        .post(
            &format!("/v1/allocations/{}/releases", w.allocation),
            json!({}),
        )
        .await;
    assert_eq!((r.status, r.code()), (404, "NOT_FOUND"), "{}", r.text);
    w.assert_hidden(&r, &w.allocation);
    let r = other
        .post(
            &format!("/v1/conflicts/{}/resolve", w.conflict),
            json!({ "resolution": "dismiss" }),
        )
        .await;
    assert_eq!((r.status, r.code()), (404, "NOT_FOUND"), "{}", r.text);
    w.assert_hidden(&r, &w.conflict);
    // Bodies naming them.
    let qty = json!({ "value": "1", "uom": "EACH" });
    for (path, body) in [
        (
            "/v1/inventory/transactions",
            json!({ "transaction_type": "shipment", "product_id": p, "location_id": a, "quantity": qty }),
        ),
        (
            "/v1/inventory/transfers",
            json!({ "product_id": p, "from_location_id": a, "to_location_id": w.seed.b, "quantity": qty }),
        ),
        (
            "/v1/allocations",
            json!({ "product_id": p, "location_id": a, "quantity": qty }),
        ),
    ] {
        let r = other.post(path, body).await;
        assert_eq!(
            (r.status, r.code()),
            (404, "NOT_FOUND"),
            "{path}: {}",
            r.text
        );
        for s in ["org_demo", "br_main", "Widget", w.seed.sku.as_str()] {
            assert!(!r.text.contains(s), "{path} shows {s}: {}", r.text);
        }
    }
    let r = other
        .post(
            "/v1/inventory/transactions/batch",
            json!({ "transactions": [{ "transaction_type": "receipt", "product_id": p, "location_id": a, "quantity": qty }] }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["results"][0]["status"], "failed");
    assert_eq!(r.data()["results"][0]["error"]["code"], "NOT_FOUND");
    // The other organization's device, pushing ops that name demo's ids: rejected as unknown.
    let od = hub.enroll_with(OTHER_ENROLL, OTHER_ORG).await;
    let r = od
        .push(vec![
            od.movement("shipment", p, a, "1"),
            od.op(
                "allocation_release",
                json!({ "allocation_id": w.allocation, "quantity": qty }),
            ),
        ])
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    for result in r.data()["results"].as_array().unwrap() {
        assert_eq!(result["status"], "rejected", "{}", r.text);
        assert_eq!(result["error"]["code"], "NOT_FOUND", "{}", r.text);
    }
    // Ids live in each organization's own namespace: creating things under demo's ids is
    // neither refused (which would tell that they exist) nor a way to touch demo's.
    let r = other
        .post(
            "/v1/inventory/locations",
            json!({ "id": a, "code": "TAKEN", "name": "Theirs", "branch_id": "br_other" }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.data()["branch_id"], "br_other");
    let r = other
        .post(
            "/v1/products",
            json!({ "id": p, "sku": "TAKEN", "name": "Theirs" }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    w.assert_hidden(&r, p);
    assert_eq!(
        other.get(&format!("/v1/products/{p}")).await.data()["name"],
        "Theirs"
    );
    let r = hub.api().get("/v1/inventory/locations").await;
    let mine = r
        .data()
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["id"] == a)
        .unwrap()
        .clone();
    assert_eq!(mine["branch_id"], "br_main");
    assert_eq!(mine["name"], "Shelf");
    assert_eq!(demo_state(&hub, &w).await, before);
    // Demo's own view is whole.
    assert_eq!(before["a"], "7");
    assert_eq!(before["b"], "3");
    assert_eq!(before["allocation"], "open");
    assert_eq!(before["conflict"], "open");
}

#[tokio::test]
async fn idempotency_keys_are_per_organization() {
    let hub = TestHub::start().await;
    let body = json!({ "sku": "SAME-1", "name": "Same" });
    let r = hub
        .api()
        .post_keyed("/v1/products", "shared-key", body.clone())
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let demo_id = r.data()["id"].as_str().unwrap().to_owned();
    let r = hub
        .other_api()
        .post_keyed("/v1/products", "shared-key", body)
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_ne!(r.body["meta"]["idempotent"], true);
    assert_ne!(r.data()["id"], demo_id.as_str());
    assert!(!r.text.contains(&demo_id));
    // A different body under the same key is not a reuse across organizations either.
    let r = hub
        .other_api()
        .post_keyed(
            "/v1/inventory/locations",
            "shared-key",
            json!({ "code": "O-1", "name": "Other shelf" }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
}

/// Walks the whole delta feed from `token` (none: a snapshot); returns the items and the last
/// token.
async fn pull_all(c: &Client, token: Option<String>) -> (Vec<Value>, String, Vec<String>) {
    let mut token = token;
    let mut items = Vec::new();
    let mut texts = Vec::new();
    loop {
        let path = match &token {
            Some(t) => format!("/v1/inventory/delta?limit=2&since_token={t}"),
            None => "/v1/inventory/delta?limit=2".to_owned(),
        };
        let r = c.get(&path).await;
        assert_eq!(r.status, 200, "{}", r.text);
        for part in ["created", "updated", "deleted"] {
            items.extend(r.data()[part].as_array().unwrap().iter().cloned());
        }
        texts.push(r.text.clone());
        token = Some(
            r.body["meta"]["next_sync_token"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
        if r.body["meta"]["has_more"] != true {
            break;
        }
    }
    (items, token.unwrap(), texts)
}

#[tokio::test]
async fn delta_feed_of_another_organization_shows_nothing_of_demo() {
    let hub = TestHub::start().await;
    let other = hub.other_api();
    let (items, other_token, _) = pull_all(&other, None).await;
    assert!(items.is_empty(), "{items:?}");

    let w = demo_world(&hub).await;
    let (demo_items, demo_token, _) = pull_all(&hub.api(), None).await;
    let ids: Vec<&str> = demo_items.iter().filter_map(|i| i["id"].as_str()).collect();
    assert!(ids.contains(&w.seed.product.as_str()), "{ids:?}");
    assert!(ids.contains(&w.conflict.as_str()), "{ids:?}");

    // Neither a fresh snapshot nor the deltas since before show any of it.
    for token in [None, Some(other_token.clone())] {
        let (items, _, texts) = pull_all(&other, token).await;
        assert!(items.is_empty(), "{items:?}");
        for text in texts {
            for s in w.secrets() {
                assert!(!text.contains(&s), "shows `{s}`: {text}");
            }
        }
    }
    // Demo's token is no key to the other organization's feed, nor to its own.
    let r = other
        .get(&format!("/v1/inventory/delta?since_token={demo_token}"))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (400, "INVALID_SYNC_TOKEN"),
        "{}",
        r.text
    );
    w.assert_hidden(&r, "");
    // The other organization's own changes do show, and only those.
    let r = other
        .post(
            "/v1/products",
            json!({ "sku": "OTHER-1", "name": "Theirs" }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let theirs = r.data()["id"].as_str().unwrap().to_owned();
    let (items, _, _) = pull_all(&other, Some(other_token)).await;
    let ids: Vec<&str> = items.iter().filter_map(|i| i["id"].as_str()).collect();
    assert_eq!(ids, [theirs.as_str()]);
    let (items, _, _) = pull_all(&hub.api(), Some(demo_token)).await;
    assert!(
        items.iter().all(|i| i["id"] != theirs.as_str()),
        "{items:?}"
    );
}

pub(crate) type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens `/v1/ws` with these headers and subscribes to every channel.
pub(crate) async fn subscribed(hub: &TestHub, headers: &[(&'static str, &str)]) -> Ws {
    let url = format!("{}/v1/ws", hub.base.replacen("http://", "ws://", 1));
    let mut req = url.into_client_request().unwrap();
    for (name, value) in headers {
        req.headers_mut()
            .insert(*name, HeaderValue::from_str(value).unwrap());
    }
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let channels = ["inventory.updates", "products.changes", "conflicts.changes"];
    ws.send(Message::Text(
        json!({ "type": "subscribe", "channels": channels })
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let frame = next_frame(&mut ws, Duration::from_secs(5))
        .await
        .expect("no answer to subscribe");
    assert_eq!(frame["type"], "subscribed", "{frame}");
    ws
}

/// The next change frame within `wait` (hub pings skipped), or `None`.
pub(crate) async fn next_frame(ws: &mut Ws, wait: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next()).await.ok()??;
        match msg.unwrap() {
            Message::Text(t) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if v["type"] != "ping" {
                    return Some(v);
                }
            }
            Message::Close(_) => return None,
            _ => {}
        }
    }
}

#[tokio::test]
async fn websocket_of_another_organization_gets_no_demo_frames() {
    let hub = TestHub::start().await;
    let seed = hub.seed().await;
    let demo_key = hub.creds.api_key.clone();
    let mut demo = subscribed(
        &hub,
        &[("X-API-Key", &demo_key), ("X-Organization-ID", "org_demo")],
    )
    .await;
    let mut other = subscribed(
        &hub,
        &[("X-API-Key", OTHER_KEY), ("X-Organization-ID", OTHER_ORG)],
    )
    .await;
    let od = hub.enroll_with(OTHER_ENROLL, OTHER_ORG).await;
    let mut other_device = subscribed(
        &hub,
        &[
            ("Authorization", &format!("Bearer {}", od.access)),
            ("X-Organization-ID", OTHER_ORG),
            ("X-Mobile-Device-Id", &od.id),
        ],
    )
    .await;

    // Changes on all three channels in org_demo.
    hub.receive(&seed.product, &seed.a, "5").await;
    let r = hub
        .api()
        .put(
            &format!("/v1/products/{}", seed.product),
            json!({ "name": "Renamed" }),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let d = hub.enroll().await;
    let r = d
        .push(vec![d.movement("shipment", &seed.product, &seed.b, "99")])
        .await;
    assert_eq!(r.data()["results"][0]["status"], "rejected", "{}", r.text);

    let mut seen = Vec::new();
    while seen.len() < 3 {
        let f = next_frame(&mut demo, Duration::from_secs(5))
            .await
            .unwrap_or_else(|| panic!("the demo subscriber got only {seen:?}"));
        seen.push(f["type"].as_str().unwrap().to_owned());
    }
    for t in ["inventory.update", "product.update", "conflict.created"] {
        assert!(seen.iter().any(|s| s == t), "{t} not in {seen:?}");
    }
    // The other organization's subscribers hear nothing of it.
    let quiet = Duration::from_millis(500);
    let (a, b) = tokio::join!(
        next_frame(&mut other, quiet),
        next_frame(&mut other_device, quiet)
    );
    assert_eq!(a, None);
    assert_eq!(b, None);

    // Control: they do hear their own organization's changes, which demo does not.
    let r = hub
        .other_api()
        .post(
            "/v1/products",
            json!({ "sku": "OTHER-WS", "name": "Theirs" }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let theirs = r.data()["id"].as_str().unwrap().to_owned();
    for ws in [&mut other, &mut other_device] {
        let f = next_frame(ws, Duration::from_secs(5))
            .await
            .expect("no frame for the other organization's own change");
        assert_eq!(f["type"], "product.update", "{f}");
        assert_eq!(f["data"]["product_id"], theirs.as_str(), "{f}");
        let text = f.to_string();
        for s in [seed.product.as_str(), seed.a.as_str(), "org_demo"] {
            assert!(!text.contains(s), "{text}");
        }
    }
    while let Some(f) = next_frame(&mut demo, quiet).await {
        assert!(!f.to_string().contains(&theirs), "demo hears theirs: {f}");
    }
}

#[tokio::test]
async fn branch_scoped_key_stays_in_its_branch() {
    let hub = TestHub::start().await;
    let w = demo_world(&hub).await;
    let north = hub
        .anonymous()
        .with("X-API-Key", NORTH_KEY)
        .with("X-Organization-ID", "org_demo");
    let r = north
        .post(
            "/v1/inventory/locations",
            json!({ "code": "N-1", "name": "North shelf" }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.data()["branch_id"], NORTH);
    let north_loc = r.data()["id"].as_str().unwrap().to_owned();
    let r = north
        .post(
            "/v1/inventory/transactions",
            json!({ "transaction_type": "receipt", "product_id": w.seed.product,
                    "location_id": north_loc, "quantity": { "value": "4", "uom": "EACH" } }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let main = [w.seed.a.as_str(), w.seed.b.as_str()];

    // Lists hold the north branch only.
    let r = north.get("/v1/inventory/locations").await;
    let ids: Vec<&str> = r
        .data()
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [north_loc.as_str()]);
    assert_eq!(r.body["meta"]["pagination"]["total"], 1);
    let r = north
        .get(&format!("/v1/products/{}/inventory", w.seed.product))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let levels = r.data().as_array().unwrap();
    assert_eq!(levels.len(), 1, "{}", r.text);
    assert_eq!(levels[0]["location_id"], north_loc.as_str());
    assert_eq!(levels[0]["on_hand"], "4");
    let r = north.get("/v1/inventory/transactions").await;
    assert_eq!(r.body["meta"]["pagination"]["total"], 1, "{}", r.text);
    for loc in main {
        assert!(!r.text.contains(loc), "{}", r.text);
    }
    // Main's stock and movements by id: refused or not found.
    for loc in main {
        let r = north.get(&format!("/v1/locations/{loc}/inventory")).await;
        assert_eq!(
            (r.status, r.code()),
            (403, "PERMISSION_DENIED"),
            "{}",
            r.text
        );
        let r = north
            .get(&format!("/v1/inventory/locations/{loc}/products"))
            .await;
        assert_eq!(
            (r.status, r.code()),
            (403, "PERMISSION_DENIED"),
            "{}",
            r.text
        );
    }
    let r = north
        .get(&format!("/v1/inventory/transactions/{}", w.receipt))
        .await;
    assert_eq!((r.status, r.code()), (404, "NOT_FOUND"), "{}", r.text);
    // Stock at main cannot be moved, allocated or given a new location.
    let qty = json!({ "value": "1", "uom": "EACH" });
    for (path, body) in [
        (
            "/v1/inventory/transactions",
            json!({ "transaction_type": "shipment", "product_id": w.seed.product, "location_id": w.seed.a, "quantity": qty }),
        ),
        (
            "/v1/inventory/transactions",
            json!({ "transaction_type": "receipt", "product_id": w.seed.product, "location_id": w.seed.b, "quantity": qty }),
        ),
        (
            "/v1/inventory/transfers",
            json!({ "product_id": w.seed.product, "from_location_id": w.seed.a, "to_location_id": north_loc, "quantity": qty }),
        ),
        (
            "/v1/inventory/transfers",
            json!({ "product_id": w.seed.product, "from_location_id": north_loc, "to_location_id": w.seed.a, "quantity": qty }),
        ),
        (
            "/v1/allocations",
            json!({ "product_id": w.seed.product, "location_id": w.seed.a, "quantity": qty }),
        ),
        (
            "/v1/inventory/locations",
            json!({ "code": "N-2", "name": "x", "branch_id": "br_main" }),
        ),
    ] {
        let r = north.post(path, body).await;
        assert_eq!(
            (r.status, r.code()),
            (403, "PERMISSION_DENIED"),
            "{path}: {}",
            r.text
        );
    }
    assert_eq!(hub.on_hand(&w.seed.product, &w.seed.a).await, "7");
    assert_eq!(hub.on_hand(&w.seed.product, &w.seed.b).await, "3");
    assert_eq!(hub.on_hand(&w.seed.product, &north_loc).await, "4");
    // The delta feed of the north key holds no main location or stock level.
    let (items, _, _) = pull_all(&north, None).await;
    for item in &items {
        let text = item.to_string();
        for loc in main {
            assert!(!text.contains(loc), "north's feed shows {loc}: {text}");
        }
    }
    assert!(
        items.iter().any(|i| i["id"] == north_loc.as_str()),
        "{items:?}"
    );
    // A device of main sees nothing of north's stock.
    let r = w
        .device
        .client
        .get(&format!("/v1/locations/{north_loc}/inventory"))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (403, "PERMISSION_DENIED"),
        "{}",
        r.text
    );
    let r = w.device.client.get("/v1/inventory/locations").await;
    assert!(!r.text.contains(&north_loc), "{}", r.text);
    assert_eq!(r.body["meta"]["pagination"]["total"], 2);
    // The all-branches key narrowed with X-Branch-ID sees the same as north.
    let r = hub
        .api()
        .with("X-Branch-ID", NORTH)
        .get("/v1/inventory/locations")
        .await;
    assert_eq!(r.body["meta"]["pagination"]["total"], 1, "{}", r.text);
}

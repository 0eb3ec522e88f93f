//! `POST /v1/sync/push`: exactly once, in device order, rules on the hub, product merges.

use crate::common::*;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use stocksync_model::product_doc::{ProductDoc, ProductFields};
use stocksync_model::{DeviceId, NewProduct, ProductPatch};

fn statuses(r: &Resp) -> Vec<String> {
    r.data()["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["status"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_device_creates_a_product_and_a_location_and_moves_stock() {
    let hub = TestHub::start().await;
    let dev = hub.enroll().await;
    let device = DeviceId::parse(&dev.id).unwrap();
    let mut new = NewProduct::new("OFF-1", "Made offline");
    new.category = Some("tools".into());
    let mut doc = ProductDoc::create(&device, &ProductFields::from(&new)).unwrap();
    let product = format!("prod_{}", uuid_tail());
    let location = format!("loc_{}", uuid_tail());
    let ops = vec![
        dev.op(
            "product_create",
            json!({
            "product_id": product, "sku": "OFF-1", "name": "Made offline", "uom": "EACH",
            "doc": B64.encode(doc.save()) }),
        ),
        dev.op(
            "location_create",
            json!({ "location_id": location, "code": "BIN-1", "name": "Bin 1" }),
        ),
        dev.movement("receipt", &product, &location, "12"),
        dev.movement("shipment", &product, &location, "5"),
    ];
    let r = dev.push(ops).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(statuses(&r), ["applied"; 4]);
    let seqs: Vec<u64> = r.data()["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["seq"].as_u64().unwrap())
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "seqs follow device order: {seqs:?}"
    );
    assert_eq!(hub.on_hand(&product, &location).await, "7");
    let p = hub.api().get(&format!("/v1/products/{product}")).await;
    assert_eq!(p.data()["sku"], "OFF-1");
    assert_eq!(p.data()["category"], "tools");
    let loc = hub.api().get("/v1/inventory/locations").await;
    assert!(
        loc.data()
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["id"] == location.as_str() && l["branch_id"] == "br_main")
    );
}

#[tokio::test]
async fn a_resent_batch_after_a_lost_response_takes_effect_once() {
    let hub = TestHub::start().await;
    let seed = hub.seed().await;
    let dev = hub.enroll().await;
    let ops = vec![
        dev.movement("receipt", &seed.product, &seed.a, "10"),
        dev.movement("shipment", &seed.product, &seed.a, "4"),
    ];
    let body = json!({ "ops": ops });
    let first = dev
        .client
        .post_keyed("/v1/sync/push", "batch-1", body.clone())
        .await;
    assert_eq!(statuses(&first), ["applied", "applied"]);
    // The response was lost: the device sends the same request again.
    let again = dev
        .client
        .post_keyed("/v1/sync/push", "batch-1", body.clone())
        .await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body["meta"]["idempotent"], true);
    assert_eq!(again.data(), first.data());
    // Even under a new key (say the key was lost in a crash) each op answers duplicate.
    let third = dev
        .client
        .post_keyed("/v1/sync/push", "batch-1-retry", body)
        .await;
    assert_eq!(statuses(&third), ["duplicate", "duplicate"]);
    for (r, f) in third.data()["results"]
        .as_array()
        .unwrap()
        .iter()
        .zip(first.data()["results"].as_array().unwrap())
    {
        assert_eq!(r["original_status"], "applied");
        assert_eq!(r["seq"], f["seq"]);
    }
    assert_eq!(hub.on_hand(&seed.product, &seed.a).await, "6");
}

#[tokio::test]
async fn a_rejected_op_opens_a_conflict_and_is_final() {
    let hub = TestHub::start().await;
    let seed = hub.seed().await;
    hub.receive(&seed.product, &seed.a, "3").await;
    let dev = hub.enroll().await;
    let ship = dev.movement("shipment", &seed.product, &seed.a, "5");
    let op_id = ship["op_id"].as_str().unwrap().to_owned();
    let r = dev.push(vec![ship.clone()]).await;
    let result = &r.data()["results"][0];
    assert_eq!(result["status"], "rejected");
    assert_eq!(result["error"]["code"], "BUSINESS_RULE_VIOLATION");
    assert_eq!(result["error"]["details"]["rule"], "no_negative_inventory");
    let conflict = result["conflict_id"].as_str().unwrap().to_owned();
    assert_eq!(hub.on_hand(&seed.product, &seed.a).await, "3");

    let c = hub.api().get(&format!("/v1/conflicts/{conflict}")).await;
    assert_eq!(c.data()["kind"], "business_rule");
    assert_eq!(c.data()["rule"], "no_negative_inventory");
    assert_eq!(c.data()["op_id"], op_id.as_str());
    assert_eq!(c.data()["device_id"], dev.id.as_str());
    let open = hub.api().get("/v1/conflicts?status=open").await;
    assert!(
        open.data()
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["id"] == conflict.as_str())
    );

    // Stock arrives later; the rejected op is still rejected (final), not applied now.
    hub.receive(&seed.product, &seed.a, "10").await;
    let r = dev.push(vec![ship]).await;
    assert_eq!(r.data()["results"][0]["status"], "duplicate");
    assert_eq!(r.data()["results"][0]["original_status"], "rejected");
    assert_eq!(hub.on_hand(&seed.product, &seed.a).await, "13");

    let r = hub
        .api()
        .post(
            &format!("/v1/conflicts/{conflict}/resolve"),
            json!({ "resolution": "dismiss" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["status"], "dismissed");
    let r = hub
        .api()
        .post(
            &format!("/v1/conflicts/{conflict}/resolve"),
            json!({ "resolution": "dismiss" }),
        )
        .await;
    assert_eq!(r.status, 409);
}

#[tokio::test]
async fn ops_apply_in_device_seq_order_and_seq_never_goes_back() {
    let hub = TestHub::start().await;
    let seed = hub.seed().await;
    let dev = hub.enroll().await;
    let receive = dev.movement("receipt", &seed.product, &seed.a, "5");
    let ship = dev.movement("shipment", &seed.product, &seed.a, "5");
    // Sent shipment first: applied after the receipt because its device_seq is higher.
    let r = dev.push(vec![ship, receive]).await;
    assert_eq!(statuses(&r), ["applied", "applied"]);
    assert_eq!(hub.on_hand(&seed.product, &seed.a).await, "0");

    let mut late = dev.movement("receipt", &seed.product, &seed.a, "1");
    late["device_seq"] = json!(1);
    let r = dev.push(vec![late]).await;
    let result = &r.data()["results"][0];
    assert_eq!(result["status"], "rejected");
    assert!(result["error"]["details"]["device_seq"].is_array());
    assert_eq!(hub.on_hand(&seed.product, &seed.a).await, "0");
}

#[tokio::test]
async fn eight_devices_racing_for_the_same_stock_never_go_negative() {
    let hub = TestHub::start().await;
    let seed = hub.seed().await;
    hub.receive(&seed.product, &seed.a, "100").await;
    let mut devices = Vec::new();
    for _ in 0..8 {
        devices.push(hub.enroll().await);
    }
    let mut batches = Vec::new();
    for d in &devices {
        let ops: Vec<Value> = (0..20)
            .map(|_| d.movement("shipment", &seed.product, &seed.a, "1"))
            .collect();
        batches.push(ops);
    }
    let pushes = devices
        .iter()
        .zip(batches.clone())
        .map(|(d, ops)| d.push(ops));
    let responses = futures_util::future::join_all(pushes).await;
    let mut applied = 0;
    let mut rejected = 0;
    for r in &responses {
        assert_eq!(r.status, 200, "{}", r.text);
        for s in statuses(r) {
            match s.as_str() {
                "applied" => applied += 1,
                "rejected" => rejected += 1,
                other => panic!("unexpected {other}"),
            }
        }
    }
    assert_eq!((applied, rejected), (100, 60));
    assert_eq!(hub.on_hand(&seed.product, &seed.a).await, "0");

    // Every op once: resending everything changes nothing.
    let again = devices.iter().zip(batches).map(|(d, ops)| d.push(ops));
    for r in futures_util::future::join_all(again).await {
        assert!(statuses(&r).iter().all(|s| s == "duplicate"));
    }
    assert_eq!(hub.on_hand(&seed.product, &seed.a).await, "0");
    let shipments = hub
        .api()
        .get(&format!(
            "/v1/inventory/transactions?product_id={}&pageSize=200",
            seed.product
        ))
        .await;
    assert_eq!(shipments.body["meta"]["pagination"]["total"], 101);
}

fn change(doc: &mut ProductDoc, device: &str, patch: ProductPatch) -> (Vec<String>, String) {
    let c = doc
        .edit(&DeviceId::parse(device).unwrap(), &patch)
        .unwrap()
        .unwrap();
    (c.fields, B64.encode(c.changes))
}

async fn product_made_by(hub: &TestHub, dev: &Device) -> (String, Vec<u8>) {
    let device = DeviceId::parse(&dev.id).unwrap();
    let mut new = NewProduct::new(format!("M-{}", uuid_tail()), "Mergeable");
    new.price = Some("10 EUR".parse().unwrap());
    let mut doc = ProductDoc::create(&device, &ProductFields::from(&new)).unwrap();
    let bytes = doc.save();
    let id = format!("prod_{}", uuid_tail());
    let r = dev
        .push(vec![dev.op(
            "product_create",
            json!({
            "product_id": id, "sku": new.sku, "name": new.name, "uom": "EACH",
            "doc": B64.encode(&bytes) }),
        )])
        .await;
    assert_eq!(statuses(&r), ["applied"], "{}", r.text);
    let _ = hub;
    (id, bytes)
}

#[tokio::test]
async fn concurrent_edits_of_different_fields_both_apply() {
    let hub = TestHub::start().await;
    let a = hub.enroll().await;
    let b = hub.enroll().await;
    let (id, bytes) = product_made_by(&hub, &a).await;
    let mut doc_a = ProductDoc::load(&bytes).unwrap();
    let mut doc_b = ProductDoc::load(&bytes).unwrap();
    let (fa, ca) = change(
        &mut doc_a,
        &a.id,
        ProductPatch {
            name: Some("Renamed".into()),
            ..Default::default()
        },
    );
    let (fb, cb) = change(
        &mut doc_b,
        &b.id,
        ProductPatch {
            category: Some(Some("garden".into())),
            ..Default::default()
        },
    );
    let r = a
        .push(vec![a.op(
            "product_change",
            json!({ "product_id": id, "base_version": 1, "fields": fa, "changes": ca }),
        )])
        .await;
    assert_eq!(statuses(&r), ["applied"]);
    assert_eq!(r.data()["results"][0]["version"], 2);
    let r = b
        .push(vec![b.op(
            "product_change",
            json!({ "product_id": id, "base_version": 1, "fields": fb, "changes": cb }),
        )])
        .await;
    assert_eq!(statuses(&r), ["applied"]);
    assert_eq!(r.data()["results"][0]["version"], 3);
    let p = hub.api().get(&format!("/v1/products/{id}")).await;
    assert_eq!(p.data()["name"], "Renamed");
    assert_eq!(p.data()["category"], "garden");
    assert_eq!(p.data()["version"], 3);
}

#[tokio::test]
async fn a_price_clash_goes_to_the_manual_queue_and_is_resolved_there() {
    let hub = TestHub::start().await;
    let a = hub.enroll().await;
    let b = hub.enroll().await;
    let (id, bytes) = product_made_by(&hub, &a).await;
    let mut doc_a = ProductDoc::load(&bytes).unwrap();
    let mut doc_b = ProductDoc::load(&bytes).unwrap();
    let (fa, ca) = change(
        &mut doc_a,
        &a.id,
        ProductPatch {
            price: Some(Some("11 EUR".parse().unwrap())),
            ..Default::default()
        },
    );
    let (fb, cb) = change(
        &mut doc_b,
        &b.id,
        ProductPatch {
            price: Some(Some("12 EUR".parse().unwrap())),
            ..Default::default()
        },
    );
    let r = a
        .push(vec![a.op(
            "product_change",
            json!({ "product_id": id, "base_version": 1, "fields": fa, "changes": ca }),
        )])
        .await;
    assert_eq!(statuses(&r), ["applied"]);
    let r = b
        .push(vec![b.op(
            "product_change",
            json!({ "product_id": id, "base_version": 1, "fields": fb, "changes": cb }),
        )])
        .await;
    assert_eq!(statuses(&r), ["conflict"], "{}", r.text);
    let conflict = r.data()["results"][0]["conflict_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let c = hub.api().get(&format!("/v1/conflicts/{conflict}")).await;
    assert_eq!(c.data()["kind"], "field");
    assert_eq!(c.data()["field"], "price");
    let mut values: Vec<String> = c.data()["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    values.sort();
    assert_eq!(values, ["11 EUR", "12 EUR"]);

    let r = hub
        .api()
        .post(
            &format!("/v1/conflicts/{conflict}/resolve"),
            json!({ "resolution": "use_value", "value": "11.50 EUR" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["status"], "resolved");
    let p = hub.api().get(&format!("/v1/products/{id}")).await;
    assert_eq!(p.data()["price"]["amount"], "11.5");
    let before = p.data()["version"].as_u64().unwrap();
    assert!(
        before >= 4,
        "each accepted change bumps the version: {before}"
    );
    // A value that is no price is refused and changes nothing.
    let open = hub.api().get("/v1/conflicts?status=open").await;
    assert!(
        !open
            .data()
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["id"] == conflict.as_str())
    );
}

#[tokio::test]
async fn a_name_clash_is_settled_by_the_later_hybrid_clock() {
    let hub = TestHub::start().await;
    let a = hub.enroll().await;
    let b = hub.enroll().await;
    let (id, bytes) = product_made_by(&hub, &a).await;
    let mut doc_a = ProductDoc::load(&bytes).unwrap();
    let mut doc_b = ProductDoc::load(&bytes).unwrap();
    let (fa, ca) = change(
        &mut doc_a,
        &a.id,
        ProductPatch {
            name: Some("From A (later)".into()),
            ..Default::default()
        },
    );
    let (fb, cb) = change(
        &mut doc_b,
        &b.id,
        ProductPatch {
            name: Some("From B (earlier)".into()),
            ..Default::default()
        },
    );
    let mut op_a = a.op(
        "product_change",
        json!({ "product_id": id, "base_version": 1, "fields": fa, "changes": ca }),
    );
    let mut op_b = b.op(
        "product_change",
        json!({ "product_id": id, "base_version": 1, "fields": fb, "changes": cb }),
    );
    // Both within the hub's accepted clock skew (an op further ahead is rejected: see
    // `an_op_stamped_too_far_ahead_is_rejected_and_the_device_goes_on`).
    let now = stocksync_hub::clock::now_millis();
    op_a["hlc"] = json!(format!("{:016}.00000@{}", now + 60_000, a.id));
    op_b["hlc"] = json!(format!("{:016}.00000@{}", now - 3_600_000, b.id));
    // The later edit arrives first; the earlier one must not overwrite it.
    let r = a.push(vec![op_a]).await;
    assert_eq!(statuses(&r), ["applied"]);
    let r = b.push(vec![op_b]).await;
    assert_eq!(statuses(&r), ["applied"], "{}", r.text);
    let p = hub.api().get(&format!("/v1/products/{id}")).await;
    assert_eq!(p.data()["name"], "From A (later)");
    let open = hub.api().get("/v1/conflicts?status=open").await;
    assert_eq!(open.body["meta"]["pagination"]["total"], 0);
}

#[tokio::test]
async fn a_garbage_change_is_rejected_with_a_reason() {
    let hub = TestHub::start().await;
    let a = hub.enroll().await;
    let (id, _) = product_made_by(&hub, &a).await;
    let r = a
        .push(vec![a.op("product_change", json!({ "product_id": id, "base_version": 1, "fields": ["name"], "changes": B64.encode(b"not an automerge change") }))])
        .await;
    let result = &r.data()["results"][0];
    assert_eq!(result["status"], "rejected");
    assert_eq!(result["error"]["code"], "VALIDATION_FAILED");
    let p = hub.api().get(&format!("/v1/products/{id}")).await;
    assert_eq!(p.data()["version"], 1);
}

#[tokio::test]
async fn a_device_settles_a_conflict_with_an_op() {
    let hub = TestHub::start().await;
    let a = hub.enroll().await;
    let b = hub.enroll().await;
    let (id, bytes) = product_made_by(&hub, &a).await;
    let mut doc_a = ProductDoc::load(&bytes).unwrap();
    let mut doc_b = ProductDoc::load(&bytes).unwrap();
    let (fa, ca) = change(
        &mut doc_a,
        &a.id,
        ProductPatch {
            barcode: Some(Some("111".into())),
            ..Default::default()
        },
    );
    let (fb, cb) = change(
        &mut doc_b,
        &b.id,
        ProductPatch {
            barcode: Some(Some("222".into())),
            ..Default::default()
        },
    );
    a.push(vec![a.op(
        "product_change",
        json!({ "product_id": id, "base_version": 1, "fields": fa, "changes": ca }),
    )])
    .await;
    let r = b
        .push(vec![b.op(
            "product_change",
            json!({ "product_id": id, "base_version": 1, "fields": fb, "changes": cb }),
        )])
        .await;
    let conflict = r.data()["results"][0]["conflict_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = a
        .push(vec![a.op(
            "conflict_resolution",
            json!({ "conflict_id": conflict, "resolution": "use_value", "value": "222" }),
        )])
        .await;
    assert_eq!(statuses(&r), ["applied"], "{}", r.text);
    let p = hub.api().get(&format!("/v1/products/{id}")).await;
    assert_eq!(p.data()["barcode"], "222");
    let c = hub.api().get(&format!("/v1/conflicts/{conflict}")).await;
    assert_eq!(c.data()["status"], "resolved");
    assert_eq!(c.data()["resolution"]["by"], a.id.as_str());
    // Settling it again is refused, and the refusal is final like any rejection.
    let r = b
        .push(vec![b.op(
            "conflict_resolution",
            json!({ "conflict_id": conflict, "resolution": "dismiss" }),
        )])
        .await;
    assert_eq!(statuses(&r), ["rejected"]);
    assert_eq!(r.data()["results"][0]["error"]["code"], "CONFLICT");
}

#[tokio::test]
async fn an_op_stamped_too_far_ahead_is_rejected_and_the_device_goes_on() {
    let hub = TestHub::start().await;
    let seed = hub.seed().await;
    let d = hub.enroll().await;
    let stamp = |op: &mut Value, wall_ms: u64| {
        op["hlc"] = json!(format!("{wall_ms:016}.00000@{}", d.id));
    };
    let now = stocksync_hub::clock::now_millis();
    // A device whose clock runs 10 minutes fast (the hub accepts 5), then one op stamped right.
    let mut fast = d.movement("receipt", &seed.product, &seed.a, "5");
    stamp(&mut fast, now + 10 * 60_000);
    let fine = d.movement("receipt", &seed.product, &seed.a, "2");
    let r = d.push(vec![fast.clone(), fine]).await;
    assert_eq!(statuses(&r), ["rejected", "applied"], "{}", r.text);
    let rejected = &r.data()["results"][0];
    assert_eq!(rejected["error"]["code"], "VALIDATION_FAILED", "{rejected}");
    let reason = rejected["error"]["details"]["hlc"][0].as_str().unwrap();
    assert!(reason.contains("ahead of the hub's clock"), "{reason}");
    assert!(reason.contains("300000 ms"), "{reason}");
    // Like any rejection it is final (a resend is a duplicate) and has a record for a person.
    let conflict = rejected["conflict_id"].as_str().unwrap();
    let c = hub.api().get(&format!("/v1/conflicts/{conflict}")).await;
    assert_eq!(c.data()["kind"], "business_rule", "{}", c.text);
    assert_eq!(c.data()["code"], "VALIDATION_FAILED", "{}", c.text);
    let r = d.push(vec![fast]).await;
    assert_eq!(statuses(&r), ["duplicate"], "{}", r.text);
    assert_eq!(r.data()["results"][0]["original_status"], "rejected");
    // Its device_seq was used like any op's: the device is not locked out, later ops apply, and
    // one 4 minutes ahead (within the skew) too.
    let mut within = d.movement("receipt", &seed.product, &seed.a, "1");
    stamp(&mut within, now + 4 * 60_000);
    let r = d
        .push(vec![
            d.movement("receipt", &seed.product, &seed.a, "3"),
            within,
        ])
        .await;
    assert_eq!(statuses(&r), ["applied", "applied"], "{}", r.text);
    assert_eq!(hub.on_hand(&seed.product, &seed.a).await, "6");

    // The hub's clock did not take in the far-future stamp: a product edit stamped a year ahead
    // is rejected, so a REST edit made now (stamped by the hub's clock, which took in the
    // 4 minutes) still loses to a device's edit stamped a little later.
    let (id, bytes) = product_made_by(&hub, &d).await;
    let mut doc = ProductDoc::load(&bytes).unwrap();
    let (fields, changes) = change(
        &mut doc,
        &d.id,
        ProductPatch {
            name: Some("From the device".into()),
            ..Default::default()
        },
    );
    let body = json!({ "product_id": id, "base_version": 1, "fields": fields, "changes": changes });
    let mut far = d.op("product_change", body.clone());
    stamp(&mut far, now + 365 * 24 * 3_600_000);
    let r = d.push(vec![far]).await;
    assert_eq!(statuses(&r), ["rejected"], "{}", r.text);
    let r = hub
        .api()
        .put(
            &format!("/v1/products/{id}"),
            json!({ "name": "From REST" }),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mut later = d.op("product_change", body);
    stamp(
        &mut later,
        stocksync_hub::clock::now_millis() + 4 * 60_000 + 30_000,
    );
    let r = d.push(vec![later]).await;
    assert_eq!(statuses(&r), ["applied"], "{}", r.text);
    let p = hub.api().get(&format!("/v1/products/{id}")).await;
    assert_eq!(p.data()["name"], "From the device", "{}", p.text);
}

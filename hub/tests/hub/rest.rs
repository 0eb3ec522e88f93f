//! Products, locations, stock, transactions, transfers, allocations, idempotency, If-Match.

use crate::common::*;
use serde_json::json;

#[tokio::test]
async fn health_and_openapi_need_no_credential() {
    let hub = TestHub::start().await;
    let anon = hub.anonymous();
    let r = anon.get("/v1/health").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.data()["status"], "ok");
    let r = anon.get("/v1/openapi.json").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["openapi"], "3.1.0");
}

#[tokio::test]
async fn product_lifecycle_with_etag_and_if_match() {
    let hub = TestHub::start().await;
    let api = hub.api();
    let r = api
        .post("/v1/products", json!({ "sku": "W-1", "name": "Widget", "price": { "amount": "9.99", "currency": "EUR" } }))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.data()["id"].as_str().unwrap().to_owned();
    assert_eq!(r.data()["version"], 1);
    assert_eq!(r.header("etag"), Some("\"version-1\""));
    assert_eq!(r.data()["price"]["amount"], "9.99");

    let r = api.get(&format!("/v1/products/{id}")).await;
    assert_eq!(r.header("etag"), Some("\"version-1\""));

    let r = api
        .put(
            &format!("/v1/products/{id}"),
            json!({ "name": "Widget Pro" }),
            Some("\"version-1\""),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["version"], 2);
    assert_eq!(r.data()["name"], "Widget Pro");

    // A stale If-Match is a 409 that names both versions, and changes nothing.
    let r = api
        .put(
            &format!("/v1/products/{id}"),
            json!({ "name": "Lost" }),
            Some("\"version-1\""),
        )
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(r.code(), "CONFLICT");
    assert_eq!(r.body["error"]["details"]["current_version"], 2);
    assert_eq!(
        api.get(&format!("/v1/products/{id}")).await.data()["name"],
        "Widget Pro"
    );

    let r = api
        .delete(&format!("/v1/products/{id}"), Some("\"version-2\""))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(api.get(&format!("/v1/products/{id}")).await.status, 404);
}

#[tokio::test]
async fn product_list_filters_sorts_pages_and_projects() {
    let hub = TestHub::start().await;
    let api = hub.api();
    for i in 0..5 {
        let cat = if i % 2 == 0 { "even" } else { "odd" };
        let r = api
            .post(
                "/v1/products",
                json!({ "sku": format!("P-{i}"), "name": format!("Item {i}"), "category": cat }),
            )
            .await;
        assert_eq!(r.status, 201);
    }
    let r = api
        .get("/v1/products?filters[category]=even&sort=sku")
        .await;
    let skus: Vec<_> = r
        .data()
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["sku"].clone())
        .collect();
    assert_eq!(skus, ["P-0", "P-2", "P-4"]);
    assert_eq!(r.body["meta"]["pagination"]["total"], 3);

    let r = api.get("/v1/products?page=2&pageSize=2&sort=sku").await;
    let skus: Vec<_> = r
        .data()
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["sku"].clone())
        .collect();
    assert_eq!(skus, ["P-2", "P-3"]);
    assert_eq!(r.body["meta"]["pagination"]["hasMore"], true);

    // Keyset paging walks everything exactly once.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/products?limit=2&sort=-sku&after_key={c}"),
            None => "/v1/products?limit=2&sort=-sku".into(),
        };
        let r = api.get(&path).await;
        for p in r.data().as_array().unwrap() {
            seen.push(p["sku"].as_str().unwrap().to_owned());
        }
        match r.body["meta"]["pagination"]["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ["P-4", "P-3", "P-2", "P-1", "P-0"]);

    let r = api
        .get("/v1/products?fields=sku,version&sort=sku&pageSize=1")
        .await;
    let first = r.data()[0].as_object().unwrap();
    let mut keys: Vec<_> = first.keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["id", "sku", "version"]);

    assert_eq!(api.get("/v1/products?sort=price").await.status, 400);
    assert_eq!(api.get("/v1/products?fields=secret").await.status, 400);
    assert_eq!(api.get("/v1/products?pageSize=1000").await.status, 400);
}

#[tokio::test]
async fn idempotent_replay_and_key_reuse() {
    let hub = TestHub::start().await;
    let seed = hub.seed().await;
    let api = hub.api();
    let body = json!({
        "transaction_type": "receipt", "product_id": seed.product, "location_id": seed.a,
        "quantity": { "value": "10", "uom": "EACH" }
    });
    let first = api
        .post_keyed("/v1/inventory/transactions", "receipt-1", body.clone())
        .await;
    assert_eq!(first.status, 201, "{}", first.text);
    let again = api
        .post_keyed("/v1/inventory/transactions", "receipt-1", body.clone())
        .await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body["meta"]["idempotent"], true);
    assert!(again.body["meta"]["original_created_at"].is_string());
    assert_eq!(again.data()["id"], first.data()["id"]);
    assert_eq!(hub.on_hand(&seed.product, &seed.a).await, "10");

    let mut other = body.clone();
    other["quantity"]["value"] = json!("11");
    let reused = api
        .post_keyed("/v1/inventory/transactions", "receipt-1", other)
        .await;
    assert_eq!(reused.status, 422);
    assert_eq!(reused.code(), "IDEMPOTENCY_KEY_REUSED");
    assert_eq!(hub.on_hand(&seed.product, &seed.a).await, "10");

    let missing = api.post_raw("/v1/inventory/transactions", body).await;
    assert_eq!(missing.status, 400);
    assert!(missing.body["error"]["details"]["Idempotency-Key"].is_array());
}

#[tokio::test]
async fn stock_never_goes_negative_and_transfers_are_atomic() {
    let hub = TestHub::start().await;
    let seed = hub.seed().await;
    let api = hub.api();
    hub.receive(&seed.product, &seed.a, "5").await;
    let ship = |qty: &str| {
        json!({
            "transaction_type": "shipment", "product_id": seed.product, "location_id": seed.a,
            "quantity": { "value": qty, "uom": "EACH" }
        })
    };
    let r = api.post("/v1/inventory/transactions", ship("6")).await;
    assert_eq!(r.status, 422);
    assert_eq!(r.body["error"]["details"]["rule"], "no_negative_inventory");
    assert_eq!(hub.on_hand(&seed.product, &seed.a).await, "5");

    let t = json!({ "product_id": seed.product, "from_location_id": seed.a, "to_location_id": seed.b, "quantity": { "value": "7", "uom": "EACH" } });
    let r = api.post("/v1/inventory/transfers", t).await;
    assert_eq!(r.status, 422);
    assert_eq!(hub.on_hand(&seed.product, &seed.a).await, "5");
    assert_eq!(hub.on_hand(&seed.product, &seed.b).await, "0");

    let t = json!({ "product_id": seed.product, "from_location_id": seed.a, "to_location_id": seed.b, "quantity": { "value": "3", "uom": "EACH" } });
    let r = api.post("/v1/inventory/transfers", t).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.data()["transaction_type"], "transfer");
    let id = r.data()["id"].as_str().unwrap().to_owned();
    assert_eq!(hub.on_hand(&seed.product, &seed.a).await, "2");
    assert_eq!(hub.on_hand(&seed.product, &seed.b).await, "3");
    let r = api.get(&format!("/v1/inventory/transactions/{id}")).await;
    assert_eq!(r.data()["from_location_id"], seed.a.as_str());

    // uom must be the product's; adjustments need a reason; counts post the variance.
    let r = api
        .post(
            "/v1/inventory/transactions",
            json!({
            "transaction_type": "receipt", "product_id": seed.product, "location_id": seed.a,
            "quantity": { "value": "1.5", "uom": "KG" } }),
        )
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.body["error"]["details"]["rule"], "uom_must_match");
    let r = api
        .post(
            "/v1/inventory/transactions",
            json!({
            "transaction_type": "adjustment", "product_id": seed.product, "location_id": seed.a,
            "quantity": { "value": "-1", "uom": "EACH" } }),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = api
        .post("/v1/inventory/transactions", json!({
            "transaction_type": "count", "product_id": seed.product, "location_id": seed.a,
            "counted": { "value": "1", "uom": "EACH" }, "expected": { "value": "2", "uom": "EACH" } }))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.data()["quantity"]["value"], "-1");
    assert_eq!(hub.on_hand(&seed.product, &seed.a).await, "1");

    let r = api
        .get(&format!(
            "/v1/inventory/transactions?product_id={}&pageSize=10",
            seed.product
        ))
        .await;
    assert_eq!(r.body["meta"]["pagination"]["total"], 3);
}

#[tokio::test]
async fn allocations_limit_available_and_release_once() {
    let hub = TestHub::start().await;
    let seed = hub.seed().await;
    let api = hub.api();
    hub.receive(&seed.product, &seed.a, "10").await;
    let alloc = |qty: &str| json!({ "product_id": seed.product, "location_id": seed.a, "quantity": { "value": qty, "uom": "EACH" } });
    let r = api.post("/v1/allocations", alloc("8")).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.data()["id"].as_str().unwrap().to_owned();
    let r = api.post("/v1/allocations", alloc("3")).await;
    assert_eq!(r.status, 422);
    assert_eq!(
        r.body["error"]["details"]["rule"],
        "allocation_within_available"
    );
    let r = api
        .get(&format!("/v1/products/{}/inventory", seed.product))
        .await;
    let level = &r.data()[0];
    assert_eq!(level["allocated"], "8");
    assert_eq!(level["available"], "2");

    let r = api
        .post(&format!("/v1/allocations/{id}/releases"), json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["status"], "released");
    let r = api
        .post(&format!("/v1/allocations/{id}/releases"), json!({}))
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.body["error"]["details"]["rule"], "allocation_open");
    assert_eq!(
        api.get(&format!("/v1/allocations/{id}")).await.data()["status"],
        "released"
    );
}

#[tokio::test]
async fn batch_reports_each_item_and_atomic_batches_apply_nothing_on_failure() {
    let hub = TestHub::start().await;
    let seed = hub.seed().await;
    let api = hub.api();
    let item = |kind: &str, qty: &str| {
        json!({
        "transaction_type": kind, "product_id": seed.product, "location_id": seed.a,
        "quantity": { "value": qty, "uom": "EACH" } })
    };
    let r = api
        .post("/v1/inventory/transactions/batch", json!({ "transactions": [item("receipt", "4"), item("shipment", "9"), { "bogus": 1 }] }))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let results = r.data()["results"].as_array().unwrap();
    assert_eq!(results[0]["status"], "created");
    assert_eq!(results[1]["status"], "failed");
    assert_eq!(results[1]["error"]["code"], "BUSINESS_RULE_VIOLATION");
    assert_eq!(results[2]["error"]["code"], "VALIDATION_FAILED");
    assert_eq!(hub.on_hand(&seed.product, &seed.a).await, "4");

    let r = api
        .post("/v1/inventory/transactions/batch", json!({ "atomic": true, "transactions": [item("receipt", "4"), item("shipment", "100")] }))
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.body["error"]["details"]["index"], 1);
    assert_eq!(hub.on_hand(&seed.product, &seed.a).await, "4");
}

#[tokio::test]
async fn metrics_count_requests_push_outcomes_and_delta_latency() {
    let hub = TestHub::start().await;
    let seed = hub.seed().await;
    let dev = hub.enroll().await;
    dev.push(vec![
        dev.movement("receipt", &seed.product, &seed.a, "1"),
        dev.movement("shipment", &seed.product, &seed.a, "5"),
    ])
    .await;
    hub.api().get("/v1/inventory/delta").await;
    let r = hub.anonymous().get("/metrics").await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    for line in [
        "stocksync_push_ops_total{outcome=\"applied\"} 1",
        "stocksync_push_ops_total{outcome=\"rejected\"} 1",
        "stocksync_http_requests_total{route=\"/v1/sync/push\",method=\"POST\",status=\"200\"} 1",
        "stocksync_delta_duration_seconds_count 1",
        "stocksync_ws_connections 0",
    ] {
        assert!(r.text.contains(line), "missing `{line}` in:\n{}", r.text);
    }
}

#[tokio::test]
async fn an_atomic_batch_names_the_bad_item_in_its_field_errors() {
    let hub = TestHub::start().await;
    let seed = hub.seed().await;
    let item = |qty: &str| {
        json!({
        "transaction_type": "receipt", "product_id": seed.product, "location_id": seed.a,
        "quantity": { "value": qty, "uom": "EACH" } })
    };
    let r = hub
        .api()
        .post(
            "/v1/inventory/transactions/batch",
            json!({ "atomic": true, "transactions": [item("1"), item("0.5")] }),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(
        r.body["error"]["details"]["transactions[1].quantity.value"].is_array(),
        "{}",
        r.text
    );
    assert_eq!(hub.on_hand(&seed.product, &seed.a).await, "0");
}

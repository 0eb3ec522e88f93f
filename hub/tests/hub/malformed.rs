//! Malformed requests of every kind: each gets a 4xx error envelope, never a 5xx, a hang or a
//! dropped connection; and the hub keeps answering afterwards.
// Unwrap and expect are fine in tests; clippy only knows that inside #[test] fns.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::*;
use reqwest::Method;
use reqwest::header::HeaderValue;
use serde_json::{Value, json};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends a hand-built request (invalid header bytes, another content type), checked like any.
pub(crate) async fn send_built(method: &Method, path: &str, req: reqwest::RequestBuilder) -> Resp {
    send_checked(method, path, req).await
}

/// A request with the client's headers plus `extra` raw header values, built by hand.
fn built(
    client: &Client,
    method: &Method,
    path: &str,
    extra: &[(&str, HeaderValue)],
) -> reqwest::RequestBuilder {
    let mut req = client
        .http
        .request(method.clone(), format!("{}{path}", client.base));
    for (n, v) in &client.headers {
        if !extra.iter().any(|(e, _)| e.eq_ignore_ascii_case(n)) {
            req = req.header(n.as_str(), v.as_str());
        }
    }
    for (n, v) in extra {
        req = req.header(*n, v.clone());
    }
    req
}

/// An error envelope with this status and code.
#[track_caller]
fn envelope(r: &Resp, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.code(), code, "{}", r.text);
    assert_eq!(r.body["responseType"], "error", "{}", r.text);
    assert!(r.body["data"].is_null(), "{}", r.text);
    assert!(r.body["error"]["message"].is_string(), "{}", r.text);
}

/// POST of raw bytes with a fresh Idempotency-Key.
async fn post_bytes(c: &Client, path: &str, bytes: &[u8]) -> Resp {
    let key = uuid_tail();
    c.send(
        Method::POST,
        path,
        &[("Idempotency-Key", &key)],
        Some(bytes.to_vec()),
    )
    .await
}

/// Every POST/PUT that takes a JSON body, with the client allowed to call it.
async fn body_routes(hub: &TestHub) -> Vec<(Method, String, Client)> {
    let seed = hub.seed().await;
    let d = hub.enroll().await;
    let api = hub.api();
    let anon = hub.anonymous();
    vec![
        (Method::POST, "/v1/products".into(), api.clone()),
        (
            Method::PUT,
            format!("/v1/products/{}", seed.product),
            api.clone(),
        ),
        (Method::POST, "/v1/inventory/locations".into(), api.clone()),
        (
            Method::POST,
            "/v1/inventory/transactions".into(),
            api.clone(),
        ),
        (
            Method::POST,
            "/v1/inventory/transactions/batch".into(),
            api.clone(),
        ),
        (Method::POST, "/v1/inventory/transfers".into(), api.clone()),
        (Method::POST, "/v1/allocations".into(), api.clone()),
        (
            Method::POST,
            "/v1/conflicts/conf_nope/resolve".into(),
            api.clone(),
        ),
        (Method::POST, "/v1/sync/push".into(), d.client.clone()),
        (Method::POST, "/v1/auth/devices".into(), anon.clone()),
        (Method::POST, "/v1/oauth/token".into(), anon),
    ]
}

#[tokio::test]
async fn invalid_json_is_400_on_every_body_route() {
    let hub = TestHub::start().await;
    let bodies: [&[u8]; 10] = [
        b"{",
        b"{\"sku\":",
        b"not json",
        b"{\"a\":1}}",
        b"\xEF\xBB\xBF{}",
        b"{'sku':'x'}",
        b"NaN",
        b"{\"sku\":\"x\",}",
        b"{\"sku\" \"x\"}",
        b"\x00\x01\x02",
    ];
    for (method, path, client) in body_routes(&hub).await {
        for body in bodies {
            let key = uuid_tail();
            let r = client
                .send(
                    method.clone(),
                    &path,
                    &[("Idempotency-Key", &key)],
                    Some(body.to_vec()),
                )
                .await;
            envelope(&r, 400, "VALIDATION_FAILED");
            assert!(
                r.body["error"]["details"]["body"].is_array(),
                "{method} {path} {:?}: {}",
                String::from_utf8_lossy(body),
                r.text
            );
        }
    }
    assert_eq!(hub.api().get("/v1/health").await.status, 200);
}

#[tokio::test]
async fn empty_bodies_on_posts_are_400() {
    let hub = TestHub::start().await;
    for (method, path, client) in body_routes(&hub).await {
        for body in [Vec::new(), b"   ".to_vec(), b"null".to_vec()] {
            let key = uuid_tail();
            let r = client
                .send(
                    method.clone(),
                    &path,
                    &[("Idempotency-Key", &key)],
                    Some(body),
                )
                .await;
            envelope(&r, 400, "VALIDATION_FAILED");
        }
        // No body at all (no Content-Type either).
        let r = client
            .send(
                method.clone(),
                &path,
                &[("Idempotency-Key", "k-empty")],
                None,
            )
            .await;
        envelope(&r, 400, "VALIDATION_FAILED");
    }
}

#[tokio::test]
async fn json_of_wrong_types_is_400() {
    let hub = TestHub::start().await;
    let seed = hub.seed().await;
    let api = hub.api();
    for body in [
        json!([]),
        json!("product"),
        json!(42),
        json!({ "sku": 5, "name": "x" }),
        json!({ "sku": "X", "name": true }),
        json!({ "sku": "X", "name": "x", "price": "9.99" }),
        json!({ "sku": "X", "name": "x", "price": { "amount": [1], "currency": "EUR" } }),
        json!({ "sku": "X", "name": "x", "price": { "amount": "1", "currency": "EURO" } }),
        json!({ "sku": "X", "name": "x", "status": "sold_out" }),
        json!({ "sku": "X", "name": "x", "uom": "BUSHEL" }),
        json!({ "sku": ["X"], "name": "x" }),
        json!({ "sku": null, "name": "x" }),
    ] {
        let r = api.post("/v1/products", body).await;
        envelope(&r, 400, "VALIDATION_FAILED");
    }
    let txn = |patch: Value| {
        let mut b = json!({ "transaction_type": "receipt", "product_id": seed.product,
                            "location_id": seed.a, "quantity": { "value": "1", "uom": "EACH" } });
        for (k, v) in patch.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    for patch in [
        json!({ "transaction_type": "teleport" }),
        json!({ "transaction_type": 1 }),
        json!({ "quantity": "5" }),
        json!({ "quantity": 5 }),
        json!({ "quantity": { "value": true, "uom": "EACH" } }),
        json!({ "quantity": { "value": "1" } }),
        json!({ "quantity": { "value": null, "uom": "EACH" } }),
        json!({ "product_id": 5 }),
        json!({ "location_id": { "id": seed.a } }),
        json!({ "reference": ["a"] }),
        json!({ "unit_cost": { "amount": "x", "currency": "EUR" } }),
    ] {
        let r = api.post("/v1/inventory/transactions", txn(patch)).await;
        envelope(&r, 400, "VALIDATION_FAILED");
    }
    let r = api
        .post(
            "/v1/inventory/transactions/batch",
            json!({ "transactions": {} }),
        )
        .await;
    envelope(&r, 400, "VALIDATION_FAILED");
    let r = api
        .post(
            "/v1/inventory/transactions/batch",
            json!({ "transactions": [txn(json!({}))], "atomic": "yes" }),
        )
        .await;
    envelope(&r, 400, "VALIDATION_FAILED");
    assert_eq!(hub.on_hand(&seed.product, &seed.a).await, "0");
    let r = api.get("/v1/products").await;
    assert_eq!(r.body["meta"]["pagination"]["total"], 1);
}

#[tokio::test]
async fn unknown_fields_are_400() {
    let hub = TestHub::start().await;
    let seed = hub.seed().await;
    let api = hub.api();
    let r = api
        .post(
            "/v1/products",
            json!({ "sku": "U-1", "name": "x", "colour": "red" }),
        )
        .await;
    envelope(&r, 400, "VALIDATION_FAILED");
    let r = api
        .post(
            "/v1/inventory/locations",
            json!({ "code": "U-1", "name": "x", "branch_id": "br_main", "org_id": OTHER_ORG }),
        )
        .await;
    envelope(&r, 400, "VALIDATION_FAILED");
    let txn = json!({ "transaction_type": "receipt", "product_id": seed.product,
                      "location_id": seed.a, "quantity": { "value": "1", "uom": "EACH" },
                      "approved_by": "me" });
    let r = api.post("/v1/inventory/transactions", txn).await;
    envelope(&r, 400, "VALIDATION_FAILED");
    let r = api
        .post(
            "/v1/inventory/transactions/batch",
            json!({ "transactions": [], "dry_run": true }),
        )
        .await;
    envelope(&r, 400, "VALIDATION_FAILED");
    let r = api
        .post(
            "/v1/allocations/alloc_nope/releases",
            json!({ "reason": "x" }),
        )
        .await;
    envelope(&r, 400, "VALIDATION_FAILED");
    assert_eq!(hub.on_hand(&seed.product, &seed.a).await, "0");
}

/// docs/protocol.md: "bodies are parsed strictly (unknown fields are refused with their name) so
/// a typo is never silently ignored" — in nested objects, patches and push op bodies too.
#[tokio::test]
async fn unknown_fields_in_nested_objects_and_patches_are_400() {
    let hub = TestHub::start().await;
    let seed = hub.seed().await;
    let api = hub.api();
    let d = hub.enroll().await;
    let txn = json!({ "transaction_type": "receipt", "product_id": seed.product,
                      "location_id": seed.a,
                      "quantity": { "value": "1", "uom": "EACH", "scale": 1000 } });
    let r = api.post("/v1/inventory/transactions", txn).await;
    envelope(&r, 400, "VALIDATION_FAILED");
    let path = format!("/v1/products/{}", seed.product);
    let r = api
        .put(&path, json!({ "name": "Renamed", "nmae": "typo" }), None)
        .await;
    envelope(&r, 400, "VALIDATION_FAILED");
    assert!(r.text.contains("nmae"), "{}", r.text);
    let r = api
        .put(
            &path,
            json!({ "price": { "amount": "1", "currency": "EUR", "vat": "20" } }),
            None,
        )
        .await;
    envelope(&r, 400, "VALIDATION_FAILED");
    let mut op = d.movement("receipt", &seed.product, &seed.a, "1");
    op["body"]["quantitty"] = json!({ "value": "5", "uom": "EACH" });
    let r = d.push(vec![op]).await;
    envelope(&r, 400, "VALIDATION_FAILED");
    assert_eq!(hub.on_hand(&seed.product, &seed.a).await, "0");
    assert_eq!(api.get(&path).await.data()["name"], "Widget");
}

#[tokio::test]
async fn huge_bodies_are_413() {
    let hub = TestHub::start().await;
    // Valid JSON, just too much of it: a string of 5 MiB.
    let big = format!(
        "{{\"sku\":\"BIG\",\"name\":\"{}\"}}",
        "x".repeat(5 * 1024 * 1024)
    );
    for (method, path, client) in body_routes(&hub).await {
        let key = uuid_tail();
        let r = client
            .send(
                method.clone(),
                &path,
                &[("Idempotency-Key", &key)],
                Some(big.clone().into_bytes()),
            )
            .await;
        envelope(&r, 413, "PAYLOAD_TOO_LARGE");
    }
    let r = post_bytes(
        &hub.api(),
        "/v1/allocations/alloc_nope/releases",
        big.as_bytes(),
    )
    .await;
    envelope(&r, 413, "PAYLOAD_TOO_LARGE");
    // Just under the limit is read (and refused for what it says, not for its size).
    let under = format!(
        "{{\"sku\":\"BIG\",\"name\":\"{}\"}}",
        "x".repeat(4 * 1024 * 1024 - 64)
    );
    let r = post_bytes(&hub.api(), "/v1/products", under.as_bytes()).await;
    envelope(&r, 400, "VALIDATION_FAILED");
    assert_eq!(hub.api().get("/v1/health").await.status, 200);
}

#[tokio::test]
async fn deeply_nested_json_is_400() {
    let hub = TestHub::start().await;
    let d = hub.enroll().await;
    let depth = 100_000;
    let arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let objects = format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
    let inside = format!("{{\"sku\":\"N\",\"name\":{arrays}}}");
    let unclosed = "[".repeat(depth);
    for body in [&arrays, &objects, &inside, &unclosed] {
        let r = post_bytes(&hub.api(), "/v1/products", body.as_bytes()).await;
        envelope(&r, 400, "VALIDATION_FAILED");
        let r = post_bytes(&d.client, "/v1/sync/push", body.as_bytes()).await;
        envelope(&r, 400, "VALIDATION_FAILED");
    }
    // Nesting within serde_json's limit but inside an op body.
    let nested = (0..100).fold(json!(1), |v, _| json!({ "a": v }));
    let mut op = d.movement("receipt", "prod_x", "loc_x", "1");
    op["body"]["quantity"] = nested;
    let r = d.push(vec![op]).await;
    envelope(&r, 400, "VALIDATION_FAILED");
    assert_eq!(hub.api().get("/v1/health").await.status, 200);
}

#[tokio::test]
async fn broken_utf8_in_the_body_is_400() {
    let hub = TestHub::start().await;
    let d = hub.enroll().await;
    let bodies: [&[u8]; 6] = [
        b"{\"sku\":\"\xff\xfe\",\"name\":\"x\"}",
        b"{\"sku\":\"\xc0\xaf\",\"name\":\"x\"}",
        b"{\"sku\":\"ok\",\"name\":\"\xe2\x82\"}",
        b"{\"sku\":\"\\ud800\",\"name\":\"x\"}",
        b"{\"sku\":\"\\udc00\\ud800\",\"name\":\"x\"}",
        b"{\"s\xffku\":\"X\",\"name\":\"x\"}",
    ];
    for body in bodies {
        let r = post_bytes(&hub.api(), "/v1/products", body).await;
        envelope(&r, 400, "VALIDATION_FAILED");
        let r = post_bytes(&d.client, "/v1/sync/push", body).await;
        envelope(&r, 400, "VALIDATION_FAILED");
        let r = hub
            .anonymous()
            .send(Method::POST, "/v1/oauth/token", &[], Some(body.to_vec()))
            .await;
        envelope(&r, 400, "VALIDATION_FAILED");
    }
    // A form body that is not UTF-8.
    let req = hub
        .http
        .post(format!("{}/v1/oauth/token", hub.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(&b"grant_type=refresh_token&refresh_token=\xff\xfe"[..]);
    let r = send_built(&Method::POST, "/v1/oauth/token", req).await;
    envelope(&r, 400, "VALIDATION_FAILED");
    let r = hub.api().get("/v1/products").await;
    assert_eq!(r.body["meta"]["pagination"]["total"], 0);
}

#[tokio::test]
async fn broken_utf8_in_query_and_path_is_400() {
    let hub = TestHub::start().await;
    let api = hub.api();
    for path in [
        "/v1/products?filters[sku]=%ff%fe",
        "/v1/products?filters[category]=%c3%28",
        "/v1/products?sort=%ff",
        "/v1/inventory/transactions?product_id=%ed%a0%80",
        "/v1/conflicts?status=%80",
        "/v1/inventory/delta?since_token=%ff",
        "/v1/products?%ff=1",
        "/v1/products/%ff",
        "/v1/products/prod_%c0%af/inventory",
        "/v1/inventory/transactions/%e2%82",
    ] {
        let r = api.get(path).await;
        assert_eq!(r.status, 400, "{path}: {}", r.text);
        assert_eq!(r.body["responseType"], "error", "{path}");
        assert!(
            ["VALIDATION_FAILED", "INVALID_SYNC_TOKEN"].contains(&r.code()),
            "{path}: {}",
            r.text
        );
    }
}

#[tokio::test]
async fn decimals_with_more_than_four_places_are_400() {
    let hub = TestHub::start().await;
    let seed = hub.seed().await;
    let api = hub.api();
    let receipt = |value: Value| {
        json!({ "transaction_type": "receipt", "product_id": seed.product, "location_id": seed.a,
                "quantity": { "value": value, "uom": "EACH" } })
    };
    for value in [
        json!("1.23456"),
        json!(1.23456),
        json!("0.00001"),
        json!("1.00000001"),
        json!(0.1e-10),
        json!("NaN"),
        json!("Infinity"),
        json!(""),
        json!("1,5"),
        json!("0x10"),
        json!("1e3"),
        json!("- 1"),
    ] {
        let r = api.post("/v1/inventory/transactions", receipt(value)).await;
        envelope(&r, 400, "VALIDATION_FAILED");
    }
    // Money too.
    let r = api
        .post(
            "/v1/inventory/transactions",
            json!({ "transaction_type": "receipt", "product_id": seed.product, "location_id": seed.a,
                    "quantity": { "value": "1", "uom": "EACH" },
                    "unit_cost": { "amount": "1.00001", "currency": "EUR" } }),
        )
        .await;
    envelope(&r, 400, "VALIDATION_FAILED");
    let r = api
        .post(
            "/v1/products",
            json!({ "sku": "D-1", "name": "x", "price": { "amount": 9.99999, "currency": "EUR" } }),
        )
        .await;
    envelope(&r, 400, "VALIDATION_FAILED");
    // Four places are fine, as a string or a JSON number.
    let r = api
        .post(
            "/v1/products",
            json!({ "sku": "D-2", "name": "x", "uom": "KG" }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let kg = r.data()["id"].as_str().unwrap().to_owned();
    for value in [json!("1.2345"), json!(0.0005)] {
        let r = api
            .post(
                "/v1/inventory/transactions",
                json!({ "transaction_type": "receipt", "product_id": kg, "location_id": seed.a,
                        "quantity": { "value": value, "uom": "KG" } }),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    assert_eq!(hub.on_hand(&kg, &seed.a).await, "1.235");
    assert_eq!(hub.on_hand(&seed.product, &seed.a).await, "0");
}

#[tokio::test]
async fn negative_zero_and_huge_quantities_are_refused() {
    let hub = TestHub::start().await;
    let seed = hub.seed().await;
    let api = hub.api();
    let txn = |kind: &str, value: &str| {
        json!({ "transaction_type": kind, "product_id": seed.product, "location_id": seed.a,
                "quantity": { "value": value, "uom": "EACH" } })
    };
    for (kind, value) in [
        ("receipt", "-5"),
        ("receipt", "0"),
        ("receipt", "-0"),
        ("shipment", "-1"),
        ("receipt", "0.5"),
        ("receipt", "99999999999999999999999999"),
        ("receipt", "-99999999999999999999999999"),
        ("receipt", "922337203685478"),
    ] {
        let r = api
            .post("/v1/inventory/transactions", txn(kind, value))
            .await;
        envelope(&r, 400, "VALIDATION_FAILED");
    }
    let r = api
        .post(
            "/v1/allocations",
            json!({ "product_id": seed.product, "location_id": seed.a,
                    "quantity": { "value": "-1", "uom": "EACH" } }),
        )
        .await;
    envelope(&r, 400, "VALIDATION_FAILED");
    let r = api
        .post(
            "/v1/inventory/transfers",
            json!({ "product_id": seed.product, "from_location_id": seed.a,
                    "to_location_id": seed.b, "quantity": { "value": "0", "uom": "EACH" } }),
        )
        .await;
    envelope(&r, 400, "VALIDATION_FAILED");
    // The largest quantity there is fits once; a second one would overflow on_hand: refused
    // as too large, not a 500, and nothing changes.
    let max = "922337203685477";
    let r = api
        .post("/v1/inventory/transactions", txn("receipt", max))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = api
        .post("/v1/inventory/transactions", txn("receipt", max))
        .await;
    assert!([400, 422].contains(&r.status), "{}", r.text);
    assert_eq!(r.body["responseType"], "error");
    assert_eq!(hub.on_hand(&seed.product, &seed.a).await, max);
    let r = api
        .post(
            "/v1/inventory/transactions",
            json!({ "transaction_type": "adjustment", "reason_code": "FOUND", "product_id": seed.product,
                    "location_id": seed.a, "quantity": { "value": max, "uom": "EACH" } }),
        )
        .await;
    assert!([400, 422].contains(&r.status), "{}", r.text);
    assert_eq!(hub.on_hand(&seed.product, &seed.a).await, max);
}

#[tokio::test]
async fn ids_without_the_right_prefix_are_400() {
    let hub = TestHub::start().await;
    let seed = hub.seed().await;
    let api = hub.api();
    let txn = |product: &str, location: &str| {
        json!({ "transaction_type": "receipt", "product_id": product, "location_id": location,
                "quantity": { "value": "1", "uom": "EACH" } })
    };
    let long = format!("prod_{}", "a".repeat(500));
    for (product, location) in [
        (seed.a.as_str(), seed.a.as_str()),
        (seed.product.as_str(), seed.product.as_str()),
        ("12345", seed.a.as_str()),
        ("", seed.a.as_str()),
        ("prod_", seed.a.as_str()),
        ("prod_a b", seed.a.as_str()),
        ("prod_'; DROP TABLE products;--", seed.a.as_str()),
        (long.as_str(), seed.a.as_str()),
    ] {
        let r = api
            .post("/v1/inventory/transactions", txn(product, location))
            .await;
        envelope(&r, 400, "VALIDATION_FAILED");
    }
    for body in [
        json!({ "id": "loc_123", "sku": "P-1", "name": "x" }),
        json!({ "id": "prod_ with space", "sku": "P-1", "name": "x" }),
    ] {
        let r = api.post("/v1/products", body).await;
        envelope(&r, 400, "VALIDATION_FAILED");
    }
    let r = api
        .post(
            "/v1/inventory/transactions",
            json!({ "id": "prod_1", "transaction_type": "receipt", "product_id": seed.product,
                    "location_id": seed.a, "quantity": { "value": "1", "uom": "EACH" } }),
        )
        .await;
    envelope(&r, 400, "VALIDATION_FAILED");
    assert_eq!(hub.on_hand(&seed.product, &seed.a).await, "0");
    assert_eq!(
        api.get("/v1/products").await.body["meta"]["pagination"]["total"],
        1
    );
}

#[tokio::test]
async fn path_ids_with_odd_characters_are_404_or_400() {
    let hub = TestHub::start().await;
    let seed = hub.seed().await;
    let api = hub.api();
    let long = "a".repeat(4000);
    let odd = [
        "%00",
        "prod_%00",
        "..%2F..%2Fetc%2Fpasswd",
        "'%20OR%201=1--",
        "%F0%9F%92%A9",
        "prod_x%0d%0aSet-Cookie:%20a=b",
        "%25",
        "..",
        "%20",
        "prod_%2A",
        long.as_str(),
    ];
    for id in odd {
        for path in [
            format!("/v1/products/{id}"),
            format!("/v1/products/{id}/inventory"),
            format!("/v1/locations/{id}/inventory"),
            format!("/v1/inventory/locations/{id}/products"),
            format!("/v1/inventory/transactions/{id}"),
            format!("/v1/allocations/{id}"),
            format!("/v1/conflicts/{id}"),
        ] {
            let r = api.get(&path).await;
            assert!([400, 404].contains(&r.status), "{path}: {}", r.text);
            assert_eq!(r.body["responseType"], "error", "{path}");
            assert!(r.header("set-cookie").is_none(), "{path}");
        }
        let r = api
            .put(
                &format!("/v1/products/{id}"),
                json!({ "name": "x" }),
                Some("\"version-1\""),
            )
            .await;
        assert!([400, 404].contains(&r.status), "{id}: {}", r.text);
        let r = api
            .post(&format!("/v1/allocations/{id}/releases"), json!({}))
            .await;
        assert!([400, 404].contains(&r.status), "{id}: {}", r.text);
    }
    // The real product is untouched.
    let r = api.get(&format!("/v1/products/{}", seed.product)).await;
    assert_eq!(r.data()["name"], "Widget");
}

#[tokio::test]
async fn garbage_header_bytes_are_4xx() {
    let hub = TestHub::start().await;
    let d = hub.enroll().await;
    let api = hub.api();
    let junk = HeaderValue::from_bytes(b"\xff\xfe\x80junk").unwrap();
    let get = Method::GET;
    let post = Method::POST;
    let product = json!({ "sku": "H-1", "name": "x" }).to_string();

    let cases: [(&Client, &Method, &str, &str, u16, &str); 9] = [
        (
            &api,
            &get,
            "/v1/products",
            "X-Organization-ID",
            400,
            "VALIDATION_FAILED",
        ),
        (
            &api,
            &post,
            "/v1/products",
            "Idempotency-Key",
            400,
            "VALIDATION_FAILED",
        ),
        (
            &api,
            &get,
            "/v1/products",
            "X-API-Key",
            401,
            "AUTHENTICATION_FAILED",
        ),
        (
            &d.client,
            &get,
            "/v1/products",
            "Authorization",
            401,
            "AUTHENTICATION_FAILED",
        ),
        (
            &api,
            &get,
            "/v1/products",
            "X-Branch-ID",
            400,
            "VALIDATION_FAILED",
        ),
        (
            &d.client,
            &get,
            "/v1/products",
            "X-Mobile-Device-Id",
            400,
            "VALIDATION_FAILED",
        ),
        (
            &api,
            &get,
            "/v1/inventory/delta",
            "X-Sync-Token",
            400,
            "INVALID_SYNC_TOKEN",
        ),
        (
            &api,
            &post,
            "/v1/products",
            "Content-Type",
            400,
            "VALIDATION_FAILED",
        ),
        (&api, &get, "/v1/products", "Accept-Encoding", 200, ""),
    ];
    for (client, method, path, header, status, code) in cases {
        let mut extra = vec![(header, junk.clone())];
        if *method == Method::POST && header != "Idempotency-Key" {
            extra.push(("Idempotency-Key", HeaderValue::from_static("k-junk")));
        }
        let mut req = built(client, method, path, &extra);
        if *method == Method::POST {
            if header != "Content-Type" {
                req = req.header("content-type", "application/json");
            }
            req = req.body(product.clone());
        }
        let r = send_built(method, path, req).await;
        if status == 200 {
            assert_eq!(r.status, 200, "{header}: {}", r.text);
        } else if header == "Content-Type" {
            // The body is JSON whatever the Content-Type says: accepted, or refused as 4xx.
            assert!(r.status == 201 || r.status == 400, "{}", r.text);
        } else {
            envelope(&r, status, code);
        }
    }
    // If-Match on a PUT.
    let seed = hub.seed().await;
    let path = format!("/v1/products/{}", seed.product);
    let req = built(&api, &Method::PUT, &path, &[("If-Match", junk.clone())])
        .header("content-type", "application/json")
        .body(json!({ "name": "renamed" }).to_string());
    let r = send_built(&Method::PUT, &path, req).await;
    envelope(&r, 400, "VALIDATION_FAILED");
    assert_eq!(api.get(&path).await.data()["name"], "Widget");
    // A caller's X-Request-ID that is not sane is replaced by the hub's own.
    let req = built(
        &api,
        &Method::GET,
        "/v1/products",
        &[("X-Request-ID", junk)],
    );
    let r = send_built(&Method::GET, "/v1/products", req).await;
    assert_eq!(r.status, 200);
    assert!(r.header("x-request-id").unwrap().starts_with("req_"));
    let r = api
        .send(
            Method::GET,
            "/v1/products",
            &[("X-Request-ID", "my-trace-42")],
            None,
        )
        .await;
    assert_eq!(r.header("x-request-id"), Some("my-trace-42"));
    assert_eq!(r.body["meta"]["request_id"], "my-trace-42");
}

#[tokio::test]
async fn enormous_headers_are_4xx() {
    let hub = TestHub::start().await;
    let api = hub.api();
    let big = "o".repeat(64 * 1024);
    let r = api
        .with("X-Organization-ID", &big)
        .get("/v1/products")
        .await;
    envelope(&r, 403, "PERMISSION_DENIED");
    assert!(!r.text.contains(&big[..1024]));
    let r = api
        .post_keyed("/v1/products", &big, json!({ "sku": "E-1", "name": "x" }))
        .await;
    envelope(&r, 400, "VALIDATION_FAILED");
    let r = api.with("X-API-Key", &big).get("/v1/products").await;
    envelope(&r, 401, "AUTHENTICATION_FAILED");
    let r = api
        .with("Authorization", &format!("Bearer {big}"))
        .get("/v1/products")
        .await;
    envelope(&r, 401, "AUTHENTICATION_FAILED");
    let r = api
        .with("X-Sync-Token", &big)
        .get("/v1/inventory/delta")
        .await;
    envelope(&r, 400, "INVALID_SYNC_TOKEN");
    // An Idempotency-Key just over the limit of 255.
    let r = api
        .post_keyed(
            "/v1/products",
            &"k".repeat(256),
            json!({ "sku": "E-2", "name": "x" }),
        )
        .await;
    envelope(&r, 400, "VALIDATION_FAILED");
    let r = api
        .post_keyed("/v1/products", "   ", json!({ "sku": "E-3", "name": "x" }))
        .await;
    envelope(&r, 400, "VALIDATION_FAILED");
    assert_eq!(
        api.get("/v1/products").await.body["meta"]["pagination"]["total"],
        0
    );
}

#[tokio::test]
async fn wrong_methods_are_405_envelopes() {
    let hub = TestHub::start().await;
    let d = hub.enroll().await;
    let api = hub.api();
    let cases = [
        (Method::PATCH, "/v1/products", &api),
        (Method::DELETE, "/v1/products", &api),
        (Method::PATCH, "/v1/products/prod_x", &api),
        (Method::POST, "/v1/products/prod_x", &api),
        (Method::DELETE, "/v1/inventory/locations", &api),
        (Method::PUT, "/v1/health", &api),
        (Method::POST, "/v1/health", &api),
        (Method::GET, "/v1/sync/push", &d.client),
        (Method::POST, "/v1/inventory/delta", &d.client),
        (Method::DELETE, "/v1/conflicts", &api),
        (Method::GET, "/v1/oauth/token", &api),
        (Method::GET, "/v1/auth/devices", &api),
        (Method::POST, "/v1/ws", &d.client),
        (Method::PUT, "/v1/inventory/transactions/batch", &api),
        (Method::DELETE, "/v1/openapi.json", &api),
    ];
    for (method, path, client) in cases {
        let r = client
            .send(method.clone(), path, &[], Some(b"{}".to_vec()))
            .await;
        // docs/protocol.md: a wrong method is 405 with code NOT_FOUND, and `Allow` says which.
        envelope(&r, 405, "NOT_FOUND");
        let allow = r.header("allow").unwrap_or_default();
        assert!(!allow.is_empty(), "{method} {path}: no Allow header");
        assert!(
            !allow.contains(method.as_str()),
            "{method} {path}: Allow {allow}"
        );
    }
    let r = api
        .send(Method::PATCH, "/v1/products/prod_x", &[], None)
        .await;
    let mut allow: Vec<&str> = r
        .header("allow")
        .unwrap()
        .split(',')
        .map(str::trim)
        .collect();
    allow.sort_unstable();
    assert_eq!(allow, ["DELETE", "GET", "HEAD", "PUT"]);
    // Without any credential too (the method is wrong whoever asks).
    let r = hub
        .anonymous()
        .send(Method::PATCH, "/v1/products", &[], None)
        .await;
    assert_eq!(r.status, 405, "{}", r.text);
}

#[tokio::test]
async fn unknown_routes_are_404_envelopes() {
    let hub = TestHub::start().await;
    for client in [hub.api(), hub.anonymous()] {
        for path in [
            "/",
            "/v1",
            "/v1/",
            "/v1/nope",
            "/v2/products",
            "/V1/PRODUCTS",
            "/v1//products",
            "/v1/products/prod_x/inventory/extra",
            "/v1/products/",
            "/v1/health/",
            "/.env",
            "/v1/inventory",
        ] {
            for method in [Method::GET, Method::POST] {
                let r = client.send(method.clone(), path, &[], None).await;
                envelope(&r, 404, "NOT_FOUND");
            }
        }
    }
}

#[tokio::test]
async fn query_params_of_wrong_types_are_400() {
    let hub = TestHub::start().await;
    let api = hub.api();
    for path in [
        "/v1/products?page=abc",
        "/v1/products?pageSize=-1",
        "/v1/products?page=0",
        "/v1/products?pageSize=0",
        "/v1/products?page=1.5",
        "/v1/products?page=-1",
        "/v1/products?page=99999999999999999999999",
        "/v1/products?page=9223372036854775809&pageSize=1",
        "/v1/products?page=4611686018427387904&pageSize=200",
        "/v1/products?limit=abc",
        "/v1/products?limit=0",
        "/v1/products?after_key=%%%",
        "/v1/products?after_key=bm90IGEgY3Vyc29y",
        "/v1/products?sort=-",
        "/v1/products?fields=,",
        "/v1/inventory/locations?page=x",
        "/v1/inventory/transactions?pageSize=abc",
        "/v1/inventory/transactions?start_date=yesterday",
        "/v1/inventory/transactions?end_date=2026-13-45",
        "/v1/conflicts?status=weird",
        "/v1/conflicts?page=-3",
        "/v1/inventory/delta?limit=abc",
        "/v1/inventory/delta?limit=0",
        "/v1/inventory/delta?limit=-1",
        "/v1/inventory/delta?limit=1001",
    ] {
        let r = api.get(path).await;
        envelope(&r, 400, "VALIDATION_FAILED");
    }
    // A page far beyond the end is just empty.
    let r = api.get("/v1/products?page=1000000&pageSize=200").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data().as_array().unwrap().len(), 0);
}

fn push_body(d: &Device, n: usize, seed: &Seed) -> Value {
    let ops: Vec<Value> = (0..n)
        .map(|_| d.movement("receipt", &seed.product, &seed.a, "1"))
        .collect();
    json!({ "ops": ops })
}

#[tokio::test]
async fn push_with_no_ops_or_too_many_is_400() {
    let hub = TestHub::start().await;
    let seed = hub.seed().await;
    let d = hub.enroll().await;
    let r = d.client.post("/v1/sync/push", json!({ "ops": [] })).await;
    envelope(&r, 400, "VALIDATION_FAILED");
    assert!(r.body["error"]["details"]["ops"].is_array(), "{}", r.text);
    let r = d.client.post("/v1/sync/push", json!({})).await;
    envelope(&r, 400, "VALIDATION_FAILED");
    let r = d
        .client
        .post("/v1/sync/push", json!({ "ops": "all of them" }))
        .await;
    envelope(&r, 400, "VALIDATION_FAILED");
    let r = d
        .client
        .post("/v1/sync/push", push_body(&d, 1001, &seed))
        .await;
    envelope(&r, 400, "VALIDATION_FAILED");
    assert!(r.body["error"]["details"]["ops"].is_array(), "{}", r.text);
    assert_eq!(hub.on_hand(&seed.product, &seed.a).await, "0");
    // 1000 is the most, and it fits.
    let r = d
        .client
        .post("/v1/sync/push", push_body(&d, 1000, &seed))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["results"].as_array().unwrap().len(), 1000);
    assert_eq!(hub.on_hand(&seed.product, &seed.a).await, "1000");
}

#[tokio::test]
async fn push_op_of_unknown_kind_or_bad_shape_is_400_and_nothing_applies() {
    let hub = TestHub::start().await;
    let seed = hub.seed().await;
    let d = hub.enroll().await;
    let good = || d.movement("receipt", &seed.product, &seed.a, "1");
    let mut unknown = d.op("teleport", json!({ "product_id": seed.product }));
    unknown["kind"] = json!("teleport");
    let mut no_kind = good();
    no_kind.as_object_mut().unwrap().remove("kind");
    let mut no_body = good();
    no_body.as_object_mut().unwrap().remove("body");
    let mut null_body = good();
    null_body["body"] = Value::Null;
    let mut neg_seq = good();
    neg_seq["device_seq"] = json!(-1);
    let mut str_seq = good();
    str_seq["device_seq"] = json!("one");
    let mut bad_op_id = good();
    bad_op_id["op_id"] = json!("not-an-op-id");
    let mut bad_hlc = good();
    bad_hlc["hlc"] = json!("yesterday");
    let mut kind_mismatch = good();
    kind_mismatch["kind"] = json!("allocation_release");
    for bad in [
        unknown,
        no_kind,
        no_body,
        null_body,
        neg_seq,
        str_seq,
        bad_op_id,
        bad_hlc,
        kind_mismatch,
        json!(42),
        json!(null),
    ] {
        let r = d.push(vec![good(), bad.clone()]).await;
        envelope(&r, 400, "VALIDATION_FAILED");
    }
    assert_eq!(hub.on_hand(&seed.product, &seed.a).await, "0");
    // The device can go on pushing.
    let r = d.push(vec![good()]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(hub.on_hand(&seed.product, &seed.a).await, "1");
}

#[tokio::test]
async fn duplicate_op_ids_in_one_batch_are_400() {
    let hub = TestHub::start().await;
    let seed = hub.seed().await;
    let d = hub.enroll().await;
    let first = d.movement("receipt", &seed.product, &seed.a, "2");
    let mut twin = d.movement("receipt", &seed.product, &seed.a, "3");
    twin["op_id"] = first["op_id"].clone();
    let r = d.push(vec![first.clone(), twin]).await;
    envelope(&r, 400, "VALIDATION_FAILED");
    assert!(r.body["error"]["details"]["ops"].is_array(), "{}", r.text);
    assert_eq!(hub.on_hand(&seed.product, &seed.a).await, "0");
    // The op itself was not recorded: pushed alone it applies.
    let r = d.push(vec![first]).await;
    assert_eq!(r.data()["results"][0]["status"], "applied", "{}", r.text);
    assert_eq!(hub.on_hand(&seed.product, &seed.a).await, "2");
}

#[tokio::test]
async fn delta_with_a_garbage_token_is_400_invalid_sync_token() {
    let hub = TestHub::start().await;
    hub.seed().await;
    let api = hub.api();
    let r = api.get("/v1/inventory/delta").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let token = r.body["meta"]["next_sync_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let truncated = token[..token.len() / 2].to_owned();
    let mut flipped = token.clone().into_bytes();
    let last = flipped.len() - 1;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    let other = hub.other_api().get("/v1/inventory/delta").await;
    let other_token = other.body["meta"]["next_sync_token"]
        .as_str()
        .unwrap()
        .to_owned();
    for bad in [
        "garbage".to_owned(),
        "a.b".to_owned(),
        "....".to_owned(),
        truncated,
        flipped,
        format!("{token}A"),
        format!("{token}.{token}"),
        other_token,
        "%00".to_owned(),
    ] {
        let r = api
            .get(&format!("/v1/inventory/delta?since_token={bad}"))
            .await;
        envelope(&r, 400, "INVALID_SYNC_TOKEN");
        let r = api
            .send(
                Method::GET,
                "/v1/inventory/delta",
                &[("X-Sync-Token", &bad)],
                None,
            )
            .await;
        envelope(&r, 400, "INVALID_SYNC_TOKEN");
    }
    // Two different tokens at once.
    let r = api
        .send(
            Method::GET,
            &format!("/v1/inventory/delta?since_token={token}"),
            &[("X-Sync-Token", "garbage")],
            None,
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    // Control: the real token works both ways.
    let r = api
        .get(&format!("/v1/inventory/delta?since_token={token}"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = api
        .send(
            Method::GET,
            "/v1/inventory/delta",
            &[("X-Sync-Token", &token)],
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn websocket_upgrade_as_plain_get_is_400() {
    let hub = TestHub::start().await;
    let d = hub.enroll().await;
    for client in [hub.api(), d.client.clone()] {
        let r = client.get("/v1/ws").await;
        envelope(&r, 400, "VALIDATION_FAILED");
        // Half an upgrade: Upgrade header without the key and version.
        let r = client
            .send(
                Method::GET,
                "/v1/ws",
                &[("Upgrade", "websocket"), ("Connection", "upgrade")],
                None,
            )
            .await;
        assert!(
            (400..500).contains(&r.status),
            "half upgrade: {} {}",
            r.status,
            r.text
        );
        assert_eq!(r.body["responseType"], "error");
    }
    // An unknown WebSocket version.
    let r = hub
        .api()
        .send(
            Method::GET,
            "/v1/ws",
            &[
                ("Upgrade", "websocket"),
                ("Connection", "upgrade"),
                ("Sec-WebSocket-Version", "12"),
                ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ],
            None,
        )
        .await;
    assert!((400..500).contains(&r.status), "{} {}", r.status, r.text);
}

/// Writes raw bytes to the hub and reads what comes back (until the hub closes, or the first
/// response when it keeps the connection open). Panics on a hang.
async fn raw(hub: &TestHub, bytes: &[u8], half_close: bool) -> String {
    let addr = hub.base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    // The hub may refuse early and close while we still write: that is a clean refusal.
    let _ = s.write_all(bytes).await;
    if half_close {
        let _ = s.shutdown().await;
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let read = async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    out.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&out);
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let len = head
                            .lines()
                            .find_map(|l| {
                                let (n, v) = l.split_once(':')?;
                                n.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse::<usize>().ok())?
                            })
                            .unwrap_or(0);
                        if body.len() >= len {
                            break;
                        }
                    }
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .unwrap_or_else(|_| panic!("the hub hung on {:?}", String::from_utf8_lossy(bytes)));
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn broken_http_gets_400_or_a_clean_close_and_the_hub_lives_on() {
    let hub = TestHub::start().await;
    let key = hub.creds.api_key.clone();
    let huge_header = format!(
        "GET /v1/products HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "b".repeat(1024 * 1024)
    );
    let many_headers = format!(
        "GET /v1/products HTTP/1.1\r\nHost: x\r\n{}\r\n",
        (0..500)
            .map(|i| format!("X-H{i}: v\r\n"))
            .collect::<String>()
    );
    let cases: Vec<(Vec<u8>, bool)> = vec![
        (b"GARBAGE\r\n\r\n".to_vec(), false),
        (b"\x00\x01\x02\x03\r\n\r\n".to_vec(), false),
        (b"GET /v1/health HTTP/9.9\r\nHost: x\r\n\r\n".to_vec(), false),
        (b"GET /v1/products?x=\xff HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), false),
        (b"GET /v1/pro ducts HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), false),
        (b"GET /v1/health HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n".to_vec(), false),
        (b"GET /v1/health HTTP/1.1\r\nHo st: x\r\n\r\n".to_vec(), false),
        (
            b"POST /v1/products HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}".to_vec(),
            false,
        ),
        (
            b"POST /v1/products HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n{}".to_vec(),
            false,
        ),
        (
            b"POST /v1/products HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 5\r\n\r\n{}"
                .to_vec(),
            false,
        ),
        (
            b"POST /v1/products HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"
                .to_vec(),
            false,
        ),
        (
            format!(
                "POST /v1/products HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\nX-Organization-ID: org_demo\r\nIdempotency-Key: k1\r\nContent-Length: 100\r\n\r\n{{\"sku\":"
            )
            .into_bytes(),
            true,
        ),
        (huge_header.into_bytes(), false),
        (many_headers.into_bytes(), false),
        (b"GET /v1/health HTTP/1.1\r\n".to_vec(), true),
    ];
    for (bytes, half_close) in cases {
        let answer = raw(&hub, &bytes, half_close).await;
        let shown = String::from_utf8_lossy(&bytes[..bytes.len().min(80)]).into_owned();
        if answer.is_empty() {
            // A clean close: acceptable for bytes that are not HTTP.
        } else {
            let status: u16 = answer
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("{shown:?}: not an HTTP answer: {answer:?}"));
            assert!(
                (400..500).contains(&status),
                "{shown:?}: answered {status}: {answer}"
            );
        }
        assert_eq!(hub.anonymous().get("/v1/health").await.status, 200);
    }
    // A chunked body over the limit: 413 or a clean close, never a 5xx.
    let mut chunked = format!(
        "POST /v1/products HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\nX-Organization-ID: org_demo\r\nIdempotency-Key: k2\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    let chunk = vec![b' '; 64 * 1024];
    for _ in 0..80 {
        chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend_from_slice(&chunk);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let answer = raw(&hub, &chunked, false).await;
    if !answer.is_empty() {
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer:.300}");
        assert!(answer.contains("PAYLOAD_TOO_LARGE"), "{answer:.300}");
    }
    assert_eq!(hub.anonymous().get("/v1/health").await.status, 200);
    assert_eq!(
        hub.api().get("/v1/products").await.body["meta"]["pagination"]["total"],
        0
    );
}

#[tokio::test]
async fn odd_strings_are_stored_or_refused_and_never_break_reads() {
    let hub = TestHub::start().await;
    let api = hub.api();
    let long = "n".repeat(100_000);
    for (sku, name) in [
        ("NUL\u{0}SKU", "nul"),
        ("RTL-\u{202e}", "right to left"),
        ("EMOJI-💩", "💩💩💩"),
        ("LONG", long.as_str()),
        ("<script>", "<img src=x onerror=alert(1)>"),
        ("QUOTE-\"'\\", "\"'\\"),
        ("", "empty sku"),
        ("SPACE", "   "),
    ] {
        let r = api
            .post("/v1/products", json!({ "sku": sku, "name": name }))
            .await;
        assert!(
            r.status == 201 || r.status == 400,
            "{sku:?}: {} {}",
            r.status,
            r.text
        );
        if r.status == 201 {
            let id = r.data()["id"].as_str().unwrap();
            let got = api.get(&format!("/v1/products/{id}")).await;
            assert_eq!(got.status, 200);
            assert_eq!(got.data()["sku"], sku);
        } else {
            envelope(&r, 400, "VALIDATION_FAILED");
        }
    }
    let r = api.get("/v1/products?pageSize=200").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = api.get("/v1/inventory/delta").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = api
        .get("/v1/products?filters[sku]=%00&filters[category]=%F0%9F%92%A9")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

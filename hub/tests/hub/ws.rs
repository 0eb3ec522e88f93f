//! `GET /v1/ws` over real WebSocket frames: subscriptions and their filters, `seq` order,
//! unsubscribe, ping/pong, bad frames, the idle drop, refused upgrades and shutdown.
//!
//! Every read has a timeout, so no test can hang; "nothing else arrives" means nothing within
//! [`QUIET`] after the last expected frame (events go out before the write's response does, so
//! a frame that was going to come is already on its way when we start waiting).

use crate::common::*;
use crate::openapi;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::sync::OnceLock;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Longest wait for a frame that must come.
const WAIT: Duration = Duration::from_secs(5);
/// How long "nothing else arrives" is watched for.
const QUIET: Duration = Duration::from_millis(300);

/// Opens `ws://ADDR/v1/ws` with these headers.
async fn connect(hub: &TestHub, headers: &[(&str, &str)]) -> Result<Ws, WsError> {
    let url = format!("{}/v1/ws", hub.base.replacen("http://", "ws://", 1));
    let mut req = url.into_client_request()?;
    for (n, v) in headers {
        req.headers_mut().insert(
            HeaderName::from_bytes(n.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    timeout(WAIT, connect_async(req))
        .await
        .expect("WebSocket handshake timed out")
        .map(|(ws, res)| {
            assert_eq!(res.status(), 101);
            assert!(res.headers().contains_key("x-request-id"));
            ws
        })
}

/// Headers of the demo organization's API key.
fn api_headers(hub: &TestHub) -> Vec<(&str, &str)> {
    vec![
        ("X-API-Key", hub.creds.api_key.as_str()),
        ("X-Organization-ID", hub.creds.organization_id.as_str()),
    ]
}

/// Headers of an enrolled device.
fn device_headers<'a>(hub: &'a TestHub, d: &'a Device) -> Vec<(&'a str, String)> {
    vec![
        ("Authorization", format!("Bearer {}", d.access)),
        ("X-Organization-ID", hub.creds.organization_id.clone()),
        ("X-Mobile-Device-Id", d.id.clone()),
    ]
}

/// A connection with the demo organization's API key.
async fn open(hub: &TestHub) -> Ws {
    connect(hub, &api_headers(hub)).await.unwrap()
}

/// The refused upgrade's status and envelope (checked against the OpenAPI document).
async fn refused(hub: &TestHub, headers: &[(&str, &str)]) -> (u16, Value) {
    match connect(hub, headers).await {
        Ok(_) => panic!("the upgrade was accepted"),
        Err(WsError::Http(res)) => {
            let status = res.status().as_u16();
            let body = res.body().clone().unwrap_or_default();
            let ct = res
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok());
            openapi::check_now("GET", "/v1/ws", status, ct, &body).unwrap();
            (status, serde_json::from_slice(&body).unwrap())
        }
        Err(e) => panic!("expected an HTTP refusal, got {e}"),
    }
}

async fn send(ws: &mut Ws, frame: Value) {
    send_text(ws, &frame.to_string()).await;
}

async fn send_text(ws: &mut Ws, text: &str) {
    timeout(WAIT, ws.send(Message::text(text)))
        .await
        .expect("send timed out")
        .unwrap();
}

/// `docs/openapi.json` with one made-up route whose body is any frame the hub may send
/// (`WsServerFrame` or `WsChangeFrame`), so frames are checked by the same validator.
fn frame_spec() -> &'static openapi::Spec {
    static SPEC: OnceLock<openapi::Spec> = OnceLock::new();
    SPEC.get_or_init(|| {
        let mut doc = openapi::spec().doc().clone();
        doc["paths"] = json!({ "/ws-frame": { "get": { "responses": { "200": {
            "description": "One frame the hub sends.",
            "content": { "application/json": { "schema": { "oneOf": [
                { "$ref": "#/components/schemas/WsServerFrame" },
                { "$ref": "#/components/schemas/WsChangeFrame" }
            ] } } }
        } } } } });
        openapi::Spec::from_value(doc)
    })
}

/// Asserts a frame conforms to the OpenAPI document.
fn check_frame(v: &Value) {
    if let Err(e) = frame_spec().check("GET", "/ws-frame", 200, Some("application/json"), Some(v)) {
        panic!("frame does not conform to docs/openapi.json: {e}\nframe: {v}");
    }
}

/// The next JSON frame that is not the hub's keep-alive `ping`; `None` when nothing comes
/// within `within`. Panics on a closed connection.
async fn next_within(ws: &mut Ws, within: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let msg = match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return None,
            Ok(None) => panic!("the connection closed"),
            Ok(Some(Err(e))) => panic!("the connection failed: {e}"),
            Ok(Some(Ok(m))) => m,
        };
        match msg {
            Message::Text(t) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                check_frame(&v);
                if v["type"] != "ping" {
                    return Some(v);
                }
            }
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected message {other:?}"),
        }
    }
}

/// The next frame, which must come.
async fn next(ws: &mut Ws) -> Value {
    next_within(ws, WAIT)
        .await
        .expect("no frame arrived in time")
}

/// Asserts nothing (but keep-alives) arrives for [`QUIET`].
async fn assert_quiet(ws: &mut Ws) {
    if let Some(f) = next_within(ws, QUIET).await {
        panic!("unexpected frame: {f}");
    }
}

/// Subscribes; returns the subscription id.
async fn subscribe(ws: &mut Ws, channels: &[&str], filters: Value) -> String {
    send(
        ws,
        json!({ "type": "subscribe", "channels": channels, "filters": filters }),
    )
    .await;
    let f = next(ws).await;
    assert_eq!(f["type"], "subscribed", "{f}");
    assert_eq!(f["channels"], json!(channels));
    let id = f["subscription_id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("sub_"), "{id}");
    id
}

/// `n` change frames, which must come.
async fn frames(ws: &mut Ws, n: usize) -> Vec<Value> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(next(ws).await);
    }
    out
}

/// Asserts `seq` grows strictly from frame to frame.
fn assert_seq_increasing(frames: &[Value]) {
    let seqs: Vec<u64> = frames.iter().map(|f| f["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "seq: {seqs:?}");
}

/// Asserts the connection still answers.
async fn assert_alive(ws: &mut Ws) {
    send(ws, json!({ "type": "ping" })).await;
    assert_eq!(next(ws).await, json!({ "type": "pong" }));
}

/// A product of a category; returns its id.
async fn product(hub: &TestHub, category: &str) -> String {
    let r = hub
        .api()
        .post(
            "/v1/products",
            json!({ "sku": format!("SKU-{}", uuid_tail()), "name": "Thing", "category": category }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.data()["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_subscriber_gets_committed_changes_with_increasing_seq() {
    let hub = TestHub::start().await;
    let seed = hub.seed().await;
    let mut ws = open(&hub).await;
    subscribe(&mut ws, &["inventory.updates"], json!({})).await;

    hub.receive(&seed.product, &seed.a, "5").await;
    hub.receive(&seed.product, &seed.a, "2").await;
    let got = frames(&mut ws, 2).await;
    let f = &got[0];
    assert_eq!(f["type"], "inventory.update");
    assert!(f["timestamp"].as_str().unwrap().ends_with('Z'), "{f}");
    let d = &f["data"];
    assert_eq!(d["product_id"], seed.product.as_str());
    assert_eq!(d["location_id"], seed.a.as_str());
    assert_eq!(d["branch_id"], "br_main");
    assert_eq!(d["previous_quantity"], "0");
    assert_eq!(d["current_quantity"], "5");
    assert_eq!(d["available_quantity"], "5");
    assert_eq!(d["allocated_quantity"], "0");
    assert_eq!(d["change_reason"], "receipt");
    assert!(d["transaction_id"].as_str().unwrap().starts_with("txn_"));
    assert_eq!(d["version"], 1);
    assert_eq!(got[1]["data"]["previous_quantity"], "5");
    assert_eq!(got[1]["data"]["current_quantity"], "7");
    assert_eq!(got[1]["data"]["version"], 2);

    // A device's pushed batch: one frame per op, in seq order, after the REST ones.
    let device = hub.enroll().await;
    let ops: Vec<Value> = (0..10)
        .map(|i| {
            let loc = if i % 2 == 0 { &seed.a } else { &seed.b };
            device.movement("receipt", &seed.product, loc, "1")
        })
        .collect();
    let r = device.push(ops).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mut all = got;
    all.extend(frames(&mut ws, 10).await);
    assert_seq_increasing(&all);
    assert_eq!(all[10]["data"]["location_id"], seed.a.as_str());
    assert_eq!(all[10]["data"]["current_quantity"], "12");
    assert_eq!(all[11]["data"]["location_id"], seed.b.as_str());
    assert_eq!(all[11]["data"]["current_quantity"], "5");
    assert_quiet(&mut ws).await;
}

#[tokio::test]
async fn a_device_subscribes_with_its_own_headers() {
    let hub = TestHub::start().await;
    let seed = hub.seed().await;
    let device = hub.enroll().await;
    let headers = device_headers(&hub, &device);
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let mut ws = connect(&hub, &headers).await.unwrap();
    subscribe(&mut ws, &["inventory.updates"], json!({})).await;
    hub.receive(&seed.product, &seed.b, "3").await;
    let f = next(&mut ws).await;
    assert_eq!(f["data"]["location_id"], seed.b.as_str());
    assert_eq!(f["data"]["current_quantity"], "3");
}

#[tokio::test]
async fn a_location_filter_delivers_exactly_that_location() {
    let hub = TestHub::start().await;
    let seed = hub.seed().await;
    let mut ws = open(&hub).await;
    subscribe(
        &mut ws,
        &["inventory.updates"],
        json!({ "location_id": seed.a }),
    )
    .await;
    // 8 changes, 3 of them at `a`.
    let at_a = [false, true, false, false, true, false, true, false];
    for &a in &at_a {
        let loc = if a { &seed.a } else { &seed.b };
        hub.receive(&seed.product, loc, "1").await;
    }
    let got = frames(&mut ws, 3).await;
    for (i, f) in got.iter().enumerate() {
        assert_eq!(f["data"]["location_id"], seed.a.as_str(), "{f}");
        assert_eq!(f["data"]["current_quantity"], format!("{}", i + 1));
    }
    assert_seq_increasing(&got);
    assert_quiet(&mut ws).await;
}

#[tokio::test]
async fn a_category_filter_delivers_exactly_that_category() {
    let hub = TestHub::start().await;
    let seed = hub.seed().await; // category "tools"
    let food = product(&hub, "food").await;
    let mut ws = open(&hub).await;
    subscribe(
        &mut ws,
        &["inventory.updates", "products.changes"],
        json!({ "product_category": "food" }),
    )
    .await;
    // 7 stock changes, 3 of them of the food product; then one product edit of each.
    for (i, loc) in [
        &seed.a, &seed.b, &seed.a, &seed.b, &seed.a, &seed.b, &seed.a,
    ]
    .iter()
    .enumerate()
    {
        let p = if i % 2 == 0 { &seed.product } else { &food };
        hub.receive(p, loc, "2").await;
    }
    // (i = 1, 3, 5 are the food product: 3 changes)
    for p in [&seed.product, &food] {
        let r = hub
            .api()
            .put(
                &format!("/v1/products/{p}"),
                json!({ "name": "Renamed" }),
                Some("\"version-1\""),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let got = frames(&mut ws, 4).await;
    for f in &got[..3] {
        assert_eq!(f["type"], "inventory.update", "{f}");
        assert_eq!(f["data"]["product_id"], food.as_str());
    }
    assert_eq!(got[3]["type"], "product.update", "{}", got[3]);
    assert_eq!(got[3]["data"]["product_id"], food.as_str());
    assert_eq!(got[3]["data"]["version"], 2);
    assert_seq_increasing(&got);
    assert_quiet(&mut ws).await;
}

#[tokio::test]
async fn a_deleted_product_sends_product_deleted() {
    let hub = TestHub::start().await;
    let id = product(&hub, "tools").await;
    let mut ws = open(&hub).await;
    subscribe(&mut ws, &["products.changes"], json!({})).await;
    let r = hub
        .api()
        .delete(&format!("/v1/products/{id}"), Some("\"version-1\""))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let f = next(&mut ws).await; // checked against the OpenAPI document
    assert_eq!(f["type"], "product.deleted", "{f}");
    assert_eq!(f["data"]["product_id"], id.as_str());
}

#[tokio::test]
async fn channels_select_what_arrives() {
    let hub = TestHub::start().await;
    let seed = hub.seed().await;
    let mut products = open(&hub).await;
    subscribe(&mut products, &["products.changes"], json!({})).await;
    let mut inventory = open(&hub).await;
    subscribe(&mut inventory, &["inventory.updates"], json!({})).await;
    let mut conflicts = open(&hub).await;
    subscribe(&mut conflicts, &["conflicts.changes"], json!({})).await;
    // Two overlapping subscriptions on one connection: still one frame per change.
    let mut both = open(&hub).await;
    subscribe(&mut both, &["inventory.updates"], json!({})).await;
    subscribe(
        &mut both,
        &["inventory.updates"],
        json!({ "location_id": seed.a }),
    )
    .await;

    // 3 stock changes, 1 product edit, 1 rejected device op (a conflict record; no stock change).
    for _ in 0..3 {
        hub.receive(&seed.product, &seed.a, "1").await;
    }
    let r = hub
        .api()
        .put(
            &format!("/v1/products/{}", seed.product),
            json!({ "name": "Renamed" }),
            Some("\"version-1\""),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let device = hub.enroll().await;
    let r = device
        .push(vec![device.movement(
            "shipment",
            &seed.product,
            &seed.a,
            "100",
        )])
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["results"][0]["status"], "rejected", "{}", r.text);

    let f = next(&mut products).await;
    assert_eq!(f["type"], "product.update", "{f}");
    assert_eq!(f["data"]["product_id"], seed.product.as_str());
    assert_quiet(&mut products).await;

    let got = frames(&mut inventory, 3).await;
    assert!(got.iter().all(|f| f["type"] == "inventory.update"));
    assert_seq_increasing(&got);
    assert_quiet(&mut inventory).await;

    let f = next(&mut conflicts).await;
    assert_eq!(f["type"], "conflict.created", "{f}");
    assert_eq!(f["data"]["product_id"], seed.product.as_str());
    assert!(
        f["data"]["conflict_id"]
            .as_str()
            .unwrap()
            .starts_with("conf_")
    );
    assert_quiet(&mut conflicts).await;

    let got = frames(&mut both, 3).await;
    assert_seq_increasing(&got);
    assert_quiet(&mut both).await;
}

#[tokio::test]
async fn other_organizations_and_branches_see_nothing() {
    let hub = TestHub::start().await;
    let seed = hub.seed().await; // in br_main
    let mut other = connect(
        &hub,
        &[("X-API-Key", OTHER_KEY), ("X-Organization-ID", OTHER_ORG)],
    )
    .await
    .unwrap();
    subscribe(&mut other, &["inventory.updates"], json!({})).await;
    let mut north = connect(
        &hub,
        &[
            ("X-API-Key", NORTH_KEY),
            ("X-Organization-ID", &hub.creds.organization_id),
        ],
    )
    .await
    .unwrap();
    subscribe(&mut north, &["inventory.updates"], json!({})).await;
    let mut main = open(&hub).await;
    subscribe(&mut main, &["inventory.updates"], json!({})).await;

    hub.receive(&seed.product, &seed.a, "4").await;
    assert_eq!(next(&mut main).await["data"]["current_quantity"], "4");
    assert_quiet(&mut other).await;
    assert_quiet(&mut north).await;
}

#[tokio::test]
async fn unsubscribe_stops_frames() {
    let hub = TestHub::start().await;
    let seed = hub.seed().await;
    let mut ws = open(&hub).await;
    let id = subscribe(&mut ws, &["inventory.updates"], json!({})).await;
    hub.receive(&seed.product, &seed.a, "1").await;
    assert_eq!(next(&mut ws).await["type"], "inventory.update");

    send(
        &mut ws,
        json!({ "type": "unsubscribe", "subscription_id": id }),
    )
    .await;
    assert_eq!(
        next(&mut ws).await,
        json!({ "type": "unsubscribed", "subscription_id": id })
    );
    hub.receive(&seed.product, &seed.a, "1").await;
    hub.receive(&seed.product, &seed.b, "1").await;
    assert_quiet(&mut ws).await;
    assert_alive(&mut ws).await;
}

#[tokio::test]
async fn a_client_ping_gets_a_pong() {
    let hub = TestHub::start().await;
    let mut ws = open(&hub).await;
    for _ in 0..3 {
        assert_alive(&mut ws).await;
    }
    // The client's answer to the hub's ping is taken silently.
    send(&mut ws, json!({ "type": "pong" })).await;
    assert_quiet(&mut ws).await;
}

#[tokio::test]
async fn a_bad_frame_gets_an_error_frame_and_the_connection_stays_up() {
    let hub = TestHub::start().await;
    let seed = hub.seed().await;
    let mut ws = open(&hub).await;
    let bad: Vec<Message> = vec![
        Message::text("this is not JSON"),
        Message::text("{\"type\":\"subscribe\""),
        Message::text("[1,2,3]"),
        Message::text(json!({ "type": "launch_rockets" }).to_string()),
        Message::text(json!({ "channels": ["inventory.updates"] }).to_string()),
        Message::text(json!({ "type": "subscribe", "channels": ["stock.everything"] }).to_string()),
        Message::text(json!({ "type": "subscribe", "channels": [] }).to_string()),
        Message::text(json!({ "type": "subscribe", "channels": "inventory.updates" }).to_string()),
        Message::text(
            json!({ "type": "subscribe", "channels": ["inventory.updates"], "filters": { "colour": "red" } })
                .to_string(),
        ),
        Message::text(json!({ "type": "unsubscribe", "subscription_id": "sub_nope" }).to_string()),
        Message::binary(b"{\"type\":\"ping\"}".to_vec()),
        // Bigger than the hub's read buffer, within the frame limit.
        Message::text("x".repeat(60 * 1024)),
    ];
    for msg in bad {
        let shown = format!("{msg:?}");
        timeout(WAIT, ws.send(msg)).await.unwrap().unwrap();
        let f = next(&mut ws).await;
        assert_eq!(f["type"], "error", "{shown}: {f}");
        assert_eq!(f["error"]["code"], "VALIDATION_FAILED", "{shown}: {f}");
        assert!(
            !f["error"]["message"].as_str().unwrap().is_empty(),
            "{shown}: {f}"
        );
        assert_alive(&mut ws).await;
    }
    // Still fully usable: a subscription works afterwards.
    subscribe(&mut ws, &["inventory.updates"], json!({})).await;
    hub.receive(&seed.product, &seed.a, "1").await;
    assert_eq!(next(&mut ws).await["type"], "inventory.update");
    assert_quiet(&mut ws).await;
}

/// Upgrades a bare TCP connection by hand: a peer that never writes another byte (tungstenite
/// would answer the hub's pings whenever it reads).
async fn raw_upgrade(hub: &TestHub) -> TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = TcpStream::connect(hub.hub.as_ref().unwrap().addr)
        .await
        .unwrap();
    let req = format!(
        "GET /v1/ws HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         X-API-Key: {}\r\nX-Organization-ID: {}\r\n\r\n",
        hub.hub.as_ref().unwrap().addr,
        hub.creds.api_key,
        hub.creds.organization_id
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    // Read the response head byte by byte, so no frame byte is consumed with it.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        let n = timeout(WAIT, tcp.read(&mut b)).await.unwrap().unwrap();
        assert_eq!(n, 1, "the hub hung up during the handshake");
        head.push(b[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    tcp
}

/// Opcodes of the unmasked frames the hub sent, in order (lengths < 64 KiB).
fn opcodes(mut bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while bytes.len() >= 2 {
        let op = bytes[0] & 0x0f;
        let (len, head) = match bytes[1] & 0x7f {
            126 => (usize::from(u16::from_be_bytes([bytes[2], bytes[3]])), 4),
            127 => panic!("an unexpectedly huge frame"),
            n => (usize::from(n), 2),
        };
        assert_eq!(bytes[1] & 0x80, 0, "the hub masked a frame");
        out.push(op);
        bytes = &bytes[(head + len).min(bytes.len())..];
    }
    out
}

#[tokio::test]
async fn an_oversized_frame_gets_an_error_and_a_huge_one_a_close() {
    let hub = TestHub::start().await;
    let mut ws = open(&hub).await;
    // Over the 64 KiB frame limit: an error frame, and the connection stays up.
    send_text(&mut ws, &"x".repeat(100 * 1024)).await;
    let f = next(&mut ws).await;
    assert_eq!(f["type"], "error", "{f}");
    assert_eq!(f["error"]["code"], "PAYLOAD_TOO_LARGE", "{f}");
    assert_alive(&mut ws).await;
    // Too big to read at all: the hub hangs up. It sends a Close (1008) that says why, but as
    // the rest of the message is left unread, the kernel may turn the hang-up into a reset that
    // overtakes the Close; either way the connection ends and the hub carries on.
    let _ = timeout(WAIT, ws.send(Message::text("x".repeat(1024 * 1024)))).await;
    loop {
        match timeout(WAIT, ws.next()).await.expect("not closed") {
            Some(Ok(Message::Close(c))) => {
                let c = c.expect("a Close without a code");
                assert_eq!(u16::from(c.code), 1008);
                assert!(!c.reason.is_empty());
            }
            Some(Ok(Message::Text(_) | Message::Ping(_))) => {}
            Some(Ok(other)) => panic!("unexpected {other:?}"),
            Some(Err(_)) | None => break,
        }
    }
    assert_alive(&mut open(&hub).await).await;
}

#[tokio::test]
async fn a_silent_peer_is_dropped_and_a_live_one_is_not() {
    use tokio::io::AsyncReadExt;
    let hub = TestHub::start_with(|c| {
        c.rate_limit = 0;
        c.ws_ping_every = Duration::from_millis(100);
        c.ws_idle_timeout = Duration::from_millis(300);
    })
    .await;
    let started = std::time::Instant::now();
    let mut silent = raw_upgrade(&hub).await;
    let mut live = open(&hub).await;

    // The silent peer only listens, until the hub hangs up.
    let listen = tokio::spawn(async move {
        let mut got = Vec::new();
        timeout(WAIT, silent.read_to_end(&mut got))
            .await
            .expect("the silent peer was not dropped")
            .unwrap();
        (got, started.elapsed())
    });

    // The live peer reads (tungstenite answers WebSocket pings on read) and answers the hub's
    // JSON pings.
    let until = tokio::time::Instant::now() + Duration::from_millis(900);
    let mut pings = 0;
    while let Ok(m) = tokio::time::timeout_at(until, live.next()).await {
        match m {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                assert_eq!(v["type"], "ping", "{v}");
                pings += 1;
                send(&mut live, json!({ "type": "pong" })).await;
            }
            Some(Ok(Message::Ping(_))) => {}
            other => panic!("the live peer got {other:?}"),
        }
    }
    assert!(pings >= 3, "the hub pinged {pings} times in 900 ms");
    assert_alive(&mut live).await;

    let (bytes, after) = listen.await.unwrap();
    let ops = opcodes(&bytes);
    // Text pings (0x1) and WebSocket pings (0x9), then a Close (0x8), then the end.
    assert_eq!(ops.last(), Some(&0x8), "frames: {ops:?}");
    assert!(
        ops[..ops.len() - 1].iter().all(|o| [0x1, 0x9].contains(o)),
        "frames: {ops:?}"
    );
    assert!(ops.contains(&0x9), "the hub never pinged: {ops:?}");
    assert!(
        after >= Duration::from_millis(300),
        "dropped after {after:?}, before the idle timeout"
    );
}

#[tokio::test]
async fn a_refused_upgrade_gets_an_envelope() {
    let hub = TestHub::start().await;
    let device = hub.enroll().await;
    let bearer = format!("Bearer {}", device.access);
    let org = hub.creds.organization_id.as_str();

    // A device token without X-Mobile-Device-Id.
    let (status, body) = refused(
        &hub,
        &[("Authorization", &bearer), ("X-Organization-ID", org)],
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "VALIDATION_FAILED");
    assert!(
        body["error"]["details"]["X-Mobile-Device-Id"].is_array(),
        "{body}"
    );

    // Another device's id.
    let (status, body) = refused(
        &hub,
        &[
            ("Authorization", &bearer),
            ("X-Organization-ID", org),
            ("X-Mobile-Device-Id", "dev_someone_else"),
        ],
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "PERMISSION_DENIED");

    // No credential at all; a wrong key.
    let (status, body) = refused(&hub, &[("X-Organization-ID", org)]).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "AUTHENTICATION_FAILED");
    let (status, _) = refused(
        &hub,
        &[("X-API-Key", "ssk_wrong"), ("X-Organization-ID", org)],
    )
    .await;
    assert_eq!(status, 401);

    // Another organization's header.
    let (status, body) = refused(
        &hub,
        &[
            ("X-API-Key", &hub.creds.api_key),
            ("X-Organization-ID", OTHER_ORG),
        ],
    )
    .await;
    assert_eq!(status, 403, "{body}");

    // With its device id the same token connects.
    let mut ws = connect(
        &hub,
        &[
            ("Authorization", &bearer),
            ("X-Organization-ID", org),
            ("X-Mobile-Device-Id", &device.id),
        ],
    )
    .await
    .unwrap();
    assert_alive(&mut ws).await;
}

#[tokio::test]
async fn a_plain_get_is_refused_with_an_envelope() {
    let hub = TestHub::start().await;
    let r = hub.api().get("/v1/ws").await;
    assert!((400..500).contains(&r.status), "{} {}", r.status, r.text);
    assert_eq!(r.code(), "VALIDATION_FAILED", "{}", r.text);
    assert_eq!(r.body["responseType"], "error");
    // Half an upgrade is no better.
    let r = hub
        .api()
        .send(
            reqwest::Method::GET,
            "/v1/ws",
            &[("Connection", "upgrade"), ("Upgrade", "websocket")],
            None,
        )
        .await;
    assert!((400..500).contains(&r.status), "{} {}", r.status, r.text);
    assert_eq!(r.code(), "VALIDATION_FAILED", "{}", r.text);
    // Without a credential, authentication answers first.
    let r = hub.anonymous().get("/v1/ws").await;
    assert_eq!(r.status, 401, "{}", r.text);
}

#[tokio::test]
async fn shutdown_closes_open_sockets() {
    let mut hub = TestHub::start().await;
    let mut subscribed = open(&hub).await;
    subscribe(&mut subscribed, &["inventory.updates"], json!({})).await;
    let mut idle = open(&hub).await;
    let stopping = tokio::spawn(hub.hub.take().unwrap().shutdown());
    for ws in [&mut subscribed, &mut idle] {
        let mut closed = false;
        loop {
            match timeout(WAIT, ws.next())
                .await
                .expect("the socket stayed open after shutdown")
            {
                Some(Ok(Message::Close(_))) => closed = true,
                Some(Ok(Message::Text(_) | Message::Ping(_))) => {}
                Some(Ok(other)) => panic!("unexpected {other:?}"),
                Some(Err(_)) | None => break,
            }
        }
        assert!(closed, "no Close frame before the end");
    }
    timeout(WAIT, stopping)
        .await
        .expect("shutdown hung")
        .unwrap()
        .unwrap();
    // And nothing listens any more.
    assert!(connect(&hub, &api_headers(&hub)).await.is_err());
}

#[tokio::test]
async fn a_category_filter_also_selects_conflicts() {
    let hub = TestHub::start().await;
    let seed = hub.seed().await;
    let food = product(&hub, "food").await;
    let tools = product(&hub, "tools").await;
    let mut ws = open(&hub).await;
    subscribe(
        &mut ws,
        &["conflicts.changes"],
        json!({ "product_category": "food" }),
    )
    .await;
    let dev = hub.enroll().await;
    // Two shipments from empty shelves: two rejections, two conflict records.
    let r = dev
        .push(vec![
            dev.movement("shipment", &tools, &seed.a, "1"),
            dev.movement("shipment", &food, &seed.a, "1"),
        ])
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let got = next(&mut ws).await;
    assert_eq!(got["type"], "conflict.created");
    assert_eq!(got["data"]["product_id"], food.as_str());
    assert_quiet(&mut ws).await;
}

/// Reads until the hub's Close frame; returns its code and reason. Panics when the connection
/// stays open (beyond keep-alives) or ends without one.
async fn close_frame(ws: &mut Ws) -> (u16, String) {
    loop {
        match timeout(WAIT, ws.next())
            .await
            .expect("the connection stayed open")
        {
            Some(Ok(Message::Close(Some(f)))) => return (f.code.into(), f.reason.to_string()),
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                assert_eq!(v["type"], "ping", "a frame instead of the close: {v}");
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("no Close frame: {other:?}"),
        }
    }
}

#[tokio::test]
async fn revoking_a_token_family_closes_its_websockets() {
    let hub = TestHub::start_with(|c| {
        c.rate_limit = 0;
        c.refresh_reuse_grace_secs = 0;
    })
    .await;
    let seed = hub.seed().await;
    let stolen = hub.enroll().await;
    let bystander = hub.enroll().await;
    let mut sockets = Vec::new();
    for d in [&stolen, &stolen, &bystander] {
        let headers = device_headers(&hub, d);
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let mut ws = connect(&hub, &headers).await.unwrap();
        subscribe(&mut ws, &["inventory.updates"], json!({})).await;
        sockets.push(ws);
    }
    let mut by_key = open(&hub).await;
    subscribe(&mut by_key, &["inventory.updates"], json!({})).await;
    // A token rotated from the same family is open too: it dies with the family.
    let anonymous = hub.anonymous();
    let refresh = |token: &str| {
        anonymous.post_raw(
            "/v1/oauth/token",
            json!({ "grant_type": "refresh_token", "refresh_token": token }),
        )
    };
    let r = refresh(&stolen.refresh).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let rotated = r.data()["access_token"].as_str().unwrap().to_owned();
    let bearer = format!("Bearer {rotated}");
    let mut rotated_ws = connect(
        &hub,
        &[
            ("Authorization", bearer.as_str()),
            ("X-Organization-ID", hub.creds.organization_id.as_str()),
            ("X-Mobile-Device-Id", stolen.id.as_str()),
        ],
    )
    .await
    .unwrap();
    subscribe(&mut rotated_ws, &["inventory.updates"], json!({})).await;

    // The first refresh token comes back: someone else has a copy, and the family is revoked.
    let r = refresh(&stolen.refresh).await;
    assert_eq!(r.status, 401, "{}", r.text);
    let [mut first, mut second, mut other] = <[Ws; 3]>::try_from(sockets).ok().unwrap();
    for ws in [&mut first, &mut second, &mut rotated_ws] {
        let (code, reason) = close_frame(ws).await;
        assert_eq!(code, 1008, "{reason}");
        assert!(reason.contains("revoked"), "{reason}");
    }
    // Other devices' and keys' sessions stay and still get changes; the family's token cannot
    // open a new one.
    hub.receive(&seed.product, &seed.a, "1").await;
    for ws in [&mut other, &mut by_key] {
        assert_eq!(next(ws).await["data"]["location_id"], seed.a.as_str());
        assert_alive(ws).await;
    }
    let (status, body) = refused(
        &hub,
        &[
            ("Authorization", bearer.as_str()),
            ("X-Organization-ID", hub.creds.organization_id.as_str()),
            ("X-Mobile-Device-Id", stolen.id.as_str()),
        ],
    )
    .await;
    assert_eq!(status, 401, "{body}");
}

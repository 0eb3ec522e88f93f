//! The node's transport against a real hub on an ephemeral loopback port (and against a few
//! raw TCP servers that misbehave on purpose).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use std::time::Duration;
use stocksync_hub::Hub;
use stocksync_hub::config::{DevCredentials, HubConfig};
use stocksync_hub::server;
use stocksync_model::{
    DeviceId, HlcTimestamp, LocationId, OpId, ProductId, Quantity, TransactionId, Uom,
};
use stocksync_node::sync::live::{self, LiveEvent};
use stocksync_node::sync::transport::{Auth, HubClient, TransportConfig, TransportError};
use stocksync_protocol::ws::{CHANNEL_INVENTORY, Filters};
use stocksync_protocol::{
    Entity, ErrorCode, LocationCreateBody, OpBody, OpStatus, PushOp, TransactionBody,
    TransactionType,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::timeout;

/// Longest wait for anything that must happen.
const WAIT: Duration = Duration::from_secs(5);

struct TestHub {
    _hub: Hub,
    base: String,
    creds: DevCredentials,
    _dir: tempfile::TempDir,
}

impl TestHub {
    async fn start() -> TestHub {
        TestHub::start_with(|_| {}).await
    }

    async fn start_with(tune: impl FnOnce(&mut HubConfig)) -> TestHub {
        let dir = tempfile::tempdir().unwrap();
        let (bootstrap, creds) = server::dev_bootstrap(dir.path());
        let mut config = HubConfig::new(dir.path());
        config.rate_limit = 0;
        config.auth_rate_limit = 0;
        tune(&mut config);
        let hub = Hub::start(config, &bootstrap, "127.0.0.1:0").await.unwrap();
        TestHub {
            base: hub.base_url(),
            _hub: hub,
            creds,
            _dir: dir,
        }
    }

    /// A product made over REST with the demo API key.
    async fn product(&self) -> ProductId {
        let tail = OpId::new().to_string();
        let res = reqwest::Client::new()
            .post(format!("{}/v1/products", self.base))
            .header("X-API-Key", &self.creds.api_key)
            .header("X-Organization-ID", &self.creds.organization_id)
            .header("Idempotency-Key", &tail)
            .json(&json!({ "sku": format!("SKU-{tail}"), "name": "Widget" }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        let body: Value = res.json().await.unwrap();
        ProductId::parse(body["data"]["id"].as_str().unwrap()).unwrap()
    }

    /// A newly enrolled device.
    async fn device(&self) -> Device {
        let id = DeviceId::new();
        let client = HubClient::new(&self.base, id.as_str(), &fast()).unwrap();
        let enrollment = client
            .enroll(&self.creds.enrollment_key, "handheld", "Test handheld")
            .await
            .unwrap();
        assert_eq!(enrollment.device_id, id.as_str());
        assert_eq!(enrollment.organization_id, self.creds.organization_id);
        assert_eq!(enrollment.branch_id, self.creds.branch_id);
        assert_eq!(enrollment.expires_in, 3600);
        assert!(
            enrollment
                .permissions
                .iter()
                .any(|p| p == "inventory.transactions.create")
        );
        Device {
            auth: Auth {
                access_token: enrollment.access_token.clone(),
                organization_id: enrollment.organization_id.clone(),
            },
            refresh_token: enrollment.refresh_token,
            id,
            client,
            seq: 0,
        }
    }
}

fn fast() -> TransportConfig {
    TransportConfig {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
        ..TransportConfig::default()
    }
}

struct Device {
    id: DeviceId,
    client: HubClient,
    auth: Auth,
    refresh_token: String,
    seq: u64,
}

impl Device {
    fn op(&mut self, body: OpBody) -> PushOp {
        self.seq += 1;
        let hlc: HlcTimestamp = format!("{:016}.00000@{}", 1_763_632_800_000 + self.seq, self.id)
            .parse()
            .unwrap();
        PushOp {
            op_id: OpId::new(),
            device_seq: self.seq,
            occurred_at: "2026-11-20T10:00:00Z".into(),
            hlc,
            body,
        }
    }

    fn location(&mut self, location: &LocationId) -> PushOp {
        self.op(OpBody::LocationCreate(LocationCreateBody {
            location_id: location.clone(),
            code: format!("BIN-{}", self.seq + 1),
            name: "Bin".into(),
        }))
    }

    fn movement(
        &mut self,
        kind: TransactionType,
        product: &ProductId,
        location: &LocationId,
        qty: &str,
    ) -> PushOp {
        self.op(OpBody::Transaction(TransactionBody {
            transaction_id: TransactionId::new(),
            transaction_type: kind,
            product_id: product.clone(),
            location_id: location.clone(),
            quantity: Quantity::new(qty.parse().unwrap(), Uom::Each),
            reason_code: None,
            counted: None,
            expected: None,
            unit_cost: None,
            reference: None,
        }))
    }
}

fn stock_item<'a>(
    items: impl IntoIterator<Item = &'a stocksync_protocol::DeltaItem>,
    product: &ProductId,
    location: &LocationId,
) -> Option<&'a stocksync_protocol::DeltaItem> {
    let id = format!("{product}@{location}");
    items
        .into_iter()
        .find(|i| i.entity == Entity::StockLevel && i.id == id)
}

#[tokio::test]
async fn enroll_push_resend_and_pull() {
    let hub = TestHub::start().await;
    let product = hub.product().await;
    let mut dev = hub.device().await;
    let location = LocationId::new();
    let ops = vec![
        dev.location(&location),
        dev.movement(TransactionType::Receipt, &product, &location, "10"),
        dev.movement(TransactionType::Shipment, &product, &location, "4"),
    ];

    let first = dev.client.push(&dev.auth, &ops, "batch-1").await.unwrap();
    assert!(!first.replayed);
    let first = first.results;
    assert_eq!(first.len(), 3);
    for (r, op) in first.iter().zip(&ops) {
        assert_eq!(r.op_id, op.op_id);
        assert_eq!(r.status, OpStatus::Applied, "{r:?}");
        assert!(r.seq.is_some());
    }
    // The answer was lost: the same request again answers the stored outcome.
    let replay = dev.client.push(&dev.auth, &ops, "batch-1").await.unwrap();
    assert!(replay.replayed);
    assert_eq!(replay.results, first);
    // Under a new key each op is a duplicate of its first outcome.
    let again = dev.client.push(&dev.auth, &ops, "batch-2").await.unwrap();
    assert!(!again.replayed);
    for (r, f) in again.results.iter().zip(&first) {
        assert_eq!(r.status, OpStatus::Duplicate, "{r:?}");
        assert_eq!(r.original_status, Some(OpStatus::Applied));
        assert_eq!(r.seq, f.seq);
    }
    // No ops, no request.
    assert!(
        dev.client
            .push(&dev.auth, &[], "empty")
            .await
            .unwrap()
            .results
            .is_empty()
    );

    // Snapshot.
    let snap = dev.client.pull(&dev.auth, None, 1000).await.unwrap();
    assert!(!snap.meta.has_more);
    assert!(!snap.meta.full_sync_required);
    assert!(
        snap.meta
            .checksum
            .as_deref()
            .is_some_and(|c| c.starts_with("sha256sum:")),
        "{:?}",
        snap.meta
    );
    let level = stock_item(&snap.page.created, &product, &location).expect("stock level");
    assert_eq!(level.fields["on_hand"], "6");
    assert!(
        snap.page
            .created
            .iter()
            .any(|i| i.entity == Entity::Product && i.id == product.as_str())
    );
    assert!(
        snap.page
            .created
            .iter()
            .any(|i| i.entity == Entity::Location && i.id == location.as_str())
    );
    // Nothing new since.
    let token = snap.meta.next_sync_token.clone();
    let quiet = dev
        .client
        .pull(&dev.auth, Some(&token), 1000)
        .await
        .unwrap();
    assert_eq!(quiet.meta.changes_count, 0, "{quiet:?}");

    // A change shows in the delta.
    let op = dev.movement(TransactionType::Receipt, &product, &location, "1");
    let r = dev.client.push(&dev.auth, &[op], "batch-3").await.unwrap();
    assert_eq!(r.results[0].status, OpStatus::Applied);
    let delta = dev
        .client
        .pull(&dev.auth, Some(&token), 1000)
        .await
        .unwrap();
    let level = stock_item(&delta.page.updated, &product, &location).expect("updated level");
    assert_eq!(level.fields["on_hand"], "7");
    assert!(!delta.meta.has_more);

    // Small pages chain up to the same end.
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = dev
            .client
            .pull(&dev.auth, token.as_deref(), 1)
            .await
            .unwrap();
        pages += 1;
        token = Some(page.meta.next_sync_token);
        if !page.meta.has_more {
            break;
        }
        assert!(pages < 50, "the snapshot never ends");
    }
    assert!(pages > 2, "{pages}");

    // A forged token is the contract's 400.
    let e = dev
        .client
        .pull(&dev.auth, Some("forged.token"), 10)
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(400));
    assert_eq!(e.code(), Some(ErrorCode::InvalidSyncToken));
    assert!(!e.is_retryable());
}

#[tokio::test]
async fn refresh_rotates_the_pair_once() {
    // No reuse grace: a second use is refused at once.
    let hub = TestHub::start_with(|c| c.refresh_reuse_grace_secs = 0).await;
    let dev = hub.device().await;
    let pair = dev.client.refresh(&dev.refresh_token).await.unwrap();
    assert_ne!(pair.refresh_token, dev.refresh_token);
    assert_ne!(pair.access_token, dev.auth.access_token);
    assert_eq!(pair.expires_in, 3600);
    let auth = Auth {
        access_token: pair.access_token.clone(),
        organization_id: dev.auth.organization_id.clone(),
    };
    dev.client.pull(&auth, None, 10).await.unwrap();
    // A refresh token works once.
    let e = dev.client.refresh(&dev.refresh_token).await.unwrap_err();
    assert!(e.is_auth(), "{e:?}");
    assert!(!e.is_retryable());
}

#[tokio::test]
async fn refused_credentials_are_auth_errors() {
    let hub = TestHub::start().await;
    let dev = hub.device().await;
    let bad = Auth {
        access_token: "not-a-token".into(),
        organization_id: dev.auth.organization_id.clone(),
    };
    let e = dev.client.pull(&bad, None, 10).await.unwrap_err();
    let TransportError::Http {
        status,
        code,
        message,
        ..
    } = &e
    else {
        panic!("{e:?}")
    };
    assert_eq!(*status, 401);
    assert_eq!(*code, Some(ErrorCode::AuthenticationFailed));
    assert!(!message.is_empty());
    assert!(e.is_auth() && !e.is_retryable());

    let e = dev
        .client
        .enroll("enr_wrong", "handheld", "x")
        .await
        .unwrap_err();
    assert!(e.is_auth(), "{e:?}");

    // The right token for another organization: 403, not an auth error.
    let wrong_org = Auth {
        access_token: dev.auth.access_token.clone(),
        organization_id: "org_someone_else".into(),
    };
    let e = dev.client.pull(&wrong_org, None, 10).await.unwrap_err();
    assert_eq!(e.status(), Some(403), "{e:?}");
    assert!(!e.is_auth() && !e.is_retryable());
}

#[tokio::test]
async fn a_closed_port_is_offline() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let base = format!("http://127.0.0.1:{port}");
    let client = HubClient::new(&base, DeviceId::new().as_str(), &fast()).unwrap();
    let e = client.enroll("enr_x", "handheld", "x").await.unwrap_err();
    assert!(matches!(e, TransportError::Offline { .. }), "{e:?}");
    assert!(e.is_retryable());
    assert!(e.to_string().starts_with("Cannot reach the hub"), "{e}");

    let auth = Auth {
        access_token: "t".into(),
        organization_id: "org_demo".into(),
    };
    let e = live::connect(&base, DeviceId::new().as_str(), &auth, &[], &fast())
        .await
        .unwrap_err();
    assert!(matches!(e, TransportError::Offline { .. }), "{e:?}");
}

/// A server that answers every connection with `response` (after reading the request head),
/// or never answers when `response` is `None`.
async fn raw_server(response: Option<&'static [u8]>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut buf = vec![0u8; 16 * 1024];
            let mut got = Vec::new();
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                match sock.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            match response {
                Some(r) => {
                    let _ = sock.write_all(r).await;
                    let _ = sock.shutdown().await;
                }
                None => held.push(sock),
            }
        }
    });
    format!("http://{addr}")
}

fn token() -> Auth {
    Auth {
        access_token: "t".into(),
        organization_id: "org_demo".into(),
    }
}

#[tokio::test]
async fn no_answer_in_time_is_a_timeout() {
    let base = raw_server(None).await;
    let config = TransportConfig {
        request_timeout: Duration::from_millis(300),
        ..fast()
    };
    let client = HubClient::new(&base, DeviceId::new().as_str(), &config).unwrap();
    let e = client.pull(&token(), None, 10).await.unwrap_err();
    assert!(matches!(e, TransportError::Timeout { .. }), "{e:?}");
    assert!(e.is_retryable());
}

#[tokio::test]
async fn a_proxy_error_page_is_still_an_http_error() {
    let base = raw_server(Some(
        b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 3\r\ncontent-type: text/html\r\n\
          content-length: 27\r\nconnection: close\r\n\r\n<html>maintenance...</html>",
    ))
    .await;
    let client = HubClient::new(&base, DeviceId::new().as_str(), &fast()).unwrap();
    let e = client.pull(&token(), None, 10).await.unwrap_err();
    assert_eq!(e.status(), Some(503), "{e:?}");
    assert_eq!(e.code(), None);
    assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
    assert!(e.is_retryable());
}

#[tokio::test]
async fn a_success_that_is_not_json_is_a_decode_error() {
    let base = raw_server(Some(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: 13\r\n\
          connection: close\r\n\r\n<html></html>",
    ))
    .await;
    let client = HubClient::new(&base, DeviceId::new().as_str(), &fast()).unwrap();
    let e = client.pull(&token(), None, 10).await.unwrap_err();
    assert!(matches!(e, TransportError::Decode { .. }), "{e:?}");
    assert!(!e.is_retryable());
}

#[tokio::test]
async fn a_tls_failure_is_offline() {
    // Not TLS at all: the handshake fails (and the TLS stack is set up without panicking).
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("https://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let _ = sock.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
            let _ = sock.shutdown().await;
        }
    });
    let client = HubClient::new(&base, DeviceId::new().as_str(), &fast()).unwrap();
    let e = client.pull(&token(), None, 10).await.unwrap_err();
    assert!(matches!(e, TransportError::Offline { .. }), "{e:?}");
    let e = live::connect(&base, DeviceId::new().as_str(), &token(), &[], &fast())
        .await
        .unwrap_err();
    assert!(matches!(e, TransportError::Offline { .. }), "{e:?}");
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    let base = raw_server(Some(
        b"HTTP/1.1 302 Found\r\nlocation: http://portal.example/login\r\n\
          content-length: 0\r\nconnection: close\r\n\r\n",
    ))
    .await;
    let client = HubClient::new(&base, DeviceId::new().as_str(), &fast()).unwrap();
    let e = client.pull(&token(), None, 10).await.unwrap_err();
    assert_eq!(e.status(), Some(302), "{e:?}");
    assert!(!e.is_retryable());
}

#[tokio::test]
async fn the_websocket_delivers_changes_and_refuses_bad_tokens() {
    let hub = TestHub::start().await;
    let product = hub.product().await;
    let mut dev = hub.device().await;
    let location = LocationId::new();
    let op = dev.location(&location);
    dev.client.push(&dev.auth, &[op], "loc").await.unwrap();

    let subs = [(vec![CHANNEL_INVENTORY.to_owned()], Filters::default())];
    let mut conn = live::connect(&hub.base, dev.id.as_str(), &dev.auth, &subs, &fast())
        .await
        .unwrap();
    assert_eq!(conn.subscription_ids().len(), 1);

    let op = dev.movement(TransactionType::Receipt, &product, &location, "5");
    dev.client.push(&dev.auth, &[op], "receipt").await.unwrap();
    let event = timeout(WAIT, conn.next()).await.unwrap().unwrap().unwrap();
    let LiveEvent::Change(change) = event else {
        panic!("{event:?}")
    };
    assert_eq!(change.kind, "inventory.update");
    assert_eq!(change.data["product_id"], product.as_str());
    assert_eq!(change.data["current_quantity"], "5");
    conn.close().await;

    // A bad token: the upgrade is refused with the envelope's status.
    let bad = Auth {
        access_token: "not-a-token".into(),
        organization_id: dev.auth.organization_id.clone(),
    };
    let e = live::connect(&hub.base, dev.id.as_str(), &bad, &subs, &fast())
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(401), "{e:?}");
    assert_eq!(e.code(), Some(ErrorCode::AuthenticationFailed));
    assert!(e.is_auth());

    // An unknown channel is refused by the hub.
    let e = live::connect(
        &hub.base,
        dev.id.as_str(),
        &dev.auth,
        &[(vec!["nope".to_owned()], Filters::default())],
        &fast(),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, TransportError::InvalidConfig { .. }), "{e:?}");
}

#[tokio::test]
async fn pings_are_answered_so_the_hub_keeps_the_connection() {
    let hub = TestHub::start_with(|c| {
        c.ws_ping_every = Duration::from_millis(100);
        c.ws_idle_timeout = Duration::from_millis(500);
    })
    .await;
    let product = hub.product().await;
    let mut dev = hub.device().await;
    let location = LocationId::new();
    let op = dev.location(&location);
    dev.client.push(&dev.auth, &[op], "loc").await.unwrap();
    let subs = [(vec![CHANNEL_INVENTORY.to_owned()], Filters::default())];
    let mut conn = live::connect(&hub.base, dev.id.as_str(), &dev.auth, &subs, &fast())
        .await
        .unwrap();
    // Well past the hub's idle limit: pings come and are answered, nothing is surfaced.
    assert!(
        timeout(Duration::from_millis(1000), conn.next())
            .await
            .is_err(),
        "no event expected"
    );
    let op = dev.movement(TransactionType::Receipt, &product, &location, "2");
    dev.client.push(&dev.auth, &[op], "receipt").await.unwrap();
    let event = timeout(WAIT, conn.next()).await.unwrap().unwrap().unwrap();
    assert!(
        matches!(&event, LiveEvent::Change(c) if c.kind == "inventory.update"),
        "{event:?}"
    );
}

#[tokio::test]
async fn a_silent_connection_is_offline() {
    let hub = TestHub::start().await;
    let dev = hub.device().await;
    let config = TransportConfig {
        idle_timeout: Duration::from_millis(300),
        ..fast()
    };
    let subs = [(vec![CHANNEL_INVENTORY.to_owned()], Filters::default())];
    let mut conn = live::connect(&hub.base, dev.id.as_str(), &dev.auth, &subs, &config)
        .await
        .unwrap();
    let e = timeout(WAIT, conn.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(matches!(e, TransportError::Offline { .. }), "{e:?}");
    assert!(e.to_string().contains("went silent"), "{e}");
    assert!(conn.next().await.is_none());
}

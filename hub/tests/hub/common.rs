//! A real hub on an ephemeral loopback port, and HTTP clients whose every response is checked
//! against `docs/openapi.json` on the spot.
#![allow(dead_code)] // Not every test uses every helper.

use crate::openapi;
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use stocksync_hub::Hub;
use stocksync_hub::config::{
    ApiKeyConfig, Bootstrap, BranchConfig, DevCredentials, EnrollmentKeyConfig, HubConfig,
    OrgConfig, all_scopes, device_scopes,
};
use stocksync_hub::server;
use stocksync_model::DeviceId;

/// The second organization every test hub has (for isolation tests).
pub const OTHER_ORG: &str = "org_other";
/// Its API key.
pub const OTHER_KEY: &str = "ssk_other_org_key";
/// Its enrollment key.
pub const OTHER_ENROLL: &str = "enr_other_org_key";
/// A second branch of the demo organization.
pub const NORTH: &str = "br_north";
/// An API key of the demo organization limited to `br_north`.
pub const NORTH_KEY: &str = "ssk_north_only";
/// An API key of the demo organization with only `inventory.products.read`.
pub const READ_ONLY_KEY: &str = "ssk_read_only";
/// An API key of the demo organization with only `inventory.admin` (which grants every scope).
pub const ADMIN_ONLY_KEY: &str = "ssk_admin_only";
/// An enrollment key of the demo organization for `br_north`.
pub const NORTH_ENROLL: &str = "enr_north_only";

pub struct TestHub {
    pub hub: Option<Hub>,
    pub base: String,
    pub creds: DevCredentials,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
}

impl TestHub {
    pub async fn start() -> TestHub {
        TestHub::start_with(|c| c.rate_limit = 0).await
    }

    pub async fn start_with(tune: impl FnOnce(&mut HubConfig)) -> TestHub {
        let dir = tempfile::tempdir().unwrap();
        let (mut bootstrap, creds) = server::dev_bootstrap(dir.path());
        let demo = &mut bootstrap.organizations[0];
        demo.branches.push(BranchConfig {
            id: NORTH.into(),
            name: "North store".into(),
        });
        demo.api_keys.push(ApiKeyConfig {
            name: "north".into(),
            key: NORTH_KEY.into(),
            scopes: all_scopes(),
            branch_id: Some(NORTH.into()),
        });
        demo.enrollment_keys.push(EnrollmentKeyConfig {
            key: NORTH_ENROLL.into(),
            branch_id: NORTH.into(),
            scopes: device_scopes(),
        });
        demo.api_keys.push(ApiKeyConfig {
            name: "read-only".into(),
            key: READ_ONLY_KEY.into(),
            scopes: vec!["inventory.products.read".into()],
            branch_id: None,
        });
        demo.api_keys.push(ApiKeyConfig {
            name: "admin-only".into(),
            key: ADMIN_ONLY_KEY.into(),
            scopes: vec!["inventory.admin".into()],
            branch_id: None,
        });
        bootstrap.organizations.push(OrgConfig {
            id: OTHER_ORG.into(),
            name: "Other".into(),
            branches: vec![BranchConfig {
                id: "br_other".into(),
                name: "Other main".into(),
            }],
            api_keys: vec![ApiKeyConfig {
                name: "other".into(),
                key: OTHER_KEY.into(),
                scopes: all_scopes(),
                branch_id: None,
            }],
            enrollment_keys: vec![EnrollmentKeyConfig {
                key: OTHER_ENROLL.into(),
                branch_id: "br_other".into(),
                scopes: device_scopes(),
            }],
        });
        TestHub::start_bootstrap(dir, bootstrap, creds, tune).await
    }

    async fn start_bootstrap(
        dir: tempfile::TempDir,
        bootstrap: Bootstrap,
        mut creds: DevCredentials,
        tune: impl FnOnce(&mut HubConfig),
    ) -> TestHub {
        let mut config = HubConfig::new(dir.path());
        tune(&mut config);
        let hub = Hub::start(config, &bootstrap, "127.0.0.1:0").await.unwrap();
        let base = hub.base_url();
        creds.base_url = base.clone();
        TestHub {
            hub: Some(hub),
            base,
            creds,
            dir,
            http: reqwest::Client::builder().build().unwrap(),
        }
    }

    /// A client with no headers at all.
    pub fn anonymous(&self) -> Client {
        Client {
            http: self.http.clone(),
            base: self.base.clone(),
            headers: Vec::new(),
        }
    }

    /// A client with no headers that connects from another loopback address (`127.0.0.N`), for
    /// what is limited per client address.
    pub fn anonymous_from(&self, last_octet: u8) -> Client {
        let ip = std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, last_octet));
        Client {
            http: reqwest::Client::builder()
                .local_address(ip)
                .build()
                .unwrap(),
            base: self.base.clone(),
            headers: Vec::new(),
        }
    }

    /// The demo organization's all-scopes API key.
    pub fn api(&self) -> Client {
        self.anonymous()
            .with("X-API-Key", &self.creds.api_key)
            .with("X-Organization-ID", &self.creds.organization_id)
    }

    /// The other organization's API key.
    pub fn other_api(&self) -> Client {
        self.anonymous()
            .with("X-API-Key", OTHER_KEY)
            .with("X-Organization-ID", OTHER_ORG)
    }

    /// Enrolls a new device of the demo organization.
    pub async fn enroll(&self) -> Device {
        self.enroll_with(
            &self.creds.enrollment_key.clone(),
            &self.creds.organization_id.clone(),
        )
        .await
    }

    /// Enrolls a new device with an enrollment key.
    pub async fn enroll_with(&self, key: &str, org: &str) -> Device {
        let id = DeviceId::new().to_string();
        let r = self
            .anonymous()
            .post_raw(
                "/v1/auth/devices",
                json!({ "enrollment_key": key, "device_id": id, "role": "handheld" }),
            )
            .await;
        assert_eq!(r.status, 201, "enroll: {}", r.text);
        let access = r.data()["access_token"].as_str().unwrap().to_owned();
        let refresh = r.data()["refresh_token"].as_str().unwrap().to_owned();
        let client = self
            .anonymous()
            .with("Authorization", &format!("Bearer {access}"))
            .with("X-Organization-ID", org)
            .with("X-Mobile-Device-Id", &id);
        Device {
            id,
            access,
            refresh,
            client,
            next_seq: std::sync::atomic::AtomicU64::new(1),
        }
    }

    /// A product and two locations in the demo organization's main branch.
    pub async fn seed(&self) -> Seed {
        let api = self.api();
        let sku = format!("SKU-{}", uuid_tail());
        let p = api
            .post(
                "/v1/products",
                json!({ "sku": sku, "name": "Widget", "category": "tools" }),
            )
            .await;
        assert_eq!(p.status, 201, "{}", p.text);
        let mut locations = Vec::new();
        for _ in 0..2 {
            let code = format!("L-{}", uuid_tail());
            let l = api
                .post(
                    "/v1/inventory/locations",
                    json!({ "code": code, "name": "Shelf", "branch_id": "br_main" }),
                )
                .await;
            assert_eq!(l.status, 201, "{}", l.text);
            locations.push(l.data()["id"].as_str().unwrap().to_owned());
        }
        Seed {
            product: p.data()["id"].as_str().unwrap().to_owned(),
            sku,
            a: locations[0].clone(),
            b: locations[1].clone(),
        }
    }

    /// Receives `qty` of the seed product at a location (REST).
    pub async fn receive(&self, product: &str, location: &str, qty: &str) {
        let r = self
            .api()
            .post(
                "/v1/inventory/transactions",
                json!({
                    "transaction_type": "receipt", "product_id": product, "location_id": location,
                    "quantity": { "value": qty, "uom": "EACH" }
                }),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }

    /// On hand of a product at a location, via REST.
    pub async fn on_hand(&self, product: &str, location: &str) -> String {
        let r = self
            .api()
            .get(&format!("/v1/locations/{location}/inventory"))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.data()
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["product_id"] == product)
            .map(|s| s["on_hand"].as_str().unwrap().to_owned())
            .unwrap_or_else(|| "0".into())
    }
}

pub struct Seed {
    pub product: String,
    pub sku: String,
    pub a: String,
    pub b: String,
}

pub struct Device {
    pub id: String,
    pub access: String,
    pub refresh: String,
    pub client: Client,
    pub next_seq: std::sync::atomic::AtomicU64,
}

impl Device {
    /// A push op with this device's next `device_seq`.
    pub fn op(&self, kind: &str, body: Value) -> Value {
        let seq = self
            .next_seq
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        json!({
            "op_id": format!("op_{}", uuid_tail()),
            "device_seq": seq,
            "occurred_at": "2026-11-20T10:00:00Z",
            "hlc": format!("{:016}.{:05}@{}", 1_763_632_800_000u64 + seq, 0, self.id),
            "kind": kind,
            "body": body,
        })
    }

    /// A receipt/shipment op.
    pub fn movement(&self, kind: &str, product: &str, location: &str, qty: &str) -> Value {
        self.op(
            "transaction",
            json!({
                "transaction_id": format!("txn_{}", uuid_tail()),
                "transaction_type": kind, "product_id": product, "location_id": location,
                "quantity": { "value": qty, "uom": "EACH" },
            }),
        )
    }

    pub async fn push(&self, ops: Vec<Value>) -> Resp {
        self.client
            .post("/v1/sync/push", json!({ "ops": ops }))
            .await
    }
}

pub fn uuid_tail() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    pub headers: Vec<(String, String)>,
}

pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Resp {
    pub fn data(&self) -> &Value {
        &self.body["data"]
    }
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Client {
    pub fn with(&self, name: &str, value: &str) -> Client {
        let mut c = self.without(name);
        c.headers.push((name.to_owned(), value.to_owned()));
        c
    }

    pub fn without(&self, name: &str) -> Client {
        let mut c = self.clone();
        c.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        c
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send(Method::GET, path, &[], None).await
    }

    /// POST with a fresh Idempotency-Key.
    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.post_keyed(path, &uuid_tail(), body).await
    }

    pub async fn post_keyed(&self, path: &str, key: &str, body: Value) -> Resp {
        let bytes = body.to_string().into_bytes();
        self.send(Method::POST, path, &[("Idempotency-Key", key)], Some(bytes))
            .await
    }

    /// POST without an Idempotency-Key.
    pub async fn post_raw(&self, path: &str, body: Value) -> Resp {
        self.send(Method::POST, path, &[], Some(body.to_string().into_bytes()))
            .await
    }

    pub async fn put(&self, path: &str, body: Value, if_match: Option<&str>) -> Resp {
        let headers: Vec<(&str, &str)> = if_match.map(|m| ("If-Match", m)).into_iter().collect();
        self.send(
            Method::PUT,
            path,
            &headers,
            Some(body.to_string().into_bytes()),
        )
        .await
    }

    pub async fn delete(&self, path: &str, if_match: Option<&str>) -> Resp {
        let headers: Vec<(&str, &str)> = if_match.map(|m| ("If-Match", m)).into_iter().collect();
        self.send(Method::DELETE, path, &headers, None).await
    }

    /// Any request; the response is checked against the OpenAPI document before it is returned.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        extra: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Resp {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        for (n, v) in &self.headers {
            req = req.header(n.as_str(), v.as_str());
        }
        for (n, v) in extra {
            req = req.header(*n, *v);
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        send_checked(&method, path, req).await
    }
}

/// Sends a request and checks its response the way every test wants: conformance to
/// `docs/openapi.json`, no 5xx, an `X-Request-ID`.
pub async fn send_checked(method: &Method, path: &str, req: reqwest::RequestBuilder) -> Resp {
    let res = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let bytes = res.bytes().await.unwrap();
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let ct = content_type.as_deref();
    if let Err(e) = openapi::check_now(method.as_str(), path, status, ct, &bytes) {
        panic!(
            "response does not conform to docs/openapi.json: {e}\nbody: {}",
            String::from_utf8_lossy(&bytes)
        );
    }
    openapi::record(method.as_str(), path, status, ct, &bytes);
    let text = String::from_utf8_lossy(&bytes).into_owned();
    assert!(status < 500, "{method} {path} answered {status}: {text}");
    assert!(
        headers.contains_key("x-request-id"),
        "{method} {path}: no X-Request-ID"
    );
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Resp {
        status,
        headers,
        body,
        text,
    }
}

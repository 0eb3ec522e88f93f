//! Branch scope on every route: a credential limited to one branch neither reads nor changes
//! another branch's records. The walk takes its operations from `docs/openapi.json`'s `paths`,
//! so an operation added there fails this test until it is walked here or listed in
//! [`NOT_BRANCH_SCOPED`] with a reason.
// Unwrap and expect are fine in tests; clippy only knows that inside #[test] fns.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::*;
use crate::openapi::Spec;
use crate::tenancy::{next_frame, subscribed};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;

/// Operations that hold no branch's records, and why.
const NOT_BRANCH_SCOPED: [(&str, &str, &str); 10] = [
    (
        "GET",
        "/v1/health",
        "public liveness: no credential, no tenant data",
    ),
    ("GET", "/v1/openapi.json", "public: this document"),
    (
        "GET",
        "/metrics",
        "public: counts by route and status, no tenant data",
    ),
    (
        "POST",
        "/v1/auth/devices",
        "no credential: the enrollment key names the branch; a device id of another branch is \
         409 (auth::a_device_of_another_branch_cannot_be_taken_over)",
    ),
    (
        "POST",
        "/v1/oauth/token",
        "no credential: the refresh token names its device, whose branch the new pair carries",
    ),
    (
        "GET",
        "/v1/products",
        "the catalog is the organization's, shared by its branches",
    ),
    ("POST", "/v1/products", "the catalog is the organization's"),
    (
        "GET",
        "/v1/products/{id}",
        "the catalog is the organization's (no stock in it)",
    ),
    (
        "PUT",
        "/v1/products/{id}",
        "the catalog is the organization's",
    ),
    (
        "DELETE",
        "/v1/products/{id}",
        "the catalog is the organization's",
    ),
];

/// What the main branch (`br_main`) holds: everything a north-limited caller must not see or
/// change.
struct Main {
    seed: Seed,
    receipt: String,
    receipt_body: Value,
    transfer: String,
    open_allocation: String,
    released_allocation: String,
    conflict: String,
    device: Device,
}

/// The `Idempotency-Key` main's receipt was made with.
const RECEIPT_KEY: &str = "main-receipt-1";

impl Main {
    /// Text that must show in no answer to a north-limited caller (but for ids it sent itself).
    fn secrets(&self) -> Vec<String> {
        vec![
            self.seed.a.clone(),
            self.seed.b.clone(),
            self.receipt.clone(),
            self.transfer.clone(),
            self.open_allocation.clone(),
            self.released_allocation.clone(),
            self.conflict.clone(),
            self.device.id.clone(),
            "br_main".into(),
        ]
    }

    #[track_caller]
    fn assert_hidden(&self, what: &str, text: &str, asked: &[String]) {
        for s in self.secrets() {
            if !asked.contains(&s) {
                assert!(!text.contains(&s), "{what} shows `{s}`: {text}");
            }
        }
    }
}

fn qty(v: &str) -> Value {
    json!({ "value": v, "uom": "EACH" })
}

#[track_caller]
fn id_of(r: &Resp) -> String {
    assert!(r.status == 200 || r.status == 201, "{}", r.text);
    r.data()["id"].as_str().unwrap().to_owned()
}

/// Stock, movements, an open and a released allocation, and a conflict in `br_main`.
async fn main_world(hub: &TestHub) -> Main {
    let api = hub.api();
    let seed = hub.seed().await;
    let receipt_body = json!({ "transaction_type": "receipt", "product_id": seed.product,
                               "location_id": seed.a, "quantity": qty("10") });
    let receipt = id_of(
        &api.post_keyed(
            "/v1/inventory/transactions",
            RECEIPT_KEY,
            receipt_body.clone(),
        )
        .await,
    );
    let transfer = id_of(
        &api.post(
            "/v1/inventory/transfers",
            json!({ "product_id": seed.product, "from_location_id": seed.a,
                    "to_location_id": seed.b, "quantity": qty("3") }),
        )
        .await,
    );
    let allocate =
        |n: &str| json!({ "product_id": seed.product, "location_id": seed.a, "quantity": qty(n) });
    let open_allocation = id_of(&api.post("/v1/allocations", allocate("2")).await);
    let released_allocation = id_of(&api.post("/v1/allocations", allocate("1")).await);
    let r = api
        .post(
            &format!("/v1/allocations/{released_allocation}/releases"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // A shipment the stock cannot cover: a rejected op, with its record in main's queue.
    let device = hub.enroll().await;
    let r = device
        .push(vec![device.movement(
            "shipment",
            &seed.product,
            &seed.b,
            "1000",
        )])
        .await;
    assert_eq!(r.data()["results"][0]["status"], "rejected", "{}", r.text);
    let conflict = r.data()["results"][0]["conflict_id"]
        .as_str()
        .unwrap()
        .to_owned();
    Main {
        seed,
        receipt,
        receipt_body,
        transfer,
        open_allocation,
        released_allocation,
        conflict,
        device,
    }
}

/// A north location with stock, so north's own lists are not empty.
async fn north_location(hub: &TestHub, product: &str) -> String {
    let api = hub.api();
    let loc = id_of(
        &api.post(
            "/v1/inventory/locations",
            json!({ "code": "N-1", "name": "North shelf", "branch_id": NORTH }),
        )
        .await,
    );
    let r = api
        .post(
            "/v1/inventory/transactions",
            json!({ "transaction_type": "receipt", "product_id": product,
                    "location_id": loc, "quantity": qty("4") }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    loc
}

/// Everything main holds, as main's own credential (narrowed to `br_main`) reads it.
async fn main_state(hub: &TestHub, m: &Main) -> Value {
    let main = hub.api().with("X-Branch-ID", "br_main");
    let mut state = serde_json::Map::new();
    for path in [
        "/v1/inventory/locations?pageSize=200".to_owned(),
        format!("/v1/locations/{}/inventory", m.seed.a),
        format!("/v1/locations/{}/inventory", m.seed.b),
        format!("/v1/products/{}/inventory", m.seed.product),
        format!("/v1/products/{}", m.seed.product),
        "/v1/inventory/transactions?pageSize=200".to_owned(),
        format!("/v1/allocations/{}", m.open_allocation),
        format!("/v1/allocations/{}", m.released_allocation),
        "/v1/conflicts?pageSize=200".to_owned(),
        format!("/v1/conflicts/{}", m.conflict),
        "/v1/inventory/delta?limit=1000".to_owned(),
    ] {
        let r = main.get(&path).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        state.insert(path, r.data().clone());
    }
    Value::Object(state)
}

/// What an answer to a north-limited caller must be.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// Refused with this status and code.
    Refused(u16, &'static str),
    /// 200, holding nothing of main's.
    Filtered,
    /// 200 with a result per item, every one failed with this code.
    ItemsFail(&'static str),
}

/// One request of the walk.
struct Probe {
    template: &'static str,
    method: Method,
    path: String,
    body: Option<Value>,
    /// An `Idempotency-Key` to send instead of a fresh one.
    key: Option<&'static str>,
    /// Ids the request itself names (an answer may echo them).
    asked: Vec<String>,
    expect: Expect,
}

fn get(template: &'static str, path: String, asked: &[&str], expect: Expect) -> Probe {
    Probe {
        template,
        method: Method::GET,
        path,
        body: None,
        key: None,
        asked: asked.iter().map(|s| (*s).to_owned()).collect(),
        expect,
    }
}

fn post(
    template: &'static str,
    path: String,
    body: Value,
    asked: &[&str],
    expect: Expect,
) -> Probe {
    Probe {
        template,
        method: Method::POST,
        path,
        body: Some(body),
        key: None,
        asked: asked.iter().map(|s| (*s).to_owned()).collect(),
        expect,
    }
}

const DENIED: Expect = Expect::Refused(403, "PERMISSION_DENIED");
const NOT_FOUND: Expect = Expect::Refused(404, "NOT_FOUND");

/// Every REST request of the walk (push and WebSocket are walked on their own).
fn probes(m: &Main, north: &str) -> Vec<Probe> {
    let (p, a, b) = (
        m.seed.product.as_str(),
        m.seed.a.as_str(),
        m.seed.b.as_str(),
    );
    let (open, released) = (m.open_allocation.as_str(), m.released_allocation.as_str());
    let conflict = m.conflict.as_str();
    let movement = |kind: &str, loc: &str| json!({ "transaction_type": kind, "product_id": p, "location_id": loc, "quantity": qty("1") });
    let transfer = |from: &str, to: &str| json!({ "product_id": p, "from_location_id": from, "to_location_id": to, "quantity": qty("1") });
    let mut out = vec![
        get(
            "/v1/products/{id}/inventory",
            format!("/v1/products/{p}/inventory"),
            &[],
            Expect::Filtered,
        ),
        get(
            "/v1/inventory/locations",
            "/v1/inventory/locations?pageSize=200".into(),
            &[],
            Expect::Filtered,
        ),
        post(
            "/v1/inventory/locations",
            "/v1/inventory/locations".into(),
            json!({ "code": format!("X-{}", uuid_tail()), "name": "x", "branch_id": "br_main" }),
            &["br_main"],
            DENIED,
        ),
        get(
            "/v1/inventory/transactions",
            "/v1/inventory/transactions?pageSize=200".into(),
            &[],
            Expect::Filtered,
        ),
        get(
            "/v1/inventory/transactions",
            format!("/v1/inventory/transactions?location_id={a}"),
            &[a],
            Expect::Filtered,
        ),
        get(
            "/v1/inventory/transactions",
            format!("/v1/inventory/transactions?product_id={p}"),
            &[],
            Expect::Filtered,
        ),
        post(
            "/v1/inventory/transactions",
            "/v1/inventory/transactions".into(),
            movement("shipment", a),
            &[a],
            DENIED,
        ),
        post(
            "/v1/inventory/transactions",
            "/v1/inventory/transactions".into(),
            movement("receipt", b),
            &[b],
            DENIED,
        ),
        post(
            "/v1/inventory/transactions/batch",
            "/v1/inventory/transactions/batch".into(),
            json!({ "transactions": [movement("shipment", a), movement("receipt", b)] }),
            &[a, b],
            Expect::ItemsFail("PERMISSION_DENIED"),
        ),
        post(
            "/v1/inventory/transactions/batch",
            "/v1/inventory/transactions/batch".into(),
            json!({ "transactions": [movement("receipt", north), movement("receipt", b)],
                    "atomic": true }),
            &[b],
            DENIED,
        ),
        post(
            "/v1/inventory/transfers",
            "/v1/inventory/transfers".into(),
            transfer(a, b),
            &[a, b],
            DENIED,
        ),
        post(
            "/v1/inventory/transfers",
            "/v1/inventory/transfers".into(),
            transfer(a, north),
            &[a],
            DENIED,
        ),
        post(
            "/v1/inventory/transfers",
            "/v1/inventory/transfers".into(),
            transfer(north, b),
            &[b],
            DENIED,
        ),
        post(
            "/v1/allocations",
            "/v1/allocations".into(),
            json!({ "product_id": p, "location_id": a, "quantity": qty("1") }),
            &[a],
            DENIED,
        ),
        get(
            "/v1/conflicts",
            "/v1/conflicts?pageSize=200".into(),
            &[],
            Expect::Filtered,
        ),
        get(
            "/v1/conflicts",
            "/v1/conflicts?status=open".into(),
            &[],
            Expect::Filtered,
        ),
        get(
            "/v1/conflicts/{id}",
            format!("/v1/conflicts/{conflict}"),
            &[conflict],
            NOT_FOUND,
        ),
        post(
            "/v1/conflicts/{id}/resolve",
            format!("/v1/conflicts/{conflict}/resolve"),
            json!({ "resolution": "dismiss" }),
            &[conflict],
            NOT_FOUND,
        ),
        post(
            "/v1/conflicts/{id}/resolve",
            format!("/v1/conflicts/{conflict}/resolve"),
            json!({ "resolution": "use_value", "value": "x" }),
            &[conflict],
            NOT_FOUND,
        ),
        get(
            "/v1/inventory/delta",
            "/v1/inventory/delta?limit=1000".into(),
            &[],
            Expect::Filtered,
        ),
    ];
    for loc in [a, b] {
        out.push(get(
            "/v1/inventory/locations/{id}/products",
            format!("/v1/inventory/locations/{loc}/products"),
            &[loc],
            DENIED,
        ));
        out.push(get(
            "/v1/locations/{id}/inventory",
            format!("/v1/locations/{loc}/inventory"),
            &[loc],
            DENIED,
        ));
    }
    let release = format!("{released}-release");
    for id in [m.receipt.as_str(), &m.transfer, open, &release] {
        out.push(get(
            "/v1/inventory/transactions/{id}",
            format!("/v1/inventory/transactions/{id}"),
            &[id, id.trim_end_matches("-release")],
            NOT_FOUND,
        ));
    }
    for id in [open, released] {
        out.push(get(
            "/v1/allocations/{id}",
            format!("/v1/allocations/{id}"),
            &[id],
            NOT_FOUND,
        ));
        // Not 422 `allocation_open` for the released one: its state does not show either.
        out.push(post(
            "/v1/allocations/{id}/releases",
            format!("/v1/allocations/{id}/releases"),
            json!({}),
            &[id],
            NOT_FOUND,
        ));
    }
    // Main's Idempotency-Key, with main's body and with another: neither replays main's stored
    // answer (which holds main's stock) nor says that main used the key (422).
    let mut replay = post(
        "/v1/inventory/transactions",
        "/v1/inventory/transactions".into(),
        m.receipt_body.clone(),
        &[a],
        DENIED,
    );
    replay.key = Some(RECEIPT_KEY);
    out.push(replay);
    let mut reuse = post(
        "/v1/inventory/transactions",
        "/v1/inventory/transactions".into(),
        movement("receipt", b),
        &[b],
        DENIED,
    );
    reuse.key = Some(RECEIPT_KEY);
    out.push(reuse);
    out
}

/// The operations of `docs/openapi.json`, as `METHOD /template`.
fn documented() -> BTreeSet<String> {
    let spec = Spec::load();
    let mut ops = BTreeSet::new();
    for (path, item) in spec.doc()["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "put", "post", "delete", "patch", "head", "options"]
                .contains(&method.as_str())
            {
                ops.insert(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    ops
}

/// The branch-limited credentials walked: a branch API key, a branch device, and the
/// organization-wide key narrowed with `X-Branch-ID`. The device is returned for push.
async fn north_callers(hub: &TestHub) -> (Vec<(&'static str, Client)>, Device) {
    let org = hub.creds.organization_id.clone();
    let device = hub.enroll_with(NORTH_ENROLL, &org).await;
    let callers = vec![
        (
            "north API key",
            hub.anonymous()
                .with("X-API-Key", NORTH_KEY)
                .with("X-Organization-ID", &org),
        ),
        ("north device", device.client.clone()),
        (
            "organization key with X-Branch-ID: br_north",
            hub.api().with("X-Branch-ID", NORTH),
        ),
    ];
    (callers, device)
}

#[tokio::test]
async fn every_operation_keeps_a_branch_limited_caller_out_of_other_branches() {
    let hub = TestHub::start().await;
    let m = main_world(&hub).await;
    let north = north_location(&hub, &m.seed.product).await;
    let (callers, device) = north_callers(&hub).await;
    let probes = probes(&m, &north);

    // Every documented operation is walked or says why it needs no walk.
    let mut walked: BTreeSet<String> = probes
        .iter()
        .map(|p| format!("{} {}", p.method, p.template))
        .collect();
    walked.insert("POST /v1/sync/push".into());
    walked.insert("GET /v1/ws".into());
    let exempt: BTreeSet<String> = NOT_BRANCH_SCOPED
        .iter()
        .map(|(method, path, why)| {
            assert!(!why.is_empty());
            format!("{method} {path}")
        })
        .collect();
    let documented = documented();
    let unaccounted: Vec<_> = documented
        .iter()
        .filter(|op| !walked.contains(*op) && !exempt.contains(*op))
        .collect();
    assert!(
        unaccounted.is_empty(),
        "operations neither walked for branch scope nor listed in NOT_BRANCH_SCOPED with a \
         reason: {unaccounted:?}"
    );
    let stale: Vec<_> = walked
        .iter()
        .chain(&exempt)
        .filter(|op| !documented.contains(*op))
        .collect();
    assert!(stale.is_empty(), "not in docs/openapi.json: {stale:?}");
    let both: Vec<_> = walked.intersection(&exempt).collect();
    assert!(both.is_empty(), "walked and exempt: {both:?}");

    let before = main_state(&hub, &m).await;
    assert_eq!(
        before["/v1/conflicts?pageSize=200"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    for (who, client) in &callers {
        for probe in &probes {
            let what = format!("{who}: {} {}", probe.method, probe.path);
            let mut extra = Vec::new();
            let fresh = uuid_tail();
            if probe.method == Method::POST {
                extra.push(("Idempotency-Key", probe.key.unwrap_or(&fresh)));
            }
            let body = probe.body.as_ref().map(|b| b.to_string().into_bytes());
            let r = client
                .send(probe.method.clone(), &probe.path, &extra, body)
                .await;
            match probe.expect {
                Expect::Refused(status, code) => {
                    assert_eq!((r.status, r.code()), (status, code), "{what}: {}", r.text);
                }
                Expect::Filtered => {
                    assert_eq!(r.status, 200, "{what}: {}", r.text);
                    assert_ne!(r.body["meta"]["has_more"], true, "{what}: {}", r.text);
                }
                Expect::ItemsFail(code) => {
                    assert_eq!(r.status, 200, "{what}: {}", r.text);
                    for item in r.data()["results"].as_array().unwrap() {
                        assert_eq!(item["status"], "failed", "{what}: {}", r.text);
                        assert_eq!(item["error"]["code"], code, "{what}: {}", r.text);
                    }
                }
            }
            m.assert_hidden(&what, &r.text, &probe.asked);
        }
        // North's own records do show: the filter is the branch, not everything.
        let r = client.get("/v1/inventory/locations").await;
        assert!(r.text.contains(&north), "{who}: {}", r.text);
    }

    // Push: only a device pushes, and its ops naming main's records are rejected one by one
    // without saying anything about them (no "already released", no conflict contents).
    let (p, a, b) = (&m.seed.product, &m.seed.a, &m.seed.b);
    for (who, client) in &callers {
        if *who == "north device" {
            continue;
        }
        let op = device.movement("receipt", p, &north, "1");
        let r = client.post("/v1/sync/push", json!({ "ops": [op] })).await;
        assert_eq!(
            (r.status, r.code()),
            (403, "PERMISSION_DENIED"),
            "{who}: {}",
            r.text
        );
    }
    let ops = vec![
        (
            device.movement("shipment", p, a, "1"),
            "PERMISSION_DENIED",
            vec![a.clone()],
        ),
        (
            device.op(
                "transfer",
                json!({ "transfer_id": format!("xfer_{}", uuid_tail()), "product_id": p,
                        "from_location_id": a, "to_location_id": b, "quantity": qty("1") }),
            ),
            "PERMISSION_DENIED",
            vec![a.clone(), b.clone()],
        ),
        (
            device.op(
                "allocation",
                json!({ "allocation_id": format!("alloc_{}", uuid_tail()), "product_id": p,
                        "location_id": a, "quantity": qty("1") }),
            ),
            "PERMISSION_DENIED",
            vec![a.clone()],
        ),
        (
            device.op(
                "allocation_release",
                json!({ "allocation_id": m.open_allocation, "quantity": qty("2") }),
            ),
            "NOT_FOUND",
            vec![m.open_allocation.clone()],
        ),
        (
            device.op(
                "allocation_release",
                json!({ "allocation_id": m.released_allocation, "quantity": qty("1") }),
            ),
            "NOT_FOUND",
            vec![m.released_allocation.clone()],
        ),
        (
            device.op(
                "conflict_resolution",
                json!({ "conflict_id": m.conflict, "resolution": "dismiss" }),
            ),
            "NOT_FOUND",
            vec![m.conflict.clone()],
        ),
        (
            device.op(
                "conflict_resolution",
                json!({ "conflict_id": m.conflict, "resolution": "use_value", "value": "1" }),
            ),
            "NOT_FOUND",
            vec![m.conflict.clone()],
        ),
    ];
    let r = device
        .push(ops.iter().map(|(op, _, _)| op.clone()).collect())
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let results = r.data()["results"].as_array().unwrap();
    assert_eq!(results.len(), ops.len());
    let mut own_records = Vec::new();
    for (result, (op, code, asked)) in results.iter().zip(&ops) {
        let what = format!("north device: push {}", op["kind"]);
        assert_eq!(result["status"], "rejected", "{what}: {result}");
        assert_eq!(result["error"]["code"], *code, "{what}: {result}");
        m.assert_hidden(&what, &result.to_string(), asked);
        own_records.push(result["conflict_id"].as_str().unwrap().to_owned());
    }
    // The rejections are the north device's records, in north's queue, not main's.
    let r = device.client.get("/v1/conflicts?pageSize=200").await;
    for id in &own_records {
        assert!(r.text.contains(id.as_str()), "{}", r.text);
    }

    // Nothing of main's changed.
    assert_eq!(main_state(&hub, &m).await, before);

    // WebSocket: subscribers limited to north hear north's changes and none of main's.
    let org = hub.creds.organization_id.clone();
    let bearer = format!("Bearer {}", device.access);
    let mut sockets = Vec::new();
    for headers in [
        vec![
            ("X-API-Key", NORTH_KEY),
            ("X-Organization-ID", org.as_str()),
        ],
        vec![
            ("Authorization", bearer.as_str()),
            ("X-Organization-ID", org.as_str()),
            ("X-Mobile-Device-Id", device.id.as_str()),
        ],
        vec![
            ("X-API-Key", hub.creds.api_key.as_str()),
            ("X-Organization-ID", org.as_str()),
            ("X-Branch-ID", NORTH),
        ],
    ] {
        sockets.push(subscribed(&hub, &headers).await);
    }
    // Main: a movement, a rejected op's new record, and the settling of main's record.
    hub.receive(p, a, "1").await;
    let r = m
        .device
        .push(vec![m.device.movement("shipment", p, b, "999")])
        .await;
    assert_eq!(r.data()["results"][0]["status"], "rejected", "{}", r.text);
    let r = hub
        .api()
        .post(
            &format!("/v1/conflicts/{}/resolve", m.conflict),
            json!({ "resolution": "dismiss" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // Then north: a control that must arrive (and after main's, in commit order).
    hub.receive(p, &north, "1").await;
    for (ws, (who, _)) in sockets.iter_mut().zip(&callers) {
        loop {
            let frame = next_frame(ws, Duration::from_secs(5))
                .await
                .unwrap_or_else(|| panic!("{who}: no frame for north's own change"));
            m.assert_hidden(&format!("{who}: WebSocket"), &frame.to_string(), &[]);
            if frame["data"]["location_id"] == north.as_str() {
                break;
            }
        }
        if let Some(frame) = next_frame(ws, Duration::from_millis(300)).await {
            panic!("{who}: an unexpected frame {frame}");
        }
    }
}

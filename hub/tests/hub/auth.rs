//! Authentication and tenancy headers: every way a credential can be wrong gets the contract's
//! status and code and shows nothing it should not (no other organization's ids, no secret, no
//! echo of the token presented); and the good paths: enrollment, rotation, rate limits.
// Unwrap and expect are fine in tests; clippy only knows that inside #[test] fns.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::*;
use crate::malformed::send_built;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use stocksync_hub::auth::jwt::{self, Claims};
use stocksync_hub::auth::secret;

/// Every secret and foreign id the hub knows that no error response may show.
fn never_shown(hub: &TestHub) -> Vec<String> {
    let jwt = secret::load_or_create(hub.dir.path()).unwrap().jwt;
    vec![
        hub.creds.api_key.clone(),
        hub.creds.enrollment_key.clone(),
        OTHER_KEY.into(),
        OTHER_ENROLL.into(),
        NORTH_KEY.into(),
        READ_ONLY_KEY.into(),
        URL_SAFE_NO_PAD.encode(jwt),
        jwt.iter().map(|b| format!("{b:02x}")).collect(),
    ]
}

/// A hub that treats any second use of a refresh token as theft at once.
async fn no_reuse_grace() -> TestHub {
    TestHub::start_with(|c| {
        c.rate_limit = 0;
        c.refresh_reuse_grace_secs = 0;
    })
    .await
}

/// An error envelope with this status and code that shows none of `hidden` (nor any secret).
fn refused(hub: &TestHub, r: &Resp, status: u16, code: &str, hidden: &[&str]) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.code(), code, "{}", r.text);
    assert_eq!(r.body["responseType"], "error", "{}", r.text);
    assert!(r.body["data"].is_null(), "{}", r.text);
    let secrets = never_shown(hub);
    let all = secrets
        .iter()
        .map(String::as_str)
        .chain(hidden.iter().copied());
    for s in all {
        assert!(!s.is_empty());
        assert!(!r.text.contains(s), "the response shows `{s}`: {}", r.text);
    }
}

/// What a demo-organization caller must never see.
const DEMO_HIDDEN: [&str; 2] = [OTHER_ORG, "br_other"];

fn claims_of(token: &str) -> Claims {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn hub_secret(hub: &TestHub) -> [u8; 32] {
    secret::load_or_create(hub.dir.path()).unwrap().jwt
}

fn now() -> i64 {
    stocksync_hub::clock::now_unix()
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The device's client with another bearer token.
fn bearer(d: &Device, token: &str) -> Client {
    d.client.with("Authorization", &format!("Bearer {token}"))
}

/// Token parts that must not come back in an answer.
fn parts(token: &str) -> Vec<&str> {
    token.split('.').filter(|p| p.len() >= 8).collect()
}

async fn refresh(hub: &TestHub, token: &str) -> Resp {
    hub.anonymous()
        .post_raw(
            "/v1/oauth/token",
            json!({ "grant_type": "refresh_token", "refresh_token": token }),
        )
        .await
}

#[tokio::test]
async fn no_credential_is_401() {
    let hub = TestHub::start().await;
    let demo = hub.creds.organization_id.clone();
    let r = hub
        .anonymous()
        .with("X-Organization-ID", &demo)
        .get("/v1/products")
        .await;
    refused(&hub, &r, 401, "AUTHENTICATION_FAILED", &DEMO_HIDDEN);
    let r = hub.anonymous().get("/v1/inventory/locations").await;
    refused(&hub, &r, 401, "AUTHENTICATION_FAILED", &DEMO_HIDDEN);
    let r = hub
        .anonymous()
        .with("X-Organization-ID", &demo)
        .post("/v1/products", json!({ "sku": "NOAUTH", "name": "x" }))
        .await;
    refused(&hub, &r, 401, "AUTHENTICATION_FAILED", &DEMO_HIDDEN);
    // Nothing was created.
    let r = hub.api().get("/v1/products").await;
    assert_eq!(r.body["meta"]["pagination"]["total"], 0);
}

#[tokio::test]
async fn malformed_authorization_headers_are_401() {
    let hub = TestHub::start().await;
    let anon = hub
        .anonymous()
        .with("X-Organization-ID", &hub.creds.organization_id);
    let long = "A".repeat(10 * 1024);
    let cases: [(String, Option<&str>); 10] = [
        ("Basic dXNlcjpzZWNyZXQ=".into(), Some("dXNlcjpzZWNyZXQ")),
        ("Bearer".into(), None),
        ("Bearer ".into(), None),
        ("Bearer      ".into(), None),
        (
            "bearer garbage-token-1234".into(),
            Some("garbage-token-1234"),
        ),
        ("Bearer not.a.jwt-at-all".into(), Some("jwt-at-all")),
        ("Bearer aaaa.bbbb".into(), Some("aaaa.bbbb")),
        ("Bearer aaaa.bbbb.cccc.dddd".into(), Some("cccc.dddd")),
        (format!("Bearer {long}"), Some(&long[..64])),
        (format!("Token {}", hub.creds.api_key), None),
    ];
    for (value, echo) in &cases {
        let r = anon.with("Authorization", value).get("/v1/products").await;
        let hidden: Vec<&str> = echo.iter().copied().chain(DEMO_HIDDEN).collect();
        refused(&hub, &r, 401, "AUTHENTICATION_FAILED", &hidden);
    }
    // A broken Authorization wins over a good API key: the caller meant the bearer.
    let r = hub
        .api()
        .with("Authorization", "Bearer garbage-token-5678")
        .get("/v1/products")
        .await;
    refused(
        &hub,
        &r,
        401,
        "AUTHENTICATION_FAILED",
        &["garbage-token-5678"],
    );
}

#[tokio::test]
async fn token_signed_with_another_secret_is_401() {
    let hub = TestHub::start().await;
    let d = hub.enroll().await;
    let mut claims = claims_of(&d.access);
    claims.permissions.push("inventory.admin".into());
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).unwrap();
    let forged = jwt::sign(&key, &claims);
    let r = bearer(&d, &forged).get("/v1/products").await;
    refused(&hub, &r, 401, "AUTHENTICATION_FAILED", &parts(&forged));
    // The same claims signed with the hub's key do work: the signature is what failed.
    let genuine = jwt::sign(&hub_secret(&hub), &claims);
    assert_eq!(bearer(&d, &genuine).get("/v1/products").await.status, 200);
}

#[tokio::test]
async fn alg_none_token_is_401() {
    let hub = TestHub::start().await;
    let d = hub.enroll().await;
    let payload = b64(&serde_json::to_vec(&claims_of(&d.access)).unwrap());
    for header in [
        r#"{"alg":"none","typ":"JWT"}"#,
        r#"{"alg":"None","typ":"JWT"}"#,
        r#"{"typ":"JWT"}"#,
    ] {
        let token = format!("{}.{payload}.", b64(header.as_bytes()));
        let r = bearer(&d, &token).get("/v1/products").await;
        refused(&hub, &r, 401, "AUTHENTICATION_FAILED", &parts(&token));
    }
    // Nor does an `alg: none` header with the genuine signature of the original token.
    let signature = d.access.rsplit('.').next().unwrap();
    let token = format!(
        "{}.{payload}.{signature}",
        b64(br#"{"alg":"none","typ":"JWT"}"#)
    );
    let r = bearer(&d, &token).get("/v1/products").await;
    refused(&hub, &r, 401, "AUTHENTICATION_FAILED", &parts(&token));
}

#[tokio::test]
async fn hs512_token_is_401_even_with_the_hubs_key() {
    let hub = TestHub::start().await;
    let d = hub.enroll().await;
    let input = format!(
        "{}.{}",
        b64(br#"{"alg":"HS512","typ":"JWT"}"#),
        b64(&serde_json::to_vec(&claims_of(&d.access)).unwrap())
    );
    let mut mac = Hmac::<sha2::Sha512>::new_from_slice(&hub_secret(&hub)).unwrap();
    mac.update(input.as_bytes());
    let token = format!("{input}.{}", b64(&mac.finalize().into_bytes()));
    let r = bearer(&d, &token).get("/v1/products").await;
    refused(&hub, &r, 401, "AUTHENTICATION_FAILED", &parts(&token));
}

#[tokio::test]
async fn token_with_an_edited_payload_is_401() {
    let hub = TestHub::start().await;
    let d = hub.enroll().await;
    let mut claims = claims_of(&d.access);
    claims.org = OTHER_ORG.into();
    claims.branch = "br_other".into();
    let mut pieces: Vec<String> = d.access.split('.').map(str::to_owned).collect();
    pieces[1] = b64(&serde_json::to_vec(&claims).unwrap());
    let token = pieces.join(".");
    let r = bearer(&d, &token)
        .with("X-Organization-ID", OTHER_ORG)
        .get("/v1/products")
        .await;
    refused(&hub, &r, 401, "AUTHENTICATION_FAILED", &parts(&token));
}

#[tokio::test]
async fn expired_token_is_401_token_expired() {
    let hub = TestHub::start().await;
    let d = hub.enroll().await;
    let key = hub_secret(&hub);
    let mut claims = claims_of(&d.access);
    claims.iat = now() - 7200;
    claims.nbf = claims.iat;
    claims.exp = now() - 60;
    let expired = jwt::sign(&key, &claims);
    let r = bearer(&d, &expired).get("/v1/products").await;
    refused(&hub, &r, 401, "TOKEN_EXPIRED", &parts(&expired));
    // Also on the sync routes, where a node will see it most.
    let r = bearer(&d, &expired)
        .post(
            "/v1/sync/push",
            json!({ "ops": [d.movement("receipt", "prod_x", "loc_x", "1")] }),
        )
        .await;
    refused(&hub, &r, 401, "TOKEN_EXPIRED", &parts(&expired));
    // Control: the same claims, still valid, are accepted.
    claims.exp = now() + 600;
    let fresh = jwt::sign(&key, &claims);
    assert_eq!(bearer(&d, &fresh).get("/v1/products").await.status, 200);
}

#[tokio::test]
async fn not_yet_valid_token_is_401() {
    let hub = TestHub::start().await;
    let d = hub.enroll().await;
    let key = hub_secret(&hub);
    let base = claims_of(&d.access);
    let future = now() + 3600;
    let mut nbf = base.clone();
    nbf.nbf = future;
    nbf.exp = future + 3600;
    let mut iat = base.clone();
    iat.iat = future;
    iat.exp = future + 3600;
    for claims in [nbf, iat] {
        let token = jwt::sign(&key, &claims);
        let r = bearer(&d, &token).get("/v1/products").await;
        refused(&hub, &r, 401, "AUTHENTICATION_FAILED", &parts(&token));
    }
}

#[tokio::test]
async fn token_of_a_revoked_family_is_401() {
    let hub = no_reuse_grace().await;
    let d = hub.enroll().await;
    let key = hub_secret(&hub);
    // Reusing the refresh token revokes the family.
    assert_eq!(refresh(&hub, &d.refresh).await.status, 200);
    assert_eq!(refresh(&hub, &d.refresh).await.status, 401);
    // A token of that family is refused even when freshly signed with the hub's key...
    let mut claims = claims_of(&d.access);
    claims.iat = now();
    claims.nbf = claims.iat;
    claims.exp = now() + 600;
    claims.jti = uuid_tail();
    let token = jwt::sign(&key, &claims);
    let r = bearer(&d, &token).get("/v1/products").await;
    refused(&hub, &r, 401, "AUTHENTICATION_FAILED", &parts(&token));
    // ...while the very same claims in another family pass: the family is what is refused.
    claims.fam = "fam_some_other".into();
    let token = jwt::sign(&key, &claims);
    assert_eq!(bearer(&d, &token).get("/v1/products").await.status, 200);
}

#[tokio::test]
async fn enrollment_returns_a_working_pair() {
    let hub = TestHub::start().await;
    let id = stocksync_model::DeviceId::new().to_string();
    let r = hub
        .anonymous()
        .post_raw(
            "/v1/auth/devices",
            json!({ "enrollment_key": hub.creds.enrollment_key, "device_id": id, "role": "tablet", "name": "Till 2" }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let data = r.data();
    assert_eq!(data["token_type"], "Bearer");
    assert_eq!(data["expires_in"], 3600);
    assert_eq!(data["device_id"], id.as_str());
    assert_eq!(data["organization_id"], "org_demo");
    assert_eq!(data["branch_id"], "br_main");
    assert_eq!(data["role"], "tablet");
    let permissions = data["permissions"].as_array().unwrap();
    assert!(permissions.contains(&json!("inventory.transactions.create")));
    assert!(!permissions.contains(&json!("inventory.admin")));
    assert!(!r.text.contains(&hub.creds.enrollment_key));
    let access = data["access_token"].as_str().unwrap();
    let refresh_token = data["refresh_token"].as_str().unwrap();
    assert_ne!(access, refresh_token);

    let claims = claims_of(access);
    assert_eq!(claims.sub, id);
    assert_eq!(claims.org, "org_demo");
    assert_eq!(claims.branch, "br_main");
    assert_eq!(claims.role, "tablet");
    assert_eq!(claims.exp - claims.iat, 3600);
    assert!((claims.iat - now()).abs() <= 5);

    let client = hub
        .anonymous()
        .with("Authorization", &format!("Bearer {access}"))
        .with("X-Organization-ID", "org_demo")
        .with("X-Mobile-Device-Id", &id);
    let r = client.get("/v1/products").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = client.get("/v1/inventory/delta").await;
    assert_eq!(r.status, 200, "{}", r.text);
    // The refresh token is a refresh token: it rotates once.
    assert_eq!(refresh(&hub, refresh_token).await.status, 200);
}

#[tokio::test]
async fn refresh_rotates_and_an_old_refresh_token_then_fails() {
    let hub = no_reuse_grace().await;
    let d = hub.enroll().await;
    let r = refresh(&hub, &d.refresh).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let access2 = r.data()["access_token"].as_str().unwrap().to_owned();
    let refresh2 = r.data()["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(refresh2, d.refresh);
    assert_ne!(access2, d.access);
    assert_eq!(claims_of(&access2).fam, claims_of(&d.access).fam);
    assert_eq!(bearer(&d, &access2).get("/v1/products").await.status, 200);
    // The chain goes on from the newest refresh token.
    let r = refresh(&hub, &refresh2).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let access3 = r.data()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(bearer(&d, &access3).get("/v1/products").await.status, 200);
    // The first one is spent.
    let r = refresh(&hub, &d.refresh).await;
    refused(&hub, &r, 401, "AUTHENTICATION_FAILED", &[&d.refresh]);
}

#[tokio::test]
async fn reused_refresh_token_revokes_the_whole_family() {
    let hub = no_reuse_grace().await;
    let d = hub.enroll().await;
    let bystander = hub.enroll().await;
    let r = refresh(&hub, &d.refresh).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let access2 = r.data()["access_token"].as_str().unwrap().to_owned();
    let refresh2 = r.data()["refresh_token"].as_str().unwrap().to_owned();

    // Someone presents the spent token: 401, and the family is gone.
    let r = refresh(&hub, &d.refresh).await;
    refused(
        &hub,
        &r,
        401,
        "AUTHENTICATION_FAILED",
        &[&d.refresh, &refresh2],
    );
    // The refresh token rotated from it no longer works...
    let r = refresh(&hub, &refresh2).await;
    refused(&hub, &r, 401, "AUTHENTICATION_FAILED", &[&refresh2]);
    // ...nor the current access token, nor the first one, on REST or sync.
    for token in [&access2, &d.access] {
        let r = bearer(&d, token).get("/v1/products").await;
        refused(&hub, &r, 401, "AUTHENTICATION_FAILED", &parts(token));
        let r = bearer(&d, token)
            .post(
                "/v1/sync/push",
                json!({ "ops": [d.movement("receipt", "prod_x", "loc_x", "1")] }),
            )
            .await;
        refused(&hub, &r, 401, "AUTHENTICATION_FAILED", &parts(token));
    }
    // Another device's family is untouched.
    assert_eq!(bystander.client.get("/v1/products").await.status, 200);
    assert_eq!(refresh(&hub, &bystander.refresh).await.status, 200);
    // The remedy: enroll the device again; it gets a new, working family.
    let r = hub
        .anonymous()
        .post_raw(
            "/v1/auth/devices",
            json!({ "enrollment_key": hub.creds.enrollment_key, "device_id": d.id, "role": "handheld" }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let access = r.data()["access_token"].as_str().unwrap();
    assert_ne!(claims_of(access).fam, claims_of(&d.access).fam);
    assert_eq!(bearer(&d, access).get("/v1/products").await.status, 200);
}

#[tokio::test]
async fn expired_refresh_token_is_token_expired() {
    let hub = TestHub::start_with(|c| {
        c.rate_limit = 0;
        c.refresh_ttl_secs = 0;
    })
    .await;
    let d = hub.enroll().await;
    let r = refresh(&hub, &d.refresh).await;
    refused(&hub, &r, 401, "TOKEN_EXPIRED", &[&d.refresh]);
}

#[tokio::test]
async fn wrong_organization_header_is_403() {
    let hub = TestHub::start().await;
    let d = hub.enroll().await;
    for org in [OTHER_ORG, "org_nope", "ORG_DEMO", "org_demo "] {
        let r = hub
            .api()
            .with("X-Organization-ID", org)
            .get("/v1/products")
            .await;
        if org == "org_demo " {
            // Surrounding blanks are not part of a header value: this one is the demo org.
            assert_eq!(r.status, 200, "{}", r.text);
            continue;
        }
        refused(&hub, &r, 403, "PERMISSION_DENIED", &["br_other"]);
        let r = d
            .client
            .with("X-Organization-ID", org)
            .get("/v1/inventory/locations")
            .await;
        refused(&hub, &r, 403, "PERMISSION_DENIED", &["br_other"]);
    }
    // A write with the wrong organization changes nothing.
    let r = hub
        .api()
        .with("X-Organization-ID", OTHER_ORG)
        .post("/v1/products", json!({ "sku": "WRONG-ORG", "name": "x" }))
        .await;
    refused(&hub, &r, 403, "PERMISSION_DENIED", &["br_other"]);
    let r = hub.other_api().get("/v1/products").await;
    assert_eq!(r.body["meta"]["pagination"]["total"], 0);
    let r = hub.api().get("/v1/products").await;
    assert_eq!(r.body["meta"]["pagination"]["total"], 0);
}

#[tokio::test]
async fn missing_organization_header_is_400() {
    let hub = TestHub::start().await;
    let d = hub.enroll().await;
    for client in [
        hub.api().without("X-Organization-ID"),
        d.client.without("X-Organization-ID"),
        hub.api().with("X-Organization-ID", ""),
    ] {
        let r = client.get("/v1/products").await;
        refused(&hub, &r, 400, "VALIDATION_FAILED", &DEMO_HIDDEN);
        assert!(
            r.body["error"]["details"]["X-Organization-ID"].is_array(),
            "{}",
            r.text
        );
    }
}

#[tokio::test]
async fn wrong_device_header_is_403() {
    let hub = TestHub::start().await;
    let d = hub.enroll().await;
    let other = hub.enroll().await;
    let seed = hub.seed().await;
    for device in [other.id.as_str(), "dev_nope", "garbage"] {
        let c = d.client.with("X-Mobile-Device-Id", device);
        let r = c.get("/v1/products").await;
        refused(&hub, &r, 403, "PERMISSION_DENIED", &DEMO_HIDDEN);
        let r = c
            .post(
                "/v1/sync/push",
                json!({ "ops": [d.movement("receipt", &seed.product, &seed.a, "1")] }),
            )
            .await;
        refused(&hub, &r, 403, "PERMISSION_DENIED", &DEMO_HIDDEN);
    }
    assert_eq!(hub.on_hand(&seed.product, &seed.a).await, "0");
}

#[tokio::test]
async fn missing_device_header_on_sync_is_400() {
    let hub = TestHub::start().await;
    let d = hub.enroll().await;
    let seed = hub.seed().await;
    let c = d.client.without("X-Mobile-Device-Id");
    let r = c
        .post(
            "/v1/sync/push",
            json!({ "ops": [d.movement("receipt", &seed.product, &seed.a, "1")] }),
        )
        .await;
    refused(&hub, &r, 400, "VALIDATION_FAILED", &DEMO_HIDDEN);
    assert!(
        r.body["error"]["details"]["X-Mobile-Device-Id"].is_array(),
        "{}",
        r.text
    );
    let r = c.get("/v1/ws").await;
    refused(&hub, &r, 400, "VALIDATION_FAILED", &DEMO_HIDDEN);
    assert!(r.body["error"]["details"]["X-Mobile-Device-Id"].is_array());
    assert_eq!(hub.on_hand(&seed.product, &seed.a).await, "0");
    // Outside /v1/sync and /v1/ws the header is optional.
    assert_eq!(c.get("/v1/products").await.status, 200);
}

#[tokio::test]
async fn branch_outside_the_credential_is_403() {
    let hub = TestHub::start().await;
    let d = hub.enroll().await;
    let north = hub
        .anonymous()
        .with("X-API-Key", NORTH_KEY)
        .with("X-Organization-ID", "org_demo");
    let cases = [
        (north.clone(), "br_main"),
        (d.client.clone(), NORTH),
        (hub.api(), "br_other"),
        (hub.api(), "br_nope"),
        (north.clone(), "br_other"),
    ];
    for (client, branch) in cases {
        let r = client
            .with("X-Branch-ID", branch)
            .get("/v1/inventory/locations")
            .await;
        refused(&hub, &r, 403, "PERMISSION_DENIED", &[OTHER_ORG]);
    }
    // Controls: a branch the credential has passes.
    let r = north
        .with("X-Branch-ID", NORTH)
        .get("/v1/inventory/locations")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = hub
        .api()
        .with("X-Branch-ID", NORTH)
        .get("/v1/inventory/locations")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = d
        .client
        .with("X-Branch-ID", "br_main")
        .get("/v1/inventory/locations")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn missing_scope_is_403_with_the_scope_needed() {
    let hub = TestHub::start().await;
    let seed = hub.seed().await;
    let ro = hub
        .anonymous()
        .with("X-API-Key", READ_ONLY_KEY)
        .with("X-Organization-ID", "org_demo");
    let r = ro
        .post("/v1/products", json!({ "sku": "RO-1", "name": "x" }))
        .await;
    refused(&hub, &r, 403, "PERMISSION_DENIED", &DEMO_HIDDEN);
    assert_eq!(
        r.body["error"]["details"]["required_scope"],
        "inventory.products.write"
    );
    let r = ro
        .post(
            "/v1/inventory/transactions",
            json!({ "transaction_type": "receipt", "product_id": seed.product,
                    "location_id": seed.a, "quantity": { "value": "1", "uom": "EACH" } }),
        )
        .await;
    refused(&hub, &r, 403, "PERMISSION_DENIED", &DEMO_HIDDEN);
    assert_eq!(
        r.body["error"]["details"]["required_scope"],
        "inventory.transactions.create"
    );
    let r = ro.get("/v1/inventory/transactions").await;
    refused(&hub, &r, 403, "PERMISSION_DENIED", &DEMO_HIDDEN);
    assert_eq!(
        r.body["error"]["details"]["required_scope"],
        "inventory.transactions.read"
    );
    // What it has, it may do; what it tried did not happen.
    let r = ro.get("/v1/products").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["meta"]["pagination"]["total"], 1);
    assert_eq!(hub.on_hand(&seed.product, &seed.a).await, "0");
}

#[tokio::test]
async fn the_admin_scope_grants_every_scope() {
    let hub = TestHub::start().await;
    let seed = hub.seed().await;
    let admin = hub
        .anonymous()
        .with("X-API-Key", ADMIN_ONLY_KEY)
        .with("X-Organization-ID", "org_demo");
    let r = admin
        .post(
            "/v1/inventory/transactions",
            json!({ "transaction_type": "receipt", "product_id": seed.product,
                    "location_id": seed.a, "quantity": { "value": "2", "uom": "EACH" } }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = admin.get("/v1/inventory/transactions").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(hub.on_hand(&seed.product, &seed.a).await, "2");
}

#[tokio::test]
async fn unknown_api_key_is_401() {
    let hub = TestHub::start().await;
    let real = hub.creds.api_key.clone();
    let prefix = real[..real.len() - 1].to_owned();
    let padded = format!("{real}x");
    let random = secret::random_token("ssk_", 24);
    for key in [
        random.as_str(),
        prefix.as_str(),
        padded.as_str(),
        "",
        "ssk_",
    ] {
        let r = hub.api().with("X-API-Key", key).get("/v1/products").await;
        let hidden: Vec<&str> = [key]
            .into_iter()
            .filter(|k| k.len() > 4)
            .chain(DEMO_HIDDEN)
            .collect();
        refused(&hub, &r, 401, "AUTHENTICATION_FAILED", &hidden);
    }
    // An enrollment key is not an API key.
    let r = hub
        .api()
        .with("X-API-Key", &hub.creds.enrollment_key)
        .get("/v1/products")
        .await;
    refused(&hub, &r, 401, "AUTHENTICATION_FAILED", &DEMO_HIDDEN);
}

#[tokio::test]
async fn other_organizations_api_key_cannot_act_for_demo() {
    let hub = TestHub::start().await;
    let seed = hub.seed().await;
    let c = hub
        .anonymous()
        .with("X-API-Key", OTHER_KEY)
        .with("X-Organization-ID", "org_demo");
    let hidden = ["br_main", seed.product.as_str(), seed.sku.as_str()];
    let r = c.get("/v1/products").await;
    refused(&hub, &r, 403, "PERMISSION_DENIED", &hidden);
    let r = c.get(&format!("/v1/products/{}", seed.product)).await;
    refused(&hub, &r, 403, "PERMISSION_DENIED", &hidden[..1]);
    let r = c
        .post(
            "/v1/inventory/transactions",
            json!({ "transaction_type": "receipt", "product_id": seed.product,
                    "location_id": seed.a, "quantity": { "value": "5", "uom": "EACH" } }),
        )
        .await;
    refused(&hub, &r, 403, "PERMISSION_DENIED", &hidden[..1]);
    assert_eq!(hub.on_hand(&seed.product, &seed.a).await, "0");
    // The other org's device token likewise.
    let od = hub.enroll_with(OTHER_ENROLL, OTHER_ORG).await;
    let r = od
        .client
        .with("X-Organization-ID", "org_demo")
        .get("/v1/products")
        .await;
    refused(&hub, &r, 403, "PERMISSION_DENIED", &hidden);
}

async fn enroll_raw(hub: &TestHub, body: Value) -> Resp {
    hub.anonymous().post_raw("/v1/auth/devices", body).await
}

#[tokio::test]
async fn enrollment_with_an_unknown_key_is_401() {
    let hub = TestHub::start().await;
    let real = hub.creds.enrollment_key.clone();
    let near = format!("{}X", &real[..real.len() - 1]);
    for key in [
        near.as_str(),
        "enr_nope_nope_nope",
        hub.creds.api_key.as_str(),
        "",
    ] {
        let id = stocksync_model::DeviceId::new().to_string();
        let r = enroll_raw(
            &hub,
            json!({ "enrollment_key": key, "device_id": id, "role": "handheld" }),
        )
        .await;
        let hidden: Vec<&str> = [key]
            .into_iter()
            .filter(|k| k.len() > 4)
            .chain(["org_demo", "br_main"])
            .collect();
        refused(&hub, &r, 401, "AUTHENTICATION_FAILED", &hidden);
        assert!(!r.text.contains("access_token"));
    }
}

#[tokio::test]
async fn enrollment_with_a_bad_device_id_or_role_is_400() {
    let hub = TestHub::start().await;
    let key = hub.creds.enrollment_key.clone();
    let long = format!("dev_{}", "a".repeat(300));
    for id in [
        "",
        "dev_",
        "device-1",
        "prod_0190abcd",
        "dev_has space",
        "dev_ünï",
        long.as_str(),
    ] {
        let r = enroll_raw(
            &hub,
            json!({ "enrollment_key": key, "device_id": id, "role": "handheld" }),
        )
        .await;
        refused(&hub, &r, 400, "VALIDATION_FAILED", &["org_demo"]);
        assert!(
            r.body["error"]["details"]["device_id"].is_array(),
            "{id}: {}",
            r.text
        );
    }
    for role in ["", "admin", "integration", "HANDHELD", "handheld "] {
        let id = stocksync_model::DeviceId::new().to_string();
        let r = enroll_raw(
            &hub,
            json!({ "enrollment_key": key, "device_id": id, "role": role }),
        )
        .await;
        refused(&hub, &r, 400, "VALIDATION_FAILED", &["org_demo"]);
        assert!(
            r.body["error"]["details"]["role"].is_array(),
            "{role}: {}",
            r.text
        );
    }
    // Fields of the wrong type or unknown fields are refused too.
    let id = stocksync_model::DeviceId::new().to_string();
    for body in [
        json!({ "enrollment_key": key, "device_id": 42, "role": "handheld" }),
        json!({ "enrollment_key": key, "device_id": id, "role": "handheld", "org": OTHER_ORG }),
        json!({ "enrollment_key": key, "device_id": id }),
    ] {
        let r = enroll_raw(&hub, body).await;
        refused(&hub, &r, 400, "VALIDATION_FAILED", &["org_demo"]);
    }
}

#[tokio::test]
async fn device_enrolled_in_another_organization_is_409() {
    let hub = TestHub::start().await;
    let d = hub.enroll().await;
    let r = enroll_raw(
        &hub,
        json!({ "enrollment_key": OTHER_ENROLL, "device_id": d.id, "role": "handheld" }),
    )
    .await;
    refused(&hub, &r, 409, "CONFLICT", &["org_demo", "br_main"]);
    // The device is still the demo organization's, and its tokens still work.
    assert_eq!(d.client.get("/v1/products").await.status, 200);
    assert_eq!(refresh(&hub, &d.refresh).await.status, 200);
}

#[tokio::test]
async fn refresh_with_a_wrong_grant_type_is_400() {
    let hub = TestHub::start().await;
    let d = hub.enroll().await;
    for grant in ["password", "client_credentials", "", "REFRESH_TOKEN"] {
        let r = hub
            .anonymous()
            .post_raw(
                "/v1/oauth/token",
                json!({ "grant_type": grant, "refresh_token": d.refresh }),
            )
            .await;
        refused(&hub, &r, 400, "VALIDATION_FAILED", &[&d.refresh]);
        assert!(r.body["error"]["details"]["grant_type"].is_array());
    }
    for body in [
        json!({ "grant_type": "refresh_token" }),
        json!({ "refresh_token": d.refresh }),
        json!({ "grant_type": "refresh_token", "refresh_token": d.refresh, "scope": "inventory.admin" }),
        json!({ "grant_type": "refresh_token", "refresh_token": 7 }),
    ] {
        let r = hub.anonymous().post_raw("/v1/oauth/token", body).await;
        refused(&hub, &r, 400, "VALIDATION_FAILED", &[&d.refresh]);
    }
    // None of those spent the token.
    assert_eq!(refresh(&hub, &d.refresh).await.status, 200);
}

#[tokio::test]
async fn refresh_token_is_not_an_access_token_and_back() {
    let hub = TestHub::start().await;
    let d = hub.enroll().await;
    let r = bearer(&d, &d.refresh).get("/v1/products").await;
    refused(&hub, &r, 401, "AUTHENTICATION_FAILED", &[&d.refresh]);
    let r = refresh(&hub, &d.access).await;
    refused(&hub, &r, 401, "AUTHENTICATION_FAILED", &parts(&d.access));
    // As an API key neither is anything.
    let r = hub
        .api()
        .with("X-API-Key", &d.refresh)
        .get("/v1/products")
        .await;
    refused(&hub, &r, 401, "AUTHENTICATION_FAILED", &[&d.refresh]);
    // The real refresh token still rotates: the failures above did not spend or revoke it.
    assert_eq!(refresh(&hub, &d.refresh).await.status, 200);
}

#[tokio::test]
async fn api_key_cannot_push() {
    let hub = TestHub::start().await;
    let seed = hub.seed().await;
    let d = hub.enroll().await;
    let op = d.movement("receipt", &seed.product, &seed.a, "5");
    let r = hub
        .api()
        .with("X-Mobile-Device-Id", &d.id)
        .post("/v1/sync/push", json!({ "ops": [op] }))
        .await;
    refused(&hub, &r, 403, "PERMISSION_DENIED", &DEMO_HIDDEN);
    assert_eq!(hub.on_hand(&seed.product, &seed.a).await, "0");
    // The op was not recorded either: the device can still push it.
    let r = d.push(vec![op]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["results"][0]["status"], "applied");
    assert_eq!(hub.on_hand(&seed.product, &seed.a).await, "5");
}

#[tokio::test]
async fn refresh_accepts_a_form_encoded_body() {
    let hub = TestHub::start().await;
    let d = hub.enroll().await;
    let form = |token: &str| {
        hub.http
            .post(format!("{}/v1/oauth/token", hub.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("grant_type=refresh_token&refresh_token={token}"))
    };
    let r = send_built(&Method::POST, "/v1/oauth/token", form(&d.refresh)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let access = r.data()["access_token"].as_str().unwrap();
    assert_eq!(bearer(&d, access).get("/v1/products").await.status, 200);
    let refresh2 = r.data()["refresh_token"].as_str().unwrap().to_owned();
    // Percent-escapes are decoded (`_` written as %5F).
    let escaped = refresh2.replace('_', "%5F");
    let r = send_built(&Method::POST, "/v1/oauth/token", form(&escaped)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // A form with a wrong grant or a broken escape is a 400 envelope.
    let bad = hub
        .http
        .post(format!("{}/v1/oauth/token", hub.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=password&refresh_token=%zz");
    let r = send_built(&Method::POST, "/v1/oauth/token", bad).await;
    refused(&hub, &r, 400, "VALIDATION_FAILED", &[]);
}

fn rate_headers(r: &Resp) -> (u64, u64, u64) {
    let get = |n: &str| {
        r.header(n)
            .unwrap_or_else(|| panic!("no {n} on {} {}", r.status, r.text))
            .parse::<u64>()
            .unwrap()
    };
    (
        get("x-ratelimit-limit"),
        get("x-ratelimit-remaining"),
        get("x-ratelimit-reset"),
    )
}

#[tokio::test]
async fn rate_limit_is_per_credential_with_headers_and_429() {
    let hub = TestHub::start_with(|c| {
        c.rate_limit = 3;
    })
    .await;
    let api = hub.api();
    let started = u64::try_from(now()).unwrap();
    for remaining in [2, 1, 0] {
        let r = api.get("/v1/products").await;
        assert_eq!(r.status, 200, "{}", r.text);
        let (limit, left, reset) = rate_headers(&r);
        assert_eq!(limit, 3);
        assert_eq!(left, remaining);
        assert!(
            reset > started && reset <= started + 61,
            "reset {reset} vs now {started}"
        );
    }
    let r = api.get("/v1/products").await;
    refused(&hub, &r, 429, "RATE_LIMIT_EXCEEDED", &DEMO_HIDDEN);
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    let details = &r.body["error"]["details"];
    assert_eq!(details["limit"], 3);
    assert_eq!(details["window"], "60s");
    assert_eq!(details["retry_after"], retry);
    let (limit, left, _) = rate_headers(&r);
    assert_eq!((limit, left), (3, 0));
    // Refused requests do nothing, writes included.
    let r = api
        .post("/v1/products", json!({ "sku": "LIMITED", "name": "x" }))
        .await;
    assert_eq!(r.status, 429);

    // Other credentials have their own budget. A request with a wrong tenancy header is still
    // an authenticated one: it counts, and says so.
    let r = hub
        .other_api()
        .with("X-Organization-ID", "org_demo")
        .get("/v1/products")
        .await;
    refused(&hub, &r, 403, "PERMISSION_DENIED", &[]);
    assert_eq!(rate_headers(&r), (3, 2, rate_headers(&r).2));
    let r = hub.other_api().get("/v1/products").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(rate_headers(&r).1, 1);
    // A request no credential backs is not counted against anyone.
    let r = hub
        .anonymous()
        .with("X-API-Key", "ssk_unknown")
        .get("/v1/products")
        .await;
    refused(&hub, &r, 401, "AUTHENTICATION_FAILED", &[]);
    assert!(r.header("x-ratelimit-limit").is_none());
    let north = hub
        .anonymous()
        .with("X-API-Key", NORTH_KEY)
        .with("X-Organization-ID", "org_demo");
    let r = north.get("/v1/products").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(rate_headers(&r).1, 2);
    assert_eq!(r.body["meta"]["pagination"]["total"], 0);
    let d = hub.enroll().await;
    let r = d.client.get("/v1/products").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(rate_headers(&r).1, 2);
    // Health needs no credential and is not limited.
    for _ in 0..5 {
        assert_eq!(hub.anonymous().get("/v1/health").await.status, 200);
    }
}

#[tokio::test]
async fn guessing_enrollment_keys_is_rate_limited_per_address() {
    let hub = TestHub::start_with(|c| {
        c.rate_limit = 0;
        c.auth_rate_limit = 3;
    })
    .await;
    let guess = |n: u32| json!({ "enrollment_key": format!("enr_guess_{n}"), "device_id": format!("dev_{}", uuid_tail()), "role": "handheld" });
    for n in 0..3 {
        let r = hub.anonymous().post_raw("/v1/auth/devices", guess(n)).await;
        assert_eq!(r.status, 401, "{}", r.text);
    }
    let r = hub.anonymous().post_raw("/v1/auth/devices", guess(3)).await;
    assert_eq!(r.status, 429, "{}", r.text);
    assert_eq!(r.code(), "RATE_LIMIT_EXCEEDED");
    assert!(r.header("retry-after").is_some());
    // The refresh route shares the address's budget; API calls do not.
    let r = hub
        .anonymous()
        .post_raw(
            "/v1/oauth/token",
            json!({ "grant_type": "refresh_token", "refresh_token": "rt_guess" }),
        )
        .await;
    assert_eq!(r.status, 429);
    assert_eq!(hub.api().get("/v1/products").await.status, 200);
}

#[tokio::test]
async fn a_refresh_token_presented_again_at_once_gets_a_pair_not_a_revocation() {
    // The device's first refresh succeeded at the hub but the answer was lost: it presents the
    // same token again within the grace, and must not be locked out.
    let hub = TestHub::start().await;
    let d = hub.enroll().await;
    let first = refresh(&hub, &d.refresh).await;
    assert_eq!(first.status, 200, "{}", first.text);
    let again = refresh(&hub, &d.refresh).await;
    assert_eq!(again.status, 200, "{}", again.text);
    let access = again.data()["access_token"].as_str().unwrap().to_owned();
    let rotated = again.data()["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(rotated, first.data()["refresh_token"].as_str().unwrap());
    // The family lives: the new access token works and the new refresh token rotates.
    assert_eq!(bearer(&d, &access).get("/v1/products").await.status, 200);
    assert_eq!(refresh(&hub, &rotated).await.status, 200);
}

#[tokio::test]
async fn a_device_of_another_branch_cannot_be_taken_over() {
    let hub = TestHub::start().await;
    let seed = hub.seed().await;
    let d = hub.enroll().await;
    let r = d
        .push(vec![d.movement("receipt", &seed.product, &seed.a, "5")])
        .await;
    assert_eq!(r.data()["results"][0]["status"], "applied", "{}", r.text);
    // North's enrollment key presents main's device id: refused, no tokens.
    let r = enroll_raw(
        &hub,
        json!({ "enrollment_key": NORTH_ENROLL, "device_id": d.id, "role": "handheld" }),
    )
    .await;
    refused(&hub, &r, 409, "CONFLICT", &["br_main", NORTH_ENROLL]);
    assert!(r.text.contains("another branch"), "{}", r.text);
    // The device is untouched: its tokens, its branch and its sequence.
    let r = d.client.get("/v1/inventory/locations").await;
    assert_eq!(r.body["meta"]["pagination"]["total"], 2, "{}", r.text);
    let r = d
        .push(vec![d.movement("receipt", &seed.product, &seed.a, "1")])
        .await;
    assert_eq!(r.data()["results"][0]["status"], "applied", "{}", r.text);
    let r = refresh(&hub, &d.refresh).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["branch_id"], "br_main");
    // Its own branch may enroll it again (a device that lost its tokens); its sequence goes on.
    let r = enroll_raw(
        &hub,
        json!({ "enrollment_key": hub.creds.enrollment_key, "device_id": d.id, "role": "tablet" }),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.data()["branch_id"], "br_main");
    let again = bearer(&d, r.data()["access_token"].as_str().unwrap());
    let op = d.movement("shipment", &seed.product, &seed.a, "2");
    let r = again.post("/v1/sync/push", json!({ "ops": [op] })).await;
    assert_eq!(r.data()["results"][0]["status"], "applied", "{}", r.text);
    assert_eq!(hub.on_hand(&seed.product, &seed.a).await, "4");
}

#[tokio::test]
async fn guessed_credentials_are_limited_per_address_and_valid_ones_go_on() {
    let hub = TestHub::start_with(|c| {
        c.rate_limit = 0;
        c.auth_rate_limit = 3;
    })
    .await;
    let org = hub.creds.organization_id.clone();
    let here = hub.anonymous().with("X-Organization-ID", &org);
    let elsewhere = hub.anonymous_from(2).with("X-Organization-ID", &org);
    // An integration that works from this address, and a device.
    assert_eq!(hub.api().get("/v1/products").await.status, 200);
    let d = hub.enroll().await;
    // Someone at the same address guesses: unknown API keys and forged tokens both count.
    let [head, payload, _] =
        <[&str; 3]>::try_from(d.access.split('.').collect::<Vec<_>>()).unwrap();
    let forged = format!("{head}.{payload}.{}", b64(&[7u8; 32]));
    for c in [
        here.with("X-API-Key", "ssk_guess_1"),
        here.with("Authorization", &format!("Bearer {forged}")),
        here.with("X-API-Key", "ssk_guess_2"),
    ] {
        let r = c.get("/v1/products").await;
        refused(&hub, &r, 401, "AUTHENTICATION_FAILED", &DEMO_HIDDEN);
    }
    // The address's budget is used up: any further guess is 429 with Retry-After...
    let r = here
        .with("X-API-Key", "ssk_guess_3")
        .get("/v1/products")
        .await;
    refused(&hub, &r, 429, "RATE_LIMIT_EXCEEDED", &DEMO_HIDDEN);
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert_eq!(r.body["error"]["details"]["limit"], 3);
    assert_eq!(r.body["error"]["details"]["retry_after"], retry);
    // ...and so is a right key that never worked from here, so a hit does not show.
    let r = here.with("X-API-Key", NORTH_KEY).get("/v1/products").await;
    refused(&hub, &r, 429, "RATE_LIMIT_EXCEEDED", &DEMO_HIDDEN);
    // Valid credentials are not slowed by it: the key that worked from here, the device's
    // token (signed: nothing to guess), and every credential elsewhere.
    assert_eq!(hub.api().get("/v1/products").await.status, 200);
    assert_eq!(d.client.get("/v1/products").await.status, 200);
    let r = elsewhere
        .with("X-API-Key", NORTH_KEY)
        .get("/v1/products")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // Elsewhere has a budget of its own, and enrollment here has its own too.
    let r = elsewhere
        .with("X-API-Key", "ssk_guess_4")
        .get("/v1/products")
        .await;
    refused(&hub, &r, 401, "AUTHENTICATION_FAILED", &DEMO_HIDDEN);
    hub.enroll().await;
    // A request with no credential guesses nothing: still the plain 401.
    let r = here.get("/v1/products").await;
    refused(&hub, &r, 401, "AUTHENTICATION_FAILED", &DEMO_HIDDEN);
}

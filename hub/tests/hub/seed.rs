//! `stocksync_hub::seed::bulk`: seeded data is served exactly as if it had been written through
//! the API (the feed, its sequence numbers, the checksum), and later writes keep it consistent.

use crate::common::*;
use crate::delta::{digest_of, pull_all};
use serde_json::json;
use stocksync_hub::config::HubConfig;
use stocksync_hub::{Hub, seed, server};

#[tokio::test]
async fn a_seeded_data_dir_serves_a_snapshot_with_a_checksum_the_client_can_recompute() {
    let dir = tempfile::tempdir().unwrap();
    let (bootstrap, creds) = server::dev_bootstrap(dir.path());
    server::init_data_dir(dir.path(), &bootstrap).unwrap();
    let s = seed::bulk(dir.path(), "org_demo", "br_main", 25, 3).unwrap();
    assert_eq!((s.products, s.locations, s.stock_levels), (25, 3, 75));
    assert_eq!((s.first_seq, s.head_seq), (1, 25 + 3 + 75));

    let mut config = HubConfig::new(dir.path());
    config.rate_limit = 0;
    let hub = Hub::start(config, &bootstrap, "127.0.0.1:0").await.unwrap();
    let api = Client {
        http: reqwest::Client::new(),
        base: hub.base_url(),
        headers: vec![
            ("X-API-Key".into(), creds.api_key.clone()),
            ("X-Organization-ID".into(), creds.organization_id.clone()),
        ],
    };
    let (mut state, meta, _) = pull_all(&api, None, 40).await;
    assert_eq!(state.len(), 25 + 3 + 75);
    assert_eq!(meta["checksum"].as_str().unwrap(), s.checksum);
    assert_eq!(meta["checksum"].as_str().unwrap(), digest_of(&state));
    // In feed order: products, then locations, then their stock.
    let seqs = |entity: &str| -> Vec<u64> {
        state
            .iter()
            .filter(|((e, _), _)| e == entity)
            .map(|(_, (_, i))| i["seq"].as_u64().unwrap())
            .collect()
    };
    assert!(seqs("product").into_iter().max() < seqs("location").into_iter().min());
    assert!(seqs("location").into_iter().max() < seqs("stock_level").into_iter().min());
    let first = &state[&("product".to_owned(), s.product_ids[0].clone())].1;
    assert_eq!(first["sku"], "SKU-000001");
    assert_eq!(first["barcode"], "2000000000001");
    assert!(first["price"]["amount"].is_string());
    assert!(first["doc"].is_string());
    let level = &state[&(
        "stock_level".to_owned(),
        format!("{}@{}", s.product_ids[0], s.location_ids[0]),
    )]
        .1;
    assert_ne!(level["on_hand"], "0");
    assert_eq!(level["branch_id"], "br_main");

    // The seeded rows are ordinary rows: REST sees them, and a movement on one keeps the
    // checksum in step.
    let p = api.get("/v1/products?filters[sku]=SKU-000025").await;
    assert_eq!(p.data()[0]["id"], s.product_ids[24].as_str());
    let token = meta["next_sync_token"].as_str().unwrap().to_owned();
    let r = api
        .post(
            "/v1/inventory/transactions",
            json!({ "transaction_type": "shipment", "product_id": s.product_ids[3],
                    "location_id": s.location_ids[2], "quantity": { "value": "1", "uom": "EACH" } }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let (delta, meta, _) = pull_all(&api, Some(&token), 100).await;
    state.extend(delta);
    assert_eq!(meta["checksum"].as_str().unwrap(), digest_of(&state));
    hub.shutdown().await.unwrap();
}

#[tokio::test]
async fn seeding_a_running_hub_and_refusals() {
    let hub = TestHub::start().await;
    let api = hub.api();
    let before = hub.seed().await;
    let s = seed::bulk(hub.dir.path(), "org_demo", "br_main", 4, 2).unwrap();
    assert_eq!(s.first_seq, 4, "after the three entities already there");
    let (state, meta, _) = pull_all(&api, None, 1000).await;
    assert!(state.contains_key(&("product".to_owned(), before.product)));
    assert_eq!(state.len(), 3 + 4 + 2 + 8);
    assert_eq!(meta["checksum"].as_str().unwrap(), digest_of(&state));

    // The same SKUs again: refused, nothing more written.
    let e = seed::bulk(hub.dir.path(), "org_demo", "br_main", 4, 2).unwrap_err();
    assert!(e.to_string().contains("sku"), "{e}");
    let e = seed::bulk(hub.dir.path(), "org_nope", "br_main", 1, 1).unwrap_err();
    assert!(e.to_string().contains("org_nope"), "{e}");
    let e = seed::bulk(hub.dir.path(), "org_demo", "br_nope", 1, 1).unwrap_err();
    assert!(e.to_string().contains("br_nope"), "{e}");
    let (after, _, _) = pull_all(&api, None, 1000).await;
    assert_eq!(after.len(), state.len());
}

//! Initial sync at scale: seed a hub data dir with `stocksync_hub::seed::bulk`, start the hub on
//! it, and pull the whole snapshot over loopback HTTP in pages of 1000, as a new device would.
//!
//! Run with `cargo bench -p stocksync-hub --bench delta`. Knobs (environment): `ROWS` (stock
//! levels, default 100,000; `ROWS=1000000` for the full size), `LOCATIONS` (default 10; products
//! = ROWS / LOCATIONS), `PASSES` (pulls per encoding, default 1).
//!
//! 1. **Seed**: `seed::bulk` into a fresh data dir of the dev bootstrap (`org_demo`/`br_main`):
//!    ROWS / LOCATIONS products with real automerge documents, LOCATIONS locations, ROWS stock
//!    levels. Figure: wall time and entities/s.
//! 2. **Pull**: a client on its own tokio runtime (2 workers; the hub has its own 2) pulls every
//!    page of the snapshot with `limit=1000`, once with gzip (reqwest's `Accept-Encoding: gzip`,
//!    the default) and once without, each response parsed into the typed envelope
//!    (`stocksync_protocol::DeltaPage`) as a node would. Figures: total seconds, items/s, bytes on
//!    the wire, per-page round trip p50/p99, and the CPU seconds of the hub's threads and of the
//!    client's threads (from `/proc/self/task`, both runtimes share the machine's cores).
//! 3. **Check**: every seeded entity arrives exactly once, each product item's `doc` loads with
//!    `ProductDoc::load` (a sample of 1 in 100 is loaded, all are decoded), and the checksum a
//!    node recomputes from the items equals `meta.checksum` and the seed's summary.
//!
//! Prints a table and one `BENCH_JSON {…}` line; always exits 0 unless a check fails.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use stocksync_hub::config::HubConfig;
use stocksync_hub::{Hub, seed, server};
use stocksync_model::{Decimal, ProductDoc};
use stocksync_protocol::checksum::{StateDigest, product_line, stock_line};
use stocksync_protocol::{DeltaMeta, DeltaPage, Entity};
use tokio::runtime::Runtime;

const PAGE: usize = 1000;

#[derive(Deserialize)]
struct Envelope {
    data: DeltaPage,
    meta: DeltaMeta,
}

fn main() {
    let rows = env_usize("ROWS", 100_000);
    let locations = env_usize("LOCATIONS", 10).max(1);
    let passes = env_usize("PASSES", 1).max(1);
    let products = rows / locations;
    let rows = products * locations;
    println!(
        "env: {} CPUs, SQLite {}; {products} products × {locations} locations = {rows} stock levels",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        rusqlite::version()
    );
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("hub");
    let (bootstrap, creds) = server::dev_bootstrap(&data_dir);

    let t = Instant::now();
    server::init_data_dir(&data_dir, &bootstrap).unwrap();
    let summary = seed::bulk(
        &data_dir,
        &creds.organization_id,
        &creds.branch_id,
        products,
        locations,
    )
    .unwrap();
    let seed_s = t.elapsed().as_secs_f64();
    let entities = summary.products + summary.locations + summary.stock_levels;
    let db_bytes = std::fs::metadata(data_dir.join(server::DB_FILE))
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "seed: {entities} entities in {seed_s:.1} s ({:.0}/s), feed head {}, database {:.0} MiB",
        entities as f64 / seed_s,
        summary.head_seq,
        db_bytes as f64 / (1024.0 * 1024.0)
    );

    let hub_rt = runtime("hub");
    let client_rt = runtime("client");
    let mut config = HubConfig::new(&data_dir);
    config.rate_limit = 0;
    let hub = hub_rt
        .block_on(Hub::start(config, &bootstrap, "127.0.0.1:0"))
        .unwrap();
    let base = hub.base_url();

    let mut results = Vec::new();
    for pass in 0..passes {
        for gzip in [true, false] {
            // Spawned, so the client's parsing runs on its runtime's threads (counted as client CPU).
            let r = client_rt
                .block_on(client_rt.spawn(pull(base.clone(), creds.clone(), gzip)))
                .unwrap();
            assert_eq!(r.items, entities, "every seeded entity once (pass {pass})");
            assert_eq!(r.checksum, summary.checksum, "the seed's checksum");
            results.push(r);
        }
    }
    hub_rt.block_on(hub.shutdown()).unwrap();

    println!();
    println!(
        "Pull of the whole snapshot, pages of {PAGE}, {entities} items ({} products with their \
         automerge document, {} locations, {} stock levels):",
        summary.products, summary.locations, summary.stock_levels
    );
    println!(
        "  {:<6} {:>8} {:>11} {:>10} {:>14} {:>14} {:>9} {:>10}",
        "gzip",
        "total s",
        "items/s",
        "MiB wire",
        "page p50/p99",
        "hub handler s",
        "hub CPU s",
        "client CPU s"
    );
    for r in &results {
        println!(
            "  {:<6} {:>8.2} {:>11.0} {:>10.1} {:>6.1}/{:<6.1}ms {:>14.2} {:>9.2} {:>10.2}",
            if r.gzip { "on" } else { "off" },
            r.total.as_secs_f64(),
            r.items as f64 / r.total.as_secs_f64(),
            r.wire_bytes as f64 / (1024.0 * 1024.0),
            r.p50_ms,
            r.p99_ms,
            r.handler_s,
            r.hub_cpu_s,
            r.client_cpu_s,
        );
    }
    let line = json!({
        "rows": rows, "products": summary.products, "locations": summary.locations,
        "entities": entities, "seed_s": seed_s, "seed_per_s": entities as f64 / seed_s,
        "db_mib": db_bytes as f64 / (1024.0 * 1024.0),
        "pulls": results.iter().map(|r| json!({
            "gzip": r.gzip, "total_s": r.total.as_secs_f64(),
            "items_per_s": r.items as f64 / r.total.as_secs_f64(),
            "wire_bytes": r.wire_bytes, "json_bytes": r.json_bytes, "pages": r.pages,
            "page_p50_ms": r.p50_ms, "page_p99_ms": r.p99_ms, "hub_handler_s": r.handler_s,
            "hub_cpu_s": r.hub_cpu_s, "client_cpu_s": r.client_cpu_s,
        })).collect::<Vec<_>>(),
    });
    println!("BENCH_JSON {line}");
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn runtime(name: &str) -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(name)
        .enable_all()
        .build()
        .unwrap()
}

struct Pull {
    gzip: bool,
    items: usize,
    pages: usize,
    total: Duration,
    wire_bytes: u64,
    json_bytes: u64,
    p50_ms: f64,
    p99_ms: f64,
    handler_s: f64,
    hub_cpu_s: f64,
    client_cpu_s: f64,
    checksum: String,
}

async fn pull(base: String, creds: stocksync_hub::config::DevCredentials, gzip: bool) -> Pull {
    let (base, creds) = (base.as_str(), &creds);
    let builder = reqwest::Client::builder();
    let http = if gzip { builder } else { builder.no_gzip() }
        .build()
        .unwrap();
    let raw = reqwest::Client::builder().no_gzip().build().unwrap();
    let handler_before = handler_seconds(&http, base).await;
    let cpu_before = cpu_by_thread();
    let started = Instant::now();
    let mut token: Option<String> = None;
    let mut digest = StateDigest::default();
    let mut seen: HashMap<(Entity, String), u64> = HashMap::new();
    let (mut pages, mut json_bytes) = (0usize, 0u64);
    let mut page_ms = Vec::new();
    let mut docs = 0usize;
    let checksum = loop {
        let url = match &token {
            Some(t) => format!("{base}/v1/inventory/delta?limit={PAGE}&since_token={t}"),
            None => format!("{base}/v1/inventory/delta?limit={PAGE}"),
        };
        let t0 = Instant::now();
        let res = http
            .get(&url)
            .header("X-API-Key", &creds.api_key)
            .header("X-Organization-ID", &creds.organization_id)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let bytes = res.bytes().await.unwrap();
        let env: Envelope = serde_json::from_slice(&bytes).unwrap();
        page_ms.push(t0.elapsed().as_secs_f64() * 1000.0);
        json_bytes += bytes.len() as u64;
        pages += 1;
        for item in env
            .data
            .created
            .iter()
            .chain(&env.data.updated)
            .chain(&env.data.deleted)
        {
            *seen.entry((item.entity, item.id.clone())).or_default() += 1;
            match item.entity {
                Entity::Product => {
                    digest.add(&product_line(&item.id, item.version));
                    let doc = item.fields["doc"].as_str().expect("a product item's doc");
                    let bytes = B64.decode(doc).unwrap();
                    if docs.is_multiple_of(100) {
                        let d = ProductDoc::load(&bytes).unwrap();
                        assert_eq!(
                            d.fields().unwrap().sku,
                            item.fields["sku"].as_str().unwrap()
                        );
                    }
                    docs += 1;
                }
                Entity::StockLevel => {
                    let dec =
                        |k: &str| item.fields[k].as_str().unwrap().parse::<Decimal>().unwrap();
                    digest.add(&stock_line(
                        item.fields["product_id"].as_str().unwrap(),
                        item.fields["location_id"].as_str().unwrap(),
                        dec("on_hand"),
                        dec("allocated"),
                    ));
                }
                _ => {}
            }
        }
        token = Some(env.meta.next_sync_token.clone());
        if !env.meta.has_more {
            let c = env.meta.checksum.expect("the last page's checksum");
            assert_eq!(c, digest.to_hex(), "the checksum a node recomputes");
            break c;
        }
    };
    let total = started.elapsed();
    let cpu_after = cpu_by_thread();
    let handler_s = handler_seconds(&http, base).await - handler_before;
    assert!(seen.values().all(|&n| n == 1), "an entity came twice");
    let products = seen.keys().filter(|(e, _)| *e == Entity::Product).count();
    assert_eq!(docs, products, "every product item carries its `doc`");
    // Bytes on the wire: one more walk (untimed) that reads the raw bodies, following the
    // `x-next-sync-token` header.
    let wire = if gzip {
        wire_bytes(&raw, base, creds, pages).await
    } else {
        json_bytes
    };
    page_ms.sort_by(f64::total_cmp);
    let pct = |p: f64| page_ms[((p / 100.0) * (page_ms.len() - 1) as f64).round() as usize];
    let cpu = |prefix: &str| {
        cpu_after
            .iter()
            .filter(|(name, _)| name.starts_with(prefix))
            .map(|(name, t)| t - cpu_before.get(name).copied().unwrap_or(0.0))
            .sum::<f64>()
    };
    Pull {
        gzip,
        items: seen.len(),
        pages,
        total,
        wire_bytes: wire,
        json_bytes,
        p50_ms: pct(50.0),
        p99_ms: pct(99.0),
        handler_s,
        hub_cpu_s: cpu("hub"),
        client_cpu_s: cpu("client"),
        checksum,
    }
}

/// The gzip-compressed size of the first `pages` pages of a snapshot.
async fn wire_bytes(
    raw: &reqwest::Client,
    base: &str,
    creds: &stocksync_hub::config::DevCredentials,
    pages: usize,
) -> u64 {
    let mut token: Option<String> = None;
    let mut total = 0u64;
    for _ in 0..pages {
        let url = match &token {
            Some(t) => format!("{base}/v1/inventory/delta?limit={PAGE}&since_token={t}"),
            None => format!("{base}/v1/inventory/delta?limit={PAGE}"),
        };
        let res = raw
            .get(&url)
            .header("X-API-Key", &creds.api_key)
            .header("X-Organization-ID", &creds.organization_id)
            .header("Accept-Encoding", "gzip")
            .send()
            .await
            .unwrap();
        assert_eq!(res.headers()["content-encoding"], "gzip");
        let next = res.headers()["x-next-sync-token"]
            .to_str()
            .unwrap()
            .to_owned();
        total += res.bytes().await.unwrap().len() as u64;
        token = Some(next);
    }
    total
}

/// `stocksync_delta_duration_seconds_sum` from the hub's `/metrics`.
async fn handler_seconds(http: &reqwest::Client, base: &str) -> f64 {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("stocksync_delta_duration_seconds_sum "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// CPU seconds (user + system) per thread of this process, keyed by `name/tid`.
fn cpu_by_thread() -> HashMap<String, f64> {
    let tick = 100.0; // USER_HZ on Linux
    let mut out = HashMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for t in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = &stat[open + 1..close];
        let rest: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        let ticks = |i: usize| {
            rest.get(i)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        // Fields 14 and 15 (utime, stime) are at 11 and 12 after the state field.
        let secs = (ticks(11) + ticks(12)) / tick;
        out.insert(format!("{name}/{}", t.file_name().to_string_lossy()), secs);
    }
    out
}

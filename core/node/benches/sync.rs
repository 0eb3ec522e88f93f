//! Sync benchmarks against a real hub in a child process on loopback (so the figures and the
//! peak memory are the node's alone):
//!
//! 1. initial sync of `ROWS` rows (products + stock levels, 1 product : 10 locations) until the
//!    device can query them; compared with raw rusqlite writing the same rows;
//! 2. `PUSH_OPS` (50k) pending ops pushed and acked after reconnecting;
//! 3. `REMOTE` (100k) remote changes pulled by a device that was up to date.
//!
//! `cargo bench -p stocksync-node --bench sync` (ROWS=100000 by default; `ROWS=1000000` for the
//! 1M figure). Release build, synchronous = FULL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use stocksync_hub::config::HubConfig;
use stocksync_hub::{Hub, seed, server};
use stocksync_model::{Decimal, NewProduct};
use stocksync_node::{
    DeviceRole, Movement, StoreOptions, SyncConfig, SyncEvent, SyncListener, SyncNode,
};

const LOCATIONS: usize = 10;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    if std::env::var("STOCKSYNC_BENCH_HUB").is_ok() {
        return run_hub();
    }
    let rows = env_usize("ROWS", 100_000);
    let push_ops = env_usize("PUSH_OPS", 50_000);
    let remote = env_usize("REMOTE", 100_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // `ONLY=initial|push|remote` runs one scenario.
    let only = std::env::var("ONLY").unwrap_or_default();
    let run = |name: &str| only.is_empty() || only == name;
    rt.block_on(async {
        if run("initial") {
            initial_sync(rows).await;
        }
        if run("push") {
            push_backlog(push_ops).await;
        }
        if run("remote") {
            pull_remote(remote).await;
        }
    });
    println!(
        "peak RSS of the bench process (node side only): {} MiB",
        peak_rss_mib()
    );
}

/// Child process: seeds `DIR` (if asked), serves it on `BIND`, prints `ready URL`.
fn run_hub() {
    let dir = std::path::PathBuf::from(std::env::var("DIR").unwrap());
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:0".into());
    let products = env_usize("SEED_PRODUCTS", 0);
    // The parent holds our stdin: when it goes (even killed), so do we.
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        std::process::exit(0);
    });
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (bootstrap, creds) = server::dev_bootstrap(&dir);
        server::init_data_dir(&dir, &bootstrap).unwrap();
        server::write_dev_credentials(&dir, &creds).unwrap();
        if products > 0 {
            let s = seed::bulk(&dir, "org_demo", "br_main", products, LOCATIONS).unwrap();
            eprintln!(
                "hub: seeded {} products, {} stock levels in {:.1} s",
                s.products,
                s.stock_levels,
                s.elapsed.as_secs_f64()
            );
        }
        let mut config = HubConfig::new(&dir);
        config.rate_limit = 0;
        let hub = Hub::start(config, &bootstrap, &bind).await.unwrap();
        println!("ready {}", hub.base_url());
        hub.run_until_signal().await.unwrap();
    });
}

struct HubProcess {
    child: Child,
    url: String,
}

impl HubProcess {
    fn start(dir: &Path, bind: &str, seed_products: usize) -> HubProcess {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env("STOCKSYNC_BENCH_HUB", "1")
            .env("DIR", dir)
            .env("BIND", bind)
            .env("SEED_PRODUCTS", seed_products.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("ready ")
            .expect("hub ready")
            .to_owned();
        HubProcess { child, url }
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The key the hub child wrote to `dev-credentials.json`.
fn enrollment_key(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("dev-credentials.json")).unwrap();
    let creds: stocksync_hub::config::DevCredentials = serde_json::from_str(&text).unwrap();
    creds.enrollment_key
}

async fn device(dir: &Path, hub: &HubProcess, hub_dir: &Path, name: &str) -> SyncNode {
    let config = SyncConfig {
        push_batch: env_usize("PUSH_BATCH", SyncConfig::default().push_batch),
        ..SyncConfig::default()
    };
    let node = SyncNode::open_with(
        dir.join(format!("{name}.db")),
        &StoreOptions::default(),
        config,
    )
    .unwrap();
    node.enroll(
        &hub.url,
        &enrollment_key(hub_dir),
        DeviceRole::Handheld,
        name,
    )
    .await
    .unwrap();
    node
}

async fn initial_sync(rows: usize) {
    let products = rows.div_ceil(LOCATIONS + 1);
    let total = products * (LOCATIONS + 1);
    let dir = tempfile::tempdir().unwrap();
    let hub_dir = dir.path().join("hub");
    let hub = HubProcess::start(&hub_dir, "127.0.0.1:0", products);
    let rss_before = current_rss_mib();
    let started = Instant::now();
    let node = device(dir.path(), &hub, &hub_dir, "initial").await;
    let report = node.sync_now().await.unwrap();
    // Usable: a scan lookup and a stock query answer from the device.
    let p = node.find_product("SKU-000777").unwrap();
    let levels = node.stock(Some(&p.sku), None).unwrap();
    let usable = started.elapsed();
    assert_eq!(levels.len(), LOCATIONS);
    assert_eq!(report.pulled as usize, total + LOCATIONS, "{report:?}");
    assert_eq!(report.checksum_ok, Some(true));
    let raw = raw_rows(dir.path(), products);
    println!(
        "initial sync: {total} rows ({products} products, {} stock levels) usable in {:.2} s \
         ({:.0} rows/s, {} pages); raw rusqlite writing the same rows: {:.2} s, ratio {:.2}; \
         RSS grew {} MiB",
        products * LOCATIONS,
        usable.as_secs_f64(),
        total as f64 / usable.as_secs_f64(),
        report.pages,
        raw.as_secs_f64(),
        raw.as_secs_f64() / usable.as_secs_f64(),
        current_rss_mib().saturating_sub(rss_before),
    );
    hub.stop();
}

/// Records the instant the push phase ended (the first pull progress event) and when each
/// push batch was answered.
#[derive(Default)]
struct PushTimer(Mutex<Option<Instant>>, Mutex<Vec<Instant>>);

impl SyncListener for PushTimer {
    fn on_event(&self, event: &SyncEvent) {
        if let SyncEvent::Progress { progress } = event {
            if progress.phase == "push" {
                self.1.lock().unwrap().push(Instant::now());
                return;
            }
            let mut t = self.0.lock().unwrap();
            if t.is_none() {
                *t = Some(Instant::now());
            }
        }
    }
}

async fn push_backlog(ops: usize) {
    let dir = tempfile::tempdir().unwrap();
    let hub_dir = dir.path().join("hub");
    let hub = HubProcess::start(&hub_dir, "127.0.0.1:0", 0);
    let node = device(dir.path(), &hub, &hub_dir, "backlog").await;
    node.add_location("A-01", "Aisle 1").unwrap();
    node.add_product(&NewProduct::new("BULK-1", "Bulk item"))
        .unwrap();
    node.sync_now().await.unwrap();
    let recording = Instant::now();
    for _ in 0..ops {
        node.record(&Movement::Receive {
            product: "BULK-1".into(),
            location: "A-01".into(),
            quantity: Decimal::from_int(1).unwrap(),
            uom: None,
            unit_cost: None,
            reference: None,
        })
        .unwrap();
    }
    let recorded = recording.elapsed();
    let timer = Arc::new(PushTimer::default());
    let _handle = node.add_listener(timer.clone());
    let started = Instant::now();
    let report = node.sync_now().await.unwrap();
    let total = started.elapsed();
    let pushed = timer.0.lock().unwrap().map_or(total, |t| t - started);
    let batches = timer.1.lock().unwrap().clone();
    let gaps: Vec<u128> = std::iter::once(started)
        .chain(batches.iter().copied())
        .collect::<Vec<_>>()
        .windows(2)
        .map(|w| (w[1] - w[0]).as_millis())
        .collect();
    if std::env::var("VERBOSE").is_ok() {
        println!("push batch times (ms): {gaps:?}");
    }
    assert_eq!(report.applied as usize, ops, "{report:?}");
    assert_eq!(
        node.stock(Some("BULK-1"), Some("A-01")).unwrap()[0].synced_on_hand,
        Decimal::from_int(ops as i64).unwrap()
    );
    println!(
        "push backlog: {ops} ops (recorded offline in {:.2} s) pushed and acked in {:.2} s \
         ({:.0} ops/s); the whole round with pulling back the {} resulting changes: {:.2} s",
        recorded.as_secs_f64(),
        pushed.as_secs_f64(),
        ops as f64 / pushed.as_secs_f64(),
        report.pulled,
        total.as_secs_f64()
    );
    hub.stop();
}

async fn pull_remote(changes: usize) {
    let dir = tempfile::tempdir().unwrap();
    let hub_dir = dir.path().join("hub");
    let hub = HubProcess::start(&hub_dir, "127.0.0.1:0", 0);
    let url = hub.url.clone();
    let node = device(dir.path(), &hub, &hub_dir, "follower").await;
    node.sync_now().await.unwrap();
    // The hub goes away, 100k changes happen there, it comes back on the same address.
    hub.stop();
    let bind = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let products = changes.div_ceil(LOCATIONS + 1);
    let hub = HubProcess::start(&hub_dir, &bind, products);
    let started = Instant::now();
    let report = node.sync_now().await.unwrap();
    let took = started.elapsed();
    assert_eq!(report.checksum_ok, Some(true));
    println!(
        "remote changes: {} pulled as deltas in {:.2} s ({:.0} changes/s, {} pages)",
        report.pulled,
        took.as_secs_f64(),
        report.pulled as f64 / took.as_secs_f64(),
        report.pages
    );
    hub.stop();
}

/// The physical limit for comparison: plain rusqlite writing the same number of product and
/// stock rows (with a document-sized blob per product) in transactions of 1000.
fn raw_rows(dir: &Path, products: usize) -> Duration {
    let conn = rusqlite::Connection::open(dir.join("raw.db")).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
         CREATE TABLE p (id TEXT PRIMARY KEY, sku TEXT UNIQUE, name TEXT, doc BLOB, version INT);
         CREATE TABLE s (product_id TEXT, location_id TEXT, on_hand INT, allocated INT,
                         PRIMARY KEY (product_id, location_id)) WITHOUT ROWID;",
    )
    .unwrap();
    let doc = vec![7u8; 400];
    let started = Instant::now();
    let mut rows = (0..products).flat_map(|p| (0..=LOCATIONS).map(move |l| (p, l)));
    loop {
        let chunk: Vec<_> = rows.by_ref().take(1000).collect();
        if chunk.is_empty() {
            break;
        }
        let tx = conn.unchecked_transaction().unwrap();
        for (p, l) in chunk {
            if l == LOCATIONS {
                tx.execute(
                    "INSERT INTO p VALUES (?1, ?2, ?3, ?4, 1)",
                    rusqlite::params![format!("prod_{p:032}"), format!("SKU-{p}"), "Item", doc],
                )
                .unwrap();
            } else {
                tx.execute(
                    "INSERT INTO s VALUES (?1, ?2, ?3, 0)",
                    rusqlite::params![format!("prod_{p:032}"), format!("loc_{l:032}"), 5],
                )
                .unwrap();
            }
        }
        tx.commit().unwrap();
    }
    started.elapsed()
}

fn status_kib(key: &str) -> usize {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn peak_rss_mib() -> usize {
    status_kib("VmHWM:") / 1024
}

fn current_rss_mib() -> usize {
    status_kib("VmRSS:") / 1024
}

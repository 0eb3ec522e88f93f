//! The sync engine under network and data faults: a real in-process hub, real node files, and a
//! fault-injecting TCP proxy (`faults/proxy.rs`) between them that refuses, resets, drops
//! answers, answers 429/503 itself, or cuts every open connection.
//!
//! Each test states what it checks. No fixed long sleeps: every wait polls a condition against
//! a deadline (`PATIENCE`), except where the test must let a clock pass (a token's lifetime, a
//! delta token's retention), and then only until that instant.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod faults;

use chrono::{DateTime, Utc};
use faults::proxy::{Mode, Proxy};
use rusqlite::{Connection, params};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use stocksync_hub::Hub;
use stocksync_hub::config::{DevCredentials, HubConfig};
use stocksync_hub::server;
use stocksync_model::{Decimal, NewProduct};
use stocksync_node::sync::engine::EngineConfig;
use stocksync_node::sync::policy::Backoff;
use stocksync_node::sync::transport::TransportConfig;
use stocksync_node::{
    DeviceRole, Movement, NodeError, NodeStatus, StoreOptions, SyncConfig, SyncEvent, SyncListener,
    SyncNode, SyncState, Synchronous,
};
use stocksync_protocol::headers as h;

/// The longest any awaited condition may take before the test calls it hung.
const PATIENCE: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// The world: a hub, its dev credentials, node files in a temp dir.

struct World {
    hub: Hub,
    creds: DevCredentials,
    dir: tempfile::TempDir,
    http: reqwest::Client,
}

async fn world(tune: impl FnOnce(&mut HubConfig)) -> World {
    let dir = tempfile::tempdir().unwrap();
    let hub_dir = dir.path().join("hub");
    std::fs::create_dir_all(&hub_dir).unwrap();
    let (bootstrap, creds) = server::dev_bootstrap(&hub_dir);
    let mut config = HubConfig::new(&hub_dir);
    config.rate_limit = 0;
    config.auth_rate_limit = 0;
    tune(&mut config);
    let hub = Hub::start(config, &bootstrap, "127.0.0.1:0").await.unwrap();
    World {
        hub,
        creds,
        dir,
        http: reqwest::Client::new(),
    }
}

impl World {
    fn db(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.db"))
    }

    /// A node file enrolled with the hub at `url` (the hub itself or a proxy in front of it).
    async fn node(&self, name: &str, url: &str, config: SyncConfig) -> SyncNode {
        let options = StoreOptions {
            synchronous: Synchronous::Normal,
            ..StoreOptions::default()
        };
        let node = SyncNode::open_with(self.db(name), &options, config).unwrap();
        node.enroll(url, &self.creds.enrollment_key, DeviceRole::Handheld, name)
            .await
            .unwrap();
        node
    }

    /// A second connection to a node's file, to read or damage what the node keeps.
    fn sql(&self, name: &str) -> Connection {
        let c = Connection::open(self.db(name)).unwrap();
        c.busy_timeout(Duration::from_secs(5)).unwrap();
        c
    }

    /// The hub's on hand of a product at a location, over REST with the dev API key (zero when
    /// the hub has no level there).
    async fn hub_on_hand(&self, product_id: &str, location_id: &str) -> Decimal {
        let res = self
            .http
            .get(format!(
                "{}/v1/products/{product_id}/inventory",
                self.hub.base_url()
            ))
            .header(h::API_KEY, &self.creds.api_key)
            .header(h::ORGANIZATION_ID, &self.creds.organization_id)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["location_id"] == location_id)
            .map_or(Decimal::ZERO, |l| {
                l["on_hand"].as_str().unwrap().parse().unwrap()
            })
    }

    /// `POST /v1/oauth/token` straight to the hub: `(status, body)`.
    async fn refresh_directly(&self, refresh_token: &str) -> (u16, Value) {
        let res = self
            .http
            .post(format!("{}/v1/oauth/token", self.hub.base_url()))
            .json(&json!({"grant_type": "refresh_token", "refresh_token": refresh_token}))
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.json().await.unwrap())
    }
}

/// Sync settings that keep a background test fast: short debounce and backoff, no periodic
/// polling within a test's time (so whatever arrives came live or from a retry).
fn fast(live: bool) -> SyncConfig {
    SyncConfig {
        transport: TransportConfig {
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(15),
            ..TransportConfig::default()
        },
        engine: EngineConfig {
            debounce_ms: 50,
            poll_interval_ms: 60_000,
            live_poll_interval_ms: 300_000,
            live,
            backoff: Backoff {
                base_ms: 100,
                max_ms: 1_000,
                factor: 2,
            },
            breaker_threshold: 5,
            breaker_cooldown_ms: 60_000,
            seed: 7,
        },
        ..SyncConfig::default()
    }
}

fn d(n: i64) -> Decimal {
    Decimal::from_int(n).unwrap()
}

fn receive(sku: &str, location: &str, n: i64) -> Movement {
    Movement::Receive {
        product: sku.into(),
        location: location.into(),
        quantity: d(n),
        uom: None,
        unit_cost: None,
        reference: None,
    }
}

fn ship(sku: &str, location: &str, n: i64) -> Movement {
    Movement::Ship {
        product: sku.into(),
        location: location.into(),
        quantity: d(n),
        uom: None,
        reference: None,
    }
}

/// Creates locations and products on a node (offline, as ops).
fn seed(node: &SyncNode, locations: &[&str], skus: &[&str]) {
    for code in locations {
        node.add_location(code, &format!("Location {code}"))
            .unwrap();
    }
    for sku in skus {
        node.add_product(&NewProduct::new(*sku, format!("Product {sku}")))
            .unwrap();
    }
}

/// `(product id, location id)` of a SKU and a location code.
fn ids(node: &SyncNode, sku: &str, location: &str) -> (String, String) {
    (
        node.find_product(sku).unwrap().id.to_string(),
        node.location(location).unwrap().id.to_string(),
    )
}

/// `(synced, pending, on hand)` of a level on a node (zeros when it has no row).
fn level(node: &SyncNode, sku: &str, location: &str) -> (Decimal, Decimal, Decimal) {
    node.stock(Some(sku), Some(location))
        .unwrap()
        .first()
        .map_or((Decimal::ZERO, Decimal::ZERO, Decimal::ZERO), |r| {
            (r.synced_on_hand, r.pending, r.on_hand)
        })
}

/// What the hub confirmed, as a node shows it: `(sku, location) → synced on hand` for the
/// levels that are not zero, and `sku → version` for live products.
#[derive(Debug, PartialEq, Eq)]
struct View {
    stock: BTreeMap<(String, String), String>,
    products: BTreeMap<String, u64>,
}

fn view(node: &SyncNode) -> View {
    View {
        stock: node
            .stock(None, None)
            .unwrap()
            .into_iter()
            .filter(|r| r.synced_on_hand != Decimal::ZERO)
            .map(|r| ((r.sku, r.location_code), r.synced_on_hand.to_string()))
            .collect(),
        products: node
            .products()
            .unwrap()
            .into_iter()
            .map(|p| (p.sku, p.version))
            .collect(),
    }
}

/// The outbox state of each op, in order.
fn outbox_states(node: &SyncNode) -> Vec<String> {
    node.outbox()
        .unwrap()
        .into_iter()
        .map(|o| o.state)
        .collect()
}

fn refresh_token(db: &Connection) -> String {
    db.query_row("SELECT refresh_token FROM sync_state", [], |r| r.get(0))
        .unwrap()
}

/// Polls `probe` until it answers, or fails the test after `PATIENCE`.
async fn eventually<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {PATIENCE:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Sleeps until the wall clock's Unix second reaches `secs` (hub tokens count whole seconds).
async fn until_unix_second(secs: i64) {
    while Utc::now().timestamp() < secs {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Keeps every event with when it came.
#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<(Instant, DateTime<Utc>, SyncEvent)>>,
}

impl SyncListener for Recorder {
    fn on_event(&self, event: &SyncEvent) {
        lock(&self.events).push((Instant::now(), Utc::now(), event.clone()));
    }
}

impl Recorder {
    fn len(&self) -> usize {
        lock(&self.events).len()
    }

    /// Status changes from event `from` on.
    fn statuses(&self, from: usize) -> Vec<(Instant, DateTime<Utc>, NodeStatus)> {
        lock(&self.events)[from..]
            .iter()
            .filter_map(|(at, wall, e)| match e {
                SyncEvent::StatusChanged { status } => Some((*at, *wall, status.clone())),
                _ => None,
            })
            .collect()
    }

    /// When a level was first reported changed, from event `from` on.
    fn stock_changed(&self, from: usize, product_id: &str, location_id: &str) -> Option<Instant> {
        lock(&self.events)[from..]
            .iter()
            .find(|(_, _, e)| {
                matches!(e, SyncEvent::StockChanged { product_id: p, location_id: l }
                    if p == product_id && l == location_id)
            })
            .map(|(at, _, _)| *at)
    }
}

/// Records one movement on the node while the first snapshot page that has more to come is
/// being reported, i.e. in the middle of a snapshot, and notes the snapshot's reason then.
struct RecordMidSnapshot {
    node: Mutex<Option<SyncNode>>,
    movement: Movement,
    /// `(snapshot_reason, op_id)` once fired.
    fired: Mutex<Option<(Option<String>, String)>>,
}

impl RecordMidSnapshot {
    fn new(node: &SyncNode, movement: Movement) -> Arc<Self> {
        Arc::new(RecordMidSnapshot {
            node: Mutex::new(Some(node.clone())),
            movement,
            fired: Mutex::new(None),
        })
    }

    fn fired(&self) -> Option<(Option<String>, String)> {
        lock(&self.fired).clone()
    }
}

impl SyncListener for RecordMidSnapshot {
    fn on_event(&self, event: &SyncEvent) {
        let SyncEvent::Progress { progress } = event else {
            return;
        };
        if progress.phase != "snapshot" || !progress.has_more {
            return;
        }
        // Taken, so it fires once and the node is not kept alive by its own listener.
        let Some(node) = lock(&self.node).take() else {
            return;
        };
        let reason = node.diagnostics().unwrap()["snapshot_reason"]
            .as_str()
            .map(str::to_owned);
        let recorded = node.record(&self.movement).unwrap();
        *lock(&self.fired) = Some((reason, recorded.op_id.to_string()));
    }
}

/// Appends a raw op to a node's outbox (the next `device_seq`, an HLC just after the last op's),
/// as a damaged or hand-made row would be.
fn insert_raw_op(db: &Connection, kind: &str, body: &str) -> String {
    let (seq, hlc, created): (i64, String, String) = db
        .query_row(
            "SELECT device_seq, hlc, created_at FROM outbox ORDER BY device_seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    // `WWWWWWWWWWWWWWWW.CCCCC@NODE`: the next counter value.
    let (time, node) = hlc.split_once('@').unwrap();
    let (wall, counter) = time.split_once('.').unwrap();
    let counter: u32 = counter.parse().unwrap();
    let hlc = format!("{wall}.{:05}@{node}", counter + 1);
    let op_id = format!("op_{}", uuid::Uuid::now_v7().simple());
    db.execute(
        "INSERT INTO outbox (device_seq, op_id, kind, body, hlc, state, attempts, created_at,
             updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 'pending', 0, ?6, ?6)",
        params![seq + 1, op_id, kind, body, hlc, created],
    )
    .unwrap();
    op_id
}

// ---------------------------------------------------------------------------------------------
// 1. A lost push answer.

/// The hub applies a push whose answer never reaches the device. The ops stay unsent on the
/// device; the resend is answered `duplicate` (a new batch, with an op added) or with the stored
/// answer (the same batch, same idempotency key), and the hub counts every op once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_push_answer_is_resent_and_counted_exactly_once() {
    let w = world(|_| {}).await;
    let proxy = Proxy::start(w.hub.addr).await;
    let a = w.node("a", &proxy.url(), SyncConfig::default()).await;
    seed(&a, &["A-01"], &["WID-1"]);
    a.record(&receive("WID-1", "A-01", 10)).unwrap();
    let r = a.sync_now().await.unwrap();
    assert_eq!(r.applied, 3, "{r:?}");
    let (pid, lid) = ids(&a, "WID-1", "A-01");
    assert_eq!(w.hub_on_hand(&pid, &lid).await, d(10));

    for q in [1, 2, 3] {
        a.record(&receive("WID-1", "A-01", q)).unwrap();
    }

    // Reset before a byte is read: nothing reaches the hub.
    proxy.set_mode(Mode::Reset).await;
    let e = a.sync_now().await.unwrap_err();
    assert!(matches!(e, NodeError::Offline { .. }), "{e:?}");
    assert_eq!(a.status().unwrap().pending, 3);
    assert_eq!(w.hub_on_hand(&pid, &lid).await, d(10));

    // The hub applies the push; its answer is lost on the way back.
    proxy.set_mode(Mode::DropResponse).await;
    let mark = proxy.requests().len();
    let e = a.sync_now().await.unwrap_err();
    assert!(matches!(e, NodeError::Offline { .. }), "{e:?}");
    let routes: Vec<String> = proxy.requests()[mark..].iter().map(|s| s.route()).collect();
    assert_eq!(routes, ["POST /v1/sync/push"]);
    assert_eq!(w.hub_on_hand(&pid, &lid).await, d(16), "the hub committed");
    let unsent: Vec<_> = a.outbox().unwrap().into_iter().skip(3).collect();
    assert_eq!(unsent.len(), 3);
    for op in &unsent {
        assert!(
            matches!(op.state.as_str(), "pending" | "in_flight"),
            "{op:?}"
        );
        assert_eq!(op.attempts, 2, "{op:?}");
    }
    assert_eq!(a.status().unwrap().pending, 3);
    assert_eq!(level(&a, "WID-1", "A-01"), (d(10), d(6), d(16)));

    // One more op joins the resend: a new batch (a new key), so the hub looks at each op and
    // answers `duplicate` for the three it had.
    a.record(&receive("WID-1", "A-01", 4)).unwrap();
    proxy.set_mode(Mode::Pass).await;
    let r = a.sync_now().await.unwrap();
    assert_eq!(
        (r.pushed, r.duplicates, r.applied, r.rejected),
        (4, 3, 1, 0),
        "{r:?}"
    );
    let duplicates: Vec<_> = r.outcomes.iter().filter(|o| o.duplicate).collect();
    assert_eq!(duplicates.len(), 3, "{r:?}");
    assert!(
        duplicates
            .iter()
            .all(|o| o.status == stocksync_protocol::OpStatus::Applied)
    );
    assert_eq!(r.checksum_ok, Some(true), "{r:?}");
    assert_eq!(w.hub_on_hand(&pid, &lid).await, d(20));
    assert_eq!(level(&a, "WID-1", "A-01"), (d(20), d(0), d(20)));
    assert_eq!(a.status().unwrap().pending, 0);
    assert!(outbox_states(&a).iter().all(|s| s == "acked"));
    assert!(a.check().unwrap().is_empty(), "{:?}", a.check());

    // The same batch resent as it was (nothing recorded meanwhile): the same idempotency key,
    // so the hub replays the answer it stored with the effect (`meta.idempotent`), which the
    // node reports as a duplicate too; still applied once.
    a.record(&receive("WID-1", "A-01", 5)).unwrap();
    proxy.set_mode(Mode::DropResponse).await;
    a.sync_now().await.unwrap_err();
    assert_eq!(w.hub_on_hand(&pid, &lid).await, d(25));
    proxy.set_mode(Mode::Pass).await;
    let r = a.sync_now().await.unwrap();
    assert_eq!(
        (r.pushed, r.duplicates, r.applied, r.rejected),
        (1, 1, 0, 0),
        "{r:?}"
    );
    assert!(r.outcomes[0].duplicate, "{r:?}");
    assert_eq!(w.hub_on_hand(&pid, &lid).await, d(25));
    assert_eq!(level(&a, "WID-1", "A-01"), (d(25), d(0), d(25)));
    assert!(a.check().unwrap().is_empty(), "{:?}", a.check());

    // A clean device sees the same.
    let b = w.node("b", &w.hub.base_url(), SyncConfig::default()).await;
    b.sync_now().await.unwrap();
    assert_eq!(view(&b), view(&a));
}

// ---------------------------------------------------------------------------------------------
// 2. A dropped WebSocket.

/// Device A follows the hub live through the proxy; B's changes reach A over the socket. The
/// proxy cuts every connection: A's status leaves `live`, A reconnects by itself and is `live`
/// again, and B's next change reaches A live again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_websocket_reconnects_by_itself_and_changes_flow_live_again() {
    let w = world(|_| {}).await;
    let proxy = Proxy::start(w.hub.addr).await;
    let b = w.node("b", &w.hub.base_url(), SyncConfig::default()).await;
    seed(&b, &["A-01"], &["WID-1"]);
    b.record(&receive("WID-1", "A-01", 10)).unwrap();
    b.sync_now().await.unwrap();

    let a = w.node("a", &proxy.url(), fast(true)).await;
    let rec = Arc::new(Recorder::default());
    let _listening = a.add_listener(rec.clone());
    a.start().unwrap();
    eventually("A live with B's stock", || {
        let live = a.status().unwrap().state == SyncState::Live;
        (live && a.stock(None, None).unwrap().len() == 1).then_some(())
    })
    .await;
    let (pid, lid) = ids(&a, "WID-1", "A-01");
    assert_eq!(level(&a, "WID-1", "A-01").2, d(10));
    let sockets = |p: &Proxy| {
        p.requests()
            .iter()
            .filter(|s| s.route() == "GET /v1/ws")
            .count()
    };
    assert_eq!(sockets(&proxy), 1);

    // B's change arrives on the socket: the frame is applied (and reported) before A's next
    // pull, which the frame itself triggers.
    let live_change = |q: i64, expected: i64| {
        let (b, a, rec, proxy, pid, lid) = (&b, &a, &rec, &proxy, &pid, &lid);
        async move {
            // Quiet first: live, and no round due (a reconnect is followed by a catch-up round
            // after the debounce, which would race the change).
            eventually("A live and quiet", || {
                let statuses = rec.statuses(0);
                let (at, _, s) = statuses.last()?;
                let quiet = s.state == SyncState::Live && s.live;
                (quiet && at.elapsed() >= Duration::from_millis(200)).then_some(())
            })
            .await;
            let mark = rec.len();
            let pulls = proxy.requests().len();
            b.record(&receive("WID-1", "A-01", q)).unwrap();
            b.sync_now().await.unwrap();
            let seen = eventually("B's change on A", || rec.stock_changed(mark, pid, lid)).await;
            let first_pull = proxy.requests()[pulls..]
                .iter()
                .find(|s| s.route() == "GET /v1/inventory/delta")
                .map(|s| s.at);
            assert!(
                first_pull.is_none_or(|p| seen < p),
                "the change came by a pull, not live: {:?}",
                proxy.requests()
            );
            eventually("A's view updated", || {
                (level(a, "WID-1", "A-01").2 == d(expected)).then_some(())
            })
            .await;
        }
    };
    live_change(5, 15).await;

    // The network drops every connection, the WebSocket with them.
    let mark = rec.len();
    proxy.kill_all();
    eventually("A to leave live", || {
        rec.statuses(mark)
            .iter()
            .any(|(_, _, s)| s.state != SyncState::Live && !s.live)
            .then_some(())
    })
    .await;
    eventually("A to be live again by itself", || {
        let after_drop = rec.statuses(mark);
        let dropped = after_drop.iter().position(|(_, _, s)| !s.live)?;
        after_drop[dropped..]
            .iter()
            .any(|(_, _, s)| s.state == SyncState::Live && s.live)
            .then_some(())
    })
    .await;
    assert_eq!(sockets(&proxy), 2, "{:?}", proxy.requests());
    assert_eq!(a.status().unwrap().state, SyncState::Live);

    live_change(7, 22).await;
    a.stop().await;
    assert!(a.check().unwrap().is_empty(), "{:?}", a.check());
}

// ---------------------------------------------------------------------------------------------
// 3. `full_sync_required`.

/// A device works offline past the hub's retention (1 s here). Its next sync pushes the ops
/// recorded offline exactly once, then gets `full_sync_required` and takes a fresh snapshot; an
/// op recorded in the middle of that snapshot stays pending through it (and its sweep) and goes
/// once, next round. The device's view equals the hub's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_sync_required_takes_a_fresh_snapshot_and_keeps_pending_ops() {
    let w = world(|c| c.retention = Duration::from_secs(1)).await;
    let proxy = Proxy::start(w.hub.addr).await;
    // Small pages, so the snapshot has a middle.
    let config = SyncConfig {
        pull_limit: 2,
        ..SyncConfig::default()
    };
    let a = w.node("a", &proxy.url(), config).await;
    let b = w.node("b", &w.hub.base_url(), SyncConfig::default()).await;
    seed(&a, &["A-01", "B-01"], &["WID-1"]);
    a.record(&receive("WID-1", "A-01", 10)).unwrap();
    let r = a.sync_now().await.unwrap();
    assert_eq!((r.applied, r.checksum_ok), (4, Some(true)), "{r:?}");
    let pulled_at = Utc::now().timestamp();
    b.sync_now().await.unwrap();
    let (wid, a01) = ids(&a, "WID-1", "A-01");

    // A is cut off and works on.
    proxy.set_mode(Mode::Refuse).await;
    a.record(&receive("WID-1", "A-01", 4)).unwrap();
    a.record(&ship("WID-1", "A-01", 3)).unwrap();
    let e = a.sync_now().await.unwrap_err();
    assert!(matches!(e, NodeError::Offline { .. }), "{e:?}");
    assert_eq!(a.status().unwrap().pending, 2);

    // Meanwhile the hub moves on.
    b.add_product(&NewProduct::new("GAD-1", "Gadget")).unwrap();
    b.record(&receive("GAD-1", "B-01", 6)).unwrap();
    b.record(&receive("WID-1", "A-01", 5)).unwrap();
    b.sync_now().await.unwrap();

    // A's delta token outlives the retention: issued at second t, refused from t + 2.
    until_unix_second(pulled_at + 2).await;
    let hook = RecordMidSnapshot::new(&a, receive("WID-1", "A-01", 2));
    let _listening = a.add_listener(hook.clone());
    proxy.set_mode(Mode::Pass).await;
    let r = a.sync_now().await.unwrap();
    assert_eq!(
        (r.pushed, r.applied, r.duplicates, r.rejected),
        (2, 2, 0, 0),
        "{r:?}"
    );
    assert_eq!((r.checksum_ok, r.repaired), (Some(true), false), "{r:?}");
    let (reason, mid_op) = hook.fired().expect("no snapshot page with more to come");
    assert_eq!(reason.as_deref(), Some("full sync required by the hub"));
    // 1 (full_sync_required) + the snapshot's pages (2 locations, 2 products, 2 levels).
    assert!(r.pages >= 4, "{r:?}");

    // The hub: 10 + 4 − 3 + 5, and B's gadgets. A: the same confirmed, plus the op it
    // recorded mid-snapshot, still pending.
    assert_eq!(w.hub_on_hand(&wid, &a01).await, d(16));
    let c = w.node("c", &w.hub.base_url(), SyncConfig::default()).await;
    c.sync_now().await.unwrap();
    assert_eq!(view(&a), view(&c));
    assert_eq!(level(&a, "WID-1", "A-01"), (d(16), d(2), d(18)));
    assert_eq!(level(&a, "GAD-1", "B-01").2, d(6));
    let last = a.outbox().unwrap().pop().unwrap();
    assert_eq!(
        (last.op_id.as_str(), last.state.as_str()),
        (mid_op.as_str(), "pending")
    );
    assert_eq!(a.status().unwrap().pending, 1);
    assert!(a.check().unwrap().is_empty(), "{:?}", a.check());

    // It goes next, once.
    let r = a.sync_now().await.unwrap();
    assert_eq!((r.pushed, r.applied, r.duplicates), (1, 1, 0), "{r:?}");
    assert_eq!(r.checksum_ok, Some(true), "{r:?}");
    assert_eq!(w.hub_on_hand(&wid, &a01).await, d(18));
    assert_eq!(level(&a, "WID-1", "A-01"), (d(18), d(0), d(18)));
    assert!(a.check().unwrap().is_empty(), "{:?}", a.check());
}

// ---------------------------------------------------------------------------------------------
// 4. The checksum.

/// A way to damage a node's database behind its back, and its name.
type Damage<'a> = (&'static str, Box<dyn Fn(&Connection) + 'a>);

/// After a clean sync the device's view is damaged behind the node's back, four ways: a level's
/// synced on hand changed, a level deleted, a level the hub does not have added (with a
/// `hub_seq`), a product's version changed. Each time the next sync finds the checksum differs,
/// rebuilds the view from a snapshot (`repaired`, `checksum_ok`), and the view equals the hub's
/// again; an op recorded in the middle of the repair stays pending and goes next round, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checksum_mismatch_is_found_and_repaired() {
    let w = world(|_| {}).await;
    let config = SyncConfig {
        pull_limit: 2,
        ..SyncConfig::default()
    };
    let a = w.node("a", &w.hub.base_url(), config).await;
    let truth = w
        .node("truth", &w.hub.base_url(), SyncConfig::default())
        .await;
    seed(&a, &["A-01", "B-01"], &["WID-1", "GAD-1"]);
    a.record(&receive("WID-1", "A-01", 10)).unwrap();
    a.record(&receive("GAD-1", "A-01", 5)).unwrap();
    a.record(&receive("GAD-1", "B-01", 7)).unwrap();
    let r = a.sync_now().await.unwrap();
    assert_eq!((r.checksum_ok, r.repaired), (Some(true), false), "{r:?}");
    let (wid, a01) = ids(&a, "WID-1", "A-01");
    let (gad, b01) = ids(&a, "GAD-1", "B-01");
    let db = w.sql("a");

    let damages: [Damage<'_>; 4] = [
        (
            "a level's synced on hand changed",
            Box::new(|db| {
                let n = db
                    .execute(
                        "UPDATE stock SET synced_on_hand = synced_on_hand + 990000
                         WHERE product_id = ?1 AND location_id = ?2",
                        [&wid, &a01],
                    )
                    .unwrap();
                assert_eq!(n, 1);
            }),
        ),
        (
            "a level deleted",
            Box::new(|db| {
                let n = db
                    .execute(
                        "DELETE FROM stock WHERE product_id = ?1 AND location_id = ?2",
                        [&gad, &b01],
                    )
                    .unwrap();
                assert_eq!(n, 1);
            }),
        ),
        (
            "a level the hub does not have",
            Box::new(|db| {
                db.execute(
                    "INSERT INTO stock (product_id, location_id, synced_on_hand, pending,
                         pending_allocated, synced_allocated, hub_seq, snap_epoch, updated_at)
                     VALUES (?1, ?2, 30000, 0, 0, 0, 999999,
                             (SELECT snapshot_epoch FROM sync_state), '2020-01-01T00:00:00.000Z')",
                    [&wid, &b01],
                )
                .unwrap();
            }),
        ),
        (
            "a product's version changed",
            Box::new(|db| {
                let n = db
                    .execute(
                        "UPDATE products SET version = version + 3 WHERE id = ?1",
                        [&gad],
                    )
                    .unwrap();
                assert_eq!(n, 1);
            }),
        ),
    ];
    let mut expected = 10;
    for (round, (what, damage)) in damages.iter().enumerate() {
        truth.sync_now().await.unwrap();
        assert_eq!(view(&a), view(&truth), "{what}: before");
        damage(&db);
        assert_ne!(view(&a), view(&truth), "{what}: not damaged");

        let hook = RecordMidSnapshot::new(&a, receive("WID-1", "A-01", 1));
        let listening = a.add_listener(hook.clone());
        let r = a.sync_now().await.unwrap();
        drop(listening);
        assert!(r.repaired, "{what}: {r:?}");
        assert_eq!(r.checksum_ok, Some(true), "{what}: {r:?}");
        let (reason, mid_op) = hook.fired().expect("no snapshot page with more to come");
        assert!(
            reason
                .as_deref()
                .is_some_and(|r| r.starts_with("checksum mismatch")),
            "{what}: {reason:?}"
        );
        truth.sync_now().await.unwrap();
        assert_eq!(view(&a), view(&truth), "{what}: after the repair");
        // The op recorded during the repair is untouched, on top of the rebuilt view.
        assert_eq!(
            level(&a, "WID-1", "A-01"),
            (d(expected), d(1), d(expected + 1)),
            "{what}"
        );
        let last = a.outbox().unwrap().pop().unwrap();
        assert_eq!(
            (last.op_id.as_str(), last.state.as_str()),
            (mid_op.as_str(), "pending"),
            "{what}"
        );
        assert!(a.check().unwrap().is_empty(), "{what}: {:?}", a.check());
        let repairs = a.diagnostics().unwrap()["counts"]["repairs"].as_u64();
        assert_eq!(repairs, Some(round as u64 + 1), "{what}");

        // Next round: the op goes once, the views agree without a repair.
        let r = a.sync_now().await.unwrap();
        expected += 1;
        assert_eq!((r.pushed, r.applied), (1, 1), "{what}: {r:?}");
        assert_eq!(
            (r.repaired, r.checksum_ok),
            (false, Some(true)),
            "{what}: {r:?}"
        );
        assert_eq!(w.hub_on_hand(&wid, &a01).await, d(expected), "{what}");
        assert_eq!(
            level(&a, "WID-1", "A-01"),
            (d(expected), d(0), d(expected)),
            "{what}"
        );
    }
    assert_eq!(a.status().unwrap().pending, 0);
}

// ---------------------------------------------------------------------------------------------
// 5. Tokens.

/// Access tokens live 1 s. Past expiry a sync works (the node refreshes first: the token runs
/// out within its minute of margin); when the node still trusts a token the hub has let expire,
/// the hub's 401 makes it refresh and call again, once. The refresh token rotates each time.
/// Replaying a spent refresh token revokes the family: the device's next sync fails with
/// `AuthRequired` (its unsent op kept), and in the background its state is `auth_required`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_refreshes_and_a_reused_refresh_token_requires_enrolling_again() {
    // No reuse grace: the replay below is theft, not a lost answer.
    let w = world(|c| {
        c.access_ttl_secs = 1;
        c.refresh_reuse_grace_secs = 0;
    })
    .await;
    let proxy = Proxy::start(w.hub.addr).await;
    let a = w.node("a", &proxy.url(), fast(false)).await;
    let db = w.sql("a");
    let enrolled = refresh_token(&db);
    seed(&a, &["A-01"], &["WID-1"]);
    a.record(&receive("WID-1", "A-01", 10)).unwrap();
    a.sync_now().await.unwrap();
    let (wid, a01) = ids(&a, "WID-1", "A-01");
    let rt1 = refresh_token(&db);
    assert_ne!(rt1, enrolled, "a 1-s token is refreshed before use");
    let issued = Utc::now().timestamp();

    // Past expiry.
    until_unix_second(issued + 1).await;
    let mark = proxy.requests().len();
    a.sync_now().await.unwrap();
    let routes: Vec<String> = proxy.requests()[mark..].iter().map(|s| s.route()).collect();
    assert_eq!(
        routes,
        ["POST /v1/oauth/token", "GET /v1/inventory/delta"],
        "{routes:?}"
    );
    let rt2 = refresh_token(&db);
    assert_ne!(rt2, rt1);
    let issued = Utc::now().timestamp();

    // The device trusts its token for a day; the hub does not.
    let tomorrow = (Utc::now() + chrono::Duration::days(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    db.execute("UPDATE sync_state SET access_expires_at = ?1", [tomorrow])
        .unwrap();
    until_unix_second(issued + 1).await;
    a.record(&receive("WID-1", "A-01", 1)).unwrap();
    let mark = proxy.requests().len();
    let r = a.sync_now().await.unwrap();
    assert_eq!((r.pushed, r.applied, r.duplicates), (1, 1, 0), "{r:?}");
    let routes: Vec<String> = proxy.requests()[mark..].iter().map(|s| s.route()).collect();
    // 401, refresh, the same push again (applied); then the pull (a 1-s token is refreshed
    // again before it, being due within the node's minute of margin).
    assert_eq!(
        routes[..3],
        [
            "POST /v1/sync/push",
            "POST /v1/oauth/token",
            "POST /v1/sync/push"
        ],
        "{routes:?}"
    );
    assert_eq!(
        routes.last().map(String::as_str),
        Some("GET /v1/inventory/delta"),
        "{routes:?}"
    );
    let rt3 = refresh_token(&db);
    assert_ne!(rt3, rt2);
    assert_eq!(w.hub_on_hand(&wid, &a01).await, d(11));

    // Someone replays the spent rt2: the hub revokes the whole family.
    let (status, body) = w.refresh_directly(&rt2).await;
    assert_eq!(status, 401, "{body}");
    a.record(&receive("WID-1", "A-01", 2)).unwrap();
    let e = a.sync_now().await.unwrap_err();
    assert!(matches!(e, NodeError::AuthRequired { .. }), "{e:?}");
    assert_eq!(a.status().unwrap().pending, 1);
    assert_eq!(
        outbox_states(&a).last().map(String::as_str),
        Some("pending")
    );
    assert_eq!(w.hub_on_hand(&wid, &a01).await, d(11));

    // In the background: `auth_required`, and then silence.
    a.start().unwrap();
    eventually("auth_required", || {
        (a.status().unwrap().state == SyncState::AuthRequired).then_some(())
    })
    .await;
    let settled = proxy.requests().len();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(proxy.requests().len(), settled, "{:?}", proxy.requests());
    a.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 6. Retry-After.

/// `sync_now` against a 503 fails as offline after one request. In the background, a 429 with
/// `Retry-After: 2` puts the node in `backing_off` with `next_retry_at` 2 s ahead, and no
/// connection reaches the proxy before then (neither round nor WebSocket); then it syncs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_obeyed() {
    let w = world(|_| {}).await;
    let proxy = Proxy::start(w.hub.addr).await;
    let a = w.node("a", &proxy.url(), fast(true)).await;
    seed(&a, &["A-01"], &["WID-1"]);
    a.record(&receive("WID-1", "A-01", 3)).unwrap();
    a.sync_now().await.unwrap();
    let (wid, a01) = ids(&a, "WID-1", "A-01");
    a.record(&receive("WID-1", "A-01", 1)).unwrap();

    proxy
        .set_mode(Mode::Status {
            code: 503,
            retry_after: Some(1),
        })
        .await;
    let mark = proxy.requests().len();
    let e = a.sync_now().await.unwrap_err();
    assert!(matches!(e, NodeError::Offline { .. }), "{e:?}");
    assert_eq!(proxy.requests().len(), mark + 1, "{:?}", proxy.requests());
    assert_eq!(a.status().unwrap().pending, 1);

    proxy
        .set_mode(Mode::Status {
            code: 429,
            retry_after: Some(2),
        })
        .await;
    let rec = Arc::new(Recorder::default());
    let _listening = a.add_listener(rec.clone());
    let accepted = proxy.accepted().len();
    a.start().unwrap();
    let (_, wall, backing_off) = eventually("backing_off", || {
        rec.statuses(0)
            .into_iter()
            .find(|(_, _, s)| s.state == SyncState::BackingOff)
    })
    .await;
    // Whatever comes now would pass; nothing may come before the Retry-After.
    proxy.set_mode(Mode::Pass).await;
    let next: DateTime<Utc> = backing_off
        .next_retry_at
        .as_deref()
        .expect("next_retry_at")
        .parse()
        .unwrap();
    let ahead = (next - wall).num_milliseconds();
    assert!(
        ahead >= 1_900,
        "next retry {ahead} ms ahead: {backing_off:?}"
    );
    assert!(
        backing_off
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("429")),
        "{backing_off:?}"
    );

    eventually("live with the op pushed", || {
        let s = a.status().unwrap();
        (s.state == SyncState::Live && s.pending == 0).then_some(())
    })
    .await;
    let conns = proxy.accepted()[accepted..].to_vec();
    let limited: Vec<_> = conns
        .iter()
        .filter(|c| matches!(c.mode, Mode::Status { code: 429, .. }))
        .collect();
    let passed: Vec<_> = conns.iter().filter(|c| c.mode == Mode::Pass).collect();
    // The first round and the first socket, both refused; then nothing for 2 s.
    assert!((1..=2).contains(&limited.len()), "{:?}", proxy.requests());
    assert!(!passed.is_empty());
    let refused: Vec<String> = proxy
        .requests()
        .iter()
        .filter(|s| matches!(s.mode, Mode::Status { code: 429, .. }))
        .map(|s| s.route())
        .collect();
    assert!(
        refused
            .iter()
            .all(|r| r == "POST /v1/sync/push" || r == "GET /v1/ws"),
        "{refused:?}"
    );
    let first_429 = limited[0].at;
    for c in &passed {
        let waited = c.at.duration_since(first_429);
        assert!(
            waited >= Duration::from_millis(1_990),
            "a connection {waited:?} after the 429: {:?}",
            proxy.requests()
        );
    }
    assert_eq!(w.hub_on_hand(&wid, &a01).await, d(4));
    a.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 7. The circuit breaker.

/// The hub is unreachable (connections refused). After 5 failed rounds the breaker opens:
/// `circuit_open`, with the cooldown (1.5 s here) as `next_retry_at`. The hub comes back at
/// once, but no connection arrives before the cooldown ends; then the probe round goes through
/// and the state returns to `live`; later writes flow as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_opens_after_five_failures_and_a_probe_closes_it() {
    let w = world(|_| {}).await;
    let proxy = Proxy::start(w.hub.addr).await;
    let mut config = fast(true);
    config.engine.backoff = Backoff {
        base_ms: 50,
        max_ms: 200,
        factor: 2,
    };
    config.engine.breaker_cooldown_ms = 1_500;
    let a = w.node("a", &proxy.url(), config).await;
    seed(&a, &["A-01"], &["WID-1"]);
    a.record(&receive("WID-1", "A-01", 3)).unwrap();
    a.sync_now().await.unwrap();
    let (wid, a01) = ids(&a, "WID-1", "A-01");

    let rec = Arc::new(Recorder::default());
    let _listening = a.add_listener(rec.clone());
    proxy.set_mode(Mode::Refuse).await;
    a.start().unwrap();
    let (opened, wall, open) = eventually("circuit_open", || {
        rec.statuses(0)
            .into_iter()
            .find(|(_, _, s)| s.state == SyncState::CircuitOpen)
    })
    .await;
    // Nothing gets through while refusing, so these marks are where the window starts.
    let accepted = proxy.accepted().len();
    let requests = proxy.requests().len();
    proxy.set_mode(Mode::Pass).await;
    assert_eq!(open.consecutive_failures, 5, "{open:?}");
    let before: Vec<SyncState> = rec.statuses(0).iter().map(|(_, _, s)| s.state).collect();
    assert!(before.contains(&SyncState::Offline), "{before:?}");
    let until: DateTime<Utc> = open
        .next_retry_at
        .as_deref()
        .expect("next_retry_at")
        .parse()
        .unwrap();
    let cooldown = (until - wall).to_std().unwrap();
    assert!(
        (Duration::from_millis(1_400)..=Duration::from_millis(1_500)).contains(&cooldown),
        "{cooldown:?}"
    );

    eventually("the probe to close the breaker", || {
        let s = a.status().unwrap();
        (s.state == SyncState::Live && s.consecutive_failures == 0).then_some(())
    })
    .await;
    // Nothing during the cooldown. A socket attempt the engine started just before the breaker
    // opened may land in its first moments; no round, and no socket started after.
    let during: Vec<_> = proxy.requests()[requests..]
        .iter()
        .filter(|s| s.at.duration_since(opened) + Duration::from_millis(20) < cooldown)
        .map(|s| (s.at.duration_since(opened), s.route()))
        .collect();
    assert!(
        during
            .iter()
            .all(|(after, route)| route == "GET /v1/ws" && *after < Duration::from_millis(50)),
        "requests during a {cooldown:?} cooldown: {during:?}"
    );
    for c in &proxy.accepted()[accepted..] {
        let after = c.at.duration_since(opened);
        assert!(
            after < Duration::from_millis(50) || after + Duration::from_millis(20) >= cooldown,
            "a connection {after:?} into a {cooldown:?} cooldown: {:?}",
            proxy.requests()
        );
    }
    // Then the probe: one round (a pull), with the socket opened alongside.
    let probe: Vec<String> = proxy.requests()[requests..]
        .iter()
        .filter(|s| s.at.duration_since(opened) + Duration::from_millis(20) >= cooldown)
        .map(|s| s.route())
        .filter(|r| r != "GET /v1/ws")
        .collect();
    assert_eq!(probe, ["GET /v1/inventory/delta"]);

    a.record(&receive("WID-1", "A-01", 2)).unwrap();
    eventually("the next write to flow", || {
        (a.status().unwrap().pending == 0).then_some(())
    })
    .await;
    assert_eq!(w.hub_on_hand(&wid, &a01).await, d(5));
    a.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 8. Poisoned ops.

/// An op the node cannot read (a location id that is no id) sits among good ops: it is parked
/// at once, with the reason, and the others are pushed around it; later ops keep flowing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_op_the_node_cannot_read_is_parked_and_the_others_flow() {
    let w = world(|_| {}).await;
    let a = w.node("a", &w.hub.base_url(), SyncConfig::default()).await;
    seed(&a, &["A-01"], &["WID-1"]);
    a.record(&receive("WID-1", "A-01", 10)).unwrap();
    a.sync_now().await.unwrap();
    let (wid, a01) = ids(&a, "WID-1", "A-01");

    a.record(&receive("WID-1", "A-01", 1)).unwrap();
    a.record(&receive("WID-1", "A-01", 2)).unwrap();
    let poisoned = insert_raw_op(
        &w.sql("a"),
        "location_create",
        r#"{"location_id": "loc_no good!", "code": "X-9", "name": "Broken"}"#,
    );
    a.record(&receive("WID-1", "A-01", 3)).unwrap();
    assert_eq!(a.status().unwrap().pending, 4);

    let r = a.sync_now().await.unwrap();
    assert_eq!(
        (r.pushed, r.applied, r.parked, r.rejected),
        (3, 3, 1, 0),
        "{r:?}"
    );
    parked_alone(&a, &poisoned, "unreadable");
    assert_eq!(w.hub_on_hand(&wid, &a01).await, d(16));

    a.record(&receive("WID-1", "A-01", 4)).unwrap();
    let r = a.sync_now().await.unwrap();
    assert_eq!((r.pushed, r.applied, r.parked), (1, 1, 0), "{r:?}");
    parked_alone(&a, &poisoned, "unreadable");
    assert_eq!(w.hub_on_hand(&wid, &a01).await, d(20));
    assert!(a.check().unwrap().is_empty(), "{:?}", a.check());
}

/// An op the node reads but the hub refuses as a whole request (a body over the hub's 4 MiB:
/// 413) sits among good ops: the node halves the batch until the op is alone, parks it with
/// the hub's reason, and pushes the others; later ops keep flowing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_op_the_hub_refuses_as_a_request_is_parked_and_the_others_flow() {
    let w = world(|_| {}).await;
    let a = w.node("a", &w.hub.base_url(), SyncConfig::default()).await;
    seed(&a, &["A-01"], &["WID-1"]);
    a.record(&receive("WID-1", "A-01", 10)).unwrap();
    a.sync_now().await.unwrap();
    let (wid, a01) = ids(&a, "WID-1", "A-01");

    a.record(&receive("WID-1", "A-01", 1)).unwrap();
    a.record(&receive("WID-1", "A-01", 2)).unwrap();
    let body = json!({
        "location_id": "loc_poison",
        "code": "P-1",
        "name": "x".repeat(stocksync_hub::config::BODY_LIMIT + 64 * 1024),
    });
    let poisoned = insert_raw_op(&w.sql("a"), "location_create", &body.to_string());
    a.record(&receive("WID-1", "A-01", 3)).unwrap();

    let r = a.sync_now().await.unwrap();
    assert_eq!(
        (r.pushed, r.applied, r.parked, r.rejected),
        (3, 3, 1, 0),
        "{r:?}"
    );
    parked_alone(&a, &poisoned, "HTTP 413");
    assert_eq!(w.hub_on_hand(&wid, &a01).await, d(16));

    a.record(&receive("WID-1", "A-01", 4)).unwrap();
    let r = a.sync_now().await.unwrap();
    assert_eq!((r.pushed, r.applied, r.parked), (1, 1, 0), "{r:?}");
    parked_alone(&a, &poisoned, "HTTP 413");
    assert_eq!(w.hub_on_hand(&wid, &a01).await, d(20));
    assert!(a.check().unwrap().is_empty(), "{:?}", a.check());
}

/// `op_id` is the one parked op (its reason mentioning `why`), and every other op is acked.
fn parked_alone(node: &SyncNode, op_id: &str, why: &str) {
    let status = node.status().unwrap();
    assert_eq!((status.parked, status.pending), (1, 0), "{status:?}");
    for op in node.outbox().unwrap() {
        if op.op_id == op_id {
            assert_eq!(op.state, "parked");
            let reason = op.last_error.unwrap_or_default();
            assert!(reason.contains(why), "{reason}");
        } else {
            assert_eq!(op.state, "acked", "{op:?}");
        }
    }
}

//! What the crash tests share: a replayable random schedule and their environment knobs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

/// xorshift64*: the kill schedule, replayable from its seed.
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> XorShift {
        XorShift(seed.max(1))
    }

    pub fn below(&mut self, n: u64) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// A seed from the clock and the process id (printed by the tests, so a run can be replayed).
pub fn clock_seed() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    (nanos ^ u64::from(std::process::id())) % 1_000_000_007
}

/// A number from the environment; a value that is not one stops the test.
pub fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{name}={value:?}: {e}")),
    )
}

/// What the sync tests (`sync_crash.rs`, `sync_convergence.rs`) share: a hub in this process,
/// its REST API read with the dev API key, a device's file read with plain SQL, and the checks
/// that every op reached the hub exactly once and that the device and the hub agree. The other
/// tests compile it too without using it, hence the `allow`.
#[allow(dead_code)]
pub mod sync {
    use rusqlite::{Connection, OpenFlags};
    use serde_json::Value;
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::{Path, PathBuf};
    use std::time::Duration;
    use stocksync_hub::Hub;
    use stocksync_hub::config::HubConfig;
    use stocksync_hub::server;
    use stocksync_model::Decimal;
    use stocksync_node::SyncNode;

    /// Op kinds that move stock (the others are catalog ops and conflict resolutions).
    pub const MOVEMENT_KINDS: [&str; 4] = [
        "transaction",
        "transfer",
        "allocation",
        "allocation_release",
    ];

    /// A hub started in this process on an ephemeral loopback port (no rate limits), with the
    /// `--dev` organization, API key and enrollment key.
    pub struct TestHub {
        pub hub: Hub,
        pub api: HubApi,
        pub enrollment_key: String,
        pub data_dir: PathBuf,
    }

    impl TestHub {
        /// Must run inside the tokio runtime that will serve it.
        pub async fn start(data_dir: &Path) -> TestHub {
            Self::start_with(data_dir, |_| {}).await
        }

        /// With `tune` applied to the configuration.
        pub async fn start_with(data_dir: &Path, tune: impl FnOnce(&mut HubConfig)) -> TestHub {
            std::fs::create_dir_all(data_dir).expect("hub data dir");
            let (bootstrap, creds) = server::dev_bootstrap(data_dir);
            let mut config = HubConfig::new(data_dir);
            config.rate_limit = 0;
            config.auth_rate_limit = 0;
            tune(&mut config);
            let hub = Hub::start(config, &bootstrap, "127.0.0.1:0")
                .await
                .expect("start the hub");
            let api = HubApi::new(&hub.base_url(), &creds.api_key, &creds.organization_id);
            TestHub {
                hub,
                api,
                enrollment_key: creds.enrollment_key,
                data_dir: data_dir.to_owned(),
            }
        }

        pub fn url(&self) -> String {
            self.hub.base_url()
        }
    }

    /// One stock level: on hand and allocated, in ten-thousandths (`Decimal::scaled`).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct Level {
        pub on_hand: i64,
        pub allocated: i64,
    }

    impl std::fmt::Display for Level {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(
                f,
                "on_hand {} allocated {}",
                Decimal::from_scaled(self.on_hand),
                Decimal::from_scaled(self.allocated)
            )
        }
    }

    /// `(product_id, location_id)` → level.
    pub type Levels = BTreeMap<(String, String), Level>;

    /// The hub's REST API, read with an API key.
    #[derive(Clone)]
    pub struct HubApi {
        http: reqwest::Client,
        pub base: String,
        api_key: String,
        org: String,
    }

    /// A decimal string from the hub, scaled.
    pub fn scaled(v: &Value) -> i64 {
        let text = v
            .as_str()
            .unwrap_or_else(|| panic!("a decimal string expected, got {v}"));
        text.parse::<Decimal>()
            .unwrap_or_else(|e| panic!("decimal {text:?}: {e}"))
            .scaled()
    }

    impl HubApi {
        pub fn new(base: &str, api_key: &str, org: &str) -> HubApi {
            HubApi {
                http: reqwest::Client::builder()
                    .no_proxy()
                    .timeout(Duration::from_secs(30))
                    .build()
                    .expect("HTTP client"),
                base: base.trim_end_matches('/').to_owned(),
                api_key: api_key.to_owned(),
                org: org.to_owned(),
            }
        }

        /// A GET that must answer 200; the whole envelope.
        pub async fn get(&self, path: &str, query: &[(&str, String)]) -> Value {
            let query: Vec<String> = query
                .iter()
                .map(|(k, v)| format!("{k}={}", percent_encode(v)))
                .collect();
            let url = format!("{}{path}?{}", self.base, query.join("&"));
            let r = self
                .http
                .get(&url)
                .header("X-API-Key", &self.api_key)
                .header("X-Organization-ID", &self.org)
                .send()
                .await
                .unwrap_or_else(|e| panic!("GET {url}: {e}"));
            let status = r.status().as_u16();
            let body: Value = r
                .json()
                .await
                .unwrap_or_else(|e| panic!("GET {url}: not JSON: {e}"));
            assert_eq!(status, 200, "GET {url}: {body}");
            body
        }

        /// A write (`POST`, `PUT`, `DELETE`) with an `Idempotency-Key` for POSTs; the status and
        /// the envelope.
        pub async fn send(
            &self,
            method: reqwest::Method,
            path: &str,
            body: Option<&Value>,
        ) -> (u16, Value) {
            let url = format!("{}{path}", self.base);
            let mut request = self
                .http
                .request(method.clone(), &url)
                .header("X-API-Key", &self.api_key)
                .header("X-Organization-ID", &self.org);
            if method == reqwest::Method::POST {
                request = request.header(
                    "Idempotency-Key",
                    format!("test-{}", uuid::Uuid::now_v7().simple()),
                );
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let r = request
                .send()
                .await
                .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
            let status = r.status().as_u16();
            let body: Value = r
                .json()
                .await
                .unwrap_or_else(|e| panic!("{method} {url}: not JSON: {e}"));
            (status, body)
        }

        /// Every item of a paged list (`page`/`pageSize`), in order.
        pub async fn all(&self, path: &str, query: &[(&str, String)]) -> Vec<Value> {
            let mut items = Vec::new();
            for page in 1.. {
                let mut q = query.to_vec();
                q.push(("pageSize", "200".into()));
                q.push(("page", page.to_string()));
                let body = self.get(path, &q).await;
                items.extend(body["data"].as_array().expect("a list").iter().cloned());
                if body["meta"]["pagination"]["hasMore"] != true {
                    let total = body["meta"]["pagination"]["total"].as_u64();
                    assert_eq!(
                        total,
                        Some(items.len() as u64),
                        "GET {path}: pagination.total differs from the items listed"
                    );
                    return items;
                }
                assert!(page < 100_000, "GET {path}: the pages never end");
            }
            unreachable!()
        }

        /// Every stock level of every location.
        pub async fn stock(&self) -> Levels {
            let mut levels = Levels::new();
            for location in self.all("/v1/inventory/locations", &[]).await {
                let id = location["id"].as_str().expect("location id");
                let body = self
                    .get(&format!("/v1/locations/{id}/inventory"), &[])
                    .await;
                for s in body["data"].as_array().expect("a list") {
                    let key = (
                        s["product_id"].as_str().expect("product_id").to_owned(),
                        s["location_id"].as_str().expect("location_id").to_owned(),
                    );
                    let level = Level {
                        on_hand: scaled(&s["on_hand"]),
                        allocated: scaled(&s["allocated"]),
                    };
                    assert!(
                        levels.insert(key.clone(), level).is_none(),
                        "stock level {key:?} listed twice"
                    );
                }
            }
            levels
        }

        /// Every transaction (movement) the hub holds.
        pub async fn transactions(&self) -> Vec<Value> {
            self.all("/v1/inventory/transactions", &[]).await
        }

        /// Every live product, by id.
        pub async fn products(&self) -> BTreeMap<String, Value> {
            self.all("/v1/products", &[])
                .await
                .into_iter()
                .map(|p| (p["id"].as_str().expect("product id").to_owned(), p))
                .collect()
        }

        /// Open conflicts, by id.
        pub async fn open_conflicts(&self) -> BTreeMap<String, Value> {
            self.all("/v1/conflicts", &[("status", "open".into())])
                .await
                .into_iter()
                .map(|c| (c["id"].as_str().expect("conflict id").to_owned(), c))
                .collect()
        }
    }

    /// A query-string value (the workspace's reqwest has no `query` feature).
    pub fn percent_encode(v: &str) -> String {
        v.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    char::from(b).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    }

    /// One outbox op as the device's file holds it.
    #[derive(Clone, Debug)]
    pub struct FileOp {
        pub device_seq: i64,
        pub op_id: String,
        pub kind: String,
        pub state: String,
        /// The hub's answer as recorded (`OpResult` JSON), if any.
        pub result: Option<Value>,
        pub last_error: Option<String>,
        /// The op's body as pushed.
        pub body: Value,
    }

    impl FileOp {
        /// `details.rule` of the recorded rejection.
        pub fn rule(&self) -> Option<&str> {
            self.result.as_ref()?["error"]["details"]["rule"].as_str()
        }

        /// The error code of the recorded rejection.
        pub fn code(&self) -> Option<&str> {
            self.result.as_ref()?["error"]["code"].as_str()
        }
    }

    /// One ledger leg.
    #[derive(Clone, Debug)]
    pub struct FileLeg {
        pub op_id: String,
        pub product_id: String,
        pub location_id: String,
        pub on_hand_delta: i64,
        pub allocated_delta: i64,
        pub state: String,
    }

    /// A device's database, read with plain SQL (read-only; the node may still have it open).
    pub struct DeviceFile {
        pub name: String,
        pub ops: Vec<FileOp>,
        pub legs: Vec<FileLeg>,
        pub integrity: Vec<String>,
    }

    impl DeviceFile {
        pub fn read(name: &str, db: &Path) -> DeviceFile {
            let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)
                .unwrap_or_else(|e| panic!("open {} read-only: {e}", db.display()));
            let integrity = conn
                .prepare("PRAGMA integrity_check")
                .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
                .expect("integrity_check");
            let ops = conn
                .prepare(
                    "SELECT device_seq, op_id, kind, state, result, last_error, body FROM outbox
                     ORDER BY device_seq",
                )
                .and_then(|mut s| {
                    s.query_map([], |r| {
                        let result: Option<String> = r.get(4)?;
                        Ok(FileOp {
                            device_seq: r.get(0)?,
                            op_id: r.get(1)?,
                            kind: r.get(2)?,
                            state: r.get(3)?,
                            result: result.map(|t| {
                                serde_json::from_str(&t).expect("a stored result is JSON")
                            }),
                            last_error: r.get(5)?,
                            body: serde_json::from_str(&r.get::<_, String>(6)?)
                                .expect("an op body is JSON"),
                        })
                    })?
                    .collect()
                })
                .expect("read the outbox");
            let legs = conn
                .prepare(
                    "SELECT op_id, product_id, location_id, on_hand_delta, allocated_delta, state
                     FROM ledger ORDER BY seq",
                )
                .and_then(|mut s| {
                    s.query_map([], |r| {
                        Ok(FileLeg {
                            op_id: r.get(0)?,
                            product_id: r.get(1)?,
                            location_id: r.get(2)?,
                            on_hand_delta: r.get(3)?,
                            allocated_delta: r.get(4)?,
                            state: r.get(5)?,
                        })
                    })?
                    .collect()
                })
                .expect("read the ledger");
            DeviceFile {
                name: name.to_owned(),
                ops,
                legs,
                integrity,
            }
        }

        /// The sums of the legs of acked ops.
        pub fn accepted_levels(&self) -> Levels {
            let mut levels = Levels::new();
            for leg in self.legs.iter().filter(|l| l.state == "synced") {
                let level = levels
                    .entry((leg.product_id.clone(), leg.location_id.clone()))
                    .or_default();
                level.on_hand += leg.on_hand_delta;
                level.allocated += leg.allocated_delta;
            }
            levels
        }

        pub fn op(&self, op_id: &str) -> Option<&FileOp> {
            self.ops.iter().find(|o| o.op_id == op_id)
        }
    }

    /// Adds `b` into `a`.
    pub fn add_levels(a: &mut Levels, b: &Levels) {
        for (k, v) in b {
            let level = a.entry(k.clone()).or_default();
            level.on_hand += v.on_hand;
            level.allocated += v.allocated;
        }
    }

    /// Levels equal, reading a missing level as zero.
    pub fn level_differences(what_a: &str, a: &Levels, what_b: &str, b: &Levels) -> Vec<String> {
        let keys: BTreeSet<&(String, String)> = a.keys().chain(b.keys()).collect();
        keys.into_iter()
            .filter_map(|k| {
                let (x, y) = (
                    a.get(k).copied().unwrap_or_default(),
                    b.get(k).copied().unwrap_or_default(),
                );
                (x != y).then(|| {
                    format!(
                        "stock of {} at {}: {what_a} has {x}, {what_b} has {y}",
                        k.0, k.1
                    )
                })
            })
            .collect()
    }

    /// The exactly-once checks of a set of devices against the hub that they synced with (and
    /// that no one else moved stock at):
    ///
    /// * every op is `acked` or `rejected`, none pending, in flight or parked; a rejection has a
    ///   stored answer and a reason, and `rejection_ok` accepts it (it says why not);
    /// * the legs of acked ops are `synced`, those of rejected ops `rejected`;
    /// * every acked movement op is exactly one hub transaction; no rejected op is one; every
    ///   hub transaction is an acked op of one of these devices;
    /// * the hub's stock equals the sum of the devices' accepted legs, and none is negative;
    /// * each file passes `PRAGMA integrity_check`.
    pub fn exactly_once_problems(
        devices: &[&DeviceFile],
        transactions: &[Value],
        hub_stock: &Levels,
        rejection_ok: &dyn Fn(&DeviceFile, &FileOp) -> Result<(), String>,
    ) -> Vec<String> {
        let mut problems = Vec::new();
        let mut by_op: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
        for t in transactions {
            match t["op_id"].as_str() {
                Some(op) => by_op.entry(op).or_default().push(t),
                None => problems.push(format!("a hub transaction without op_id: {t}")),
            }
        }
        let mut accepted = Levels::new();
        let mut known: BTreeSet<&str> = BTreeSet::new();
        for d in devices {
            let name = &d.name;
            if d.integrity != ["ok"] {
                problems.push(format!("{name}: integrity_check says {:?}", d.integrity));
            }
            for op in &d.ops {
                known.insert(&op.op_id);
                let legs: Vec<&FileLeg> = d.legs.iter().filter(|l| l.op_id == op.op_id).collect();
                let at_hub = by_op.get(op.op_id.as_str()).map_or(0, Vec::len);
                let what = format!(
                    "{name}: op {} ({}, device_seq {}, {})",
                    op.op_id, op.kind, op.device_seq, op.state
                );
                let movement = MOVEMENT_KINDS.contains(&op.kind.as_str());
                match op.state.as_str() {
                    "acked" => {
                        if op.result.is_none() {
                            problems.push(format!("{what}: acked without a stored answer"));
                        }
                        if let Some(l) = legs.iter().find(|l| l.state != "synced") {
                            problems.push(format!("{what}: a leg is {}", l.state));
                        }
                        if movement && at_hub != 1 {
                            problems.push(format!("{what}: {at_hub} hub transactions, not 1"));
                        }
                    }
                    "rejected" => {
                        if let Err(why) = rejection_ok(d, op) {
                            problems
                                .push(format!("{what}: rejected ({why}); answer {:?}", op.result));
                        }
                        if op.last_error.as_deref().is_none_or(str::is_empty) {
                            problems.push(format!("{what}: rejected without a reason"));
                        }
                        if let Some(l) = legs.iter().find(|l| l.state != "rejected") {
                            problems.push(format!("{what}: a leg is {}", l.state));
                        }
                        if at_hub != 0 {
                            problems
                                .push(format!("{what}: rejected, yet {at_hub} hub transactions"));
                        }
                    }
                    _ => problems.push(format!(
                        "{what}: not settled (last_error {:?})",
                        op.last_error
                    )),
                }
            }
            add_levels(&mut accepted, &d.accepted_levels());
        }
        for (op, ts) in &by_op {
            if !known.contains(op) {
                problems.push(format!(
                    "hub transaction(s) {:?} of op {op}, which no device has",
                    ts.iter().map(|t| t["id"].clone()).collect::<Vec<_>>()
                ));
            }
        }
        problems.extend(level_differences(
            "the hub",
            hub_stock,
            "the devices' accepted legs",
            &accepted,
        ));
        for (k, l) in hub_stock {
            if l.on_hand < 0 || l.allocated < 0 {
                problems.push(format!(
                    "the hub's stock of {} at {} is negative: {l}",
                    k.0, k.1
                ));
            }
        }
        problems
    }

    /// For [`exactly_once_problems`] where nothing may be rejected.
    pub fn no_rejection(_: &DeviceFile, _: &FileOp) -> Result<(), String> {
        Err("nothing may be rejected here".into())
    }

    /// The node's own view: `check()` finds nothing, nothing is pending, and every level equals
    /// the hub's.
    pub fn node_view_problems(name: &str, node: &SyncNode, hub_stock: &Levels) -> Vec<String> {
        let mut problems: Vec<String> = node
            .check()
            .expect("check()")
            .into_iter()
            .map(|p| format!("{name}: check(): {p}"))
            .collect();
        let mut view = Levels::new();
        for row in node.stock(None, None).expect("stock()") {
            if row.pending != Decimal::ZERO {
                problems.push(format!(
                    "{name}: {} at {} still has {} pending",
                    row.sku, row.location_code, row.pending
                ));
            }
            if row.on_hand.is_negative() {
                problems.push(format!(
                    "{name}: {} at {} shows {} on hand",
                    row.sku, row.location_code, row.on_hand
                ));
            }
            view.insert(
                (row.product_id.to_string(), row.location_id.to_string()),
                Level {
                    on_hand: row.on_hand.scaled(),
                    allocated: row.allocated.scaled(),
                },
            );
        }
        problems.extend(level_differences(
            "the hub",
            hub_stock,
            &format!("{name}'s stock()"),
            &view,
        ));
        problems
    }

    /// The product fields a device and the hub must agree on.
    pub const PRODUCT_FIELDS: [&str; 10] = [
        "sku",
        "barcode",
        "name",
        "description",
        "category",
        "status",
        "uom",
        "price",
        "version",
        "id",
    ];

    /// The node's live products equal the hub's, field by field (and the same set of them).
    pub fn product_problems(
        name: &str,
        node: &SyncNode,
        hub_products: &BTreeMap<String, Value>,
    ) -> Vec<String> {
        let mut problems = Vec::new();
        let mine: BTreeMap<String, Value> = node
            .products()
            .expect("products()")
            .into_iter()
            .map(|p| {
                (
                    p.id.to_string(),
                    serde_json::to_value(&p).expect("product JSON"),
                )
            })
            .collect();
        let ids: BTreeSet<&String> = mine.keys().chain(hub_products.keys()).collect();
        for id in ids {
            match (mine.get(id), hub_products.get(id)) {
                (Some(m), Some(h)) => {
                    for f in PRODUCT_FIELDS {
                        if m[f] != h[f] {
                            problems.push(format!(
                                "{name}: product {id} field {f}: device {}, hub {}",
                                m[f], h[f]
                            ));
                        }
                    }
                }
                (Some(m), None) => problems.push(format!(
                    "{name}: product {id} ({}) is not live at the hub",
                    m["sku"]
                )),
                (None, Some(h)) => problems.push(format!(
                    "{name}: the hub's product {id} ({}) is missing",
                    h["sku"]
                )),
                (None, None) => {}
            }
        }
        problems
    }

    /// Panics with every problem, one per line.
    pub fn assert_none(problems: &[String], context: &str) {
        const SHOW: usize = 40;
        assert!(
            problems.is_empty(),
            "{context}: {} problem(s):\n  {}{}",
            problems.len(),
            problems
                .iter()
                .take(SHOW)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n  "),
            if problems.len() > SHOW {
                format!("\n  … and {} more", problems.len() - SHOW)
            } else {
                String::new()
            }
        );
    }
}

/// The `stocksync` binary: `STOCKSYNC_BIN`, or the one beside this test's executable, built if
/// it is missing or older than its sources (so a test never runs a hub older than the code).
#[allow(dead_code)] // Only the tests that run the hub binary use it.
pub fn stocksync_binary() -> PathBuf {
    if let Ok(bin) = std::env::var("STOCKSYNC_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("the test's own path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test runs from target/<profile>/deps");
    let bin = profile_dir.join(format!("stocksync{}", std::env::consts::EXE_SUFFIX));
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let built = std::fs::metadata(&bin).and_then(|m| m.modified()).ok();
    let sources = ["hub", "desktop", "core"]
        .iter()
        .filter_map(|d| newest_source(&root.join(d)))
        .max();
    if built.is_none() || sources > built {
        let mut build = Command::new(env!("CARGO"));
        build
            .current_dir(root)
            .args(["build", "-p", "stocksync", "--bin", "stocksync"]);
        if !cfg!(debug_assertions) {
            build.arg("--release");
        }
        let status = build.status().expect("run cargo build -p stocksync");
        assert!(status.success(), "cargo build -p stocksync: {status}");
        assert!(
            bin.exists(),
            "cargo build did not produce {}",
            bin.display()
        );
    }
    bin
}

/// The latest change to a crate's `Cargo.toml` or `src/`, for each crate at or below `dir`.
#[allow(dead_code)]
fn newest_source(dir: &Path) -> Option<SystemTime> {
    fn walk(path: &Path, newest: &mut Option<SystemTime>) {
        let Ok(meta) = std::fs::metadata(path) else {
            return;
        };
        if meta.is_dir() {
            for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
                walk(&entry.path(), newest);
            }
        } else if let Ok(modified) = meta.modified() {
            *newest = (*newest).max(Some(modified));
        }
    }
    let mut newest = None;
    let manifest = dir.join("Cargo.toml");
    if manifest.exists() {
        walk(&manifest, &mut newest);
        walk(&dir.join("src"), &mut newest);
    } else {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            newest = newest.max(newest_source(&entry.path()));
        }
    }
    newest
}

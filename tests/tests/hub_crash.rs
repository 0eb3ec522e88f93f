//! Crash safety of the hub: the process may die at any instant (OOM killer, power cut of a VM,
//! `kill -9`), and when it comes back no pushed op may be lost or applied twice.
//!
//! The test runs the real `stocksync hub --dev` on a temporary data dir, enrolls one device and
//! creates one product and one location over REST, then plans N batches of 25 receipt ops
//! (random quantities 1–9, each op with its own `op_id` and the next `device_seq`, each batch
//! with its own fixed `Idempotency-Key`). A client task pushes the batches in order, exactly as
//! a node does: when a request fails with a connection error it waits for the hub to come back
//! and resends from the first batch it has not seen answered, plus the last answered one (the
//! duplicate a node sends when it is unsure). Meanwhile the test SIGKILLs the hub at random
//! instants: a random point in the plan, then a random delay of up to 1.5 requests (half the
//! time 0.7–1.1 requests), so most kills land inside a request (parsing, applying, committing,
//! answering) and some between the commit and the answer. One restart in four is itself killed
//! part-way (migrations, bootstrap, before or after it listens). Each time the hub restarts on
//! the same data dir. At the end:
//!
//! * every answer of every batch names its ops in order, each `applied` (or `duplicate` with
//!   `original_status: applied`), never `rejected`;
//! * a batch sent again under its own key answers the first answer again (`meta.idempotent`):
//!   the stored response went in the same transaction as the effect;
//! * every batch resent under a fresh key answers `duplicate` / `applied` for every op;
//! * the stock at the location equals the sum of the planned quantities, exactly;
//! * the transaction list holds every planned op exactly once, with its quantity, and
//!   `meta.pagination.total` is the number of planned ops;
//! * a full delta pull works and its last page carries a `meta.checksum`;
//! * after a last SIGKILL, the hub's `hub.db` (with the WAL the dead process left) passes
//!   `PRAGMA integrity_check` and `PRAGMA foreign_key_check`, opened read-only.
//!
//! `STOCKSYNC_HUB_CRASH_KILLS` (default 5) sets the number of kills (the plan grows to 8 batches
//! per kill when that is more than 40); `STOCKSYNC_CRASH_SEED` replays a run's kill schedule and
//! quantities. `scripts/soak.sh` runs it with more kills. A SIGKILL stops the process, not the
//! machine: what the page cache holds survives, so this checks the transactions, not `fsync`.
//!
//! The binary: the tests crate does not depend on the `stocksync` package, so
//! `env!("CARGO_BIN_EXE_stocksync")` is not available here (it only names binaries of the test's
//! own package). The test looks for it next to its own executable
//! (`std::env::current_exe()` = `target/<profile>/deps/hub_crash-…` → `target/<profile>/stocksync`),
//! which `cargo test --workspace` has built. If it is missing (`cargo test -p stocksync-tests` on
//! a fresh target dir), or older than a `Cargo.toml` or `src/` file of `hub/`, `desktop/` or
//! `core/` (`-p stocksync-tests` alone does not rebuild it), the test runs `cargo build -p
//! stocksync` (`env!("CARGO")`, in the workspace root `CARGO_MANIFEST_DIR/..`; `--release` when
//! the test itself is a release build).

// A test: a failed step is a failed test, with the message saying which.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{Value, json};
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::{XorShift, clock_seed, env_u64, stocksync_binary};
use tokio::sync::watch;

const OPS_PER_BATCH: usize = 25;
/// Batches in the plan, at least (more with many kills: 8 per kill).
const MIN_BATCHES: usize = 40;
/// How long anything may take before the test calls it hung.
const PATIENCE: Duration = Duration::from_secs(60);

#[test]
fn sigkill_of_the_hub_loses_no_pushed_op_and_applies_none_twice() {
    let seed = env_u64("STOCKSYNC_CRASH_SEED").unwrap_or_else(clock_seed);
    let kills = env_u64("STOCKSYNC_HUB_CRASH_KILLS").unwrap_or(5);
    let batches = MIN_BATCHES.max(8 * kills as usize);
    println!(
        "hub crash test: {kills} kills, {batches} batches of {OPS_PER_BATCH} ops, seed {seed} \
         (replay with STOCKSYNC_CRASH_SEED={seed})"
    );
    let started = Instant::now();
    let bin = stocksync_binary();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut hub = HubProcess::new(bin, dir.path());
    let mut rng = XorShift::new(seed);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client");

    let t = Instant::now();
    let creds = hub.start();
    let startup = t.elapsed();
    let setup = runtime.block_on(setup(&http, &creds));
    let plan = Arc::new(Plan::new(&mut rng, batches, &setup));

    let (publish, base_url) = watch::channel(creds.base_url.clone());
    let progress = Arc::new(Progress::default());
    let client = runtime.spawn(run_client(
        http.clone(),
        setup.device.clone(),
        Arc::clone(&plan),
        base_url,
        Arc::clone(&progress),
    ));

    let mut in_request = 0;
    let mut startup_kills = Vec::new();
    for kill in 1..=kills {
        // A random point in what is left of the plan, spread over the kills still to come...
        let answered = progress.answered.load(Ordering::SeqCst);
        let left = batches - answered;
        let kills_left = (kills - kill + 1) as usize;
        let step = rng.below((2 * left / (kills_left + 1)).max(1) as u64) as usize;
        let target = (answered + step).min(batches - 1);
        let deadline = Instant::now() + PATIENCE;
        while progress.answered.load(Ordering::SeqCst) < target && !client.is_finished() {
            assert!(
                Instant::now() < deadline,
                "kill {kill}: the client is stuck before batch {target} (seed {seed})"
            );
            thread::sleep(Duration::from_micros(500));
        }
        if client.is_finished() {
            break;
        }
        // ...then a random instant within about one request; half the time near its end, where
        // the commit and the response are.
        let mean = progress.mean_request_us();
        let delay = Duration::from_micros(if rng.below(2) == 0 {
            rng.below(mean * 3 / 2 + 1)
        } else {
            mean * 7 / 10 + rng.below(mean * 4 / 10 + 1)
        });
        thread::sleep(delay);
        in_request += usize::from(progress.in_flight.load(Ordering::SeqCst));
        hub.kill(&format!("kill {kill} (seed {seed})"));

        // One restart in four is itself killed somewhere in the start.
        if rng.below(4) == 0 {
            let at = Duration::from_micros(rng.below(startup.as_micros() as u64 + 1));
            hub.spawn();
            thread::sleep(at);
            hub.kill(&format!(
                "kill {kill}, the start killed after {at:?} (seed {seed})"
            ));
            startup_kills.push(at);
        }
        let creds = hub.start();
        publish.send_replace(creds.base_url);
    }

    let answers = runtime
        .block_on(async { tokio::time::timeout(PATIENCE, client).await })
        .unwrap_or_else(|_| panic!("the client did not finish in {PATIENCE:?} (seed {seed})"))
        .expect("the client task")
        .unwrap_or_else(|e| panic!("client (seed {seed}): {e}"));
    let sends = progress.requests.load(Ordering::SeqCst);
    // Batches whose first answer came from the idempotency store: a kill between the commit and
    // the response.
    let after_commit = answers
        .iter()
        .filter(|a| a.first().is_some_and(|a| a["meta"]["idempotent"] == true))
        .count();

    // The hub that is running now (it restarted after the last kill) answers the checks.
    let creds = hub.creds.clone().expect("the hub is running");
    check_answers(&plan, &answers, seed);
    runtime.block_on(check_state(&http, &creds, &setup, &plan, seed));

    hub.kill(&format!("the last kill (seed {seed})"));
    check_file(&hub.data.join("hub.db"), seed);

    println!(
        "hub crash test: {kills} kills ({in_request} during a request, {} starts killed after \
         {startup_kills:?}; a start takes {startup:?}) in {:.1} s; {} ops in {batches} batches \
         answered with {sends} requests, {} resent after a kill; {after_commit} batch(es) \
         committed before their kill and answered from the idempotency store",
        startup_kills.len(),
        started.elapsed().as_secs_f64(),
        plan.ops(),
        sends - batches,
    );
}

// ---------------------------------------------------------------------------------------------
// The hub process.

/// What `--dev` writes to `DATA_DIR/dev-credentials.json`.
#[derive(Clone)]
struct Creds {
    organization_id: String,
    api_key: String,
    enrollment_key: String,
    base_url: String,
}

/// One hub at a time on one data dir; killed on drop, so a failed test leaves no process.
struct HubProcess {
    bin: PathBuf,
    data: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    /// Of the running hub, once it has written them.
    creds: Option<Creds>,
    /// The keys, once a start has made them: later starts must reuse them.
    keys: Option<Value>,
}

impl HubProcess {
    fn new(bin: PathBuf, dir: &Path) -> HubProcess {
        HubProcess {
            bin,
            data: dir.join("hub"),
            log: dir.join("hub-stderr.log"),
            child: None,
            creds: None,
            keys: None,
        }
    }

    fn creds_path(&self) -> PathBuf {
        self.data.join("dev-credentials.json")
    }

    /// Starts the hub without waiting for it. The credentials file is first rewritten with an
    /// empty `base_url`, so the new one shows when this start listens; the keys stay (`--dev`
    /// reuses the file's keys; without the file it would mint new ones).
    fn spawn(&mut self) {
        assert!(self.child.is_none(), "a hub is already running");
        self.creds = None;
        match &self.keys {
            Some(keys) => {
                let mut blank = keys.clone();
                blank["base_url"] = json!("");
                std::fs::write(self.creds_path(), blank.to_string()).expect("blank credentials");
            }
            None => {
                let _ = std::fs::remove_file(self.creds_path());
            }
        }
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("hub log file");
        let child = Command::new(&self.bin)
            .args(["hub", "--dev", "--bind", "127.0.0.1:0", "--rate-limit", "0"])
            .arg("--data-dir")
            .arg(&self.data)
            .env("STOCKSYNC_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.bin.display()));
        self.child = Some(child);
    }

    /// Starts the hub and waits until it has written its credentials (it listens by then).
    fn start(&mut self) -> Creds {
        self.spawn();
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(creds) = self.read_creds() {
                self.creds = Some(creds.clone());
                return creds;
            }
            let child = self.child.as_mut().expect("spawned");
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                panic!(
                    "the hub exited ({status}) before it listened; stderr:\n{}",
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the hub did not write {} in {PATIENCE:?}; stderr:\n{}",
                self.creds_path().display(),
                self.stderr()
            );
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// The credentials file, once whole and with a `base_url`.
    fn read_creds(&mut self) -> Option<Creds> {
        let bytes = std::fs::read(self.creds_path()).ok()?;
        let v: Value = serde_json::from_slice(&bytes).ok()?;
        let text = |k: &str| v[k].as_str().map(str::to_owned);
        let creds = Creds {
            organization_id: text("organization_id")?,
            api_key: text("api_key")?,
            enrollment_key: text("enrollment_key")?,
            base_url: text("base_url").filter(|u| !u.is_empty())?,
        };
        text("branch_id")?;
        if let Some(keys) = &self.keys {
            assert_eq!(
                (&keys["api_key"], &keys["enrollment_key"]),
                (&v["api_key"], &v["enrollment_key"]),
                "a restarted --dev hub changed its keys"
            );
        }
        self.keys = Some(v);
        Some(creds)
    }

    /// SIGKILLs the hub, which must still be running (it only stops by being killed).
    fn kill(&mut self, what: &str) {
        let mut child = self.child.take().expect("a hub to kill");
        self.creds = None;
        let exited = child.try_wait().expect("try_wait");
        let _ = child.kill();
        let status = child.wait().expect("wait for the hub");
        assert!(
            exited.is_none() && killed(status),
            "{what}: the hub stopped by itself ({}) before it was killed; stderr:\n{}",
            exited.unwrap_or(status),
            self.stderr()
        );
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[cfg(unix)]
fn killed(status: ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.signal() == Some(9)
}

#[cfg(not(unix))]
fn killed(status: ExitStatus) -> bool {
    !status.success()
}

// ---------------------------------------------------------------------------------------------
// Setup and the plan.

#[derive(Clone)]
struct DeviceCreds {
    id: String,
    access: String,
    organization_id: String,
}

struct Setup {
    device: DeviceCreds,
    product: String,
    location: String,
}

/// Enrolls the device and creates the product and the location (before any kill).
async fn setup(http: &reqwest::Client, creds: &Creds) -> Setup {
    let base = &creds.base_url;
    let id = format!("dev_{}", uuid_simple());
    let r = http
        .post(format!("{base}/v1/auth/devices"))
        .json(
            &json!({ "enrollment_key": creds.enrollment_key, "device_id": id, "role": "handheld" }),
        )
        .send()
        .await
        .expect("POST /v1/auth/devices");
    let (status, body) = (r.status().as_u16(), r.json::<Value>().await.unwrap());
    assert_eq!(status, 201, "enroll: {body}");
    let access = body["data"]["access_token"].as_str().unwrap().to_owned();

    let api_post = |path: &str, key: &str, body: Value| {
        http.post(format!("{base}{path}"))
            .header("X-API-Key", &creds.api_key)
            .header("X-Organization-ID", &creds.organization_id)
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
    };
    let tail = uuid_simple();
    let r = api_post(
        "/v1/products",
        "crash-product",
        json!({ "sku": format!("SKU-{tail}"), "name": "Crash widget", "category": "tools" }),
    )
    .await
    .expect("POST /v1/products");
    let (status, body) = (r.status().as_u16(), r.json::<Value>().await.unwrap());
    assert_eq!(status, 201, "create the product: {body}");
    let product = body["data"]["id"].as_str().unwrap().to_owned();
    let r = api_post(
        "/v1/inventory/locations",
        "crash-location",
        json!({ "code": format!("L-{tail}"), "name": "Crash shelf", "branch_id": "br_main" }),
    )
    .await
    .expect("POST /v1/inventory/locations");
    let (status, body) = (r.status().as_u16(), r.json::<Value>().await.unwrap());
    assert_eq!(status, 201, "create the location: {body}");
    let location = body["data"]["id"].as_str().unwrap().to_owned();
    Setup {
        device: DeviceCreds {
            id,
            access,
            organization_id: creds.organization_id.clone(),
        },
        product,
        location,
    }
}

struct Batch {
    key: String,
    /// The request body, `{"ops": […]}`.
    body: Value,
    op_ids: Vec<String>,
}

struct Plan {
    batches: Vec<Batch>,
    /// Every op's quantity.
    qty: HashMap<String, u64>,
    total: u64,
}

impl Plan {
    fn new(rng: &mut XorShift, batches: usize, setup: &Setup) -> Plan {
        let ops = (batches * OPS_PER_BATCH) as u64;
        // HLCs in the recent past, one millisecond apart.
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let first_ms = now_ms - 60_000 - ops;
        let device = &setup.device.id;
        let mut plan = Plan {
            batches: Vec::new(),
            qty: HashMap::new(),
            total: 0,
        };
        let mut seq = 0u64;
        for _ in 0..batches {
            let mut ops = Vec::new();
            let mut op_ids = Vec::new();
            for _ in 0..OPS_PER_BATCH {
                seq += 1;
                let qty = 1 + rng.below(9);
                let wall_ms = first_ms + seq;
                let occurred = chrono::DateTime::from_timestamp_millis(wall_ms as i64)
                    .unwrap()
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                let op_id = format!("op_{}", uuid_simple());
                ops.push(json!({
                    "op_id": op_id,
                    "device_seq": seq,
                    "occurred_at": occurred,
                    "hlc": format!("{wall_ms:016}.{:05}@{device}", 0),
                    "kind": "transaction",
                    "body": {
                        "transaction_id": format!("txn_{}", uuid_simple()),
                        "transaction_type": "receipt",
                        "product_id": setup.product,
                        "location_id": setup.location,
                        "quantity": { "value": qty.to_string(), "uom": "EACH" },
                    },
                }));
                plan.qty.insert(op_id.clone(), qty);
                plan.total += qty;
                op_ids.push(op_id);
            }
            plan.batches.push(Batch {
                key: format!("crash-batch-{}", uuid_simple()),
                body: json!({ "ops": ops }),
                op_ids,
            });
        }
        plan
    }

    fn ops(&self) -> usize {
        self.qty.len()
    }
}

// ---------------------------------------------------------------------------------------------
// The client.

/// What the client has done so far, for the kill schedule.
#[derive(Default)]
struct Progress {
    /// Batches answered (the first `answered` of the plan).
    answered: AtomicUsize,
    /// A push is on the wire.
    in_flight: AtomicBool,
    /// Pushes answered, and their total time.
    requests: AtomicUsize,
    request_us: AtomicU64,
}

impl Progress {
    fn mean_request_us(&self) -> u64 {
        match self.requests.load(Ordering::SeqCst) as u64 {
            0 => 20_000,
            n => self.request_us.load(Ordering::SeqCst) / n,
        }
    }
}

/// Pushes the plan in order, as a node does; returns every answer (the whole body) of every
/// batch. A connection error means the hub died: wait for the next one, then resend from the
/// last answered batch.
async fn run_client(
    http: reqwest::Client,
    device: DeviceCreds,
    plan: Arc<Plan>,
    mut base_url: watch::Receiver<String>,
    progress: Arc<Progress>,
) -> Result<Vec<Vec<Value>>, String> {
    let n = plan.batches.len();
    let mut answers = vec![Vec::new(); n];
    let mut next = 0;
    let mut from = 0;
    while next < n {
        let base = base_url.borrow_and_update().clone();
        let mut lost = None;
        for (i, batch) in plan.batches.iter().enumerate().skip(from) {
            progress.in_flight.store(true, Ordering::SeqCst);
            let t = Instant::now();
            let answer = push(&http, &base, &device, batch).await;
            progress.in_flight.store(false, Ordering::SeqCst);
            match answer {
                Ok((200, body)) => {
                    answers[i].push(body);
                    next = next.max(i + 1);
                    progress.answered.store(next, Ordering::SeqCst);
                    progress.requests.fetch_add(1, Ordering::SeqCst);
                    progress
                        .request_us
                        .fetch_add(t.elapsed().as_micros() as u64, Ordering::SeqCst);
                }
                Ok((status, body)) => {
                    return Err(format!("batch {i}: the push answered {status}: {body}"));
                }
                Err(e) => {
                    lost = Some(format!("batch {i}: {e}"));
                    break;
                }
            }
        }
        if let Some(lost) = lost {
            match tokio::time::timeout(PATIENCE, base_url.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(format!("{lost}, and the test stopped restarting")),
                Err(_) => return Err(format!("{lost}, and no restart in {PATIENCE:?}")),
            }
            // The last answered batch too: the duplicate a node sends when unsure.
            from = next.saturating_sub(1);
        }
    }
    Ok(answers)
}

/// One push under the batch's own key; `Err` is a failure to get a whole answer (the hub died).
async fn push(
    http: &reqwest::Client,
    base: &str,
    device: &DeviceCreds,
    batch: &Batch,
) -> Result<(u16, Value), reqwest::Error> {
    push_keyed(http, base, device, &batch.key, &batch.body).await
}

async fn push_keyed(
    http: &reqwest::Client,
    base: &str,
    device: &DeviceCreds,
    key: &str,
    body: &Value,
) -> Result<(u16, Value), reqwest::Error> {
    let r = http
        .post(format!("{base}/v1/sync/push"))
        .bearer_auth(&device.access)
        .header("X-Organization-ID", &device.organization_id)
        .header("X-Mobile-Device-Id", &device.id)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await?;
    let status = r.status().as_u16();
    let bytes = r.bytes().await?;
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| json!({ "unparsed": String::from_utf8_lossy(&bytes) }));
    Ok((status, body))
}

// ---------------------------------------------------------------------------------------------
// The checks.

/// Every answer the client got: each op applied exactly once, and a resend under the same key
/// answered the first answer again.
fn check_answers(plan: &Plan, answers: &[Vec<Value>], seed: u64) {
    for (i, (batch, answers)) in plan.batches.iter().zip(answers).enumerate() {
        assert!(
            !answers.is_empty(),
            "batch {i} was never answered (seed {seed})"
        );
        for (k, answer) in answers.iter().enumerate() {
            let results = answer["data"]["results"]
                .as_array()
                .unwrap_or_else(|| panic!("batch {i}, answer {k}: no results: {answer}"));
            let ids: Vec<&str> = results.iter().filter_map(|r| r["op_id"].as_str()).collect();
            assert_eq!(
                ids, batch.op_ids,
                "batch {i}, answer {k}: the results do not name the ops in order (seed {seed})"
            );
            for r in results {
                let ok = r["status"] == "applied"
                    || (r["status"] == "duplicate" && r["original_status"] == "applied");
                assert!(
                    ok,
                    "batch {i}, answer {k}: op {} was not applied: {r} (seed {seed})",
                    r["op_id"]
                );
            }
            if k > 0 {
                assert!(
                    answer["meta"]["idempotent"] == true && answer["data"] == answers[0]["data"],
                    "batch {i} resent under its own key did not answer its first answer again \
                     (meta.idempotent: {}): first {}, now {} (seed {seed})",
                    answer["meta"]["idempotent"],
                    answers[0]["data"],
                    answer["data"]
                );
            }
        }
    }
}

/// What the running hub holds: every op once, the stock, the transactions, a delta pull.
async fn check_state(http: &reqwest::Client, creds: &Creds, setup: &Setup, plan: &Plan, seed: u64) {
    let base = &creds.base_url;
    // Every batch again, under fresh keys: every op is a duplicate of an applied one.
    for (i, batch) in plan.batches.iter().enumerate() {
        let key = format!("crash-resend-{}", uuid_simple());
        let (status, body) = push_keyed(http, base, &setup.device, &key, &batch.body)
            .await
            .expect("the final resend");
        assert_eq!(status, 200, "final resend of batch {i}: {body}");
        let results = body["data"]["results"].as_array().unwrap();
        assert_eq!(
            results.len(),
            batch.op_ids.len(),
            "final resend of batch {i}: {body}"
        );
        for (r, op_id) in results.iter().zip(&batch.op_ids) {
            assert!(
                r["op_id"] == op_id.as_str()
                    && r["status"] == "duplicate"
                    && r["original_status"] == "applied",
                "final resend of batch {i}: op {op_id} answered {r} (seed {seed})"
            );
        }
    }

    let api_get = |path: &str, query: Vec<(&str, String)>| {
        let query: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{k}={}", percent_encode(v)))
            .collect();
        let request = http
            .get(format!("{base}{path}?{}", query.join("&")))
            .header("X-API-Key", &creds.api_key)
            .header("X-Organization-ID", &creds.organization_id);
        async move {
            let r = request.send().await.expect("GET");
            let status = r.status().as_u16();
            let body: Value = r.json().await.expect("a JSON body");
            assert_eq!(status, 200, "GET: {body}");
            body
        }
    };

    // The stock: the sum of the planned quantities, exactly.
    let body = api_get(
        &format!("/v1/locations/{}/inventory", setup.location),
        vec![],
    )
    .await;
    let level = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["product_id"] == setup.product.as_str())
        .unwrap_or_else(|| panic!("no stock level for the product: {body}"));
    let on_hand = level["on_hand"].as_str().unwrap();
    assert_eq!(
        decimal(on_hand),
        plan.total.to_string(),
        "on hand is {on_hand}, the {} planned ops receive {} (seed {seed})",
        plan.ops(),
        plan.total
    );

    // The transactions: every planned op once, with its quantity.
    let mut seen: HashMap<String, usize> = HashMap::new();
    for page in 1.. {
        let body = api_get(
            "/v1/inventory/transactions",
            vec![
                ("product_id", setup.product.clone()),
                ("pageSize", "200".into()),
                ("page", page.to_string()),
            ],
        )
        .await;
        let pagination = &body["meta"]["pagination"];
        assert_eq!(
            pagination["total"].as_u64(),
            Some(plan.ops() as u64),
            "transactions of the product: total {} for {} planned ops (seed {seed})",
            pagination["total"],
            plan.ops()
        );
        for t in body["data"].as_array().unwrap() {
            let op_id = t["op_id"].as_str().unwrap_or("").to_owned();
            let qty = plan
                .qty
                .get(&op_id)
                .unwrap_or_else(|| panic!("a transaction of no planned op: {t}"));
            assert_eq!(
                decimal(t["quantity"]["value"].as_str().unwrap()),
                qty.to_string(),
                "transaction {t} of op {op_id}: planned {qty}"
            );
            *seen.entry(op_id).or_default() += 1;
        }
        if pagination["hasMore"] != true {
            break;
        }
        assert!(page < 10_000, "transaction pages never end");
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "ops with more than one transaction: {twice:?} (seed {seed})"
    );
    assert_eq!(
        seen.len(),
        plan.ops(),
        "{} of {} planned ops have a transaction (seed {seed})",
        seen.len(),
        plan.ops()
    );

    // A whole delta pull, to its last page.
    let mut token: Option<String> = None;
    for page in 1.. {
        let mut query = vec![("limit", "500".to_owned())];
        if let Some(t) = &token {
            query.push(("since_token", t.clone()));
        }
        let body = api_get("/v1/inventory/delta", query).await;
        let meta = &body["meta"];
        if meta["has_more"] == false {
            assert!(
                meta["checksum"].is_string(),
                "the last delta page has no checksum: {meta}"
            );
            break;
        }
        token = Some(
            meta["next_sync_token"]
                .as_str()
                .unwrap_or_else(|| panic!("a delta page without next_sync_token: {meta}"))
                .to_owned(),
        );
        assert!(page < 10_000, "delta pages never end");
    }
}

/// The database file as the last kill left it (with its WAL), read-only.
fn check_file(db: &Path, seed: u64) {
    use rusqlite::{Connection, OpenFlags};
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap_or_else(|e| panic!("open {} read-only: {e}", db.display()));
    let integrity: Vec<String> = conn
        .prepare("PRAGMA integrity_check")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(integrity, ["ok"], "integrity_check of hub.db (seed {seed})");
    let dangling: Vec<(String, i64)> = conn
        .prepare("PRAGMA foreign_key_check")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(
        dangling.is_empty(),
        "foreign_key_check of hub.db (seed {seed}): (table, rowid) {dangling:?}"
    );
}

/// A decimal string without trailing zeros (`"12.5000"` → `"12.5"`, `"7.0"` → `"7"`).
fn decimal(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s.to_owned()
    }
}

// ---------------------------------------------------------------------------------------------
// Small things.

/// A query-string value (reqwest's `query` needs a feature the workspace does not enable).
fn percent_encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn uuid_simple() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

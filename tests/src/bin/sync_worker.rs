//! `sync-worker DB HUB_URL ENROLLMENT_KEY [--ops N] [--batch B] [--pull-limit L] [--no-sync]
//! [--seed S] [--max-rounds R] [--synchronous full|normal]`: a handheld that syncs, for the sync
//! kill tests.
//!
//! It opens the node at `DB` (synchronous = FULL unless told otherwise; a SIGKILL loses nothing
//! either way, only a power cut tells them apart) and, each step only if it is not done yet
//! (a kill may have cut the previous run short anywhere):
//!
//! 1. enrolls with the hub when it has no credentials. Repeating it is safe: a device row left
//!    by an enroll killed before it saved its credentials keeps its id and enrolls again; an
//!    enroll the hub committed but the device never heard of only leaves an unused device at
//!    the hub;
//! 2. sets up locations `A` and `B` and the product `SYNC-1`;
//! 3. with `--ops N`, records movements offline until the outbox holds `N` of them (receipts,
//!    shipments, transfers, adjustments, counts; each the device's view can cover, so the hub,
//!    which sees the same ops in the same order, accepts them all);
//! 4. unless `--no-sync`, runs `sync_now()` rounds, pushing `B` ops per request (default 20, so
//!    a kill often lands mid-push) and pulling pages of `L` changes (default 1000), until no op
//!    is pending (at most `R` rounds, default 20).
//!
//! Output, one line per event, flushed at once (a line cut by a kill was not said):
//!
//! * `enrolled <device_id>`: this run enrolled the device;
//! * `ready <device_id>`: the device, its locations and its product exist;
//! * `recorded <op_id>`: `record` returned, the op is durable in the outbox;
//! * `refused <rule>`: the device's own rules said no, nothing was written;
//! * `batch pushed=<n>`: a push request was answered and its answers recorded (`n` ops sent
//!   so far in this round);
//! * `round pushed=… applied=… duplicates=… rejected=… parked=… pulled=… pages=…
//!   checksum=ok|mismatch|none repaired=true|false pending=…`: one `sync_now` returned;
//! * `done`: the run's work is done (when it syncs: nothing is pending).
//!
//! Exit status: 0 done; 2 usage; 3 local failure (open, setup, record); 4 the hub could not be
//! reached or failed (5xx, timeout: worth retrying); 5 the hub refused the credentials or the
//! enrollment key; 6 the hub refused a request otherwise; 7 ops still pending after `R` rounds.
//! The message goes to stderr.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use stocksync_model::decimal::SCALE;
use stocksync_model::{Decimal, NewProduct, ReasonCode, Uom};
use stocksync_node::{
    DeviceRole, Movement, NodeError, StoreOptions, SyncConfig, SyncEvent, SyncListener, SyncNode,
    SyncReport, Synchronous,
};

const SKU: &str = "SYNC-1";
const BARCODE: &str = "0000000000024";
/// Op kinds that are movements (the others are catalog ops).
const MOVEMENT_KINDS: [&str; 4] = [
    "transaction",
    "transfer",
    "allocation",
    "allocation_release",
];

struct Args {
    db: String,
    hub_url: String,
    enrollment_key: String,
    ops: u64,
    batch: usize,
    pull_limit: u32,
    sync: bool,
    synchronous: Synchronous,
    seed: Option<u64>,
    max_rounds: u32,
}

const USAGE: &str = "usage: sync-worker DB HUB_URL ENROLLMENT_KEY [--ops N] [--batch B] \
                     [--pull-limit L] [--no-sync] [--seed S] [--max-rounds R] \
                     [--synchronous full|normal]";

fn parse_args() -> Result<Args, String> {
    let mut positional = Vec::new();
    let mut args = Args {
        db: String::new(),
        hub_url: String::new(),
        enrollment_key: String::new(),
        ops: 0,
        batch: 20,
        pull_limit: 1000,
        sync: true,
        synchronous: Synchronous::Full,
        seed: None,
        max_rounds: 20,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| -> Result<u64, String> {
            let v = it.next().ok_or_else(|| format!("{name} needs a value"))?;
            v.parse().map_err(|e| format!("{name} {v}: {e}"))
        };
        match a.as_str() {
            "--ops" => args.ops = value("--ops")?,
            "--batch" => {
                args.batch = usize::try_from(value("--batch")?)
                    .ok()
                    .filter(|b| (1..=1000).contains(b))
                    .ok_or("--batch must be 1 to 1000")?;
            }
            "--pull-limit" => {
                args.pull_limit = u32::try_from(value("--pull-limit")?)
                    .ok()
                    .filter(|l| (1..=1000).contains(l))
                    .ok_or("--pull-limit must be 1 to 1000")?;
            }
            "--seed" => args.seed = Some(value("--seed")?),
            "--max-rounds" => {
                args.max_rounds = u32::try_from(value("--max-rounds")?)
                    .ok()
                    .filter(|r| *r > 0)
                    .ok_or("--max-rounds must be 1 or more")?;
            }
            "--no-sync" => args.sync = false,
            "--synchronous" => {
                args.synchronous = it.next().ok_or("--synchronous needs a value")?.parse()?;
            }
            flag if flag.starts_with("--") => return Err(format!("unknown option {flag}")),
            _ => positional.push(a),
        }
    }
    let [db, hub_url, enrollment_key] = <[String; 3]>::try_from(positional)
        .map_err(|p| format!("3 arguments expected, {} given", p.len()))?;
    args.db = db;
    args.hub_url = hub_url;
    args.enrollment_key = enrollment_key;
    Ok(args)
}

/// A failure, with the exit status it maps to.
struct Failure {
    status: u8,
    message: String,
}

fn local(what: &str) -> impl FnOnce(NodeError) -> Failure + '_ {
    move |e| Failure {
        status: 3,
        message: format!("{what}: {e}"),
    }
}

fn from_sync(what: &str, e: NodeError) -> Failure {
    let status = match &e {
        NodeError::Offline { .. } => 4,
        NodeError::AuthRequired { .. } => 5,
        NodeError::Hub { .. } => 6,
        _ => 3,
    };
    Failure {
        status,
        message: format!("{what}: {e}"),
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("sync-worker: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sync-worker: tokio runtime: {e}");
            return ExitCode::from(3);
        }
    };
    match runtime.block_on(run(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("sync-worker: {}", f.message);
            ExitCode::from(f.status)
        }
    }
}

async fn run(args: &Args) -> Result<(), Failure> {
    let config = SyncConfig {
        push_batch: args.batch,
        pull_limit: args.pull_limit,
        // No WebSocket: rounds only.
        channels: Vec::new(),
        ..SyncConfig::default()
    };
    let options = StoreOptions {
        synchronous: args.synchronous,
        ..StoreOptions::default()
    };
    let node = SyncNode::open_with(&args.db, &options, config).map_err(local("open"))?;

    if !node.status().map_err(local("status"))?.enrolled {
        let device = node
            .enroll(
                &args.hub_url,
                &args.enrollment_key,
                DeviceRole::Handheld,
                "sync worker",
            )
            .await
            .map_err(|e| from_sync("enroll", e))?;
        say(&format!("enrolled {}", device.device_id))?;
    }
    setup(&node).map_err(local("setup"))?;
    let device = node.device().map_err(local("device"))?;
    say(&format!("ready {}", device.device_id))?;

    if args.ops > 0 {
        record(&node, args)?;
    }
    if !args.sync {
        say("done")?;
        return Ok(());
    }

    let _listener = node.add_listener(Arc::new(Batches));
    for _ in 0..args.max_rounds {
        let report = node
            .sync_now()
            .await
            .map_err(|e| from_sync("sync_now", e))?;
        let pending = node.status().map_err(local("status"))?.pending;
        say(&round_line(&report, pending))?;
        if pending == 0 {
            say("done")?;
            return Ok(());
        }
    }
    Err(Failure {
        status: 7,
        message: format!("ops still pending after {} rounds", args.max_rounds),
    })
}

fn round_line(r: &SyncReport, pending: u64) -> String {
    let checksum = match r.checksum_ok {
        Some(true) => "ok",
        Some(false) => "mismatch",
        None => "none",
    };
    format!(
        "round pushed={} applied={} duplicates={} rejected={} parked={} pulled={} pages={} \
         checksum={checksum} repaired={} pending={pending}",
        r.pushed, r.applied, r.duplicates, r.rejected, r.parked, r.pulled, r.pages, r.repaired
    )
}

/// Prints a line per answered push request.
struct Batches;

impl SyncListener for Batches {
    fn on_event(&self, event: &SyncEvent) {
        if let SyncEvent::Progress { progress } = event
            && progress.phase == "push"
        {
            // A failed write to stdout means the test is gone; the round goes on regardless.
            let _ = say(&format!("batch pushed={}", progress.pushed));
        }
    }
}

/// Creates whatever of the two locations and the product is missing.
fn setup(node: &SyncNode) -> Result<(), NodeError> {
    for (code, name) in [("A", "Aisle A"), ("B", "Aisle B")] {
        match node.location(code) {
            Ok(_) => {}
            Err(NodeError::NotFound { .. }) => {
                node.add_location(code, name)?;
            }
            Err(e) => return Err(e),
        }
    }
    match node.find_product(SKU) {
        Ok(_) => {}
        Err(NodeError::NotFound { .. }) => {
            let mut product = NewProduct::new(SKU, "Sync test widget");
            product.barcode = Some(BARCODE.into());
            product.uom = Uom::Each;
            node.add_product(&product)?;
        }
        Err(e) => return Err(e),
    }
    Ok(())
}

/// Records movements until the outbox holds `args.ops` of them.
fn record(node: &SyncNode, args: &Args) -> Result<(), Failure> {
    let have = node
        .outbox()
        .map_err(local("outbox"))?
        .iter()
        .filter(|o| MOVEMENT_KINDS.contains(&o.kind.as_str()))
        .count() as u64;
    let mut rng = XorShift::new(args.seed.unwrap_or_else(clock_seed) ^ have);
    let mut left = args.ops.saturating_sub(have);
    while left > 0 {
        let movement = next_movement(node, &mut rng)?;
        match node.record(&movement) {
            Ok(recorded) => {
                left -= 1;
                say(&format!("recorded {}", recorded.op_id))?;
            }
            Err(NodeError::Rule { rule, .. }) => say(&format!("refused {rule}"))?,
            Err(e) => {
                return Err(Failure {
                    status: 3,
                    message: format!("record {movement:?}: {e}"),
                });
            }
        }
    }
    Ok(())
}

/// Mostly receipts; shipments and transfers only of what the view shows (a device that ships
/// what it does not have is refused locally, which the test does not need), adjustments both
/// ways, counts near what is shown.
fn next_movement(node: &SyncNode, rng: &mut XorShift) -> Result<Movement, Failure> {
    let at_a = on_hand(node, "A")?;
    let at_b = on_hand(node, "B")?;
    let receive = |rng: &mut XorShift| Movement::Receive {
        product: BARCODE.to_owned(),
        location: "A".into(),
        quantity: units(1 + rng.below(5) as i64),
        uom: None,
        unit_cost: None,
        reference: Some(format!("PO-{}", rng.below(10_000))),
    };
    Ok(match rng.below(100) {
        0..=34 => receive(rng),
        35..=54 if at_a > 0 => Movement::Ship {
            product: SKU.to_owned(),
            location: "A".into(),
            quantity: units(1 + rng.below(at_a.min(3) as u64) as i64),
            uom: None,
            reference: Some(format!("SO-{}", rng.below(10_000))),
        },
        55..=74 if at_a > 0 => Movement::Transfer {
            product: SKU.to_owned(),
            from: "A".into(),
            to: "B".into(),
            quantity: units(1 + rng.below(at_a.min(2) as u64) as i64),
            uom: None,
        },
        75..=86 => {
            let location = if rng.below(2) == 0 { "A" } else { "B" };
            let shown = if location == "A" { at_a } else { at_b };
            let up = shown == 0 || rng.below(2) == 0;
            Movement::Adjust {
                product: SKU.to_owned(),
                location: location.into(),
                delta: units(if up { 1 } else { -1 }),
                uom: None,
                reason: if up {
                    ReasonCode::Found
                } else {
                    ReasonCode::Damage
                },
            }
        }
        87..=99 => Movement::Count {
            product: SKU.to_owned(),
            location: "B".into(),
            counted: units((at_b + rng.below(3) as i64 - 1).max(0)),
            uom: None,
        },
        _ => receive(rng),
    })
}

/// Whole units on hand at `location`, as the device shows them.
fn on_hand(node: &SyncNode, location: &str) -> Result<i64, Failure> {
    let rows = node
        .stock(Some(SKU), Some(location))
        .map_err(local("stock"))?;
    Ok(rows
        .first()
        .map_or(0, |r| r.on_hand.scaled() / 10_i64.pow(SCALE)))
}

fn units(n: i64) -> Decimal {
    Decimal::from_scaled(n * 10_i64.pow(SCALE))
}

/// Writes one line to stdout and flushes it.
fn say(line: &str) -> Result<(), Failure> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|e| Failure {
            status: 3,
            message: format!("stdout: {e}"),
        })
}

fn clock_seed() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32)
}

/// xorshift64*: deterministic per seed.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> XorShift {
        XorShift((seed ^ 0x9E37_79B9_7F4A_7C15).max(1))
    }

    fn below(&mut self, n: u64) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

//! Crash safety of the offline node: a handheld may lose power at any instant.
//!
//! `crash-writer` records movements into one SQLite file as fast as it can and reports each
//! finished commit on stdout. This test SIGKILLs it after a random 5–120 ms (the first runs
//! sooner, so some kills land in the middle of setting the device up), restarts it on the same
//! file, and repeats. After every kill it copies the file (database and WAL as the dead process
//! left them; the original keeps its hot WAL for the next writer to recover) and checks the copy
//! with plain SQL, not through the store:
//!
//! * `PRAGMA integrity_check` is `ok` and no foreign key dangles;
//! * every op reported `done` is in the outbox and has its ledger legs (nothing lost);
//! * every op and leg seen at the previous check is still there, unchanged (nothing rolled back);
//! * every ledger op has exactly one outbox op of the matching kind, a transfer has exactly two
//!   legs that cancel out, the others one (nothing half-written, nothing doubled);
//! * the stock view equals the ledger's sums (no stock row without legs unless all zero, no
//!   negative on hand), and the ledger's allocated equals the open allocations' total;
//! * the outbox's `device_seq` runs 1..=max with no gap (the next op takes max + 1);
//! * every location and product has its create op.
//!
//! At the end the node itself opens the original file and its `check()` must find nothing, and
//! at least 20 writes must have been confirmed. A second test checks that a writer on a fresh
//! file gets through setup at all, which the kill loop cannot tell from a slow start.
//!
//! `STOCKSYNC_CRASH_KILLS` (default 25) sets the number of kills; `STOCKSYNC_CRASH_SEED` replays
//! a run's kill schedule (the writer picks its movements from its own clock).

// A test: a failed step is a failed test, with the message saying which.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use rusqlite::Connection;
use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};
use stocksync_node::{StoreOptions, SyncNode};
use support::{XorShift, clock_seed, env_u64};

const WRITER: &str = env!("CARGO_BIN_EXE_crash-writer");
const DB: &str = "node.db";

#[test]
fn sigkill_at_any_instant_loses_nothing_and_half_writes_nothing() {
    let seed = env_u64("STOCKSYNC_CRASH_SEED").unwrap_or_else(clock_seed);
    let kills = env_u64("STOCKSYNC_CRASH_KILLS").unwrap_or(25);
    println!("crash test: {kills} kills, seed {seed} (replay with STOCKSYNC_CRASH_SEED={seed})");
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join(DB);
    let check_dir = dir.path().join("check");
    std::fs::create_dir(&check_dir).expect("check dir");
    let reported = Arc::new(Mutex::new(Reported::default()));
    let mut checker = Checker::new(check_dir);
    let mut rng = XorShift::new(seed);
    let mut ever_ready = false;
    // For each kill before `ready`: when, and what setup had committed by then.
    let mut setup_kills = Vec::new();
    let mut check_time = Duration::ZERO;
    let mut totals = Totals::default();
    let started = Instant::now();

    for kill in 1..=kills {
        // Until one run has finished setting up (about 6 ms from spawn), kill within a bound
        // that grows by 1.5 ms a run: those kills land in exec, open, migrations, init and the
        // catalog writes, each run resuming the setup the previous one cut short.
        let delay = Duration::from_micros(if ever_ready {
            5_000 + rng.below(115_001)
        } else {
            rng.below(1_000 + 1_500 * kill)
        });
        let writer = Writer::spawn(&db, &reported);
        thread::sleep(delay);
        let run = writer.kill(&format!("kill {kill} (after {delay:?}, seed {seed})"));
        ever_ready |= run.ready;

        let t = Instant::now();
        let (found, problems) = checker.check(&db, &reported.lock().unwrap());
        check_time += t.elapsed();
        assert!(
            problems.is_empty(),
            "after kill {kill} of {kills} ({delay:?} in; replay with STOCKSYNC_CRASH_SEED={seed}) \
             the file has {} problem(s):\n  {}",
            problems.len(),
            problems.join("\n  ")
        );
        totals = found;
        if !run.ready {
            let (devices, locations, products) = found.setup;
            setup_kills.push(format!(
                "{delay:?}: {devices} device, {locations} locations, {products} product"
            ));
        }
    }

    // The node itself, on the original file (the WAL as the last kill left it).
    let node = SyncNode::open(&db, &StoreOptions::default()).expect("the node opens the file");
    let problems = node.check().expect("node.check() runs");
    assert!(
        problems.is_empty(),
        "the node's own check after {kills} kills (seed {seed}) found: {problems:?}"
    );
    let outbox = node.outbox().expect("node.outbox()").len();
    assert_eq!(
        outbox, totals.ops,
        "the node sees {outbox} outbox ops in the original file, the checked copy had {} \
         (seed {seed})",
        totals.ops
    );
    drop(node);

    let reported = reported.lock().unwrap();
    println!(
        "crash test: {kills} kills ({} before setup finished: {setup_kills:?}) in {:.1} s \
         (checks {:.1} s); {} writes confirmed, {} ops in the outbox ({} transfers), {} ledger \
         legs, refused {:?}",
        setup_kills.len(),
        started.elapsed().as_secs_f64(),
        check_time.as_secs_f64(),
        reported.done.len(),
        totals.ops,
        totals.transfers,
        totals.legs,
        reported.refused,
    );
    assert!(
        reported.done.len() >= 20,
        "only {} writes were confirmed over {kills} runs (seed {seed}): the writer barely wrote, \
         the test proves nothing",
        reported.done.len()
    );
    assert!(
        totals.transfers > 0,
        "no transfer was recorded (seed {seed}): two-leg writes were not exercised"
    );
}

/// Not a crash: a writer started on a fresh file must get through setup and start writing.
/// (The crash test alone would not notice a setup call that commits and then hangs, since the
/// next run finds the work done.)
#[test]
fn writer_on_a_fresh_file_sets_up_and_writes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join(DB);
    let reported = Arc::new(Mutex::new(Reported::default()));
    let writer = Writer::spawn(&db, &reported);
    let deadline = Instant::now() + Duration::from_secs(20);
    let progressed = || {
        let r = reported.lock().unwrap();
        r.ready_runs > 0 && r.done.len() >= 5
    };
    while !progressed() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    let ok = progressed();
    let run = writer.kill("fresh-file run");
    if !ok {
        let copy = dir.path().join("copy.db");
        copy_db(&db, &copy);
        let conn = Connection::open(&copy).expect("open the copy");
        let count = |table: &str| -> i64 {
            conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
                .unwrap_or(-1)
        };
        panic!(
            "the writer made no progress in 20 s on a fresh file (ready: {}, {} writes done); \
             the file holds {} device row(s), {} location(s), {} product(s), {} outbox op(s): \
             a setup call committed and never returned? stderr: {:?}",
            run.ready,
            reported.lock().unwrap().done.len(),
            count("device"),
            count("locations"),
            count("products"),
            count("outbox"),
            run.stderr,
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The writer process.

/// What the writers have reported on stdout, over all runs.
#[derive(Default)]
struct Reported {
    /// `done` (op id, movement id), in the order reported.
    done: Vec<(String, String)>,
    /// The op ids in `done`.
    done_ids: HashSet<String>,
    /// Op ids reported `done` twice.
    doubled: Vec<String>,
    /// `refused` rule → how many.
    refused: BTreeMap<String, usize>,
    /// Runs that printed `ready`.
    ready_runs: usize,
    /// Lines that are none of the above.
    garbage: Vec<String>,
}

struct Writer {
    child: Child,
    stdout: JoinHandle<bool>,
    stderr: JoinHandle<String>,
}

struct Run {
    ready: bool,
    stderr: String,
}

impl Writer {
    fn spawn(db: &Path, reported: &Arc<Mutex<Reported>>) -> Writer {
        let mut child = Command::new(WRITER)
            .arg(db)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn crash-writer");
        let out = child.stdout.take().expect("piped stdout");
        let mut err = child.stderr.take().expect("piped stderr");
        let reported = Arc::clone(reported);
        let stdout = thread::spawn(move || read_reports(out, &reported));
        let stderr = thread::spawn(move || {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text);
            text
        });
        Writer {
            child,
            stdout,
            stderr,
        }
    }

    /// SIGKILLs the writer (it must still be running: it only stops by dying) and collects
    /// what it said.
    fn kill(mut self, what: &str) -> Run {
        let exited = self.child.try_wait().expect("try_wait");
        let _ = self.child.kill();
        let status = self.child.wait().expect("wait for crash-writer");
        let ready = self.stdout.join().expect("stdout reader");
        let stderr = self.stderr.join().expect("stderr reader");
        assert!(
            exited.is_none() && killed(status),
            "{what}: the writer stopped by itself ({}) before it was killed; stderr: {stderr}",
            exited.unwrap_or(status)
        );
        Run { ready, stderr }
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

/// Reads the writer's stdout to its end; returns whether it printed `ready`. Only whole lines
/// count: a line cut by the kill was not reported.
fn read_reports(out: impl Read, reported: &Mutex<Reported>) -> bool {
    let mut out = BufReader::new(out);
    let mut ready = false;
    let mut line = Vec::new();
    loop {
        line.clear();
        match out.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return ready,
            Ok(_) if line.last() != Some(&b'\n') => return ready,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
        let words: Vec<&str> = text.split(' ').collect();
        let mut r = reported.lock().unwrap();
        match words.as_slice() {
            ["ready"] => {
                ready = true;
                r.ready_runs += 1;
            }
            ["done", op_id, movement_id] => {
                if r.done_ids.insert((*op_id).to_owned()) {
                    r.done
                        .push(((*op_id).to_owned(), (*movement_id).to_owned()));
                } else {
                    r.doubled.push((*op_id).to_owned());
                }
            }
            ["refused", rule] => *r.refused.entry((*rule).to_owned()).or_default() += 1,
            _ => r.garbage.push(text),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Checking the file.

/// What the last check counted.
#[derive(Clone, Copy, Default)]
struct Totals {
    ops: usize,
    legs: usize,
    transfers: usize,
    /// Device rows, locations, products: how far setup got.
    setup: (i64, usize, usize),
}

/// Checks copies of the database with plain SQL. Its own connection is an in-memory database
/// holding the ops reported `done`; the copy taken after this kill is attached as `n`, the copy
/// taken after the previous kill as `p`, so every check is a join that SQLite runs at C speed.
struct Checker {
    dir: PathBuf,
    conn: Connection,
    /// How many of `Reported::done` are in the `done` table.
    loaded: usize,
}

/// Show at most this many offenders per check.
const SHOW: usize = 10;

impl Checker {
    fn new(dir: PathBuf) -> Checker {
        let conn = Connection::open_in_memory().expect("in-memory database");
        conn.execute_batch("CREATE TABLE done (op_id TEXT PRIMARY KEY, movement_id TEXT NOT NULL)")
            .expect("done table");
        Checker {
            dir,
            conn,
            loaded: 0,
        }
    }

    /// Copies the database files as the killed writer left them (the original keeps its hot WAL
    /// for the next writer to recover) and checks the copy. Returns what it counted and the
    /// problems found.
    fn check(&mut self, db: &Path, reported: &Reported) -> (Totals, Vec<String>) {
        let mut problems = Vec::new();
        for op in &reported.doubled {
            problems.push(format!("DOUBLED: op {op} was reported done twice"));
        }
        for line in &reported.garbage {
            problems.push(format!("the writer printed an unexpected line: {line:?}"));
        }
        self.load(reported);
        if !db.exists() {
            if !reported.done.is_empty() {
                problems.push(format!(
                    "LOST: the database file is gone, {} writes were reported done",
                    reported.done.len()
                ));
            }
            return (Totals::default(), problems);
        }
        let now = self.dir.join("now.db");
        let prev = self.dir.join("prev.db");
        copy_db(db, &now);
        self.conn
            .execute("ATTACH ?1 AS n", [now.to_string_lossy()])
            .expect("attach this copy");
        self.conn
            .execute("ATTACH ?1 AS p", [prev.to_string_lossy()])
            .expect("attach the previous copy");
        let totals = self.run_checks(reported, &mut problems);
        self.conn
            .execute_batch("DETACH n; DETACH p;")
            .expect("detach the copies");
        // This copy is the next check's `p`.
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let _ = std::fs::remove_file(with_suffix(&prev, suffix));
        }
        for suffix in ["", "-wal"] {
            if with_suffix(&now, suffix).exists() {
                std::fs::rename(with_suffix(&now, suffix), with_suffix(&prev, suffix))
                    .expect("keep the copy for the next check");
            }
        }
        let _ = std::fs::remove_file(with_suffix(&now, "-shm"));
        (totals, problems)
    }

    /// Adds the ops reported since the last check to the `done` table.
    fn load(&mut self, reported: &Reported) {
        let tx = self.conn.transaction().expect("begin");
        {
            let mut insert = tx
                .prepare("INSERT OR IGNORE INTO done (op_id, movement_id) VALUES (?1, ?2)")
                .expect("prepare insert");
            for (op, movement) in &reported.done[self.loaded..] {
                insert.execute([op, movement]).expect("insert a done op");
            }
        }
        tx.commit().expect("commit");
        self.loaded = reported.done.len();
    }

    fn run_checks(&self, reported: &Reported, problems: &mut Vec<String>) -> Totals {
        let conn = &self.conn;
        // The file itself.
        let integrity: Vec<String> = rows(conn, "PRAGMA n.integrity_check", |r| r.get(0));
        if integrity != ["ok"] {
            problems.push(format!("CORRUPT: integrity_check says {integrity:?}"));
        }
        let dangling: Vec<String> = rows(conn, "PRAGMA n.foreign_key_check", |r| r.get(0));
        if !dangling.is_empty() {
            problems.push(format!(
                "foreign keys dangle in {dangling:?} (foreign_key_check)"
            ));
        }
        // A kill before the first migration committed leaves a file without the schema.
        let has = |schema: &str, table: &str| -> bool {
            one(
                conn,
                &format!(
                    "SELECT count(*) FROM {schema}.sqlite_schema WHERE type = 'table' AND name = '{table}'"
                ),
            ) > 0
        };
        let prev_ops = if has("p", "outbox") {
            one(conn, "SELECT count(*) FROM p.outbox")
        } else {
            0
        };
        // The newest migration's table: its presence means the schema is complete.
        if !has("n", "sync_state") {
            if !reported.done.is_empty() || prev_ops > 0 {
                problems.push(format!(
                    "LOST: the schema is incomplete, {} writes were reported done and {prev_ops} \
                     ops were there at the previous check",
                    reported.done.len()
                ));
            }
            return Totals::default();
        }

        // Nothing reported done is lost.
        offenders(
            conn,
            problems,
            "SELECT d.op_id, d.movement_id, o.device_seq,
                    (SELECT count(*) FROM n.ledger g WHERE g.op_id = d.op_id),
                    (SELECT group_concat(DISTINCT g.movement_id) FROM n.ledger g
                     WHERE g.op_id = d.op_id)
             FROM main.done d LEFT JOIN n.outbox o ON o.op_id = d.op_id
             WHERE o.op_id IS NULL
                OR NOT EXISTS (SELECT 1 FROM n.ledger g WHERE g.op_id = d.op_id)
                OR EXISTS (SELECT 1 FROM n.ledger g
                           WHERE g.op_id = d.op_id AND g.movement_id != d.movement_id)",
            |r| {
                let (op, movement): (String, String) = (r.get(0)?, r.get(1)?);
                let seq: Option<i64> = r.get(2)?;
                let legs: i64 = r.get(3)?;
                let ledger_movements: Option<String> = r.get(4)?;
                Ok(match (seq, legs) {
                    (None, 0) => format!(
                        "LOST: op {op} (movement {movement}) was reported done but is neither in \
                         the outbox nor in the ledger"
                    ),
                    (None, _) => format!(
                        "LOST: op {op} (movement {movement}) was reported done; its {legs} ledger \
                         leg(s) are there but its outbox op is not (it would never reach the hub)"
                    ),
                    (Some(seq), 0) => format!(
                        "LOST: op {op} (device_seq {seq}, movement {movement}) was reported done; \
                         it is in the outbox but has no ledger legs"
                    ),
                    (Some(_), _) => format!(
                        "op {op} was reported done as movement {movement}, the ledger has it as \
                         {ledger_movements:?}"
                    ),
                })
            },
        );

        // Nothing committed at the previous check is rolled back or rewritten.
        if prev_ops > 0 {
            offenders(
                conn,
                problems,
                "SELECT q.device_seq, q.op_id, q.kind, o.op_id FROM p.outbox q
                 LEFT JOIN n.outbox o ON o.device_seq = q.device_seq
                 WHERE o.op_id IS NOT q.op_id OR o.kind IS NOT q.kind OR o.body IS NOT q.body
                    OR o.hlc IS NOT q.hlc",
                |r| {
                    let (seq, op, kind): (i64, String, String) = (r.get(0)?, r.get(1)?, r.get(2)?);
                    Ok(match r.get::<_, Option<String>>(3)? {
                        None => format!(
                            "LOST: outbox op {op} ({kind}, device_seq {seq}) was there at the \
                             previous check and is gone now"
                        ),
                        Some(now) if now != op => {
                            format!("REWRITTEN: device_seq {seq} was op {op}, is now op {now}")
                        }
                        Some(_) => format!("REWRITTEN: outbox op {op} (device_seq {seq}) changed"),
                    })
                },
            );
            offenders(
                conn,
                problems,
                "SELECT q.op_id, q.leg, q.kind, g.op_id IS NULL FROM p.ledger q
                 LEFT JOIN n.ledger g ON g.op_id = q.op_id AND g.leg = q.leg
                 WHERE g.op_id IS NULL OR g.seq IS NOT q.seq OR g.movement_id IS NOT q.movement_id
                    OR g.kind IS NOT q.kind OR g.product_id IS NOT q.product_id
                    OR g.location_id IS NOT q.location_id
                    OR g.on_hand_delta IS NOT q.on_hand_delta
                    OR g.allocated_delta IS NOT q.allocated_delta",
                |r| {
                    let (op, leg, kind): (String, i64, String) = (r.get(0)?, r.get(1)?, r.get(2)?);
                    Ok(if r.get(3)? {
                        format!(
                            "LOST: leg {leg} of {kind} op {op} was there at the previous check \
                             and is gone now"
                        )
                    } else {
                        format!("REWRITTEN: leg {leg} of {kind} op {op} changed")
                    })
                },
            );
            offenders(
                conn,
                problems,
                "SELECT 'location ' || code FROM p.locations
                 WHERE id NOT IN (SELECT id FROM n.locations)
                 UNION ALL SELECT 'product ' || sku FROM p.products
                 WHERE id NOT IN (SELECT id FROM n.products)
                 UNION ALL SELECT 'device ' || q.device_id FROM p.device q
                 WHERE q.device_id IS NOT (SELECT device_id FROM n.device)",
                |r| {
                    Ok(format!(
                        "LOST: {} was there at the previous check and is gone (or changed) now",
                        r.get::<_, String>(0)?
                    ))
                },
            );
        }

        // Each ledger op: exactly one outbox op of the matching kind, the right legs.
        offenders(
            conn,
            problems,
            "WITH ops AS (
                 SELECT op_id, min(kind) AS kind, max(kind) AS kind2, count(*) AS legs,
                        min(leg) AS lo, max(leg) AS hi, count(DISTINCT movement_id) AS movements,
                        count(DISTINCT location_id) AS places, sum(on_hand_delta) AS net,
                        sum(CASE WHEN leg = 0 THEN on_hand_delta END) AS out
                 FROM n.ledger GROUP BY op_id)
             SELECT ops.op_id, ops.kind, ops.kind2, ops.legs, ops.lo, ops.hi, ops.movements,
                    ops.net, o.kind
             FROM ops LEFT JOIN n.outbox o ON o.op_id = ops.op_id
             WHERE o.op_id IS NULL OR ops.kind != ops.kind2 OR ops.movements != 1
                OR o.kind IS NOT (CASE ops.kind
                     WHEN 'transfer' THEN 'transfer' WHEN 'allocation' THEN 'allocation'
                     WHEN 'release' THEN 'allocation_release' WHEN 'receipt' THEN 'transaction'
                     WHEN 'shipment' THEN 'transaction' WHEN 'adjustment' THEN 'transaction'
                     WHEN 'count' THEN 'transaction' END)
                OR ops.legs != (CASE ops.kind WHEN 'transfer' THEN 2 ELSE 1 END)
                OR ops.lo != 0 OR ops.hi != ops.legs - 1
                OR (ops.kind = 'transfer' AND (ops.net != 0 OR ops.places != 2 OR ops.out >= 0))",
            |r| {
                let op: String = r.get(0)?;
                let (kind, kind2): (String, String) = (r.get(1)?, r.get(2)?);
                let (legs, lo, hi): (i64, i64, i64) = (r.get(3)?, r.get(4)?, r.get(5)?);
                let (movements, net): (i64, i64) = (r.get(6)?, r.get(7)?);
                Ok(match r.get::<_, Option<String>>(8)? {
                    None => format!(
                        "HALF-WRITTEN: {kind} op {op} has {legs} ledger leg(s) but no outbox op"
                    ),
                    Some(op_kind) => format!(
                        "HALF-WRITTEN or DOUBLED: op {op}: ledger kind {kind}/{kind2}, {legs} \
                         leg(s) numbered {lo}..={hi}, {movements} movement id(s), net on-hand \
                         {net}; outbox kind {op_kind}"
                    ),
                })
            },
        );
        offenders(
            conn,
            problems,
            "SELECT o.device_seq, o.op_id, o.kind FROM n.outbox o
             WHERE o.kind IN ('transaction', 'transfer', 'allocation', 'allocation_release')
               AND NOT EXISTS (SELECT 1 FROM n.ledger g WHERE g.op_id = o.op_id)",
            |r| {
                let (seq, op, kind): (i64, String, String) = (r.get(0)?, r.get(1)?, r.get(2)?);
                Ok(format!(
                    "HALF-WRITTEN: outbox op {op} ({kind}, device_seq {seq}) has no ledger legs"
                ))
            },
        );
        let doubled_legs = one(
            conn,
            "SELECT (SELECT count(*) FROM n.ledger)
                  - (SELECT count(*) FROM (SELECT DISTINCT op_id, leg FROM n.ledger))",
        );
        let doubled_ops = one(
            conn,
            "SELECT count(*) - count(DISTINCT op_id) FROM n.outbox",
        );
        if doubled_legs != 0 || doubled_ops != 0 {
            problems.push(format!(
                "DOUBLED: {doubled_legs} ledger leg(s) and {doubled_ops} outbox op(s) repeat an \
                 op id"
            ));
        }

        // The stock view is the ledger's sums; nothing was ever synced, so all of it pending.
        offenders(
            conn,
            problems,
            "WITH sums AS (
                 SELECT product_id, location_id, sum(on_hand_delta) AS oh,
                        sum(allocated_delta) AS al
                 FROM n.ledger GROUP BY product_id, location_id),
             keys AS (SELECT product_id, location_id FROM sums
                      UNION SELECT product_id, location_id FROM n.stock)
             SELECT k.product_id, k.location_id, g.oh, g.al, s.synced_on_hand, s.pending,
                    (s.synced_allocated + s.pending_allocated)
             FROM keys k LEFT JOIN sums g USING (product_id, location_id)
                         LEFT JOIN n.stock s USING (product_id, location_id)
             WHERE coalesce(g.oh, 0) != coalesce(s.synced_on_hand, 0) + coalesce(s.pending, 0)
                OR coalesce(g.al, 0) != coalesce((s.synced_allocated + s.pending_allocated), 0)
                OR coalesce(s.synced_on_hand, 0) != 0
                OR coalesce(g.oh, 0) < 0",
            |r| {
                let (product, location): (String, String) = (r.get(0)?, r.get(1)?);
                let (oh, al): (Option<i64>, Option<i64>) = (r.get(2)?, r.get(3)?);
                let view: (Option<i64>, Option<i64>, Option<i64>) =
                    (r.get(4)?, r.get(5)?, r.get(6)?);
                Ok(format!(
                    "VIEW DRIFT at product {product}, location {location}: the ledger sums to \
                     on_hand {}, allocated {}; the stock view has synced {:?} + pending {:?}, \
                     allocated {:?} (None: no such row); on hand must not be negative and \
                     nothing was synced",
                    oh.map_or("none (no legs)".into(), |v| v.to_string()),
                    al.unwrap_or(0),
                    view.0,
                    view.1,
                    view.2
                ))
            },
        );
        let synced = one(
            conn,
            "SELECT count(*) FROM n.ledger WHERE state != 'pending'",
        );
        if synced != 0 {
            problems.push(format!(
                "{synced} ledger leg(s) are not pending, though nothing was ever synced"
            ));
        }

        // Allocations: each has its op, its release is in the ledger iff it is released, and the
        // open ones are what the ledger holds allocated.
        offenders(
            conn,
            problems,
            "WITH released AS (SELECT movement_id AS id FROM n.ledger WHERE kind = 'release')
             SELECT a.id, a.status, o.kind, a.id IN released FROM n.allocations a
             LEFT JOIN n.outbox o ON o.op_id = a.op_id
             WHERE o.kind IS NOT 'allocation' OR (a.status = 'released') != (a.id IN released)",
            |r| {
                let (id, status): (String, String) = (r.get(0)?, r.get(1)?);
                let (kind, has_release): (Option<String>, bool) = (r.get(2)?, r.get(3)?);
                Ok(format!(
                    "HALF-WRITTEN: allocation {id} is {status}, its op is {kind:?} (should be \
                     allocation), the ledger {} its release",
                    if has_release { "has" } else { "lacks" }
                ))
            },
        );
        offenders(
            conn,
            problems,
            "SELECT 'release of ' || movement_id || ' recorded by ' || count(DISTINCT op_id)
                    || ' ops' FROM n.ledger WHERE kind = 'release'
             GROUP BY movement_id HAVING count(DISTINCT op_id) > 1
             UNION ALL SELECT 'allocation op ' || op_id || ' without its allocation row'
             FROM n.outbox WHERE kind = 'allocation'
               AND op_id NOT IN (SELECT op_id FROM n.allocations)",
            |r| {
                Ok(format!(
                    "HALF-WRITTEN or DOUBLED: {}",
                    r.get::<_, String>(0)?
                ))
            },
        );
        offenders(
            conn,
            problems,
            "WITH held AS (SELECT product_id, location_id, sum(quantity) AS q FROM n.allocations
                           WHERE status = 'open' GROUP BY product_id, location_id),
                  sums AS (SELECT product_id, location_id, sum(allocated_delta) AS al
                           FROM n.ledger GROUP BY product_id, location_id),
                  keys AS (SELECT product_id, location_id FROM held
                           UNION SELECT product_id, location_id FROM sums)
             SELECT k.product_id, k.location_id, coalesce(h.q, 0), coalesce(g.al, 0)
             FROM keys k LEFT JOIN held h USING (product_id, location_id)
                         LEFT JOIN sums g USING (product_id, location_id)
             WHERE coalesce(h.q, 0) != coalesce(g.al, 0)",
            |r| {
                Ok(format!(
                    "allocations at product {}, location {}: open allocations hold {}, the \
                     ledger says {}",
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?
                ))
            },
        );

        // The device's op counter: 1..=max with no gap (the next op takes max + 1).
        let (device_rows, min_seq, max_seq, ops): (i64, i64, i64, i64) = conn
            .query_row(
                "SELECT (SELECT count(*) FROM n.device), coalesce(min(device_seq), 0),
                        coalesce(max(device_seq), 0), count(*)
                 FROM n.outbox",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .expect("seq query");
        if device_rows == 0 && ops > 0 {
            problems.push(format!(
                "the device row is gone but the outbox holds {ops} ops"
            ));
        }
        if ops > 0 && (min_seq != 1 || max_seq != ops) {
            let missing: Vec<i64> = rows(
                conn,
                "SELECT device_seq - 1 FROM n.outbox o
                 WHERE device_seq > 1
                   AND NOT EXISTS (SELECT 1 FROM n.outbox x WHERE x.device_seq = o.device_seq - 1)
                 LIMIT 10",
                |r| r.get(0),
            );
            problems.push(format!(
                "GAP: {ops} outbox ops numbered {min_seq}..={max_seq}; missing just below: \
                 {missing:?}"
            ));
        }

        // The catalog: setup is idempotent (A, then B, then one product), each with its op.
        let locations: Vec<String> =
            rows(conn, "SELECT code FROM n.locations ORDER BY code", |r| {
                r.get(0)
            });
        if locations.len() > 2 || locations.iter().zip(["A", "B"]).any(|(l, w)| l != w) {
            problems.push(format!(
                "locations are {locations:?}: expected A then B, each once"
            ));
        }
        let products: Vec<String> = rows(conn, "SELECT sku FROM n.products", |r| r.get(0));
        if products.len() > 1 || products.iter().any(|p| p != "CRASH-1") {
            problems.push(format!("products are {products:?}: expected CRASH-1 once"));
        }
        let without_op = one(
            conn,
            "SELECT (SELECT count(*) FROM n.locations l WHERE NOT EXISTS (
                         SELECT 1 FROM n.outbox o WHERE o.kind = 'location_create'
                           AND json_extract(o.body, '$.location_id') = l.id))
                  + (SELECT count(*) FROM n.products p WHERE NOT EXISTS (
                         SELECT 1 FROM n.outbox o WHERE o.kind = 'product_create'
                           AND json_extract(o.body, '$.product_id') = p.id))",
        );
        let creates = one(
            conn,
            "SELECT count(*) FROM n.outbox WHERE kind IN ('location_create', 'product_create')",
        );
        if without_op != 0 || creates != (locations.len() + products.len()) as i64 {
            problems.push(format!(
                "HALF-WRITTEN or DOUBLED catalog: {} location(s) and {} product(s), {creates} \
                 create op(s), {without_op} of them without their op",
                locations.len(),
                products.len()
            ));
        }

        Totals {
            ops: ops as usize,
            legs: one(conn, "SELECT count(*) FROM n.ledger") as usize,
            transfers: one(
                conn,
                "SELECT count(*) FROM n.outbox WHERE kind = 'transfer'",
            ) as usize,
            setup: (
                one(conn, "SELECT count(*) FROM n.device"),
                locations.len(),
                products.len(),
            ),
        }
    }
}

/// Runs a query whose rows are problems; adds the first [`SHOW`] of them, and how many more.
fn offenders(
    conn: &Connection,
    problems: &mut Vec<String>,
    sql: &str,
    f: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<String>,
) {
    let found = rows(conn, sql, f);
    let more = found.len().saturating_sub(SHOW);
    problems.extend(found.into_iter().take(SHOW));
    if more > 0 {
        problems.push(format!("… and {more} more like the above"));
    }
}

fn rows<T>(
    conn: &Connection,
    sql: &str,
    f: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Vec<T> {
    let mut stmt = conn
        .prepare(sql)
        .unwrap_or_else(|e| panic!("prepare {sql}: {e}"));
    stmt.query_map([], f)
        .and_then(|rows| rows.collect())
        .unwrap_or_else(|e| panic!("query {sql}: {e}"))
}

fn one(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("query {sql}: {e}"))
}

/// Copies a database as it is on disk (main file, WAL, rollback journal), without its shared
/// memory index, which SQLite rebuilds from the WAL.
fn copy_db(db: &Path, to: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(with_suffix(to, suffix));
    }
    for suffix in ["", "-wal", "-journal"] {
        let from = with_suffix(db, suffix);
        if from.exists() {
            std::fs::copy(&from, with_suffix(to, suffix)).expect("copy the database");
        }
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

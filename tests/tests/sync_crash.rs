//! Crash safety of sync: a device or the hub may die at any instant of a sync, and afterwards
//! every op the device recorded has taken effect at the hub exactly once, and the device's view
//! equals the hub's.
//!
//! Real hubs on real loopback sockets, real SQLite files, `sync-worker` (this crate's binary) as
//! the device process:
//!
//! * **A device SIGKILLed during its sync, again and again.** The worker sets up (enroll,
//!   locations, product) and records 2,000 mixed movements offline (receipts, shipments,
//!   transfers, adjustments, counts; synchronous FULL), killed at random instants until one run
//!   gets through setup (the bound grows 3 ms a run, like `crash.rs`) and then 3 times while
//!   recording. Then it syncs and is SIGKILLed at seeded random instants, 20 times
//!   (`SYNC_KILLS`; `scripts/soak.sh` runs 200): mostly a random fraction of a push after 1–3
//!   answered pushes, some in its start. Half the runs push 20 ops a request, the others 5–40,
//!   so a batch whose answer a kill lost is resent both as the same request (the hub replays
//!   its stored answer) and mixed differently (the hub answers `duplicate` op by op). One run
//!   completes the push; then the hub's catalog changes over REST before each of 5 more runs
//!   (`SYNC_KILLS / 4`), which pull 8 changes a page and are killed in their pull.
//! * **Enrollment cut short** (deterministic, through a TCP proxy that can hold back an
//!   answer): the hub's enrollment answer lost, then the credentials lost after the device row
//!   was written and the re-enrollment's answer lost too; the next runs enroll again (keeping
//!   the device's id once it has one) and sync.
//! * **The answer lost after the hub committed** (deterministic, the proxy): the answer to the
//!   second push is held back and the device killed, its ops left `in_flight`. Resent as the
//!   same batch, the hub replays its stored answer (its push counters do not move, nothing is
//!   applied again: transactions and stock unchanged); resent in batches of 7, those ops are
//!   answered `duplicate` one by one; the hub's stock moved exactly by the legs of the ops never
//!   sent before. Then a lost answer resent as the same batch and answered from the hub's
//!   store: the device reports those ops as duplicates, and the hub applied nothing again.
//! * **The hub SIGKILLed mid-sync.** The real `stocksync hub --dev` as a child process on a fixed
//!   port; an in-process `SyncNode` (push sizes as above) pushes 2,000 ops; the hub is killed at
//!   a random instant of the push 4 times (`SYNC_HUB_KILLS`) and restarted on the same data dir
//!   and port; `sync_now` against the dead hub fails as offline without parking or rejecting
//!   anything; after the last restart `sync_now` completes.
//!
//! After each: every op is `acked` (nothing may be rejected: the device only records what its
//! view covers and nobody else moves stock), every movement op is exactly one of the hub's
//! transactions (`GET /v1/inventory/transactions`, all pages) and no transaction belongs to
//! another op, the hub's stock per product × location equals the sum of the device's accepted
//! ledger legs and none is negative, the device's `stock()` equals the hub's with nothing
//! pending, its products equal the hub's (kill loop), its last sync's checksum matched, its
//! `check()` finds nothing and `PRAGMA integrity_check` is ok (for the hub killed mid-sync, the
//! hub's file too).
//!
//! A refresh answer lost after the hub rotated the token (a kill, or just the network) must not
//! lock the device out: this test found that it did, and the hub now gives a refresh token
//! presented again within a minute of its first use a fresh pair (`refresh_reuse_grace_secs`).
//!
//! `SYNC_CRASH_SEED` replays a run's schedule (the worker's movements come from the same seed).
//! The hub binary is found (and built if stale) as in `hub_crash.rs`; `STOCKSYNC_BIN` names
//! another one.

// A test: a failed step is a failed test, with the message saying which.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};
use stocksync_node::{NodeError, StoreOptions, SyncConfig, SyncEvent, SyncListener, SyncNode};
use support::sync::{
    DeviceFile, HubApi, Levels, MOVEMENT_KINDS, TestHub, add_levels, assert_none,
    exactly_once_problems, level_differences, no_rejection, node_view_problems, product_problems,
};
use support::{XorShift, clock_seed, env_u64, stocksync_binary};

const WORKER: &str = env!("CARGO_BIN_EXE_sync-worker");
/// How long anything may take before the test calls it hung.
const PATIENCE: Duration = Duration::from_secs(60);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

// ---------------------------------------------------------------------------------------------
// 1. The device killed during its sync.

#[test]
fn sigkill_of_a_syncing_node_loses_no_op_and_applies_none_twice() {
    let seed = env_u64("SYNC_CRASH_SEED").unwrap_or_else(clock_seed);
    let kills = env_u64("SYNC_KILLS").unwrap_or(20) as usize;
    // About 2.5 pushes of 20 ops per kill are used up; keep plenty for the last runs.
    let ops = 2_000.max(kills * 80);
    println!(
        "sync kill test: {kills} kills, {ops} ops, seed {seed} (replay with \
         SYNC_CRASH_SEED={seed})"
    );
    let started = Instant::now();
    let mut rng = XorShift::new(seed);
    let rt = runtime();
    let dir = tempfile::tempdir().expect("temp dir");
    let hub = rt.block_on(TestHub::start(&dir.path().join("hub")));
    let db = dir.path().join("node.db");
    let url = hub.url();
    let key = hub.enrollment_key.clone();
    let record_args = ["--ops".to_owned(), ops.to_string(), "--no-sync".into()];

    // Setup and recording, cut short: until a run has got through setup, kill within a bound
    // that grows by 3 ms a run (exec, open, migrations, enroll, catalog), then a few times more
    // (the first ops). Each run resumes what the previous one left.
    let mut recorded = BTreeSet::new();
    let mut setup_kills: BTreeMap<&str, usize> = BTreeMap::new();
    let mut ever_ready = false;
    let mut after_ready = 0;
    for i in 0..40u64 {
        if after_ready >= 3 {
            break;
        }
        let mut args = record_args.to_vec();
        args.extend(["--seed".into(), (seed + i).to_string()]);
        let w = Worker::spawn(&db, &url, &key, &args);
        let bound = if ever_ready {
            80_000
        } else {
            2_000 + 3_000 * i
        };
        thread::sleep(Duration::from_micros(rng.below(bound)));
        let run = w.kill();
        recorded.extend(run.words("recorded"));
        ever_ready |= has(&run.lines, "ready");
        after_ready += usize::from(ever_ready);
        *setup_kills.entry(setup_stage(&db, &run)).or_default() += 1;
    }
    let mut args = record_args.to_vec();
    args.extend(["--seed".into(), (seed + 99).to_string()]);
    let run = Worker::spawn(&db, &url, &key, &args).wait();
    run.assert_success("the recording run");
    recorded.extend(run.words("recorded"));
    let file = DeviceFile::read("device", &db);
    let movements: Vec<&str> = file
        .ops
        .iter()
        .filter(|o| MOVEMENT_KINDS.contains(&o.kind.as_str()))
        .map(|o| o.op_id.as_str())
        .collect();
    assert_eq!(
        movements.len(),
        ops,
        "the outbox holds {} movements",
        movements.len()
    );
    let missing: Vec<_> = recorded.iter().filter(|op| file.op(op).is_none()).collect();
    assert!(
        missing.is_empty(),
        "ops reported recorded are not in the outbox: {missing:?}"
    );
    assert_none(
        &file
            .integrity
            .iter()
            .filter(|l| *l != "ok")
            .cloned()
            .collect::<Vec<_>>(),
        "integrity after the setup kills",
    );
    let record_time = started.elapsed();

    // The sync, killed again and again.
    let mut landed = 0;
    let mut in_start = 0;
    let mut mid_push = 0;
    let mut finished_early = 0;
    let mut batch_gaps = Gaps::default();
    let mut spawns = 0;
    while landed < kills {
        spawns += 1;
        assert!(
            spawns < kills * 3 + 10,
            "{spawns} runs and only {landed} kills landed (seed {seed})"
        );
        // Half the runs push in batches of 20, the others in other sizes: a batch whose answer a
        // kill lost is resent either as the same request (the hub replays its stored answer) or
        // mixed differently (the hub answers `duplicate` op by op).
        let batch = if rng.below(2) == 0 {
            20
        } else {
            5 + rng.below(36)
        };
        let w = Worker::spawn(&db, &url, &key, &["--batch".into(), batch.to_string()]);
        if rng.below(5) == 0 {
            // Somewhere in the start: exec, open, setup checks, the first batch and request.
            thread::sleep(Duration::from_micros(rng.below(40_000)));
        } else {
            let n = 1 + rng.below(3) as usize;
            w.wait_for(|lines| count(lines, "batch") >= n || has(lines, "done"));
            let mean = batch_gaps.mean_us().unwrap_or(15_000);
            thread::sleep(Duration::from_micros(rng.below(mean * 3 / 2 + 1)));
        }
        let run = w.kill();
        batch_gaps.add(&run);
        if !run.killed {
            run.assert_success("a run that finished before its kill");
            finished_early += 1;
            continue;
        }
        landed += 1;
        if count(&run.lines, "batch") == 0 {
            in_start += 1;
        } else if !has(&run.lines, "round") {
            mid_push += 1;
        }
    }
    let run = Worker::spawn(&db, &url, &key, &[]).wait();
    run.assert_success("the run after the push kills");
    let push_phase = started.elapsed();

    // Kills in the pull: before each run the hub's catalog changes over REST (products created,
    // renamed, deleted), and the device pulls it 8 changes a page.
    let pull_kills = (kills / 4).max(5);
    let mut pull_landed = 0;
    let mut pull_spawns = 0;
    let mut hub_products = Vec::new();
    let mut pull_us = 30_000;
    while pull_landed < pull_kills {
        pull_spawns += 1;
        assert!(
            pull_spawns < pull_kills * 4,
            "pull kills do not land (seed {seed})"
        );
        rt.block_on(churn(&hub.api, &mut rng, &mut hub_products, pull_spawns));
        let w = Worker::spawn(&db, &url, &key, &["--pull-limit".into(), "8".into()]);
        w.wait_for(|lines| has(lines, "ready"));
        thread::sleep(Duration::from_micros(rng.below(pull_us)));
        let run = w.kill();
        if run.killed {
            // Killed before its round ended: in the pull (a kill after it does not count).
            pull_landed += usize::from(!has(&run.lines, "round"));
        } else {
            run.assert_success("a pull run that finished before its kill");
            // Aim within the time such a run takes.
            if let (Some(ready), Some(done)) = (run.at("ready"), run.at("done")) {
                pull_us = ((done - ready).as_micros() as u64).max(1_000);
            }
        }
    }
    let run = Worker::spawn(&db, &url, &key, &["--pull-limit".into(), "8".into()]).wait();
    run.assert_success("the last run");
    let last_round = run.last("round").expect("the last run printed a round");
    assert!(
        last_round.contains("checksum=ok") && last_round.contains("pending=0"),
        "the last round: {last_round} (seed {seed})"
    );

    // The checks.
    let file = DeviceFile::read("device", &db);
    let (transactions, hub_stock, products, counters) = rt.block_on(async {
        (
            hub.api.transactions().await,
            hub.api.stock().await,
            hub.api.products().await,
            push_counters(&hub.api).await,
        )
    });
    let mut problems = exactly_once_problems(&[&file], &transactions, &hub_stock, &no_rejection);
    for op in &recorded {
        if file.op(op).is_none() {
            problems.push(format!("op {op} was reported recorded and is gone"));
        }
    }
    if transactions.len() != ops {
        problems.push(format!(
            "the hub holds {} transactions for {ops} movements",
            transactions.len()
        ));
    }
    let node = SyncNode::open(&db, &StoreOptions::default()).expect("open the node");
    problems.extend(node_view_problems("device", &node, &hub_stock));
    problems.extend(product_problems("device", &node, &products));
    if counters.rejected + counters.conflict != 0 {
        problems.push(format!("the hub rejected or conflicted ops: {counters:?}"));
    }
    assert_none(&problems, &format!("after {kills} kills (seed {seed})"));

    println!(
        "sync kill test: {landed} kills in the push ({in_start} in a run's start, {mid_push} after \
         1+ answered pushes; {finished_early} run(s) finished before their kill), \
         {pull_landed} in the pull ({} products at the hub); setup kills by stage {setup_kills:?}; \
         {:.1} s (recording {:.1} s, pushing {:.1} s); {ops} ops, {} hub transactions, hub push \
         counters {counters:?} (duplicates: answers lost to a kill, resent in other batches), \
         mean push {} ms; last round: {last_round}",
        products.len(),
        started.elapsed().as_secs_f64(),
        record_time.as_secs_f64(),
        (push_phase - record_time).as_secs_f64(),
        transactions.len(),
        batch_gaps.mean_us().unwrap_or(0) / 1000,
    );
}

// ---------------------------------------------------------------------------------------------
// 2. The hub's answer lost after its commit.

#[test]
fn an_answer_lost_after_the_hub_committed_is_replayed_or_answered_duplicate() {
    let seed = env_u64("SYNC_CRASH_SEED").unwrap_or_else(clock_seed);
    println!("lost answer test: seed {seed}");
    let rt = runtime();
    let dir = tempfile::tempdir().expect("temp dir");
    let hub = rt.block_on(TestHub::start(&dir.path().join("hub")));
    let proxy = Proxy::start(hub.hub.addr);
    let db = dir.path().join("node.db");
    let key = hub.enrollment_key.clone();
    // Enrolled through the proxy, so the device's stored hub URL is the proxy's.
    let run = Worker::spawn(
        &db,
        &proxy.url,
        &key,
        &["--ops", "60", "--no-sync", "--seed", &seed.to_string()].map(String::from),
    )
    .wait();
    run.assert_success("recording");
    // 2 locations + 1 product + 60 movements: pushes of 20, 20, 20 and 3.
    let file = DeviceFile::read("device", &db);
    assert_eq!(file.ops.len(), 63);
    let seqs = |from: i64, to: i64| -> Vec<&str> {
        file.ops
            .iter()
            .filter(|o| (from..=to).contains(&o.device_seq))
            .map(|o| o.op_id.as_str())
            .collect()
    };
    let states = |f: &DeviceFile, from: i64, to: i64| -> BTreeSet<String> {
        f.ops
            .iter()
            .filter(|o| (from..=to).contains(&o.device_seq))
            .map(|o| o.state.clone())
            .collect()
    };
    let movements_in = |from: i64, to: i64| {
        file.ops
            .iter()
            .filter(|o| (from..=to).contains(&o.device_seq))
            .filter(|o| MOVEMENT_KINDS.contains(&o.kind.as_str()))
            .count()
    };
    let hub_state = || {
        rt.block_on(async {
            (
                hub.api.transactions().await.len(),
                hub.api.stock().await,
                push_counters(&hub.api).await,
            )
        })
    };

    // Run A: the answer to its second push never arrives; the device dies waiting. (A node
    // that records an answer while it sends the next batch may not have recorded the first
    // answer yet either, and may have marked the third batch in flight without sending it.)
    proxy.hold_answer(PUSH, 2);
    let w = Worker::spawn(&db, &proxy.url, &key, &[]);
    assert!(proxy.wait_held(), "the second push was never answered");
    let run = w.kill();
    proxy.release();
    assert!(run.killed, "run A ended by itself: {:?}", run.lines);
    assert_eq!(count(&run.lines, "batch"), 1, "run A: {:?}", run.lines);
    let after_a = DeviceFile::read("device", &db);
    let unsure = |f: &DeviceFile, from: i64, to: i64| -> BTreeSet<String> {
        f.ops
            .iter()
            .filter(|o| (from..=to).contains(&o.device_seq) && o.state != "acked")
            .map(|o| o.op_id.clone())
            .collect()
    };
    let in_flight = unsure(&after_a, 1, 40);
    let only =
        |set: BTreeSet<String>, allowed: &[&str]| set.iter().all(|s| allowed.contains(&s.as_str()));
    assert!(
        only(states(&after_a, 1, 20), &["acked", "in_flight"])
            && states(&after_a, 21, 40) == BTreeSet::from(["in_flight".to_owned()])
            && only(states(&after_a, 41, 63), &["pending", "in_flight"]),
        "after run A: ops 1–20 {:?}, 21–40 {:?}, 41–63 {:?}",
        states(&after_a, 1, 20),
        states(&after_a, 21, 40),
        states(&after_a, 41, 63)
    );
    let (t1, s1, c1) = hub_state();
    assert_eq!(
        t1,
        movements_in(1, 40),
        "the hub committed the held push: it holds the movements of ops 1–40"
    );

    // Run B: the first unanswered batch again, as it was sent (same Idempotency-Key); that
    // answer is lost too.
    proxy.hold_answer(PUSH, 1);
    let w = Worker::spawn(&db, &proxy.url, &key, &[]);
    assert!(proxy.wait_held(), "run B's push was never answered");
    let run = w.kill();
    proxy.release();
    assert!(run.killed, "run B ended by itself: {:?}", run.lines);
    let after_b = DeviceFile::read("device", &db);
    assert_eq!(
        unsure(&after_b, 1, 40),
        in_flight,
        "run B recorded an answer"
    );
    let (t2, s2, c2) = hub_state();
    assert_eq!(t2, t1, "the resend applied something again");
    assert_none(
        &level_differences("before the resend", &s1, "after it", &s2),
        "the resent batch moved stock",
    );
    assert_eq!(
        c2, c1,
        "the resent batch was not answered from the idempotency store (push counters moved)"
    );

    // Run C: other batch sizes (other keys): the unanswered ops of 1–40 are answered
    // `duplicate`, one by one; 41–63 are applied.
    proxy.pass();
    let run = Worker::spawn(&db, &proxy.url, &key, &["--batch".to_owned(), "7".into()]).wait();
    run.assert_success("run C");
    let round = run.last("round").expect("run C printed a round");
    let dups = in_flight.len();
    assert!(
        round.starts_with(&format!(
            "round pushed={} applied=23 duplicates={dups} rejected=0 parked=0",
            dups + 23
        )) && round.contains("checksum=ok")
            && round.ends_with("pending=0"),
        "run C ({dups} ops of 1–40 were unanswered): {round}"
    );
    let (t3, s3, c3) = hub_state();
    assert_eq!(
        c3.duplicate - c2.duplicate,
        dups as u64,
        "duplicates counted by the hub"
    );
    assert_eq!(
        c3.applied - c2.applied,
        23,
        "ops applied by the hub in run C"
    );
    assert_eq!(t3, t1 + movements_in(41, 63));
    // What the stock moved by since run A is exactly the legs of ops 41–63.
    let file = DeviceFile::read("device", &db);
    let late: BTreeSet<&str> = seqs(41, 63).into_iter().collect();
    let mut expected = s1.clone();
    let mut late_legs = Levels::new();
    for leg in file.legs.iter().filter(|l| late.contains(l.op_id.as_str())) {
        let level = late_legs
            .entry((leg.product_id.clone(), leg.location_id.clone()))
            .or_default();
        level.on_hand += leg.on_hand_delta;
        level.allocated += leg.allocated_delta;
    }
    add_levels(&mut expected, &late_legs);
    let mut problems = level_differences("run A's stock + ops 41–63", &expected, "the hub", &s3);
    for op in file.ops.iter().filter(|o| in_flight.contains(&o.op_id)) {
        if op.result.as_ref().map(|r| r["status"].clone()) != Some(json!("duplicate")) {
            problems.push(format!(
                "op {} (device_seq {}) was recorded with answer {:?}, not duplicate",
                op.op_id, op.device_seq, op.result
            ));
        }
    }
    assert_none(
        &problems,
        &format!("lost answer, after run C (seed {seed})"),
    );

    // Runs D and E: 40 more ops; D's first push answer is lost, E resends that batch as it was
    // and gets the hub's stored answer, which the device reports as 20 duplicates (applied by
    // D's request, not now); the hub's push counters count only E's second batch.
    let args = [
        "--ops",
        "100",
        "--no-sync",
        "--seed",
        &(seed + 1).to_string(),
    ]
    .map(String::from);
    Worker::spawn(&db, &proxy.url, &key, &args)
        .wait()
        .assert_success("recording 40 more");
    proxy.hold_answer(PUSH, 1);
    let w = Worker::spawn(&db, &proxy.url, &key, &[]);
    assert!(proxy.wait_held(), "run D's push was never answered");
    let run = w.kill();
    proxy.release();
    proxy.pass();
    assert!(run.killed, "run D ended by itself: {:?}", run.lines);
    let (t4, _, c4) = hub_state();
    assert_eq!(t4, t3 + 20, "the hub committed run D's push");
    let run = Worker::spawn(&db, &proxy.url, &key, &[]).wait();
    run.assert_success("run E");
    let round_e = run.last("round").expect("run E printed a round");
    assert!(
        round_e.starts_with("round pushed=40 applied=20 duplicates=20 rejected=0 parked=0")
            && round_e.contains("checksum=ok")
            && round_e.ends_with("pending=0"),
        "run E: {round_e}"
    );
    let (t5, s5, c5) = hub_state();
    assert_eq!(t5, t4 + 20);
    assert_eq!(
        (c5.applied - c4.applied, c5.duplicate - c4.duplicate),
        (20, 0),
        "run E's replayed batch went through the push service"
    );

    let file = DeviceFile::read("device", &db);
    let transactions = rt.block_on(hub.api.transactions());
    let mut problems = exactly_once_problems(&[&file], &transactions, &s5, &no_rejection);
    let node = SyncNode::open(&db, &StoreOptions::default()).expect("open the node");
    problems.extend(node_view_problems("device", &node, &s5));
    assert_none(&problems, &format!("lost answer (seed {seed})"));
    println!(
        "lost answer test: {dups} ops of 1–40 unanswered after run A; run C: {round}; run E: \
         {round_e}"
    );
}

/// Enrollment cut short, deterministically: the hub enrolled the device but its answer never
/// arrived (the device had no row yet, so the next run mints another id), and the device row
/// written but the credentials not (as a kill between the two writes leaves it; reproduced by
/// erasing them), then that re-enrollment's answer lost too. Each next run enrolls again, keeps
/// the device's id once it has one, and syncs every op exactly once.
#[test]
fn an_enrollment_cut_short_is_repeated_safely() {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("temp dir");
    let hub = rt.block_on(TestHub::start(&dir.path().join("hub")));
    let proxy = Proxy::start(hub.hub.addr);
    let db = dir.path().join("node.db");
    let key = hub.enrollment_key.clone();
    let device_row = || -> Option<String> {
        let conn = rusqlite::Connection::open(&db).ok()?;
        conn.query_row("SELECT device_id FROM device", [], |r| r.get(0))
            .ok()
    };
    let lose_enroll_answer = || {
        proxy.hold_answer(ENROLL, 1);
        let w = Worker::spawn(&db, &proxy.url, &key, &[]);
        assert!(proxy.wait_held(), "the worker never enrolled");
        let run = w.kill();
        proxy.release();
        proxy.pass();
        assert!(
            run.killed && !has(&run.lines, "enrolled"),
            "{:?}",
            run.lines
        );
    };

    // 1. The first enrollment's answer is lost: no device row, the next run starts afresh.
    lose_enroll_answer();
    assert_eq!(
        device_row(),
        None,
        "a device row without an answer from the hub"
    );
    let args = ["--ops", "30", "--no-sync"].map(String::from);
    let run = Worker::spawn(&db, &proxy.url, &key, &args).wait();
    run.assert_success("enroll after a lost answer");
    let first = run.words("enrolled");
    assert_eq!(first.len(), 1, "{:?}", run.lines);

    // 2. The credentials are gone (a kill between the device row and them), and the
    //    re-enrollment's answer is lost as well.
    let conn = rusqlite::Connection::open(&db).expect("open the file");
    conn.execute(
        "UPDATE sync_state SET access_token = NULL, refresh_token = NULL, \
         access_expires_at = NULL",
        [],
    )
    .expect("erase the credentials");
    drop(conn);
    lose_enroll_answer();
    assert_eq!(
        device_row().as_ref(),
        first.first(),
        "the device id changed"
    );
    let run = Worker::spawn(&db, &proxy.url, &key, &[]).wait();
    run.assert_success("sync after enrolling again");
    assert_eq!(
        run.words("enrolled"),
        first,
        "the device enrolled under another id"
    );

    let file = DeviceFile::read("device", &db);
    let (transactions, stock) =
        rt.block_on(async { (hub.api.transactions().await, hub.api.stock().await) });
    let mut problems = exactly_once_problems(&[&file], &transactions, &stock, &no_rejection);
    if transactions.len() != 30 {
        problems.push(format!(
            "{} hub transactions for 30 ops",
            transactions.len()
        ));
    }
    let node = SyncNode::open(&db, &StoreOptions::default()).expect("open the node");
    problems.extend(node_view_problems("device", &node, &stock));
    assert_none(&problems, "enrollment cut short");
}

/// A device killed after the hub rotated its refresh token but before it saved the new pair
/// (or any lost answer to `POST /v1/oauth/token`) presents the old token next time. Without the
/// hub's reuse grace that revoked the whole family and the device could not sync again until
/// someone enrolled it anew.
#[test]
fn a_refresh_answer_lost_after_the_hub_rotated_the_token_does_not_lock_the_device_out() {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("temp dir");
    // Access tokens shorter than the node's one-minute margin: every round refreshes first.
    let hub = rt.block_on(TestHub::start_with(&dir.path().join("hub"), |c| {
        c.access_ttl_secs = 30;
    }));
    let proxy = Proxy::start(hub.hub.addr);
    let db = dir.path().join("node.db");
    let key = hub.enrollment_key.clone();
    let args = ["--ops", "10", "--no-sync"].map(String::from);
    Worker::spawn(&db, &proxy.url, &key, &args)
        .wait()
        .assert_success("recording");

    proxy.hold_answer(REFRESH, 1);
    let w = Worker::spawn(&db, &proxy.url, &key, &[]);
    assert!(proxy.wait_held(), "the worker never refreshed its token");
    let run = w.kill();
    proxy.release();
    assert!(run.killed && !has(&run.lines, "batch"), "{:?}", run.lines);

    proxy.pass();
    let run = Worker::spawn(&db, &proxy.url, &key, &[]).wait();
    run.assert_success("the run after the lost refresh answer");
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct PushCounters {
    applied: u64,
    duplicate: u64,
    rejected: u64,
    conflict: u64,
}

/// `stocksync_push_ops_total` by outcome, from `/metrics`.
async fn push_counters(api: &HubApi) -> PushCounters {
    let text = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("{}/metrics", api.base))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text");
    let mut c = PushCounters::default();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("stocksync_push_ops_total{outcome=\"") else {
            continue;
        };
        let (outcome, n) = rest.split_once("\"} ").expect("a counter line");
        let n: u64 = n.trim().parse().expect("a count");
        match outcome {
            "applied" => c.applied = n,
            "duplicate" => c.duplicate = n,
            "rejected" => c.rejected = n,
            "conflict" => c.conflict = n,
            other => panic!("unknown push outcome {other}"),
        }
    }
    c
}

/// How far setup had got when a recording run was killed, from the file itself.
fn setup_stage(db: &Path, run: &Run) -> &'static str {
    if has(&run.lines, "recorded") {
        return "recording";
    }
    if has(&run.lines, "ready") {
        return "ready, nothing recorded";
    }
    let Ok(conn) =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return "no file yet";
    };
    let one = |sql: &str| -> Option<i64> { conn.query_row(sql, [], |r| r.get(0)).ok() };
    match (
        one("SELECT count(*) FROM device"),
        one("SELECT count(*) FROM sync_state WHERE access_token IS NOT NULL"),
        one("SELECT count(*) FROM outbox"),
    ) {
        (None | Some(0), _, _) => "no device yet",
        (Some(_), None | Some(0), _) => "device without credentials (enroll cut short)",
        (Some(_), Some(_), Some(0) | None) => "enrolled, no catalog",
        (Some(_), Some(_), Some(_)) => "catalog in progress",
    }
}

/// Changes the hub's catalog over REST: 30 products created, 5 renamed, 2 deleted.
async fn churn(api: &HubApi, rng: &mut XorShift, products: &mut Vec<String>, round: usize) {
    use reqwest::Method;
    for i in 0..30 {
        let body = json!({
            "sku": format!("HUB-{round}-{i}"),
            "name": format!("Hub product {round}/{i}"),
            "category": format!("cat-{}", i % 3),
        });
        let (status, r) = api.send(Method::POST, "/v1/products", Some(&body)).await;
        assert_eq!(status, 201, "create a product: {r}");
        products.push(r["data"]["id"].as_str().expect("product id").to_owned());
    }
    for _ in 0..5 {
        let id = &products[rng.below(products.len() as u64) as usize];
        let body = json!({ "name": format!("Renamed in round {round}") });
        let (status, r) = api
            .send(Method::PUT, &format!("/v1/products/{id}"), Some(&body))
            .await;
        assert_eq!(status, 200, "rename a product: {r}");
    }
    for _ in 0..2 {
        let id = products.swap_remove(rng.below(products.len() as u64) as usize);
        let (status, r) = api
            .send(Method::DELETE, &format!("/v1/products/{id}"), None)
            .await;
        assert_eq!(status, 200, "delete a product: {r}");
    }
}

// ---------------------------------------------------------------------------------------------
// 3. The hub killed mid-sync.

#[test]
fn sigkill_of_the_hub_mid_sync_then_the_next_sync_completes() {
    let seed = env_u64("SYNC_CRASH_SEED").unwrap_or_else(clock_seed);
    let kills = env_u64("SYNC_HUB_KILLS").unwrap_or(4) as usize;
    let ops = 2_000.max(kills * 200);
    println!("hub restart test: {kills} hub kills, {ops} ops, seed {seed}");
    let started = Instant::now();
    let mut rng = XorShift::new(seed);
    let rt = runtime();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut hub = HubProcess::new(stocksync_binary(), dir.path(), free_port(&mut rng));
    let found_binary = started.elapsed();
    let creds = hub.start();
    let api = HubApi::new(&creds.base_url, &creds.api_key, &creds.organization_id);
    let db = dir.path().join("node.db");
    let run = Worker::spawn(
        &db,
        &creds.base_url,
        &creds.enrollment_key,
        &[
            "--ops".to_owned(),
            ops.to_string(),
            "--no-sync".into(),
            "--seed".into(),
            seed.to_string(),
            // Recording is not what this test is about.
            "--synchronous".into(),
            "normal".into(),
        ],
    )
    .wait();
    run.assert_success("recording");
    let recorded_at = started.elapsed();

    // Each sync opens the node with its own push size: a batch whose answer the kill lost is
    // resent either as the same request (replayed) or mixed differently (`duplicate` per op).
    let open = |rng: &mut XorShift| {
        let config = SyncConfig {
            push_batch: if rng.below(2) == 0 {
                20
            } else {
                5 + rng.below(36) as usize
            },
            channels: Vec::new(),
            ..SyncConfig::default()
        };
        SyncNode::open_with(&db, &StoreOptions::default(), config).expect("open the node")
    };
    let pushes = Arc::new(Pushes::default());
    let mut mean_push_us = 15_000;
    let mut interrupted = 0;
    let mut restarts = Vec::new();
    for kill in 1..=kills {
        let node = open(&mut rng);
        let _listener = node.add_listener(pushes.clone());
        let from = pushes.answered.load(Ordering::SeqCst);
        let target = from + 1 + rng.below(8) as usize;
        let t = Instant::now();
        let n = node.clone();
        let sync = rt.spawn(async move { n.sync_now().await });
        let deadline = Instant::now() + PATIENCE;
        while pushes.answered.load(Ordering::SeqCst) < target && !sync.is_finished() {
            assert!(Instant::now() < deadline, "kill {kill}: the sync is stuck");
            thread::sleep(Duration::from_micros(300));
        }
        let done = pushes.answered.load(Ordering::SeqCst) - from;
        if done > 0 {
            mean_push_us = (t.elapsed().as_micros() as u64 / done as u64).max(1);
        }
        thread::sleep(Duration::from_micros(rng.below(mean_push_us * 3 / 2 + 1)));
        hub.kill(&format!("kill {kill} (seed {seed})"));
        match rt.block_on(sync).expect("the sync task") {
            Err(NodeError::Offline { .. }) => interrupted += 1,
            Ok(report) => println!("kill {kill}: the sync had finished: {report:?}"),
            Err(e) => panic!("kill {kill}: the sync failed otherwise: {e} (seed {seed})"),
        }
        // While the hub is down: offline, and nothing is parked or lost.
        match rt.block_on(node.sync_now()) {
            Err(NodeError::Offline { .. }) => {}
            other => panic!("a sync with the hub down answered {other:?} (seed {seed})"),
        }
        let status = node.status().expect("status");
        assert_eq!(
            status.parked, 0,
            "ops were parked after a hub kill: {status:?}"
        );
        assert_eq!(
            status.rejected, 0,
            "ops were rejected after a hub kill: {status:?}"
        );
        let t = Instant::now();
        hub.start();
        restarts.push(t.elapsed());
    }
    let node = open(&mut rng);
    let _listener = node.add_listener(pushes.clone());
    let t = Instant::now();
    let report = rt
        .block_on(node.sync_now())
        .unwrap_or_else(|e| panic!("the sync after the last restart: {e} (seed {seed})"));
    assert_eq!(report.checksum_ok, Some(true), "{report:?}");
    assert_eq!(report.rejected + report.parked, 0, "{report:?}");
    assert_eq!(node.status().expect("status").pending, 0);
    let last_sync = t.elapsed();

    let file = DeviceFile::read("device", &db);
    let (transactions, hub_stock) =
        rt.block_on(async { (api.transactions().await, api.stock().await) });
    let mut problems = exactly_once_problems(&[&file], &transactions, &hub_stock, &no_rejection);
    if transactions.len() != ops {
        problems.push(format!(
            "the hub holds {} transactions for {ops} movements",
            transactions.len()
        ));
    }
    problems.extend(node_view_problems("device", &node, &hub_stock));
    assert_none(&problems, &format!("after {kills} hub kills (seed {seed})"));
    drop(node);
    hub.kill("the last kill");
    let integrity = hub_integrity(&hub.data.join("hub.db"));
    assert_eq!(integrity, ["ok"], "integrity_check of hub.db (seed {seed})");
    println!(
        "hub restart test: {kills} hub kills ({interrupted} interrupted a sync; a push takes \
         ~{} ms; restarts took {restarts:?}), {ops} ops pushed in {} requests, {:.1} s \
         (finding the binary {:.1} s, recording {:.1} s, the last sync {:.1} s); last sync: \
         applied {} duplicates {} pulled {}",
        mean_push_us / 1000,
        pushes.answered.load(Ordering::SeqCst),
        started.elapsed().as_secs_f64(),
        found_binary.as_secs_f64(),
        (recorded_at - found_binary).as_secs_f64(),
        last_sync.as_secs_f64(),
        report.applied,
        report.duplicates,
        report.pulled
    );
}

/// Counts answered push requests.
#[derive(Default)]
struct Pushes {
    answered: AtomicUsize,
}

impl SyncListener for Pushes {
    fn on_event(&self, event: &SyncEvent) {
        if let SyncEvent::Progress { progress } = event
            && progress.phase == "push"
        {
            self.answered.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn hub_integrity(db: &Path) -> Vec<String> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open hub.db read-only");
    conn.prepare("PRAGMA integrity_check")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("integrity_check")
}

// ---------------------------------------------------------------------------------------------
// The worker process.

type Lines = Vec<(Instant, String)>;

fn count(lines: &Lines, word: &str) -> usize {
    lines
        .iter()
        .filter(|(_, l)| l.split(' ').next() == Some(word))
        .count()
}

fn has(lines: &Lines, word: &str) -> bool {
    count(lines, word) > 0
}

struct Worker {
    child: Child,
    lines: Arc<Mutex<Lines>>,
    stdout: JoinHandle<()>,
    stderr: JoinHandle<String>,
}

/// What one run said and how it ended.
struct Run {
    /// It was still running when killed.
    killed: bool,
    status: ExitStatus,
    lines: Lines,
    stderr: String,
}

impl Run {
    /// The second word of every line starting with `word`.
    fn words(&self, word: &str) -> Vec<String> {
        self.lines
            .iter()
            .filter_map(|(_, l)| {
                let mut w = l.split(' ');
                (w.next() == Some(word)).then(|| w.next().unwrap_or("").to_owned())
            })
            .collect()
    }

    /// When the first line starting with `word` was read.
    fn at(&self, word: &str) -> Option<Instant> {
        self.lines
            .iter()
            .find(|(_, l)| l.split(' ').next() == Some(word))
            .map(|(t, _)| *t)
    }

    fn last(&self, word: &str) -> Option<&str> {
        self.lines
            .iter()
            .rev()
            .map(|(_, l)| l.as_str())
            .find(|l| l.split(' ').next() == Some(word))
    }

    fn assert_success(&self, what: &str) {
        assert!(
            self.status.success() && has(&self.lines, "done"),
            "{what}: sync-worker ended with {}; stdout (last 10): {:?}; stderr: {}",
            self.status,
            self.lines
                .iter()
                .rev()
                .take(10)
                .map(|(_, l)| l)
                .collect::<Vec<_>>(),
            self.stderr
        );
    }
}

impl Worker {
    fn spawn(db: &Path, url: &str, key: &str, extra: &[String]) -> Worker {
        let mut child = Command::new(WORKER)
            .arg(db)
            .arg(url)
            .arg(key)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sync-worker");
        let out = child.stdout.take().expect("piped stdout");
        let mut err = child.stderr.take().expect("piped stderr");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        let stdout = thread::spawn(move || read_lines(out, &sink));
        let stderr = thread::spawn(move || {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text);
            text
        });
        Worker {
            child,
            lines,
            stdout,
            stderr,
        }
    }

    /// Waits until `ready(lines)` or the worker exits.
    fn wait_for(&self, ready: impl Fn(&Lines) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if ready(&self.lines.lock().unwrap()) {
                return;
            }
            // The reader ends when the process closes stdout (it exited).
            if self.stdout.is_finished() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "sync-worker made no progress in {PATIENCE:?}"
            );
            thread::sleep(Duration::from_micros(200));
        }
    }

    /// SIGKILLs the worker if it still runs.
    fn kill(mut self) -> Run {
        let exited = self.child.try_wait().expect("try_wait");
        let _ = self.child.kill();
        let status = self.child.wait().expect("wait for sync-worker");
        let run = self.collect(status, exited.is_none());
        if run.killed {
            assert!(
                killed(run.status),
                "sync-worker ended with {} while being killed; stderr: {}",
                run.status,
                run.stderr
            );
        }
        run
    }

    /// Waits for the worker to exit by itself.
    fn wait(mut self) -> Run {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return self.collect(status, false);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let status = self.child.wait().expect("wait");
                let run = self.collect(status, true);
                panic!(
                    "sync-worker did not finish in {PATIENCE:?}; stdout (last 10): {:?}; \
                     stderr: {}",
                    run.lines.iter().rev().take(10).collect::<Vec<_>>(),
                    run.stderr
                );
            }
            thread::sleep(Duration::from_millis(2));
        }
    }

    fn collect(self, status: ExitStatus, killed: bool) -> Run {
        self.stdout.join().expect("stdout reader");
        let stderr = self.stderr.join().expect("stderr reader");
        let lines = std::mem::take(&mut *self.lines.lock().unwrap());
        Run {
            killed,
            status,
            lines,
            stderr,
        }
    }
}

/// Whole lines only: a line cut by the kill was not said.
fn read_lines(out: impl Read, sink: &Mutex<Lines>) {
    let mut out = BufReader::new(out);
    let mut line = Vec::new();
    loop {
        line.clear();
        match out.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) if line.last() != Some(&b'\n') => return,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
        sink.lock().unwrap().push((Instant::now(), text));
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

/// Time between consecutive `batch` lines of a run (one push request and its recording).
#[derive(Default)]
struct Gaps {
    total_us: u64,
    n: u64,
}

impl Gaps {
    fn add(&mut self, run: &Run) {
        let times: Vec<Instant> = run
            .lines
            .iter()
            .filter(|(_, l)| l.starts_with("batch "))
            .map(|(t, _)| *t)
            .collect();
        for pair in times.windows(2) {
            self.total_us += (pair[1] - pair[0]).as_micros() as u64;
            self.n += 1;
        }
    }

    fn mean_us(&self) -> Option<u64> {
        (self.n > 0).then(|| self.total_us / self.n)
    }
}

// ---------------------------------------------------------------------------------------------
// A proxy that can hold back the answer to a push.

/// Forwards TCP between the device and the hub. When armed, the answer to the `n`-th push
/// request after arming is held back (the hub has committed by the time it answers); the
/// test then kills the device and releases the proxy, which drops that connection.
struct Proxy {
    url: String,
    shared: Arc<ProxyShared>,
}

#[derive(Default)]
struct ProxyShared {
    state: Mutex<ProxyState>,
    changed: Condvar,
}

#[derive(Default)]
struct ProxyState {
    /// The request line (its start) whose answers are counted.
    request: &'static [u8],
    /// Answers to it seen since arming.
    answers: usize,
    hold_at: Option<usize>,
    held: bool,
    released: bool,
}

const PUSH: &[u8] = b"POST /v1/sync/push ";
const REFRESH: &[u8] = b"POST /v1/oauth/token ";
const ENROLL: &[u8] = b"POST /v1/auth/devices ";

impl Proxy {
    fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy listener");
        let url = format!("http://{}", listener.local_addr().expect("proxy address"));
        let shared = Arc::new(ProxyShared::default());
        let s = Arc::clone(&shared);
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let s = Arc::clone(&s);
                thread::spawn(move || forward_connection(client, server, &s));
            }
        });
        Proxy { url, shared }
    }

    /// Holds back the answer to the `n`-th `request` from now on.
    fn hold_answer(&self, request: &'static [u8], n: usize) {
        *self.shared.state.lock().unwrap() = ProxyState {
            request,
            hold_at: Some(n),
            ..ProxyState::default()
        };
    }

    /// Waits until an answer is held.
    fn wait_held(&self) -> bool {
        let state = self.shared.state.lock().unwrap();
        let (state, _) = self
            .shared
            .changed
            .wait_timeout_while(state, PATIENCE, |s| !s.held)
            .unwrap();
        state.held
    }

    fn release(&self) {
        let mut state = self.shared.state.lock().unwrap();
        state.released = true;
        state.hold_at = None;
        self.shared.changed.notify_all();
    }

    fn pass(&self) {
        *self.shared.state.lock().unwrap() = ProxyState::default();
    }
}

fn forward_connection(client: TcpStream, server: TcpStream, shared: &ProxyShared) {
    // Set by the request direction before the watched request goes out; the next bytes back on
    // this connection are its answer (HTTP/1.1, no pipelining).
    let awaiting = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (mut c_read, mut s_write) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    let flag = Arc::clone(&awaiting);
    let request = shared.state.lock().unwrap().request;
    let up = thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        let mut tail: Vec<u8> = Vec::new();
        loop {
            let n = match c_read.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let mut seen = std::mem::take(&mut tail);
            seen.extend_from_slice(&buf[..n]);
            if !request.is_empty() && seen.windows(request.len()).any(|w| w == request) {
                flag.store(true, Ordering::SeqCst);
            }
            tail = seen[seen.len().saturating_sub(request.len())..].to_vec();
            if s_write.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = s_write.shutdown(Shutdown::Write);
    });
    let (mut s_read, mut c_write) = (server, client);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match s_read.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if awaiting.swap(false, Ordering::SeqCst) {
            let mut state = shared.state.lock().unwrap();
            state.answers += 1;
            if state.hold_at == Some(state.answers) {
                state.held = true;
                shared.changed.notify_all();
                let _state = shared.changed.wait_while(state, |s| !s.released).unwrap();
                let _ = c_write.shutdown(Shutdown::Both);
                let _ = s_read.shutdown(Shutdown::Both);
                break;
            }
        }
        if c_write.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = c_write.shutdown(Shutdown::Write);
    let _ = up.join();
}

// ---------------------------------------------------------------------------------------------
// The hub process (as in hub_crash.rs, on a fixed port so the device finds it again).

/// A free loopback port below Linux's ephemeral range (32768–60999), so no outgoing connection
/// takes it while the hub is down between a kill and its restart.
fn free_port(rng: &mut XorShift) -> u16 {
    for _ in 0..1000 {
        let port = 20_000 + rng.below(12_000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in 20000–31999");
}

/// What `--dev` writes to `DATA_DIR/dev-credentials.json`.
#[derive(Clone)]
struct Creds {
    organization_id: String,
    api_key: String,
    enrollment_key: String,
    base_url: String,
}

/// One hub at a time on one data dir and port; killed on drop.
struct HubProcess {
    bin: PathBuf,
    data: PathBuf,
    log: PathBuf,
    port: u16,
    child: Option<Child>,
    /// The keys, once a start has made them: later starts reuse them.
    keys: Option<Value>,
}

impl HubProcess {
    fn new(bin: PathBuf, dir: &Path, port: u16) -> HubProcess {
        HubProcess {
            bin,
            data: dir.join("hub"),
            log: dir.join("hub-stderr.log"),
            port,
            child: None,
            keys: None,
        }
    }

    fn creds_path(&self) -> PathBuf {
        self.data.join("dev-credentials.json")
    }

    /// Starts the hub and waits until it listens (it has written its credentials by then).
    /// The port may still be held for a moment after a kill: the start is retried.
    fn start(&mut self) -> Creds {
        let deadline = Instant::now() + PATIENCE;
        loop {
            assert!(self.child.is_none(), "a hub is already running");
            // A blank base_url: the new one shows when this start listens.
            match &self.keys {
                Some(keys) => {
                    let mut blank = keys.clone();
                    blank["base_url"] = json!("");
                    std::fs::write(self.creds_path(), blank.to_string()).expect("credentials");
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
                .args(["hub", "--dev", "--rate-limit", "0", "--bind"])
                .arg(format!("127.0.0.1:{}", self.port))
                .arg("--data-dir")
                .arg(&self.data)
                .env("STOCKSYNC_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {}: {e}", self.bin.display()));
            self.child = Some(child);
            loop {
                if let Some(creds) = self.read_creds() {
                    return creds;
                }
                let child = self.child.as_mut().expect("spawned");
                if let Some(status) = child.try_wait().expect("try_wait") {
                    self.child = None;
                    assert!(
                        Instant::now() < deadline,
                        "the hub keeps exiting ({status}) before it listens; stderr:\n{}",
                        std::fs::read_to_string(&self.log).unwrap_or_default()
                    );
                    thread::sleep(Duration::from_millis(50));
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the hub did not listen in {PATIENCE:?}; stderr:\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
                thread::sleep(Duration::from_millis(5));
            }
        }
    }

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

    fn kill(&mut self, what: &str) {
        let mut child = self.child.take().expect("a hub to kill");
        let exited = child.try_wait().expect("try_wait");
        let _ = child.kill();
        let status = child.wait().expect("wait for the hub");
        assert!(
            exited.is_none() && killed(status),
            "{what}: the hub stopped by itself ({}); stderr:\n{}",
            exited.unwrap_or(status),
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
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

//! Convergence: four devices work offline against one hub, sync in a random order, and end up
//! with one truth, the hub's.
//!
//! Per seed: a hub on a loopback port and four `SyncNode`s on their own SQLite files, each with
//! its own push and pull page sizes. The first device sets up three locations and three products
//! (EACH, KG, L) with some stock and syncs; the others sync to get them. Then three epochs: in
//! each, the devices take turns at random (seeded) recording offline work — receipts, shipments
//! of what their own view shows (which the hub, having seen the others' shipments, may refuse),
//! transfers, counts, adjustments both ways, allocations and releases, edits of product fields
//! (the same fields and different ones, last-write-wins and manual), a product and a location of
//! their own, and settling conflicts they have heard of — and then a random half of them sync,
//! in a random order. Finally every device syncs in a random order, pass after pass, until two
//! whole passes push and pull nothing.
//!
//! Then:
//!
//! * every op of every device is `acked` or `rejected`, none pending, in flight or parked; a
//!   rejected movement broke `no_negative_inventory` (or, for an allocation,
//!   `allocation_within_available`); a rejected release belongs to an allocation the hub
//!   rejected (or one already released: `allocation_open`); a rejected conflict settlement came
//!   too late (`CONFLICT`, and another device's settlement of it was accepted); no other op is
//!   rejected;
//! * every accepted movement op is exactly one hub transaction, and no rejected op is one;
//! * the hub's stock per product × location equals the sum of all devices' accepted ledger
//!   legs; no level is negative;
//! * every device's `stock()` equals the hub's (nothing pending), its products equal the hub's
//!   field by field (`GET /v1/products`), its locations the hub's, its conflicts (open and
//!   settled) the hub's (`GET /v1/conflicts`), and every rejected op's conflict record is there;
//! * each device's last sync matched the hub's checksum, its `check()` finds nothing and its
//!   file passes `PRAGMA integrity_check`.
//!
//! Three seeds in the normal run; `SYNC_CONVERGENCE_SEEDS` runs more, `SYNC_CONVERGENCE_SEED`
//! sets the first one (each failure names its seed).

// A test: a failed step is a failed test, with the message saying which.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;
use stocksync_model::decimal::SCALE;
use stocksync_model::{Decimal, Money, NewProduct, ProductPatch, ReasonCode, Uom};
use stocksync_node::{
    DeviceRole, Movement, NodeError, Resolution, StoreOptions, SyncConfig, SyncNode, SyncReport,
};
use support::sync::{
    DeviceFile, FileOp, TestHub, assert_none, exactly_once_problems, node_view_problems,
    product_problems,
};
use support::{XorShift, clock_seed, env_u64};

const DEVICES: usize = 4;
const EPOCHS: usize = 3;
const LOCATIONS: [&str; 3] = ["A", "B", "C"];
/// SKU and unit of the shared products.
const PRODUCTS: [(&str, Uom); 3] = [("P-EA", Uom::Each), ("P-KG", Uom::Kg), ("P-L", Uom::L)];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_devices_converge_after_offline_work_synced_in_random_order() {
    let first = env_u64("SYNC_CONVERGENCE_SEED").unwrap_or_else(clock_seed);
    let seeds = env_u64("SYNC_CONVERGENCE_SEEDS").unwrap_or(3);
    println!(
        "convergence: {seeds} seed(s) from {first} (replay with SYNC_CONVERGENCE_SEED={first})"
    );
    for seed in first..first + seeds {
        let t = Instant::now();
        let summary = converge(seed).await;
        println!(
            "convergence seed {seed}: {summary} in {:.1} s",
            t.elapsed().as_secs_f64()
        );
    }
}

/// What one device did, for the summary.
#[derive(Default)]
struct Tally {
    recorded: usize,
    refused_locally: BTreeMap<String, usize>,
    edits: usize,
    settlements: usize,
}

struct Device {
    name: String,
    node: SyncNode,
    db: std::path::PathBuf,
    /// Allocations this device made and has not released.
    open_allocations: Vec<String>,
    last: Option<SyncReport>,
    reports: Vec<SyncReport>,
}

async fn converge(seed: u64) -> String {
    let mut rng = XorShift::new(seed);
    let dir = tempfile::tempdir().expect("temp dir");
    let hub = TestHub::start(&dir.path().join("hub")).await;
    let mut devices = Vec::new();
    for i in 0..DEVICES {
        let db = dir.path().join(format!("dev{i}.db"));
        let config = SyncConfig {
            push_batch: 3 + rng.below(40) as usize,
            pull_limit: 5 + rng.below(200) as u32,
            channels: Vec::new(),
            ..SyncConfig::default()
        };
        let node = SyncNode::open_with(&db, &StoreOptions::default(), config).expect("open");
        node.enroll(
            &hub.url(),
            &hub.enrollment_key,
            DeviceRole::Handheld,
            &format!("dev{i}"),
        )
        .await
        .expect("enroll");
        devices.push(Device {
            name: format!("dev{i}"),
            node,
            db,
            open_allocations: Vec::new(),
            last: None,
            reports: Vec::new(),
        });
    }

    // The shared catalog and some stock, from the first device; everyone syncs.
    {
        let d = &devices[0].node;
        for code in LOCATIONS {
            d.add_location(code, &format!("Aisle {code}"))
                .expect("location");
        }
        for (i, (sku, uom)) in PRODUCTS.iter().enumerate() {
            d.add_product(&NewProduct {
                barcode: Some(format!("400638133393{i}")),
                category: Some("start".into()),
                price: Some(eur(1000)),
                uom: *uom,
                ..NewProduct::new(*sku, format!("Product {sku}"))
            })
            .expect("product");
            for location in LOCATIONS {
                d.record(&Movement::Receive {
                    product: (*sku).into(),
                    location: location.into(),
                    quantity: units(10),
                    uom: None,
                    unit_cost: None,
                    reference: None,
                })
                .expect("receipt");
            }
        }
    }
    for d in &mut devices {
        sync(d, seed).await;
    }

    // Offline work in epochs, each followed by a random half syncing in a random order.
    let mut tally = Tally::default();
    for epoch in 0..EPOCHS {
        let steps = 40 + rng.below(40);
        for _ in 0..steps {
            let i = rng.below(DEVICES as u64) as usize;
            work(&mut devices[i], i, epoch, &mut rng, &mut tally);
        }
        for i in shuffled(&mut rng, DEVICES) {
            if rng.below(2) == 0 {
                sync(&mut devices[i], seed).await;
            }
        }
    }

    // Sync until two whole passes move nothing.
    let mut quiet = 0;
    let mut passes = 0;
    while quiet < 2 {
        passes += 1;
        assert!(
            passes <= 12,
            "seed {seed}: still not quiet after {passes} passes"
        );
        let mut moved = false;
        for i in shuffled(&mut rng, DEVICES) {
            let r = sync(&mut devices[i], seed).await;
            moved |= r.pushed > 0 || r.pulled > 0;
        }
        quiet = if moved { 0 } else { quiet + 1 };
    }

    let problems = check(&hub, &devices).await;
    assert_none(&problems, &format!("seed {seed}"));

    let files: Vec<DeviceFile> = devices
        .iter()
        .map(|d| DeviceFile::read(&d.name, &d.db))
        .collect();
    let ops: usize = files.iter().map(|f| f.ops.len()).sum();
    let mut rejected: BTreeMap<String, usize> = BTreeMap::new();
    for op in files
        .iter()
        .flat_map(|f| &f.ops)
        .filter(|o| o.state == "rejected")
    {
        let why = op.rule().or(op.code()).unwrap_or("?").to_owned();
        *rejected.entry(format!("{} {why}", op.kind)).or_default() += 1;
    }
    let conflicts = devices[0].node.conflicts(true).expect("conflicts");
    let open = conflicts.iter().filter(|c| c.status == "open").count();
    let duplicates: u64 = devices
        .iter()
        .flat_map(|d| &d.reports)
        .map(|r| r.duplicates)
        .sum();
    format!(
        "{ops} ops ({} recorded in the epochs, {} edits, {} settlements; refused locally \
         {:?}), rejected by the hub {rejected:?}, {} conflicts ({open} open), {} syncs \
         ({passes} final passes), {duplicates} duplicates",
        tally.recorded,
        tally.edits,
        tally.settlements,
        tally.refused_locally,
        conflicts.len(),
        devices.iter().map(|d| d.reports.len()).sum::<usize>(),
    )
}

async fn sync(d: &mut Device, seed: u64) -> SyncReport {
    let r = d
        .node
        .sync_now()
        .await
        .unwrap_or_else(|e| panic!("seed {seed}: {} sync_now: {e}", d.name));
    assert_eq!(r.parked, 0, "seed {seed}: {} parked ops: {r:?}", d.name);
    d.last = Some(r.clone());
    d.reports.push(r.clone());
    r
}

/// One piece of offline work on device `i`.
fn work(d: &mut Device, i: usize, epoch: usize, rng: &mut XorShift, tally: &mut Tally) {
    let node = &d.node;
    // A product and a location of its own, the first time it works.
    if node.find_product(&format!("OWN-{i}")).is_err() {
        node.add_location(&format!("D{i}"), &format!("Dock {i}"))
            .expect("own location");
        node.add_product(&NewProduct {
            category: Some("own".into()),
            ..NewProduct::new(format!("OWN-{i}"), format!("Device {i}'s product"))
        })
        .expect("own product");
    }
    let (sku, uom) = if rng.below(6) == 0 {
        (format!("OWN-{i}"), Uom::Each)
    } else {
        let (s, u) = PRODUCTS[rng.below(3) as usize];
        (s.to_owned(), u)
    };
    let own_location = format!("D{i}");
    let location = if rng.below(5) == 0 {
        own_location
    } else {
        LOCATIONS[rng.below(3) as usize].to_owned()
    };
    let shown = on_hand(node, &sku, &location);
    // Whole units for EACH, halves for the others.
    let qty = |rng: &mut XorShift, max: i64| -> Decimal {
        if uom == Uom::Each {
            units(1 + rng.below(max.max(1) as u64) as i64)
        } else {
            Decimal::from_scaled((1 + rng.below((2 * max).max(1) as u64) as i64) * half())
        }
    };
    let movement = match rng.below(100) {
        0..=21 => Movement::Receive {
            product: sku,
            location,
            quantity: qty(rng, 8),
            uom: None,
            unit_cost: None,
            reference: None,
        },
        // What the view shows, or a little more (refused locally).
        22..=39 => Movement::Ship {
            product: sku,
            location,
            quantity: qty(rng, whole(shown) + 1),
            uom: None,
            reference: None,
        },
        40..=51 => Movement::Transfer {
            product: sku,
            from: location,
            to: LOCATIONS[rng.below(3) as usize].to_owned(),
            quantity: qty(rng, whole(shown).max(1)),
            uom: None,
        },
        52..=57 => Movement::Count {
            product: sku,
            location,
            counted: Decimal::from_scaled(
                (shown.scaled() + (rng.below(5) as i64 - 2) * units(1).scaled()).max(0),
            ),
            uom: None,
        },
        58..=65 => Movement::Adjust {
            product: sku,
            location,
            delta: if rng.below(2) == 0 {
                qty(rng, 3)
            } else {
                Decimal::from_scaled(-qty(rng, 3).scaled())
            },
            uom: None,
            reason: ReasonCode::Other,
        },
        66..=70 => Movement::Allocate {
            product: sku,
            location,
            quantity: qty(rng, 3),
            uom: None,
        },
        71..=74 if !d.open_allocations.is_empty() => Movement::Release {
            allocation_id: d
                .open_allocations
                .swap_remove(rng.below(d.open_allocations.len() as u64) as usize),
        },
        75..=89 => {
            edit(node, i, epoch, rng);
            tally.edits += 1;
            return;
        }
        90..=99 if epoch > 0 => {
            tally.settlements += usize::from(settle(node, rng));
            return;
        }
        _ => Movement::Receive {
            product: sku,
            location,
            quantity: qty(rng, 4),
            uom: None,
            unit_cost: None,
            reference: None,
        },
    };
    match node.record(&movement) {
        Ok(recorded) => {
            tally.recorded += 1;
            if let Movement::Allocate { .. } = movement {
                d.open_allocations.push(recorded.movement_id);
            }
        }
        // A transfer to where it comes from is refused as invalid, not by a rule.
        Err(NodeError::Rule { rule, .. }) => {
            *tally.refused_locally.entry(rule).or_default() += 1;
        }
        Err(NodeError::Invalid { .. }) => {
            *tally.refused_locally.entry("invalid".into()).or_default() += 1;
        }
        Err(e) => panic!("{}: record {movement:?}: {e}", d.name),
    }
}

/// Edits one or two fields of a shared product: names, categories and descriptions merge by
/// last write; prices go to the manual queue when two devices set different ones.
fn edit(node: &SyncNode, i: usize, epoch: usize, rng: &mut XorShift) {
    let (sku, _) = PRODUCTS[rng.below(3) as usize];
    let mut patch = ProductPatch::default();
    for _ in 0..1 + rng.below(2) {
        match rng.below(4) {
            0 => patch.name = Some(format!("{sku} named by dev{i} in epoch {epoch}")),
            1 => {
                patch.category = Some(Some(
                    ["tools", "garden", "paint"][rng.below(3) as usize].into(),
                ))
            }
            2 => patch.description = Some(Some(format!("described by dev{i}"))),
            _ => patch.price = Some(Some(eur([999, 1050, 1200][rng.below(3) as usize]))),
        }
    }
    match node.edit_product(sku, &patch) {
        Ok(_) => {}
        // The same values as now: nothing to do.
        Err(NodeError::Invalid { .. }) => {}
        Err(e) => panic!("dev{i}: edit {sku} {patch:?}: {e}"),
    }
}

/// Settles one open conflict this device knows of and has not settled: a price with one of
/// the usual prices, a refused op by dismissing it. Returns whether it did.
fn settle(node: &SyncNode, rng: &mut XorShift) -> bool {
    let open: Vec<_> = node
        .conflicts(false)
        .expect("conflicts")
        .into_iter()
        .filter(|c| c.local_resolution.is_none())
        .collect();
    if open.is_empty() {
        return false;
    }
    let c = &open[rng.below(open.len() as u64) as usize];
    let (resolution, value) = match c.field.as_deref() {
        Some("price") => (
            Resolution::UseValue,
            Some(["9.99 EUR", "10.5 EUR", "12 EUR"][rng.below(3) as usize].to_owned()),
        ),
        _ => (Resolution::Dismiss, None),
    };
    node.resolve_conflict(&c.id, resolution, value)
        .unwrap_or_else(|e| panic!("settle {c:?}: {e}"));
    true
}

/// Every check of the module comment.
async fn check(hub: &TestHub, devices: &[Device]) -> Vec<String> {
    let api = &hub.api;
    let transactions = api.transactions().await;
    let stock = api.stock().await;
    let products = api.products().await;
    let conflicts: BTreeMap<String, Value> = api
        .all("/v1/conflicts", &[])
        .await
        .into_iter()
        .map(|c| (c["id"].as_str().expect("conflict id").to_owned(), c))
        .collect();
    let open = api.open_conflicts().await;
    let locations: BTreeMap<String, (String, String)> = api
        .all("/v1/inventory/locations", &[])
        .await
        .into_iter()
        .map(|l| {
            let text = |k: &str| l[k].as_str().unwrap_or_default().to_owned();
            (text("id"), (text("code"), text("name")))
        })
        .collect();

    let files: Vec<DeviceFile> = devices
        .iter()
        .map(|d| DeviceFile::read(&d.name, &d.db))
        .collect();
    let refs: Vec<&DeviceFile> = files.iter().collect();
    let ok = |file: &DeviceFile, op: &FileOp| rejection_ok(&files, file, op);
    let mut problems = exactly_once_problems(&refs, &transactions, &stock, &ok);

    for (d, file) in devices.iter().zip(&files) {
        let name = &d.name;
        problems.extend(node_view_problems(name, &d.node, &stock));
        problems.extend(product_problems(name, &d.node, &products));
        match &d.last {
            Some(r) if r.checksum_ok == Some(true) => {}
            r => problems.push(format!("{name}: the last sync's checksum: {r:?}")),
        }
        let mine: BTreeMap<String, (String, String)> = d
            .node
            .locations()
            .expect("locations")
            .into_iter()
            .map(|l| (l.id.to_string(), (l.code, l.name)))
            .collect();
        if mine != locations {
            problems.push(format!(
                "{name}: locations {mine:?}, the hub has {locations:?}"
            ));
        }
        let seen: BTreeMap<String, (String, String)> = d
            .node
            .conflicts(true)
            .expect("conflicts")
            .into_iter()
            .map(|c| (c.id, (c.kind, c.status)))
            .collect();
        let at_hub: BTreeMap<String, (String, String)> = conflicts
            .iter()
            .map(|(id, c)| {
                let text = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
                (id.clone(), (text("kind"), text("status")))
            })
            .collect();
        if seen != at_hub {
            problems.push(format!(
                "{name}: conflicts {seen:?}, the hub has {at_hub:?}"
            ));
        }
        let open_here: BTreeSet<String> = d
            .node
            .conflicts(false)
            .expect("open conflicts")
            .into_iter()
            .map(|c| c.id)
            .collect();
        let open_there: BTreeSet<String> = open.keys().cloned().collect();
        if open_here != open_there {
            problems.push(format!(
                "{name}: open conflicts {open_here:?}, the hub's {open_there:?}"
            ));
        }
        for op in file.ops.iter().filter(|o| o.state == "rejected") {
            let conflict = op.result.as_ref().and_then(|r| r["conflict_id"].as_str());
            if conflict.is_none_or(|c| !seen.contains_key(c)) {
                problems.push(format!(
                    "{name}: rejected op {} names conflict {conflict:?}, which the device \
                     does not have",
                    op.op_id
                ));
            }
        }
        let status = d.node.status().expect("status");
        if status.pending + status.parked != 0 {
            problems.push(format!("{name}: status {status:?}"));
        }
    }
    problems
}

/// Which rejections a hub may make of these devices' ops.
fn rejection_ok(files: &[DeviceFile], file: &DeviceFile, op: &FileOp) -> Result<(), String> {
    let rule = op.rule();
    let ok = match op.kind.as_str() {
        "transaction" | "transfer" => rule == Some("no_negative_inventory"),
        "allocation" => matches!(
            rule,
            Some("allocation_within_available" | "no_negative_inventory")
        ),
        "allocation_release" => {
            // Its allocation was refused, so there is nothing to release.
            let allocation = op.body["allocation_id"].as_str();
            rule == Some("allocation_open")
                || file.ops.iter().any(|o| {
                    o.kind == "allocation"
                        && o.state == "rejected"
                        && o.body["allocation_id"].as_str() == allocation
                })
        }
        // Another device settled it first.
        "conflict_resolution" => {
            let conflict = op.body["conflict_id"].as_str();
            op.code() == Some("CONFLICT")
                && files.iter().flat_map(|f| &f.ops).any(|o| {
                    o.kind == "conflict_resolution"
                        && o.state == "acked"
                        && o.body["conflict_id"].as_str() == conflict
                })
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "a {} may not be rejected with rule {rule:?}, code {:?}",
            op.kind,
            op.code()
        ))
    }
}

fn shuffled(rng: &mut XorShift, n: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        v.swap(i, rng.below(i as u64 + 1) as usize);
    }
    v
}

fn on_hand(node: &SyncNode, sku: &str, location: &str) -> Decimal {
    node.stock(Some(sku), Some(location))
        .expect("stock")
        .first()
        .map_or(Decimal::ZERO, |r| r.on_hand)
}

fn units(n: i64) -> Decimal {
    Decimal::from_scaled(n * 10_i64.pow(SCALE))
}

fn half() -> i64 {
    10_i64.pow(SCALE) / 2
}

fn whole(d: Decimal) -> i64 {
    d.scaled() / 10_i64.pow(SCALE)
}

/// `cents` hundredths of a euro.
fn eur(cents: i64) -> Money {
    Money {
        amount: Decimal::from_scaled(cents * 10_i64.pow(SCALE) / 100),
        currency: "EUR".parse().expect("EUR"),
    }
}

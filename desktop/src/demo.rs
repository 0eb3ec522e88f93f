//! `stocksync demo`: until the sync demo exists, a short offline tour of one handheld node,
//! checked end to end. Exits 0 only if every check held.

use crate::cli::DemoArgs;
use crate::node_cmd::{products_table, stock_table};
use serde_json::json;
use std::process::ExitCode;
use stocksync_model::{Decimal, NewProduct, ProductPatch, ReasonCode, Uom};
use stocksync_node::{DeviceRole, Movement, NewDevice, NodeError, StoreOptions, SyncNode};

struct Tour {
    json: bool,
    checks: Vec<(String, bool)>,
}

impl Tour {
    fn say(&self, text: &str) {
        if !self.json {
            println!("{text}");
        }
    }

    fn check(&mut self, what: &str, ok: bool) {
        if !self.json {
            println!("  [{}] {what}", if ok { "ok" } else { "FAILED" });
        }
        self.checks.push((what.to_owned(), ok));
    }
}

fn d(n: i64) -> Decimal {
    Decimal::from_int(n).unwrap_or(Decimal::ZERO)
}

pub fn run(args: &DemoArgs) -> ExitCode {
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("error: cannot make a temporary directory: {e}");
            return ExitCode::from(3);
        }
    };
    let path = args
        .db
        .clone()
        .unwrap_or_else(|| dir.path().join("handheld.db"));
    let mut tour = Tour {
        json: args.json,
        checks: Vec::new(),
    };
    match play(&mut tour, &path) {
        Ok(()) => {}
        Err(e) => {
            eprintln!("error: the demo stopped: {e}");
            tour.checks
                .push((format!("demo ran to the end ({e})"), false));
        }
    }
    let failed = tour.checks.iter().filter(|(_, ok)| !ok).count();
    if args.json {
        let checks: Vec<_> = tour
            .checks
            .iter()
            .map(|(what, ok)| json!({"check": what, "ok": ok}))
            .collect();
        println!(
            "{}",
            json!({"data": {"ok": failed == 0, "checks": checks, "db": path}})
        );
    } else {
        println!(
            "\n{} of {} checks held.{}",
            tour.checks.len() - failed,
            tour.checks.len(),
            if args.db.is_some() {
                format!(" The database is kept at {}.", path.display())
            } else {
                String::new()
            }
        );
    }
    ExitCode::from(if failed == 0 { 0 } else { 1 })
}

fn play(t: &mut Tour, path: &std::path::Path) -> Result<(), NodeError> {
    t.say("stocksync demo: one handheld, no network at all.\n");
    let node = SyncNode::open(path, &StoreOptions::default())?;
    let device = node.init(&NewDevice {
        org_id: "org_demo".into(),
        branch_id: "branch_main".into(),
        name: "Scanner 1".into(),
        role: DeviceRole::Handheld,
    })?;
    t.say(&format!(
        "1. The scanner is set up as {} (its id is minted on the device, no hub needed).",
        device.device_id
    ));

    node.add_location("A-01", "Aisle A, bay 1")?;
    node.add_location("B-07", "Aisle B, bay 7")?;
    let mut cable = NewProduct::new("USB-C-1M", "USB-C cable, 1 m");
    cable.barcode = Some("4006381333931".into());
    cable.category = Some("electronics".into());
    cable.price = Some(
        "9.99 EUR"
            .parse()
            .map_err(|e: String| NodeError::Storage { message: e })?,
    );
    let mut rope = NewProduct::new("ROPE-10", "Nylon rope");
    rope.uom = Uom::M;
    node.add_product(&cable)?;
    node.add_product(&rope)?;
    t.say("2. Two locations and two products added (a counted one, EACH, and rope by the metre).");

    let scanned = node.find_product("4006381333931")?;
    t.check(
        "a barcode scan finds the product",
        scanned.sku == "USB-C-1M",
    );

    node.record(&Movement::Receive {
        product: "4006381333931".into(),
        location: "A-01".into(),
        quantity: d(20),
        uom: None,
        unit_cost: None,
        reference: Some("PO-1001".into()),
    })?;
    node.record(&Movement::Receive {
        product: "ROPE-10".into(),
        location: "A-01".into(),
        quantity: "12.5".parse().unwrap_or_default(),
        uom: None,
        unit_cost: None,
        reference: None,
    })?;
    t.say("3. Received 20 cables and 12.5 m of rope at A-01.");

    node.record(&Movement::Ship {
        product: "USB-C-1M".into(),
        location: "A-01".into(),
        quantity: d(3),
        uom: None,
        reference: Some("SO-77".into()),
    })?;
    node.record(&Movement::Transfer {
        product: "USB-C-1M".into(),
        from: "A-01".into(),
        to: "B-07".into(),
        quantity: d(5),
        uom: None,
    })?;
    t.say("4. Shipped 3 cables and moved 5 to B-07 (a transfer is two ledger legs, written together).");

    let refused = node.record(&Movement::Ship {
        product: "USB-C-1M".into(),
        location: "B-07".into(),
        quantity: d(6),
        uom: None,
        reference: None,
    });
    let rule = match &refused {
        Err(NodeError::Rule { rule, message }) => {
            t.say(&format!(
                "5. Shipping 6 from B-07 is refused: {message} ({rule})."
            ));
            rule.clone()
        }
        other => format!("{other:?}"),
    };
    t.check(
        "a shipment the view cannot cover is refused by no_negative_inventory",
        rule == "no_negative_inventory",
    );
    let half = node.record(&Movement::Receive {
        product: "USB-C-1M".into(),
        location: "A-01".into(),
        quantity: "0.5".parse().unwrap_or_default(),
        uom: None,
        unit_cost: None,
        reference: None,
    });
    t.check(
        "half a cable is refused as bad input (EACH takes whole numbers)",
        matches!(half, Err(NodeError::Invalid { .. })),
    );

    node.record(&Movement::Count {
        product: "USB-C-1M".into(),
        location: "A-01".into(),
        counted: d(11),
        uom: None,
    })?;
    node.record(&Movement::Adjust {
        product: "ROPE-10".into(),
        location: "A-01".into(),
        delta: "-0.75".parse().unwrap_or_default(),
        uom: None,
        reason: ReasonCode::Damage,
    })?;
    t.say("6. A count found 11 cables at A-01 where the device showed 12 (posts -1); 0.75 m of rope written off as DAMAGE.");

    let allocation = node.record(&Movement::Allocate {
        product: "USB-C-1M".into(),
        location: "B-07".into(),
        quantity: d(4),
        uom: None,
    })?;
    let over = node.record(&Movement::Allocate {
        product: "USB-C-1M".into(),
        location: "B-07".into(),
        quantity: d(2),
        uom: None,
    });
    t.check(
        "allocating more than available is refused (allocation_within_available)",
        matches!(&over, Err(NodeError::Rule { rule, .. }) if rule == "allocation_within_available"),
    );
    t.say(&format!(
        "7. Allocated 4 cables at B-07 to an order ({}).",
        allocation.movement_id
    ));

    let edited = node.edit_product(
        "USB-C-1M",
        &ProductPatch {
            price: Some(Some(
                "11.49 EUR"
                    .parse()
                    .map_err(|e: String| NodeError::Storage { message: e })?,
            )),
            ..Default::default()
        },
    )?;
    t.say("8. The price went up to 11.49 EUR: one automerge change, ready to merge with edits from other devices.");
    if !t.json {
        println!("\n{}", products_table(&node.products()?));
    }
    t.check(
        "the price edit is kept",
        edited.price.map(|p| p.to_string()) == Some("11.49 EUR".into()),
    );

    let stock = node.stock(None, None)?;
    if !t.json {
        println!("{}", stock_table(&stock));
    }
    let level = |sku: &str, loc: &str| {
        stock
            .iter()
            .find(|r| r.sku == sku && r.location_code == loc)
            .map(|r| (r.on_hand.to_string(), r.available.to_string()))
    };
    t.check(
        "cables: 11 on hand at A-01; 5 on hand, 1 available at B-07",
        level("USB-C-1M", "A-01") == Some(("11".into(), "11".into()))
            && level("USB-C-1M", "B-07") == Some(("5".into(), "1".into())),
    );
    t.check(
        "rope: 11.75 m at A-01 (exact decimals)",
        level("ROPE-10", "A-01").map(|l| l.0) == Some("11.75".into()),
    );

    let outbox = node.outbox()?;
    let seqs: Vec<u64> = outbox.iter().map(|o| o.device_seq).collect();
    t.say(&format!(
        "9. {} ops wait in the outbox for the hub, in order (device_seq 1..{}); refused commands wrote nothing.",
        outbox.len(),
        seqs.last().copied().unwrap_or(0)
    ));
    t.check(
        "every change became exactly one pending op, numbered without gaps",
        seqs == (1..=outbox.len() as u64).collect::<Vec<_>>()
            && outbox.len() == 12
            && outbox.iter().all(|o| o.state == "pending"),
    );
    let problems = node.check()?;
    t.check(
        "integrity check passes; ledger, stock view and outbox agree",
        problems.is_empty(),
    );
    Ok(())
}

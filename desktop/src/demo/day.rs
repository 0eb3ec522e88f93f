//! The warehouse day, scene by scene: the catalog is set up and synced, the Wi-Fi drops while
//! everyone keeps scanning, the devices reconnect, the back office settles the manual queue.

use super::{DESKTOP, Demo, HANDHELD, Stop, TABLET, World, verify};
use crate::sync_cmd::{describe_op, money_text, notable_outcomes};
use stocksync_model::{Decimal, Money, NewProduct, ProductPatch, ReasonCode, Uom};
use stocksync_node::{Movement, NodeError, Resolution, SyncNode, SyncReport};
use stocksync_protocol::OpStatus;

/// The SKU whose last units two offline devices both ship.
pub const LAST_UNITS: &str = "HEADLAMP";
/// Where they are.
pub const LAST_UNITS_AT: &str = "STORE";
/// The product whose price the desktop and the tablet both change.
pub const PRICE_CLASH: &str = "DRILL-18V";
/// The product whose name (desktop) and category (tablet) change on different devices.
pub const TWO_FIELDS: &str = "GLOVES-M";
/// The desktop's new name for it.
pub const NEW_NAME: &str = "Work gloves, nitrile, size M";
/// The tablet's new category for it.
pub const NEW_CATEGORY: &str = "workwear";
/// The price the back office finally keeps.
pub const SETTLED_PRICE: &str = "84.90 EUR";

/// What the offline scene leaves for the checks.
pub struct Offline {
    /// The last units as the tablet saw them before it reconnected.
    pub tablet_saw: Decimal,
}

/// Every report of the reconnection, in the order the rounds ran.
pub struct Reconnect {
    /// `(device index, report)`.
    pub reports: Vec<(usize, SyncReport)>,
}

/// Scene 2: the back office creates locations, products and the opening stock; everyone syncs.
pub async fn seed_catalog(demo: &mut Demo, world: &mut World) -> Result<(), Stop> {
    demo.scene(
        "08:00 The back office sets up the catalog on the desktop: 4 locations, 10 products, \
         the opening stock. Then every device syncs.",
    );
    let desk = &world.devices[DESKTOP].node;
    for (code, name) in [
        ("DOCK", "Receiving dock"),
        ("A-01", "Aisle A, bay 1"),
        ("B-07", "Aisle B, bay 7"),
        ("STORE", "Shop floor"),
    ] {
        desk.add_location(code, name)?;
    }
    desk.import_products(&catalog()?)?;
    let mut receipts = 0;
    for (sku, at, qty) in OPENING_STOCK {
        desk.record(&receive(sku, at, qty, "OPENING"))?;
        receipts += 1;
    }
    demo.say(format!(
        "desktop  4 locations, 10 products, {receipts} opening receipts: {} ops in its outbox",
        desk.outbox()?.len()
    ));
    for i in [DESKTOP, HANDHELD, TABLET] {
        let report = world.devices[i].sync().await?;
        demo.say(format!(
            "{:<9}{}",
            world.devices[i].label,
            one_line(&report)
        ));
    }
    let mut everywhere = true;
    for d in &world.devices {
        everywhere &= d.node.products()?.len() == 10 && d.node.locations()?.len() == 4;
    }
    demo.check(
        "every device has the 10 products and the 4 locations",
        everywhere,
    );
    let grid = verify::stock_grid(world).await?;
    demo.check(
        format!(
            "every device's opening stock equals the hub's ({} SKU × location pairs)",
            grid.len()
        ),
        verify::converged(&grid),
    );
    Ok(())
}

/// Scene 3: no network. The three devices work at the same time, each on its own file.
pub fn offline_day(demo: &mut Demo, world: &mut World) -> Result<Offline, Stop> {
    demo.scene(
        "10:05 The Wi-Fi drops. All three keep working at the same time, each on its own \
         database; nothing reaches the hub.",
    );
    let [handheld, tablet, desktop] = [HANDHELD, TABLET, DESKTOP].map(|i| &world.devices[i].node);
    std::thread::scope(|s| {
        let h = s.spawn(|| handheld_work(handheld));
        let t = s.spawn(|| tablet_work(tablet));
        let d = s.spawn(|| desktop_work(desktop));
        [h, t, d].into_iter().try_for_each(|w| {
            w.join().unwrap_or_else(|_| {
                Err(NodeError::Storage {
                    message: "a device's work panicked".into(),
                })
            })
        })
    })?;
    for d in &world.devices {
        for op in d.node.outbox()?.iter().filter(|o| o.state == "pending") {
            demo.say(format!(
                "{:<9}{}",
                d.label,
                describe_op(&d.node, &op.kind, &op.body)
            ));
        }
    }
    let seen: Vec<Decimal> = world
        .devices
        .iter()
        .map(|d| on_hand(&d.node, LAST_UNITS, LAST_UNITS_AT))
        .collect::<Result<_, _>>()?;
    demo.say(format!(
        "{LAST_UNITS} at {LAST_UNITS_AT} as each device sees it: handheld {}, tablet {}, desktop {}. \
         Only 5 were there; the handheld shipped 4 and the tablet 3.",
        seen[HANDHELD], seen[TABLET], seen[DESKTOP]
    ));
    let prices: Vec<String> = world
        .devices
        .iter()
        .map(|d| price_of(&d.node, PRICE_CLASH))
        .collect::<Result<_, _>>()?;
    demo.say(format!(
        "{PRICE_CLASH} price: handheld {}, tablet {} (a promotion), desktop {} (the supplier's rise).",
        prices[HANDHELD], prices[TABLET], prices[DESKTOP]
    ));
    Ok(Offline {
        tablet_saw: seen[TABLET],
    })
}

/// Scene 4: the devices reconnect one after the other, then sync once more so that each has
/// what the others sent.
pub async fn reconnect(demo: &mut Demo, world: &mut World) -> Result<Reconnect, Stop> {
    demo.scene(
        "11:30 The Wi-Fi is back. The devices reconnect one after the other: the handheld, \
         the desktop, then the tablet.",
    );
    let mut reports = Vec::new();
    for i in [HANDHELD, DESKTOP, TABLET] {
        let report = world.devices[i].sync().await?;
        let device = &world.devices[i];
        demo.say(format!("{:<9}{}", device.label, one_line(&report)));
        for line in notable_outcomes(&device.node, &report)? {
            demo.say(format!(
                "           {}: {}",
                line["status"].as_str().unwrap_or_default(),
                line["text"].as_str().unwrap_or_default()
            ));
        }
        reports.push((i, report));
    }
    let tablet = &world.devices[TABLET].node;
    demo.say(format!(
        "The tablet now shows {} {LAST_UNITS} at {LAST_UNITS_AT}: its refused shipment was taken \
         back and the hub's count applied.",
        on_hand(tablet, LAST_UNITS, LAST_UNITS_AT)?
    ));
    demo.say("A second round, so each device also gets what the others sent after it:");
    for i in [HANDHELD, DESKTOP, TABLET] {
        let report = world.devices[i].sync().await?;
        demo.say(format!(
            "{:<9}{}",
            world.devices[i].label,
            one_line(&report)
        ));
        reports.push((i, report));
    }
    let queue = world.api.get("/v1/conflicts?status=open").await?;
    let open = queue["data"].as_array().cloned().unwrap_or_default();
    demo.say(format!("The hub's manual queue holds {} open:", open.len()));
    for c in &open {
        demo.say(format!("  {}", verify::hub_conflict_text(world, c)));
    }
    Ok(Reconnect { reports })
}

/// Scene 6: the back office settles the queue from the desktop; everyone syncs.
pub async fn settle_conflicts(demo: &mut Demo, world: &mut World) -> Result<(), Stop> {
    demo.scene(&format!(
        "14:00 The back office settles the manual queue on the desktop: the drill keeps the \
         tablet's promotion, {SETTLED_PRICE}; the refused shipment is acknowledged. Everyone syncs."
    ));
    let desk = &world.devices[DESKTOP].node;
    for c in desk.conflicts(false)? {
        let (resolution, value) = match c.field.as_deref() {
            Some("price") => (Resolution::UseValue, Some(SETTLED_PRICE.to_owned())),
            _ => (Resolution::Dismiss, None),
        };
        desk.resolve_conflict(&c.id, resolution, value.clone())?;
        demo.say(format!(
            "desktop  {} {}{}",
            match resolution {
                Resolution::UseValue => "resolves",
                Resolution::Dismiss => "dismisses",
            },
            c.id,
            value.map(|v| format!(" with {v}")).unwrap_or_default()
        ));
    }
    for i in [DESKTOP, HANDHELD, TABLET] {
        let report = world.devices[i].sync().await?;
        demo.say(format!(
            "{:<9}{}",
            world.devices[i].label,
            one_line(&report)
        ));
    }
    Ok(())
}

/// `pushed 5 (applied 4, rejected 1, 1 to the manual queue), pulled 12 changes, checksum ok`.
pub fn one_line(r: &SyncReport) -> String {
    let mut parts = Vec::new();
    if r.pushed > 0 {
        let clashes = r
            .outcomes
            .iter()
            .filter(|o| o.status == OpStatus::Conflict)
            .count();
        let mut answered = vec![if clashes > 0 {
            format!(
                "applied {}, {clashes} with a field clash for the manual queue",
                r.applied
            )
        } else {
            format!("applied {}", r.applied)
        }];
        if r.duplicates > 0 {
            answered.push(format!("duplicates {}", r.duplicates));
        }
        if r.rejected > 0 {
            answered.push(format!("rejected {}", r.rejected));
        }
        parts.push(format!("pushed {} ({})", r.pushed, answered.join(", ")));
    } else {
        parts.push("nothing to push".into());
    }
    parts.push(format!("pulled {} changes", r.pulled));
    parts.push(
        match r.checksum_ok {
            Some(true) => "checksum ok",
            Some(false) => "CHECKSUM DIFFERS",
            None => "no checksum",
        }
        .into(),
    );
    format!("{}, {} ms", parts.join(", "), r.duration_ms)
}

fn on_hand(node: &SyncNode, sku: &str, at: &str) -> Result<Decimal, NodeError> {
    Ok(node
        .stock(Some(sku), Some(at))?
        .first()
        .map(|r| r.on_hand)
        .unwrap_or(Decimal::ZERO))
}

fn price_of(node: &SyncNode, sku: &str) -> Result<String, NodeError> {
    Ok(node
        .find_product(sku)?
        .price
        .map(|p| money_text(&p.to_string()))
        .unwrap_or_else(|| "(none)".into()))
}

// The devices' work while offline: plain calls on `SyncNode`, as an app would make them.

fn handheld_work(n: &SyncNode) -> Result<(), NodeError> {
    n.record(&receive("CABLE-USBC", "DOCK", "24", "PO-2041"))?;
    n.record(&transfer("CABLE-USBC", "DOCK", "A-01", "24"))?;
    n.record(&count("BOLTS-M8", "B-07", "14"))?;
    n.record(&ship(LAST_UNITS, LAST_UNITS_AT, "4", "SO-5120"))?;
    n.record(&ship("ROPE-NYL", "B-07", "12.5", "SO-5121"))?;
    Ok(())
}

fn tablet_work(n: &SyncNode) -> Result<(), NodeError> {
    n.record(&ship(LAST_UNITS, LAST_UNITS_AT, "3", "POS-88"))?;
    n.record(&ship("CABLE-USBC", "STORE", "2", "POS-89"))?;
    n.record(&transfer("BATT-AA", "A-01", "STORE", "6"))?;
    n.edit_product(
        PRICE_CLASH,
        &ProductPatch {
            price: Some(Some(money("84.90 EUR")?)),
            ..ProductPatch::default()
        },
    )?;
    n.edit_product(
        TWO_FIELDS,
        &ProductPatch {
            category: Some(Some(NEW_CATEGORY.into())),
            ..ProductPatch::default()
        },
    )?;
    Ok(())
}

fn desktop_work(n: &SyncNode) -> Result<(), NodeError> {
    n.record(&receive(TWO_FIELDS, "A-01", "10", "PO-2042"))?;
    n.record(&Movement::Adjust {
        product: "PAINT-W".into(),
        location: "B-07".into(),
        delta: qty("-1"),
        uom: None,
        reason: ReasonCode::Damage,
    })?;
    n.edit_product(
        PRICE_CLASH,
        &ProductPatch {
            price: Some(Some(money("94.00 EUR")?)),
            ..ProductPatch::default()
        },
    )?;
    n.edit_product(
        TWO_FIELDS,
        &ProductPatch {
            name: Some(NEW_NAME.into()),
            ..ProductPatch::default()
        },
    )?;
    Ok(())
}

/// SKU, name, barcode, category, unit, price.
const CATALOG: [(&str, &str, &str, &str, Uom, &str); 10] = [
    (
        "CABLE-USBC",
        "USB-C cable, 1 m",
        "4006381333931",
        "electronics",
        Uom::Each,
        "9.99 EUR",
    ),
    (
        LAST_UNITS,
        "LED head lamp",
        "4012345000017",
        "outdoor",
        Uom::Each,
        "24.90 EUR",
    ),
    (
        PRICE_CLASH,
        "Cordless drill 18 V",
        "4012345000024",
        "tools",
        Uom::Each,
        "89.00 EUR",
    ),
    (
        TWO_FIELDS,
        "Work gloves, size M",
        "4012345000031",
        "safety",
        Uom::Each,
        "6.50 EUR",
    ),
    (
        "TAPE-50",
        "Duct tape, 50 m",
        "4012345000048",
        "hardware",
        Uom::Each,
        "7.25 EUR",
    ),
    (
        "ROPE-NYL",
        "Nylon rope",
        "4012345000055",
        "hardware",
        Uom::M,
        "1.20 EUR",
    ),
    (
        "BOLTS-M8",
        "M8 bolts, box of 100",
        "4012345000062",
        "hardware",
        Uom::Each,
        "12.40 EUR",
    ),
    (
        "BATT-AA",
        "AA batteries, 8-pack",
        "4012345000079",
        "electronics",
        Uom::Each,
        "5.99 EUR",
    ),
    (
        "LADDER-3",
        "Step ladder, 3 steps",
        "4012345000086",
        "tools",
        Uom::Each,
        "49.00 EUR",
    ),
    (
        "PAINT-W",
        "Wall paint, white, 10 l",
        "4012345000093",
        "paint",
        Uom::Each,
        "39.90 EUR",
    ),
];

/// SKU, location, quantity received before the day starts.
const OPENING_STOCK: [(&str, &str, &str); 14] = [
    ("CABLE-USBC", "A-01", "40"),
    ("CABLE-USBC", "STORE", "10"),
    (LAST_UNITS, LAST_UNITS_AT, "5"),
    (PRICE_CLASH, "B-07", "6"),
    (PRICE_CLASH, "STORE", "2"),
    (TWO_FIELDS, "A-01", "30"),
    ("TAPE-50", "A-01", "25"),
    ("TAPE-50", "STORE", "8"),
    ("ROPE-NYL", "B-07", "120.5"),
    ("BOLTS-M8", "B-07", "15"),
    ("BATT-AA", "A-01", "60"),
    ("BATT-AA", "STORE", "24"),
    ("LADDER-3", "B-07", "4"),
    ("PAINT-W", "B-07", "12"),
];

fn catalog() -> Result<Vec<NewProduct>, NodeError> {
    CATALOG
        .iter()
        .map(|(sku, name, barcode, category, uom, price)| {
            Ok(NewProduct {
                barcode: Some((*barcode).into()),
                category: Some((*category).into()),
                uom: *uom,
                price: Some(money(price)?),
                ..NewProduct::new(*sku, *name)
            })
        })
        .collect()
}

fn money(text: &str) -> Result<Money, NodeError> {
    text.parse().map_err(|e: String| NodeError::Storage {
        message: format!("the demo's price `{text}`: {e}"),
    })
}

/// The demo's quantities are literals; a bad one would be refused by the node as a zero.
fn qty(text: &str) -> Decimal {
    text.parse().unwrap_or(Decimal::ZERO)
}

fn receive(sku: &str, at: &str, q: &str, reference: &str) -> Movement {
    Movement::Receive {
        product: sku.into(),
        location: at.into(),
        quantity: qty(q),
        uom: None,
        unit_cost: None,
        reference: Some(reference.into()),
    }
}

fn ship(sku: &str, at: &str, q: &str, reference: &str) -> Movement {
    Movement::Ship {
        product: sku.into(),
        location: at.into(),
        quantity: qty(q),
        uom: None,
        reference: Some(reference.into()),
    }
}

fn transfer(sku: &str, from: &str, to: &str, q: &str) -> Movement {
    Movement::Transfer {
        product: sku.into(),
        from: from.into(),
        to: to.into(),
        quantity: qty(q),
        uom: None,
    }
}

fn count(sku: &str, at: &str, counted: &str) -> Movement {
    Movement::Count {
        product: sku.into(),
        location: at.into(),
        counted: qty(counted),
        uom: None,
    }
}

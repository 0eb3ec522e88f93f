//! `crash-writer DB_PATH`: a picker's handheld that never stops writing, for the crash test.
//!
//! It opens the node at `DB_PATH` (synchronous = FULL), sets the device up if it is not yet
//! (device, locations `A` and `B`, product `CRASH-1`; each step only if missing, since a crash
//! may have cut the previous setup short), prints `ready`, then records movements forever:
//! receipts, shipments, two-leg transfers, adjustments, counts, allocations and releases.
//!
//! Output, one line per event, flushed at once so that the parent knows what has committed:
//!
//! * `ready`: setup is complete;
//! * `done <op_id> <movement_id>`: `SyncNode::record` returned, the commit is durable;
//! * `refused <rule>`: a business rule said no and nothing was written.
//!
//! Any other error goes to stderr and the process exits with status 3. It is meant to be killed.

use std::convert::Infallible;
use std::io::Write;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};
use stocksync_model::decimal::SCALE;
use stocksync_model::{Decimal, NewProduct, ReasonCode, Uom};
use stocksync_node::{DeviceRole, Movement, NewDevice, NodeError, StoreOptions, SyncNode};

const SKU: &str = "CRASH-1";
const BARCODE: &str = "0000000000017";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, path] = args.as_slice() else {
        eprintln!("usage: crash-writer DB_PATH");
        return ExitCode::from(2);
    };
    match run(path) {
        Ok(never) => match never {},
        Err(message) => {
            eprintln!("crash-writer: {message}");
            ExitCode::from(3)
        }
    }
}

fn run(path: &str) -> Result<Infallible, String> {
    let node = SyncNode::open(path, &StoreOptions::default()).map_err(|e| format!("open: {e}"))?;
    setup(&node).map_err(|e| format!("setup: {e}"))?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    say(&mut out, "ready")?;
    let mut rng = XorShift::from_process();
    // Allocations made by this process and not yet released (a restart forgets them: they
    // stay open, which is what a real device would do with an order still waiting).
    let mut open_allocations: Vec<String> = Vec::new();
    loop {
        let movement = next_movement(&node, &mut rng, &mut open_allocations)?;
        match node.record(&movement) {
            Ok(recorded) => {
                if let Movement::Allocate { .. } = movement {
                    open_allocations.push(recorded.movement_id.clone());
                }
                say(
                    &mut out,
                    &format!("done {} {}", recorded.op_id, recorded.movement_id),
                )?;
            }
            Err(NodeError::Rule { rule, .. }) => say(&mut out, &format!("refused {rule}"))?,
            Err(e) => return Err(format!("record {movement:?}: {e}")),
        }
    }
}

/// Creates whatever of the device, the two locations and the product is missing.
fn setup(node: &SyncNode) -> Result<(), NodeError> {
    match node.device() {
        Ok(_) => {}
        Err(NodeError::NotInitialised) => {
            node.init(&NewDevice {
                org_id: "org-crash".into(),
                branch_id: "branch-crash".into(),
                name: "Crash scanner".into(),
                role: DeviceRole::Handheld,
            })?;
        }
        Err(e) => return Err(e),
    }
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
            let mut product = NewProduct::new(SKU, "Crash test widget");
            product.barcode = Some(BARCODE.into());
            product.uom = Uom::Each;
            node.add_product(&product)?;
        }
        Err(e) => return Err(e),
    }
    Ok(())
}

/// Picks the next movement: mostly receipts, then shipments, transfers, adjustments, and now
/// and then a count, an allocation or a release.
fn next_movement(
    node: &SyncNode,
    rng: &mut XorShift,
    open_allocations: &mut Vec<String>,
) -> Result<Movement, String> {
    let product = || SKU.to_owned();
    let receive = |rng: &mut XorShift| -> Result<Movement, String> {
        Ok(Movement::Receive {
            product: BARCODE.to_owned(),
            location: "A".into(),
            quantity: units(1 + rng.below(5) as i64)?,
            uom: None,
            unit_cost: None,
            reference: Some(format!("PO-{}", rng.below(10_000))),
        })
    };
    let roll = rng.below(100);
    Ok(match roll {
        0..=39 => receive(rng)?,
        40..=54 => {
            // Ship only what the view shows, as a picker would.
            if on_hand(node, "A")?.is_positive() {
                Movement::Ship {
                    product: product(),
                    location: "A".into(),
                    quantity: units(1)?,
                    uom: None,
                    reference: Some(format!("SO-{}", rng.below(10_000))),
                }
            } else {
                receive(rng)?
            }
        }
        55..=74 => Movement::Transfer {
            product: product(),
            from: "A".into(),
            to: "B".into(),
            quantity: units(1)?,
            uom: None,
        },
        75..=86 => {
            let up = rng.below(2) == 0;
            let location = if rng.below(3) == 0 { "B" } else { "A" };
            Movement::Adjust {
                product: product(),
                location: location.into(),
                delta: units(if up { 1 } else { -1 })?,
                uom: None,
                reason: if up {
                    ReasonCode::Found
                } else if rng.below(2) == 0 {
                    ReasonCode::Damage
                } else {
                    ReasonCode::Shrinkage
                },
            }
        }
        87..=90 => {
            // Shipping from B without looking: refused when B is empty.
            Movement::Ship {
                product: product(),
                location: "B".into(),
                quantity: units(1)?,
                uom: None,
                reference: None,
            }
        }
        91..=93 => {
            let shown = on_hand(node, "B")?.scaled() / 10_i64.pow(SCALE);
            let counted = (shown + rng.below(3) as i64 - 1).max(0);
            Movement::Count {
                product: product(),
                location: "B".into(),
                counted: units(counted)?,
                uom: None,
            }
        }
        94..=96 => Movement::Allocate {
            product: product(),
            location: "A".into(),
            quantity: units(1)?,
            uom: None,
        },
        _ => match open_allocations.pop() {
            Some(allocation_id) => Movement::Release { allocation_id },
            None => receive(rng)?,
        },
    })
}

/// What the device's view shows on hand for the product at `location`.
fn on_hand(node: &SyncNode, location: &str) -> Result<Decimal, String> {
    let rows = node
        .stock(Some(SKU), Some(location))
        .map_err(|e| format!("stock at {location}: {e}"))?;
    Ok(rows.first().map_or(Decimal::ZERO, |r| r.on_hand))
}

fn units(n: i64) -> Result<Decimal, String> {
    Decimal::from_int(n).ok_or_else(|| format!("{n} units do not fit a decimal"))
}

/// Writes one line and flushes it, so it is out of the process before the next write begins.
fn say(out: &mut impl Write, line: &str) -> Result<(), String> {
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|e| format!("stdout: {e}"))
}

/// xorshift64*: tiny, deterministic per seed, good enough to pick movements.
struct XorShift(u64);

impl XorShift {
    /// Seeded from the process id and the clock, so every restart writes a different mix.
    fn from_process() -> XorShift {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let seed = nanos ^ (u64::from(std::process::id()) << 32) ^ 0x9E37_79B9_7F4A_7C15;
        XorShift(if seed == 0 { 1 } else { seed })
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform enough in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

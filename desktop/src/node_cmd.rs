//! `stocksync node …`: each subcommand is one call on `SyncNode` and one printout.

use crate::cli::{LocationCommand, NodeArgs, NodeCommand, ProductCommand};
use crate::output::{self, signed, table};
use crate::sync_cmd;
use serde_json::json;
use std::process::ExitCode;
use stocksync_model::{
    Decimal, Location, Money, NewProduct, Product, ProductPatch, ValidationErrors,
};
use stocksync_node::{Movement, NewDevice, NodeError, Recorded, StockRow, StoreOptions, SyncNode};

pub fn run(args: NodeArgs) -> ExitCode {
    let json = args.json;
    let Some(db) = args.db.clone() else {
        let e = NodeError::Invalid {
            details: ValidationErrors::single("db", "Give --db PATH (or set STOCKSYNC_DB)"),
        };
        return output::failure(json, &e);
    };
    // Only the commands that make a device create its file: a mistyped path must not turn
    // into an empty database that answers "(none)".
    let creates = matches!(
        args.command,
        NodeCommand::Init { .. } | NodeCommand::Enroll { .. }
    );
    if !creates && !db.exists() {
        return output::failure(json, &output::no_database(&db));
    }
    let options = StoreOptions {
        synchronous: args.synchronous,
        ..StoreOptions::default()
    };
    let node = match SyncNode::open(&db, &options) {
        Ok(node) => node,
        Err(e) => return output::failure(json, &e),
    };
    match execute(&node, args.command, json, &db) {
        Ok(code) => code,
        Err(e) => output::failure(json, &e),
    }
}

fn execute(
    node: &SyncNode,
    command: NodeCommand,
    json: bool,
    db: &std::path::Path,
) -> Result<ExitCode, NodeError> {
    Ok(match command {
        NodeCommand::Init {
            org,
            branch,
            name,
            role,
        } => {
            let device = node.init(&NewDevice {
                org_id: org,
                branch_id: branch,
                name,
                role,
            })?;
            output::success(json, &device, || {
                format!(
                    "device {} ({}, {}) ready in org {} / branch {}",
                    device.device_id, device.name, device.role, device.org_id, device.branch_id
                )
            })
        }
        NodeCommand::Location(LocationCommand::Add { code, name }) => {
            let location = node.add_location(&code, &name)?;
            output::success(json, &location, || {
                format!("location {} added: {}", location.code, location.id)
            })
        }
        NodeCommand::Location(LocationCommand::List) => {
            let locations = node.locations()?;
            output::success(json, &locations, || locations_table(&locations))
        }
        NodeCommand::Product(cmd) => product(node, cmd, json)?,
        NodeCommand::Receive {
            at,
            qty,
            unit,
            unit_cost,
            currency,
            reference,
        } => {
            let unit_cost = money("unit_cost", unit_cost, currency.as_deref(), None)?;
            let movement = Movement::Receive {
                product: at.sku,
                location: at.location,
                quantity: qty,
                uom: unit.uom,
                unit_cost,
                reference,
            };
            recorded(node, &movement, json, "received")?
        }
        NodeCommand::Ship {
            at,
            qty,
            unit,
            reference,
        } => {
            let movement = Movement::Ship {
                product: at.sku,
                location: at.location,
                quantity: qty,
                uom: unit.uom,
                reference,
            };
            recorded(node, &movement, json, "shipped")?
        }
        NodeCommand::Adjust {
            at,
            qty,
            unit,
            reason,
        } => {
            let movement = Movement::Adjust {
                product: at.sku,
                location: at.location,
                delta: qty,
                uom: unit.uom,
                reason,
            };
            recorded(node, &movement, json, "adjusted")?
        }
        NodeCommand::Count { at, counted, unit } => {
            let movement = Movement::Count {
                product: at.sku,
                location: at.location,
                counted,
                uom: unit.uom,
            };
            recorded(node, &movement, json, "counted")?
        }
        NodeCommand::Transfer {
            sku,
            from,
            to,
            qty,
            unit,
        } => {
            let movement = Movement::Transfer {
                product: sku,
                from,
                to,
                quantity: qty,
                uom: unit.uom,
            };
            recorded(node, &movement, json, "transferred")?
        }
        NodeCommand::Allocate { at, qty, unit } => {
            let movement = Movement::Allocate {
                product: at.sku,
                location: at.location,
                quantity: qty,
                uom: unit.uom,
            };
            recorded(node, &movement, json, "allocated")?
        }
        NodeCommand::Release { allocation_id } => {
            let movement = Movement::Release { allocation_id };
            recorded(node, &movement, json, "released")?
        }
        NodeCommand::Stock { sku, location } => {
            let rows = node.stock(sku.as_deref(), location.as_deref())?;
            output::success(json, &rows, || stock_table(&rows))
        }
        NodeCommand::Ledger { sku, limit } => {
            let rows = node.ledger(sku.as_deref(), limit)?;
            output::success(json, &rows, || {
                let body: Vec<Vec<String>> = rows
                    .iter()
                    .map(|r| {
                        vec![
                            r.seq.to_string(),
                            r.occurred_at.clone(),
                            r.kind.clone(),
                            r.sku.clone(),
                            r.location_code.clone(),
                            signed(r.on_hand_delta),
                            signed(r.allocated_delta),
                            r.reason_code
                                .clone()
                                .or_else(|| r.reference.clone())
                                .unwrap_or_default(),
                            r.state.clone(),
                        ]
                    })
                    .collect();
                table(
                    &[
                        "SEQ", "WHEN", "KIND", "SKU", "LOCATION", "ON_HAND", "ALLOC", "NOTE",
                        "STATE",
                    ],
                    &body,
                )
            })
        }
        NodeCommand::Outbox => {
            let rows = node.outbox()?;
            output::success(json, &rows, || {
                let body: Vec<Vec<String>> = rows
                    .iter()
                    .map(|r| {
                        vec![
                            r.device_seq.to_string(),
                            r.kind.clone(),
                            r.state.clone(),
                            r.attempts.to_string(),
                            r.op_id.clone(),
                            sync_cmd::describe_op(node, &r.kind, &r.body),
                        ]
                    })
                    .collect();
                table(&["SEQ", "KIND", "STATE", "TRIES", "OP_ID", "WHAT"], &body)
            })
        }
        hub @ (NodeCommand::Enroll { .. }
        | NodeCommand::Sync
        | NodeCommand::Run
        | NodeCommand::Status
        | NodeCommand::Conflicts { .. }
        | NodeCommand::Resolve { .. }
        | NodeCommand::Diagnostics) => sync_cmd::execute(node, hub, json, db)?,
        NodeCommand::Check => {
            let problems = node.check()?;
            if problems.is_empty() {
                output::success(json, &json!({"ok": true, "problems": []}), || {
                    "ok: integrity check passed; ledger, stock view and outbox agree".into()
                })
            } else {
                let e = NodeError::Storage {
                    message: problems.join("; "),
                };
                output::failure(json, &e)
            }
        }
    })
}

fn product(node: &SyncNode, cmd: ProductCommand, json: bool) -> Result<ExitCode, NodeError> {
    Ok(match cmd {
        ProductCommand::Add {
            sku,
            name,
            barcode,
            category,
            description,
            uom,
            price,
            currency,
        } => {
            let new = NewProduct {
                sku,
                name,
                barcode,
                description,
                category,
                uom,
                price: money("price", price, currency.as_deref(), None)?,
            };
            let p = node.add_product(&new)?;
            output::success(json, &p, || format!("product {} added: {}", p.sku, p.id))
        }
        ProductCommand::Edit {
            product,
            sku,
            name,
            barcode,
            category,
            description,
            status,
            price,
            currency,
            clear_price,
        } => {
            let current = node.find_product(&product)?;
            let clearable = |v: Option<String>| v.map(|s| Some(s).filter(|s| !s.is_empty()));
            let price = if clear_price {
                Some(None)
            } else if price.is_some() || currency.is_some() {
                let amount = price.or(current.price.map(|p| p.amount));
                Some(money("price", amount, currency.as_deref(), current.price)?)
            } else {
                None
            };
            let patch = ProductPatch {
                sku,
                name,
                barcode: clearable(barcode),
                description: clearable(description),
                category: clearable(category),
                status,
                price,
            };
            let p = node.edit_product(&current.id.to_string(), &patch)?;
            output::success(json, &p, || {
                format!(
                    "product {} updated\n{}",
                    p.sku,
                    products_table(std::slice::from_ref(&p))
                )
            })
        }
        ProductCommand::Import { file } => {
            let products = read_products(&file)?;
            let added = node.import_products(&products)?;
            output::success(json, &json!({ "imported": added }), || {
                format!(
                    "{} imported",
                    sync_cmd::count(added as u64, "product", "products")
                )
            })
        }
        ProductCommand::Find { code } => {
            let p = node.find_product(&code)?;
            output::success(json, &p, || products_table(std::slice::from_ref(&p)))
        }
        ProductCommand::List => {
            let products = node.products()?;
            output::success(json, &products, || products_table(&products))
        }
    })
}

/// Reads a JSON array of products from a file or standard input (`-`).
fn read_products(file: &std::path::Path) -> Result<Vec<NewProduct>, NodeError> {
    let bad = |message: String| NodeError::Invalid {
        details: ValidationErrors::single("file", message),
    };
    let text = if file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
            .map_err(|e| bad(format!("cannot read stdin: {e}")))?
    } else {
        std::fs::read_to_string(file)
            .map_err(|e| bad(format!("cannot read {}: {e}", file.display())))?
    };
    serde_json::from_str(&text).map_err(|e| bad(format!("not a JSON array of products: {e}")))
}

/// An amount and a currency flag → money; the currency may come from `fallback`.
fn money(
    field: &str,
    amount: Option<Decimal>,
    currency: Option<&str>,
    fallback: Option<Money>,
) -> Result<Option<Money>, NodeError> {
    let Some(amount) = amount else {
        return match currency {
            Some(_) => Err(NodeError::Invalid {
                details: ValidationErrors::single(field, "Give an amount with the currency"),
            }),
            None => Ok(None),
        };
    };
    let currency = match (currency, fallback) {
        (Some(c), _) => c.parse().map_err(|e: String| NodeError::Invalid {
            details: ValidationErrors::single(format!("{field}.currency"), e),
        })?,
        (None, Some(f)) => f.currency,
        (None, None) => {
            return Err(NodeError::Invalid {
                details: ValidationErrors::single(
                    format!("{field}.currency"),
                    "Give --currency (ISO 4217, e.g. EUR)",
                ),
            });
        }
    };
    Ok(Some(Money { amount, currency }))
}

fn recorded(
    node: &SyncNode,
    movement: &Movement,
    json: bool,
    verb: &str,
) -> Result<ExitCode, NodeError> {
    let r: Recorded = node.record(movement)?;
    // Every movement has at least one leg, and every leg leaves a stock row for its product.
    let rows = node.stock(Some(r.legs[0].product_id.as_str()), None)?;
    let data = json!({"recorded": r, "stock": rows});
    Ok(output::success(json, &data, || {
        let legs: Vec<String> = r
            .legs
            .iter()
            .map(|l| {
                let code = rows
                    .iter()
                    .find(|s| s.location_id == l.location_id)
                    .map(|s| s.location_code.as_str())
                    .unwrap_or("?");
                if l.allocated_delta != Decimal::ZERO {
                    format!("{} allocated at {code}", signed(l.allocated_delta))
                } else {
                    format!("{} at {code}", signed(l.on_hand_delta))
                }
            })
            .collect();
        let (sku, uom) = rows
            .first()
            .map(|s| (s.sku.as_str(), s.uom.as_str()))
            .unwrap_or_default();
        // A count posts counted − shown: say both, and that an exact count changes nothing.
        let what = match (movement, r.legs.first()) {
            (Movement::Count { counted, .. }, Some(leg)) => {
                let shown = counted.checked_sub(leg.on_hand_delta).unwrap_or(*counted);
                let change = if leg.on_hand_delta == Decimal::ZERO {
                    let at = rows.iter().find(|s| s.location_id == leg.location_id);
                    format!(
                        "no change at {}",
                        at.map_or("?", |s| s.location_code.as_str())
                    )
                } else {
                    legs.join(", ")
                };
                format!("{counted}, this device showed {shown}: {change}")
            }
            _ => legs.join(", "),
        };
        format!(
            "{verb} {sku} {uom}: {what} (op #{} {}, {})\n{}",
            r.device_seq,
            r.op_id,
            r.movement_id,
            stock_table(&rows)
        )
    }))
}

pub fn stock_table(rows: &[StockRow]) -> String {
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.sku.clone(),
                r.location_code.clone(),
                r.on_hand.to_string(),
                r.available.to_string(),
                r.allocated.to_string(),
                signed(r.pending),
                r.synced_on_hand.to_string(),
                r.uom.to_string(),
            ]
        })
        .collect();
    table(
        &[
            "SKU",
            "LOCATION",
            "ON_HAND",
            "AVAILABLE",
            "ALLOCATED",
            "PENDING",
            "SYNCED",
            "UOM",
        ],
        &body,
    )
}

pub fn products_table(products: &[Product]) -> String {
    let body: Vec<Vec<String>> = products
        .iter()
        .map(|p| {
            vec![
                p.sku.clone(),
                p.barcode.clone().unwrap_or_default(),
                p.name.clone(),
                p.uom.to_string(),
                p.price
                    .map(|m| sync_cmd::money_text(&m.to_string()))
                    .unwrap_or_default(),
                p.category.clone().unwrap_or_default(),
                p.status.to_string(),
                p.id.to_string(),
            ]
        })
        .collect();
    table(
        &[
            "SKU", "BARCODE", "NAME", "UOM", "PRICE", "CATEGORY", "STATUS", "ID",
        ],
        &body,
    )
}

fn locations_table(locations: &[Location]) -> String {
    let body: Vec<Vec<String>> = locations
        .iter()
        .map(|l| vec![l.code.clone(), l.name.clone(), l.id.to_string()])
        .collect();
    table(&["CODE", "NAME", "ID"], &body)
}

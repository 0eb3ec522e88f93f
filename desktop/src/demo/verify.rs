//! What the demo checks, against the hub's own numbers (its REST API with the dev API key).

use super::day::{
    LAST_UNITS, LAST_UNITS_AT, NEW_CATEGORY, NEW_NAME, Offline, PRICE_CLASH, Reconnect,
    SETTLED_PRICE, TWO_FIELDS,
};
use super::{DESKTOP, Demo, Stop, TABLET, World};
use crate::output::table;
use crate::sync_cmd::money_text;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use stocksync_model::{Decimal, Money, Product};
use stocksync_protocol::OpStatus;

/// The hub's REST API as an integrator calls it.
pub struct HubApi {
    http: reqwest::Client,
    base: String,
    key: String,
    org: String,
}

impl HubApi {
    /// A client for `base` with an API key of organization `org`.
    pub fn new(base: &str, key: &str, org: &str) -> Result<HubApi, Stop> {
        Ok(HubApi {
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .build()?,
            base: base.trim_end_matches('/').to_owned(),
            key: key.to_owned(),
            org: org.to_owned(),
        })
    }

    /// `GET path`: the whole envelope, or an error naming the path and the hub's message.
    pub async fn get(&self, path: &str) -> Result<Value, Stop> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .header("X-API-Key", &self.key)
            .header("X-Organization-ID", &self.org)
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await?;
        if !status.is_success() {
            return Err(format!("GET {path}: HTTP {status}: {}", body["error"]["message"]).into());
        }
        Ok(body)
    }
}

/// One SKU at one location: what each device shows and what the hub says.
#[derive(Clone, Debug, Serialize)]
pub struct GridRow {
    /// Product.
    pub sku: String,
    /// Location code.
    pub location: String,
    /// On hand on the handheld.
    pub handheld: Option<Decimal>,
    /// On the tablet.
    pub tablet: Option<Decimal>,
    /// On the desktop.
    pub desktop: Option<Decimal>,
    /// At the hub.
    pub hub: Option<Decimal>,
    /// All four agree (a missing row counts as zero).
    pub same: bool,
}

/// Stock per SKU × location on each device and at the hub.
pub async fn stock_grid(world: &World) -> Result<Vec<GridRow>, Stop> {
    let mut grid: BTreeMap<(String, String), [Option<Decimal>; 4]> = BTreeMap::new();
    for (i, d) in world.devices.iter().enumerate() {
        for r in d.node.stock(None, None)? {
            grid.entry((r.sku, r.location_code)).or_default()[i] = Some(r.on_hand);
        }
    }
    // The hub's view, named with the desktop's catalog (the ids are the same everywhere).
    let namer = &world.devices[DESKTOP].node;
    for location in namer.locations()? {
        let body = world
            .api
            .get(&format!("/v1/locations/{}/inventory", location.id))
            .await?;
        for level in body["data"].as_array().into_iter().flatten() {
            let product = level["product_id"].as_str().unwrap_or_default();
            let on_hand: Decimal = level["on_hand"]
                .as_str()
                .unwrap_or_default()
                .parse()
                .map_err(|e| format!("the hub's on_hand for {product}: {e}"))?;
            let sku = namer
                .find_product(product)
                .map(|p| p.sku)
                .unwrap_or_else(|_| product.to_owned());
            grid.entry((sku, location.code.clone())).or_default()[3] = Some(on_hand);
        }
    }
    Ok(grid
        .into_iter()
        .map(|((sku, location), [handheld, tablet, desktop, hub])| {
            let zero = |v: Option<Decimal>| v.unwrap_or(Decimal::ZERO);
            let same = [handheld, tablet, desktop]
                .iter()
                .all(|v| zero(*v) == zero(hub));
            GridRow {
                sku,
                location,
                handheld,
                tablet,
                desktop,
                hub,
                same,
            }
        })
        .collect())
}

/// Every device agrees with the hub on every pair.
pub fn converged(grid: &[GridRow]) -> bool {
    !grid.is_empty() && grid.iter().all(|r| r.same)
}

fn grid_table(grid: &[GridRow]) -> String {
    let cell = |v: Option<Decimal>| v.map(|d| d.to_string()).unwrap_or_else(|| "-".into());
    let rows: Vec<Vec<String>> = grid
        .iter()
        .map(|r| {
            vec![
                r.sku.clone(),
                r.location.clone(),
                cell(r.handheld),
                cell(r.tablet),
                cell(r.desktop),
                cell(r.hub),
                if r.same { "=" } else { "DIFFERS" }.into(),
            ]
        })
        .collect();
    table(
        &[
            "SKU", "LOCATION", "HANDHELD", "TABLET", "DESKTOP", "HUB", "",
        ],
        &rows,
    )
}

/// A hub conflict record in words, products and locations named by the desktop's catalog.
pub fn hub_conflict_text(world: &World, c: &Value) -> String {
    let node = &world.devices[DESKTOP].node;
    let sku = c["product_id"]
        .as_str()
        .map(|p| {
            node.find_product(p)
                .map(|p| p.sku)
                .unwrap_or_else(|_| p.into())
        })
        .unwrap_or_default();
    let id = c["id"].as_str().unwrap_or_default();
    if let Some(field) = c["field"].as_str() {
        let values: Vec<String> = c["values"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|v| v.as_str().map_or("(none)".into(), money_text))
                    .collect()
            })
            .unwrap_or_default();
        format!(
            "{id}  field clash: {field} of {sku}: {}",
            values.join(" | ")
        )
    } else {
        let at = c["location_id"]
            .as_str()
            .map(|l| {
                node.location(l)
                    .map(|l| l.code)
                    .unwrap_or_else(|_| l.into())
            })
            .unwrap_or_default();
        format!(
            "{id}  rejected op ({}) for {sku} at {at}: {}",
            c["rule"].as_str().unwrap_or("?"),
            c["message"].as_str().unwrap_or_default()
        )
    }
}

/// Scene 5: the final table and the checks after the reconnection.
pub async fn after_reconnect(
    demo: &mut Demo,
    world: &World,
    offline: &Offline,
    reconnect: &Reconnect,
) -> Result<(), Stop> {
    demo.scene(
        "The result: stock per SKU × location on each device, and the hub's own numbers from \
         its REST API (GET /v1/locations/{id}/inventory with the dev API key).",
    );
    let grid = stock_grid(world).await?;
    demo.show(&grid_table(&grid));
    demo.check(
        format!(
            "every device's stock equals the hub's, for all {} SKU × location pairs",
            grid.len()
        ),
        converged(&grid),
    );

    let (same, hub_same) = products_agree(world).await?;
    demo.check("product fields are the same on every device", same);
    demo.check("... and at the hub", hub_same);
    let merged = world.devices.iter().all(|d| {
        d.node
            .find_product(TWO_FIELDS)
            .is_ok_and(|p| p.name == NEW_NAME && p.category.as_deref() == Some(NEW_CATEGORY))
    });
    demo.check(
        format!(
            "{TWO_FIELDS} keeps both offline edits everywhere: name \"{NEW_NAME}\" (desktop), \
             category {NEW_CATEGORY} (tablet)"
        ),
        merged,
    );

    check_rejection(demo, world, offline, reconnect, &grid);
    check_price_clash(demo, world).await?;
    check_ops(demo, world).await?;
    check_health(demo, world)?;
    Ok(())
}

/// Exactly one shipment was rejected, by `no_negative_inventory`, and its device shows the
/// hub's number.
fn check_rejection(
    demo: &mut Demo,
    world: &World,
    offline: &Offline,
    reconnect: &Reconnect,
    grid: &[GridRow],
) {
    let rejected: Vec<_> = reconnect
        .reports
        .iter()
        .flat_map(|(i, r)| r.outcomes.iter().map(move |o| (*i, o)))
        .filter(|(_, o)| o.status == OpStatus::Rejected)
        .collect();
    let sent_by_tablet = match rejected.as_slice() {
        [(i, o)] => {
            let is_shipment = world.devices[*i]
                .node
                .outbox()
                .ok()
                .and_then(|rows| rows.into_iter().find(|r| r.op_id == o.op_id))
                .is_some_and(|r| r.body["transaction_type"] == "shipment");
            demo.check(
                format!(
                    "exactly one shipment was rejected, by no_negative_inventory: \"{}\"",
                    o.message.as_deref().unwrap_or_default()
                ),
                is_shipment && o.rule.as_deref() == Some("no_negative_inventory"),
            );
            *i == TABLET
        }
        _ => {
            demo.check(
                format!(
                    "exactly one shipment was rejected, by no_negative_inventory (got {} rejections)",
                    rejected.len()
                ),
                false,
            );
            false
        }
    };
    let hub = grid
        .iter()
        .find(|r| r.sku == LAST_UNITS && r.location == LAST_UNITS_AT)
        .and_then(|r| r.hub);
    let tablet = world.devices[TABLET]
        .node
        .stock(Some(LAST_UNITS), Some(LAST_UNITS_AT))
        .ok()
        .and_then(|rows| rows.first().map(|r| r.on_hand));
    demo.check(
        format!(
            "the tablet, which sent it, shows the corrected on-hand: {} {LAST_UNITS} at \
             {LAST_UNITS_AT} like the hub (it showed {} offline)",
            tablet.map(|d| d.to_string()).unwrap_or_default(),
            offline.tablet_saw
        ),
        sent_by_tablet && tablet.is_some() && tablet == hub && tablet != Some(offline.tablet_saw),
    );
}

/// The price clash waits in the manual queue: the same open conflict on every device and at
/// the hub.
async fn check_price_clash(demo: &mut Demo, world: &World) -> Result<(), Stop> {
    let drill = world.devices[DESKTOP].node.find_product(PRICE_CLASH)?;
    let mut ids = Vec::new();
    for d in &world.devices {
        let open = d.node.conflicts(false)?;
        ids.push(
            open.into_iter()
                .find(|c| {
                    c.field.as_deref() == Some("price")
                        && c.product_id.as_deref() == Some(drill.id.as_str())
                })
                .map(|c| c.id),
        );
    }
    let hub = world.api.get("/v1/conflicts?status=open").await?;
    let at_hub = hub["data"].as_array().into_iter().flatten().any(|c| {
        c["field"] == "price" && Some(c["id"].as_str()) == ids.first().map(|i| i.as_deref())
    });
    let same = ids.iter().all(|i| i.is_some() && *i == ids[0]);
    demo.check(
        format!(
            "the {PRICE_CLASH} price clash is the same open conflict ({}) on every device and at the hub",
            ids[0].as_deref().unwrap_or("missing")
        ),
        same && at_hub,
    );
    Ok(())
}

/// No op lost or doubled: every op answered; the hub's transactions are exactly the devices'
/// accepted movements.
async fn check_ops(demo: &mut Demo, world: &World) -> Result<(), Stop> {
    let (mut total, mut acked, mut rejected, mut movements) = (0, 0, 0, 0u64);
    let mut unanswered = 0;
    for d in &world.devices {
        for op in d.node.outbox()? {
            total += 1;
            match op.state.as_str() {
                "acked" => {
                    acked += 1;
                    if matches!(
                        op.kind.as_str(),
                        "transaction" | "transfer" | "allocation" | "allocation_release"
                    ) {
                        movements += 1;
                    }
                }
                "rejected" => rejected += 1,
                _ => unanswered += 1,
            }
        }
    }
    let body = world
        .api
        .get("/v1/inventory/transactions?pageSize=1")
        .await?;
    let at_hub = body["meta"]["pagination"]["total"].as_u64().unwrap_or(0);
    demo.check(
        format!(
            "no op lost or doubled: all {total} ops of the three devices are acked ({acked}) or \
             rejected ({rejected}); the hub holds {at_hub} transactions = the devices' {movements} \
             accepted movements"
        ),
        unanswered == 0 && rejected == 1 && at_hub == movements && movements > 0,
    );
    Ok(())
}

/// Each device's own check is clean and its last sync's checksum matched.
fn check_health(demo: &mut Demo, world: &World) -> Result<(), Stop> {
    let mut problems = Vec::new();
    for d in &world.devices {
        problems.extend(
            d.node
                .check()?
                .into_iter()
                .map(|p| format!("{}: {p}", d.label)),
        );
    }
    demo.check(
        format!(
            "each device's check() is empty (integrity; ledger = stock view = outbox){}",
            if problems.is_empty() {
                String::new()
            } else {
                format!(": {}", problems.join("; "))
            }
        ),
        problems.is_empty(),
    );
    let checksums: Vec<String> = world
        .devices
        .iter()
        .map(|d| {
            format!(
                "{} {}",
                d.label,
                match d.last.as_ref().and_then(|r| r.checksum_ok) {
                    Some(true) => "ok",
                    Some(false) => "DIFFERS",
                    None => "none",
                }
            )
        })
        .collect();
    demo.check(
        format!(
            "each device's last sync ended with checksum_ok = true ({})",
            checksums.join(", ")
        ),
        world
            .devices
            .iter()
            .all(|d| d.last.as_ref().and_then(|r| r.checksum_ok) == Some(true)),
    );
    Ok(())
}

/// `(the devices agree, the hub agrees with them)` on every product's fields.
async fn products_agree(world: &World) -> Result<(bool, bool), Stop> {
    let views: Vec<Vec<Value>> = world
        .devices
        .iter()
        .map(|d| Ok(d.node.products()?.iter().map(fields).collect()))
        .collect::<Result<_, Stop>>()?;
    let same = views.iter().all(|v| *v == views[0]);
    let mut hub_same = true;
    for p in world.devices[DESKTOP].node.products()? {
        let body = world.api.get(&format!("/v1/products/{}", p.id)).await?;
        hub_same &= hub_fields(&body["data"]) == fields(&p);
    }
    Ok((same, hub_same))
}

/// A product's fields as a person edits them (not the local timestamps).
fn fields(p: &Product) -> Value {
    json!({
        "id": p.id, "sku": p.sku, "barcode": p.barcode, "name": p.name,
        "description": p.description, "category": p.category, "status": p.status,
        "uom": p.uom, "price": p.price.map(|m| m.to_string()),
    })
}

/// The same fields from the hub's product resource.
fn hub_fields(r: &Value) -> Value {
    let price = r["price"]["amount"].as_str().and_then(|amount| {
        format!(
            "{amount} {}",
            r["price"]["currency"].as_str().unwrap_or_default()
        )
        .parse::<Money>()
        .ok()
    });
    json!({
        "id": r["id"], "sku": r["sku"], "barcode": r["barcode"], "name": r["name"],
        "description": r["description"], "category": r["category"], "status": r["status"],
        "uom": r["uom"], "price": price.map(|m| m.to_string()),
    })
}

/// After the back office settled the queue: the price everywhere, nothing open, still converged.
pub async fn after_settling(demo: &mut Demo, world: &World) -> Result<(), Stop> {
    let settled: Money = SETTLED_PRICE.parse()?;
    let on_devices = world.devices.iter().all(|d| {
        d.node
            .find_product(PRICE_CLASH)
            .is_ok_and(|p| p.price == Some(settled))
    });
    let id = world.devices[DESKTOP].node.find_product(PRICE_CLASH)?.id;
    let hub = world.api.get(&format!("/v1/products/{id}")).await?;
    let at_hub = hub_fields(&hub["data"])["price"] == json!(settled.to_string());
    demo.check(
        format!("the {PRICE_CLASH} price is {SETTLED_PRICE} on every device and at the hub"),
        on_devices && at_hub,
    );
    let mut open_on_devices = 0;
    for d in &world.devices {
        open_on_devices += d.node.conflicts(false)?.len();
    }
    let queue = world.api.get("/v1/conflicts?status=open").await?;
    let open_at_hub = queue["data"].as_array().map_or(0, Vec::len);
    demo.check(
        "no conflict is open on any device nor at the hub",
        open_on_devices == 0 && open_at_hub == 0,
    );
    let grid = stock_grid(world).await?;
    let healthy = world.devices.iter().all(|d| {
        d.last.as_ref().and_then(|r| r.checksum_ok) == Some(true)
            && d.node.check().is_ok_and(|p| p.is_empty())
    });
    demo.check(
        "still converged after that round: stock equals the hub's, checksums match, check() empty",
        converged(&grid) && healthy,
    );
    Ok(())
}

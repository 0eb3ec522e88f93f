//! `stocksync node enroll | sync | run | status | conflicts | resolve | diagnostics`: the commands
//! that talk to a hub. Each runs on a tokio runtime of its own and prints like the local commands
//! (`--json`: `{"data": …}`, or `{"data": null, "error": …}` with the same exit codes).

use crate::cli::NodeCommand;
use crate::output::{self, DONE, table};
use crate::run_lock;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use stocksync_node::{
    ConflictRow, DeviceRole, NodeError, NodeStatus, OpOutcome, OutboxRow, Resolution, SyncEvent,
    SyncListener, SyncNode, SyncReport,
};
use stocksync_protocol::OpStatus;

/// Runs one of the hub commands (the caller routes only those here).
pub fn execute(
    node: &SyncNode,
    command: NodeCommand,
    json: bool,
    db: &Path,
) -> Result<ExitCode, NodeError> {
    match command {
        NodeCommand::Enroll {
            hub,
            enrollment_key,
            role,
            name,
        } => enroll(node, json, db, &hub, &enrollment_key, role, name),
        NodeCommand::Sync => sync(node, json),
        NodeCommand::Run => run(node, json, db),
        NodeCommand::Status => status(node, json, db),
        NodeCommand::Conflicts { all } => conflicts(node, json, all),
        NodeCommand::Resolve {
            conflict_id,
            use_value,
            clear,
            dismiss,
        } => resolve(node, json, &conflict_id, use_value, clear, dismiss),
        NodeCommand::Diagnostics => {
            let bundle = node.diagnostics()?;
            Ok(output::success(json, &bundle, || {
                serde_json::to_string_pretty(&bundle).unwrap_or_default()
            }))
        }
        // Local commands never reach this module.
        _ => Err(NodeError::Invalid {
            details: stocksync_model::ValidationErrors::single("command", "not a sync command"),
        }),
    }
}

/// The tokio runtime the sync calls run on.
fn runtime() -> Result<tokio::runtime::Runtime, NodeError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| NodeError::Storage {
            message: format!("cannot start the async runtime: {e}"),
        })
}

fn enroll(
    node: &SyncNode,
    json: bool,
    db: &Path,
    hub: &str,
    key: &str,
    role: Option<DeviceRole>,
    name: Option<String>,
) -> Result<ExitCode, NodeError> {
    let existing = match node.device() {
        Ok(d) => Some(d),
        Err(NodeError::NotInitialised) => None,
        Err(e) => return Err(e),
    };
    // A fresh database is named after its file unless told otherwise ("scanner.db" → "scanner").
    let name = name.unwrap_or_else(|| {
        db.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "stocksync node".into())
    });
    let role = role.unwrap_or(DeviceRole::Desktop);
    let device = runtime()?.block_on(node.enroll(hub, key, role, &name))?;
    let status = node.status()?;
    // Ops a hub acknowledged before are not sent again; a hub that lost its data lacks them.
    let acked_before = if existing.is_some() {
        node.outbox()?.iter().filter(|r| r.state == "acked").count()
    } else {
        0
    };
    let data = json!({
        "device": device,
        "hub_url": status.hub_url,
        "kept_existing_device": existing.is_some(),
        "acked_before": acked_before,
    });
    Ok(output::success(json, &data, || {
        let mut text = format!(
            "device {} ({}, {}) enrolled with {} in org {} / branch {}",
            device.device_id,
            device.name,
            device.role,
            status.hub_url.as_deref().unwrap_or(hub),
            device.org_id,
            device.branch_id
        );
        if existing.is_some() {
            text.push_str(&format!(
                "\n  this database was already that device: it keeps its id, name, role and {}\n  \
                 the next sync pulls a fresh snapshot; {} a hub acknowledged before: not sent again \
                 (if the hub lost its data, they are missing there)",
                count(status.pending, "unsent op", "unsent ops"),
                count(acked_before as u64, "op", "ops")
            ));
        }
        text.push_str("\n  next: `sync` for one round, or `run` to stay live");
        text
    }))
}

fn sync(node: &SyncNode, json: bool) -> Result<ExitCode, NodeError> {
    let report = runtime()?.block_on(node.sync_now())?;
    let status = node.status()?;
    let hub = status.hub_url.unwrap_or_default();
    let notable = notable_outcomes(node, &report)?;
    let data = json!({
        "hub_url": hub, "report": report, "notable": notable, "open_conflicts": status.conflicts,
    });
    Ok(output::success(json, &data, || {
        let mut text = report_text(&report, &hub);
        if report.conflicts > 0 {
            text.push_str(&format!(
                "  (records opened or changed; {} open now)",
                status.conflicts
            ));
        }
        for line in &notable {
            text.push_str(&format!(
                "\n  {:<9} {}",
                line["status"].as_str().unwrap_or_default(),
                line["text"].as_str().unwrap_or_default()
            ));
        }
        text
    }))
}

/// The report as a few lines.
pub fn report_text(r: &SyncReport, hub: &str) -> String {
    let checksum = match r.checksum_ok {
        Some(true) => "checksum ok",
        Some(false) => "CHECKSUM DIFFERS",
        None => "no checksum",
    };
    format!(
        "synced with {hub} in {} ms\n  pushed     {:>4}  (applied {}, duplicates {}, rejected {}, parked {})\n  pulled     {:>4}  ({} page{}, {checksum}{})\n  conflicts  {:>4}",
        r.duration_ms,
        r.pushed,
        r.applied,
        r.duplicates,
        r.rejected,
        r.parked,
        r.pulled,
        r.pages,
        if r.pages == 1 { "" } else { "s" },
        if r.repaired {
            ", view repaired from a snapshot"
        } else {
            ""
        },
        r.conflicts,
    )
}

/// One entry per op the hub rejected or sent to the manual queue: what it was, the rule, the
/// message.
pub fn notable_outcomes(node: &SyncNode, report: &SyncReport) -> Result<Vec<Value>, NodeError> {
    let outbox = outbox_by_id(node)?;
    let conflicts = node.conflicts(true)?;
    Ok(report
        .outcomes
        .iter()
        .filter(|o| {
            o.rule.is_some()
                || o.message.is_some()
                || o.conflict_id.is_some()
                || o.canonical_id.is_some()
        })
        .map(|o| {
            json!({
                "status": status_name(o),
                "op_id": o.op_id,
                "device_seq": o.device_seq,
                "rule": o.rule,
                "message": o.message,
                "conflict_id": o.conflict_id,
                "canonical_id": o.canonical_id,
                "text": outcome_text(node, o, &outbox, &conflicts),
            })
        })
        .collect())
}

fn outbox_by_id(node: &SyncNode) -> Result<HashMap<String, OutboxRow>, NodeError> {
    Ok(node
        .outbox()?
        .into_iter()
        .map(|r| (r.op_id.clone(), r))
        .collect())
}

/// `applied`, `rejected`, `conflict` (applied, a field clash queued), `duplicate (…)`.
pub fn status_name(o: &OpOutcome) -> String {
    let status = match o.status {
        OpStatus::Applied if o.canonical_id.is_some() => "merged",
        OpStatus::Applied => "applied",
        OpStatus::Duplicate => "duplicate",
        OpStatus::Rejected => "rejected",
        OpStatus::Conflict => "conflict",
    };
    if o.duplicate {
        format!("duplicate ({status})")
    } else {
        status.to_owned()
    }
}

/// `#7 shipment of 3 EACH HEADLAMP at STORE: no_negative_inventory: Only 1 …`.
pub fn outcome_text(
    node: &SyncNode,
    o: &OpOutcome,
    outbox: &HashMap<String, OutboxRow>,
    conflicts: &[ConflictRow],
) -> String {
    let what = outbox
        .get(&o.op_id)
        .map(|r| describe_op(node, &r.kind, &r.body))
        .unwrap_or_else(|| o.kind.clone());
    let mut text = format!("#{} {what}", o.device_seq);
    if let Some(rule) = &o.rule {
        text.push_str(&format!(": {rule}"));
    }
    if let Some(message) = &o.message {
        text.push_str(&format!(": {message}"));
    }
    if let Some(id) = &o.canonical_id {
        let key = if o.kind == "location_create" {
            "code"
        } else {
            "SKU"
        };
        text.push_str(&format!(
            ": the hub already had this {key}; merged into {id}, which this device now uses"
        ));
    }
    if let Some(id) = &o.conflict_id {
        match conflicts.iter().find(|c| &c.id == id) {
            Some(c) if c.kind == "field" => text.push_str(&format!(
                " → {id} in the manual queue ({})",
                conflict_what(node, c)
            )),
            _ => text.push_str(&format!(" (recorded as {id})")),
        }
    }
    text
}

/// What an op does, in words: `shipment of 3 EACH HEADLAMP at STORE`.
pub fn describe_op(node: &SyncNode, kind: &str, body: &Value) -> String {
    let s = |k: &str| body[k].as_str().unwrap_or_default();
    let qty = |k: &str| {
        format!(
            "{} {}",
            body[k]["value"].as_str().unwrap_or_default(),
            body[k]["uom"].as_str().unwrap_or_default()
        )
    };
    let sku = || sku_of(node, s("product_id"));
    let at = |k: &str| code_of(node, s(k));
    match kind {
        "transaction" if s("transaction_type") == "count" => format!(
            "count of {} at {}: {} counted, {} shown",
            sku(),
            at("location_id"),
            body["counted"]["value"]
                .as_str()
                .or(body["quantity"]["value"].as_str())
                .unwrap_or_default(),
            body["expected"]["value"].as_str().unwrap_or("?"),
        ),
        "transaction" => format!(
            "{} of {} {} at {}{}",
            s("transaction_type"),
            qty("quantity"),
            sku(),
            at("location_id"),
            body["reference"]
                .as_str()
                .or(body["reason_code"].as_str())
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ),
        "transfer" => format!(
            "transfer of {} {} {} → {}",
            qty("quantity"),
            sku(),
            at("from_location_id"),
            at("to_location_id")
        ),
        "allocation" => format!(
            "allocation of {} {} at {}",
            qty("quantity"),
            sku(),
            at("location_id")
        ),
        "allocation_release" => format!("release of {}", s("allocation_id")),
        "product_create" => format!("new product {}", s("sku")),
        "product_change" => {
            let fields: Vec<&str> = body["fields"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            format!("edit of {} ({})", sku(), fields.join(", "))
        }
        "location_create" => format!("new location {}", s("code")),
        "conflict_resolution" => format!(
            "{} of {}{}",
            s("resolution"),
            s("conflict_id"),
            body["value"]
                .as_str()
                .map(|v| format!(": {v}"))
                .unwrap_or_default()
        ),
        other => other.to_owned(),
    }
}

/// A product's SKU, or its id if this device does not know it.
pub fn sku_of(node: &SyncNode, product_id: &str) -> String {
    node.find_product(product_id)
        .map(|p| p.sku)
        .unwrap_or_else(|_| product_id.to_owned())
}

/// A location's code, or its id if this device does not know it.
pub fn code_of(node: &SyncNode, location_id: &str) -> String {
    node.location(location_id)
        .map(|l| l.code)
        .unwrap_or_else(|_| location_id.to_owned())
}

/// `price of CABLE: 11.99 EUR | 12.49 EUR` or `no_negative_inventory at STORE for HEADLAMP`.
pub fn conflict_what(node: &SyncNode, c: &ConflictRow) -> String {
    let sku = c
        .product_id
        .as_deref()
        .map(|p| sku_of(node, p))
        .unwrap_or_default();
    if let Some(field) = &c.field {
        let values: Vec<String> = c.record["values"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|v| v.as_str().map_or("(none)".into(), money_text))
                    .collect()
            })
            .unwrap_or_default();
        format!("{field} of {sku}: {}", values.join(" | "))
    } else {
        let at = c
            .location_id
            .as_deref()
            .map(|l| format!(" at {}", code_of(node, l)))
            .unwrap_or_default();
        format!(
            "{} for {sku}{at}",
            c.rule.as_deref().unwrap_or("rejected op")
        )
    }
}

/// `84.9 EUR` → `84.90 EUR` (two decimals at least); anything but an amount and a currency
/// comes back as it was.
pub fn money_text(text: &str) -> String {
    match text.parse::<stocksync_model::Money>() {
        Ok(m) => {
            let amount = m.amount.to_string();
            let decimals = amount.split_once('.').map_or(0, |(_, d)| d.len());
            let pad = match decimals {
                0 => ".00",
                1 => "0",
                _ => "",
            };
            format!("{amount}{pad} {}", m.currency)
        }
        Err(_) => text.to_owned(),
    }
}

fn status(node: &SyncNode, json: bool, db: &Path) -> Result<ExitCode, NodeError> {
    let status = node.status()?;
    let device = node.device().ok();
    // `status.state` is this process's sync task; a `run` in another process shows here.
    let live_run = run_lock::holder(db);
    let data = json!({ "status": status, "device": device, "run": live_run });
    Ok(output::success(json, &data, || {
        let state = match (state_name(&status).as_str(), &live_run) {
            (_, Some(run)) => format!(
                "running in {}{} (`run`: it pushes, pulls and stays live)",
                run.pid
                    .map_or_else(|| "another process".to_owned(), |p| format!("process {p}")),
                run.since
                    .as_deref()
                    .map(|t| format!(" since {t}"))
                    .unwrap_or_default()
            ),
            ("stopped", None) if status.enrolled => {
                "stopped (not syncing now: `sync` runs one round, `run` stays live)".into()
            }
            (other, None) => other.to_owned(),
        };
        let mut rows: Vec<(&str, String)> = vec![("state", state)];
        if let Some(d) = &device {
            rows.push((
                "device",
                format!(
                    "{} {} ({}), {} / {}",
                    d.device_id, d.name, d.role, d.org_id, d.branch_id
                ),
            ));
        }
        rows.push((
            "hub",
            match (&status.hub_url, status.enrolled) {
                (Some(url), true) => format!("{url} (enrolled)"),
                _ => "not enrolled (stocksync node … enroll --hub URL --enrollment-key KEY)".into(),
            },
        ));
        if live_run.is_none() {
            rows.push(("live", if status.live { "yes" } else { "no" }.into()));
        }
        rows.push(("pending", status.pending.to_string()));
        rows.push(("parked", status.parked.to_string()));
        rows.push(("rejected", status.rejected.to_string()));
        rows.push(("conflicts", format!("{} open", status.conflicts)));
        let or_never = |t: &Option<String>| t.clone().unwrap_or_else(|| "never".into());
        rows.push(("last push", or_never(&status.last_push_at)));
        rows.push(("last pull", or_never(&status.last_pull_at)));
        if let Some(e) = &status.last_error {
            rows.push(("last error", e.clone()));
        }
        if let Some(t) = &status.next_retry_at {
            rows.push(("next retry", from_now(t)));
        }
        rows.iter()
            .map(|(k, v)| format!("{k:<11} {v}"))
            .collect::<Vec<_>>()
            .join("\n")
    }))
}

fn state_name(status: &NodeStatus) -> String {
    serde_json::to_value(status.state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn conflicts(node: &SyncNode, json: bool, all: bool) -> Result<ExitCode, NodeError> {
    let rows = node.conflicts(all)?;
    Ok(output::success(json, &rows, || {
        let body: Vec<Vec<String>> = rows
            .iter()
            .map(|c| {
                vec![
                    c.id.clone(),
                    c.kind.clone(),
                    match &c.local_resolution {
                        Some(r) => format!("{} (settled here: {r}, not yet synced)", c.status),
                        None => c.status.clone(),
                    },
                    conflict_what(node, c),
                    c.message.clone().unwrap_or_default(),
                ]
            })
            .collect();
        let mut text = table(&["ID", "KIND", "STATUS", "WHAT", "MESSAGE"], &body);
        if rows.iter().any(|c| c.status == "open") {
            text.push_str(
                "settle one: stocksync node … resolve ID (--use-value VALUE | --clear | --dismiss)\n",
            );
        }
        text
    }))
}

fn resolve(
    node: &SyncNode,
    json: bool,
    conflict_id: &str,
    use_value: Option<String>,
    clear: bool,
    dismiss: bool,
) -> Result<ExitCode, NodeError> {
    let (resolution, value) = match (use_value, clear, dismiss) {
        (Some(v), _, _) => (Resolution::UseValue, Some(v)),
        (None, true, _) => (Resolution::UseValue, None),
        (None, false, true) => (Resolution::Dismiss, None),
        (None, false, false) => {
            return Err(NodeError::Invalid {
                details: stocksync_model::ValidationErrors::single(
                    "resolution",
                    "Give --use-value VALUE, --clear or --dismiss",
                ),
            });
        }
    };
    let op_id = node.resolve_conflict(conflict_id, resolution, value.clone())?;
    let data = json!({
        "conflict_id": conflict_id.trim(),
        "resolution": resolution,
        "value": value,
        "op_id": op_id,
    });
    Ok(output::success(json, &data, || {
        let how = match (&resolution, &value) {
            (Resolution::UseValue, Some(v)) => format!("use {v}"),
            (Resolution::UseValue, None) => "clear the field".into(),
            (Resolution::Dismiss, _) => "dismiss".into(),
        };
        format!(
            "conflict {} settled on this device ({how}; op {op_id}); the next sync sends it to the hub",
            conflict_id.trim()
        )
    }))
}

/// Hands each event to the printing loop (listeners must return quickly).
struct Forward(tokio::sync::mpsc::UnboundedSender<SyncEvent>);

impl SyncListener for Forward {
    fn on_event(&self, event: &SyncEvent) {
        let _ = self.0.send(event.clone());
    }
}

fn run(node: &SyncNode, json: bool, db: &Path) -> Result<ExitCode, NodeError> {
    let device = node.device()?;
    let status = node.status()?;
    let Some(hub) = status.hub_url.filter(|_| status.enrolled) else {
        return Err(NodeError::AuthRequired {
            message: "this device is not enrolled with a hub".into(),
        });
    };
    // Held until this function returns (or the process dies): `status` sees it, a second
    // `run` on the file is refused.
    let _lock = run_lock::acquire(db, &now())?;
    // Warnings of the sync task (a dropped socket, a retry) go to stderr; STOCKSYNC_LOG=debug
    // for more. Colour only for a terminal: a log file or a pipe gets plain text.
    let level = std::env::var("STOCKSYNC_LOG")
        .ok()
        .and_then(|l| l.parse::<tracing::Level>().ok())
        .unwrap_or(tracing::Level::WARN);
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
    runtime()?.block_on(async {
        // Signals first: a SIGTERM from now on stops the loop instead of killing the process.
        let mut stop = Box::pin(shutdown_signal()?);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let listener = node.add_listener(Arc::new(Forward(tx)));
        node.start()?;
        let hello = json!({
            "type": "started", "at": now(), "device_id": device.device_id, "hub_url": hub,
            "pid": std::process::id(),
        });
        line(json, &hello, || {
            format!(
                "{} started: device {} ({}) syncing with {hub}; Ctrl-C to stop",
                now(),
                device.device_id,
                device.name
            )
        });
        // The sync task hears of writes made through this process only; scans recorded by
        // other `stocksync node` commands on the same file show up as a growing outbox.
        let mut watch = tokio::time::interval(std::time::Duration::from_secs(1));
        let mut pending = node.status()?.pending;
        let mut shown = HashMap::new();
        loop {
            tokio::select! {
                event = rx.recv() => match event {
                    Some(event) => print_event(node, json, &event, &mut shown),
                    None => break,
                },
                _ = watch.tick() => {
                    let now_pending = node.status().map_or(pending, |s| s.pending);
                    if now_pending > pending {
                        push_soon(node);
                    }
                    pending = now_pending;
                }
                () = &mut stop => break,
            }
        }
        node.stop().await;
        listener.close();
        while let Ok(event) = rx.try_recv() {
            print_event(node, json, &event, &mut shown);
        }
        let status = node.status()?;
        let bye = json!({ "type": "stopped", "at": now(), "status": status });
        line(json, &bye, || {
            format!(
                "{} stopped: {}, {}",
                now(),
                count(status.pending, "op pending", "ops pending"),
                count(status.conflicts, "open conflict", "open conflicts")
            )
        });
        Ok::<_, NodeError>(ExitCode::from(DONE))
    })
}

/// Another process added ops: one round now (rounds never overlap; its events reach the
/// listeners like the background task's; a failure is left to the task's own retries).
fn push_soon(node: &SyncNode) {
    let node = node.clone();
    tokio::spawn(async move {
        if let Err(e) = node.sync_now().await {
            tracing::warn!("sync after another process's writes: {e}");
        }
    });
}

/// Resolves at Ctrl-C or SIGTERM.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>, NodeError> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| NodeError::Storage {
            message: format!("cannot listen for SIGTERM: {e}"),
        })?;
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    })
}

/// `1 open conflict`, `2 open conflicts`.
pub fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// An RFC 3339 instant as people read a countdown: `in 4 s`, `in 2 min`, `now`.
fn from_now(rfc3339: &str) -> String {
    let Ok(at) = chrono::DateTime::parse_from_rfc3339(rfc3339) else {
        return rfc3339.to_owned();
    };
    let ms = (at.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_milliseconds();
    match ms {
        ..=499 => "now".into(),
        // Rounded up: "in 1 s" for anything from half a second to one second.
        500..120_000 => format!("in {} s", (ms + 999) / 1000),
        _ => format!("in {} min", (ms + 59_999) / 60_000),
    }
}

fn now() -> String {
    chrono::Local::now().format("%H:%M:%S%.3f").to_string()
}

/// One line of the live log: `{"data": …}` or the text.
fn line(json: bool, data: &Value, human: impl FnOnce() -> String) {
    if json {
        output::print_line(&json!({ "data": data }).to_string());
    } else {
        output::print_line(&human());
    }
}

/// One event as a line, with what the app would show (the new on-hand, the product's fields).
/// `shown` holds the last line printed per row (and for the status): a line that says again
/// what the last one about that row said is not printed (a push answer and the pull that
/// confirms it announce the same stock). JSON gets every event.
fn print_event(
    node: &SyncNode,
    json: bool,
    event: &SyncEvent,
    shown: &mut HashMap<String, String>,
) {
    let mut data = serde_json::to_value(event).unwrap_or_default();
    data["at"] = json!(now());
    let text = match event {
        SyncEvent::StockChanged {
            product_id,
            location_id,
        } => match node
            .stock(Some(product_id), Some(location_id))
            .ok()
            .and_then(|rows| rows.into_iter().next())
        {
            Some(r) => {
                data["sku"] = json!(r.sku);
                data["location_code"] = json!(r.location_code);
                data["on_hand"] = json!(r.on_hand);
                data["available"] = json!(r.available);
                format!(
                    "stock     {} @ {}: on hand {} {} (available {})",
                    r.sku, r.location_code, r.on_hand, r.uom, r.available
                )
            }
            None => format!(
                "stock     {} @ {} changed",
                sku_of(node, product_id),
                code_of(node, location_id)
            ),
        },
        SyncEvent::ProductChanged { product_id } => match node.find_product(product_id) {
            Ok(p) => {
                let text = format!(
                    "product   {} \"{}\"{}{} (version {})",
                    p.sku,
                    p.name,
                    p.price
                        .map(|m| format!(", price {}", money_text(&m.to_string())))
                        .unwrap_or_default(),
                    p.category
                        .as_deref()
                        .map(|c| format!(", category {c}"))
                        .unwrap_or_default(),
                    p.version
                );
                data["product"] = serde_json::to_value(&p).unwrap_or_default();
                text
            }
            Err(_) => format!("product   {product_id} removed"),
        },
        SyncEvent::ConflictChanged { conflict_id } => {
            let found = node
                .conflicts(true)
                .ok()
                .and_then(|all| all.into_iter().find(|c| &c.id == conflict_id));
            match found {
                Some(c) => {
                    let text = format!(
                        "conflict  {} {}: {}",
                        c.id,
                        c.status,
                        conflict_what(node, &c)
                    );
                    data["conflict"] = serde_json::to_value(&c).unwrap_or_default();
                    text
                }
                None => format!("conflict  {conflict_id} changed"),
            }
        }
        SyncEvent::OpSettled { outcome } => {
            let outbox = outbox_by_id(node).unwrap_or_default();
            let conflicts = node.conflicts(true).unwrap_or_default();
            format!(
                "op        {}: {}",
                status_name(outcome),
                outcome_text(node, outcome, &outbox, &conflicts)
            )
        }
        SyncEvent::StatusChanged { status } => {
            let mut text = format!(
                "status    {} (pending {}, conflicts {})",
                state_name(status),
                status.pending,
                status.conflicts
            );
            if let Some(e) = &status.last_error {
                text.push_str(&format!(": {e}"));
            }
            if let Some(t) = &status.next_retry_at {
                text.push_str(&format!("; next try {}", from_now(t)));
            }
            text
        }
        SyncEvent::Progress { progress } => {
            // Only long pulls are worth a line; JSON gets every step.
            if !progress.has_more && !json {
                return;
            }
            format!(
                "progress  {}: {} changes in {} pages so far",
                progress.phase, progress.pulled, progress.pages
            )
        }
    };
    let row = match event {
        SyncEvent::StockChanged {
            product_id,
            location_id,
        } => Some(format!("stock {product_id} {location_id}")),
        SyncEvent::ProductChanged { product_id } => Some(format!("product {product_id}")),
        SyncEvent::ConflictChanged { conflict_id } => Some(format!("conflict {conflict_id}")),
        SyncEvent::StatusChanged { .. } => Some("status".to_owned()),
        SyncEvent::OpSettled { .. } | SyncEvent::Progress { .. } => None,
    };
    if !json && let Some(row) = row {
        if shown.get(&row) == Some(&text) {
            return;
        }
        shown.insert(row, text.clone());
    }
    line(json, &data, || format!("{} {text}", now()));
}

//! `stocksync demo`: a hub and three devices on this machine, one warehouse day with the Wi-Fi
//! down, then sync; every outcome checked. Exits 0 only if every check held.
//!
//! The story is told scene by scene (`day.rs`); `verify.rs` asks the hub for its own numbers
//! over its REST API and builds the final table and the convergence checks.

mod day;
mod verify;

use crate::cli::DemoArgs;
use crate::output::say;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;
use stocksync_hub::Hub;
use stocksync_hub::config::HubConfig;
use stocksync_hub::server;
use stocksync_node::{DeviceRole, NodeError, StoreOptions, SyncNode, SyncReport};

/// Anything that stops the demo before its end (a failed check does not: it is recorded).
pub type Stop = Box<dyn std::error::Error>;

/// The narrator: prints the story (or keeps it for `--json`) and records every check.
pub struct Demo {
    json: bool,
    scenes: Vec<Value>,
    checks: Vec<(String, bool)>,
}

impl Demo {
    fn new(json: bool) -> Demo {
        Demo {
            json,
            scenes: Vec::new(),
            checks: Vec::new(),
        }
    }

    /// Starts a numbered scene.
    pub fn scene(&mut self, title: &str) {
        let n = self.scenes.len() + 1;
        if !self.json {
            say!("\n{n}. {title}");
        }
        self.scenes
            .push(json!({"scene": n, "title": title, "lines": []}));
    }

    /// One line of the current scene.
    pub fn say(&mut self, text: impl Into<String>) {
        let text = text.into();
        if !self.json {
            for line in text.lines() {
                say!("   {line}");
            }
        }
        if let Some(lines) = self
            .scenes
            .last_mut()
            .and_then(|s| s["lines"].as_array_mut())
        {
            lines.extend(text.lines().map(|l| json!(l)));
        }
    }

    /// Text for people only (a table), not kept in the JSON steps.
    pub fn show(&self, text: &str) {
        if !self.json {
            for line in text.trim_end().lines() {
                say!("   {line}");
            }
        }
    }

    /// Records a check and prints `[ok]` or `[FAILED]`.
    pub fn check(&mut self, what: impl Into<String>, ok: bool) {
        let what = what.into();
        if !self.json {
            say!("   [{}] {what}", if ok { "ok" } else { "FAILED" });
        }
        self.checks.push((what, ok));
    }
}

/// One of the three devices: its node on its own SQLite file, and its last sync report.
pub struct Device {
    /// `handheld`, `tablet`, `desktop`.
    pub label: &'static str,
    /// A name staff recognise.
    pub name: &'static str,
    /// The node.
    pub node: SyncNode,
    /// Its database file.
    pub db: PathBuf,
    /// What its last sync said.
    pub last: Option<SyncReport>,
}

impl Device {
    /// One sync round; the report is kept for the checks.
    pub async fn sync(&mut self) -> Result<SyncReport, NodeError> {
        let report = self.node.sync_now().await?;
        self.last = Some(report.clone());
        Ok(report)
    }
}

/// Indexes into `World::devices`.
pub const HANDHELD: usize = 0;
/// The shop-floor tablet.
pub const TABLET: usize = 1;
/// The back-office desktop.
pub const DESKTOP: usize = 2;

/// The hub, its REST API (with the dev API key) and the three devices.
pub struct World {
    /// The hub, in this process, on a loopback port.
    pub hub: Hub,
    /// Its REST API as an integrator sees it.
    pub api: verify::HubApi,
    /// Handheld, tablet, desktop.
    pub devices: Vec<Device>,
}

pub fn run(args: &DemoArgs) -> ExitCode {
    let started = Instant::now();
    let (_temp, dir) = match workspace(args.keep.as_deref()) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(crate::output::BAD_INPUT);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(crate::output::STORAGE);
        }
    };
    let mut demo = Demo::new(args.json);
    let mut devices = Vec::new();
    let mut table = Vec::new();
    let result = runtime.block_on(async {
        let mut world = start(&mut demo, &dir).await?;
        let outcome = play(&mut demo, &mut world).await;
        devices = device_summaries(&world);
        table = verify::stock_grid(&world).await.unwrap_or_default();
        world.hub.shutdown().await?;
        outcome
    });
    if let Err(e) = result {
        eprintln!("error: the demo stopped: {e}");
        demo.checks
            .push((format!("the demo ran to its end ({e})"), false));
    }
    finish(&demo, args, &dir, devices, &table, started)
}

/// The scenes, in order.
async fn play(demo: &mut Demo, world: &mut World) -> Result<(), Stop> {
    day::seed_catalog(demo, world).await?;
    let offline = day::offline_day(demo, world)?;
    let reconnect = day::reconnect(demo, world).await?;
    verify::after_reconnect(demo, world, &offline, &reconnect).await?;
    day::settle_conflicts(demo, world).await?;
    verify::after_settling(demo, world).await?;
    Ok(())
}

/// A temporary directory, or `--keep DIR` (which must be new or empty).
fn workspace(keep: Option<&Path>) -> Result<(Option<tempfile::TempDir>, PathBuf), String> {
    match keep {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            let used = std::fs::read_dir(dir)
                .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
                .next()
                .is_some();
            if used {
                return Err(format!(
                    "--keep {}: the directory is not empty; give a new or empty one",
                    dir.display()
                ));
            }
            Ok((None, dir.to_path_buf()))
        }
        None => {
            let temp = tempfile::tempdir()
                .map_err(|e| format!("cannot make a temporary directory: {e}"))?;
            let path = temp.path().to_path_buf();
            Ok((Some(temp), path))
        }
    }
}

/// Scene 1: the hub starts; three devices enroll with its enrollment key on fresh databases.
async fn start(demo: &mut Demo, dir: &Path) -> Result<World, Stop> {
    let hub_dir = dir.join("hub");
    std::fs::create_dir_all(&hub_dir)?;
    let (bootstrap, creds) = server::dev_bootstrap(&hub_dir);
    let mut config = HubConfig::new(&hub_dir);
    config.rate_limit = 0;
    let hub = Hub::start(config, &bootstrap, "127.0.0.1:0").await?;
    let api = verify::HubApi::new(&hub.base_url(), &creds.api_key, &creds.organization_id)?;
    demo.scene(&format!(
        "07:55 The hub starts on {} (data in {}). Three devices enroll with its enrollment key; \
         each starts from an empty database and gets its organization and branch from the hub.",
        hub.base_url(),
        hub_dir.display()
    ));
    let mut devices = Vec::new();
    for (label, name, role) in [
        ("handheld", "Scanner 1", DeviceRole::Handheld),
        ("tablet", "Shop tablet", DeviceRole::Tablet),
        ("desktop", "Back office", DeviceRole::Desktop),
    ] {
        let db = dir.join(format!("{label}.db"));
        let node = SyncNode::open(&db, &StoreOptions::default())?;
        let info = node
            .enroll(&hub.base_url(), &creds.enrollment_key, role, name)
            .await?;
        demo.say(format!(
            "{label:<9}{:<15}{}  {} / {}",
            format!("\"{name}\""),
            info.device_id,
            info.org_id,
            info.branch_id
        ));
        devices.push(Device {
            label,
            name,
            node,
            db,
            last: None,
        });
    }
    Ok(World { hub, api, devices })
}

fn device_summaries(world: &World) -> Vec<Value> {
    world
        .devices
        .iter()
        .map(|d| {
            let outbox = d.node.outbox().unwrap_or_default();
            let count = |state: &str| outbox.iter().filter(|o| o.state == state).count();
            json!({
                "label": d.label,
                "name": d.name,
                "device": d.node.device().ok(),
                "db": d.db,
                "ops": outbox.len(),
                "acked": count("acked"),
                "rejected": count("rejected"),
                "pending": count("pending") + count("in_flight"),
                "status": d.node.status().ok(),
                "last_sync": d.last,
            })
        })
        .collect()
}

fn finish(
    demo: &Demo,
    args: &DemoArgs,
    dir: &Path,
    devices: Vec<Value>,
    table: &[verify::GridRow],
    started: Instant,
) -> ExitCode {
    let failed = demo.checks.iter().filter(|(_, ok)| !ok).count();
    let seconds = started.elapsed().as_secs_f64();
    if args.json {
        let checks: Vec<Value> = demo
            .checks
            .iter()
            .map(|(what, ok)| json!({"check": what, "ok": ok}))
            .collect();
        say!(
            "{}",
            json!({"data": {
                "ok": failed == 0,
                "seconds": (seconds * 1000.0).round() / 1000.0,
                "kept_in": args.keep.as_ref().map(|_| dir),
                "devices": devices,
                "steps": demo.scenes,
                "checks": checks,
                "table": table,
            }})
        );
    } else {
        say!(
            "\n{} of {} checks held, in {seconds:.1} s.{}",
            demo.checks.len() - failed,
            demo.checks.len(),
            match &args.keep {
                Some(_) => format!(
                    " The hub's data and the three databases are kept in {} \
                     (try: stocksync node --db {} stock).",
                    dir.display(),
                    dir.join("tablet.db").display()
                ),
                None => String::new(),
            }
        );
    }
    ExitCode::from(if failed == 0 { 0 } else { 1 })
}

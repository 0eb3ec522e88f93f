//! The `stocksync` command line, run as a real process on a real SQLite file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Node {
    _dir: tempfile::TempDir,
    db: PathBuf,
}

struct Out {
    code: i32,
    json: Value,
    stdout: String,
    stderr: String,
}

impl Node {
    fn new() -> Node {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("node.db");
        Node { _dir: dir, db }
    }

    /// Runs `stocksync node --db DB --json ARGS…`.
    fn run(&self, args: &[&str]) -> Out {
        run_with(&self.db, args, true)
    }

    /// Runs and expects success; returns `data`.
    fn ok(&self, args: &[&str]) -> Value {
        let out = self.run(args);
        assert_eq!(out.code, 0, "{args:?} failed: {} {}", out.json, out.stderr);
        out.json["data"].clone()
    }

    fn outbox_len(&self) -> usize {
        self.ok(&["outbox"]).as_array().unwrap().len()
    }

    fn stock(&self, sku: &str, location: &str) -> Value {
        let rows = self.ok(&["stock", "--sku", sku, "--location", location]);
        rows.as_array()
            .unwrap()
            .first()
            .cloned()
            .unwrap_or(Value::Null)
    }

    fn ready() -> Node {
        let node = Node::new();
        node.ok(&[
            "init",
            "--org",
            "org_1",
            "--branch",
            "br_1",
            "--name",
            "Scanner 1",
            "--role",
            "handheld",
        ]);
        node.ok(&["location", "add", "--code", "A-01", "--name", "Aisle A"]);
        node.ok(&["location", "add", "--code", "B-07", "--name", "Aisle B"]);
        node.ok(&[
            "product",
            "add",
            "--sku",
            "CABLE",
            "--name",
            "USB-C cable",
            "--barcode",
            "4006381333931",
            "--price",
            "9.99",
            "--currency",
            "EUR",
        ]);
        node.ok(&[
            "product", "add", "--sku", "ROPE", "--name", "Rope", "--uom", "M",
        ]);
        node
    }
}

fn run_with(db: &Path, args: &[&str], json: bool) -> Out {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stocksync"));
    cmd.arg("node").arg("--db").arg(db);
    if json {
        cmd.arg("--json");
    }
    let output = cmd.args(args).env_remove("STOCKSYNC_DB").output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    Out {
        code: output.status.code().unwrap_or(-1),
        json: serde_json::from_str(stdout.trim()).unwrap_or(Value::Null),
        stdout: stdout.into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[test]
fn a_day_on_the_handheld_offline() {
    let node = Node::ready();

    // Scan lookup by barcode, then by SKU.
    let found = node.ok(&["product", "find", "4006381333931"]);
    assert_eq!(found["sku"], "CABLE");
    assert_eq!(found["price"]["amount"], "9.99");
    assert_eq!(node.ok(&["product", "find", "ROPE"])["uom"], "M");

    node.ok(&[
        "receive",
        "--sku",
        "4006381333931",
        "--location",
        "A-01",
        "--qty",
        "10",
        "--reference",
        "PO-1",
    ]);
    node.ok(&["ship", "--sku", "CABLE", "--location", "A-01", "--qty", "3"]);
    node.ok(&[
        "transfer", "--sku", "CABLE", "--from", "A-01", "--to", "B-07", "--qty", "2",
    ]);
    node.ok(&[
        "adjust",
        "--sku",
        "CABLE",
        "--location",
        "A-01",
        "--qty",
        "-1",
        "--reason",
        "damage",
    ]);
    node.ok(&[
        "count",
        "--sku",
        "CABLE",
        "--location",
        "A-01",
        "--counted",
        "3",
    ]);
    node.ok(&[
        "receive",
        "--sku",
        "ROPE",
        "--location",
        "A-01",
        "--qty",
        "2.75",
    ]);

    let a01 = node.stock("CABLE", "A-01");
    assert_eq!(
        a01["on_hand"], "3",
        "10 - 3 - 2 - 1, then counted 3 where 4 was shown"
    );
    assert_eq!(a01["pending"], "3");
    assert_eq!(a01["synced_on_hand"], "0");
    assert_eq!(node.stock("CABLE", "B-07")["on_hand"], "2");
    assert_eq!(node.stock("ROPE", "A-01")["on_hand"], "2.75");

    let allocated = node.ok(&[
        "allocate",
        "--sku",
        "CABLE",
        "--location",
        "B-07",
        "--qty",
        "2",
    ]);
    let allocation_id = allocated["recorded"]["movement_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(allocation_id.starts_with("alloc_"));
    let b07 = node.stock("CABLE", "B-07");
    assert_eq!(
        (b07["allocated"].as_str(), b07["available"].as_str()),
        (Some("2"), Some("0"))
    );
    node.ok(&["release", &allocation_id]);
    assert_eq!(node.stock("CABLE", "B-07")["available"], "2");

    // The ledger shows the count's variance and the transfer's two legs, newest first.
    let ledger = node.ok(&["ledger", "--sku", "CABLE"]);
    let kinds: Vec<&str> = ledger
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "release",
            "allocation",
            "count",
            "adjustment",
            "transfer",
            "transfer",
            "shipment",
            "receipt"
        ]
    );
    assert_eq!(ledger[2]["on_hand_delta"], "-1");

    // Every change is one op, in order: 2 locations, 2 products, 8 movements.
    let outbox = node.ok(&["outbox"]);
    let outbox = outbox.as_array().unwrap();
    assert_eq!(outbox.len(), 12);
    for (i, op) in outbox.iter().enumerate() {
        assert_eq!(op["device_seq"], i as u64 + 1);
        assert_eq!(op["state"], "pending");
    }
    assert_eq!(outbox[8]["body"]["transaction_type"], "count");
    assert_eq!(outbox[8]["body"]["expected"]["value"], "4");

    assert_eq!(node.ok(&["check"])["ok"], true);
}

#[test]
fn refusals_exit_1_with_the_rule_and_write_nothing() {
    let node = Node::ready();
    node.ok(&[
        "receive",
        "--sku",
        "CABLE",
        "--location",
        "A-01",
        "--qty",
        "5",
    ]);
    let before = node.outbox_len();

    let out = node.run(&["ship", "--sku", "CABLE", "--location", "A-01", "--qty", "6"]);
    assert_eq!(out.code, 1);
    assert_eq!(out.json["error"]["code"], "BUSINESS_RULE_VIOLATION");
    assert_eq!(
        out.json["error"]["details"]["rule"],
        "no_negative_inventory"
    );

    let out = node.run(&[
        "allocate",
        "--sku",
        "CABLE",
        "--location",
        "A-01",
        "--qty",
        "6",
    ]);
    assert_eq!(
        out.json["error"]["details"]["rule"],
        "allocation_within_available"
    );
    assert_eq!(out.code, 1);

    let out = node.run(&[
        "transfer", "--sku", "CABLE", "--from", "B-07", "--to", "A-01", "--qty", "1",
    ]);
    assert_eq!(
        out.json["error"]["details"]["rule"],
        "no_negative_inventory"
    );

    let out = node.run(&[
        "receive",
        "--sku",
        "CABLE",
        "--location",
        "A-01",
        "--qty",
        "1",
        "--uom",
        "KG",
    ]);
    assert_eq!(out.json["error"]["details"]["rule"], "uom_must_match");

    let out = node.run(&["ship", "--sku", "NOPE", "--location", "A-01", "--qty", "1"]);
    assert_eq!(
        (out.code, out.json["error"]["code"].as_str()),
        (1, Some("NOT_FOUND"))
    );
    let out = node.run(&["ship", "--sku", "CABLE", "--location", "Z-99", "--qty", "1"]);
    assert_eq!(
        (out.code, out.json["error"]["code"].as_str()),
        (1, Some("NOT_FOUND"))
    );

    let allocated = node.ok(&[
        "allocate",
        "--sku",
        "CABLE",
        "--location",
        "A-01",
        "--qty",
        "1",
    ]);
    let id = allocated["recorded"]["movement_id"]
        .as_str()
        .unwrap()
        .to_owned();
    node.ok(&["release", &id]);
    let before_second_release = node.outbox_len();
    let out = node.run(&["release", &id]);
    assert_eq!(out.json["error"]["details"]["rule"], "allocation_open");
    assert_eq!(node.outbox_len(), before_second_release);

    assert_eq!(
        node.outbox_len(),
        before + 2,
        "only the allocation and its release were written"
    );
    assert_eq!(node.stock("CABLE", "A-01")["on_hand"], "5");
    assert_eq!(node.ok(&["check"])["ok"], true);
}

#[test]
fn bad_input_exits_2_and_names_the_field() {
    let node = Node::ready();
    let before = node.outbox_len();
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "receive",
                "--sku",
                "CABLE",
                "--location",
                "A-01",
                "--qty",
                "0",
            ],
            "quantity.value",
        ),
        (
            &[
                "receive",
                "--sku",
                "CABLE",
                "--location",
                "A-01",
                "--qty",
                "1.5",
            ],
            "quantity.value",
        ),
        (
            &[
                "adjust",
                "--sku",
                "CABLE",
                "--location",
                "A-01",
                "--qty",
                "0",
                "--reason",
                "OTHER",
            ],
            "quantity.value",
        ),
        (
            &[
                "transfer", "--sku", "CABLE", "--from", "A-01", "--to", "A-01", "--qty", "1",
            ],
            "to_location_id",
        ),
        (
            &["product", "add", "--sku", "CABLE", "--name", "Again"],
            "sku",
        ),
        (
            &["product", "add", "--sku", "has space", "--name", "X"],
            "sku",
        ),
        (
            &[
                "product",
                "add",
                "--sku",
                "P2",
                "--name",
                "X",
                "--barcode",
                "4006381333931",
            ],
            "barcode",
        ),
        (
            &[
                "product", "add", "--sku", "P3", "--name", "X", "--price", "1",
            ],
            "price.currency",
        ),
        (
            &[
                "product",
                "add",
                "--sku",
                "P4",
                "--name",
                "X",
                "--price",
                "1",
                "--currency",
                "EURO",
            ],
            "price.currency",
        ),
        (
            &["location", "add", "--code", "A-01", "--name", "Dup"],
            "code",
        ),
        (&["product", "edit", "CABLE"], "fields"),
        (&["release", "not-an-id"], "allocation"),
    ];
    for (args, field) in cases {
        let out = node.run(args);
        assert_eq!(out.code, 2, "{args:?}: {}", out.json);
        assert_eq!(out.json["error"]["code"], "VALIDATION_FAILED", "{args:?}");
        assert!(
            out.json["error"]["details"].get(*field).is_some(),
            "{args:?} should name {field}: {}",
            out.json
        );
    }
    // Values clap cannot parse are bad input too (exit 2, clap's message on stderr).
    for args in [
        &[
            "receive",
            "--sku",
            "CABLE",
            "--location",
            "A-01",
            "--qty",
            "ten",
        ][..],
        &[
            "receive",
            "--sku",
            "CABLE",
            "--location",
            "A-01",
            "--qty",
            "1.00001",
        ][..],
        &[
            "product", "add", "--sku", "X", "--name", "X", "--uom", "BOX",
        ][..],
        &[
            "adjust",
            "--sku",
            "CABLE",
            "--location",
            "A-01",
            "--qty",
            "1",
            "--reason",
            "LOST",
        ][..],
        &["frobnicate"][..],
    ] {
        let out = node.run(args);
        assert_eq!(out.code, 2, "{args:?}");
        // Usage errors too: the JSON error, since --json was given.
        assert_eq!(
            out.json["error"]["code"], "VALIDATION_FAILED",
            "{args:?}: {}",
            out.stdout
        );
    }
    assert_eq!(node.outbox_len(), before, "nothing was written");
}

#[test]
fn product_edit_records_one_mergeable_change() {
    let node = Node::ready();
    let edited = node.ok(&[
        "product",
        "edit",
        "4006381333931",
        "--price",
        "11.49",
        "--name",
        "USB-C cable 1m",
    ]);
    assert_eq!(edited["price"]["amount"], "11.49");
    assert_eq!(
        edited["price"]["currency"], "EUR",
        "currency kept from the old price"
    );
    assert_eq!(edited["name"], "USB-C cable 1m");
    let outbox = node.ok(&["outbox"]);
    let last = outbox.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["kind"], "product_change");
    assert_eq!(last["body"]["fields"], serde_json::json!(["name", "price"]));
    assert_eq!(last["body"]["base_version"], 0);
    assert!(!last["body"]["changes"].as_str().unwrap().is_empty());

    // Clearing and setting optional fields.
    let edited = node.ok(&[
        "product",
        "edit",
        "CABLE",
        "--barcode",
        "",
        "--category",
        "cables",
        "--clear-price",
    ]);
    assert_eq!(edited["barcode"], Value::Null);
    assert_eq!(edited["price"], Value::Null);
    assert_eq!(edited["category"], "cables");
    let out = node.run(&["product", "find", "4006381333931"]);
    assert_eq!(out.code, 1, "the old barcode no longer scans");
}

#[test]
fn product_import_is_all_or_nothing() {
    let node = Node::ready();
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.json");
    std::fs::write(
        &good,
        r#"[{"sku": "BOLT-8", "name": "Bolt M8", "barcode": "5901234123457"},
            {"sku": "OIL-1", "name": "Oil", "uom": "L", "price": {"amount": "4.5", "currency": "EUR"}}]"#,
    )
    .unwrap();
    assert_eq!(
        node.ok(&["product", "import", good.to_str().unwrap()])["imported"],
        2
    );
    assert_eq!(
        node.ok(&["product", "find", "5901234123457"])["sku"],
        "BOLT-8"
    );
    assert_eq!(
        node.ok(&["product", "find", "OIL-1"])["price"]["amount"],
        "4.5"
    );

    let before = node.outbox_len();
    let clash = dir.path().join("clash.json");
    std::fs::write(
        &clash,
        r#"[{"sku": "NEW-1", "name": "New"}, {"sku": "CABLE", "name": "Dup"}]"#,
    )
    .unwrap();
    let out = node.run(&["product", "import", clash.to_str().unwrap()]);
    assert_eq!(out.code, 2);
    assert!(
        out.json["error"]["details"].get("rows[1].sku").is_some(),
        "{}",
        out.json
    );
    assert_eq!(
        node.run(&["product", "find", "NEW-1"]).code,
        1,
        "nothing of the batch was added"
    );

    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, r#"[{"sku": "X", "name": "X", "price": 1.5}"#).unwrap();
    let out = node.run(&["product", "import", broken.to_str().unwrap()]);
    assert_eq!(
        (out.code, out.json["error"]["code"].as_str()),
        (2, Some("VALIDATION_FAILED"))
    );
    assert!(out.json["error"]["details"].get("file").is_some());
    let missing = node.run(&["product", "import", "/nonexistent/products.json"]);
    assert_eq!(missing.code, 2);
    assert_eq!(node.outbox_len(), before);
}

#[test]
fn before_init_and_init_twice_are_refused_clearly() {
    let node = Node::new();
    let out = node.run(&["receive", "--sku", "X", "--location", "A", "--qty", "1"]);
    assert_eq!(out.code, 1);
    assert!(
        out.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("init")
    );
    let human = run_with(
        &node.db,
        &["location", "add", "--code", "A", "--name", "A"],
        false,
    );
    assert_eq!(human.code, 1);
    assert!(
        human.stderr.contains("hint: stocksync node"),
        "{}",
        human.stderr
    );

    let init = [
        "init", "--org", "o", "--branch", "b", "--name", "n", "--role", "tablet",
    ];
    let first = node.ok(&init);
    let out = node.run(&init);
    assert_eq!(out.code, 1);
    assert!(
        out.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains(first["device_id"].as_str().unwrap())
    );
    assert_eq!(
        node.run(&[
            "init", "--org", "o", "--branch", "b", "--name", "n", "--role", "phone"
        ])
        .code,
        2
    );
}

#[test]
fn db_is_required_and_human_output_is_a_table() {
    let out = Command::new(env!("CARGO_BIN_EXE_stocksync"))
        .args(["node", "stock"])
        .env_remove("STOCKSYNC_DB")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--db"));

    let node = Node::ready();
    node.ok(&[
        "receive",
        "--sku",
        "CABLE",
        "--location",
        "A-01",
        "--qty",
        "4",
    ]);
    let human = run_with(&node.db, &["stock"], false);
    assert_eq!(human.code, 0);
    let text = human.stdout;
    assert!(text.starts_with("SKU"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("CABLE") && l.contains("A-01") && l.contains(" 4 ")),
        "{text}"
    );
}

#[test]
fn the_demo_runs_and_every_check_holds() {
    let out = Command::new(env!("CARGO_BIN_EXE_stocksync"))
        .args(["demo", "--json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // One JSON document and nothing else on stdout.
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let data = &json["data"];
    assert_eq!(data["ok"], true, "{data}");
    let checks = data["checks"].as_array().unwrap();
    assert!(checks.len() >= 12, "{checks:?}");
    for c in checks {
        assert_eq!(c["ok"], true, "{c}");
    }
    let text = |key: &str| serde_json::to_string(&data[key]).unwrap();
    assert!(text("checks").contains("no_negative_inventory"));
    assert!(text("checks").contains("no op lost or doubled"));
    assert!(text("checks").contains("checksum_ok"));
    let devices = data["devices"].as_array().unwrap();
    let labels: Vec<&str> = devices
        .iter()
        .map(|d| d["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["handheld", "tablet", "desktop"]);
    for d in devices {
        assert_eq!(d["last_sync"]["checksum_ok"], true, "{d}");
        assert_eq!(d["pending"], 0, "{d}");
    }
    let rejected: u64 = devices
        .iter()
        .map(|d| d["rejected"].as_u64().unwrap())
        .sum();
    assert_eq!(rejected, 1);
    let table = data["table"].as_array().unwrap();
    assert!(table.len() >= 10);
    for row in table {
        assert_eq!(row["same"], true, "{row}");
        assert!(
            row["hub"].is_string(),
            "the hub's own number is shown: {row}"
        );
    }
    assert!(!data["steps"].as_array().unwrap().is_empty());
    assert!(data["seconds"].as_f64().unwrap() < 30.0);
}

#[test]
fn the_demo_tells_the_story_and_keeps_its_files_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let keep = dir.path().join("kept");
    let out = Command::new(env!("CARGO_BIN_EXE_stocksync"))
        .arg("demo")
        .arg("--keep")
        .arg(&keep)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("[ok]") && !text.contains("[FAILED]"),
        "{text}"
    );
    assert!(text.contains("no_negative_inventory"), "{text}");
    assert!(
        text.contains("HUB"),
        "the table shows the hub's column: {text}"
    );
    for file in ["handheld.db", "tablet.db", "desktop.db", "hub/hub.db"] {
        assert!(keep.join(file).exists(), "{file} kept");
    }
    // The kept databases open offline like any node's.
    let tablet = keep.join("tablet.db");
    let stock = run_with(&tablet, &["stock", "--sku", "HEADLAMP"], true);
    assert_eq!(stock.code, 0, "{}", stock.stderr);
    assert_eq!(stock.json["data"][0]["on_hand"], "1");
    // A used directory is refused, not mixed with a new run.
    let again = Command::new(env!("CARGO_BIN_EXE_stocksync"))
        .arg("demo")
        .arg("--keep")
        .arg(&keep)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));
}

/// A `stocksync hub --dev` child process on a free loopback port.
struct HubProcess {
    child: std::process::Child,
    creds: Value,
    _dir: tempfile::TempDir,
}

impl HubProcess {
    fn start() -> HubProcess {
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_stocksync"))
            .args(["hub", "--dev", "--bind", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .env("STOCKSYNC_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let creds = wait_for_credentials(&dir.path().join("dev-credentials.json"));
        HubProcess {
            child,
            creds,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        self.creds["base_url"].as_str().unwrap().to_owned()
    }

    fn key(&self) -> String {
        self.creds["enrollment_key"].as_str().unwrap().to_owned()
    }

    /// SIGTERM, and the graceful exit.
    fn stop(mut self) {
        let term = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(term.success());
        let exit = self.child.wait().unwrap();
        assert!(exit.success(), "{exit:?}");
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        // After stop() this finds the child reaped; on a failed test it ends the hub.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn wait_for_credentials(path: &Path) -> Value {
    for _ in 0..200 {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Ok(v) = serde_json::from_str::<Value>(&text)
        {
            return v;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("{} does not appear", path.display());
}

impl Node {
    fn enroll(&self, hub: &HubProcess, role: &str, name: &str) -> Value {
        self.ok(&[
            "enroll",
            "--hub",
            &hub.url(),
            "--enrollment-key",
            &hub.key(),
            "--role",
            role,
            "--name",
            name,
        ])
    }
}

#[test]
fn two_nodes_enroll_and_sync_through_a_hub_process() {
    let hub = HubProcess::start();
    let a = Node::new();
    let enrolled = a.enroll(&hub, "handheld", "Scanner 1");
    assert_eq!(enrolled["device"]["org_id"], "org_demo");
    assert_eq!(enrolled["device"]["role"], "handheld");
    assert_eq!(enrolled["kept_existing_device"], false);
    let device_id = enrolled["device"]["device_id"].as_str().unwrap().to_owned();
    a.ok(&["location", "add", "--code", "A-01", "--name", "Aisle A"]);
    a.ok(&[
        "product",
        "add",
        "--sku",
        "CABLE",
        "--name",
        "USB-C cable",
        "--price",
        "9.99",
        "--currency",
        "EUR",
    ]);
    a.ok(&[
        "receive",
        "--sku",
        "CABLE",
        "--location",
        "A-01",
        "--qty",
        "10",
    ]);
    let sync = a.ok(&["sync"]);
    assert_eq!(sync["report"]["pushed"], 3, "{sync}");
    assert_eq!(sync["report"]["applied"], 3, "{sync}");
    assert_eq!(sync["report"]["checksum_ok"], true, "{sync}");

    let b = Node::new();
    b.enroll(&hub, "tablet", "Shop tablet");
    let sync = b.ok(&["sync"]);
    assert!(sync["report"]["pulled"].as_u64().unwrap() >= 3, "{sync}");
    assert_eq!(b.stock("CABLE", "A-01")["on_hand"], "10");

    // Both offline: only 10 exist, 8 + 4 are shipped; both change the price.
    a.ok(&["ship", "--sku", "CABLE", "--location", "A-01", "--qty", "8"]);
    b.ok(&["ship", "--sku", "CABLE", "--location", "A-01", "--qty", "4"]);
    a.ok(&["product", "edit", "CABLE", "--price", "12"]);
    b.ok(&["product", "edit", "CABLE", "--price", "11"]);
    assert_eq!(a.ok(&["sync"])["report"]["applied"], 2);
    let sync = b.ok(&["sync"]);
    assert_eq!(sync["report"]["rejected"], 1, "{sync}");
    let notable = sync["notable"].as_array().unwrap();
    let rejected = notable.iter().find(|n| n["status"] == "rejected").unwrap();
    assert_eq!(rejected["rule"], "no_negative_inventory", "{rejected}");
    assert!(rejected["text"].as_str().unwrap().contains("shipment"));
    assert!(
        notable.iter().any(|n| n["status"] == "conflict"),
        "{notable:?}"
    );
    assert_eq!(b.stock("CABLE", "A-01")["on_hand"], "2", "the hub's number");

    // The human report names the rule and the message.
    b.ok(&[
        "receive",
        "--sku",
        "CABLE",
        "--location",
        "A-01",
        "--qty",
        "1",
    ]);
    let human = run_with(&b.db, &["sync"], false);
    assert_eq!(human.code, 0, "{}", human.stderr);
    assert!(
        human.stdout.starts_with("synced with http://"),
        "{}",
        human.stdout
    );
    assert!(human.stdout.contains("pushed"), "{}", human.stdout);

    let status = b.ok(&["status"]);
    assert_eq!(status["status"]["enrolled"], true, "{status}");
    assert_eq!(status["status"]["pending"], 0, "{status}");
    assert_eq!(status["status"]["rejected"], 1, "{status}");
    assert_eq!(status["status"]["state"], "stopped", "{status}");
    assert!(status["status"]["conflicts"].as_u64().unwrap() >= 1);

    let open = b.ok(&["conflicts"]);
    let price = open
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["field"] == "price")
        .unwrap_or_else(|| panic!("a price conflict in {open}"));
    let id = price["id"].as_str().unwrap();
    assert_eq!(price["status"], "open");
    let resolved = b.ok(&["resolve", id, "--use-value", "11.50 EUR"]);
    assert!(resolved["op_id"].as_str().unwrap().starts_with("op_"));
    b.ok(&["sync"]);
    a.ok(&["sync"]);
    assert_eq!(
        a.ok(&["product", "find", "CABLE"])["price"]["amount"],
        "11.5"
    );
    let open = a.ok(&["conflicts"]);
    assert!(
        open.as_array()
            .unwrap()
            .iter()
            .all(|c| c["field"] != "price"),
        "{open}"
    );
    let all = a.ok(&["conflicts", "--all"]);
    assert!(
        all.as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == id && c["status"] == "resolved"),
        "{all}"
    );

    // Diagnostics: the sync status, never a credential.
    let diag = a.run(&["diagnostics"]);
    assert_eq!(diag.code, 0);
    assert_eq!(diag.json["data"]["status"]["enrolled"], true);
    assert!(!diag.stdout.contains("rt_") && !diag.stdout.contains("access_token"));

    // Enrolling an initialised device again keeps it.
    let again = a.enroll(&hub, "desktop", "Other name");
    assert_eq!(again["kept_existing_device"], true);
    assert_eq!(again["device"]["device_id"], device_id.as_str());
    assert_eq!(again["device"]["role"], "handheld");
    assert!(a.ok(&["check"])["ok"].as_bool().unwrap());
    hub.stop();
}

#[test]
fn sync_without_a_hub_fails_offline_and_the_op_stays_pending() {
    let hub = HubProcess::start();
    let node = Node::new();
    node.enroll(&hub, "handheld", "Scanner 1");
    node.ok(&["location", "add", "--code", "A-01", "--name", "Aisle A"]);
    node.ok(&["product", "add", "--sku", "CABLE", "--name", "USB-C cable"]);
    node.ok(&["sync"]);
    hub.stop(); // Its port is closed now.

    node.ok(&[
        "receive",
        "--sku",
        "CABLE",
        "--location",
        "A-01",
        "--qty",
        "5",
    ]);
    let out = node.run(&["sync"]);
    assert_eq!(out.code, 4, "{} {}", out.json, out.stderr);
    assert_eq!(out.json["data"], Value::Null);
    assert_eq!(out.json["error"]["code"], "SERVICE_UNAVAILABLE");
    assert!(
        out.json["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("offline:"),
        "{}",
        out.json
    );
    let human = run_with(&node.db, &["sync"], false);
    assert_eq!(human.code, 4);
    assert!(human.stderr.contains("error: offline:"), "{}", human.stderr);
    assert!(human.stderr.contains("nothing is lost"), "{}", human.stderr);

    let outbox = node.ok(&["outbox"]);
    let last = outbox.as_array().unwrap().last().unwrap();
    assert_eq!(last["kind"], "transaction");
    assert_eq!(last["state"], "pending", "{last}");
    let status = node.ok(&["status"]);
    assert_eq!(status["status"]["pending"], 1, "{status}");
    assert!(status["status"]["last_error"].is_string(), "{status}");
    assert_eq!(node.stock("CABLE", "A-01")["on_hand"], "5");

    // A device that never enrolled is told to.
    let offline_only = Node::ready();
    let out = offline_only.run(&["sync"]);
    assert_eq!(out.code, 5, "{}", out.json);
    assert_eq!(out.json["error"]["code"], "AUTHENTICATION_FAILED");
    let out = run_with(&offline_only.db, &["sync"], false);
    assert!(
        out.stderr.contains("hint: stocksync node"),
        "{}",
        out.stderr
    );
}

#[test]
fn run_prints_each_change_and_stops_on_sigterm() {
    use std::io::BufRead;
    let hub = HubProcess::start();
    let a = Node::new();
    a.enroll(&hub, "handheld", "Scanner 1");
    a.ok(&["location", "add", "--code", "A-01", "--name", "Aisle A"]);
    a.ok(&["product", "add", "--sku", "CABLE", "--name", "USB-C cable"]);
    a.ok(&[
        "receive",
        "--sku",
        "CABLE",
        "--location",
        "A-01",
        "--qty",
        "7",
    ]);
    a.ok(&["sync"]);

    let b = Node::new();
    b.enroll(&hub, "tablet", "Shop tablet");
    let mut child = Command::new(env!("CARGO_BIN_EXE_stocksync"))
        .arg("node")
        .arg("--db")
        .arg(&b.db)
        .args(["--json", "run"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Value>();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
            if tx.send(v).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let mut wait_for = |what: &dyn Fn(&Value) -> bool| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let event = rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("not among {seen:?}"));
            seen.push(event.clone());
            if what(&event["data"]) {
                return event;
            }
        }
    };
    // The first round pulls what the scanner pushed.
    let stock = wait_for(&|e| e["type"] == "stock_changed");
    assert_eq!(stock["data"]["sku"], "CABLE");
    assert_eq!(stock["data"]["on_hand"], "7");
    // A scan recorded by another command on the same file goes out too.
    b.ok(&[
        "receive",
        "--sku",
        "CABLE",
        "--location",
        "A-01",
        "--qty",
        "2",
    ]);
    let settled = wait_for(&|e| e["type"] == "op_settled");
    assert_eq!(settled["data"]["outcome"]["status"], "applied", "{settled}");
    assert_eq!(settled["data"]["outcome"]["kind"], "transaction");
    assert_eq!(seen[0]["data"]["type"], "started");

    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let exit = child.wait().unwrap();
    assert_eq!(exit.code(), Some(0), "{exit:?}");
    reader.join().unwrap();
    let rest: Vec<Value> = rx.try_iter().collect();
    let last = rest.last().unwrap_or(&settled);
    assert_eq!(last["data"]["type"], "stopped", "{rest:?}");
    hub.stop();
}

/// One HTTP/1.1 GET over a plain socket; returns the status line and the body.
fn http_get(addr: &str, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text.lines().next().unwrap_or_default().to_owned();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (status, body)
}

#[test]
fn hub_dev_writes_credentials_serves_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_stocksync"))
        .args(["hub", "--dev", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("STOCKSYNC_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let creds_path = dir.path().join("dev-credentials.json");
    let mut creds = None;
    for _ in 0..200 {
        if let Ok(text) = std::fs::read_to_string(&creds_path)
            && let Ok(v) = serde_json::from_str::<Value>(&text)
        {
            creds = Some(v);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let creds = creds.expect("dev-credentials.json appears");
    for key in [
        "organization_id",
        "branch_id",
        "api_key",
        "enrollment_key",
        "base_url",
    ] {
        assert!(
            creds[key].as_str().is_some_and(|s| !s.is_empty()),
            "{key} in {creds}"
        );
    }
    let addr = creds["base_url"]
        .as_str()
        .unwrap()
        .trim_start_matches("http://")
        .to_owned();
    let (status, body) = http_get(&addr, "/v1/health");
    assert!(status.contains("200"), "{status}");
    assert!(body.contains("\"status\":\"ok\""), "{body}");
    let (status, _) = http_get(&addr, "/v1/products");
    assert!(status.contains("401"), "{status}");

    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "graceful shutdown exits 0: {exit:?}");
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    assert!(
        out.contains(creds["api_key"].as_str().unwrap()),
        "the keys are printed: {out}"
    );
}

// ---- Rough edges a new user hit (issue 11, point 5) ----

#[test]
fn read_commands_never_create_a_database() {
    let node = Node::new();
    for args in [
        &["stock"][..],
        &["outbox"],
        &["status"],
        &["product", "list"],
    ] {
        let out = node.run(args);
        assert_eq!(out.code, 1, "{args:?}: {}", out.stdout);
        assert_eq!(out.json["error"]["code"], "NOT_FOUND", "{}", out.json);
        let message = out.json["error"]["message"].as_str().unwrap();
        assert!(message.contains("no such database"), "{message}");
        assert!(!node.db.exists(), "{args:?} created {}", node.db.display());
    }
    let human = run_with(&node.db, &["stock"], false);
    assert_eq!(human.code, 1);
    assert_eq!(human.stdout, "", "no table of (none)");
    assert!(
        human.stderr.contains("no such database") && human.stderr.contains("init"),
        "{}",
        human.stderr
    );
    assert!(!node.db.exists());
    // `init` creates it; then the read commands answer.
    let ready = Node::ready();
    assert_eq!(ready.ok(&["stock"]), serde_json::json!([]));
}

#[test]
fn a_reader_that_closes_the_pipe_ends_the_command_quietly() {
    let node = Node::ready();
    node.ok(&[
        "receive",
        "--sku",
        "CABLE",
        "--location",
        "A-01",
        "--qty",
        "4",
    ]);
    for json in [false, true] {
        // The reading end is closed before the command writes: every write meets EPIPE, as
        // with `stocksync node … stock | head -1` once head has its line.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_stocksync"));
        cmd.arg("node").arg("--db").arg(&node.db);
        if json {
            cmd.arg("--json");
        }
        let out = cmd
            .arg("stock")
            .env_remove("STOCKSYNC_DB")
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        assert_eq!(stderr, "", "no panic, no message");
    }
    // The demo carries on, and its exit code still says whether its checks held.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_stocksync"))
        .arg("demo")
        .stdout(writer)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn negative_numbers_are_values_and_get_the_domain_error() {
    let node = Node::ready();
    for args in [
        &[
            "ship",
            "--sku",
            "CABLE",
            "--location",
            "A-01",
            "--qty",
            "-5",
        ][..],
        &[
            "receive",
            "--sku",
            "CABLE",
            "--location",
            "A-01",
            "--qty",
            "-5",
        ],
        &[
            "allocate",
            "--sku",
            "CABLE",
            "--location",
            "A-01",
            "--qty",
            "-1",
        ],
        &[
            "transfer", "--sku", "CABLE", "--from", "A-01", "--to", "B-07", "--qty", "-2",
        ],
    ] {
        let out = node.run(args);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stdout);
        assert!(
            out.json["error"]["details"]["quantity.value"].is_array(),
            "{args:?}: the quantity's own rule, not an unknown flag: {}",
            out.json
        );
    }
    let out = node.run(&[
        "count",
        "--sku",
        "CABLE",
        "--location",
        "A-01",
        "--counted",
        "-1",
    ]);
    assert_eq!(out.code, 2, "{}", out.stdout);
    assert!(
        !out.stdout.contains("unexpected argument"),
        "{}",
        out.stdout
    );
    let out = node.run(&[
        "product",
        "add",
        "--sku",
        "NEG",
        "--name",
        "N",
        "--price",
        "-1",
        "--currency",
        "EUR",
    ]);
    assert_eq!(out.code, 2, "{}", out.stdout);
    assert!(
        !out.stdout.contains("unexpected argument"),
        "{}",
        out.stdout
    );
    // A negative adjustment is what it is for.
    node.ok(&[
        "receive",
        "--sku",
        "CABLE",
        "--location",
        "A-01",
        "--qty",
        "3",
    ]);
    node.ok(&[
        "adjust",
        "--sku",
        "CABLE",
        "--location",
        "A-01",
        "--qty",
        "-1",
        "--reason",
        "DAMAGE",
    ]);
    assert_eq!(node.stock("CABLE", "A-01")["on_hand"], "2");
    assert_eq!(node.outbox_len(), 6, "refusals wrote nothing");
}

#[test]
fn with_json_every_usage_error_is_the_json_error() {
    let node = Node::ready();
    let cases: [(&[&str], &str); 4] = [
        (&["ship", "--sku", "CABLE"], "qty"),
        (
            &[
                "ship",
                "--sku",
                "CABLE",
                "--location",
                "A-01",
                "--qty",
                "lots",
            ],
            "qty",
        ),
        (&["stock", "--bogus"], "bogus"),
        (&["resolve", "conf_x", "--clear", "--dismiss"], "clear"),
    ];
    for (args, field) in cases {
        let out = node.run(args);
        assert_eq!(out.code, 2, "{args:?}");
        assert_eq!(out.json["data"], Value::Null, "{args:?}: {}", out.stdout);
        assert_eq!(
            out.json["error"]["code"], "VALIDATION_FAILED",
            "{}",
            out.stdout
        );
        assert!(
            out.json["error"]["details"][field].is_array(),
            "{args:?} names {field}: {}",
            out.stdout
        );
        assert_eq!(out.stderr, "", "{args:?}");
    }
    // Without --json, clap's usage text on stderr as before.
    let human = run_with(&node.db, &["ship", "--sku", "CABLE"], false);
    assert_eq!(human.code, 2);
    assert_eq!(human.stdout, "");
    assert!(human.stderr.contains("--qty"), "{}", human.stderr);
}

#[test]
fn a_hub_url_without_scheme_is_bad_input_that_says_what_to_write() {
    let node = Node::new();
    let out = node.run(&[
        "enroll",
        "--hub",
        "127.0.0.1:8080",
        "--enrollment-key",
        "enr_x",
    ]);
    assert_eq!(out.code, 2, "{}", out.stdout);
    assert_eq!(out.json["error"]["code"], "VALIDATION_FAILED");
    let message = out.json["error"]["details"]["hub_url"][0].as_str().unwrap();
    assert!(message.contains("http://127.0.0.1:8080"), "{message}");
    let human = run_with(
        &node.db,
        &["enroll", "--hub", "localhost:8080", "--enrollment-key", "k"],
        false,
    );
    assert_eq!(human.code, 2);
    assert!(!human.stderr.contains("offline"), "{}", human.stderr);
    assert!(
        human.stderr.contains("http://localhost:8080"),
        "{}",
        human.stderr
    );
}

impl HubProcess {
    /// Stops the hub, lets `lose` remove files from its data dir, and starts it again on the
    /// same address (the devices keep their hub URL).
    fn restart_after(&mut self, lose: &dyn Fn(&Path)) {
        let addr = self
            .url()
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        self.child.wait().unwrap();
        lose(self._dir.path());
        self.child = Command::new(env!("CARGO_BIN_EXE_stocksync"))
            .args(["hub", "--dev", "--bind", &addr, "--data-dir"])
            .arg(self._dir.path())
            .env("STOCKSYNC_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        for _ in 0..200 {
            if std::net::TcpStream::connect(&addr).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("the hub does not listen on {addr} again");
    }
}

#[test]
fn a_device_outlives_a_hub_that_lost_its_secret_or_its_data() {
    let mut hub = HubProcess::start();
    let node = Node::new();
    node.enroll(&hub, "handheld", "Scanner 1");
    node.ok(&["location", "add", "--code", "A-01", "--name", "Aisle A"]);
    node.ok(&["product", "add", "--sku", "CABLE", "--name", "USB-C cable"]);
    assert_eq!(node.ok(&["sync"])["report"]["applied"], 2);

    // The secret is gone: the device's pull position is "not a token this hub issued". The
    // round starts a fresh snapshot by itself and the unsent op goes out.
    hub.restart_after(&|dir| std::fs::remove_file(dir.join("hub-secret.key")).unwrap());
    node.ok(&[
        "receive",
        "--sku",
        "CABLE",
        "--location",
        "A-01",
        "--qty",
        "4",
    ]);
    let sync = node.run(&["sync"]);
    assert_eq!(sync.code, 0, "{} {}", sync.stdout, sync.stderr);
    let report = &sync.json["data"]["report"];
    assert_eq!(report["applied"], 1, "{report}");
    assert_eq!(report["checksum_ok"], true, "{report}");
    assert_eq!(node.stock("CABLE", "A-01")["synced_on_hand"], "4");
    assert_eq!(
        node.ok(&["sync"])["report"]["pulled"],
        0,
        "the next round is a delta"
    );

    // The data is gone (the key comes back from dev-credentials.json): enroll again, and the
    // unsent op reaches the new hub; the ops the old one acknowledged are counted, not lost
    // silently.
    hub.restart_after(&|dir| {
        for f in ["hub.db", "hub.db-wal", "hub.db-shm"] {
            let _ = std::fs::remove_file(dir.join(f));
        }
    });
    node.ok(&["location", "add", "--code", "B-07", "--name", "Aisle B"]);
    assert_eq!(node.run(&["sync"]).code, 5, "sign-in needed");
    let again = node.enroll(&hub, "handheld", "Scanner 1");
    assert_eq!(again["kept_existing_device"], true);
    assert_eq!(again["acked_before"], 3, "{again}");
    let sync = node.run(&["sync"]);
    assert_eq!(sync.code, 0, "{} {}", sync.stdout, sync.stderr);
    assert_eq!(sync.json["data"]["report"]["applied"], 1, "{}", sync.json);
    assert_eq!(
        sync.json["data"]["report"]["checksum_ok"], true,
        "{}",
        sync.json
    );
    assert!(node.ok(&["check"])["ok"].as_bool().unwrap());
    hub.stop();
}

/// `stocksync node --db DB run` (human output), its stdout read line by line, stderr to `log`.
fn spawn_run(db: &Path, log: &Path) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_stocksync"))
        .arg("node")
        .arg("--db")
        .arg(db)
        .arg("run")
        .env_remove("STOCKSYNC_DB")
        .env("STOCKSYNC_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

fn wait_line(rx: &std::sync::mpsc::Receiver<String>, seen: &mut Vec<String>, what: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no line with {what:?} among {seen:#?}"));
        seen.push(line.clone());
        if line.contains(what) {
            return line;
        }
    }
}

#[test]
fn one_run_per_file_status_sees_it_and_its_log_reads_plainly() {
    let hub = HubProcess::start();
    let node = Node::new();
    node.enroll(&hub, "handheld", "Scanner 1");
    node.ok(&["location", "add", "--code", "A-01", "--name", "Aisle A"]);
    hub.stop(); // `run` retries with backoff: one op pending, nothing reachable.

    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("run.log");
    let (mut child, rx) = spawn_run(&node.db, &log);
    let mut seen = Vec::new();
    let retry = wait_line(&rx, &mut seen, "next try");
    // "next try in 1 s", not an absolute timestamp.
    let after = retry.split("next try ").nth(1).unwrap();
    assert!(
        after == "now" || (after.starts_with("in ") && after.ends_with(" s")),
        "{retry}"
    );

    // Another process sees the live `run`, and a second one is refused.
    let pid = child.id();
    let status = node.ok(&["status"]);
    assert_eq!(status["run"]["pid"], pid, "{status}");
    let human = run_with(&node.db, &["status"], false);
    assert!(
        human.stdout.contains(&format!("running in process {pid}")),
        "{}",
        human.stdout
    );
    let second = node.run(&["run"]);
    assert_eq!(second.code, 1, "{}", second.stdout);
    assert_eq!(
        second.json["error"]["details"]["rule"],
        "one_run_per_database"
    );
    assert!(
        second.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&pid.to_string()),
        "{}",
        second.json
    );

    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let stopped = wait_line(&rx, &mut seen, "stopped:");
    assert!(
        stopped.ends_with("stopped: 1 op pending, 0 open conflicts"),
        "{stopped}"
    );
    // The same status line twice in a row is printed once (the time prefix aside).
    let bodies: Vec<&str> = seen.iter().map(|l| l.split_once(' ').unwrap().1).collect();
    for pair in bodies.windows(2) {
        assert!(
            pair[0] != pair[1],
            "repeated line {:?} in {seen:#?}",
            pair[0]
        );
    }
    // The log went to a file: warnings, and no colour codes in them.
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("WARN") || text.contains("INFO"), "{text}");
    assert!(!text.contains('\u{1b}'), "ANSI codes in {text:?}");

    // Not running any more; and a `run` killed outright leaves no lock behind.
    assert_eq!(node.ok(&["status"])["run"], Value::Null);
    let (mut killed, rx) = spawn_run(&node.db, &log);
    wait_line(&rx, &mut Vec::new(), "started:");
    killed.kill().unwrap(); // SIGKILL
    killed.wait().unwrap();
    assert_eq!(node.ok(&["status"])["run"], Value::Null);
    let (mut third, rx) = spawn_run(&node.db, &log);
    wait_line(&rx, &mut Vec::new(), "started:");
    third.kill().unwrap();
    third.wait().unwrap();
}

#[test]
fn counts_say_what_was_shown_and_the_outbox_names_skus() {
    let node = Node::ready();
    node.ok(&[
        "receive",
        "--sku",
        "CABLE",
        "--location",
        "A-01",
        "--qty",
        "5",
    ]);
    let exact = run_with(
        &node.db,
        &[
            "count",
            "--sku",
            "CABLE",
            "--location",
            "A-01",
            "--counted",
            "5",
        ],
        false,
    );
    assert_eq!(exact.code, 0, "{}", exact.stderr);
    let first = exact.stdout.lines().next().unwrap();
    assert!(
        first.starts_with("counted CABLE EACH: 5, this device showed 5: no change at A-01"),
        "{first}"
    );
    let short = run_with(
        &node.db,
        &[
            "count",
            "--sku",
            "CABLE",
            "--location",
            "A-01",
            "--counted",
            "4",
        ],
        false,
    );
    let first = short.stdout.lines().next().unwrap();
    assert!(
        first.starts_with("counted CABLE EACH: 4, this device showed 5: -1 at A-01"),
        "{first}"
    );

    let outbox = run_with(&node.db, &["outbox"], false);
    assert_eq!(outbox.code, 0);
    assert!(!outbox.stdout.contains("of prod_"), "{}", outbox.stdout);
    assert!(
        outbox.stdout.contains("receipt of 5 EACH CABLE at A-01"),
        "{}",
        outbox.stdout
    );
}

#[test]
fn run_prints_a_change_once() {
    let hub = HubProcess::start();
    let node = Node::new();
    node.enroll(&hub, "handheld", "Scanner 1");
    node.ok(&["location", "add", "--code", "A-01", "--name", "Aisle A"]);
    node.ok(&["product", "add", "--sku", "CABLE", "--name", "USB-C cable"]);
    node.ok(&["sync"]);
    let dir = tempfile::tempdir().unwrap();
    let (mut child, rx) = spawn_run(&node.db, &dir.path().join("run.log"));
    let mut seen = Vec::new();
    wait_line(&rx, &mut seen, "status    live");
    // Announced by the push answer, then confirmed by the pull: one line.
    node.ok(&[
        "receive",
        "--sku",
        "CABLE",
        "--location",
        "A-01",
        "--qty",
        "9",
    ]);
    wait_line(&rx, &mut seen, "op        applied");
    wait_line(&rx, &mut seen, "status    live");
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    wait_line(&rx, &mut seen, "stopped:");
    let stock: Vec<&String> = seen
        .iter()
        .filter(|l| l.contains("stock     CABLE @ A-01: on hand 9 EACH"))
        .collect();
    assert_eq!(stock.len(), 1, "{seen:#?}");
    hub.stop();
}

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
        assert!(!out.stderr.is_empty());
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
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["data"]["ok"], true);
    assert!(json["data"]["checks"].as_array().unwrap().len() >= 8);
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

//! The offline node's store benchmark: what a scan costs on a real SQLite file, measured against
//! raw rusqlite doing the comparable work on the same disk in the same run.
//!
//! Run with `cargo bench -p stocksync-store --bench store` (`BENCH_ITERS=N` changes the number
//! of measured scans, default 2000). Everything runs on files in a temp dir with the store's
//! default options (`synchronous=FULL`, WAL), so every commit pays a real fsync.
//!
//! 1. **Scan-to-commit**: `Store::find_product(barcode)` then `Store::record_movement` of a
//!    one-unit receipt, against a 10k-product catalog. The baseline is raw rusqlite on its own
//!    file (WAL, `synchronous=FULL`): one indexed `SELECT` by barcode on a 10k-row table plus one
//!    `INSERT` into a ledger-shaped table, committed in its own transaction. The two run in
//!    alternating blocks of 100 scans so machine noise hits both alike. Target: store p50 ≤ 1.5×
//!    raw p50 (printed as PASS/FAIL; the bench always exits 0, it is a report, not a test).
//! 2. **Import**: `Store::import_products` of 100k products in one call (one transaction) into a
//!    fresh file, in rows/s, against 100k plain `INSERT`s into a products table in one
//!    transaction. Each stocksync product also builds an automerge document and an outbox op, so
//!    this ratio is expected to be large.
//! 3. **Peak memory**: `VmHWM` from `/proc/self/status`.
//!
//! Besides the table, one line `BENCH_JSON {...}` carries every figure for scripts.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde_json::json;
use std::error::Error;
use std::path::Path;
use std::time::{Duration, Instant};
use stocksync_model::{
    Decimal, LocationId, Movement, MovementKind, NewLocation, NewProduct, OpId, ProductId,
    Quantity, TransactionId, Uom,
};
use stocksync_store::{DeviceRole, NewDevice, Store, StoreOptions};

type BenchResult<T> = Result<T, Box<dyn Error>>;

/// Products in the catalog the scans look up.
const CATALOG: usize = 10_000;
/// Products imported in the import measurement.
const IMPORT: usize = 100_000;
/// Unmeasured scans on each side before measuring.
const WARMUP: usize = 50;
/// Scans per side before switching to the other side.
const BLOCK: usize = 100;
/// Measured scans per side unless `BENCH_ITERS` says otherwise.
const DEFAULT_ITERS: usize = 2_000;
/// The acceptance target for store p50 / raw p50.
const TARGET_P50_RATIO: f64 = 1.5;

/// The raw baseline's products table: the columns a scan and an import need, unique SKU and barcode.
const RAW_PRODUCTS: &str = "CREATE TABLE products (
    id         TEXT PRIMARY KEY,
    sku        TEXT NOT NULL UNIQUE,
    barcode    TEXT UNIQUE,
    name       TEXT NOT NULL,
    uom        TEXT NOT NULL,
    created_at TEXT NOT NULL
) STRICT;";
fn main() -> BenchResult<()> {
    let iters = match std::env::var("BENCH_ITERS") {
        Ok(v) => v
            .trim()
            .parse::<usize>()
            .map_err(|e| format!("BENCH_ITERS={v}: {e}"))?
            .max(1),
        Err(_) => DEFAULT_ITERS,
    };
    let dir = tempfile::tempdir()?;
    let started = Instant::now();
    println!(
        "stocksync store bench: SQLite {}, synchronous=FULL, WAL, files in {}",
        rusqlite::version(),
        dir.path().display()
    );

    let scan = scan_to_commit(dir.path(), iters)?;
    let hwm_after_scan = vm_hwm_kib()?;
    let import = import(dir.path())?;
    let hwm_after_import = vm_hwm_kib()?;
    let hwm_end = vm_hwm_kib()?;
    let elapsed = started.elapsed();

    print_report(&scan, &import, [hwm_after_scan, hwm_after_import, hwm_end]);
    println!("total bench time: {:.1} s", elapsed.as_secs_f64());

    let line = json!({
        "sqlite": rusqlite::version(),
        "synchronous": "FULL",
        "iters": iters,
        "warmup": WARMUP,
        "block": BLOCK,
        "catalog": CATALOG,
        "scan_to_commit": {
            "store_us": scan.store.json(),
            "raw_us": scan.raw.json(),
            "ratio_p50": scan.ratio_p50(),
            "ratio_p99": scan.ratio_p99(),
            "ratio_mean": scan.store.mean / scan.raw.mean,
            "target_p50_ratio": TARGET_P50_RATIO,
            "pass": scan.pass(),
        },
        "import": {
            "rows": IMPORT,
            "store_secs": import.store.as_secs_f64(),
            "store_rows_per_s": import.store_rows_per_s(),
            "raw_secs": import.raw.as_secs_f64(),
            "raw_rows_per_s": import.raw_rows_per_s(),
            "raw_over_store": import.raw_rows_per_s() / import.store_rows_per_s(),
        },
        "peak_mib": {
            "after_scan": mib(hwm_after_scan),
            "after_import": mib(hwm_after_import),
            "end": mib(hwm_end),
        },
        "total_secs": elapsed.as_secs_f64(),
    });
    println!("BENCH_JSON {line}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Scan-to-commit

struct ScanResult {
    store: Stats,
    raw: Stats,
}

impl ScanResult {
    fn ratio_p50(&self) -> f64 {
        self.store.p50 / self.raw.p50
    }
    fn ratio_p99(&self) -> f64 {
        self.store.p99 / self.raw.p99
    }
    fn pass(&self) -> bool {
        self.ratio_p50() <= TARGET_P50_RATIO
    }
}

/// The store side: a node with a 10k catalog and one location.
struct StoreSide {
    store: Store,
    location_id: LocationId,
}

impl StoreSide {
    fn open(path: &Path) -> BenchResult<StoreSide> {
        let store = Store::open(path, &StoreOptions::default())?;
        store.init_device(&NewDevice {
            org_id: "org-bench".into(),
            branch_id: "branch-bench".into(),
            name: "Scanner 1".into(),
            role: DeviceRole::Handheld,
        })?;
        let location = store.add_location(&NewLocation {
            code: "A-01".into(),
            name: "Aisle 1".into(),
        })?;
        let catalog = products(0, CATALOG);
        let added = store.import_products(&catalog)?;
        if added != CATALOG {
            return Err(format!("imported {added} products, expected {CATALOG}").into());
        }
        Ok(StoreSide {
            store,
            location_id: location.id,
        })
    }

    /// One scan: look the product up by barcode, receive one unit of it.
    fn scan(&self, barcode: &str) -> BenchResult<()> {
        let product = self
            .store
            .find_product(barcode)?
            .ok_or_else(|| format!("barcode {barcode} not found"))?;
        self.store.record_movement(&Movement {
            product_id: product.id,
            kind: MovementKind::Receipt {
                transaction_id: TransactionId::new(),
                location_id: self.location_id.clone(),
                quantity: Quantity::new(one()?, Uom::Each),
                unit_cost: None,
                reference: None,
            },
        })?;
        Ok(())
    }
}

/// The physical baseline: one indexed read and one single-row insert in its own transaction.
struct RawSide {
    conn: Connection,
    location_id: String,
}

impl RawSide {
    fn open(path: &Path) -> BenchResult<RawSide> {
        let mut conn = Connection::open(path)?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if mode != "wal" {
            return Err(format!("raw baseline: journal mode is {mode}, not wal").into());
        }
        conn.execute_batch(RAW_PRODUCTS)?;
        conn.execute_batch(
            "PRAGMA synchronous = FULL;
             -- The same shape and indexes as the store's ledger, without its foreign keys.
             CREATE TABLE ledger (
                 seq             INTEGER PRIMARY KEY,
                 op_id           TEXT NOT NULL,
                 leg             INTEGER NOT NULL,
                 movement_id     TEXT NOT NULL,
                 kind            TEXT NOT NULL,
                 product_id      TEXT NOT NULL,
                 location_id     TEXT NOT NULL,
                 on_hand_delta   INTEGER NOT NULL,
                 allocated_delta INTEGER NOT NULL,
                 reason_code     TEXT,
                 reference       TEXT,
                 occurred_at     TEXT NOT NULL,
                 state           TEXT NOT NULL DEFAULT 'pending',
                 UNIQUE (op_id, leg)
             ) STRICT;
             CREATE INDEX ledger_by_product ON ledger (product_id, seq);",
        )?;
        let catalog = products(0, CATALOG);
        raw_insert_products(&mut conn, &catalog)?;
        Ok(RawSide {
            conn,
            location_id: LocationId::new().as_str().to_owned(),
        })
    }

    /// One scan: the indexed SELECT by barcode, then one INSERT committed on its own.
    fn scan(&mut self, barcode: &str) -> BenchResult<()> {
        let product_id: String = self
            .conn
            .prepare_cached("SELECT id FROM products WHERE barcode = ?1")?
            .query_row([barcode], |r| r.get(0))
            .optional()?
            .ok_or_else(|| format!("barcode {barcode} not found"))?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.prepare_cached(
            "INSERT INTO ledger (op_id, leg, movement_id, kind, product_id, location_id,
                 on_hand_delta, allocated_delta, reason_code, reference, occurred_at)
             VALUES (?1, 0, ?2, 'receipt', ?3, ?4, ?5, 0, NULL, NULL, ?6)",
        )?
        .execute(params![
            OpId::new().as_str(),
            TransactionId::new().as_str(),
            product_id,
            self.location_id,
            one()?.scaled(),
            now_text(),
        ])?;
        tx.commit()?;
        Ok(())
    }
}

fn scan_to_commit(dir: &Path, iters: usize) -> BenchResult<ScanResult> {
    let setup = Instant::now();
    let store = StoreSide::open(&dir.join("node.db"))?;
    let mut raw = RawSide::open(&dir.join("raw.db"))?;
    println!(
        "setup: store and raw catalogs of {CATALOG} products in {:.1} s",
        setup.elapsed().as_secs_f64()
    );

    // Both sides scan the same pseudo-random barcodes, so both walk the index alike.
    let mut rng = SplitMix64(0x5eed_5eed_5eed_5eed);
    let codes: Vec<String> = (0..WARMUP + iters)
        .map(|_| barcode(rng.below(CATALOG)))
        .collect();
    let (warm, measured) = codes.split_at(WARMUP);
    for code in warm {
        store.scan(code)?;
        raw.scan(code)?;
    }

    let mut store_samples = Vec::with_capacity(iters);
    let mut raw_samples = Vec::with_capacity(iters);
    for (i, block) in measured.chunks(BLOCK).enumerate() {
        // Alternate which side goes first, so neither always runs right after a checkpoint of
        // the other or on a colder cache.
        if i % 2 == 0 {
            time_block(block, &mut store_samples, |c| store.scan(c))?;
            time_block(block, &mut raw_samples, |c| raw.scan(c))?;
        } else {
            time_block(block, &mut raw_samples, |c| raw.scan(c))?;
            time_block(block, &mut store_samples, |c| store.scan(c))?;
        }
    }

    let problems = store.store.check()?;
    if !problems.is_empty() {
        return Err(format!("store check after the scans: {problems:?}").into());
    }
    Ok(ScanResult {
        store: Stats::of(&mut store_samples),
        raw: Stats::of(&mut raw_samples),
    })
}

fn time_block(
    codes: &[String],
    samples: &mut Vec<Duration>,
    mut scan: impl FnMut(&str) -> BenchResult<()>,
) -> BenchResult<()> {
    for code in codes {
        let t = Instant::now();
        scan(code)?;
        samples.push(t.elapsed());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Import

struct ImportResult {
    store: Duration,
    raw: Duration,
}

impl ImportResult {
    fn store_rows_per_s(&self) -> f64 {
        IMPORT as f64 / self.store.as_secs_f64()
    }
    fn raw_rows_per_s(&self) -> f64 {
        IMPORT as f64 / self.raw.as_secs_f64()
    }
}

fn import(dir: &Path) -> BenchResult<ImportResult> {
    let rows = products(CATALOG, IMPORT);

    let store = Store::open(dir.join("import.db"), &StoreOptions::default())?;
    store.init_device(&NewDevice {
        org_id: "org-bench".into(),
        branch_id: "branch-bench".into(),
        name: "Back office".into(),
        role: DeviceRole::Handheld,
    })?;
    let t = Instant::now();
    let added = store.import_products(&rows)?;
    let store_time = t.elapsed();
    if added != IMPORT {
        return Err(format!("imported {added} products, expected {IMPORT}").into());
    }
    drop(store);

    let mut conn = Connection::open(dir.join("import-raw.db"))?;
    let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    conn.execute_batch("PRAGMA synchronous = FULL;")?;
    conn.execute_batch(RAW_PRODUCTS)?;
    let t = Instant::now();
    raw_insert_products(&mut conn, &rows)?;
    let raw_time = t.elapsed();

    Ok(ImportResult {
        store: store_time,
        raw: raw_time,
    })
}

/// Plain inserts of `rows` into the raw `products` table, one transaction.
fn raw_insert_products(conn: &mut Connection, rows: &[NewProduct]) -> BenchResult<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let now = now_text();
        let mut insert = tx.prepare(
            "INSERT INTO products (id, sku, barcode, name, uom, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for p in rows {
            insert.execute(params![
                ProductId::new().as_str(),
                p.sku,
                p.barcode,
                p.name,
                p.uom.as_str(),
                now
            ])?;
        }
    }
    tx.commit()?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Data, statistics, memory, report

/// Products `start..start + count`, each with a unique SKU and 13-digit barcode.
fn products(start: usize, count: usize) -> Vec<NewProduct> {
    (start..start + count)
        .map(|i| NewProduct {
            barcode: Some(barcode(i)),
            category: Some(format!("Category {}", i % 50)),
            ..NewProduct::new(format!("SKU-{i:07}"), format!("Bench product {i}"))
        })
        .collect()
}

fn barcode(i: usize) -> String {
    format!("200{i:010}")
}

fn one() -> BenchResult<Decimal> {
    Ok(Decimal::from_int(1).ok_or("1 is not a decimal")?)
}

fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A tiny deterministic generator, so runs scan the same barcodes without a new crate.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Latency figures in microseconds.
struct Stats {
    n: usize,
    p50: f64,
    p99: f64,
    mean: f64,
    min: f64,
    max: f64,
}

impl Stats {
    fn of(samples: &mut [Duration]) -> Stats {
        samples.sort_unstable();
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        // Nearest rank: the smallest sample with at least q of the samples at or below it.
        let rank = |q: f64| {
            let r = (q * samples.len() as f64).ceil() as usize;
            us(samples[r.clamp(1, samples.len()) - 1])
        };
        let total: f64 = samples.iter().map(|d| us(*d)).sum();
        Stats {
            n: samples.len(),
            p50: rank(0.50),
            p99: rank(0.99),
            mean: total / samples.len() as f64,
            min: samples.first().map_or(0.0, |d| us(*d)),
            max: samples.last().map_or(0.0, |d| us(*d)),
        }
    }

    fn json(&self) -> serde_json::Value {
        json!({
            "n": self.n,
            "p50": round1(self.p50),
            "p99": round1(self.p99),
            "mean": round1(self.mean),
            "min": round1(self.min),
            "max": round1(self.max),
        })
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Peak resident set size so far, in KiB, from `/proc/self/status`.
fn vm_hwm_kib() -> BenchResult<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .ok_or("no VmHWM in /proc/self/status")?;
    let kib = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse::<u64>()?;
    Ok(kib)
}

fn mib(kib: u64) -> f64 {
    round1(kib as f64 / 1024.0)
}

fn print_report(scan: &ScanResult, import: &ImportResult, hwm: [u64; 3]) {
    let ms = |us: f64| us / 1000.0;
    println!();
    println!(
        "Scan-to-commit ({} scans per side, {CATALOG}-product catalog, blocks of {BLOCK} alternating)",
        scan.store.n
    );
    println!(
        "  {:<34} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "", "p50 ms", "p99 ms", "mean ms", "min ms", "max ms"
    );
    for (name, s) in [
        ("store (find_product+record_movement)", &scan.store),
        ("raw rusqlite (SELECT + INSERT tx)", &scan.raw),
    ] {
        println!(
            "  {:<34} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
            name,
            ms(s.p50),
            ms(s.p99),
            ms(s.mean),
            ms(s.min),
            ms(s.max)
        );
    }
    println!(
        "  {:<34} {:>9.2} {:>9.2} {:>9.2}",
        "ratio store / raw",
        scan.ratio_p50(),
        scan.ratio_p99(),
        scan.store.mean / scan.raw.mean
    );
    println!(
        "  target store p50 <= {TARGET_P50_RATIO}x raw p50: {} ({:.2}x)",
        if scan.pass() { "PASS" } else { "FAIL" },
        scan.ratio_p50()
    );
    println!();
    println!("Import of {IMPORT} products, one transaction");
    println!(
        "  {:<34} {:>9.2} s {:>11.0} rows/s",
        "store (import_products)",
        import.store.as_secs_f64(),
        import.store_rows_per_s()
    );
    println!(
        "  {:<34} {:>9.2} s {:>11.0} rows/s",
        "raw rusqlite (plain INSERTs)",
        import.raw.as_secs_f64(),
        import.raw_rows_per_s()
    );
    println!(
        "  {:<34} {:>9.1}x",
        "raw rows/s / store rows/s",
        import.raw_rows_per_s() / import.store_rows_per_s()
    );
    println!();
    println!("Peak memory (VmHWM)");
    for (name, kib) in [
        ("after scan-to-commit", hwm[0]),
        ("after 100k import", hwm[1]),
        ("end", hwm[2]),
    ] {
        println!("  {:<34} {:>9.1} MiB", name, mib(kib));
    }
    println!();
}

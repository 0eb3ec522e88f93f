//! The command-line grammar (clap derive).

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use stocksync_model::{Decimal, ProductStatus, ReasonCode, Uom};
use stocksync_node::{DeviceRole, Synchronous};

#[derive(Parser, Debug)]
#[command(
    name = "stocksync",
    version,
    about = "Offline-first inventory: a local node on SQLite that keeps working without a network"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Work with a node's local database (offline), and sync it with a hub (enroll, sync, run).
    Node(NodeArgs),
    /// Run the demo: a hub and three devices in-process, a warehouse day offline, then sync;
    /// every outcome checked (exit 0 only if all hold).
    Demo(DemoArgs),
    /// Run a hub: the REST API, push, delta feed and WebSocket, on SQLite in a data dir.
    Hub(HubArgs),
}

#[derive(Args, Debug)]
pub struct HubArgs {
    /// Where the database (`hub.db`) and the signing secret live (created if missing).
    #[arg(long, env = "STOCKSYNC_HUB_DATA")]
    pub data_dir: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub bind: String,
    /// Organizations, branches and keys to create at start (JSON; see docs/hub.md).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Create a demo organization, print its keys and write DATA_DIR/dev-credentials.json.
    #[arg(long)]
    pub dev: bool,
    /// Requests per credential per minute (0: unlimited).
    #[arg(long, default_value_t = 1200)]
    pub rate_limit: u32,
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Print one JSON document (devices, steps, checks, table) instead of the narrative.
    #[arg(long)]
    pub json: bool,
    /// Keep the hub's data dir and the three devices' databases in DIR (created; must be empty).
    /// Default: a temporary directory, removed afterwards.
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct NodeArgs {
    /// The node's database file (`init` and `enroll` create it; other commands need it).
    #[arg(long, env = "STOCKSYNC_DB", global = true)]
    pub db: Option<PathBuf>,
    /// Machine-readable output: `{"data": …}` or `{"data": null, "error": {…}}` on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// Commit durability: `full` (fsync every commit, survives power loss) or `normal`.
    #[arg(long, global = true, default_value = "full", value_parser = parse_synchronous)]
    pub synchronous: Synchronous,
    #[command(subcommand)]
    pub command: NodeCommand,
}

fn parse_synchronous(s: &str) -> Result<Synchronous, String> {
    s.parse()
}

#[derive(Subcommand, Debug)]
pub enum NodeCommand {
    /// Make this database a device (once): mints its device id.
    Init {
        /// Organization id.
        #[arg(long)]
        org: String,
        /// Branch id.
        #[arg(long)]
        branch: String,
        /// A name staff recognise, e.g. "Scanner 3".
        #[arg(long)]
        name: String,
        /// handheld, tablet or desktop.
        #[arg(long, value_parser = parse_role)]
        role: DeviceRole,
    },
    /// Locations: add, list.
    #[command(subcommand)]
    Location(LocationCommand),
    /// Products: add, edit, find, list.
    #[command(subcommand)]
    Product(ProductCommand),
    /// Goods in (+).
    Receive {
        #[command(flatten)]
        at: ProductAt,
        /// Quantity (> 0), in the product's unit.
        #[arg(long, allow_negative_numbers = true)]
        qty: Decimal,
        #[command(flatten)]
        unit: UnitArg,
        /// Purchase cost of one unit (with --currency).
        #[arg(long, allow_negative_numbers = true)]
        unit_cost: Option<Decimal>,
        /// Currency of --unit-cost (ISO 4217, e.g. EUR).
        #[arg(long)]
        currency: Option<String>,
        /// Delivery note or PO number.
        #[arg(long)]
        reference: Option<String>,
    },
    /// Goods out (−); refused if this device's view cannot cover it.
    Ship {
        #[command(flatten)]
        at: ProductAt,
        /// Quantity (> 0).
        #[arg(long, allow_negative_numbers = true)]
        qty: Decimal,
        #[command(flatten)]
        unit: UnitArg,
        /// Order number.
        #[arg(long)]
        reference: Option<String>,
    },
    /// Correct stock by ±N with a reason.
    Adjust {
        #[command(flatten)]
        at: ProductAt,
        /// Signed change, e.g. -2 or +3.
        #[arg(long, allow_negative_numbers = true)]
        qty: Decimal,
        #[command(flatten)]
        unit: UnitArg,
        /// DAMAGE, SHRINKAGE, FOUND, COUNT_CORRECTION or OTHER.
        #[arg(long, value_parser = parse_reason)]
        reason: ReasonCode,
    },
    /// Record a count: posts counted − what this device shows now.
    Count {
        #[command(flatten)]
        at: ProductAt,
        /// What was counted.
        #[arg(long, allow_negative_numbers = true)]
        counted: Decimal,
        #[command(flatten)]
        unit: UnitArg,
    },
    /// Move stock between two locations (both legs or neither).
    Transfer {
        /// Product: barcode, SKU or id.
        #[arg(long)]
        sku: String,
        /// From location: code or id.
        #[arg(long)]
        from: String,
        /// To location: code or id.
        #[arg(long)]
        to: String,
        /// Quantity (> 0).
        #[arg(long, allow_negative_numbers = true)]
        qty: Decimal,
        #[command(flatten)]
        unit: UnitArg,
    },
    /// Promise stock to an order (≤ available).
    Allocate {
        #[command(flatten)]
        at: ProductAt,
        /// Quantity (> 0).
        #[arg(long, allow_negative_numbers = true)]
        qty: Decimal,
        #[command(flatten)]
        unit: UnitArg,
    },
    /// Give an allocation back.
    Release {
        /// The allocation id printed by `allocate`.
        allocation_id: String,
    },
    /// Stock levels: on hand, available, allocated, pending, synced.
    Stock {
        /// Only this product (barcode, SKU or id).
        #[arg(long)]
        sku: Option<String>,
        /// Only this location (code or id).
        #[arg(long)]
        location: Option<String>,
    },
    /// The movement ledger, newest first.
    Ledger {
        /// Only this product (barcode, SKU or id).
        #[arg(long)]
        sku: Option<String>,
        /// At most this many legs.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Ops waiting to be pushed (and their state).
    Outbox,
    /// Check the database: SQLite integrity and ledger = stock view = outbox.
    Check,
    /// Enroll with a hub (a fresh database becomes a device of the key's org and branch;
    /// an initialised one keeps its device id and its unsent ops).
    Enroll {
        /// The hub, e.g. http://127.0.0.1:8080.
        #[arg(long, value_name = "URL")]
        hub: String,
        /// The enrollment key from the hub's admin (`stocksync hub --dev` prints one).
        #[arg(long, value_name = "KEY", env = "STOCKSYNC_ENROLLMENT_KEY")]
        enrollment_key: String,
        /// handheld, tablet or desktop (a fresh database only; default desktop).
        #[arg(long, value_parser = parse_role)]
        role: Option<DeviceRole>,
        /// A name staff recognise (a fresh database only; default: the file's name).
        #[arg(long)]
        name: Option<String>,
    },
    /// One sync round now: push every unsent op, pull every change; print what the hub said.
    Sync,
    /// Sync in the background and stay live, printing each change, until Ctrl-C or SIGTERM.
    Run,
    /// Sync state and counts: pending, parked, rejected, open conflicts, last push and pull.
    Status,
    /// The hub's conflicts as last pulled (open ones unless --all).
    Conflicts {
        /// Resolved and dismissed ones too.
        #[arg(long)]
        all: bool,
    },
    /// Settle a conflict from this device (works offline; the next sync sends it).
    #[command(group(clap::ArgGroup::new("resolution").required(true).multiple(false)))]
    Resolve {
        /// The conflict's id (`conf_…`, from `conflicts`).
        conflict_id: String,
        /// The value the field takes, e.g. `11.50 EUR` for a price.
        #[arg(long, group = "resolution", value_name = "VALUE")]
        use_value: Option<String>,
        /// The field takes no value (an optional field: price, barcode, category, description).
        #[arg(long, group = "resolution")]
        clear: bool,
        /// Acknowledge it; nothing changes (a rejected op, or keep the value shown now).
        #[arg(long, group = "resolution")]
        dismiss: bool,
    },
    /// A support bundle: schema, counts, outbox states, stalled ops, last errors, sync status
    /// (no credentials).
    Diagnostics,
}

#[derive(Args, Debug)]
pub struct ProductAt {
    /// Product: barcode, SKU or id.
    #[arg(long)]
    pub sku: String,
    /// Location: code or id.
    #[arg(long)]
    pub location: String,
}

#[derive(Args, Debug)]
pub struct UnitArg {
    /// Unit of the quantity (must be the product's; default: the product's).
    #[arg(long, value_parser = parse_uom)]
    pub uom: Option<Uom>,
}

#[derive(Subcommand, Debug)]
pub enum LocationCommand {
    /// Add a location.
    Add {
        /// Short unique code, e.g. A-01.
        #[arg(long)]
        code: String,
        /// Readable name.
        #[arg(long)]
        name: String,
    },
    /// List locations.
    List,
}

#[derive(Subcommand, Debug)]
pub enum ProductCommand {
    /// Add a product.
    Add {
        /// Unique SKU.
        #[arg(long)]
        sku: String,
        /// Name.
        #[arg(long)]
        name: String,
        /// Scannable barcode (unique).
        #[arg(long)]
        barcode: Option<String>,
        /// Category.
        #[arg(long)]
        category: Option<String>,
        /// Description.
        #[arg(long)]
        description: Option<String>,
        /// EACH (whole numbers), KG, M or L.
        #[arg(long, value_parser = parse_uom, default_value = "EACH")]
        uom: Uom,
        /// Selling price (with --currency).
        #[arg(long, allow_negative_numbers = true)]
        price: Option<Decimal>,
        /// Currency of --price (ISO 4217, e.g. EUR).
        #[arg(long)]
        currency: Option<String>,
    },
    /// Edit a product's fields (one mergeable change).
    Edit {
        /// Product: barcode, SKU or id.
        product: String,
        /// New SKU.
        #[arg(long)]
        sku: Option<String>,
        /// New name.
        #[arg(long)]
        name: Option<String>,
        /// New barcode ("" clears it).
        #[arg(long)]
        barcode: Option<String>,
        /// New category ("" clears it).
        #[arg(long)]
        category: Option<String>,
        /// New description ("" clears it).
        #[arg(long)]
        description: Option<String>,
        /// active, inactive or discontinued.
        #[arg(long, value_parser = parse_status)]
        status: Option<ProductStatus>,
        /// New price (currency: --currency, else the current price's).
        #[arg(long, allow_negative_numbers = true)]
        price: Option<Decimal>,
        /// Currency of --price.
        #[arg(long)]
        currency: Option<String>,
        /// Remove the price.
        #[arg(long, conflicts_with_all = ["price", "currency"])]
        clear_price: bool,
    },
    /// Add many products from a JSON file, all or none: an array of
    /// `{"sku", "name", "barcode"?, "category"?, "description"?, "uom"?, "price"?: {"amount", "currency"}}`.
    Import {
        /// The JSON file ("-" reads standard input).
        file: PathBuf,
    },
    /// Find a product by barcode, SKU or id (the scan lookup).
    Find {
        /// What was scanned or typed.
        code: String,
    },
    /// List products.
    List,
}

/// Whether `--json` is among the arguments (before a `--`): a usage error is then printed as
/// the JSON error too, since clap could not parse the flag itself.
pub fn json_requested(args: impl IntoIterator<Item = std::ffi::OsString>) -> bool {
    args.into_iter()
        .skip(1)
        .take_while(|a| a != "--")
        .any(|a| a == "--json")
}

fn parse_role(s: &str) -> Result<DeviceRole, String> {
    s.parse()
}
fn parse_uom(s: &str) -> Result<Uom, String> {
    s.parse()
}
fn parse_reason(s: &str) -> Result<ReasonCode, String> {
    s.parse()
}
fn parse_status(s: &str) -> Result<ProductStatus, String> {
    s.parse()
}

//! How a hub is set up: limits and lifetimes ([`HubConfig`]) and the organizations, branches and
//! keys it knows ([`Bootstrap`], from a JSON file or `--dev`).

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// Largest request body accepted (a push of 1000 ops fits comfortably).
pub const BODY_LIMIT: usize = 4 * 1024 * 1024;

/// Limits and lifetimes.
#[derive(Clone, Debug)]
pub struct HubConfig {
    /// Where the database and the hub's secret live.
    pub data_dir: PathBuf,
    /// Requests per credential per window (0: unlimited).
    pub rate_limit: u32,
    /// The rate-limit window.
    pub rate_window: Duration,
    /// Enrollment and refresh calls per client address per window (0: unlimited): the routes
    /// that take a secret in the body, so guessing keys is slow. The same number bounds, counted
    /// apart, the failed authentications (unknown API keys, tokens the hub did not sign) an
    /// address may make on the other routes per window.
    pub auth_rate_limit: u32,
    /// Access token lifetime (the contract says one hour).
    pub access_ttl_secs: i64,
    /// Refresh token lifetime.
    pub refresh_ttl_secs: i64,
    /// A refresh token presented again within this many seconds of its first use gets a fresh
    /// pair instead of revoking the family: the answer to the first use may have been lost
    /// (a dropped connection, the device killed before it stored the pair). Later reuse is
    /// treated as theft. 0 turns the grace off.
    pub refresh_reuse_grace_secs: i64,
    /// A delta token older than this gets `full_sync_required`; tombstones older are purged.
    pub retention: Duration,
    /// Idempotency keys are kept at least this long.
    pub idempotency_ttl: Duration,
    /// How often expired idempotency keys and feed tombstones are dropped.
    pub housekeeping_every: Duration,
    /// How often the hub pings a WebSocket peer.
    pub ws_ping_every: Duration,
    /// A peer silent this long is dropped.
    pub ws_idle_timeout: Duration,
}

impl HubConfig {
    /// Defaults for a data dir.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        HubConfig {
            data_dir: data_dir.into(),
            rate_limit: 1200,
            rate_window: Duration::from_secs(60),
            auth_rate_limit: 30,
            access_ttl_secs: 3600,
            refresh_ttl_secs: 30 * 24 * 3600,
            refresh_reuse_grace_secs: 60,
            retention: Duration::from_secs(7 * 24 * 3600),
            idempotency_ttl: Duration::from_secs(48 * 3600),
            housekeeping_every: Duration::from_secs(3600),
            ws_ping_every: Duration::from_secs(20),
            ws_idle_timeout: Duration::from_secs(60),
        }
    }
}

/// Organizations to create (idempotently) at start.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bootstrap {
    /// The organizations.
    #[serde(default)]
    pub organizations: Vec<OrgConfig>,
}

/// One organization with its branches and keys.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgConfig {
    /// `org_…`.
    pub id: String,
    /// Readable name.
    pub name: String,
    /// Its branches.
    #[serde(default)]
    pub branches: Vec<BranchConfig>,
    /// API keys for integrations.
    #[serde(default)]
    pub api_keys: Vec<ApiKeyConfig>,
    /// Keys devices enroll with.
    #[serde(default)]
    pub enrollment_keys: Vec<EnrollmentKeyConfig>,
}

/// A branch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BranchConfig {
    /// `br_…`.
    pub id: String,
    /// Readable name.
    pub name: String,
}

/// An API key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// Readable name.
    pub name: String,
    /// The secret itself.
    pub key: String,
    /// Scopes (default: all).
    #[serde(default = "all_scopes")]
    pub scopes: Vec<String>,
    /// Limit to one branch.
    #[serde(default)]
    pub branch_id: Option<String>,
}

/// An enrollment key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollmentKeyConfig {
    /// The secret itself.
    pub key: String,
    /// The branch devices join.
    pub branch_id: String,
    /// Scopes enrolled devices get (default: all but `inventory.admin`).
    #[serde(default = "device_scopes")]
    pub scopes: Vec<String>,
}

/// Every scope of the contract.
pub const ALL_SCOPES: [&str; 8] = [
    "inventory.products.read",
    "inventory.products.write",
    "inventory.transactions.read",
    "inventory.transactions.create",
    "inventory.allocations.read",
    "inventory.allocations.manage",
    "inventory.reports.read",
    "inventory.admin",
];

/// Every scope.
pub fn all_scopes() -> Vec<String> {
    ALL_SCOPES.iter().map(|s| (*s).to_owned()).collect()
}

/// What a device gets by default: everything but `inventory.admin`.
pub fn device_scopes() -> Vec<String> {
    ALL_SCOPES
        .iter()
        .filter(|s| **s != "inventory.admin")
        .map(|s| (*s).to_owned())
        .collect()
}

/// What `--dev` writes to `DATA_DIR/dev-credentials.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DevCredentials {
    /// The demo organization.
    pub organization_id: String,
    /// Its branch.
    pub branch_id: String,
    /// An API key with every scope.
    pub api_key: String,
    /// An enrollment key for the branch.
    pub enrollment_key: String,
    /// Where the hub listens.
    pub base_url: String,
}

//! Who is calling: credentials (device JWTs and API keys), the organization and branch they
//! belong to, and what they may do.

pub mod jwt;
pub mod secret;
pub mod tokens;

use crate::storage::{ApiKeyRecord, EnrollmentKeyRecord, Tx};
use std::collections::{HashMap, HashSet};

/// The organizations, branches and keys a hub knows, kept in memory (they change only at start
/// and on revocation) so authenticating a request reads no table.
#[derive(Debug, Default)]
pub struct Directory {
    /// Organization id → its branch ids.
    pub branches: HashMap<String, HashSet<String>>,
    /// Key hash → API key.
    pub api_keys: HashMap<String, ApiKeyRecord>,
    /// Key hash → enrollment key.
    pub enrollment_keys: HashMap<String, EnrollmentKeyRecord>,
    /// Revoked refresh-token families (their access tokens die with them).
    pub revoked_families: HashSet<String>,
}

impl Directory {
    /// Loads everything from storage.
    pub fn load(tx: &dyn Tx) -> crate::storage::Result<Self> {
        let mut d = Directory::default();
        for org in tx.orgs()? {
            d.branches.entry(org.id).or_default();
        }
        for b in tx.branches()? {
            d.branches.entry(b.org_id).or_default().insert(b.id);
        }
        d.api_keys = tx
            .api_keys()?
            .into_iter()
            .map(|k| (k.key_hash.clone(), k))
            .collect();
        d.enrollment_keys = tx
            .enrollment_keys()?
            .into_iter()
            .map(|k| (k.key_hash.clone(), k))
            .collect();
        d.revoked_families = tx.revoked_families()?.into_iter().collect();
        Ok(d)
    }
}

/// The authenticated caller of a request.
#[derive(Clone, Debug)]
pub struct Caller {
    /// Its organization.
    pub org: String,
    /// The branches it acts in (`None`: all of the organization's).
    pub branches: Option<Vec<String>>,
    /// Set for device tokens.
    pub device_id: Option<String>,
    /// Scopes granted.
    pub scopes: Vec<String>,
    /// A name for logs and rate limits (`dev_…` or `key_…`), never a secret.
    pub credential_id: String,
    /// For device tokens, the refresh-token family the token was issued in: revoking it ends
    /// the token's requests and its open WebSocket sessions.
    pub family: Option<String>,
}

impl Caller {
    /// `PERMISSION_DENIED` unless the caller has `scope`.
    pub fn require(&self, scope: &str) -> Result<(), crate::error::ApiError> {
        // `inventory.admin` grants every scope (as the API reference says).
        if self
            .scopes
            .iter()
            .any(|s| s == scope || s == "inventory.admin")
        {
            Ok(())
        } else {
            Err(crate::error::ApiError::denied(format!(
                "This credential lacks the scope `{scope}`"
            ))
            .with_details(serde_json::json!({ "required_scope": scope })))
        }
    }

    /// Whether the caller acts in `branch`.
    pub fn in_branch(&self, branch: &str) -> bool {
        self.branches
            .as_ref()
            .is_none_or(|bs| bs.iter().any(|b| b == branch))
    }
}

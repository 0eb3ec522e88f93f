//! Device enrollment and refresh-token rotation. A refresh token works once; presenting one
//! that was already used revokes its whole family (every token rotated from the same
//! enrollment), since it means someone else holds a copy.

use super::jwt::{self, Claims};
use super::secret::{hash_secret, random_token};
use crate::error::ApiError;
use crate::state::AppState;
use crate::storage::{DeviceRecord, RefreshRecord, Tx};
use serde::Deserialize;
use serde_json::{Value, json};
use stocksync_model::DeviceId;

/// Roles a device may enroll as.
pub const DEVICE_ROLES: [&str; 3] = ["handheld", "tablet", "desktop"];

/// `POST /v1/auth/devices`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// The branch's enrollment key.
    pub enrollment_key: String,
    /// The id the device minted for itself (`dev_…`); its ops carry it.
    pub device_id: String,
    /// handheld, tablet or desktop.
    pub role: String,
    /// A readable name.
    #[serde(default)]
    pub name: Option<String>,
}

/// `POST /v1/oauth/token` (JSON or form-encoded).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// Only `refresh_token`.
    pub grant_type: String,
    /// The refresh token.
    pub refresh_token: String,
}

/// What a refresh came to.
pub enum Refreshed {
    /// A new pair.
    Pair(Value),
    /// The token had been used before: its family is now revoked.
    Reused(String),
}

/// Enrolls a device (or enrolls it again in the same branch) and issues its first pair.
pub fn enroll(state: &AppState, tx: &mut dyn Tx, req: &EnrollRequest) -> Result<Value, ApiError> {
    let device_id =
        DeviceId::parse(&req.device_id).map_err(|e| ApiError::field("device_id", e.to_string()))?;
    if !DEVICE_ROLES.contains(&req.role.as_str()) {
        return Err(ApiError::field(
            "role",
            "Must be one of handheld, tablet, desktop",
        ));
    }
    let key = {
        let directory = state.directory.read().unwrap_or_else(|p| p.into_inner());
        directory
            .enrollment_keys
            .get(&hash_secret(&req.enrollment_key))
            .cloned()
            .ok_or_else(|| ApiError::unauthenticated("Unknown enrollment key"))?
    };
    let last_seq = match tx.device(device_id.as_str())? {
        Some(d) if d.org_id != key.org_id => {
            return Err(ApiError::new(
                stocksync_protocol::ErrorCode::Conflict,
                "This device id is enrolled in another organization",
            ));
        }
        // An enrollment key speaks for its branch only: taking over a device id of another
        // branch would let its holder push as that device (and, with a huge `device_seq`, lock
        // the real one out). The same branch may enroll the id again (a device that lost its
        // tokens); a device that really moves mints a new id.
        Some(d) if d.branch_id != key.branch_id => {
            return Err(ApiError::new(
                stocksync_protocol::ErrorCode::Conflict,
                "This device id is enrolled in another branch",
            ));
        }
        Some(d) => d.last_seq,
        None => 0,
    };
    let device = DeviceRecord {
        id: device_id.to_string(),
        org_id: key.org_id.clone(),
        branch_id: key.branch_id.clone(),
        role: req.role.clone(),
        name: req.name.clone().unwrap_or_else(|| device_id.to_string()),
        scopes: key.scopes.clone(),
        last_seq,
    };
    tx.put_device(&device)?;
    let family = random_token("fam_", 12);
    issue(state, tx, &device, &family)
}

/// Rotates a refresh token.
pub fn refresh(
    state: &AppState,
    tx: &mut dyn Tx,
    req: &TokenRequest,
) -> Result<Refreshed, ApiError> {
    if req.grant_type != "refresh_token" {
        return Err(ApiError::field("grant_type", "Must be `refresh_token`"));
    }
    let hash = hash_secret(&req.refresh_token);
    let record = tx
        .refresh(&hash)?
        .ok_or_else(|| ApiError::unauthenticated("Unknown refresh token"))?;
    let revoked = state
        .directory
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .revoked_families
        .contains(&record.family_id);
    if revoked {
        return Err(ApiError::unauthenticated(
            "This token family was revoked; enroll again",
        ));
    }
    if let Some(used_at) = record.used_at {
        let grace = state.config.refresh_reuse_grace_secs;
        if grace == 0 || crate::clock::now_unix() - used_at > grace {
            tx.revoke_family(&record.family_id, &crate::clock::now_rfc3339())?;
            return Ok(Refreshed::Reused(record.family_id));
        }
        // Within the grace: the first answer was most likely lost on the way. Issue another
        // pair of the same family (the unused one from the first use stays valid until used or
        // expired, like any refresh token).
    }
    if record.expires_at <= crate::clock::now_unix() {
        return Err(ApiError::new(
            stocksync_protocol::ErrorCode::TokenExpired,
            "The refresh token expired; enroll again",
        ));
    }
    if record.used_at.is_none() {
        tx.use_refresh(&hash, &crate::clock::now_rfc3339())?;
    }
    let device = tx
        .device(&record.device_id)?
        .ok_or_else(|| ApiError::unauthenticated("Unknown device"))?;
    issue(state, tx, &device, &record.family_id).map(Refreshed::Pair)
}

fn issue(
    state: &AppState,
    tx: &mut dyn Tx,
    d: &DeviceRecord,
    family: &str,
) -> Result<Value, ApiError> {
    let now = crate::clock::now_unix();
    let claims = Claims {
        sub: d.id.clone(),
        org: d.org_id.clone(),
        branch: d.branch_id.clone(),
        role: d.role.clone(),
        permissions: d.scopes.clone(),
        exp: now + state.config.access_ttl_secs,
        iat: now,
        nbf: now,
        fam: family.to_owned(),
        jti: uuid::Uuid::now_v7().simple().to_string(),
    };
    let access = jwt::sign(&state.secrets.jwt, &claims);
    let refresh = random_token("rt_", 32);
    tx.insert_refresh(
        &hash_secret(&refresh),
        &RefreshRecord {
            device_id: d.id.clone(),
            family_id: family.to_owned(),
            used_at: None,
            expires_at: now + state.config.refresh_ttl_secs,
        },
    )?;
    Ok(json!({
        "access_token": access,
        "refresh_token": refresh,
        "token_type": "Bearer",
        "expires_in": state.config.access_ttl_secs,
        "device_id": d.id,
        "organization_id": d.org_id,
        "branch_id": d.branch_id,
        "role": d.role,
        "permissions": d.scopes,
    }))
}

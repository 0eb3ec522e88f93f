//! `Idempotency-Key`: the first response to a key is stored in the same transaction as the
//! effect, so a resend after a lost response (or a crash) gets the original result and the effect
//! happens once. Errors are not stored: nothing happened, so a resend may try again.

use crate::error::ApiError;
use crate::state::Ctx;
use crate::storage::IdemRecord;
use axum::http::HeaderMap;
use serde_json::Value;
use sha2::{Digest, Sha256};
use stocksync_protocol::{ErrorCode, headers};

/// The longest key accepted.
pub const MAX_KEY_LEN: usize = 255;

/// A mutation's idempotency scope and fingerprint.
#[derive(Clone, Debug)]
pub struct Key {
    /// Method and route template (`POST /v1/inventory/transactions`).
    pub endpoint: String,
    /// The client's key.
    pub key: String,
    /// SHA-256 of the canonical body.
    pub request_hash: String,
}

impl Key {
    /// Reads the required header; 400 when missing or unusable.
    pub fn from_request(
        endpoint: &str,
        headers: &HeaderMap,
        body: &Value,
    ) -> Result<Key, ApiError> {
        let key = headers
            .get(headers::IDEMPOTENCY_KEY)
            .ok_or_else(|| {
                ApiError::field(headers::IDEMPOTENCY_KEY, "Is required on this request")
            })?
            .to_str()
            .ok()
            .map(str::trim)
            .filter(|k| !k.is_empty() && k.len() <= MAX_KEY_LEN)
            .ok_or_else(|| {
                ApiError::field(
                    headers::IDEMPOTENCY_KEY,
                    format!("Must be 1 to {MAX_KEY_LEN} characters of header text"),
                )
            })?;
        Ok(Key {
            endpoint: endpoint.to_owned(),
            key: key.to_owned(),
            request_hash: hex(&Sha256::digest(body.to_string().as_bytes())),
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a keyed mutation came to.
pub enum Outcome {
    /// Done now.
    Fresh {
        /// HTTP status.
        status: u16,
        /// `data`.
        data: Value,
    },
    /// Done before: the original result.
    Replay {
        /// HTTP status of the original.
        status: u16,
        /// Its `data`.
        data: Value,
        /// When it was done.
        original_created_at: String,
    },
}

/// Runs `f` unless the key was seen: then replays, or refuses a different body with 422.
pub fn run(
    ctx: &mut Ctx<'_>,
    key: &Key,
    f: impl FnOnce(&mut Ctx<'_>) -> Result<(u16, Value), ApiError>,
) -> Result<Outcome, ApiError> {
    if let Some(seen) = ctx.tx.idempotency(&ctx.org, &key.endpoint, &key.key)? {
        if seen.request_hash != key.request_hash {
            return Err(ApiError::new(
                ErrorCode::IdempotencyKeyReused,
                "This Idempotency-Key was used with a different request",
            )
            .with_details(serde_json::json!({ "original_created_at": seen.created_at })));
        }
        return Ok(Outcome::Replay {
            status: seen.status,
            data: seen.response,
            original_created_at: seen.created_at,
        });
    }
    let (status, data) = f(ctx)?;
    let record = IdemRecord {
        request_hash: key.request_hash.clone(),
        status,
        response: data.clone(),
        created_at: ctx.now.clone(),
    };
    let org = ctx.org.clone();
    ctx.tx
        .put_idempotency(&org, &key.endpoint, &key.key, &record)?;
    Ok(Outcome::Fresh { status, data })
}

//! `GET /v1/inventory/delta`: pages of the change feed behind signed, opaque tokens.
//!
//! The feed keeps each entity's latest state stamped with the sequence of its last change, so a
//! page is "rows above the token's sequence". Without a token the caller gets a snapshot: the
//! live state (no tombstones, no transaction history) up to a horizon fixed when it started,
//! then ordinary deltas from that horizon. An entity changed during the snapshot moves above the
//! horizon and arrives in the deltas; items are whole states, so receiving one twice is harmless.

use crate::auth::Caller;
use crate::auth::secret::{open_blob, sign_blob};
use crate::error::ApiError;
use crate::storage::{FeedQuery, FeedRow, Tx};
use serde::{Deserialize, Serialize};
use stocksync_protocol::checksum::StateDigest;
use stocksync_protocol::{DeltaItem, DeltaMeta, DeltaPage, Entity, ErrorCode};

/// Default and largest page.
pub const DEFAULT_LIMIT: u64 = 500;
/// Largest page.
pub const MAX_LIMIT: u64 = 1000;

/// What a token carries (signed, so a client cannot alter it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Token {
    /// Organization.
    o: String,
    /// Rows with seq above this are next.
    a: u64,
    /// Snapshot horizon (snapshot pages only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    u: Option<u64>,
    /// Branch scope the token was issued for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    b: Option<Vec<String>>,
    /// Issued at (Unix seconds).
    t: i64,
}

fn invalid(message: &str) -> ApiError {
    ApiError::new(ErrorCode::InvalidSyncToken, message.to_owned())
}

/// Serves one page.
pub fn page(
    tx: &dyn Tx,
    key: &[u8],
    retention_secs: i64,
    caller: &Caller,
    since: Option<&str>,
    limit: u64,
) -> Result<(DeltaPage, DeltaMeta), ApiError> {
    let now = crate::clock::now_unix();
    let (current, purged) = tx.feed_state(&caller.org)?;
    let scope = caller.branches.clone().map(|mut b| {
        b.sort();
        b
    });
    let fresh = Token {
        o: caller.org.clone(),
        a: 0,
        u: Some(current),
        b: scope.clone(),
        t: now,
    };
    let token = match since.filter(|s| !s.is_empty()) {
        None => fresh.clone(),
        Some(text) => {
            let bytes = open_blob(key, text)
                .ok_or_else(|| invalid("The sync token is not one this hub issued"))?;
            let t: Token = serde_json::from_slice(&bytes)
                .map_err(|_| invalid("The sync token is not one this hub issued"))?;
            if t.o != caller.org {
                return Err(invalid("The sync token belongs to another organization"));
            }
            if t.b != scope {
                return Err(invalid(
                    "The sync token was issued for another branch scope; start a new sync",
                ));
            }
            if t.a > current {
                return Err(invalid("The sync token is ahead of this hub's feed"));
            }
            // A snapshot in progress never needs tombstones; a delta below the purge does.
            if now - t.t > retention_secs || (t.u.is_none() && t.a < purged) {
                let meta = DeltaMeta {
                    next_sync_token: sign(key, &fresh),
                    changes_count: 0,
                    has_more: true,
                    full_sync_required: true,
                    checksum: None,
                };
                return Ok((DeltaPage::default(), meta));
            }
            t
        }
    };
    let snapshot = token.u.is_some();
    let rows = tx.feed_page(
        &caller.org,
        &FeedQuery {
            after: token.a,
            upto: token.u.unwrap_or(i64::MAX as u64),
            branches: scope.clone(),
            snapshot,
            limit: limit + 1,
        },
    )?;
    let more_rows = rows.len() as u64 > limit;
    let rows: Vec<FeedRow> = rows.into_iter().take(limit as usize).collect();
    let last = rows.last().map(|r| r.seq);
    let mut data = DeltaPage::default();
    for row in &rows {
        let item = DeltaItem {
            entity: Entity::parse(&row.entity)
                .ok_or_else(|| ApiError::internal(format!("feed entity {}", row.entity)))?,
            id: row.entity_id.clone(),
            seq: row.seq,
            version: row.version,
            fields: row.data.as_object().cloned().unwrap_or_default(),
        };
        if row.deleted {
            data.deleted.push(item);
        } else if snapshot || row.created_seq > token.a {
            data.created.push(item);
        } else {
            data.updated.push(item);
        }
    }
    // Where the next page starts, and whether it has everything up to the feed's head.
    let (next, at_head) = match (more_rows, token.u) {
        (true, horizon) => (
            Token {
                a: last.unwrap_or(token.a),
                u: horizon,
                t: token.t,
                ..token.clone()
            },
            false,
        ),
        (false, Some(horizon)) => (
            Token {
                a: horizon,
                u: None,
                t: now,
                ..token.clone()
            },
            horizon == current,
        ),
        (false, None) => (
            Token {
                a: current,
                u: None,
                t: now,
                ..token.clone()
            },
            true,
        ),
    };
    let checksum = if at_head {
        Some(scope_digest(tx, &caller.org, scope.as_deref())?.to_hex())
    } else {
        None
    };
    let meta = DeltaMeta {
        next_sync_token: sign(key, &next),
        changes_count: rows.len(),
        has_more: !at_head,
        full_sync_required: false,
        checksum,
    };
    Ok((data, meta))
}

fn sign(key: &[u8], t: &Token) -> String {
    sign_blob(key, &serde_json::to_vec(t).unwrap_or_default())
}

/// The digest of what a caller with this branch scope holds.
pub fn scope_digest(
    tx: &dyn Tx,
    org: &str,
    branches: Option<&[String]>,
) -> Result<StateDigest, ApiError> {
    let mut total = StateDigest::default();
    for (branch, d) in tx.digests(org)? {
        let visible = branch.is_empty() || branches.is_none_or(|bs| bs.contains(&branch));
        if visible {
            total.combine(&d);
        }
    }
    Ok(total)
}

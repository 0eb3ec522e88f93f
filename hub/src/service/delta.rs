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
use std::io::Write;
use stocksync_protocol::checksum::StateDigest;
use stocksync_protocol::{DeltaMeta, Entity, ErrorCode};

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

/// One page as served: `data` (a `DeltaPage`: `created`, `updated`, `deleted`) already as JSON
/// text, and `meta`.
#[derive(Clone, Debug, PartialEq)]
pub struct Page {
    /// The text of the `DeltaPage` object, the feed rows' stored JSON spliced in unparsed.
    pub data: Vec<u8>,
    /// Token, counts, checksum.
    pub meta: DeltaMeta,
}

/// `data` of a page with no items.
const EMPTY_PAGE: &[u8] = br#"{"created":[],"updated":[],"deleted":[]}"#;

/// Serves one page.
pub fn page(
    tx: &dyn Tx,
    key: &[u8],
    retention_secs: i64,
    caller: &Caller,
    since: Option<&str>,
    limit: u64,
) -> Result<Page, ApiError> {
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
                return Ok(Page {
                    data: EMPTY_PAGE.to_vec(),
                    meta,
                });
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
    let size: usize = rows.iter().map(|r| r.data.len() + 96).sum();
    let mut created = Vec::with_capacity(size);
    let mut updated = Vec::new();
    let mut deleted = Vec::new();
    for row in &rows {
        let bucket = if row.deleted {
            &mut deleted
        } else if snapshot || row.created_seq > token.a {
            &mut created
        } else {
            &mut updated
        };
        push_item(bucket, row)?;
    }
    let mut data = Vec::with_capacity(created.len() + updated.len() + deleted.len() + 48);
    for (name, items) in [
        (&b"{\"created\":["[..], created),
        (b"],\"updated\":[", updated),
        (b"],\"deleted\":[", deleted),
    ] {
        data.extend_from_slice(name);
        data.extend_from_slice(&items);
    }
    data.extend_from_slice(b"]}");
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
    Ok(Page { data, meta })
}

/// Appends one item (`{"entity", "id", "seq", "version", …fields}`) to a bucket's JSON text:
/// the members from the row's columns, then the stored fields as they are (they hold none of
/// those four; see `service::feed`), so nothing is parsed or re-serialised.
fn push_item(out: &mut Vec<u8>, row: &FeedRow) -> Result<(), ApiError> {
    let entity = Entity::parse(&row.entity)
        .ok_or_else(|| ApiError::internal(format!("feed entity {}", row.entity)))?;
    let fields = row
        .data
        .trim()
        .strip_prefix('{')
        .and_then(|d| d.strip_suffix('}'))
        .ok_or_else(|| ApiError::internal(format!("feed data of {}", row.entity_id)))?;
    if !out.is_empty() {
        out.push(b',');
    }
    out.extend_from_slice(b"{\"entity\":\"");
    out.extend_from_slice(entity.as_str().as_bytes());
    out.extend_from_slice(b"\",\"id\":");
    serde_json::to_writer(&mut *out, &row.entity_id).map_err(ApiError::internal)?;
    write!(out, ",\"seq\":{},\"version\":{}", row.seq, row.version).map_err(ApiError::internal)?;
    if !fields.trim().is_empty() {
        out.push(b',');
        out.extend_from_slice(fields.as_bytes());
    }
    out.push(b'}');
    Ok(())
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

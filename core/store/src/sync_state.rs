//! What the device keeps about its hub: where it is, its credentials, the counts a status bar
//! shows, the conflicts to settle, and a diagnostics bundle for support.

use crate::codec::{now, parse_time, time_text};
use crate::device::append_op;
use crate::{Store, StoreError};
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, TransactionBehavior, params};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use stocksync_model::{ConflictId, OpId};
use stocksync_protocol::{ConflictResolutionBody, OpBody, Resolution};

/// The hub this device syncs with and its credentials.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubCredentials {
    /// Base URL (`http://hub:8080`).
    pub hub_url: String,
    /// Bearer token.
    pub access_token: String,
    /// Rotating refresh token.
    pub refresh_token: String,
    /// When the access token runs out.
    pub access_expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for HubCredentials {
    // Tokens stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubCredentials")
            .field("hub_url", &self.hub_url)
            .field("access_expires_at", &self.access_expires_at)
            .finish_non_exhaustive()
    }
}

/// The counts and times a status bar shows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncCounts {
    /// Ops not yet answered by the hub.
    pub pending: u64,
    /// Ops waiting for a person (the hub keeps refusing them).
    pub parked: u64,
    /// Ops the hub rejected (final; the view was corrected).
    pub rejected: u64,
    /// Open conflicts in the hub's queue.
    pub open_conflicts: u64,
    /// Pulled rows waiting for the rows they refer to.
    pub staged: u64,
    /// Last push answer.
    pub last_push_at: Option<String>,
    /// Last page applied.
    pub last_pull_at: Option<String>,
    /// Last time the checksum matched.
    pub last_checksum_at: Option<String>,
    /// The hub this device is enrolled with.
    pub hub_url: Option<String>,
    /// Snapshots started to repair a checksum mismatch.
    pub repairs: u64,
    /// A snapshot is under way (first sync or repair).
    pub snapshot_active: bool,
    /// The last sync error, until a sync succeeds.
    pub last_error: Option<String>,
}

/// A conflict from the hub's queue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConflictRow {
    /// `conf_…`.
    pub id: String,
    /// `field` (a manual field clash) or `rule` (a rejected op).
    pub kind: String,
    /// `open` or `resolved`.
    pub status: String,
    /// Product concerned.
    pub product_id: Option<String>,
    /// Location concerned.
    pub location_id: Option<String>,
    /// The field, for a field clash.
    pub field: Option<String>,
    /// The rule, for a rejection.
    pub rule: Option<String>,
    /// What a person should read.
    pub message: Option<String>,
    /// The op that caused it.
    pub op_id: Option<String>,
    /// A resolution sent from this device that the hub has not confirmed yet.
    pub local_resolution: Option<String>,
    /// The hub's whole record (values, details, resolution).
    pub record: Value,
}

impl Store {
    /// Makes this database a device with an id minted elsewhere (enrollment mints it first).
    pub fn init_device_with_id(
        &self,
        new: &crate::NewDevice,
        device_id: &stocksync_model::DeviceId,
    ) -> Result<crate::DeviceInfo, StoreError> {
        self.insert_device(new, device_id.clone())
    }

    /// The hub and credentials, once enrolled.
    pub fn credentials(&self) -> Result<Option<HubCredentials>, StoreError> {
        let conn = self.conn()?;
        let row: (
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        ) = conn.query_row(
            "SELECT hub_url, access_token, refresh_token, access_expires_at FROM sync_state",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )?;
        match row {
            (Some(hub_url), Some(access_token), Some(refresh_token), Some(expires)) => {
                Ok(Some(HubCredentials {
                    hub_url,
                    access_token,
                    refresh_token,
                    access_expires_at: parse_time(&expires)?,
                }))
            }
            _ => Ok(None),
        }
    }

    /// Stores new credentials, as soon as the hub's answer arrives. If that answer is lost (or
    /// the device dies before this commit), the device presents its previous refresh token
    /// again; the hub accepts that within a short grace instead of revoking the family.
    pub fn save_credentials(&self, c: &HubCredentials) -> Result<(), StoreError> {
        let conn = self.conn()?;
        conn.execute(
            "UPDATE sync_state SET hub_url = ?1, access_token = ?2, refresh_token = ?3,
                 access_expires_at = ?4, enrolled_at = coalesce(enrolled_at, ?5)",
            params![
                c.hub_url,
                c.access_token,
                c.refresh_token,
                time_text(c.access_expires_at),
                time_text(now())
            ],
        )?;
        Ok(())
    }

    /// Drops the tokens (the hub refused them for good): the device must enroll again.
    /// Unsent ops stay.
    pub fn forget_credentials(&self) -> Result<(), StoreError> {
        let conn = self.conn()?;
        conn.execute(
            "UPDATE sync_state SET access_token = NULL, refresh_token = NULL,
                 access_expires_at = NULL",
            [],
        )?;
        Ok(())
    }

    /// Remembers the last sync error (or clears it), for status and diagnostics.
    pub fn set_sync_error(&self, error: Option<&str>) -> Result<(), StoreError> {
        let conn = self.conn()?;
        conn.execute("UPDATE sync_state SET last_error = ?1", [error])?;
        Ok(())
    }

    /// Counts for the status bar.
    pub fn sync_counts(&self) -> Result<SyncCounts, StoreError> {
        let conn = self.conn()?;
        let mut counts: SyncCounts = conn.query_row(
            "SELECT last_push_at, last_pull_at, last_checksum_at, hub_url, repairs,
                    snapshot_active, last_error FROM sync_state",
            [],
            |r| {
                Ok(SyncCounts {
                    last_push_at: r.get(0)?,
                    last_pull_at: r.get(1)?,
                    last_checksum_at: r.get(2)?,
                    hub_url: r.get(3)?,
                    repairs: r.get::<_, i64>(4)?.try_into().unwrap_or(0),
                    snapshot_active: r.get(5)?,
                    last_error: r.get(6)?,
                    ..SyncCounts::default()
                })
            },
        )?;
        let mut stmt = conn.prepare_cached(
            "SELECT state, count(*) FROM outbox
             WHERE state IN ('pending', 'in_flight', 'parked', 'rejected') GROUP BY state",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let n = u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0);
            match r.get_ref(0)?.as_str().map_err(rusqlite::Error::from)? {
                "parked" => counts.parked += n,
                "rejected" => counts.rejected += n,
                _ => counts.pending += n,
            }
        }
        counts.open_conflicts = conn
            .query_row(
                "SELECT count(*) FROM conflicts WHERE status = 'open'",
                [],
                |r| r.get::<_, i64>(0),
            )?
            .try_into()
            .unwrap_or(0);
        counts.staged = conn
            .query_row("SELECT count(*) FROM staged", [], |r| r.get::<_, i64>(0))?
            .try_into()
            .unwrap_or(0);
        Ok(counts)
    }

    /// Conflicts, newest first; `open_only` hides settled ones.
    pub fn conflicts(&self, open_only: bool) -> Result<Vec<ConflictRow>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT id, kind, status, product_id, location_id, field, rule, message, op_id,
                    local_resolution, data
             FROM conflicts WHERE (?1 = 0 OR status = 'open')
             ORDER BY created_at DESC, id",
        )?;
        let rows = stmt.query_map([open_only], |r| {
            Ok(ConflictRow {
                id: r.get(0)?,
                kind: r.get(1)?,
                status: r.get(2)?,
                product_id: r.get(3)?,
                location_id: r.get(4)?,
                field: r.get(5)?,
                rule: r.get(6)?,
                message: r.get(7)?,
                op_id: r.get(8)?,
                local_resolution: r.get(9)?,
                record: serde_json::from_str(&r.get::<_, String>(10)?).unwrap_or(Value::Null),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Settles a conflict from this device: a `conflict_resolution` op goes into the outbox
    /// (so it works offline and syncs like any change); the hub's answer closes it everywhere.
    pub fn resolve_conflict(
        &self,
        id: &ConflictId,
        resolution: Resolution,
        value: Option<String>,
    ) -> Result<OpId, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let status: Option<String> = tx
            .query_row(
                "SELECT status FROM conflicts WHERE id = ?1",
                [id.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        match status.as_deref() {
            None => {
                return Err(StoreError::NotFound {
                    entity: "conflict",
                    key: id.to_string(),
                });
            }
            Some("open") => {}
            Some(_) => {
                return Err(StoreError::Invalid(
                    stocksync_model::ValidationErrors::single("conflict_id", "Is already resolved"),
                ));
            }
        }
        let shown = match (resolution, &value) {
            (Resolution::UseValue, Some(v)) => format!("use_value: {v}"),
            (Resolution::UseValue, None) => "use_value: (cleared)".to_owned(),
            (Resolution::Dismiss, _) => "dismiss".to_owned(),
        };
        let op = append_op(
            &tx,
            OpBody::ConflictResolution(ConflictResolutionBody {
                conflict_id: id.clone(),
                resolution,
                value,
            }),
            now(),
        )?;
        tx.execute(
            "UPDATE conflicts SET local_resolution = ?2 WHERE id = ?1",
            params![id.as_str(), shown],
        )?;
        tx.commit()?;
        Ok(op.op_id)
    }

    /// Everything support needs to see what a device is doing, with no secrets in it.
    pub fn diagnostics(&self) -> Result<Value, StoreError> {
        let counts = self.sync_counts()?;
        let problems = self.check()?;
        let conn = self.conn()?;
        let (last_error, token, snapshot_reason, enrolled): (
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        ) = conn.query_row(
            "SELECT last_error, delta_token, snapshot_reason, enrolled_at FROM sync_state",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )?;
        let mut by_state = serde_json::Map::new();
        let mut stmt = conn.prepare("SELECT state, count(*) FROM outbox GROUP BY state")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            by_state.insert(r.get(0)?, json!(r.get::<_, i64>(1)?));
        }
        drop(rows);
        drop(stmt);
        let mut stalled = Vec::new();
        let mut stmt = conn.prepare(
            "SELECT op_id, kind, state, attempts, last_error FROM outbox
             WHERE state IN ('parked', 'rejected') OR (state != 'acked' AND last_error IS NOT NULL)
             ORDER BY device_seq DESC LIMIT 20",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            stalled.push(json!({
                "op_id": r.get::<_, String>(0)?,
                "kind": r.get::<_, String>(1)?,
                "state": r.get::<_, String>(2)?,
                "attempts": r.get::<_, i64>(3)?,
                "last_error": r.get::<_, Option<String>>(4)?,
            }));
        }
        drop(rows);
        drop(stmt);
        let mut staged = Vec::new();
        let mut stmt = conn.prepare("SELECT entity, id, reason FROM staged LIMIT 20")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            staged.push(json!({
                "entity": r.get::<_, String>(0)?,
                "id": r.get::<_, String>(1)?,
                "reason": r.get::<_, String>(2)?,
            }));
        }
        let table = |name: &str| -> Result<i64, StoreError> {
            Ok(conn.query_row(&format!("SELECT count(*) FROM {name}"), [], |r| r.get(0))?)
        };
        Ok(json!({
            "schema_version": crate::SCHEMA_VERSION,
            "sqlite_version": rusqlite::version(),
            "counts": counts,
            "outbox_by_state": by_state,
            "rows": {
                "products": table("products")?,
                "locations": table("locations")?,
                "stock": table("stock")?,
                "ledger": table("ledger")?,
                "conflicts": table("conflicts")?,
            },
            "enrolled_at": enrolled,
            "has_pull_position": token.is_some(),
            "snapshot_reason": snapshot_reason,
            "last_error": last_error,
            "ops_needing_attention": stalled,
            "staged": staged,
            "problems": problems,
        }))
    }
}

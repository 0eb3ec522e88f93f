//! The device identity (made once by `init`, kept for the life of the file) and the outbox
//! append that every local change goes through.

use crate::codec::{now, parse_col, parse_time, time_text};
use crate::{Store, StoreError};
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use stocksync_model::validation::ValidationErrors;
use stocksync_model::{Clock, DeviceId, HlcTimestamp, OpId};
use stocksync_protocol::{OpBody, PushOp};

/// What kind of device this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceRole {
    /// A warehouse scanner.
    Handheld,
    /// A store tablet.
    Tablet,
    /// A back-office desktop.
    Desktop,
}

impl DeviceRole {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceRole::Handheld => "handheld",
            DeviceRole::Tablet => "tablet",
            DeviceRole::Desktop => "desktop",
        }
    }
}

impl fmt::Display for DeviceRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeviceRole {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "handheld" => Ok(DeviceRole::Handheld),
            "tablet" => Ok(DeviceRole::Tablet),
            "desktop" => Ok(DeviceRole::Desktop),
            _ => Err(format!(
                "`{s}` is not a device role (handheld, tablet or desktop)"
            )),
        }
    }
}

/// What `init` needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewDevice {
    /// Organization.
    pub org_id: String,
    /// Branch.
    pub branch_id: String,
    /// A name staff recognise (`Scanner 3`).
    pub name: String,
    /// Kind of device.
    pub role: DeviceRole,
}

/// The device this database belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// Minted once, kept forever.
    pub device_id: DeviceId,
    /// Organization.
    pub org_id: String,
    /// Branch.
    pub branch_id: String,
    /// Name.
    pub name: String,
    /// Kind.
    pub role: DeviceRole,
    /// When `init` ran.
    pub created_at: DateTime<Utc>,
}

impl NewDevice {
    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        for (field, value) in [
            ("org", &self.org_id),
            ("branch", &self.branch_id),
            ("name", &self.name),
        ] {
            if value.trim().is_empty() {
                errors.add(field, "Must not be empty");
            } else if value.chars().count() > 200 {
                errors.add(field, "Must be at most 200 characters");
            }
        }
        errors.into_result()
    }
}

impl Store {
    /// Makes this database a device: mints its id. Refused if it already is one.
    pub fn init_device(&self, new: &NewDevice) -> Result<DeviceInfo, StoreError> {
        self.insert_device(new, DeviceId::new())
    }

    pub(crate) fn insert_device(
        &self,
        new: &NewDevice,
        device_id: DeviceId,
    ) -> Result<DeviceInfo, StoreError> {
        new.validate()?;
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        if let Some(existing) = read_device(&tx)? {
            return Err(StoreError::AlreadyInitialised(
                existing.device_id.to_string(),
            ));
        }
        let now = now();
        tx.execute(
            "INSERT INTO device (singleton, device_id, org_id, branch_id, name, role, created_at)
             VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                device_id.as_str(),
                new.org_id,
                new.branch_id,
                new.name,
                new.role.as_str(),
                time_text(now)
            ],
        )?;
        tx.commit()?;
        // The lock is not re-entrant: let go before reading the row back.
        drop(conn);
        self.device()
    }

    /// The device, or [`StoreError::NotInitialised`].
    pub fn device(&self) -> Result<DeviceInfo, StoreError> {
        let conn = self.conn()?;
        read_device(&conn)?.ok_or(StoreError::NotInitialised)
    }
}

fn read_device(conn: &rusqlite::Connection) -> Result<Option<DeviceInfo>, StoreError> {
    let row = conn
        .prepare_cached("SELECT device_id, org_id, branch_id, name, role, created_at FROM device")?
        .query_row([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
            ))
        })
        .optional()?;
    row.map(|(id, org, branch, name, role, created)| {
        Ok(DeviceInfo {
            device_id: parse_col("device id", &id)?,
            org_id: org,
            branch_id: branch,
            name,
            role: parse_col("role", &role)?,
            created_at: parse_time(&created)?,
        })
    })
    .transpose()
}

/// Appends an op to the outbox inside `tx`: the next `device_seq` (max + 1) and the next tick of
/// the hybrid logical clock, resumed from the newest op (or from what the device row kept of
/// remote timestamps, if later). Both live in the op row itself, so they survive restarts with it
/// and a local write dirties no counter row.
pub(crate) fn append_op(
    tx: &Transaction<'_>,
    body: OpBody,
    now: DateTime<Utc>,
) -> Result<PushOp, StoreError> {
    let (device_id, wall, counter): (String, i64, i64) = tx
        .prepare_cached("SELECT device_id, hlc_wall_ms, hlc_counter FROM device")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?
        .ok_or(StoreError::NotInitialised)?;
    let last: Option<(i64, String)> = tx
        .prepare_cached("SELECT device_seq, hlc FROM outbox ORDER BY device_seq DESC LIMIT 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let mut state = (
        u64::try_from(wall).unwrap_or(0),
        u32::try_from(counter).unwrap_or(0),
    );
    let mut seq = 1;
    if let Some((last_seq, last_hlc)) = last {
        let last_hlc: HlcTimestamp = parse_col("op hlc", &last_hlc)?;
        state = state.max((last_hlc.wall_ms, last_hlc.counter));
        seq = last_seq + 1;
    }
    let mut clock = Clock::resume(device_id, state.0, state.1);
    let hlc = clock.now(u64::try_from(now.timestamp_millis()).unwrap_or(0));
    let op = PushOp {
        op_id: OpId::new(),
        device_seq: u64::try_from(seq).map_err(|_| StoreError::Corrupt("device_seq".into()))?,
        occurred_at: time_text(now),
        hlc,
        body,
    };
    // `{"kind": …, "body": …}`: the kind has its own column, the body is kept as JSON text.
    let tagged =
        serde_json::to_value(&op.body).map_err(|e| StoreError::Corrupt(format!("op body: {e}")))?;
    tx.prepare_cached(
        "INSERT INTO outbox (device_seq, op_id, kind, body, hlc, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
    )?
    .execute(params![
        seq,
        op.op_id.as_str(),
        op.body.kind().as_str(),
        tagged["body"].to_string(),
        op.hlc.to_string(),
        op.occurred_at,
    ])?;
    Ok(op)
}

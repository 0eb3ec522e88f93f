//! Numbered, append-only migrations (`migrations/NNN_name.sql`), each applied in one
//! transaction and recorded in `PRAGMA user_version`. Never edit a released migration: add one.

use crate::StoreError;
use rusqlite::Connection;

/// One schema step.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// The version the schema is at after this step.
    pub version: i64,
    /// File name, for messages.
    pub name: &'static str,
    /// The SQL.
    pub sql: &'static str,
}

/// Every migration, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "001_initial.sql",
        sql: include_str!("../migrations/001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "002_allocations.sql",
        sql: include_str!("../migrations/002_allocations.sql"),
    },
    Migration {
        version: 3,
        name: "003_sync.sql",
        sql: include_str!("../migrations/003_sync.sql"),
    },
];

/// The schema version this program writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the schema to [`SCHEMA_VERSION`]; refuses a file from a newer program.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    migrate_to(conn, SCHEMA_VERSION)
}

/// Applies migrations up to `target` (tests use this to build old schemas).
pub fn migrate_to(conn: &mut Connection, target: i64) -> Result<(), StoreError> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found: current,
            known: SCHEMA_VERSION,
        });
    }
    for m in MIGRATIONS
        .iter()
        .filter(|m| m.version > current && m.version <= target)
    {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // Another process may have migrated while we waited for the lock.
        let now: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if now >= m.version {
            continue;
        }
        tx.execute_batch(m.sql)
            .map_err(|e| StoreError::Setup(format!("migration {}: {e}", m.name)))?;
        tx.pragma_update(None, "user_version", m.version)?;
        tx.commit()?;
    }
    Ok(())
}

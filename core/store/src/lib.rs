//! The node's SQLite store.
//!
//! Every local change is one `BEGIN IMMEDIATE` transaction that writes the ledger legs, updates
//! the materialised stock view and appends the op to the outbox, so a crash at any instant
//! leaves all of it or none. The business checks run inside that transaction, against the levels
//! it reads, through the model's pure [`stocksync_model::plan`].

mod catalog;
mod codec;
mod device;
mod error;
mod migrations;
mod movements;
mod pull;
mod push;
mod repoint;
mod sync_state;
mod views;

pub use device::{DeviceInfo, DeviceRole, NewDevice};
pub use error::StoreError;
pub use migrations::{MIGRATIONS, Migration, SCHEMA_VERSION, migrate_to};
pub use movements::{Allocation, Recorded};
pub use pull::{ChecksumCheck, PageApplied};
pub use push::{OpOutcome, PushApplied, PushBatch};
pub use sync_state::{ConflictRow, HubCredentials, SyncCounts};
pub use views::{LedgerFilter, LedgerRow, OutboxRow, StockFilter, StockRow};

use rusqlite::Connection;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// How hard SQLite works to make each commit survive a power cut.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Synchronous {
    /// fsync on every commit: a committed write survives a battery pull. The default.
    #[default]
    Full,
    /// fsync at checkpoints only: faster; a power cut may lose the last commits (never
    /// corrupts). Safe against an app crash.
    Normal,
}

impl std::str::FromStr for Synchronous {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "full" => Ok(Synchronous::Full),
            "normal" => Ok(Synchronous::Normal),
            _ => Err(format!("`{s}` is not a synchronous mode (full or normal)")),
        }
    }
}

/// Options for opening a store.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Durability of each commit.
    pub synchronous: Synchronous,
    /// How long to wait for another writer (another process on the same file).
    pub busy_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            synchronous: Synchronous::Full,
            busy_timeout: Duration::from_secs(5),
        }
    }
}

/// The node's database. Cheap to share behind an `Arc`; calls are serialised on one connection.
pub struct Store {
    conn: Mutex<Connection>,
}

impl Store {
    /// Opens (or creates) the database at `path` and brings its schema up to date.
    /// Never deletes or recreates an existing file: it may hold unsent ops.
    pub fn open(path: impl AsRef<Path>, options: &StoreOptions) -> Result<Store, StoreError> {
        let conn = Connection::open(path.as_ref())?;
        Self::setup(conn, options)
    }

    /// An in-memory store, for unit tests.
    pub fn open_in_memory() -> Result<Store, StoreError> {
        Self::setup(Connection::open_in_memory()?, &StoreOptions::default())
    }

    fn setup(mut conn: Connection, options: &StoreOptions) -> Result<Store, StoreError> {
        conn.busy_timeout(options.busy_timeout)?;
        // Refuse a file from a newer program before touching it (even the journal mode).
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                found: version,
                known: SCHEMA_VERSION,
            });
        }
        // journal_mode answers with a row, so it is queried rather than executed.
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if mode != "wal" && mode != "memory" {
            return Err(StoreError::Setup(format!(
                "journal mode is {mode}, WAL is required"
            )));
        }
        let sync = match options.synchronous {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        };
        conn.execute_batch(&format!(
            "PRAGMA synchronous = {sync}; PRAGMA foreign_keys = ON;"
        ))?;
        conn.set_prepared_statement_cache_capacity(64);
        migrations::migrate(&mut conn)?;
        Ok(Store {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        // A panic while holding the lock cannot leave a transaction half-done (rusqlite rolls
        // back on drop), so a poisoned lock is safe to take over.
        Ok(self.conn.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// `PRAGMA integrity_check` plus the store's own invariants: the stock view equals the
    /// ledger's sums, and every ledger op and allocation has its outbox op. Returns the problems.
    pub fn check(&self) -> Result<Vec<String>, StoreError> {
        views::check(&*self.conn()?)
    }
}

//! One `run` per database file. `run` holds an exclusive OS lock (`flock`) on the sidecar file
//! `DB.lock` for as long as it lives and writes its pid there; the OS releases the lock when the
//! process ends, however it ends (SIGKILL included), so a stale file never blocks anyone.
//! `status` asks the lock whether a `run` is live, and a second `run` is refused.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use stocksync_node::NodeError;

/// The rule a second `run` on one file breaks (its `--json` error names it).
pub const RULE: &str = "one_run_per_database";

/// Held by the live `run`; dropping it (or the process ending) releases the lock.
pub struct RunLock {
    _file: File,
}

/// The `run` that holds the lock.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LiveRun {
    /// Its process id (`None` in the instant between taking the lock and writing it).
    pub pid: Option<u32>,
    /// When it started (local time), as it wrote it.
    pub since: Option<String>,
}

/// `node.db` → `node.db.lock`.
fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

fn storage(e: &std::io::Error, path: &Path) -> NodeError {
    NodeError::Storage {
        message: format!("lock file {}: {e}", path.display()),
    }
}

/// Takes the lock for this process's `run`, or says which process has it.
pub fn acquire(db: &Path, since: &str) -> Result<RunLock, NodeError> {
    let path = lock_path(db);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| storage(&e, &path))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let live = read(&mut file);
            let who = live
                .pid
                .map_or_else(|| "another process".to_owned(), |p| format!("process {p}"));
            return Err(NodeError::Rule {
                rule: RULE.into(),
                message: format!(
                    "`run` is already live on this database in {who}; one `run` per file \
                     (stop that one first, with Ctrl-C or kill)"
                ),
            });
        }
        Err(TryLockError::Error(e)) => return Err(storage(&e, &path)),
    }
    file.set_len(0).map_err(|e| storage(&e, &path))?;
    let text = format!("{}\n{since}\n", std::process::id());
    file.write_all(text.as_bytes())
        .and_then(|()| file.flush())
        .map_err(|e| storage(&e, &path))?;
    Ok(RunLock { _file: file })
}

/// The `run` live on this database, if any (never creates the lock file).
pub fn holder(db: &Path) -> Option<LiveRun> {
    let mut file = File::open(lock_path(db)).ok()?;
    match file.try_lock_shared() {
        // Nobody holds it; ours goes when `file` is dropped.
        Ok(()) => None,
        Err(TryLockError::WouldBlock) => Some(read(&mut file)),
        Err(TryLockError::Error(_)) => None,
    }
}

/// The pid and start time a `run` wrote into the lock file.
fn read(file: &mut File) -> LiveRun {
    let mut text = String::new();
    let _ = file.read_to_string(&mut text);
    let mut lines = text.lines();
    LiveRun {
        pid: lines.next().and_then(|l| l.trim().parse().ok()),
        since: lines.next().map(str::to_owned).filter(|s| !s.is_empty()),
    }
}

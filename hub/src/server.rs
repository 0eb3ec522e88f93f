//! Starting and stopping a hub: open the data dir, apply the bootstrap, bind, serve until told
//! to stop, then let in-flight requests finish.

use crate::auth::Directory;
use crate::auth::secret::{self, hash_secret};
use crate::config::{
    ApiKeyConfig, Bootstrap, BranchConfig, DevCredentials, EnrollmentKeyConfig, HubConfig,
    OrgConfig, all_scopes, device_scopes,
};
use crate::events::BUS_CAPACITY;
use crate::ratelimit::RateLimiter;
use crate::state::{AppState, Inner};
use crate::storage::sqlite::SqliteStorage;
use crate::storage::{
    ApiKeyRecord, BranchRecord, EnrollmentKeyRecord, OrgRecord, Storage, StorageError,
};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use stocksync_model::Clock;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Why a hub could not start.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The data dir, the secret or the socket.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The database.
    #[error("{0}")]
    Storage(#[from] StorageError),
    /// A bad bootstrap file.
    #[error("configuration: {0}")]
    Config(String),
}

/// A running hub.
pub struct Hub {
    /// Where it listens.
    pub addr: SocketAddr,
    state: AppState,
    stop: watch::Sender<bool>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Hub {
    /// Opens the data dir, applies `bootstrap`, binds `bind` and starts serving.
    pub async fn start(
        config: HubConfig,
        bootstrap: &Bootstrap,
        bind: &str,
    ) -> Result<Hub, HubError> {
        let (stop, stopped) = watch::channel(false);
        let state = open_state(config, bootstrap, stopped.clone())?;
        let listener = tokio::net::TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        // No Nagle delay: small WebSocket frames and responses leave at once (measured: the
        // ~40 ms tail of fan-out latency disappears).
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let app = crate::routes::router(state.clone());
        let mut signal = stopped;
        let task = tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move {
                let _ = signal.wait_for(|s| *s).await;
            })
            .await
        });
        spawn_housekeeping(state.clone());
        tracing::info!(%addr, "hub listening");
        Ok(Hub {
            addr,
            state,
            stop,
            task,
        })
    }

    /// `http://ADDR`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The shared state (for benches and tests in this crate's family).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Stops accepting, closes WebSockets, waits for in-flight requests.
    pub async fn shutdown(self) -> std::io::Result<()> {
        let _ = self.stop.send(true);
        self.task
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
    }

    /// Serves until Ctrl-C (or SIGTERM), then shuts down gracefully.
    pub async fn run_until_signal(self) -> std::io::Result<()> {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        ctrl_c.await?;
        tracing::info!("shutting down");
        self.shutdown().await
    }
}

/// How long an API key that worked from an address keeps working there while that address is
/// refused for failed authentications.
const KNOWN_KEY_TTL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Opens storage and builds the shared state.
pub fn open_state(
    config: HubConfig,
    bootstrap: &Bootstrap,
    shutdown: watch::Receiver<bool>,
) -> Result<AppState, HubError> {
    std::fs::create_dir_all(&config.data_dir)?;
    let secrets = secret::load_or_create(&config.data_dir)?;
    let storage = SqliteStorage::open(&config.data_dir.join(DB_FILE))?;
    apply_bootstrap(&storage, bootstrap)?;
    let directory = Directory::load(&*storage.read()?)?;
    if directory.branches.is_empty() {
        tracing::warn!(
            "the hub knows no organization yet: start it with --config FILE (docs/hub.md) or --dev"
        );
    }
    let (bus, _) = tokio::sync::broadcast::channel(BUS_CAPACITY);
    let limiter = RateLimiter::new(config.rate_limit, config.rate_window);
    let auth_limiter = RateLimiter::new(config.auth_rate_limit, config.rate_window);
    Ok(AppState(Arc::new(Inner {
        limiter,
        auth_limiter,
        known_keys: crate::ratelimit::Recent::new(KNOWN_KEY_TTL),
        config,
        storage: Arc::new(storage),
        secrets,
        directory: RwLock::new(directory),
        metrics: Default::default(),
        bus,
        clock: Mutex::new(Clock::resume("hub", 0, 0)),
        shutdown,
        revocations: watch::channel(0).0,
        publish: Mutex::new(()),
    })))
}

/// Creates (or opens and migrates) a hub data dir and applies `bootstrap`, without serving: so a
/// tool can write into it (e.g. [`crate::seed::bulk`]) before the first [`Hub::start`].
pub fn init_data_dir(data_dir: &Path, bootstrap: &Bootstrap) -> Result<(), HubError> {
    std::fs::create_dir_all(data_dir)?;
    let storage = SqliteStorage::open(&data_dir.join(DB_FILE))?;
    apply_bootstrap(&storage, bootstrap)
}

/// The database's file name in the data dir.
pub const DB_FILE: &str = "hub.db";

fn apply_bootstrap(storage: &dyn Storage, b: &Bootstrap) -> Result<(), HubError> {
    let mut tx = storage.write()?;
    for org in &b.organizations {
        if !org.id.starts_with("org_") {
            return Err(HubError::Config(format!(
                "organization id `{}` must start with org_",
                org.id
            )));
        }
        tx.ensure_org(&OrgRecord {
            id: org.id.clone(),
            name: org.name.clone(),
        })?;
        for br in &org.branches {
            tx.ensure_branch(&BranchRecord {
                org_id: org.id.clone(),
                id: br.id.clone(),
                name: br.name.clone(),
            })?;
        }
        let has_branch = |id: &str| org.branches.iter().any(|b| b.id == id);
        for k in &org.api_keys {
            if k.branch_id.as_deref().is_some_and(|b| !has_branch(b)) {
                return Err(HubError::Config(format!(
                    "API key `{}` names an unknown branch",
                    k.name
                )));
            }
            tx.ensure_api_key(&ApiKeyRecord {
                key_hash: hash_secret(&k.key),
                id: format!("key_{}", &hash_secret(&k.key)[..16]),
                org_id: org.id.clone(),
                branch_id: k.branch_id.clone(),
                name: k.name.clone(),
                scopes: k.scopes.clone(),
            })?;
        }
        for k in &org.enrollment_keys {
            if !has_branch(&k.branch_id) {
                return Err(HubError::Config(
                    "an enrollment key names an unknown branch".into(),
                ));
            }
            tx.ensure_enrollment_key(&EnrollmentKeyRecord {
                key_hash: hash_secret(&k.key),
                org_id: org.id.clone(),
                branch_id: k.branch_id.clone(),
                scopes: k.scopes.clone(),
            })?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Reads a bootstrap file (JSON, see `docs/hub.md`).
pub fn read_bootstrap(path: &Path) -> Result<Bootstrap, HubError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| HubError::Config(format!("{}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| HubError::Config(format!("{}: {e}", path.display())))
}

/// The demo organization of `--dev`: keys reused from an earlier `dev-credentials.json` in the
/// data dir, else made up now.
pub fn dev_bootstrap(data_dir: &Path) -> (Bootstrap, DevCredentials) {
    let earlier: Option<DevCredentials> = std::fs::read(data_dir.join(DEV_CREDENTIALS))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let creds = earlier.unwrap_or_else(|| DevCredentials {
        organization_id: "org_demo".into(),
        branch_id: "br_main".into(),
        api_key: secret::random_token("ssk_", 24),
        enrollment_key: secret::random_token("enr_", 24),
        base_url: String::new(),
    });
    let bootstrap = Bootstrap {
        organizations: vec![OrgConfig {
            id: creds.organization_id.clone(),
            name: "Demo Organization".into(),
            branches: vec![BranchConfig {
                id: creds.branch_id.clone(),
                name: "Main warehouse".into(),
            }],
            api_keys: vec![ApiKeyConfig {
                name: "dev".into(),
                key: creds.api_key.clone(),
                scopes: all_scopes(),
                branch_id: None,
            }],
            enrollment_keys: vec![EnrollmentKeyConfig {
                key: creds.enrollment_key.clone(),
                branch_id: creds.branch_id.clone(),
                scopes: device_scopes(),
            }],
        }],
    };
    (bootstrap, creds)
}

/// File name of the dev credentials in the data dir.
pub const DEV_CREDENTIALS: &str = "dev-credentials.json";

/// Writes `dev-credentials.json` (mode 0600: it holds keys).
pub fn write_dev_credentials(data_dir: &Path, creds: &DevCredentials) -> std::io::Result<()> {
    let path = data_dir.join(DEV_CREDENTIALS);
    let text = serde_json::to_string_pretty(creds).map_err(std::io::Error::other)?;
    std::fs::write(&path, text)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// Once per `housekeeping_every`: forgets idempotency keys past their time, and drops feed
/// tombstones no valid delta token can still need.
///
/// A delta token is honoured only if issued within the retention, and every token's position is
/// at least the feed's head when its pull began; so tombstones at or below the head of one
/// retention ago can go. The heads are sampled in memory at each tick (after a restart nothing is
/// purged until a retention has passed again).
fn spawn_housekeeping(state: AppState) {
    let mut stopped = state.shutdown.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(state.config.housekeeping_every);
        let mut heads: std::collections::VecDeque<(std::time::Instant, Vec<(String, u64)>)> =
            Default::default();
        loop {
            tokio::select! {
                _ = every.tick() => {}
                _ = stopped.changed() => break,
            }
            if let Err(e) = housekeeping(&state, &mut heads).await {
                tracing::warn!(error = %e, "housekeeping failed");
            }
        }
    });
}

async fn housekeeping(
    state: &AppState,
    heads: &mut std::collections::VecDeque<(std::time::Instant, Vec<(String, u64)>)>,
) -> Result<(), crate::error::ApiError> {
    let ttl = chrono::Duration::from_std(state.config.idempotency_ttl)
        .unwrap_or(chrono::Duration::days(2));
    let before = (chrono::Utc::now() - ttl).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    state
        .write("", move |ctx| {
            ctx.tx.purge_idempotency(&before).map_err(Into::into)
        })
        .await?;

    let now = std::time::Instant::now();
    let sample = state
        .read(|tx| {
            let mut out = Vec::new();
            for org in tx.orgs()? {
                let (head, _) = tx.feed_state(&org.id)?;
                out.push((org.id, head));
            }
            Ok(out)
        })
        .await?;
    heads.push_back((now, sample));
    // The newest sample at least one retention old decides; older ones are no longer needed.
    let mut due = None;
    while heads
        .front()
        .is_some_and(|(t, _)| now.duration_since(*t) >= state.config.retention)
    {
        due = heads.pop_front();
    }
    if let Some((t, orgs)) = due {
        heads.push_front((t, orgs.clone()));
        state
            .write("", move |ctx| {
                for (org, head) in orgs {
                    ctx.tx.purge_tombstones(&org, head)?;
                }
                Ok(())
            })
            .await?;
    }
    Ok(())
}

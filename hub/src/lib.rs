//! The stocksync reference hub: the REST API of `docs/protocol.md` on axum, exactly-once push,
//! a signed delta feed and WebSocket subscriptions, with SQLite behind a storage trait.
//!
//! ```no_run
//! # async fn run() -> Result<(), stocksync_hub::HubError> {
//! use stocksync_hub::{Hub, config::{Bootstrap, HubConfig}};
//! let hub = Hub::start(HubConfig::new("/var/lib/stocksync"), &Bootstrap::default(), "127.0.0.1:8080").await?;
//! hub.run_until_signal().await?;
//! # Ok(()) }
//! ```

pub mod auth;
pub mod clock;
pub mod config;
pub mod envelope;
pub mod error;
pub mod events;
pub mod extract;
pub mod metrics;
pub mod middleware;
pub mod ratelimit;
pub mod routes;
pub mod seed;
pub mod server;
pub mod service;
pub mod state;
pub mod storage;

pub use server::{Hub, HubError};

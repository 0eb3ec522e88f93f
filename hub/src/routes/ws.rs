//! `GET /v1/ws`: live changes over a WebSocket. A frame is a hint to pull; the delta token stays
//! the single source of truth, and a gap in `seq` is healed by the next pull.

use crate::auth::Caller;
use crate::error::ApiError;
use crate::events::Event;
use crate::state::AppState;
use axum::Extension;
use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use std::time::Instant;
use stocksync_protocol::ws::{CHANNELS, ClientFrame, Filters, ServerFrame};
use stocksync_protocol::{ErrorBody, ErrorCode};
use tokio::sync::broadcast::error::RecvError;

/// Largest frame a client may send; a bigger one (up to [`HARD_LIMIT`]) gets an error frame.
const MAX_FRAME: usize = 64 * 1024;

/// Largest message read at all: beyond it the connection is closed (code 1008, the reason says
/// why), since the rest of such a message cannot be skipped.
const HARD_LIMIT: usize = 256 * 1024;

/// Read buffer per connection. tungstenite zero-fills up to this much on every read attempt, and
/// the session loop makes one each time it wakes (once per fanned-out event per connection): at
/// the default 128 KiB that memset was over a quarter of the hub's CPU when fanning out to 1000
/// subscribers. Client frames are small; a bigger one still fits (the buffer grows to the frame).
const READ_BUFFER: usize = 4 * 1024;

pub(crate) async fn upgrade(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if let Err(e) = caller.require("inventory.products.read") {
        return e.into_response();
    }
    let ws = match ws {
        Ok(ws) => ws,
        Err(e) => {
            return ApiError::field(
                "Upgrade",
                format!("This route speaks WebSocket only: {}", e.body_text()),
            )
            .into_response();
        }
    };
    ws.max_message_size(HARD_LIMIT)
        .max_frame_size(HARD_LIMIT)
        .read_buffer_size(READ_BUFFER)
        .on_upgrade(move |socket| session(state, caller, socket))
}

struct Subscription {
    id: String,
    channels: Vec<String>,
    filters: Filters,
}

impl Subscription {
    fn wants(&self, e: &Event) -> bool {
        let f = &self.filters;
        let eq = |want: &Option<String>, have: &Option<String>| {
            want.as_ref().is_none_or(|w| have.as_ref() == Some(w))
        };
        self.channels.iter().any(|c| c == e.channel)
            && eq(&f.location_id, &e.location_id)
            && eq(&f.product_id, &e.product_id)
            && eq(&f.product_category, &e.category)
    }
}

fn visible(caller: &Caller, e: &Event) -> bool {
    e.org == caller.org && e.branch_id.as_deref().is_none_or(|b| caller.in_branch(b))
}

fn error_frame(message: impl Into<String>) -> Message {
    error_frame_with(ErrorCode::ValidationFailed, message)
}

fn error_frame_with(code: ErrorCode, message: impl Into<String>) -> Message {
    frame(&ServerFrame::Error {
        error: ErrorBody {
            code,
            message: message.into(),
            details: serde_json::Value::Null,
            request_id: None,
            timestamp: None,
        },
    })
}

fn too_large(len: usize) -> Message {
    error_frame_with(
        ErrorCode::PayloadTooLarge,
        format!("Frames are at most {MAX_FRAME} bytes; this one has {len}"),
    )
}

fn frame(f: &ServerFrame) -> Message {
    Message::Text(serde_json::to_string(f).unwrap_or_default().into())
}

async fn session(state: AppState, caller: Caller, socket: WebSocket) {
    state.metrics.ws_connections(1);
    let (mut sink, mut stream) = socket.split();
    let mut events = state.bus.subscribe();
    let mut subs: Vec<Subscription> = Vec::new();
    let mut shutdown = state.shutdown.clone();
    // Subscribed before the first look, so a revocation in between is not missed.
    let mut revocations = state.revocations.subscribe();
    let revoked = |state: &AppState| {
        caller
            .family
            .as_deref()
            .is_some_and(|f| state.family_revoked(f))
    };
    if revoked(&state) {
        let _ = sink.send(revoked_close()).await;
        state.metrics.ws_connections(-1);
        return;
    }
    let mut ping = tokio::time::interval(state.config.ws_ping_every);
    ping.tick().await;
    let mut last_heard = Instant::now();
    loop {
        tokio::select! {
            incoming = stream.next() => {
                let msg = match incoming {
                    Some(Ok(m)) => m,
                    Some(Err(e)) => {
                        // Unreadable (too big, or not WebSocket): say why, then hang up.
                        let mut reason = e.to_string();
                        reason.truncate(reason.floor_char_boundary(120));
                        let close = CloseFrame { code: close_code::POLICY, reason: reason.into() };
                        let _ = sink.send(Message::Close(Some(close))).await;
                        break;
                    }
                    None => break,
                };
                last_heard = Instant::now();
                let reply = match msg {
                    Message::Text(ref t) if t.len() > MAX_FRAME => Some(too_large(t.len())),
                    Message::Binary(ref b) if b.len() > MAX_FRAME => Some(too_large(b.len())),
                    Message::Text(text) => handle(&mut subs, text.as_str()),
                    Message::Binary(_) => Some(error_frame("Frames are JSON text, not binary")),
                    Message::Close(_) => break,
                    Message::Ping(_) | Message::Pong(_) => None,
                };
                if let Some(r) = reply
                    && sink.send(r).await.is_err() {
                        break;
                    }
            }
            event = events.recv() => {
                match event {
                    Ok(e) => {
                        if visible(&caller, &e) && subs.iter().any(|s| s.wants(&e)) {
                            if sink.send(Message::Text(e.frame.clone())).await.is_err() {
                                break;
                            }
                            state.metrics.ws_frame();
                        }
                    }
                    // Missed frames show as a gap in seq; the next pull heals it.
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => break,
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > state.config.ws_idle_timeout {
                    let _ = sink.send(Message::Close(None)).await;
                    break;
                }
                let ok = sink.send(frame(&ServerFrame::Ping)).await.is_ok()
                    && sink.send(Message::Ping(Vec::new().into())).await.is_ok();
                if !ok {
                    break;
                }
            }
            changed = revocations.changed() => {
                // The sender lives as long as the state this task holds, so `Err` cannot happen;
                // if it did, there would be nothing left to wait for.
                if changed.is_err() || revoked(&state) {
                    let _ = sink.send(revoked_close()).await;
                    break;
                }
            }
            _ = shutdown.changed() => {
                let _ = sink.send(Message::Close(None)).await;
                break;
            }
        }
    }
    state.metrics.ws_connections(-1);
}

/// The Close frame of a session whose token family was revoked (policy violation, 1008).
fn revoked_close() -> Message {
    Message::Close(Some(CloseFrame {
        code: close_code::POLICY,
        reason: "This device's tokens were revoked; enroll it again".into(),
    }))
}

/// Answers one client frame (subscriptions change in place).
fn handle(subs: &mut Vec<Subscription>, text: &str) -> Option<Message> {
    let parsed: ClientFrame = match serde_json::from_str(text) {
        Ok(f) => f,
        Err(e) => return Some(error_frame(format!("Bad frame: {e}"))),
    };
    match parsed {
        ClientFrame::Subscribe { channels, filters } => {
            if channels.is_empty() {
                return Some(error_frame("Name at least one channel"));
            }
            if let Some(bad) = channels.iter().find(|c| !CHANNELS.contains(&c.as_str())) {
                return Some(error_frame(format!(
                    "Unknown channel `{bad}` (known: {})",
                    CHANNELS.join(", ")
                )));
            }
            if subs.len() >= 32 {
                return Some(error_frame("At most 32 subscriptions per connection"));
            }
            let id = format!("sub_{}", uuid::Uuid::now_v7().simple());
            subs.push(Subscription {
                id: id.clone(),
                channels: channels.clone(),
                filters,
            });
            Some(frame(&ServerFrame::Subscribed {
                subscription_id: id,
                channels,
            }))
        }
        ClientFrame::Unsubscribe { subscription_id } => {
            let before = subs.len();
            subs.retain(|s| s.id != subscription_id);
            if subs.len() == before {
                Some(error_frame(format!("No subscription `{subscription_id}`")))
            } else {
                Some(frame(&ServerFrame::Unsubscribed { subscription_id }))
            }
        }
        ClientFrame::Ping => Some(frame(&ServerFrame::Pong)),
        ClientFrame::Pong => None,
    }
}

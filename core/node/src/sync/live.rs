//! Live changes from the hub over a WebSocket (`GET /v1/ws`).
//!
//! A change frame is a hint to pull sooner: the delta feed stays the source of truth, and a
//! missed frame (a gap in `seq`, a dropped connection) is healed by the next pull.

use super::transport::{
    Auth, TransportConfig, TransportError, auth_headers, header_value, http_error, parse_base_url,
};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::VecDeque;
use std::time::{Duration, SystemTime};
use stocksync_model::DeviceId;
use stocksync_protocol::ErrorBody;
use stocksync_protocol::headers as h;
use stocksync_protocol::ws::{ChangeFrame, ClientFrame, Filters, ServerFrame};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout, timeout_at};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::http::header::USER_AGENT;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What a live connection delivers.
#[derive(Clone, Debug, PartialEq)]
pub enum LiveEvent {
    /// A committed change (`inventory.update`, `product.update`, `product.deleted`,
    /// `conflict.created`, `conflict.resolved`).
    Change(ChangeFrame),
    /// An error frame: the hub refused a frame of ours; the connection stays up.
    ServerError(ErrorBody),
}

/// An open WebSocket to the hub with its subscriptions in place.
///
/// Keep calling [`next`](LiveConnection::next) (say in a task of its own): the hub's pings
/// are answered only while it is polled, and the hub drops a peer silent for 60 s.
#[derive(Debug)]
pub struct LiveConnection {
    ws: Ws,
    idle_timeout: Duration,
    close_timeout: Duration,
    last_heard: Instant,
    pending: VecDeque<LiveEvent>,
    subscription_ids: Vec<String>,
    done: bool,
}

/// What one incoming message came to.
enum Incoming {
    Event(LiveEvent),
    Subscribed(String),
    Closed,
    Nothing,
}

/// Opens `GET /v1/ws` (`ws://` for an `http://` base URL, `wss://` for `https://`) as device
/// `device_id`, sends one `subscribe` frame per `(channels, filters)` and waits (at most
/// `config.request_timeout`) until the hub has confirmed each.
///
/// A refused upgrade is [`TransportError::Http`] with its status (401 for a bad token); a hub
/// that cannot be reached within `config.connect_timeout` is [`TransportError::Offline`]; a
/// subscription the hub refuses (an unknown channel) is [`TransportError::InvalidConfig`].
pub async fn connect(
    base_url: &str,
    device_id: &str,
    auth: &Auth,
    subscribe: &[(Vec<String>, Filters)],
    config: &TransportConfig,
) -> Result<LiveConnection, TransportError> {
    let base = parse_base_url(base_url)?;
    let mut url = base
        .join("v1/ws")
        .map_err(|e| invalid(format!("URL for v1/ws: {e}")))?;
    let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
    url.set_scheme(scheme)
        .map_err(|()| invalid(format!("cannot make a {scheme}:// URL of {base}")))?;
    DeviceId::parse(device_id).map_err(|e| invalid(format!("device id `{device_id}`: {e}")))?;

    let mut req = url
        .as_str()
        .into_client_request()
        .map_err(|e| invalid(format!("WebSocket request: {e}")))?;
    let headers = req.headers_mut();
    for (name, value) in auth_headers(auth)? {
        headers.insert(name, value);
    }
    headers.insert(h::MOBILE_DEVICE_ID, header_value("device id", device_id)?);
    headers.insert(USER_AGENT, header_value("user agent", &config.user_agent)?);

    let handshake = tokio_tungstenite::connect_async_with_config(req, None, true);
    let (ws, _response) = timeout(config.connect_timeout, handshake)
        .await
        .map_err(|_| TransportError::Offline {
            message: format!(
                "no WebSocket connection within {} s",
                config.connect_timeout.as_secs_f64()
            ),
        })?
        .map_err(from_ws)?;

    let mut conn = LiveConnection {
        ws,
        idle_timeout: config.idle_timeout,
        close_timeout: config.connect_timeout,
        last_heard: Instant::now(),
        pending: VecDeque::new(),
        subscription_ids: Vec::with_capacity(subscribe.len()),
        done: false,
    };
    for (channels, filters) in subscribe {
        conn.send(&ClientFrame::Subscribe {
            channels: channels.clone(),
            filters: filters.clone(),
        })
        .await?;
    }
    // The hub answers frames in order, one answer each; change frames of the subscriptions
    // already confirmed may come in between and are kept for `next`.
    let deadline = Instant::now() + config.request_timeout;
    while conn.subscription_ids.len() < subscribe.len() {
        let msg = match timeout_at(deadline, conn.ws.next()).await {
            Err(_) => {
                return Err(TransportError::Timeout {
                    message: format!(
                        "the hub did not confirm the subscriptions within {} s",
                        config.request_timeout.as_secs_f64()
                    ),
                });
            }
            Ok(None) | Ok(Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed))) => {
                return Err(closed_early());
            }
            Ok(Some(Err(e))) => return Err(from_ws(e)),
            Ok(Some(Ok(msg))) => msg,
        };
        conn.last_heard = Instant::now();
        match conn.handle(msg).await? {
            Incoming::Subscribed(id) => conn.subscription_ids.push(id),
            Incoming::Event(LiveEvent::ServerError(e)) => {
                let n = conn.subscription_ids.len();
                return Err(invalid(format!(
                    "the hub refused subscription {} of {}: {}",
                    n + 1,
                    subscribe.len(),
                    e.message
                )));
            }
            Incoming::Event(event) => conn.pending.push_back(event),
            Incoming::Closed => return Err(closed_early()),
            Incoming::Nothing => {}
        }
    }
    Ok(conn)
}

impl LiveConnection {
    /// The next change or error frame; `None` once the connection is closed.
    ///
    /// Pings (the hub's `{"type":"ping"}` frames and WebSocket pings) are answered here and not
    /// returned. When nothing at all arrives for `idle_timeout`, the peer is taken for dead:
    /// [`TransportError::Offline`], then `None`. A frame that does not parse is
    /// [`TransportError::Decode`] and the connection stays usable. Cancel-safe: dropping the
    /// future (say in `select!`) loses no change.
    pub async fn next(&mut self) -> Option<Result<LiveEvent, TransportError>> {
        if let Some(event) = self.pending.pop_front() {
            return Some(Ok(event));
        }
        if self.done {
            return None;
        }
        loop {
            let deadline = self.last_heard + self.idle_timeout;
            let msg = match timeout_at(deadline, self.ws.next()).await {
                Err(_) => {
                    self.done = true;
                    return Some(Err(TransportError::Offline {
                        message: format!(
                            "connection went silent (nothing for {} s)",
                            self.idle_timeout.as_secs_f64()
                        ),
                    }));
                }
                Ok(None) | Ok(Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed))) => {
                    self.done = true;
                    return None;
                }
                Ok(Some(Err(e))) => {
                    self.done = true;
                    return Some(Err(from_ws(e)));
                }
                Ok(Some(Ok(msg))) => msg,
            };
            self.last_heard = Instant::now();
            match self.handle(msg).await {
                Ok(Incoming::Event(event)) => return Some(Ok(event)),
                Ok(Incoming::Subscribed(_) | Incoming::Nothing) => {}
                Ok(Incoming::Closed) => {
                    self.done = true;
                    // One more read sends our half of the closing handshake.
                    let _ = timeout(self.close_timeout, self.ws.next()).await;
                    return None;
                }
                Err(e @ TransportError::Decode { .. }) => return Some(Err(e)),
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }

    /// The ids the hub gave the subscriptions, in the order they were asked for.
    pub fn subscription_ids(&self) -> &[String] {
        &self.subscription_ids
    }

    /// Sends a Close frame and waits briefly (`connect_timeout`) for the hub's answer.
    pub async fn close(mut self) {
        if self.done {
            return;
        }
        let _ = timeout(self.close_timeout, async {
            if self.ws.close(None).await.is_ok() {
                while let Some(Ok(_)) = self.ws.next().await {}
            }
        })
        .await;
    }

    async fn send(&mut self, frame: &ClientFrame) -> Result<(), TransportError> {
        let text = serde_json::to_string(frame)
            .map_err(|e| invalid(format!("cannot encode a frame: {e}")))?;
        self.ws.send(Message::text(text)).await.map_err(from_ws)
    }

    async fn handle(&mut self, msg: Message) -> Result<Incoming, TransportError> {
        match msg {
            Message::Text(text) => self.handle_text(text.as_str()).await,
            Message::Ping(_) => {
                // tungstenite queued the pong; send it now.
                self.ws.flush().await.map_err(from_ws)?;
                Ok(Incoming::Nothing)
            }
            Message::Close(_) => Ok(Incoming::Closed),
            Message::Binary(_) | Message::Pong(_) | Message::Frame(_) => Ok(Incoming::Nothing),
        }
    }

    async fn handle_text(&mut self, text: &str) -> Result<Incoming, TransportError> {
        #[derive(Deserialize)]
        struct Tag<'a> {
            #[serde(rename = "type", borrow)]
            kind: Cow<'a, str>,
        }
        let tag: Tag<'_> = serde_json::from_str(text).map_err(|e| bad_frame(text, &e))?;
        match tag.kind.as_ref() {
            "ping" => {
                self.send(&ClientFrame::Pong).await?;
                Ok(Incoming::Nothing)
            }
            "pong" | "unsubscribed" => Ok(Incoming::Nothing),
            "subscribed" | "error" => {
                match serde_json::from_str::<ServerFrame>(text).map_err(|e| bad_frame(text, &e))? {
                    ServerFrame::Subscribed {
                        subscription_id, ..
                    } => Ok(Incoming::Subscribed(subscription_id)),
                    ServerFrame::Error { error } => {
                        Ok(Incoming::Event(LiveEvent::ServerError(error)))
                    }
                    _ => Ok(Incoming::Nothing),
                }
            }
            _ => serde_json::from_str::<ChangeFrame>(text)
                .map(|c| Incoming::Event(LiveEvent::Change(c)))
                .map_err(|e| bad_frame(text, &e)),
        }
    }
}

fn invalid(message: String) -> TransportError {
    TransportError::InvalidConfig { message }
}

fn closed_early() -> TransportError {
    TransportError::Offline {
        message: "the hub closed the WebSocket while subscribing".into(),
    }
}

fn bad_frame(text: &str, e: &serde_json::Error) -> TransportError {
    let mut head = text.to_owned();
    head.truncate(head.floor_char_boundary(80));
    TransportError::Decode {
        message: format!("WebSocket frame `{head}`: {e}"),
    }
}

/// Classifies a WebSocket failure.
fn from_ws(e: WsError) -> TransportError {
    match e {
        WsError::Http(res) => {
            let retry_after = res
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok());
            let body = res.body().as_deref().unwrap_or_default();
            http_error(res.status().as_u16(), retry_after, body, SystemTime::now())
        }
        WsError::Url(e) => invalid(format!("WebSocket URL: {e}")),
        WsError::HttpFormat(e) => invalid(format!("WebSocket request: {e}")),
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => TransportError::Offline {
            message: "the connection was reset".into(),
        },
        WsError::Protocol(p) => TransportError::Decode {
            message: format!("WebSocket protocol: {p}"),
        },
        WsError::Utf8(m) => TransportError::Decode {
            message: format!("WebSocket frame is not UTF-8: {m}"),
        },
        WsError::Capacity(c) => TransportError::Decode {
            message: format!("WebSocket frame: {c}"),
        },
        WsError::AttackAttempt => TransportError::Decode {
            message: "the hub's WebSocket answer looks like an attack attempt".into(),
        },
        WsError::Io(e) => TransportError::Offline {
            message: e.to_string(),
        },
        WsError::Tls(e) => TransportError::Offline {
            message: format!("TLS: {e}"),
        },
        // Closed connections, a full write buffer.
        other => TransportError::Offline {
            message: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stocksync_protocol::ErrorCode;

    #[test]
    fn ws_handshake_refusals_keep_their_status_and_envelope() {
        let body = br#"{"data":null,"error":{"code":"AUTHENTICATION_FAILED","message":"Invalid access token: bad signature"}}"#;
        let res = tokio_tungstenite::tungstenite::http::Response::builder()
            .status(401)
            .body(Some(body.to_vec()))
            .unwrap();
        let e = from_ws(WsError::Http(Box::new(res)));
        assert_eq!(e.status(), Some(401));
        assert_eq!(e.code(), Some(ErrorCode::AuthenticationFailed));
        assert!(e.is_auth());
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(matches!(
            from_ws(WsError::Io(io)),
            TransportError::Offline { .. }
        ));
    }
}

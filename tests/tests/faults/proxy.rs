//! A fault-injecting TCP proxy for plain HTTP/1.1 (and the WebSockets upgraded from it).
//!
//! The node enrolls with [`Proxy::url`] instead of the hub's address, so every request it makes
//! (REST calls and the live socket) goes through here. What happens to a connection is decided
//! by the [`Mode`] in force when it is accepted; [`Proxy::set_mode`] switches at runtime (the
//! node opens a fresh connection pool every round, so a round sees the mode of its start), and
//! [`Proxy::kill_all`] cuts every open connection at once (a WebSocket dropped by the network).
//!
//! Requests are logged as they pass ([`Proxy::requests`]), parsed from the client's bytes: a
//! head up to its blank line, then a body skipped by `Content-Length` (reqwest sends no chunked
//! request bodies), and nothing after a WebSocket upgrade. Responses are forwarded as bytes,
//! unparsed. Connections are logged as accepted ([`Proxy::accepted`]), so even one reset before
//! its request was read is counted.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the proxy does with a new connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Forward both ways.
    Pass,
    /// Nothing listens on the port: connections are refused, as by a host that is down. Setting
    /// it also cuts the connections already open.
    Refuse,
    /// Accept, then reset the connection (RST) before reading anything.
    Reset,
    /// Forward the request; when the hub starts to answer, close the client's connection
    /// without passing the answer on. The hub has committed; the node never hears.
    DropResponse,
    /// Read the request and answer it with this status (and `Retry-After`, seconds) without
    /// forwarding it; then close.
    Status {
        /// HTTP status.
        code: u16,
        /// `Retry-After` in seconds, if any.
        retry_after: Option<u64>,
    },
}

/// A request that reached the proxy.
#[derive(Clone, Debug)]
pub struct Seen {
    /// When its head was complete.
    pub at: Instant,
    /// The mode of its connection.
    pub mode: Mode,
    /// `GET`, `POST`, …
    pub method: String,
    /// Path and query.
    pub path: String,
}

impl Seen {
    /// `"GET /v1/inventory/delta"`: method and path, without the query.
    pub fn route(&self) -> String {
        let path = self.path.split('?').next().unwrap_or_default();
        format!("{} {path}", self.method)
    }
}

/// A connection the proxy accepted.
#[derive(Clone, Copy, Debug)]
pub struct Accepted {
    /// When.
    pub at: Instant,
    /// The mode it was served in.
    pub mode: Mode,
}

struct Shared {
    upstream: SocketAddr,
    mode: Mutex<Mode>,
    requests: Mutex<Vec<Seen>>,
    accepted: Mutex<Vec<Accepted>>,
    /// Bumped to cut every open connection.
    kill: watch::Sender<u64>,
}

impl Shared {
    fn log(&self, mode: Mode, method: &str, path: &str) {
        lock(&self.requests).push(Seen {
            at: Instant::now(),
            mode,
            method: method.to_owned(),
            path: path.to_owned(),
        });
    }
}

/// The proxy. Dropping it stops accepting; connections already open live on until they close.
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    /// The accept loop (it owns the listening socket); `None` while refusing.
    listener: tokio::sync::Mutex<Option<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Proxy {
    /// A proxy on a free loopback port in front of `upstream`, passing everything.
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let (kill, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            upstream,
            mode: Mutex::new(Mode::Pass),
            requests: Mutex::new(Vec::new()),
            accepted: Mutex::new(Vec::new()),
            kill,
        });
        let task = tokio::spawn(accept_loop(listener, shared.clone()));
        Proxy {
            addr,
            shared,
            listener: tokio::sync::Mutex::new(Some(task)),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Switches the mode for connections accepted from now on. `Refuse` closes the listening
    /// socket (and cuts open connections) before it returns; leaving it listens again on the
    /// same port before it returns.
    pub async fn set_mode(&self, mode: Mode) {
        let mut task = self.listener.lock().await;
        *lock(&self.shared.mode) = mode;
        if mode == Mode::Refuse {
            if let Some(t) = task.take() {
                t.abort();
                // The listener is closed once the aborted task is gone.
                let _ = t.await;
            }
            self.kill_all();
        } else if task.is_none() {
            let listener = rebind(self.addr).await;
            *task = Some(tokio::spawn(accept_loop(listener, self.shared.clone())));
        }
    }

    /// Cuts every open connection now (each client sees its socket closed).
    pub fn kill_all(&self) {
        self.shared.kill.send_modify(|g| *g += 1);
    }

    /// Every request seen so far, in order.
    pub fn requests(&self) -> Vec<Seen> {
        lock(&self.shared.requests).clone()
    }

    /// Every connection accepted so far, in order.
    pub fn accepted(&self) -> Vec<Accepted> {
        lock(&self.shared.accepted).clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(t) = self.listener.get_mut().take() {
            t.abort();
        }
    }
}

/// Binds the proxy's port again (the previous listener was just closed).
async fn rebind(addr: SocketAddr) -> TcpListener {
    let mut tries = 0;
    loop {
        match TcpListener::bind(addr).await {
            Ok(l) => return l,
            Err(_) if tries < 100 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("cannot listen on {addr} again: {e}"),
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        let _ = client.set_nodelay(true);
        let mode = *lock(&shared.mode);
        lock(&shared.accepted).push(Accepted {
            at: Instant::now(),
            mode,
        });
        // Subscribed now, so a kill issued once the connection is accepted reaches it.
        let kill = shared.kill.subscribe();
        tokio::spawn(serve(client, mode, shared.clone(), kill));
    }
}

async fn serve(client: TcpStream, mode: Mode, shared: Arc<Shared>, mut kill: watch::Receiver<u64>) {
    match mode {
        Mode::Pass | Mode::DropResponse => {
            tokio::select! {
                () = forward(client, mode, &shared) => {}
                _ = kill.changed() => {}
            }
        }
        Mode::Status { code, retry_after } => {
            tokio::select! {
                _ = answer(client, mode, code, retry_after, &shared) => {}
                _ = kill.changed() => {}
            }
        }
        Mode::Reset | Mode::Refuse => {
            let _ = client.set_zero_linger();
            drop(client);
        }
    }
}

/// Pipes both ways until the hub closes, either side fails, or (dropping responses) the hub
/// starts to answer. Returning drops both sockets.
async fn forward(client: TcpStream, mode: Mode, shared: &Shared) {
    let Ok(upstream) = TcpStream::connect(shared.upstream).await else {
        return;
    };
    let _ = upstream.set_nodelay(true);
    let (mut cr, mut cw) = client.into_split();
    let (mut ur, mut uw) = upstream.into_split();
    let up = async {
        let mut parser = RequestParser::default();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = cr.read(&mut buf).await?;
            if n == 0 {
                uw.shutdown().await?;
                return Ok::<(), io::Error>(());
            }
            parser.feed(&buf[..n], |method, path| shared.log(mode, method, path));
            uw.write_all(&buf[..n]).await?;
        }
    };
    let down = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = ur.read(&mut buf).await?;
            if n == 0 || mode == Mode::DropResponse {
                return Ok::<(), io::Error>(());
            }
            cw.write_all(&buf[..n]).await?;
        }
    };
    tokio::pin!(up);
    tokio::pin!(down);
    let mut up_done = false;
    loop {
        tokio::select! {
            r = &mut up, if !up_done => {
                if r.is_err() {
                    return;
                }
                up_done = true;
            }
            _ = &mut down => return,
        }
    }
}

/// Reads one whole request, answers it with `code`, closes.
async fn answer(
    mut client: TcpStream,
    mode: Mode,
    code: u16,
    retry_after: Option<u64>,
    shared: &Shared,
) -> io::Result<()> {
    let mut parser = RequestParser::default();
    let mut buf = vec![0u8; 64 * 1024];
    let mut seen = false;
    // The whole request, body included: closing with unread bytes would reset the connection
    // and could destroy the answer before the client reads it.
    while !(seen && parser.body_left == 0) {
        let n = client.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        parser.feed(&buf[..n], |method, path| {
            seen = true;
            shared.log(mode, method, path);
        });
    }
    client
        .write_all(&status_response(code, retry_after))
        .await?;
    client.shutdown().await?;
    // Wait (briefly) for the client to close its side, so ours closes cleanly.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while client.read(&mut buf).await.is_ok_and(|n| n > 0) {}
    })
    .await;
    Ok(())
}

fn status_response(code: u16, retry_after: Option<u64>) -> Vec<u8> {
    let (reason, error) = match code {
        429 => ("Too Many Requests", "RATE_LIMIT_EXCEEDED"),
        503 => ("Service Unavailable", "SERVICE_UNAVAILABLE"),
        _ => ("Error", "INTERNAL_ERROR"),
    };
    let body = serde_json::json!({
        "data": null,
        "error": {"code": error, "message": format!("The proxy answers {code}"), "details": {}},
    })
    .to_string();
    let mut head = format!(
        "HTTP/1.1 {code} {reason}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    if let Some(secs) = retry_after {
        head.push_str(&format!("retry-after: {secs}\r\n"));
    }
    head.push_str("\r\n");
    head.push_str(&body);
    head.into_bytes()
}

/// Finds request heads in a client's byte stream.
#[derive(Default)]
struct RequestParser {
    head: Vec<u8>,
    body_left: usize,
    /// After a WebSocket upgrade (or bytes that are no HTTP): nothing more to parse.
    raw: bool,
}

impl RequestParser {
    fn feed(&mut self, mut data: &[u8], mut seen: impl FnMut(&str, &str)) {
        while !data.is_empty() && !self.raw {
            if self.body_left > 0 {
                let n = self.body_left.min(data.len());
                self.body_left -= n;
                data = &data[n..];
                continue;
            }
            self.head.push(data[0]);
            data = &data[1..];
            if self.head.len() > 64 * 1024 {
                self.raw = true;
            } else if self.head.ends_with(b"\r\n\r\n") {
                let text = String::from_utf8_lossy(&self.head).into_owned();
                self.head.clear();
                let mut lines = text.split("\r\n");
                let mut first = lines.next().unwrap_or_default().split(' ');
                let method = first.next().unwrap_or_default();
                let path = first.next().unwrap_or_default();
                for line in lines {
                    let Some((name, value)) = line.split_once(':') else {
                        continue;
                    };
                    match name.trim().to_ascii_lowercase().as_str() {
                        "content-length" => self.body_left = value.trim().parse().unwrap_or(0),
                        "upgrade" => self.raw = true,
                        _ => {}
                    }
                }
                seen(method, path);
            }
        }
    }
}

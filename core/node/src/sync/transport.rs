//! HTTP transport to the hub: enrollment, token refresh, push and pull.
//!
//! [`HubClient`] speaks the wire contract (`docs/protocol.md`) and nothing more: it sends one
//! request per call and classifies what went wrong ([`TransportError`]), so the sync engine can
//! decide whether to retry, refresh the token or give up. It never retries on its own.

use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde::de::{DeserializeOwned, IntoDeserializer};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::{Duration, SystemTime};
use stocksync_model::DeviceId;
use stocksync_protocol::headers as h;
use stocksync_protocol::{DeltaMeta, DeltaPage, ErrorCode, OpResult, PushOp};

/// Settings of the connection to the hub.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransportConfig {
    /// Longest wait to open a connection (DNS, TCP, TLS); beyond it the hub counts as offline.
    pub connect_timeout: Duration,
    /// Longest wait for a whole request, response body included.
    pub request_timeout: Duration,
    /// The `User-Agent` sent with every request.
    pub user_agent: String,
    /// A live connection on which nothing at all arrives this long is taken for dead (the hub
    /// pings every 20 s).
    pub idle_timeout: Duration,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            user_agent: concat!("stocksync-node/", env!("CARGO_PKG_VERSION")).to_owned(),
            idle_timeout: Duration::from_secs(75),
        }
    }
}

/// The credential of an enrolled device, sent with every authenticated call.
#[derive(Clone, PartialEq, Eq)]
pub struct Auth {
    /// The access token (`Authorization: Bearer …`).
    pub access_token: String,
    /// The device's organization (`X-Organization-ID`).
    pub organization_id: String,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("access_token", &"<redacted>")
            .field("organization_id", &self.organization_id)
            .finish()
    }
}

/// What enrollment answers (`POST /v1/auth/devices`).
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct Enrollment {
    /// Access token (valid `expires_in` seconds).
    pub access_token: String,
    /// Refresh token; works once.
    pub refresh_token: String,
    /// Lifetime of the access token, in seconds.
    pub expires_in: u64,
    /// The device, as enrolled.
    pub device_id: String,
    /// The device's organization.
    pub organization_id: String,
    /// The branch the device reads and moves stock in.
    pub branch_id: String,
    /// `handheld`, `tablet` or `desktop`.
    pub role: String,
    /// Scopes granted.
    pub permissions: Vec<String>,
}

impl fmt::Debug for Enrollment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Enrollment")
            .field("access_token", &"<redacted>")
            .field("refresh_token", &"<redacted>")
            .field("expires_in", &self.expires_in)
            .field("device_id", &self.device_id)
            .field("organization_id", &self.organization_id)
            .field("branch_id", &self.branch_id)
            .field("role", &self.role)
            .field("permissions", &self.permissions)
            .finish()
    }
}

/// A rotated pair of tokens (`POST /v1/oauth/token`).
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct TokenPair {
    /// The new access token.
    pub access_token: String,
    /// The new refresh token; the one presented is used up.
    pub refresh_token: String,
    /// Lifetime of the access token, in seconds.
    pub expires_in: u64,
}

impl fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenPair")
            .field("access_token", &"<redacted>")
            .field("refresh_token", &"<redacted>")
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// One page of the delta feed with its `meta`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct DeltaResponse {
    /// `data`: created, updated and deleted items.
    #[serde(rename = "data")]
    pub page: DeltaPage,
    /// `meta`: the next token, `has_more`, the checksum.
    pub meta: DeltaMeta,
}

/// Why a call to the hub failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum TransportError {
    /// The network or the hub is not reachable (DNS, refused, reset, connect timeout, TLS).
    /// Nothing reached the hub, or the connection broke before its answer: retry later.
    #[error("Cannot reach the hub: {message}")]
    Offline {
        /// What the network layer said.
        message: String,
    },
    /// The request went out but no answer came in time: it may have been applied. Retry with
    /// the same idempotency key.
    #[error("The hub did not answer in time: {message}")]
    Timeout {
        /// What timed out.
        message: String,
    },
    /// The hub (or a proxy in front of it) answered with an error status.
    #[error("{message} (HTTP {status})")]
    Http {
        /// The HTTP status.
        status: u16,
        /// The contract's code, when the body was an error envelope with a known code.
        code: Option<ErrorCode>,
        /// The envelope's message, or a description of the status.
        message: String,
        /// The envelope's `details` (`Null` when absent).
        details: serde_json::Value,
        /// `Retry-After`, when sent.
        retry_after: Option<Duration>,
    },
    /// A success status with a body that is not what the contract promises.
    #[error("Unexpected answer from the hub: {message}")]
    Decode {
        /// What did not parse.
        message: String,
    },
    /// A bad setting (base URL, device id, a token that is not header text).
    #[error("Invalid sync settings: {message}")]
    InvalidConfig {
        /// What is wrong.
        message: String,
    },
}

impl TransportError {
    /// Whether trying again later may succeed: offline, timeouts, and HTTP 408, 429, 500, 502,
    /// 503, 504. Other statuses (401 included, see [`is_auth`](Self::is_auth)) are final.
    pub fn is_retryable(&self) -> bool {
        match self {
            TransportError::Offline { .. } | TransportError::Timeout { .. } => true,
            TransportError::Http { status, .. } => {
                matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
            }
            TransportError::Decode { .. } | TransportError::InvalidConfig { .. } => false,
        }
    }

    /// Whether the credential was refused (HTTP 401): refresh the token, or enroll again.
    pub fn is_auth(&self) -> bool {
        matches!(self, TransportError::Http { status: 401, .. })
    }

    /// The HTTP status, for [`TransportError::Http`].
    pub fn status(&self) -> Option<u16> {
        match self {
            TransportError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The contract's error code, when the hub sent one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            TransportError::Http { code, .. } => *code,
            _ => None,
        }
    }

    /// How long the hub asked to wait before trying again.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            TransportError::Http { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    fn invalid(message: impl Into<String>) -> Self {
        TransportError::InvalidConfig {
            message: message.into(),
        }
    }
}

/// The hub's HTTP API, for one device.
///
/// Cheap to clone (the connection pool is shared). Every request carries
/// `X-Mobile-Device-Id`; authenticated calls add `Authorization` and `X-Organization-ID`.
#[derive(Clone, Debug)]
pub struct HubClient {
    http: reqwest::Client,
    base: Url,
    device_id: String,
    connect_timeout: Duration,
    request_timeout: Duration,
}

/// `data` of a success envelope (`meta` and the rest are skipped unparsed).
#[derive(Deserialize)]
struct Data<T> {
    data: T,
}

#[derive(Deserialize)]
struct PushData {
    results: Vec<OpResult>,
}

/// A push answer with its envelope's `meta.idempotent`.
#[derive(Deserialize)]
struct PushEnvelope {
    data: PushData,
    #[serde(default)]
    meta: PushMeta,
}

#[derive(Deserialize, Default)]
struct PushMeta {
    #[serde(default)]
    idempotent: bool,
}

/// The hub's answer to a push.
#[derive(Clone, Debug, PartialEq)]
pub struct PushAnswer {
    /// One result per op, in the order sent.
    pub results: Vec<OpResult>,
    /// The hub replayed its stored answer to an earlier request with the same idempotency key
    /// (the ops were applied then, not now).
    pub replayed: bool,
}

#[derive(Serialize)]
struct PushBody<'a> {
    ops: &'a [PushOp],
}

#[derive(Serialize)]
struct EnrollBody<'a> {
    enrollment_key: &'a str,
    device_id: &'a str,
    role: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
}

#[derive(Serialize)]
struct RefreshBody<'a> {
    grant_type: &'a str,
    refresh_token: &'a str,
}

impl HubClient {
    /// A client for the hub at `base_url` (`http://` or `https://`, optionally with a path
    /// prefix) acting as device `device_id`.
    pub fn new(
        base_url: &str,
        device_id: &str,
        config: &TransportConfig,
    ) -> Result<HubClient, TransportError> {
        let base = parse_base_url(base_url)?;
        DeviceId::parse(device_id)
            .map_err(|e| TransportError::invalid(format!("device id `{device_id}`: {e}")))?;
        let mut headers = HeaderMap::new();
        headers.insert(h::MOBILE_DEVICE_ID, header_value("device id", device_id)?);
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .user_agent(header_value("user agent", &config.user_agent)?)
            .default_headers(headers)
            .gzip(true)
            // The hub never redirects; a redirect (a captive portal, a proxy) must not receive
            // the credential, and surfaces as an `Http` error with its 3xx status instead.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| TransportError::invalid(root_cause(&e)))?;
        Ok(HubClient {
            http,
            base,
            device_id: device_id.to_owned(),
            connect_timeout: config.connect_timeout,
            request_timeout: config.request_timeout,
        })
    }

    /// The hub's base URL (with a trailing `/`).
    pub fn base_url(&self) -> &str {
        self.base.as_str()
    }

    /// The device this client speaks for.
    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    /// Enrolls this device with an enrollment key (`POST /v1/auth/devices`). `role` is
    /// `handheld`, `tablet` or `desktop`; an empty `name` lets the hub name the device by its
    /// id. Enrolling again in the same organization is allowed and issues a fresh pair.
    pub async fn enroll(
        &self,
        enrollment_key: &str,
        role: &str,
        name: &str,
    ) -> Result<Enrollment, TransportError> {
        let body = EnrollBody {
            enrollment_key,
            device_id: &self.device_id,
            role,
            name: Some(name.trim()).filter(|n| !n.is_empty()),
        };
        let req = self.request(Method::POST, "v1/auth/devices", None)?;
        let answer: Data<Enrollment> = self.send(json_body(req, &body)?, "enrollment").await?;
        Ok(answer.data)
    }

    /// Rotates the tokens (`POST /v1/oauth/token`). A refresh token works once: presenting it
    /// again revokes every token of the device (401), and the device must enroll again.
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenPair, TransportError> {
        let body = RefreshBody {
            grant_type: "refresh_token",
            refresh_token,
        };
        let req = self.request(Method::POST, "v1/oauth/token", None)?;
        let answer: Data<TokenPair> = self.send(json_body(req, &body)?, "token refresh").await?;
        Ok(answer.data)
    }

    /// Pushes ops (`POST /v1/sync/push`, at most
    /// [`MAX_PUSH_OPS`](stocksync_protocol::sync::MAX_PUSH_OPS)) and answers one result per op,
    /// in the order sent. Resend a batch whose answer was lost with the same `idempotency_key`.
    /// No ops: no request, no results.
    pub async fn push(
        &self,
        auth: &Auth,
        ops: &[PushOp],
        idempotency_key: &str,
    ) -> Result<PushAnswer, TransportError> {
        if ops.is_empty() {
            return Ok(PushAnswer {
                results: Vec::new(),
                replayed: false,
            });
        }
        let req = self
            .request(Method::POST, "v1/sync/push", Some(auth))?
            .header(
                h::IDEMPOTENCY_KEY,
                header_value("idempotency key", idempotency_key)?,
            );
        let answer: PushEnvelope = self
            .send(json_body(req, &PushBody { ops })?, "push")
            .await?;
        let results = answer.data.results;
        if results.len() != ops.len() {
            return Err(TransportError::Decode {
                message: format!("{} results for {} pushed ops", results.len(), ops.len()),
            });
        }
        Ok(PushAnswer {
            results,
            replayed: answer.meta.idempotent,
        })
    }

    /// Pulls one page of the delta feed (`GET /v1/inventory/delta`). No token (or an empty one)
    /// starts a snapshot; then pass `meta.next_sync_token` back until `meta.has_more` is false.
    /// `limit` is 1–1000.
    pub async fn pull(
        &self,
        auth: &Auth,
        since_token: Option<&str>,
        limit: u32,
    ) -> Result<DeltaResponse, TransportError> {
        let mut url = self.url("v1/inventory/delta")?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(token) = since_token.filter(|t| !t.is_empty()) {
                q.append_pair("since_token", token);
            }
            q.append_pair("limit", &limit.to_string());
        }
        let req = self.with_auth(self.http.request(Method::GET, url), auth)?;
        self.send(req, "delta page").await
    }

    /// Classifies a reqwest failure.
    fn classify(&self, e: &reqwest::Error) -> TransportError {
        let secs = |d: Duration| d.as_secs_f64();
        if e.is_builder() {
            TransportError::invalid(root_cause(e))
        } else if e.is_connect() {
            // DNS, refused, unreachable, TLS, connect timeout: nothing was sent.
            let message = if e.is_timeout() {
                format!("no connection within {} s", secs(self.connect_timeout))
            } else {
                root_cause(e)
            };
            TransportError::Offline { message }
        } else if e.is_timeout() {
            TransportError::Timeout {
                message: format!("no answer within {} s", secs(self.request_timeout)),
            }
        } else if e.is_decode() {
            TransportError::Decode {
                message: root_cause(e),
            }
        } else {
            // Reset or closed mid-exchange.
            TransportError::Offline {
                message: format!("connection lost: {}", root_cause(e)),
            }
        }
    }

    fn url(&self, path: &str) -> Result<Url, TransportError> {
        self.base
            .join(path)
            .map_err(|e| TransportError::invalid(format!("URL for {path}: {e}")))
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        auth: Option<&Auth>,
    ) -> Result<reqwest::RequestBuilder, TransportError> {
        let req = self.http.request(method, self.url(path)?);
        match auth {
            Some(auth) => self.with_auth(req, auth),
            None => Ok(req),
        }
    }

    fn with_auth(
        &self,
        req: reqwest::RequestBuilder,
        auth: &Auth,
    ) -> Result<reqwest::RequestBuilder, TransportError> {
        let mut headers = HeaderMap::new();
        for (name, value) in auth_headers(auth)? {
            headers.insert(name, value);
        }
        Ok(req.headers(headers))
    }

    /// Sends a request; a 2xx answers its body decoded as `T`, anything else its error.
    async fn send<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<T, TransportError> {
        let res = req.send().await.map_err(|e| self.classify(&e))?;
        let status = res.status();
        let retry_after = res
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = res.bytes().await.map_err(|e| self.classify(&e))?;
        if status.is_success() {
            decode(what, &bytes)
        } else {
            Err(http_error(
                status.as_u16(),
                retry_after.as_deref(),
                &bytes,
                SystemTime::now(),
            ))
        }
    }
}

/// `Authorization` and `X-Organization-ID` for `auth`.
pub(crate) fn auth_headers(auth: &Auth) -> Result<[(HeaderName, HeaderValue); 2], TransportError> {
    let mut bearer = header_value(
        "access token",
        &format!("Bearer {}", auth.access_token.trim()),
    )?;
    bearer.set_sensitive(true);
    Ok([
        (header::AUTHORIZATION, bearer),
        (
            HeaderName::from_static("x-organization-id"),
            header_value("organization id", &auth.organization_id)?,
        ),
    ])
}

pub(crate) fn header_value(what: &str, value: &str) -> Result<HeaderValue, TransportError> {
    HeaderValue::from_str(value)
        .map_err(|_| TransportError::invalid(format!("the {what} is not valid header text")))
}

fn json_body<T: Serialize>(
    req: reqwest::RequestBuilder,
    body: &T,
) -> Result<reqwest::RequestBuilder, TransportError> {
    let bytes = serde_json::to_vec(body)
        .map_err(|e| TransportError::invalid(format!("cannot encode the request: {e}")))?;
    Ok(req
        .header(header::CONTENT_TYPE, "application/json")
        .body(bytes))
}

fn decode<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, TransportError> {
    serde_json::from_slice(bytes).map_err(|e| TransportError::Decode {
        message: format!("the {what} answer does not parse: {e}"),
    })
}

/// Checks a base URL (http or https, a host, no query or fragment) and ends its path with `/`
/// so relative paths join under it.
pub(crate) fn parse_base_url(base_url: &str) -> Result<Url, TransportError> {
    let trimmed = base_url.trim();
    // `127.0.0.1:8080` or `hub.local:8080` parse as a relative URL or as scheme `hub.local`:
    // say what to write instead.
    if !trimmed.contains("://") {
        return Err(TransportError::invalid(format!(
            "hub URL `{base_url}` has no scheme: write http://{trimmed} (or https://{trimmed})"
        )));
    }
    let mut url = Url::parse(trimmed)
        .map_err(|e| TransportError::invalid(format!("hub URL `{base_url}`: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(TransportError::invalid(format!(
            "hub URL `{base_url}`: must start with http:// or https://"
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(TransportError::invalid(format!(
            "hub URL `{base_url}`: no host"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(TransportError::invalid(format!(
            "hub URL `{base_url}`: must not have a query or a fragment"
        )));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// The innermost cause of an error (reqwest's outer layers only repeat the URL).
pub(crate) fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut err = e;
    while let Some(next) = err.source() {
        err = next;
    }
    err.to_string()
}

/// The error for a non-2xx answer: the envelope's code, message and details when the body is
/// one, a description of the status otherwise (a proxy's HTML page, an empty body).
pub(crate) fn http_error(
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
    now: SystemTime,
) -> TransportError {
    let retry_after = retry_after.and_then(|v| parse_retry_after(v, now));
    let (code, message, details) = match parse_error_envelope(body) {
        Some(e) => (e.code, e.message, e.details),
        None => (None, None, serde_json::Value::Null),
    };
    let message = message
        .filter(|m| !m.trim().is_empty())
        .unwrap_or_else(|| describe_status(status));
    TransportError::Http {
        status,
        code,
        message,
        details,
        retry_after,
    }
}

/// An `error` member parsed leniently: a code this build does not know stays `None`.
struct LenientError {
    code: Option<ErrorCode>,
    message: Option<String>,
    details: serde_json::Value,
}

fn parse_error_envelope(body: &[u8]) -> Option<LenientError> {
    #[derive(Deserialize)]
    struct Envelope {
        error: Option<Raw>,
    }
    #[derive(Deserialize)]
    struct Raw {
        #[serde(default)]
        code: Option<String>,
        #[serde(default)]
        message: Option<String>,
        #[serde(default)]
        details: serde_json::Value,
    }
    let raw = serde_json::from_slice::<Envelope>(body).ok()?.error?;
    Some(LenientError {
        code: raw.code.as_deref().and_then(parse_code),
        message: raw.message,
        details: raw.details,
    })
}

fn parse_code(code: &str) -> Option<ErrorCode> {
    let de: serde::de::value::StrDeserializer<'_, serde::de::value::Error> =
        code.into_deserializer();
    ErrorCode::deserialize(de).ok()
}

fn describe_status(status: u16) -> String {
    let reason = StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Unexpected status");
    match status {
        502..=504 => "The hub is not available right now".to_owned(),
        _ => reason.to_owned(),
    }
}

/// `Retry-After`: delay-seconds or an HTTP-date (IMF-fixdate, RFC 850 or asctime). A date in
/// the past is a zero delay; anything else unreadable is `None`.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return value.parse::<u64>().ok().map(Duration::from_secs);
    }
    let at = parse_http_date(value)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

fn parse_http_date(value: &str) -> Option<SystemTime> {
    use chrono::{DateTime, NaiveDateTime};
    let naive = DateTime::parse_from_rfc2822(value)
        .map(|d| d.naive_utc())
        .or_else(|_| NaiveDateTime::parse_from_str(value, "%A, %d-%b-%y %H:%M:%S GMT"))
        .or_else(|_| NaiveDateTime::parse_from_str(value, "%a %b %e %H:%M:%S %Y"))
        .ok()?;
    let secs = naive.and_utc().timestamp();
    let secs = u64::try_from(secs).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(unix: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(unix)
    }

    // 1994-11-06T08:49:37Z
    const NOV_6_1994: u64 = 784_111_777;

    #[test]
    fn retry_after_in_seconds() {
        let now = at(NOV_6_1994);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("-3", now), None);
        assert_eq!(parse_retry_after("1.5", now), None);
        assert_eq!(parse_retry_after("", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn retry_after_as_an_http_date() {
        let now = at(NOV_6_1994 - 30);
        let thirty = Some(Duration::from_secs(30));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            thirty
        );
        assert_eq!(
            parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now),
            thirty
        );
        assert_eq!(parse_retry_after("Sun Nov  6 08:49:37 1994", now), thirty);
        // In the past: go now.
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", at(NOV_6_1994 + 60)),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn an_error_envelope_is_parsed() {
        let body = json!({
            "data": null,
            "error": {
                "code": "RATE_LIMIT_EXCEEDED", "message": "Too many requests",
                "details": {"retry_after": 12}, "request_id": "req_1",
                "timestamp": "2026-01-01T00:00:00Z"
            },
            "message": "Too many requests", "toast": false, "responseType": "error"
        });
        let e = http_error(
            429,
            Some("12"),
            body.to_string().as_bytes(),
            SystemTime::now(),
        );
        assert_eq!(
            e,
            TransportError::Http {
                status: 429,
                code: Some(ErrorCode::RateLimitExceeded),
                message: "Too many requests".into(),
                details: json!({"retry_after": 12}),
                retry_after: Some(Duration::from_secs(12)),
            }
        );
        assert!(e.is_retryable());
        assert!(!e.is_auth());
        assert_eq!(e.to_string(), "Too many requests (HTTP 429)");
    }

    #[test]
    fn an_unknown_code_keeps_the_message() {
        let body = br#"{"error": {"code": "SOMETHING_NEW", "message": "Later hub"}}"#;
        let e = http_error(409, None, body, SystemTime::now());
        assert_eq!(e.code(), None);
        assert_eq!(e.status(), Some(409));
        assert_eq!(e.to_string(), "Later hub (HTTP 409)");
    }

    #[test]
    fn a_body_that_is_no_envelope_still_gives_an_error() {
        let html = b"<html><body><h1>502 Bad Gateway</h1></body></html>";
        let e = http_error(502, None, html, SystemTime::now());
        let TransportError::Http {
            status,
            code,
            message,
            details,
            retry_after,
        } = &e
        else {
            panic!("{e:?}")
        };
        assert_eq!(*status, 502);
        assert_eq!(*code, None);
        assert_eq!(message, "The hub is not available right now");
        assert!(details.is_null());
        assert_eq!(*retry_after, None);
        assert!(e.is_retryable());
        for body in [&b""[..], b"{}", b"[1,2]", b"{\"error\": null}", b"not json"] {
            let e = http_error(503, Some("5"), body, SystemTime::now());
            assert_eq!(e.status(), Some(503));
            assert_eq!(e.retry_after(), Some(Duration::from_secs(5)));
            assert!(e.is_retryable());
        }
    }

    #[test]
    fn errors_are_classified_per_the_contract() {
        let http = |status| http_error(status, None, b"", SystemTime::now());
        for status in [408, 429, 500, 502, 503, 504] {
            assert!(http(status).is_retryable(), "{status}");
            assert!(!http(status).is_auth(), "{status}");
        }
        for status in [400, 401, 403, 404, 409, 413, 422, 501] {
            assert!(!http(status).is_retryable(), "{status}");
        }
        assert!(http(401).is_auth());
        assert!(!http(403).is_auth());
        let offline = TransportError::Offline {
            message: "refused".into(),
        };
        let timeout = TransportError::Timeout {
            message: "30 s".into(),
        };
        assert!(offline.is_retryable() && timeout.is_retryable());
        assert!(!offline.is_auth() && !timeout.is_auth());
        let decode = TransportError::Decode {
            message: "x".into(),
        };
        assert!(!decode.is_retryable());
        assert!(!TransportError::invalid("x").is_retryable());
    }

    #[test]
    fn base_urls_are_checked() {
        let ok = |s: &str| parse_base_url(s).map(|u| u.to_string());
        assert_eq!(
            ok("http://127.0.0.1:8080").unwrap(),
            "http://127.0.0.1:8080/"
        );
        assert_eq!(
            ok("https://hub.example.com/stocksync").unwrap(),
            "https://hub.example.com/stocksync/"
        );
        for bad in [
            "ftp://hub.example.com",
            "ws://hub.example.com",
            "hub.example.com",
            "",
            "http://hub.example.com/?a=1",
            "file:///tmp/x",
        ] {
            let e = parse_base_url(bad).unwrap_err();
            assert!(
                matches!(e, TransportError::InvalidConfig { .. }),
                "{bad}: {e:?}"
            );
        }
        // No scheme: the message says what to write.
        let e = parse_base_url("127.0.0.1:8080").unwrap_err();
        assert!(e.to_string().contains("write http://127.0.0.1:8080"), "{e}");
        let cfg = TransportConfig::default();
        assert!(HubClient::new("http://127.0.0.1:1", "not-a-device", &cfg).is_err());
        let c = HubClient::new("http://127.0.0.1:1/base", "dev_1", &cfg).unwrap();
        assert_eq!(
            c.url("v1/sync/push").unwrap().as_str(),
            "http://127.0.0.1:1/base/v1/sync/push"
        );
    }

    #[test]
    fn tokens_do_not_show_in_debug_output() {
        let auth = Auth {
            access_token: "secret-token".into(),
            organization_id: "org_1".into(),
        };
        assert!(!format!("{auth:?}").contains("secret-token"));
    }

    #[test]
    fn a_delta_page_decodes_with_its_meta() {
        let body = json!({
            "data": {"created": [{"entity": "product", "id": "prod_1", "seq": 3, "version": 1,
                                  "sku": "A", "name": "Widget"}],
                     "updated": [], "deleted": []},
            "meta": {"request_id": "req_1", "next_sync_token": "t", "changes_count": 1,
                     "has_more": false, "full_sync_required": false, "checksum": "sha256sum:00"},
            "message": "OK", "toast": false, "responseType": "success"
        });
        let r: DeltaResponse = decode("delta page", body.to_string().as_bytes()).unwrap();
        assert_eq!(r.page.created[0].fields["sku"], "A");
        assert_eq!(r.meta.next_sync_token, "t");
        assert!(decode::<DeltaResponse>("delta page", b"{\"data\": 1}").is_err());
    }
}

//! Layers every request passes: the request context (id, log line, metrics) and, on the
//! protected routes, authentication with tenancy checks and rate limiting.

use crate::auth::{Caller, jwt};
use crate::envelope::{REQUEST_ID, new_request_id};
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use std::time::Instant;
use stocksync_protocol::{ErrorCode, headers as h};
use tracing::Instrument;

/// Gives the request an id (the caller's `X-Request-ID` when it is sane), logs it, counts it,
/// and echoes the id on the response.
pub async fn request_context(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(h::REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            (1..=64).contains(&v.len())
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(str::to_owned)
        .unwrap_or_else(new_request_id);
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let span = tracing::info_span!("request", request_id = %id, %method, %route);
    let started = Instant::now();
    let mut response = REQUEST_ID
        .scope(id.clone(), next.run(req))
        .instrument(span.clone())
        .await;
    let status = response.status().as_u16();
    span.in_scope(|| {
        tracing::info!(
            status,
            ms = started.elapsed().as_secs_f64() * 1000.0,
            "answered"
        );
    });
    state.metrics.request(&route, &method, status);
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(h::REQUEST_ID, v);
    }
    response
}

/// Authenticates, checks the tenancy headers and the rate limit, and hands the [`Caller`] to
/// the handler through the request's extensions.
///
/// A credential the hub does not know (an unknown API key, a bearer token that is not one the
/// hub signed) counts against its client address's budget of failed authentications (the
/// enrollment limit, `auth_rate_limit` per window, counted apart from enrollment calls); once it
/// is used up the address gets 429 for the rest of the window, for right and wrong API keys
/// alike, so a guesser cannot tell a hit from the status. What is not held back: a valid device
/// token (signed by the hub, so it cannot be guessed), an API key that already worked from this
/// address within a day (a guesser behind the same NAT does not lock a working integration out),
/// and every other address.
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let now = u64::try_from(crate::clock::now_unix()).unwrap_or(0);
    let addr = client_addr(&req);
    let failures = format!("auth-failures:{addr}");
    let caller = match identify(&state, req.headers()) {
        Ok((caller, Proof::Token)) => caller,
        Ok((caller, Proof::ApiKey)) => {
            let known = format!("{addr} {}", caller.credential_id);
            if !state.known_keys.contains(&known, now)
                && let Some(refused) = state.auth_limiter.exhausted(&failures, now)
            {
                return too_many(&state, &refused).into_response();
            }
            state.known_keys.mark(&known, now);
            caller
        }
        Err(Refusal {
            error,
            guess: false,
        }) => return error.into_response(),
        Err(Refusal { error, guess: true }) => {
            let decision = state.auth_limiter.check(&failures, now);
            return if decision.allowed {
                error
            } else {
                too_many(&state, &decision)
            }
            .into_response();
        }
    };
    // Counted as soon as the credential is known: a request it makes with wrong tenancy
    // headers is an authenticated request too, and carries the rate-limit headers.
    let decision = state.limiter.check(&caller.credential_id, now);
    let mut response = if decision.allowed {
        match tenancy(&state, caller, req.headers(), req.uri().path()) {
            Ok(caller) => {
                req.extensions_mut().insert(caller);
                next.run(req).await
            }
            Err(e) => e.into_response(),
        }
    } else {
        too_many(&state, &decision).into_response()
    };
    if decision.limit > 0 {
        let headers = response.headers_mut();
        headers.insert("x-ratelimit-limit", HeaderValue::from(decision.limit));
        headers.insert(
            "x-ratelimit-remaining",
            HeaderValue::from(decision.remaining),
        );
        headers.insert("x-ratelimit-reset", HeaderValue::from(decision.reset_unix));
    }
    response
}

/// Limits the enrollment and refresh routes per client address: they take secrets in the body
/// and need no credential, so this is what makes guessing slow.
pub async fn limit_by_address(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let now = u64::try_from(crate::clock::now_unix()).unwrap_or(0);
    let decision = state
        .auth_limiter
        .check(&format!("addr:{}", client_addr(&req)), now);
    if decision.allowed {
        next.run(req).await
    } else {
        too_many(&state, &decision).into_response()
    }
}

/// The client's IP address (the peer of the connection; no proxy header is trusted).
fn client_addr(req: &Request) -> String {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_default()
}

fn too_many(state: &AppState, decision: &crate::ratelimit::RateDecision) -> ApiError {
    let mut e = ApiError::new(
        ErrorCode::RateLimitExceeded,
        format!(
            "Too many requests: {} per {} s; try again in {} s",
            decision.limit,
            state.config.rate_window.as_secs(),
            decision.retry_after_secs
        ),
    )
    .with_details(serde_json::json!({
        "limit": decision.limit,
        "window": format!("{}s", state.config.rate_window.as_secs()),
        "retry_after": decision.retry_after_secs,
    }));
    e.retry_after = Some(decision.retry_after_secs);
    e
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ApiError> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(|s| Some(s.trim()))
            .map_err(|_| ApiError::field(name, "Is not valid header text")),
    }
}

/// How a caller proved who it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Proof {
    /// A device token the hub signed.
    Token,
    /// An API key the hub knows.
    ApiKey,
}

/// Why a request has no caller.
struct Refusal {
    /// The answer.
    error: ApiError,
    /// A secret the hub does not know was presented (an unknown API key, a token the hub did
    /// not sign): what guessing looks like, so it counts against the address.
    guess: bool,
}

impl From<ApiError> for Refusal {
    fn from(error: ApiError) -> Self {
        Refusal {
            error,
            guess: false,
        }
    }
}

/// Who is calling: a valid, unrevoked device token or a known API key.
fn identify(state: &AppState, headers: &HeaderMap) -> Result<(Caller, Proof), Refusal> {
    let directory = state.directory.read().unwrap_or_else(|p| p.into_inner());
    let bearer = header(headers, "authorization").map_err(|_| bad_credential())?;
    let api_key = header(headers, h::API_KEY).map_err(|_| bad_credential())?;
    let (caller, proof) = if let Some(auth) = bearer {
        let token = match auth.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => {
                return Err(ApiError::unauthenticated(
                    "The Authorization header must be `Bearer <token>`",
                )
                .into());
            }
        };
        let claims = jwt::verify(&state.secrets.jwt, token, crate::clock::now_unix()).map_err(
            |e| match e {
                jwt::JwtError::Expired => ApiError::new(
                    ErrorCode::TokenExpired,
                    "The access token expired; refresh it at POST /v1/oauth/token",
                )
                .into(),
                // Signed by the hub, only early: not a guess.
                jwt::JwtError::NotYetValid => {
                    ApiError::unauthenticated(format!("Invalid access token: {e}")).into()
                }
                other => Refusal {
                    error: ApiError::unauthenticated(format!("Invalid access token: {other}")),
                    guess: true,
                },
            },
        )?;
        if directory.revoked_families.contains(&claims.fam) {
            return Err(ApiError::unauthenticated(
                "This device's tokens were revoked; enroll it again",
            )
            .into());
        }
        let caller = Caller {
            org: claims.org,
            branches: Some(vec![claims.branch]),
            device_id: Some(claims.sub.clone()),
            scopes: claims.permissions,
            credential_id: claims.sub,
            family: Some(claims.fam),
        };
        (caller, Proof::Token)
    } else if let Some(key) = api_key {
        let record = directory
            .api_keys
            .get(&crate::auth::secret::hash_secret(key))
            .ok_or_else(|| Refusal {
                error: ApiError::unauthenticated("Unknown API key"),
                guess: true,
            })?;
        let caller = Caller {
            org: record.org_id.clone(),
            branches: record.branch_id.clone().map(|b| vec![b]),
            device_id: None,
            scopes: record.scopes.clone(),
            credential_id: record.id.clone(),
            family: None,
        };
        (caller, Proof::ApiKey)
    } else {
        return Err(ApiError::unauthenticated(
            "No credential: send `Authorization: Bearer <token>` or `X-API-Key`",
        )
        .into());
    };
    if !directory.branches.contains_key(&caller.org) {
        return Err(bad_credential().into());
    }
    Ok((caller, proof))
}

/// The tenancy headers: the organization must be the caller's, the device the token's, the
/// branch one of the caller's (it then narrows the caller to it).
fn tenancy(
    state: &AppState,
    mut caller: Caller,
    headers: &HeaderMap,
    path: &str,
) -> Result<Caller, ApiError> {
    let directory = state.directory.read().unwrap_or_else(|p| p.into_inner());
    let branches = directory
        .branches
        .get(&caller.org)
        .ok_or_else(bad_credential)?;

    match header(headers, h::ORGANIZATION_ID)? {
        None | Some("") => {
            return Err(ApiError::field(h::ORGANIZATION_ID, "Is required"));
        }
        Some(org) if org != caller.org => {
            return Err(ApiError::denied(
                "X-Organization-ID does not match the credential's organization",
            ));
        }
        Some(_) => {}
    }
    if let Some(device) = &caller.device_id {
        match header(headers, h::MOBILE_DEVICE_ID)? {
            Some(d) if d != device => {
                return Err(ApiError::denied(
                    "X-Mobile-Device-Id does not match the token's device",
                ));
            }
            None if path.starts_with("/v1/sync/") || path == "/v1/ws" => {
                return Err(ApiError::field(
                    h::MOBILE_DEVICE_ID,
                    "Is required with a device token",
                ));
            }
            _ => {}
        }
    }
    if let Some(branch) = header(headers, h::BRANCH_ID)?.filter(|b| !b.is_empty()) {
        if !branches.contains(branch) || !caller.in_branch(branch) {
            return Err(ApiError::denied(
                "X-Branch-ID names a branch outside this credential's",
            ));
        }
        caller.branches = Some(vec![branch.to_owned()]);
    }
    Ok(caller)
}

fn bad_credential() -> ApiError {
    ApiError::unauthenticated("Invalid credential")
}

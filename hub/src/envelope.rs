//! The response envelope of the contract, on every JSON response, success or error.
//!
//! The request id is set once per request by [`crate::middleware::request_context`] into a task
//! local, so handlers and error conversions reach it without threading it through.

use crate::error::ApiError;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

tokio::task_local! {
    /// The id of the request being handled.
    pub static REQUEST_ID: String;
}

/// The current request's id (a fresh one outside a request).
pub fn request_id() -> String {
    REQUEST_ID
        .try_with(Clone::clone)
        .unwrap_or_else(|_| new_request_id())
}

/// A new `req_…` id.
pub fn new_request_id() -> String {
    format!("req_{}", uuid::Uuid::now_v7().simple())
}

/// A success response.
#[derive(Debug)]
pub struct Reply {
    status: StatusCode,
    data: Data,
    meta: Map<String, Value>,
    message: String,
    headers: HeaderMap,
}

/// `data` of a reply: a value, or JSON text already made (a delta page).
#[derive(Debug)]
enum Data {
    Value(Value),
    Json(Vec<u8>),
}

impl Reply {
    /// 200 with `data`.
    pub fn ok(data: Value) -> Self {
        Reply::with_data(Data::Value(data))
    }

    /// 200 with `data` given as the text of one JSON value, sent as it is (the caller vouches
    /// that it is valid JSON).
    pub fn ok_json_text(data: Vec<u8>) -> Self {
        Reply::with_data(Data::Json(data))
    }

    fn with_data(data: Data) -> Self {
        Reply {
            status: StatusCode::OK,
            data,
            meta: Map::new(),
            message: "OK".into(),
            headers: HeaderMap::new(),
        }
    }

    /// 201 with `data`.
    pub fn created(data: Value) -> Self {
        Reply::ok(data)
            .status(StatusCode::CREATED)
            .message("Created")
    }

    /// Sets the status.
    pub fn status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// Sets the message.
    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    /// Adds a `meta` member.
    pub fn meta(mut self, key: &str, value: Value) -> Self {
        self.meta.insert(key.to_owned(), value);
        self
    }

    /// Adds `ETag: "version-N"` from `data.version` (when there is one).
    pub fn etag(self) -> Self {
        let version = match &self.data {
            Data::Value(v) => v.get("version").and_then(Value::as_u64),
            Data::Json(_) => None,
        };
        match version {
            Some(v) => self.header("etag", &format!("\"version-{v}\"")),
            None => self,
        }
    }

    /// Adds a header (values that are not valid header text are dropped).
    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.insert(HeaderName::from_static(name), v);
        }
        self
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let mut meta = self.meta;
        meta.insert("request_id".into(), Value::String(request_id()));
        let mut response = match self.data {
            Data::Value(data) => {
                let body = json!({
                    "data": data,
                    "meta": meta,
                    "message": self.message,
                    "toast": false,
                    "responseType": "success",
                });
                (self.status, json_body(&body)).into_response()
            }
            Data::Json(data) => {
                // The same envelope, with `data` spliced in as it is.
                let mut body = Vec::with_capacity(data.len() + 512);
                body.extend_from_slice(b"{\"data\":");
                body.extend_from_slice(&data);
                body.extend_from_slice(b",\"meta\":");
                let _ = serde_json::to_writer(&mut body, &meta);
                body.extend_from_slice(b",\"message\":");
                let _ = serde_json::to_writer(&mut body, &self.message);
                body.extend_from_slice(b",\"toast\":false,\"responseType\":\"success\"}");
                (
                    self.status,
                    [(header::CONTENT_TYPE, "application/json")],
                    body,
                )
                    .into_response()
            }
        };
        response.headers_mut().extend(self.headers);
        response
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut error = json!({
            "code": self.code,
            "message": self.message,
            "request_id": request_id(),
            "timestamp": crate::clock::now_rfc3339(),
        });
        if !self.details.is_null() {
            error["details"] = self.details.clone();
        }
        let body = json!({
            "data": null,
            "error": error,
            "message": self.message,
            "toast": false,
            "responseType": "error",
        });
        let mut response = (status, json_body(&body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

fn json_body(v: &Value) -> ([(header::HeaderName, &'static str); 1], String) {
    ([(header::CONTENT_TYPE, "application/json")], v.to_string())
}

/// `meta.pagination` of a list.
pub fn pagination(
    page: Option<u64>,
    page_size: u64,
    total: u64,
    has_more: bool,
    next_cursor: Option<String>,
    sort: Option<&str>,
) -> Value {
    json!({
        "page": page,
        "pageSize": page_size,
        "total": total,
        "hasMore": has_more,
        "nextCursor": next_cursor,
        "sort": sort,
    })
}

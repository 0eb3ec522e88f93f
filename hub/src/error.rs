//! The hub's one error type at the HTTP edge: a contract error code, a message a person can
//! read, and details. Every failure becomes one of these, and every one of these becomes an
//! error envelope (see [`crate::envelope`]).

use crate::storage::StorageError;
use serde_json::{Value, json};
use stocksync_model::{RuleViolation, ValidationErrors};
use stocksync_protocol::{ErrorBody, ErrorCode};

/// An error as the client will see it.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    /// Contract code (decides the HTTP status).
    pub code: ErrorCode,
    /// What a person should read.
    pub message: String,
    /// Field → messages, `{rule}`, or other facts.
    pub details: Value,
    /// Seconds to wait (429, 503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with no details.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            details: Value::Null,
            retry_after: None,
        }
    }

    /// Adds details.
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    /// `VALIDATION_FAILED` with field → messages.
    pub fn validation(errors: ValidationErrors) -> Self {
        // The reasons go into the message too: it is what a device shows for a rejected op.
        ApiError::new(
            ErrorCode::ValidationFailed,
            format!("Request validation failed: {errors}"),
        )
        .with_details(json!(errors.0))
    }

    /// `VALIDATION_FAILED` for one field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        ApiError::validation(ValidationErrors::single(field, message))
    }

    /// `NOT_FOUND`.
    pub fn not_found(what: &str, id: &str) -> Self {
        ApiError::new(ErrorCode::NotFound, format!("No {what} `{id}`"))
    }

    /// `PERMISSION_DENIED`.
    pub fn denied(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::PermissionDenied, message)
    }

    /// `AUTHENTICATION_FAILED`.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::AuthenticationFailed, message)
    }

    /// `BUSINESS_RULE_VIOLATION` with `details.rule`.
    pub fn rule(v: &RuleViolation) -> Self {
        ApiError::new(ErrorCode::BusinessRuleViolation, v.message.clone())
            .with_details(json!({ "rule": v.rule }))
    }

    /// `CONFLICT` for a version mismatch.
    pub fn version_mismatch(current: u64, provided: &str) -> Self {
        ApiError::new(
            ErrorCode::Conflict,
            format!("The resource is at version {current}; the request was made on {provided}"),
        )
        .with_details(json!({
            "current_version": current,
            "provided_version": provided,
        }))
    }

    /// `INTERNAL_ERROR`; the cause is logged, never shown.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        ApiError::new(ErrorCode::InternalError, "Something went wrong on the hub")
    }

    /// The wire body (without request id and time, which the envelope adds).
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            code: self.code,
            message: self.message.clone(),
            details: self.details.clone(),
            request_id: None,
            timestamp: None,
        }
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        ApiError::internal(e)
    }
}

impl From<ValidationErrors> for ApiError {
    fn from(e: ValidationErrors) -> Self {
        ApiError::validation(e)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)
    }
}

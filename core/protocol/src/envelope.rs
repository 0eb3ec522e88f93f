//! The response envelope and its error codes.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Error codes of the contract, each with its HTTP status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// Bad input; `details` maps fields to messages.
    ValidationFailed,
    /// A delta token that is forged, truncated or another organization's.
    InvalidSyncToken,
    /// No or bad credential.
    AuthenticationFailed,
    /// The access token expired.
    TokenExpired,
    /// The credential may not do this.
    PermissionDenied,
    /// No such thing.
    NotFound,
    /// Version mismatch (`If-Match`).
    Conflict,
    /// Body over the limit.
    PayloadTooLarge,
    /// Same idempotency key, other body.
    IdempotencyKeyReused,
    /// A business rule said no; `details.rule` names it.
    BusinessRuleViolation,
    /// Too many requests.
    RateLimitExceeded,
    /// A bug on the server.
    InternalError,
    /// Try again later.
    ServiceUnavailable,
}

impl ErrorCode {
    /// The HTTP status the contract pairs with the code.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::ValidationFailed | ErrorCode::InvalidSyncToken => 400,
            ErrorCode::AuthenticationFailed | ErrorCode::TokenExpired => 401,
            ErrorCode::PermissionDenied => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::Conflict => 409,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::IdempotencyKeyReused | ErrorCode::BusinessRuleViolation => 422,
            ErrorCode::RateLimitExceeded => 429,
            ErrorCode::InternalError => 500,
            ErrorCode::ServiceUnavailable => 503,
        }
    }

    /// Whether a client should try again (network errors aside): 429 and 5xx.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::RateLimitExceeded | ErrorCode::InternalError | ErrorCode::ServiceUnavailable
        )
    }
}

/// The `error` member of an error envelope (and of a rejected op's result).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Machine-readable code.
    pub code: ErrorCode,
    /// What a person should read.
    pub message: String,
    /// Field → messages for validation; `{rule}` for business rules; other facts otherwise.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub details: Value,
    /// The request that failed, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// When (RFC 3339 UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_screaming_snake_case_on_the_wire() {
        let json = serde_json::to_string(&ErrorCode::BusinessRuleViolation).unwrap();
        assert_eq!(json, "\"BUSINESS_RULE_VIOLATION\"");
        assert_eq!(ErrorCode::BusinessRuleViolation.status(), 422);
        assert!(!ErrorCode::Conflict.is_retryable());
    }
}

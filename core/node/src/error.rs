use stocksync_model::ValidationErrors;
use stocksync_protocol::ErrorCode;
use stocksync_store::StoreError;

/// What an app can act on: each variant says what to do next.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NodeError {
    /// The database has no device yet: run `init` (or enroll).
    #[error("this device is not set up yet: run `init` first")]
    NotInitialised,
    /// `init` was run before; the device keeps its identity.
    #[error("this database already belongs to device {device_id}")]
    AlreadyInitialised {
        /// The existing device.
        device_id: String,
    },
    /// No such product, location or allocation: show it, let the user correct the code.
    #[error("{entity} `{key}` not found")]
    NotFound {
        /// What was looked for.
        entity: String,
        /// By what.
        key: String,
    },
    /// Bad input: show the messages next to their fields.
    #[error("invalid input: {details}")]
    Invalid {
        /// Field → messages.
        details: ValidationErrors,
    },
    /// A business rule said no: show the message; nothing was written.
    #[error("{message} ({rule})")]
    Rule {
        /// The rule's stable name (`no_negative_inventory`).
        rule: String,
        /// What a person should read.
        message: String,
    },
    /// The local database failed (disk full, I/O error, unreadable data).
    #[error("local storage: {message}")]
    Storage {
        /// What SQLite or the store said.
        message: String,
    },
    /// The hub cannot be reached (or did not answer in time): work on; sync retries later.
    #[error("offline: {message}")]
    Offline {
        /// What the network said.
        message: String,
    },
    /// Not enrolled, or the hub refused this device's credentials: enroll (again).
    #[error("sign-in needed: {message}")]
    AuthRequired {
        /// Why.
        message: String,
    },
    /// The hub answered with an error that retrying will not fix.
    #[error("the hub said: {message} (HTTP {status})")]
    Hub {
        /// HTTP status.
        status: u16,
        /// The contract's error code.
        code: String,
        /// What the hub said.
        message: String,
    },
}

impl NodeError {
    /// The contract's error code for this error (the `--json` output uses it).
    pub fn code(&self) -> ErrorCode {
        match self {
            NodeError::NotInitialised | NodeError::NotFound { .. } => ErrorCode::NotFound,
            NodeError::AlreadyInitialised { .. } => ErrorCode::Conflict,
            NodeError::Invalid { .. } => ErrorCode::ValidationFailed,
            NodeError::Rule { .. } => ErrorCode::BusinessRuleViolation,
            NodeError::Storage { .. } => ErrorCode::InternalError,
            NodeError::Offline { .. } => ErrorCode::ServiceUnavailable,
            NodeError::AuthRequired { .. } => ErrorCode::AuthenticationFailed,
            NodeError::Hub { code, .. } => {
                serde_json::from_value(serde_json::Value::String(code.clone()))
                    .unwrap_or(ErrorCode::InternalError)
            }
        }
    }

    /// The envelope's `details`: field → messages, or `{rule}`.
    pub fn details(&self) -> serde_json::Value {
        match self {
            NodeError::Invalid { details } => serde_json::to_value(details).unwrap_or_default(),
            NodeError::Rule { rule, .. } => serde_json::json!({ "rule": rule }),
            NodeError::NotFound { entity, key } => {
                serde_json::json!({ "entity": entity, "key": key })
            }
            _ => serde_json::Value::Null,
        }
    }

    pub(crate) fn invalid(field: &str, message: impl Into<String>) -> Self {
        NodeError::Invalid {
            details: ValidationErrors::single(field, message),
        }
    }
}

impl From<StoreError> for NodeError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotInitialised => NodeError::NotInitialised,
            StoreError::AlreadyInitialised(device_id) => {
                NodeError::AlreadyInitialised { device_id }
            }
            StoreError::NotFound { entity, key } => NodeError::NotFound {
                entity: entity.to_owned(),
                key,
            },
            StoreError::Invalid(details) => NodeError::Invalid { details },
            StoreError::Rule(v) => NodeError::Rule {
                rule: v.rule,
                message: v.message,
            },
            other => NodeError::Storage {
                message: other.to_string(),
            },
        }
    }
}

impl From<crate::sync::RoundError> for NodeError {
    fn from(e: crate::sync::RoundError) -> Self {
        use crate::sync::RoundError;
        use crate::sync::transport::TransportError;
        match e {
            RoundError::AuthRequired(message) => NodeError::AuthRequired { message },
            RoundError::Store(message) => NodeError::Storage { message },
            RoundError::Transport(t) => match t {
                // A hub URL that is no URL is bad input, not a network problem.
                TransportError::InvalidConfig { message } => {
                    let field = if message.starts_with("hub URL") {
                        "hub_url"
                    } else {
                        "sync_settings"
                    };
                    NodeError::invalid(field, message)
                }
                TransportError::Http {
                    status,
                    code,
                    message,
                    ..
                } if !matches!(status, 408 | 429 | 500 | 502 | 503 | 504) => NodeError::Hub {
                    status,
                    code: code
                        .and_then(|c| serde_json::to_value(c).ok())
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_else(|| "HTTP_ERROR".to_owned()),
                    message,
                },
                other => NodeError::Offline {
                    message: other.to_string(),
                },
            },
        }
    }
}

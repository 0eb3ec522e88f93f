//! The one error type apps catch: each variant says what to do next.

use stocksync_node::NodeError;

/// One field's problems, to show next to the field.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct FieldError {
    /// The field (`quantity`, `sku`, `price.currency`).
    pub field: String,
    /// What is wrong with it.
    pub messages: Vec<String>,
}

/// Why a call failed. Fields are called `reason`, not `message`: Kotlin exceptions already have
/// a `message` (uniffi fills it with the fields). The readable sentence is the exported `Display`
/// (`toString()` in Kotlin, `description` in Swift).
#[derive(Clone, Debug, PartialEq, thiserror::Error, uniffi::Error)]
#[uniffi::export(Display)]
pub enum StocksyncError {
    /// The hub cannot be reached or did not answer in time. Keep working: everything is saved
    /// locally and sync retries by itself.
    #[error("offline: {reason}")]
    Offline {
        /// What the network said.
        reason: String,
    },
    /// The device is not enrolled, or the hub no longer accepts its credentials: enroll again.
    #[error("sign-in needed: {reason}")]
    AuthRequired {
        /// Why.
        reason: String,
    },
    /// A business rule said no (`no_negative_inventory`, …); nothing was written.
    #[error("{reason} ({rule})")]
    Rule {
        /// The rule's stable name.
        rule: String,
        /// What a person should read.
        reason: String,
    },
    /// No such product, location, allocation or conflict: let the user correct the code.
    #[error("{entity} `{key}` not found")]
    NotFound {
        /// What was looked for (`product`, `location`, `device`, …).
        entity: String,
        /// By what.
        key: String,
    },
    /// Bad input: show each field's messages next to it.
    #[error("invalid input: {reason}")]
    Invalid {
        /// All problems in one line.
        reason: String,
        /// Field by field.
        fields: Vec<FieldError>,
    },
    /// The hub refused the request and retrying will not help (show it; tell an admin).
    #[error("the hub said: {reason} (HTTP {status}, {code})")]
    Hub {
        /// HTTP status.
        status: u16,
        /// The contract's error code (`FORBIDDEN`, `VALIDATION_FAILED`, …).
        code: String,
        /// What the hub said.
        reason: String,
    },
    /// The local database failed (disk full, I/O error): report it; data already saved stays.
    #[error("local storage: {reason}")]
    Storage {
        /// What SQLite or the store said.
        reason: String,
    },
}

impl StocksyncError {
    pub(crate) fn invalid(field: &str, message: String) -> Self {
        StocksyncError::Invalid {
            reason: format!("{field}: {message}"),
            fields: vec![FieldError {
                field: field.to_owned(),
                messages: vec![message],
            }],
        }
    }
}

impl From<NodeError> for StocksyncError {
    fn from(e: NodeError) -> Self {
        let reason = e.to_string();
        match e {
            // Not set up yet: the app's way out is the same as for missing credentials.
            NodeError::NotInitialised => StocksyncError::AuthRequired {
                reason: "this device is not set up yet: enroll it (or init_device for offline use)"
                    .into(),
            },
            NodeError::AlreadyInitialised { .. } => StocksyncError::Invalid {
                reason,
                fields: Vec::new(),
            },
            NodeError::NotFound { entity, key } => StocksyncError::NotFound { entity, key },
            NodeError::Invalid { details } => StocksyncError::Invalid {
                reason: details.to_string(),
                fields: details
                    .0
                    .into_iter()
                    .map(|(field, messages)| FieldError { field, messages })
                    .collect(),
            },
            NodeError::Rule { rule, message } => StocksyncError::Rule {
                rule,
                reason: message,
            },
            NodeError::Storage { message } => StocksyncError::Storage { reason: message },
            NodeError::Offline { message } => StocksyncError::Offline { reason: message },
            NodeError::AuthRequired { message } => StocksyncError::AuthRequired { reason: message },
            NodeError::Hub {
                status,
                code,
                message,
            } => StocksyncError::Hub {
                status,
                code,
                reason: message,
            },
        }
    }
}

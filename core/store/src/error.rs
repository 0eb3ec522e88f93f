use stocksync_model::{Refusal, RuleViolation, ValidationErrors};

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed (disk full, I/O error, locked past the busy timeout, …).
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The file could not be set up as required.
    #[error("database setup: {0}")]
    Setup(String),
    /// The file's schema is newer than this program knows.
    #[error(
        "the database is at schema version {found}, newer than this program's {known}; update the app"
    )]
    SchemaTooNew {
        /// The file's version.
        found: i64,
        /// The newest this program knows.
        known: i64,
    },
    /// `init` has not been run on this database.
    #[error("this database has no device yet: run `init` first")]
    NotInitialised,
    /// `init` was already run.
    #[error("this database already belongs to device {0}")]
    AlreadyInitialised(String),
    /// No such thing.
    #[error("{entity} `{key}` not found")]
    NotFound {
        /// What was looked for.
        entity: &'static str,
        /// By what.
        key: String,
    },
    /// Bad input, by field.
    #[error("invalid input: {0}")]
    Invalid(ValidationErrors),
    /// A business rule said no.
    #[error("refused: {0}")]
    Rule(RuleViolation),
    /// Stored data this version cannot read.
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
}

impl From<Refusal> for StoreError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Invalid(e) => StoreError::Invalid(e),
            Refusal::Rule(v) => StoreError::Rule(v),
        }
    }
}

impl From<ValidationErrors> for StoreError {
    fn from(e: ValidationErrors) -> Self {
        StoreError::Invalid(e)
    }
}

impl From<stocksync_model::product_doc::DocError> for StoreError {
    fn from(e: stocksync_model::product_doc::DocError) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}

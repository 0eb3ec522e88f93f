//! Locations: where stock sits (a bin, a shelf, a store room).

use crate::ids::LocationId;
use crate::validation::{ValidationErrors, check_code, check_text};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A location as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    /// Id.
    pub id: LocationId,
    /// Short code staff type or scan (`A-01`), unique.
    pub code: String,
    /// Readable name.
    pub name: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
}

/// What it takes to make a location.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewLocation {
    /// Short unique code.
    pub code: String,
    /// Readable name.
    pub name: String,
}

impl NewLocation {
    /// Field problems, if any.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        check_code(&mut errors, "code", &self.code);
        check_text(&mut errors, "name", &self.name, true, 200);
        errors.into_result()
    }
}

//! Field → messages, the `details` of a `VALIDATION_FAILED` error.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Problems found in an input, by field path (`quantity.value`, `sku`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ValidationErrors(pub BTreeMap<String, Vec<String>>);

impl ValidationErrors {
    /// No problems yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Notes a problem with a field.
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.entry(field.into()).or_default().push(message.into());
    }

    /// One problem with one field.
    pub fn single(field: impl Into<String>, message: impl Into<String>) -> Self {
        let mut errors = Self::new();
        errors.add(field, message);
        errors
    }

    /// True when nothing was found.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(())` when empty, else the errors.
    pub fn into_result(self) -> Result<(), ValidationErrors> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (field, messages) in &self.0 {
            for message in messages {
                if !first {
                    f.write_str("; ")?;
                }
                first = false;
                write!(f, "{field}: {message}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

/// Checks a free-text field: trimmed, not empty when required, at most `max` characters, no
/// control characters.
pub(crate) fn check_text(
    errors: &mut ValidationErrors,
    field: &str,
    value: &str,
    required: bool,
    max: usize,
) {
    if value.trim().is_empty() {
        if required {
            errors.add(field, "Must not be empty");
        }
        return;
    }
    if value.trim() != value {
        errors.add(field, "Must not start or end with spaces");
    }
    if value.chars().count() > max {
        errors.add(field, format!("Must be at most {max} characters"));
    }
    if value.chars().any(char::is_control) {
        errors.add(field, "Must not contain control characters");
    }
}

/// Checks a code (SKU, barcode, location code): 1..=64 of letters, digits, `-`, `_`, `.`, `/`.
pub(crate) fn check_code(errors: &mut ValidationErrors, field: &str, value: &str) {
    if value.is_empty() {
        errors.add(field, "Must not be empty");
    } else if value.len() > 64 {
        errors.add(field, "Must be at most 64 characters");
    } else if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'))
    {
        errors.add(
            field,
            "May contain only letters, digits and - _ . / (no spaces)",
        );
    }
}

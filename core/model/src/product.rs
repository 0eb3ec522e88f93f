//! Products and the edits made to them.

use crate::ids::ProductId;
use crate::quantity::{Money, Uom};
use crate::validation::{ValidationErrors, check_code, check_text};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Whether a product is sold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProductStatus {
    /// In the range.
    #[default]
    Active,
    /// Temporarily out of the range.
    Inactive,
    /// No longer sold.
    Discontinued,
}

impl ProductStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ProductStatus::Active => "active",
            ProductStatus::Inactive => "inactive",
            ProductStatus::Discontinued => "discontinued",
        }
    }
}

impl fmt::Display for ProductStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProductStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [
            ProductStatus::Active,
            ProductStatus::Inactive,
            ProductStatus::Discontinued,
        ]
        .into_iter()
        .find(|v| v.as_str().eq_ignore_ascii_case(s))
        .ok_or_else(|| format!("unknown status `{s}` (expected active, inactive or discontinued)"))
    }
}

/// A product as the device sees it now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    /// Id.
    pub id: ProductId,
    /// Stock keeping unit, unique.
    pub sku: String,
    /// Scannable code, unique when present.
    pub barcode: Option<String>,
    /// Readable name.
    pub name: String,
    /// Longer text.
    pub description: Option<String>,
    /// Category used for filters.
    pub category: Option<String>,
    /// Whether it is sold.
    pub status: ProductStatus,
    /// Unit its stock is kept in.
    pub uom: Uom,
    /// Selling price.
    pub price: Option<Money>,
    /// Hub version this view builds on (0 until the hub has confirmed it).
    pub version: u64,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it was last changed.
    pub updated_at: DateTime<Utc>,
}

/// What it takes to make a product.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewProduct {
    /// Stock keeping unit.
    pub sku: String,
    /// Readable name.
    pub name: String,
    /// Scannable code.
    #[serde(default)]
    pub barcode: Option<String>,
    /// Longer text.
    #[serde(default)]
    pub description: Option<String>,
    /// Category.
    #[serde(default)]
    pub category: Option<String>,
    /// Unit of measure (default `EACH`).
    #[serde(default = "default_uom")]
    pub uom: Uom,
    /// Selling price.
    #[serde(default)]
    pub price: Option<Money>,
}

fn default_uom() -> Uom {
    Uom::Each
}

impl NewProduct {
    /// A product with just a SKU and a name, counted in `EACH`.
    pub fn new(sku: impl Into<String>, name: impl Into<String>) -> Self {
        NewProduct {
            sku: sku.into(),
            name: name.into(),
            barcode: None,
            description: None,
            category: None,
            uom: Uom::Each,
            price: None,
        }
    }

    /// Field problems, if any.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        check_code(&mut errors, "sku", &self.sku);
        check_text(&mut errors, "name", &self.name, true, 200);
        if let Some(barcode) = &self.barcode {
            check_code(&mut errors, "barcode", barcode);
        }
        if let Some(d) = &self.description {
            check_text(&mut errors, "description", d, false, 2000);
        }
        if let Some(c) = &self.category {
            check_text(&mut errors, "category", c, true, 100);
        }
        if let Some(price) = &self.price {
            check_price(&mut errors, price);
        }
        errors.into_result()
    }
}

/// Changes to a product's fields; `None` leaves a field as it is. For the optional fields,
/// `Some(None)` clears them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductPatch {
    /// New SKU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    /// New name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// New barcode, or cleared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub barcode: Option<Option<String>>,
    /// New description, or cleared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Option<String>>,
    /// New category, or cleared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<Option<String>>,
    /// New status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ProductStatus>,
    /// New price, or cleared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<Option<Money>>,
}

impl ProductPatch {
    /// True when nothing would change.
    pub fn is_empty(&self) -> bool {
        *self == ProductPatch::default()
    }

    /// Field problems, if any.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        if self.is_empty() {
            errors.add("fields", "Nothing to change: give at least one field");
        }
        if let Some(sku) = &self.sku {
            check_code(&mut errors, "sku", sku);
        }
        if let Some(name) = &self.name {
            check_text(&mut errors, "name", name, true, 200);
        }
        if let Some(Some(barcode)) = &self.barcode {
            check_code(&mut errors, "barcode", barcode);
        }
        if let Some(Some(d)) = &self.description {
            check_text(&mut errors, "description", d, false, 2000);
        }
        if let Some(Some(c)) = &self.category {
            check_text(&mut errors, "category", c, true, 100);
        }
        if let Some(Some(price)) = &self.price {
            check_price(&mut errors, price);
        }
        errors.into_result()
    }
}

fn check_price(errors: &mut ValidationErrors, price: &Money) {
    if price.amount.is_negative() {
        errors.add("price.amount", "Must not be negative");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_product_validation_names_the_fields() {
        let mut p = NewProduct::new("SKU 1", "");
        p.barcode = Some(String::new());
        p.price = Some("-1 EUR".parse().unwrap());
        let errors = p.validate().unwrap_err();
        let fields: Vec<_> = errors.0.keys().cloned().collect();
        assert_eq!(fields, ["barcode", "name", "price.amount", "sku"]);
        assert!(NewProduct::new("SKU-1", "Widget").validate().is_ok());
    }

    #[test]
    fn empty_patch_is_refused() {
        assert!(ProductPatch::default().validate().is_err());
        let patch = ProductPatch {
            name: Some("New".into()),
            ..Default::default()
        };
        assert!(patch.validate().is_ok());
    }
}

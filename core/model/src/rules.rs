//! The business rules, as functions the node and the hub both call.
//!
//! Each rule has a stable name (`details.rule` in a `BUSINESS_RULE_VIOLATION`) that apps can
//! match on.

use crate::decimal::Decimal;
use crate::quantity::Uom;
use crate::stock::StockLevel;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Stock at a location never goes below zero.
pub const NO_NEGATIVE_INVENTORY: &str = "no_negative_inventory";
/// An allocation may not exceed what is available (`on_hand − allocated`).
pub const ALLOCATION_WITHIN_AVAILABLE: &str = "allocation_within_available";
/// A movement's unit must be the product's unit.
pub const UOM_MUST_MATCH: &str = "uom_must_match";
/// An allocation is released once, and only while it is open.
pub const ALLOCATION_OPEN: &str = "allocation_open";

/// A movement refused by a business rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleViolation {
    /// The rule's stable name.
    pub rule: String,
    /// What a person should read.
    pub message: String,
}

impl RuleViolation {
    /// A violation of `rule`.
    pub fn new(rule: &str, message: impl Into<String>) -> Self {
        RuleViolation {
            rule: rule.to_owned(),
            message: message.into(),
        }
    }
}

impl fmt::Display for RuleViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.rule)
    }
}

impl std::error::Error for RuleViolation {}

/// `no_negative_inventory`: taking `delta` off `level` must leave `on_hand ≥ 0`. Additions are
/// always allowed, even onto a negative level, since they move it towards zero.
pub fn no_negative_inventory(
    level: &StockLevel,
    delta: Decimal,
    uom: Uom,
) -> Result<(), RuleViolation> {
    if !delta.is_negative() {
        return Ok(());
    }
    let after = level.on_hand.checked_add(delta);
    match after {
        Some(after) if !after.is_negative() => Ok(()),
        _ => Err(RuleViolation::new(
            NO_NEGATIVE_INVENTORY,
            format!(
                "only {} {uom} on hand at this location, cannot take {} {uom}",
                level.on_hand,
                delta.abs()
            ),
        )),
    }
}

/// `allocation_within_available`: allocating `quantity` needs that much available.
pub fn allocation_within_available(
    level: &StockLevel,
    quantity: Decimal,
    uom: Uom,
) -> Result<(), RuleViolation> {
    if quantity <= level.available {
        Ok(())
    } else {
        Err(RuleViolation::new(
            ALLOCATION_WITHIN_AVAILABLE,
            format!(
                "only {} {uom} available at this location, cannot allocate {quantity} {uom}",
                level.available
            ),
        ))
    }
}

/// `uom_must_match`: a movement is in its product's unit.
pub fn uom_must_match(product_uom: Uom, movement_uom: Uom) -> Result<(), RuleViolation> {
    if product_uom == movement_uom {
        Ok(())
    } else {
        Err(RuleViolation::new(
            UOM_MUST_MATCH,
            format!("the product is kept in {product_uom}, not {movement_uom}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn no_negative_inventory_allows_down_to_zero_only() {
        let level = StockLevel::new(d("5"), d("0"), d("0"));
        assert!(no_negative_inventory(&level, d("-5"), Uom::Each).is_ok());
        let err = no_negative_inventory(&level, d("-6"), Uom::Each).unwrap_err();
        assert_eq!(err.rule, NO_NEGATIVE_INVENTORY);
        let negative = StockLevel::new(d("-3"), d("0"), d("0"));
        assert!(no_negative_inventory(&negative, d("1"), Uom::Each).is_ok());
    }

    #[test]
    fn allocation_is_bounded_by_available() {
        let level = StockLevel::new(d("10"), d("0"), d("7"));
        assert!(allocation_within_available(&level, d("3"), Uom::Each).is_ok());
        assert_eq!(
            allocation_within_available(&level, d("4"), Uom::Each)
                .unwrap_err()
                .rule,
            ALLOCATION_WITHIN_AVAILABLE
        );
    }
}

//! Stock movements and how they turn into ledger legs.
//!
//! [`plan`] is the single place where a requested movement is checked (validation, then the
//! business rules against the current levels) and broken into legs. The node calls it inside the
//! transaction that writes the legs; the hub calls it when it applies a pushed op.

use crate::decimal::Decimal;
use crate::ids::{AllocationId, LocationId, ProductId, TransactionId, TransferId};
use crate::quantity::{Money, Quantity, Uom};
use crate::rules::{self, RuleViolation};
use crate::stock::StockLevel;
use crate::validation::{ValidationErrors, check_text};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Why stock was adjusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReasonCode {
    /// Broken goods written off.
    Damage,
    /// Unexplained loss.
    Shrinkage,
    /// Goods turned up.
    Found,
    /// Corrected after a count.
    CountCorrection,
    /// Anything else.
    Other,
}

impl ReasonCode {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ReasonCode::Damage => "DAMAGE",
            ReasonCode::Shrinkage => "SHRINKAGE",
            ReasonCode::Found => "FOUND",
            ReasonCode::CountCorrection => "COUNT_CORRECTION",
            ReasonCode::Other => "OTHER",
        }
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ReasonCode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        use ReasonCode::*;
        [Damage, Shrinkage, Found, CountCorrection, Other]
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(&s.replace('-', "_")))
            .ok_or_else(|| {
                format!(
                    "unknown reason `{s}` (expected DAMAGE, SHRINKAGE, FOUND, COUNT_CORRECTION or OTHER)"
                )
            })
    }
}

/// What happened, with the ids minted for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "movement_type", rename_all = "snake_case")]
pub enum MovementKind {
    /// Goods in (+).
    Receipt {
        /// Transaction id.
        transaction_id: TransactionId,
        /// Where.
        location_id: LocationId,
        /// How much (> 0).
        quantity: Quantity,
        /// Purchase cost of one unit.
        unit_cost: Option<Money>,
        /// Delivery note, PO number.
        reference: Option<String>,
    },
    /// Goods out (−).
    Shipment {
        /// Transaction id.
        transaction_id: TransactionId,
        /// Where from.
        location_id: LocationId,
        /// How much (> 0).
        quantity: Quantity,
        /// Order number.
        reference: Option<String>,
    },
    /// A correction (±) with a reason.
    Adjustment {
        /// Transaction id.
        transaction_id: TransactionId,
        /// Where.
        location_id: LocationId,
        /// Signed change (≠ 0).
        quantity: Quantity,
        /// Why.
        reason_code: ReasonCode,
    },
    /// A stock count: posts `counted − expected`, so it commutes with movements made meanwhile.
    Count {
        /// Transaction id.
        transaction_id: TransactionId,
        /// Where.
        location_id: LocationId,
        /// What was counted (≥ 0).
        counted: Quantity,
        /// What the counter's device showed when counting.
        expected: Quantity,
    },
    /// From one location to another: two legs, both or neither.
    Transfer {
        /// Transfer id.
        transfer_id: TransferId,
        /// Out of here.
        from_location_id: LocationId,
        /// Into here.
        to_location_id: LocationId,
        /// How much (> 0).
        quantity: Quantity,
    },
    /// Stock promised to an order: raises `allocated`.
    Allocation {
        /// Allocation id.
        allocation_id: AllocationId,
        /// Where.
        location_id: LocationId,
        /// How much (> 0, ≤ available).
        quantity: Quantity,
    },
    /// An allocation given back: lowers `allocated`.
    Release {
        /// The allocation released.
        allocation_id: AllocationId,
        /// Where it was held.
        location_id: LocationId,
        /// How much it held.
        quantity: Quantity,
    },
}

/// A movement of one product.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Movement {
    /// Which product.
    pub product_id: ProductId,
    /// What happened.
    #[serde(flatten)]
    pub kind: MovementKind,
}

impl Movement {
    /// The ledger's short name for the kind (`receipt`, `transfer`, …).
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            MovementKind::Receipt { .. } => "receipt",
            MovementKind::Shipment { .. } => "shipment",
            MovementKind::Adjustment { .. } => "adjustment",
            MovementKind::Count { .. } => "count",
            MovementKind::Transfer { .. } => "transfer",
            MovementKind::Allocation { .. } => "allocation",
            MovementKind::Release { .. } => "release",
        }
    }

    /// The id of the movement (transaction, transfer or allocation id).
    pub fn id(&self) -> &str {
        match &self.kind {
            MovementKind::Receipt { transaction_id, .. }
            | MovementKind::Shipment { transaction_id, .. }
            | MovementKind::Adjustment { transaction_id, .. }
            | MovementKind::Count { transaction_id, .. } => transaction_id.as_str(),
            MovementKind::Transfer { transfer_id, .. } => transfer_id.as_str(),
            MovementKind::Allocation { allocation_id, .. }
            | MovementKind::Release { allocation_id, .. } => allocation_id.as_str(),
        }
    }

    /// The locations whose levels the rules need.
    pub fn locations(&self) -> Vec<&LocationId> {
        match &self.kind {
            MovementKind::Receipt { location_id, .. }
            | MovementKind::Shipment { location_id, .. }
            | MovementKind::Adjustment { location_id, .. }
            | MovementKind::Count { location_id, .. }
            | MovementKind::Allocation { location_id, .. }
            | MovementKind::Release { location_id, .. } => vec![location_id],
            MovementKind::Transfer {
                from_location_id,
                to_location_id,
                ..
            } => vec![from_location_id, to_location_id],
        }
    }

    /// The movement's quantity (for a count, the counted one).
    pub fn quantity(&self) -> Quantity {
        match &self.kind {
            MovementKind::Receipt { quantity, .. }
            | MovementKind::Shipment { quantity, .. }
            | MovementKind::Adjustment { quantity, .. }
            | MovementKind::Transfer { quantity, .. }
            | MovementKind::Allocation { quantity, .. }
            | MovementKind::Release { quantity, .. } => *quantity,
            MovementKind::Count { counted, .. } => *counted,
        }
    }

    /// Field problems that do not depend on the stock (no rules yet).
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        let positive = |errors: &mut ValidationErrors, field: &str, q: &Quantity| {
            if !q.value.is_positive() {
                errors.add(format!("{field}.value"), "Must be greater than zero");
            }
        };
        match &self.kind {
            MovementKind::Receipt {
                quantity,
                unit_cost,
                reference,
                ..
            } => {
                positive(&mut errors, "quantity", quantity);
                if let Some(cost) = unit_cost
                    && cost.amount.is_negative()
                {
                    errors.add("unit_cost.amount", "Must not be negative");
                }
                if let Some(r) = reference {
                    check_text(&mut errors, "reference", r, false, 200);
                }
            }
            MovementKind::Shipment {
                quantity,
                reference,
                ..
            } => {
                positive(&mut errors, "quantity", quantity);
                if let Some(r) = reference {
                    check_text(&mut errors, "reference", r, false, 200);
                }
            }
            MovementKind::Adjustment { quantity, .. } => {
                if quantity.value == Decimal::ZERO {
                    errors.add("quantity.value", "Must not be zero");
                }
            }
            MovementKind::Count {
                counted, expected, ..
            } => {
                if counted.value.is_negative() {
                    errors.add("counted.value", "Must not be negative");
                }
                if counted.uom != expected.uom {
                    errors.add("expected.uom", "Must be the unit of counted");
                }
                if let Some(problem) = expected.unit_problem() {
                    errors.add("expected.value", problem);
                }
            }
            MovementKind::Transfer {
                from_location_id,
                to_location_id,
                quantity,
                ..
            } => {
                positive(&mut errors, "quantity", quantity);
                if from_location_id == to_location_id {
                    errors.add("to_location_id", "Must differ from the source location");
                }
            }
            MovementKind::Allocation { quantity, .. } | MovementKind::Release { quantity, .. } => {
                positive(&mut errors, "quantity", quantity);
            }
        }
        let field = if matches!(self.kind, MovementKind::Count { .. }) {
            "counted.value"
        } else {
            "quantity.value"
        };
        if let Some(problem) = self.quantity().unit_problem() {
            errors.add(field, problem);
        }
        errors.into_result()
    }
}

/// One line of the ledger: a change to one product's stock at one location.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leg {
    /// Which product.
    pub product_id: ProductId,
    /// Where.
    pub location_id: LocationId,
    /// Change to on hand.
    pub on_hand_delta: Decimal,
    /// Change to allocated.
    pub allocated_delta: Decimal,
}

/// Why a movement was not recorded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The input is wrong (`VALIDATION_FAILED`).
    #[error("invalid input: {0}")]
    Invalid(ValidationErrors),
    /// A business rule says no (`BUSINESS_RULE_VIOLATION`).
    #[error("refused: {0}")]
    Rule(RuleViolation),
}

impl From<ValidationErrors> for Refusal {
    fn from(e: ValidationErrors) -> Self {
        Refusal::Invalid(e)
    }
}

impl From<RuleViolation> for Refusal {
    fn from(e: RuleViolation) -> Self {
        Refusal::Rule(e)
    }
}

/// Checks a movement against its product's unit and the current levels, and returns its legs.
///
/// `level` gives the current stock of the movement's product at a location. Nothing is changed:
/// the caller writes the legs (all of them, or none).
pub fn plan(
    movement: &Movement,
    product_uom: Uom,
    level: impl Fn(&LocationId) -> StockLevel,
) -> Result<Vec<Leg>, Refusal> {
    movement.validate()?;
    rules::uom_must_match(product_uom, movement.quantity().uom)?;
    let leg = |location_id: &LocationId, on_hand_delta: Decimal, allocated_delta: Decimal| Leg {
        product_id: movement.product_id.clone(),
        location_id: location_id.clone(),
        on_hand_delta,
        allocated_delta,
    };
    let neg = |d: Decimal| d.checked_neg().ok_or_else(overflow);
    let legs = match &movement.kind {
        MovementKind::Receipt {
            location_id,
            quantity,
            ..
        } => vec![leg(location_id, quantity.value, Decimal::ZERO)],
        MovementKind::Shipment {
            location_id,
            quantity,
            ..
        } => vec![leg(location_id, neg(quantity.value)?, Decimal::ZERO)],
        MovementKind::Adjustment {
            location_id,
            quantity,
            ..
        } => vec![leg(location_id, quantity.value, Decimal::ZERO)],
        MovementKind::Count {
            location_id,
            counted,
            expected,
            ..
        } => {
            let variance = counted
                .value
                .checked_sub(expected.value)
                .ok_or_else(overflow)?;
            vec![leg(location_id, variance, Decimal::ZERO)]
        }
        MovementKind::Transfer {
            from_location_id,
            to_location_id,
            quantity,
            ..
        } => vec![
            leg(from_location_id, neg(quantity.value)?, Decimal::ZERO),
            leg(to_location_id, quantity.value, Decimal::ZERO),
        ],
        MovementKind::Allocation {
            location_id,
            quantity,
            ..
        } => {
            rules::allocation_within_available(&level(location_id), quantity.value, product_uom)?;
            vec![leg(location_id, Decimal::ZERO, quantity.value)]
        }
        MovementKind::Release {
            location_id,
            quantity,
            ..
        } => vec![leg(location_id, Decimal::ZERO, neg(quantity.value)?)],
    };
    for l in &legs {
        let current = level(&l.location_id);
        rules::no_negative_inventory(&current, l.on_hand_delta, product_uom)?;
        if current.on_hand.checked_add(l.on_hand_delta).is_none() {
            return Err(overflow().into());
        }
    }
    Ok(legs)
}

fn overflow() -> ValidationErrors {
    ValidationErrors::single("quantity.value", "Is too large")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{ALLOCATION_WITHIN_AVAILABLE, NO_NEGATIVE_INVENTORY, UOM_MUST_MATCH};

    fn q(s: &str) -> Quantity {
        Quantity::new(s.parse().unwrap(), Uom::Each)
    }

    fn level(on_hand: &str, allocated: &str) -> StockLevel {
        StockLevel::new(
            on_hand.parse().unwrap(),
            Decimal::ZERO,
            allocated.parse().unwrap(),
        )
    }

    fn shipment(qty: &str) -> Movement {
        Movement {
            product_id: ProductId::new(),
            kind: MovementKind::Shipment {
                transaction_id: TransactionId::new(),
                location_id: LocationId::new(),
                quantity: q(qty),
                reference: None,
            },
        }
    }

    #[test]
    fn shipment_beyond_on_hand_breaks_no_negative_inventory() {
        let err = plan(&shipment("6"), Uom::Each, |_| level("5", "0")).unwrap_err();
        assert!(matches!(err, Refusal::Rule(v) if v.rule == NO_NEGATIVE_INVENTORY));
        let legs = plan(&shipment("5"), Uom::Each, |_| level("5", "0")).unwrap();
        assert_eq!(legs[0].on_hand_delta, "-5".parse().unwrap());
    }

    #[test]
    fn validation_comes_before_rules_and_names_fields() {
        let err = plan(&shipment("0"), Uom::Each, |_| level("0", "0")).unwrap_err();
        let Refusal::Invalid(errors) = err else {
            panic!("{err:?}")
        };
        assert!(errors.0.contains_key("quantity.value"));
        let err = plan(&shipment("1.5"), Uom::Each, |_| level("9", "0")).unwrap_err();
        assert!(matches!(err, Refusal::Invalid(_)));
    }

    #[test]
    fn unit_must_be_the_products() {
        let err = plan(&shipment("1"), Uom::Kg, |_| level("9", "0")).unwrap_err();
        assert!(matches!(err, Refusal::Rule(v) if v.rule == UOM_MUST_MATCH));
    }

    #[test]
    fn count_posts_the_variance() {
        let m = Movement {
            product_id: ProductId::new(),
            kind: MovementKind::Count {
                transaction_id: TransactionId::new(),
                location_id: LocationId::new(),
                counted: q("7"),
                expected: q("10"),
            },
        };
        let legs = plan(&m, Uom::Each, |_| level("10", "0")).unwrap();
        assert_eq!(legs[0].on_hand_delta, "-3".parse().unwrap());
    }

    #[test]
    fn transfer_is_two_legs_and_checks_the_source() {
        let (from, to) = (LocationId::new(), LocationId::new());
        let m = Movement {
            product_id: ProductId::new(),
            kind: MovementKind::Transfer {
                transfer_id: TransferId::new(),
                from_location_id: from.clone(),
                to_location_id: to.clone(),
                quantity: q("4"),
            },
        };
        let stock = |l: &LocationId| {
            if *l == from {
                level("4", "0")
            } else {
                level("0", "0")
            }
        };
        let legs = plan(&m, Uom::Each, stock).unwrap();
        assert_eq!(legs.len(), 2);
        assert_eq!(legs[0].location_id, from);
        assert_eq!(legs[1].on_hand_delta, "4".parse().unwrap());
        let empty = |_: &LocationId| level("3", "0");
        assert!(matches!(
            plan(&m, Uom::Each, empty),
            Err(Refusal::Rule(v)) if v.rule == NO_NEGATIVE_INVENTORY
        ));
    }

    #[test]
    fn allocation_needs_available_stock() {
        let m = Movement {
            product_id: ProductId::new(),
            kind: MovementKind::Allocation {
                allocation_id: AllocationId::new(),
                location_id: LocationId::new(),
                quantity: q("3"),
            },
        };
        assert!(plan(&m, Uom::Each, |_| level("10", "7")).is_ok());
        assert!(matches!(
            plan(&m, Uom::Each, |_| level("10", "8")),
            Err(Refusal::Rule(v)) if v.rule == ALLOCATION_WITHIN_AVAILABLE
        ));
    }
}

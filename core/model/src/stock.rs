//! Stock levels and the ledger fold that produces them.

use crate::decimal::Decimal;
use crate::ids::{LocationId, OpId, ProductId};
use crate::movement::Leg;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};

/// Stock of one product at one location, as a device sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockLevel {
    /// Confirmed by the hub.
    pub synced_on_hand: Decimal,
    /// Local movements the hub has not confirmed yet.
    pub pending: Decimal,
    /// What the device believes is there now: `synced_on_hand + pending`.
    pub on_hand: Decimal,
    /// Promised to orders.
    pub allocated: Decimal,
    /// Free to promise: `on_hand − allocated`.
    pub available: Decimal,
}

impl StockLevel {
    /// A level from its stored parts; the rest is derived (saturating, never panicking).
    pub fn new(synced_on_hand: Decimal, pending: Decimal, allocated: Decimal) -> Self {
        let on_hand = synced_on_hand
            .checked_add(pending)
            .unwrap_or(Decimal::from_scaled(i64::MAX));
        let available = on_hand
            .checked_sub(allocated)
            .unwrap_or(Decimal::from_scaled(i64::MIN));
        StockLevel {
            synced_on_hand,
            pending,
            on_hand,
            allocated,
            available,
        }
    }
}

/// The ledger folded into levels: movements merge by addition, so any order of the same set of
/// movements gives the same book, and an op seen twice counts once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StockBook {
    levels: BTreeMap<(ProductId, LocationId), (Decimal, Decimal)>,
    seen: HashSet<OpId>,
}

impl StockBook {
    /// An empty book.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an op's legs. Returns `false` (and changes nothing) for an op already applied.
    /// Overflow saturates; quantities that large are refused long before by validation.
    pub fn apply(&mut self, op_id: &OpId, legs: &[Leg]) -> bool {
        if !self.seen.insert(op_id.clone()) {
            return false;
        }
        for leg in legs {
            let entry = self
                .levels
                .entry((leg.product_id.clone(), leg.location_id.clone()))
                .or_default();
            entry.0 = saturating_add(entry.0, leg.on_hand_delta);
            entry.1 = saturating_add(entry.1, leg.allocated_delta);
        }
        true
    }

    /// On hand and allocated of one product at one location.
    pub fn level(&self, product: &ProductId, location: &LocationId) -> (Decimal, Decimal) {
        self.levels
            .get(&(product.clone(), location.clone()))
            .copied()
            .unwrap_or_default()
    }

    /// Every (product, location) → (on hand, allocated), in a stable order.
    pub fn levels(&self) -> &BTreeMap<(ProductId, LocationId), (Decimal, Decimal)> {
        &self.levels
    }
}

fn saturating_add(a: Decimal, b: Decimal) -> Decimal {
    Decimal::from_scaled(a.scaled().saturating_add(b.scaled()))
}

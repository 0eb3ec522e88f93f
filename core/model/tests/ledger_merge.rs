//! The ledger merges by addition: the same set of movements, applied in any order and with any
//! op delivered more than once, gives the same stock.

use proptest::prelude::*;
use stocksync_model::{Decimal, Leg, LocationId, OpId, ProductId, StockBook};

fn op_strategy(products: Vec<ProductId>, locations: Vec<LocationId>) -> impl Strategy<Value = Op> {
    // One or two legs (a transfer), deltas of ±10_000.0000 with four places.
    let leg = (
        0..products.len(),
        0..locations.len(),
        -100_000_000i64..100_000_000,
        -1_000i64..1_000,
    );
    prop::collection::vec(leg, 1..=2).prop_map(move |legs| {
        let legs = legs
            .into_iter()
            .map(|(p, l, on_hand, allocated)| Leg {
                product_id: products[p].clone(),
                location_id: locations[l].clone(),
                on_hand_delta: Decimal::from_scaled(on_hand),
                allocated_delta: Decimal::from_scaled(allocated),
            })
            .collect();
        (OpId::new(), legs)
    })
}

/// An op: its id and its legs.
type Op = (OpId, Vec<Leg>);

/// The ops, the indexes delivered a second time, and a shuffled delivery order.
fn scenario() -> impl Strategy<Value = (Vec<Op>, Vec<usize>, Vec<usize>)> {
    let products: Vec<_> = (0..3).map(|_| ProductId::new()).collect();
    let locations: Vec<_> = (0..3).map(|_| LocationId::new()).collect();
    prop::collection::vec(op_strategy(products, locations), 1..40).prop_flat_map(|ops| {
        let n = ops.len();
        // A delivery order: every op at least once, some twice, shuffled.
        let redelivered = prop::collection::vec(0..n, 0..n);
        (
            Just(ops),
            redelivered,
            Just((0..n).collect::<Vec<_>>()).prop_shuffle(),
        )
    })
}

proptest! {
    #[test]
    fn any_order_any_duplication_same_stock((ops, redelivered, order) in scenario()) {
        let mut in_order = StockBook::new();
        for (op_id, legs) in &ops {
            prop_assert!(in_order.apply(op_id, legs));
        }

        let mut delivery: Vec<usize> = order.clone();
        delivery.extend(&redelivered);
        // Interleave the duplicates instead of leaving them at the end.
        delivery.rotate_left(redelivered.len() / 2);
        let mut shuffled = StockBook::new();
        let mut applied = 0;
        for i in delivery {
            let (op_id, legs) = &ops[i];
            if shuffled.apply(op_id, legs) {
                applied += 1;
            }
        }

        prop_assert_eq!(applied, ops.len(), "each op counts exactly once");
        prop_assert_eq!(in_order.levels(), shuffled.levels());

        // And the book is the plain sum of the legs.
        for ((product, location), (on_hand, allocated)) in in_order.levels() {
            let expected: i64 = ops.iter().flat_map(|(_, legs)| legs)
                .filter(|l| &l.product_id == product && &l.location_id == location)
                .map(|l| l.on_hand_delta.scaled()).sum();
            prop_assert_eq!(on_hand.scaled(), expected);
            let expected_alloc: i64 = ops.iter().flat_map(|(_, legs)| legs)
                .filter(|l| &l.product_id == product && &l.location_id == location)
                .map(|l| l.allocated_delta.scaled()).sum();
            prop_assert_eq!(allocated.scaled(), expected_alloc);
        }
    }

    #[test]
    fn decimal_text_round_trips(scaled in any::<i64>().prop_filter("negatable", |v| *v != i64::MIN)) {
        let d = Decimal::from_scaled(scaled);
        prop_assert_eq!(d.to_string().parse::<Decimal>(), Ok(d));
    }
}

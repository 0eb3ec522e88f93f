//! Domain of stocksync: ids, exact quantities and money, products, locations, movements, the
//! stock ledger, business rules, the hybrid logical clock and the automerge product documents.
//!
//! Pure: nothing here touches a file, a socket or the system clock except where an id or a
//! timestamp is minted on request ([`ids`], [`hlc::Clock::now`] takes the wall time as an argument).
//! The node and the hub call the same functions, so a rule fixed here is fixed everywhere.

pub mod decimal;
pub mod hlc;
pub mod ids;
pub mod location;
pub mod movement;
pub mod product;
pub mod product_doc;
pub mod quantity;
pub mod rules;
pub mod stock;
pub mod validation;

pub use decimal::Decimal;
pub use hlc::{Clock, HlcTimestamp};
pub use ids::*;
pub use location::{Location, NewLocation};
pub use movement::{Leg, Movement, MovementKind, ReasonCode, Refusal, plan};
pub use product::{NewProduct, Product, ProductPatch, ProductStatus};
pub use product_doc::{FieldConflict, FieldPolicy, ProductChange, ProductDoc, ProductFields};
pub use quantity::{Currency, Money, Quantity, Uom};
pub use rules::RuleViolation;
pub use stock::{StockBook, StockLevel};
pub use validation::ValidationErrors;

//! Conversions between model values and SQLite columns.

use crate::StoreError;
use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::Row;
use stocksync_model::{
    Decimal, Location, LocationId, Money, Movement, MovementKind, Product, ProductId,
};
use stocksync_protocol::ops::TransactionType;
use stocksync_protocol::{AllocationBody, OpBody, ReleaseBody, TransactionBody, TransferBody};

/// The current time at the precision it is stored with (milliseconds), so what a write returns
/// equals what a later read gives.
pub(crate) fn now() -> DateTime<Utc> {
    let t = Utc::now();
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

/// RFC 3339 UTC with milliseconds, the form every stored time takes.
pub(crate) fn time_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub(crate) fn parse_time(text: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt(format!("time `{text}`: {e}")))
}

/// Parses a stored column with `FromStr`, reporting unreadable data as corruption.
pub(crate) fn parse_col<T: std::str::FromStr>(what: &str, text: &str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    text.parse()
        .map_err(|e| StoreError::Corrupt(format!("{what} `{text}`: {e}")))
}

pub(crate) fn dec(scaled: i64) -> Decimal {
    Decimal::from_scaled(scaled)
}

pub(crate) const PRODUCT_COLUMNS: &str = "id, sku, barcode, name, description, category, status, \
     uom, price_amount, price_currency, version, created_at, updated_at";

/// A product from a row selected with [`PRODUCT_COLUMNS`].
pub(crate) fn product_from_row(row: &Row<'_>) -> Result<Product, StoreError> {
    let price_amount: Option<i64> = row.get(8)?;
    let price_currency: Option<String> = row.get(9)?;
    let price = match (price_amount, price_currency) {
        (Some(amount), Some(currency)) => Some(Money {
            amount: dec(amount),
            currency: parse_col("currency", &currency)?,
        }),
        _ => None,
    };
    let version: i64 = row.get(10)?;
    Ok(Product {
        id: parse_col("product id", &row.get::<_, String>(0)?)?,
        sku: row.get(1)?,
        barcode: row.get(2)?,
        name: row.get(3)?,
        description: row.get(4)?,
        category: row.get(5)?,
        status: parse_col("status", &row.get::<_, String>(6)?)?,
        uom: parse_col("uom", &row.get::<_, String>(7)?)?,
        price,
        version: u64::try_from(version).unwrap_or(0),
        created_at: parse_time(&row.get::<_, String>(11)?)?,
        updated_at: parse_time(&row.get::<_, String>(12)?)?,
    })
}

pub(crate) fn location_from_row(row: &Row<'_>) -> Result<Location, StoreError> {
    Ok(Location {
        id: parse_col::<LocationId>("location id", &row.get::<_, String>(0)?)?,
        code: row.get(1)?,
        name: row.get(2)?,
        created_at: parse_time(&row.get::<_, String>(3)?)?,
    })
}

/// The op a movement is pushed as.
pub(crate) fn movement_op(m: &Movement) -> OpBody {
    let product_id: ProductId = m.product_id.clone();
    let transaction = |transaction_id: &stocksync_model::TransactionId,
                       transaction_type,
                       location_id: &LocationId,
                       quantity| TransactionBody {
        transaction_id: transaction_id.clone(),
        transaction_type,
        product_id: product_id.clone(),
        location_id: location_id.clone(),
        quantity,
        reason_code: None,
        counted: None,
        expected: None,
        unit_cost: None,
        reference: None,
    };
    match &m.kind {
        MovementKind::Receipt {
            transaction_id,
            location_id,
            quantity,
            unit_cost,
            reference,
        } => OpBody::Transaction(TransactionBody {
            unit_cost: *unit_cost,
            reference: reference.clone(),
            ..transaction(
                transaction_id,
                TransactionType::Receipt,
                location_id,
                *quantity,
            )
        }),
        MovementKind::Shipment {
            transaction_id,
            location_id,
            quantity,
            reference,
        } => OpBody::Transaction(TransactionBody {
            reference: reference.clone(),
            ..transaction(
                transaction_id,
                TransactionType::Shipment,
                location_id,
                *quantity,
            )
        }),
        MovementKind::Adjustment {
            transaction_id,
            location_id,
            quantity,
            reason_code,
        } => OpBody::Transaction(TransactionBody {
            reason_code: Some(*reason_code),
            ..transaction(
                transaction_id,
                TransactionType::Adjustment,
                location_id,
                *quantity,
            )
        }),
        MovementKind::Count {
            transaction_id,
            location_id,
            counted,
            expected,
        } => OpBody::Transaction(TransactionBody {
            counted: Some(*counted),
            expected: Some(*expected),
            ..transaction(
                transaction_id,
                TransactionType::Count,
                location_id,
                *counted,
            )
        }),
        MovementKind::Transfer {
            transfer_id,
            from_location_id,
            to_location_id,
            quantity,
        } => OpBody::Transfer(TransferBody {
            transfer_id: transfer_id.clone(),
            product_id,
            from_location_id: from_location_id.clone(),
            to_location_id: to_location_id.clone(),
            quantity: *quantity,
        }),
        MovementKind::Allocation {
            allocation_id,
            location_id,
            quantity,
        } => OpBody::Allocation(AllocationBody {
            allocation_id: allocation_id.clone(),
            product_id,
            location_id: location_id.clone(),
            quantity: *quantity,
        }),
        MovementKind::Release {
            allocation_id,
            quantity,
            ..
        } => OpBody::AllocationRelease(ReleaseBody {
            allocation_id: allocation_id.clone(),
            quantity: *quantity,
        }),
    }
}

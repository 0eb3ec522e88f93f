//! Quantities with a unit of measure, and money with an ISO 4217 currency.

use crate::decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Unit of measure. Counted units (`EACH`) take whole numbers; measured ones take decimals.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Uom {
    /// Counted pieces: whole numbers only.
    Each,
    /// Kilograms.
    Kg,
    /// Metres.
    M,
    /// Litres.
    L,
}

impl Uom {
    /// All units, in display order.
    pub const ALL: [Uom; 4] = [Uom::Each, Uom::Kg, Uom::M, Uom::L];

    /// The wire name (`EACH`, `KG`, `M`, `L`).
    pub fn as_str(self) -> &'static str {
        match self {
            Uom::Each => "EACH",
            Uom::Kg => "KG",
            Uom::M => "M",
            Uom::L => "L",
        }
    }

    /// True for counted units, which take whole numbers only.
    pub fn is_counted(self) -> bool {
        matches!(self, Uom::Each)
    }
}

impl fmt::Display for Uom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Uom {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Uom::ALL
            .into_iter()
            .find(|u| u.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown unit `{s}` (expected EACH, KG, M or L)"))
    }
}

/// An amount of stock in a unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quantity {
    /// How much.
    pub value: Decimal,
    /// Of what unit.
    pub uom: Uom,
}

impl Quantity {
    /// A quantity.
    pub fn new(value: Decimal, uom: Uom) -> Self {
        Quantity { value, uom }
    }

    /// Problems with the value for its unit (whole numbers for counted units).
    pub fn unit_problem(&self) -> Option<String> {
        (self.uom.is_counted() && !self.value.is_whole())
            .then(|| format!("Must be a whole number for {}", self.uom))
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.value, self.uom)
    }
}

/// An ISO 4217 currency code: three upper-case letters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Currency([u8; 3]);

impl Currency {
    /// The code as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII upper-case letters are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

impl FromStr for Currency {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let upper = s.trim().to_ascii_uppercase();
        match upper.as_bytes() {
            [a, b, c] if [a, b, c].iter().all(|x| x.is_ascii_uppercase()) => {
                Ok(Currency([*a, *b, *c]))
            }
            _ => Err(format!(
                "`{s}` is not an ISO 4217 currency code (three letters, e.g. EUR)"
            )),
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// An amount of money.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Money {
    /// How much.
    pub amount: Decimal,
    /// In which currency.
    pub currency: Currency,
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.currency)
    }
}

/// `"19.99 EUR"`, the form a price takes inside a product document.
impl FromStr for Money {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (amount, currency) = s
            .trim()
            .split_once(' ')
            .ok_or_else(|| format!("`{s}` is not an amount and a currency"))?;
        Ok(Money {
            amount: amount.parse().map_err(|e| format!("{e}"))?,
            currency: currency.parse()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_units_take_whole_numbers() {
        let half: Decimal = "0.5".parse().unwrap();
        assert!(Quantity::new(half, Uom::Each).unit_problem().is_some());
        assert!(Quantity::new(half, Uom::Kg).unit_problem().is_none());
        assert_eq!("kg".parse::<Uom>(), Ok(Uom::Kg));
        assert!("box".parse::<Uom>().is_err());
    }

    #[test]
    fn money_round_trips_through_text_and_json() {
        let m: Money = "19.99 eur".parse().unwrap();
        assert_eq!(m.to_string(), "19.99 EUR");
        assert_eq!(m.to_string().parse::<Money>().unwrap(), m);
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, r#"{"amount":"19.99","currency":"EUR"}"#);
        assert!("19.99 EURO".parse::<Money>().is_err());
        assert!("12 E1R".parse::<Money>().is_err());
    }
}

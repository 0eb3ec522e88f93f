//! Product documents: each product's fields live in an automerge document, so edits made on
//! different devices merge field by field and concurrent edits of one field stay visible.
//!
//! Every field is a scalar string at the document root (the price as `"19.99 EUR"`), so a field
//! is the unit of merge: two devices changing `name` and `price` both win; two devices changing
//! `price` leave two values that [`ProductDoc::conflicts`] reports, to be settled by the field's
//! [`FieldPolicy`].

use crate::ids::DeviceId;
use crate::product::{NewProduct, ProductPatch, ProductStatus};
use crate::quantity::{Money, Uom};
use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, Change, ROOT, ReadDoc, ScalarValue, Value};
use serde::{Deserialize, Serialize};

/// The mergeable fields of a product.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductFields {
    /// Stock keeping unit.
    pub sku: String,
    /// Scannable code.
    pub barcode: Option<String>,
    /// Readable name.
    pub name: String,
    /// Longer text.
    pub description: Option<String>,
    /// Category.
    pub category: Option<String>,
    /// Whether it is sold.
    pub status: ProductStatus,
    /// Unit of measure.
    pub uom: Uom,
    /// Selling price.
    pub price: Option<Money>,
}

impl From<&NewProduct> for ProductFields {
    fn from(p: &NewProduct) -> Self {
        ProductFields {
            sku: p.sku.clone(),
            barcode: p.barcode.clone(),
            name: p.name.clone(),
            description: p.description.clone(),
            category: p.category.clone(),
            status: ProductStatus::Active,
            uom: p.uom,
            price: p.price,
        }
    }
}

/// The fields as a creation request (status aside), so they can be checked like one.
impl From<&ProductFields> for NewProduct {
    fn from(f: &ProductFields) -> Self {
        NewProduct {
            sku: f.sku.clone(),
            name: f.name.clone(),
            barcode: f.barcode.clone(),
            description: f.description.clone(),
            category: f.category.clone(),
            uom: f.uom,
            price: f.price,
        }
    }
}

impl ProductFields {
    /// Each field as the text the document keeps (`None` = absent).
    fn entries(&self) -> [(&'static str, Option<String>); 8] {
        [
            ("sku", Some(self.sku.clone())),
            ("barcode", self.barcode.clone()),
            ("name", Some(self.name.clone())),
            ("description", self.description.clone()),
            ("category", self.category.clone()),
            ("status", Some(self.status.to_string())),
            ("uom", Some(self.uom.to_string())),
            ("price", self.price.map(|p| p.to_string())),
        ]
    }

    /// These fields with a patch applied.
    pub fn patched(&self, patch: &ProductPatch) -> ProductFields {
        let mut f = self.clone();
        if let Some(v) = &patch.sku {
            f.sku = v.clone();
        }
        if let Some(v) = &patch.name {
            f.name = v.clone();
        }
        if let Some(v) = &patch.barcode {
            f.barcode = v.clone();
        }
        if let Some(v) = &patch.description {
            f.description = v.clone();
        }
        if let Some(v) = &patch.category {
            f.category = v.clone();
        }
        if let Some(v) = patch.status {
            f.status = v;
        }
        if let Some(v) = patch.price {
            f.price = v;
        }
        f
    }
}

/// How concurrent edits of one field are settled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldPolicy {
    /// A person decides: a conflict record keeps both values.
    Manual,
    /// The edit with the later hybrid logical timestamp wins.
    LastWriteWins,
}

impl FieldPolicy {
    /// The contract's default: `manual` for price, sku, barcode and uom; last-write-wins for the rest.
    pub fn default_for(field: &str) -> FieldPolicy {
        match field {
            "price" | "sku" | "barcode" | "uom" => FieldPolicy::Manual,
            _ => FieldPolicy::LastWriteWins,
        }
    }
}

/// A field with more than one concurrent value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldConflict {
    /// The field.
    pub field: String,
    /// Every concurrent value (`None` = cleared), the one automerge shows first.
    pub values: Vec<Option<String>>,
    /// How it is to be settled.
    pub policy: FieldPolicy,
}

/// One local edit, ready to push as a `product_change` op: exactly one automerge change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProductChange {
    /// The fields it touches.
    pub fields: Vec<String>,
    /// The bytes of the automerge change.
    pub changes: Vec<u8>,
}

/// A product document failed to load or has unreadable fields.
#[derive(Debug, thiserror::Error)]
pub enum DocError {
    /// Automerge refused the bytes or an operation.
    #[error("product document: {0}")]
    Automerge(#[from] automerge::AutomergeError),
    /// A field holds something this version does not understand.
    #[error("product document field `{field}`: {message}")]
    Field {
        /// Which field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// A product's automerge document.
#[derive(Debug, Clone)]
pub struct ProductDoc {
    doc: AutoCommit,
}

/// The automerge actor of a device: the bytes of its id, so every change names its device.
pub fn actor_of(device: &DeviceId) -> ActorId {
    ActorId::from(device.as_str().as_bytes())
}

impl ProductDoc {
    /// A new document holding `fields`, made by `device`.
    pub fn create(device: &DeviceId, fields: &ProductFields) -> Result<Self, DocError> {
        let mut doc = AutoCommit::new().with_actor(actor_of(device));
        for (key, value) in fields.entries() {
            if let Some(v) = value {
                doc.put(ROOT, key, v)?;
            }
        }
        doc.commit();
        Ok(ProductDoc { doc })
    }

    /// A document from its saved bytes.
    pub fn load(bytes: &[u8]) -> Result<Self, DocError> {
        Ok(ProductDoc {
            doc: AutoCommit::load(bytes)?,
        })
    }

    /// The whole document as bytes.
    pub fn save(&mut self) -> Vec<u8> {
        self.doc.save()
    }

    /// Applies `patch` as one change by `device`. Fields whose value would not change are left
    /// out, so an edit never creates a false conflict. `None` when nothing changes.
    pub fn edit(
        &mut self,
        device: &DeviceId,
        patch: &ProductPatch,
    ) -> Result<Option<ProductChange>, DocError> {
        let before = self.fields()?;
        let after = before.patched(patch);
        self.doc.set_actor(actor_of(device));
        let mut touched = Vec::new();
        for ((key, old), (_, new)) in before.entries().into_iter().zip(after.entries()) {
            if old == new {
                continue;
            }
            match new {
                Some(v) => self.doc.put(ROOT, key, v)?,
                None => self.doc.delete(ROOT, key)?,
            }
            touched.push(key.to_owned());
        }
        if touched.is_empty() {
            return Ok(None);
        }
        self.doc.commit();
        let change = self.doc.get_last_local_change().ok_or(DocError::Field {
            field: "changes",
            message: "the edit left no change".into(),
        })?;
        Ok(Some(ProductChange {
            fields: touched,
            changes: change.raw_bytes().to_vec(),
        }))
    }

    /// Applies one change made elsewhere (the bytes of a `product_change` op body). The bytes
    /// are parsed strictly: anything but exactly one valid change is an error.
    pub fn apply_changes(&mut self, changes: &[u8]) -> Result<(), DocError> {
        let change = Change::try_from(changes).map_err(|e| DocError::Field {
            field: "changes",
            message: e.to_string(),
        })?;
        self.doc.apply_changes([change])?;
        Ok(())
    }

    /// Merges another copy of the same product's document into this one.
    pub fn merge(&mut self, other: &mut ProductDoc) -> Result<(), DocError> {
        self.doc.merge(&mut other.doc)?;
        Ok(())
    }

    /// The fields as they read now (for a conflicting field, automerge's pick).
    pub fn fields(&self) -> Result<ProductFields, DocError> {
        let required = |key: &'static str| {
            self.text(key)?.ok_or(DocError::Field {
                field: key,
                message: "missing".into(),
            })
        };
        let parsed = |key: &'static str, text: String| DocError::Field {
            field: key,
            message: format!("cannot read `{text}`"),
        };
        let status = required("status")?;
        let uom = required("uom")?;
        Ok(ProductFields {
            sku: required("sku")?,
            barcode: self.text("barcode")?,
            name: required("name")?,
            description: self.text("description")?,
            category: self.text("category")?,
            status: status.parse().map_err(|_| parsed("status", status))?,
            uom: uom.parse().map_err(|_| parsed("uom", uom))?,
            price: match self.text("price")? {
                Some(p) => Some(p.parse().map_err(|_| parsed("price", p))?),
                None => None,
            },
        })
    }

    /// Every concurrent value of one field (`None` = cleared); one value when not in conflict.
    pub fn field_values(&self, field: &str) -> Result<Vec<Option<String>>, DocError> {
        let key = field_key(field)?;
        Ok(self
            .doc
            .get_all(ROOT, key)?
            .iter()
            .map(|(v, _)| as_text(v))
            .collect())
    }

    /// Settles a field to `value` (`None` clears an optional field) as one change by `device`,
    /// superseding every concurrent value. Returns the change.
    pub fn settle(
        &mut self,
        device: &DeviceId,
        field: &str,
        value: Option<&str>,
    ) -> Result<ProductChange, DocError> {
        let key = field_key(field)?;
        self.doc.set_actor(actor_of(device));
        match value {
            Some(v) => self.doc.put(ROOT, key, v)?,
            None => self.doc.delete(ROOT, key)?,
        }
        self.doc.commit();
        // The settled value must still read as a valid product (e.g. a price that parses).
        self.fields()?;
        let change = self.doc.get_last_local_change().ok_or(DocError::Field {
            field: key,
            message: "the settlement left no change".into(),
        })?;
        Ok(ProductChange {
            fields: vec![key.to_owned()],
            changes: change.raw_bytes().to_vec(),
        })
    }

    /// Fields edited concurrently and not yet settled.
    pub fn conflicts(&self) -> Result<Vec<FieldConflict>, DocError> {
        let mut out = Vec::new();
        for key in FIELDS {
            let values = self.doc.get_all(ROOT, key)?;
            if values.len() > 1 {
                out.push(FieldConflict {
                    field: key.to_owned(),
                    values: values.iter().map(|(v, _)| as_text(v)).collect(),
                    policy: FieldPolicy::default_for(key),
                });
            }
        }
        Ok(out)
    }

    fn text(&self, key: &'static str) -> Result<Option<String>, DocError> {
        Ok(self.doc.get(ROOT, key)?.and_then(|(v, _)| as_text(&v)))
    }
}

/// The fields a product document holds.
pub const FIELDS: [&str; 8] = [
    "sku",
    "barcode",
    "name",
    "description",
    "category",
    "status",
    "uom",
    "price",
];

fn field_key(field: &str) -> Result<&'static str, DocError> {
    FIELDS
        .into_iter()
        .find(|f| *f == field)
        .ok_or(DocError::Field {
            field: "field",
            message: format!("`{field}` is not a product field"),
        })
}

fn as_text(value: &Value<'_>) -> Option<String> {
    match value {
        Value::Scalar(s) => match s.as_ref() {
            ScalarValue::Str(s) => Some(s.to_string()),
            _ => None,
        },
        Value::Object(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> ProductFields {
        ProductFields::from(&NewProduct {
            sku: "SKU-1".into(),
            name: "Widget".into(),
            barcode: Some("4006381333931".into()),
            description: None,
            category: Some("tools".into()),
            uom: Uom::Each,
            price: Some("9.99 EUR".parse().unwrap()),
        })
    }

    fn price(text: &str) -> ProductPatch {
        ProductPatch {
            price: Some(Some(text.parse().unwrap())),
            ..Default::default()
        }
    }

    #[test]
    fn save_load_round_trip_keeps_fields() {
        let dev = DeviceId::new();
        let mut doc = ProductDoc::create(&dev, &fields()).unwrap();
        let loaded = ProductDoc::load(&doc.save()).unwrap();
        assert_eq!(loaded.fields().unwrap(), fields());
    }

    #[test]
    fn concurrent_edits_of_different_fields_both_apply() {
        let (a, b) = (DeviceId::new(), DeviceId::new());
        let mut base = ProductDoc::create(&a, &fields()).unwrap();
        let mut on_b = ProductDoc::load(&base.save()).unwrap();
        let rename = ProductPatch {
            name: Some("Widget Pro".into()),
            ..Default::default()
        };
        let change_a = base.edit(&a, &rename).unwrap().unwrap();
        let change_b = on_b.edit(&b, &price("12.50 EUR")).unwrap().unwrap();
        assert_eq!(change_a.fields, ["name"]);
        assert_eq!(change_b.fields, ["price"]);

        // Exchange only the change bytes, as the op bodies will.
        base.apply_changes(&change_b.changes).unwrap();
        on_b.apply_changes(&change_a.changes).unwrap();
        for doc in [&base, &on_b] {
            let f = doc.fields().unwrap();
            assert_eq!(f.name, "Widget Pro");
            assert_eq!(f.price, Some("12.50 EUR".parse().unwrap()));
            assert!(doc.conflicts().unwrap().is_empty());
        }
    }

    #[test]
    fn concurrent_edits_of_one_field_are_detected_with_both_values() {
        let (a, b) = (DeviceId::new(), DeviceId::new());
        let mut on_a = ProductDoc::create(&a, &fields()).unwrap();
        let mut on_b = ProductDoc::load(&on_a.save()).unwrap();
        on_a.edit(&a, &price("11 EUR")).unwrap();
        on_b.edit(&b, &price("12 EUR")).unwrap();
        on_a.merge(&mut on_b).unwrap();
        let conflicts = on_a.conflicts().unwrap();
        assert_eq!(conflicts.len(), 1);
        assert_eq!(conflicts[0].field, "price");
        assert_eq!(conflicts[0].policy, FieldPolicy::Manual);
        let mut values: Vec<_> = conflicts[0].values.iter().flatten().cloned().collect();
        values.sort();
        assert_eq!(values, ["11 EUR", "12 EUR"]);

        // A later edit that saw both settles it.
        on_a.edit(&a, &price("11.50 EUR")).unwrap();
        assert!(on_a.conflicts().unwrap().is_empty());
    }

    #[test]
    fn an_edit_that_changes_nothing_makes_no_change() {
        let dev = DeviceId::new();
        let mut doc = ProductDoc::create(&dev, &fields()).unwrap();
        assert!(doc.edit(&dev, &price("9.99 EUR")).unwrap().is_none());
    }

    #[test]
    fn garbage_bytes_are_an_error_not_a_panic() {
        assert!(ProductDoc::load(b"not an automerge document").is_err());
        let dev = DeviceId::new();
        let mut doc = ProductDoc::create(&dev, &fields()).unwrap();
        assert!(doc.apply_changes(b"\x85\x6f\x4a\x83garbage").is_err());
    }
}

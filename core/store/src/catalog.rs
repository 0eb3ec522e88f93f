//! Locations and products: add, edit, find, list. Each write also appends its op.

use crate::codec::{PRODUCT_COLUMNS, location_from_row, now, product_from_row, time_text};
use crate::device::append_op;
use crate::{Store, StoreError};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use stocksync_model::product_doc::ProductFields;
use stocksync_model::{
    DeviceId, Location, LocationId, NewLocation, NewProduct, Product, ProductDoc, ProductId,
    ProductPatch, ValidationErrors,
};
use stocksync_protocol::{LocationCreateBody, OpBody, ProductChangeBody, ProductCreateBody};

impl Store {
    /// Adds a location (code must be unused).
    pub fn add_location(&self, new: &NewLocation) -> Result<Location, StoreError> {
        new.validate()?;
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let taken: bool = tx
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM locations WHERE code = ?1)")?
            .query_row([&new.code], |r| r.get(0))?;
        if taken {
            return Err(
                ValidationErrors::single("code", "Is already used by another location").into(),
            );
        }
        let location = Location {
            id: LocationId::new(),
            code: new.code.clone(),
            name: new.name.clone(),
            created_at: now(),
        };
        tx.execute(
            "INSERT INTO locations (id, code, name, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![
                location.id.as_str(),
                location.code,
                location.name,
                time_text(location.created_at)
            ],
        )?;
        append_op(
            &tx,
            OpBody::LocationCreate(LocationCreateBody {
                location_id: location.id.clone(),
                code: location.code.clone(),
                name: location.name.clone(),
            }),
            location.created_at,
        )?;
        tx.commit()?;
        Ok(location)
    }

    /// Every location, by code.
    pub fn locations(&self) -> Result<Vec<Location>, StoreError> {
        let conn = self.conn()?;
        let mut stmt =
            conn.prepare_cached("SELECT id, code, name, created_at FROM locations ORDER BY code")?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(location_from_row(row)?);
        }
        Ok(out)
    }

    /// A location by its code or its id.
    pub fn location(&self, code_or_id: &str) -> Result<Location, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT id, code, name, created_at FROM locations WHERE code = ?1
             UNION ALL SELECT id, code, name, created_at FROM locations WHERE id = ?1 LIMIT 1",
        )?;
        let mut rows = stmt.query([code_or_id])?;
        match rows.next()? {
            Some(row) => location_from_row(row),
            None => Err(StoreError::NotFound {
                entity: "location",
                key: code_or_id.to_owned(),
            }),
        }
    }

    /// Adds a product with its document (SKU and barcode must be unused).
    pub fn add_product(&self, new: &NewProduct) -> Result<Product, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let device = device_id(&tx)?;
        let product = insert_product(&tx, &device, new, now())?;
        tx.commit()?;
        Ok(product)
    }

    /// Adds many products in one transaction: all of them or, on the first problem, none.
    /// Returns how many were added. The error names the failing row (0-based) in its field path.
    pub fn import_products<'a>(
        &self,
        products: impl IntoIterator<Item = &'a NewProduct>,
    ) -> Result<usize, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let device = device_id(&tx)?;
        let now = now();
        let mut count = 0;
        for (i, new) in products.into_iter().enumerate() {
            insert_product(&tx, &device, new, now).map_err(|e| match e {
                StoreError::Invalid(errors) => StoreError::Invalid(ValidationErrors(
                    errors
                        .0
                        .into_iter()
                        .map(|(field, messages)| (format!("rows[{i}].{field}"), messages))
                        .collect(),
                )),
                other => other,
            })?;
            count += 1;
        }
        tx.commit()?;
        Ok(count)
    }

    /// Edits a product's fields as one automerge change and appends the `product_change` op.
    pub fn edit_product(
        &self,
        id: &ProductId,
        patch: &ProductPatch,
    ) -> Result<Product, StoreError> {
        patch.validate()?;
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let device = device_id(&tx)?;
        let (doc_bytes, version): (Vec<u8>, i64) = tx
            .prepare_cached("SELECT doc, version FROM products WHERE id = ?1")?
            .query_row([id.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?
            .ok_or_else(|| StoreError::NotFound {
                entity: "product",
                key: id.to_string(),
            })?;
        let mut doc = ProductDoc::load(&doc_bytes)?;
        let after = doc.fields()?.patched(patch);
        check_unique(&tx, Some(id), &after.sku, after.barcode.as_deref())?;
        let Some(change) = doc.edit(&device, patch)? else {
            // Nothing differs: no change, no op.
            drop(tx);
            drop(conn);
            return self.product(id);
        };
        let now = now();
        write_fields(&tx, id, &after, &doc.save(), now)?;
        append_op(
            &tx,
            OpBody::ProductChange(ProductChangeBody {
                product_id: id.clone(),
                base_version: u64::try_from(version).unwrap_or(0),
                fields: change.fields,
                changes: BASE64.encode(&change.changes),
            }),
            now,
        )?;
        tx.commit()?;
        drop(conn);
        self.product(id)
    }

    /// A product by id.
    pub fn product(&self, id: &ProductId) -> Result<Product, StoreError> {
        self.find_product(id.as_str())?
            .ok_or_else(|| StoreError::NotFound {
                entity: "product",
                key: id.to_string(),
            })
    }

    /// The scan lookup: a product by barcode, else by SKU, else by id. Each is an index hit.
    pub fn find_product(&self, code: &str) -> Result<Option<Product>, StoreError> {
        let conn = self.conn()?;
        find(&conn, code)
    }

    /// Every product, by SKU.
    pub fn products(&self) -> Result<Vec<Product>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {PRODUCT_COLUMNS} FROM products WHERE deleted = 0 ORDER BY sku"
        ))?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(product_from_row(row)?);
        }
        Ok(out)
    }

    /// A product's document as saved (the bytes a `product_create` op carries).
    pub fn product_doc(&self, id: &ProductId) -> Result<ProductDoc, StoreError> {
        let conn = self.conn()?;
        let bytes: Vec<u8> = conn
            .prepare_cached("SELECT doc FROM products WHERE id = ?1")?
            .query_row([id.as_str()], |r| r.get(0))
            .optional()?
            .ok_or_else(|| StoreError::NotFound {
                entity: "product",
                key: id.to_string(),
            })?;
        Ok(ProductDoc::load(&bytes)?)
    }
}

pub(crate) fn find(conn: &Connection, code: &str) -> Result<Option<Product>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {PRODUCT_COLUMNS} FROM products WHERE barcode = ?1
         UNION ALL SELECT {PRODUCT_COLUMNS} FROM products WHERE sku = ?1
         UNION ALL SELECT {PRODUCT_COLUMNS} FROM products WHERE id = ?1
         LIMIT 1"
    ))?;
    let mut rows = stmt.query([code])?;
    rows.next()?.map(product_from_row).transpose()
}

fn device_id(tx: &Transaction<'_>) -> Result<DeviceId, StoreError> {
    let id: String = tx
        .prepare_cached("SELECT device_id FROM device")?
        .query_row([], |r| r.get(0))
        .optional()?
        .ok_or(StoreError::NotInitialised)?;
    crate::codec::parse_col("device id", &id)
}

fn check_unique(
    tx: &Transaction<'_>,
    except: Option<&ProductId>,
    sku: &str,
    barcode: Option<&str>,
) -> Result<(), StoreError> {
    let except = except.map(ProductId::as_str).unwrap_or("");
    let mut errors = ValidationErrors::new();
    let sku_taken: bool = tx
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM products WHERE sku = ?1 AND id != ?2)")?
        .query_row(params![sku, except], |r| r.get(0))?;
    if sku_taken {
        errors.add("sku", "Is already used by another product");
    }
    if let Some(barcode) = barcode {
        let taken: bool = tx
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM products WHERE barcode = ?1 AND id != ?2)",
            )?
            .query_row(params![barcode, except], |r| r.get(0))?;
        if taken {
            errors.add("barcode", "Is already used by another product");
        }
    }
    Ok(errors.into_result()?)
}

fn insert_product(
    tx: &Transaction<'_>,
    device: &DeviceId,
    new: &NewProduct,
    now: DateTime<Utc>,
) -> Result<Product, StoreError> {
    new.validate()?;
    check_unique(tx, None, &new.sku, new.barcode.as_deref())?;
    let id = ProductId::new();
    let fields = ProductFields::from(new);
    let mut doc = ProductDoc::create(device, &fields)?;
    let saved = doc.save();
    tx.prepare_cached(
        "INSERT INTO products (id, sku, barcode, name, description, category, status, uom,
             price_amount, price_currency, version, doc, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 0, ?11, ?12, ?12)",
    )?
    .execute(params![
        id.as_str(),
        fields.sku,
        fields.barcode,
        fields.name,
        fields.description,
        fields.category,
        fields.status.as_str(),
        fields.uom.as_str(),
        fields.price.map(|p| p.amount.scaled()),
        fields.price.map(|p| p.currency.to_string()),
        saved,
        time_text(now),
    ])?;
    append_op(
        tx,
        OpBody::ProductCreate(ProductCreateBody {
            product_id: id.clone(),
            sku: fields.sku.clone(),
            name: fields.name.clone(),
            uom: fields.uom,
            doc: BASE64.encode(&saved),
        }),
        now,
    )?;
    Ok(Product {
        id,
        sku: fields.sku,
        barcode: fields.barcode,
        name: fields.name,
        description: fields.description,
        category: fields.category,
        status: fields.status,
        uom: fields.uom,
        price: fields.price,
        version: 0,
        created_at: now,
        updated_at: now,
    })
}

fn write_fields(
    tx: &Transaction<'_>,
    id: &ProductId,
    f: &ProductFields,
    doc: &[u8],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "UPDATE products SET sku = ?2, barcode = ?3, name = ?4, description = ?5, category = ?6,
             status = ?7, uom = ?8, price_amount = ?9, price_currency = ?10, doc = ?11,
             updated_at = ?12
         WHERE id = ?1",
    )?
    .execute(params![
        id.as_str(),
        f.sku,
        f.barcode,
        f.name,
        f.description,
        f.category,
        f.status.as_str(),
        f.uom.as_str(),
        f.price.map(|p| p.amount.scaled()),
        f.price.map(|p| p.currency.to_string()),
        doc,
        time_text(now),
    ])?;
    Ok(())
}

//! The SQLite [`Tx`]: plain statements, cached.

use crate::storage::{
    AliasRow, AllocationRow, ApiKeyRecord, BranchRecord, ConflictRow, DeviceRecord,
    EnrollmentKeyRecord, FeedQuery, FeedRow, IdemRecord, LocationRow, MovementQuery, MovementRow,
    OpRow, OrgRecord, ProductQuery, ProductRow, RefreshRecord, Result, StockRow, StorageError, Tx,
};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};
use serde_json::Value;
use std::sync::MutexGuard;
use stocksync_model::Decimal;
use stocksync_protocol::checksum::StateDigest;

pub(super) struct SqliteTx<'a> {
    conn: MutexGuard<'a, Connection>,
    open: bool,
}

impl<'a> SqliteTx<'a> {
    pub(super) fn begin(conn: MutexGuard<'a, Connection>, sql: &str) -> Result<Self> {
        conn.execute_batch(sql)?;
        Ok(SqliteTx { conn, open: true })
    }
}

impl Drop for SqliteTx<'_> {
    fn drop(&mut self) {
        if self.open {
            // Nothing useful to do if the rollback itself fails: the next BEGIN will say so.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

fn scopes(s: String) -> Vec<String> {
    s.split_whitespace().map(str::to_owned).collect()
}

fn json(text: String) -> Result<Value> {
    Ok(serde_json::from_str(&text)?)
}

fn u64_of(i: i64) -> u64 {
    u64::try_from(i).unwrap_or(0)
}

fn i64_of(u: u64) -> i64 {
    i64::try_from(u).unwrap_or(i64::MAX)
}

fn product_row(r: &Row<'_>) -> rusqlite::Result<RawProduct> {
    Ok((
        r.get("id")?,
        r.get("resource")?,
        r.get("doc")?,
        r.get("field_hlcs")?,
        r.get("version")?,
        r.get::<_, Option<String>>("deleted_at")?.is_some(),
    ))
}

type RawProduct = (String, String, Vec<u8>, String, i64, bool);

fn product_of(raw: RawProduct) -> Result<ProductRow> {
    let (id, resource, doc, hlcs, version, deleted) = raw;
    Ok(ProductRow {
        id,
        resource: json(resource)?,
        doc,
        field_hlcs: json(hlcs)?,
        version: u64_of(version),
        deleted,
    })
}

/// The Product resource is rebuilt from its columns so list filters and sorts work on them.
const PRODUCT_SELECT: &str = "SELECT id, doc, field_hlcs, version, deleted_at,
    json_object('id', id, 'sku', sku, 'barcode', barcode, 'name', name,
        'description', description, 'category', category, 'status', status, 'uom', uom,
        'price', json(price), 'version', version, 'created_at', created_at,
        'updated_at', updated_at) AS resource
    FROM products";

fn location_row(r: &Row<'_>) -> rusqlite::Result<(String, String, String, String, String)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

fn location_of(raw: (String, String, String, String, String)) -> LocationRow {
    let (id, branch_id, code, name, created_at) = raw;
    LocationRow {
        resource: serde_json::json!({
            "id": id, "code": code, "name": name, "branch_id": branch_id, "created_at": created_at
        }),
        id,
        branch_id,
        code,
    }
}

fn stock_row(r: &Row<'_>) -> rusqlite::Result<StockRow> {
    Ok(StockRow {
        product_id: r.get(0)?,
        location_id: r.get(1)?,
        on_hand: Decimal::from_scaled(r.get(2)?),
        allocated: Decimal::from_scaled(r.get(3)?),
        version: u64_of(r.get(4)?),
        updated_at: r.get(5)?,
    })
}

fn feed_row(r: &Row<'_>) -> rusqlite::Result<RawFeed> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
    ))
}

type RawFeed = (String, String, i64, i64, Option<String>, bool, i64, String);

fn feed_of(raw: RawFeed) -> Result<FeedRow> {
    let (entity, entity_id, seq, created_seq, branch_id, deleted, version, data) = raw;
    // Spliced into responses as it is: it must at least be an object's text.
    if !(data.starts_with('{') && data.ends_with('}')) {
        return Err(StorageError::Corrupt(format!(
            "feed data of {entity} {entity_id} is not a JSON object"
        )));
    }
    Ok(FeedRow {
        entity,
        entity_id,
        seq: u64_of(seq),
        created_seq: u64_of(created_seq),
        branch_id,
        deleted,
        version: u64_of(version),
        data,
    })
}

const FEED_COLUMNS: &str = "entity, entity_id, seq, created_seq, branch_id, deleted, version, data";

impl Tx for SqliteTx<'_> {
    fn commit(mut self: Box<Self>) -> Result<()> {
        self.conn.execute_batch("COMMIT")?;
        self.open = false;
        Ok(())
    }

    fn savepoint(&mut self) -> Result<()> {
        self.conn.execute_batch("SAVEPOINT op")?;
        Ok(())
    }

    fn release_savepoint(&mut self) -> Result<()> {
        self.conn.execute_batch("RELEASE op")?;
        Ok(())
    }

    fn rollback_savepoint(&mut self) -> Result<()> {
        self.conn.execute_batch("ROLLBACK TO op; RELEASE op")?;
        Ok(())
    }

    fn ensure_org(&mut self, org: &OrgRecord) -> Result<()> {
        self.conn.execute(
            "INSERT OR IGNORE INTO organizations (id, name, created_at) VALUES (?1, ?2, ?3)",
            params![org.id, org.name, crate::clock::now_rfc3339()],
        )?;
        Ok(())
    }

    fn ensure_branch(&mut self, b: &BranchRecord) -> Result<()> {
        self.conn.execute(
            "INSERT OR IGNORE INTO branches (org_id, id, name) VALUES (?1, ?2, ?3)",
            params![b.org_id, b.id, b.name],
        )?;
        Ok(())
    }

    fn orgs(&self) -> Result<Vec<OrgRecord>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT id, name FROM organizations")?;
        let rows = st.query_map([], |r| {
            Ok(OrgRecord {
                id: r.get(0)?,
                name: r.get(1)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn branches(&self) -> Result<Vec<BranchRecord>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT org_id, id, name FROM branches")?;
        let rows = st.query_map([], |r| {
            Ok(BranchRecord {
                org_id: r.get(0)?,
                id: r.get(1)?,
                name: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn ensure_api_key(&mut self, k: &ApiKeyRecord) -> Result<()> {
        self.conn.execute(
            "INSERT OR IGNORE INTO api_keys (key_hash, id, org_id, branch_id, name, scopes, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                k.key_hash,
                k.id,
                k.org_id,
                k.branch_id,
                k.name,
                k.scopes.join(" "),
                crate::clock::now_rfc3339()
            ],
        )?;
        Ok(())
    }

    fn api_keys(&self) -> Result<Vec<ApiKeyRecord>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT key_hash, id, org_id, branch_id, name, scopes FROM api_keys")?;
        let rows = st.query_map([], |r| {
            Ok(ApiKeyRecord {
                key_hash: r.get(0)?,
                id: r.get(1)?,
                org_id: r.get(2)?,
                branch_id: r.get(3)?,
                name: r.get(4)?,
                scopes: scopes(r.get(5)?),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn ensure_enrollment_key(&mut self, k: &EnrollmentKeyRecord) -> Result<()> {
        self.conn.execute(
            "INSERT OR IGNORE INTO enrollment_keys (key_hash, org_id, branch_id, scopes, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                k.key_hash,
                k.org_id,
                k.branch_id,
                k.scopes.join(" "),
                crate::clock::now_rfc3339()
            ],
        )?;
        Ok(())
    }

    fn enrollment_keys(&self) -> Result<Vec<EnrollmentKeyRecord>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT key_hash, org_id, branch_id, scopes FROM enrollment_keys")?;
        let rows = st.query_map([], |r| {
            Ok(EnrollmentKeyRecord {
                key_hash: r.get(0)?,
                org_id: r.get(1)?,
                branch_id: r.get(2)?,
                scopes: scopes(r.get(3)?),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn device(&self, id: &str) -> Result<Option<DeviceRecord>> {
        let mut st = self.conn.prepare_cached(
            "SELECT id, org_id, branch_id, role, name, scopes, last_seq FROM devices WHERE id = ?1",
        )?;
        Ok(st
            .query_row([id], |r| {
                Ok(DeviceRecord {
                    id: r.get(0)?,
                    org_id: r.get(1)?,
                    branch_id: r.get(2)?,
                    role: r.get(3)?,
                    name: r.get(4)?,
                    scopes: scopes(r.get(5)?),
                    last_seq: u64_of(r.get(6)?),
                })
            })
            .optional()?)
    }

    fn put_device(&mut self, d: &DeviceRecord) -> Result<()> {
        self.conn.execute(
            "INSERT INTO devices (id, org_id, branch_id, role, name, scopes, last_seq, enrolled_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT(id) DO UPDATE SET branch_id = excluded.branch_id, role = excluded.role,
                name = excluded.name, scopes = excluded.scopes",
            params![
                d.id,
                d.org_id,
                d.branch_id,
                d.role,
                d.name,
                d.scopes.join(" "),
                i64_of(d.last_seq),
                crate::clock::now_rfc3339()
            ],
        )?;
        Ok(())
    }

    fn set_device_seq(&mut self, device_id: &str, seq: u64) -> Result<()> {
        let mut st = self
            .conn
            .prepare_cached("UPDATE devices SET last_seq = ?2 WHERE id = ?1")?;
        st.execute(params![device_id, i64_of(seq)])?;
        Ok(())
    }

    fn insert_refresh(&mut self, hash: &str, r: &RefreshRecord) -> Result<()> {
        self.conn.execute(
            "INSERT INTO refresh_tokens (token_hash, device_id, family_id, used_at, expires_at, created_at)
             VALUES (?1, ?2, ?3, NULL, ?4, ?5)",
            params![hash, r.device_id, r.family_id, r.expires_at, crate::clock::now_rfc3339()],
        )?;
        Ok(())
    }

    fn refresh(&self, hash: &str) -> Result<Option<RefreshRecord>> {
        let mut st = self.conn.prepare_cached(
            "SELECT device_id, family_id, unixepoch(used_at), expires_at FROM refresh_tokens
             WHERE token_hash = ?1",
        )?;
        Ok(st
            .query_row([hash], |r| {
                Ok(RefreshRecord {
                    device_id: r.get(0)?,
                    family_id: r.get(1)?,
                    used_at: r.get(2)?,
                    expires_at: r.get(3)?,
                })
            })
            .optional()?)
    }

    fn use_refresh(&mut self, hash: &str, at: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE refresh_tokens SET used_at = ?2 WHERE token_hash = ?1",
            params![hash, at],
        )?;
        Ok(())
    }

    fn revoke_family(&mut self, family: &str, at: &str) -> Result<()> {
        self.conn.execute(
            "INSERT OR IGNORE INTO revoked_families (family_id, revoked_at) VALUES (?1, ?2)",
            params![family, at],
        )?;
        Ok(())
    }

    fn revoked_families(&self) -> Result<Vec<String>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT family_id FROM revoked_families")?;
        let rows = st.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn idempotency(&self, org: &str, endpoint: &str, key: &str) -> Result<Option<IdemRecord>> {
        let mut st = self.conn.prepare_cached(
            "SELECT request_hash, status, response, created_at FROM idempotency
             WHERE org_id = ?1 AND endpoint = ?2 AND key = ?3",
        )?;
        let raw = st
            .query_row(params![org, endpoint, key], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, u16>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })
            .optional()?;
        raw.map(|(request_hash, status, response, created_at)| {
            Ok(IdemRecord {
                request_hash,
                status,
                response: json(response)?,
                created_at,
            })
        })
        .transpose()
    }

    fn put_idempotency(
        &mut self,
        org: &str,
        endpoint: &str,
        key: &str,
        r: &IdemRecord,
    ) -> Result<()> {
        let mut st = self.conn.prepare_cached(
            "INSERT INTO idempotency (org_id, endpoint, key, request_hash, status, response, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        st.execute(params![
            org,
            endpoint,
            key,
            r.request_hash,
            r.status,
            r.response.to_string(),
            r.created_at
        ])?;
        Ok(())
    }

    fn purge_idempotency(&mut self, before: &str) -> Result<u64> {
        let n = self
            .conn
            .execute("DELETE FROM idempotency WHERE created_at < ?1", [before])?;
        Ok(n as u64)
    }

    fn product(&self, org: &str, id: &str) -> Result<Option<ProductRow>> {
        let sql = format!("{PRODUCT_SELECT} WHERE org_id = ?1 AND id = ?2");
        let mut st = self.conn.prepare_cached(&sql)?;
        st.query_row([org, id], product_row)
            .optional()?
            .map(product_of)
            .transpose()
    }

    fn product_by_code(
        &self,
        org: &str,
        column: &'static str,
        code: &str,
    ) -> Result<Option<ProductRow>> {
        let column = if column == "barcode" {
            "barcode"
        } else {
            "sku"
        };
        let sql =
            format!("{PRODUCT_SELECT} WHERE org_id = ?1 AND {column} = ?2 AND deleted_at IS NULL");
        let mut st = self.conn.prepare_cached(&sql)?;
        st.query_row([org, code], product_row)
            .optional()?
            .map(product_of)
            .transpose()
    }

    fn put_product(&mut self, org: &str, row: &ProductRow) -> Result<()> {
        let r = &row.resource;
        let text = |k: &str| r.get(k).and_then(Value::as_str).map(str::to_owned);
        let price = match r.get("price") {
            Some(Value::Null) | None => None,
            Some(p) => Some(p.to_string()),
        };
        let deleted_at = row.deleted.then(|| text("updated_at")).flatten();
        let mut st = self.conn.prepare_cached(
            "INSERT INTO products (org_id, id, sku, barcode, name, description, category, status,
                uom, price, version, doc, field_hlcs, created_at, updated_at, deleted_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)
             ON CONFLICT(org_id, id) DO UPDATE SET sku = excluded.sku, barcode = excluded.barcode,
                name = excluded.name, description = excluded.description,
                category = excluded.category, status = excluded.status, uom = excluded.uom,
                price = excluded.price, version = excluded.version, doc = excluded.doc,
                field_hlcs = excluded.field_hlcs, updated_at = excluded.updated_at,
                deleted_at = excluded.deleted_at",
        )?;
        st.execute(params![
            org,
            row.id,
            text("sku"),
            text("barcode"),
            text("name"),
            text("description"),
            text("category"),
            text("status"),
            text("uom"),
            price,
            i64_of(row.version),
            row.doc,
            row.field_hlcs.to_string(),
            text("created_at"),
            text("updated_at"),
            deleted_at,
        ])?;
        Ok(())
    }

    fn products(&self, org: &str, q: &ProductQuery) -> Result<(Vec<ProductRow>, u64)> {
        let mut filter = String::from(" WHERE org_id = ? AND deleted_at IS NULL");
        let mut args: Vec<SqlValue> = vec![org.to_owned().into()];
        for (column, value) in [
            ("status", &q.status),
            ("category", &q.category),
            ("sku", &q.sku),
            ("barcode", &q.barcode),
        ] {
            if let Some(v) = value {
                filter.push_str(&format!(" AND {column} = ?"));
                args.push(v.clone().into());
            }
        }
        let total: i64 = self.conn.query_row(
            &format!("SELECT count(*) FROM products{filter}"),
            params_from_iter(args.iter()),
            |r| r.get(0),
        )?;
        let col = match q.sort_column {
            "updated_at" => "updated_at",
            "sku" => "sku",
            "name" => "name",
            _ => "created_at",
        };
        let (dir, cmp) = if q.descending {
            ("DESC", "<")
        } else {
            ("ASC", ">")
        };
        let mut page_filter = filter;
        if let Some((value, id)) = &q.after {
            page_filter.push_str(&format!(" AND ({col}, id) {cmp} (?, ?)"));
            args.push(value.clone().into());
            args.push(id.clone().into());
        }
        let offset = if q.after.is_some() { 0 } else { q.offset };
        let sql = format!(
            "{PRODUCT_SELECT}{page_filter} ORDER BY {col} {dir}, id {dir} LIMIT {} OFFSET {}",
            q.limit, offset
        );
        let mut st = self.conn.prepare_cached(&sql)?;
        let raws = st
            .query_map(params_from_iter(args.iter()), product_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let rows = raws.into_iter().map(product_of).collect::<Result<_>>()?;
        Ok((rows, u64_of(total)))
    }

    fn location(&self, org: &str, id: &str) -> Result<Option<LocationRow>> {
        let mut st = self.conn.prepare_cached(
            "SELECT id, branch_id, code, name, created_at FROM locations WHERE org_id = ?1 AND id = ?2",
        )?;
        Ok(st
            .query_row([org, id], location_row)
            .optional()?
            .map(location_of))
    }

    fn location_by_code(
        &self,
        org: &str,
        branch_id: &str,
        code: &str,
    ) -> Result<Option<LocationRow>> {
        let mut st = self.conn.prepare_cached(
            "SELECT id, branch_id, code, name, created_at FROM locations
             WHERE org_id = ?1 AND branch_id = ?2 AND code = ?3",
        )?;
        Ok(st
            .query_row([org, branch_id, code], location_row)
            .optional()?
            .map(location_of))
    }

    fn alias(&self, org: &str, id: &str) -> Result<Option<String>> {
        let mut st = self.conn.prepare_cached(
            "SELECT canonical_id FROM aliases WHERE org_id = ?1 AND alias_id = ?2",
        )?;
        Ok(st.query_row([org, id], |r| r.get(0)).optional()?)
    }

    fn put_alias(&mut self, org: &str, alias: &AliasRow) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO aliases (org_id, alias_id, canonical_id, entity, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                org,
                alias.alias_id,
                alias.canonical_id,
                alias.entity.as_str(),
                alias.created_at
            ])?;
        Ok(())
    }

    fn insert_location(&mut self, org: &str, row: &LocationRow) -> Result<()> {
        let r = &row.resource;
        let text = |k: &str| {
            r.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        self.conn.execute(
            "INSERT INTO locations (org_id, id, branch_id, code, name, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                org,
                row.id,
                row.branch_id,
                row.code,
                text("name"),
                text("created_at")
            ],
        )?;
        Ok(())
    }

    fn locations(
        &self,
        org: &str,
        branches: Option<&[String]>,
        offset: u64,
        limit: u64,
    ) -> Result<(Vec<LocationRow>, u64)> {
        let mut filter = String::from(" WHERE org_id = ?");
        let mut args: Vec<SqlValue> = vec![org.to_owned().into()];
        if let Some(bs) = branches {
            filter.push_str(&format!(" AND branch_id IN ({})", placeholders(bs.len())));
            args.extend(bs.iter().map(|b| SqlValue::from(b.clone())));
        }
        let total: i64 = self.conn.query_row(
            &format!("SELECT count(*) FROM locations{filter}"),
            params_from_iter(args.iter()),
            |r| r.get(0),
        )?;
        let sql = format!(
            "SELECT id, branch_id, code, name, created_at FROM locations{filter}
             ORDER BY code LIMIT {limit} OFFSET {offset}"
        );
        let mut st = self.conn.prepare_cached(&sql)?;
        let rows = st
            .query_map(params_from_iter(args.iter()), location_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok((rows.into_iter().map(location_of).collect(), u64_of(total)))
    }

    fn stock(&self, org: &str, product_id: &str, location_id: &str) -> Result<Option<StockRow>> {
        let mut st = self.conn.prepare_cached(
            "SELECT product_id, location_id, on_hand, allocated, version, updated_at FROM stock
             WHERE org_id = ?1 AND product_id = ?2 AND location_id = ?3",
        )?;
        Ok(st
            .query_row([org, product_id, location_id], stock_row)
            .optional()?)
    }

    fn put_stock(&mut self, org: &str, row: &StockRow) -> Result<()> {
        let mut st = self.conn.prepare_cached(
            "INSERT INTO stock (org_id, product_id, location_id, on_hand, allocated, version, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT(org_id, product_id, location_id) DO UPDATE SET on_hand = excluded.on_hand,
                allocated = excluded.allocated, version = excluded.version,
                updated_at = excluded.updated_at",
        )?;
        st.execute(params![
            org,
            row.product_id,
            row.location_id,
            row.on_hand.scaled(),
            row.allocated.scaled(),
            i64_of(row.version),
            row.updated_at
        ])?;
        Ok(())
    }

    fn stock_of_product(&self, org: &str, product_id: &str) -> Result<Vec<StockRow>> {
        let mut st = self.conn.prepare_cached(
            "SELECT product_id, location_id, on_hand, allocated, version, updated_at FROM stock
             WHERE org_id = ?1 AND product_id = ?2 ORDER BY location_id",
        )?;
        let rows = st.query_map([org, product_id], stock_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn stock_at_location(&self, org: &str, location_id: &str) -> Result<Vec<StockRow>> {
        let mut st = self.conn.prepare_cached(
            "SELECT product_id, location_id, on_hand, allocated, version, updated_at FROM stock
             WHERE org_id = ?1 AND location_id = ?2 ORDER BY product_id",
        )?;
        let rows = st.query_map([org, location_id], stock_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn insert_movement(&mut self, org: &str, row: &MovementRow, seq: u64) -> Result<()> {
        let loc = |i: usize| row.location_ids.get(i).cloned();
        let (location, from, to) = if row.location_ids.len() == 2 {
            (None, loc(0), loc(1))
        } else {
            (loc(0), None, None)
        };
        let r = &row.resource;
        let text = |k: &str| r.get(k).and_then(Value::as_str).map(str::to_owned);
        let mut st = self.conn.prepare_cached(
            "INSERT INTO movements (org_id, id, transaction_type, product_id, location_id,
                from_location_id, to_location_id, body, op_id, device_id, occurred_at, created_at, seq)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        )?;
        st.execute(params![
            org,
            row.id,
            row.transaction_type,
            row.product_id,
            location,
            from,
            to,
            r.to_string(),
            text("op_id"),
            text("device_id"),
            text("occurred_at").unwrap_or_else(|| row.created_at.clone()),
            row.created_at,
            i64_of(seq)
        ])?;
        Ok(())
    }

    fn movement(&self, org: &str, id: &str) -> Result<Option<MovementRow>> {
        let mut st = self.conn.prepare_cached(
            "SELECT id, transaction_type, product_id, location_id, from_location_id, to_location_id,
                body, created_at FROM movements WHERE org_id = ?1 AND id = ?2",
        )?;
        st.query_row([org, id], movement_raw)
            .optional()?
            .map(movement_of)
            .transpose()
    }

    fn movements(&self, org: &str, q: &MovementQuery) -> Result<(Vec<MovementRow>, u64)> {
        let mut filter = String::from(" WHERE org_id = ?");
        let mut args: Vec<SqlValue> = vec![org.to_owned().into()];
        if let Some(p) = &q.product_id {
            filter.push_str(" AND product_id = ?");
            args.push(p.clone().into());
        }
        if let Some(l) = &q.location_id {
            filter.push_str(" AND (location_id = ? OR from_location_id = ? OR to_location_id = ?)");
            for _ in 0..3 {
                args.push(l.clone().into());
            }
        }
        if let Some(ls) = &q.branches_locations {
            let ph = placeholders(ls.len());
            filter.push_str(&format!(
                " AND (location_id IN ({ph}) OR from_location_id IN ({ph}) OR to_location_id IN ({ph}))"
            ));
            for _ in 0..3 {
                args.extend(ls.iter().map(|l| SqlValue::from(l.clone())));
            }
        }
        if let Some(s) = &q.start {
            filter.push_str(" AND created_at >= ?");
            args.push(s.clone().into());
        }
        if let Some(e) = &q.end {
            filter.push_str(" AND created_at <= ?");
            args.push(e.clone().into());
        }
        let total: i64 = self.conn.query_row(
            &format!("SELECT count(*) FROM movements{filter}"),
            params_from_iter(args.iter()),
            |r| r.get(0),
        )?;
        let sql = format!(
            "SELECT id, transaction_type, product_id, location_id, from_location_id, to_location_id,
                body, created_at FROM movements{filter}
             ORDER BY seq DESC LIMIT {} OFFSET {}",
            q.limit, q.offset
        );
        let mut st = self.conn.prepare_cached(&sql)?;
        let raws = st
            .query_map(params_from_iter(args.iter()), movement_raw)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let rows = raws.into_iter().map(movement_of).collect::<Result<_>>()?;
        Ok((rows, u64_of(total)))
    }

    fn allocation(&self, org: &str, id: &str) -> Result<Option<AllocationRow>> {
        let mut st = self.conn.prepare_cached(
            "SELECT id, status, product_id, location_id, quantity, created_at, released_at
             FROM allocations WHERE org_id = ?1 AND id = ?2",
        )?;
        let raw = st
            .query_row([org, id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, Option<String>>(6)?,
                ))
            })
            .optional()?;
        raw.map(
            |(id, status, product_id, location_id, quantity, created_at, released_at)| {
                Ok(AllocationRow {
                    resource: serde_json::json!({
                        "id": id, "product_id": product_id, "location_id": location_id,
                        "quantity": json(quantity)?, "status": status, "created_at": created_at,
                        "released_at": released_at,
                    }),
                    id,
                    status,
                })
            },
        )
        .transpose()
    }

    fn put_allocation(&mut self, org: &str, row: &AllocationRow) -> Result<()> {
        let r = &row.resource;
        let text = |k: &str| r.get(k).and_then(Value::as_str).map(str::to_owned);
        let quantity = r
            .get("quantity")
            .cloned()
            .unwrap_or(Value::Null)
            .to_string();
        self.conn.execute(
            "INSERT INTO allocations (org_id, id, product_id, location_id, quantity, status, created_at, released_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT(org_id, id) DO UPDATE SET status = excluded.status,
                released_at = excluded.released_at",
            params![
                org,
                row.id,
                text("product_id"),
                text("location_id"),
                quantity,
                row.status,
                text("created_at"),
                text("released_at")
            ],
        )?;
        Ok(())
    }

    fn op(&self, org: &str, op_id: &str) -> Result<Option<OpRow>> {
        let mut st = self.conn.prepare_cached(
            "SELECT op_id, device_id, device_seq, kind, status, result FROM ops
             WHERE org_id = ?1 AND op_id = ?2",
        )?;
        let raw = st
            .query_row([org, op_id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                ))
            })
            .optional()?;
        raw.map(|(op_id, device_id, seq, kind, status, result)| {
            Ok(OpRow {
                op_id,
                device_id,
                device_seq: u64_of(seq),
                kind,
                status,
                result: json(result)?,
            })
        })
        .transpose()
    }

    fn insert_op(&mut self, org: &str, row: &OpRow) -> Result<()> {
        let mut st = self.conn.prepare_cached(
            "INSERT INTO ops (org_id, op_id, device_id, device_seq, kind, status, result, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        st.execute(params![
            org,
            row.op_id,
            row.device_id,
            i64_of(row.device_seq),
            row.kind,
            row.status,
            row.result.to_string(),
            crate::clock::now_rfc3339()
        ])?;
        Ok(())
    }

    fn conflict(&self, org: &str, id: &str) -> Result<Option<ConflictRow>> {
        let mut st = self.conn.prepare_cached(
            "SELECT id, status, branch_id, body FROM conflicts WHERE org_id = ?1 AND id = ?2",
        )?;
        st.query_row([org, id], conflict_raw)
            .optional()?
            .map(conflict_of)
            .transpose()
    }

    fn put_conflict(&mut self, org: &str, row: &ConflictRow) -> Result<()> {
        let r = &row.resource;
        let text = |k: &str| r.get(k).and_then(Value::as_str).map(str::to_owned);
        let mut st = self.conn.prepare_cached(
            "INSERT INTO conflicts (org_id, id, status, product_id, location_id, body, created_at,
                branch_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT(org_id, id) DO UPDATE SET status = excluded.status, body = excluded.body,
                branch_id = excluded.branch_id",
        )?;
        st.execute(params![
            org,
            row.id,
            row.status,
            text("product_id"),
            text("location_id"),
            r.to_string(),
            text("created_at"),
            row.branch_id
        ])?;
        Ok(())
    }

    fn conflicts(
        &self,
        org: &str,
        status: Option<&str>,
        branches: Option<&[String]>,
        offset: u64,
        limit: u64,
    ) -> Result<(Vec<ConflictRow>, u64)> {
        let mut filter = String::from(" WHERE org_id = ?");
        let mut args: Vec<SqlValue> = vec![org.to_owned().into()];
        if let Some(s) = status {
            filter.push_str(" AND status = ?");
            args.push(s.to_owned().into());
        }
        if let Some(bs) = branches {
            filter.push_str(&format!(
                " AND (branch_id IS NULL OR branch_id IN ({}))",
                placeholders(bs.len())
            ));
            args.extend(bs.iter().map(|b| SqlValue::from(b.clone())));
        }
        let total: i64 = self.conn.query_row(
            &format!("SELECT count(*) FROM conflicts{filter}"),
            params_from_iter(args.iter()),
            |r| r.get(0),
        )?;
        let sql = format!(
            "SELECT id, status, branch_id, body FROM conflicts{filter}
             ORDER BY created_at DESC, id DESC LIMIT {limit} OFFSET {offset}"
        );
        let mut st = self.conn.prepare_cached(&sql)?;
        let raws = st
            .query_map(params_from_iter(args.iter()), conflict_raw)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let rows = raws.into_iter().map(conflict_of).collect::<Result<_>>()?;
        Ok((rows, u64_of(total)))
    }

    fn next_seq(&mut self, org: &str) -> Result<u64> {
        let mut st = self.conn.prepare_cached(
            "UPDATE organizations SET feed_seq = feed_seq + 1 WHERE id = ?1 RETURNING feed_seq",
        )?;
        let seq: Option<i64> = st.query_row([org], |r| r.get(0)).optional()?;
        seq.map(u64_of)
            .ok_or_else(|| StorageError::Db(format!("no organization {org}")))
    }

    fn feed_state(&self, org: &str) -> Result<(u64, u64)> {
        let mut st = self
            .conn
            .prepare_cached("SELECT feed_seq, purged_seq FROM organizations WHERE id = ?1")?;
        let (a, b): (i64, i64) = st
            .query_row([org], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?
            .unwrap_or((0, 0));
        Ok((u64_of(a), u64_of(b)))
    }

    fn feed_row(&self, org: &str, entity: &str, entity_id: &str) -> Result<Option<FeedRow>> {
        let sql = format!(
            "SELECT {FEED_COLUMNS} FROM feed WHERE org_id = ?1 AND entity = ?2 AND entity_id = ?3"
        );
        let mut st = self.conn.prepare_cached(&sql)?;
        st.query_row([org, entity, entity_id], feed_row)
            .optional()?
            .map(feed_of)
            .transpose()
    }

    fn put_feed_row(&mut self, org: &str, row: &FeedRow) -> Result<()> {
        let mut st = self.conn.prepare_cached(
            "INSERT INTO feed (org_id, entity, entity_id, seq, branch_id, created_seq, deleted, version, data)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT(org_id, entity, entity_id) DO UPDATE SET seq = excluded.seq,
                branch_id = excluded.branch_id, deleted = excluded.deleted,
                version = excluded.version, data = excluded.data",
        )?;
        st.execute(params![
            org,
            row.entity,
            row.entity_id,
            i64_of(row.seq),
            row.branch_id,
            i64_of(row.created_seq),
            row.deleted,
            i64_of(row.version),
            row.data
        ])?;
        Ok(())
    }

    fn feed_page(&self, org: &str, q: &FeedQuery) -> Result<Vec<FeedRow>> {
        let mut filter = String::from(" WHERE org_id = ? AND seq > ? AND seq <= ?");
        let mut args: Vec<SqlValue> = vec![
            org.to_owned().into(),
            i64_of(q.after).into(),
            i64_of(q.upto).into(),
        ];
        if let Some(bs) = &q.branches {
            filter.push_str(&format!(
                " AND (branch_id IS NULL OR branch_id IN ({}))",
                placeholders(bs.len())
            ));
            args.extend(bs.iter().map(|b| SqlValue::from(b.clone())));
        }
        if q.snapshot {
            filter.push_str(" AND deleted = 0 AND entity <> 'transaction'");
        }
        let sql = format!(
            "SELECT {FEED_COLUMNS} FROM feed{filter} ORDER BY seq LIMIT {}",
            q.limit
        );
        let mut st = self.conn.prepare_cached(&sql)?;
        let raws = st
            .query_map(params_from_iter(args.iter()), feed_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        raws.into_iter().map(feed_of).collect()
    }

    fn purge_tombstones(&mut self, org: &str, upto: u64) -> Result<u64> {
        let n = self.conn.execute(
            "DELETE FROM feed WHERE org_id = ?1 AND deleted = 1 AND seq <= ?2",
            params![org, i64_of(upto)],
        )?;
        self.conn.execute(
            "UPDATE organizations SET purged_seq = max(purged_seq, ?2) WHERE id = ?1",
            params![org, i64_of(upto)],
        )?;
        Ok(n as u64)
    }

    fn digest(&self, org: &str, branch_id: &str) -> Result<StateDigest> {
        let mut st = self
            .conn
            .prepare_cached("SELECT digest FROM digests WHERE org_id = ?1 AND branch_id = ?2")?;
        let text: Option<String> = st.query_row([org, branch_id], |r| r.get(0)).optional()?;
        match text {
            None => Ok(StateDigest::default()),
            Some(t) => StateDigest::from_hex(&t)
                .ok_or_else(|| StorageError::Corrupt(format!("digest of {org}/{branch_id}"))),
        }
    }

    fn digests(&self, org: &str) -> Result<Vec<(String, StateDigest)>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT branch_id, digest FROM digests WHERE org_id = ?1")?;
        let raws = st
            .query_map([org], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        raws.into_iter()
            .map(|(b, t)| {
                StateDigest::from_hex(&t)
                    .map(|d| (b, d))
                    .ok_or_else(|| StorageError::Corrupt(format!("digest of {org}")))
            })
            .collect()
    }

    fn put_digest(&mut self, org: &str, branch_id: &str, d: &StateDigest) -> Result<()> {
        let mut st = self.conn.prepare_cached(
            "INSERT INTO digests (org_id, branch_id, digest) VALUES (?1, ?2, ?3)
             ON CONFLICT(org_id, branch_id) DO UPDATE SET digest = excluded.digest",
        )?;
        st.execute(params![org, branch_id, d.to_hex()])?;
        Ok(())
    }
}

type RawMovement = (
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    String,
);

fn movement_raw(r: &Row<'_>) -> rusqlite::Result<RawMovement> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
    ))
}

fn movement_of(raw: RawMovement) -> Result<MovementRow> {
    let (id, transaction_type, product_id, location, from, to, body, created_at) = raw;
    Ok(MovementRow {
        id,
        transaction_type,
        product_id,
        location_ids: [location, from, to].into_iter().flatten().collect(),
        resource: json(body)?,
        created_at,
    })
}

type ConflictRaw = (String, String, Option<String>, String);

fn conflict_raw(r: &Row<'_>) -> rusqlite::Result<ConflictRaw> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

fn conflict_of((id, status, branch_id, body): ConflictRaw) -> Result<ConflictRow> {
    Ok(ConflictRow {
        id,
        status,
        branch_id,
        resource: json(body)?,
    })
}

fn placeholders(n: usize) -> String {
    vec!["?"; n.max(1)].join(", ")
}

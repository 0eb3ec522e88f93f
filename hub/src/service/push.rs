//! `POST /v1/sync/push`: each op takes effect at most once, forever; a device's ops apply in
//! `device_seq` order; each op runs in a savepoint, so a rejected op leaves no trace but its
//! conflict record and its stored outcome.

use super::catalog;
use super::conflicts;
use super::stock::{self, Origin, TransactionRequest};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::state::Ctx;
use crate::storage::OpRow;
use stocksync_model::{Movement, MovementKind, NewLocation};
use stocksync_protocol::{ErrorBody, OpBody, OpKind, OpResult, OpStatus, PushOp};

/// Applies a batch of one device's ops; one result per op, in the order sent.
pub fn push(
    ctx: &mut Ctx<'_>,
    caller: &Caller,
    ops: &[PushOp],
    metrics: &Metrics,
) -> Result<Vec<OpResult>, ApiError> {
    let device_id = caller
        .device_id
        .clone()
        .ok_or_else(|| ApiError::denied("Only an enrolled device can push ops"))?;
    let device = ctx
        .tx
        .device(&device_id)?
        .ok_or_else(|| ApiError::unauthenticated("Unknown device"))?;
    let mut order: Vec<usize> = (0..ops.len()).collect();
    order.sort_by_key(|&i| ops[i].device_seq);
    let mut results: Vec<Option<OpResult>> = vec![None; ops.len()];
    let mut last_seq = device.last_seq;
    for i in order {
        let op = &ops[i];
        let result = if let Some(seen) = ctx.tx.op(&ctx.org, op.op_id.as_str())? {
            metrics.push_op("duplicate");
            let first: OpResult = serde_json::from_value(seen.result.clone())
                .map_err(|e| ApiError::internal(format!("stored op result: {e}")))?;
            OpResult {
                status: OpStatus::Duplicate,
                original_status: Some(first.status),
                ..first
            }
        } else {
            let result = if op.device_seq <= last_seq {
                let e = ApiError::field(
                    "device_seq",
                    format!("Must be greater than {last_seq}, this device's last applied op"),
                );
                reject(ctx, op, &device_id, e)?
            } else {
                apply_one(ctx, caller, op, &device_id)?
            };
            metrics.push_op(match result.status {
                OpStatus::Applied => "applied",
                OpStatus::Conflict => "conflict",
                _ => "rejected",
            });
            last_seq = last_seq.max(op.device_seq);
            ctx.tx.insert_op(
                &ctx.org.clone(),
                &OpRow {
                    op_id: op.op_id.to_string(),
                    device_id: device_id.clone(),
                    device_seq: op.device_seq,
                    kind: op.body.kind().as_str().to_owned(),
                    status: status_name(result.status).to_owned(),
                    result: serde_json::to_value(&result).map_err(ApiError::internal)?,
                },
            )?;
            result
        };
        results[i] = Some(result);
    }
    if last_seq != device.last_seq {
        ctx.tx.set_device_seq(&device_id, last_seq)?;
    }
    Ok(results.into_iter().flatten().collect())
}

fn status_name(s: OpStatus) -> &'static str {
    match s {
        OpStatus::Applied => "applied",
        OpStatus::Duplicate => "duplicate",
        OpStatus::Rejected => "rejected",
        OpStatus::Conflict => "conflict",
    }
}

/// Runs one op in a savepoint; a refusal rolls it back and becomes a rejection.
fn apply_one(
    ctx: &mut Ctx<'_>,
    caller: &Caller,
    op: &PushOp,
    device_id: &str,
) -> Result<OpResult, ApiError> {
    ctx.tx.savepoint()?;
    let events = ctx.events.len();
    match effect(ctx, caller, op, device_id) {
        Ok(result) => {
            ctx.tx.release_savepoint()?;
            Ok(result)
        }
        Err(e) if e.code.status() < 500 => {
            ctx.tx.rollback_savepoint()?;
            ctx.events.truncate(events);
            reject(ctx, op, device_id, e)
        }
        Err(e) => Err(e),
    }
}

fn reject(
    ctx: &mut Ctx<'_>,
    op: &PushOp,
    device_id: &str,
    e: ApiError,
) -> Result<OpResult, ApiError> {
    let (product, location) = subject(&op.body);
    let (conflict_id, seq) = conflicts::open_rejected(
        ctx,
        &e,
        op.op_id.as_str(),
        device_id,
        product.as_deref(),
        location.as_deref(),
    )?;
    Ok(OpResult {
        op_id: op.op_id.clone(),
        status: OpStatus::Rejected,
        seq: Some(seq),
        version: None,
        conflict_id: Some(conflict_id),
        original_status: None,
        canonical_id: None,
        error: Some(ErrorBody {
            request_id: None,
            timestamp: None,
            ..e.body()
        }),
    })
}

/// The product and location an op is about (for its conflict record).
fn subject(body: &OpBody) -> (Option<String>, Option<String>) {
    let s = |v: &dyn ToString| Some(v.to_string());
    match body {
        OpBody::Transaction(t) => (s(&t.product_id), s(&t.location_id)),
        OpBody::Transfer(t) => (s(&t.product_id), s(&t.from_location_id)),
        OpBody::Allocation(a) => (s(&a.product_id), s(&a.location_id)),
        OpBody::AllocationRelease(_) => (None, None),
        OpBody::ProductCreate(p) => (s(&p.product_id), None),
        OpBody::ProductChange(p) => (s(&p.product_id), None),
        OpBody::LocationCreate(l) => (None, s(&l.location_id)),
        OpBody::ConflictResolution(_) => (None, None),
    }
}

fn scope_of(kind: OpKind) -> &'static str {
    match kind {
        OpKind::Transaction | OpKind::Transfer => "inventory.transactions.create",
        OpKind::Allocation | OpKind::AllocationRelease => "inventory.allocations.manage",
        OpKind::ProductCreate | OpKind::ProductChange | OpKind::LocationCreate => {
            "inventory.products.write"
        }
        OpKind::ConflictResolution => "inventory.products.write",
    }
}

fn effect(
    ctx: &mut Ctx<'_>,
    caller: &Caller,
    op: &PushOp,
    device_id: &str,
) -> Result<OpResult, ApiError> {
    caller.require(scope_of(op.body.kind()))?;
    // Keep the hub's clock ahead of every device's, so its own edits order after theirs; an op
    // stamped too far ahead of the hub's clock is rejected (final, like any rejection).
    crate::clock::observe_op(ctx.clock, &op.hlc)?;
    let origin = Origin {
        op_id: Some(op.op_id.to_string()),
        device_id: Some(device_id.to_owned()),
        occurred_at: Some(op.occurred_at.clone()),
        branches: caller.branches.clone(),
        reference: None,
    };
    let applied = |seq: u64, version: Option<u64>| OpResult {
        op_id: op.op_id.clone(),
        status: OpStatus::Applied,
        seq: Some(seq),
        version,
        conflict_id: None,
        original_status: None,
        canonical_id: None,
        error: None,
    };
    let movement = |m: Movement, ctx: &mut Ctx<'_>| -> Result<OpResult, ApiError> {
        let a = stock::apply(ctx, &m, &origin)?;
        Ok(applied(a.seq, None))
    };
    let mut body = resolve_aliases(ctx, &op.body)?;
    if let Some(product) = goods_product(&mut body) {
        *product = catalog::product_for_goods(ctx, product, op.op_id.as_str(), device_id)?;
    }
    match &body {
        OpBody::Transaction(t) => {
            let req = TransactionRequest {
                id: Some(t.transaction_id.clone()),
                transaction_type: t.transaction_type,
                product_id: t.product_id.clone(),
                location_id: t.location_id.clone(),
                quantity: Some(t.quantity),
                reason_code: t.reason_code,
                counted: t.counted,
                expected: t.expected,
                unit_cost: t.unit_cost,
                reference: t.reference.clone(),
            };
            movement(req.movement()?, ctx)
        }
        OpBody::Transfer(t) => movement(
            Movement {
                product_id: t.product_id.clone(),
                kind: MovementKind::Transfer {
                    transfer_id: t.transfer_id.clone(),
                    from_location_id: t.from_location_id.clone(),
                    to_location_id: t.to_location_id.clone(),
                    quantity: t.quantity,
                },
            },
            ctx,
        ),
        OpBody::Allocation(a) => movement(
            Movement {
                product_id: a.product_id.clone(),
                kind: MovementKind::Allocation {
                    allocation_id: a.allocation_id.clone(),
                    location_id: a.location_id.clone(),
                    quantity: a.quantity,
                },
            },
            ctx,
        ),
        OpBody::AllocationRelease(r) => {
            let branches = caller.branches.as_deref();
            let m = stock::release_movement(ctx, r.allocation_id.as_str(), branches)?;
            movement(m, ctx)
        }
        OpBody::ProductCreate(p) => {
            let c = catalog::create_from_op(
                ctx,
                &p.product_id,
                &p.doc,
                &op.hlc,
                op.op_id.as_str(),
                device_id,
            )?;
            let (seq, _) = ctx.tx.feed_state(&ctx.org)?;
            Ok(created(applied(seq, c.version), c))
        }
        OpBody::ProductChange(p) => {
            let m = catalog::change_from_op(
                ctx,
                &p.product_id,
                &p.changes,
                &op.hlc,
                op.op_id.as_str(),
                device_id,
            )?;
            let (seq, _) = ctx.tx.feed_state(&ctx.org)?;
            let mut r = applied(seq, Some(m.version));
            if let Some(c) = m.conflict_id {
                r.status = OpStatus::Conflict;
                r.conflict_id = Some(c);
            }
            Ok(r)
        }
        OpBody::LocationCreate(l) => {
            let branch = caller
                .branches
                .as_ref()
                .and_then(|b| b.first().cloned())
                .ok_or_else(|| ApiError::field("branch_id", "The device has no branch"))?;
            let c = catalog::create_location_from_op(
                ctx,
                &l.location_id,
                &NewLocation {
                    code: l.code.clone(),
                    name: l.name.clone(),
                },
                &branch,
            )?;
            let (seq, _) = ctx.tx.feed_state(&ctx.org)?;
            Ok(created(applied(seq, None), c))
        }
        OpBody::ConflictResolution(c) => {
            let req = conflicts::ResolveRequest {
                resolution: c.resolution,
                value: c.value.clone(),
            };
            let id = c.conflict_id.as_str();
            let r = conflicts::resolve(ctx, id, &req, device_id, caller.branches.as_deref())?;
            let (seq, _) = ctx.tx.feed_state(&ctx.org)?;
            Ok(applied(seq, r["resolution"]["product_version"].as_u64()))
        }
    }
}

/// An applied create's answer: the entity it merged into, and a clash it queued.
fn created(mut result: OpResult, c: catalog::Created) -> OpResult {
    result.canonical_id = c.canonical_id;
    if let Some(id) = c.conflict_id {
        result.status = OpStatus::Conflict;
        result.conflict_id = Some(id);
    }
    result
}

/// The op with every product and location id it names replaced by the entity that id is an
/// alias of (a create of the same SKU or code that another device made first), so an op never
/// fails for naming the device's own id.
fn resolve_aliases(ctx: &Ctx<'_>, body: &OpBody) -> Result<OpBody, ApiError> {
    let mut body = body.clone();
    match &mut body {
        OpBody::Transaction(t) => {
            canonical(ctx, &mut t.product_id)?;
            canonical(ctx, &mut t.location_id)?;
        }
        OpBody::Transfer(t) => {
            canonical(ctx, &mut t.product_id)?;
            canonical(ctx, &mut t.from_location_id)?;
            canonical(ctx, &mut t.to_location_id)?;
        }
        OpBody::Allocation(a) => {
            canonical(ctx, &mut a.product_id)?;
            canonical(ctx, &mut a.location_id)?;
        }
        OpBody::ProductChange(p) => canonical(ctx, &mut p.product_id)?,
        OpBody::AllocationRelease(_)
        | OpBody::ProductCreate(_)
        | OpBody::LocationCreate(_)
        | OpBody::ConflictResolution(_) => {}
    }
    Ok(body)
}

/// The product of an op that moves or promises goods.
fn goods_product(body: &mut OpBody) -> Option<&mut stocksync_model::ProductId> {
    match body {
        OpBody::Transaction(t) => Some(&mut t.product_id),
        OpBody::Transfer(t) => Some(&mut t.product_id),
        OpBody::Allocation(a) => Some(&mut a.product_id),
        _ => None,
    }
}

fn canonical<T>(ctx: &Ctx<'_>, id: &mut T) -> Result<(), ApiError>
where
    T: std::fmt::Display + std::str::FromStr,
{
    if let Some(target) = ctx.tx.alias(&ctx.org, &id.to_string())? {
        *id = target
            .parse()
            .map_err(|_| ApiError::internal(format!("alias of {id} names `{target}`")))?;
    }
    Ok(())
}

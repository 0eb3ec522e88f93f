#!/usr/bin/env python3
"""Writes docs/openapi.json, the hub's OpenAPI 3.1 document: edit this file, run it, commit both.

    python3 scripts/openapi/gen.py
"""
import json, sys

def R(kind, name):
    return {"$ref": f"#/components/{kind}/{name}"}

def S(name):
    return R("schemas", name)

def P(name):
    return R("parameters", name)

def H(name):
    return R("headers", name)

def nullable(schema):
    return {"oneOf": [schema, {"type": "null"}]}

def obj(props, required=None, additional=False, description=None, **extra):
    o = {"type": "object"}
    if description:
        o["description"] = description
    o["properties"] = props
    o["required"] = list(props) if required is None else required
    if not o["required"]:
        del o["required"]
    o["additionalProperties"] = additional
    o.update(extra)
    return o

STR = {"type": "string"}
NSTR = {"type": ["string", "null"]}
INT = {"type": "integer"}
UINT = {"type": "integer", "minimum": 0}
BOOL = {"type": "boolean"}
TIME = S("Timestamp")
NTIME = {"type": ["string", "null"], "format": "date-time"}

def idp(prefix, description=None):
    s = {"type": "string", "pattern": f"^{prefix}_[A-Za-z0-9_-]+$", "maxLength": 80,
         "examples": [f"{prefix}_01936c3a8f7e7c2a9b3d4e5f60718293"]}
    if description:
        s["description"] = description
    return s

SCOPES = ["inventory.products.read", "inventory.products.write", "inventory.transactions.read",
          "inventory.transactions.create", "inventory.allocations.read",
          "inventory.allocations.manage", "inventory.reports.read", "inventory.admin"]
CODES = ["VALIDATION_FAILED", "INVALID_SYNC_TOKEN", "AUTHENTICATION_FAILED", "TOKEN_EXPIRED",
         "PERMISSION_DENIED", "NOT_FOUND", "CONFLICT", "PAYLOAD_TOO_LARGE",
         "IDEMPOTENCY_KEY_REUSED", "BUSINESS_RULE_VIOLATION", "RATE_LIMIT_EXCEEDED",
         "INTERNAL_ERROR", "SERVICE_UNAVAILABLE"]
TXN_TYPES = ["receipt", "shipment", "adjustment", "count", "transfer", "allocation", "release"]
REASONS = ["DAMAGE", "SHRINKAGE", "FOUND", "COUNT_CORRECTION", "OTHER"]
PRODUCT_FIELDS = ["id", "sku", "barcode", "name", "description", "category", "status", "uom",
                  "price", "version", "created_at", "updated_at"]

class Once(dict):
    def __setitem__(self, k, v):
        assert k not in self, f"duplicate schema {k}"
        super().__setitem__(k, v)

schemas = Once()

# ---- values -------------------------------------------------------------------------------------
schemas["Decimal"] = {
    "type": "string", "pattern": r"^-?\d+(\.\d{1,4})?$",
    "description": "An exact decimal with at most four places, as a JSON string (`\"12.5\"`); "
                   "trailing zeros are dropped. Never a JSON number in a response.",
    "examples": ["12.5", "-3", "0.0125"]}
schemas["DecimalInput"] = {
    "description": "A decimal on input: a string like `Decimal`, or a JSON number with at most four "
                   "places (`12.5`). More places are refused (`VALIDATION_FAILED`), never rounded.",
    "anyOf": [S("Decimal"), {"type": "number"}]}
schemas["Uom"] = {"type": "string", "enum": ["EACH", "KG", "M", "L"],
                  "description": "Unit of measure. `EACH` takes whole numbers only."}
schemas["Currency"] = {"type": "string", "minLength": 3, "maxLength": 3, "pattern": "^[A-Z]{3}$",
                       "description": "ISO 4217 code.", "examples": ["EUR"]}
schemas["Quantity"] = obj({"value": S("Decimal"), "uom": S("Uom")},
                          description="An amount of stock in a unit.")
schemas["QuantityInput"] = obj({"value": S("DecimalInput"), "uom": S("Uom")},
                               description="A quantity on input.")
schemas["Money"] = obj({"amount": S("Decimal"), "currency": S("Currency")},
                       description="An amount of money.")
schemas["MoneyInput"] = obj({"amount": S("DecimalInput"),
                             "currency": {"type": "string", "minLength": 3, "maxLength": 3,
                                          "description": "ISO 4217 code (case-insensitive on input)."}},
                            description="Money on input.")
schemas["Timestamp"] = {"type": "string", "format": "date-time",
                        "description": "RFC 3339 UTC time.", "examples": ["2026-01-28T10:30:00Z"]}
schemas["ReasonCode"] = {"type": "string", "enum": REASONS,
                         "description": "Why stock was adjusted."}
schemas["Scope"] = {"type": "string", "enum": SCOPES}
schemas["Hlc"] = {"type": "string", "pattern": r"^\d{16}\.\d{5}@.+$",
                  "description": "Hybrid logical timestamp `WWWWWWWWWWWWWWWW.CCCCC@NODE` (wall "
                                 "milliseconds, counter); text order is time order.",
                  "examples": ["0001763632800000.00000@dev_01936c3a8f7e7c2a9b3d4e5f60718293"]}

# ---- envelope -----------------------------------------------------------------------------------
schemas["ErrorCode"] = {"type": "string", "enum": CODES,
                        "description": "Machine-readable error code; each pairs with one HTTP status."}
schemas["ErrorBody"] = obj(
    {"code": S("ErrorCode"), "message": STR,
     "details": {"type": "object", "description":
                 "`VALIDATION_FAILED`: field → messages. `BUSINESS_RULE_VIOLATION`: `{rule}`. "
                 "`CONFLICT` (If-Match): `{current_version, provided_version}`. "
                 "`RATE_LIMIT_EXCEEDED`: `{limit, window, retry_after}`."},
     "request_id": STR, "timestamp": TIME},
    required=["code", "message"],
    description="What went wrong. Inside an error envelope `request_id` and `timestamp` are always "
                "present; inside a rejected op's result they may be left out.")
schemas["Pagination"] = obj(
    {"page": {"type": ["integer", "null"], "minimum": 1, "description": "null with keyset paging (after_key/limit)"}, "pageSize": {"type": "integer", "minimum": 1},
     "total": UINT, "hasMore": BOOL,
     "nextCursor": {"type": ["string", "null"],
                    "description": "Pass as `after_key` for the next page; null on the last."},
     "sort": {"type": ["string", "null"], "description": "The sort applied, e.g. `-created_at`."}},
    description="Paging of a list.")
schemas["Meta"] = obj(
    {"request_id": {"type": "string", "pattern": "^req_", "examples": ["req_01936c3a8f7e7c2a"]},
     "pagination": S("Pagination"),
     "idempotent": {"type": "boolean", "const": True,
                    "description": "Present on a replay of an `Idempotency-Key`: this is the "
                                   "original result again."},
     "original_created_at": {**TIME, "description": "On a replay: when the original was made."},
     "next_sync_token": STR, "changes_count": UINT, "has_more": BOOL, "full_sync_required": BOOL,
     "checksum": STR},
    required=["request_id"], additional=True,
    description="Facts about the response. Other members may be added.")
schemas["ListMeta"] = {"allOf": [S("Meta"), {"required": ["pagination"]}],
                       "description": "`meta` of a list: `pagination` is always present."}
schemas["DeltaMeta"] = {
    "allOf": [S("Meta"), {"required": ["next_sync_token", "changes_count", "has_more",
                                       "full_sync_required"]}],
    "description": "`meta` of a delta page. `checksum` (digest of the scope's state at "
                   "`next_sync_token`) is on the last page only."}

def error_envelope(name, codes=None, details=None, description=None, details_required=False):
    extra = {}
    if codes is not None:
        extra["code"] = {"enum": codes}
    if details is not None:
        extra["details"] = details
    err = {"allOf": [S("ErrorBody"), {"required": ["request_id", "timestamp"]}]}
    if extra:
        narrow = {"properties": extra}
        if details_required:
            narrow["required"] = ["details"]
        err["allOf"].append(narrow)
    schemas[name] = obj({"data": {"type": "null"}, "error": err, "message": STR,
                         "toast": {"type": "boolean", "const": False},
                         "responseType": {"type": "string", "const": "error"}},
                        description=description or "The error envelope.")

error_envelope("ErrorResponse")
error_envelope("ValidationError", ["VALIDATION_FAILED"],
               {"type": "object", "additionalProperties": {"type": "array", "items": STR},
                "description": "Field → messages."},
               "400: the request is malformed or a field is invalid.")
error_envelope("DeltaBadRequestError", ["VALIDATION_FAILED", "INVALID_SYNC_TOKEN"],
               description="400: a bad parameter, or a forged, truncated or other-organization "
                           "sync token (`INVALID_SYNC_TOKEN`).")
error_envelope("UnauthorizedError", ["AUTHENTICATION_FAILED", "TOKEN_EXPIRED"],
               description="401: no credential, a bad one, or an expired access token.")
error_envelope("ForbiddenError", ["PERMISSION_DENIED"],
               description="403: the credential may not do this (scope, organization, branch or "
                           "device header mismatch).")
error_envelope("NotFoundError", ["NOT_FOUND"], description="404: no such thing.")
error_envelope("ConflictError", ["CONFLICT"],
               description="409: a version mismatch (`details: {current_version, "
                           "provided_version}`) or an id already taken.")
error_envelope("PayloadTooLargeError", ["PAYLOAD_TOO_LARGE"],
               description="413: the body is over the limit.")
schemas["UnprocessableError"] = {
    "allOf": [S("ErrorResponse"), {"properties": {"error": {"anyOf": [
        {"properties": {"code": {"const": "IDEMPOTENCY_KEY_REUSED"}}},
        {"properties": {"code": {"const": "BUSINESS_RULE_VIOLATION"},
                        "details": {"type": "object", "required": ["rule"],
                                    "properties": {"rule": {"type": "string", "description":
                                        "`no_negative_inventory`, `allocation_within_available`, "
                                        "`uom_must_match`, `allocation_open`, …"}}}},
         "required": ["details"]}]}}}],
    "description": "422: `IDEMPOTENCY_KEY_REUSED` (same key, other body) or "
                   "`BUSINESS_RULE_VIOLATION` (`details.rule` names the rule)."}
error_envelope("RateLimitedError", ["RATE_LIMIT_EXCEEDED"],
               {"type": "object", "required": ["limit", "window", "retry_after"],
                "properties": {"limit": INT, "window": {"type": ["integer", "string"]},
                               "retry_after": INT}},
               "429: too many requests; `Retry-After` says when to try again.",
               details_required=True)
error_envelope("ServerErrorEnvelope", ["INTERNAL_ERROR", "SERVICE_UNAVAILABLE"],
               description="5xx: a bug on the hub (`INTERNAL_ERROR`) or a temporary outage "
                           "(`SERVICE_UNAVAILABLE`, with `Retry-After`). The hub never answers a "
                           "malformed request with a 5xx.")

def envelope(name, data, meta="Meta", description=None):
    schemas[name] = obj({"data": data, "meta": S(meta), "message": STR,
                         "toast": {"type": "boolean", "const": False},
                         "responseType": {"type": "string", "const": "success"}},
                        description=description or "The success envelope.")
    return S(name)

# ---- entities -----------------------------------------------------------------------------------
product_props = {
    "id": idp("prod"), "sku": STR, "barcode": NSTR, "name": STR, "description": NSTR,
    "category": NSTR, "status": {"type": "string", "enum": ["active", "inactive", "discontinued"]},
    "uom": S("Uom"), "price": nullable(S("Money")), "version": UINT, "created_at": TIME,
    "updated_at": TIME}
schemas["Product"] = obj(product_props, description="A product. Each accepted change bumps `version`.")
schemas["ProductFields"] = obj(
    product_props, required=["id"],
    description="A product as read with `GET`: with `fields=a,b` only the listed fields and `id` "
                "are present; without `fields`, all of them.")
location_props = {"id": idp("loc"), "code": STR, "name": STR, "branch_id": STR,
                  "created_at": TIME}
schemas["Location"] = obj(location_props, description="Where stock sits.")
stock_props = {
    "product_id": STR, "location_id": STR, "branch_id": STR, "uom": S("Uom"),
    "on_hand": S("Decimal"), "allocated": S("Decimal"),
    "available": {**S("Decimal"), "description": "`on_hand − allocated`."},
    "version": UINT, "updated_at": TIME}
schemas["StockLevel"] = obj(stock_props, description="Stock of one product at one location.")
txn_props = {
     "id": {"type": "string", "description": "`txn_…`; a transfer's movement has the transfer's "
                                            "`xfer_…` id."},
     "transaction_type": {"type": "string", "enum": TXN_TYPES},
     "product_id": STR,
     "location_id": {**NSTR, "description": "Null for transfers."},
     "from_location_id": {**NSTR, "description": "Transfers only."},
     "to_location_id": {**NSTR, "description": "Transfers only."},
     "quantity": {**S("Quantity"), "description": "The movement (for counts: the posted variance "
                                                  "`counted − expected`)."},
     "reason_code": nullable(S("ReasonCode")),
     "counted": nullable(S("Quantity")), "expected": nullable(S("Quantity")),
     "unit_cost": nullable(S("Money")), "reference": NSTR,
     "op_id": {**NSTR, "description": "The pushed op it came from."},
     "device_id": {**NSTR, "description": "The device that recorded it."},
     "occurred_at": TIME, "created_at": TIME,
     "seq": {**UINT, "description": "The organization's change sequence."}}
txn_required = ["id", "transaction_type", "product_id", "location_id", "from_location_id",
                "to_location_id", "quantity", "reason_code", "counted", "expected", "unit_cost",
                "reference", "op_id", "device_id", "occurred_at", "created_at", "seq"]
schemas["Transaction"] = obj(
    {**txn_props,
     "stock": {"description": "On creation only: the stock after it (two levels, from then to, "
                              "for a transfer).",
               "oneOf": [S("StockLevel"), {"type": "array", "items": S("StockLevel")}]}},
    required=txn_required,
    description="One stock movement of the append-only ledger.")
schemas["Allocation"] = obj(
    {"id": idp("alloc"), "product_id": STR, "location_id": STR, "quantity": S("Quantity"),
     "status": {"type": "string", "enum": ["open", "released"]}, "created_at": TIME,
     "released_at": NTIME},
    description="Stock promised to an order.")
conflict_props = {
     "id": idp("conf"), "kind": {"type": "string", "enum": ["business_rule", "field"]},
     "status": {"type": "string", "enum": ["open", "resolved", "dismissed"]},
     "product_id": NSTR, "location_id": NSTR,
     "field": {**NSTR, "description": "For `field` conflicts: the product field."},
     "values": {"type": "array", "items": NSTR,
                "description": "For `field` conflicts: the competing values."},
     "rule": {**NSTR, "description": "For `business_rule` conflicts: the rule."},
     "code": {**NSTR, "description": "For `business_rule` conflicts: the rejection's error code."},
     "details": {"type": ["object", "null"], "description": "For `business_rule` conflicts: the rejection's details."},
     "version": {**UINT, "description": "Bumped when the record changes (resolution)."},
     "message": STR, "op_id": NSTR, "device_id": NSTR,
     "resolution": {"type": ["object", "null"], "description": "How it was settled."},
     "created_at": TIME, "resolved_at": NTIME}
schemas["Conflict"] = obj(
    conflict_props,
    description="A conflict record: a rejected op (`business_rule`) or a same-field clash of a "
                "`manual` field (`field`).")
schemas["TokenPair"] = obj(
    {"access_token": {"type": "string", "description": "JWT; lives one hour."},
     "refresh_token": {"type": "string", "description": "Rotates on every use."},
     "token_type": {"type": "string", "const": "Bearer"},
     "expires_in": {"type": "integer", "minimum": 0, "description": "Seconds."},
     "device_id": idp("dev"), "organization_id": STR, "branch_id": STR,
     "role": {"type": "string", "enum": ["handheld", "tablet", "desktop"]},
     "permissions": {"type": "array", "items": S("Scope")}},
    description="Device tokens.")
schemas["Health"] = obj({"status": {"type": "string", "const": "ok"}, "version": STR})
schemas["ProductDeleted"] = obj({"id": idp("prod"), "deleted": {"type": "boolean", "const": True},
                                 "version": UINT})
schemas["LocationProduct"] = obj({"product": S("Product"), "stock": S("StockLevel")})
schemas["BatchResult"] = obj(
    {"index": {**UINT, "description": "Position in the request."},
     "status": {"type": "string", "enum": ["created", "failed"]},
     "transaction": S("Transaction"), "error": S("ErrorBody")},
    required=["index", "status"],
    description="`created` carries `transaction`, `failed` carries `error`.")
schemas["BatchResponseData"] = obj({"results": {"type": "array", "items": S("BatchResult")}})
schemas["OpStatus"] = {"type": "string", "enum": ["applied", "duplicate", "rejected", "conflict"]}
schemas["OpResult"] = obj(
    {"op_id": idp("op"), "status": S("OpStatus"),
     "seq": {**UINT, "description": "The change sequence its effect (or conflict record) got."},
     "version": {**UINT, "description": "The product's version after a product op."},
     "conflict_id": {"type": "string", "description": "The conflict record opened for it."},
     "original_status": {**S("OpStatus"), "description": "For `duplicate`: the first outcome."},
     "canonical_id": {"type": "string", "description":
                      "For a `product_create` or `location_create` whose SKU (or code, in its "
                      "branch) the hub already had: the existing entity's id. The device's id is "
                      "an alias of it from then on, and the device re-points its rows to it."},
     "error": {**S("ErrorBody"), "description": "Why it was rejected."}},
    required=["op_id", "status"],
    description="What became of one pushed op. `rejected` is final: not to be retried.")
schemas["PushResponseData"] = obj(
    {"results": {"type": "array", "items": S("OpResult"),
                 "description": "One per op, in the order sent."}})
ENTITIES = ["product", "location", "stock_level", "transaction", "conflict"]
ITEM_SEQ = {**UINT, "description": "The change sequence of this state."}
def delta_item(entity, props, required, description):
    """`entity`, `id`, `seq`, `version`, then the entity's fields (as its REST resource)."""
    head = {"entity": {"type": "string", "const": entity}, "id": props["id"], "seq": ITEM_SEQ,
            "version": {**UINT, "description": "The entity's version (1 for locations and "
                                               "transactions, which never change)."}}
    fields = {k: v for k, v in props.items() if k not in head}
    name = f"{camel(entity)}DeltaItem"
    schemas[name] = obj({**head, **fields}, required=list(head) + required,
                        description=description)
    return S(name)
def camel(k):
    return "".join(p.capitalize() for p in k.split("_"))
delta_items = [
    delta_item("product",
               {**product_props,
                "doc": {"type": "string", "contentEncoding": "base64",
                        "description": "The product's whole automerge document "
                                       "(`ProductDoc::save()`, standard base64, like a "
                                       "`product_create` op's `doc`): merge it with the "
                                       "device's copy (`ProductDoc::load`, `merge`). Its fields "
                                       "read as this item's. Only in delta items, never in the "
                                       "REST Product resource or WebSocket frames."}},
               [k for k in product_props if k not in ("id", "version")] + ["doc"],
               "A product: the Product resource's fields plus its automerge document `doc`."),
    delta_item("location", location_props, [k for k in location_props if k != "id"],
               "A location (the Location resource's fields)."),
    delta_item("stock_level",
               {**stock_props, "id": {"type": "string", "pattern": "^[^@]+@[^@]+$",
                                      "description": "`{product_id}@{location_id}`."}},
               [k for k in stock_props if k != "version"],
               "The stock of one product at one location (the StockLevel resource's fields)."),
    delta_item("transaction", txn_props, [k for k in txn_required if k not in ("id", "seq")],
               "One movement (the Transaction resource's fields, without `stock`); deltas only, "
               "never in a snapshot."),
    delta_item("conflict", conflict_props,
               [k for k in conflict_props if k not in ("id", "version")],
               "A conflict record (the Conflict resource's fields)."),
]
schemas["DeltaItem"] = {
    "description": "An entity's state as of the page, in `created[]` or `updated[]`: `entity`, "
                   "`id`, `seq`, `version`, then the entity's fields.",
    "oneOf": delta_items,
    "discriminator": {"propertyName": "entity", "mapping": {
        e: f"#/components/schemas/{camel(e)}DeltaItem" for e in ENTITIES}}}
schemas["DeletedDeltaItem"] = obj(
    {"entity": {"type": "string", "enum": ENTITIES}, "id": STR, "seq": ITEM_SEQ, "version": UINT},
    description="A tombstone in `deleted[]`: only `entity`, `id`, `seq` and `version` (today only "
                "products are deleted).")
schemas["DeltaPage"] = obj(
    {"created": {"type": "array", "items": S("DeltaItem"),
                 "description": "New to the caller (every item of a snapshot)."},
     "updated": {"type": "array", "items": S("DeltaItem"), "description": "Changed."},
     "deleted": {"type": "array", "items": S("DeletedDeltaItem"), "description": "Gone."}})

# ---- request bodies -----------------------------------------------------------------------------
schemas["EnrollRequest"] = obj(
    {"enrollment_key": STR, "device_id": idp("dev"),
     "role": {"type": "string", "enum": ["handheld", "tablet", "desktop"]},
     "name": {"type": "string", "description": "Readable device name."}},
    required=["enrollment_key", "device_id", "role"])
schemas["RefreshRequest"] = obj({"grant_type": {"type": "string", "const": "refresh_token"},
                                 "refresh_token": STR})
code_s = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": r"^[A-Za-z0-9._/-]+$"}
schemas["NewProduct"] = obj(
    {"sku": code_s, "name": {"type": "string", "minLength": 1, "maxLength": 200},
     "barcode": {"type": ["string", "null"], **{k: v for k, v in code_s.items() if k != "type"}},
     "description": {"type": ["string", "null"], "maxLength": 2000},
     "category": {"type": ["string", "null"], "maxLength": 100},
     "uom": {**S("Uom"), "description": "Default `EACH`."},
     "price": nullable(S("MoneyInput")),
     "id": idp("prod", "Client-chosen id (else the hub mints one).")},
    required=["sku", "name"])
schemas["ProductPatch"] = obj(
    {"sku": code_s, "name": {"type": "string", "minLength": 1, "maxLength": 200},
     "barcode": {"type": ["string", "null"], "maxLength": 64},
     "description": {"type": ["string", "null"], "maxLength": 2000},
     "category": {"type": ["string", "null"], "maxLength": 100},
     "status": {"type": "string", "enum": ["active", "inactive", "discontinued"]},
     "price": nullable(S("MoneyInput"))},
    required=[], minProperties=1,
    description="Fields to change (at least one); `null` clears an optional field.")
schemas["NewLocation"] = obj(
    {"code": code_s, "name": {"type": "string", "minLength": 1, "maxLength": 200},
     "branch_id": {"type": "string", "description": "Default: the `X-Branch-ID` or the "
                                                   "credential's branch."},
     "id": idp("loc", "Client-chosen id.")},
    required=["code", "name"])
txn_common = {"product_id": idp("prod"), "location_id": idp("loc"),
              "reference": {"type": "string", "description": "Delivery note, order number."},
              "id": idp("txn", "Client-chosen id (a resend with the same id is the same movement).")}
def txn_variant(t, extra, req, description):
    props = {"transaction_type": {"type": "string", "const": t}, **txn_common, **extra}
    schemas[f"{t.capitalize()}Request"] = obj(
        props, required=["transaction_type", "product_id", "location_id"] + req,
        description=description)
    return S(f"{t.capitalize()}Request")
Q = S("QuantityInput")
schemas["TransactionRequest"] = {
    "description": "A receipt (+), shipment (−), adjustment (±, with `reason_code`) or count "
                   "(`counted` and the `expected` the counter saw; the hub posts `counted − "
                   "expected`).",
    "oneOf": [
        txn_variant("receipt", {"quantity": {**Q, "description": "`value > 0`."},
                                "unit_cost": {**S("MoneyInput"), "description": "`amount >= 0`."}},
                    ["quantity"], "Goods in."),
        txn_variant("shipment", {"quantity": {**Q, "description": "`value > 0`."}},
                    ["quantity"], "Goods out."),
        txn_variant("adjustment", {"quantity": {**Q, "description": "Signed."},
                                   "reason_code": S("ReasonCode")},
                    ["quantity", "reason_code"], "A correction with a reason."),
        txn_variant("count", {"counted": Q, "expected": Q}, ["counted", "expected"],
                    "A stock count."),
    ],
    "discriminator": {"propertyName": "transaction_type", "mapping": {
        t: f"#/components/schemas/{t.capitalize()}Request"
        for t in ["receipt", "shipment", "adjustment", "count"]}}}
schemas["BatchRequest"] = obj(
    {"transactions": {"type": "array", "minItems": 1, "items": S("TransactionRequest")},
     "atomic": {"type": "boolean", "default": False,
                "description": "All or none: if any item fails, none is applied."}},
    required=["transactions"])
schemas["TransferRequest"] = obj(
    {"product_id": idp("prod"), "from_location_id": idp("loc"), "to_location_id": idp("loc"),
     "quantity": {**Q, "description": "`value > 0`."}, "reference": STR,
     "id": idp("xfer", "Client-chosen id.")},
    required=["product_id", "from_location_id", "to_location_id", "quantity"])
schemas["AllocationRequest"] = obj(
    {"product_id": idp("prod"), "location_id": idp("loc"),
     "quantity": {**Q, "description": "`value > 0`, at most `available`."}, "reference": STR,
     "id": idp("alloc", "Client-chosen id.")},
    required=["product_id", "location_id", "quantity"])
schemas["ReleaseRequest"] = obj({"reference": STR}, required=[])
schemas["Resolution"] = {"type": "string", "enum": ["use_value", "dismiss"],
                         "description": "`use_value`: the field takes `value`; `dismiss`: "
                                        "acknowledged, nothing changes."}
schemas["ResolveRequest"] = obj(
    {"resolution": S("Resolution"),
     "value": {"type": ["string", "null"], "description": "For `use_value`; null clears an "
                                                          "optional field."}},
    required=["resolution"])

# ---- push ops -----------------------------------------------------------------------------------
op_bodies = {
    "transaction": obj(
        {"transaction_id": idp("txn"),
         "transaction_type": {"type": "string", "enum": ["receipt", "shipment", "adjustment", "count"]},
         "product_id": idp("prod"), "location_id": idp("loc"),
         "quantity": {**Q, "description": "Signed for adjustments; the counted quantity for counts."},
         "reason_code": S("ReasonCode"), "counted": Q, "expected": Q,
         "unit_cost": S("MoneyInput"), "reference": STR},
        required=["transaction_id", "transaction_type", "product_id", "location_id", "quantity"]),
    "transfer": obj({"transfer_id": idp("xfer"), "product_id": idp("prod"),
                     "from_location_id": idp("loc"), "to_location_id": idp("loc"), "quantity": Q}),
    "allocation": obj({"allocation_id": idp("alloc"), "product_id": idp("prod"),
                       "location_id": idp("loc"), "quantity": Q}),
    "allocation_release": obj({"allocation_id": idp("alloc"),
                               "quantity": {**Q, "description": "What the allocation held."}}),
    "product_create": obj({"product_id": idp("prod"), "sku": STR, "name": STR, "uom": S("Uom"),
                           "doc": {"type": "string", "contentEncoding": "base64",
                                   "description": "The whole automerge document."}}),
    "product_change": obj({"product_id": idp("prod"), "base_version": UINT,
                           "fields": {"type": "array", "items": STR},
                           "changes": {"type": "string", "contentEncoding": "base64",
                                       "description": "Exactly one automerge change."}}),
    "location_create": obj({"location_id": idp("loc"), "code": STR, "name": STR}),
    "conflict_resolution": obj({"conflict_id": idp("conf"), "resolution": S("Resolution"),
                                "value": NSTR}, required=["conflict_id", "resolution"]),
}
variants = []
for kind, body in op_bodies.items():
    schemas[f"{camel(kind)}OpBody"] = body
    schemas[f"{camel(kind)}Op"] = obj(
        {"op_id": idp("op", "Unique forever: takes effect at most once."),
         "device_seq": {"type": "integer", "minimum": 1,
                        "description": "The device's counter, from 1, no gaps."},
         "occurred_at": TIME, "hlc": S("Hlc"), "kind": {"type": "string", "const": kind},
         "body": S(f"{camel(kind)}OpBody")})
    variants.append(S(f"{camel(kind)}Op"))
schemas["PushOp"] = {
    "description": "One recorded op. `location_create` is our addition to the contract's kinds.",
    "oneOf": variants,
    "discriminator": {"propertyName": "kind", "mapping": {
        k: f"#/components/schemas/{camel(k)}Op" for k in op_bodies}}}
schemas["PushRequest"] = obj({"ops": {"type": "array", "maxItems": 1000, "items": S("PushOp")}})

# ---- websocket frames (documentation only) ------------------------------------------------------
channels = {"type": "string", "enum": ["inventory.updates", "products.changes", "conflicts.changes"]}
schemas["WsClientFrame"] = {"description": "Frames a client sends (JSON text).", "oneOf": [
    obj({"type": {"const": "subscribe"}, "channels": {"type": "array", "items": channels},
         "filters": obj({"location_id": STR, "product_id": STR, "product_category": STR},
                        required=[])}, required=["type", "channels"]),
    obj({"type": {"const": "unsubscribe"}, "subscription_id": STR}),
    obj({"type": {"const": "ping"}}), obj({"type": {"const": "pong"}})]}
schemas["WsServerFrame"] = {"description": "Control frames the hub sends.", "oneOf": [
    obj({"type": {"const": "subscribed"}, "subscription_id": STR,
         "channels": {"type": "array", "items": channels}}),
    obj({"type": {"const": "unsubscribed"}, "subscription_id": STR}),
    obj({"type": {"const": "ping"}}), obj({"type": {"const": "pong"}}),
    obj({"type": {"const": "error"}, "error": S("ErrorBody")})]}
schemas["WsChangeFrame"] = obj(
    {"type": {"type": "string", "enum": ["inventory.update", "product.update", "product.deleted", "conflict.created",
                                         "conflict.resolved"]},
     "seq": {**UINT, "description": "The change sequence; a gap is healed by the next delta pull."},
     "timestamp": TIME, "data": {"type": "object", "description":
        "`inventory.update`: `product_id, location_id, branch_id, previous_quantity, "
        "current_quantity, available_quantity, allocated_quantity` (decimal strings), "
        "`change_reason, transaction_id, version`. `product.update` / `product.deleted`: "
        "`product_id, version, changed_fields, created` and `product` (the Product resource; "
        "no automerge document: that comes with the delta pull). `conflict.*`: `conflict_id, "
        "kind, status, product_id, location_id, field, rule, op_id, device_id`."}},
    description="A committed change, fanned out to matching subscriptions.")

# ---- parameters, headers, responses ------------------------------------------------------------
def hparam(name, required, description, schema=None):
    return {"name": name, "in": "header", "required": required, "description": description,
            "schema": schema or STR}
def qparam(name, description, schema=None):
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema or STR}
parameters = {
    "OrganizationId": hparam("X-Organization-ID", True, "Must equal the credential's "
                             "organization, else 403 `PERMISSION_DENIED`."),
    "BranchId": hparam("X-Branch-ID", False, "Narrows the call to one branch; a branch outside "
                       "the credential's gives 403."),
    "MobileDeviceId": hparam("X-Mobile-Device-Id", False, "Sent on every call made with a device "
                             "token; must equal the token's device, else 403.", idp("dev")),
    "MobileDeviceIdRequired": hparam("X-Mobile-Device-Id", True, "The calling device; must equal "
                                     "the token's device, else 403.", idp("dev")),
    "IdempotencyKey": hparam("Idempotency-Key", True,
                             "Required (400 if missing). Scope: organization + the credential's branch "
                             "scope + endpoint + key, kept at least 24 h. Same key and body: the original result again with "
                             "status 200 and `meta.idempotent: true`; same key, other body: 422 "
                             "`IDEMPOTENCY_KEY_REUSED`.",
                             {"type": "string", "minLength": 1, "maxLength": 255}),
    "IfMatch": hparam("If-Match", False, "`\"version-N\"`: the change applies only to that "
                      "version, else 409 `CONFLICT` with `details: {current_version, "
                      "provided_version}`.", {"type": "string", "examples": ["\"version-3\""]}),
    "SyncToken": hparam("X-Sync-Token", False, "Same as `since_token`."),
    "Page": qparam("page", "Page number, from 1.", {"type": "integer", "minimum": 1, "default": 1}),
    "PageSize": qparam("pageSize", "Items per page.",
                       {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}),
    "AfterKey": qparam("after_key", "Cursor paging: `meta.pagination.nextCursor` of the previous "
                       "page. Use with `limit` instead of `page`/`pageSize`."),
    "Limit": qparam("limit", "Cursor paging: items per page.",
                    {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}),
    "ProductSort": qparam("sort", "Sort key; `-` for descending.", {"type": "string", "enum": [
        "created_at", "-created_at", "sku", "-sku", "name", "-name", "updated_at", "-updated_at"]}),
    "ProductFieldsParam": {"name": "fields", "in": "query", "required": False,
                           "description": "Comma-separated product fields to return (`id` is "
                                          "always included), e.g. `sku,name`.",
                           "style": "form", "explode": False,
                           "schema": {"type": "array", "items": {"type": "string",
                                                                 "enum": PRODUCT_FIELDS}}},
    "ProductIdPath": {"name": "id", "in": "path", "required": True, "description": "Product id.",
                      "schema": idp("prod")},
    "LocationIdPath": {"name": "id", "in": "path", "required": True,
                       "description": "Location id.", "schema": idp("loc")},
    "TransactionIdPath": {"name": "id", "in": "path", "required": True,
                          "description": "Transaction id (`txn_…`) or transfer id (`xfer_…`).",
                          "schema": STR},
    "AllocationIdPath": {"name": "id", "in": "path", "required": True,
                         "description": "Allocation id.", "schema": idp("alloc")},
    "ConflictIdPath": {"name": "id", "in": "path", "required": True,
                       "description": "Conflict id.", "schema": idp("conf")},
}
headers = {
    "XRequestId": {"description": "The request's id (`req_…`), also in `meta.request_id` / "
                                  "`error.request_id`.", "required": True, "schema": STR},
    "XRateLimitLimit": {"description": "Requests allowed per window (authenticated calls).",
                        "schema": INT},
    "XRateLimitRemaining": {"description": "Requests left in the window (authenticated calls).",
                            "schema": INT},
    "XRateLimitReset": {"description": "Seconds until the window resets (authenticated calls).",
                        "schema": INT},
    "RetryAfter": {"description": "Seconds to wait before trying again.", "required": True,
                   "schema": INT},
    "RetryAfterOptional": {"description": "Seconds to wait before trying again (on 503).",
                           "schema": INT},
    "ETag": {"description": "`\"version-N\"`: the product's version, for `If-Match`.",
             "required": True, "schema": STR},
    "XNextSyncToken": {"description": "Same as `meta.next_sync_token`.", "required": True,
                       "schema": STR},
}
RL = {"X-RateLimit-Limit": H("XRateLimitLimit"), "X-RateLimit-Remaining": H("XRateLimitRemaining"),
      "X-RateLimit-Reset": H("XRateLimitReset")}
def hdrs(auth, extra=None):
    h = {"X-Request-ID": H("XRequestId")}
    if auth:
        h.update(RL)
    h.update(extra or {})
    return h
def json_content(schema):
    return {"application/json": {"schema": schema}}
responses = {}
def err_resp(name, schema, description, extra=None):
    responses[name] = {"description": description,
                       "headers": hdrs(True, extra), "content": json_content(S(schema))}
err_resp("BadRequest", "ValidationError", "`VALIDATION_FAILED`: malformed request "
         "(bad JSON, wrong types, unknown fields, missing header), `details` maps fields to "
         "messages.")
err_resp("DeltaBadRequest", "DeltaBadRequestError", "`VALIDATION_FAILED` or "
         "`INVALID_SYNC_TOKEN` (forged, truncated or another organization's token).")
responses["Unauthorized"] = {"description": "`AUTHENTICATION_FAILED` or `TOKEN_EXPIRED`.",
                             "headers": hdrs(False),
                             "content": json_content(S("UnauthorizedError"))}
err_resp("Forbidden", "ForbiddenError", "`PERMISSION_DENIED`: missing scope, or an "
         "organization, branch or device header that is not the credential's.")
err_resp("NotFound", "NotFoundError", "`NOT_FOUND`.")
err_resp("Conflict", "ConflictError", "`CONFLICT`.")
err_resp("PayloadTooLarge", "PayloadTooLargeError", "`PAYLOAD_TOO_LARGE`.")
err_resp("Unprocessable", "UnprocessableError", "`IDEMPOTENCY_KEY_REUSED` or "
         "`BUSINESS_RULE_VIOLATION` (`details.rule`).")
err_resp("TooManyRequests", "RateLimitedError", "`RATE_LIMIT_EXCEEDED`: the credential's "
         "requests per window, or its client address's budget of failed authentications (unknown "
         "API keys, tokens the hub did not sign) is used up.",
         {"Retry-After": H("RetryAfter")})
responses["ServerError"] = {"description": "`INTERNAL_ERROR` (a bug) or `SERVICE_UNAVAILABLE` "
                                           "(with `Retry-After`).",
                            "headers": hdrs(False, {"Retry-After": H("RetryAfterOptional")}),
                            "content": json_content(S("ServerErrorEnvelope"))}

# ---- operations ---------------------------------------------------------------------------------
paths = {}
def security(scopes, bearer_only=False):
    if bearer_only:
        return [{"bearerAuth": scopes}]
    return [{"bearerAuth": scopes}, {"apiKey": scopes}]

def op(method, path, op_id, tag, summary, *, scopes=None, auth=True, org=True, params=(),
       body=None, ok=None, ok_status="200", errors=(), description=None, replay=False,
       ok_headers=None, bearer_only=False, extra_responses=None, body_required=True):
    o = {"operationId": op_id, "tags": [tag], "summary": summary}
    if description:
        o["description"] = description
    plist = []
    if auth and org:
        plist += [P("OrganizationId"), P("BranchId")]
    if auth and not bearer_only:
        plist.append(P("MobileDeviceId"))
    plist += list(params)
    if plist:
        o["parameters"] = plist
    if body is not None:
        o["requestBody"] = {"required": body_required, "content": body}
    o["security"] = security(scopes or [], bearer_only) if auth else []
    rs = {}
    if ok is not None:
        desc, schema = ok
        rs[ok_status] = {"description": desc, "headers": hdrs(auth, ok_headers),
                         "content": json_content(schema)}
        if replay:
            rs["200"] = {"description": "Replay of an `Idempotency-Key` with the same body: the "
                                        "original result (`meta.idempotent: true`, "
                                        "`meta.original_created_at`).",
                         "headers": hdrs(auth, ok_headers), "content": json_content(schema)}
    if extra_responses:
        rs.update(extra_responses)
    # 413 anywhere: the body limit applies before routing, to every method.
    std = ["400", "401", "403", "413", "429", "5XX"] if auth else ["413"]
    names = {"400": "BadRequest", "401": "Unauthorized", "403": "Forbidden", "404": "NotFound",
             "409": "Conflict", "413": "PayloadTooLarge", "422": "Unprocessable",
             "429": "TooManyRequests", "5XX": "ServerError"}
    for code in sorted(set(std) | set(errors), key=lambda c: c.replace("X", "0")):
        if code not in rs:
            rs[code] = R("responses", names[code])
    o["responses"] = rs
    paths.setdefault(path, {})[method] = o
    return o

def jbody(schema):
    return json_content(schema)

# system
op("get", "/v1/health", "getHealth", "system", "Liveness", auth=False,
   ok=("The hub is up.", envelope("HealthResponse", S("Health"))), errors=["5XX"])
op("get", "/v1/openapi.json", "getOpenApi", "system", "This document", auth=False,
   ok=("The OpenAPI document itself (not enveloped).", {"type": "object"}), errors=["5XX"])
paths["/metrics"] = {"get": {
    "operationId": "getMetrics", "tags": ["system"], "summary": "Prometheus metrics",
    "description": "Prometheus text exposition format. Outside `/v1`, no auth.",
    "security": [],
    "responses": {"200": {"description": "Metrics.", "headers": hdrs(False),
                          "content": {"text/plain": {"schema": {"type": "string"}}}},
                  "413": R("responses", "PayloadTooLarge"),
                  "5XX": R("responses", "ServerError")}}}

# auth
token_env = envelope("TokenPairResponse", S("TokenPair"))
op("post", "/v1/auth/devices", "enrollDevice", "auth", "Enroll a device", auth=False,
   description="Trades an enrollment key for device tokens. No organization header: the key "
               "names the organization and branch.",
   body=jbody(S("EnrollRequest")),
   ok=("Enrolled.", token_env), ok_status="201",
   errors=["400", "401", "409", "413", "429", "5XX"],
   extra_responses={
       "401": {"description": "`AUTHENTICATION_FAILED`: unknown or revoked enrollment key.",
               "headers": hdrs(False), "content": json_content(S("UnauthorizedError"))},
       "409": {"description": "`CONFLICT`: the device id is enrolled in another organization "
                              "or another branch.",
               "headers": hdrs(False), "content": json_content(S("ConflictError"))}})
op("post", "/v1/oauth/token", "refreshToken", "auth", "Refresh device tokens", auth=False,
   description="Rotates the refresh token. Presenting a refresh token that was already used "
               "revokes the device's whole token family (401).",
   body={"application/json": {"schema": S("RefreshRequest")},
         "application/x-www-form-urlencoded": {"schema": S("RefreshRequest")}},
   ok=("New tokens.", token_env), errors=["400", "401", "413", "429", "5XX"],
   extra_responses={
       "401": {"description": "`AUTHENTICATION_FAILED`: unknown, expired or reused refresh "
                              "token (a reuse revokes the family).",
               "headers": hdrs(False), "content": json_content(S("UnauthorizedError"))}})

# products
R_READ, R_WRITE = ["inventory.products.read"], ["inventory.products.write"]
etag = {"ETag": H("ETag")}
op("get", "/v1/products", "listProducts", "products", "List products", scopes=R_READ,
   params=[P("Page"), P("PageSize"), P("AfterKey"), P("Limit"), P("ProductSort"),
           P("ProductFieldsParam"),
           qparam("filters[status]", "Only this status.",
                  {"type": "string", "enum": ["active", "inactive", "discontinued"]}),
           qparam("filters[category]", "Only this category."),
           qparam("filters[sku]", "Only this SKU."),
           qparam("filters[barcode]", "Only this barcode.")],
   ok=("A page of products.", envelope("ProductListResponse",
                                       {"type": "array", "items": S("ProductFields")}, "ListMeta")))
prod_env = envelope("ProductResponse", S("Product"))
op("post", "/v1/products", "createProduct", "products", "Create a product", scopes=R_WRITE,
   params=[P("IdempotencyKey")], body=jbody(S("NewProduct")),
   ok=("Created.", prod_env), ok_status="201", replay=True, ok_headers=etag,
   errors=["409", "413", "422"])
op("get", "/v1/products/{id}", "getProduct", "products", "Read a product", scopes=R_READ,
   params=[P("ProductIdPath"), P("ProductFieldsParam")],
   ok=("The product.", envelope("ProductFieldsResponse", S("ProductFields"))),
   ok_headers=etag, errors=["404"])
op("put", "/v1/products/{id}", "updateProduct", "products", "Change a product", scopes=R_WRITE,
   description="Field by field: only the given fields change. Each accepted change bumps "
               "`version`.",
   params=[P("ProductIdPath"), P("IfMatch")], body=jbody(S("ProductPatch")),
   ok=("Changed.", prod_env), ok_headers=etag, errors=["404", "409", "413"])
op("delete", "/v1/products/{id}", "deleteProduct", "products", "Delete a product",
   scopes=R_WRITE, params=[P("ProductIdPath"), P("IfMatch")],
   ok=("Deleted.", envelope("ProductDeletedResponse", S("ProductDeleted"))),
   errors=["404", "409"])
stock_list = envelope("StockLevelListResponse", {"type": "array", "items": S("StockLevel")},
                      "ListMeta")
op("get", "/v1/products/{id}/inventory", "getProductInventory", "inventory",
   "Stock of a product at every location", scopes=R_READ,
   params=[P("ProductIdPath"), P("Page"), P("PageSize")],
   ok=("Stock levels.", stock_list), errors=["404"])

# locations
op("get", "/v1/inventory/locations", "listLocations", "locations", "List locations",
   scopes=R_READ, params=[P("Page"), P("PageSize")],
   ok=("A page of locations.", envelope("LocationListResponse",
                                        {"type": "array", "items": S("Location")}, "ListMeta")))
op("post", "/v1/inventory/locations", "createLocation", "locations", "Create a location",
   scopes=R_WRITE, params=[P("IdempotencyKey")], body=jbody(S("NewLocation")),
   ok=("Created.", envelope("LocationResponse", S("Location"))), ok_status="201", replay=True,
   errors=["409", "413", "422"])
op("get", "/v1/inventory/locations/{id}/products", "listLocationProducts", "locations",
   "Products stocked at a location", scopes=R_READ,
   params=[P("LocationIdPath"), P("Page"), P("PageSize")],
   ok=("Products with their stock here.", envelope(
       "LocationProductListResponse", {"type": "array", "items": S("LocationProduct")},
       "ListMeta")), errors=["404"])
op("get", "/v1/locations/{id}/inventory", "getLocationInventory", "inventory",
   "Stock at a location", scopes=R_READ,
   params=[P("LocationIdPath"), P("Page"), P("PageSize")],
   ok=("Stock levels.", stock_list), errors=["404"])

# transactions
T_CREATE, T_READ = ["inventory.transactions.create"], ["inventory.transactions.read"]
txn_env = envelope("TransactionResponse", S("Transaction"),
                   description="The success envelope; on creation `data.stock` holds the stock "
                               "after the movement.")
op("post", "/v1/inventory/transactions", "createTransaction", "inventory", "Record a movement",
   scopes=T_CREATE, params=[P("IdempotencyKey")], body=jbody(S("TransactionRequest")),
   description="A movement that would take `on_hand` below zero is refused (422 "
               "`no_negative_inventory`), never applied, and a conflict record is opened.",
   ok=("Recorded; `data.stock` is the stock after it.", txn_env), ok_status="201", replay=True,
   errors=["404", "409", "413", "422"])
op("post", "/v1/inventory/transactions/batch", "createTransactionBatch", "inventory",
   "Record several movements", scopes=T_CREATE, params=[P("IdempotencyKey")],
   body=jbody(S("BatchRequest")),
   description="One result per item, in order. With `atomic: true` either all items are created "
               "or none (every item then reports `failed`).",
   ok=("Per-item results.", envelope("BatchResponse", S("BatchResponseData"))),
   errors=["413", "422"])
op("get", "/v1/inventory/transactions/{id}", "getTransaction", "inventory", "Read a movement",
   scopes=T_READ, params=[P("TransactionIdPath")],
   description="A transfer id (`xfer_…`) returns the transfer movement.",
   ok=("The movement.", txn_env), errors=["404"])
op("get", "/v1/inventory/transactions", "listTransactions", "inventory", "List movements",
   scopes=T_READ,
   params=[qparam("product_id", "Only this product."), qparam("location_id", "Only this "
           "location (either leg of a transfer)."),
           qparam("start_date", "Only movements that occurred at or after this time (RFC 3339).",
                  {"type": "string", "format": "date-time"}),
           qparam("end_date", "Only movements that occurred at or before this time (RFC 3339).",
                  {"type": "string", "format": "date-time"}),
           P("Page"), P("PageSize")],
   ok=("A page of movements.", envelope("TransactionListResponse",
                                        {"type": "array", "items": S("Transaction")}, "ListMeta")))
op("post", "/v1/inventory/transfers", "createTransfer", "inventory",
   "Move stock between locations", scopes=T_CREATE, params=[P("IdempotencyKey")],
   body=jbody(S("TransferRequest")),
   description="Atomic: both legs or neither. `data.stock` is `[from, to]` after the move.",
   ok=("Moved.", txn_env), ok_status="201", replay=True, errors=["404", "409", "413", "422"])

# allocations
A_MANAGE, A_READ = ["inventory.allocations.manage"], ["inventory.allocations.read"]
alloc_env = envelope("AllocationResponse", S("Allocation"))
op("post", "/v1/allocations", "createAllocation", "allocations", "Allocate stock",
   scopes=A_MANAGE, params=[P("IdempotencyKey")], body=jbody(S("AllocationRequest")),
   description="May not exceed `available` (422 `allocation_within_available`).",
   ok=("Allocated.", alloc_env), ok_status="201", replay=True,
   errors=["404", "409", "413", "422"])
op("get", "/v1/allocations/{id}", "getAllocation", "allocations", "Read an allocation",
   scopes=A_READ, params=[P("AllocationIdPath")], ok=("The allocation.", alloc_env),
   errors=["404"])
op("post", "/v1/allocations/{id}/releases", "releaseAllocation", "allocations",
   "Release an allocation", scopes=A_MANAGE, params=[P("AllocationIdPath"), P("IdempotencyKey")],
   body=jbody(S("ReleaseRequest")), body_required=False,
   description="Releases the whole allocation; a second release is refused (422 "
               "`allocation_open`).",
   ok=("Released (`status: released`).", alloc_env), errors=["404", "413", "422"])

# conflicts
op("get", "/v1/conflicts", "listConflicts", "conflicts", "List conflict records",
   scopes=R_READ,
   params=[qparam("status", "Only this status.",
                  {"type": "string", "enum": ["open", "resolved", "dismissed"]}),
           P("Page"), P("PageSize")],
   ok=("A page of conflicts.", envelope("ConflictListResponse",
                                        {"type": "array", "items": S("Conflict")}, "ListMeta")))
conf_env = envelope("ConflictResponse", S("Conflict"))
op("get", "/v1/conflicts/{id}", "getConflict", "conflicts", "Read a conflict record",
   scopes=R_READ, params=[P("ConflictIdPath")], ok=("The conflict.", conf_env), errors=["404"])
op("post", "/v1/conflicts/{id}/resolve", "resolveConflict", "conflicts", "Settle a conflict",
   scopes=R_WRITE, params=[P("ConflictIdPath"), P("IdempotencyKey")],
   body=jbody(S("ResolveRequest")),
   ok=("Settled.", conf_env), errors=["404", "409", "413", "422"])

# sync
op("post", "/v1/sync/push", "pushOps", "sync", "Push recorded ops", scopes=[],
   bearer_only=True, params=[P("MobileDeviceIdRequired"), P("IdempotencyKey")],
   body=jbody(S("PushRequest")),
   description="A device's ops, applied in `device_seq` order. Each `op_id` takes effect at most "
               "once, forever: a resend answers `duplicate` with `original_status`. Each op needs "
               "the scope of its kind and acts in the device's branch only (another branch's "
               "records are `NOT_FOUND` or `PERMISSION_DENIED` to it). An op whose `hlc` is more "
               "than 5 minutes ahead of the hub's clock is `rejected` (`VALIDATION_FAILED` on "
               "`hlc`); its `device_seq` is used up like any rejected op's, so the ops after it "
               "go on.",
   ok=("One result per op.", envelope("PushResponse", S("PushResponseData"))),
   errors=["413", "422"])
op("get", "/v1/inventory/delta", "getDelta", "sync", "Pull changes", scopes=R_READ,
   params=[qparam("since_token", "The previous page's `next_sync_token`; none for a full "
                                 "snapshot (paged)."),
           qparam("limit", "Items per page.",
                  {"type": "integer", "minimum": 1, "maximum": 1000, "default": 500}),
           P("SyncToken")],
   description="Tokens are opaque and signed. A token older than the hub's retention gives "
               "`full_sync_required: true`: re-snapshot (keeping unsent ops). Product items "
               "carry the product's automerge document (`doc`, base64) for the device to merge. "
               "The next token is also in the `X-Next-Sync-Token` header, so a client may ask "
               "for the next page before it has parsed this one.",
   ok=("A page of changes.", envelope("DeltaResponse", S("DeltaPage"), "DeltaMeta")),
   ok_headers={"X-Next-Sync-Token": H("XNextSyncToken")},
   extra_responses={"400": R("responses", "DeltaBadRequest")})
ws = op("get", "/v1/ws", "openWebSocket", "sync", "Live changes (WebSocket)", scopes=R_READ,
        bearer_only=True, params=[P("MobileDeviceIdRequired")],
        description=(
            "Upgrades to a WebSocket (same headers as push). Frames are JSON text.\n\n"
            "Client → hub (`WsClientFrame`): `{\"type\":\"subscribe\",\"channels\":[\"inventory."
            "updates\",\"products.changes\",\"conflicts.changes\"],\"filters\":{\"location_id\","
            "\"product_id\",\"product_category\"}}`, `{\"type\":\"unsubscribe\","
            "\"subscription_id\"}`, `{\"type\":\"ping\"}`, `{\"type\":\"pong\"}`.\n\n"
            "Hub → client (`WsServerFrame`, `WsChangeFrame`): `subscribed` `{subscription_id, "
            "channels}`, `unsubscribed`, `ping`, `pong`, `error` `{error: {code, message}}` (a bad "
            "frame; the connection stays up), and change frames `inventory.update`, "
            "`product.update`, `conflict.created`, `conflict.resolved` `{type, seq, timestamp, "
            "data}`.\n\nThe hub pings; a silent peer is dropped. When the token's refresh "
            "family is revoked (a reused refresh token), the hub closes the connection (1008). "
            "A live frame is a hint to pull: the delta token stays the single source of truth, "
            "and a gap in `seq` is healed by the next pull."),
        extra_responses={"101": {"description": "Switching Protocols: the connection is now a "
                                                "WebSocket.", "headers": hdrs(True)}})
ws["parameters"] += [
    hparam("Connection", True, "`Upgrade`."), hparam("Upgrade", True, "`websocket`."),
    hparam("Sec-WebSocket-Version", True, "`13`."), hparam("Sec-WebSocket-Key", True, "RFC 6455.")]

# order responses by code
for item in paths.values():
    for o in item.values():
        o["responses"] = dict(sorted(o["responses"].items(), key=lambda kv: kv[0].replace("X", "0")))

doc = {
    "openapi": "3.1.0",
    "info": {
        "title": "stocksync hub",
        "version": "1",
        "description": (
            "The hub's REST API, push/pull sync and WebSocket (wire contract v1; see "
            "`docs/protocol.md`).\n\n"
            "Every JSON response is an envelope: success `{data, meta: {request_id, …}, message, "
            "toast: false, responseType: \"success\"}`, error `{data: null, error: {code, message, "
            "details?, request_id, timestamp}, message, toast: false, responseType: \"error\"}`. "
            "Lists carry `meta.pagination`. Decimals (quantities, money) are JSON strings with at "
            "most four places; times are RFC 3339 UTC; ids are strings with a type prefix.\n\n"
            "Credentials: a device token (`Authorization: Bearer`) or an API key (`X-API-Key`). "
            "The role names in the security requirements are the permission scopes an operation "
            "needs; `inventory.admin` grants all. No request, however malformed, gets a 5xx.")},
    "servers": [{"url": "/"}],
    "tags": [{"name": n, "description": d} for n, d in [
        ("system", "Health, this document, metrics."),
        ("auth", "Device enrollment and token refresh."),
        ("products", "The product catalogue."),
        ("locations", "Where stock sits."),
        ("inventory", "Stock levels and the movement ledger."),
        ("allocations", "Stock promised to orders."),
        ("conflicts", "Rejected ops and manual field clashes."),
        ("sync", "Push, pull and live changes.")]],
    "security": security([]),
    "paths": paths,
    "components": {
        "securitySchemes": {
            "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                           "description": "Device access token (claims `sub`, `org`, `branch`, "
                                          "`role`, `permissions`, `exp`, `iat`); one hour."},
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                       "description": "Integration key configured on the hub."}},
        "parameters": parameters,
        "headers": headers,
        "responses": responses,
        "schemas": dict(schemas),
    },
}
import os
out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs", "openapi.json")
with open(out, "w") as f:
    json.dump(doc, f, indent=2, ensure_ascii=False)
    f.write("\n")

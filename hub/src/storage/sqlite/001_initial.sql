-- The hub's schema. Every row belongs to one organization; every key starts with org_id so no
-- query can reach another tenant's rows by id alone.

CREATE TABLE organizations (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    feed_seq    INTEGER NOT NULL DEFAULT 0,   -- last change sequence handed out
    purged_seq  INTEGER NOT NULL DEFAULT 0,   -- tombstones at or below this are gone
    created_at  TEXT NOT NULL
);

CREATE TABLE branches (
    org_id  TEXT NOT NULL REFERENCES organizations(id),
    id      TEXT NOT NULL,
    name    TEXT NOT NULL,
    PRIMARY KEY (org_id, id)
);

CREATE TABLE api_keys (
    key_hash   TEXT PRIMARY KEY,
    id         TEXT NOT NULL UNIQUE,
    org_id     TEXT NOT NULL REFERENCES organizations(id),
    branch_id  TEXT,
    name       TEXT NOT NULL,
    scopes     TEXT NOT NULL,                -- space separated
    created_at TEXT NOT NULL
);

CREATE TABLE enrollment_keys (
    key_hash   TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES organizations(id),
    branch_id  TEXT NOT NULL,
    scopes     TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE devices (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES organizations(id),
    branch_id   TEXT NOT NULL,
    role        TEXT NOT NULL,
    name        TEXT NOT NULL,
    scopes      TEXT NOT NULL,
    last_seq    INTEGER NOT NULL DEFAULT 0,   -- highest device_seq applied
    enrolled_at TEXT NOT NULL
);

CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    device_id  TEXT NOT NULL REFERENCES devices(id),
    family_id  TEXT NOT NULL,
    used_at    TEXT,
    expires_at INTEGER NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX refresh_tokens_family ON refresh_tokens(family_id);

CREATE TABLE revoked_families (
    family_id  TEXT PRIMARY KEY,
    revoked_at TEXT NOT NULL
);

CREATE TABLE idempotency (
    org_id       TEXT NOT NULL,
    endpoint     TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status       INTEGER NOT NULL,
    response     TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (org_id, endpoint, key)
);
CREATE INDEX idempotency_age ON idempotency(created_at);

CREATE TABLE locations (
    org_id     TEXT NOT NULL REFERENCES organizations(id),
    id         TEXT NOT NULL,
    branch_id  TEXT NOT NULL,
    code       TEXT NOT NULL,
    name       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, code)
);

CREATE TABLE products (
    org_id      TEXT NOT NULL REFERENCES organizations(id),
    id          TEXT NOT NULL,
    sku         TEXT NOT NULL,
    barcode     TEXT,
    name        TEXT NOT NULL,
    description TEXT,
    category    TEXT,
    status      TEXT NOT NULL,
    uom         TEXT NOT NULL,
    price       TEXT,                          -- "19.99 EUR"
    version     INTEGER NOT NULL,
    doc         BLOB NOT NULL,                 -- automerge document
    field_hlcs  TEXT NOT NULL DEFAULT '{}',    -- field -> HLC of the write that holds it
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    deleted_at  TEXT,
    PRIMARY KEY (org_id, id)
);
CREATE UNIQUE INDEX products_sku ON products(org_id, sku) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX products_barcode ON products(org_id, barcode) WHERE deleted_at IS NULL AND barcode IS NOT NULL;
CREATE INDEX products_created ON products(org_id, created_at, id);

CREATE TABLE stock (
    org_id      TEXT NOT NULL,
    product_id  TEXT NOT NULL,
    location_id TEXT NOT NULL,
    on_hand     INTEGER NOT NULL,              -- ten-thousandths
    allocated   INTEGER NOT NULL,
    version     INTEGER NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (org_id, product_id, location_id)
) WITHOUT ROWID;
CREATE INDEX stock_location ON stock(org_id, location_id);

-- One row per movement (a transfer is one movement with two legs).
CREATE TABLE movements (
    org_id           TEXT NOT NULL,
    id               TEXT NOT NULL,
    transaction_type TEXT NOT NULL,
    product_id       TEXT NOT NULL,
    location_id      TEXT,
    from_location_id TEXT,
    to_location_id   TEXT,
    body             TEXT NOT NULL,            -- the Transaction resource as JSON
    op_id            TEXT,
    device_id        TEXT,
    occurred_at      TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    seq              INTEGER NOT NULL,
    PRIMARY KEY (org_id, id)
);
CREATE INDEX movements_product ON movements(org_id, product_id, created_at);
CREATE INDEX movements_location ON movements(org_id, location_id, created_at);
CREATE INDEX movements_created ON movements(org_id, created_at, id);

CREATE TABLE allocations (
    org_id      TEXT NOT NULL,
    id          TEXT NOT NULL,
    product_id  TEXT NOT NULL,
    location_id TEXT NOT NULL,
    quantity    TEXT NOT NULL,                 -- Quantity JSON
    status      TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    released_at TEXT,
    PRIMARY KEY (org_id, id)
);

-- Every op ever pushed: an op_id takes effect at most once, forever.
CREATE TABLE ops (
    org_id     TEXT NOT NULL,
    op_id      TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    device_seq INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    status     TEXT NOT NULL,
    result     TEXT NOT NULL,                  -- the first OpResult as JSON
    created_at TEXT NOT NULL,
    PRIMARY KEY (org_id, op_id)
) WITHOUT ROWID;

CREATE TABLE conflicts (
    org_id      TEXT NOT NULL,
    id          TEXT NOT NULL,
    status      TEXT NOT NULL,
    product_id  TEXT,
    location_id TEXT,
    body        TEXT NOT NULL,                 -- the Conflict resource as JSON
    created_at  TEXT NOT NULL,
    PRIMARY KEY (org_id, id)
);
CREATE INDEX conflicts_status ON conflicts(org_id, status, created_at);

-- The change feed: the latest state of every entity, stamped with the organization's sequence
-- of its last change. A delta page is the rows above the token's sequence.
CREATE TABLE feed (
    org_id      TEXT NOT NULL,
    entity      TEXT NOT NULL,
    entity_id   TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    branch_id   TEXT,                          -- NULL: visible to every branch
    created_seq INTEGER NOT NULL,
    deleted     INTEGER NOT NULL DEFAULT 0,
    version     INTEGER NOT NULL,
    data        TEXT NOT NULL,
    PRIMARY KEY (org_id, entity, entity_id)
);
CREATE UNIQUE INDEX feed_seq ON feed(org_id, seq);

-- Running state digests per (organization, branch); '' holds the branch-less part (products).
CREATE TABLE digests (
    org_id    TEXT NOT NULL,
    branch_id TEXT NOT NULL,
    digest    TEXT NOT NULL,
    PRIMARY KEY (org_id, branch_id)
);

-- The device, its catalog, the stock ledger with its materialised view, and the outbox.
-- Quantities and money are INTEGER counts of ten-thousandths (exact; see stocksync_model::Decimal).

-- hlc_* keep the clock past remote timestamps it observed; local ticks resume from the newest
-- outbox op, so a local write does not update this row.
CREATE TABLE device (
    singleton   INTEGER PRIMARY KEY CHECK (singleton = 1),
    device_id   TEXT NOT NULL,
    org_id      TEXT NOT NULL,
    branch_id   TEXT NOT NULL,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('handheld', 'tablet', 'desktop')),
    hlc_wall_ms INTEGER NOT NULL DEFAULT 0,
    hlc_counter INTEGER NOT NULL DEFAULT 0,
    created_at  TEXT NOT NULL
) STRICT;

CREATE TABLE locations (
    id         TEXT PRIMARY KEY,
    code       TEXT NOT NULL UNIQUE,
    name       TEXT NOT NULL,
    created_at TEXT NOT NULL
) STRICT;

CREATE TABLE products (
    id             TEXT PRIMARY KEY,
    sku            TEXT NOT NULL UNIQUE,
    barcode        TEXT UNIQUE,
    name           TEXT NOT NULL,
    description    TEXT,
    category       TEXT,
    status         TEXT NOT NULL,
    uom            TEXT NOT NULL,
    price_amount   INTEGER,
    price_currency TEXT,
    version        INTEGER NOT NULL DEFAULT 0,
    doc            BLOB NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
) STRICT;

-- One row per leg; a transfer has two legs sharing op_id and movement_id.
CREATE TABLE ledger (
    seq             INTEGER PRIMARY KEY,
    op_id           TEXT NOT NULL,
    leg             INTEGER NOT NULL,
    movement_id     TEXT NOT NULL,
    kind            TEXT NOT NULL,
    product_id      TEXT NOT NULL REFERENCES products (id),
    location_id     TEXT NOT NULL REFERENCES locations (id),
    on_hand_delta   INTEGER NOT NULL,
    allocated_delta INTEGER NOT NULL,
    reason_code     TEXT,
    reference       TEXT,
    occurred_at     TEXT NOT NULL,
    -- pending: recorded here, not yet confirmed by the hub; synced: confirmed.
    state           TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'synced')),
    UNIQUE (op_id, leg)
) STRICT;
CREATE INDEX ledger_by_product ON ledger (product_id, seq);

-- The materialised view: on_hand = synced_on_hand + pending, available = on_hand - allocated.
CREATE TABLE stock (
    product_id     TEXT NOT NULL REFERENCES products (id),
    location_id    TEXT NOT NULL REFERENCES locations (id),
    synced_on_hand INTEGER NOT NULL DEFAULT 0,
    pending        INTEGER NOT NULL DEFAULT 0,
    allocated      INTEGER NOT NULL DEFAULT 0,
    updated_at     TEXT NOT NULL,
    PRIMARY KEY (product_id, location_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX stock_by_location ON stock (location_id);

-- device_seq is the rowid: the next op takes max + 1, so a local write dirties no counter row.
-- No index on state: the ops still to push are found by walking device_seq upwards from the
-- oldest unacked one, and every index here is one more page written per scan.
CREATE TABLE outbox (
    device_seq  INTEGER PRIMARY KEY,
    op_id       TEXT NOT NULL UNIQUE,
    kind        TEXT NOT NULL,
    body        TEXT NOT NULL,
    hlc         TEXT NOT NULL,
    state       TEXT NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'in_flight', 'acked', 'rejected', 'parked')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
) STRICT;

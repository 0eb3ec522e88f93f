-- Sync with the hub: what the hub last said about each row, the credentials and pull position,
-- the hub's conflicts, and rows waiting for the rows they refer to.

-- Stock: the hub's on hand and allocated ("synced") plus this device's unconfirmed legs
-- ("pending"). `allocated` was all local until now, so it becomes the pending part.
ALTER TABLE stock RENAME COLUMN allocated TO pending_allocated;
ALTER TABLE stock ADD COLUMN synced_allocated INTEGER NOT NULL DEFAULT 0;
-- The hub's feed sequence of the state last applied (0: never heard from the hub), and the
-- snapshot that last confirmed the row (rows a snapshot did not confirm are swept after it).
ALTER TABLE stock ADD COLUMN hub_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE stock ADD COLUMN snap_epoch INTEGER NOT NULL DEFAULT 0;
ALTER TABLE products ADD COLUMN hub_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE products ADD COLUMN snap_epoch INTEGER NOT NULL DEFAULT 0;
ALTER TABLE products ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
ALTER TABLE locations ADD COLUMN hub_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE locations ADD COLUMN snap_epoch INTEGER NOT NULL DEFAULT 0;

-- Ledger legs of an op the hub rejected stay visible, marked `rejected`, and count nowhere.
CREATE TABLE ledger_v3 (
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
    state           TEXT NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'synced', 'rejected')),
    UNIQUE (op_id, leg)
) STRICT;
INSERT INTO ledger_v3 SELECT * FROM ledger;
DROP TABLE ledger;
ALTER TABLE ledger_v3 RENAME TO ledger;
CREATE INDEX ledger_by_product ON ledger (product_id, seq);

CREATE TABLE allocations_v3 (
    id          TEXT PRIMARY KEY,
    product_id  TEXT NOT NULL REFERENCES products (id),
    location_id TEXT NOT NULL REFERENCES locations (id),
    quantity    INTEGER NOT NULL,
    status      TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'released', 'rejected')),
    op_id       TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    released_at TEXT
) STRICT;
INSERT INTO allocations_v3 SELECT * FROM allocations;
DROP TABLE allocations;
ALTER TABLE allocations_v3 RENAME TO allocations;
CREATE INDEX allocations_open ON allocations (product_id, location_id) WHERE status = 'open';

-- The outbox keeps the hub's answer to each op and when it came.
ALTER TABLE outbox ADD COLUMN result TEXT;
ALTER TABLE outbox ADD COLUMN acked_at TEXT;
CREATE INDEX outbox_unsent ON outbox (device_seq) WHERE state IN ('pending', 'in_flight');

CREATE TABLE sync_state (
    singleton         INTEGER PRIMARY KEY CHECK (singleton = 1),
    hub_url           TEXT,
    access_token      TEXT,
    refresh_token     TEXT,
    access_expires_at TEXT,
    enrolled_at       TEXT,
    -- The signed delta token of the last applied page (NULL: next pull is a snapshot).
    delta_token       TEXT,
    -- Snapshots: each one gets an epoch; rows it did not confirm are swept when it completes.
    snapshot_epoch    INTEGER NOT NULL DEFAULT 0,
    snapshot_active   INTEGER NOT NULL DEFAULT 0,
    snapshot_reason   TEXT,
    last_push_at      TEXT,
    last_pull_at      TEXT,
    last_checksum_at  TEXT,
    repairs           INTEGER NOT NULL DEFAULT 0,
    last_error        TEXT
) STRICT;
INSERT INTO sync_state (singleton) VALUES (1);

-- The hub's conflict records (manual queue, rejected ops), as last pulled.
CREATE TABLE conflicts (
    id               TEXT PRIMARY KEY,
    kind             TEXT NOT NULL,
    status           TEXT NOT NULL,
    product_id       TEXT,
    location_id      TEXT,
    field            TEXT,
    rule             TEXT,
    message          TEXT,
    op_id            TEXT,
    data             TEXT NOT NULL,
    hub_seq          INTEGER NOT NULL,
    -- A resolution this device sent and the hub has not confirmed yet.
    local_resolution TEXT,
    created_at       TEXT NOT NULL
) STRICT;
CREATE INDEX conflicts_open ON conflicts (created_at) WHERE status = 'open';

-- Pulled rows that cannot apply yet (their product or location has not arrived, or a unique
-- code is still held by a local row): retried after every page.
CREATE TABLE staged (
    entity TEXT NOT NULL,
    id     TEXT NOT NULL,
    seq    INTEGER NOT NULL,
    item   TEXT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (entity, id)
) STRICT;

-- Open and released allocations, so a release can name the allocation it gives back.
CREATE TABLE allocations (
    id          TEXT PRIMARY KEY,
    product_id  TEXT NOT NULL REFERENCES products (id),
    location_id TEXT NOT NULL REFERENCES locations (id),
    quantity    INTEGER NOT NULL,
    status      TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'released')),
    op_id       TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    released_at TEXT
) STRICT;
CREATE INDEX allocations_open ON allocations (product_id, location_id) WHERE status = 'open';

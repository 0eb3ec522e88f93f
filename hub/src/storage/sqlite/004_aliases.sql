-- A create that collided on a natural key (a product's SKU, a location's code in its branch) is
-- the same entity as the one already there: the device's id stays an alias of it, so ops that
-- still name the device's id apply to the existing entity. Kept forever, like op outcomes.
CREATE TABLE aliases (
    org_id       TEXT NOT NULL,
    alias_id     TEXT NOT NULL,
    canonical_id TEXT NOT NULL,
    entity       TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (org_id, alias_id)
) WITHOUT ROWID;

-- Location codes are unique within a branch, not across the organization: aisle A-01 of one
-- store is not aisle A-01 of another, and a device of one branch must neither be refused nor
-- merged into another branch's location because of a code it cannot see.
CREATE TABLE locations_v3 (
    org_id     TEXT NOT NULL REFERENCES organizations(id),
    id         TEXT NOT NULL,
    branch_id  TEXT NOT NULL,
    code       TEXT NOT NULL,
    name       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, branch_id, code)
);
INSERT INTO locations_v3 (org_id, id, branch_id, code, name, created_at)
    SELECT org_id, id, branch_id, code, name, created_at FROM locations;
DROP TABLE locations;
ALTER TABLE locations_v3 RENAME TO locations;

-- A conflict record sits in one branch's queue, so a branch-limited credential lists, reads and
-- settles only its own branch's (and the branch-less ones: a product's field clash concerns every
-- branch). A rejected op's record belongs to the branch of the device that pushed it (the op was
-- made there), falling back to its location's branch.
ALTER TABLE conflicts ADD COLUMN branch_id TEXT;
UPDATE conflicts SET branch_id = COALESCE(
    (SELECT d.branch_id FROM devices d WHERE d.id = json_extract(conflicts.body, '$.device_id')),
    (SELECT l.branch_id FROM locations l
      WHERE l.org_id = conflicts.org_id AND l.id = conflicts.location_id))
 WHERE json_extract(body, '$.kind') = 'business_rule';
-- The feed (delta pulls) and the queue agree on each record's branch.
UPDATE feed SET branch_id = (
    SELECT c.branch_id FROM conflicts c WHERE c.org_id = feed.org_id AND c.id = feed.entity_id)
 WHERE entity = 'conflict';
CREATE INDEX conflicts_branch ON conflicts(org_id, branch_id, created_at);

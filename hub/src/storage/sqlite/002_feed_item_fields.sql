-- The feed's data no longer repeats the members a delta item takes from the row's columns
-- (entity, id, seq, version): a delta page splices the stored text in as it is. Live products'
-- data gains `doc` (the automerge document, base64), filled in by the Rust part of this step.
UPDATE feed SET data = json_remove(data, '$.entity', '$.id', '$.seq', '$.version');

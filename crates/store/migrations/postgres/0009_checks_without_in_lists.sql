-- Version 9 rewrites SQLite's status CHECKs, which built an ephemeral b-tree per `IN` list on
-- every status change. PostgreSQL evaluates `IN` lists as arrays in place: nothing to change
-- here; both backends keep equal schema versions.
SELECT 1;

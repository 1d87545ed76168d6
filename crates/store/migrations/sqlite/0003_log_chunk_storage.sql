-- Version 3 makes PostgreSQL compress log chunks with lz4. SQLite never compresses BLOBs, so
-- there is nothing to change here; both backends keep equal schema versions.
SELECT 1;

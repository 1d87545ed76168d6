-- Version 10: a run's parameter snapshot is ONE row (a JSON array in order) instead of a row
-- per parameter; a run has a dozen or more, and their inserts were about a tenth of the
-- server's instructions per trivial run (docs/benchmarks.md). Entries are {"name", "value",
-- "origin"} or, for a secret, {"name", "sealed", "origin"} with the ciphertext in hex, sealed
-- as before (bound to the run and the name), so it moves over unopened
-- (crates/store/src/runs/parameters.rs). Keep in step with ../postgres/0010.
CREATE TABLE run_parameter_sets (
    run_id      TEXT PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
    parameters  TEXT NOT NULL
);

-- `json(…)` keeps each entry an object inside the array (a subquery's value is plain text).
INSERT INTO run_parameter_sets (run_id, parameters)
SELECT run_id, json_group_array(json(entry) ORDER BY position)
FROM (
    SELECT run_id, position,
        CASE WHEN is_secret = 1
            THEN json_object('name', name, 'sealed', lower(hex(value_ciphertext)), 'origin', origin)
            ELSE json_object('name', name, 'value', value, 'origin', origin)
        END AS entry
    FROM run_parameters
)
GROUP BY run_id;

DROP TABLE run_parameters;

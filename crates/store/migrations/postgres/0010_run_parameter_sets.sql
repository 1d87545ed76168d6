-- Version 10: a run's parameter snapshot is ONE row (a JSON array in order) instead of a row
-- per parameter; see ../sqlite/0010 for the layout. Keep in step with it.
CREATE TABLE run_parameter_sets (
    run_id      TEXT PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
    parameters  TEXT NOT NULL
);

INSERT INTO run_parameter_sets (run_id, parameters)
SELECT run_id, json_agg(
        CASE WHEN is_secret = 1
            THEN json_build_object('name', name, 'sealed', encode(value_ciphertext, 'hex'), 'origin', origin)
            ELSE json_build_object('name', name, 'value', value, 'origin', origin)
        END ORDER BY position)::text
FROM run_parameters
GROUP BY run_id;

DROP TABLE run_parameters;

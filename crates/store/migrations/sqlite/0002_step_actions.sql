-- Decisions of people on steps the engine runs itself: manual reviews (pass, refuse) and delays
-- (delay = extend by `detail` seconds, delay_pass, delay_refuse). Read back by the engine on
-- every step of the run, so nothing about them lives only in memory.
CREATE TABLE step_actions (
    id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step_run_id TEXT NOT NULL REFERENCES step_runs (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL,
    user_name TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('pass', 'refuse', 'delay', 'delay_pass', 'delay_refuse')),
    detail TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX step_actions_by_run ON step_actions (run_id, created_at);

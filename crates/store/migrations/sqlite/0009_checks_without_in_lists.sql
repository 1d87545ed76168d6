-- no-transaction
-- Version 9 (SQLite only; ../postgres/0009 is empty so both backends keep equal versions).
-- SQLite evaluates `x IN (a, b, c)` with more than two constants by building an ephemeral
-- b-tree of the list each time a statement runs. The status CHECKs, the `runs_active` partial
-- index and the completion trigger did that on every status change: about 19 b-trees per
-- trivial run, a sixth of the server's instructions (docs/benchmarks.md). The same conditions
-- as chains of `=` / `<>` cost a few comparisons. A CHECK cannot be altered in place, so the
-- five run tables are rebuilt by SQLite's documented procedure
-- (https://sqlite.org/lang_altertable.html, "making other kinds of table schema changes"):
-- foreign keys off, new table, copy, drop, rename, indexes and triggers re-created, one
-- transaction. The file runs again cleanly if the server dies after its COMMIT but before
-- sqlx records it.
PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;

-- The triggers name job_runs and step_runs: dropped first, so no rename below meets a trigger
-- pointing at a table that is momentarily gone.
DROP TRIGGER IF EXISTS job_attempts_claimed;
DROP TRIGGER IF EXISTS job_attempts_completed;

-- ---------------------------------------------------------------- runs
CREATE TABLE runs_v9 (
    id                   TEXT PRIMARY KEY,
    pipeline_id          TEXT NOT NULL REFERENCES pipelines(id) ON DELETE CASCADE,
    pipeline_version     BIGINT NOT NULL,
    run_number           BIGINT NOT NULL,
    status               TEXT NOT NULL CHECK (status = 'INIT' OR status = 'QUEUED' OR status = 'RUNNING'
                             OR status = 'PAUSED' OR status = 'SUSPEND' OR status = 'COMPLETED'
                             OR status = 'FAILED' OR status = 'CANCELED' OR status = 'IGNORED'),
    trigger_type         TEXT NOT NULL,
    executor_id          TEXT NOT NULL DEFAULT '',
    executor_name        TEXT NOT NULL DEFAULT '',
    description          TEXT NOT NULL DEFAULT '',
    build_params         TEXT NOT NULL DEFAULT '{}',
    sources              TEXT NOT NULL DEFAULT '[]',
    selection            TEXT NOT NULL DEFAULT '{}',
    start_time           BIGINT NOT NULL,
    end_time             BIGINT,
    pause_time           BIGINT NOT NULL DEFAULT 0,
    paused_since         BIGINT,
    is_cancel_requested  BIGINT NOT NULL DEFAULT 0 CHECK (is_cancel_requested IN (0, 1)),
    state_version        BIGINT NOT NULL DEFAULT 0,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL,
    UNIQUE (pipeline_id, run_number),
    FOREIGN KEY (pipeline_id, pipeline_version) REFERENCES pipeline_versions(pipeline_id, version)
);
INSERT INTO runs_v9 SELECT * FROM runs;
DROP TABLE runs;
ALTER TABLE runs_v9 RENAME TO runs;
CREATE INDEX runs_pipeline_start ON runs (pipeline_id, start_time, run_number);
CREATE INDEX runs_pipeline_status_start ON runs (pipeline_id, status, start_time, run_number);
CREATE INDEX runs_pipeline_updated ON runs (pipeline_id, updated_at, run_number);
-- Queries that want this index repeat the condition term by term (runs/read.rs `active_runs`).
CREATE INDEX runs_active ON runs (status)
    WHERE status <> 'COMPLETED' AND status <> 'FAILED' AND status <> 'CANCELED' AND status <> 'IGNORED';

-- ---------------------------------------------------------------- stage_runs
CREATE TABLE stage_runs_v9 (
    id           TEXT PRIMARY KEY,
    run_id       TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    sequence     BIGINT NOT NULL,
    identifier   TEXT NOT NULL,
    name         TEXT NOT NULL,
    category     TEXT,
    run_always   BIGINT NOT NULL DEFAULT 0 CHECK (run_always IN (0, 1)),
    parallel     TEXT,
    is_select    BIGINT NOT NULL CHECK (is_select IN (0, 1)),
    depends_on   TEXT NOT NULL DEFAULT '[]',
    condition    TEXT,
    status       TEXT NOT NULL CHECK (status = 'INIT' OR status = 'QUEUED' OR status = 'RUNNING'
                     OR status = 'CANCELED' OR status = 'COMPLETED' OR status = 'FAILED'
                     OR status = 'SKIPPED' OR status = 'IGNORED' OR status = 'PAUSED'
                     OR status = 'SUSPEND' OR status = 'ASYNC_RUNNING' OR status = 'ASYNC_FAILED'
                     OR status = 'UNSELECTED' OR status = 'REDISPATCH'),
    message      TEXT,
    is_admitted  BIGINT NOT NULL DEFAULT 0 CHECK (is_admitted IN (0, 1)),
    start_time   BIGINT,
    end_time     BIGINT,
    pause_time   BIGINT NOT NULL DEFAULT 0,
    UNIQUE (run_id, sequence)
);
INSERT INTO stage_runs_v9 SELECT * FROM stage_runs;
DROP TABLE stage_runs;
ALTER TABLE stage_runs_v9 RENAME TO stage_runs;

-- ---------------------------------------------------------------- job_runs
CREATE TABLE job_runs_v9 (
    id                TEXT PRIMARY KEY,
    run_id            TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    stage_run_id      TEXT NOT NULL REFERENCES stage_runs(id) ON DELETE CASCADE,
    job_index         BIGINT NOT NULL,
    sequence          BIGINT NOT NULL,
    identifier        TEXT NOT NULL,
    name              TEXT NOT NULL,
    category          TEXT,
    is_async          BIGINT NOT NULL DEFAULT 0 CHECK (is_async IN (0, 1)),
    depends_on        TEXT NOT NULL DEFAULT '[]',
    condition         TEXT,
    resource          TEXT,
    timeout           TEXT,
    is_select         BIGINT NOT NULL CHECK (is_select IN (0, 1)),
    status            TEXT NOT NULL CHECK (status = 'INIT' OR status = 'QUEUED' OR status = 'RUNNING'
                          OR status = 'CANCELED' OR status = 'COMPLETED' OR status = 'FAILED'
                          OR status = 'SKIPPED' OR status = 'IGNORED' OR status = 'PAUSED'
                          OR status = 'SUSPEND' OR status = 'ASYNC_RUNNING' OR status = 'ASYNC_FAILED'
                          OR status = 'UNSELECTED' OR status = 'REDISPATCH'),
    message           TEXT,
    attempt           BIGINT NOT NULL DEFAULT 0,
    last_dispatch_id  TEXT,
    exec_id           TEXT,
    start_time        BIGINT,
    end_time          BIGINT,
    UNIQUE (run_id, job_index)
);
INSERT INTO job_runs_v9 SELECT * FROM job_runs;
DROP TABLE job_runs;
ALTER TABLE job_runs_v9 RENAME TO job_runs;
CREATE INDEX job_runs_stage ON job_runs (stage_run_id);

-- ---------------------------------------------------------------- step_runs
CREATE TABLE step_runs_v9 (
    id                     TEXT PRIMARY KEY,
    run_id                 TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    stage_run_id           TEXT NOT NULL REFERENCES stage_runs(id) ON DELETE CASCADE,
    job_run_id             TEXT REFERENCES job_runs(id) ON DELETE CASCADE,
    placement              TEXT NOT NULL CHECK (placement = 'job' OR placement = 'pre' OR placement = 'post'),
    sequence               BIGINT NOT NULL,
    identifier             TEXT NOT NULL DEFAULT '',
    name                   TEXT NOT NULL DEFAULT '',
    task                   TEXT NOT NULL DEFAULT '',
    business_type          TEXT,
    official_task_version  TEXT,
    inputs                 TEXT NOT NULL DEFAULT '[]',
    multi_step_editable    BIGINT NOT NULL DEFAULT 0,
    endpoint_ids           TEXT NOT NULL DEFAULT '[]',
    status                 TEXT NOT NULL CHECK (status = 'INIT' OR status = 'QUEUED' OR status = 'RUNNING'
                               OR status = 'PAUSED' OR status = 'COMPLETED' OR status = 'FAILED'
                               OR status = 'CANCELED' OR status = 'SKIPPED'),
    message                TEXT,
    exit_code              BIGINT,
    last_dispatch_id       TEXT,
    start_time             BIGINT,
    end_time               BIGINT,
    daily_build_number     TEXT,
    CHECK ((placement = 'job') = (job_run_id IS NOT NULL))
);
INSERT INTO step_runs_v9 SELECT * FROM step_runs;
DROP TABLE step_runs;
ALTER TABLE step_runs_v9 RENAME TO step_runs;
CREATE INDEX step_runs_job ON step_runs (job_run_id, sequence);
CREATE INDEX step_runs_stage ON step_runs (stage_run_id, placement, sequence);
CREATE INDEX step_runs_run ON step_runs (run_id);

-- ---------------------------------------------------------------- job_attempts
CREATE TABLE job_attempts_v9 (
    id                TEXT PRIMARY KEY,
    job_run_id        TEXT NOT NULL REFERENCES job_runs(id) ON DELETE CASCADE,
    run_id            TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    attempt           BIGINT NOT NULL,
    try_number        BIGINT NOT NULL,
    max_tries         BIGINT NOT NULL CHECK (max_tries >= 1),
    pool              TEXT,
    labels            TEXT NOT NULL DEFAULT '[]',
    state             TEXT NOT NULL CHECK (state = 'queued' OR state = 'leased' OR state = 'completed'
                          OR state = 'lost' OR state = 'canceled'),
    lease_token       TEXT UNIQUE,
    worker_id         TEXT,
    queued_at         BIGINT NOT NULL,
    claimed_at        BIGINT,
    lease_expires_at  BIGINT,
    finished_at       BIGINT,
    outcome           TEXT CHECK (outcome IS NULL OR outcome = 'COMPLETED' OR outcome = 'FAILED'
                          OR outcome = 'CANCELED'),
    outcome_message   TEXT,
    UNIQUE (job_run_id, attempt),
    CHECK (state <> 'leased' OR (lease_token IS NOT NULL AND lease_expires_at IS NOT NULL AND finished_at IS NULL))
);
INSERT INTO job_attempts_v9 SELECT * FROM job_attempts;
DROP TABLE job_attempts;
ALTER TABLE job_attempts_v9 RENAME TO job_attempts;
CREATE INDEX job_attempts_default_queued ON job_attempts (queued_at, id) WHERE state = 'queued' AND pool IS NULL;
CREATE INDEX job_attempts_pool_queued ON job_attempts (pool, queued_at, id) WHERE state = 'queued' AND pool IS NOT NULL;
CREATE INDEX job_attempts_leases ON job_attempts (lease_expires_at) WHERE state = 'leased';

-- ---------------------------------------------------------------- queue triggers
-- As in 0001, with the completion trigger's lists written out.
CREATE TRIGGER job_attempts_claimed AFTER UPDATE OF state ON job_attempts
WHEN NEW.state = 'leased' AND OLD.state = 'queued'
BEGIN
    UPDATE job_runs SET status = 'RUNNING', start_time = COALESCE(start_time, NEW.claimed_at),
        exec_id = NEW.worker_id, last_dispatch_id = NEW.id
    WHERE id = NEW.job_run_id;
END;

-- Mirrors the domain's `StepRun::close`: waiting steps are SKIPPED, a running step ends with the job.
CREATE TRIGGER job_attempts_completed AFTER UPDATE OF state ON job_attempts
WHEN NEW.state = 'completed' AND OLD.state = 'leased'
BEGIN
    UPDATE job_runs SET status = NEW.outcome, message = COALESCE(NEW.outcome_message, message),
        end_time = NEW.finished_at
    WHERE id = NEW.job_run_id;
    UPDATE step_runs SET
        status = CASE
            WHEN status = 'INIT' OR status = 'QUEUED' THEN 'SKIPPED'
            WHEN NEW.outcome = 'CANCELED' THEN 'CANCELED'
            WHEN NEW.outcome = 'COMPLETED' THEN 'COMPLETED'
            ELSE 'FAILED' END,
        end_time = NEW.finished_at
    WHERE job_run_id = NEW.job_run_id
      AND status <> 'COMPLETED' AND status <> 'FAILED' AND status <> 'CANCELED' AND status <> 'SKIPPED';
END;

COMMIT;
PRAGMA foreign_keys = ON;

-- Runnel schema, version 1 (PostgreSQL). Keep in step with ../sqlite/0001_initial.sql:
-- same tables, columns, constraints and indexes; only the type spellings differ.
-- Portable types: BIGINT (i64, also flags 0/1 and epoch-millisecond *_at/*_time), TEXT (ids,
-- JSON), BYTEA (bytes). Never BOOLEAN: the Any driver cannot decode it on SQLite.

-- ---------------------------------------------------------------- identity
CREATE TABLE domains (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
);

CREATE TABLE users (
    id             TEXT PRIMARY KEY,
    domain_id      TEXT NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    display_name   TEXT NOT NULL DEFAULT '',
    password_hash  TEXT,
    is_disabled    BIGINT NOT NULL DEFAULT 0 CHECK (is_disabled IN (0, 1)),
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    UNIQUE (domain_id, name)
);

CREATE TABLE tokens (
    id           TEXT PRIMARY KEY,
    token_hash   BYTEA NOT NULL UNIQUE,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    scope        TEXT NOT NULL DEFAULT '',
    issued_at    BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    revoked_at   BIGINT
);
CREATE INDEX tokens_user ON tokens (user_id);
CREATE INDEX tokens_expires ON tokens (expires_at);

CREATE TABLE access_keys (
    ak             TEXT PRIMARY KEY,
    user_id        TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    sk_ciphertext  BYTEA NOT NULL,
    description    TEXT NOT NULL DEFAULT '',
    is_disabled    BIGINT NOT NULL DEFAULT 0 CHECK (is_disabled IN (0, 1)),
    created_at     BIGINT NOT NULL,
    last_used_at   BIGINT
);
CREATE INDEX access_keys_user ON access_keys (user_id);

CREATE TABLE projects (
    id           TEXT PRIMARY KEY,
    domain_id    TEXT NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    UNIQUE (domain_id, name)
);

CREATE TABLE members (
    project_id  TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role        TEXT NOT NULL CHECK (role IN ('admin', 'developer', 'viewer')),
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (project_id, user_id)
);
CREATE INDEX members_user ON members (user_id);

-- ---------------------------------------------------------------- pipelines
CREATE TABLE pipeline_groups (
    id          TEXT PRIMARY KEY,
    project_id  TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    parent_id   TEXT REFERENCES pipeline_groups(id) ON DELETE CASCADE,
    path_id     TEXT NOT NULL,
    depth       BIGINT NOT NULL CHECK (depth BETWEEN 1 AND 3),
    name        TEXT NOT NULL,
    ordinal     BIGINT NOT NULL,
    creator_id  TEXT NOT NULL,
    updater_id  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX pipeline_groups_sibling_name ON pipeline_groups (project_id, COALESCE(parent_id, ''), name);
CREATE INDEX pipeline_groups_parent ON pipeline_groups (parent_id);

CREATE TABLE pipelines (
    id                TEXT PRIMARY KEY,
    project_id        TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name              TEXT NOT NULL,
    description       TEXT NOT NULL DEFAULT '',
    is_publish        BIGINT NOT NULL DEFAULT 0 CHECK (is_publish IN (0, 1)),
    component_id      TEXT,
    group_id          TEXT REFERENCES pipeline_groups(id) ON DELETE SET NULL,
    manifest_version  TEXT NOT NULL DEFAULT '3.0',
    current_version   BIGINT NOT NULL,
    last_run_number   BIGINT NOT NULL DEFAULT 0,
    is_banned         BIGINT NOT NULL DEFAULT 0 CHECK (is_banned IN (0, 1)),
    origin_id         TEXT,
    from_source       BIGINT NOT NULL DEFAULT 0,
    creator_id        TEXT NOT NULL,
    updater_id        TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    deleted_at        BIGINT
);
CREATE UNIQUE INDEX pipelines_project_name ON pipelines (project_id, name) WHERE deleted_at IS NULL;
CREATE INDEX pipelines_project_updated ON pipelines (project_id, updated_at);
CREATE INDEX pipelines_group ON pipelines (group_id);

-- Every create and update of a pipeline is a new version; a run records the one it ran.
CREATE TABLE pipeline_versions (
    pipeline_id    TEXT NOT NULL REFERENCES pipelines(id) ON DELETE CASCADE,
    version        BIGINT NOT NULL,
    definition     TEXT NOT NULL,
    compiled       TEXT NOT NULL,
    record_format  BIGINT NOT NULL,
    sources        TEXT NOT NULL DEFAULT '[]',
    settings       TEXT NOT NULL DEFAULT '{}',
    created_by     TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    PRIMARY KEY (pipeline_id, version)
);

CREATE TABLE pipeline_variables (
    pipeline_id       TEXT NOT NULL REFERENCES pipelines(id) ON DELETE CASCADE,
    name              TEXT NOT NULL,
    sequence          BIGINT NOT NULL,
    type              TEXT NOT NULL CHECK (type IN ('string', 'enum', 'autoIncrement')),
    value             TEXT,
    value_ciphertext  BYTEA,
    is_secret         BIGINT NOT NULL DEFAULT 0 CHECK (is_secret IN (0, 1)),
    is_runtime        BIGINT NOT NULL DEFAULT 0 CHECK (is_runtime IN (0, 1)),
    is_reset          BIGINT NOT NULL DEFAULT 0 CHECK (is_reset IN (0, 1)),
    description       TEXT NOT NULL DEFAULT '',
    limits            TEXT NOT NULL DEFAULT '[]',
    latest_value      TEXT,
    PRIMARY KEY (pipeline_id, name),
    CHECK ((is_secret = 1 AND value IS NULL AND value_ciphertext IS NOT NULL)
        OR (is_secret = 0 AND value IS NOT NULL AND value_ciphertext IS NULL))
);

CREATE TABLE pipeline_favorites (
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    pipeline_id  TEXT NOT NULL REFERENCES pipelines(id) ON DELETE CASCADE,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (user_id, pipeline_id)
);
CREATE INDEX pipeline_favorites_pipeline ON pipeline_favorites (pipeline_id);

CREATE TABLE tags (
    id          TEXT PRIMARY KEY,
    project_id  TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    color       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    UNIQUE (project_id, name)
);

CREATE TABLE pipeline_tags (
    pipeline_id  TEXT NOT NULL REFERENCES pipelines(id) ON DELETE CASCADE,
    tag_id       TEXT NOT NULL REFERENCES tags(id) ON DELETE CASCADE,
    PRIMARY KEY (pipeline_id, tag_id)
);
CREATE INDEX pipeline_tags_tag ON pipeline_tags (tag_id);

CREATE TABLE variable_groups (
    id           TEXT PRIMARY KEY,
    project_id   TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    creator_id   TEXT NOT NULL,
    updater_id   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    UNIQUE (project_id, name)
);

CREATE TABLE variable_group_variables (
    group_id          TEXT NOT NULL REFERENCES variable_groups(id) ON DELETE CASCADE,
    name              TEXT NOT NULL,
    sequence          BIGINT NOT NULL,
    type              TEXT NOT NULL CHECK (type IN ('string', 'enum', 'autoIncrement')),
    value             TEXT,
    value_ciphertext  BYTEA,
    is_secret         BIGINT NOT NULL DEFAULT 0 CHECK (is_secret IN (0, 1)),
    description       TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (group_id, name),
    CHECK ((is_secret = 1 AND value IS NULL AND value_ciphertext IS NOT NULL)
        OR (is_secret = 0 AND value IS NOT NULL AND value_ciphertext IS NULL))
);

-- Bindings in order: the group bound last wins on a name collision.
CREATE TABLE pipeline_variable_groups (
    pipeline_id  TEXT NOT NULL REFERENCES pipelines(id) ON DELETE CASCADE,
    group_id     TEXT NOT NULL REFERENCES variable_groups(id) ON DELETE CASCADE,
    position     BIGINT NOT NULL,
    PRIMARY KEY (pipeline_id, group_id)
);
CREATE INDEX pipeline_variable_groups_group ON pipeline_variable_groups (group_id);

-- ---------------------------------------------------------------- templates
CREATE TABLE templates (
    id                TEXT PRIMARY KEY,
    domain_id         TEXT REFERENCES domains(id) ON DELETE CASCADE,
    name              TEXT NOT NULL,
    description       TEXT NOT NULL DEFAULT '',
    language          TEXT NOT NULL DEFAULT 'none',
    manifest_version  TEXT NOT NULL DEFAULT '3.0',
    icon              TEXT,
    is_system         BIGINT NOT NULL DEFAULT 0 CHECK (is_system IN (0, 1)),
    is_show_source    BIGINT NOT NULL DEFAULT 0 CHECK (is_show_source IN (0, 1)),
    definition        TEXT NOT NULL,
    variables         TEXT NOT NULL DEFAULT '[]',
    creator_id        TEXT NOT NULL,
    updater_id        TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    CHECK (is_system = 1 OR domain_id IS NOT NULL)
);
CREATE INDEX templates_domain ON templates (domain_id, created_at);

CREATE TABLE template_favorites (
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    template_id  TEXT NOT NULL REFERENCES templates(id) ON DELETE CASCADE,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (user_id, template_id)
);

-- ---------------------------------------------------------------- triggers
CREATE TABLE schedules (
    id                TEXT PRIMARY KEY,
    pipeline_id       TEXT NOT NULL REFERENCES pipelines(id) ON DELETE CASCADE,
    name              TEXT NOT NULL DEFAULT '',
    type              TEXT NOT NULL CHECK (type IN ('fixed', 'periodic')),
    is_enabled        BIGINT NOT NULL DEFAULT 1 CHECK (is_enabled IN (0, 1)),
    spec              TEXT NOT NULL DEFAULT '{}',
    next_fire_at      BIGINT,
    last_fired_at     BIGINT,
    lease_owner       TEXT,
    lease_expires_at  BIGINT,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);
CREATE INDEX schedules_pipeline ON schedules (pipeline_id);
CREATE INDEX schedules_due ON schedules (next_fire_at) WHERE is_enabled = 1;

CREATE TABLE triggers (
    hook_id           BIGSERIAL PRIMARY KEY,
    pipeline_id       TEXT NOT NULL REFERENCES pipelines(id) ON DELETE CASCADE,
    git_type          TEXT NOT NULL,
    git_url           TEXT NOT NULL DEFAULT '',
    repo_id           TEXT NOT NULL DEFAULT '',
    endpoint_id       TEXT,
    events            TEXT NOT NULL DEFAULT '[]',
    is_auto_commit    BIGINT NOT NULL DEFAULT 0 CHECK (is_auto_commit IN (0, 1)),
    secret_ciphertext BYTEA NOT NULL,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);
CREATE INDEX triggers_pipeline ON triggers (pipeline_id);

CREATE TABLE webhook_deliveries (
    id           BIGSERIAL PRIMARY KEY,
    hook_id      BIGINT NOT NULL REFERENCES triggers(hook_id) ON DELETE CASCADE,
    delivery_id  TEXT NOT NULL,
    event        TEXT NOT NULL DEFAULT '',
    outcome      TEXT NOT NULL CHECK (outcome IN ('accepted', 'ignored', 'rejected')),
    message      TEXT NOT NULL DEFAULT '',
    run_id       TEXT,
    received_at  BIGINT NOT NULL,
    UNIQUE (hook_id, delivery_id)
);
CREATE INDEX webhook_deliveries_received ON webhook_deliveries (received_at);

-- ---------------------------------------------------------------- runs
CREATE TABLE runs (
    id                   TEXT PRIMARY KEY,
    pipeline_id          TEXT NOT NULL REFERENCES pipelines(id) ON DELETE CASCADE,
    pipeline_version     BIGINT NOT NULL,
    run_number           BIGINT NOT NULL,
    status               TEXT NOT NULL CHECK (status IN ('INIT', 'QUEUED', 'RUNNING', 'PAUSED', 'SUSPEND',
                             'COMPLETED', 'FAILED', 'CANCELED', 'IGNORED')),
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
CREATE INDEX runs_pipeline_start ON runs (pipeline_id, start_time, run_number);
CREATE INDEX runs_pipeline_status_start ON runs (pipeline_id, status, start_time, run_number);
CREATE INDEX runs_pipeline_updated ON runs (pipeline_id, updated_at, run_number);
CREATE INDEX runs_active ON runs (status) WHERE status NOT IN ('COMPLETED', 'FAILED', 'CANCELED', 'IGNORED');

-- Runs per pipeline and status, kept in the same transactions that change run statuses, so a
-- run list's `total` never counts 100 000 rows.
CREATE TABLE pipeline_run_counts (
    pipeline_id  TEXT NOT NULL REFERENCES pipelines(id) ON DELETE CASCADE,
    status       TEXT NOT NULL,
    run_count    BIGINT NOT NULL,
    PRIMARY KEY (pipeline_id, status)
);

CREATE TABLE run_parameters (
    run_id            TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    position          BIGINT NOT NULL,
    name              TEXT NOT NULL,
    value             TEXT,
    value_ciphertext  BYTEA,
    is_secret         BIGINT NOT NULL CHECK (is_secret IN (0, 1)),
    origin            TEXT NOT NULL,
    PRIMARY KEY (run_id, name),
    CHECK ((is_secret = 1 AND value IS NULL AND value_ciphertext IS NOT NULL)
        OR (is_secret = 0 AND value IS NOT NULL AND value_ciphertext IS NULL))
);

CREATE TABLE idempotency_keys (
    scope       TEXT NOT NULL,
    key         TEXT NOT NULL,
    run_id      TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
CREATE INDEX idempotency_keys_run ON idempotency_keys (run_id);

CREATE TABLE stage_runs (
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
    status       TEXT NOT NULL CHECK (status IN ('INIT', 'QUEUED', 'RUNNING', 'CANCELED', 'COMPLETED', 'FAILED',
                     'SKIPPED', 'IGNORED', 'PAUSED', 'SUSPEND', 'ASYNC_RUNNING', 'ASYNC_FAILED', 'UNSELECTED',
                     'REDISPATCH')),
    message      TEXT,
    is_admitted  BIGINT NOT NULL DEFAULT 0 CHECK (is_admitted IN (0, 1)),
    start_time   BIGINT,
    end_time     BIGINT,
    pause_time   BIGINT NOT NULL DEFAULT 0,
    UNIQUE (run_id, sequence)
);

CREATE TABLE job_runs (
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
    status            TEXT NOT NULL CHECK (status IN ('INIT', 'QUEUED', 'RUNNING', 'CANCELED', 'COMPLETED', 'FAILED',
                          'SKIPPED', 'IGNORED', 'PAUSED', 'SUSPEND', 'ASYNC_RUNNING', 'ASYNC_FAILED', 'UNSELECTED',
                          'REDISPATCH')),
    message           TEXT,
    attempt           BIGINT NOT NULL DEFAULT 0,
    last_dispatch_id  TEXT,
    exec_id           TEXT,
    start_time        BIGINT,
    end_time          BIGINT,
    UNIQUE (run_id, job_index)
);
CREATE INDEX job_runs_stage ON job_runs (stage_run_id);

CREATE TABLE step_runs (
    id                     TEXT PRIMARY KEY,
    run_id                 TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    stage_run_id           TEXT NOT NULL REFERENCES stage_runs(id) ON DELETE CASCADE,
    job_run_id             TEXT REFERENCES job_runs(id) ON DELETE CASCADE,
    placement              TEXT NOT NULL CHECK (placement IN ('job', 'pre', 'post')),
    sequence               BIGINT NOT NULL,
    identifier             TEXT NOT NULL DEFAULT '',
    name                   TEXT NOT NULL DEFAULT '',
    task                   TEXT NOT NULL DEFAULT '',
    business_type          TEXT,
    official_task_version  TEXT,
    inputs                 TEXT NOT NULL DEFAULT '[]',
    multi_step_editable    BIGINT NOT NULL DEFAULT 0,
    endpoint_ids           TEXT NOT NULL DEFAULT '[]',
    status                 TEXT NOT NULL CHECK (status IN ('INIT', 'QUEUED', 'RUNNING', 'PAUSED', 'COMPLETED',
                               'FAILED', 'CANCELED', 'SKIPPED')),
    message                TEXT,
    exit_code              BIGINT,
    last_dispatch_id       TEXT,
    start_time             BIGINT,
    end_time               BIGINT,
    daily_build_number     TEXT,
    CHECK ((placement = 'job') = (job_run_id IS NOT NULL))
);
CREATE INDEX step_runs_job ON step_runs (job_run_id, sequence);
CREATE INDEX step_runs_stage ON step_runs (stage_run_id, placement, sequence);
CREATE INDEX step_runs_run ON step_runs (run_id);

-- The job queue: one row per dispatch (attempt) of a job run. A queued row waits to be
-- claimed; a leased row belongs to the worker holding `lease_token` until `lease_expires_at`.
CREATE TABLE job_attempts (
    id                TEXT PRIMARY KEY,
    job_run_id        TEXT NOT NULL REFERENCES job_runs(id) ON DELETE CASCADE,
    run_id            TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    attempt           BIGINT NOT NULL,
    try_number        BIGINT NOT NULL,
    max_tries         BIGINT NOT NULL CHECK (max_tries >= 1),
    pool              TEXT,
    labels            TEXT NOT NULL DEFAULT '[]',
    state             TEXT NOT NULL CHECK (state IN ('queued', 'leased', 'completed', 'lost', 'canceled')),
    lease_token       TEXT UNIQUE,
    worker_id         TEXT,
    queued_at         BIGINT NOT NULL,
    claimed_at        BIGINT,
    lease_expires_at  BIGINT,
    finished_at       BIGINT,
    outcome           TEXT CHECK (outcome IS NULL OR outcome IN ('COMPLETED', 'FAILED', 'CANCELED')),
    outcome_message   TEXT,
    UNIQUE (job_run_id, attempt),
    CHECK (state <> 'leased' OR (lease_token IS NOT NULL AND lease_expires_at IS NOT NULL AND finished_at IS NULL))
);
-- Two queue indexes, so both claim statements read their pool in index order (PostgreSQL does not
-- treat `pool IS NULL` as an equality that keeps the order of a (pool, queued_at, id) index).
CREATE INDEX job_attempts_default_queued ON job_attempts (queued_at, id) WHERE state = 'queued' AND pool IS NULL;
CREATE INDEX job_attempts_pool_queued ON job_attempts (pool, queued_at, id) WHERE state = 'queued' AND pool IS NOT NULL;
CREATE INDEX job_attempts_leases ON job_attempts (lease_expires_at) WHERE state = 'leased';
CREATE INDEX job_attempts_job ON job_attempts (job_run_id);

-- Logs: per step run and attempt, append-only at byte offsets. `received` is the next offset a
-- writer must send (bytes dropped past the cap count too); `stored` is the length of what is
-- kept, the truncation marker included. Reads address stored offsets.
CREATE TABLE step_logs (
    step_run_id        TEXT NOT NULL REFERENCES step_runs(id) ON DELETE CASCADE,
    attempt            BIGINT NOT NULL,
    received           BIGINT NOT NULL DEFAULT 0,
    stored             BIGINT NOT NULL DEFAULT 0,
    is_truncated       BIGINT NOT NULL DEFAULT 0 CHECK (is_truncated IN (0, 1)),
    last_chunk_offset  BIGINT,
    updated_at         BIGINT NOT NULL,
    PRIMARY KEY (step_run_id, attempt)
);

CREATE TABLE step_log_chunks (
    step_run_id   TEXT NOT NULL,
    attempt       BIGINT NOT NULL,
    start_offset  BIGINT NOT NULL,
    data          BYTEA NOT NULL,
    PRIMARY KEY (step_run_id, attempt, start_offset),
    FOREIGN KEY (step_run_id, attempt) REFERENCES step_logs(step_run_id, attempt) ON DELETE CASCADE
);

CREATE TABLE step_outputs (
    step_run_id  TEXT NOT NULL REFERENCES step_runs(id) ON DELETE CASCADE,
    run_id       TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    key          TEXT NOT NULL,
    value        TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (step_run_id, key)
);
CREATE INDEX step_outputs_run ON step_outputs (run_id);

CREATE TABLE artifacts (
    id                  TEXT PRIMARY KEY,
    run_id              TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    job_run_id          TEXT REFERENCES job_runs(id) ON DELETE CASCADE,
    step_run_id         TEXT REFERENCES step_runs(id) ON DELETE CASCADE,
    name                TEXT NOT NULL,
    version             TEXT NOT NULL DEFAULT '',
    package_type        TEXT NOT NULL DEFAULT '',
    artifact_type       TEXT NOT NULL DEFAULT '',
    upload_target       TEXT NOT NULL DEFAULT '',
    uri                 TEXT NOT NULL DEFAULT '',
    download_url        TEXT NOT NULL DEFAULT '',
    sha256              TEXT,
    file_size           BIGINT,
    build_no            TEXT NOT NULL DEFAULT '',
    daily_build_number  TEXT NOT NULL DEFAULT '',
    created_at          BIGINT NOT NULL
);
CREATE INDEX artifacts_run ON artifacts (run_id);

-- ---------------------------------------------------------------- audit
CREATE TABLE audit_events (
    id           BIGSERIAL PRIMARY KEY,
    occurred_at  BIGINT NOT NULL,
    domain_id    TEXT,
    project_id   TEXT,
    actor_id     TEXT,
    action       TEXT NOT NULL,
    target_type  TEXT NOT NULL DEFAULT '',
    target_id    TEXT NOT NULL DEFAULT '',
    details      TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_project ON audit_events (project_id, occurred_at);
CREATE INDEX audit_events_occurred ON audit_events (occurred_at);

-- Log chunks are mostly incompressible or already small: store them out of line uncompressed,
-- which keeps appends cheap (SQLite has no equivalent setting).
ALTER TABLE step_log_chunks ALTER COLUMN data SET STORAGE EXTERNAL;

-- Runs and queue rows arrive fast: keep the planner's statistics fresh sooner than the defaults.
ALTER TABLE runs SET (autovacuum_analyze_scale_factor = 0.02, autovacuum_analyze_threshold = 1000);
ALTER TABLE job_attempts SET (autovacuum_vacuum_scale_factor = 0.05, autovacuum_analyze_scale_factor = 0.02);

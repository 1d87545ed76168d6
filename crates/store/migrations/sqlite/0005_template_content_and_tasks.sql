-- Version 5: shipped system templates carry the hash of their content so a new server version
-- upgrades them in place, and v3 "create a pipeline from a template" calls (spec §2.1–§2.2)
-- leave a task that clients poll.
ALTER TABLE templates ADD COLUMN content_hash TEXT;

CREATE TABLE template_tasks (
    id             TEXT PRIMARY KEY,
    domain_id      TEXT NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
    project_id     TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    user_id        TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    status         TEXT NOT NULL CHECK (status IN ('initializing', 'processing', 'succeeded', 'failed')),
    pipeline_id    TEXT,
    pipeline_name  TEXT NOT NULL,
    message        TEXT NOT NULL DEFAULT '',
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE INDEX template_tasks_user ON template_tasks (user_id, created_at);

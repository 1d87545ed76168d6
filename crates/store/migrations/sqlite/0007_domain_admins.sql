-- Domain administrators: users who may manage the users, projects, members, access keys and
-- tokens of their domain (the `/v5/admin/…` routes). Bootstrap makes its `admin` user one; an
-- installation bootstrapped before this migration gets the same through its bootstrap marker.
ALTER TABLE users ADD COLUMN is_domain_admin BIGINT NOT NULL DEFAULT 0 CHECK (is_domain_admin IN (0, 1));

UPDATE users SET is_domain_admin = 1
WHERE id IN (
    SELECT target_id FROM audit_events
    WHERE project_id = 'system:bootstrap' AND action = 'system.bootstrap' AND target_type = 'user'
);

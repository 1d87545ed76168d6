//! Which events a trigger accepts: its `events` list (spec §12.4), each `{type, enable}` with
//! optional filters.
//!
//! Filters of an event entry (all optional; patterns are globs: `*` within a path segment,
//! `**` across segments, `?` one character):
//! * `branches` / `exclude_branches`: the pushed branch, or a merge request's target branch;
//!   `source_branches` for a merge request's source branch.
//! * `tags` / `exclude_tags`: the pushed tag.
//! * `paths` / `exclude_paths`: files changed by a push. A push runs when at least one changed
//!   file matches `paths` (when given) and is not excluded. When the payload does not list the
//!   changed files (merge requests, very large pushes), path filters do not apply.
//! * Merge requests: `create` (= `open`), `reopen`, `update` (any update), `code_update` (an
//!   update that pushed commits), `merge`, `close` — booleans choosing the actions that run.
//!   Without any of them: open, reopen and code updates run; merges, closes and updates
//!   without new commits do not.

use super::forge::{CodeEvent, EventKind};
use serde_json::Value;

/// The event types a trigger may list.
pub(crate) const EVENT_TYPES: &[&str] = &["push", "merge_request", "tag_push", "issue", "note"];

/// The list-valued filter keys.
pub(crate) const PATTERN_KEYS: &[&str] = &[
    "branches",
    "exclude_branches",
    "source_branches",
    "tags",
    "exclude_tags",
    "paths",
    "exclude_paths",
];

/// The boolean merge-request action keys.
pub(crate) const ACTION_KEYS: &[&str] = &[
    "create",
    "open",
    "reopen",
    "update",
    "code_update",
    "merge",
    "close",
];

/// `Ok` when the trigger runs for `event`, else why not (for the delivery log).
pub(crate) fn accepts(events: &Value, event: &CodeEvent) -> Result<(), String> {
    let wanted = event.kind.config_type();
    let entry = events
        .as_array()
        .into_iter()
        .flatten()
        .find(|entry| {
            entry.get("type").and_then(Value::as_str) == Some(wanted)
                && entry.get("enable") != Some(&Value::Bool(false))
        })
        .ok_or_else(|| format!("{wanted} events are not enabled for this trigger"))?;
    let patterns = |key: &str| -> Vec<&str> {
        entry
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect()
    };
    match event.kind {
        EventKind::Push => {
            if event.deleted {
                return Err(format!("branch `{}` was deleted", event.branch));
            }
            check_name(
                "branch",
                &event.branch,
                &patterns("branches"),
                &patterns("exclude_branches"),
            )?;
            check_paths(
                event.changed_paths.as_deref(),
                &patterns("paths"),
                &patterns("exclude_paths"),
            )
        }
        EventKind::Tag => {
            if event.deleted {
                return Err(format!("tag `{}` was deleted", event.tag));
            }
            check_name(
                "tag",
                &event.tag,
                &patterns("tags"),
                &patterns("exclude_tags"),
            )
        }
        EventKind::MergeRequest => {
            check_action(entry, event)?;
            check_name(
                "target branch",
                &event.branch,
                &patterns("branches"),
                &patterns("exclude_branches"),
            )?;
            check_name(
                "source branch",
                &event.source_branch,
                &patterns("source_branches"),
                &[],
            )?;
            check_paths(
                event.changed_paths.as_deref(),
                &patterns("paths"),
                &patterns("exclude_paths"),
            )
        }
    }
}

fn check_name(what: &str, name: &str, include: &[&str], exclude: &[&str]) -> Result<(), String> {
    if !include.is_empty() && !include.iter().any(|pattern| glob_match(pattern, name)) {
        return Err(format!("{what} `{name}` matches none of {include:?}"));
    }
    if let Some(pattern) = exclude.iter().find(|pattern| glob_match(pattern, name)) {
        return Err(format!("{what} `{name}` is excluded by `{pattern}`"));
    }
    Ok(())
}

fn check_paths(
    changed: Option<&[String]>,
    include: &[&str],
    exclude: &[&str],
) -> Result<(), String> {
    let Some(changed) = changed else {
        return Ok(());
    };
    if include.is_empty() && exclude.is_empty() {
        return Ok(());
    }
    let relevant = changed.iter().any(|path| {
        (include.is_empty() || include.iter().any(|pattern| glob_match(pattern, path)))
            && !exclude.iter().any(|pattern| glob_match(pattern, path))
    });
    if relevant {
        Ok(())
    } else {
        let shown: Vec<&str> = changed.iter().take(5).map(String::as_str).collect();
        Err(format!(
            "no changed file passes the path filters (changed: {shown:?}{})",
            if changed.len() > shown.len() {
                ", …"
            } else {
                ""
            }
        ))
    }
}

fn check_action(entry: &Value, event: &CodeEvent) -> Result<(), String> {
    let flag = |key: &str| entry.get(key).and_then(Value::as_bool);
    let any_set = ACTION_KEYS.iter().any(|key| flag(key).is_some());
    let runs = if any_set {
        match event.action.as_str() {
            "open" => flag("create").or(flag("open")).unwrap_or(false),
            "reopen" => flag("reopen").unwrap_or(false),
            "update" => {
                flag("update").unwrap_or(false)
                    || (event.code_changed && flag("code_update").unwrap_or(false))
            }
            "merge" => flag("merge").unwrap_or(false),
            "close" => flag("close").unwrap_or(false),
            _ => false,
        }
    } else {
        matches!(event.action.as_str(), "open" | "reopen")
            || (event.action == "update" && event.code_changed)
    };
    if runs {
        Ok(())
    } else {
        Err(format!(
            "merge request action `{}` does not run this trigger",
            if event.action == "update" && !event.code_changed {
                "update without new commits"
            } else {
                &event.action
            }
        ))
    }
}

/// Glob matching: `**` any characters, `*` any characters but `/`, `?` one character but `/`.
pub(crate) fn glob_match(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    // Dynamic programming over (pattern position, text position): no exponential backtracking.
    let mut reachable = vec![vec![false; text.len() + 1]; pattern.len() + 1];
    reachable[0][0] = true;
    let mut p = 0;
    while p < pattern.len() {
        let double = pattern[p] == '*' && pattern.get(p + 1) == Some(&'*');
        let width = if double { 2 } else { 1 };
        for t in 0..=text.len() {
            if !reachable[p][t] {
                continue;
            }
            match pattern[p] {
                '*' => {
                    // Zero characters, then as many as allowed.
                    reachable[p + width][t] = true;
                    let mut end = t;
                    while end < text.len() && (double || text[end] != '/') {
                        end += 1;
                        reachable[p + width][end] = true;
                    }
                    // `**/` also matches no directory at all.
                    if double && pattern.get(p + 2) == Some(&'/') {
                        reachable[p + 3][t] = true;
                    }
                }
                '?' => {
                    if t < text.len() && text[t] != '/' {
                        reachable[p + 1][t + 1] = true;
                    }
                }
                literal => {
                    if t < text.len() && text[t] == literal {
                        reachable[p + 1][t + 1] = true;
                    }
                }
            }
        }
        p += width;
        if double && p > pattern.len() {
            break;
        }
    }
    reachable[pattern.len()][text.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn globs() {
        assert!(glob_match("main", "main"));
        assert!(glob_match("release/*", "release/1.0"));
        assert!(!glob_match("release/*", "release/1.0/x"));
        assert!(glob_match("release/**", "release/1.0/x"));
        assert!(glob_match("src/**", "src/a/b.rs"));
        assert!(glob_match("**/*.md", "README.md"));
        assert!(glob_match("**/*.md", "docs/a/b.md"));
        assert!(glob_match("v?.*", "v1.2"));
        assert!(!glob_match("docs/*", "src/docs/a"));
        assert!(!glob_match("*", "a/b"));
        assert!(glob_match("*", ""));
        assert!(glob_match(&"*".repeat(40), &"a".repeat(200)));
    }

    fn push(branch: &str, paths: Option<Vec<&str>>) -> CodeEvent {
        CodeEvent {
            kind: EventKind::Push,
            branch: branch.to_owned(),
            tag: String::new(),
            commit: "a".repeat(40),
            message: String::new(),
            deleted: false,
            source_branch: String::new(),
            merge_id: String::new(),
            action: String::new(),
            code_changed: true,
            changed_paths: paths.map(|paths| paths.into_iter().map(str::to_owned).collect()),
            repo_urls: Vec::new(),
            source_repo_url: String::new(),
            user: String::new(),
        }
    }

    #[test]
    fn push_filters() {
        let events = json!([{"type": "push", "enable": true, "branches": ["main", "release/*"], "paths": ["src/**"], "exclude_paths": ["src/**/*.md"]}]);
        assert!(accepts(&events, &push("main", Some(vec!["src/lib.rs"]))).is_ok());
        assert!(accepts(&events, &push("feature", Some(vec!["src/lib.rs"]))).is_err());
        let why =
            accepts(&events, &push("main", Some(vec!["docs/guide.md"]))).expect_err("path filter");
        assert!(why.contains("path filters"), "{why}");
        assert!(
            accepts(&events, &push("main", Some(vec!["src/notes.md"]))).is_err(),
            "excluded"
        );
        assert!(
            accepts(&events, &push("main", None)).is_ok(),
            "unknown paths do not filter"
        );
        let disabled = json!([{"type": "push", "enable": false}]);
        assert!(accepts(&disabled, &push("main", None)).is_err());
        assert!(accepts(&json!([]), &push("main", None)).is_err());
    }

    #[test]
    fn merge_request_actions() {
        let mut event = push("main", None);
        event.kind = EventKind::MergeRequest;
        event.action = "open".to_owned();
        let default = json!([{"type": "merge_request", "enable": true}]);
        assert!(accepts(&default, &event).is_ok());
        event.action = "merge".to_owned();
        assert!(accepts(&default, &event).is_err());
        let merges = json!([{"type": "merge_request", "enable": true, "merge": true}]);
        assert!(accepts(&merges, &event).is_ok());
        event.action = "update".to_owned();
        event.code_changed = false;
        assert!(accepts(&default, &event).is_err());
    }
}

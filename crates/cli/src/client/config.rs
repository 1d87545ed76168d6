//! The client's saved login: `$XDG_CONFIG_HOME/runnel/config.json` (else
//! `~/.config/runnel/config.json`), written with mode 0600 in a 0700 directory because it holds a
//! token.

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// What `runnel login` saves. Every field is optional so an old or partial file still reads.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SavedLogin {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) domain_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) domain_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) user_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) user_id: Option<String>,
    /// The CodeArts project commands act on unless `--project` says otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) project_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) token: Option<String>,
    /// RFC 3339, as the server sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) token_expires_at: Option<String>,
}

impl std::fmt::Debug for SavedLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SavedLogin")
            .field("endpoint", &self.endpoint)
            .field("user_name", &self.user_name)
            .field("project_id", &self.project_id)
            .field("token", &self.token.as_ref().map(|_| "…"))
            .finish_non_exhaustive()
    }
}

/// The directory of the config file.
pub(crate) fn config_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME").filter(|dir| !dir.is_empty()) {
        let dir = PathBuf::from(dir);
        if dir.is_absolute() {
            return Ok(dir.join("runnel"));
        }
    }
    let home = std::env::var_os("HOME")
        .filter(|home| !home.is_empty())
        .context("neither XDG_CONFIG_HOME nor HOME is set: cannot find the config directory")?;
    Ok(PathBuf::from(home).join(".config").join("runnel"))
}

pub(crate) fn config_path() -> anyhow::Result<PathBuf> {
    Ok(config_dir()?.join("config.json"))
}

/// The saved login, or an empty one when there is no file yet.
pub(crate) fn load() -> anyhow::Result<SavedLogin> {
    let path = config_path()?;
    load_from(&path)
}

pub(crate) fn load_from(path: &Path) -> anyhow::Result<SavedLogin> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "{} is not a valid config file; fix it or delete it and run `runnel login` again",
                path.display()
            )
        }),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(SavedLogin::default()),
        Err(err) => Err(err).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Writes the file atomically (a private temp file renamed over it), mode 0600.
pub(crate) fn save(login: &SavedLogin) -> anyhow::Result<PathBuf> {
    let path = config_path()?;
    let dir = path.parent().context("the config path has a directory")?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let temp = dir.join(format!(".config.json.{}", std::process::id()));
    let mut json = serde_json::to_vec_pretty(login).context("while encoding the config")?;
    json.push(b'\n');
    let _ = std::fs::remove_file(&temp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)
        .with_context(|| format!("cannot create {}", temp.display()))?;
    // The mode given at creation is filtered by the umask; make sure it is exactly 0600.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot restrict {}", temp.display()))?;
    file.write_all(&json)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", temp.display()))?;
    std::fs::rename(&temp, &path).with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_the_token() {
        let login = SavedLogin {
            token: Some("rnl_secret".into()),
            ..SavedLogin::default()
        };
        assert!(!format!("{login:?}").contains("rnl_secret"));
    }

    #[test]
    fn a_missing_file_is_an_empty_login_and_a_broken_one_an_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("config.json");
        assert_eq!(load_from(&path).expect("empty"), SavedLogin::default());
        std::fs::write(&path, "{not json").expect("write");
        let err = load_from(&path).expect_err("broken");
        assert!(format!("{err:#}").contains("runnel login"), "{err:#}");
    }
}

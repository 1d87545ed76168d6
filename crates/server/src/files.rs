//! Private files in the data directory (the secret key, bootstrap credentials): mode 0600, created exclusively, complete or absent.

use anyhow::Context as _;
use runnel_store::SecretKey;
use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

/// The file holding the generated secret key, inside the data directory.
pub const SECRET_KEY_FILE: &str = "secret.key";

/// Creates the data directory (mode 0700) when it is missing; an existing one is left as it is.
pub(crate) fn ensure_dir(dir: &Path) -> anyhow::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("while creating the directory {}", dir.display()))
}

/// Writes `contents` to the new file `path` with mode 0600. Fails with `AlreadyExists` when the
/// file exists. The file appears complete or not at all: the bytes go to a temporary file that
/// is made durable first and then linked to `path` (a link never replaces an existing file).
pub(crate) fn write_new_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = dir.join(format!(".{name}.{}.tmp", random_suffix()));
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)?;
        // The umask may only have removed bits; make the mode exact anyway.
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
        file.write_all(contents)?;
        file.sync_all()
    })();
    let linked = written.and_then(|()| fs::hard_link(&temporary, path));
    let removed = fs::remove_file(&temporary);
    linked?;
    removed?;
    sync_dir(dir)
}

/// Removes a file and makes the removal durable; a missing file is fine.
pub(crate) fn remove(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => sync_dir(path.parent().unwrap_or(Path::new("."))),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err),
    }
}

/// The operator key: read from `<data_dir>/secret.key`, or generated into it on the first start.
pub(crate) fn load_or_create_secret_key(data_dir: &Path) -> anyhow::Result<SecretKey> {
    let path = data_dir.join(SECRET_KEY_FILE);
    if let Some(key) = read_secret_key(&path)? {
        return Ok(key);
    }
    let key = SecretKey::generate();
    match write_new_private(&path, format!("{}\n", key.to_hex()).as_bytes()) {
        Ok(()) => {
            tracing::info!(path = %path.display(), "generated the secret key; back it up with the database");
            Ok(key)
        }
        // Another process generated it first: use theirs.
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => read_secret_key(&path)?
            .with_context(|| format!("{} vanished while being read", path.display())),
        Err(err) => Err(err).with_context(|| format!("while writing {}", path.display())),
    }
}

fn read_secret_key(path: &Path) -> anyhow::Result<Option<SecretKey>> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err).with_context(|| format!("while reading {}", path.display())),
    };
    let mode = fs::metadata(path)
        .with_context(|| format!("while reading {}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        tracing::warn!(path = %path.display(), mode = format_args!("{:o}", mode & 0o777), "the secret key file is readable by others; make it 0600");
    }
    // Never quote the file's contents in the error.
    let key = SecretKey::from_hex(&text)
        .with_context(|| format!("{} does not hold 64 hexadecimal digits", path.display()))?;
    Ok(Some(key))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

fn random_suffix() -> String {
    let mut bytes = [0u8; 8];
    rand::fill(&mut bytes[..]);
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_private_file_is_created_once_with_mode_0600_and_never_replaced() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("creds.json");
        write_new_private(&path, b"first").expect("written");
        let mode = fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let err = write_new_private(&path, b"second").expect_err("exists");
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&path).expect("read"), b"first");
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .expect("list")
            .map(|entry| entry.expect("entry").file_name())
            .collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left: {leftovers:?}");
    }

    #[test]
    fn the_secret_key_is_generated_once_and_read_back() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = load_or_create_secret_key(dir.path()).expect("generated");
        let second = load_or_create_secret_key(dir.path()).expect("read");
        assert_eq!(first, second);
        let mode = fs::metadata(dir.path().join(SECRET_KEY_FILE))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_damaged_secret_key_file_is_an_error_that_does_not_quote_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::write(dir.path().join(SECRET_KEY_FILE), "not-a-key-but-a-secret").expect("write");
        let err = load_or_create_secret_key(dir.path()).expect_err("refused");
        let message = format!("{err:#}");
        assert!(message.contains("64 hexadecimal digits"), "{message}");
        assert!(!message.contains("not-a-key-but-a-secret"), "{message}");
    }
}

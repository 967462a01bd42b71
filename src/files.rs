//! Files the service creates for itself that hold secrets (the installation key, the raw
//! archive's keys): readable by their owner only, never overwritten.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Creates `path` with `text`, mode 0600, failing if it exists; synced before returning, so a
/// key the service starts using survives a crash.
pub(crate) fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn creates_owner_only_and_never_overwrites() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("key");
        write_private(&path, "secret").expect("created");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "secret");
        let mode = std::fs::metadata(&path)
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = write_private(&path, "other").expect_err("exists");
        assert_eq!(again.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "secret");
    }
}

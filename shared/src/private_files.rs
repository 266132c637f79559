//! Files only their owner may read: the local data dir (0700) and what is in it (0600), since
//! the database holds every source's and subscription's secret and the admin key sits beside it.
//! Existing files and dirs are tightened too, so a data dir created by an older version, or by
//! hand, is fixed on the next start. No-ops where there are no Unix modes.

use std::fs::{self, OpenOptions};
use std::io;
use std::path::Path;

/// Mode of the data dir.
pub const DIR_MODE: u32 = 0o700;
/// Mode of the database, its WAL and shared-memory files, the admin key and the lock file.
pub const FILE_MODE: u32 = 0o600;

/// Creates `dir` (and missing parents, 0700 too) and sets it to 0700 if it already existed.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    create_dirs(dir)?;
    set_mode(dir, DIR_MODE)
}

/// Creates missing directories 0700, leaving existing ones (say `/tmp`) as they are.
pub fn create_dirs(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(DIR_MODE);
    }
    builder.create(dir)
}

/// Options that create a file 0600 (the umask can only narrow it).
pub fn private_open_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(FILE_MODE);
    }
    options
}

/// Sets an existing file to 0600; a missing one is not an error.
pub fn restrict_file(path: &Path) -> io::Result<()> {
    match set_mode(path, FILE_MODE) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Creates the file 0600 if missing, else sets it to 0600.
pub fn private_file(path: &Path) -> io::Result<()> {
    private_open_options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    restrict_file(path)
}

/// Creates the SQLite database file at `db` 0600 if missing and sets it, and the WAL,
/// shared-memory and rollback journal files beside it if present, to 0600. SQLite creates
/// those files with the database file's mode, so after this they are all owner-only.
pub fn private_database(db: &Path) -> io::Result<()> {
    private_file(db)?;
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        restrict_file(Path::new(&name))?;
    }
    Ok(())
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> io::Result<()> {
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn creates_and_tightens() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/.hookhub");
        private_dir(&dir).unwrap();
        assert_eq!((mode(&dir), mode(&tmp.path().join("a"))), (0o700, 0o700));
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700, "an existing dir is tightened");

        let file = dir.join("hookhub.db");
        restrict_file(&file).unwrap();
        assert!(!file.exists(), "restricting a missing file creates nothing");
        private_file(&file).unwrap();
        assert_eq!(mode(&file), 0o600);
        fs::write(&file, b"kept").unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        private_file(&file).unwrap();
        assert_eq!(mode(&file), 0o600, "an existing file is tightened");
        assert_eq!(fs::read(&file).unwrap(), b"kept", "and not truncated");
    }

    /// The real open path: a fresh database and the WAL and -shm files SQLite creates next to
    /// it come out owner-only, and loose ones from an earlier run are tightened on the next open.
    #[cfg(feature = "sqlite")]
    #[tokio::test]
    async fn sqlite_files_are_owner_only() {
        let tmp = tempfile::tempdir().unwrap();
        let db = tmp.path().join("data/hookhub.db");
        let files =
            ["hookhub.db", "hookhub.db-wal", "hookhub.db-shm"].map(|f| db.with_file_name(f));
        for round in 0..2 {
            let sqlite = crate::sqlite::SqliteBackend::open(&db).unwrap();
            let backend = sqlite.clone().into_backend();
            backend
                .queue
                .send(
                    &crate::domain::Task::Dispatch {
                        event_id: format!("evt_{round}"),
                        event: None,
                        sent_first: None,
                    },
                    std::time::Duration::ZERO,
                )
                .await
                .unwrap();
            for file in &files {
                assert_eq!(mode(file), 0o600, "round {round}: {}", file.display());
            }
            // Loosen everything while the database is still open; the next open tightens.
            for file in &files {
                fs::set_permissions(file, fs::Permissions::from_mode(0o644)).unwrap();
            }
            drop((sqlite, backend));
        }
        assert_eq!(mode(db.parent().unwrap()), 0o700, "created dir");
    }
}

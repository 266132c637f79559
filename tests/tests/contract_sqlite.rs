//! The port contract suite over the embedded SQLite adapter, on a real database file.

use hookhub::ports::Backend;
use hookhub::sqlite::SqliteBackend;

/// A fresh database file per check. The `TempDir` is returned as the fixture's guard (rather than
/// leaked) so the file lives exactly as long as the check and is removed afterwards.
async fn fresh_backend() -> (Backend, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("create temp dir");
    let sqlite = SqliteBackend::open(&dir.path().join("hookhub.db")).expect("open sqlite");
    (sqlite.into_backend(), dir)
}

hookhub::contract_tests!(fresh_backend);

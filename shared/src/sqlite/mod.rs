//! The embedded adapter: every port on one SQLite database file.
//!
//! Used by the local dev server and the CLI. Each connection lives on a thread of its own: one
//! writer (SQLite allows a single writer anyway) and, for a file, one reader, so lookups are never
//! stuck behind a commit's fsync. Async callers hand closures to those threads over a channel and
//! await the answer, so tokio's workers are never stalled by disk I/O. WAL with
//! `synchronous=FULL` means a committed insert is on disk before the receiver answers 2xx.
//!
//! Writes are group-committed: writes queued while a commit is in progress run together in the
//! next transaction, each in its own savepoint (a failing write rolls back alone), and are all
//! answered after that transaction's single commit (one fsync). The promise is the same as one
//! transaction per write: no write is reported done before it is on disk.

mod paging;
mod queue;
mod rate;
mod retention;
mod stores;
#[cfg(test)]
mod tests;

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use rusqlite::{Connection, ErrorCode, TransactionBehavior};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::Notify;

use crate::ports::{Backend, StoreError, StoreResult};

pub use queue::DeadLetter;
pub use retention::{SweepReport, SWEEP_BATCH};

/// How long a statement waits for another process (the CLI, say) to release the database lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Default receive count after which a message is dead-lettered instead of handed out again.
pub const DEFAULT_MAX_RECEIVES: u32 = 10;

/// Page size used when a listing asks for `limit: 0`, and the largest page served.
const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 1000;

/// Schema migrations; entry `i` takes `PRAGMA user_version` from `i` to `i + 1`. Append only.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE sources (
    id   TEXT PRIMARY KEY NOT NULL,
    data TEXT NOT NULL
);
CREATE TABLE subscriptions (
    id   TEXT PRIMARY KEY NOT NULL,
    data TEXT NOT NULL
);
CREATE TABLE events (
    id           TEXT PRIMARY KEY NOT NULL,
    source_id    TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    received_at  TEXT NOT NULL,
    content_type TEXT,
    dedup_key    TEXT NOT NULL,
    headers      TEXT NOT NULL,
    body         BLOB NOT NULL,
    enqueued     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX events_by_source ON events (source_id, id);
CREATE INDEX events_unenqueued ON events (received_at, id) WHERE enqueued = 0;
CREATE TABLE event_dedup (
    source_id   TEXT NOT NULL,
    dedup_key   TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (source_id, dedup_key)
) WITHOUT ROWID;
CREATE TABLE attempts (
    event_id        TEXT NOT NULL,
    subscription_id TEXT NOT NULL,
    attempt         INTEGER NOT NULL,
    started_at      TEXT NOT NULL,
    data            TEXT NOT NULL,
    PRIMARY KEY (event_id, subscription_id, attempt)
) WITHOUT ROWID;
CREATE INDEX attempts_by_subscription ON attempts (subscription_id, started_at, attempt);
CREATE TABLE queue (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    body          TEXT NOT NULL,
    visible_at    INTEGER NOT NULL,
    receipt       TEXT,
    receive_count INTEGER NOT NULL DEFAULT 0,
    enqueued_at   INTEGER NOT NULL
);
CREATE INDEX queue_by_visibility ON queue (visible_at, id);
CREATE UNIQUE INDEX queue_by_receipt ON queue (receipt) WHERE receipt IS NOT NULL;
CREATE TABLE dead_letters (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    body             TEXT NOT NULL,
    reason           TEXT NOT NULL,
    receive_count    INTEGER NOT NULL,
    enqueued_at      INTEGER NOT NULL,
    dead_lettered_at INTEGER NOT NULL
);
"#,
    r#"
-- Rate limits (GCRA): when each limited subscription's next delivery may go, epoch ns.
CREATE TABLE rate_limits (
    subscription_id TEXT PRIMARY KEY NOT NULL,
    tat_ns          INTEGER NOT NULL
) WITHOUT ROWID;
"#,
];

/// Every port on one SQLite database. Cheap to clone: clones share the connection, the notifier
/// and the settings, so a process can keep one for [`Self::notifier`] and
/// [`Self::release_inflight`] after handing another to [`Self::into_backend`].
#[derive(Debug, Clone)]
pub struct SqliteBackend {
    /// The writer thread; every write, and the reads of an in-memory database.
    writer: mpsc::Sender<Job>,
    /// The reader thread (the writer's channel again for an in-memory database, which a second
    /// connection could not see).
    reader: mpsc::Sender<Job>,
    notify: Arc<Notify>,
    max_receives: u32,
}

impl SqliteBackend {
    /// Opens (creating it and its directory if needed) the database at `path` and brings its
    /// schema up to date. The database and its WAL and -shm files are made owner-only (0600),
    /// missing directories are created 0700.
    pub fn open(path: &Path) -> StoreResult<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::private_files::create_dirs(dir).map_err(|e| {
                StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        // The database holds every secret: owner-only, created so before SQLite opens it.
        crate::private_files::private_database(path).map_err(|e| {
            StoreError::Unavailable(format!("cannot secure {}: {e}", path.display()))
        })?;
        let conn = Connection::open(path).map_err(db_err)?;
        let writer = Self::prepare_writer(conn, true)?;
        // Opened after the writer has migrated the schema; `query_only` so it can never write.
        let reader = Connection::open(path).map_err(db_err)?;
        reader.busy_timeout(BUSY_TIMEOUT).map_err(db_err)?;
        reader.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        reader
            .pragma_update(None, "query_only", true)
            .map_err(db_err)?;
        let writer = spawn_connection_thread("hookhub-sqlite-writer", writer)?;
        let reader = spawn_connection_thread("hookhub-sqlite-reader", reader)?;
        Ok(Self::with_threads(writer, reader))
    }

    /// A private database that lives as long as this value (tests, throwaway runs).
    pub fn open_in_memory() -> StoreResult<Self> {
        let conn = Self::prepare_writer(Connection::open_in_memory().map_err(db_err)?, false)?;
        let writer = spawn_connection_thread("hookhub-sqlite", conn)?;
        Ok(Self::with_threads(writer.clone(), writer))
    }

    fn with_threads(writer: mpsc::Sender<Job>, reader: mpsc::Sender<Job>) -> Self {
        Self {
            writer,
            reader,
            notify: Arc::new(Notify::new()),
            max_receives: DEFAULT_MAX_RECEIVES,
        }
    }

    fn prepare_writer(mut conn: Connection, on_disk: bool) -> StoreResult<Connection> {
        conn.busy_timeout(BUSY_TIMEOUT).map_err(db_err)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        if on_disk {
            // Before WAL: a new file takes the mode only until its header is first written.
            incremental_auto_vacuum(&conn)?;
            let mode: String = conn
                .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
                .map_err(db_err)?;
            if !mode.eq_ignore_ascii_case("wal") {
                // Still durable with synchronous=FULL, only slower and less concurrent.
                tracing::warn!(mode, "sqlite refused WAL mode");
            }
        }
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(db_err)?;
        migrate(&mut conn)?;
        Ok(conn)
    }

    /// Messages received this many times are dead-lettered on their next receive instead of being
    /// handed out again (SQS redrive policy). At least 1.
    pub fn with_max_receives(mut self, max_receives: u32) -> Self {
        self.max_receives = max_receives.max(1);
        self
    }

    pub fn max_receives(&self) -> u32 {
        self.max_receives
    }

    /// Every port served by this database, with its one-transaction intake.
    pub fn into_backend(self) -> Backend {
        let adapter = Arc::new(self);
        Backend::from_single(adapter.clone()).with_intake(adapter)
    }

    /// Notified after every committed send, send_batch and release_inflight, so a worker can
    /// sleep until there is work. A notification sent while nobody waits is kept for the next
    /// waiter, so a check-then-wait loop never misses one.
    pub fn notifier(&self) -> Arc<Notify> {
        self.notify.clone()
    }

    fn wake(&self) {
        // Wake every current waiter, and leave a permit for the first one to come next.
        self.notify.notify_waiters();
        self.notify.notify_one();
    }

    /// Runs the read `f` on the reader's connection and returns its result.
    async fn run<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job = Job::Run(Box::new(move |c| {
            let _ = tx.send(f(c));
        }));
        self.reader.send(job).map_err(|_| thread_gone())?;
        rx.await.map_err(|_| abandoned())?
    }

    /// Runs the write `f` in the next group commit (see the module docs) and returns its result
    /// once that commit is on disk. `f` runs inside a transaction: it must not begin one itself.
    async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let (job, rx) = write_job(f);
        self.writer
            .send(Job::Write(job))
            .map_err(|_| thread_gone())?;
        rx.await.map_err(|_| abandoned())?
    }

    /// Runs `f` on the writer's connection outside any transaction and waits for it, blocking the
    /// calling thread (tests planting or inspecting raw data).
    #[cfg(test)]
    fn with_writer_conn<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> T + Send + 'static,
    ) -> T {
        let (tx, rx) = mpsc::channel();
        let job = Job::Run(Box::new(move |c| {
            let _ = tx.send(f(c));
        }));
        self.writer.send(job).expect("writer thread alive");
        rx.recv().expect("writer thread answered")
    }
}

fn thread_gone() -> StoreError {
    StoreError::Unavailable("the sqlite connection thread has stopped".into())
}

fn abandoned() -> StoreError {
    StoreError::Unavailable("sqlite work was abandoned".into())
}

/// Reports a write's outcome once the commit it was part of is known.
type Completion = Box<dyn FnOnce(StoreResult<()>) + Send>;
/// A queued write: runs on the connection (`None` when the batch could not begin), says whether
/// it succeeded (else its savepoint is rolled back) and hands back how to report the commit.
type WriteJob = Box<dyn FnOnce(Option<&Connection>) -> (bool, Completion) + Send>;

/// Wraps the write `f` as a job for [`group_commit`], with the channel its result arrives on.
fn write_job<T, F>(f: F) -> (WriteJob, tokio::sync::oneshot::Receiver<StoreResult<T>>)
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job: WriteJob = Box::new(move |c| {
        // `None`: the batch could not start; the commit's error is what gets reported.
        let result = match c {
            Some(c) => f(c),
            None => Err(StoreError::Unavailable("not run".into())),
        };
        let ok = result.is_ok();
        let complete: Completion = Box::new(move |commit| {
            let _ = tx.send(commit.and(result));
        });
        (ok, complete)
    });
    (job, rx)
}

/// Work for a connection thread.
enum Job {
    /// Runs in the next group commit.
    Write(WriteJob),
    /// Runs on its own, outside any transaction (reads, raw access in tests).
    Run(Box<dyn FnOnce(&mut Connection) + Send>),
}

/// Most jobs taken off the channel at once: bounds one transaction's size and the wait of the
/// reads queued behind it.
const MAX_BATCH: usize = 512;

/// Starts the thread that owns `conn`; it runs until every sender of the returned channel is
/// dropped, then closes the connection.
fn spawn_connection_thread(name: &str, conn: Connection) -> StoreResult<mpsc::Sender<Job>> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || serve_connection(conn, rx))
        .map_err(|e| StoreError::Unavailable(format!("cannot start a sqlite thread: {e}")))?;
    Ok(tx)
}

fn serve_connection(mut conn: Connection, jobs: mpsc::Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut writes = Vec::new();
        let mut runs = Vec::new();
        for job in std::iter::once(first).chain(jobs.try_iter().take(MAX_BATCH - 1)) {
            match job {
                Job::Write(w) => writes.push(w),
                Job::Run(r) => runs.push(r),
            }
        }
        // A panicking job (test builds unwind) drops its answer channel, so its caller gets an
        // error; the thread rolls back whatever the job left open and keeps serving.
        if !writes.is_empty()
            && std::panic::catch_unwind(AssertUnwindSafe(|| group_commit(&conn, writes))).is_err()
        {
            tracing::error!("a sqlite write panicked; its batch was rolled back");
        }
        for run in runs {
            if std::panic::catch_unwind(AssertUnwindSafe(|| run(&mut conn))).is_err() {
                tracing::error!("a sqlite read panicked");
            }
        }
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
    }
}

/// Runs the writes in one IMMEDIATE transaction, each in a savepoint, commits once and answers
/// them all.
fn group_commit(conn: &Connection, jobs: Vec<WriteJob>) {
    if !conn.is_autocommit() {
        // A write panicked mid-batch (test builds unwind): drop what that batch left open.
        let _ = conn.execute_batch("ROLLBACK");
    }
    if let Err(e) = exec(conn, "BEGIN IMMEDIATE", []) {
        let message = db_err(e).to_string();
        for job in jobs {
            let (_, complete) = job(None);
            complete(Err(StoreError::Unavailable(message.clone())));
        }
        return;
    }
    let mut completions = Vec::with_capacity(jobs.len());
    let mut savepoint_error = None;
    for job in jobs {
        if let Err(e) = exec(conn, "SAVEPOINT w", []) {
            savepoint_error = Some(db_err(e).to_string());
        }
        let (ok, complete) = job(Some(conn));
        let rolled_back = if ok {
            Ok(0)
        } else {
            exec(conn, "ROLLBACK TO w", [])
        };
        if let Err(e) = rolled_back.and_then(|_| exec(conn, "RELEASE w", [])) {
            savepoint_error = Some(db_err(e).to_string());
        }
        completions.push(complete);
    }
    let commit = match savepoint_error {
        // Without working savepoints a failed write may have left changes: commit nothing.
        Some(message) => Err(message),
        None => exec(conn, "COMMIT", [])
            .map(|_| ())
            .map_err(|e| db_err(e).to_string()),
    };
    if commit.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    for complete in completions {
        complete(
            commit
                .clone()
                .map_err(|message| StoreError::Unavailable(message.to_string())),
        );
    }
}

/// Runs one statement through the connection's statement cache: the hot paths run the same few
/// statements thousands of times, and parsing them each time showed in profiles.
fn exec(c: &Connection, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<usize> {
    c.prepare_cached(sql)?.execute(params)
}

/// Distinct statements kept prepared per connection (rusqlite's default is 16; there are more).
const STATEMENT_CACHE: usize = 64;

/// Lets the retention sweep give deleted pages back to the file system. The mode takes effect on
/// a new file at once; a file made before it is rebuilt (`VACUUM`) once.
fn incremental_auto_vacuum(conn: &Connection) -> StoreResult<()> {
    const INCREMENTAL: i64 = 2;
    let mode: i64 = conn
        .pragma_query_value(None, "auto_vacuum", |r| r.get(0))
        .map_err(db_err)?;
    if mode == INCREMENTAL {
        return Ok(());
    }
    conn.pragma_update(None, "auto_vacuum", INCREMENTAL)
        .map_err(db_err)?;
    let mode: i64 = conn
        .pragma_query_value(None, "auto_vacuum", |r| r.get(0))
        .map_err(db_err)?;
    if mode != INCREMENTAL {
        tracing::info!("rebuilding the database once so retention can reclaim space");
        conn.execute_batch("VACUUM").map_err(db_err)?;
    }
    Ok(())
}

fn migrate(conn: &mut Connection) -> StoreResult<()> {
    // IMMEDIATE: two processes opening a new file at once must not both run the migrations.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_err)?;
    let version: i64 = tx
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(db_err)?;
    let applied = usize::try_from(version)
        .ok()
        .filter(|v| *v <= MIGRATIONS.len())
        .ok_or_else(|| {
            StoreError::Corrupt(format!(
                "database schema version {version} is not one this build knows (0..={})",
                MIGRATIONS.len()
            ))
        })?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        tx.execute_batch(sql).map_err(db_err)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)
            .map_err(db_err)?;
    }
    tx.commit().map_err(db_err)
}

/// Maps a SQLite failure: damaged files and undecodable values are `Corrupt`; everything else
/// (busy, locked, I/O, disk full, read-only…) is treated as transient `Unavailable`.
fn db_err(e: rusqlite::Error) -> StoreError {
    use rusqlite::Error as E;
    match &e {
        E::SqliteFailure(f, _)
            if matches!(f.code, ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) =>
        {
            StoreError::Corrupt(e.to_string())
        }
        E::FromSqlConversionFailure(..)
        | E::IntegralValueOutOfRange(..)
        | E::InvalidColumnType(..) => StoreError::Corrupt(e.to_string()),
        _ => StoreError::Unavailable(e.to_string()),
    }
}

/// Like [`db_err`], but a constraint violation (a taken primary key) is a `Conflict` on `what`.
fn insert_err(e: rusqlite::Error, what: impl FnOnce() -> String) -> StoreError {
    if e.sqlite_error_code() == Some(ErrorCode::ConstraintViolation) {
        StoreError::Conflict(what())
    } else {
        db_err(e)
    }
}

fn to_json<T: Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(format!("cannot encode: {e}")))
}

fn from_json<T: DeserializeOwned>(json: &str, what: &str) -> StoreResult<T> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

/// Timestamps are stored as RFC 3339 with nine fraction digits: exact, readable, and sortable as
/// text (for years 0 to 9999).
fn ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

fn parse_ts(s: &str) -> StoreResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt(format!("bad timestamp {s:?}: {e}")))
}

/// The start of the dedup window ending at `at`; `None` when it reaches before the epoch of
/// representable time (an effectively infinite window).
fn window_start(at: DateTime<Utc>, window: Duration) -> Option<DateTime<Utc>> {
    TimeDelta::from_std(window)
        .ok()
        .and_then(|w| at.checked_sub_signed(w))
}

fn page_limit(limit: usize) -> i64 {
    let limit = if limit == 0 {
        DEFAULT_PAGE
    } else {
        limit.min(MAX_PAGE)
    };
    limit as i64
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn from_ms(ms: i64) -> StoreResult<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| StoreError::Corrupt(format!("bad timestamp {ms} ms")))
}

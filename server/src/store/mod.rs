//! Storage: diesel over SQLite (bundled, WAL; the embedded default) and PostgreSQL, behind one
//! connection enum and one logical schema with a migration folder per backend (`migrations/`).
//!
//! Architecture invariants:
//! - the backend is chosen from the URL scheme and connected with its concrete connection type, so
//!   a refused PostgreSQL connection is reported as such;
//! - every pooled SQLite connection gets WAL, `busy_timeout` and `foreign_keys` via `batch_execute`;
//! - blocking database work runs on the blocking pool ([`Store::run`]), never on the executor;
//! - every single-use consumption (code, refresh token, client assertion `jti`) is one atomic
//!   statement (`UPDATE … WHERE used = false … RETURNING` or an insert against a primary key);
//! - repository functions are written once over [`DbConn`] with [`with_conn!`]/[`with_tx!`].

pub mod clients;
pub mod grant;
pub mod grants;
pub mod keys;
pub mod recorder;
pub mod schema;
pub mod sessions;
pub mod uma;
pub mod users;

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::{PgConnection, SqliteConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::config::DatabaseUrl;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/postgres");

/// Pragmas set on every pooled SQLite connection (see `../shared/dependencies.md`, pitfalls 2 and 3).
/// `wal_autocheckpoint = 0`: no checkpoint inside whichever commit crosses the threshold; the
/// writer thread checkpoints between its batches, every 25 ms while busy (small, cheap
/// checkpoints with nothing appending meanwhile, so the WAL restarts and stays a few MB even
/// under saturating load), and the store's checkpoint thread when the writer has been idle.
const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; \
     PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = 67108864; \
     PRAGMA cache_size = -16384;";

/// How often the SQLite checkpoint thread looks whether the writer has checkpointed lately.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);
/// The checkpoint thread checkpoints only when the writer has not for this long (the writer
/// checkpoints between its batches while it is busy; writes outside it still need one).
const CHECKPOINT_IDLE: Duration = Duration::from_secs(1);

/// Sets its flag when the last clone of the store is dropped, which stops the checkpoint thread.
struct StopOnDrop(std::sync::Arc<std::sync::atomic::AtomicBool>);
impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Passive WAL checkpoints off the request path when the writer thread has not made one lately
/// (it checkpoints between its batches while busy, see [`recorder`]).
fn start_checkpointer(
    pool: r2d2::Pool<Manager>,
    checkpoints: recorder::Checkpoints,
) -> Result<StopOnDrop, StoreError> {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::Builder::new()
        .name("custodia-sqlite-checkpoint".into())
        .spawn(move || {
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(CHECKPOINT_EVERY);
                if !checkpoints.older_than(CHECKPOINT_IDLE) {
                    continue;
                }
                if let Ok(mut c) = pool.get() {
                    match crate::with_conn!(&mut *c, c => c.batch_execute("PRAGMA wal_checkpoint(PASSIVE)")) {
                        Ok(()) => checkpoints.done(),
                        Err(e) => tracing::warn!(error = %e, "SQLite checkpoint failed"),
                    }
                }
            }
        })
        .map_err(|e| StoreError::Task(format!("cannot start the SQLite checkpoint thread: {e}")))?;
    Ok(StopOnDrop(stop))
}

/// A connection to either backend.
pub enum DbConn {
    Sqlite(SqliteConnection),
    Pg(PgConnection),
}

/// Run `$body` with `$c` bound to the concrete connection (`&mut SqliteConnection` or
/// `&mut PgConnection`); the body is compiled once per backend.
#[macro_export]
macro_rules! with_conn {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::store::DbConn::Sqlite($c) => $body,
            $crate::store::DbConn::Pg($c) => $body,
        }
    };
}

/// Like [`with_conn!`], inside a transaction. SQLite takes the write lock up front
/// (`BEGIN IMMEDIATE`), so a read-then-write transaction never fails on a lock upgrade.
#[macro_export]
macro_rules! with_tx {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::store::DbConn::Sqlite(conn) => conn.immediate_transaction(|$c| $body),
            $crate::store::DbConn::Pg(conn) => conn.transaction(|$c| $body),
        }
    };
}

/// Rows one housekeeping step deletes from a table (about: the rows sharing the cutoff's second
/// go too). Steps go through the writer one by one, so none holds it long: a minute of expired
/// one-time `jti`s or tickets under load is tens of thousands of rows, whose one-statement delete
/// stalled every queued write for most of a second.
pub const PRUNE_STEP: i64 = 500;

/// Delete from `$table` the rows whose `$col` is below `$before`, oldest first, about
/// [`PRUNE_STEP`] of them; evaluates to `true` when more may remain. Runs inside [`with_conn!`]
/// (`$c` is the concrete connection).
#[macro_export]
macro_rules! prune_step {
    ($c:expr, $table:expr, $col:expr, $before:expr) => {{
        let cutoff: Option<i64> = $table
            .filter($col.lt($before))
            .select($col)
            .order($col.asc())
            .offset($crate::store::PRUNE_STEP - 1)
            .first::<i64>($c)
            .optional()?;
        match cutoff {
            Some(t) => {
                diesel::delete($table.filter($col.le(t))).execute($c)?;
                true
            }
            None => {
                diesel::delete($table.filter($col.lt($before))).execute($c)?;
                false
            }
        }
    }};
}

/// Which backend a store runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Storage failures. None of them is the caller's fault: the HTTP layer answers `500 server_error`
/// (or `503` from `/readyz`) and logs the cause.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    #[error("database pool: {0}")]
    Pool(String),
    #[error("database migration failed: {0}")]
    Migration(String),
    #[error("database error: {0}")]
    Db(#[from] diesel::result::Error),
    #[error("a row with this key exists already")]
    Conflict,
    #[error("blocking task failed: {0}")]
    Task(String),
}

/// Map a unique-constraint violation to [`StoreError::Conflict`].
pub(crate) fn conflict_or(e: diesel::result::Error) -> StoreError {
    match e {
        diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        ) => StoreError::Conflict,
        other => StoreError::Db(other),
    }
}

#[derive(Debug)]
pub struct ConnectError(String);
impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for ConnectError {}

/// r2d2 manager that connects with the concrete type chosen from the URL.
pub struct Manager {
    url: DatabaseUrl,
}

fn connect(url: &DatabaseUrl) -> Result<DbConn, ConnectError> {
    match url {
        DatabaseUrl::Sqlite(path) => {
            let path = path.to_string_lossy();
            let mut c = SqliteConnection::establish(&path)
                .map_err(|e| ConnectError(format!("SQLite `{path}`: {e}")))?;
            c.batch_execute(SQLITE_PRAGMAS)
                .map_err(|e| ConnectError(format!("SQLite pragmas: {e}")))?;
            Ok(DbConn::Sqlite(c))
        }
        DatabaseUrl::Postgres(u) => PgConnection::establish(u)
            .map(DbConn::Pg)
            .map_err(|e| ConnectError(format!("PostgreSQL: {}", e.to_string().trim()))),
    }
}

impl r2d2::ManageConnection for Manager {
    type Connection = DbConn;
    type Error = ConnectError;

    fn connect(&self) -> Result<DbConn, ConnectError> {
        connect(&self.url)
    }
    fn is_valid(&self, conn: &mut DbConn) -> Result<(), ConnectError> {
        with_conn!(conn, c => c.batch_execute("SELECT 1")).map_err(|e| ConnectError(e.to_string()))
    }
    fn has_broken(&self, _conn: &mut DbConn) -> bool {
        false
    }
}

/// The store: a pool, the token recorder and (SQLite) the checkpoint thread. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: r2d2::Pool<Manager>,
    recorder: recorder::TokenRecorder,
    _checkpointer: Option<std::sync::Arc<StopOnDrop>>,
}

impl Store {
    /// Connect (one connection first, so a refused connection is reported with its real cause),
    /// then build the pool.
    pub fn open(url: &DatabaseUrl, pool_size: u32) -> Result<Store, StoreError> {
        if let DatabaseUrl::Sqlite(path) = url
            && let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.exists()
        {
            return Err(StoreError::Connect(format!(
                "the directory `{}` does not exist",
                dir.display()
            )));
        }
        // The first connection tells the real error (refused, bad password, unwritable file).
        let first = connect(url).map_err(|e| StoreError::Connect(e.0))?;
        drop(first);
        // No minimum of idle connections: with one, r2d2 opens a replacement on its own worker
        // thread whenever a connection is checked out, and a one-shot command (`custodia client
        // add` on PostgreSQL) could exit while that thread was inside libpq/OpenSSL — a crash at
        // exit (SIGSEGV) after the command's work was done. Connections are opened on demand by
        // the caller instead, and stay pooled while used.
        let pool = r2d2::Pool::builder()
            .max_size(pool_size)
            .min_idle(Some(0))
            .connection_timeout(Duration::from_secs(10))
            .build(Manager { url: url.clone() })
            .map_err(|e| StoreError::Pool(e.to_string()))?;
        let backend = match url {
            DatabaseUrl::Sqlite(_) => Backend::Sqlite,
            DatabaseUrl::Postgres(_) => Backend::Postgres,
        };
        let recorder_pool = pool.clone();
        let checkpoints = (backend == Backend::Sqlite).then(recorder::Checkpoints::new);
        let recorder = recorder::TokenRecorder::start(
            move || {
                recorder_pool
                    .get()
                    .map_err(|e| StoreError::Pool(e.to_string()))
            },
            checkpoints.clone(),
        )?;
        let checkpointer = match checkpoints {
            Some(cp) => Some(std::sync::Arc::new(start_checkpointer(pool.clone(), cp)?)),
            None => None,
        };
        Ok(Store {
            pool,
            recorder,
            _checkpointer: checkpointer,
        })
    }

    /// Apply pending migrations of this backend's folder; returns the versions applied.
    pub fn migrate(&self) -> Result<Vec<String>, StoreError> {
        let mut conn = self
            .pool
            .get()
            .map_err(|e| StoreError::Pool(e.to_string()))?;
        let applied = match &mut *conn {
            DbConn::Sqlite(c) => c
                .run_pending_migrations(SQLITE_MIGRATIONS)
                .map(|v| v.iter().map(|m| m.to_string()).collect()),
            DbConn::Pg(c) => c
                .run_pending_migrations(POSTGRES_MIGRATIONS)
                .map(|v| v.iter().map(|m| m.to_string()).collect()),
        };
        applied.map_err(|e| StoreError::Migration(e.to_string()))
    }

    /// Run blocking database work on the blocking pool.
    pub async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConn) -> Result<T, StoreError> + Send + 'static,
    {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get().map_err(|e| StoreError::Pool(e.to_string()))?;
            f(&mut conn)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// Record an access token's `jti` (group-committed with concurrent ones; see [`recorder`]).
    pub async fn record_access_token(&self, row: grants::AccessTokenRow) -> Result<(), StoreError> {
        self.recorder
            .record(recorder::Record::AccessToken(row))
            .await
            .map(|_| ())
    }

    /// Record a one-time `jti` under `issuer` (a client, or a DPoP target) until `expires_at`,
    /// group-committed like access-token records: `true` when it was new, `false` for a replay.
    pub async fn use_jti(
        &self,
        issuer: String,
        jti: String,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        match self
            .recorder
            .record(recorder::Record::Jti(issuer, jti, expires_at))
            .await?
        {
            recorder::Reply::Fresh(f) => Ok(f),
            other => Err(StoreError::Task(format!(
                "the writer answered {other:?} to a jti"
            ))),
        }
    }

    /// One step of deleting what expired before `now` (every table housekeeping keeps short),
    /// through the writer: at most about [`PRUNE_STEP`] rows per table. `true` when more remain
    /// (call again).
    pub async fn prune(&self, now: i64) -> Result<bool, StoreError> {
        match self.recorder.record(recorder::Record::Prune(now)).await? {
            recorder::Reply::Pruned(more) => Ok(more),
            other => Err(StoreError::Task(format!(
                "the writer answered {other:?} to a prune"
            ))),
        }
    }

    /// Store a permission ticket (group-committed like access-token records).
    pub async fn record_ticket(&self, ticket: uma::NewTicket) -> Result<(), StoreError> {
        self.recorder
            .record(recorder::Record::Ticket(ticket))
            .await
            .map(|_| ())
    }

    /// Consume a ticket through the writer: `Some` only for the one presentation that won.
    pub async fn consume_ticket(
        &self,
        hash: String,
        now: i64,
    ) -> Result<Option<uma::TicketRow>, StoreError> {
        match self
            .recorder
            .record(recorder::Record::Consume(hash, now))
            .await?
        {
            recorder::Reply::Consumed(row) => Ok(row),
            recorder::Reply::Done => Ok(None),
            other @ (recorder::Reply::Fresh(_) | recorder::Reply::Pruned(_)) => Err(
                StoreError::Task(format!("the writer answered {other:?} to a ticket")),
            ),
        }
    }

    /// Commit the rows of a grant decision through the writer.
    pub async fn record_grant(&self, rows: recorder::GrantRows) -> Result<(), StoreError> {
        self.recorder
            .record(recorder::Record::Grant(Box::new(rows)))
            .await
            .map(|_| ())
    }

    /// The same, synchronously (CLI commands).
    pub fn run_sync<T>(
        &self,
        f: impl FnOnce(&mut DbConn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self
            .pool
            .get()
            .map_err(|e| StoreError::Pool(e.to_string()))?;
        f(&mut conn)
    }

    /// Readiness: a round trip to the database.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.run(|c| with_conn!(c, c => c.batch_execute("SELECT 1")).map_err(StoreError::from))
            .await
    }
}

//! The single writer of the hot paths: access-token records (`client_credentials`, RPTs),
//! permission tickets (the permission endpoint, ticket rotation), ticket consumption, the
//! grant's rows (RPT grounds, PCTs, decisions), one-time `jti`s (client assertions, DPoP
//! proofs) and the housekeeping deletes of expired rows.
//!
//! Every access token's `jti` must be recorded before the token is handed out (so introspection and
//! revocation see it), and every ticket must be stored before it is returned. Under load, one
//! commit per request makes SQLite's single writer the bottleneck and its busy backoff (sleeps of
//! 1, 2, 5, 10 … ms) the tail latency. Instead, requests queue their write on a channel; one writer
//! thread drains the queue (FIFO, at most 256 at a time) and commits each kind of write as one
//! transaction, and only then answers each request. Nothing is acknowledged before it is committed;
//! a failed batch is retried job by job so each request gets its own outcome. Ticket consumption
//! stays one conditional `UPDATE … RETURNING` per ticket (single use holds across instances), now
//! inside the writer's transaction. The same path serves PostgreSQL (one round trip per batch).
//! On SQLite the writer also checkpoints the WAL between batches ([`WRITER_CHECKPOINT_EVERY`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::grant::{self, DecisionRow, GroundRow, PctRow};
use super::grants::{self, AccessTokenRow};
use super::uma::{self, NewTicket, TicketRow};
use super::{DbConn, StoreError};

/// One write.
#[derive(Clone, Debug)]
pub enum Record {
    AccessToken(AccessTokenRow),
    Ticket(NewTicket),
    /// Consume a ticket (`hash`, `now`); the reply carries the row when this presentation won.
    Consume(String, i64),
    /// What the grant writes with a decision: an RPT's record and grounds, a PCT, the audit row.
    Grant(Box<GrantRows>),
    /// Record a one-time `jti` (`issuer` or scope, `jti`, `expires_at`): client assertions and DPoP
    /// proofs; the reply says whether it was new.
    Jti(String, String, i64),
    /// Housekeeping: one step of deleting what expired before `now` (about
    /// [`super::PRUNE_STEP`] rows per table). Through the writer, so the minute's deletes never
    /// contend with it for SQLite's write lock (a writer that meets a held lock sleeps in SQLite's
    /// busy backoff — 1, 2, 5 … 100 ms — and every queued request with it), in steps, so none
    /// holds it long.
    Prune(i64),
}

/// The rows of one grant decision, committed together.
#[derive(Clone, Debug, Default)]
pub struct GrantRows {
    pub access: Option<AccessTokenRow>,
    pub grounds: Vec<GroundRow>,
    pub pct: Option<PctRow>,
    pub decision: Option<DecisionRow>,
}

/// The writer's answer.
#[derive(Debug)]
pub enum Reply {
    Done,
    Consumed(Option<TicketRow>),
    /// A `jti` was new (`true`) or seen before.
    Fresh(bool),
    /// A housekeeping step ran; `true` when more expired rows remain.
    Pruned(bool),
}

type Job = (Record, oneshot::Sender<Result<Reply, StoreError>>);

const MAX_BATCH: usize = 256;

/// The sending side; cheap to clone.
#[derive(Clone)]
pub struct TokenRecorder {
    tx: mpsc::Sender<Job>,
}

impl TokenRecorder {
    /// Start the writer thread over a way to get connections. `checkpoints`: on SQLite, when the
    /// writer last checkpointed (milliseconds since `epoch`), shared with the store's idle
    /// checkpointer.
    pub fn start<F>(
        connect: F,
        checkpoints: Option<Checkpoints>,
    ) -> Result<TokenRecorder, StoreError>
    where
        F: Fn() -> Result<r2d2::PooledConnection<super::Manager>, StoreError> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("custodia-writer".into())
            .spawn(move || writer(connect, rx, checkpoints))
            .map_err(|e| StoreError::Task(format!("cannot start the writer: {e}")))?;
        Ok(TokenRecorder { tx })
    }

    /// Queue one write; returns once it is committed.
    pub async fn record(&self, row: Record) -> Result<Reply, StoreError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send((row, done))
            .map_err(|_| StoreError::Task("the writer stopped".into()))?;
        wait.await
            .map_err(|_| StoreError::Task("the writer dropped a request".into()))?
    }
}

fn kind(r: &Record) -> u8 {
    match r {
        Record::AccessToken(_) => 0,
        Record::Ticket(_) => 1,
        Record::Consume(..) => 2,
        Record::Grant(_) => 3,
        Record::Jti(..) => 4,
        Record::Prune(_) => 5,
    }
}

/// When SQLite's WAL was last checkpointed, shared by the writer and the store's checkpointer.
#[derive(Clone)]
pub struct Checkpoints {
    epoch: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Checkpoints {
    pub fn new() -> Checkpoints {
        Checkpoints {
            epoch: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Whether the last checkpoint is at least `age` old.
    pub fn older_than(&self, age: Duration) -> bool {
        self.now_ms()
            .saturating_sub(self.last_ms.load(Ordering::Relaxed))
            >= age.as_millis() as u64
    }

    pub fn done(&self) {
        self.last_ms.store(self.now_ms(), Ordering::Relaxed);
    }
}

impl Default for Checkpoints {
    fn default() -> Self {
        Checkpoints::new()
    }
}

/// How often the writer checkpoints SQLite's WAL between its batches.
pub const WRITER_CHECKPOINT_EVERY: Duration = Duration::from_millis(25);

/// A passive checkpoint on the writer's own connection, between batches. While it runs nothing
/// else appends to the WAL (the writer is the one writer of the hot paths), so it can copy every
/// frame back and the next write transaction can restart the WAL from its beginning: the WAL
/// stays small even under saturating load, where a checkpoint racing the writer never catches up
/// (readers always hold a recent snapshot) and the WAL grew without bound.
fn checkpoint(conn: &mut DbConn, checkpoints: &Checkpoints) {
    use diesel::connection::SimpleConnection as _;
    if let DbConn::Sqlite(c) = conn {
        // A failure is retried after the next batch (the time is not recorded).
        match c.batch_execute("PRAGMA wal_checkpoint(PASSIVE)") {
            Ok(()) => checkpoints.done(),
            Err(e) => tracing::warn!(error = %e, "SQLite checkpoint failed"),
        }
    }
}

fn writer<F>(connect: F, rx: mpsc::Receiver<Job>, checkpoints: Option<Checkpoints>)
where
    F: Fn() -> Result<r2d2::PooledConnection<super::Manager>, StoreError>,
{
    // Ends when every sender (every clone of the store) is gone.
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let mut conn = match connect() {
            Ok(c) => c,
            Err(e) => {
                for (_, done) in jobs {
                    let _ = done.send(Err(StoreError::Pool(e.to_string())));
                }
                continue;
            }
        };
        // Each kind is its own batch, so a failing batch of one kind never leaves another half
        // committed and retried.
        let mut groups: [Vec<Job>; 6] = Default::default();
        for j in jobs {
            groups[kind(&j.0) as usize].push(j);
        }
        for group in groups {
            if group.is_empty() {
                continue;
            }
            let rows: Vec<Record> = group.iter().map(|(r, _)| r.clone()).collect();
            match run_batch(&mut conn, &rows) {
                Ok(replies) => {
                    for ((_, done), reply) in group.into_iter().zip(replies) {
                        let _ = done.send(Ok(reply));
                    }
                }
                Err(_) => {
                    for (row, done) in group {
                        let one = run_batch(&mut conn, std::slice::from_ref(&row))
                            .map(|mut r| r.pop().unwrap_or(Reply::Done));
                        let _ = done.send(one);
                    }
                }
            }
        }
        if let Some(cp) = &checkpoints
            && cp.older_than(WRITER_CHECKPOINT_EVERY)
        {
            checkpoint(&mut conn, cp);
        }
    }
}

/// Run a batch of one kind as one transaction (access tokens: one statement); one reply per job.
fn run_batch(conn: &mut DbConn, rows: &[Record]) -> Result<Vec<Reply>, StoreError> {
    let Some(first) = rows.first() else {
        return Ok(vec![]);
    };
    match first {
        Record::AccessToken(_) => {
            let access: Vec<AccessTokenRow> = rows
                .iter()
                .filter_map(|r| match r {
                    Record::AccessToken(a) => Some(a.clone()),
                    _ => None,
                })
                .collect();
            match access.len() {
                1 => grants::insert_access_token(conn, &access[0])?,
                _ => grants::insert_access_tokens(conn, &access)?,
            }
            Ok(rows.iter().map(|_| Reply::Done).collect())
        }
        Record::Ticket(_) => {
            let tickets: Vec<NewTicket> = rows
                .iter()
                .filter_map(|r| match r {
                    Record::Ticket(t) => Some(t.clone()),
                    _ => None,
                })
                .collect();
            uma::insert_tickets(conn, &tickets)?;
            Ok(rows.iter().map(|_| Reply::Done).collect())
        }
        Record::Consume(..) => {
            let batch: Vec<(String, i64)> = rows
                .iter()
                .filter_map(|r| match r {
                    Record::Consume(h, n) => Some((h.clone(), *n)),
                    _ => None,
                })
                .collect();
            let consumed = grant::consume_tickets(conn, &batch)?;
            Ok(consumed.into_iter().map(Reply::Consumed).collect())
        }
        Record::Grant(_) => {
            let mut access = vec![];
            let mut grounds = vec![];
            let mut pcts = vec![];
            let mut decisions = vec![];
            for r in rows {
                if let Record::Grant(g) = r {
                    access.extend(g.access.clone());
                    grounds.extend(g.grounds.iter().cloned());
                    pcts.extend(g.pct.clone());
                    decisions.extend(g.decision.clone());
                }
            }
            grant::insert_grant_rows(conn, &access, &grounds, &pcts, &decisions)?;
            Ok(rows.iter().map(|_| Reply::Done).collect())
        }
        Record::Jti(..) => {
            let batch: Vec<(String, String, i64)> = rows
                .iter()
                .filter_map(|r| match r {
                    Record::Jti(i, j, e) => Some((i.clone(), j.clone(), *e)),
                    _ => None,
                })
                .collect();
            let fresh = super::sessions::use_jtis(conn, &batch)?;
            Ok(fresh.into_iter().map(Reply::Fresh).collect())
        }
        Record::Prune(now) => {
            let mut more = super::grants::prune(conn, *now)?;
            more |= super::sessions::prune(conn, *now)?;
            more |= super::uma::prune(conn, *now)?;
            more |= super::grant::prune(conn, *now)?;
            super::keys::prune(conn, *now)?;
            Ok(rows.iter().map(|_| Reply::Pruned(more)).collect())
        }
    }
}

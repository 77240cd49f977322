//! Group commit of the hot paths' single-row writes: access-token records (`client_credentials`)
//! and permission tickets (the UMA permission endpoint).
//!
//! Every access token's `jti` must be recorded before the token is handed out (so introspection and
//! revocation see it), and every ticket must be stored before it is returned. Under load, one commit per token makes SQLite's single writer the bottleneck
//! and its busy backoff (sleeps of 1, 2, 5, 10 … ms) the tail latency. Instead, requests queue their
//! record on a channel; one writer thread drains the queue (FIFO, at most 256 at a time), inserts
//! the batch in one statement and one transaction, and only then answers each request. Nothing is
//! acknowledged before it is committed; a failed batch is retried row by row so each request gets
//! its own outcome. The same path serves PostgreSQL (one round trip per batch).

use std::sync::mpsc;

use tokio::sync::oneshot;

use super::grants::{self, AccessTokenRow};
use super::uma::{self, NewTicket};
use super::{DbConn, StoreError};

/// One row (set) to commit.
#[derive(Clone, Debug)]
pub enum Record {
    AccessToken(AccessTokenRow),
    Ticket(NewTicket),
}

type Job = (Record, oneshot::Sender<Result<(), StoreError>>);

const MAX_BATCH: usize = 256;

/// The sending side; cheap to clone.
#[derive(Clone)]
pub struct TokenRecorder {
    tx: mpsc::Sender<Job>,
}

impl TokenRecorder {
    /// Start the writer thread over a way to get connections.
    pub fn start<F>(connect: F) -> Result<TokenRecorder, StoreError>
    where
        F: Fn() -> Result<r2d2::PooledConnection<super::Manager>, StoreError> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("custodia-token-recorder".into())
            .spawn(move || writer(connect, rx))
            .map_err(|e| StoreError::Task(format!("cannot start the token recorder: {e}")))?;
        Ok(TokenRecorder { tx })
    }

    /// Record one row; returns once it is committed.
    pub async fn record(&self, row: Record) -> Result<(), StoreError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send((row, done))
            .map_err(|_| StoreError::Task("the token recorder stopped".into()))?;
        wait.await
            .map_err(|_| StoreError::Task("the token recorder dropped a request".into()))?
    }
}

fn writer<F>(connect: F, rx: mpsc::Receiver<Job>)
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
        // Each kind is its own batch, so a failing batch of one kind never leaves the other half
        // committed and retried.
        let (access, tickets): (Vec<Job>, Vec<Job>) = jobs
            .into_iter()
            .partition(|(r, _)| matches!(r, Record::AccessToken(_)));
        for group in [access, tickets] {
            if group.is_empty() {
                continue;
            }
            let rows: Vec<Record> = group.iter().map(|(r, _)| r.clone()).collect();
            match insert_batch(&mut conn, &rows) {
                Ok(()) => {
                    for (_, done) in group {
                        let _ = done.send(Ok(()));
                    }
                }
                Err(_) => {
                    for (row, done) in group {
                        let _ = done.send(insert_batch(&mut conn, std::slice::from_ref(&row)));
                    }
                }
            }
        }
    }
}

/// Insert a batch of one kind: access tokens in one statement, tickets in one transaction.
fn insert_batch(conn: &mut DbConn, rows: &[Record]) -> Result<(), StoreError> {
    let mut access = vec![];
    let mut tickets = vec![];
    for r in rows {
        match r {
            Record::AccessToken(a) => access.push(a.clone()),
            Record::Ticket(t) => tickets.push(t.clone()),
        }
    }
    match access.len() {
        0 => {}
        1 => grants::insert_access_token(conn, &access[0])?,
        _ => grants::insert_access_tokens(conn, &access)?,
    }
    if !tickets.is_empty() {
        uma::insert_tickets(conn, &tickets)?;
    }
    Ok(())
}

//! Browser sessions (by SHA-256 of the cookie value), replay records for client-assertion `jti`s
//! (RFC 7523 §3), and initial access tokens for dynamic registration (RFC 7591 §3).

use diesel::prelude::*;

use crate::with_tx;

use super::schema::{initial_access_tokens, sessions, used_jtis};
use super::{DbConn, StoreError, conflict_or};
use crate::with_conn;

#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = sessions)]
pub struct SessionRow {
    pub id_hash: String,
    pub user_id: String,
    pub auth_time: i64,
    pub expires_at: i64,
}

pub fn insert(conn: &mut DbConn, row: &SessionRow) -> Result<(), StoreError> {
    with_conn!(conn, c => diesel::insert_into(sessions::table).values(row).execute(c))
        .map(|_| ())
        .map_err(conflict_or)
}

/// A live session by the hash of its cookie value.
pub fn live(conn: &mut DbConn, id_hash: &str, now: i64) -> Result<Option<SessionRow>, StoreError> {
    Ok(with_conn!(conn, c => sessions::table
        .find(id_hash)
        .filter(sessions::expires_at.gt(now))
        .select(SessionRow::as_select())
        .first(c)
        .optional())?)
}

pub fn delete(conn: &mut DbConn, id_hash: &str) -> Result<(), StoreError> {
    with_conn!(conn, c => diesel::delete(sessions::table.find(id_hash)).execute(c))?;
    Ok(())
}

/// Record a batch of `(issuer, jti, expires_at)` in one transaction (the writer's batch): for each,
/// whether it was new — one insert against the primary key each, so a replay is caught across
/// instances. `ON CONFLICT DO NOTHING` keeps a replay from aborting the transaction
/// (PostgreSQL) and counts as a replay; the same `jti` twice in one batch is new only once.
pub fn use_jtis(
    conn: &mut DbConn,
    batch: &[(String, String, i64)],
) -> Result<Vec<bool>, StoreError> {
    Ok(with_tx!(conn, c => {
        let mut out = Vec::with_capacity(batch.len());
        for (issuer, jti, expires_at) in batch {
            let n = diesel::insert_into(used_jtis::table)
                .values((
                    used_jtis::issuer.eq(issuer),
                    used_jtis::jti.eq(jti),
                    used_jtis::expires_at.eq(*expires_at),
                ))
                .on_conflict_do_nothing()
                .execute(c)?;
            out.push(n == 1);
        }
        Ok::<_, diesel::result::Error>(out)
    })?)
}

pub fn insert_initial_access_token(
    conn: &mut DbConn,
    hash: &str,
    expires_at: Option<i64>,
    now: i64,
) -> Result<(), StoreError> {
    with_conn!(conn, c => diesel::insert_into(initial_access_tokens::table)
        .values((
            initial_access_tokens::token_hash.eq(hash),
            initial_access_tokens::expires_at.eq(expires_at),
            initial_access_tokens::created_at.eq(now),
        ))
        .execute(c))
    .map(|_| ())
    .map_err(conflict_or)
}

pub fn initial_access_token_valid(
    conn: &mut DbConn,
    hash: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let row: Option<Option<i64>> = with_conn!(conn, c => initial_access_tokens::table
        .find(hash)
        .select(initial_access_tokens::expires_at)
        .first(c)
        .optional())?;
    Ok(match row {
        Some(None) => true,
        Some(Some(exp)) => exp > now,
        None => false,
    })
}

/// Delete expired sessions and `jti` records (housekeeping).
pub fn prune(conn: &mut DbConn, now: i64) -> Result<bool, StoreError> {
    Ok(with_conn!(conn, c => {
        let s = crate::prune_step!(c, sessions::table, sessions::expires_at, now);
        let j = crate::prune_step!(c, used_jtis::table, used_jtis::expires_at, now);
        Ok::<bool, diesel::result::Error>(s || j)
    })?)
}

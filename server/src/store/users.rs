//! Users (resource owners and local requesting parties): accounts with Argon2id password hashes
//! and a failed-login counter for per-account slow-down.

use diesel::prelude::*;

use super::schema::users;
use super::{DbConn, StoreError, conflict_or};
use crate::with_conn;

#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub id: String,
    pub username: String,
    pub email: String,
    pub email_verified: bool,
    pub name: Option<String>,
    /// Argon2id PHC string; never a password.
    pub password_hash: String,
    pub failed_logins: i32,
    pub last_failed_at: Option<i64>,
    pub created_at: i64,
}

pub fn insert(conn: &mut DbConn, row: &UserRow) -> Result<(), StoreError> {
    with_conn!(conn, c => diesel::insert_into(users::table).values(row).execute(c))
        .map(|_| ())
        .map_err(conflict_or)
}

pub fn by_username(conn: &mut DbConn, username: &str) -> Result<Option<UserRow>, StoreError> {
    Ok(with_conn!(conn, c => users::table
        .filter(users::username.eq(username))
        .select(UserRow::as_select())
        .first(c)
        .optional())?)
}

pub fn by_id(conn: &mut DbConn, id: &str) -> Result<Option<UserRow>, StoreError> {
    Ok(
        with_conn!(conn, c => users::table.find(id).select(UserRow::as_select()).first(c).optional())?,
    )
}

pub fn record_failed_login(conn: &mut DbConn, id: &str, now: i64) -> Result<(), StoreError> {
    with_conn!(conn, c => diesel::update(users::table.find(id))
        .set((users::failed_logins.eq(users::failed_logins + 1), users::last_failed_at.eq(Some(now))))
        .execute(c))?;
    Ok(())
}

pub fn reset_failed_logins(conn: &mut DbConn, id: &str) -> Result<(), StoreError> {
    with_conn!(conn, c => diesel::update(users::table.find(id))
        .set((users::failed_logins.eq(0), users::last_failed_at.eq(None::<i64>)))
        .execute(c))?;
    Ok(())
}

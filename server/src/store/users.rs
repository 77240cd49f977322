//! Users (resource owners and local requesting parties): accounts with Argon2id password hashes.

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

//! Registered clients: metadata (RFC 7591 names, as JSON text), the SHA-256 of the client secret and
//! of the registration access token (RFC 7592). Secrets themselves are never stored.

use diesel::prelude::*;

use super::schema::clients;
use super::{DbConn, StoreError, conflict_or};
use crate::with_conn;

#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = clients)]
pub struct ClientRow {
    pub id: String,
    pub secret_hash: Option<String>,
    pub registration_token_hash: Option<String>,
    /// RFC 7591 metadata as JSON.
    pub metadata: String,
    /// `cli` or `dynamic`.
    pub registered_by: String,
    pub created_at: i64,
}

pub fn insert(conn: &mut DbConn, row: &ClientRow) -> Result<(), StoreError> {
    with_conn!(conn, c => diesel::insert_into(clients::table).values(row).execute(c))
        .map(|_| ())
        .map_err(conflict_or)
}

pub fn by_id(conn: &mut DbConn, id: &str) -> Result<Option<ClientRow>, StoreError> {
    Ok(
        with_conn!(conn, c => clients::table.find(id).select(ClientRow::as_select()).first(c).optional())?,
    )
}

pub fn update_metadata(conn: &mut DbConn, id: &str, metadata: &str) -> Result<bool, StoreError> {
    let n = with_conn!(conn, c => diesel::update(clients::table.find(id))
        .set(clients::metadata.eq(metadata))
        .execute(c))?;
    Ok(n == 1)
}

/// Delete a client; its codes, refresh tokens and consents go with it (foreign keys), and its access
/// tokens are revoked.
pub fn delete(conn: &mut DbConn, id: &str) -> Result<bool, StoreError> {
    use super::schema::access_tokens;
    let n = crate::with_tx!(conn, c => {
        diesel::update(access_tokens::table.filter(access_tokens::client_id.eq(id)))
            .set(access_tokens::revoked.eq(true))
            .execute(c)?;
        diesel::delete(clients::table.find(id)).execute(c)
    })?;
    Ok(n == 1)
}

//! Signing keys: public JWK and the private key encrypted under the key-encryption key.

use diesel::prelude::*;

use super::schema::signing_keys;
use super::{DbConn, StoreError, conflict_or};
use crate::{with_conn, with_tx};

#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = signing_keys)]
pub struct KeyRow {
    pub kid: String,
    pub alg: String,
    pub public_jwk: String,
    /// base64(nonce ‖ AES-256-GCM ciphertext ‖ tag) of the PKCS#8 DER private key.
    pub private_key_enc: String,
    pub created_at: i64,
    /// When the key stopped signing (None: it is the current key).
    pub retired_at: Option<i64>,
    /// Until when the public key stays in the JWKS.
    pub publish_until: Option<i64>,
}

pub fn all(conn: &mut DbConn) -> Result<Vec<KeyRow>, StoreError> {
    Ok(with_conn!(conn, c => signing_keys::table
        .order(signing_keys::created_at.asc())
        .select(KeyRow::as_select())
        .load(c))?)
}

/// Insert a new current key and retire every other current key, keeping it published until
/// `publish_until` (the longest lifetime of anything it signed).
pub fn rotate_in(
    conn: &mut DbConn,
    row: &KeyRow,
    now: i64,
    publish_until: i64,
) -> Result<(), StoreError> {
    with_tx!(conn, c => {
        diesel::update(signing_keys::table.filter(signing_keys::retired_at.is_null()))
            .set((signing_keys::retired_at.eq(Some(now)), signing_keys::publish_until.eq(Some(publish_until))))
            .execute(c)?;
        diesel::insert_into(signing_keys::table).values(row).execute(c)
    })
    .map(|_| ())
    .map_err(conflict_or)
}

/// Remove retired keys no longer published.
pub fn prune(conn: &mut DbConn, now: i64) -> Result<usize, StoreError> {
    Ok(with_conn!(conn, c => diesel::delete(signing_keys::table
        .filter(signing_keys::publish_until.lt(now))
        .filter(signing_keys::retired_at.is_not_null()))
        .execute(c))?)
}

//! Grants and what they issue: authorization codes, access-token records (by `jti`), refresh tokens
//! and consents. A grant id ties a code to every token issued from it, so code replay and refresh
//! token reuse can revoke the whole family (RFC 9700 §4.2.4, §4.14.2).

use diesel::prelude::*;

use super::schema::{access_tokens, auth_codes, consents, refresh_tokens};
use super::{DbConn, StoreError, conflict_or};
use crate::{with_conn, with_tx};

macro_rules! insert_issue {
    ($c:ident, $issue:expr) => {{
        diesel::insert_into(access_tokens::table)
            .values(&$issue.access)
            .execute($c)?;
        if let Some(r) = &$issue.refresh {
            diesel::insert_into(refresh_tokens::table)
                .values(r)
                .execute($c)?;
        }
    }};
}

macro_rules! revoke_grant_body {
    ($c:ident, $grant:expr) => {{
        diesel::update(access_tokens::table.filter(access_tokens::grant_id.eq($grant)))
            .set(access_tokens::revoked.eq(true))
            .execute($c)?;
        diesel::update(refresh_tokens::table.filter(refresh_tokens::grant_id.eq($grant)))
            .set(refresh_tokens::revoked.eq(true))
            .execute($c)?;
        Ok::<(), diesel::result::Error>(())
    }};
}

#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = auth_codes)]
pub struct CodeRow {
    pub code_hash: String,
    pub grant_id: String,
    pub client_id: String,
    pub user_id: String,
    pub redirect_uri: String,
    pub redirect_uri_given: bool,
    pub scope: String,
    pub nonce: Option<String>,
    /// The S256 challenge (the only method accepted).
    pub code_challenge: Option<String>,
    pub auth_time: i64,
    pub expires_at: i64,
    pub used: bool,
    pub created_at: i64,
    /// RFC 9449 §10: the DPoP key the code is bound to (`dpop_jkt` of the request).
    pub dpop_jkt: Option<String>,
    /// The individual UserInfo claims asked for (a JSON array; OpenID Connect Core §5.5).
    pub claims: Option<String>,
    /// RFC 8707 targets the authorization request named (a JSON array).
    pub resources: Option<String>,
}

#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = access_tokens)]
pub struct AccessTokenRow {
    pub jti: String,
    pub grant_id: Option<String>,
    pub client_id: String,
    pub user_id: Option<String>,
    pub scope: String,
    pub expires_at: i64,
    pub revoked: bool,
    pub created_at: i64,
}

#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = refresh_tokens)]
pub struct RefreshTokenRow {
    pub token_hash: String,
    pub grant_id: String,
    pub client_id: String,
    pub user_id: String,
    pub scope: String,
    pub auth_time: i64,
    pub expires_at: i64,
    pub used: bool,
    pub revoked: bool,
    pub created_at: i64,
    /// A public client's refresh token is bound to its DPoP key (RFC 9449 §5).
    pub dpop_jkt: Option<String>,
    /// The individual UserInfo claims asked for (a JSON array; OpenID Connect Core §5.5).
    pub claims: Option<String>,
    /// RFC 8707 targets of the grant (a JSON array); a refresh may narrow them.
    pub resources: Option<String>,
}

/// What a grant hands out in one go.
#[derive(Clone, Debug)]
pub struct Issue {
    pub access: AccessTokenRow,
    pub refresh: Option<RefreshTokenRow>,
}

/// The outcome of presenting a single-use credential.
#[derive(Debug)]
pub enum Redeemed<T, E> {
    /// It was fresh and is now used; the closure's result (issued or refused) is committed.
    Fresh(Result<T, E>),
    /// It had been used before: the family (grant) it belongs to has been revoked.
    Replayed,
    /// No such credential (or expired, or revoked).
    Unknown,
}

pub fn insert_code(conn: &mut DbConn, row: &CodeRow) -> Result<(), StoreError> {
    with_conn!(conn, c => diesel::insert_into(auth_codes::table).values(row).execute(c))
        .map(|_| ())
        .map_err(conflict_or)
}

pub fn insert_access_token(conn: &mut DbConn, row: &AccessTokenRow) -> Result<(), StoreError> {
    with_conn!(conn, c => diesel::insert_into(access_tokens::table).values(row).execute(c))
        .map(|_| ())
        .map_err(conflict_or)
}

/// Whether `client_id` has a code on record (used or not, until housekeeping removes it after it
/// expires) issued for this PKCE `code_challenge` (BCP-09).
pub fn challenge_on_record(
    conn: &mut DbConn,
    client_id: &str,
    challenge: &str,
) -> Result<bool, StoreError> {
    Ok(with_conn!(conn, c => diesel::select(diesel::dsl::exists(
        auth_codes::table
            .filter(auth_codes::client_id.eq(client_id))
            .filter(auth_codes::code_challenge.eq(challenge))
    ))
    .get_result::<bool>(c))?)
}

/// Whether `client_id` has a code on record issued for this OpenID Connect `nonce` (BCP-09).
pub fn nonce_on_record(
    conn: &mut DbConn,
    client_id: &str,
    nonce: &str,
) -> Result<bool, StoreError> {
    Ok(with_conn!(conn, c => diesel::select(diesel::dsl::exists(
        auth_codes::table
            .filter(auth_codes::client_id.eq(client_id))
            .filter(auth_codes::nonce.eq(nonce))
    ))
    .get_result::<bool>(c))?)
}

/// The client a code was issued to (used or not), without consuming it.
pub fn code_client(conn: &mut DbConn, code_hash: &str) -> Result<Option<String>, StoreError> {
    Ok(with_conn!(conn, c => auth_codes::table
        .find(code_hash)
        .select(auth_codes::client_id)
        .first::<String>(c)
        .optional())?)
}

/// Insert many access-token records in one statement (one transaction).
pub fn insert_access_tokens(conn: &mut DbConn, rows: &[AccessTokenRow]) -> Result<(), StoreError> {
    with_conn!(conn, c => diesel::insert_into(access_tokens::table).values(rows).execute(c))
        .map(|_| ())
        .map_err(conflict_or)
}

/// Redeem an authorization code: in one transaction, mark it used with one conditional `UPDATE …
/// RETURNING` (so exactly one of any number of concurrent redemptions wins), let `decide` check the
/// bindings and build the tokens, and insert them. A code seen used already revokes every token of
/// its grant.
pub fn redeem_code<T, E>(
    conn: &mut DbConn,
    code_hash: &str,
    now: i64,
    decide: impl FnOnce(&CodeRow) -> Result<(Issue, T), E>,
) -> Result<Redeemed<T, E>, StoreError> {
    let out = with_tx!(conn, c => {
        let won: Option<CodeRow> = diesel::update(auth_codes::table
            .filter(auth_codes::code_hash.eq(code_hash))
            .filter(auth_codes::used.eq(false)))
            .set(auth_codes::used.eq(true))
            .returning(CodeRow::as_returning())
            .get_result(c)
            .optional()?;
        match won {
            Some(row) if row.expires_at > now => match decide(&row) {
                Ok((issue, out)) => {
                    insert_issue!(c, issue);
                    Ok::<_, diesel::result::Error>(Redeemed::Fresh(Ok(out)))
                }
                Err(e) => Ok(Redeemed::Fresh(Err(e))),
            },
            Some(_) => Ok(Redeemed::Unknown),
            None => {
                let grant: Option<String> = auth_codes::table
                    .filter(auth_codes::code_hash.eq(code_hash))
                    .select(auth_codes::grant_id)
                    .first(c)
                    .optional()?;
                match grant {
                    Some(g) => {
                        revoke_grant_body!(c, &g)?;
                        Ok(Redeemed::Replayed)
                    }
                    None => Ok(Redeemed::Unknown),
                }
            }
        }
    })?;
    Ok(out)
}

/// Rotate a refresh token: mark it used with one conditional `UPDATE … RETURNING`, let `decide`
/// build the new tokens, insert them. Presenting a rotated (used) token revokes the whole family.
pub fn rotate_refresh<T, E>(
    conn: &mut DbConn,
    token_hash: &str,
    now: i64,
    decide: impl FnOnce(&RefreshTokenRow) -> Result<(Issue, T), E>,
) -> Result<Redeemed<T, E>, StoreError> {
    let out = with_tx!(conn, c => {
        let won: Option<RefreshTokenRow> = diesel::update(refresh_tokens::table
            .filter(refresh_tokens::token_hash.eq(token_hash))
            .filter(refresh_tokens::used.eq(false))
            .filter(refresh_tokens::revoked.eq(false)))
            .set(refresh_tokens::used.eq(true))
            .returning(RefreshTokenRow::as_returning())
            .get_result(c)
            .optional()?;
        match won {
            Some(row) if row.expires_at > now => match decide(&row) {
                Ok((issue, out)) => {
                    insert_issue!(c, issue);
                    Ok::<_, diesel::result::Error>(Redeemed::Fresh(Ok(out)))
                }
                Err(e) => Ok(Redeemed::Fresh(Err(e))),
            },
            Some(_) => Ok(Redeemed::Unknown),
            None => {
                let prior: Option<(String, bool)> = refresh_tokens::table
                    .filter(refresh_tokens::token_hash.eq(token_hash))
                    .select((refresh_tokens::grant_id, refresh_tokens::used))
                    .first(c)
                    .optional()?;
                match prior {
                    Some((g, true)) => {
                        revoke_grant_body!(c, &g)?;
                        Ok(Redeemed::Replayed)
                    }
                    _ => Ok(Redeemed::Unknown),
                }
            }
        }
    })?;
    Ok(out)
}

/// Revoke every access and refresh token of a grant.
pub fn revoke_grant(conn: &mut DbConn, grant: &str) -> Result<(), StoreError> {
    with_tx!(conn, c => revoke_grant_body!(c, grant))?;
    Ok(())
}

pub fn access_token(conn: &mut DbConn, jti: &str) -> Result<Option<AccessTokenRow>, StoreError> {
    Ok(
        with_conn!(conn, c => access_tokens::table.find(jti).select(AccessTokenRow::as_select()).first(c).optional())?,
    )
}

pub fn revoke_access_token(conn: &mut DbConn, jti: &str) -> Result<(), StoreError> {
    with_conn!(conn, c => diesel::update(access_tokens::table.find(jti)).set(access_tokens::revoked.eq(true)).execute(c))?;
    Ok(())
}

pub fn refresh_token(conn: &mut DbConn, hash: &str) -> Result<Option<RefreshTokenRow>, StoreError> {
    Ok(
        with_conn!(conn, c => refresh_tokens::table.find(hash).select(RefreshTokenRow::as_select()).first(c).optional())?,
    )
}

/// The scopes a user has consented to for a client (space-separated), if any.
pub fn consent(conn: &mut DbConn, user: &str, client: &str) -> Result<Option<String>, StoreError> {
    Ok(with_conn!(conn, c => consents::table
        .find((user, client))
        .select(consents::scope)
        .first(c)
        .optional())?)
}

pub fn save_consent(
    conn: &mut DbConn,
    user: &str,
    client: &str,
    scope: &str,
    now: i64,
) -> Result<(), StoreError> {
    with_conn!(conn, c => diesel::insert_into(consents::table)
        .values((consents::user_id.eq(user), consents::client_id.eq(client), consents::scope.eq(scope), consents::updated_at.eq(now)))
        .on_conflict((consents::user_id, consents::client_id))
        .do_update()
        .set((consents::scope.eq(scope), consents::updated_at.eq(now)))
        .execute(c))?;
    Ok(())
}

/// Every consent a user has given: `(client id, scope, updated at)`.
pub fn consents_of(
    conn: &mut DbConn,
    user: &str,
) -> Result<Vec<(String, String, i64)>, StoreError> {
    Ok(with_conn!(conn, c => consents::table
        .filter(consents::user_id.eq(user))
        .order(consents::updated_at.desc())
        .select((consents::client_id, consents::scope, consents::updated_at))
        .load(c))?)
}

/// The owner withdraws a client's access: in one transaction, every access token (PATs included)
/// and refresh token the client holds for the user is revoked and the consent is forgotten, so the
/// next authorization asks again. Returns whether there was anything to withdraw.
pub fn withdraw(conn: &mut DbConn, user: &str, client: &str) -> Result<bool, StoreError> {
    let n = with_tx!(conn, c => {
        let a = diesel::update(
            access_tokens::table
                .filter(access_tokens::user_id.eq(user))
                .filter(access_tokens::client_id.eq(client))
                .filter(access_tokens::revoked.eq(false)),
        )
        .set(access_tokens::revoked.eq(true))
        .execute(c)?;
        let r = diesel::update(
            refresh_tokens::table
                .filter(refresh_tokens::user_id.eq(user))
                .filter(refresh_tokens::client_id.eq(client))
                .filter(refresh_tokens::revoked.eq(false)),
        )
        .set(refresh_tokens::revoked.eq(true))
        .execute(c)?;
        let k = diesel::delete(
            consents::table
                .filter(consents::user_id.eq(user))
                .filter(consents::client_id.eq(client)),
        )
        .execute(c)?;
        Ok::<usize, diesel::result::Error>(a + r + k)
    })?;
    Ok(n > 0)
}

/// Delete expired codes and token records (housekeeping).
pub fn prune(conn: &mut DbConn, now: i64) -> Result<bool, StoreError> {
    let before = now - 3600;
    Ok(with_conn!(conn, c => {
        let codes = crate::prune_step!(c, auth_codes::table, auth_codes::expires_at, before);
        let access = crate::prune_step!(c, access_tokens::table, access_tokens::expires_at, before);
        let refresh = crate::prune_step!(c, refresh_tokens::table, refresh_tokens::expires_at, before);
        Ok::<bool, diesel::result::Error>(codes || access || refresh)
    })?)
}

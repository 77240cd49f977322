//! UMA grant state (UMA Grant §3.3): owners' policies (with a per-owner version that every policy
//! change bumps, so any instance knows its compiled set is stale), whether an owner accepts access
//! requests, the pending requests themselves, the audit of every grant decision, and the
//! single-use consumption of permission tickets.

use diesel::prelude::*;

use super::schema::{
    access_requests, grant_decisions, owner_settings, pcts, policies, rpt_grounds, tickets,
};
use super::uma::TicketRow;
use super::{DbConn, StoreError, conflict_or};
use crate::{with_conn, with_tx};

#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = policies)]
pub struct PolicyRow {
    pub id: String,
    pub owner_id: String,
    /// JSON of `custodia_policy::PolicySource`.
    pub source: String,
    pub created_at: i64,
}

#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = access_requests)]
pub struct AccessRequestRow {
    pub id: String,
    pub owner_id: String,
    pub rs_client_id: String,
    pub client_id: String,
    /// JSON: who is asking (issuer, subject, email) as far as known.
    pub party: String,
    /// The requesting party's key: `iss|sub`, or `client:<id>` when unidentified.
    pub party_key: String,
    /// JSON array of `{resource_id, resource_scopes}` asked for.
    pub permissions: String,
    /// `pending`, `approved` or `denied`.
    pub status: String,
    /// JSON array of `{resource_id, resource_scopes}` granted (approved requests).
    pub granted: Option<String>,
    pub created_at: i64,
    pub decided_at: Option<i64>,
}

#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = grant_decisions)]
pub struct DecisionRow {
    pub id: String,
    pub owner_id: String,
    pub client_id: String,
    pub party: String,
    pub asked: String,
    pub granted: String,
    pub policies: String,
    pub outcome: String,
    pub created_at: i64,
}

/// Bump an owner's policy version (inside the transaction that changes a policy).
macro_rules! bump_version {
    ($c:ident, $owner:expr, $now:expr) => {
        diesel::insert_into(owner_settings::table)
            .values((
                owner_settings::owner_id.eq($owner),
                owner_settings::accept_requests.eq(false),
                owner_settings::policy_version.eq(1_i64),
                owner_settings::updated_at.eq($now),
            ))
            .on_conflict(owner_settings::owner_id)
            .do_update()
            .set((
                owner_settings::policy_version.eq(owner_settings::policy_version + 1_i64),
                owner_settings::updated_at.eq($now),
            ))
            .execute($c)
    };
}

pub fn insert_policy(conn: &mut DbConn, row: &PolicyRow) -> Result<(), StoreError> {
    with_tx!(conn, c => {
        diesel::insert_into(policies::table).values(row).execute(c)?;
        bump_version!(c, &row.owner_id, row.created_at)?;
        Ok::<(), diesel::result::Error>(())
    })
    .map_err(conflict_or)
}

pub fn owner_policies(conn: &mut DbConn, owner: &str) -> Result<Vec<PolicyRow>, StoreError> {
    Ok(with_conn!(conn, c => policies::table
        .filter(policies::owner_id.eq(owner))
        .order((policies::created_at.asc(), policies::id.asc()))
        .select(PolicyRow::as_select())
        .load(c))?)
}

/// Delete one of an owner's policies; returns whether it existed.
pub fn delete_policy(
    conn: &mut DbConn,
    owner: &str,
    id: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let n = with_tx!(conn, c => {
        let n = diesel::delete(
            policies::table
                .filter(policies::owner_id.eq(owner))
                .filter(policies::id.eq(id)),
        )
        .execute(c)?;
        if n > 0 {
            bump_version!(c, owner, now)?;
        }
        Ok::<usize, diesel::result::Error>(n)
    })?;
    Ok(n == 1)
}

/// An owner's settings: (accept requests, policy version).
pub fn settings(conn: &mut DbConn, owner: &str) -> Result<(bool, i64), StoreError> {
    Ok(with_conn!(conn, c => owner_settings::table
        .find(owner)
        .select((owner_settings::accept_requests, owner_settings::policy_version))
        .first::<(bool, i64)>(c)
        .optional())?
    .unwrap_or((false, 0)))
}

pub fn set_accept_requests(
    conn: &mut DbConn,
    owner: &str,
    accept: bool,
    now: i64,
) -> Result<(), StoreError> {
    with_conn!(conn, c => diesel::insert_into(owner_settings::table)
        .values((
            owner_settings::owner_id.eq(owner),
            owner_settings::accept_requests.eq(accept),
            owner_settings::policy_version.eq(0_i64),
            owner_settings::updated_at.eq(now),
        ))
        .on_conflict(owner_settings::owner_id)
        .do_update()
        .set((
            owner_settings::accept_requests.eq(accept),
            owner_settings::updated_at.eq(now),
        ))
        .execute(c))?;
    Ok(())
}

/// Consume a ticket on a backend connection: one conditional `UPDATE … RETURNING`, so of any
/// number of concurrent presentations exactly one gets the row (UMA-GRANT-54).
macro_rules! consume_query {
    ($c:ident, $hash:expr, $now:expr) => {
        diesel::update(
            tickets::table
                .filter(tickets::ticket_hash.eq($hash))
                .filter(tickets::used.eq(false))
                .filter(tickets::expires_at.gt($now)),
        )
        .set(tickets::used.eq(true))
        .returning(TicketRow::as_returning())
        .get_result($c)
        .optional()
    };
}

/// Consume several tickets in one transaction (the writer's batch); one answer each.
pub fn consume_tickets(
    conn: &mut DbConn,
    batch: &[(String, i64)],
) -> Result<Vec<Option<TicketRow>>, StoreError> {
    Ok(with_tx!(conn, c => {
        let mut out = Vec::with_capacity(batch.len());
        for (hash, now) in batch {
            out.push(consume_query!(c, hash, *now)?);
        }
        Ok::<_, diesel::result::Error>(out)
    })?)
}

/// The rows of grant decisions, in one transaction (the writer's batch).
pub fn insert_grant_rows(
    conn: &mut DbConn,
    access: &[super::grants::AccessTokenRow],
    grounds: &[GroundRow],
    pcts_rows: &[PctRow],
    decisions: &[DecisionRow],
) -> Result<(), StoreError> {
    use super::schema::access_tokens;
    with_tx!(conn, c => {
        if !access.is_empty() {
            diesel::insert_into(access_tokens::table).values(access).execute(c)?;
        }
        for chunk in grounds.chunks(500) {
            diesel::insert_into(rpt_grounds::table).values(chunk).execute(c)?;
        }
        if !pcts_rows.is_empty() {
            diesel::insert_into(pcts::table).values(pcts_rows).execute(c)?;
        }
        if !decisions.is_empty() {
            diesel::insert_into(grant_decisions::table).values(decisions).execute(c)?;
        }
        Ok::<(), diesel::result::Error>(())
    })
    .map_err(conflict_or)
}

pub fn insert_request(conn: &mut DbConn, row: &AccessRequestRow) -> Result<(), StoreError> {
    with_conn!(conn, c => diesel::insert_into(access_requests::table).values(row).execute(c))
        .map(|_| ())
        .map_err(conflict_or)
}

/// The latest request of a (client, party) to an owner, whatever its status.
pub fn latest_request(
    conn: &mut DbConn,
    owner: &str,
    client: &str,
    party_key: &str,
) -> Result<Vec<AccessRequestRow>, StoreError> {
    Ok(with_conn!(conn, c => access_requests::table
        .filter(access_requests::owner_id.eq(owner))
        .filter(access_requests::client_id.eq(client))
        .filter(access_requests::party_key.eq(party_key))
        .order(access_requests::created_at.desc())
        .select(AccessRequestRow::as_select())
        .limit(50)
        .load(c))?)
}

pub fn requests_of(
    conn: &mut DbConn,
    owner: &str,
    status: Option<&str>,
) -> Result<Vec<AccessRequestRow>, StoreError> {
    Ok(with_conn!(conn, c => {
        let mut q = access_requests::table
            .filter(access_requests::owner_id.eq(owner))
            .into_boxed();
        if let Some(s) = status {
            q = q.filter(access_requests::status.eq(s));
        }
        q.order(access_requests::created_at.desc())
            .select(AccessRequestRow::as_select())
            .limit(500)
            .load(c)
    })?)
}

/// Decide a request: approve a pending one (with the granted permissions), or deny a pending or
/// approved one (withdrawing an approval ends the RPT permissions it grounded). Returns whether
/// there was such a request.
pub fn decide_request(
    conn: &mut DbConn,
    owner: &str,
    id: &str,
    status: &str,
    granted: Option<&str>,
    now: i64,
) -> Result<bool, StoreError> {
    let n = with_conn!(conn, c => diesel::update(
        access_requests::table
            .filter(access_requests::owner_id.eq(owner))
            .filter(access_requests::id.eq(id))
            .filter(access_requests::status.eq_any(if status == "denied" {
                &["pending", "approved"][..]
            } else {
                &["pending"][..]
            })),
    )
    .set((
        access_requests::status.eq(status),
        access_requests::granted.eq(granted),
        access_requests::decided_at.eq(Some(now)),
    ))
    .execute(c))?;
    Ok(n == 1)
}

/// One reason a scope of an RPT was granted.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = rpt_grounds)]
pub struct GroundRow {
    pub jti: String,
    pub resource_id: String,
    pub scope: String,
    pub policy_id: Option<String>,
    pub request_id: Option<String>,
    pub expires_at: i64,
}

/// The grounds of an RPT that still hold: their policy still exists, or their request is still
/// approved. `None` when the RPT has no recorded grounds at all.
pub fn live_grounds(conn: &mut DbConn, jti: &str) -> Result<Option<Vec<GroundRow>>, StoreError> {
    with_conn!(conn, c => {
        let rows: Vec<GroundRow> = rpt_grounds::table
            .filter(rpt_grounds::jti.eq(jti))
            .select(GroundRow::as_select())
            .load(c)?;
        if rows.is_empty() {
            return Ok(None);
        }
        let policy_ids: Vec<String> = rows.iter().filter_map(|r| r.policy_id.clone()).collect();
        let request_ids: Vec<String> = rows.iter().filter_map(|r| r.request_id.clone()).collect();
        let live_policies: Vec<String> = policies::table
            .filter(policies::id.eq_any(&policy_ids))
            .select(policies::id)
            .load(c)?;
        let live_requests: Vec<String> = access_requests::table
            .filter(access_requests::id.eq_any(&request_ids))
            .filter(access_requests::status.eq("approved"))
            .select(access_requests::id)
            .load(c)?;
        let out: Vec<GroundRow> = rows
            .into_iter()
            .filter(|r| {
                r.policy_id.as_ref().is_some_and(|p| live_policies.contains(p))
                    || r.request_id.as_ref().is_some_and(|q| live_requests.contains(q))
            })
            .collect();
        Ok(Some(out))
    })
}

/// Forget the grounds of expired RPTs and expired PCTs (housekeeping).
pub fn prune(conn: &mut DbConn, now: i64) -> Result<bool, StoreError> {
    Ok(with_conn!(conn, c => {
        let grounds = crate::prune_step!(c, rpt_grounds::table, rpt_grounds::expires_at, now);
        let pcts = crate::prune_step!(c, pcts::table, pcts::expires_at, now);
        Ok::<bool, diesel::result::Error>(grounds || pcts)
    })?)
}

#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = pcts)]
pub struct PctRow {
    pub pct_hash: String,
    pub client_id: String,
    pub claims: String,
    pub expires_at: i64,
    pub revoked: bool,
    pub created_at: i64,
}

pub fn pct(conn: &mut DbConn, hash: &str) -> Result<Option<PctRow>, StoreError> {
    Ok(with_conn!(conn, c => pcts::table
        .find(hash)
        .select(PctRow::as_select())
        .first(c)
        .optional())?)
}

/// Revoke a PCT of this client; returns whether there was one.
pub fn revoke_pct(conn: &mut DbConn, hash: &str, client: &str) -> Result<bool, StoreError> {
    let n = with_conn!(conn, c => diesel::update(
        pcts::table
            .filter(pcts::pct_hash.eq(hash))
            .filter(pcts::client_id.eq(client)),
    )
    .set(pcts::revoked.eq(true))
    .execute(c))?;
    Ok(n == 1)
}

pub fn decisions_of(
    conn: &mut DbConn,
    owner: &str,
    limit: i64,
) -> Result<Vec<DecisionRow>, StoreError> {
    Ok(with_conn!(conn, c => grant_decisions::table
        .filter(grant_decisions::owner_id.eq(owner))
        .order(grant_decisions::created_at.desc())
        .select(DecisionRow::as_select())
        .limit(limit)
        .load(c))?)
}

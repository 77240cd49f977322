//! UMA protection state: registered resources (Federated Authorization §3) and permission tickets
//! (§4). Every query names the partition — the (resource server, owner) pair a PAT binds — so no
//! caller can read or change another partition's rows by guessing an id.
//!
//! Tickets are stored only as SHA-256 hashes. A ticket's first resource is a foreign key with
//! `ON DELETE CASCADE`; further resources of a multi-resource ticket are `ticket_resources` rows.
//! Either way, deleting (or changing) a resource deletes its outstanding tickets in the same
//! transaction.

use diesel::prelude::*;

use super::schema::{resources, ticket_resources, tickets};
use super::{DbConn, StoreError, conflict_or};
use crate::{with_conn, with_tx};

/// Delete every outstanding ticket that names a resource (on a connection inside a transaction).
macro_rules! delete_tickets_naming {
    ($c:ident, $id:expr) => {{
        let naming = ticket_resources::table
            .filter(ticket_resources::resource_id.eq($id))
            .select(ticket_resources::ticket_hash);
        diesel::delete(tickets::table.filter(tickets::ticket_hash.eq_any(naming))).execute($c)?;
        diesel::delete(tickets::table.filter(tickets::resource_id.eq($id))).execute($c)
    }};
}

#[derive(Clone, Debug, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = resources)]
#[diesel(treat_none_as_null = true)]
pub struct ResourceRow {
    pub id: String,
    pub owner_id: String,
    pub rs_client_id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub icon_uri: Option<String>,
    pub resource_type: Option<String>,
    /// JSON array of scope strings.
    pub scopes: String,
    /// JSON object of language-tagged members (`name#fr`, `description#de`).
    pub extras: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = tickets)]
pub struct TicketRow {
    pub ticket_hash: String,
    pub owner_id: String,
    pub rs_client_id: String,
    /// The first resource the ticket names (a foreign key: its deletion deletes the ticket).
    pub resource_id: String,
    /// JSON array of `{resource_id, resource_scopes}`.
    pub permissions: String,
    pub expires_at: i64,
    pub used: bool,
    pub created_at: i64,
    /// Verified claims gathered for this ticket (interactive claims gathering), JSON.
    pub claims: Option<String>,
}

#[derive(Clone, Debug, Queryable, Insertable)]
#[diesel(table_name = ticket_resources)]
pub struct TicketResourceRow {
    pub ticket_hash: String,
    pub resource_id: String,
}

/// A ticket and the further resources it names (beyond `row.resource_id`), inserted together.
#[derive(Clone, Debug)]
pub struct NewTicket {
    pub row: TicketRow,
    pub more_resources: Vec<TicketResourceRow>,
}

/// The number of resources a resource server has registered for an owner.
pub fn count_resources(conn: &mut DbConn, rs: &str, owner: &str) -> Result<i64, StoreError> {
    Ok(with_conn!(conn, c => resources::table
        .filter(resources::rs_client_id.eq(rs))
        .filter(resources::owner_id.eq(owner))
        .count()
        .get_result::<i64>(c))?)
}

pub fn insert_resource(conn: &mut DbConn, row: &ResourceRow) -> Result<(), StoreError> {
    with_conn!(conn, c => diesel::insert_into(resources::table).values(row).execute(c))
        .map(|_| ())
        .map_err(conflict_or)
}

/// One resource of a partition.
pub fn resource(
    conn: &mut DbConn,
    rs: &str,
    owner: &str,
    id: &str,
) -> Result<Option<ResourceRow>, StoreError> {
    Ok(with_conn!(conn, c => resources::table
        .filter(resources::id.eq(id))
        .filter(resources::rs_client_id.eq(rs))
        .filter(resources::owner_id.eq(owner))
        .select(ResourceRow::as_select())
        .first(c)
        .optional())?)
}

/// Several resources of a partition at once (ids not in the partition are simply absent).
pub fn resources_by_ids(
    conn: &mut DbConn,
    rs: &str,
    owner: &str,
    ids: &[String],
) -> Result<Vec<ResourceRow>, StoreError> {
    Ok(with_conn!(conn, c => resources::table
        .filter(resources::id.eq_any(ids))
        .filter(resources::rs_client_id.eq(rs))
        .filter(resources::owner_id.eq(owner))
        .select(ResourceRow::as_select())
        .load(c))?)
}

/// The resources among `ids` that are still registered (any resource server, any owner): an RPT
/// upgrade keeps the old permissions whose resources still exist.
pub fn resources_with_ids(
    conn: &mut DbConn,
    ids: &[String],
) -> Result<Vec<ResourceRow>, StoreError> {
    Ok(with_conn!(conn, c => resources::table
        .filter(resources::id.eq_any(ids))
        .select(ResourceRow::as_select())
        .load(c))?)
}

/// The ids of a partition's resources, oldest first.
pub fn list_resources(conn: &mut DbConn, rs: &str, owner: &str) -> Result<Vec<String>, StoreError> {
    Ok(with_conn!(conn, c => resources::table
        .filter(resources::rs_client_id.eq(rs))
        .filter(resources::owner_id.eq(owner))
        .order((resources::created_at.asc(), resources::id.asc()))
        .select(resources::id)
        .load::<String>(c))?)
}

/// Every resource an owner has, across resource servers (the owner's own views).
pub fn owner_resources(conn: &mut DbConn, owner: &str) -> Result<Vec<ResourceRow>, StoreError> {
    Ok(with_conn!(conn, c => resources::table
        .filter(resources::owner_id.eq(owner))
        .order((resources::created_at.asc(), resources::id.asc()))
        .select(ResourceRow::as_select())
        .load(c))?)
}

/// Replace a resource's description (full replacement, §3.2.3) and, in the same transaction,
/// drop the outstanding tickets that name it (they were asked for against the old description).
/// Returns whether it existed in the partition.
pub fn update_resource(conn: &mut DbConn, row: &ResourceRow) -> Result<bool, StoreError> {
    let n = with_tx!(conn, c => diesel::update(
        resources::table
            .filter(resources::id.eq(&row.id))
            .filter(resources::rs_client_id.eq(&row.rs_client_id))
            .filter(resources::owner_id.eq(&row.owner_id)),
    )
    .set((
        resources::name.eq(&row.name),
        resources::description.eq(&row.description),
        resources::icon_uri.eq(&row.icon_uri),
        resources::resource_type.eq(&row.resource_type),
        resources::scopes.eq(&row.scopes),
        resources::extras.eq(&row.extras),
        resources::updated_at.eq(row.updated_at),
    ))
    .execute(c)
    .and_then(|n| {
        if n == 1 {
            delete_tickets_naming!(c, &row.id)?;
        }
        Ok(n)
    }))?;
    Ok(n == 1)
}

/// Delete a resource of a partition and, in the same transaction, every outstanding ticket that
/// names it. Returns whether it existed.
///
/// The resource row is locked first (PostgreSQL `FOR UPDATE`; SQLite transactions take the write
/// lock up front): a ticket insert that committed before the lock is seen and deleted, and one
/// that comes after it fails its foreign key once the resource is gone. No ticket outlives its
/// resource.
pub fn delete_resource(
    conn: &mut DbConn,
    rs: &str,
    owner: &str,
    id: &str,
) -> Result<bool, StoreError> {
    let in_partition = resources::table
        .filter(resources::id.eq(id))
        .filter(resources::rs_client_id.eq(rs))
        .filter(resources::owner_id.eq(owner))
        .select(resources::id);
    let n = match conn {
        DbConn::Sqlite(conn) => conn.immediate_transaction(|c| {
            if in_partition.first::<String>(c).optional()?.is_none() {
                return Ok::<usize, diesel::result::Error>(0);
            }
            delete_tickets_naming!(c, id)?;
            diesel::delete(resources::table.filter(resources::id.eq(id))).execute(c)
        }),
        DbConn::Pg(conn) => conn.transaction(|c| {
            if in_partition
                .for_update()
                .first::<String>(c)
                .optional()?
                .is_none()
            {
                return Ok::<usize, diesel::result::Error>(0);
            }
            delete_tickets_naming!(c, id)?;
            diesel::delete(resources::table.filter(resources::id.eq(id))).execute(c)
        }),
    }?;
    Ok(n == 1)
}

/// Delete every outstanding ticket of a partition (the owner withdrew the resource server). A
/// ticket's first resource is in its partition, so the resource index finds them all.
pub fn delete_partition_tickets(
    conn: &mut DbConn,
    rs: &str,
    owner: &str,
) -> Result<(), StoreError> {
    with_conn!(conn, c => {
        let partition = resources::table
            .filter(resources::rs_client_id.eq(rs))
            .filter(resources::owner_id.eq(owner))
            .select(resources::id);
        diesel::delete(tickets::table.filter(tickets::resource_id.eq_any(partition))).execute(c)
    })?;
    Ok(())
}

/// Insert tickets (with their resource rows) in one transaction: the group-commit path.
pub fn insert_tickets(conn: &mut DbConn, batch: &[NewTicket]) -> Result<(), StoreError> {
    let rows: Vec<&TicketRow> = batch.iter().map(|t| &t.row).collect();
    let links: Vec<&TicketResourceRow> = batch.iter().flat_map(|t| &t.more_resources).collect();
    with_tx!(conn, c => {
        for chunk in rows.chunks(200) {
            let owned: Vec<TicketRow> = chunk.iter().map(|r| (*r).clone()).collect();
            diesel::insert_into(tickets::table).values(&owned).execute(c)?;
        }
        for chunk in links.chunks(400) {
            let owned: Vec<TicketResourceRow> = chunk.iter().map(|r| (*r).clone()).collect();
            diesel::insert_into(ticket_resources::table).values(&owned).execute(c)?;
        }
        Ok::<(), diesel::result::Error>(())
    })
    .map_err(conflict_or)
}

/// A ticket by hash, used or not (read-only; the grant consumes tickets atomically).
pub fn ticket(conn: &mut DbConn, hash: &str) -> Result<Option<TicketRow>, StoreError> {
    Ok(with_conn!(conn, c => tickets::table
        .find(hash)
        .select(TicketRow::as_select())
        .first(c)
        .optional())?)
}

/// Forget expired tickets (an expired ticket and an unknown one get the same answer).
pub fn prune(conn: &mut DbConn, now: i64) -> Result<bool, StoreError> {
    Ok(with_conn!(conn, c => {
        let more = crate::prune_step!(c, tickets::table, tickets::expires_at, now + 1);
        Ok::<bool, diesel::result::Error>(more)
    })?)
}

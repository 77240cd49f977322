//! The claims interaction endpoint (UMA Grant §3.3.2–§3.3.3): the client sends the requesting
//! party's browser here with `client_id`, `ticket`, `claims_redirect_uri` and `state`; Custodia
//! signs the requesting party in (locally, with the same sign-in as everywhere else), attaches the
//! verified claims to a new ticket, and redirects back with `authorization_state`, the new
//! `ticket` and `state`.
//!
//! Every problem with the client or the redirect URI is an error page and never a redirect
//! (UMA-GRANT-17, -23): unknown client, no registered claims redirect URI (required of every client,
//! UMA-GRANT-20), an omitted one when several are registered (UMA-GRANT-18), or one that is not
//! an exact match of a registered value (UMA-GRANT-21/22). The ticket is used up when the
//! interaction completes (UMA-GRANT-54); the old one is then dead (UMA-GRANT-24).

use serde_json::json;

use super::Core;
use super::clients::Client;
use super::error::OAuthError;
use super::params::Params;
use crate::secrets::{Secret, SecretKind};
use crate::store::uma::{NewTicket, TicketResourceRow};
use crate::store::users::UserRow;

/// A validated interaction request.
pub struct Interaction {
    pub client: Client,
    pub ticket: String,
    pub claims_redirect_uri: String,
    pub state: Option<String>,
    /// The parameters as received, to carry through the sign-in form.
    pub raw: Params,
}

/// Validate an interaction request. Errors are for a page, never a redirect.
pub async fn validate(core: &Core, raw: Params, now: i64) -> Result<Interaction, OAuthError> {
    let client_id = raw.require("client_id")?.to_string();
    let Some(client) = super::clients::find(core, &client_id).await? else {
        return Err(OAuthError::invalid_request("unknown `client_id`"));
    };
    let registered = &client.metadata.claims_redirect_uris;
    let claims_redirect_uri = match raw.get("claims_redirect_uri") {
        Some(u) if registered.iter().any(|r| r == u) => u.to_string(),
        Some(_) => {
            return Err(OAuthError::invalid_request(
                "`claims_redirect_uri` is not one this client registered",
            ));
        }
        None if registered.len() == 1 => registered[0].clone(),
        None if registered.is_empty() => {
            return Err(OAuthError::invalid_request(
                "this client has registered no claims redirect URI",
            ));
        }
        None => {
            return Err(OAuthError::invalid_request(
                "`claims_redirect_uri` is required: this client registered several",
            ));
        }
    };
    let ticket = raw.require("ticket")?.to_string();
    if super::permission::peek(core, &ticket, now).await?.is_none() {
        return Err(OAuthError::invalid_request(
            "the ticket is unknown, expired or already used; ask the application to start again",
        ));
    }
    let state = raw.get("state").map(str::to_string);
    Ok(Interaction {
        client,
        ticket,
        claims_redirect_uri,
        state,
        raw,
    })
}

/// The requesting party signed in: attach the user's verified claims to a new ticket and return
/// the URL to send the browser back to. `persist`: the requesting party agreed that the client
/// may reuse these claims (the grant then issues a PCT).
pub async fn complete(
    core: &Core,
    it: &Interaction,
    user: &UserRow,
    persist: bool,
    now: i64,
) -> Result<String, OAuthError> {
    let claims = json!({
        "iss": core.issuer(),
        "sub": user.id,
        "email": user.email,
        "email_verified": user.email_verified,
        "preferred_username": user.username,
        "name": user.name,
        "client_id": it.client.id,
        "persist": persist,
        "gathered_at": now,
    });
    tracing::info!(target: "audit", event = "claims_gathered", client_id = %it.client.id, user_id = %user.id);
    complete_with(core, it, claims, now).await
}

/// The requesting party declined: back to the client with `error=access_denied` (and `state`),
/// the ticket untouched (UMA-GRANT-26).
pub fn declined(it: &Interaction) -> Result<String, OAuthError> {
    let mut url = url::Url::parse(&it.claims_redirect_uri).map_err(OAuthError::internal)?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("error", "access_denied");
        if let Some(s) = &it.state {
            q.append_pair("state", s);
        }
    }
    Ok(url.to_string())
}

/// Finish an interaction with claims verified at another provider.
pub async fn complete_upstream(
    core: &Core,
    it: &Interaction,
    verified: &super::claims::Verified,
    now: i64,
) -> Result<String, OAuthError> {
    tracing::info!(target: "audit", event = "claims_gathered", client_id = %it.client.id, issuer = %verified.issuer);
    let claims = super::claims::gathered_json(verified, &it.client.id, false, now);
    complete_with(core, it, claims, now).await
}

/// Use up the ticket (UMA-GRANT-54), attach `claims` to a new one, and return the URL back to the
/// client with `authorization_state`, the new ticket and `state` (UMA-GRANT-24, -25).
async fn complete_with(
    core: &Core,
    it: &Interaction,
    claims: serde_json::Value,
    now: i64,
) -> Result<String, OAuthError> {
    let hash = Secret::new(it.ticket.clone()).hash();
    let Some(old) = core.store.consume_ticket(hash, now).await? else {
        return Err(OAuthError::invalid_request(
            "the ticket was used meanwhile; ask the application to start again",
        ));
    };
    let fresh = Secret::generate(SecretKind::PermissionTicket);
    let hash = fresh.hash();
    let perms: Vec<super::permission::RequestedPermission> =
        serde_json::from_str(&old.permissions).map_err(OAuthError::internal)?;
    let new = NewTicket {
        more_resources: perms
            .iter()
            .skip(1)
            .map(|p| TicketResourceRow {
                ticket_hash: hash.clone(),
                resource_id: p.resource_id.clone(),
            })
            .collect(),
        row: crate::store::uma::TicketRow {
            ticket_hash: hash,
            claims: Some(claims.to_string()),
            expires_at: now + core.config.ticket_ttl as i64,
            used: false,
            created_at: now,
            ..old
        },
    };
    core.store.record_ticket(new).await?;
    let mut url = url::Url::parse(&it.claims_redirect_uri).map_err(OAuthError::internal)?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("authorization_state", "claims_submitted");
        q.append_pair("ticket", fresh.expose_secret());
        if let Some(s) = &it.state {
            q.append_pair("state", s);
        }
    }
    Ok(url.to_string())
}

//! The owner's own view of the applications they connected: which clients hold consent (resource
//! servers with `uma_protection` first among them, since a PAT lets a resource server act for the
//! owner while they are away, UMA-FED-06), and withdrawing one — which revokes every token the
//! client holds for the owner (its PAT stops working at once) and forgets the consent.

use super::Core;
use super::error::OAuthError;
use super::protection::UMA_PROTECTION;
use crate::store::grants;

/// One connected application, as the account page lists it.
#[derive(Clone, Debug)]
pub struct Connection {
    pub client_id: String,
    pub client_name: String,
    /// The client manages the protection of the owner's resources (holds `uma_protection`).
    pub resource_server: bool,
    pub scopes: Vec<String>,
    pub since: i64,
}

pub async fn connections(core: &Core, user_id: &str) -> Result<Vec<Connection>, OAuthError> {
    let uid = user_id.to_string();
    let rows = core
        .store
        .run(move |c| grants::consents_of(c, &uid))
        .await?;
    let mut out = vec![];
    for (client_id, scope, since) in rows {
        let Some(client) = super::clients::find(core, &client_id).await? else {
            continue;
        };
        let scopes: Vec<String> = scope.split(' ').map(str::to_string).collect();
        out.push(Connection {
            client_name: client.name().to_string(),
            resource_server: scopes.iter().any(|s| s == UMA_PROTECTION),
            client_id,
            scopes,
            since,
        });
    }
    out.sort_by_key(|c| (!c.resource_server, -c.since));
    Ok(out)
}

/// Withdraw a client's access to the owner's account.
pub async fn disconnect(core: &Core, user_id: &str, client_id: &str) -> Result<(), OAuthError> {
    let not_connected =
        || OAuthError::invalid_request("this application is not connected to your account");
    // Hostile bytes never reach a query (PostgreSQL refuses NUL in text).
    if client_id.is_empty() || client_id.len() > 256 || client_id.chars().any(char::is_control) {
        return Err(not_connected());
    }
    let (uid, cid) = (user_id.to_string(), client_id.to_string());
    let withdrawn = core
        .store
        .run(move |c| {
            let w = grants::withdraw(c, &uid, &cid)?;
            crate::store::uma::delete_partition_tickets(c, &cid, &uid)?;
            Ok(w)
        })
        .await?;
    if !withdrawn {
        return Err(not_connected());
    }
    tracing::info!(target: "audit", event = "connection_withdrawn", user_id = %user_id, client_id = %client_id);
    Ok(())
}

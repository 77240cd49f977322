//! The client credentials grant (RFC 6749 §4.4): confidential clients only; the token acts for the
//! client itself (`sub` = client id), never carries user scopes (`openid`, `offline_access`) nor
//! `uma_protection` (a PAT needs an owner), and comes without a refresh token.

use super::super::Core;
use super::super::client_auth::Authenticated;
use super::super::error::{ErrorCode, OAuthError};
use super::super::params::Params;
use super::super::scope;
use super::super::tokens::{AccessSpec, Minter, TokenResponse};

/// Scopes that need a user (an owner) and so never come from this grant.
const USER_SCOPES: &[&str] = &[
    "openid",
    "profile",
    "email",
    "offline_access",
    "uma_protection",
];

pub async fn issue(
    core: &Core,
    auth: &Authenticated,
    params: &Params,
    dpop: Option<&str>,
    now: i64,
) -> Result<TokenResponse, OAuthError> {
    let client = &auth.client;
    if client.is_public() {
        return Err(OAuthError::unauthorized_client(
            "public clients cannot use the `client_credentials` grant",
        ));
    }
    let requested = scope::parse(params.get("scope").unwrap_or(""))?;
    if let Some(s) = requested.iter().find(|s| USER_SCOPES.contains(&s.as_str())) {
        return Err(OAuthError::invalid_scope(format!(
            "scope `{s}` needs a user and cannot be granted to a client acting for itself"
        )));
    }
    let granted: Vec<String> = if requested.is_empty() {
        client
            .scopes
            .iter()
            .filter(|s| !USER_SCOPES.contains(&s.as_str()))
            .cloned()
            .collect()
    } else {
        if let Some(s) = requested.iter().find(|s| !client.scopes.contains(s)) {
            return Err(OAuthError::invalid_scope(format!(
                "scope `{s}` is not registered for this client"
            )));
        }
        requested
    };
    let scope_str = scope::join(&granted);
    // RFC 8707 §2 lets the server refuse targets: here nobody consents to them, and a client
    // (perhaps self-registered) could otherwise name any resource server as `aud` of its tokens.
    if !super::super::resource_indicator::parse(params)?.is_empty() {
        return Err(OAuthError::new(
            ErrorCode::InvalidTarget,
            "`resource` is accepted with a user's consent (the authorization code grant), not for a client acting for itself",
        ));
    }
    let minter = Minter::from_core(core).bound(dpop);
    let (token, row) = minter.mint_access(
        &AccessSpec {
            client_id: &client.id,
            user_id: None,
            scope: &scope_str,
            grant_id: None,
            auth_time: None,
            userinfo_claims: &[],
            resources: &[],
        },
        now,
    )?;
    core.store.record_access_token(row).await?;
    Ok(TokenResponse {
        access_token: token,
        token_type: "Bearer",
        expires_in: core.config.access_token_ttl,
        refresh_token: None,
        id_token: None,
        scope: Some(scope_str),
        upgraded: None,
        pct: None,
    })
}

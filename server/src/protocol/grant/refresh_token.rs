//! The refresh token grant (RFC 6749 §6, RFC 9700 §4.14.2): bound to the client and to the scope
//! consented (a narrower scope may be asked for, never a wider one); rotated on every use; a
//! rotated token presented again revokes the whole family (every refresh and access token of the
//! grant).

use super::super::Core;
use super::super::client_auth::Authenticated;
use super::super::error::{ErrorCode, OAuthError};
use super::super::params::Params;
use super::super::resource_indicator;
use super::super::scope;
use super::super::tokens::{AccessSpec, Minter, TokenResponse};
use crate::secrets::Secret;
use crate::store::grants::{self, Issue, Redeemed};

pub async fn refresh(
    core: &Core,
    auth: &Authenticated,
    params: &Params,
    dpop: Option<&str>,
    now: i64,
) -> Result<TokenResponse, OAuthError> {
    let token = Secret::new(params.require("refresh_token")?);
    let requested = match params.get("scope") {
        Some(s) => Some(scope::parse(s)?),
        None => None,
    };
    let wanted_targets = resource_indicator::parse(params)?;
    let hash = token.hash();
    let peek = hash.clone();
    let row = core
        .store
        .run(move |c| grants::refresh_token(c, &peek))
        .await?;
    match row {
        Some(r) if r.client_id == auth.client.id => {
            // RFC 8707 §2.2: a refresh may narrow the grant's targets, never widen them; checked
            // before the token is spent.
            resource_indicator::narrow(
                wanted_targets.clone(),
                &resource_indicator::from_column(r.resources.as_deref()),
            )?;
            // DPOP-04: a public client's refresh token bound to a DPoP key needs a proof with
            // that key; checked before the token is spent.
            if let Some(bound) = &r.dpop_jkt {
                match dpop {
                    None => {
                        return Err(OAuthError::new(
                            ErrorCode::InvalidDpopProof,
                            "this refresh token is bound to a DPoP key: send a DPoP proof",
                        ));
                    }
                    Some(j) if j != bound => {
                        return Err(OAuthError::invalid_grant(
                            "this refresh token is bound to another DPoP key",
                        ));
                    }
                    Some(_) => {}
                }
            }
        }
        _ => {
            return Err(OAuthError::invalid_grant(
                "the refresh token is invalid, expired or was issued to another client",
            ));
        }
    }

    let minter = Minter::from_core(core).bound(dpop).for_client(&auth.client);
    let outcome = core
        .store
        .run(move |c| {
            grants::rotate_refresh(c, &hash, now, |row| {
                let original = scope::parse(&row.scope).unwrap_or_default();
                let granted = match requested {
                    Some(req) if !req.is_empty() => {
                        if let Some(s) = req.iter().find(|s| !original.contains(s)) {
                            return Err(OAuthError::invalid_scope(format!(
                                "scope `{s}` was not granted originally"
                            )));
                        }
                        req
                    }
                    _ => original,
                };
                let scope_str = scope::join(&granted);
                let targets = resource_indicator::narrow(
                    wanted_targets,
                    &resource_indicator::from_column(row.resources.as_deref()),
                )?;
                let asked: Vec<String> = row
                    .claims
                    .as_deref()
                    .and_then(|c| serde_json::from_str(c).ok())
                    .unwrap_or_default();
                let (access, access_row) = minter.mint_access(
                    &AccessSpec {
                        client_id: &row.client_id,
                        user_id: Some(&row.user_id),
                        scope: &scope_str,
                        grant_id: Some(&row.grant_id),
                        auth_time: Some(row.auth_time),
                        userinfo_claims: &asked,
                        resources: &targets,
                    },
                    now,
                )?;
                let id_token = if granted.iter().any(|s| s == "openid") {
                    Some(minter.mint_id_token(
                        &row.user_id,
                        &row.client_id,
                        None,
                        row.auth_time,
                        &access,
                        now,
                    )?)
                } else {
                    None
                };
                // The new refresh token keeps the originally granted scope (RFC 6749 §6).
                let (secret, mut refresh_row) = minter.mint_refresh(
                    &row.grant_id,
                    &row.client_id,
                    &row.user_id,
                    &row.scope,
                    row.auth_time,
                    now,
                );
                // The family's lifetime is fixed when the code is exchanged: rotation never extends
                // it, so a stolen family cannot live on by refreshing (RFC 9700 §4.14.2).
                refresh_row.expires_at = row.expires_at;
                refresh_row.dpop_jkt = row.dpop_jkt.clone();
                refresh_row.claims = row.claims.clone();
                // The family keeps every target of the grant; this access token may be narrower.
                refresh_row.resources = row.resources.clone();
                let response = TokenResponse {
                    access_token: access,
                    token_type: "Bearer",
                    expires_in: minter.access_ttl,
                    refresh_token: Some(secret.expose_secret().to_string()),
                    id_token,
                    scope: Some(scope_str),
                    upgraded: None,
                    pct: None,
                };
                Ok((
                    Issue {
                        access: access_row,
                        refresh: Some(refresh_row),
                    },
                    response,
                ))
            })
        })
        .await?;
    match outcome {
        Redeemed::Fresh(r) => r,
        Redeemed::Replayed => {
            tracing::warn!(client_id = %auth.client.id, "rotated refresh token reused; its family is revoked");
            Err(OAuthError::invalid_grant(
                "the refresh token was already used; every token of this grant is revoked",
            ))
        }
        Redeemed::Unknown => Err(OAuthError::invalid_grant(
            "the refresh token is invalid, expired or revoked",
        )),
    }
}

//! Token revocation (RFC 7009): the caller authenticates; revoking a refresh token revokes its
//! whole grant (every refresh and access token issued from it, §2.1); revoking an access token
//! revokes that token; revoking a PCT (UMA Grant §3.7) ends its reuse. Tokens that are unknown,
//! invalid or another client's are answered with 200 and left alone (§2.2), so revocation tells
//! nothing about tokens. Under `heart` and `igov` public clients cannot revoke (HEART-OAUTH-40).

use super::Core;
use super::client_auth::{self, Presented};
use super::error::OAuthError;
use super::params::Params;
use crate::secrets::Secret;
use crate::store::grants;

pub async fn revoke(
    core: &Core,
    params: &Params,
    authorization: Option<&str>,
    now: i64,
) -> Result<(), OAuthError> {
    let presented = Presented {
        authorization,
        params,
        endpoint_url: core.config.url("/revoke"),
    };
    let caller = client_auth::authenticate(core, presented, now).await?;
    // HEART-OAUTH-40: under `heart` and `igov` revocation needs client authentication, which a
    // public client (`none`) does not have.
    let profile = core.config.profile;
    if profile.endpoints_require_client_auth {
        super::introspect::require_key_auth(profile, caller.method)?;
    }
    let token = params.require("token")?;
    // `token_type_hint` is advisory (RFC 7009 §2.1): the server looks the token up among every
    // type it knows whatever the hint says, so an unknown hint is not an error.
    let caller_id = caller.client.id.clone();

    if token.split('.').count() == 3 {
        if let Ok((claims, _)) = core.keys.verify(token)
            && let Some(jti) = claims
                .get("jti")
                .and_then(|v| v.as_str())
                .map(str::to_string)
        {
            core.store
                    .run(move |c| {
                        if let Some(row) = grants::access_token(c, &jti)?
                            && row.client_id == caller_id {
                                grants::revoke_access_token(c, &jti)?;
                                tracing::info!(target: "audit", event = "access_token_revoked", client_id = %caller_id, jti = %jti);
                            }
                        Ok(())
                    })
                    .await?;
        }
        return Ok(());
    }

    let hash = Secret::new(token).hash();
    core.store
        .run(move |c| {
            if let Some(row) = grants::refresh_token(c, &hash)?
                && row.client_id == caller_id {
                    grants::revoke_grant(c, &row.grant_id)?;
                    tracing::info!(target: "audit", event = "grant_revoked", client_id = %caller_id, grant_id = %row.grant_id);
                }
            // A PCT (UMA Grant §3.7, token type hint `pct`), only the holder's own.
            if crate::store::grant::revoke_pct(c, &hash, &caller_id)? {
                tracing::info!(target: "audit", event = "pct_revoked", client_id = %caller_id);
            }
            Ok(())
        })
        .await?;
    Ok(())
}

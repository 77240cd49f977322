//! The protection API's guard (UMA Federated Authorization §1.3): every call carries a PAT — one of
//! our access tokens with scope `uma_protection`, issued to a resource server for an owner through
//! the authorization code flow — as a bearer token (RFC 6750 §2.1). The PAT selects the partition
//! (resource server, owner) every resource and ticket lives in (UMA-FED-04).
//!
//! A missing, malformed, expired or revoked token is `invalid_token` (401); a valid token without
//! `uma_protection`, or one that acts for no owner, is `insufficient_scope` (403). Revocation is
//! checked against the token's record on every call, so a revoked PAT stops working at once.

use super::Core;
use super::error::{ErrorCode, OAuthError};
use super::introspect::active_access_token;

/// The scope a PAT carries.
pub const UMA_PROTECTION: &str = "uma_protection";

/// An authenticated PAT: which resource server, acting for which owner.
#[derive(Clone, Debug)]
pub struct Pat {
    pub rs_client_id: String,
    pub owner_id: String,
}

/// Check a bearer token as a PAT.
pub async fn authenticate(core: &Core, bearer: &str, now: i64) -> Result<Pat, OAuthError> {
    let Some(token) = active_access_token(core, bearer, now).await? else {
        return Err(OAuthError::invalid_token(
            "the PAT is invalid, expired or revoked",
        ));
    };
    if !token.scope.split(' ').any(|s| s == UMA_PROTECTION) {
        return Err(OAuthError::new(
            ErrorCode::InsufficientScope,
            "the access token lacks the `uma_protection` scope",
        ));
    }
    let Some(owner_id) = token.user_id else {
        return Err(OAuthError::new(
            ErrorCode::InsufficientScope,
            "the access token does not act for a resource owner",
        ));
    };
    core.limits
        .protection(token.client_id.clone())
        .map_err(OAuthError::slow_down)?;
    Ok(Pat {
        rs_client_id: token.client_id,
        owner_id,
    })
}

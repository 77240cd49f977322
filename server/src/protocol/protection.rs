//! The protection API's guard (UMA Federated Authorization §1.3): every call carries a PAT — one of
//! our access tokens with scope `uma_protection`, issued to a resource server for an owner through
//! the authorization code flow — as a bearer token (RFC 6750 §2.1). The PAT selects the partition
//! (resource server, owner) every resource and ticket lives in (UMA-FED-04).
//!
//! A missing, malformed, expired or revoked token is `invalid_token` (401); a valid token without
//! `uma_protection`, or one that acts for no owner, is `insufficient_scope` (403). Revocation is
//! checked against the token's record on every call, so a revoked PAT stops working at once.
//! [`authenticate_with`] runs the caller's first query in the same blocking round trip as the
//! record check (the permission endpoint's hot path).

use super::Core;
use super::error::{ErrorCode, OAuthError};
use super::introspect::verified_claims;
use crate::store::{DbConn, StoreError, grants};

/// The scope a PAT carries.
pub const UMA_PROTECTION: &str = "uma_protection";

/// An authenticated PAT: which resource server, acting for which owner.
#[derive(Clone, Debug)]
pub struct Pat {
    pub rs_client_id: String,
    pub owner_id: String,
}

fn invalid() -> OAuthError {
    OAuthError::invalid_token("the PAT is invalid, expired or revoked")
}

/// What the record says about a signature-valid token.
enum Record<T> {
    Inactive,
    NotAPat(&'static str),
    Pat(Pat, T),
}

/// Check a bearer token as a PAT.
pub async fn authenticate(core: &Core, bearer: &str, now: i64) -> Result<Pat, OAuthError> {
    authenticate_with(core, bearer, now, |_, _| Ok(()))
        .await
        .map(|(pat, ())| pat)
}

/// Check a bearer token as a PAT and, in the same blocking task and connection, run `then` for
/// the authenticated partition.
pub async fn authenticate_with<T, F>(
    core: &Core,
    bearer: &str,
    now: i64,
    then: F,
) -> Result<(Pat, T), OAuthError>
where
    T: Send + 'static,
    F: FnOnce(&mut DbConn, &Pat) -> Result<T, StoreError> + Send + 'static,
{
    let Some((claims, jti)) = verified_claims(core, bearer, now) else {
        return Err(invalid());
    };
    if !super::introspect::for_this_server(core, &claims) {
        return Err(super::introspect::other_audience());
    }
    let record = core
        .store
        .run(move |c| {
            let Some(row) = grants::access_token(c, &jti)? else {
                return Ok(Record::Inactive);
            };
            if row.revoked || row.expires_at <= now {
                return Ok(Record::Inactive);
            }
            if !row.scope.split(' ').any(|s| s == UMA_PROTECTION) {
                return Ok(Record::NotAPat(
                    "the access token lacks the `uma_protection` scope",
                ));
            }
            let Some(owner_id) = row.user_id else {
                return Ok(Record::NotAPat(
                    "the access token does not act for a resource owner",
                ));
            };
            let pat = Pat {
                rs_client_id: row.client_id,
                owner_id,
            };
            let t = then(c, &pat)?;
            Ok(Record::Pat(pat, t))
        })
        .await?;
    let (pat, t) = match record {
        Record::Inactive => return Err(invalid()),
        Record::NotAPat(why) => return Err(OAuthError::new(ErrorCode::InsufficientScope, why)),
        Record::Pat(pat, t) => (pat, t),
    };
    // A deleted resource server's PATs die with it (the client lookup is cached).
    if super::clients::find(core, &pat.rs_client_id)
        .await?
        .is_none()
    {
        return Err(invalid());
    }
    core.limits
        .protection(pat.rs_client_id.clone())
        .map_err(OAuthError::slow_down)?;
    Ok((pat, t))
}

//! The UserInfo endpoint (OpenID Connect Core §5.3): a bearer access token with scope `openid` in
//! the `Authorization` header only (RFC 6750 §2.1; tokens in the query or the body are refused,
//! RFC 9700 §4.3.2), returning the claims the scopes allow (§5.4) and nothing else
//! (IGOV-OIDC-20), with the `sub` the client knows the user by (public or pairwise,
//! [`super::subjects`]). As JSON, or as a JWT signed by Custodia with `iss` and `aud` (§5.3.2;
//! HEART-OIDC-06, IGOV-OIDC-12) when the client registered `userinfo_signed_response_alg` or
//! asks with `Accept: application/jwt`.

use serde_json::{Map, Value, json};

use super::Core;
use super::error::{ErrorCode, OAuthError};
use super::introspect::active_access_token;
use crate::store::users;

/// A UserInfo answer.
#[derive(Debug)]
pub enum UserInfo {
    Json(Value),
    /// A signed JWT (`Content-Type: application/jwt`).
    Jwt(String),
}

pub async fn userinfo(
    core: &Core,
    bearer: &str,
    wants_jwt: bool,
    now: i64,
) -> Result<UserInfo, OAuthError> {
    let Some(token) = active_access_token(core, bearer, now).await? else {
        return Err(OAuthError::invalid_token(
            "the access token is invalid, expired or revoked",
        ));
    };
    let scopes: Vec<&str> = token.scope.split(' ').collect();
    if !scopes.contains(&"openid") {
        return Err(OAuthError::new(
            ErrorCode::InsufficientScope,
            "the access token lacks the `openid` scope",
        ));
    }
    let Some(user_id) = token.user_id.clone() else {
        return Err(OAuthError::invalid_token(
            "the access token does not act for a user",
        ));
    };
    let Some(user) = core.store.run(move |c| users::by_id(c, &user_id)).await? else {
        return Err(OAuthError::invalid_token(
            "the user of this access token no longer exists",
        ));
    };
    let Some(client) = super::clients::find(core, &token.client_id).await? else {
        return Err(OAuthError::invalid_token(
            "the client of this access token no longer exists",
        ));
    };
    let mut out = Map::new();
    out.insert(
        "sub".into(),
        json!(super::subjects::for_client(core, &client, &user.id)?),
    );
    if scopes.contains(&"profile") {
        out.insert("preferred_username".into(), json!(user.username));
        if let Some(n) = &user.name {
            out.insert("name".into(), json!(n));
        }
    }
    if scopes.contains(&"email") {
        out.insert("email".into(), json!(user.email));
        out.insert("email_verified".into(), json!(user.email_verified));
    }
    if !(wants_jwt || client.metadata.userinfo_signed_response_alg.is_some()) {
        return Ok(UserInfo::Json(Value::Object(out)));
    }
    // The server's current key signs; registration accepts only the profile's algorithms.
    out.insert("iss".into(), json!(core.issuer()));
    out.insert("aud".into(), json!(client.id));
    out.insert("iat".into(), json!(now));
    Ok(UserInfo::Jwt(core.keys.sign("JWT", out)?))
}

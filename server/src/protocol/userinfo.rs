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

/// The claims UserInfo can release, with the scope that releases them (OpenID Connect Core
/// §5.4) and how the consent page names them.
pub const RELEASABLE: &[(&str, &str, &str)] = &[
    ("name", "profile", "your name"),
    ("preferred_username", "profile", "your username"),
    ("email", "email", "your email address"),
    (
        "email_verified",
        "email",
        "whether your email address is verified",
    ),
];

/// The `claims` request parameter (OpenID Connect Core §5.5; IGOV-OIDC-17: data minimisation),
/// reduced to the UserInfo claims Custodia can release, by name: `{"userinfo": {"email": null}}`
/// with scope `openid` releases `sub` and `email` only. Claims it does not hold are ignored
/// (§5.5.1: the request is best effort); `id_token` members are accepted and ignored, as ID
/// tokens carry identity and authentication claims only. Not a JSON object → `invalid_request`.
pub fn requested_claims(param: &str) -> Result<Vec<String>, OAuthError> {
    let v: Value = serde_json::from_str(param).map_err(|_| {
        OAuthError::invalid_request(
            "the `claims` parameter is not a JSON object (OpenID Connect Core §5.5)",
        )
    })?;
    let Value::Object(top) = v else {
        return Err(OAuthError::invalid_request(
            "the `claims` parameter is not a JSON object (OpenID Connect Core §5.5)",
        ));
    };
    let mut out = vec![];
    match top.get("userinfo") {
        None | Some(Value::Null) => {}
        Some(Value::Object(asked)) => {
            for (name, _, _) in RELEASABLE {
                if asked.contains_key(*name) {
                    out.push((*name).to_string());
                }
            }
        }
        Some(_) => {
            return Err(OAuthError::invalid_request(
                "`claims.userinfo` must be a JSON object of claim names",
            ));
        }
    }
    Ok(out)
}

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
    if !super::introspect::for_this_server(core, &token.claims) {
        return Err(super::introspect::other_audience());
    }
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
    // The claims of the granted scopes, and those asked for one by one (`userinfo_claims`).
    let asked: Vec<&str> = token
        .claims
        .get("userinfo_claims")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for (name, scope, _) in RELEASABLE {
        if !scopes.contains(scope) && !asked.contains(name) {
            continue;
        }
        let value = match *name {
            "name" => user.name.as_ref().map(|n| json!(n)),
            "preferred_username" => Some(json!(user.username)),
            "email" => Some(json!(user.email)),
            _ => Some(json!(user.email_verified)),
        };
        if let Some(v) = value {
            out.insert((*name).into(), v);
        }
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

//! Request objects at the authorization endpoint (OpenID Connect Core §6.1, §6.3; HEART-OIDC-07,
//! IGOV-OIDC-13): the `request` parameter is a JWS the client signed with one of its registered
//! keys (`jwks` or `jwks_uri`), with an algorithm the profile accepts for client signatures (never
//! `none` or a MAC). Its members supersede the query's; the query must still name the client, and
//! the object may not name another. `iss`, when present, is the client; `aud`, when present, names
//! Custodia; `exp` and `nbf` are honoured. The verified object stays in the request carried
//! through sign-in and consent, so every step reads the signed values again, not the browser's.
//!
//! A request object may also be encrypted to Custodia's `use: enc` key (a JWE with ECDH-ES on
//! P-256, OpenID Connect Core §6.1 "signed and then encrypted"; IGOV-OIDC-13): it is decrypted,
//! and what it holds must be a signed request object as above. `request_uri` is not offered
//! (`request_uri_not_supported`).

use serde_json::Value;

use super::Core;
use super::error::{ErrorCode, OAuthError};
use super::params::Params;

/// Members a request object may not carry.
const FORBIDDEN: &[&str] = &["request", "request_uri"];

fn invalid(d: impl Into<String>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidRequestObject, d)
}

/// The authorization request with its request object's members in force, or the request as it is
/// when it has none.
pub async fn apply(core: &Core, raw: Params, now: i64) -> Result<Params, OAuthError> {
    if raw.contains("request_uri") {
        return Err(OAuthError::new(
            ErrorCode::RequestUriNotSupported,
            "`request_uri` is not supported; send the request object by value in `request`",
        ));
    }
    let Some(jwt) = raw.get("request").map(str::to_string) else {
        return Ok(raw);
    };
    let client_id = raw.require("client_id")?.to_string();
    if client_id.len() > 256 {
        return Err(OAuthError::invalid_request("unknown client"));
    }
    let Some(client) = super::clients::find(core, &client_id).await? else {
        return Err(OAuthError::invalid_request("unknown client"));
    };
    // Encrypted (five parts): decrypt, then the content is checked like any request object.
    let jwt = if jwt.split('.').count() == 5 {
        let inner = core
            .keys
            .decrypt_request_object(&jwt)
            .map_err(|e| invalid(format!("the encrypted request object: {e}")))?;
        if inner.split('.').count() != 3 {
            return Err(invalid(
                "an encrypted request object must hold a signed request object (sign, then encrypt)",
            ));
        }
        inner
    } else {
        jwt
    };
    let (alg, kid) = super::client_auth::client_signed_header(core, &jwt)
        .map_err(|e| invalid(format!("the request object: {e}")))?;
    if client.metadata.jwks.is_none() && client.metadata.jwks_uri.is_none() {
        return Err(invalid(
            "this client has no registered keys to sign request objects with",
        ));
    }
    let claims = super::client_auth::verify_signed_by(core, &client, &alg, kid.as_deref(), &jwt)
        .await
        // A `jwks_uri` that cannot be fetched is the client's problem; a failure of this
        // server stays a server error.
        .map_err(|e| match e.error {
            ErrorCode::InvalidClient => invalid("the client's keys could not be read"),
            _ => e,
        })?
        .ok_or_else(|| {
            invalid("the request object's signature does not verify with the client's keys")
        })?;

    let s = |k: &str| claims.get(k).and_then(Value::as_str);
    if claims.contains_key("client_id") && s("client_id") != Some(client.id.as_str()) {
        return Err(invalid("the request object names another client"));
    }
    if claims.contains_key("iss") && s("iss") != Some(client.id.as_str()) {
        return Err(invalid("the request object's `iss` must be the client id"));
    }
    let aud_ok = match claims.get("aud") {
        None => true,
        Some(Value::String(a)) => a == core.issuer(),
        Some(Value::Array(v)) => v.iter().any(|a| a.as_str() == Some(core.issuer())),
        Some(_) => false,
    };
    if !aud_ok {
        return Err(invalid("the request object's `aud` must name this server"));
    }
    if claims
        .get("exp")
        .is_some_and(|e| e.as_i64().is_none_or(|e| e <= now))
    {
        return Err(invalid("the request object has expired"));
    }
    if claims
        .get("nbf")
        .is_some_and(|n| n.as_i64().is_none_or(|n| n > now + 60))
    {
        return Err(invalid("the request object is not valid yet"));
    }
    let mut members = vec![];
    for (k, v) in &claims {
        if FORBIDDEN.contains(&k.as_str()) {
            return Err(invalid(format!("a request object must not contain `{k}`")));
        }
        // JWT claims of the object itself, not authorization request parameters.
        if ["iss", "aud", "exp", "nbf", "iat", "jti"].contains(&k.as_str()) {
            continue;
        }
        // RFC 8707 §2: several `resource` values arrive as an array, one parameter each.
        if let ("resource", Value::Array(targets)) = (k.as_str(), v) {
            for t in targets {
                let Some(t) = t.as_str() else {
                    return Err(invalid("`resource` values must be strings"));
                };
                members.push((k.clone(), t.to_string()));
            }
            continue;
        }
        let text = match v {
            Value::String(t) => t.clone(),
            Value::Number(n) => n.to_string(),
            // `claims` (OpenID Connect Core §5.5) and other structured members keep their JSON.
            other => other.to_string(),
        };
        members.push((k.clone(), text));
    }
    // Targets are security-relevant: with a request object, only its own count (RFC 9101 §5);
    // `resource` values an intermediary added to the query are dropped.
    let raw = if members.iter().any(|(k, _)| k == "resource") {
        raw
    } else {
        raw.without("resource")
    };
    Ok(raw.overridden_by(members))
}

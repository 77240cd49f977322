//! Client authentication at the token, introspection and revocation endpoints (RFC 6749 §2.3):
//! `client_secret_basic`, `client_secret_post`, `private_key_jwt` (RFC 7523 §2.2 and §3, OpenID
//! Connect Core §9: `iss` = `sub` = client id, `aud` names this server, `exp` required and short,
//! `jti` single-use) and `none` for public clients. A client must use the method it registered;
//! more than one method in one request is `invalid_request`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use josekit::jwk::Jwk;
use serde_json::Value;

use super::Core;
use super::clients::Client;
use super::error::OAuthError;
use super::params::Params;
use crate::secrets::{ct_eq, hash_str};

pub const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// What the caller presented, gathered by the HTTP layer from the `Authorization` header and the
/// form. Holds secrets, so it has no `Debug`.
pub struct Presented<'a> {
    pub authorization: Option<&'a str>,
    pub params: &'a Params,
    /// The absolute URL of the endpoint called (an accepted client-assertion audience).
    pub endpoint_url: String,
}

/// A client that proved who it is, and how.
#[derive(Clone, Debug)]
pub struct Authenticated {
    pub client: Client,
    pub method: &'static str,
}

fn unauthorized() -> OAuthError {
    OAuthError::invalid_client("client authentication failed")
}

/// Decode `Authorization: Basic` with the RFC 6749 §2.3.1 form-encoding of id and secret.
fn parse_basic(header: &str) -> Result<(String, String), OAuthError> {
    let b64 = header
        .strip_prefix("Basic ")
        .or_else(|| header.strip_prefix("basic "))
        .ok_or_else(|| {
            OAuthError::invalid_client("unsupported authorization scheme; use `Basic`")
        })?;
    let raw = STANDARD
        .decode(b64.trim())
        .map_err(|_| OAuthError::invalid_client("malformed basic credentials"))?;
    let text = String::from_utf8(raw)
        .map_err(|_| OAuthError::invalid_client("malformed basic credentials"))?;
    let (id, secret) = text
        .split_once(':')
        .ok_or_else(|| OAuthError::invalid_client("malformed basic credentials"))?;
    let dec = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .ok_or_else(|| OAuthError::invalid_client("malformed basic credentials"))
    };
    Ok((dec(id)?, dec(secret)?))
}

/// The client id a request names, without authenticating (for rate limiting).
pub fn claimed_client_id(authorization: Option<&str>, params: &Params) -> Option<String> {
    if let Some(h) = authorization
        && let Ok((id, _)) = parse_basic(h)
    {
        return Some(id);
    }
    params.get("client_id").map(str::to_string)
}

async fn load_client(core: &Core, id: &str) -> Result<Client, OAuthError> {
    super::clients::find(core, id)
        .await?
        .ok_or_else(unauthorized)
}

/// Authenticate the calling client, then apply its rate limit.
pub async fn authenticate(
    core: &Core,
    p: Presented<'_>,
    now: i64,
) -> Result<Authenticated, OAuthError> {
    let client = authenticate_only(core, p, now).await?;
    core.limits
        .token(format!("client:{}", client.client.id))
        .map_err(OAuthError::slow_down)?;
    Ok(client)
}

async fn authenticate_only(
    core: &Core,
    p: Presented<'_>,
    now: i64,
) -> Result<Authenticated, OAuthError> {
    let basic = p.authorization.map(parse_basic).transpose()?;
    let form_secret = p.params.get("client_secret");
    let assertion_type = p.params.get("client_assertion_type");
    let assertion = p.params.get("client_assertion");
    let form_id = p.params.get("client_id");

    let methods = [
        basic.is_some(),
        form_secret.is_some(),
        assertion.is_some() || assertion_type.is_some(),
    ]
    .iter()
    .filter(|x| **x)
    .count();
    if methods > 1 {
        return Err(OAuthError::invalid_request(
            "more than one client authentication method was used",
        ));
    }

    if let Some((id, secret)) = basic {
        if form_id.is_some_and(|f| f != id) {
            return Err(OAuthError::invalid_request(
                "`client_id` does not match the authenticated client",
            ));
        }
        let client = load_client(core, &id).await?;
        return check_secret(client, &secret, "client_secret_basic");
    }
    if let Some(secret) = form_secret {
        let id = form_id
            .ok_or_else(|| OAuthError::invalid_request("`client_secret` needs `client_id`"))?;
        let client = load_client(core, id).await?;
        return check_secret(client, secret, "client_secret_post");
    }
    if assertion.is_some() || assertion_type.is_some() {
        if assertion_type != Some(JWT_BEARER_ASSERTION) {
            return Err(OAuthError::invalid_client(format!(
                "`client_assertion_type` must be `{JWT_BEARER_ASSERTION}`"
            )));
        }
        let jwt = assertion
            .ok_or_else(|| OAuthError::invalid_request("`client_assertion` is missing"))?;
        return private_key_jwt(core, jwt, form_id, &p.endpoint_url, now).await;
    }
    let id =
        form_id.ok_or_else(|| OAuthError::invalid_client("client authentication is required"))?;
    let client = load_client(core, id).await?;
    if client.auth_method != "none" {
        return Err(OAuthError::invalid_client(format!(
            "this client must authenticate with `{}`",
            client.auth_method
        )));
    }
    Ok(Authenticated {
        client,
        method: "none",
    })
}

fn check_secret(
    client: Client,
    secret: &str,
    method: &'static str,
) -> Result<Authenticated, OAuthError> {
    let Some(stored) = client.secret_hash.as_deref() else {
        return Err(unauthorized());
    };
    if !ct_eq(hash_str(secret).as_bytes(), stored.as_bytes()) {
        return Err(unauthorized());
    }
    if client.auth_method != method {
        return Err(OAuthError::invalid_client(format!(
            "this client must authenticate with `{}`",
            client.auth_method
        )));
    }
    Ok(Authenticated { client, method })
}

/// The `alg` and `kid` of a compact JWS signed by a client (an assertion, a request object) or a
/// software-statement issuer, when its header parses and the profile accepts the algorithm for
/// client signatures — never `none` or a MAC; else why not, for the caller's error.
pub(crate) fn client_signed_header(
    core: &Core,
    jwt: &str,
) -> Result<(String, Option<String>), String> {
    let header =
        josekit::jwt::decode_header(jwt).map_err(|_| "its header is malformed".to_string())?;
    let algs = core.config.profile.client_assertion_algs;
    let alg = header
        .claim("alg")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if !algs.contains(&alg.as_str()) {
        return Err(format!(
            "it must be signed with one of {} (not `{}`)",
            algs.join(", "),
            super::scope::sanitize(&alg)
        ));
    }
    let kid = header
        .claim("kid")
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok((alg, kid))
}

/// RFC 7523 client assertion.
async fn private_key_jwt(
    core: &Core,
    jwt: &str,
    form_id: Option<&str>,
    endpoint_url: &str,
    now: i64,
) -> Result<Authenticated, OAuthError> {
    let bad = |d: &str| OAuthError::invalid_client(format!("invalid client assertion: {d}"));
    if jwt.len() > 8192 || jwt.split('.').count() != 3 {
        return Err(bad("not a signed JWT"));
    }
    let (alg, kid) = client_signed_header(core, jwt).map_err(|e| bad(&e))?;
    // Read `iss` before verification only to find the client's keys.
    let unverified = unverified_claims(jwt).ok_or_else(|| bad("malformed claims"))?;
    let iss = unverified
        .get("iss")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("no `iss`"))?
        .to_string();
    if form_id.is_some_and(|f| f != iss) {
        return Err(OAuthError::invalid_request(
            "`client_id` does not match the client assertion",
        ));
    }
    let client = load_client(core, &iss).await?;
    if client.auth_method != "private_key_jwt" {
        return Err(OAuthError::invalid_client(format!(
            "this client must authenticate with `{}`",
            client.auth_method
        )));
    }
    let claims = verify_signed_by(core, &client, &alg, kid.as_deref(), jwt)
        .await?
        .ok_or_else(|| bad("signature does not verify with the client's keys"))?;

    let s = |k: &str| claims.get(k).and_then(Value::as_str);
    if s("iss") != Some(client.id.as_str()) || s("sub") != Some(client.id.as_str()) {
        return Err(bad("`iss` and `sub` must both be the client id"));
    }
    let token_endpoint = core.config.url("/token");
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => {
            [core.issuer(), token_endpoint.as_str(), endpoint_url].contains(&a.as_str())
        }
        Some(Value::Array(v)) => v
            .iter()
            .filter_map(Value::as_str)
            .any(|a| [core.issuer(), token_endpoint.as_str(), endpoint_url].contains(&a)),
        _ => false,
    };
    if !aud_ok {
        return Err(bad("`aud` must name this authorization server"));
    }
    let exp = claims
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or_else(|| bad("no `exp`"))?;
    if exp <= now - 30 {
        return Err(bad("expired"));
    }
    if exp > now + 600 {
        return Err(bad("`exp` is more than 10 minutes away"));
    }
    if let Some(iat) = claims.get("iat").and_then(Value::as_i64)
        && iat > now + 60
    {
        return Err(bad("`iat` is in the future"));
    }
    if let Some(nbf) = claims.get("nbf").and_then(Value::as_i64)
        && nbf > now + 60
    {
        return Err(bad("not yet valid"));
    }
    let jti = s("jti").ok_or_else(|| bad("no `jti`"))?.to_string();
    if jti.len() > 256 {
        return Err(bad("`jti` is too long"));
    }
    let id = client.id.clone();
    let fresh = core.store.use_jti(id, jti, exp + 60).await?;
    if !fresh {
        return Err(bad("`jti` was used before"));
    }
    Ok(Authenticated {
        client,
        method: "private_key_jwt",
    })
}

/// Verify a JWS that `client` signed with `alg` (already checked against the profile) with one of
/// its registered keys (`jwks`, or `jwks_uri` refetched once when no key verifies — the client may
/// have rotated): the claims, or `None` when no key verifies. Client assertions and request
/// objects (OpenID Connect Core §6.1) share it.
pub async fn verify_signed_by(
    core: &Core,
    client: &Client,
    alg: &str,
    kid: Option<&str>,
    jwt: &str,
) -> Result<Option<serde_json::Map<String, Value>>, OAuthError> {
    let jwks = client_jwks(core, client, false).await?;
    let mut verified = verify_with(&jwks, alg, kid, jwt);
    if verified.is_none() && client.metadata.jwks_uri.is_some() {
        let jwks = client_jwks(core, client, true).await?;
        verified = verify_with(&jwks, alg, kid, jwt);
    }
    Ok(verified)
}

pub(crate) fn unverified_claims(jwt: &str) -> Option<serde_json::Map<String, Value>> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let part = jwt.split('.').nth(1)?;
    let raw = URL_SAFE_NO_PAD.decode(part).ok()?;
    serde_json::from_slice(&raw).ok()
}

pub(crate) fn verify_with(
    jwks: &Value,
    alg: &str,
    kid: Option<&str>,
    jwt: &str,
) -> Option<serde_json::Map<String, Value>> {
    let keys = jwks.get("keys")?.as_array()?;
    for k in keys {
        let map = k.as_object()?;
        if let (Some(want), Some(have)) = (kid, map.get("kid").and_then(Value::as_str))
            && want != have
        {
            continue;
        }
        if let Some(a) = map.get("alg").and_then(Value::as_str)
            && a != alg
        {
            continue;
        }
        let Ok(jwk) = Jwk::from_map(map.clone()) else {
            continue;
        };
        let Ok(verifier) = crate::keys::verifier_for(alg, &jwk) else {
            continue;
        };
        if let Ok((payload, _)) = josekit::jwt::decode_with_verifier(jwt, verifier.as_ref()) {
            return Some(payload.claims_set().clone());
        }
    }
    None
}

/// Cached `jwks_uri` documents: at most 1,000 entries, 5 minutes each, and a refetch for one
/// client at most every 10 seconds.
#[derive(Clone, Default)]
pub struct JwksCache(Arc<Mutex<HashMap<String, (Instant, Value)>>>);

const JWKS_TTL: Duration = Duration::from_secs(300);
const JWKS_MIN_REFETCH: Duration = Duration::from_secs(10);
const JWKS_MAX_BYTES: usize = 64 * 1024;

async fn client_jwks(core: &Core, client: &Client, refetch: bool) -> Result<Value, OAuthError> {
    if let Some(j) = &client.metadata.jwks {
        return Ok(j.clone());
    }
    let Some(uri) = client.metadata.jwks_uri.clone() else {
        return Err(OAuthError::invalid_client("the client has no keys"));
    };
    let public = client.dynamically_registered;
    let key = cache_key(&uri, public);
    let cached = core
        .jwks_cache
        .0
        .lock()
        .ok()
        .and_then(|m| m.get(&key).cloned());
    if let Some((at, v)) = &cached {
        let age = at.elapsed();
        if age < JWKS_TTL && (!refetch || age < JWKS_MIN_REFETCH) {
            return Ok(v.clone());
        }
    }
    let fetched = fetch_jwks(core, &uri, public).await;
    match fetched {
        Ok(v) => {
            cache_jwks(core, key, v.clone());
            Ok(v)
        }
        Err(e) => {
            tracing::warn!(client_id = %client.id, error = %e, "jwks_uri fetch failed");
            cached.map(|(_, v)| v).ok_or_else(|| {
                OAuthError::invalid_client("the client's `jwks_uri` could not be fetched")
            })
        }
    }
}

/// Fetch and check a `jwks_uri` document now (at registration, HEART-OAUTH-18) and keep it in the
/// cache for the client's first authentication. `public`: the client registered itself, so only
/// public addresses are fetched from ([`super::outbound`]). The error says what was wrong, for the
/// registration's `error_description`.
pub async fn prefetch_jwks(core: &Core, uri: &str, public: bool) -> Result<(), String> {
    let v = fetch_jwks(core, uri, public).await?;
    cache_jwks(core, cache_key(uri, public), v);
    Ok(())
}

/// A document fetched for an administrator's client is not reused for a dynamic one: the two are
/// fetched under different address rules.
fn cache_key(uri: &str, public: bool) -> String {
    format!("{}{uri}", if public { "public " } else { "" })
}

fn cache_jwks(core: &Core, key: String, v: Value) {
    if let Ok(mut m) = core.jwks_cache.0.lock() {
        if m.len() >= 1000 {
            m.clear();
        }
        m.insert(key, (Instant::now(), v));
    }
}

async fn fetch_jwks(core: &Core, uri: &str, public: bool) -> Result<Value, String> {
    let mut resp = if public {
        core.public_http.get(uri).await?
    } else {
        core.http
            .get(uri)
            .send()
            .await
            .map_err(|_| "it could not be fetched".to_string())?
    };
    if !resp.status().is_success() {
        return Err(format!("it answered HTTP {}", resp.status().as_u16()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|_| "it could not be read".to_string())?
    {
        body.extend_from_slice(&chunk);
        if body.len() > JWKS_MAX_BYTES {
            return Err(format!("it is larger than {} KiB", JWKS_MAX_BYTES / 1024));
        }
    }
    let v: Value =
        serde_json::from_slice(&body).map_err(|_| "its content is not JSON".to_string())?;
    super::clients::validate_jwks(&v, core.config.profile.min_rsa_bits)
        .map_err(|e| e.error_description)?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_is_form_decoded() -> Result<(), OAuthError> {
        // RFC 6749 §2.3.1: id and secret are form-encoded before base64.
        let h = format!("Basic {}", STANDARD.encode("my%20client:s%3Acret%2B"));
        assert_eq!(
            parse_basic(&h)?,
            ("my client".to_string(), "s:cret+".to_string())
        );
        assert!(parse_basic("Bearer x").is_err());
        assert!(parse_basic("Basic !!!").is_err());
        Ok(())
    }
}

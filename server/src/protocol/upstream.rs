//! Other OpenID Providers as sources of claims about requesting parties (UMA Grant §3.3.1 pushed
//! claim tokens; §3.3.2 claims gathering), with the `openidconnect` crate: discovery (cached per
//! issuer for an hour, refetched at most once a minute when a token does not verify, so a rotated
//! key is picked up), ID token verification (signature, `iss`, `aud` among the configured
//! audiences, `exp`, `iat` not in the future, `nonce` when one was sent), and Custodia as a relying
//! party (authorization code + PKCE S256 + nonce + state) at the claims interaction endpoint.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use custodia_policy::{ClaimValue, Party};
use openidconnect::core::{
    CoreAuthPrompt, CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreIdTokenVerifier,
    CoreProviderMetadata,
};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    OAuth2TokenResponse as _, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    TokenResponse as _,
};
use serde_json::{Map, Value};

use super::Core;
use super::claims::Verified;
use super::error::OAuthError;
use crate::config::TrustedIssuer;

const METADATA_TTL: i64 = 3600;
const REFETCH_AFTER: i64 = 60;
const SKEW: i64 = 60;

/// Discovered metadata (with JWKS) per issuer.
#[derive(Clone, Default)]
pub struct MetadataCache(Arc<Mutex<HashMap<String, (i64, CoreProviderMetadata)>>>);

async fn metadata(
    core: &Core,
    issuer: &str,
    fresh_after: Option<i64>,
) -> Result<CoreProviderMetadata, String> {
    let now = crate::now();
    if let Ok(m) = core.upstream.0.lock()
        && let Some((at, md)) = m.get(issuer)
        && now - at < METADATA_TTL
        && fresh_after.is_none_or(|f| *at >= f || now - at < REFETCH_AFTER)
    {
        return Ok(md.clone());
    }
    let url = IssuerUrl::new(issuer.to_string()).map_err(|e| e.to_string())?;
    let md = CoreProviderMetadata::discover_async(url, &core.http)
        .await
        .map_err(|e| format!("the provider `{issuer}` could not be discovered: {e}"))?;
    let keys = strong_keys(issuer, md.jwks());
    let md = md.set_jwks(keys);
    if let Ok(mut m) = core.upstream.0.lock() {
        m.insert(issuer.to_string(), (now, md.clone()));
    }
    Ok(md)
}

/// The provider's keys that meet the key-size rules (IGOV-OAUTH-05: RSA of at least 2048 bits, EC
/// on P-256/384/521); the others are left out (and logged), so no ID token is accepted on them.
/// A key set that cannot be read back is empty: nothing verifies.
fn strong_keys(
    issuer: &str,
    jwks: &openidconnect::core::CoreJsonWebKeySet,
) -> openidconnect::core::CoreJsonWebKeySet {
    let keys: Vec<Value> = serde_json::to_value(jwks)
        .ok()
        .and_then(|v| v.get("keys").and_then(Value::as_array).cloned())
        .unwrap_or_default();
    let kept: Vec<Value> = keys
        .into_iter()
        .filter(|k| {
            let ok = k
                .as_object()
                .is_some_and(|m| super::clients::check_key_size(m, 2048).is_ok());
            if !ok {
                let kid = k.get("kid").and_then(Value::as_str).unwrap_or("-");
                tracing::warn!(
                    issuer,
                    kid,
                    "a provider key below the size rules is not used"
                );
            }
            ok
        })
        .collect();
    serde_json::from_value(serde_json::json!({ "keys": kept }))
        .unwrap_or_else(|_| openidconnect::core::CoreJsonWebKeySet::new(Vec::new()))
}

/// The trusted provider named by an ID token's `iss` (read without verification, to pick keys).
pub fn unverified_issuer(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    v.get("iss").and_then(Value::as_str).map(str::to_string)
}

fn verifier<'a>(
    md: &CoreProviderMetadata,
    t: &'a TrustedIssuer,
    audience: &str,
    now: i64,
) -> CoreIdTokenVerifier<'a> {
    let accepted = t.accepted_audiences();
    CoreIdTokenVerifier::new_public_client(
        ClientId::new(audience.to_string()),
        md.issuer().clone(),
        md.jwks().clone(),
    )
    .set_other_audience_verifier_fn(move |a| accepted.iter().any(|x| x == a.as_str()))
    .set_time_fn(move || {
        chrono::DateTime::<chrono::Utc>::from_timestamp(now, 0).unwrap_or_default()
    })
    .set_issue_time_verifier_fn(move |iat| {
        if iat.timestamp() > now + SKEW {
            Err("issued in the future".into())
        } else {
            Ok(())
        }
    })
}

/// Verify an ID token of a trusted provider; `Ok(Err(reason))` when it does not hold.
pub async fn verify_id_token(
    core: &Core,
    t: &TrustedIssuer,
    token: &str,
    nonce: Option<&str>,
    now: i64,
) -> Result<Result<Verified, String>, OAuthError> {
    let Ok(parsed) = token.parse::<CoreIdToken>() else {
        return Ok(Err("the claim token is not an ID token".into()));
    };
    // The most telling failure: one that got past the audience check, if any.
    let mut last = String::new();
    let mut past_audience: Option<String> = None;
    // A failure may be a rotated key: rediscover once (rate-limited) and retry.
    for refetch in [None, Some(crate::now())] {
        let md = match metadata(core, &t.issuer, refetch).await {
            Ok(m) => m,
            Err(e) => return Ok(Err(e)),
        };
        for aud in t.accepted_audiences() {
            let v = verifier(&md, t, &aud, now);
            let result = match nonce {
                Some(n) => parsed.claims(&v, &Nonce::new(n.to_string())).map(|_| ()),
                None => parsed.claims(&v, |_: Option<&Nonce>| Ok(())).map(|_| ()),
            };
            match result {
                Ok(()) => return Ok(Ok(verified_party(t, token))),
                Err(e) => {
                    let e = e.to_string();
                    if !e.to_ascii_lowercase().contains("audience") && past_audience.is_none() {
                        past_audience = Some(e.clone());
                    }
                    last = e;
                }
            }
        }
    }
    let last = past_audience.unwrap_or(last);
    let why = if last.contains("expired") {
        "the claim token has expired".to_string()
    } else if last.contains("audience") || last.contains("Audience") {
        "the claim token's audience is not accepted for its issuer".to_string()
    } else if last.contains("signature") || last.contains("Signature") || last.contains("key") {
        "the claim token is not signed by its issuer's keys".to_string()
    } else {
        format!(
            "the claim token does not verify: {}",
            super::scope::sanitize(&last)
        )
    };
    Ok(Err(why))
}

/// The party of a verified token (its payload is read once the signature and claims verified).
fn verified_party(t: &TrustedIssuer, token: &str) -> Verified {
    let claims: Map<String, Value> = token
        .split('.')
        .nth(1)
        .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let s = |k: &str| claims.get(k).and_then(Value::as_str).map(str::to_string);
    let email_verified = claims
        .get("email_verified")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut party_claims = BTreeMap::new();
    for (k, v) in &claims {
        if matches!(
            k.as_str(),
            "iss"
                | "sub"
                | "aud"
                | "exp"
                | "iat"
                | "nbf"
                | "nonce"
                | "azp"
                | "at_hash"
                | "c_hash"
                | "auth_time"
                | "jti"
                | "sid"
        ) {
            continue;
        }
        let value = match v {
            Value::String(x) => ClaimValue::String(x.clone()),
            Value::Bool(b) => ClaimValue::Bool(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => ClaimValue::Long(i),
                None => continue,
            },
            Value::Array(a) => ClaimValue::Strings(
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect(),
            ),
            _ => continue,
        };
        let name = t.claims.get(k).cloned().unwrap_or_else(|| k.clone());
        party_claims.insert(name, value);
    }
    Verified {
        party: Party {
            issuer: Some(t.issuer.clone()),
            subject: s("sub"),
            email: s("email"),
            email_verified,
            claims: party_claims,
        },
        issuer: t.issuer.clone(),
        user_id: None,
    }
}

/// A sign-in started at a provider: what the callback needs (kept in a cookie of the browser).
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Pending {
    pub issuer: String,
    pub state: String,
    pub nonce: String,
    pub verifier: String,
    /// The claims interaction request, as received.
    pub request: String,
}

/// The provider's authorization URL for the requesting party, and what to remember.
pub async fn start(
    core: &Core,
    t: &TrustedIssuer,
    request: String,
) -> Result<(String, Pending), OAuthError> {
    let (Some(cid), Some(secret)) = (&t.client_id, &t.client_secret) else {
        return Err(OAuthError::invalid_request(
            "sign-in at this provider is not configured",
        ));
    };
    let md = metadata(core, &t.issuer, None)
        .await
        .map_err(OAuthError::invalid_request)?;
    let redirect =
        RedirectUrl::new(core.config.url("/uma/claims/callback")).map_err(OAuthError::internal)?;
    let client = CoreClient::from_provider_metadata(
        md,
        ClientId::new(cid.clone()),
        Some(ClientSecret::new(secret.clone())),
    )
    .set_redirect_uri(redirect);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut req = client.authorize_url(
        CoreAuthenticationFlow::AuthorizationCode,
        CsrfToken::new_random,
        Nonce::new_random,
    );
    for s in t
        .scope
        .as_deref()
        .unwrap_or("openid email profile")
        .split(' ')
        .filter(|s| !s.is_empty() && *s != "openid")
    {
        req = req.add_scope(Scope::new(s.to_string()));
    }
    // `prompt=login`: the requesting party signs in at the provider for this request, knowingly —
    // a session there alone never attaches their identity to a client's ticket (UMA-GRANT-27).
    let (url, state, nonce) = req
        .add_prompt(CoreAuthPrompt::Login)
        .set_pkce_challenge(challenge)
        .url();
    Ok((
        url.to_string(),
        Pending {
            issuer: t.issuer.clone(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            verifier: verifier.secret().clone(),
            request,
        },
    ))
}

/// Redeem the provider's code and verify its ID token (with the nonce sent).
pub async fn finish(
    core: &Core,
    t: &TrustedIssuer,
    pending: &Pending,
    code: &str,
    now: i64,
) -> Result<Verified, OAuthError> {
    let (Some(cid), Some(secret)) = (&t.client_id, &t.client_secret) else {
        return Err(OAuthError::invalid_request(
            "sign-in at this provider is not configured",
        ));
    };
    let md = metadata(core, &t.issuer, None)
        .await
        .map_err(OAuthError::invalid_request)?;
    let redirect =
        RedirectUrl::new(core.config.url("/uma/claims/callback")).map_err(OAuthError::internal)?;
    let client = CoreClient::from_provider_metadata(
        md,
        ClientId::new(cid.clone()),
        Some(ClientSecret::new(secret.clone())),
    )
    .set_redirect_uri(redirect);
    let response = client
        .exchange_code(AuthorizationCode::new(code.to_string()))
        .map_err(|e| {
            OAuthError::invalid_request(format!("the provider has no token endpoint: {e}"))
        })?
        .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier.clone()))
        .request_async(&core.http)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, issuer = %t.issuer, "upstream code exchange failed");
            OAuthError::invalid_request("the identity provider did not confirm the sign-in")
        })?;
    let _ = response.access_token();
    let Some(id_token) = response.id_token() else {
        return Err(OAuthError::invalid_request(
            "the identity provider sent no ID token",
        ));
    };
    match verify_id_token(core, t, &id_token.to_string(), Some(&pending.nonce), now).await? {
        Ok(v) => Ok(v),
        Err(why) => Err(OAuthError::invalid_request(format!(
            "the identity provider's ID token was refused: {why}"
        ))),
    }
}

/// The trusted provider configured for `issuer`.
pub fn trusted<'a>(core: &'a Core, issuer: &str) -> Option<&'a TrustedIssuer> {
    core.config
        .trusted_issuers
        .iter()
        .find(|t| t.issuer == issuer)
}

#[cfg(test)]
mod tests {
    use super::*;

    // IGOV-OAUTH-05: a provider's RSA keys below 2048 bits are not used for its ID tokens.
    #[test]
    fn small_provider_keys_are_left_out() -> Result<(), Box<dyn std::error::Error>> {
        let rsa = |bits: u32, kid: &str| -> Result<Value, openssl::error::ErrorStack> {
            let k = openssl::rsa::Rsa::generate(bits)?;
            Ok(
                serde_json::json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
                "n": URL_SAFE_NO_PAD.encode(k.n().to_vec()), "e": URL_SAFE_NO_PAD.encode(k.e().to_vec())}),
            )
        };
        let set: openidconnect::core::CoreJsonWebKeySet = serde_json::from_value(
            serde_json::json!({"keys": [rsa(1024, "small")?, rsa(2048, "good")?]}),
        )?;
        let kept = serde_json::to_value(strong_keys("https://idp.example", &set))?;
        let kids: Vec<&str> = kept["keys"]
            .as_array()
            .map(|a| a.iter().filter_map(|k| k["kid"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(kids, ["good"]);
        Ok(())
    }

    // The configured claim mapping renames the provider's claims; identity claims stay apart.
    #[test]
    fn claim_mapping() {
        let t = TrustedIssuer {
            issuer: "https://idp.example".into(),
            audiences: vec!["app".into()],
            claims: [("npi".to_string(), "practitioner_id".to_string())].into(),
            ..TrustedIssuer::default()
        };
        let payload = URL_SAFE_NO_PAD.encode(
            serde_json::json!({
                "iss": "https://idp.example", "sub": "dr-who", "aud": "app", "exp": 1, "iat": 0,
                "npi": "P-1001", "role": "clinician", "email": "dr@x.example", "email_verified": true,
            })
            .to_string(),
        );
        let v = verified_party(&t, &format!("h.{payload}.s"));
        assert_eq!(v.party.subject.as_deref(), Some("dr-who"));
        assert_eq!(
            v.party.claims.get("practitioner_id"),
            Some(&ClaimValue::String("P-1001".into()))
        );
        assert!(!v.party.claims.contains_key("npi"));
        assert_eq!(
            v.party.claims.get("role"),
            Some(&ClaimValue::String("clinician".into()))
        );
        assert!(!v.party.claims.contains_key("sub") && !v.party.claims.contains_key("exp"));
        assert!(v.party.email_verified);
    }
}

//! Claims about the requesting party (UMA Grant §3.3.1): claim tokens pushed by the client. The
//! accepted format is an OpenID Connect ID token
//! (`http://openid.net/specs/openid-connect-core-1_0.html#IDToken`) from a trusted issuer —
//! today Custodia itself, verified with its own keys: signature, `iss`, `aud` (the pushing
//! client or this server, UMA-GRANT-58), `exp`, `iat` not in the future beyond a small skew, `sub`.
//! Verified email claims of a local subject come from its user record.
//!
//! A bad claim token is not an error of the request: the grant answers `need_info` with a fresh
//! ticket and says what was wrong (UMA-GRANT-11); this module returns that reason as data.

use std::collections::BTreeMap;

use custodia_policy::{ClaimValue, Party};
use serde_json::{Map, Value, json};

use super::Core;
use super::error::OAuthError;
use crate::store::users;

/// The claim token format of OpenID Connect ID tokens (UMA Grant §3.3.1, UMA-GRANT-10).
pub const ID_TOKEN_FORMAT: &str = "http://openid.net/specs/openid-connect-core-1_0.html#IDToken";

/// Allowed clock skew for `iat`, seconds.
const SKEW: i64 = 60;

/// A requesting party established from verified claims.
#[derive(Clone, Debug)]
pub struct Verified {
    pub party: Party,
    /// The issuer of the claims (`context.claim_token_issuer` for the policies).
    pub issuer: String,
    /// The party is one of our users.
    pub user_id: Option<String>,
}

/// Verify a pushed claim token. `Ok(Err(reason))` is a token the grant must answer with
/// `need_info`; `Err` is a server failure.
pub async fn verify_pushed(
    core: &Core,
    client_id: &str,
    format: &str,
    token: &str,
    now: i64,
) -> Result<Result<Verified, String>, OAuthError> {
    if format != ID_TOKEN_FORMAT {
        return Ok(Err(format!(
            "claim token format `{}` is not supported; use `{ID_TOKEN_FORMAT}`",
            super::scope::sanitize(format)
        )));
    }
    // Another provider's token: verified against that provider when it is trusted.
    if let Some(iss) = super::upstream::unverified_issuer(token)
        && iss != core.issuer()
    {
        return match super::upstream::trusted(core, &iss) {
            Some(t) => super::upstream::verify_id_token(core, t, token, None, now).await,
            None => Ok(Err("the claim token's issuer is not trusted".into())),
        };
    }
    let Ok((claims, typ)) = core.keys.verify(token) else {
        return Ok(Err(
            "the claim token is not an ID token signed by a trusted issuer".into(),
        ));
    };
    if typ
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case("at+jwt"))
    {
        return Ok(Err(
            "the claim token is an access token, not an ID token".into()
        ));
    }
    let iss = claims
        .get("iss")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if iss != core.issuer() {
        return Ok(Err("the claim token's issuer is not trusted".into()));
    }
    if !audience_ok(&claims, client_id, core.issuer()) {
        return Ok(Err(
            "the claim token's audience is neither this client nor this server".into(),
        ));
    }
    let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
    if exp <= now {
        return Ok(Err("the claim token has expired".into()));
    }
    let iat = claims
        .get("iat")
        .and_then(Value::as_i64)
        .unwrap_or(i64::MAX);
    if iat > now + SKEW {
        return Ok(Err("the claim token was issued in the future".into()));
    }
    let Some(sub) = claims
        .get("sub")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    else {
        return Ok(Err("the claim token has no subject".into()));
    };
    // A client with pairwise identifiers pushes the `sub` it was given: Custodia maps it back to
    // its user, and policies name people by their one identifier at Custodia.
    let sub = match super::clients::find(core, client_id).await? {
        Some(client) => match super::subjects::user_for_client(core, &client, sub) {
            Some(user_id) => user_id,
            None => {
                return Ok(Err(
                    "the claim token's subject is not one this client was given".into(),
                ));
            }
        },
        None => sub.to_string(),
    };
    let uid = sub.clone();
    let user = core.store.run(move |c| users::by_id(c, &uid)).await?;
    let mut party_claims = BTreeMap::new();
    let (email, email_verified, user_id) = match &user {
        Some(u) => {
            party_claims.insert(
                "preferred_username".to_string(),
                ClaimValue::String(u.username.clone()),
            );
            if let Some(n) = &u.name {
                party_claims.insert("name".to_string(), ClaimValue::String(n.clone()));
            }
            party_claims.insert("email".to_string(), ClaimValue::String(u.email.clone()));
            party_claims.insert(
                "email_verified".to_string(),
                ClaimValue::Bool(u.email_verified),
            );
            (Some(u.email.clone()), u.email_verified, Some(u.id.clone()))
        }
        None => (None, false, None),
    };
    Ok(Ok(Verified {
        party: Party {
            issuer: Some(iss.to_string()),
            subject: Some(sub),
            email,
            email_verified,
            claims: party_claims,
        },
        issuer: iss.to_string(),
        user_id,
    }))
}

/// The party of claims gathered by the claims interaction endpoint for `client_id` (stored with
/// the ticket). Claims gathered for another client are not used (the ticket is not theirs to
/// carry them).
pub fn from_gathered(json: &str, client_id: &str, own_issuer: &str) -> Option<Verified> {
    from_gathered_at(json, client_id, own_issuer).map(|(v, _)| v)
}

/// [`from_gathered`], with when the claims were gathered (`None` when not recorded).
pub fn from_gathered_at(
    json: &str,
    client_id: &str,
    own_issuer: &str,
) -> Option<(Verified, Option<i64>)> {
    let v: Value = serde_json::from_str(json).ok()?;
    if v.get("client_id").and_then(Value::as_str) != Some(client_id) {
        return None;
    }
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let iss = s("iss")?;
    let sub = s("sub")?;
    let email_verified = v
        .get("email_verified")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut party_claims = BTreeMap::new();
    for k in ["email", "preferred_username", "name"] {
        if let Some(x) = s(k) {
            party_claims.insert(k.to_string(), ClaimValue::String(x));
        }
    }
    party_claims.insert("email_verified".into(), ClaimValue::Bool(email_verified));
    // Further claims from an upstream provider (role, practitioner id, …).
    if let Some(Value::Object(extra)) = v.get("claims") {
        for (k, x) in extra {
            let value = match x {
                Value::String(s) => ClaimValue::String(s.clone()),
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
            party_claims.entry(k.clone()).or_insert(value);
        }
    }
    let user_id = (iss == own_issuer).then(|| sub.clone());
    let gathered_at = v.get("gathered_at").and_then(Value::as_i64);
    let verified = Verified {
        party: Party {
            issuer: Some(iss.clone()),
            subject: Some(sub.clone()),
            email: s("email"),
            email_verified,
            claims: party_claims,
        },
        issuer: iss,
        user_id,
    };
    Some((verified, gathered_at))
}

/// The claims JSON stored with a ticket (and a PCT) for a party verified at a provider at `now`.
pub fn gathered_json(v: &Verified, client_id: &str, persist: bool, now: i64) -> Value {
    let mut extra = Map::new();
    for (k, c) in &v.party.claims {
        let x = match c {
            ClaimValue::String(s) => json!(s),
            ClaimValue::Bool(b) => json!(b),
            ClaimValue::Long(i) => json!(i),
            ClaimValue::Strings(s) => json!(s),
        };
        extra.insert(k.clone(), x);
    }
    json!({
        "iss": v.issuer,
        "sub": v.party.subject,
        "email": v.party.email,
        "email_verified": v.party.email_verified,
        "client_id": client_id,
        "persist": persist,
        "gathered_at": now,
        "claims": extra,
    })
}

fn audience_ok(claims: &Map<String, Value>, client_id: &str, issuer: &str) -> bool {
    let ok = |a: &str| a == client_id || a == issuer;
    match claims.get("aud") {
        Some(Value::String(a)) => ok(a),
        Some(Value::Array(v)) => v.iter().filter_map(Value::as_str).any(ok),
        _ => false,
    }
}

/// The key a request of this party is remembered by: `iss|sub`, or the client when unidentified.
pub fn party_key(party: &Party, client_id: &str) -> String {
    match (&party.issuer, &party.subject) {
        (Some(i), Some(s)) => format!("{i}|{s}"),
        _ => format!("client:{client_id}"),
    }
}

/// What the owner sees of a requesting party (no token, only who it is).
pub fn party_json(party: &Party) -> Value {
    json!({
        "issuer": party.issuer,
        "subject": party.subject,
        "email": party.email,
        "email_verified": party.email_verified,
    })
}

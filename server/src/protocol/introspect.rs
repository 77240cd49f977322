//! Token introspection (RFC 7662) with the UMA extension (Federated Authorization §5): the caller is
//! an authenticated confidential client, or a resource server presenting its PAT as a bearer token
//! (UMA-FED-34). A token is `active` only when it is ours, unexpired, unrevoked, its client still
//! exists, and the caller is the client it was issued to or one of its audiences (by client id,
//! or by one of the resource indicators, RFC 8707, it is registered for: `resource_uris`).
//! Anything else — expired, revoked, unknown, malformed, signed by someone else, or someone
//! else's — is `{"active": false}` and nothing more (UMA-FED-40).
//!
//! An active RPT is described by its `permissions` and never by `scope` (UMA-FED-35/36); other
//! tokens (PATs included) get the plain RFC 7662 shape (UMA-FED-38).
//!
//! Under `heart` and `igov` only resource servers (clients registered for `uma_protection`)
//! introspect (HEART-OAUTH-41, IGOV-OAUTH-44), and a PAT comes with its resource server's client
//! assertion (HEART-OAUTH-40, CONF-11).

use serde_json::{Map, Value, json};

use super::Core;
use super::client_auth::{self, Presented};
use super::error::OAuthError;
use super::params::Params;
use crate::secrets::Secret;
use crate::store::grants;

/// What an active access token is, after all checks.
#[derive(Clone, Debug)]
pub struct ActiveAccessToken {
    pub claims: Map<String, Value>,
    pub client_id: String,
    pub user_id: Option<String>,
    pub scope: String,
}

/// The claims and `jti` of one of our unexpired JWT access tokens, by signature alone (the record
/// still has to be checked).
pub fn verified_claims(core: &Core, token: &str, now: i64) -> Option<(Map<String, Value>, String)> {
    let (claims, typ) = core.keys.verify(token).ok()?;
    if typ.as_deref() != Some("at+jwt")
        || claims.get("iss").and_then(Value::as_str) != Some(core.issuer())
    {
        return None;
    }
    let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
    if exp <= now {
        return None;
    }
    let jti = claims.get("jti").and_then(Value::as_str)?.to_string();
    Some((claims, jti))
}

/// Verify one of our JWT access tokens and check its record: the shared check behind
/// introspection and userinfo.
pub async fn active_access_token(
    core: &Core,
    token: &str,
    now: i64,
) -> Result<Option<ActiveAccessToken>, OAuthError> {
    let Some((claims, jti)) = verified_claims(core, token, now) else {
        return Ok(None);
    };
    let row = core
        .store
        .run(move |c| grants::access_token(c, &jti))
        .await?;
    let row = match row {
        Some(r) if super::clients::find(core, &r.client_id).await?.is_some() => Some(r),
        _ => None,
    };
    match row {
        Some(r) if !r.revoked && r.expires_at > now => Ok(Some(ActiveAccessToken {
            claims,
            client_id: r.client_id,
            user_id: r.user_id,
            scope: r.scope,
        })),
        _ => Ok(None),
    }
}

/// The permissions of an RPT that name resources still registered in the PAT's partition, or —
/// for a resource server authenticated as a client — among its own resources (UMA-FED-36:
/// registered resources; UMA-FED-04: nothing of another partition or resource server).
async fn own_permissions(
    core: &Core,
    pat: Option<&super::protection::Pat>,
    caller_id: &str,
    permissions: &Value,
) -> Result<Value, OAuthError> {
    let list = permissions.as_array().cloned().unwrap_or_default();
    let ids: Vec<String> = list
        .iter()
        .filter_map(|p| p.get("resource_id").and_then(Value::as_str))
        .map(str::to_string)
        .collect();
    let rows = match pat {
        Some(pat) => {
            let (rs, owner) = (pat.rs_client_id.clone(), pat.owner_id.clone());
            core.store
                .run(move |c| crate::store::uma::resources_by_ids(c, &rs, &owner, &ids))
                .await?
        }
        None => {
            let rs = caller_id.to_string();
            core.store
                .run(move |c| crate::store::uma::resources_with_ids(c, &ids))
                .await?
                .into_iter()
                .filter(|r| r.rs_client_id == rs)
                .collect()
        }
    };
    Ok(Value::Array(
        list.into_iter()
            .filter(|p| {
                let id = p.get("resource_id").and_then(Value::as_str);
                rows.iter().any(|r| Some(r.id.as_str()) == id)
            })
            .collect(),
    ))
}

/// The permissions of an RPT that have not expired (a permission carried over by an upgrade keeps
/// its own `exp`) and whose grounds still hold (a policy that still exists, a request still
/// approved): deleting a policy or withdrawing an approval takes effect at once. RPTs with no
/// recorded grounds (none are issued so) are shown as they are, less expired permissions.
async fn grounded(
    core: &Core,
    claims: &Map<String, Value>,
    permissions: Value,
    now: i64,
) -> Result<Value, OAuthError> {
    let permissions = Value::Array(
        permissions
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|p| p.get("exp").and_then(Value::as_i64).is_none_or(|e| e > now))
            .collect(),
    );
    let jti = claims
        .get("jti")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let Some(live) = core
        .store
        .run(move |c| crate::store::grant::live_grounds(c, &jti))
        .await?
    else {
        return Ok(permissions);
    };
    let mut out = vec![];
    for mut p in permissions.as_array().cloned().unwrap_or_default() {
        let rid = p
            .get("resource_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let scopes: Vec<Value> = p
            .get("resource_scopes")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|s| {
                s.as_str()
                    .is_some_and(|s| live.iter().any(|g| g.resource_id == rid && g.scope == s))
            })
            .collect();
        if scopes.is_empty() {
            continue;
        }
        if let Some(o) = p.as_object_mut() {
            o.insert("resource_scopes".into(), Value::Array(scopes));
        }
        out.push(p);
    }
    Ok(Value::Array(out))
}

/// The token of an `Authorization: Bearer` header (RFC 6750 §2.1).
fn bearer_of(header: &str) -> Option<&str> {
    let (scheme, token) = header.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|t| !t.is_empty())
}

/// Whether an access token may be used at this server's own APIs (userinfo, the protection and
/// owner APIs): its `aud` names the issuer. A token audience-restricted to other resources
/// (RFC 8707) is refused there, though introspection still describes it.
pub fn for_this_server(core: &Core, claims: &Map<String, Value>) -> bool {
    audience_contains(claims, core.issuer())
}

/// The refusal of a token meant for other resources.
pub fn other_audience() -> OAuthError {
    OAuthError::invalid_token(
        "the access token is audience-restricted to other resources (`resource`), not this server's APIs",
    )
}

fn audience_contains(claims: &Map<String, Value>, id: &str) -> bool {
    match claims.get("aud") {
        Some(Value::String(a)) => a == id,
        Some(Value::Array(v)) => v.iter().any(|a| a.as_str() == Some(id)),
        _ => false,
    }
}

/// HEART-OAUTH-40: under `heart` and `igov` the caller authenticated with `private_key_jwt` —
/// not with a secret, even one registered before the profile was chosen.
pub(crate) fn require_key_auth(
    profile: &custodia_profiles::Profile,
    method: &str,
) -> Result<(), OAuthError> {
    if method == "private_key_jwt" {
        return Ok(());
    }
    Err(OAuthError::invalid_client(format!(
        "the `{}` profile requires client authentication with `private_key_jwt` here",
        profile.name
    )))
}

fn presented<'a>(core: &Core, params: &'a Params, authorization: Option<&'a str>) -> Presented<'a> {
    Presented {
        authorization,
        params,
        endpoint_url: core.config.url("/introspect"),
    }
}

pub async fn introspect(
    core: &Core,
    params: &Params,
    authorization: Option<&str>,
    now: i64,
) -> Result<Value, OAuthError> {
    let profile = core.config.profile;
    // A PAT caller sees only the permissions of its own partition (UMA-FED-04).
    // The caller's id, its PAT's partition, and (when it authenticated as a client) the resource
    // indicators it answers for.
    let (caller_id, partition, caller_uris) = match authorization.and_then(bearer_of) {
        Some(pat) => {
            let pat = super::protection::authenticate(core, pat, now).await?;
            // HEART-OAUTH-40, CONF-11: under `heart` and `igov` the PAT comes with its resource
            // server's own client authentication.
            if profile.endpoints_require_client_auth {
                if !params.contains("client_assertion") {
                    return Err(OAuthError::invalid_client(format!(
                        "the `{}` profile requires client authentication (`private_key_jwt`) at introspection: send the resource server's `client_assertion` with its PAT",
                        profile.name
                    )));
                }
                let caller =
                    client_auth::authenticate(core, presented(core, params, None), now).await?;
                require_key_auth(profile, caller.method)?;
                if caller.client.id != pat.rs_client_id {
                    return Err(OAuthError::invalid_client(
                        "the client assertion and the PAT belong to different clients",
                    ));
                }
            }
            (pat.rs_client_id.clone(), Some(pat), None)
        }
        None => {
            let caller =
                client_auth::authenticate(core, presented(core, params, authorization), now)
                    .await?;
            if caller.client.is_public() {
                return Err(OAuthError::invalid_client(
                    "public clients cannot introspect tokens",
                ));
            }
            if profile.endpoints_require_client_auth {
                require_key_auth(profile, caller.method)?;
            }
            // HEART-OAUTH-41, IGOV-OAUTH-44: only protected resources introspect.
            if profile.resource_servers_apart
                && !caller.client.scopes.iter().any(|s| s == "uma_protection")
            {
                return Err(OAuthError::invalid_client(format!(
                    "under the `{}` profile only resource servers (clients registered for `uma_protection`) may introspect tokens",
                    profile.name
                )));
            }
            let uris = caller.client.metadata.resource_uris.clone();
            (caller.client.id, None, Some(uris))
        }
    };
    let token = params.require("token")?;
    let inactive = json!({ "active": false });

    if token.split('.').count() == 3 {
        let active = match active_access_token(core, token, now).await? {
            Some(t) if t.client_id == caller_id || audience_contains(&t.claims, &caller_id) => {
                Some(t)
            }
            // Audience-restricted to a resource indicator (RFC 8707) the caller answers for.
            Some(t) => {
                let uris = match caller_uris {
                    Some(u) => u,
                    None => super::clients::find(core, &caller_id)
                        .await?
                        .map(|c| c.metadata.resource_uris)
                        .unwrap_or_default(),
                };
                uris.iter()
                    .any(|u| audience_contains(&t.claims, u))
                    .then_some(t)
            }
            None => None,
        };
        return Ok(match active {
            Some(t) => {
                let mut out = Map::new();
                out.insert("active".into(), json!(true));
                let rpt = t.claims.contains_key("permissions");
                if let Some(p) = t.claims.get("permissions") {
                    // The RPT's own client sees it whole; a resource server, its own part.
                    let p = if partition.is_none() && t.client_id == caller_id {
                        p.clone()
                    } else {
                        own_permissions(core, partition.as_ref(), &caller_id, p).await?
                    };
                    let p = grounded(core, &t.claims, p, now).await?;
                    if p.as_array().is_none_or(Vec::is_empty) {
                        return Ok(inactive);
                    }
                    out.insert("permissions".into(), p);
                }
                for k in [
                    "scope",
                    "client_id",
                    "sub",
                    "aud",
                    "iss",
                    "exp",
                    "iat",
                    "jti",
                    "auth_time",
                ] {
                    if rpt && k == "scope" {
                        continue;
                    }
                    if let Some(v) = t.claims.get(k) {
                        out.insert(k.into(), v.clone());
                    }
                }
                // DPOP-07: a bound token shows its key's thumbprint and says it is DPoP.
                match t.claims.get("cnf") {
                    Some(cnf) => {
                        out.insert("cnf".into(), cnf.clone());
                        out.insert("token_type".into(), json!("DPoP"));
                    }
                    None => {
                        out.insert("token_type".into(), json!("Bearer"));
                    }
                }
                Value::Object(out)
            }
            _ => inactive,
        });
    }

    let hash = Secret::new(token).hash();
    let row = core
        .store
        .run(move |c| grants::refresh_token(c, &hash))
        .await?;
    let Some(r) =
        row.filter(|r| !r.revoked && !r.used && r.expires_at > now && r.client_id == caller_id)
    else {
        return Ok(inactive);
    };
    // The `sub` the client knows the user by (public or pairwise).
    let sub = match super::clients::find(core, &r.client_id).await? {
        Some(c) => super::subjects::for_client(core, &c, &r.user_id)?,
        None => return Ok(inactive),
    };
    Ok(json!({
        "active": true,
        "scope": r.scope,
        "client_id": r.client_id,
        "sub": sub,
        "iss": core.issuer(),
        "exp": r.expires_at,
        "iat": r.created_at,
        "token_type": "refresh_token",
    }))
}

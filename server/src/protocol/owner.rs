//! The owner API's core (besides policies, in [`super::policies`]): who the owner is (a browser
//! session, or a bearer token with scope [`OWNER_SCOPE`] acting for the owner), their resources,
//! whether people may ask them for access, the pending requests they approve (all or some
//! scopes) or deny, and the audit of grant decisions about their resources.

use serde_json::{Value, json};

use super::Core;
use super::error::{ErrorCode, OAuthError};
use super::introspect::active_access_token;
use super::permission::RequestedPermission;
use crate::store::grant as store;

/// The scope of an access token that may use the owner API for its user.
pub const OWNER_SCOPE: &str = "custodia:owner";

/// The owner a bearer token acts for.
pub async fn from_token(core: &Core, bearer: &str, now: i64) -> Result<String, OAuthError> {
    let Some(t) = active_access_token(core, bearer, now).await? else {
        return Err(OAuthError::invalid_token(
            "the access token is invalid, expired or revoked",
        ));
    };
    if !super::introspect::for_this_server(core, &t.claims) {
        return Err(super::introspect::other_audience());
    }
    if !t.scope.split(' ').any(|s| s == OWNER_SCOPE) {
        return Err(OAuthError::new(
            ErrorCode::InsufficientScope,
            format!("the access token lacks the `{OWNER_SCOPE}` scope"),
        ));
    }
    t.user_id.ok_or_else(|| {
        OAuthError::new(
            ErrorCode::InsufficientScope,
            "the access token does not act for a user",
        )
    })
}

pub async fn resources(core: &Core, owner: &str) -> Result<Value, OAuthError> {
    let rows = super::policies::owner_resources(core, owner).await?;
    let mut out = vec![];
    for r in rows {
        let rs = super::clients::find(core, &r.rs_client_id).await?;
        let mut v = super::resources::describe(core, &r);
        if let Some(o) = v.as_object_mut() {
            o.insert(
                "resource_server".into(),
                json!({
                    "client_id": r.rs_client_id,
                    "name": rs.as_ref().map(|c| c.name().to_string()),
                }),
            );
        }
        out.push(v);
    }
    Ok(Value::Array(out))
}

pub async fn settings(core: &Core, owner: &str) -> Result<Value, OAuthError> {
    let o = owner.to_string();
    let (accept, _) = core.store.run(move |c| store::settings(c, &o)).await?;
    Ok(json!({ "accept_requests": accept }))
}

pub async fn set_settings(
    core: &Core,
    owner: &str,
    body: &[u8],
    now: i64,
) -> Result<Value, OAuthError> {
    let v = super::json::parse_strict(body)?;
    let Some(accept) = v.get("accept_requests").and_then(Value::as_bool) else {
        return Err(OAuthError::invalid_request(
            "`accept_requests` (true or false) is required",
        ));
    };
    let o = owner.to_string();
    core.store
        .run(move |c| store::set_accept_requests(c, &o, accept, now))
        .await?;
    Ok(json!({ "accept_requests": accept }))
}

fn request_json(r: &store::AccessRequestRow) -> Value {
    let parse = |s: &str| serde_json::from_str::<Value>(s).unwrap_or(Value::Null);
    json!({
        "id": r.id,
        "client_id": r.client_id,
        "resource_server": r.rs_client_id,
        "requesting_party": parse(&r.party),
        "permissions": parse(&r.permissions),
        "status": r.status,
        "granted": r.granted.as_deref().map(parse),
        "created_at": r.created_at,
        "decided_at": r.decided_at,
    })
}

pub async fn requests(core: &Core, owner: &str, status: Option<&str>) -> Result<Value, OAuthError> {
    if let Some(s) = status
        && !["pending", "approved", "denied"].contains(&s)
    {
        return Err(OAuthError::invalid_request(
            "`status` is `pending`, `approved` or `denied`",
        ));
    }
    let (o, s) = (owner.to_string(), status.map(str::to_string));
    let rows = core
        .store
        .run(move |c| store::requests_of(c, &o, s.as_deref()))
        .await?;
    Ok(Value::Array(rows.iter().map(request_json).collect()))
}

fn not_pending() -> OAuthError {
    OAuthError::new(ErrorCode::NotFound, "no such pending request")
}

/// Approve a pending request: all it asked, or the subset in the body
/// (`{"permissions":[{"resource_id":…,"resource_scopes":[…]}]}`), never more than it asked.
pub async fn approve(
    core: &Core,
    owner: &str,
    id: &str,
    body: &[u8],
    now: i64,
) -> Result<Value, OAuthError> {
    if !super::resources::plausible_id(id) {
        return Err(not_pending());
    }
    let (o, i) = (owner.to_string(), id.to_string());
    let rows = core
        .store
        .run(move |c| store::requests_of(c, &o, Some("pending")))
        .await?;
    let Some(req) = rows.into_iter().find(|r| r.id == i) else {
        return Err(not_pending());
    };
    let asked: Vec<RequestedPermission> =
        serde_json::from_str(&req.permissions).map_err(OAuthError::internal)?;
    let v = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        super::json::parse_strict(body)?
    };
    let granted = if v.get("permissions").is_none() {
        asked.clone()
    } else {
        let chosen: Vec<RequestedPermission> = v
            .get("permissions")
            .cloned()
            .and_then(|p| serde_json::from_value(p).ok())
            .ok_or_else(|| {
                OAuthError::invalid_request(
                    "`permissions` must be an array of `{resource_id, resource_scopes}`",
                )
            })?;
        for p in &chosen {
            let ok = asked.iter().any(|a| {
                a.resource_id == p.resource_id
                    && p.resource_scopes
                        .iter()
                        .all(|s| a.resource_scopes.contains(s))
            });
            if !ok {
                return Err(OAuthError::invalid_request(
                    "an approval can only grant what the request asked for",
                ));
            }
        }
        chosen
    };
    let g = serde_json::to_string(&granted).map_err(OAuthError::internal)?;
    let (o, i) = (owner.to_string(), id.to_string());
    if !core
        .store
        .run(move |c| store::decide_request(c, &o, &i, "approved", Some(&g), now))
        .await?
    {
        return Err(not_pending());
    }
    tracing::info!(target: "audit", event = "request_approved", owner = %owner, request_id = %id);
    Ok(json!({ "id": id, "status": "approved", "granted": granted }))
}

pub async fn deny(core: &Core, owner: &str, id: &str, now: i64) -> Result<Value, OAuthError> {
    if !super::resources::plausible_id(id) {
        return Err(not_pending());
    }
    let (o, i) = (owner.to_string(), id.to_string());
    if !core
        .store
        .run(move |c| store::decide_request(c, &o, &i, "denied", None, now))
        .await?
    {
        return Err(not_pending());
    }
    tracing::info!(target: "audit", event = "request_denied", owner = %owner, request_id = %id);
    Ok(json!({ "id": id, "status": "denied" }))
}

pub async fn decisions(core: &Core, owner: &str) -> Result<Value, OAuthError> {
    let o = owner.to_string();
    let rows = core
        .store
        .run(move |c| store::decisions_of(c, &o, 500))
        .await?;
    let parse = |s: &str| serde_json::from_str::<Value>(s).unwrap_or(Value::Null);
    Ok(Value::Array(
        rows.iter()
            .map(|d| {
                json!({
                    "id": d.id,
                    "time": d.created_at,
                    "client_id": d.client_id,
                    "requesting_party": parse(&d.party),
                    "asked": parse(&d.asked),
                    "granted": parse(&d.granted),
                    "policies": parse(&d.policies),
                    "outcome": d.outcome,
                })
            })
            .collect(),
    ))
}

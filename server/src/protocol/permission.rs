//! The permission endpoint (UMA Federated Authorization §4): a resource server, with its PAT, asks
//! for a permission ticket standing for one or more requested permissions (`resource_id` plus
//! `resource_scopes`, possibly empty). Every resource must be registered in the PAT's partition
//! (`invalid_resource_id` otherwise, UMA-FED-26/28) and every scope registered for that resource
//! (`invalid_scope`, UMA-FED-27). The answer is one ticket (UMA-FED-30).
//!
//! Tickets are 256 random bits (UMA-GRANT-53), stored only as SHA-256, expire after
//! `ticket_ttl` seconds, and carry the requested permissions for the UMA grant to consume once.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Core;
use super::error::{ErrorCode, OAuthError};
use super::scope;
use crate::secrets::{Secret, SecretKind};
use crate::store::uma::{self, NewTicket, ResourceRow, TicketResourceRow, TicketRow};

/// At most this many permission objects per request.
pub const MAX_PERMISSIONS: usize = 64;

/// One requested permission, as stored with a ticket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestedPermission {
    pub resource_id: String,
    pub resource_scopes: Vec<String>,
}

/// Validate the body's shape (§4.1): one object or a non-empty array of objects. Permissions for
/// the same resource are merged.
pub fn parse_request(body: &[u8]) -> Result<Vec<RequestedPermission>, OAuthError> {
    let v = super::json::parse_strict(body)?;
    let items = match v {
        Value::Object(_) => vec![v],
        Value::Array(a) if a.is_empty() => {
            return Err(OAuthError::invalid_request(
                "the array must hold at least one permission",
            ));
        }
        Value::Array(a) if a.len() > MAX_PERMISSIONS => {
            return Err(OAuthError::invalid_request(format!(
                "at most {MAX_PERMISSIONS} permissions per request"
            )));
        }
        Value::Array(a) => a,
        _ => {
            return Err(OAuthError::invalid_request(
                "the body must be a permission object or an array of them",
            ));
        }
    };
    let mut out: Vec<RequestedPermission> = vec![];
    for item in items {
        let Value::Object(o) = item else {
            return Err(OAuthError::invalid_request(
                "each permission must be a JSON object",
            ));
        };
        let rid = match o.get("resource_id") {
            Some(Value::String(s)) if !s.is_empty() => {
                if !super::resources::plausible_id(s) {
                    // No registered resource has such an id: say so without asking the store.
                    return Err(invalid_resource(s));
                }
                s.clone()
            }
            Some(_) => {
                return Err(OAuthError::invalid_request(
                    "`resource_id` must be a non-empty string",
                ));
            }
            None => {
                return Err(OAuthError::invalid_request(
                    "each permission needs `resource_id`",
                ));
            }
        };
        let scopes = match o.get("resource_scopes") {
            Some(Value::Array(a)) => a,
            Some(_) => {
                return Err(OAuthError::invalid_request(
                    "`resource_scopes` must be an array of strings",
                ));
            }
            None => {
                return Err(OAuthError::invalid_request(
                    "each permission needs `resource_scopes` (an array, possibly empty)",
                ));
            }
        };
        if scopes.len() > super::resources::MAX_SCOPES {
            return Err(OAuthError::invalid_request(format!(
                "`resource_scopes` may hold at most {} scopes",
                super::resources::MAX_SCOPES
            )));
        }
        let mut names = vec![];
        for s in scopes {
            match s {
                Value::String(s) => names.push(s.clone()),
                _ => {
                    return Err(OAuthError::invalid_request(
                        "`resource_scopes` must be an array of strings",
                    ));
                }
            }
        }
        match out.iter_mut().find(|p| p.resource_id == rid) {
            Some(p) => {
                for n in names {
                    if !p.resource_scopes.contains(&n) {
                        p.resource_scopes.push(n);
                    }
                }
            }
            None => {
                let mut unique: Vec<String> = vec![];
                for n in names {
                    if !unique.contains(&n) {
                        unique.push(n);
                    }
                }
                out.push(RequestedPermission {
                    resource_id: rid,
                    resource_scopes: unique,
                });
            }
        }
    }
    Ok(out)
}

fn invalid_resource(id: &str) -> OAuthError {
    OAuthError::new(
        ErrorCode::InvalidResourceId,
        format!(
            "resource `{}` is not registered for this owner and resource server",
            scope::sanitize(id)
        ),
    )
}

/// Check the permissions against the partition's resources.
async fn check(
    core: &Core,
    pat: &super::protection::Pat,
    perms: &[RequestedPermission],
) -> Result<(), OAuthError> {
    let ids: Vec<String> = perms.iter().map(|p| p.resource_id.clone()).collect();
    let (rs, owner) = (pat.rs_client_id.clone(), pat.owner_id.clone());
    let rows = core
        .store
        .run(move |c| uma::resources_by_ids(c, &rs, &owner, &ids))
        .await?;
    check_rows(perms, &rows)
}

fn check_rows(perms: &[RequestedPermission], rows: &[ResourceRow]) -> Result<(), OAuthError> {
    for p in perms {
        let Some(row) = rows.iter().find(|r| r.id == p.resource_id) else {
            return Err(invalid_resource(&p.resource_id));
        };
        let registered = super::resources::scopes_of(row);
        if let Some(s) = p.resource_scopes.iter().find(|s| !registered.contains(s)) {
            return Err(OAuthError::new(
                ErrorCode::InvalidScope,
                format!(
                    "scope `{}` is not registered for resource `{}`",
                    scope::sanitize(s),
                    scope::sanitize(&p.resource_id)
                ),
            ));
        }
    }
    Ok(())
}

/// §4.2: authenticate the PAT (`bearer`), then the ticket for the requested permissions. The PAT's
/// record check and the resource lookup share one database round trip. Authentication failures
/// come first (UMA-FED-32); `body` is the request body, or the error of an unusable one.
pub async fn request(
    core: &Core,
    bearer: &str,
    body: Result<&[u8], OAuthError>,
    now: i64,
) -> Result<Secret, OAuthError> {
    let parsed = body.and_then(parse_request);
    let ids: Vec<String> = match &parsed {
        Ok(perms) => perms.iter().map(|p| p.resource_id.clone()).collect(),
        Err(_) => vec![],
    };
    let (pat, rows) = super::protection::authenticate_with(core, bearer, now, move |c, pat| {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        uma::resources_by_ids(c, &pat.rs_client_id, &pat.owner_id, &ids)
    })
    .await?;
    let perms = parsed?;
    check_rows(&perms, &rows)?;
    let pat = &pat;
    let ticket = Secret::generate(SecretKind::PermissionTicket);
    let hash = ticket.hash();
    let permissions = serde_json::to_string(&perms).map_err(OAuthError::internal)?;
    let first = perms
        .first()
        .map(|p| p.resource_id.clone())
        .ok_or_else(|| OAuthError::invalid_request("no permission requested"))?;
    let new = NewTicket {
        more_resources: perms
            .iter()
            .skip(1)
            .map(|p| TicketResourceRow {
                ticket_hash: hash.clone(),
                resource_id: p.resource_id.clone(),
            })
            .collect(),
        row: TicketRow {
            ticket_hash: hash,
            owner_id: pat.owner_id.clone(),
            rs_client_id: pat.rs_client_id.clone(),
            resource_id: first,
            permissions,
            expires_at: now + core.config.ticket_ttl as i64,
            used: false,
            created_at: now,
            claims: None,
        },
    };
    if let Err(e) = core.store.record_ticket(new).await {
        // A resource deleted between the check and the insert fails the insert (foreign key):
        // that is the caller's `invalid_resource_id`, anything else is ours.
        check(core, pat, &perms).await?;
        return Err(OAuthError::internal(e));
    }
    tracing::info!(target: "audit", event = "ticket_issued", rs = %pat.rs_client_id, owner = %pat.owner_id, permissions = perms.len());
    Ok(ticket)
}

/// What a live ticket stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TicketInfo {
    pub owner_id: String,
    pub rs_client_id: String,
    pub permissions: Vec<RequestedPermission>,
    pub expires_at: i64,
}

/// Look a ticket up without consuming it: `None` unless it is ours, unused and unexpired. (The UMA
/// grant consumes tickets atomically; this is the read-only view.)
pub async fn peek(core: &Core, ticket: &str, now: i64) -> Result<Option<TicketInfo>, OAuthError> {
    let hash = Secret::new(ticket).hash();
    let row = core.store.run(move |c| uma::ticket(c, &hash)).await?;
    Ok(row.filter(|r| !r.used && r.expires_at > now).and_then(|r| {
        let permissions = serde_json::from_str(&r.permissions).ok()?;
        Some(TicketInfo {
            owner_id: r.owner_id,
            rs_client_id: r.rs_client_id,
            permissions,
            expires_at: r.expires_at,
        })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    // UMA-FED-25, UMA-FED-29: shapes of the permission request.
    #[test]
    fn request_shapes() {
        let one = parse_request(br#"{"resource_id":"r1","resource_scopes":["read"]}"#);
        assert_eq!(one.map(|v| v.len()).ok(), Some(1));
        let empty_scopes = parse_request(br#"{"resource_id":"r1","resource_scopes":[]}"#);
        assert!(empty_scopes.is_ok());
        let merged = parse_request(
            br#"[{"resource_id":"r1","resource_scopes":["a"]},{"resource_id":"r1","resource_scopes":["b","a"]},{"resource_id":"r2","resource_scopes":[]}]"#,
        );
        assert_eq!(
            merged.ok(),
            Some(vec![
                RequestedPermission {
                    resource_id: "r1".into(),
                    resource_scopes: vec!["a".into(), "b".into()]
                },
                RequestedPermission {
                    resource_id: "r2".into(),
                    resource_scopes: vec![]
                },
            ])
        );
        for bad in [
            &br#"{"resource_id":"r1"}"#[..],
            br#"{"resource_scopes":["a"]}"#,
            br#"[]"#,
            br#"[1]"#,
            br#""r1""#,
            br#"{"resource_id":"r1","resource_scopes":"a"}"#,
            br#"{"resource_id":"","resource_scopes":[]}"#,
            br#"{"resource_id":"r1","resource_scopes":[],"resource_id":"r2"}"#,
        ] {
            assert_eq!(
                parse_request(bad).err().map(|e| e.error),
                Some(ErrorCode::InvalidRequest),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}

//! Owners' policies: the core functions behind the owner API (and, later, the policy UI) — list
//! the owner's resources, create (validated against the UMA schema by `custodia-policy`), list and
//! delete policies, whether people may ask for access — and the per-instance cache of each owner's
//! compiled policies, keyed by the owner's policy version so a change made on any instance is seen
//! by every instance at its next decision.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use custodia_policy::{OwnerPolicies, PolicySource, ResourceInfo, StoredPolicy};
use serde_json::{Value, json};

use super::Core;
use super::error::{ErrorCode, OAuthError};
use crate::store::grant::{self as store, PolicyRow};
use crate::store::uma::ResourceRow;

/// How many owners' compiled policies one instance keeps.
const CACHE_OWNERS: usize = 4096;

/// An owner's compiled policies and the policy version they were built from.
type Compiled = (i64, Arc<OwnerPolicies>);

/// Compiled policies per owner.
#[derive(Clone, Default)]
pub struct PolicyCache(Arc<Mutex<HashMap<String, Compiled>>>);

impl PolicyCache {
    fn get(&self, owner: &str, version: i64) -> Option<Arc<OwnerPolicies>> {
        let m = self.0.lock().ok()?;
        m.get(owner)
            .filter(|(v, _)| *v == version)
            .map(|(_, p)| p.clone())
    }

    fn put(&self, owner: &str, version: i64, policies: Arc<OwnerPolicies>) {
        if let Ok(mut m) = self.0.lock() {
            if m.len() >= CACHE_OWNERS && !m.contains_key(owner) {
                // Bounded: drop an arbitrary entry; it is rebuilt on its next use.
                if let Some(k) = m.keys().next().cloned() {
                    m.remove(&k);
                }
            }
            m.insert(owner.to_string(), (version, policies));
        }
    }
}

/// What the policy engine knows of a registered resource.
pub fn resource_info(row: &ResourceRow) -> ResourceInfo {
    ResourceInfo {
        id: row.id.clone(),
        owner: row.owner_id.clone(),
        resource_server: row.rs_client_id.clone(),
        resource_type: row.resource_type.clone(),
        name: row.name.clone(),
        scopes: super::resources::scopes_of(row),
    }
}

fn stored(rows: &[PolicyRow]) -> Vec<StoredPolicy> {
    rows.iter()
        .filter_map(|r| {
            let source: PolicySource = serde_json::from_str(&r.source).ok()?;
            Some(StoredPolicy {
                id: r.id.clone(),
                source,
            })
        })
        .collect()
}

/// The owner's compiled policies (from the cache when still current) and whether the owner
/// accepts access requests.
pub async fn for_owner(core: &Core, owner: &str) -> Result<(Arc<OwnerPolicies>, bool), OAuthError> {
    let o = owner.to_string();
    let (accept, version) = core.store.run(move |c| store::settings(c, &o)).await?;
    if let Some(p) = core.policy_cache.get(owner, version) {
        return Ok((p, accept));
    }
    let o = owner.to_string();
    let rows = core
        .store
        .run(move |c| store::owner_policies(c, &o))
        .await?;
    let owner_s = owner.to_string();
    let compiled =
        tokio::task::spawn_blocking(move || OwnerPolicies::build(&owner_s, &stored(&rows)))
            .await
            .map_err(OAuthError::internal)?
            .map_err(|errs| {
                OAuthError::internal(format!(
                    "stored policies of an owner do not compile: {} errors",
                    errs.len()
                ))
            })?;
    let compiled = Arc::new(compiled);
    core.policy_cache.put(owner, version, compiled.clone());
    Ok((compiled, accept))
}

/// Every resource of the owner, across resource servers, as the owner API lists them.
pub async fn owner_resources(core: &Core, owner: &str) -> Result<Vec<ResourceRow>, OAuthError> {
    let o = owner.to_string();
    Ok(core
        .store
        .run(move |c| crate::store::uma::owner_resources(c, &o))
        .await?)
}

fn diagnostic_json(d: &custodia_policy::Diagnostic) -> Value {
    json!({ "message": d.message, "line": d.line, "column": d.column })
}

/// Create a policy from its JSON source: validated against the schema and the owner's resources
/// before it is saved. Returns `{id, warnings}`.
pub async fn create(core: &Core, owner: &str, body: &[u8], now: i64) -> Result<Value, OAuthError> {
    let v = super::json::parse_strict(body)?;
    let source: PolicySource = serde_json::from_value(v).map_err(|e| {
        OAuthError::invalid_request(format!(
            "the body is not a policy (`{{\"kind\":\"share\",…}}` or `{{\"kind\":\"cedar\",\"text\":…}}`): {e}"
        ))
    })?;
    let resources: Vec<ResourceInfo> = owner_resources(core, owner)
        .await?
        .iter()
        .map(resource_info)
        .collect();
    let validation = custodia_policy::validate(owner, &source, &resources, now);
    if !validation.errors.is_empty() {
        let mut e = OAuthError::new(
            ErrorCode::InvalidPolicy,
            format!(
                "the policy is not valid: {}",
                validation
                    .errors
                    .first()
                    .map(|d| d.message.clone())
                    .unwrap_or_default()
            ),
        );
        e.diagnostics = Some(
            validation
                .errors
                .iter()
                .chain(validation.warnings.iter())
                .map(diagnostic_json)
                .collect(),
        );
        return Err(e);
    }
    let row = PolicyRow {
        id: crate::secrets::new_id(),
        owner_id: owner.to_string(),
        source: serde_json::to_string(&source).map_err(OAuthError::internal)?,
        created_at: now,
    };
    let id = row.id.clone();
    core.store
        .run(move |c| store::insert_policy(c, &row))
        .await?;
    tracing::info!(target: "audit", event = "policy_created", owner = %owner, policy_id = %id);
    Ok(json!({
        "id": id,
        "warnings": validation.warnings.iter().map(diagnostic_json).collect::<Vec<_>>(),
    }))
}

pub async fn list(core: &Core, owner: &str) -> Result<Value, OAuthError> {
    let o = owner.to_string();
    let rows = core
        .store
        .run(move |c| store::owner_policies(c, &o))
        .await?;
    Ok(Value::Array(
        rows.iter()
            .map(|r| {
                json!({
                    "id": r.id,
                    "source": serde_json::from_str::<Value>(&r.source).unwrap_or(Value::Null),
                    "created_at": r.created_at,
                })
            })
            .collect(),
    ))
}

pub async fn delete(core: &Core, owner: &str, id: &str, now: i64) -> Result<(), OAuthError> {
    if !super::resources::plausible_id(id) {
        return Err(OAuthError::new(ErrorCode::NotFound, "no such policy"));
    }
    let (o, i) = (owner.to_string(), id.to_string());
    if !core
        .store
        .run(move |c| store::delete_policy(c, &o, &i, now))
        .await?
    {
        return Err(OAuthError::new(ErrorCode::NotFound, "no such policy"));
    }
    tracing::info!(target: "audit", event = "policy_deleted", owner = %owner, policy_id = %id);
    Ok(())
}

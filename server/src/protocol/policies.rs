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

/// Compiled policies per owner, and one build lock per owner being built: concurrent decisions
/// for an owner whose policies changed (or are not cached yet) wait for one build instead of each
/// compiling the whole set (10,000 policies take ~150 ms).
#[derive(Clone, Default)]
pub struct PolicyCache {
    compiled: Arc<Mutex<HashMap<String, Compiled>>>,
    building: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    builds: Arc<std::sync::atomic::AtomicU64>,
}

impl PolicyCache {
    /// How many policy sets this instance has compiled since it started.
    pub fn builds(&self) -> u64 {
        self.builds.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The build lock of `owner` (created on first use, forgotten when nobody holds it).
    fn build_lock(&self, owner: &str) -> Option<Arc<tokio::sync::Mutex<()>>> {
        let mut m = self.building.lock().ok()?;
        m.retain(|_, l| Arc::strong_count(l) > 1);
        Some(m.entry(owner.to_string()).or_default().clone())
    }

    fn get(&self, owner: &str, version: i64) -> Option<Arc<OwnerPolicies>> {
        let m = self.compiled.lock().ok()?;
        m.get(owner)
            .filter(|(v, _)| *v == version)
            .map(|(_, p)| p.clone())
    }

    fn put(&self, owner: &str, version: i64, policies: Arc<OwnerPolicies>) {
        if let Ok(mut m) = self.compiled.lock() {
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

/// The owner's compiled policies at `version` (the owner's policy version, read from their
/// settings): from the cache when current, else built once however many ask at the same time.
pub async fn compiled(
    core: &Core,
    owner: &str,
    version: i64,
) -> Result<Arc<OwnerPolicies>, OAuthError> {
    if let Some(p) = core.policy_cache.get(owner, version) {
        return Ok(p);
    }
    let lock = core.policy_cache.build_lock(owner);
    let _building = match &lock {
        Some(l) => Some(l.lock().await),
        None => None,
    };
    // Built meanwhile by the holder of the lock?
    if let Some(p) = core.policy_cache.get(owner, version) {
        return Ok(p);
    }
    let o = owner.to_string();
    let rows = core
        .store
        .run(move |c| store::owner_policies(c, &o))
        .await?;
    let owner_s = owner.to_string();
    core.policy_cache
        .builds
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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
    Ok(compiled)
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

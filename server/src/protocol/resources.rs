//! The resource registration API (UMA Federated Authorization §3): create, read, update (full
//! replacement), delete and list resource descriptions (§3.1: `resource_scopes` required; `name`,
//! `description`, `icon_uri`, `type` optional; language-tagged `name#…`/`description#…` kept,
//! RFC 7591 §2.2), always inside the PAT's partition (UMA-FED-04): another resource server's or
//! another owner's resource is indistinguishable from one that does not exist.
//!
//! Limits, each with its own error: at most [`MAX_SCOPES`] scopes of at most 256 characters (valid
//! scope tokens, so they can appear in a `scope` parameter), [`MAX_NAME`]/[`MAX_DESCRIPTION`]
//! characters of text, an https `icon_uri`, and [`MAX_RESOURCES`] resources per partition.
//! Scope URIs are never dereferenced (UMA-FED-13).

use serde_json::{Map, Value, json};

use super::Core;
use super::error::{ErrorCode, OAuthError};
use super::protection::Pat;
use super::scope;
use crate::store::uma::{self, ResourceRow};

pub const MAX_SCOPES: usize = 64;
pub const MAX_NAME: usize = 200;
pub const MAX_DESCRIPTION: usize = 2000;
pub const MAX_TYPE: usize = 256;
pub const MAX_ICON_URI: usize = 2048;
pub const MAX_TAGGED: usize = 20;
pub const MAX_RESOURCES: i64 = 10_000;

/// A validated resource description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Description {
    pub scopes: Vec<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub icon_uri: Option<String>,
    pub resource_type: Option<String>,
    /// Language-tagged `name#tag` / `description#tag` members.
    pub tagged: Map<String, Value>,
}

fn text(
    obj: &Map<String, Value>,
    key: &str,
    max: usize,
    multiline: bool,
) -> Result<Option<String>, OAuthError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            let bad_char = s
                .chars()
                .any(|c| c.is_control() && !(multiline && (c == '\n' || c == '\t')));
            if s.chars().count() > max || bad_char {
                return Err(OAuthError::invalid_request(format!(
                    "`{key}` must be at most {max} printable characters"
                )));
            }
            Ok(Some(s.clone()))
        }
        Some(_) => Err(OAuthError::invalid_request(format!(
            "`{key}` must be a string"
        ))),
    }
}

fn language_tag_ok(tag: &str) -> bool {
    !tag.is_empty()
        && tag.len() <= 35
        && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Validate a resource description (§3.1) from a request body.
pub fn parse_description(body: &[u8]) -> Result<Description, OAuthError> {
    let v = super::json::parse_strict(body)?;
    let Value::Object(obj) = v else {
        return Err(OAuthError::invalid_request(
            "the body must be a JSON object (a resource description)",
        ));
    };
    let scopes = match obj.get("resource_scopes") {
        None => {
            return Err(OAuthError::invalid_request("`resource_scopes` is required"));
        }
        Some(Value::Array(a)) => a,
        Some(_) => {
            return Err(OAuthError::invalid_request(
                "`resource_scopes` must be an array of strings",
            ));
        }
    };
    if scopes.is_empty() {
        return Err(OAuthError::invalid_request(
            "`resource_scopes` must name at least one scope",
        ));
    }
    if scopes.len() > MAX_SCOPES {
        return Err(OAuthError::invalid_request(format!(
            "`resource_scopes` may hold at most {MAX_SCOPES} scopes"
        )));
    }
    let mut out: Vec<String> = Vec::with_capacity(scopes.len());
    for s in scopes {
        let Value::String(s) = s else {
            return Err(OAuthError::invalid_request(
                "`resource_scopes` must be an array of strings",
            ));
        };
        if !scope::valid_token(s) {
            return Err(OAuthError::invalid_request(format!(
                "`{}` is not a valid scope (1 to 256 printable characters, no spaces, quotes or backslashes)",
                scope::sanitize(s)
            )));
        }
        if out.contains(s) {
            return Err(OAuthError::invalid_request(format!(
                "scope `{}` appears more than once in `resource_scopes`",
                scope::sanitize(s)
            )));
        }
        out.push(s.clone());
    }
    let icon_uri = text(&obj, "icon_uri", MAX_ICON_URI, false)?;
    if let Some(u) = &icon_uri {
        let ok = url::Url::parse(u)
            .ok()
            .is_some_and(|url| url.scheme() == "https" && url.host_str().is_some());
        if !ok {
            return Err(OAuthError::invalid_request(
                "`icon_uri` must be an absolute https URL",
            ));
        }
    }
    let mut tagged = Map::new();
    for (k, v) in &obj {
        let Some((base, tag)) = k.split_once('#') else {
            continue;
        };
        if base != "name" && base != "description" {
            continue;
        }
        if !language_tag_ok(tag) {
            return Err(OAuthError::invalid_request(format!(
                "`{}` does not carry a valid language tag",
                scope::sanitize(k)
            )));
        }
        let max = if base == "name" {
            MAX_NAME
        } else {
            MAX_DESCRIPTION
        };
        if v.is_null() {
            continue;
        }
        if let Some(s) = text(&obj, k, max, base == "description")? {
            tagged.insert(k.clone(), Value::String(s));
        }
    }
    if tagged.len() > MAX_TAGGED {
        return Err(OAuthError::invalid_request(format!(
            "at most {MAX_TAGGED} language-tagged members"
        )));
    }
    Ok(Description {
        scopes: out,
        name: text(&obj, "name", MAX_NAME, false)?,
        description: text(&obj, "description", MAX_DESCRIPTION, true)?,
        icon_uri,
        resource_type: text(&obj, "type", MAX_TYPE, false)?,
        tagged,
    })
}

/// Whether a string could be one of our resource ids (UUIDs): anything else is answered
/// without a store call, so hostile bytes (NUL, control characters) never reach a query.
pub fn plausible_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// The policy page of a resource (UMA-FED-20).
pub fn policy_uri(core: &Core, id: &str) -> String {
    core.config.url(&format!("/resources/{id}/policy"))
}

/// The `Location` of a resource (UMA-FED-14).
pub fn location(core: &Core, id: &str) -> String {
    core.config.url(&format!("/uma/resources/{id}"))
}

fn row_of(pat: &Pat, id: String, d: Description, now: i64) -> ResourceRow {
    ResourceRow {
        id,
        owner_id: pat.owner_id.clone(),
        rs_client_id: pat.rs_client_id.clone(),
        name: d.name,
        description: d.description,
        icon_uri: d.icon_uri,
        resource_type: d.resource_type,
        scopes: Value::from(d.scopes).to_string(),
        extras: Value::Object(d.tagged).to_string(),
        created_at: now,
        updated_at: now,
    }
}

/// The scopes of a stored resource.
pub fn scopes_of(row: &ResourceRow) -> Vec<String> {
    serde_json::from_str(&row.scopes).unwrap_or_default()
}

/// The full description of a stored resource, as read returns it (§3.2.2).
pub fn describe(core: &Core, row: &ResourceRow) -> Value {
    let mut m = Map::new();
    m.insert("_id".into(), json!(row.id));
    m.insert("resource_scopes".into(), json!(scopes_of(row)));
    for (k, v) in [
        ("name", &row.name),
        ("description", &row.description),
        ("icon_uri", &row.icon_uri),
        ("type", &row.resource_type),
    ] {
        if let Some(v) = v {
            m.insert(k.into(), json!(v));
        }
    }
    if let Ok(Value::Object(extras)) = serde_json::from_str::<Value>(&row.extras) {
        m.extend(extras);
    }
    m.insert(
        "user_access_policy_uri".into(),
        json!(policy_uri(core, &row.id)),
    );
    Value::Object(m)
}

fn not_found(id: &str) -> OAuthError {
    OAuthError::new(
        ErrorCode::NotFound,
        format!(
            "no resource `{}` is registered for this owner and resource server",
            scope::sanitize(id)
        ),
    )
}

/// The active profile's resource semantics: under `heart-fhir`, every scope is a HEART / SMART FHIR
/// scope and a `type` is a FHIR resource type (HEART-FHIRUMA-01, -02; HEART-FHIR-01..07).
fn profile_semantics(
    profile: &custodia_profiles::Profile,
    d: &Description,
) -> Result<(), OAuthError> {
    if !profile.fhir_semantics {
        return Ok(());
    }
    for s in &d.scopes {
        custodia_profiles::fhir::parse(s).map_err(|e| {
            OAuthError::invalid_request(format!("{e} (the `{}` profile)", profile.name))
        })?;
    }
    if let Some(t) = &d.resource_type {
        custodia_profiles::fhir::resource_type(t).map_err(|e| {
            OAuthError::invalid_request(format!("{e} (the `{}` profile)", profile.name))
        })?;
    }
    Ok(())
}

/// §3.2.1. Returns the new id and the response body.
pub async fn create(
    core: &Core,
    pat: &Pat,
    body: &[u8],
    now: i64,
) -> Result<(String, Value), OAuthError> {
    let d = parse_description(body)?;
    profile_semantics(core.config.profile, &d)?;
    let id = crate::secrets::new_id();
    let row = row_of(pat, id.clone(), d, now);
    let inserted = core
        .store
        .run(move |c| {
            // A soft cap: concurrent creations may pass it by a few; it bounds abuse, not
            // correctness.
            if uma::count_resources(c, &row.rs_client_id, &row.owner_id)? >= MAX_RESOURCES {
                return Ok(false);
            }
            uma::insert_resource(c, &row)?;
            Ok(true)
        })
        .await?;
    if !inserted {
        return Err(OAuthError::invalid_request(format!(
            "at most {MAX_RESOURCES} resources may be registered per owner and resource server"
        )));
    }
    tracing::info!(target: "audit", event = "resource_registered", resource_id = %id, rs = %pat.rs_client_id, owner = %pat.owner_id);
    let body = json!({ "_id": id, "user_access_policy_uri": policy_uri(core, &id) });
    Ok((id, body))
}

/// §3.2.2.
pub async fn read(core: &Core, pat: &Pat, id: &str) -> Result<Value, OAuthError> {
    if !plausible_id(id) {
        return Err(not_found(id));
    }
    let (rs, owner, rid) = (
        pat.rs_client_id.clone(),
        pat.owner_id.clone(),
        id.to_string(),
    );
    match core
        .store
        .run(move |c| uma::resource(c, &rs, &owner, &rid))
        .await?
    {
        Some(row) => Ok(describe(core, &row)),
        None => Err(not_found(id)),
    }
}

/// §3.2.3: full replacement.
pub async fn update(
    core: &Core,
    pat: &Pat,
    id: &str,
    body: &[u8],
    now: i64,
) -> Result<Value, OAuthError> {
    if !plausible_id(id) {
        return Err(not_found(id));
    }
    let d = parse_description(body)?;
    profile_semantics(core.config.profile, &d)?;
    let row = row_of(pat, id.to_string(), d, now);
    if !core
        .store
        .run(move |c| uma::update_resource(c, &row))
        .await?
    {
        return Err(not_found(id));
    }
    tracing::info!(target: "audit", event = "resource_updated", resource_id = %id, rs = %pat.rs_client_id, owner = %pat.owner_id);
    Ok(json!({ "_id": id, "user_access_policy_uri": policy_uri(core, id) }))
}

/// §3.2.4: deregistration ends protection and kills the resource's outstanding tickets.
pub async fn delete(core: &Core, pat: &Pat, id: &str) -> Result<(), OAuthError> {
    if !plausible_id(id) {
        return Err(not_found(id));
    }
    let (rs, owner, rid) = (
        pat.rs_client_id.clone(),
        pat.owner_id.clone(),
        id.to_string(),
    );
    if !core
        .store
        .run(move |c| uma::delete_resource(c, &rs, &owner, &rid))
        .await?
    {
        return Err(not_found(id));
    }
    tracing::info!(target: "audit", event = "resource_deleted", resource_id = %id, rs = %pat.rs_client_id, owner = %pat.owner_id);
    Ok(())
}

/// §3.2.5.
pub async fn list(core: &Core, pat: &Pat) -> Result<Vec<String>, OAuthError> {
    let (rs, owner) = (pat.rs_client_id.clone(), pat.owner_id.clone());
    Ok(core
        .store
        .run(move |c| uma::list_resources(c, &rs, &owner))
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    // HEART-FHIRUMA-01, -02, HEART-FHIR-01: under `heart-fhir` resource descriptions speak FHIR;
    // under `default` any scope token and type goes.
    #[test]
    fn fhir_semantics_under_heart_fhir() {
        use custodia_profiles::{DEFAULT, HEART_FHIR};
        let check = |profile, body: &str| {
            parse_description(body.as_bytes())
                .and_then(|d| profile_semantics(profile, &d))
                .map_err(|e| e.error_description)
        };
        let fhir = r#"{"resource_scopes":["patient/Observation.read","patient/Observation.cud","sens/ETH"],"type":"http://hl7.org/fhir/StructureDefinition/Observation"}"#;
        assert_eq!(check(&HEART_FHIR, fhir), Ok(()));
        assert_eq!(
            check(
                &HEART_FHIR,
                r#"{"resource_scopes":["patient/*.read"],"type":"Patient"}"#
            ),
            Ok(())
        );
        for (body, why) in [
            (r#"{"resource_scopes":["read"]}"#, "is not a FHIR scope"),
            (
                r#"{"resource_scopes":["patient/Observation"]}"#,
                "{type}.{access}",
            ),
            (
                r#"{"resource_scopes":["patient/Lab.read"]}"#,
                "resource type",
            ),
            (
                r#"{"resource_scopes":["patient/*.read"],"type":"https://rs.example/t/lab"}"#,
                "not a FHIR R4 resource type",
            ),
        ] {
            let e = check(&HEART_FHIR, body).err().unwrap_or_default();
            assert!(e.contains(why) && e.contains("heart-fhir"), "{body}: {e}");
            assert_eq!(check(&DEFAULT, body), Ok(()), "{body} under default");
        }
    }

    // UMA-FED-11, UMA-FED-23: the description rules as a table.
    #[test]
    fn description_table() {
        let ok: &[&str] = &[
            r#"{"resource_scopes":["read"]}"#,
            r#"{"resource_scopes":["read","https://rs.example/scopes/write"],"name":"Labs","type":"https://rs.example/t/lab","icon_uri":"https://rs.example/i.png","description":"line1\nline2"}"#,
            r#"{"resource_scopes":["read"],"name#fr":"Analyses","unknown_member":{"ignored":true}}"#,
        ];
        for b in ok {
            assert!(parse_description(b.as_bytes()).is_ok(), "{b}");
        }
        let bad: &[(&str, &str)] = &[
            (r#"{"name":"x"}"#, "is required"),
            (r#"{"resource_scopes":"read"}"#, "array"),
            (r#"{"resource_scopes":[]}"#, "at least one"),
            (r#"{"resource_scopes":[1]}"#, "array of strings"),
            (r#"{"resource_scopes":["a b"]}"#, "not a valid scope"),
            (r#"{"resource_scopes":["a","a"]}"#, "more than once"),
            (
                r#"{"resource_scopes":["a"],"resource_scopes":["b"]}"#,
                "more than once",
            ),
            (r#"{"resource_scopes":["a"],"name":7}"#, "must be a string"),
            (
                r#"{"resource_scopes":["a"],"icon_uri":"javascript:alert(1)"}"#,
                "https",
            ),
            (
                r#"{"resource_scopes":["a"],"icon_uri":"http://evil.example/i.png"}"#,
                "https",
            ),
            (r#"{"resource_scopes":["a"],"name#":"x"}"#, "language tag"),
            (r#"["resource_scopes"]"#, "JSON object"),
            (r#"{"resource_scopes":["a"]"#, "not valid JSON"),
        ];
        for (b, want) in bad {
            let e = parse_description(b.as_bytes()).err();
            assert!(
                e.as_ref()
                    .is_some_and(|e| e.error == ErrorCode::InvalidRequest
                        && e.error_description.contains(want)),
                "{b}: {e:?}"
            );
        }
        let long = format!(
            r#"{{"resource_scopes":["a"],"name":"{}"}}"#,
            "x".repeat(MAX_NAME + 1)
        );
        assert!(parse_description(long.as_bytes()).is_err());
        let many: Vec<String> = (0..=MAX_SCOPES).map(|i| format!("s{i}")).collect();
        let body = json!({ "resource_scopes": many }).to_string();
        assert!(parse_description(body.as_bytes()).is_err());
    }
}

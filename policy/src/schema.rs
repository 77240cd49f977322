//! The Cedar schema for UMA decisions and the names it defines: entity types, how a party's
//! identity and verified email become entity ids, and the per-owner schema whose actions are the
//! scopes of the owner's resources (UMA Federated Authorization §3.1 resource scopes).

use std::collections::BTreeSet;
use std::str::FromStr;

use cedar_policy::{EntityId, EntityTypeName, EntityUid, Schema, SchemaFragment};
use serde_json::{Value, json};

use crate::model::ResourceInfo;

/// The schema's namespace.
pub(crate) const NAMESPACE: &str = "Uma";

/// Identity claims that are attributes of the party, never tags.
pub(crate) const IDENTITY_CLAIMS: [&str; 4] = ["sub", "iss", "email", "email_verified"];

/// The schema's entity type names, parsed once. Built fallibly so no path needs `expect`.
#[derive(Debug, Clone)]
pub(crate) struct Vocab {
    pub party: EntityTypeName,
    pub email: EntityTypeName,
    pub resource: EntityTypeName,
    pub resource_type: EntityTypeName,
    pub owner: EntityTypeName,
    pub client: EntityTypeName,
    pub action: EntityTypeName,
}

impl Vocab {
    pub(crate) fn new() -> Result<Self, String> {
        let name = |basename: &str| {
            EntityTypeName::from_str(&format!("{NAMESPACE}::{basename}"))
                .map_err(|e| format!("internal error: entity type `{basename}`: {e}"))
        };
        Ok(Vocab {
            party: name("Party")?,
            email: name("Email")?,
            resource: name("Resource")?,
            resource_type: name("ResourceType")?,
            owner: name("Owner")?,
            client: name("Client")?,
            action: name("Action")?,
        })
    }

    pub(crate) fn uid(ty: &EntityTypeName, id: &str) -> EntityUid {
        EntityUid::from_type_name_and_id(ty.clone(), EntityId::new(id))
    }

    pub(crate) fn party_uid(&self, key: &str) -> EntityUid {
        Self::uid(&self.party, key)
    }
    pub(crate) fn email_uid(&self, normalized: &str) -> EntityUid {
        Self::uid(&self.email, normalized)
    }
    pub(crate) fn resource_uid(&self, id: &str) -> EntityUid {
        Self::uid(&self.resource, id)
    }
    pub(crate) fn resource_type_uid(&self, ty: &str) -> EntityUid {
        Self::uid(&self.resource_type, ty)
    }
    pub(crate) fn action_uid(&self, scope: &str) -> EntityUid {
        Self::uid(&self.action, scope)
    }
}

/// The entity id of the party `subject` at `issuer`: `<issuer>#<subject>`, with `%` and `#` in the
/// issuer percent-encoded so that the first `#` always ends the issuer (the encoding is injective:
/// no two identities share a key).
pub(crate) fn party_key(issuer: &str, subject: &str) -> String {
    let mut key = String::with_capacity(issuer.len() + subject.len() + 1);
    for c in issuer.chars() {
        match c {
            '%' => key.push_str("%25"),
            '#' => key.push_str("%23"),
            c => key.push(c),
        }
    }
    key.push('#');
    key.push_str(subject);
    key
}

/// The inverse of [`party_key`]: the issuer and subject, or `None` for an id that is not a key.
pub(crate) fn split_party_key(key: &str) -> Option<(String, String)> {
    let (escaped, subject) = key.split_once('#')?;
    let mut issuer = String::with_capacity(escaped.len());
    let mut rest = escaped;
    while let Some(i) = rest.find('%') {
        issuer.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(r) = tail.strip_prefix("%25") {
            issuer.push('%');
            rest = r;
        } else if let Some(r) = tail.strip_prefix("%23") {
            issuer.push('#');
            rest = r;
        } else {
            return None;
        }
    }
    issuer.push_str(rest);
    Some((issuer, subject.to_owned()))
}

/// An email address as policies see it: trimmed, domain lower-cased (RFC 5321 §2.4: the local part
/// may be case-sensitive, the domain is not).
pub(crate) fn normalize_email(email: &str) -> String {
    let email = email.trim();
    match email.rsplit_once('@') {
        Some((local, domain)) => format!("{local}@{}", domain.to_ascii_lowercase()),
        None => email.to_owned(),
    }
}

/// The record type of the Cedar `context`.
fn context_type() -> Value {
    json!({
        "type": "Record",
        "attributes": {
            "now": { "type": "Long" },
            "client": { "type": "Entity", "name": "Client" },
            "claim_token_issuer": { "type": "String", "required": false },
            "sender_constrained": { "type": "Boolean" }
        }
    })
}

/// The schema (Cedar JSON schema format) with one action per scope.
pub(crate) fn schema_json(scopes: &BTreeSet<&str>) -> Value {
    let mut actions = serde_json::Map::new();
    for scope in scopes {
        actions.insert(
            (*scope).to_owned(),
            json!({
                "appliesTo": {
                    "principalTypes": ["Party"],
                    "resourceTypes": ["Resource"],
                    "context": { "type": "Context" }
                }
            }),
        );
    }
    json!({
        NAMESPACE: {
            "commonTypes": { "Context": context_type() },
            "entityTypes": {
                "Owner": {},
                "Client": {},
                "Email": {},
                "ResourceType": {},
                "Party": {
                    "memberOfTypes": ["Email"],
                    "shape": {
                        "type": "Record",
                        "attributes": {
                            "issuer": { "type": "String", "required": false },
                            "subject": { "type": "String", "required": false },
                            "email": { "type": "String", "required": false },
                            "email_verified": { "type": "Boolean" }
                        }
                    },
                    "tags": { "type": "Set", "element": { "type": "String" } }
                },
                "Resource": {
                    "memberOfTypes": ["ResourceType"],
                    "shape": {
                        "type": "Record",
                        "attributes": {
                            "owner": { "type": "Entity", "name": "Owner" },
                            "resource_server": { "type": "String" },
                            "type": { "type": "String", "required": false },
                            "name": { "type": "String", "required": false }
                        }
                    }
                }
            },
            "actions": actions
        }
    })
}

/// The scopes of `resources`, which become the schema's actions.
pub(crate) fn scopes_of<'a>(resources: &[&'a ResourceInfo]) -> BTreeSet<&'a str> {
    resources
        .iter()
        .flat_map(|r| r.scopes.iter().map(String::as_str))
        .collect()
}

pub(crate) fn schema_for(scopes: &BTreeSet<&str>) -> Result<Schema, String> {
    Schema::from_json_value(schema_json(scopes)).map_err(|e| format!("internal error: schema: {e}"))
}

/// The UMA schema for an owner's resources in Cedar's schema syntax, to show owners who write raw
/// Cedar. Resources of other owners are ignored.
pub fn schema_text(owner: &str, owner_resources: &[ResourceInfo]) -> Result<String, String> {
    let mine: Vec<&ResourceInfo> = owner_resources
        .iter()
        .filter(|r| r.owner == owner)
        .collect();
    SchemaFragment::from_json_value(schema_json(&scopes_of(&mine)))
        .map_err(|e| format!("internal error: schema: {e}"))?
        .to_cedarschema()
        .map_err(|e| format!("internal error: schema: {e}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn party_keys_are_injective_and_reversible() {
        let pairs = [
            ("https://idp", "alice"),
            ("a#b", "c"),
            ("a", "b#c"),
            ("a%23b", "c"),
            ("a%", "#"),
            ("", ""),
        ];
        let keys: BTreeSet<String> = pairs.iter().map(|(i, s)| party_key(i, s)).collect();
        assert_eq!(keys.len(), pairs.len());
        for (i, s) in pairs {
            assert_eq!(
                split_party_key(&party_key(i, s)),
                Some((i.to_owned(), s.to_owned()))
            );
        }
    }

    #[test]
    fn emails_normalize_domain_only() {
        assert_eq!(normalize_email(" Alice@Example.COM "), "Alice@example.com");
    }

    #[test]
    fn schema_builds_and_prints() {
        let r = ResourceInfo {
            id: "r1".into(),
            owner: "o".into(),
            resource_server: "rs".into(),
            resource_type: None,
            name: None,
            scopes: vec![
                "read".into(),
                "patient/Observation.read".into(),
                "q\"uote".into(),
            ],
        };
        let text = schema_text("o", &[r]).unwrap();
        assert!(text.contains("entity Party in [Email]"), "{text}");
        assert!(text.contains("patient/Observation.read"), "{text}");
        Vocab::new().unwrap();
    }
}

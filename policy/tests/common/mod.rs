//! Fixtures shared by the policy tests: one owner's resources, another owner's resource, and
//! builders for parties, contexts and policies.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use custodia_policy::{
    ClaimRequirement, ClaimValue, Party, PersonSelector, PolicySource, RequestContext,
    ResourceInfo, ResourceSelector, ShareTemplate, StoredPolicy,
};

pub const OWNER: &str = "owner-1";
pub const OTHER_OWNER: &str = "owner-2";
pub const IDP: &str = "https://idp.example";
pub const HOSPITAL: &str = "https://hospital.example";
pub const NOW: i64 = 1_800_000_000;

pub fn resource(id: &str, owner: &str, ty: Option<&str>, scopes: &[&str]) -> ResourceInfo {
    ResourceInfo {
        id: id.to_owned(),
        owner: owner.to_owned(),
        resource_server: "rs-1".to_owned(),
        resource_type: ty.map(str::to_owned),
        name: Some(format!("{id} name")),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
    }
}

/// `obs1`, `obs2` (type `Observation`), `photo` (type `Photo`) of [`OWNER`]; `theirs` (type
/// `Observation`) of [`OTHER_OWNER`].
pub fn resources() -> Vec<ResourceInfo> {
    vec![
        resource("obs1", OWNER, Some("Observation"), &["read", "write"]),
        resource("obs2", OWNER, Some("Observation"), &["read"]),
        resource("photo", OWNER, Some("Photo"), &["view"]),
        resource(
            "theirs",
            OTHER_OWNER,
            Some("Observation"),
            &["read", "write"],
        ),
    ]
}

pub fn find(id: &str) -> ResourceInfo {
    resources().into_iter().find(|r| r.id == id).unwrap()
}

pub fn anon() -> Party {
    Party::default()
}

pub fn person(issuer: &str, subject: &str) -> Party {
    Party {
        issuer: Some(issuer.to_owned()),
        subject: Some(subject.to_owned()),
        ..Party::default()
    }
}

pub fn with_email(mut p: Party, email: &str, verified: bool) -> Party {
    p.email = Some(email.to_owned());
    p.email_verified = verified;
    p
}

pub fn with_claim(mut p: Party, name: &str, value: ClaimValue) -> Party {
    p.claims.insert(name.to_owned(), value);
    p
}

pub fn claims(pairs: &[(&str, &str)]) -> BTreeMap<String, ClaimValue> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), ClaimValue::String((*v).to_owned())))
        .collect()
}

pub fn ctx() -> RequestContext {
    RequestContext {
        now: NOW,
        client_id: "client-1".to_owned(),
        claim_token_issuer: None,
        sender_constrained: false,
    }
}

pub fn ctx_from(issuer: &str) -> RequestContext {
    RequestContext {
        claim_token_issuer: Some(issuer.to_owned()),
        ..ctx()
    }
}

pub fn subject(issuer: &str, subject: &str) -> PersonSelector {
    PersonSelector::Subject {
        issuer: issuer.to_owned(),
        subject: subject.to_owned(),
    }
}

pub fn email(e: &str) -> PersonSelector {
    PersonSelector::VerifiedEmail(e.to_owned())
}

/// Whoever holds claim `name` = `value` from `issuer`.
pub fn holder(name: &str, value: &str, issuer: Option<&str>) -> PersonSelector {
    PersonSelector::Claim(ClaimRequirement {
        name: name.to_owned(),
        value: value.to_owned(),
        issuer: issuer.map(str::to_owned),
    })
}

pub fn share(resource: ResourceSelector, with: PersonSelector, scopes: &[&str]) -> ShareTemplate {
    ShareTemplate {
        resource,
        with,
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        until: None,
        require_claim: None,
    }
}

pub fn res(id: &str) -> ResourceSelector {
    ResourceSelector::Resource(id.to_owned())
}

pub fn of_type(t: &str) -> ResourceSelector {
    ResourceSelector::Type(t.to_owned())
}

pub fn until(mut t: ShareTemplate, until: i64) -> ShareTemplate {
    t.until = Some(until);
    t
}

pub fn requiring(
    mut t: ShareTemplate,
    name: &str,
    value: &str,
    issuer: Option<&str>,
) -> ShareTemplate {
    t.require_claim = Some(ClaimRequirement {
        name: name.to_owned(),
        value: value.to_owned(),
        issuer: issuer.map(str::to_owned),
    });
    t
}

pub fn stored_share(id: &str, t: ShareTemplate) -> StoredPolicy {
    StoredPolicy {
        id: id.to_owned(),
        source: PolicySource::Share(t),
    }
}

pub fn stored_cedar(id: &str, text: &str) -> StoredPolicy {
    StoredPolicy {
        id: id.to_owned(),
        source: PolicySource::Cedar(text.to_owned()),
    }
}

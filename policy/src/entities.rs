//! Entity mapping: turns the requesting party, the resource and the request context into the Cedar
//! principal, resource and context of one authorization request (UMA Grant §3.3.4: the
//! authorization server assesses the requested permissions against the owner's policies).
//!
//! Each fact is known, absent, or — for missing-claims analysis only — an unknown that partial
//! evaluation carries into residual policies under a stable name (see [`crate::partial`]).

use std::collections::BTreeMap;

use cedar_policy::{Context, Entities, Entity, EntityUid, Request, RestrictedExpression};

use crate::model::{ClaimValue, Party, RequestContext, ResourceInfo};
use crate::partial;
use crate::schema::{IDENTITY_CLAIMS, Vocab, normalize_email, party_key};

/// A fact about the request: known, absent, or unknown (partial evaluation only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fact<T> {
    Known(T),
    Unknown,
    Absent,
}

/// The principal to evaluate with: the party itself, or (for missing-claims analysis) a party that
/// would match a share, with some facts left unknown.
#[derive(Debug, Clone)]
pub(crate) struct PrincipalView<'a> {
    /// The entity id: a party key, or [`ANONYMOUS`] for a party not identified yet.
    pub id: String,
    /// Issuer and subject.
    pub identity: Fact<(String, String)>,
    /// The verified email, normalized.
    pub email: Fact<String>,
    /// The party's other claims.
    pub claims: &'a BTreeMap<String, ClaimValue>,
    /// Claims the party lacks that should be unknowns rather than absent.
    pub unknown_claims: Vec<&'a str>,
}

/// The entity id of a party that has not been identified. No party key equals it (keys contain `#`).
pub(crate) const ANONYMOUS: &str = "anonymous";

/// What the party's identity and verified email are, as the concrete decision sees them.
pub(crate) struct PartyFacts {
    pub key: Option<String>,
    pub identity: Option<(String, String)>,
    pub email: Option<String>,
}

pub(crate) fn party_facts(party: &Party) -> PartyFacts {
    let identity = match (&party.issuer, &party.subject) {
        (Some(i), Some(s)) => Some((i.clone(), s.clone())),
        _ => None,
    };
    let email = match (&party.email, party.email_verified) {
        (Some(e), true) if !e.trim().is_empty() => Some(normalize_email(e)),
        _ => None,
    };
    PartyFacts {
        key: identity.as_ref().map(|(i, s)| party_key(i, s)),
        identity,
        email,
    }
}

impl<'a> PrincipalView<'a> {
    /// The party exactly as known: anything missing is absent.
    pub(crate) fn concrete(party: &'a Party, facts: &PartyFacts) -> Self {
        PrincipalView {
            id: facts.key.clone().unwrap_or_else(|| ANONYMOUS.to_owned()),
            identity: facts.identity.clone().map_or(Fact::Absent, Fact::Known),
            email: facts.email.clone().map_or(Fact::Absent, Fact::Known),
            claims: &party.claims,
            unknown_claims: Vec::new(),
        }
    }
}

fn string(s: &str) -> RestrictedExpression {
    RestrictedExpression::new_string(s.to_owned())
}

fn claim_value(v: &ClaimValue) -> RestrictedExpression {
    let values: Vec<String> = match v {
        ClaimValue::String(s) => vec![s.clone()],
        ClaimValue::Bool(b) => vec![b.to_string()],
        ClaimValue::Long(n) => vec![n.to_string()],
        ClaimValue::Strings(v) => v.clone(),
    };
    RestrictedExpression::new_set(values.into_iter().map(RestrictedExpression::new_string))
}

pub(crate) fn principal_entity(v: &Vocab, p: &PrincipalView<'_>) -> Result<Entity, String> {
    let mut attrs: Vec<(String, RestrictedExpression)> = Vec::with_capacity(4);
    match &p.identity {
        Fact::Known((issuer, subject)) => {
            attrs.push(("issuer".into(), string(issuer)));
            attrs.push(("subject".into(), string(subject)));
        }
        Fact::Unknown => {
            attrs.push(("issuer".into(), partial::unknown(partial::PARTY_ISSUER)));
            attrs.push(("subject".into(), partial::unknown(partial::PARTY_SUBJECT)));
        }
        Fact::Absent => {}
    }
    let mut parents = Vec::new();
    match &p.email {
        Fact::Known(email) => {
            attrs.push(("email".into(), string(email)));
            attrs.push((
                "email_verified".into(),
                RestrictedExpression::new_bool(true),
            ));
            parents.push(v.email_uid(email));
        }
        Fact::Unknown => {
            attrs.push(("email".into(), partial::unknown(partial::PARTY_EMAIL)));
            attrs.push((
                "email_verified".into(),
                partial::unknown(partial::PARTY_EMAIL_VERIFIED),
            ));
        }
        Fact::Absent => {
            attrs.push((
                "email_verified".into(),
                RestrictedExpression::new_bool(false),
            ));
        }
    }
    let tags = p
        .claims
        .iter()
        .filter(|(name, _)| !IDENTITY_CLAIMS.contains(&name.as_str()))
        .map(|(name, value)| (name.clone(), claim_value(value)))
        .chain(p.unknown_claims.iter().map(|name| {
            (
                (*name).to_owned(),
                partial::unknown(&partial::claim_unknown(name)),
            )
        }));
    Entity::new_with_tags(v.party_uid(&p.id), attrs, parents, tags)
        .map_err(|e| format!("requesting party: {e}"))
}

pub(crate) fn resource_entity(v: &Vocab, r: &ResourceInfo) -> Result<Entity, String> {
    let mut attrs = vec![
        (
            "owner".to_owned(),
            RestrictedExpression::new_entity_uid(Vocab::uid(&v.owner, &r.owner)),
        ),
        ("resource_server".to_owned(), string(&r.resource_server)),
    ];
    let mut parents = Vec::new();
    if let Some(t) = &r.resource_type {
        attrs.push(("type".to_owned(), string(t)));
        parents.push(v.resource_type_uid(t));
    }
    if let Some(n) = &r.name {
        attrs.push(("name".to_owned(), string(n)));
    }
    Entity::new_with_tags(v.resource_uid(&r.id), attrs, parents, [])
        .map_err(|e| format!("resource `{}`: {e}", r.id))
}

pub(crate) fn context(
    v: &Vocab,
    ctx: &RequestContext,
    claim_token_issuer: Fact<&str>,
) -> Result<Context, String> {
    let mut pairs = vec![
        ("now".to_owned(), RestrictedExpression::new_long(ctx.now)),
        (
            "client".to_owned(),
            RestrictedExpression::new_entity_uid(Vocab::uid(&v.client, &ctx.client_id)),
        ),
        (
            "sender_constrained".to_owned(),
            RestrictedExpression::new_bool(ctx.sender_constrained),
        ),
    ];
    match claim_token_issuer {
        Fact::Known(i) => pairs.push(("claim_token_issuer".to_owned(), string(i))),
        Fact::Unknown => pairs.push((
            "claim_token_issuer".to_owned(),
            partial::unknown(partial::CLAIM_TOKEN_ISSUER),
        )),
        Fact::Absent => {}
    }
    Context::from_pairs(pairs).map_err(|e| format!("request context: {e}"))
}

/// One ready-to-evaluate request: the Cedar request and its two entities.
pub(crate) struct CedarRequest {
    pub request: Request,
    pub entities: Entities,
}

pub(crate) fn request(
    v: &Vocab,
    principal: &PrincipalView<'_>,
    resource: &ResourceInfo,
    scope: &str,
    context: Context,
) -> Result<CedarRequest, String> {
    let p = principal_entity(v, principal)?;
    let r = resource_entity(v, resource)?;
    let principal_uid: EntityUid = p.uid();
    let resource_uid: EntityUid = r.uid();
    let entities =
        Entities::from_entities([p, r], None).map_err(|e| format!("request entities: {e}"))?;
    let request = Request::new(
        principal_uid,
        v.action_uid(scope),
        resource_uid,
        context,
        None,
    )
    .map_err(|e| format!("request: {e}"))?;
    Ok(CedarRequest { request, entities })
}

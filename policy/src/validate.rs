//! Validation of an owner's policy before it is saved: sharing templates are checked against the
//! owner's resources and the clock, raw Cedar is parsed and type-checked (Cedar strict validation)
//! against the UMA schema whose actions are the scopes of the owner's resources. Every error and
//! warning is returned, with its line and column in raw Cedar text.

use std::collections::BTreeSet;

use cedar_policy::{
    EntityUid, Policy, PolicyId, PolicySet, PrincipalConstraint, ResourceConstraint,
    ValidationMode, Validator,
};

use crate::compile::{
    diagnostic_from, link_slots, locate, on_big_stack, parse_raw, share_link, strip_policy_prefix,
    template_from_json,
};
use crate::model::{
    ClaimRequirement, Diagnostic, PersonSelector, PolicySource, ResourceInfo, ResourceSelector,
    Severity, ShareTemplate, Validation,
};
use crate::schema::{
    IDENTITY_CLAIMS, Vocab, normalize_email, schema_for, scopes_of, split_party_key,
};

/// Validate a policy of `owner` against the UMA schema for the owner's resources (their scopes are
/// the actions). Templates: the scopes exist on the selected resource (or on some resource of the
/// type), the email looks like an address, `until` is after `now`, and so on. Raw Cedar: syntax
/// and schema errors with their locations, and resources that are not the owner's.
///
/// Resources in `owner_resources` whose owner is not `owner` are ignored.
pub fn validate(
    owner: &str,
    source: &PolicySource,
    owner_resources: &[ResourceInfo],
    now: i64,
) -> Validation {
    on_big_stack(|| validate_here(owner, source, owner_resources, now)).unwrap_or_else(|| {
        let mut out = Validation::default();
        out.push(Diagnostic::error(
            "internal error: the policy could not be validated",
        ));
        out
    })
}

fn validate_here(
    owner: &str,
    source: &PolicySource,
    owner_resources: &[ResourceInfo],
    now: i64,
) -> Validation {
    let mut out = Validation::default();
    let mine: Vec<&ResourceInfo> = owner_resources
        .iter()
        .filter(|r| r.owner == owner)
        .collect();
    let checked = Vocab::new().and_then(|v| schema_for(&scopes_of(&mine)).map(|s| (v, s)));
    let (vocab, schema) = match checked {
        Ok(vs) => vs,
        Err(e) => {
            out.push(Diagnostic::error(e));
            return out;
        }
    };
    let validator = Validator::new(schema);
    match source {
        PolicySource::Share(t) => validate_share(&vocab, &validator, t, &mine, now, &mut out),
        PolicySource::Cedar(text) => validate_cedar(&vocab, &validator, text, &mine, &mut out),
    }
    out
}

fn looks_like_email(email: &str) -> bool {
    let Some((local, domain)) = email.rsplit_once('@') else {
        return false;
    };
    email.len() <= 254
        && !local.is_empty()
        && !domain.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn validate_share(
    vocab: &Vocab,
    validator: &Validator,
    t: &ShareTemplate,
    mine: &[&ResourceInfo],
    now: i64,
    out: &mut Validation,
) {
    if t.scopes.is_empty() {
        out.push(Diagnostic::error("a share needs at least one scope"));
    }
    let mut seen = BTreeSet::new();
    for s in &t.scopes {
        if !seen.insert(s) {
            out.push(Diagnostic::warning(format!("scope `{s}` is listed twice")));
        }
    }
    match &t.resource {
        ResourceSelector::Resource(id) => match mine.iter().find(|r| &r.id == id) {
            None => out.push(Diagnostic::error(format!(
                "resource `{id}` is not one of your resources"
            ))),
            Some(r) => {
                for s in seen.iter().filter(|s| !r.scopes.contains(s)) {
                    out.push(Diagnostic::error(format!(
                        "scope `{s}` is not a scope of resource `{id}`"
                    )));
                }
            }
        },
        ResourceSelector::Type(ty) => {
            let of_type: Vec<&&ResourceInfo> = mine
                .iter()
                .filter(|r| r.resource_type.as_deref() == Some(ty.as_str()))
                .collect();
            if ty.is_empty() {
                out.push(Diagnostic::error("the resource type is empty"));
            } else if of_type.is_empty() {
                out.push(Diagnostic::error(format!(
                    "you have no resource of type `{ty}`"
                )));
            } else {
                for s in &seen {
                    let with = of_type.iter().filter(|r| r.scopes.contains(s)).count();
                    if with == 0 {
                        out.push(Diagnostic::error(format!(
                            "scope `{s}` is not a scope of any of your resources of type `{ty}`"
                        )));
                    } else if with < of_type.len() {
                        out.push(Diagnostic::warning(format!(
                            "scope `{s}` is a scope of only {with} of your {} resources of type `{ty}`",
                            of_type.len()
                        )));
                    }
                }
            }
        }
    }
    match &t.with {
        PersonSelector::Subject { issuer, subject } => {
            if issuer.trim().is_empty() {
                out.push(Diagnostic::error("the issuer is empty"));
            } else if issuer.trim() != issuer {
                out.push(Diagnostic::error(format!(
                    "the issuer `{issuer}` has spaces around it"
                )));
            }
            // The person and their claims come from one ID token, so from one issuer.
            if let Some(r) = &t.require_claim
                && let Some(ri) = &r.issuer
                && ri != issuer
            {
                out.push(Diagnostic::error(format!(
                    "claim `{}` is required from `{ri}` but the person is named at `{issuer}`: a requesting party's claims come from one issuer, so the share could never apply",
                    r.name
                )));
            }
            if subject.is_empty() {
                out.push(Diagnostic::error("the subject is empty"));
            }
        }
        PersonSelector::VerifiedEmail(email) => {
            if !looks_like_email(email.trim()) {
                out.push(Diagnostic::error(format!(
                    "`{email}` does not look like an email address"
                )));
            }
        }
        PersonSelector::Claim(c) => {
            // Without an issuer, any provider Custodia trusts could make anyone a holder.
            if c.issuer.is_none() {
                out.push(Diagnostic::error(format!(
                    "a share with whoever holds claim `{}` must name the claim's issuer",
                    c.name
                )));
            }
            check_claim(c, out);
            // Every claim of a party comes from one claim token, so two issuers never both hold.
            if let (Some(i), Some(r)) = (&c.issuer, &t.require_claim)
                && let Some(ri) = &r.issuer
                && ri != i
            {
                out.push(Diagnostic::error(format!(
                    "claim `{}` is required from `{ri}` and claim `{}` from `{i}`: a requesting party's claims come from one issuer, so the share could never apply",
                    r.name, c.name
                )));
            }
        }
    }
    if let Some(until) = t.until
        && until <= now
    {
        out.push(Diagnostic::error(format!(
            "`until` ({until}) is not in the future (now is {now})"
        )));
    }
    if let Some(c) = &t.require_claim {
        check_claim(c, out);
    }
    if !out.is_ok() {
        return;
    }
    // The generated template and its link must also pass Cedar's own validation.
    let link = share_link(vocab, t);
    let mut set = PolicySet::new();
    let linked = template_from_json("share", link.template).and_then(|tpl| {
        set.add_template(tpl)
            .map_err(|e| format!("internal error: share: {e}"))?;
        set.link(
            PolicyId::new("share"),
            PolicyId::new("link"),
            link_slots(link.principal.as_ref(), &link.resource),
        )
        .map_err(|e| format!("internal error: share: {e}"))
    });
    if let Err(e) = linked {
        out.push(Diagnostic::error(e));
        return;
    }
    let result = validator.validate(&set, ValidationMode::Strict);
    for e in result.validation_errors() {
        out.push(Diagnostic::error(strip_policy_prefix(e.to_string())));
    }
    for w in result.validation_warnings() {
        out.push(Diagnostic::warning(strip_policy_prefix(w.to_string())));
    }
}

/// The checks of a claim a share names (as whom it is with, or as a requirement).
fn check_claim(c: &ClaimRequirement, out: &mut Validation) {
    if c.name.trim().is_empty() {
        out.push(Diagnostic::error("the required claim's name is empty"));
    } else if IDENTITY_CLAIMS.contains(&c.name.as_str()) {
        out.push(Diagnostic::error(format!(
            "`{}` is an identity claim; share with a subject or a verified email instead",
            c.name
        )));
    }
    if c.value.is_empty() {
        out.push(Diagnostic::error(format!(
            "the required value of claim `{}` is empty",
            c.name
        )));
    }
    if c.issuer.as_deref().is_some_and(|i| i.trim().is_empty()) {
        out.push(Diagnostic::error(format!(
            "the issuer of claim `{}` is empty",
            c.name
        )));
    }
}

/// The place of the first `"id"` string in `text`, for findings Cedar gives no place to.
fn place_of(text: &str, id: &str, mut d: Diagnostic) -> Diagnostic {
    let quoted = serde_json::to_string(id).unwrap_or_default();
    if let Some(offset) = text.find(&quoted) {
        let (line, column) = locate(text, offset);
        d.line = Some(line);
        d.column = Some(column);
    }
    d
}

fn scope_uids(p: &Policy) -> Vec<EntityUid> {
    let mut uids = Vec::new();
    match p.principal_constraint() {
        PrincipalConstraint::In(u)
        | PrincipalConstraint::Eq(u)
        | PrincipalConstraint::IsIn(_, u) => {
            uids.push(u);
        }
        PrincipalConstraint::Any | PrincipalConstraint::Is(_) => {}
    }
    match p.resource_constraint() {
        ResourceConstraint::In(u) | ResourceConstraint::Eq(u) | ResourceConstraint::IsIn(_, u) => {
            uids.push(u);
        }
        ResourceConstraint::Any | ResourceConstraint::Is(_) => {}
    }
    uids
}

fn validate_cedar(
    vocab: &Vocab,
    validator: &Validator,
    text: &str,
    mine: &[&ResourceInfo],
    out: &mut Validation,
) {
    let policies = match parse_raw(text) {
        Ok(raw) => raw.statements,
        Err(diagnostics) => {
            for d in diagnostics {
                out.push(d);
            }
            return;
        }
    };
    let set = match PolicySet::from_policies(policies.iter().cloned()) {
        Ok(s) => s,
        Err(e) => {
            out.push(Diagnostic::error(format!(
                "internal error: policy set: {e}"
            )));
            return;
        }
    };
    let result = validator.validate(&set, ValidationMode::Strict);
    for e in result.validation_errors() {
        out.push(diagnostic_from(
            e,
            strip_policy_prefix(e.to_string()),
            text,
            Severity::Error,
        ));
    }
    for w in result.validation_warnings() {
        out.push(diagnostic_from(
            w,
            strip_policy_prefix(w.to_string()),
            text,
            Severity::Warning,
        ));
    }
    // Entity literals the schema cannot judge: whose resources, which types, which parties.
    let ids: BTreeSet<&str> = mine.iter().map(|r| r.id.as_str()).collect();
    let types: BTreeSet<&str> = mine
        .iter()
        .filter_map(|r| r.resource_type.as_deref())
        .collect();
    let mut reported = BTreeSet::new();
    for p in &policies {
        for uid in scope_uids(p).into_iter().chain(p.entity_literals()) {
            if !reported.insert(uid.clone()) {
                continue;
            }
            let id = uid.id().unescaped();
            let ty = uid.type_name();
            if ty == &vocab.resource && !ids.contains(id) {
                out.push(place_of(
                    text,
                    id,
                    Diagnostic::error(format!("resource `{id}` is not one of your resources")),
                ));
            } else if ty == &vocab.resource_type && !types.contains(id) {
                out.push(place_of(
                    text,
                    id,
                    Diagnostic::warning(format!("you have no resource of type `{id}` yet")),
                ));
            } else if ty == &vocab.email && normalize_email(id) != id {
                out.push(place_of(
                    text,
                    id,
                    Diagnostic::warning(format!(
                        "email `{id}` never matches: parties' emails are compared as `{}`",
                        normalize_email(id)
                    )),
                ));
            } else if ty == &vocab.party && split_party_key(id).is_none() {
                out.push(place_of(
                    text,
                    id,
                    Diagnostic::warning(format!(
                        "party `{id}` never matches: party ids are `<issuer>#<subject>`; \
                         compare `principal.issuer` and `principal.subject` instead"
                    )),
                ));
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn email_shapes() {
        assert!(looks_like_email("alice@example.com"));
        assert!(!looks_like_email("alice@example"));
        assert!(!looks_like_email("alice example.com"));
        assert!(!looks_like_email("@example.com"));
        assert!(!looks_like_email("alice@.com"));
        assert!(!looks_like_email("al ice@example.com"));
    }
}

//! Compilation of owners' policies to Cedar: sharing templates become template-linked policies
//! (one Cedar template per distinct shape, linked once per share), raw Cedar is parsed with every
//! syntax error located, and each policy's principal and resource scope constraints are read to
//! place it in the decision index.

use std::collections::{BTreeSet, HashMap};

use cedar_policy::{
    Effect, EntityUid, Policy, PolicyId, PolicySet, PrincipalConstraint, ResourceConstraint,
    SlotId, Template,
};
use serde_json::{Value, json};

use crate::lexer;
use crate::model::{
    ClaimRequirement, Diagnostic, PersonSelector, ResourceSelector, Severity, ShareTemplate,
};
use crate::schema::{NAMESPACE, Vocab, normalize_email, party_key};

/// The longest raw Cedar text accepted (bytes). Owners' policies are short; the bound keeps the
/// parser's work (and recursion) small.
pub(crate) const MAX_CEDAR_TEXT: usize = 32 * 1024;
/// The deepest bracket nesting accepted in raw Cedar text.
pub(crate) const MAX_NESTING: usize = 32;
/// The most operator characters and keywords accepted in raw Cedar text (`&&` counts two).
pub(crate) const MAX_OPERATORS: usize = 256;

/// The stack of the threads that parse and validate owners' Cedar. Cedar's parser and printers
/// recurse without a guard and its type checker gives up silently when the stack runs low (the
/// policy then passes unchecked), so validation and compilation get a stack far deeper than the
/// limits above can use, whatever thread the server calls them on.
const CEDAR_STACK: usize = 64 * 1024 * 1024;

/// Runs `f` on a scoped thread with [`CEDAR_STACK`]; `None` if the thread cannot be started or
/// `f` panics (a panic inside Cedar is contained here).
pub(crate) fn on_big_stack<T: Send>(f: impl FnOnce() -> T + Send) -> Option<T> {
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("custodia-policy".to_owned())
            .stack_size(CEDAR_STACK)
            .spawn_scoped(scope, f)
            .ok()?
            .join()
            .ok()
    })
}

/// Which resources a policy can apply to, from its resource scope constraint.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum ResKey {
    /// Any resource (unconstrained, or a constraint the index does not narrow).
    Any,
    /// Only this resource id.
    Resource(String),
    /// Only resources of this type.
    Type(String),
}

/// Which parties a policy can apply to, from its principal scope constraint.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum PrinKey {
    /// Any party.
    Any,
    /// Only the party with this key (issuer + subject).
    Party(String),
    /// Only a party with this verified (normalized) email.
    Email(String),
}

/// A share as Cedar: the template body (in Cedar's JSON policy format) and the slot values. A
/// share with whoever holds a claim has no principal slot (`principal` unconstrained).
pub(crate) struct ShareLink {
    pub template: Value,
    pub principal: Option<EntityUid>,
    pub resource: EntityUid,
    pub prin_key: PrinKey,
    pub res_key: ResKey,
}

fn var(name: &str) -> Value {
    json!({ "Var": name })
}
fn attr(of: Value, name: &str) -> Value {
    json!({ ".": { "left": of, "attr": name } })
}
fn lit(v: impl Into<Value>) -> Value {
    json!({ "Value": v.into() })
}
fn binary(op: &str, left: Value, right: Value) -> Value {
    json!({ op: { "left": left, "right": right } })
}

/// The slot values of a share's link.
pub(crate) fn link_slots(
    principal: Option<&EntityUid>,
    resource: &EntityUid,
) -> HashMap<SlotId, EntityUid> {
    let mut slots = HashMap::from([(SlotId::resource(), resource.clone())]);
    if let Some(p) = principal {
        slots.insert(SlotId::principal(), p.clone());
    }
    slots
}

/// The conditions of a claim requirement: the party has the claim, its value contains the required
/// one, and (with an issuer) the claims came from that issuer.
fn claim_conditions(claim: &ClaimRequirement, conditions: &mut Vec<Value>) {
    conditions.push(binary("hasTag", var("principal"), lit(claim.name.clone())));
    conditions.push(binary(
        "contains",
        binary("getTag", var("principal"), lit(claim.name.clone())),
        lit(claim.value.clone()),
    ));
    if let Some(issuer) = &claim.issuer {
        conditions.push(json!({ "has": { "left": var("context"), "attr": "claim_token_issuer" } }));
        conditions.push(binary(
            "==",
            attr(var("context"), "claim_token_issuer"),
            lit(issuer.clone()),
        ));
    }
}

/// The claim names a share reads from the party.
pub(crate) fn share_claims(t: &ShareTemplate) -> BTreeSet<String> {
    let with = match &t.with {
        PersonSelector::Claim(c) => Some(c.name.clone()),
        _ => None,
    };
    with.into_iter()
        .chain(t.require_claim.iter().map(|c| c.name.clone()))
        .collect()
}

/// The Cedar template and link values for a share. The template depends only on the share's shape
/// (person kind, scopes, until, claim requirement), so many shares link to one template. Strings
/// go into Cedar's JSON format as JSON strings: nothing the owner types is spliced into Cedar text.
pub(crate) fn share_link(v: &Vocab, t: &ShareTemplate) -> ShareLink {
    let mut conditions: Vec<Value> = Vec::new();
    let (principal, prin_key) = match &t.with {
        PersonSelector::Subject { issuer, subject } => {
            let key = party_key(issuer, subject);
            (Some(v.party_uid(&key)), PrinKey::Party(key))
        }
        PersonSelector::VerifiedEmail(email) => {
            let email = normalize_email(email);
            // Only verified emails make a party a member of its Email group; the condition repeats
            // it so the template says what it means.
            conditions.push(attr(var("principal"), "email_verified"));
            (Some(v.email_uid(&email)), PrinKey::Email(email))
        }
        // Anyone with the claim: the claim (from its issuer) is the whole test, so the claim's
        // value is part of the template's shape, not a slot.
        PersonSelector::Claim(claim) => {
            claim_conditions(claim, &mut conditions);
            (None, PrinKey::Any)
        }
    };
    let (resource, res_key) = match &t.resource {
        ResourceSelector::Resource(id) => (v.resource_uid(id), ResKey::Resource(id.clone())),
        ResourceSelector::Type(ty) => (v.resource_type_uid(ty), ResKey::Type(ty.clone())),
    };
    if let Some(until) = t.until {
        conditions.push(binary("<", attr(var("context"), "now"), lit(until)));
    }
    if let Some(claim) = &t.require_claim {
        claim_conditions(claim, &mut conditions);
    }
    let scopes: BTreeSet<&str> = t.scopes.iter().map(String::as_str).collect();
    let actions: Vec<Value> = scopes
        .iter()
        .map(|s| json!({ "type": format!("{NAMESPACE}::Action"), "id": s }))
        .collect();
    let body = conditions.into_iter().reduce(|acc, c| binary("&&", acc, c));
    let conditions = match body {
        Some(body) => json!([{ "kind": "when", "body": body }]),
        None => json!([]),
    };
    let principal_constraint = match principal {
        Some(_) => json!({ "op": "in", "slot": "?principal" }),
        None => json!({ "op": "All" }),
    };
    let template = json!({
        "effect": "permit",
        "principal": principal_constraint,
        "action": { "op": "in", "entities": actions },
        "resource": { "op": "in", "slot": "?resource" },
        "conditions": conditions
    });
    ShareLink {
        template,
        principal,
        resource,
        prin_key,
        res_key,
    }
}

pub(crate) fn template_from_json(id: &str, est: Value) -> Result<Template, String> {
    Template::from_json(Some(PolicyId::new(id)), est)
        .map_err(|e| format!("internal error: share template: {e}"))
}

/// 1-based line and column (in characters) of a byte offset in `text`.
pub(crate) fn locate(text: &str, offset: usize) -> (u32, u32) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (
        u32::try_from(line).unwrap_or(u32::MAX),
        u32::try_from(column).unwrap_or(u32::MAX),
    )
}

/// A Cedar diagnostic (anything with miette labels) as ours, located in `text`.
pub(crate) fn diagnostic_from(
    d: &dyn miette::Diagnostic,
    message: String,
    text: &str,
    severity: Severity,
) -> Diagnostic {
    let offset = d
        .labels()
        .and_then(|mut labels| labels.next())
        .map(|l| l.offset());
    let (line, column) = match offset {
        Some(o) => {
            let (l, c) = locate(text, o);
            (Some(l), Some(c))
        }
        None => (None, None),
    };
    let message = match d.help() {
        Some(help) => format!("{message}; {help}"),
        None => message,
    };
    Diagnostic {
        message,
        line,
        column,
        severity,
    }
}

/// Cedar's validator prefixes messages with the internal policy id; the location says more.
pub(crate) fn strip_policy_prefix(message: String) -> String {
    if let Some(rest) = message.strip_prefix("for policy `")
        && let Some((_, tail)) = rest.split_once("`, ")
    {
        return tail.to_owned();
    }
    message
}

/// Refuses text that is too long, too deeply nested or has too many operators before Cedar's
/// parser sees it: Cedar's parser and printers recurse on the expression tree, and a policy must
/// not be able to exhaust a thread's stack. Together the limits bound the tree's depth.
fn precheck(text: &str, tokens: &[lexer::Spanned<'_>]) -> Result<(), Diagnostic> {
    if text.len() > MAX_CEDAR_TEXT {
        return Err(Diagnostic::error(format!(
            "the policy text is too long ({} bytes; at most {MAX_CEDAR_TEXT})",
            text.len()
        )));
    }
    if let Some(offset) = lexer::too_deep(tokens, MAX_NESTING) {
        let (line, column) = locate(text, offset);
        return Err(Diagnostic {
            message: format!("the policy is nested too deeply (at most {MAX_NESTING} levels)"),
            line: Some(line),
            column: Some(column),
            severity: Severity::Error,
        });
    }
    let operators = lexer::operator_count(tokens);
    if operators > MAX_OPERATORS {
        return Err(Diagnostic::error(format!(
            "the policy text has too many operators ({operators}; at most {MAX_OPERATORS}); \
             split it into several policies"
        )));
    }
    Ok(())
}

/// A raw Cedar text's statements, and the claims it reads from the party.
#[derive(Debug)]
pub(crate) struct RawPolicies {
    pub statements: Vec<Policy>,
    pub claims: BTreeSet<String>,
}

/// Parses raw Cedar text into its static policies, in text order. Every syntax error is returned
/// with its location; templates (`?principal`, `?resource`) are refused (shares are the templates).
pub(crate) fn parse_raw(text: &str) -> Result<RawPolicies, Vec<Diagnostic>> {
    let tokens = if text.len() > MAX_CEDAR_TEXT {
        Vec::new()
    } else {
        lexer::tokens(text)
    };
    precheck(text, &tokens).map_err(|d| vec![d])?;
    let set: PolicySet = text.parse().map_err(|errs: cedar_policy::ParseErrors| {
        errs.iter()
            .map(|e| diagnostic_from(e, e.to_string(), text, Severity::Error))
            .collect::<Vec<_>>()
    })?;
    if set.num_of_templates() > 0 {
        return Err(vec![Diagnostic::error(
            "slots (`?principal`, `?resource`) are not allowed in raw Cedar; use a share instead",
        )]);
    }
    let mut policies: Vec<(usize, Policy)> = set
        .policies()
        .map(|p| {
            let id: &str = p.id().as_ref();
            let n = id
                .strip_prefix("policy")
                .and_then(|n| n.parse().ok())
                .unwrap_or(usize::MAX);
            (n, p.clone())
        })
        .collect();
    policies.sort_by_key(|(n, _)| *n);
    if policies.is_empty() {
        return Err(vec![Diagnostic::error("the text contains no policy")]);
    }
    Ok(RawPolicies {
        statements: policies.into_iter().map(|(_, p)| p).collect(),
        claims: lexer::tag_names(&tokens).into_iter().collect(),
    })
}

/// The index keys of a static policy, from its scope constraints. A constraint the index cannot
/// narrow yields `Any`, which is always safe: `Any` buckets are evaluated for every request.
pub(crate) fn static_keys(v: &Vocab, p: &Policy) -> (PrinKey, ResKey) {
    let prin_in = |uid: &EntityUid| {
        if uid.type_name() == &v.party {
            PrinKey::Party(uid.id().unescaped().to_owned())
        } else if uid.type_name() == &v.email {
            PrinKey::Email(uid.id().unescaped().to_owned())
        } else {
            PrinKey::Any
        }
    };
    let prin = match p.principal_constraint() {
        PrincipalConstraint::Eq(uid) if uid.type_name() == &v.party => prin_in(&uid),
        PrincipalConstraint::In(uid) => prin_in(&uid),
        PrincipalConstraint::IsIn(ty, uid) if ty == v.party => prin_in(&uid),
        _ => PrinKey::Any,
    };
    let res_in = |uid: &EntityUid| {
        if uid.type_name() == &v.resource {
            ResKey::Resource(uid.id().unescaped().to_owned())
        } else if uid.type_name() == &v.resource_type {
            ResKey::Type(uid.id().unescaped().to_owned())
        } else {
            ResKey::Any
        }
    };
    let res = match p.resource_constraint() {
        ResourceConstraint::Eq(uid) if uid.type_name() == &v.resource => res_in(&uid),
        ResourceConstraint::In(uid) => res_in(&uid),
        ResourceConstraint::IsIn(ty, uid) if ty == v.resource => res_in(&uid),
        _ => ResKey::Any,
    };
    (prin, res)
}

pub(crate) fn is_permit(effect: Effect) -> bool {
    effect == Effect::Permit
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn locate_counts_lines_and_characters() {
        let text = "ab\ncdé f\n";
        assert_eq!(locate(text, 0), (1, 1));
        assert_eq!(locate(text, 3), (2, 1));
        // `f` is after `é` (2 bytes): byte 8, character column 5
        assert_eq!(locate(text, 8), (2, 5));
        assert_eq!(locate(text, 999), (3, 1));
    }

    #[test]
    fn deep_nesting_is_refused_before_parsing() {
        let deep = format!(
            "permit(principal, action, resource) when {{ {}true{} }};",
            "(".repeat(100),
            ")".repeat(100)
        );
        let errs = parse_raw(&deep).unwrap_err();
        assert!(errs[0].message.contains("nested too deeply"), "{errs:?}");
        let nots = format!(
            "permit(principal, action, resource) when {{ {}true }};",
            "!".repeat(100)
        );
        assert!(parse_raw(&nots).is_err());
        // many shallow negations are fine
        let shallow = format!(
            "permit(principal, action, resource) when {{ {} }};",
            vec!["!false"; 60].join(" && ")
        );
        assert!(parse_raw(&shallow).is_ok());
        let minus = "permit(principal, action, resource) when { context.now > -1 && 1 - 1 == 0 - 0 && -(-(1)) == 1 };";
        assert!(parse_raw(minus).is_ok());
    }

    #[test]
    fn raw_text_keeps_statement_order() {
        let ps = parse_raw(
            "forbid(principal, action, resource) when { false };\npermit(principal, action, resource);",
        )
        .unwrap()
        .statements;
        assert_eq!(ps.len(), 2);
        assert_eq!(ps[0].effect(), Effect::Forbid);
        assert_eq!(ps[1].effect(), Effect::Permit);
    }
}

//! The one place that uses Cedar's experimental partial evaluation (`partial-eval`): making facts
//! unknown, evaluating a policy set with them, and reading the unknowns each residual policy still
//! depends on. Missing-claims analysis (UMA Grant §3.3.6 `need_info` / `required_claims`) is built
//! on this module only, so a change in the experimental API stays here.

use std::collections::{BTreeMap, BTreeSet};

use cedar_policy::{
    Authorizer, Effect, Entities, Policy, PolicyId, PolicySet, Request, RestrictedExpression,
};

use crate::lexer;

/// Unknown names. Claims are `claim:<name>`; the rest are fixed.
pub(crate) const PARTY_ISSUER: &str = "party:issuer";
pub(crate) const PARTY_SUBJECT: &str = "party:subject";
pub(crate) const PARTY_EMAIL: &str = "party:email";
pub(crate) const PARTY_EMAIL_VERIFIED: &str = "party:email_verified";
pub(crate) const CLAIM_TOKEN_ISSUER: &str = "context:claim_token_issuer";
const CLAIM_PREFIX: &str = "claim:";

pub(crate) fn unknown(name: &str) -> RestrictedExpression {
    RestrictedExpression::new_unknown(name)
}

pub(crate) fn claim_unknown(name: &str) -> String {
    format!("{CLAIM_PREFIX}{name}")
}

/// The claim name of a `claim:<name>` unknown.
pub(crate) fn claim_name(unknown: &str) -> Option<&str> {
    unknown.strip_prefix(CLAIM_PREFIX)
}

/// A permit that may still be satisfied, depending on unknowns.
#[derive(Debug, Clone, Default)]
pub(crate) struct Residual {
    /// The policy (internal id).
    pub policy: Option<PolicyId>,
    /// Every unknown the residual mentions.
    pub unknowns: BTreeSet<String>,
    /// String literals each unknown is compared with by `==` (for example the issuer a policy
    /// requires of `context:claim_token_issuer`).
    pub equals: BTreeMap<String, BTreeSet<String>>,
}

/// What partial evaluation of one policy set says.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// A forbid is satisfied or fails whatever the unknowns are: nothing can make this permit.
    pub blocked: bool,
    /// Permits satisfied whatever the unknowns are.
    pub satisfied_permits: Vec<PolicyId>,
    /// Permits that depend on unknowns.
    pub residual_permits: Vec<Residual>,
}

pub(crate) fn evaluate(
    authorizer: &Authorizer,
    request: &Request,
    set: &PolicySet,
    entities: &Entities,
) -> Outcome {
    let response = authorizer.is_authorized_partial(request, set, entities);
    let mut out = Outcome::default();
    for p in response.definitely_satisfied() {
        match p.effect() {
            Effect::Forbid => out.blocked = true,
            Effect::Permit => out.satisfied_permits.push(p.id().clone()),
        }
    }
    for id in response.definitely_errored() {
        if set.policy(id).is_some_and(|p| p.effect() == Effect::Forbid) {
            out.blocked = true;
        }
    }
    for p in response.nontrivial_residuals() {
        if p.effect() == Effect::Permit {
            out.residual_permits.push(read_residual(&p));
        }
    }
    out
}

/// Reads a residual from its Cedar text with the crate's iterative lexer (the residual's size is
/// bounded by the policy's, which validation bounds).
fn read_residual(p: &Policy) -> Residual {
    let mut r = Residual {
        policy: Some(p.id().clone()),
        ..Residual::default()
    };
    let text = p.to_string();
    for (name, literal) in lexer::unknowns(&lexer::tokens(&text)) {
        match literal {
            Some(lit) => {
                r.equals.entry(name).or_default().insert(lit);
            }
            None => {
                r.unknowns.insert(name);
            }
        }
    }
    r
}

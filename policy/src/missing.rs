//! Missing-claims analysis: when a request is denied, which claims could make some policy permit,
//! for UMA's `need_info` error with `required_claims` (UMA Grant §3.3.6).
//!
//! The party's absent facts — claims the policies read, its identity, its verified email, the
//! claim token's issuer — become unknowns and the applicable policies are partially evaluated
//! ([`crate::partial`]); each permit left as a residual names the unknowns it still needs. Shares
//! naming someone else (a subject, a verified email) are analysed as if the party were that person,
//! one representative per group of identical shares. The result over-approximates: it lists claims
//! that *could* help, and the decision after they arrive is `decide`'s.

use std::collections::BTreeSet;

use crate::entities::{self, ANONYMOUS, Fact, PrincipalView, party_facts};
use crate::model::{Party, RequestContext, RequiredClaim, ResourceInfo};
use crate::owner::{Bucket, OwnerPolicies};
use crate::partial::{self, Residual};
use crate::schema::{IDENTITY_CLAIMS, split_party_key};

fn required(name: &str, issuer: Option<String>) -> RequiredClaim {
    let friendly = match name {
        "sub" => Some("subject identifier"),
        "email" => Some("email address"),
        "email_verified" => Some("email verified"),
        _ => None,
    };
    RequiredClaim {
        name: name.to_owned(),
        issuer,
        friendly_name: friendly.map(str::to_owned),
    }
}

/// What partial evaluation of some buckets found.
#[derive(Default)]
struct Found {
    /// A forbid applies whatever the unknowns: nothing helps.
    blocked: bool,
    /// Some permit holds whatever the unknowns.
    satisfied: bool,
    /// Claims named by residual permits.
    claims: BTreeSet<RequiredClaim>,
    /// Whether any permit was left as a residual.
    residual: bool,
}

impl OwnerPolicies {
    /// When `decide` denies: the claims that could make some policy permit (partial evaluation
    /// with the party's absent claims and identity as unknowns). Empty = nothing would help (or
    /// the request is already permitted, or refused outright).
    ///
    /// Names follow UMA `required_claims`: `sub` with the issuer a subject share (or a policy's
    /// `principal.issuer`) names; `email` and `email_verified` for a verified-email share; a
    /// required claim's name with the issuer the policy requires of the claim token.
    pub fn missing_claims(
        &self,
        party: &Party,
        resource: &ResourceInfo,
        scope: &str,
        ctx: &RequestContext,
    ) -> Vec<RequiredClaim> {
        if self.refusal(resource, scope).is_some()
            || self.decide(party, resource, scope, ctx).permit
        {
            return Vec::new();
        }
        let facts = party_facts(party);
        let slices: Vec<_> = self.index.resource_slices(resource).collect();
        let own_id = facts.key.clone().unwrap_or_else(|| ANONYMOUS.to_owned());
        let identity = facts.identity.clone().map_or(Fact::Unknown, Fact::Known);
        let email = facts.email.clone().map_or(Fact::Unknown, Fact::Known);
        let any_buckets: Vec<&Bucket> = slices.iter().filter_map(|rb| rb.any.as_ref()).collect();
        let mut result = BTreeSet::new();

        // The party itself, with what it lacks unknown.
        let mut own: Vec<&Bucket> = any_buckets.clone();
        for rb in &slices {
            own.extend(rb.party.get(&own_id));
            own.extend(facts.email.as_ref().and_then(|e| rb.email.get(e)));
        }
        let found = self.analyse(
            party,
            resource,
            scope,
            ctx,
            (&own_id, &identity, &email),
            &own,
            &[],
        );
        if found.blocked {
            return Vec::new();
        }
        result.extend(found.claims);

        // Someone a subject share names, while the party is not identified.
        if facts.identity.is_none() {
            let vetoes: Vec<&Bucket> = any_buckets
                .iter()
                .copied()
                .chain(
                    slices
                        .iter()
                        .filter_map(|rb| facts.email.as_ref().and_then(|e| rb.email.get(e))),
                )
                .collect();
            for rb in &slices {
                for (issuer, key) in &rb.subject_groups {
                    let (Some(bucket), Some((iss, sub))) =
                        (rb.party.get(key), split_party_key(key))
                    else {
                        continue;
                    };
                    let who = Fact::Known((iss, sub));
                    let found = self.analyse(
                        party,
                        resource,
                        scope,
                        ctx,
                        (key, &who, &email),
                        &[bucket],
                        &vetoes,
                    );
                    if !found.blocked && (found.satisfied || found.residual) {
                        result.insert(required("sub", Some(issuer.clone())));
                        result.extend(found.claims);
                    }
                }
            }
        }

        // Someone an email share names, while the party has no verified email.
        if facts.email.is_none() {
            let vetoes: Vec<&Bucket> = any_buckets
                .iter()
                .copied()
                .chain(slices.iter().filter_map(|rb| rb.party.get(&own_id)))
                .collect();
            for rb in &slices {
                for address in &rb.email_groups {
                    let Some(bucket) = rb.email.get(address) else {
                        continue;
                    };
                    let verified = Fact::Known(address.clone());
                    let found = self.analyse(
                        party,
                        resource,
                        scope,
                        ctx,
                        (&own_id, &identity, &verified),
                        &[bucket],
                        &vetoes,
                    );
                    if !found.blocked && (found.satisfied || found.residual) {
                        result.insert(required("email", None));
                        result.insert(required("email_verified", None));
                        result.extend(found.claims);
                    }
                }
            }
        }
        result.into_iter().collect()
    }

    /// Partially evaluates `targets` (whose permits count) and `vetoes` (whose forbids count) for
    /// a principal `who` = (entity id, identity, verified email), with the party's claims, the
    /// claims those policies read that the party lacks as unknowns, and the claim token's issuer
    /// unknown (new claims come in a new claim token).
    #[allow(clippy::too_many_arguments)]
    fn analyse(
        &self,
        party: &Party,
        resource: &ResourceInfo,
        scope: &str,
        ctx: &RequestContext,
        who: (&str, &Fact<(String, String)>, &Fact<String>),
        targets: &[&Bucket],
        vetoes: &[&Bucket],
    ) -> Found {
        let mut found = Found::default();
        if targets.is_empty() {
            return found;
        }
        let unknown_claims: BTreeSet<&str> = targets
            .iter()
            .chain(vetoes)
            .flat_map(|b| b.claims.iter().map(String::as_str))
            .filter(|name| !party.claims.contains_key(*name) && !IDENTITY_CLAIMS.contains(name))
            .collect();
        let view = PrincipalView {
            id: who.0.to_owned(),
            identity: who.1.clone(),
            email: who.2.clone(),
            claims: &party.claims,
            unknown_claims: unknown_claims.into_iter().collect(),
        };
        let Ok(req) = entities::context(&self.vocab, ctx, Fact::Unknown)
            .and_then(|c| entities::request(&self.vocab, &view, resource, scope, c))
        else {
            return found;
        };
        for b in vetoes {
            if partial::evaluate(&self.authorizer, &req.request, &b.set, &req.entities).blocked {
                found.blocked = true;
                return found;
            }
        }
        for b in targets {
            let outcome = partial::evaluate(&self.authorizer, &req.request, &b.set, &req.entities);
            if outcome.blocked {
                found.blocked = true;
                return found;
            }
            found.satisfied |= !outcome.satisfied_permits.is_empty();
            for r in &outcome.residual_permits {
                found.residual = true;
                found.claims.extend(self.claims_of(r));
            }
        }
        found
    }

    /// The required claims a residual permit names.
    fn claims_of(&self, r: &Residual) -> Vec<RequiredClaim> {
        let token_issuers: Vec<Option<String>> = match r.equals.get(partial::CLAIM_TOKEN_ISSUER) {
            Some(set) if !set.is_empty() => set.iter().cloned().map(Some).collect(),
            _ => vec![None],
        };
        let mut out = Vec::new();
        let mut named_claim = false;
        for u in &r.unknowns {
            if let Some(name) = partial::claim_name(u) {
                named_claim = true;
                out.extend(token_issuers.iter().map(|i| required(name, i.clone())));
            }
        }
        if r.unknowns.contains(partial::PARTY_SUBJECT) || r.unknowns.contains(partial::PARTY_ISSUER)
        {
            match r.equals.get(partial::PARTY_ISSUER) {
                Some(set) if !set.is_empty() => {
                    out.extend(set.iter().map(|i| required("sub", Some(i.clone()))));
                }
                _ => out.push(required("sub", None)),
            }
        }
        if r.unknowns.contains(partial::PARTY_EMAIL)
            || r.unknowns.contains(partial::PARTY_EMAIL_VERIFIED)
        {
            out.push(required("email", None));
            out.push(required("email_verified", None));
        }
        // Only the claim token's issuer is in question: the party has the claims the policy reads,
        // but not from the issuer it requires.
        if !named_claim && r.unknowns.contains(partial::CLAIM_TOKEN_ISSUER) {
            let claims = r
                .policy
                .as_ref()
                .and_then(|id| self.compiled_of(id))
                .map(|c| c.claims.clone())
                .unwrap_or_default();
            for name in claims.iter() {
                out.extend(token_issuers.iter().map(|i| required(name, i.clone())));
            }
        }
        out
    }
}

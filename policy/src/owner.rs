//! One owner's compiled policies, indexed by their principal and resource scope constraints, and
//! the decision for one (resource, scope) (UMA Grant §3.3.4). Cedar evaluates every policy of the
//! set it is given, so each request evaluates only the few cached per-bucket policy sets that can
//! apply to its resource and party; see the crate docs for the index.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use cedar_policy::{Authorizer, Effect, EntityUid, Policy, PolicyId, PolicySet, Template};

use crate::compile::{
    PrinKey, ResKey, is_permit, link_slots, on_big_stack, parse_raw, share_claims, share_link,
    static_keys, template_from_json,
};
use crate::entities::{self, Fact, PrincipalView, party_facts};
use crate::model::{
    Decision, Diagnostic, Party, PersonSelector, PolicySource, RequestContext, ResourceInfo,
    StoredPolicy,
};
use crate::schema::{Vocab, split_party_key};

/// How a compiled policy is put in a policy set.
enum Body {
    Static(Policy),
    Linked {
        template: usize,
        /// `None` for a share with whoever holds a claim (no principal slot).
        principal: Option<EntityUid>,
        resource: EntityUid,
    },
}

/// What is known about one compiled policy (a share, or one statement of raw Cedar).
pub(crate) struct Compiled {
    /// Index into `OwnerPolicies::stored_ids`.
    pub stored: usize,
    pub effect: Effect,
    /// The claim names the policy reads from the party.
    pub claims: Arc<BTreeSet<String>>,
    /// Policies with equal signatures have equal bodies apart from their scope constraints.
    pub signature: Signature,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Signature {
    Template(usize),
    Unique(usize),
}

/// One cached policy set: the policies with one (resource key, principal key).
pub(crate) struct Bucket {
    pub set: PolicySet,
    /// The claim names its policies read from the party.
    pub claims: BTreeSet<String>,
}

/// The buckets of one resource key, by principal key, plus representatives for missing-claims
/// analysis: one party key per (issuer, bucket signature) and one email per bucket signature.
#[derive(Default)]
pub(crate) struct ResBuckets {
    pub any: Option<Bucket>,
    pub party: HashMap<String, Bucket>,
    pub email: HashMap<String, Bucket>,
    pub subject_groups: Vec<(String, String)>,
    pub email_groups: Vec<String>,
}

#[derive(Default)]
pub(crate) struct Index {
    pub any: ResBuckets,
    pub by_resource: HashMap<String, ResBuckets>,
    pub by_type: HashMap<String, ResBuckets>,
}

impl Index {
    /// The resource keys that apply to `resource`.
    pub(crate) fn resource_slices<'a>(
        &'a self,
        resource: &ResourceInfo,
    ) -> impl Iterator<Item = &'a ResBuckets> {
        [
            Some(&self.any),
            self.by_resource.get(&resource.id),
            resource
                .resource_type
                .as_ref()
                .and_then(|t| self.by_type.get(t)),
        ]
        .into_iter()
        .flatten()
    }
}

/// One owner's compiled policies, indexed. Build once per owner and cache (the server caches it).
pub struct OwnerPolicies {
    pub(crate) owner: String,
    pub(crate) vocab: Vocab,
    pub(crate) authorizer: Authorizer,
    pub(crate) stored_ids: Vec<String>,
    pub(crate) compiled: Vec<Compiled>,
    pub(crate) index: Index,
}

impl std::fmt::Debug for OwnerPolicies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnerPolicies")
            .field("owner", &self.owner)
            .field("policies", &self.stored_ids.len())
            .field("compiled", &self.compiled.len())
            .finish_non_exhaustive()
    }
}

fn internal_id(n: usize) -> PolicyId {
    PolicyId::new(format!("c{n}"))
}

fn template_id(n: usize) -> PolicyId {
    PolicyId::new(format!("t{n}"))
}

struct TemplateEntry {
    template: Template,
    claims: Arc<BTreeSet<String>>,
}

impl OwnerPolicies {
    /// Compiles and indexes `owner`'s policies. Fails, naming each policy and what is wrong with
    /// it, if any policy does not compile or two share an id: a policy left out could be a forbid.
    /// (Schema validation is [`crate::validate`]'s job, before a policy is saved.)
    pub fn build(
        owner: &str,
        policies: &[StoredPolicy],
    ) -> Result<OwnerPolicies, Vec<(String, Diagnostic)>> {
        on_big_stack(|| Self::build_here(owner, policies)).unwrap_or_else(|| {
            Err(vec![(
                String::new(),
                Diagnostic::error("internal error: the policies could not be compiled"),
            )])
        })
    }

    fn build_here(
        owner: &str,
        policies: &[StoredPolicy],
    ) -> Result<OwnerPolicies, Vec<(String, Diagnostic)>> {
        let vocab = Vocab::new().map_err(|e| vec![(String::new(), Diagnostic::error(e))])?;
        let mut errors: Vec<(String, Diagnostic)> = Vec::new();
        let mut seen = HashSet::new();
        let mut templates: Vec<TemplateEntry> = Vec::new();
        let mut by_shape: HashMap<String, usize> = HashMap::new();
        let mut compiled: Vec<Compiled> = Vec::new();
        let mut bodies: Vec<(Body, PrinKey, ResKey)> = Vec::new();
        for (stored, sp) in policies.iter().enumerate() {
            if !seen.insert(sp.id.as_str()) {
                errors.push((
                    sp.id.clone(),
                    Diagnostic::error(format!("policy id `{}` is used twice", sp.id)),
                ));
                continue;
            }
            match &sp.source {
                PolicySource::Share(t) => {
                    // Without its issuer a claim share would hold for a claim from any provider
                    // (validation refuses it; a stored one is refused here too).
                    if let PersonSelector::Claim(c) = &t.with
                        && c.issuer.is_none()
                    {
                        errors.push((
                            sp.id.clone(),
                            Diagnostic::error(format!(
                                "a share with whoever holds claim `{}` must name the claim's issuer",
                                c.name
                            )),
                        ));
                        continue;
                    }
                    let link = share_link(&vocab, t);
                    let shape = link.template.to_string();
                    let ti = match by_shape.get(&shape) {
                        Some(ti) => *ti,
                        None => {
                            let ti = templates.len();
                            let claims = Arc::new(share_claims(t));
                            match template_from_json(template_id(ti).as_ref(), link.template) {
                                Ok(template) => {
                                    templates.push(TemplateEntry { template, claims });
                                    by_shape.insert(shape, ti);
                                    ti
                                }
                                Err(e) => {
                                    errors.push((sp.id.clone(), Diagnostic::error(e)));
                                    continue;
                                }
                            }
                        }
                    };
                    compiled.push(Compiled {
                        stored,
                        effect: Effect::Permit,
                        claims: templates
                            .get(ti)
                            .map(|t| t.claims.clone())
                            .unwrap_or_default(),
                        signature: Signature::Template(ti),
                    });
                    bodies.push((
                        Body::Linked {
                            template: ti,
                            principal: link.principal,
                            resource: link.resource,
                        },
                        link.prin_key,
                        link.res_key,
                    ));
                }
                PolicySource::Cedar(text) => match parse_raw(text) {
                    Ok(raw) => {
                        let claims = Arc::new(raw.claims);
                        for p in raw.statements {
                            let n = compiled.len();
                            let p = p.new_id(internal_id(n));
                            let (prin, res) = static_keys(&vocab, &p);
                            compiled.push(Compiled {
                                stored,
                                effect: p.effect(),
                                claims: claims.clone(),
                                signature: Signature::Unique(n),
                            });
                            bodies.push((Body::Static(p), prin, res));
                        }
                    }
                    Err(ds) => errors.extend(ds.into_iter().map(|d| (sp.id.clone(), d))),
                },
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }

        // Group by (resource key, principal key), then build each bucket's policy set.
        let mut groups: BTreeMap<(ResKey, PrinKey), Vec<usize>> = BTreeMap::new();
        for (n, (_, prin, res)) in bodies.iter().enumerate() {
            groups
                .entry((res.clone(), prin.clone()))
                .or_default()
                .push(n);
        }
        let mut index = Index::default();
        let fail = |n: usize, e: String| {
            let stored = compiled
                .get(n)
                .and_then(|c| policies.get(c.stored))
                .map(|p| p.id.clone())
                .unwrap_or_default();
            vec![(stored, Diagnostic::error(format!("internal error: {e}")))]
        };
        for ((res, prin), members) in groups {
            let mut set = PolicySet::new();
            let mut claims = BTreeSet::new();
            let mut added_templates = HashSet::new();
            for &n in &members {
                if let Some(c) = compiled.get(n) {
                    claims.extend(c.claims.iter().cloned());
                }
                let Some((body, _, _)) = bodies.get(n) else {
                    continue;
                };
                match body {
                    Body::Static(p) => set.add(p.clone()).map_err(|e| fail(n, e.to_string()))?,
                    Body::Linked {
                        template,
                        principal,
                        resource,
                    } => {
                        if added_templates.insert(*template)
                            && let Some(t) = templates.get(*template)
                        {
                            set.add_template(t.template.clone())
                                .map_err(|e| fail(n, e.to_string()))?;
                        }
                        set.link(
                            template_id(*template),
                            internal_id(n),
                            link_slots(principal.as_ref(), resource),
                        )
                        .map_err(|e| fail(n, e.to_string()))?;
                    }
                }
            }
            let rb = match res {
                ResKey::Any => &mut index.any,
                ResKey::Resource(id) => index.by_resource.entry(id).or_default(),
                ResKey::Type(t) => index.by_type.entry(t).or_default(),
            };
            let bucket = Bucket { set, claims };
            match prin {
                PrinKey::Any => rb.any = Some(bucket),
                PrinKey::Party(k) => {
                    rb.party.insert(k, bucket);
                }
                PrinKey::Email(e) => {
                    rb.email.insert(e, bucket);
                }
            }
        }

        let mut owner_policies = OwnerPolicies {
            owner: owner.to_owned(),
            vocab,
            authorizer: Authorizer::new(),
            stored_ids: policies.iter().map(|p| p.id.clone()).collect(),
            compiled,
            index,
        };
        owner_policies.group_representatives();
        Ok(owner_policies)
    }

    /// Picks, per resource key, one party key per (issuer, bucket signature) and one email per
    /// bucket signature: buckets with equal signatures differ only in whom they name, so
    /// missing-claims analysis evaluates one of each instead of every share.
    fn group_representatives(&mut self) {
        let compiled = &self.compiled;
        let signature = |b: &Bucket| -> Vec<Signature> {
            let mut s: Vec<Signature> = b
                .set
                .policies()
                .filter_map(|p| parse_internal(p.id()))
                .filter_map(|n| compiled.get(n).map(|c| c.signature))
                .collect();
            s.sort();
            s
        };
        let all = std::iter::once(&mut self.index.any)
            .chain(self.index.by_resource.values_mut())
            .chain(self.index.by_type.values_mut());
        for rb in all {
            let mut subjects: BTreeMap<(String, Vec<Signature>), String> = BTreeMap::new();
            for (key, b) in &rb.party {
                if let Some((issuer, _)) = split_party_key(key) {
                    subjects
                        .entry((issuer, signature(b)))
                        .or_insert_with(|| key.clone());
                }
            }
            rb.subject_groups = subjects
                .into_iter()
                .map(|((issuer, _), key)| (issuer, key))
                .collect();
            let mut emails: BTreeMap<Vec<Signature>, String> = BTreeMap::new();
            for (email, b) in &rb.email {
                emails.entry(signature(b)).or_insert_with(|| email.clone());
            }
            rb.email_groups = emails.into_values().collect();
        }
    }

    /// The owner these policies belong to.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The number of stored policies.
    pub fn len(&self) -> usize {
        self.stored_ids.len()
    }

    /// Whether the owner has no policy (every decision is then the default deny).
    pub fn is_empty(&self) -> bool {
        self.stored_ids.is_empty()
    }

    pub(crate) fn compiled_of(&self, id: &PolicyId) -> Option<&Compiled> {
        parse_internal(id).and_then(|n| self.compiled.get(n))
    }

    pub(crate) fn stored_id(&self, c: &Compiled) -> String {
        self.stored_ids.get(c.stored).cloned().unwrap_or_default()
    }

    /// The structural guard shared by `decide` and `missing_claims`: only the owner's resources,
    /// only the resource's own scopes.
    pub(crate) fn refusal(&self, resource: &ResourceInfo, scope: &str) -> Option<String> {
        if resource.owner != self.owner {
            return Some(format!(
                "resource `{}` belongs to another owner",
                resource.id
            ));
        }
        if !resource.scopes.iter().any(|s| s == scope) {
            return Some(format!(
                "scope `{scope}` is not a scope of resource `{}`",
                resource.id
            ));
        }
        None
    }

    /// Decide one (resource, scope). Default deny; evaluation errors deny (and are reported).
    ///
    /// A resource of another owner, or a scope the resource does not have, is denied before any
    /// policy is evaluated. Forbids override permits. If any policy that applies fails to
    /// evaluate, the decision is deny (an erroring forbid must not let a permit through).
    pub fn decide(
        &self,
        party: &Party,
        resource: &ResourceInfo,
        scope: &str,
        ctx: &RequestContext,
    ) -> Decision {
        if let Some(why) = self.refusal(resource, scope) {
            return Decision::deny_with(why);
        }
        let facts = party_facts(party);
        let view = PrincipalView::concrete(party, &facts);
        let cti = ctx
            .claim_token_issuer
            .as_deref()
            .map_or(Fact::Absent, Fact::Known);
        let req = match entities::context(&self.vocab, ctx, cti)
            .and_then(|c| entities::request(&self.vocab, &view, resource, scope, c))
        {
            Ok(r) => r,
            Err(e) => return Decision::deny_with(e),
        };
        let mut permits = BTreeSet::new();
        let mut forbids = BTreeSet::new();
        let mut errored = BTreeSet::new();
        let mut errors = Vec::new();
        for rb in self.index.resource_slices(resource) {
            let buckets = [
                rb.any.as_ref(),
                rb.party.get(&view.id),
                facts.email.as_ref().and_then(|e| rb.email.get(e)),
            ];
            for bucket in buckets.into_iter().flatten() {
                let response =
                    self.authorizer
                        .is_authorized(&req.request, &bucket.set, &req.entities);
                for id in response.diagnostics().reason() {
                    if let Some(c) = self.compiled_of(id) {
                        if is_permit(c.effect) {
                            permits.insert(self.stored_id(c));
                        } else {
                            forbids.insert(self.stored_id(c));
                        }
                    }
                }
                for e in response.diagnostics().errors() {
                    let cedar_policy::AuthorizationError::PolicyEvaluationError(e) = e;
                    let stored = self
                        .compiled_of(e.policy_id())
                        .map(|c| self.stored_id(c))
                        .unwrap_or_default();
                    errors.push(format!("policy `{stored}`: {}", e.inner()));
                    errored.insert(stored);
                }
            }
        }
        if !forbids.is_empty() {
            Decision {
                permit: false,
                policies: forbids.into_iter().collect(),
                errors,
            }
        } else if !errors.is_empty() {
            Decision {
                permit: false,
                policies: errored.into_iter().collect(),
                errors,
            }
        } else {
            Decision {
                permit: !permits.is_empty(),
                policies: permits.into_iter().collect(),
                errors,
            }
        }
    }
}

pub(crate) fn parse_internal(id: &PolicyId) -> Option<usize> {
    let s: &str = id.as_ref();
    s.strip_prefix('c')?.parse().ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::collections::BTreeMap;

    use cedar_policy::Decision as CedarDecision;
    use proptest::prelude::*;

    use super::*;
    use crate::model::{
        ClaimRequirement, ClaimValue, PersonSelector, ResourceSelector, ShareTemplate,
    };

    impl OwnerPolicies {
        /// Every compiled policy in one set, the way Cedar would see it without the index.
        fn unindexed(&self) -> PolicySet {
            let all = std::iter::once(&self.index.any)
                .chain(self.index.by_resource.values())
                .chain(self.index.by_type.values());
            let mut set = PolicySet::new();
            let mut templates = HashSet::new();
            for rb in all {
                let buckets = rb
                    .any
                    .iter()
                    .chain(rb.party.values())
                    .chain(rb.email.values());
                for b in buckets {
                    for t in b.set.templates() {
                        if templates.insert(t.id().clone()) {
                            set.add_template(t.clone()).unwrap();
                        }
                    }
                    for p in b.set.policies() {
                        match (p.template_id(), p.template_links()) {
                            (Some(t), Some(links)) => {
                                set.link(t.clone(), p.id().clone(), links).unwrap();
                            }
                            _ => set.add(p.clone()).unwrap(),
                        }
                    }
                }
            }
            set
        }

        /// The decision without the index: one Cedar call over every policy.
        fn decide_unindexed(
            &self,
            party: &Party,
            resource: &ResourceInfo,
            scope: &str,
            ctx: &RequestContext,
        ) -> (bool, Vec<String>) {
            let facts = party_facts(party);
            let view = PrincipalView::concrete(party, &facts);
            let cti = ctx
                .claim_token_issuer
                .as_deref()
                .map_or(Fact::Absent, Fact::Known);
            let c = entities::context(&self.vocab, ctx, cti).unwrap();
            let req = entities::request(&self.vocab, &view, resource, scope, c).unwrap();
            let r = self
                .authorizer
                .is_authorized(&req.request, &self.unindexed(), &req.entities);
            let mut ids: Vec<String> = r
                .diagnostics()
                .reason()
                .filter_map(|id| self.compiled_of(id).map(|c| self.stored_id(c)))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            let errored = r.diagnostics().errors().next().is_some();
            if errored {
                ids.clear();
            }
            (r.decision() == CedarDecision::Allow && !errored, ids)
        }
    }

    const PEOPLE: [(&str, &str); 3] = [
        ("https://a", "p1"),
        ("https://a", "p2"),
        ("https://b", "p1"),
    ];
    const EMAILS: [&str; 2] = ["x@e.org", "y@e.org"];
    const RESOURCES: [(&str, &str); 3] = [("r1", "T"), ("r2", "T"), ("r3", "U")];

    fn resource(i: usize) -> ResourceInfo {
        let (id, ty) = RESOURCES[i % RESOURCES.len()];
        ResourceInfo {
            id: id.into(),
            owner: "o".into(),
            resource_server: "rs".into(),
            resource_type: Some(ty.into()),
            name: None,
            scopes: vec!["read".into(), "write".into()],
        }
    }

    fn policy() -> impl Strategy<Value = PolicySource> {
        let share = (
            0..6usize,
            0..5usize,
            0..4usize,
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(who, what, scopes, until, claim)| {
                let with = if who < 3 {
                    let (issuer, subject) = PEOPLE[who];
                    PersonSelector::Subject {
                        issuer: issuer.into(),
                        subject: subject.into(),
                    }
                } else if who < 5 {
                    PersonSelector::VerifiedEmail(EMAILS[who - 3].into())
                } else {
                    PersonSelector::Claim(ClaimRequirement {
                        name: "role".into(),
                        value: "doctor".into(),
                        issuer: Some("https://a".into()),
                    })
                };
                let resource = match what {
                    0..3 => ResourceSelector::Resource(RESOURCES[what].0.into()),
                    3 => ResourceSelector::Type("T".into()),
                    _ => ResourceSelector::Type("U".into()),
                };
                let scopes = match scopes {
                    0 => vec!["read"],
                    1 => vec!["write"],
                    _ => vec!["read", "write"],
                };
                PolicySource::Share(ShareTemplate {
                    resource,
                    with,
                    scopes: scopes.into_iter().map(str::to_owned).collect(),
                    until: until.then_some(100),
                    require_claim: claim.then(|| ClaimRequirement {
                        name: "role".into(),
                        value: "doctor".into(),
                        issuer: Some("https://a".into()),
                    }),
                })
            });
        let raw = prop_oneof![
            Just("permit(principal, action, resource);"),
            Just("forbid(principal, action == Uma::Action::\"write\", resource);"),
            Just("forbid(principal == Uma::Party::\"https://a#p1\", action, resource);"),
            Just("permit(principal in Uma::Email::\"y@e.org\", action, resource in Uma::ResourceType::\"U\");"),
            Just("forbid(principal is Uma::Party in Uma::Email::\"x@e.org\", action, resource is Uma::Resource in Uma::Resource::\"r2\");"),
            Just("permit(principal == Uma::Party::\"anonymous\", action, resource == Uma::Resource::\"r3\");"),
            Just("forbid(principal, action, resource in Uma::ResourceType::\"T\") when { context.now > 150 };"),
            Just("permit(principal, action, resource) when { principal has subject && principal.subject == \"p2\" };"),
            Just("permit(principal, action, resource) when { principal.hasTag(\"role\") };"),
            Just("forbid(principal == Uma::Email::\"x@e.org\", action, resource == Uma::ResourceType::\"T\");"),
        ]
        .prop_map(|t| PolicySource::Cedar(t.to_owned()));
        prop_oneof![3 => share, 1 => raw]
    }

    fn party() -> impl Strategy<Value = Party> {
        (0..4usize, 0..3usize, any::<bool>(), any::<bool>()).prop_map(
            |(who, mail, verified, role)| {
                let (issuer, subject) = PEOPLE.get(who).map_or((None, None), |(i, s)| {
                    (Some((*i).to_owned()), Some((*s).to_owned()))
                });
                let mut claims = BTreeMap::new();
                if role {
                    claims.insert("role".to_owned(), ClaimValue::String("doctor".into()));
                }
                Party {
                    issuer,
                    subject,
                    email: EMAILS.get(mail).map(|e| (*e).to_owned()),
                    email_verified: verified,
                    claims,
                }
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, .. ProptestConfig::default() })]

        /// The index never changes a decision: deciding over the few buckets that can apply gives
        /// the same decision and deciding policies as one Cedar call over every policy.
        #[test]
        fn the_index_never_changes_a_decision(
            sources in prop::collection::vec(policy(), 0..12),
            requests in prop::collection::vec((party(), 0..3usize, any::<bool>(), 0..3i64, any::<bool>()), 1..8),
        ) {
            let stored: Vec<StoredPolicy> = sources
                .into_iter()
                .enumerate()
                .map(|(i, source)| StoredPolicy { id: format!("s{i}"), source })
                .collect();
            let owner = OwnerPolicies::build("o", &stored).unwrap();
            for (party, r, write, t, from_a) in requests {
                let resource = resource(r);
                let scope = if write { "write" } else { "read" };
                let ctx = RequestContext {
                    now: t * 100,
                    client_id: "c".into(),
                    claim_token_issuer: from_a.then(|| "https://a".to_owned()),
                    sender_constrained: false,
                };
                let d = owner.decide(&party, &resource, scope, &ctx);
                let (permit, ids) = owner.decide_unindexed(&party, &resource, scope, &ctx);
                prop_assert_eq!(d.permit, permit, "{:?} {:?} {:?}", party, resource.id, d);
                if d.errors.is_empty() {
                    prop_assert_eq!(&d.policies, &ids);
                }
            }
        }
    }
}

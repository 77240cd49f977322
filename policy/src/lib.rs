//! `custodia-policy`: resource-owner policies in Cedar — schema, sharing templates, validation,
//! evaluation and missing-claims analysis for UMA 2.0 Grant §3.3 decisions. A pure library: no
//! HTTP, no SQL, no clock (time comes in [`RequestContext::now`]).
//!
//! **API boundary.** This is the only crate that imports `cedar_policy` (an architecture
//! invariant); nothing Cedar-typed is public. The server stores [`PolicySource`] as JSON, calls
//! [`validate`] before saving, caches one [`OwnerPolicies`] per owner, and calls
//! [`OwnerPolicies::decide`] for each requested (resource, scope) and
//! [`OwnerPolicies::missing_claims`] to answer `need_info`.
//!
//! ```
//! use custodia_policy::*;
//!
//! # fn main() -> Result<(), String> {
//! let obs = ResourceInfo {
//!     id: "obs-1".into(), owner: "alice".into(), resource_server: "fhir".into(),
//!     resource_type: Some("Observation".into()), name: None, scopes: vec!["read".into()],
//! };
//! let source: PolicySource = serde_json::from_str(r#"{"kind":"share",
//!     "resource":{"type":"Observation"},
//!     "with":{"subject":{"issuer":"https://idp.example","subject":"bob"}},
//!     "scopes":["read"]}"#).map_err(|e| e.to_string())?;
//! assert!(validate("alice", &source, &[obs.clone()], 1_800_000_000).is_ok());
//!
//! let policies = OwnerPolicies::build("alice", &[StoredPolicy { id: "p1".into(), source }])
//!     .map_err(|e| format!("{e:?}"))?;
//! let ctx = RequestContext { now: 1_800_000_000, client_id: "app".into(),
//!     claim_token_issuer: None, sender_constrained: false };
//! let bob = Party { issuer: Some("https://idp.example".into()), subject: Some("bob".into()),
//!     ..Party::default() };
//! assert!(policies.decide(&bob, &obs, "read", &ctx).permit);
//!
//! // not identified yet: need_info with required_claims
//! let missing = policies.missing_claims(&Party::default(), &obs, "read", &ctx);
//! assert_eq!(missing[0].name, "sub");
//! assert_eq!(missing[0].issuer.as_deref(), Some("https://idp.example"));
//! # Ok(())
//! # }
//! ```
//!
//! # Schema (namespace `Uma`; [`schema_text`] prints it for an owner)
//! - `Party` (the principal, requesting party) `in [Email]`, attributes `issuer?`, `subject?`,
//!   `email?` (present only when verified), `email_verified`; its other claims are **tags** of
//!   type `Set<String>` (`principal.hasTag("role") && principal.getTag("role").contains("nurse")`),
//!   because claim names are open-ended and Cedar records are closed (a claim's value is a set:
//!   a string, `"true"`/`"false"`, a decimal integer, or the strings of a multi-valued claim).
//!   Its entity id is `<issuer>#<subject>` (`%` and `#` in the issuer percent-encoded, so ids are
//!   injective), or `anonymous` before the party is identified. A party with a verified email is
//!   a member of `Email::"<address>"` (domain lower-cased, RFC 5321 §2.4).
//! - `Resource` `in [ResourceType]`, attributes `owner: Owner`, `resource_server`, `type?`,
//!   `name?`; `Owner` and `Client` are attribute-less entities.
//! - One action `Action::"<scope>"` per scope of the owner's resources.
//! - `context`: `now` (Long, epoch seconds), `client: Client`, `claim_token_issuer?`,
//!   `sender_constrained`.
//!
//! # Shares are template-linked policies
//! A [`ShareTemplate`] compiles to `permit(principal in ?principal, action in [scopes…],
//! resource in ?resource) when { … }` built in Cedar's JSON format (owner input is never spliced
//! into Cedar text). `?principal` is a `Party` (subject shares) or an `Email` group (verified-email
//! shares, whose body also requires `principal.email_verified`); a share with whoever holds a claim
//! ([`PersonSelector::Claim`], for roles such as a hospital's emergency clinicians) has no principal
//! slot — `principal` is unconstrained and the body tests the claim and its issuer, which such a
//! share must name; `?resource` is a `Resource` or a `ResourceType`. The body holds `context.now < until` and the claim requirement. One template per
//! distinct (person kind, scopes, until, claim) shape; every share of that shape links to it.
//!
//! # Claim issuers
//! A party's [`Party::claims`] are all attested by the claim token whose issuer is
//! [`RequestContext::claim_token_issuer`]. A claim requirement with an issuer compiles to
//! `context has claim_token_issuer && context.claim_token_issuer == "<issuer>"`: it holds only when
//! the claims came from that issuer. The server must not merge claims from several issuers into one
//! `Party` (or must pass `claim_token_issuer: None`, which fails every issuer requirement).
//!
//! # Security invariants
//! - A decision on a resource whose `owner` is not this [`OwnerPolicies`]' owner, or for a scope
//!   the resource does not have, is deny before any Cedar evaluation — even
//!   `permit(principal, action, resource);` grants only the owner's own resources.
//! - Default deny; a satisfied forbid overrides permits; any evaluation error in the applicable
//!   policies denies (a failing forbid must not let a permit through).
//! - Unverified emails are not attributes and give no `Email` membership.
//!
//! # Index
//! Cedar evaluates every policy of a set (~1.5 µs each), so policies are bucketed by their scope
//! constraints: resource key (a resource id, a resource type, or any) × principal key (a party id,
//! a verified email, or any); a constraint the index cannot narrow goes to "any", which is always
//! evaluated. Each bucket is a cached `PolicySet`; a decision evaluates at most nine buckets
//! (usually one to three), each holding only the policies that name this resource (or its type)
//! and this party (or its email). A property test checks that the index never changes a
//! decision against one Cedar call over every policy.
//!
//! # Untrusted Cedar text
//! Owners' raw Cedar is bounded before Cedar parses it (32 KiB, 32 levels of brackets, 256
//! operator characters and keywords), so the expression tree stays shallow. Cedar's parser and
//! printers recurse without a guard and its type checker silently skips what it cannot reach, so
//! [`validate`] and [`OwnerPolicies::build`] run on a scoped thread with a 64 MiB stack (a panic
//! inside Cedar is contained there too). Decisions run on the caller's thread: Cedar's evaluator
//! checks its stack and reports "recursion limit reached", which denies. (In debug builds its
//! frames are large enough that a few dozen nested operators reach that limit on a 2 MiB stack.)
//! The crate's own scans of Cedar text (claims read, residuals) use an iterative lexer.
//!
//! # Missing claims
//! [`OwnerPolicies::missing_claims`] partially evaluates (Cedar's experimental `partial-eval`,
//! wrapped in the private `partial` module) with the party's absent facts as unknowns and reads
//! the unknowns left in each residual permit: `claim:<name>` → that claim, with the issuer the
//! residual compares `context.claim_token_issuer` with; `party:subject`/`party:issuer` → `sub` with
//! the issuer compared; `party:email*` → `email` and `email_verified`. Shares naming someone else
//! are analysed as that person (`sub` with the share's issuer, or `email` + `email_verified`), one
//! representative per group of identical shares, so a resource shared with 10,000 people costs a
//! few partial evaluations. The result over-approximates (it lists claims that could help); the
//! decision once they arrive is `decide`'s.

mod compile;
mod entities;
mod lexer;
mod missing;
mod model;
mod owner;
mod partial;
mod schema;
mod validate;

pub use model::{
    ClaimRequirement, ClaimValue, Decision, Diagnostic, Party, PersonSelector, PolicySource,
    RequestContext, RequiredClaim, ResourceInfo, ResourceSelector, Severity, ShareTemplate,
    StoredPolicy, Validation,
};
pub use owner::OwnerPolicies;
pub use schema::schema_text;
pub use validate::validate;

//! Data-driven decision tests: `policies, party, resource, scope, context → decision, deciding
//! policies, missing claims` (UMA Grant §3.3.4 authorization assessment, §3.3.6 `need_info`
//! `required_claims`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use custodia_policy::{ClaimValue, OwnerPolicies, Party, RequestContext, StoredPolicy};

struct Case {
    name: &'static str,
    policies: Vec<StoredPolicy>,
    party: Party,
    resource: &'static str,
    scope: &'static str,
    ctx: RequestContext,
    permit: bool,
    deciding: &'static [&'static str],
    missing: &'static [(&'static str, Option<&'static str>)],
    errors: bool,
}

fn case(name: &'static str, policies: Vec<StoredPolicy>, party: Party) -> Case {
    Case {
        name,
        policies,
        party,
        resource: "obs1",
        scope: "read",
        ctx: ctx(),
        permit: false,
        deciding: &[],
        missing: &[],
        errors: false,
    }
}

impl Case {
    fn on(mut self, resource: &'static str, scope: &'static str) -> Self {
        self.resource = resource;
        self.scope = scope;
        self
    }
    fn ctx(mut self, ctx: RequestContext) -> Self {
        self.ctx = ctx;
        self
    }
    fn permits(mut self, deciding: &'static [&'static str]) -> Self {
        self.permit = true;
        self.deciding = deciding;
        self
    }
    fn denies(mut self, deciding: &'static [&'static str]) -> Self {
        self.permit = false;
        self.deciding = deciding;
        self
    }
    fn missing(mut self, m: &'static [(&'static str, Option<&'static str>)]) -> Self {
        self.missing = m;
        self
    }
    fn with_errors(mut self) -> Self {
        self.errors = true;
        self
    }
}

fn bob() -> Party {
    person(IDP, "bob")
}

fn bob_share(scopes: &[&str]) -> StoredPolicy {
    stored_share("share-bob", share(res("obs1"), subject(IDP, "bob"), scopes))
}

fn doctor_share(issuer: Option<&str>) -> StoredPolicy {
    stored_share(
        "share-doctors",
        requiring(
            share(
                of_type("Observation"),
                email("carol@clinic.example"),
                &["read"],
            ),
            "role",
            "doctor",
            issuer,
        ),
    )
}

/// HEART-FHIR-07: the owner's break-the-glass share — emergency clinicians of the hospital's
/// provider may read Observations with `btg`.
fn emergency_share() -> StoredPolicy {
    stored_share(
        "emergency",
        share(
            of_type("Observation"),
            holder("role", "emergency-physician", Some(HOSPITAL)),
            &["read", "btg"],
        ),
    )
}

fn erin(role: &str) -> Party {
    with_claim(
        person(HOSPITAL, "erin"),
        "role",
        ClaimValue::Strings(vec!["staff".into(), role.into()]),
    )
}

fn carol() -> Party {
    with_email(anon(), "carol@clinic.example", true)
}

fn cases() -> Vec<Case> {
    vec![
        case("no policy: default deny", vec![], bob()).denies(&[]),
        case("subject share permits its scope", vec![bob_share(&["read"])], bob()).permits(&["share-bob"]),
        case("subject share does not grant another scope", vec![bob_share(&["read"])], bob())
            .on("obs1", "write")
            .denies(&[]),
        case("subject share does not grant another resource", vec![bob_share(&["read"])], bob())
            .on("obs2", "read")
            .denies(&[]),
        case("subject share: someone else, nothing would help", vec![bob_share(&["read"])], person(IDP, "eve"))
            .denies(&[]),
        case("subject share: same subject at another issuer", vec![bob_share(&["read"])], person(HOSPITAL, "bob"))
            .denies(&[]),
        case("subject share: unidentified party needs sub from the issuer", vec![bob_share(&["read"])], anon())
            .denies(&[])
            .missing(&[("sub", Some(IDP))]),
        case("email share permits a verified email", vec![stored_share("e", share(res("obs1"), email("dan@example.org"), &["read"]))],
            with_email(anon(), "dan@example.org", true))
            .permits(&["e"]),
        case("email share: domain case does not matter", vec![stored_share("e", share(res("obs1"), email("dan@Example.ORG"), &["read"]))],
            with_email(anon(), "dan@EXAMPLE.org", true))
            .permits(&["e"]),
        case("email share: local-part case matters", vec![stored_share("e", share(res("obs1"), email("dan@example.org"), &["read"]))],
            with_email(anon(), "Dan@example.org", true))
            .denies(&[]),
        case("email share never matches an unverified email", vec![stored_share("e", share(res("obs1"), email("dan@example.org"), &["read"]))],
            with_email(anon(), "dan@example.org", false))
            .denies(&[])
            .missing(&[("email", None), ("email_verified", None)]),
        case("email share: identified party without email needs a verified email",
            vec![stored_share("e", share(res("obs1"), email("dan@example.org"), &["read"]))], bob())
            .denies(&[])
            .missing(&[("email", None), ("email_verified", None)]),
        case("type share covers every resource of the type",
            vec![stored_share("t", share(of_type("Observation"), subject(IDP, "bob"), &["read"]))], bob())
            .on("obs2", "read")
            .permits(&["t"]),
        case("type share does not cover another type",
            vec![stored_share("t", share(of_type("Observation"), subject(IDP, "bob"), &["read"]))], bob())
            .on("photo", "view")
            .denies(&[]),
        case("until in the future permits",
            vec![stored_share("u", until(share(res("obs1"), subject(IDP, "bob"), &["read"]), NOW + 1))], bob())
            .permits(&["u"]),
        case("expired until denies, and no claim helps",
            vec![stored_share("u", until(share(res("obs1"), subject(IDP, "bob"), &["read"]), NOW))], bob())
            .denies(&[])
            .missing(&[]),
        case("expired until: unidentified party is not asked for sub",
            vec![stored_share("u", until(share(res("obs1"), subject(IDP, "bob"), &["read"]), NOW - 10))], anon())
            .denies(&[])
            .missing(&[]),
        case("claim with issuer: right claim from the right issuer permits",
            vec![doctor_share(Some(HOSPITAL))], with_claim(carol(), "role", ClaimValue::String("doctor".into())))
            .ctx(ctx_from(HOSPITAL))
            .permits(&["share-doctors"]),
        case("claim with issuer: right claim from another issuer denies, asks for it from the issuer",
            vec![doctor_share(Some(HOSPITAL))], with_claim(carol(), "role", ClaimValue::String("doctor".into())))
            .ctx(ctx_from(IDP))
            .denies(&[])
            .missing(&[("role", Some(HOSPITAL))]),
        case("claim with issuer: claim without a claim token issuer denies",
            vec![doctor_share(Some(HOSPITAL))], with_claim(carol(), "role", ClaimValue::String("doctor".into())))
            .denies(&[])
            .missing(&[("role", Some(HOSPITAL))]),
        case("claim with issuer: absent claim is asked for with its issuer",
            vec![doctor_share(Some(HOSPITAL))], carol())
            .ctx(ctx_from(HOSPITAL))
            .denies(&[])
            .missing(&[("role", Some(HOSPITAL))]),
        case("claim with issuer: wrong value, nothing would help",
            vec![doctor_share(Some(HOSPITAL))], with_claim(carol(), "role", ClaimValue::String("nurse".into())))
            .ctx(ctx_from(HOSPITAL))
            .denies(&[])
            .missing(&[]),
        case("claim without issuer: any claim token will do",
            vec![doctor_share(None)], with_claim(carol(), "role", ClaimValue::String("doctor".into())))
            .ctx(ctx_from(IDP))
            .permits(&["share-doctors"]),
        case("claim: a multi-valued claim containing the value permits",
            vec![doctor_share(None)], with_claim(carol(), "role", ClaimValue::Strings(vec!["nurse".into(), "doctor".into()])))
            .permits(&["share-doctors"]),
        case("claim: unidentified party needs the email and the claim",
            vec![doctor_share(Some(HOSPITAL))], anon())
            .denies(&[])
            .missing(&[("email", None), ("email_verified", None), ("role", Some(HOSPITAL))]),
        case("identity claims in `claims` are ignored (unverified email stays unverified)",
            vec![stored_share("e", share(res("obs1"), email("dan@example.org"), &["read"]))],
            with_claim(with_claim(anon(), "email", ClaimValue::String("dan@example.org".into())), "email_verified", ClaimValue::Bool(true)))
            .denies(&[])
            .missing(&[("email", None), ("email_verified", None)]),
        case("raw Cedar permit reading a claim",
            vec![stored_cedar("raw", r#"permit(principal, action == Uma::Action::"read", resource == Uma::Resource::"obs1")
                 when { principal.hasTag("npi") && principal.getTag("npi").contains("123") };"#)],
            with_claim(anon(), "npi", ClaimValue::Long(123)))
            .permits(&["raw"]),
        case("raw Cedar: the claims it reads are missing claims",
            vec![stored_cedar("raw", r#"permit(principal, action == Uma::Action::"read", resource == Uma::Resource::"obs1")
                 when { principal.hasTag("npi") && principal.getTag("npi").contains("123") };"#)],
            anon())
            .denies(&[])
            .missing(&[("npi", None)]),
        case("raw Cedar: subject and issuer attributes become sub with the issuer",
            vec![stored_cedar("raw", r#"permit(principal, action, resource in Uma::ResourceType::"Observation")
                 when { principal has subject && principal.subject == "bob" && principal has issuer && principal.issuer == "https://hospital.example" };"#)],
            anon())
            .denies(&[])
            .missing(&[("sub", Some(HOSPITAL))]),
        case("raw Cedar: claim token issuer condition names the claim's issuer",
            vec![stored_cedar("raw", r#"permit(principal, action, resource)
                 when { principal.hasTag("acr") && principal.getTag("acr").contains("loa3") && context has claim_token_issuer && context.claim_token_issuer == "https://idp.example" };"#)],
            bob())
            .denies(&[])
            .missing(&[("acr", Some(IDP))]),
        case("raw Cedar: permit for everyone on the owner's resource",
            vec![stored_cedar("all", "permit(principal, action, resource);")], anon())
            .permits(&["all"]),
        case("raw Cedar: permit for everyone never reaches another owner's resource",
            vec![stored_cedar("all", "permit(principal, action, resource);")], anon())
            .on("theirs", "read")
            .denies(&[])
            .with_errors(),
        case("raw Cedar: a forbid naming the anonymous party applies to unidentified parties",
            vec![stored_cedar("all", "permit(principal, action, resource);"), stored_cedar("no-anon", r#"forbid(principal == Uma::Party::"anonymous", action, resource);"#)],
            anon())
            .denies(&["no-anon"]),
        case("raw Cedar: a forbid naming a party by key applies to that party only",
            vec![stored_cedar("all", "permit(principal, action, resource);"), stored_cedar("no-bob", r#"forbid(principal == Uma::Party::"https://idp.example#bob", action, resource);"#)],
            bob())
            .denies(&["no-bob"]),
        case("raw Cedar: a forbid naming a verified email group",
            vec![stored_cedar("all", "permit(principal, action, resource);"), stored_cedar("no-dan", r#"forbid(principal in Uma::Email::"dan@example.org", action, resource in Uma::ResourceType::"Observation");"#)],
            with_email(bob(), "dan@EXAMPLE.org", true))
            .denies(&["no-dan"]),
        case("raw Cedar: forbid overrides a share",
            vec![bob_share(&["read", "write"]), stored_cedar("no-unbound", "forbid(principal, action, resource) unless { context.sender_constrained };")],
            bob())
            .denies(&["no-unbound"])
            .missing(&[]),
        case("raw Cedar: forbid that does not apply leaves the share",
            vec![bob_share(&["read", "write"]), stored_cedar("no-unbound", "forbid(principal, action, resource) unless { context.sender_constrained };")],
            bob())
            .ctx(RequestContext { sender_constrained: true, ..ctx() })
            .permits(&["share-bob"]),
        case("raw Cedar: forbid for one client",
            vec![bob_share(&["read"]), stored_cedar("no-client", r#"forbid(principal, action, resource) when { context.client == Uma::Client::"client-1" };"#)],
            bob())
            .denies(&["no-client"]),
        case("raw Cedar: several statements in one policy, each decides under the stored id",
            vec![stored_cedar("pair", "permit(principal, action == Uma::Action::\"read\", resource);\nforbid(principal, action == Uma::Action::\"write\", resource);")],
            bob())
            .permits(&["pair"]),
        case("raw Cedar: several statements, the forbid",
            vec![stored_cedar("pair", "permit(principal, action, resource);\nforbid(principal, action == Uma::Action::\"write\", resource);")],
            bob())
            .on("obs1", "write")
            .denies(&["pair"]),
        case("evaluation error denies, even with a permitting share",
            vec![bob_share(&["read"]), stored_cedar("overflow", "permit(principal, action, resource) when { context.now * 9223372036854775807 > 0 };")],
            bob())
            .denies(&["overflow"])
            .with_errors(),
        case("a failing forbid does not let a permit through",
            vec![bob_share(&["read"]), stored_cedar("bad-forbid", "forbid(principal, action, resource) when { context.now + 9223372036854775807 > 0 };")],
            bob())
            .denies(&["bad-forbid"])
            .with_errors(),
        case("scope the resource does not have is refused before Cedar",
            vec![stored_cedar("all", "permit(principal, action, resource);")], bob())
            .on("obs2", "write")
            .denies(&[])
            .with_errors(),
        case("two shares both permit: both are named",
            vec![bob_share(&["read"]), stored_share("type-bob", share(of_type("Observation"), subject(IDP, "bob"), &["read"]))],
            bob())
            .permits(&["share-bob", "type-bob"]),
        case("many people: the union of what could help",
            vec![
                bob_share(&["read"]),
                stored_share("hosp", share(res("obs1"), subject(HOSPITAL, "h1"), &["read"])),
                stored_share("hosp2", share(res("obs1"), subject(HOSPITAL, "h2"), &["read"])),
                stored_share("e", share(of_type("Observation"), email("dan@example.org"), &["read"])),
            ],
            anon())
            .denies(&[])
            .missing(&[("email", None), ("email_verified", None), ("sub", Some(HOSPITAL)), ("sub", Some(IDP))]),
        case("claim share permits whoever holds the claim from its issuer", vec![emergency_share()], erin("emergency-physician"))
            .ctx(ctx_from(HOSPITAL))
            .permits(&["emergency"]),
        case("claim share covers every resource of the type", vec![emergency_share()], erin("emergency-physician"))
            .ctx(ctx_from(HOSPITAL))
            .on("obs2", "read")
            .permits(&["emergency"]),
        case("claim share: the same claim from another issuer does not count", vec![emergency_share()], erin("emergency-physician"))
            .ctx(ctx_from(IDP))
            .denies(&[])
            .missing(&[("role", Some(HOSPITAL))]),
        case("claim share: another value of the claim does not count", vec![emergency_share()], erin("nurse"))
            .ctx(ctx_from(HOSPITAL))
            .denies(&[]),
        case("claim share: not a scope it grants", vec![emergency_share()], erin("emergency-physician"))
            .ctx(ctx_from(HOSPITAL))
            .on("obs1", "write")
            .denies(&[]),
        case("claim share: not a resource of the type", vec![emergency_share()], erin("emergency-physician"))
            .ctx(ctx_from(HOSPITAL))
            .on("photo", "view")
            .denies(&[]),
        case("claim share: an anonymous party is asked for the claim from its issuer", vec![emergency_share()], anon())
            .denies(&[])
            .missing(&[("role", Some(HOSPITAL))]),
        case("claim share: a forbid still wins",
            vec![emergency_share(), stored_cedar("closed", "forbid(principal, action, resource);")],
            erin("emergency-physician"))
            .ctx(ctx_from(HOSPITAL))
            .denies(&["closed"]),
        case("missing claims respect a forbid that applies to everyone",
            vec![bob_share(&["read"]), stored_cedar("closed", "forbid(principal, action, resource);")],
            anon())
            .denies(&["closed"])
            .missing(&[]),
    ]
}

#[test]
fn decision_table() {
    let mut failures = Vec::new();
    for c in cases() {
        let owner = match OwnerPolicies::build(OWNER, &c.policies) {
            Ok(o) => o,
            Err(e) => {
                failures.push(format!("{}: build failed: {e:?}", c.name));
                continue;
            }
        };
        let r = find(c.resource);
        let d = owner.decide(&c.party, &r, c.scope, &c.ctx);
        let deciding: Vec<&str> = d.policies.iter().map(String::as_str).collect();
        if d.permit != c.permit || deciding != c.deciding {
            failures.push(format!(
                "{}: expected permit={} {:?}, got permit={} {:?} (errors {:?})",
                c.name, c.permit, c.deciding, d.permit, deciding, d.errors
            ));
        }
        if d.errors.is_empty() == c.errors {
            failures.push(format!(
                "{}: expected errors={}, got {:?}",
                c.name, c.errors, d.errors
            ));
        }
        let missing: Vec<(String, Option<String>)> = owner
            .missing_claims(&c.party, &r, c.scope, &c.ctx)
            .into_iter()
            .map(|m| (m.name, m.issuer))
            .collect();
        let expected: Vec<(String, Option<String>)> = c
            .missing
            .iter()
            .map(|(n, i)| ((*n).to_owned(), i.map(str::to_owned)))
            .collect();
        if missing != expected {
            failures.push(format!(
                "{}: expected missing {expected:?}, got {missing:?}",
                c.name
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Supplying the claims `missing_claims` names turns the denial into a permit.
#[test]
fn supplying_the_missing_claims_permits() {
    let owner = OwnerPolicies::build(OWNER, &[doctor_share(Some(HOSPITAL))]).unwrap();
    let r = find("obs2");
    let missing = owner.missing_claims(&anon(), &r, "read", &ctx());
    let names: Vec<&str> = missing.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["email", "email_verified", "role"]);
    let party = with_claim(carol(), "role", ClaimValue::String("doctor".into()));
    let d = owner.decide(&party, &r, "read", &ctx_from(HOSPITAL));
    assert!(d.permit, "{d:?}");
    assert!(
        owner
            .missing_claims(&party, &r, "read", &ctx_from(HOSPITAL))
            .is_empty()
    );
}

#[test]
fn required_claims_carry_friendly_names_for_identity_claims() {
    let owner = OwnerPolicies::build(OWNER, &[bob_share(&["read"])]).unwrap();
    let m = owner.missing_claims(&anon(), &find("obs1"), "read", &ctx());
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].name, "sub");
    assert_eq!(m[0].issuer.as_deref(), Some(IDP));
    assert!(m[0].friendly_name.is_some());
}

#[test]
fn owner_policies_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<OwnerPolicies>();
}

#[test]
fn build_refuses_broken_and_duplicate_policies() {
    let err = OwnerPolicies::build(
        OWNER,
        &[
            stored_cedar("broken", "permit(principal, action, resource"),
            bob_share(&["read"]),
            bob_share(&["write"]),
        ],
    )
    .unwrap_err();
    let ids: Vec<&str> = err.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["broken", "share-bob"]);
    assert!(err[0].1.line.is_some());
    // A claim share without an issuer (validation refuses it; a stored one is refused too).
    let err = OwnerPolicies::build(
        OWNER,
        &[stored_share(
            "anyone-with-role",
            share(res("obs1"), holder("role", "doctor", None), &["read"]),
        )],
    )
    .unwrap_err();
    assert_eq!(err.len(), 1);
    assert_eq!(
        (err[0].0.as_str(), err[0].1.message.as_str()),
        (
            "anyone-with-role",
            "a share with whoever holds claim `role` must name the claim's issuer"
        )
    );
}

#[test]
fn len_counts_stored_policies() {
    let owner = OwnerPolicies::build(
        OWNER,
        &[
            bob_share(&["read"]),
            stored_cedar("pair", "permit(principal, action, resource);\nforbid(principal, action, resource) when { false };"),
        ],
    )
    .unwrap();
    assert_eq!(owner.len(), 2);
    assert!(!owner.is_empty());
    assert_eq!(owner.owner(), OWNER);
}

/// Security invariant: no policy grants access to another owner's resource — not raw Cedar that
/// permits everything, not a policy naming that resource, not a type share of a type both owners
/// use, not a resource whose id collides with one of the owner's.
#[test]
fn no_policy_grants_another_owners_resource() {
    let policies = vec![
        stored_cedar("all", "permit(principal, action, resource);"),
        stored_cedar(
            "named",
            r#"permit(principal, action, resource == Uma::Resource::"theirs");"#,
        ),
        stored_cedar(
            "owner-attr",
            r#"permit(principal, action, resource) when { resource.owner == Uma::Owner::"owner-2" };"#,
        ),
        stored_share(
            "by-id",
            share(res("theirs"), subject(IDP, "bob"), &["read", "write"]),
        ),
        stored_share(
            "by-type",
            share(
                of_type("Observation"),
                email("dan@example.org"),
                &["read", "write"],
            ),
        ),
    ];
    let owner = OwnerPolicies::build(OWNER, &policies).unwrap();
    let mut colliding = find("obs1");
    colliding.owner = OTHER_OWNER.to_owned();
    let parties = [
        anon(),
        bob(),
        with_email(bob(), "dan@example.org", true),
        with_claim(anon(), "role", ClaimValue::String("doctor".into())),
    ];
    for r in [find("theirs"), colliding] {
        for party in &parties {
            for scope in ["read", "write"] {
                let d = owner.decide(party, &r, scope, &ctx());
                assert!(!d.permit, "{} {scope} {party:?}: {d:?}", r.id);
                assert!(d.policies.is_empty(), "{d:?}");
                assert!(owner.missing_claims(party, &r, scope, &ctx()).is_empty());
            }
        }
    }
    // the same policies do grant the owner's own resource
    assert!(owner.decide(&anon(), &find("obs1"), "read", &ctx()).permit);
}

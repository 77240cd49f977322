//! Property tests for untrusted input: owners' Cedar text and policy JSON, and requesting parties'
//! claims, never make validation, compilation or decisions panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use custodia_policy::{ClaimValue, OwnerPolicies, Party, PolicySource, StoredPolicy, validate};
use proptest::prelude::*;

/// Fragments that make mostly-plausible Cedar, so the parser and validator get past the first token.
fn cedar_fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("permit(".to_owned()),
        Just("forbid(".to_owned()),
        Just("principal".to_owned()),
        Just("action".to_owned()),
        Just("resource".to_owned()),
        Just(", ".to_owned()),
        Just(")".to_owned()),
        Just(" when { ".to_owned()),
        Just(" unless { ".to_owned()),
        Just(" }".to_owned()),
        Just(";".to_owned()),
        Just(" == ".to_owned()),
        Just(" in ".to_owned()),
        Just(" && ".to_owned()),
        Just("!".to_owned()),
        Just("(".to_owned()),
        Just(".hasTag(\"role\")".to_owned()),
        Just(".getTag(\"role\")".to_owned()),
        Just("context.now".to_owned()),
        Just("Uma::Action::\"read\"".to_owned()),
        Just("Uma::Resource::\"obs1\"".to_owned()),
        Just("?principal".to_owned()),
        Just("\n".to_owned()),
        "[a-z\"{}()\\[\\]:;.,!=<>&|+*-]{1,4}",
        "\\PC{1,3}",
    ]
}

fn cedar_text() -> impl Strategy<Value = String> {
    prop::collection::vec(cedar_fragment(), 0..40).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn validating_and_building_cedar_text_never_panics(text in cedar_text()) {
        let source = PolicySource::Cedar(text.clone());
        let v = validate(OWNER, &source, &resources(), NOW);
        // whatever validates also builds
        if v.is_ok() {
            let built = OwnerPolicies::build(OWNER, &[StoredPolicy { id: "p".into(), source }]);
            prop_assert!(built.is_ok(), "{text:?}: {built:?}");
            let owner = built.unwrap();
            let d = owner.decide(&person(IDP, "bob"), &find("obs1"), "read", &ctx());
            let _ = owner.missing_claims(&anon(), &find("obs1"), "read", &ctx());
            prop_assert!(!d.permit || d.errors.is_empty());
        }
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        let _ = validate(OWNER, &PolicySource::Cedar(text.clone()), &resources(), NOW);
        let _ = OwnerPolicies::build(OWNER, &[StoredPolicy { id: "p".into(), source: PolicySource::Cedar(text) }]);
    }

    #[test]
    fn arbitrary_policy_json_never_panics(json in "\\PC{0,200}") {
        if let Ok(source) = serde_json::from_str::<PolicySource>(&json) {
            let _ = validate(OWNER, &source, &resources(), NOW);
        }
    }

    #[test]
    fn arbitrary_parties_and_shares_never_panic(
        issuer in "\\PC{0,12}",
        subject_id in "\\PC{0,12}",
        address in "\\PC{0,12}",
        claim in "\\PC{0,8}",
        value in "\\PC{0,8}",
        scope in "\\PC{0,8}",
    ) {
        let t = requiring(share(res("obs1"), subject(&issuer, &subject_id), &[&scope]), &claim, &value, Some(&issuer));
        let e = share(of_type(&value), email(&address), &[&scope]);
        let _ = validate(OWNER, &PolicySource::Share(t.clone()), &resources(), NOW);
        let owner = OwnerPolicies::build(OWNER, &[stored_share("a", t), stored_share("b", e)]).unwrap();
        let party = Party {
            issuer: Some(issuer.clone()),
            subject: Some(subject_id.clone()),
            email: Some(address.clone()),
            email_verified: true,
            claims: [(claim.clone(), ClaimValue::String(value.clone()))].into_iter().collect(),
        };
        let mut r = find("obs1");
        r.scopes.push(scope.clone());
        let d = owner.decide(&party, &r, &scope, &ctx_from(&issuer));
        // the party is exactly the one the share names, with the claim from the issuer
        let reserved = ["sub", "iss", "email", "email_verified"].contains(&claim.as_str());
        prop_assert_eq!(d.permit, !reserved, "{:?}", d);
        let _ = owner.missing_claims(&anon(), &r, &scope, &ctx());
    }
}

/// Cedar's parser and printers recurse without a guard: text at the size, nesting and operator
/// limits must validate, compile, decide and analyse without exhausting a stack, and text past
/// them is refused with a message. (Evaluation past Cedar's own recursion limit is an error, so
/// a deny.)
#[test]
fn hostile_shapes_at_the_limits_never_crash() {
    let within = [
        format!("context.now{} > 0", " + 1".repeat(250)),
        format!("{} true", "if true then true else ".repeat(250)),
        format!("context{} == 1", ".a".repeat(250)),
        format!("{}true{}", "(".repeat(31), ")".repeat(31)),
        format!("{}1{} == [1]", "[".repeat(31), "]".repeat(31)),
        format!(
            "principal.hasTag(\"a\") && principal.getTag(\"a\").contains(\"x\"){}",
            " && principal has subject".repeat(80)
        ),
    ];
    let beyond = [
        format!("context.now{} > 0", " + 1".repeat(300)),
        format!("{}true{}", "(".repeat(1000), ")".repeat(1000)),
        format!("{} true", "if true then true else ".repeat(5000)),
        format!("{}true", "!".repeat(10_000)),
        format!("{}1", "-".repeat(10_000)),
    ];
    for (body, refused) in within
        .iter()
        .map(|b| (b, false))
        .chain(beyond.iter().map(|b| (b, true)))
    {
        let text = format!("permit(principal, action, resource) when {{ {body} }};");
        let v = validate(OWNER, &PolicySource::Cedar(text.clone()), &resources(), NOW);
        if refused {
            assert!(!v.is_ok(), "{}", &text[..80]);
        }
        let built = OwnerPolicies::build(
            OWNER,
            &[StoredPolicy {
                id: "p".into(),
                source: PolicySource::Cedar(text.clone()),
            }],
        );
        assert_eq!(built.is_err(), refused, "{}", &text[..80]);
        if let Ok(owner) = built {
            let d = owner.decide(&anon(), &find("obs1"), "read", &ctx());
            assert!(!d.permit || d.errors.is_empty());
            let _ = owner.missing_claims(&anon(), &find("obs1"), "read", &ctx());
        }
    }
}

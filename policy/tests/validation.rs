//! Validation before save: owners' raw Cedar with syntax or schema errors is refused with the
//! error's location; shares are checked against the owner's resources and the clock.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use custodia_policy::{
    Diagnostic, PolicySource, Severity, ShareTemplate, Validation, schema_text, validate,
};

fn check_cedar(text: &str) -> Validation {
    validate(
        OWNER,
        &PolicySource::Cedar(text.to_owned()),
        &resources(),
        NOW,
    )
}

fn check_share(t: ShareTemplate) -> Validation {
    validate(OWNER, &PolicySource::Share(t), &resources(), NOW)
}

fn only_error(v: &Validation) -> &Diagnostic {
    assert_eq!(v.errors.len(), 1, "{v:#?}");
    &v.errors[0]
}

#[test]
fn valid_raw_cedar_passes() {
    let v = check_cedar(
        r#"permit(principal, action == Uma::Action::"read", resource in Uma::ResourceType::"Observation")
when { principal.hasTag("role") && principal.getTag("role").contains("doctor")
       && context has claim_token_issuer && context.claim_token_issuer == "https://hospital.example"
       && context.now < 1900000000 && resource.owner == Uma::Owner::"owner-1" };
forbid(principal, action, resource) unless { context.sender_constrained };"#,
    );
    assert!(v.is_ok(), "{v:#?}");
    assert!(v.warnings.is_empty(), "{v:#?}");
}

#[test]
fn syntax_error_is_located() {
    let v = check_cedar("permit(principal, action, resource)\nwhen { context.now > };");
    let e = only_error(&v);
    assert_eq!(e.severity, Severity::Error);
    assert_eq!((e.line, e.column), (Some(2), Some(22)), "{e:?}");
    assert!(e.message.contains("unexpected token"), "{e:?}");
}

#[test]
fn every_syntax_error_is_returned() {
    let v = check_cedar(
        "permit(principal, action, resource) when { 1 + };\npermit(principal, action resource);",
    );
    assert!(v.errors.len() >= 2, "{v:#?}");
    assert!(v.errors.iter().all(|e| e.line.is_some()));
    assert!(v.errors.iter().any(|e| e.line == Some(2)), "{v:#?}");
}

#[test]
fn unknown_attribute_is_located() {
    let v =
        check_cedar("permit(principal, action, resource)\n  when { principal.emial == \"x\" };");
    let e = only_error(&v);
    assert!(e.message.contains("emial"), "{e:?}");
    assert!(!e.message.starts_with("for policy"), "{e:?}");
    assert_eq!((e.line, e.column), (Some(2), Some(10)), "{e:?}");
}

#[test]
fn unknown_scope_is_an_unknown_action_with_location() {
    let v = check_cedar(
        "permit(principal,\n       action == Uma::Action::\"delete\",\n       resource);",
    );
    let e = only_error(&v);
    assert!(e.message.contains("delete"), "{e:?}");
    assert_eq!(e.line, Some(2), "{e:?}");
}

#[test]
fn unguarded_optional_attribute_and_tag_are_errors() {
    let v =
        check_cedar("permit(principal, action, resource) when { principal.subject == \"bob\" };");
    assert!(!v.is_ok());
    assert!(v.errors[0].line.is_some());
    let v = check_cedar(
        "permit(principal, action, resource) when { principal.getTag(\"role\").contains(\"x\") };",
    );
    assert!(!v.is_ok(), "{v:#?}");
}

#[test]
fn another_owners_resource_is_refused_in_raw_cedar() {
    let v = check_cedar("permit(principal, action,\n  resource == Uma::Resource::\"theirs\");");
    let e = only_error(&v);
    assert!(
        e.message.contains("`theirs` is not one of your resources"),
        "{e:?}"
    );
    assert_eq!((e.line, e.column), (Some(2), Some(30)), "{e:?}");
    let v = check_cedar(
        "permit(principal, action, resource) when { resource == Uma::Resource::\"nope\" };",
    );
    assert!(!v.is_ok(), "{v:#?}");
}

#[test]
fn raw_cedar_refuses_templates_and_empty_text() {
    assert!(!check_cedar("permit(principal == ?principal, action, resource);").is_ok());
    assert!(!check_cedar("// nothing here\n").is_ok());
}

#[test]
fn raw_cedar_warns_about_literals_that_never_match() {
    let v = check_cedar(
        r#"permit(principal in Uma::Email::"Dan@Example.org", action, resource in Uma::ResourceType::"Video");
permit(principal == Uma::Party::"bob", action, resource);"#,
    );
    assert!(v.is_ok(), "{v:#?}");
    assert_eq!(v.warnings.len(), 3, "{v:#?}");
    assert!(v.warnings.iter().all(|w| w.line.is_some()), "{v:#?}");
}

#[test]
fn too_long_or_too_deep_text_is_refused() {
    let long = format!(
        "permit(principal, action, resource) when {{ {} }};",
        vec!["true"; 10_000].join(" && ")
    );
    assert!(only_error(&check_cedar(&long)).message.contains("too long"));
    let deep = format!(
        "permit(principal, action, resource) when {{ {}true{} }};",
        "(".repeat(40),
        ")".repeat(40)
    );
    let e = only_error(&check_cedar(&deep)).clone();
    assert!(e.message.contains("nested too deeply"), "{e:?}");
    assert_eq!(e.line, Some(1));
}

#[test]
fn valid_shares_pass() {
    for t in [
        share(res("obs1"), subject(IDP, "bob"), &["read", "write"]),
        until(
            share(of_type("Observation"), email("dan@example.org"), &["read"]),
            NOW + 3600,
        ),
        requiring(
            share(res("photo"), subject(IDP, "bob"), &["view"]),
            "role",
            "doctor",
            Some(IDP),
        ),
        share(
            of_type("Observation"),
            holder("role", "emergency-physician", Some(HOSPITAL)),
            &["read"],
        ),
        requiring(
            share(
                res("obs1"),
                holder("role", "doctor", Some(HOSPITAL)),
                &["write"],
            ),
            "npi",
            "1234567893",
            Some(HOSPITAL),
        ),
    ] {
        let v = check_share(t.clone());
        assert!(v.is_ok() && v.warnings.is_empty(), "{t:?}: {v:#?}");
    }
}

/// A share with whoever holds a claim must name the claim's issuer (else any trusted provider
/// could make anyone a holder) and a real claim: not an identity claim, no empty value.
#[test]
fn claim_shares_need_an_issuer_and_a_claim() {
    let error = |with| {
        only_error(&check_share(share(res("obs1"), with, &["read"])))
            .message
            .clone()
    };
    assert_eq!(
        error(holder("role", "doctor", None)),
        "a share with whoever holds claim `role` must name the claim's issuer"
    );
    assert_eq!(
        error(holder("email", "a@b.example", Some(HOSPITAL))),
        "`email` is an identity claim; share with a subject or a verified email instead"
    );
    assert_eq!(
        error(holder("role", "", Some(HOSPITAL))),
        "the required value of claim `role` is empty"
    );
    assert_eq!(
        error(holder("role", "doctor", Some(" "))),
        "the issuer of claim `role` is empty"
    );
    let e = only_error(&check_share(requiring(
        share(
            res("obs1"),
            holder("role", "doctor", Some(HOSPITAL)),
            &["read"],
        ),
        "npi",
        "1234567893",
        Some(IDP),
    )))
    .message
    .clone();
    assert_eq!(
        e,
        "claim `npi` is required from `https://idp.example` and claim `role` from `https://hospital.example`: a requesting party's claims come from one issuer, so the share could never apply"
    );
    let e = only_error(&check_share(requiring(
        share(res("obs1"), subject(IDP, "bob"), &["read"]),
        "role",
        "doctor",
        Some(HOSPITAL),
    )))
    .message
    .clone();
    assert_eq!(
        e,
        "claim `role` is required from `https://hospital.example` but the person is named at `https://idp.example`: a requesting party's claims come from one issuer, so the share could never apply"
    );
    // The JSON form the owner API takes.
    let source: PolicySource = serde_json::from_str(
        r#"{"kind": "share", "resource": {"type": "Observation"},
            "with": {"claim": {"name": "role", "value": "doctor", "issuer": "https://hospital.example"}},
            "scopes": ["read"]}"#,
    )
    .unwrap();
    assert!(validate(OWNER, &source, &resources(), NOW).is_ok());
}

#[test]
fn share_scope_must_be_on_the_resource() {
    let e = only_error(&check_share(share(
        res("obs2"),
        subject(IDP, "bob"),
        &["write"],
    )))
    .clone();
    assert_eq!(e.message, "scope `write` is not a scope of resource `obs2`");
    assert_eq!(e.line, None);
}

#[test]
fn type_share_scope_must_be_on_some_resource_of_the_type() {
    let v = check_share(share(
        of_type("Observation"),
        subject(IDP, "bob"),
        &["write"],
    ));
    assert!(v.is_ok(), "{v:#?}");
    assert_eq!(v.warnings.len(), 1, "only obs1 of two has `write`: {v:#?}");
    let e = only_error(&check_share(share(
        of_type("Observation"),
        subject(IDP, "bob"),
        &["view"],
    )))
    .clone();
    assert!(e.message.contains("not a scope of any"), "{e:?}");
    let e = only_error(&check_share(share(
        of_type("Video"),
        subject(IDP, "bob"),
        &["view"],
    )))
    .clone();
    assert!(e.message.contains("no resource of type `Video`"), "{e:?}");
}

#[test]
fn share_of_another_owners_resource_is_refused() {
    let e = only_error(&check_share(share(
        res("theirs"),
        subject(IDP, "bob"),
        &["read"],
    )))
    .clone();
    assert!(e.message.contains("not one of your resources"), "{e:?}");
}

#[test]
fn share_reports_every_error() {
    let mut t = requiring(
        until(share(res("obs1"), email("not an email"), &[]), NOW),
        "email",
        "",
        Some(""),
    );
    t.scopes = vec![];
    let v = check_share(t);
    // no scope, bad email, until not in the future, identity claim, empty value, empty issuer
    assert_eq!(v.errors.len(), 6, "{v:#?}");
    let v = check_share(share(
        res("obs1"),
        subject(" https://idp.example", ""),
        &["read", "read"],
    ));
    assert_eq!(v.errors.len(), 2, "{v:#?}");
    assert_eq!(v.warnings.len(), 1, "{v:#?}");
}

#[test]
fn policy_source_json_round_trips_and_refuses_unknown_fields() {
    let share_json = r#"{"kind":"share","resource":{"type":"Observation"},"with":{"subject":{"issuer":"https://idp.example","subject":"bob"}},"scopes":["read"],"until":1900000000,"require_claim":{"name":"role","value":"doctor","issuer":"https://hospital.example"}}"#;
    let parsed: PolicySource = serde_json::from_str(share_json).unwrap();
    assert_eq!(
        parsed,
        PolicySource::Share(requiring(
            until(
                share(of_type("Observation"), subject(IDP, "bob"), &["read"]),
                1_900_000_000
            ),
            "role",
            "doctor",
            Some(HOSPITAL)
        ))
    );
    assert_eq!(serde_json::to_string(&parsed).unwrap(), share_json);
    let email_json = r#"{"kind":"share","resource":{"resource":"obs1"},"with":{"verified_email":"dan@example.org"},"scopes":["read"]}"#;
    let parsed: PolicySource = serde_json::from_str(email_json).unwrap();
    assert_eq!(serde_json::to_string(&parsed).unwrap(), email_json);
    let cedar_json = r#"{"kind":"cedar","text":"permit(principal, action, resource);"}"#;
    let parsed: PolicySource = serde_json::from_str(cedar_json).unwrap();
    assert_eq!(
        parsed,
        PolicySource::Cedar("permit(principal, action, resource);".into())
    );
    assert_eq!(serde_json::to_string(&parsed).unwrap(), cedar_json);
    // a misspelt `until` must not silently make a share unlimited
    let typo = r#"{"kind":"share","resource":{"resource":"obs1"},"with":{"verified_email":"dan@example.org"},"scopes":["read"],"untill":5}"#;
    assert!(serde_json::from_str::<PolicySource>(typo).is_err());
    assert!(serde_json::from_str::<PolicySource>(r#"{"kind":"lua","text":"x"}"#).is_err());
}

#[test]
fn schema_text_lists_the_owners_scopes_only() {
    let mut rs = resources();
    rs.push(resource("x", OTHER_OWNER, None, &["their-scope"]));
    let text = schema_text(OWNER, &rs).unwrap();
    assert!(
        text.contains("\"read\"") && text.contains("\"view\""),
        "{text}"
    );
    assert!(!text.contains("their-scope"), "{text}");
}

//! RFC 8707 resource indicators: the consent page names the target resources (HEART-OAUTH-27,
//! IGOV-OAUTH-31: "the access requested … target resource"), access tokens are audience-restricted
//! to them (`aud` an array, IGOV-OAUTH-40), a token request may narrow the targets but never widen
//! them, and a token for other resources is refused at Custodia's own APIs (BCP-18: access tokens
//! audience-restricted, a token not meant for a server refused there).

use custodia_tests::*;
use serde_json::{Value, json};

const FHIR: &str = "https://fhir.example/r4";
const LABS: &str = "https://labs.example/api";

/// Sign in, check the consent page lists the targets, allow: the code and the PKCE verifier.
async fn code_for(srv: &TestServer, client: &TestClient, resources: &[&str]) -> (String, String) {
    let (verifier, challenge) = pkce();
    let mut extra = vec![
        ("scope", "openid profile"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    extra.extend(resources.iter().map(|r| ("resource", *r)));
    let b = browser();
    let login = open(&b, &authorize_url(srv, client, &extra)).await;
    let (_, page) = login.page();
    let loc = match submit_login(&b, srv, page, "alice", "correct horse battery").await {
        Landing::Page(_, consent) => {
            for r in resources {
                assert!(
                    consent.contains(&format!("<code>{r}</code>")),
                    "HEART-OAUTH-27: the consent page names {r}: {consent}"
                );
            }
            submit_consent(&b, srv, &consent, "allow")
                .await
                .redirect()
                .to_string()
        }
        // Scopes consented before and no targets: no page (a request naming targets always
        // shows one).
        Landing::Redirect(_, loc) if resources.is_empty() => loc,
        other => panic!("no consent page: {:?}", other.redirect()),
    };
    let code = query(&loc)
        .remove("code")
        .unwrap_or_else(|| panic!("no code in {loc}"));
    (code, verifier)
}

/// A GET of `url` with the access token of `token` (a token response): 401 `invalid_token`.
async fn refused_as_invalid_token(url: &str, token: &Value) {
    let (s, h, body) = bearer_json(
        reqwest::Method::GET,
        url,
        token["access_token"].as_str(),
        None,
    )
    .await;
    assert_eq!(s, 401, "{url}: {body}");
    let challenge = h
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(challenge.contains("invalid_token"), "{url}: {challenge}");
}

fn aud(token: &Value) -> Value {
    jwt_parts(token["access_token"].as_str().unwrap_or_default()).1["aud"].clone()
}

both!(resource_indicators, |srv| {
    srv.add_user("alice", "correct horse battery").await;
    let client = srv.web_client().await;

    // A target the authorization request did not name: `invalid_target` (RFC 8707 §2.2).
    let (code, verifier) = code_for(&srv, &client, &[FHIR]).await;
    let (s, e) = redeem_code(
        &srv,
        &client,
        &code,
        "https://client.example/cb",
        &verifier,
        &[("resource", LABS)],
    )
    .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (400, Some("invalid_target")),
        "{e}"
    );

    // Two targets allowed; the code's token asks for one of them.
    let (code, verifier) = code_for(&srv, &client, &[FHIR, LABS]).await;
    let (s, t) = redeem_code(
        &srv,
        &client,
        &code,
        "https://client.example/cb",
        &verifier,
        &[("resource", FHIR)],
    )
    .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(
        aud(&t),
        json!([FHIR]),
        "IGOV-OAUTH-40: `aud` is an array of the targets"
    );
    let refresh = t["refresh_token"].as_str().unwrap_or_default().to_string();

    // The token is for the FHIR server, not for Custodia's UserInfo endpoint.
    refused_as_invalid_token(&srv.url("/userinfo"), &t).await;

    // Refresh: a wider target is refused before the refresh token is spent …
    let (s, e) = token_request(
        &srv,
        &client,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("resource", "https://elsewhere.example/"),
        ],
    )
    .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (400, Some("invalid_target")),
        "{e}"
    );
    // … the same token still works: narrowed to the labs, then (next rotation) every target.
    let (s, t) = token_request(
        &srv,
        &client,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("resource", LABS),
        ],
    )
    .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(aud(&t), json!([LABS]));
    let refresh = t["refresh_token"].as_str().unwrap_or_default().to_string();
    let (s, t) = token_request(
        &srv,
        &client,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(aud(&t), json!([FHIR, LABS]));

    // Without targets: this server's APIs, and UserInfo answers.
    let (code, verifier) = code_for(&srv, &client, &[]).await;
    let (s, t) = redeem_code(
        &srv,
        &client,
        &code,
        "https://client.example/cb",
        &verifier,
        &[],
    )
    .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(aud(&t), json!([srv.core.issuer()]));
    let (s, _, body) = bearer_json(
        reqwest::Method::GET,
        &srv.url("/userinfo"),
        t["access_token"].as_str(),
        None,
    )
    .await;
    assert_eq!(s, 200, "{body}");

    // Targets inside a signed request object: a JSON array, one target each (RFC 8707 §2).
    let keyed = srv
        .add_key_client(json!({
            "client_name": "Keyed app",
            "redirect_uris": ["https://client.example/cb"],
            "grant_types": ["authorization_code"],
            "scope": "openid profile",
        }))
        .await;
    let key = keyed.key.clone().unwrap_or_else(|| panic!("no key"));
    let (_, challenge) = pkce();
    let object = crate::oidc_rules::signed(
        &key,
        json!({
            "iss": keyed.id, "aud": srv.core.issuer(), "client_id": keyed.id,
            "response_type": "code", "redirect_uri": "https://client.example/cb",
            "scope": "openid", "code_challenge": challenge, "code_challenge_method": "S256",
            "exp": srv.core.now() + 300, "resource": [FHIR, LABS],
        }),
    );
    let b = browser();
    let login = open(
        &b,
        &authorize_url(
            &srv,
            &keyed,
            &[("request", object.as_str()), ("scope", "openid")],
        ),
    )
    .await;
    let (_, page) = login.page();
    match submit_login(&b, &srv, page, "alice", "correct horse battery").await {
        Landing::Page(_, consent) => {
            for r in [FHIR, LABS] {
                assert!(
                    consent.contains(&format!("<code>{r}</code>")),
                    "{r}: {consent}"
                );
            }
        }
        other => panic!("no consent page: {:?}", other.redirect()),
    }
    // With a request object, only its targets count: one added to the query is dropped.
    let (_, challenge) = pkce();
    let plain_object = crate::oidc_rules::signed(
        &key,
        json!({
            "iss": keyed.id, "aud": srv.core.issuer(), "client_id": keyed.id,
            "response_type": "code", "redirect_uri": "https://client.example/cb",
            "scope": "openid", "code_challenge": challenge, "code_challenge_method": "S256",
            "exp": srv.core.now() + 300,
        }),
    );
    let page = open(
        &b,
        &authorize_url(
            &srv,
            &keyed,
            &[
                ("request", plain_object.as_str()),
                ("scope", "openid"),
                ("resource", "https://added.example/"),
            ],
        ),
    )
    .await;
    let (s, consent) = page.page();
    assert_eq!(s, 200, "{consent}");
    assert!(consent.contains("Keyed app"), "{consent}");
    assert!(!consent.contains("added.example"), "{consent}");

    // Malformed targets at the authorization endpoint: a 400 page naming `invalid_target`.
    for bad in [
        "https://fhir.example/r4#part",
        "fhir",
        "http://fhir.example/",
    ] {
        let b = browser();
        let landing = open(&b, &authorize_url(&srv, &client, &[("resource", bad)])).await;
        let (s, page) = landing.page();
        assert_eq!(s, 400, "{bad}: {page}");
        assert!(page.contains("invalid_target"), "{bad}: {page}");
    }

    // A client acting for itself gets no targets: nobody would consent to them.
    let service = srv.service_client().await;
    for bad in [FHIR, "https://fhir.example/#x"] {
        let (s, e) = token_request(
            &srv,
            &service,
            &[("grant_type", "client_credentials"), ("resource", bad)],
        )
        .await;
        assert_eq!(
            (s, e["error"].as_str()),
            (400, Some("invalid_target")),
            "{bad}: {e}"
        );
    }

    // A PAT audience-restricted to another resource is no PAT at the protection API.
    let rs = srv.rs_client("Targeted RS").await;
    let (verifier, challenge) = pkce();
    let loc = authorize_and_allow(
        &srv,
        &rs,
        &[
            ("scope", "uma_protection"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("resource", FHIR),
        ],
        "alice",
        "correct horse battery",
    )
    .await;
    let code = query(&loc)
        .remove("code")
        .unwrap_or_else(|| panic!("no code in {loc}"));
    let (s, t) = redeem_code(
        &srv,
        &rs,
        &code,
        "https://client.example/cb",
        &verifier,
        &[],
    )
    .await;
    assert_eq!(s, 200, "{t}");
    refused_as_invalid_token(&srv.url("/uma/resources"), &t).await;
    // Other parameters still may not repeat (RFC 6749 §3.2).
    let (s, e) = token_request(
        &srv,
        &service,
        &[
            ("grant_type", "client_credentials"),
            ("scope", "api:read"),
            ("scope", "api:write"),
        ],
    )
    .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (400, Some("invalid_request")),
        "{e}"
    );
});

// A resource server an administrator registered for a resource indicator (`resource_uris`)
// introspects the tokens audience-restricted to it, as their audience; a resource server
// registered for another sees them inactive. Only administrators may register `resource_uris`
// (a dynamic client must not make itself the audience of others' tokens), and they are checked
// like `resource` values.
both!(resource_servers_introspect_tokens_for_their_uris, [
    "CUSTODIA_REGISTRATION_MODE" => "open",
], |srv| {
    srv.add_user("alice", "correct horse battery").await;
    let client = srv.web_client().await;
    let server_for = |uris: Value| {
        let srv = &srv;
        async move {
            TestClient::from_json(
                &srv.add_client(json!({
                    "grant_types": ["client_credentials"],
                    "scope": "uma_protection",
                    "resource_uris": uris,
                }))
                .await,
            )
        }
    };
    let fhir_rs = server_for(json!([FHIR])).await;
    let labs_rs = server_for(json!([LABS])).await;
    let (code, verifier) = code_for(&srv, &client, &[FHIR]).await;
    let (s, t) = redeem_code(&srv, &client, &code, "https://client.example/cb", &verifier, &[]).await;
    assert_eq!(s, 200, "{t}");
    let token = t["access_token"].as_str().unwrap_or_default();
    let seen = introspect(&srv, &fhir_rs, token).await;
    assert_eq!(seen["active"], true, "{seen}");
    assert_eq!(seen["aud"], json!([FHIR]), "{seen}");
    assert_eq!(seen["client_id"], json!(client.id), "{seen}");
    assert_eq!(introspect(&srv, &labs_rs, token).await, json!({"active": false}));

    // Checked like `resource` values, not this server's own, and refused to dynamically
    // registered clients.
    let own = srv
        .try_add_client(json!({"grant_types": ["client_credentials"], "resource_uris": [srv.url("/userinfo")]}))
        .await
        .err();
    assert!(
        own.as_ref().is_some_and(|e| e.0 == "invalid_client_metadata" && e.1.contains("own")),
        "{own:?}"
    );
    let refused = srv
        .try_add_client(json!({"grant_types": ["client_credentials"], "resource_uris": ["http://fhir.example/r4"]}))
        .await
        .err();
    assert_eq!(
        refused.as_ref().map(|e| e.0.as_str()),
        Some("invalid_client_metadata"),
        "{refused:?}"
    );
    let resp = http()
        .post(srv.url("/register"))
        .json(&json!({"redirect_uris": ["https://app.example/cb"], "resource_uris": [FHIR]}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status().as_u16(), 400);
    let e: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!(e["error"], "invalid_client_metadata", "{e}");
    assert!(
        e["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("administrator")),
        "{e}"
    );
});

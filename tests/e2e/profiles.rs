//! Profiles over HTTP: what discovery advertises and what registration refuses under `heart`,
//! `heart-fhir` and `igov` (rule ids of `../shared/specs/heart-igov.md`). The full conformance
//! table is built up in `CONFORMANCE.md` as the profiles issue proceeds.

use custodia_tests::*;
use serde_json::{Value, json};

async fn discovery(srv: &TestServer, path: &str) -> Value {
    http()
        .get(srv.url(path))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or(Value::Null)
}

async fn register(srv: &TestServer, metadata: Value) -> (u16, Value) {
    let resp = http()
        .post(srv.url("/register"))
        .json(&metadata)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let s = resp.status().as_u16();
    (s, resp.json().await.unwrap_or(Value::Null))
}

// HEART-UMA-08, HEART-OAUTH-12, HEART-OAUTH-22, HEART-UMA-07: under `heart-fhir` discovery names
// the HEART profiles and only the allowed client authentication; registration refuses a client
// secret and several grant types, and takes a key-authenticated client.
both!(heart_discovery_and_registration, [
    "CUSTODIA_PROFILE" => "heart-fhir",
    "CUSTODIA_REGISTRATION_MODE" => "open",
], |srv| {
    let uma = discovery(&srv, "/.well-known/uma2-configuration").await;
    let oidc = discovery(&srv, "/.well-known/openid-configuration").await;
    assert_eq!(
        uma["uma_profiles_supported"],
        json!([
            "https://openid.net/specs/openid-heart-uma2-1_0.html",
            "https://openid.net/specs/openid-heart-fhir-oauth2-1_0.html"
        ])
    );
    assert_eq!(
        oidc["token_endpoint_auth_methods_supported"],
        json!(["private_key_jwt", "none"])
    );
    for k in ["issuer", "token_endpoint", "authorization_endpoint", "jwks_uri"] {
        assert_eq!(uma[k], oidc[k], "{k}");
    }
    let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": "k1",
        "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]});
    let (s, v) = register(&srv, json!({
        "client_name": "Secret app",
        "redirect_uris": ["https://client.example/cb"],
        "token_endpoint_auth_method": "client_secret_basic",
    }))
    .await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_client_metadata")), "{v}");
    let (s, v) = register(&srv, json!({
        "client_name": "Two modes",
        "redirect_uris": ["https://client.example/cb"],
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks": jwks,
        "grant_types": ["authorization_code", "client_credentials"],
    }))
    .await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_client_metadata")), "{v}");
    assert!(v["error_description"].as_str().is_some_and(|d| d.contains("one grant type")), "{v}");
    // HEART-OAUTH-24: no dynamic registration of client_credentials clients.
    let (s, v) = register(&srv, json!({
        "client_name": "Service",
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks": jwks,
        "grant_types": ["client_credentials"],
    }))
    .await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_client_metadata")), "{v}");
    assert!(v["error_description"].as_str().is_some_and(|d| d.contains("register themselves")), "{v}");
    let (s, v) = register(&srv, json!({
        "client_name": "Full client",
        "redirect_uris": ["https://client.example/cb"],
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks": jwks,
        "grant_types": ["authorization_code", "refresh_token"],
    }))
    .await;
    assert_eq!(s, 201, "{v}");
});

// IGOV-OAUTH-19, IGOV-OAUTH-11, IGOV-OAUTH-04: under `igov` only `private_key_jwt`, no http
// loopback redirect URIs for native clients, and the server's own keys are not RS256;
// IGOV-OIDC-02: OpenID Connect requests carry `state` and `nonce`.
both!(igov_discovery_and_registration, [
    "CUSTODIA_PROFILE" => "igov",
    "CUSTODIA_REGISTRATION_MODE" => "open",
], |srv| {
    let d = discovery(&srv, "/.well-known/oauth-authorization-server").await;
    assert_eq!(d["token_endpoint_auth_methods_supported"], json!(["private_key_jwt"]));
    assert!(
        d["id_token_signing_alg_values_supported"]
            .as_array()
            .is_some_and(|a| !a.contains(&json!("RS256"))),
        "{d}"
    );
    assert_eq!(d["dpop_signing_alg_values_supported"], json!(["ES256", "PS256"]));
    assert_eq!(d["tls_client_certificate_bound_access_tokens"], json!(false));
    // IGOV-OAUTH-17: an authorization request must name its redirect URI.
    let client = srv
        .add_key_client(json!({
            "client_name": "Gov app",
            "redirect_uris": ["https://client.example/cb"],
            "grant_types": ["authorization_code"],
            "scope": "openid",
            "dpop_bound_access_tokens": true,
        }))
        .await;
    let (_, challenge) = pkce();
    let pkce_q = [
        ("scope", "openid"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("state", "s1"),
        ("nonce", "n1"),
    ];
    // IGOV-OIDC-02: `state` and `nonce` are required of OpenID Connect requests.
    for missing in ["state", "nonce"] {
        let q: Vec<(&str, &str)> = pkce_q.iter().copied().filter(|(k, _)| *k != missing).collect();
        let resp = browser()
            .get(authorize_url(&srv, &client, &q))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(resp.status().as_u16(), 400, "{missing}");
        assert!(resp.headers().get("location").is_none());
        let body = resp.text().await.unwrap_or_default();
        assert!(body.contains("requires") && body.contains(missing), "{body}");
    }
    let mut without = pkce_q.to_vec();
    without.push(("redirect_uri", ""));
    let resp = browser()
        .get(authorize_url(&srv, &client, &without))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status().as_u16(), 400);
    assert!(resp.headers().get("location").is_none());
    let body = resp.text().await.unwrap_or_default();
    assert!(
        body.contains("requires") && body.contains("redirect_uri"),
        "{body}"
    );
    let resp = browser()
        .get(authorize_url(&srv, &client, &pkce_q))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status().as_u16(), 200, "with it, the sign-in page");
    let (s, v) = register(&srv, json!({
        "client_name": "Loopback app",
        "application_type": "native",
        "redirect_uris": ["http://127.0.0.1:9000/cb"],
        "token_endpoint_auth_method": "none",
    }))
    .await;
    assert_eq!(s, 400, "{v}");
});

// The UMA flow under `heart-fhir` with `private_key_jwt` clients (HEART-UMA-02, -03), FHIR scopes
// and types at registration (HEART-FHIRUMA-01, -02), claims gathered at the claims interaction
// endpoint, and a DPoP-bound RPT (HEART-UMA-04; DPOP-03, -07) that the resource server's PAT
// introspects with its binding. (The example FHIR server joins once the SDK authenticates with
// `private_key_jwt`.)
both!(uma_flow_under_heart_fhir, [
    "CUSTODIA_PROFILE" => "heart-fhir",
], |srv| {
    use crate::grant::{PW, UMA_GRANT, err, owner_session};
    use crate::grant_rules::{gather, introspect_as, permission_sets, register, set, share_with, ticket};
    srv.add_user("alice", PW).await;
    let bob = srv.add_user("bob", PW).await;
    let rs = srv
        .add_key_client(json!({
            "client_name": "FHIR server",
            "redirect_uris": ["https://client.example/cb"],
            "grant_types": ["authorization_code", "refresh_token"],
            "scope": "openid uma_protection",
        }))
        .await;
    let pat = srv.pat(&rs, "alice", PW).await;
    let obs = register(
        &srv,
        &pat,
        "Observations",
        &["patient/Observation.read", "patient/Observation.write"],
    )
    .await;
    let (s, _, v) = bearer_json(
        custodia_tests::reqwest::Method::POST,
        &srv.url("/uma/resources"),
        Some(&pat),
        Some(&json!({"resource_scopes": ["read"], "type": "https://rs.example/t/lab"})),
    )
    .await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_request")), "{v}");
    let owner = owner_session(&srv, "alice").await;
    share_with(&srv, &owner, &obs, &bob, &["patient/Observation.read"]).await;

    let app = srv
        .add_key_client(json!({
            "client_name": "Clinic app",
            "redirect_uris": ["https://client.example/cb"],
            "claims_redirect_uris": ["https://client.example/claims"],
            "grant_types": [UMA_GRANT],
            "scope": "openid",
        }))
        .await;
    let t = ticket(&srv, &pat, &[(obs.as_str(), &["patient/Observation.read"])]).await;
    let (s, v) = token_request(&srv, &app, &[("grant_type", UMA_GRANT), ("ticket", &t)]).await;
    assert_eq!((s, err(&v)), (403, "need_info"), "{v}");
    let t = v["ticket"].as_str().unwrap_or_default().to_string();
    let back = gather(&srv, &app, &t, "bob", false).await;
    let t = query(&back).remove("ticket").unwrap_or_default();

    // DPoP-bound RPT, the client authenticated by its key.
    let pair = josekit::jws::ES256.generate_key_pair().unwrap_or_else(|e| panic!("{e}"));
    let (private, public) = (pair.to_jwk_private_key(), pair.to_jwk_public_key());
    let mut h = josekit::jws::JwsHeader::new();
    h.set_token_type("dpop+jwt");
    h.set_jwk(public);
    let mut p = josekit::jwt::JwtPayload::new();
    let now = srv.core.now();
    for (k, val) in [("jti", json!("heart-1")), ("htm", json!("POST")), ("htu", json!(srv.url("/token"))), ("iat", json!(now))] {
        let _ = p.set_claim(k, Some(val));
    }
    let signer = josekit::jws::ES256.signer_from_jwk(&private).unwrap_or_else(|e| panic!("{e}"));
    let proof = josekit::jwt::encode_with_signer(&p, &h, &signer).unwrap_or_else(|e| panic!("{e}"));
    let mut form: Vec<(&str, String)> = vec![("grant_type", UMA_GRANT.into()), ("ticket", t.clone())];
    form.extend(app.auth_fields(&srv.url("/token")));
    let resp = http()
        .post(srv.url("/token"))
        .header("DPoP", proof)
        .form(&form)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let s = resp.status().as_u16();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!((s, &v["token_type"]), (200, &json!("DPoP")), "{v}");
    let rpt = v["access_token"].as_str().unwrap_or_default().to_string();
    let seen = introspect_as(&srv, &rs, &pat, &rpt).await;
    assert_eq!(permission_sets(&seen), vec![set(&obs, &["patient/Observation.read"])], "{seen}");
    assert!(seen["cnf"]["jkt"].is_string(), "{seen}");
    assert_eq!(seen["token_type"], json!("DPoP"));
});

/// The consent page the owner sees for `client` (signing in as `username`).
async fn consent_page(srv: &TestServer, client: &TestClient, username: &str) -> String {
    let (_, challenge) = pkce();
    let b = browser();
    let login = open(
        &b,
        &authorize_url(
            srv,
            client,
            &[
                ("scope", "openid"),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ],
        ),
    )
    .await;
    let (_, page) = login.page();
    match submit_login(&b, srv, page, username, "correct horse battery").await {
        Landing::Page(_, consent) => consent,
        other => panic!("no consent page: {:?}", other.redirect()),
    }
}

// HEART-OAUTH-25, -27: the consent page tells a dynamically registered client from one an
// administrator added. HEART-OAUTH-30, IGOV-OAUTH-34: discovery and the JWKS may be cached for a
// week under the profiles (a minute under `default`). HEART-OAUTH-34: access tokens carry `azp`.
both!(consent_markers_cache_headers_and_azp, [
    "CUSTODIA_PROFILE" => "heart",
    "CUSTODIA_REGISTRATION_MODE" => "open",
], |srv| {
    srv.add_user("alice", "correct horse battery").await;
    let (s, v) = register(&srv, json!({
        "client_name": "Self-registered app",
        "application_type": "native",
        "redirect_uris": ["https://client.example/cb"],
        "token_endpoint_auth_method": "none",
    }))
    .await;
    assert_eq!(s, 201, "{v}");
    let dynamic = TestClient::from_json(&v);
    let page = consent_page(&srv, &dynamic, "alice").await;
    assert!(page.contains("registered itself"), "{page}");
    let vetted = srv
        .add_key_client(json!({
            "client_name": "Vetted app",
            "redirect_uris": ["https://client.example/cb"],
            "grant_types": ["authorization_code"],
            "scope": "openid",
        }))
        .await;
    let page = consent_page(&srv, &vetted, "alice").await;
    assert!(!page.contains("registered itself"), "{page}");

    // HEART-OIDC-02, HEART-OAUTH-29: the OpenID discovery document under `heart` has the members
    // of the HEART/iGov OP discovery list (iGov OIDC §3.7, imported from HEART OIDC 1.0).
    let d = get_json(&srv.url("/.well-known/openid-configuration")).await;
    for m in [
        "issuer", "authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint",
        "introspection_endpoint", "revocation_endpoint",
    ] {
        assert!(d[m].as_str().is_some_and(|u| u.starts_with(&srv.base)), "{m}: {d}");
    }
    for (m, must) in [("scopes_supported", "openid"), ("claims_supported", "sub")] {
        assert!(d[m].as_array().is_some_and(|a| a.iter().any(|v| v == must)), "{m}: {d}");
    }
    for path in ["/.well-known/openid-configuration", "/.well-known/uma2-configuration", "/jwks"] {
        let resp = http().get(srv.url(path)).send().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            resp.headers().get("cache-control").and_then(|v| v.to_str().ok()),
            Some("public, max-age=604800"),
            "{path}"
        );
    }

    let t = code_flow_tokens(&srv, &vetted, "alice", "correct horse battery", "openid").await;
    let at = t["access_token"].as_str().unwrap_or_default();
    let claims = jwt_parts(at).1;
    assert_eq!(claims["azp"], json!(vetted.id));
    assert_eq!(claims["client_id"], json!(vetted.id));
    // HEART-OAUTH-34, IGOV-OAUTH-40: a `jti` of 256 random bits (43 base64url characters).
    let jti = claims["jti"].as_str().unwrap_or_default();
    assert!(
        jti.len() >= 43 && jti.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{jti}"
    );
});

/// A form POST to `path` with an optional bearer token: status and JSON body.
async fn post_form(
    srv: &TestServer,
    path: &str,
    bearer: Option<&str>,
    form: &[(&str, String)],
) -> (u16, Value) {
    let mut req = http().post(srv.url(path)).form(form);
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    let resp = req.send().await.unwrap_or_else(|e| panic!("{e}"));
    let s = resp.status().as_u16();
    (s, resp.json().await.unwrap_or(Value::Null))
}

/// `token=<token>` plus `client`'s assertion for the endpoint at `path`.
fn with_assertion(
    srv: &TestServer,
    client: &TestClient,
    path: &str,
    token: &str,
) -> Vec<(&'static str, String)> {
    let mut form = vec![("token", token.to_string())];
    form.extend(client.auth_fields(&srv.url(path)));
    form
}

// HEART-OAUTH-41, IGOV-OAUTH-44: a resource server is a client of its own, and only resource
// servers introspect. HEART-OAUTH-40, CONF-11: introspection and revocation need client
// authentication — a PAT comes with its resource server's assertion. HEART-OAUTH-39: the answer
// for a non-RPT token has `active`, `scope`, `exp`, `sub`, `client_id`.
both!(heart_introspection_and_revocation, [
    "CUSTODIA_PROFILE" => "heart",
], |srv| {
    for (meta, what) in [
        (json!({"client_name": "RS and API client", "redirect_uris": ["https://rs.example/cb"],
            "grant_types": ["authorization_code"], "scope": "openid uma_protection api:read"}), "another scope"),
        (json!({"client_name": "RS and service", "grant_types": ["client_credentials"],
            "scope": "uma_protection"}), "client_credentials"),
    ] {
        match srv.try_add_key_client(meta).await {
            Err((code, description)) => {
                assert_eq!(code, "invalid_client_metadata", "{what}");
                assert!(description.contains("HEART-OAUTH-41"), "{what}: {description}");
            }
            Ok(c) => panic!("{what}: registered as {}", c.id),
        }
    }
    srv.add_user("alice", "correct horse battery").await;
    let rs = srv
        .add_key_client(json!({
            "client_name": "Resource server",
            "redirect_uris": ["https://client.example/cb"],
            "grant_types": ["authorization_code", "refresh_token"],
            "scope": "openid uma_protection",
        }))
        .await;
    let service = srv
        .add_key_client(json!({
            "client_name": "Service",
            "grant_types": ["client_credentials"],
            "scope": "api:read",
        }))
        .await;
    let mut form = vec![("grant_type", "client_credentials".to_string())];
    form.extend(service.auth_fields(&srv.url("/token")));
    let (s, v) = post_form(&srv, "/token", None, &form).await;
    assert_eq!(s, 200, "{v}");
    let at = v["access_token"].as_str().unwrap_or_default().to_string();

    // An ordinary client cannot introspect, not even its own token.
    let (s, v) = post_form(&srv, "/introspect", None, &with_assertion(&srv, &service, "/introspect", &at)).await;
    assert_eq!((s, v["error"].as_str()), (401, Some("invalid_client")), "{v}");
    assert!(v["error_description"].as_str().unwrap_or_default().contains("only resource servers"), "{v}");

    // The resource server authenticates with its key.
    let pat = srv.pat(&rs, "alice", "correct horse battery").await;
    let (s, v) = post_form(&srv, "/introspect", None, &with_assertion(&srv, &rs, "/introspect", &pat)).await;
    assert_eq!((s, &v["active"]), (200, &json!(true)), "{v}");
    assert!(v["scope"].as_str().is_some_and(|s| s.split(' ').any(|x| x == "uma_protection")), "{v}");
    assert!(v["exp"].as_i64().is_some() && v["sub"].as_str().is_some(), "{v}");
    assert_eq!(v["client_id"], json!(rs.id));

    // A PAT alone is not enough; with its resource server's assertion it is; with another
    // client's it is not.
    let (s, v) = post_form(&srv, "/introspect", Some(&pat), &[("token", pat.clone())]).await;
    assert_eq!((s, v["error"].as_str()), (401, Some("invalid_client")), "{v}");
    assert!(v["error_description"].as_str().unwrap_or_default().contains("client_assertion"), "{v}");
    let (s, v) = post_form(&srv, "/introspect", Some(&pat), &with_assertion(&srv, &rs, "/introspect", &pat)).await;
    assert_eq!((s, &v["active"]), (200, &json!(true)), "{v}");
    let (s, v) = post_form(&srv, "/introspect", Some(&pat), &with_assertion(&srv, &service, "/introspect", &pat)).await;
    assert_eq!((s, v["error"].as_str()), (401, Some("invalid_client")), "{v}");
    let (s, v) = post_form(&srv, "/introspect", None, &[("token", pat.clone())]).await;
    assert_eq!((s, v["error"].as_str()), (401, Some("invalid_client")), "{v}");

    // Revocation: a public client has no client authentication under `heart`; a keyed one revokes.
    let public = TestClient::from_json(
        &srv.add_client(json!({
            "client_name": "Public app",
            "application_type": "native",
            "redirect_uris": ["https://client.example/cb"],
            "token_endpoint_auth_method": "none",
            "scope": "openid",
        }))
        .await,
    );
    let d = get_json(&srv.url("/.well-known/openid-configuration")).await;
    assert_eq!(d["revocation_endpoint_auth_methods_supported"], json!(["private_key_jwt"]));
    let (s, v) = post_form(&srv, "/revoke", None, &[("token", at.clone()), ("client_id", public.id.clone())]).await;
    assert_eq!((s, v["error"].as_str()), (401, Some("invalid_client")), "{v}");
    let (s, _) = post_form(&srv, "/revoke", None, &with_assertion(&srv, &service, "/revoke", &at)).await;
    assert_eq!(s, 200);
});

// IGOV-OAUTH-10, IGOV-OAUTH-12, CONF-06: under `igov` every client registers
// `dpop_bound_access_tokens` and every token request carries a DPoP proof; the token is bound.
both!(igov_tokens_are_sender_constrained, [
    "CUSTODIA_PROFILE" => "igov",
], |srv| {
    match srv
        .try_add_key_client(json!({"client_name": "Unbound", "grant_types": ["client_credentials"], "scope": "api:read"}))
        .await
    {
        Err((code, description)) => {
            assert_eq!(code, "invalid_client_metadata");
            assert!(description.contains("IGOV-OAUTH-10"), "{description}");
        }
        Ok(c) => panic!("registered as {}", c.id),
    }
    let app = srv
        .add_key_client(json!({
            "client_name": "Bound",
            "grant_types": ["client_credentials"],
            "scope": "api:read",
            "dpop_bound_access_tokens": true,
        }))
        .await;
    let form = || {
        let mut f = vec![("grant_type", "client_credentials".to_string())];
        f.extend(app.auth_fields(&srv.url("/token")));
        f
    };
    let (s, v) = post_form(&srv, "/token", None, &form()).await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_dpop_proof")), "{v}");
    assert!(v["error_description"].as_str().unwrap_or_default().contains("sender-constrained"), "{v}");
    let k = crate::dpop::key();
    let proof = crate::dpop::proof_at(&k, "POST", &srv.url("/token"), None, srv.core.now());
    let resp = http()
        .post(srv.url("/token"))
        .header("DPoP", proof)
        .form(&form())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let s = resp.status().as_u16();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!((s, &v["token_type"]), (200, &json!("DPoP")), "{v}");
    let claims = jwt_parts(v["access_token"].as_str().unwrap_or_default()).1;
    assert_eq!(claims["cnf"]["jkt"], json!(crate::dpop::jkt(&k)), "{claims}");
    // IGOV-OAUTH-44: a client that is not a protected resource cannot introspect, not even its
    // own token.
    let at = v["access_token"].as_str().unwrap_or_default();
    let (s, v) = post_form(&srv, "/introspect", None, &with_assertion(&srv, &app, "/introspect", at)).await;
    assert_eq!((s, v["error"].as_str()), (401, Some("invalid_client")), "{v}");
    assert!(v["error_description"].as_str().unwrap_or_default().contains("only resource servers"), "{v}");
});

// HEART-OAUTH-18, IGOV-OAUTH-22: a `jwks_uri` is fetched at registration and must serve a JWK
// set; a page or a 404 is `invalid_client_metadata` with the reason. (The development setting
// lets the test's key server be on loopback.)
both!(jwks_uri_checked_at_registration, [
    "CUSTODIA_PROFILE" => "heart",
    "CUSTODIA_REGISTRATION_MODE" => "open",
    "CUSTODIA_INSECURE_LOOPBACK_HTTP_REDIRECTS" => "true",
], |srv| {
    let pair = josekit::jws::ES256.generate_key_pair().unwrap_or_else(|e| panic!("{e}"));
    let mut jwk = pair.to_jwk_public_key();
    jwk.set_key_id("k1");
    let doc = json!({"keys": [Value::Object(jwk.as_ref().clone())]}).to_string();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let server = actix_web::HttpServer::new(move || {
        let doc = doc.clone();
        actix_web::App::new()
            .route("/jwks", actix_web::web::get().to(move || {
                let doc = doc.clone();
                async move { actix_web::HttpResponse::Ok().content_type("application/json").body(doc) }
            }))
            .route("/page", actix_web::web::get().to(|| async {
                actix_web::HttpResponse::Ok().content_type("text/html").body("<html><body>keys</body></html>")
            }))
    })
    .workers(1)
    .listen(listener)
    .unwrap_or_else(|e| panic!("{e}"))
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    let metadata = |path: &str| json!({
        "client_name": "Keyed app",
        "redirect_uris": ["https://client.example/cb"],
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks_uri": format!("http://127.0.0.1:{port}{path}"),
    });
    for (path, reason) in [("/page", "not JSON"), ("/missing", "HTTP 404")] {
        let (s, v) = register(&srv, metadata(path)).await;
        assert_eq!((s, v["error"].as_str()), (400, Some("invalid_client_metadata")), "{path}: {v}");
        let d = v["error_description"].as_str().unwrap_or_default();
        assert!(d.contains("JWK set") && d.contains(reason), "{path}: {d}");
    }
    let (s, v) = register(&srv, metadata("/jwks")).await;
    assert_eq!(s, 201, "{v}");
    handle.stop(true).await;
});

/// A software statement: `claims` signed ES256 by `key` (`kid` `ss1`).
fn statement(key: &josekit::jwk::Jwk, claims: Value) -> String {
    let mut h = josekit::jws::JwsHeader::new();
    h.set_key_id("ss1");
    let p = josekit::jwt::JwtPayload::from_map(claims.as_object().cloned().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}"));
    let signer = josekit::jws::ES256
        .signer_from_jwk(key)
        .unwrap_or_else(|e| panic!("{e}"));
    josekit::jwt::encode_with_signer(&p, &h, &signer).unwrap_or_else(|e| panic!("{e}"))
}

/// The software-statement issuer of the test below: its key pair, made once per process.
fn statement_issuer() -> &'static (josekit::jwk::Jwk, String) {
    static ISSUER: std::sync::OnceLock<(josekit::jwk::Jwk, String)> = std::sync::OnceLock::new();
    ISSUER.get_or_init(|| {
        let pair = josekit::jws::ES256
            .generate_key_pair()
            .unwrap_or_else(|e| panic!("{e}"));
        let mut public = pair.to_jwk_public_key();
        public.set_key_id("ss1");
        let setting = json!([{
            "issuer": "https://statements.example",
            "jwks": {"keys": [Value::Object(public.as_ref().clone())]},
        }])
        .to_string();
        (pair.to_jwk_private_key(), setting)
    })
}

// HEART-OAUTH-26, RFC 7591 §2.3: dynamic registration with a software statement from a trusted
// issuer — its members win over the ones sent in the clear, it is returned, and the consent page
// names its issuer (HEART-OAUTH-27, IGOV-OAUTH-31, with how long access lasts); a statement
// without a member the profile requires, one from an issuer not trusted here, one with a bad
// signature, and a client claiming an issuer itself are refused or ignored.
both!(software_statements, [
    "CUSTODIA_PROFILE" => "heart",
    "CUSTODIA_REGISTRATION_MODE" => "open",
    "CUSTODIA_SOFTWARE_STATEMENT_ISSUERS" => statement_issuer().1.as_str(),
], |srv| {
    srv.add_user("alice", "correct horse battery").await;
    let (key, _) = statement_issuer();
    let client_key = josekit::jws::ES256.generate_key_pair().unwrap_or_else(|e| panic!("{e}"));
    let mut client_jwk = client_key.to_jwk_public_key();
    client_jwk.set_key_id("k1");
    let members = json!({
        "iss": "https://statements.example",
        "redirect_uris": ["https://client.example/cb"],
        "grant_types": ["authorization_code"],
        "client_name": "Vouched app",
        "client_uri": "https://client.example",
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks": {"keys": [Value::Object(client_jwk.as_ref().clone())]},
        "scope": "openid",
    });
    let good = statement(key, members.clone());
    let (s, v) = register(&srv, json!({
        "software_statement": good,
        "client_name": "Name in the clear",
        "redirect_uris": ["https://client.example/cb"],
    }))
    .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["client_name"], json!("Vouched app"), "the statement's members win");
    assert_eq!(v["software_statement"], json!(good));
    let vouched = TestClient::from_json(&v);
    let page = consent_page(&srv, &vouched, "alice").await;
    assert!(page.contains("https://statements.example"), "{page}");
    assert!(page.contains("Access lasts up to 10 minutes"), "the test server's access-token lifetime: {page}");

    let mut without_uri = members.clone();
    if let Some(o) = without_uri.as_object_mut() {
        o.remove("client_uri");
    }
    let stranger = josekit::jws::ES256.generate_key_pair().unwrap_or_else(|e| panic!("{e}"));
    let mut other_issuer = members.clone();
    other_issuer["iss"] = json!("https://elsewhere.example");
    for (statement_jwt, code, wanted) in [
        (statement(key, without_uri), "invalid_software_statement", "`client_uri`"),
        (statement(key, other_issuer), "unapproved_software_statement", "elsewhere.example"),
        (statement(&stranger.to_jwk_private_key(), members.clone()), "invalid_software_statement", "signature"),
        ("not-a-jws".to_string(), "invalid_software_statement", "compact JWS"),
    ] {
        let (s, v) = register(&srv, json!({"software_statement": statement_jwt, "redirect_uris": ["https://client.example/cb"]})).await;
        assert_eq!((s, v["error"].as_str()), (400, Some(code)), "{wanted}: {v}");
        assert!(v["error_description"].as_str().unwrap_or_default().contains(wanted), "{v}");
    }

    // A client cannot vouch for itself.
    let (s, v) = register(&srv, json!({
        "client_name": "Self-vouched",
        "redirect_uris": ["https://client.example/cb"],
        "token_endpoint_auth_method": "none",
        "application_type": "native",
        "software_statement_issuer": "https://statements.example",
    }))
    .await;
    assert_eq!(s, 201, "{v}");
    assert!(v.get("software_statement_issuer").is_none(), "{v}");
    let page = consent_page(&srv, &TestClient::from_json(&v), "alice").await;
    assert!(!page.contains("statements.example"), "{page}");
});

// HEART-OAUTH-16: under `heart` a client's redirect URIs are of one kind — a native client may
// not mix a private-use scheme with an https URI (`invalid_redirect_uri`); one kind is fine.
both!(heart_redirect_uri_categories, [
    "CUSTODIA_PROFILE" => "heart",
    "CUSTODIA_REGISTRATION_MODE" => "open",
], |srv| {
    let native = |uris: Value| json!({
        "client_name": "Native app",
        "application_type": "native",
        "redirect_uris": uris,
        "token_endpoint_auth_method": "none",
    });
    let (s, v) = register(&srv, native(json!(["https://app.example/cb", "com.example.app:/cb"]))).await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_redirect_uri")), "{v}");
    assert!(v["error_description"].as_str().unwrap_or_default().contains("mix"), "{v}");
    let (s, v) = register(&srv, native(json!(["com.example.app:/cb", "com.example.app:/other"]))).await;
    assert_eq!(s, 201, "{v}");
});

// IGOV-OAUTH-12 with the SDK: under `igov` every token is sender-constrained, PATs included. The
// example FHIR server (SDK, `with_dpop_bound_pats`, `private_key_jwt`) gets a DPoP-bound PAT,
// registers its resources and asks for permission tickets with it (`Authorization: DPoP` and a
// proof per call).
both!(sdk_resource_server_under_igov, [
    "CUSTODIA_PROFILE" => "igov",
    "CUSTODIA_INSECURE_LOOPBACK_HTTP_REDIRECTS" => "true",
], |srv| {
    use crate::grant::{PW, owner_session, resource_id, ticket_for};
    let alice = srv.add_user("alice", PW).await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (fhir, rs) = fhir_example_dpop(
        &srv,
        dir.path(),
        custodia_sdk::Verification::Introspection,
        true,
        true,
    )
    .await;
    connect_fhir(&srv, &fhir, "alice", PW).await;
    // The resources were registered through the protection API with the bound PAT.
    let owner = owner_session(&srv, "alice").await;
    let patient = resource_id(&owner, &srv, "Patient record").await;
    assert!(!patient.is_empty());
    // And a ticket is asked for with it.
    let ticket = ticket_for(&format!("{fhir}/fhir/Patient/{alice}")).await;
    assert!(ticket.starts_with("cst_"), "{ticket}");
    // Under `igov` a token request without a proof is refused (`tests/e2e/profiles.rs::
    // igov_tokens_are_sender_constrained`), so the PAT that did this is DPoP-bound, and a bound
    // PAT is accepted only with a valid proof per call (`tests/e2e/dpop.rs`).
    assert!(!rs.id.is_empty());
});

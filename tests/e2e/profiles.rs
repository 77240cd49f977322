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
// loopback redirect URIs for native clients, and the server's own keys are not RS256.
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
    let (s, v) = register(&srv, json!({
        "client_name": "Loopback app",
        "application_type": "native",
        "redirect_uris": ["http://127.0.0.1:9000/cb"],
        "token_endpoint_auth_method": "none",
    }))
    .await;
    assert_eq!(s, 400, "{v}");
});

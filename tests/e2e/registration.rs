//! Dynamic client registration (RFC 7591) in its three modes, and the management API (RFC 7592).

use custodia_tests::*;
use serde_json::{Value, json};

async fn register(srv: &TestServer, bearer: Option<&str>, body: Value) -> (u16, Value) {
    let mut r = http().post(srv.url("/register")).json(&body);
    if let Some(b) = bearer {
        r = r.bearer_auth(b);
    }
    let resp = r.send().await.unwrap_or_else(|e| panic!("{e}"));
    let s = resp.status().as_u16();
    (s, resp.json().await.unwrap_or(Value::Null))
}

both!(token_mode_needs_an_initial_access_token, |srv| {
    let body = json!({"redirect_uris": ["https://app.example/cb"], "client_name": "App"});
    let (s, e) = register(&srv, None, body.clone()).await;
    assert_eq!((s, e["error"].as_str()), (401, Some("invalid_token")));
    let (s, _) = register(&srv, Some("cst_iat_forged"), body.clone()).await;
    assert_eq!(s, 401);
    let iat = srv
        .store
        .run(|c| {
            custodia_server::protocol::registration::create_initial_access_token(
                c,
                None,
                custodia_server::now(),
            )
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (s, v) = register(&srv, Some(iat.expose_secret()), body).await;
    assert_eq!(s, 201, "{v}");
    assert!(
        v["client_id"].is_string()
            && v["client_secret"].is_string()
            && v["registration_access_token"].is_string()
    );
    assert!(
        !srv.dump_database().await.contains(iat.expose_secret()),
        "initial access tokens stored hashed"
    );
});

both!(closed_mode_refuses, ["CUSTODIA_REGISTRATION_MODE" => "closed"], |srv| {
    let (s, e) = register(&srv, None, json!({"redirect_uris": ["https://app.example/cb"]})).await;
    assert_eq!((s, e["error"].as_str()), (403, Some("access_denied")));
    let meta: Value = http().get(srv.url("/.well-known/oauth-authorization-server")).send().await.unwrap_or_else(|e| panic!("{e}")).json().await.unwrap_or_default();
    assert!(meta.get("registration_endpoint").is_none(), "closed registration is not advertised");
});

both!(open_mode_and_rfc7592_management, ["CUSTODIA_REGISTRATION_MODE" => "open"], |srv| {
    let (s, v) = register(&srv, None, json!({
        "redirect_uris": ["https://app.example/cb"],
        "client_name": "App",
        "client_id": "i-choose-my-id",
        "grant_types": ["authorization_code", "refresh_token"],
        "scope": "openid profile",
        "unknown_member": 42
    }))
    .await;
    assert_eq!(s, 201, "{v}");
    let id = v["client_id"].as_str().unwrap_or_default().to_string();
    assert_ne!(id, "i-choose-my-id", "BCP-27: the server picks the client id");
    assert!(v.get("unknown_member").is_none());
    assert_eq!(v["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(v["client_secret_expires_at"], 0);
    let rat = v["registration_access_token"].as_str().unwrap_or_default().to_string();
    let uri = v["registration_client_uri"].as_str().unwrap_or_default().to_string();
    assert_eq!(uri, srv.url(&format!("/register/{id}")));
    assert!(!srv.dump_database().await.contains(&rat), "registration access tokens stored hashed");

    // Read.
    let r = http().get(&uri).bearer_auth(&rat).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 200);
    let read: Value = r.json().await.unwrap_or_default();
    assert_eq!(read["client_name"], "App");
    assert!(read.get("client_secret").is_none(), "the secret is never shown again");
    // Wrong token, or another client's path: 401.
    let r = http().get(&uri).bearer_auth("cst_rat_nope").send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 401);
    let r = http().get(srv.url("/register/someone-else")).bearer_auth(&rat).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 401);

    // Update: must name the client; metadata re-validated.
    let r = http().put(&uri).bearer_auth(&rat).json(&json!({"client_id": id, "redirect_uris": ["https://app.example/new"], "client_name": "App 2", "grant_types": ["authorization_code"]})).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 200);
    let upd: Value = r.json().await.unwrap_or_default();
    assert_eq!(upd["redirect_uris"], json!(["https://app.example/new"]));
    let r = http().put(&uri).bearer_auth(&rat).json(&json!({"client_id": id, "redirect_uris": ["http://app.example/new"]})).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 400);
    let r = http().put(&uri).bearer_auth(&rat).json(&json!({"redirect_uris": ["https://app.example/new"]})).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 400);
    // An update may not make a dynamic client the audience of others' tokens (`resource_uris`).
    let r = http().put(&uri).bearer_auth(&rat).json(&json!({"client_id": id, "redirect_uris": ["https://app.example/new"], "resource_uris": ["https://fhir.example/r4"]})).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 400);
    let e: Value = r.json().await.unwrap_or_default();
    assert_eq!(e["error"], "invalid_client_metadata", "{e}");

    // Delete: gone, and the client cannot authenticate any more.
    let secret = v["client_secret"].as_str().unwrap_or_default().to_string();
    let r = http().delete(&uri).bearer_auth(&rat).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 204);
    let r = http().get(&uri).bearer_auth(&rat).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 401);
    let r = http().post(srv.url("/token")).basic_auth(&id, Some(&secret)).form(&[("grant_type", "refresh_token"), ("refresh_token", "x")]).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 401);
});

both!(private_key_jwt_client_registers_and_authenticates, ["CUSTODIA_REGISTRATION_MODE" => "open"], |srv| {
    use josekit::jws::ES256;
    let kp = ES256.generate_key_pair().unwrap_or_else(|e| panic!("{e}"));
    let jwk = kp.to_jwk_public_key();
    let (s, v) = register(&srv, None, json!({
        "grant_types": ["client_credentials"],

        "token_endpoint_auth_method": "private_key_jwt",
        "jwks": {"keys": [Value::Object(jwk.as_ref().clone())]}
    }))
    .await;
    assert_eq!(s, 201, "{v}");
    assert!(v.get("client_secret").is_none(), "no secret for private_key_jwt");
    let id = v["client_id"].as_str().unwrap_or_default().to_string();
    let now = custodia_server::now();
    let claims = json!({"iss": id, "sub": id, "aud": srv.base, "exp": now + 60, "iat": now, "jti": "once"});
    let p = josekit::jwt::JwtPayload::from_map(claims.as_object().cloned().unwrap_or_default()).unwrap_or_else(|e| panic!("{e}"));
    let signer = ES256.signer_from_der(kp.to_der_private_key()).unwrap_or_else(|e| panic!("{e}"));
    let a = josekit::jwt::encode_with_signer(&p, &josekit::jws::JwsHeader::new(), &signer).unwrap_or_else(|e| panic!("{e}"));
    let form = [("grant_type", "client_credentials"), ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"), ("client_assertion", a.as_str())];
    let r = http().post(srv.url("/token")).form(&form).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 200, "issuer as audience is accepted");
    let r = http().post(srv.url("/token")).form(&form).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 401, "jti replay refused");
});

both!(
/// Dynamically registered clients cannot give themselves API scopes, and cannot point `jwks_uri` at
/// this machine or an internal address (the server would fetch it: SSRF).
dynamic_clients_are_restricted, ["CUSTODIA_REGISTRATION_MODE" => "open"], |srv| {
    for (body, label) in [
        (json!({"grant_types": ["client_credentials"], "scope": "api:admin"}), "API scope"),
        (json!({"redirect_uris": ["https://app.example/cb"], "scope": "openid patient/*.write"}), "FHIR scope"),
        (json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "http://127.0.0.1:8080/jwks"}), "loopback jwks_uri"),
        (json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://10.0.0.1/jwks"}), "internal address"),
        (json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://169.254.169.254/latest"}), "metadata address"),
        (json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://intranet/jwks"}), "single-label host"),
    ] {
        let (s, v) = register(&srv, None, body).await;
        assert_eq!((s, v["error"].as_str()), (400, Some("invalid_client_metadata")), "{label}: {v}");
    }
    let (s, _) = register(&srv, None, json!({"redirect_uris": ["https://app.example/cb"], "scope": "openid email"})).await;
    assert_eq!(s, 201);
});

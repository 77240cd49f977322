//! The complete authorization code + PKCE flow with the `openidconnect` crate as the relying party:
//! discovery, login, consent, code, tokens; the ID token verifies against the JWKS (signature,
//! `iss`, `aud`, `nonce`, `at_hash`); userinfo returns the user's claims; refresh rotates;
//! revocation and introspection agree.

use custodia_tests::*;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreProviderMetadata, CoreUserInfoClaims,
};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, RefreshToken, Scope, TokenResponse,
};

both!(code_flow_with_openidconnect_rp, |srv| {
    let user_id = srv.add_user("alice", "correct horse battery").await;
    let client = srv.web_client().await;
    let http = openidconnect::reqwest::ClientBuilder::new()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_else(|e| panic!("{e}"));

    let meta = CoreProviderMetadata::discover_async(
        IssuerUrl::new(srv.base.clone()).unwrap_or_else(|e| panic!("{e}")),
        &http,
    )
    .await
    .unwrap_or_else(|e| panic!("discovery: {e:?}"));
    let rp = CoreClient::from_provider_metadata(
        meta,
        ClientId::new(client.id.clone()),
        client.secret.clone().map(ClientSecret::new),
    )
    .set_redirect_uri(
        RedirectUrl::new("https://client.example/cb".into()).unwrap_or_else(|e| panic!("{e}")),
    );

    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, csrf, nonce) = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("email".into()))
        .set_pkce_challenge(challenge)
        .url();

    let browser = browser();
    let login = open(&browser, auth_url.as_str()).await;
    let (status, page) = login.page();
    assert_eq!(status, 200);
    assert!(
        page.contains("name=\"username\"") && page.contains("name=\"password\""),
        "login form fields"
    );
    let consent = submit_login(&browser, &srv, page, "alice", "correct horse battery").await;
    let (_, consent_page) = consent.page();
    assert!(consent_page.contains("name=\"decision\""), "consent form");
    let done = submit_consent(&browser, &srv, consent_page, "allow").await;
    let Landing::Redirect(status, location) = &done else {
        panic!("expected redirect, got {done:?}")
    };
    assert_eq!(*status, 303, "BCP-04: 303 after a form post");
    assert!(location.starts_with("https://client.example/cb?"));
    let q = query(location);
    assert_eq!(q.get("state"), Some(csrf.secret()), "state round-trips");
    assert_eq!(
        q.get("iss"),
        Some(&srv.base),
        "ISS-01: iss in the authorization response"
    );
    let code = q
        .get("code")
        .unwrap_or_else(|| panic!("no code in {location}"))
        .clone();

    let tokens = rp
        .exchange_code(AuthorizationCode::new(code))
        .unwrap_or_else(|e| panic!("{e}"))
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap_or_else(|e| panic!("token exchange: {e:?}"));
    let id_token = tokens.id_token().unwrap_or_else(|| panic!("no id token"));
    let id_verifier = rp.id_token_verifier();
    let claims = id_token
        .claims(&id_verifier, &nonce)
        .unwrap_or_else(|e| panic!("ID token does not verify: {e}"));
    assert_eq!(claims.subject().as_str(), user_id);
    assert!(claims.auth_time().is_some(), "auth_time");
    let expected = claims
        .access_token_hash()
        .unwrap_or_else(|| panic!("at_hash missing"));
    let alg = id_token.signing_alg().unwrap_or_else(|e| panic!("{e}"));
    let key = id_token
        .signing_key(&id_verifier)
        .unwrap_or_else(|e| panic!("{e}"));
    let actual = AccessTokenHash::from_token(tokens.access_token(), alg, key)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(&actual, expected, "at_hash");

    let info: CoreUserInfoClaims = rp
        .user_info(tokens.access_token().to_owned(), None)
        .unwrap_or_else(|e| panic!("{e}"))
        .request_async(&http)
        .await
        .unwrap_or_else(|e| panic!("userinfo: {e:?}"));
    assert_eq!(info.subject().as_str(), user_id);
    assert_eq!(info.email().map(|e| e.as_str()), Some("alice@example.org"));
    assert_eq!(info.preferred_username().map(|u| u.as_str()), Some("alice"));

    // Refresh rotates: a new refresh token, and the old one is dead.
    let rt1 = tokens
        .refresh_token()
        .unwrap_or_else(|| panic!("no refresh token"))
        .clone();
    let refreshed = rp
        .exchange_refresh_token(&rt1)
        .unwrap_or_else(|e| panic!("{e}"))
        .request_async(&http)
        .await
        .unwrap_or_else(|e| panic!("refresh: {e:?}"));
    let rt2 = refreshed
        .refresh_token()
        .unwrap_or_else(|| panic!("no rotated refresh token"))
        .clone();
    assert_ne!(rt1.secret(), rt2.secret(), "refresh token rotated");
    let new_at = refreshed.access_token().secret().clone();
    assert_eq!(introspect(&srv, &client, &new_at).await["active"], true);
    assert_eq!(
        introspect(&srv, &client, rt2.secret()).await["active"],
        true
    );
    assert_eq!(
        introspect(&srv, &client, rt1.secret()).await["active"],
        false,
        "rotated token inactive"
    );

    // Revocation and introspection agree: revoking the refresh token revokes its access tokens.
    let resp = custodia_tests::http()
        .post(srv.url("/revoke"))
        .basic_auth(&client.id, client.secret.as_deref())
        .form(&[
            ("token", rt2.secret().as_str()),
            ("token_type_hint", "refresh_token"),
        ])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        introspect(&srv, &client, rt2.secret()).await["active"],
        false
    );
    assert_eq!(introspect(&srv, &client, &new_at).await["active"], false);
    let again = rp
        .exchange_refresh_token(&RefreshToken::new(rt2.secret().clone()))
        .unwrap_or_else(|e| panic!("{e}"))
        .request_async(&http)
        .await;
    assert!(again.is_err(), "a revoked refresh token cannot be used");
});

both!(refresh_reuse_revokes_the_family, |srv| {
    // BCP-15: rotate RT1 -> RT2; presenting RT1 again is refused and revokes RT2 and its tokens.
    srv.add_user("bob", "correct horse battery").await;
    let client = srv.web_client().await;
    let t1 = code_flow_tokens(
        &srv,
        &client,
        "bob",
        "correct horse battery",
        "openid offline_access",
    )
    .await;
    let rt1 = t1["refresh_token"].as_str().unwrap_or_default().to_string();
    let (s, t2) = token_request(
        &srv,
        &client,
        &[("grant_type", "refresh_token"), ("refresh_token", &rt1)],
    )
    .await;
    assert_eq!(s, 200, "{t2}");
    let rt2 = t2["refresh_token"].as_str().unwrap_or_default().to_string();
    let at2 = t2["access_token"].as_str().unwrap_or_default().to_string();
    let (s, err) = token_request(
        &srv,
        &client,
        &[("grant_type", "refresh_token"), ("refresh_token", &rt1)],
    )
    .await;
    assert_eq!((s, err["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(
        introspect(&srv, &client, &rt2).await["active"],
        false,
        "RT2 revoked with the family"
    );
    assert_eq!(
        introspect(&srv, &client, &at2).await["active"],
        false,
        "AT2 revoked with the family"
    );
    let (s, _) = token_request(
        &srv,
        &client,
        &[("grant_type", "refresh_token"), ("refresh_token", &rt2)],
    )
    .await;
    assert_eq!(s, 400);
});

both!(refresh_cannot_widen_scope, |srv| {
    // BCP-14: a refresh asking for a scope never granted is invalid_scope.
    srv.add_user("carol", "correct horse battery").await;
    let client = srv.web_client().await;
    let t1 = code_flow_tokens(&srv, &client, "carol", "correct horse battery", "openid").await;
    let rt1 = t1["refresh_token"].as_str().unwrap_or_default().to_string();
    let (s, err) = token_request(
        &srv,
        &client,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt1),
            ("scope", "openid email"),
        ],
    )
    .await;
    assert_eq!((s, err["error"].as_str()), (400, Some("invalid_scope")));
});

both!(
/// OpenID Connect Core §5.3.3: userinfo needs the `openid` scope (403 `insufficient_scope`).
userinfo_needs_openid_scope, |srv| {
    srv.add_user("dora", "correct horse battery").await;
    let client = srv.web_client().await;
    let (verifier, challenge) = pkce();
    let loc = authorize_and_allow(&srv, &client, &[("scope", "profile"), ("code_challenge", &challenge), ("code_challenge_method", "S256")], "dora", "correct horse battery").await;
    let code = query(&loc).remove("code").unwrap_or_default();
    let (s, t) = token_request(&srv, &client, &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", "https://client.example/cb"), ("code_verifier", &verifier)]).await;
    assert_eq!(s, 200);
    assert!(t.get("id_token").is_none(), "no ID token without openid");
    let r = custodia_tests::http().get(srv.url("/userinfo")).bearer_auth(t["access_token"].as_str().unwrap_or_default()).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 403);
    let www = r.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    assert!(www.contains("insufficient_scope"), "{www}");
});

both!(
/// BCP-17: rotation never extends a refresh token family's lifetime.
refresh_family_lifetime_is_fixed, ["CUSTODIA_REFRESH_TOKEN_TTL" => "3600"], |srv| {
    srv.add_user("erin", "correct horse battery").await;
    let client = srv.web_client().await;
    let t = code_flow_tokens(&srv, &client, "erin", "correct horse battery", "openid").await;
    let rt1 = t["refresh_token"].as_str().unwrap_or_default().to_string();
    srv.core.clock.advance(1800);
    let (s, t2) = token_request(&srv, &client, &[("grant_type", "refresh_token"), ("refresh_token", &rt1)]).await;
    assert_eq!(s, 200);
    let rt2 = t2["refresh_token"].as_str().unwrap_or_default().to_string();
    srv.core.clock.advance(1900);
    let (s, e) = token_request(&srv, &client, &[("grant_type", "refresh_token"), ("refresh_token", &rt2)]).await;
    assert_eq!((s, e["error"].as_str()), (400, Some("invalid_grant")), "the family expired an hour after the code exchange");
});

both!(
/// BCP-21, ISS-02, BCP-08, CORE-09: the metadata documents advertise what the server allows and
/// nothing else, with the issuer they were fetched under.
discovery_metadata, |srv| {
    let h = custodia_tests::http();
    for path in ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"] {
        let m: serde_json::Value = h.get(srv.url(path)).send().await.unwrap_or_else(|e| panic!("{e}")).json().await.unwrap_or_default();
        assert_eq!(m["issuer"], srv.base.as_str(), "CORE-09");
        assert_eq!(m["authorization_response_iss_parameter_supported"], true, "ISS-02");
        assert_eq!(m["code_challenge_methods_supported"], serde_json::json!(["S256"]), "BCP-08: no plain");
        assert_eq!(m["response_types_supported"], serde_json::json!(["code"]), "BCP-10: no implicit");
        let grants = m["grant_types_supported"].as_array().cloned().unwrap_or_default();
        assert!(!grants.iter().any(|g| g == "password" || g == "implicit"), "BCP-19");
        assert_eq!(m["request_uri_parameter_supported"], false);
        let methods = m["introspection_endpoint_auth_methods_supported"].as_array().cloned().unwrap_or_default();
        assert!(!methods.iter().any(|x| x == "none"), "CORE-07: introspection needs an authenticated caller");
        for ep in ["authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint", "introspection_endpoint", "revocation_endpoint", "registration_endpoint"] {
            assert!(m[ep].as_str().is_some_and(|u| u.starts_with(&srv.base)), "{ep}");
        }
        // IGOV-OIDC-15: the scopes and the claims a client can ask for, and the authentication
        // context (`acr_values_supported`).
        let scopes = m["scopes_supported"].as_array().cloned().unwrap_or_default();
        for s in ["openid", "profile", "email"] {
            assert!(scopes.iter().any(|x| x == s), "{s} in {scopes:?}");
        }
        let claims = m["claims_supported"].as_array().cloned().unwrap_or_default();
        for c in ["sub", "iss", "aud", "exp", "iat", "acr", "amr", "email", "email_verified", "name"] {
            assert!(claims.iter().any(|x| x == c), "{c} in {claims:?}");
        }
        assert!(m["acr_values_supported"].as_array().is_some_and(|a| !a.is_empty()));
    }
});

both!(
/// BCP-13: whether a client gets refresh tokens is decided per client (its registered grants).
refresh_tokens_only_for_clients_registered_for_them, |srv| {
    srv.add_user("fay", "correct horse battery").await;
    let v = srv.add_client(serde_json::json!({"redirect_uris": ["https://client.example/cb"], "grant_types": ["authorization_code"], "scope": "openid offline_access"})).await;
    let client = TestClient::from_json(&v);
    let t = code_flow_tokens(&srv, &client, "fay", "correct horse battery", "openid offline_access").await;
    assert!(t.get("refresh_token").is_none(), "{t}");
    let (s, e) = token_request(&srv, &client, &[("grant_type", "refresh_token"), ("refresh_token", "cst_rt_x")]).await;
    assert_eq!((s, e["error"].as_str()), (400, Some("unauthorized_client")));
});

//! One test per authorization-server item of the seed's vulnerability lists
//! (`../shared/seed/oauth2-notes.md`), each showing the attack refused, plus the RFC 9700 rules
//! they rest on.

use custodia_tests::*;

const PW: &str = "correct horse battery";

both!(
/// Seed "CSRF attack against the client": `state` round-trips unchanged, on success and on error
/// (ISS-01 for `iss` on both).
state_round_trips_on_success_and_error, |srv| {
    srv.add_user("alice", PW).await;
    let client = srv.web_client().await;
    let (_, challenge) = pkce();
    let state = "xyz-42 / ünïcode & more";
    let loc = authorize_and_allow(&srv, &client, &[("state", state), ("code_challenge", &challenge), ("code_challenge_method", "S256")], "alice", PW).await;
    let q = query(&loc);
    assert_eq!(q.get("state").map(String::as_str), Some(state));
    assert_eq!(q.get("iss"), Some(&srv.base));

    // Deny: the error response carries state and iss too.
    let b = browser();
    let (_, challenge) = pkce();
    let l = open(&b, &authorize_url(&srv, &client, &[("state", state), ("code_challenge", &challenge), ("code_challenge_method", "S256"), ("prompt", "consent")])).await;
    let (_, page) = l.page();
    let consent = submit_login(&b, &srv, page, "alice", PW).await;
    let (_, cpage) = consent.page();
    let denied = submit_consent(&b, &srv, cpage, "deny").await;
    assert!(denied.redirect().ends_with('#'), "error redirects end with an empty fragment");
    let q = query(denied.redirect());
    assert_eq!(q.get("error").map(String::as_str), Some("access_denied"));
    assert_eq!(q.get("state").map(String::as_str), Some(state));
    assert_eq!(q.get("iss"), Some(&srv.base));
});

both!(
/// Seed "Registration of the redirect URI" / BCP-01, BCP-02: only an exact match of a registered
/// URI is accepted; anything else is a 400 page and never a redirect.
redirect_uri_must_match_exactly, |srv| {
    let client = srv.web_client().await;
    let (_, challenge) = pkce();
    let b = browser();
    for bad in [
        "https://client.example/cb/",
        "https://CLIENT.example/cb",
        "https://client.example/cb?x=1",
        "https://client.example/usergeneratedcontent/attackerpage.html",
        "https://client.example/",
        "https://attacker.example/cb",
        "http://client.example/cb",
    ] {
        let l = open(&b, &authorize_url(&srv, &client, &[("redirect_uri", bad), ("code_challenge", &challenge), ("code_challenge_method", "S256")])).await;
        let (status, body) = l.page();
        assert_eq!(status, 400, "{bad}");
        assert!(body.contains("redirect URI"), "{bad}: the page says why");
    }
});

both!(
/// Seed "Registration of the redirect URI" at registration time: broad URIs are refused (BCP-01,
/// BCP-24).
broad_redirect_uris_cannot_be_registered, |srv| {
    for bad in ["https://client.example/*", "https://*.client.example/cb", "https://client.example/cb#frag", "http://client.example/cb", "/cb"] {
        let meta: custodia_server::protocol::clients::ClientMetadata =
            serde_json::from_value(serde_json::json!({"redirect_uris": [bad]})).unwrap_or_default();
        let r = custodia_server::protocol::clients::validate_metadata(meta, srv.core.config.profile, false);
        assert_eq!(r.err().map(|e| e.error.as_str()), Some("invalid_redirect_uri"), "{bad}");
    }
});

both!(
/// Seed "Hijacked authorization code": the redirect URI changed between the authorization and the
/// token request is `invalid_grant` (CORE-03).
redirect_uri_changed_at_token_endpoint, |srv| {
    srv.add_user("alice", PW).await;
    let client = srv
        .add_client(serde_json::json!({"redirect_uris": ["https://client.example/cb", "https://client.example/other"], "grant_types": ["authorization_code"], "scope": "openid"}))
        .await;
    let client = TestClient::from_json(&client);
    let (verifier, challenge) = pkce();
    let loc = authorize_and_allow(&srv, &client, &[("scope", "openid"), ("code_challenge", &challenge), ("code_challenge_method", "S256")], "alice", PW).await;
    let code = query(&loc).remove("code").unwrap_or_default();
    for other in [Some("https://client.example/other"), None] {
        let mut form = vec![("grant_type", "authorization_code"), ("code", code.as_str()), ("code_verifier", verifier.as_str())];
        if let Some(o) = other {
            form.push(("redirect_uri", o));
        }
        let (s, e) = token_request(&srv, &client, &form).await;
        assert_eq!((s, e["error"].as_str()), (400, Some("invalid_grant")), "{other:?}: {e}");
    }
});

both!(
/// Seed "Burn the authorization code once it's been used" / BCP-11: a second redemption fails and
/// revokes the tokens of the first.
code_replay_revokes_first_tokens, |srv| {
    srv.add_user("alice", PW).await;
    let client = srv.web_client().await;
    let (verifier, challenge) = pkce();
    let loc = authorize_and_allow(&srv, &client, &[("code_challenge", &challenge), ("code_challenge_method", "S256"), ("scope", "openid offline_access")], "alice", PW).await;
    let code = query(&loc).remove("code").unwrap_or_default();
    let form = [("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", "https://client.example/cb"), ("code_verifier", verifier.as_str())];
    let (s, first) = token_request(&srv, &client, &form).await;
    assert_eq!(s, 200);
    let at = first["access_token"].as_str().unwrap_or_default();
    let rt = first["refresh_token"].as_str().unwrap_or_default();
    assert_eq!(introspect(&srv, &client, at).await["active"], true);
    let (s, second) = token_request(&srv, &client, &form).await;
    assert_eq!((s, second["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(introspect(&srv, &client, at).await["active"], false, "first access token revoked");
    assert_eq!(introspect(&srv, &client, rt).await["active"], false, "first refresh token revoked");
});

both!(
/// Seed "Open redirect": a wrong scope, an unknown client or a bad response type never bounces the
/// browser anywhere; it gets a 400 page (BCP-02, BCP-03).
no_open_redirect_on_errors, |srv| {
    let client = srv.web_client().await;
    let (_, challenge) = pkce();
    let b = browser();
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![("scope", "WRONG_SCOPE"), ("redirect_uri", "https://attacker.example")],
        vec![("scope", "WRONG_SCOPE")],
        vec![("client_id", "no-such-client"), ("redirect_uri", "https://attacker.example")],
        vec![("response_type", "token")],
        vec![("code_challenge_method", "plain")],
    ];
    for extra in cases {
        let mut extra = extra.clone();
        if !extra.iter().any(|(k, _)| *k == "code_challenge_method") {
            extra.push(("code_challenge_method", "S256"));
        }
        extra.push(("code_challenge", &challenge));
        let l = open(&b, &authorize_url(&srv, &client, &extra)).await;
        let (status, _) = l.page();
        assert_eq!(status, 400, "{extra:?}");
    }
});

both!(
/// Seed "store hashes of the access token instead of clear text" and the design's secrets rules:
/// no code, token, session, secret or registration token appears in the database.
tokens_are_stored_only_as_hashes, |srv| {
    srv.add_user("alice", PW).await;
    let client = srv.web_client().await;
    let (verifier, challenge) = pkce();
    let b = browser();
    let l = open(&b, &authorize_url(&srv, &client, &[("code_challenge", &challenge), ("code_challenge_method", "S256"), ("scope", "openid offline_access")])).await;
    let (_, page) = l.page();
    let consent = submit_login(&b, &srv, page, "alice", PW).await;
    let (_, cpage) = consent.page();
    let done = submit_consent(&b, &srv, cpage, "allow").await;
    let code = query(done.redirect()).remove("code").unwrap_or_default();
    let (_, t) = token_request(&srv, &client, &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", "https://client.example/cb"), ("code_verifier", &verifier)]).await;
    let dump = srv.dump_database().await;
    assert!(!dump.is_empty());
    let secrets = [
        code.as_str(),
        t["access_token"].as_str().unwrap_or("missing"),
        t["refresh_token"].as_str().unwrap_or("missing"),
        t["id_token"].as_str().unwrap_or("missing"),
        client.secret.as_deref().unwrap_or("missing"),
        PW,
    ];
    for s in secrets {
        assert!(s.len() > 8);
        assert!(!dump.contains(s), "a secret is stored in clear text");
    }
    // The stored hash of the refresh token is there instead.
    let rt_hash = custodia_server::secrets::hash_str(t["refresh_token"].as_str().unwrap_or_default());
    assert!(dump.contains(&rt_hash));
    assert!(!dump.contains("cst_"), "no prefixed secret at all in the database");
});

both!(
/// Seed "PKCE" / BCP-06, BCP-07, CORE-05: a wrong or missing verifier is `invalid_grant`, and so is
/// a verifier for a request that had no challenge.
pkce_wrong_missing_or_downgraded, |srv| {
    srv.add_user("alice", PW).await;
    let client = srv.web_client().await;
    let wrong = "x".repeat(43);
    for (label, send) in [("wrong", Some(wrong.as_str())), ("missing", None), ("too short", Some("abc"))] {
        let (_, challenge) = pkce();
        let loc = authorize_and_allow(&srv, &client, &[("code_challenge", &challenge), ("code_challenge_method", "S256")], "alice", PW).await;
        let code = query(&loc).remove("code").unwrap_or_default();
        let mut form = vec![("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", "https://client.example/cb")];
        if let Some(v) = send {
            form.push(("code_verifier", v));
        }
        let (s, e) = token_request(&srv, &client, &form).await;
        assert_eq!((s, e["error"].as_str()), (400, Some("invalid_grant")), "{label}");
    }
    // Downgrade: no challenge at authorization, a verifier at the token endpoint.
    let (verifier, _) = pkce();
    let loc = authorize_and_allow(&srv, &client, &[], "alice", PW).await;
    let code = query(&loc).remove("code").unwrap_or_default();
    let (s, e) = token_request(&srv, &client, &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", "https://client.example/cb"), ("code_verifier", &verifier)]).await;
    assert_eq!((s, e["error"].as_str()), (400, Some("invalid_grant")), "BCP-07");
});

both!(
/// BCP-09: a client that sends a `code_challenge` it has used before (a constant challenge, which
/// protects nothing) gets no code: a 400 page before anyone signs in, never a redirect. A fresh
/// challenge works again, and another client's use of the same value is its own.
constant_pkce_challenges_are_refused, |srv| {
    srv.add_user("alice", PW).await;
    let client = srv.web_client().await;
    let (_, challenge) = pkce();
    let params = [("code_challenge", challenge.as_str()), ("code_challenge_method", "S256"), ("state", "s-1")];
    let first = authorize_and_allow(&srv, &client, &params, "alice", PW).await;
    assert!(query(&first).contains_key("code"), "{first}");
    let again = open(&browser(), &authorize_url(&srv, &client, &params)).await;
    let (status, page) = again.page();
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("was used before") && page.contains("invalid_request"), "{page}");
    let (_, fresh) = pkce();
    let ok = authorize_and_allow(&srv, &client, &[("code_challenge", &fresh), ("code_challenge_method", "S256")], "alice", PW).await;
    assert!(query(&ok).contains_key("code"), "{ok}");
    let other = srv.web_client().await;
    let theirs = authorize_and_allow(&srv, &other, &params, "alice", PW).await;
    assert!(query(&theirs).contains_key("code"), "{theirs}");
    // One consent form submitted twice at once: one code, and the other submission refused.
    let (_, racing) = pkce();
    let b = browser();
    let l = open(&b, &authorize_url(&srv, &client, &[("code_challenge", &racing), ("code_challenge_method", "S256"), ("prompt", "consent")])).await;
    let (_, page) = l.page();
    let consent = submit_login(&b, &srv, page, "alice", PW).await;
    let (_, cpage) = consent.page();
    let (one, two) = tokio::join!(submit_consent(&b, &srv, cpage, "allow"), submit_consent(&b, &srv, cpage, "allow"));
    let codes = [&one, &two].iter().filter(|l| matches!(l, Landing::Redirect(_, loc) if query(loc).contains_key("code"))).count();
    let refused = [&one, &two].iter().filter(|l| matches!(l, Landing::Page(400, body) if body.contains("was used before"))).count();
    let show = |l: &Landing| match l {
        Landing::Redirect(_, loc) => loc.clone(),
        Landing::Page(s, body) => format!("{s}: {}", &body[..body.len().min(300)]),
    };
    assert_eq!((codes, refused), (1, 1), "{} / {}", show(&one), show(&two));
});

both!(
/// BCP-09, its other half: a client that sends an OpenID Connect `nonce` it has sent before is
/// logged for the operator (`oidc_nonce_reused`, target `audit`); the code is still issued (the
/// `nonce` check is the client's, and refusing would only break it). A fresh nonce is not logged.
reused_nonces_are_flagged, |srv| {
    let logs = captured_logs();
    srv.add_user("alice", PW).await;
    let client = srv.web_client().await;
    let flagged = || logs.audit("oidc_nonce_reused").into_iter().filter(|f| f["client_id"] == client.id.as_str()).count();
    for (nonce, expected) in [("n-constant", 0), ("n-constant", 1), ("n-fresh", 1)] {
        let (_, challenge) = pkce();
        let loc = authorize_and_allow(&srv, &client, &[("nonce", nonce), ("code_challenge", &challenge), ("code_challenge_method", "S256")], "alice", PW).await;
        assert!(query(&loc).contains_key("code"), "{nonce}: {loc}");
        assert_eq!(flagged(), expected, "{nonce}");
    }
});

both!(
/// BCP-05: public clients must use PKCE; `plain` is refused for everyone (BCP-08).
public_clients_need_pkce, |srv| {
    let v = srv
        .add_client(serde_json::json!({"redirect_uris": ["http://127.0.0.1/cb"], "application_type": "native", "token_endpoint_auth_method": "none", "scope": "openid"}))
        .await;
    let client = TestClient::from_json(&v);
    let b = browser();
    let l = open(&b, &authorize_url(&srv, &client, &[("redirect_uri", "http://127.0.0.1:5555/cb"), ("scope", "openid")])).await;
    let (status, body) = l.page();
    assert_eq!(status, 400);
    assert!(body.contains("PKCE"), "the page says PKCE is required");
    let (_, challenge) = pkce();
    let l = open(&b, &authorize_url(&srv, &client, &[("redirect_uri", "http://127.0.0.1:5555/cb"), ("scope", "openid"), ("code_challenge", &challenge), ("code_challenge_method", "S256")])).await;
    assert_eq!(l.page().0, 200, "with S256 the login page is shown (loopback port may vary for native clients)");
});

both!(
/// Seed "Do NOT pass the access_token as a URI parameter" / RFC 9700 §4.3.2: userinfo refuses
/// tokens in the query string and in the body.
tokens_in_the_url_are_refused, |srv| {
    srv.add_user("alice", PW).await;
    let client = srv.web_client().await;
    let t = code_flow_tokens(&srv, &client, "alice", PW, "openid profile").await;
    let at = t["access_token"].as_str().unwrap_or_default();
    let h = http();
    let r = h.get(format!("{}?access_token={at}", srv.url("/userinfo"))).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 400);
    let v: serde_json::Value = r.json().await.unwrap_or_default();
    assert_eq!(v["error"], "invalid_request");
    let r = h.post(srv.url("/userinfo")).form(&[("access_token", at)]).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 400);
    let r = h.get(srv.url("/userinfo")).bearer_auth(at).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 200);
    let r = h.get(srv.url("/userinfo")).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.headers().get("www-authenticate").is_some());
    let r = h.get(srv.url("/userinfo")).bearer_auth("not-a-token").send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 401);
    let www = r.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    assert!(www.contains("error=\"invalid_token\""), "{www}");
});

both!(
/// Design "Security posture", BCP-22, BCP-23, BCP-25: security headers on pages and APIs; CORS only
/// where browser clients need it and never on the authorization endpoint.
security_headers_present, |srv| {
    let client = srv.web_client().await;
    let (_, challenge) = pkce();
    let h = http();
    let pages = [
        authorize_url(&srv, &client, &[("code_challenge", &challenge), ("code_challenge_method", "S256")]),
        authorize_url(&srv, &client, &[("redirect_uri", "https://attacker.example/")]),
        srv.url("/.well-known/openid-configuration"),
        srv.url("/jwks"),
    ];
    for url in pages {
        let r = h.get(&url).header("Origin", "https://evil.example").send().await.unwrap_or_else(|e| panic!("{e}"));
        let hd = r.headers();
        let get = |n: &str| hd.get(n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        assert_eq!(get("x-content-type-options"), "nosniff", "{url}");
        assert_eq!(get("referrer-policy"), "no-referrer", "{url}");
        assert_eq!(get("x-frame-options"), "DENY", "{url}");
        assert!(get("content-security-policy").contains("frame-ancestors 'none'"), "{url}");
        assert!(!get("content-security-policy").contains("unsafe-inline"), "{url}");
        if url.contains("/authorize") {
            assert!(hd.get("access-control-allow-origin").is_none(), "BCP-25: no CORS on /authorize");
            assert_eq!(get("cache-control"), "no-store");
        }
    }
    let r = h.request(reqwest::Method::OPTIONS, srv.url("/token")).header("Origin", "https://spa.example").send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.headers().get("access-control-allow-origin").and_then(|v| v.to_str().ok()), Some("*"));
});

both!(
/// CORE-01: token responses carry `Cache-Control: no-store` and `Pragma: no-cache`; so do errors.
token_responses_are_not_cached, |srv| {
    let client = srv.service_client().await;
    for form in [vec![("grant_type", "client_credentials")], vec![("grant_type", "password")]] {
        let r = http()
            .post(srv.url("/token"))
            .basic_auth(&client.id, client.secret.as_deref())
            .form(&form)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.headers().get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"), "{form:?}");
        assert_eq!(r.headers().get("pragma").and_then(|v| v.to_str().ok()), Some("no-cache"), "{form:?}");
    }
});

both!(
/// CSRF on the login and consent forms: a post without the token, or with another browser's,
/// is a 400 page and creates no session or code.
forms_require_csrf_token, |srv| {
    srv.add_user("alice", PW).await;
    let client = srv.web_client().await;
    let (_, challenge) = pkce();
    let b = browser();
    let l = open(&b, &authorize_url(&srv, &client, &[("code_challenge", &challenge), ("code_challenge_method", "S256")])).await;
    let (_, page) = l.page();
    let request = input_value(page, "request").unwrap_or_default();
    // Another browser (no CSRF cookie) posting the victim's form.
    let attacker = browser();
    let r = attacker
        .post(srv.url("/authorize/login"))
        .form(&[("csrf", input_value(page, "csrf").unwrap_or_default().as_str()), ("request", request.as_str()), ("username", "alice"), ("password", PW)])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 400);
    // The same browser without the field.
    let r = b
        .post(srv.url("/authorize/login"))
        .form(&[("request", request.as_str()), ("username", "alice"), ("password", PW)])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 400);
    let r = b
        .post(srv.url("/authorize/consent"))
        .form(&[("csrf", "cst_csrf_forged-value-forged-value-forged-value"), ("request", request.as_str()), ("decision", "allow")])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 400);
});

both!(
/// Failed logins slow down per account without locking the owner out for good; the login and
/// token endpoints are rate limited with `Retry-After`.
failed_logins_slow_down, |srv| {
    srv.add_user("alice", PW).await;
    let client = srv.web_client().await;
    let (_, challenge) = pkce();
    let b = browser();
    let url = authorize_url(&srv, &client, &[("code_challenge", &challenge), ("code_challenge_method", "S256")]);
    let l = open(&b, &url).await;
    let (_, page) = l.page();
    let page = page.to_string();
    for _ in 0..5 {
        let r = submit_login(&b, &srv, &page, "alice", "wrong password!").await;
        let (s, body) = r.page();
        assert_eq!(s, 200);
        assert!(body.contains("not right"));
    }
    // The sixth attempt, even with the right password, must wait.
    let r = submit_login(&b, &srv, &page, "alice", PW).await;
    let (s, body) = r.page();
    assert_eq!(s, 429, "{body}");
    srv.core.clock.advance(3);
    let r = submit_login(&b, &srv, &page, "alice", PW).await;
    assert_eq!(r.page().0, 200, "after the wait the owner gets in (consent page)");
});

both!(token_endpoint_rate_limit, ["CUSTODIA_RATE_TOKEN_PER_SECOND" => "1", "CUSTODIA_RATE_TOKEN_BURST" => "3"], |srv| {
    let client = srv.service_client().await;
    let mut limited = None;
    for _ in 0..10 {
        let r = http().post(srv.url("/token")).basic_auth(&client.id, client.secret.as_deref()).form(&[("grant_type", "client_credentials")]).send().await.unwrap_or_else(|e| panic!("{e}"));
        if r.status().as_u16() == 429 {
            limited = Some(r);
            break;
        }
    }
    let r = limited.unwrap_or_else(|| panic!("never rate limited"));
    assert!(r.headers().get("retry-after").is_some());
    let v: serde_json::Value = r.json().await.unwrap_or_default();
    assert_eq!(v["error"], "slow_down");
});

both!(
/// CORE-02: codes are short-lived (60 s); a code past its lifetime is `invalid_grant`.
codes_expire, |srv| {
    srv.add_user("alice", PW).await;
    let client = srv.web_client().await;
    let (verifier, challenge) = pkce();
    let loc = authorize_and_allow(&srv, &client, &[("code_challenge", &challenge), ("code_challenge_method", "S256")], "alice", PW).await;
    let code = query(&loc).remove("code").unwrap_or_default();
    srv.core.clock.advance(61);
    let (s, e) = token_request(&srv, &client, &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", "https://client.example/cb"), ("code_verifier", &verifier)]).await;
    assert_eq!((s, e["error"].as_str()), (400, Some("invalid_grant")));
});

both!(
/// CORE-04: a code is bound to its client; another client presenting it gets `invalid_grant` and
/// cannot burn it for the rightful client.
codes_are_bound_to_their_client, |srv| {
    srv.add_user("alice", PW).await;
    let client = srv.web_client().await;
    let thief = srv.web_client().await;
    let (verifier, challenge) = pkce();
    let loc = authorize_and_allow(&srv, &client, &[("code_challenge", &challenge), ("code_challenge_method", "S256")], "alice", PW).await;
    let code = query(&loc).remove("code").unwrap_or_default();
    let form = [("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", "https://client.example/cb"), ("code_verifier", verifier.as_str())];
    let (s, e) = token_request(&srv, &thief, &form).await;
    assert_eq!((s, e["error"].as_str()), (400, Some("invalid_grant")));
    let (s, _) = token_request(&srv, &client, &form).await;
    assert_eq!(s, 200, "the rightful client still redeems it");
});

both!(
/// The login slow-down is per (username, source address): an attacker failing from one address
/// is made to wait, while the owner, from another address, still gets in (no lock-out).
login_slow_down_never_locks_the_owner_out, |srv| {
    srv.add_user("alice", PW).await;
    let client = srv.web_client().await;
    let (_, challenge) = pkce();
    let url = authorize_url(&srv, &client, &[("code_challenge", &challenge), ("code_challenge_method", "S256")]);
    let attacker = browser_from("127.0.0.2".parse().unwrap_or_else(|e| panic!("{e}")));
    let page = open(&attacker, &url).await.page().1.to_string();
    for _ in 0..5 {
        assert_eq!(submit_login(&attacker, &srv, &page, "alice", "wrong password!").await.page().0, 200);
    }
    assert_eq!(submit_login(&attacker, &srv, &page, "alice", "wrong password!").await.page().0, 429);
    // The same for a username that does not exist: nothing tells the two apart.
    for _ in 0..5 {
        assert_eq!(submit_login(&attacker, &srv, &page, "nobody", "wrong password!").await.page().0, 200);
    }
    assert_eq!(submit_login(&attacker, &srv, &page, "nobody", "wrong password!").await.page().0, 429);
    // The owner, from another address, gets in at once (only delayed a little).
    let owner = browser();
    let page = open(&owner, &url).await.page().1.to_string();
    let (status, body) = match submit_login(&owner, &srv, &page, "alice", PW).await {
        Landing::Page(s, b) => (s, b),
        Landing::Redirect(s, l) => (s, l),
    };
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("name=\"decision\""), "the consent page, not a refusal");
});

both!(
/// The per-client token limit counts authenticated requests only: requests from another address
/// that merely name a client (with a wrong secret) cannot spend that client's budget.
per_client_limit_counts_only_authenticated_requests, ["CUSTODIA_RATE_TOKEN_PER_SECOND" => "1", "CUSTODIA_RATE_TOKEN_BURST" => "3"], |srv| {
    let victim = srv.service_client().await;
    let attacker = reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap_or_else(|e| panic!("{e}")))
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut statuses = vec![];
    for _ in 0..6 {
        let r = attacker.post(srv.url("/token")).basic_auth(&victim.id, Some("wrong")).form(&[("grant_type", "client_credentials")]).send().await.unwrap_or_else(|e| panic!("{e}"));
        statuses.push(r.status().as_u16());
    }
    assert!(statuses.contains(&401) && statuses.contains(&429), "{statuses:?}: refused, then the attacker's address is limited");
    let (s, t) = token_request(&srv, &victim, &[("grant_type", "client_credentials")]).await;
    assert_eq!(s, 200, "the victim's budget is untouched: {t}");
});

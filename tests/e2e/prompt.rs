//! `prompt`, `max_age` and remembered consent (OpenID Connect Core §3.1.2.1, §3.1.2.6).

use custodia_tests::*;

const PW: &str = "correct horse battery";

both!(prompt_none_without_session_is_login_required, |srv| {
    let client = srv.web_client().await;
    let (_, challenge) = pkce();
    let l = open(
        &browser(),
        &authorize_url(
            &srv,
            &client,
            &[
                ("prompt", "none"),
                ("state", "s1"),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ],
        ),
    )
    .await;
    let q = query(l.redirect());
    assert_eq!(q.get("error").map(String::as_str), Some("login_required"));
    assert_eq!(q.get("state").map(String::as_str), Some("s1"));
    assert_eq!(q.get("iss"), Some(&srv.base));
});

both!(session_consent_and_prompts, |srv| {
    srv.add_user("alice", PW).await;
    let client = srv.web_client().await;
    // A fresh PKCE challenge per authorization request (a reused one is refused, BCP-09).
    let challenges: Vec<String> = (0..8).map(|_| pkce().1).collect();
    let pk = |n: usize| {
        vec![
            ("code_challenge", challenges[n].as_str()),
            ("code_challenge_method", "S256"),
        ]
    };
    let b = browser();
    // First time: login, consent.
    let l = open(&b, &authorize_url(&srv, &client, &pk(0))).await;
    let (_, page) = l.page();
    let c = submit_login(&b, &srv, page, "alice", PW).await;
    let (_, cpage) = c.page();
    assert!(
        cpage.contains("Test App"),
        "the consent page names the client"
    );
    let done = submit_consent(&b, &srv, cpage, "allow").await;
    assert!(query(done.redirect()).contains_key("code"));

    // Second time: the session and the remembered consent give a code at once.
    let l = open(&b, &authorize_url(&srv, &client, &pk(1))).await;
    assert!(
        query(l.redirect()).contains_key("code"),
        "no login or consent the second time"
    );
    // prompt=none works silently now.
    let mut with_none = pk(2);
    with_none.push(("prompt", "none"));
    let l = open(&b, &authorize_url(&srv, &client, &with_none)).await;
    assert!(query(l.redirect()).contains_key("code"));
    // A wider scope needs consent again; prompt=none then says consent_required.
    let mut wider = pk(3);
    wider.push(("prompt", "none"));
    wider.push(("scope", "openid profile email offline_access"));
    let l = open(&b, &authorize_url(&srv, &client, &wider)).await;
    assert_eq!(
        query(l.redirect()).get("error").map(String::as_str),
        Some("consent_required")
    );
    // prompt=consent forces the consent page.
    let mut consent = pk(4);
    consent.push(("prompt", "consent"));
    let l = open(&b, &authorize_url(&srv, &client, &consent)).await;
    assert!(l.page().1.contains("name=\"decision\""));
    // prompt=login forces the login page, and logging in again then proceeds.
    let mut login = pk(5);
    login.push(("prompt", "login"));
    let l = open(&b, &authorize_url(&srv, &client, &login)).await;
    let (_, page) = l.page();
    assert!(page.contains("name=\"password\""));
    let after = submit_login(&b, &srv, page, "alice", PW).await;
    assert!(
        query(after.redirect()).contains_key("code"),
        "fresh login satisfies prompt=login"
    );
    // max_age=0 is prompt=login, even within the same second as the last login.
    let mut max_age = pk(6);
    max_age.push(("max_age", "0"));
    let l = open(&b, &authorize_url(&srv, &client, &max_age)).await;
    assert!(l.page().1.contains("name=\"password\""));
    // prompt=none combined with login is invalid.
    let mut bad = pk(7);
    bad.push(("prompt", "none login"));
    assert_eq!(
        open(&b, &authorize_url(&srv, &client, &bad)).await.page().0,
        400
    );
});

both!(nonce_and_auth_time_in_the_id_token, |srv| {
    srv.add_user("alice", PW).await;
    let client = srv.web_client().await;
    let (verifier, challenge) = pkce();
    let loc = authorize_and_allow(
        &srv,
        &client,
        &[
            ("nonce", "n-0S6_WzA2Mj"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
        "alice",
        PW,
    )
    .await;
    let code = query(&loc).remove("code").unwrap_or_default();
    let (_, t) = token_request(
        &srv,
        &client,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "https://client.example/cb"),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    let id = t["id_token"].as_str().unwrap_or_default();
    let claims = srv
        .core
        .keys
        .verify(id)
        .unwrap_or_else(|e| panic!("{e:?}"))
        .0;
    assert_eq!(claims["nonce"], "n-0S6_WzA2Mj");
    assert_eq!(claims["aud"], client.id.as_str());
    assert!(
        claims["auth_time"]
            .as_i64()
            .is_some_and(|t| t <= custodia_server::now())
    );
});

both!(
/// OpenID Connect Core §3.1.2.1: the authorization endpoint takes POST as well as GET.
authorization_request_by_post, |srv| {
    let client = srv.web_client().await;
    let (_, challenge) = pkce();
    let b = browser();
    let r = b
        .post(srv.url("/authorize"))
        .form(&[("response_type", "code"), ("client_id", client.id.as_str()), ("redirect_uri", "https://client.example/cb"), ("scope", "openid"), ("code_challenge", challenge.as_str()), ("code_challenge_method", "S256")])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.text().await.unwrap_or_default().contains("name=\"password\""));
});

both!(
/// `prompt=login` and `max_age` cannot be skipped by posting the consent form with an old session:
/// the consent only counts within 10 minutes of the sign-in it followed.
consent_cannot_skip_a_required_login, |srv| {
    srv.add_user("alice", PW).await;
    let client = srv.web_client().await;
    // A fresh PKCE challenge per authorization request (a reused one is refused, BCP-09).
    let challenges: Vec<String> = (0..3).map(|_| pkce().1).collect();
    let pk = |n: usize| vec![("code_challenge", challenges[n].as_str()), ("code_challenge_method", "S256")];
    let b = browser();
    let l = open(&b, &authorize_url(&srv, &client, &pk(0))).await;
    let c = submit_login(&b, &srv, l.page().1, "alice", PW).await;
    assert!(query(submit_consent(&b, &srv, c.page().1, "allow").await.redirect()).contains_key("code"));
    // An hour later someone at the browser asks with prompt=login, takes the form fields of the
    // login page and posts the consent form directly.
    srv.core.clock.advance(3600);
    for (n, extra) in [(1, ("prompt", "login")), (2, ("max_age", "60"))] {
        let mut q = pk(n);
        q.push(extra);
        let l = open(&b, &authorize_url(&srv, &client, &q)).await;
        let page = l.page().1.to_string();
        assert!(page.contains("name=\"password\""), "{extra:?}: login page");
        let r = submit_consent(&b, &srv, &page, "allow").await;
        let (status, body) = r.page();
        assert_eq!(status, 200, "{extra:?}");
        assert!(body.contains("name=\"password\""), "{extra:?}: asked to sign in again, no code");
        // Signing in again works and yields a code.
        let done = submit_login(&b, &srv, &page, "alice", PW).await;
        assert!(query(done.redirect()).contains_key("code"), "{extra:?}");
        srv.core.clock.advance(3600);
    }
});

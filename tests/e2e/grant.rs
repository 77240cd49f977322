//! The UMA grant over HTTP (UMA Grant §3.3) with the example FHIR resource server, owner policies
//! set through the owner API, and claims about the requesting party pushed as Custodia ID tokens
//! or gathered at the claims interaction endpoint. Each test names the rules of
//! `../shared/specs/uma.md` it covers.

use std::net::TcpListener;

use custodia_sdk::UmaChallenge;
use custodia_tests::reqwest::Method;
use custodia_tests::*;
use futures_util::future::join_all;
use serde_json::{Value, json};

pub(crate) const PW: &str = "correct horse battery";
pub(crate) const UMA_GRANT: &str = "urn:ietf:params:oauth:grant-type:uma-ticket";
pub(crate) const ID_TOKEN_FORMAT: &str =
    "http://openid.net/specs/openid-connect-core-1_0.html#IDToken";

/// The example FHIR server on a free port, connected by `owner`; returns its base URL.
pub(crate) async fn fhir_connected(srv: &TestServer, dir: &std::path::Path, owner: &str) -> String {
    fhir_connected_with(srv, dir, owner, custodia_sdk::Verification::Local).await
}

/// The same, choosing how the example verifies RPTs.
async fn fhir_connected_with(
    srv: &TestServer,
    dir: &std::path::Path,
    owner: &str,
    verification: custodia_sdk::Verification,
) -> String {
    let (base, _) = fhir_example(srv, dir, verification).await;
    connect_fhir(srv, &base, owner, PW).await;
    base
}

/// A browser signed in on `/account` as `username` (for the owner API).
pub(crate) async fn owner_session(
    srv: &TestServer,
    username: &str,
) -> custodia_tests::reqwest::Client {
    let b = browser();
    let landing = open(&b, &srv.url("/account")).await;
    let (_, page) = landing.page();
    let csrf = input_value(page, "csrf").unwrap_or_default();
    let resp = b
        .post(srv.url("/account/login"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("username", username),
            ("password", PW),
        ])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status().as_u16(), 303);
    b
}

pub(crate) async fn owner_call(
    b: &custodia_tests::reqwest::Client,
    method: Method,
    url: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = b.request(method, url);
    if let Some(v) = body {
        req = req.json(&v);
    }
    let resp = req.send().await.unwrap_or_else(|e| panic!("{e}"));
    let s = resp.status().as_u16();
    (s, resp.json().await.unwrap_or(Value::Null))
}

/// The resource id the example registered for `label` (`Patient record`, `Observations`).
pub(crate) async fn resource_id(
    b: &custodia_tests::reqwest::Client,
    srv: &TestServer,
    label: &str,
) -> String {
    let (s, list) = owner_call(b, Method::GET, &srv.url("/owner/resources"), None).await;
    assert_eq!(s, 200, "{list}");
    list.as_array()
        .and_then(|a| a.iter().find(|r| r["name"] == json!(label)))
        .and_then(|r| r["_id"].as_str())
        .unwrap_or_else(|| panic!("no {label} in {list}"))
        .to_string()
}

/// A share of one resource with one of our users, for some scopes.
pub(crate) fn share(srv: &TestServer, resource: &str, subject: &str, scopes: &[&str]) -> Value {
    json!({
        "kind": "share",
        "resource": {"resource": resource},
        "with": {"subject": {"issuer": srv.base, "subject": subject}},
        "scopes": scopes,
    })
}

/// The client app of the requesting party: confidential, UMA grant, `openid` for ID tokens.
pub(crate) async fn app_client(srv: &TestServer) -> TestClient {
    TestClient::from_json(
        &srv.add_client(json!({
            "client_name": "Clinic app",
            "redirect_uris": ["https://client.example/cb"],
            "claims_redirect_uris": ["https://client.example/claims"],
            "grant_types": ["authorization_code", UMA_GRANT],
            "scope": "openid",
        }))
        .await,
    )
}

/// A fresh ticket from the resource server's challenge for `url`.
pub(crate) async fn ticket_for(url: &str) -> String {
    let resp = http()
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status().as_u16(), 401, "{url}");
    let h = resp
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    UmaChallenge::parse(&h)
        .unwrap_or_else(|e| panic!("{h}: {e}"))
        .ticket
        .expose_secret()
        .to_string()
}

pub(crate) async fn uma_token(
    srv: &TestServer,
    app: &TestClient,
    form: &[(&str, &str)],
) -> (u16, Value) {
    let mut f = vec![("grant_type", UMA_GRANT)];
    f.extend_from_slice(form);
    token_request(srv, app, &f).await
}

pub(crate) fn err(v: &Value) -> &str {
    v["error"].as_str().unwrap_or_default()
}

// The flow of the UMA diagram with claims pushed as an ID token: UMA-GRANT-08, -10, -11, -24,
// -46, -47, -54; an RPT the resource server accepts.
both!(rpt_for_a_shared_resource, [
    "CUSTODIA_INSECURE_LOOPBACK_HTTP_REDIRECTS" => "true",
], |srv| {
    let alice = srv.add_user("alice", PW).await;
    let bob = srv.add_user("bob", PW).await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let fhir = fhir_connected(&srv, dir.path(), "alice").await;
    let owner = owner_session(&srv, "alice").await;
    let patient = resource_id(&owner, &srv, "Patient record").await;
    let (s, v) = owner_call(
        &owner,
        Method::POST,
        &srv.url("/owner/policies"),
        Some(share(&srv, &patient, &bob, &["patient/Patient.read"])),
    )
    .await;
    assert_eq!(s, 201, "{v}");

    let app = app_client(&srv).await;
    let url = format!("{fhir}/fhir/Patient/{alice}");
    // No claims: need_info, naming the claim and the issuer, with a new ticket.
    let t1 = ticket_for(&url).await;
    let (s, v) = uma_token(&srv, &app, &[("ticket", &t1)]).await;
    assert_eq!((s, err(&v)), (403, "need_info"), "{v}");
    let t2 = v["ticket"].as_str().unwrap_or_default().to_string();
    assert!(!t2.is_empty() && t2 != t1, "a new ticket");
    assert!(v["required_claims"].as_array().is_some_and(|a| !a.is_empty()), "{v}");
    assert_eq!(v["redirect_user"], json!(srv.url("/uma/claims")));
    // The old ticket is dead.
    let (s, v) = uma_token(&srv, &app, &[("ticket", &t1)]).await;
    assert_eq!((s, err(&v)), (400, "invalid_grant"), "{v}");

    // Bob's ID token, pushed: an RPT for the Patient record.
    let bob_tokens = code_flow_tokens(&srv, &app, "bob", PW, "openid").await;
    let id_token = bob_tokens["id_token"].as_str().unwrap_or_default();
    let (s, v) = uma_token(
        &srv,
        &app,
        &[("ticket", &t2), ("claim_token", id_token), ("claim_token_format", ID_TOKEN_FORMAT)],
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["token_type"], "Bearer");
    let rpt = v["access_token"].as_str().unwrap_or_default();
    let (s, _, body) = bearer_json(Method::GET, &url, Some(rpt), None).await;
    assert_eq!((s, &body["id"]), (200, &json!(alice)), "{body}");

    // The owner sees the decisions.
    let (s, audit) = owner_call(&owner, Method::GET, &srv.url("/owner/decisions"), None).await;
    assert_eq!(s, 200);
    let outcomes: Vec<&str> = audit
        .as_array()
        .map(|a| a.iter().filter_map(|d| d["outcome"].as_str()).collect())
        .unwrap_or_default();
    assert!(outcomes.contains(&"rpt_issued") && outcomes.contains(&"need_info"), "{audit}");

    // Alice herself is not bob: her ID token gets no RPT (nothing shared with her as a requesting
    // party, and no claim would help: request_denied).
    let alice_tokens = code_flow_tokens(&srv, &app, "alice", PW, "openid").await;
    let t3 = ticket_for(&url).await;
    let (s, v) = uma_token(
        &srv,
        &app,
        &[
            ("ticket", &t3),
            ("claim_token", alice_tokens["id_token"].as_str().unwrap_or_default()),
            ("claim_token_format", ID_TOKEN_FORMAT),
        ],
    )
    .await;
    assert_eq!((s, err(&v)), (403, "request_denied"), "{v}");
});

// UMA-GRANT-09, -11, -58: bad claim tokens are need_info with a fresh ticket and a reason;
// half a claim token is invalid_request.
both!(pushed_claim_tokens, [
    "CUSTODIA_INSECURE_LOOPBACK_HTTP_REDIRECTS" => "true",
], |srv| {
    let alice = srv.add_user("alice", PW).await;
    let bob = srv.add_user("bob", PW).await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let fhir = fhir_connected(&srv, dir.path(), "alice").await;
    let owner = owner_session(&srv, "alice").await;
    let patient = resource_id(&owner, &srv, "Patient record").await;
    let (s, _) = owner_call(
        &owner,
        Method::POST,
        &srv.url("/owner/policies"),
        Some(share(&srv, &patient, &bob, &["patient/Patient.read"])),
    )
    .await;
    assert_eq!(s, 201);
    let app = app_client(&srv).await;
    let other_app = app_client(&srv).await;
    let url = format!("{fhir}/fhir/Patient/{alice}");
    let bob_for_other = code_flow_tokens(&srv, &other_app, "bob", PW, "openid").await;
    let wrong_aud = bob_for_other["id_token"].as_str().unwrap_or_default().to_string();
    let bob_tokens = code_flow_tokens(&srv, &app, "bob", PW, "openid").await;
    let good = bob_tokens["id_token"].as_str().unwrap_or_default().to_string();
    let mut tampered = good.clone();
    tampered.pop();
    tampered.push(if good.ends_with('A') { 'B' } else { 'A' });
    for (label, token, format, why) in [
        ("wrong audience", wrong_aud.as_str(), ID_TOKEN_FORMAT, "audience"),
        ("bad signature", tampered.as_str(), ID_TOKEN_FORMAT, "signed"),
        ("garbage", "not-a-jwt", ID_TOKEN_FORMAT, "signed"),
        ("unsupported format", good.as_str(), "urn:example:saml", "not supported"),
        ("an access token", bob_tokens["access_token"].as_str().unwrap_or_default(), ID_TOKEN_FORMAT, "access token"),
    ] {
        let t = ticket_for(&url).await;
        let (s, v) = uma_token(
            &srv,
            &app,
            &[("ticket", &t), ("claim_token", token), ("claim_token_format", format)],
        )
        .await;
        assert_eq!((s, err(&v)), (403, "need_info"), "{label}: {v}");
        assert!(v["ticket"].as_str().is_some_and(|n| n != t), "{label}: a new ticket");
        assert!(
            v["error_description"].as_str().is_some_and(|d| d.contains(why)),
            "{label}: {v}"
        );
    }
    // Expired: an ID token for bob issued long enough ago (signed with Custodia's own keys).
    let minter = custodia_server::protocol::tokens::Minter::from_core(&srv.core);
    let long_ago = srv.core.now() - srv.core.config.id_token_ttl as i64 - 10;
    let expired = minter
        .mint_id_token(&bob, &app.id, None, long_ago, "at", long_ago)
        .unwrap_or_else(|e| panic!("{e}"));
    let t = ticket_for(&url).await;
    let (s, v) = uma_token(
        &srv,
        &app,
        &[("ticket", &t), ("claim_token", &expired), ("claim_token_format", ID_TOKEN_FORMAT)],
    )
    .await;
    assert_eq!((s, err(&v)), (403, "need_info"), "{v}");
    assert!(v["error_description"].as_str().is_some_and(|d| d.contains("expired")), "{v}");
    // Half a claim token.
    for form in [
        vec![("ticket", t.as_str()), ("claim_token", "x")],
        vec![("ticket", t.as_str()), ("claim_token_format", ID_TOKEN_FORMAT)],
    ] {
        let (s, v) = uma_token(&srv, &app, &form).await;
        assert_eq!((s, err(&v)), (400, "invalid_request"), "{v}");
    }
    let (s, v) = uma_token(&srv, &app, &[]).await;
    assert_eq!((s, err(&v)), (400, "invalid_request"), "no ticket: {v}");
});

// UMA-GRANT-49, -50, -52: the owner accepts requests → request_submitted with a new ticket and
// an interval; the owner approves → the next poll gets an RPT; a denied request stays denied.
both!(request_submitted_approved_and_denied, [
    "CUSTODIA_INSECURE_LOOPBACK_HTTP_REDIRECTS" => "true",
], |srv| {
    let alice = srv.add_user("alice", PW).await;
    srv.add_user("bob", PW).await;
    srv.add_user("carol", PW).await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let fhir = fhir_connected(&srv, dir.path(), "alice").await;
    let owner = owner_session(&srv, "alice").await;
    let app = app_client(&srv).await;
    let url = format!("{fhir}/fhir/Patient/{alice}");
    let id_token = |u: &'static str| {
        let (srv, app) = (&srv, &app);
        async move {
            code_flow_tokens(srv, app, u, PW, "openid").await["id_token"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        }
    };
    let bob = id_token("bob").await;
    // The owner does not accept requests: request_denied.
    let t = ticket_for(&url).await;
    let (s, v) = uma_token(
        &srv,
        &app,
        &[("ticket", &t), ("claim_token", &bob), ("claim_token_format", ID_TOKEN_FORMAT)],
    )
    .await;
    assert_eq!((s, err(&v)), (403, "request_denied"), "{v}");

    let (s, _) = owner_call(
        &owner,
        Method::PUT,
        &srv.url("/owner/settings"),
        Some(json!({"accept_requests": true})),
    )
    .await;
    assert_eq!(s, 200);
    let t = ticket_for(&url).await;
    let (s, v) = uma_token(
        &srv,
        &app,
        &[("ticket", &t), ("claim_token", &bob), ("claim_token_format", ID_TOKEN_FORMAT)],
    )
    .await;
    assert_eq!((s, err(&v)), (403, "request_submitted"), "{v}");
    assert!(v["interval"].as_u64().is_some_and(|i| i > 0));
    let polled = v["ticket"].as_str().unwrap_or_default().to_string();
    assert_ne!(polled, t);
    let (s, pending) = owner_call(
        &owner,
        Method::GET,
        &srv.url("/owner/requests?status=pending"),
        None,
    )
    .await;
    assert_eq!(s, 200);
    let id = pending[0]["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(pending.as_array().map(Vec::len), Some(1), "{pending}");
    // UMA-GRANT-52: the new ticket outlives the polling interval by far.
    let info = custodia_server::protocol::permission::peek(&srv.core, &polled, srv.core.now())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("the polling ticket is live"));
    assert!(info.expires_at - srv.core.now() > 10 * v["interval"].as_i64().unwrap_or(0));
    // Polling before the owner decides: still submitted, a new ticket again. (The interval is the
    // client's to honour; the clock is not moved here because the resource server checks the
    // RPT's `iat` against its own clock.)
    let (s, v) = uma_token(
        &srv,
        &app,
        &[("ticket", &polled), ("claim_token", &bob), ("claim_token_format", ID_TOKEN_FORMAT)],
    )
    .await;
    assert_eq!((s, err(&v)), (403, "request_submitted"), "{v}");
    let polled = v["ticket"].as_str().unwrap_or_default().to_string();
    let (s, v) = owner_call(
        &owner,
        Method::POST,
        &srv.url(&format!("/owner/requests/{id}/approve")),
        Some(json!({})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = uma_token(
        &srv,
        &app,
        &[("ticket", &polled), ("claim_token", &bob), ("claim_token_format", ID_TOKEN_FORMAT)],
    )
    .await;
    assert_eq!(s, 200, "approved: {v}");
    let (s, _, _) = bearer_json(Method::GET, &url, v["access_token"].as_str(), None).await;
    assert_eq!(s, 200);

    // Carol asks, the owner denies: request_denied from then on.
    let carol = id_token("carol").await;
    let t = ticket_for(&url).await;
    let (_, v) = uma_token(
        &srv,
        &app,
        &[("ticket", &t), ("claim_token", &carol), ("claim_token_format", ID_TOKEN_FORMAT)],
    )
    .await;
    assert_eq!(err(&v), "request_submitted", "{v}");
    let polled = v["ticket"].as_str().unwrap_or_default().to_string();
    let (_, pending) = owner_call(
        &owner,
        Method::GET,
        &srv.url("/owner/requests?status=pending"),
        None,
    )
    .await;
    let id = pending[0]["id"].as_str().unwrap_or_default().to_string();
    let (s, _) = owner_call(
        &owner,
        Method::POST,
        &srv.url(&format!("/owner/requests/{id}/deny")),
        Some(json!({})),
    )
    .await;
    assert_eq!(s, 200);
    let (s, v) = uma_token(
        &srv,
        &app,
        &[("ticket", &polled), ("claim_token", &carol), ("claim_token_format", ID_TOKEN_FORMAT)],
    )
    .await;
    assert_eq!((s, err(&v)), (403, "request_denied"), "{v}");
});

// UMA-GRANT-54 under concurrency: 20 presentations of one ticket, exactly one is not
// `invalid_grant`.
both!(one_ticket_one_answer_under_concurrency, [
    "CUSTODIA_INSECURE_LOOPBACK_HTTP_REDIRECTS" => "true",
], |srv| {
    let alice = srv.add_user("alice", PW).await;
    let bob = srv.add_user("bob", PW).await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let fhir = fhir_connected(&srv, dir.path(), "alice").await;
    let owner = owner_session(&srv, "alice").await;
    let patient = resource_id(&owner, &srv, "Patient record").await;
    let (s, _) = owner_call(
        &owner,
        Method::POST,
        &srv.url("/owner/policies"),
        Some(share(&srv, &patient, &bob, &["patient/Patient.read"])),
    )
    .await;
    assert_eq!(s, 201);
    let app = app_client(&srv).await;
    let id_token = code_flow_tokens(&srv, &app, "bob", PW, "openid").await["id_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let t = ticket_for(&format!("{fhir}/fhir/Patient/{alice}")).await;
    let results = join_all((0..20).map(|_| {
        let (srv, app, t, id) = (&srv, &app, t.clone(), id_token.clone());
        async move {
            uma_token(
                srv,
                app,
                &[("ticket", &t), ("claim_token", &id), ("claim_token_format", ID_TOKEN_FORMAT)],
            )
            .await
        }
    }))
    .await;
    let rpts = results.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(rpts, 1, "{results:?}");
    for (s, v) in results.iter().filter(|(s, _)| *s != 200) {
        assert_eq!((*s, err(v)), (400, "invalid_grant"));
    }
});

// UMA-GRANT-17..25: claims gathered at the claims interaction endpoint (local sign-in), and
// every bad interaction request is an error page, never a redirect.
both!(interactive_claims_gathering, [
    "CUSTODIA_INSECURE_LOOPBACK_HTTP_REDIRECTS" => "true",
], |srv| {
    let alice = srv.add_user("alice", PW).await;
    let bob = srv.add_user("bob", PW).await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let fhir = fhir_connected(&srv, dir.path(), "alice").await;
    let owner = owner_session(&srv, "alice").await;
    let patient = resource_id(&owner, &srv, "Patient record").await;
    let (s, _) = owner_call(
        &owner,
        Method::POST,
        &srv.url("/owner/policies"),
        Some(share(&srv, &patient, &bob, &["patient/Patient.read"])),
    )
    .await;
    assert_eq!(s, 201);
    let app = app_client(&srv).await;
    let url = format!("{fhir}/fhir/Patient/{alice}");
    let t1 = ticket_for(&url).await;
    let (_, v) = uma_token(&srv, &app, &[("ticket", &t1)]).await;
    let t2 = v["ticket"].as_str().unwrap_or_default().to_string();
    let interact = v["redirect_user"].as_str().unwrap_or_default().to_string();

    // Bad requests: a page, no Location.
    for (label, q) in [
        ("unknown client", vec![("client_id", "nobody"), ("ticket", t2.as_str())]),
        ("no client", vec![("ticket", t2.as_str())]),
        (
            "unregistered redirect",
            vec![
                ("client_id", app.id.as_str()),
                ("ticket", t2.as_str()),
                ("claims_redirect_uri", "https://client.example/claims/"),
            ],
        ),
        (
            "the OAuth redirect URI",
            vec![
                ("client_id", app.id.as_str()),
                ("ticket", t2.as_str()),
                ("claims_redirect_uri", "https://client.example/cb"),
            ],
        ),
        ("unknown ticket", vec![("client_id", app.id.as_str()), ("ticket", "cst_pt_nope")]),
    ] {
        let resp = browser()
            .get(format!(
                "{interact}?{}",
                serde_urlencoded::to_string(&q).unwrap_or_default()
            ))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(resp.status().as_u16(), 400, "{label}");
        assert!(resp.headers().get("location").is_none(), "{label}: no redirect");
    }

    // UMA-GRANT-26: the requesting party cancels → back with `error=access_denied` and `state`.
    let b0 = browser();
    let q0 = serde_urlencoded::to_string([
        ("client_id", app.id.as_str()),
        ("ticket", t2.as_str()),
        ("state", "abc"),
    ])
    .unwrap_or_default();
    let page = open(&b0, &format!("{interact}?{q0}")).await;
    let (_, html) = page.page();
    let resp = b0
        .post(srv.url("/uma/claims/cancel"))
        .form(&[
            ("csrf", input_value(html, "csrf").unwrap_or_default().as_str()),
            ("request", input_value(html, "request").unwrap_or_default().as_str()),
        ])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status().as_u16(), 303);
    let back = resp
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let q = query(&back);
    assert!(back.starts_with("https://client.example/claims?"), "{back}");
    assert_eq!(q.get("error").map(String::as_str), Some("access_denied"));
    assert_eq!(q.get("state").map(String::as_str), Some("abc"));
    assert!(!q.contains_key("ticket"));

    // Bob signs in at Custodia; back at the client with a new ticket and the state.
    let b = browser();
    let q = serde_urlencoded::to_string([
        ("client_id", app.id.as_str()),
        ("ticket", t2.as_str()),
        ("claims_redirect_uri", "https://client.example/claims"),
        ("state", "xyz"),
    ])
    .unwrap_or_default();
    let login = open(&b, &format!("{interact}?{q}")).await;
    let (status, page) = login.page();
    assert_eq!(status, 200);
    let csrf = input_value(page, "csrf").unwrap_or_default();
    let request = input_value(page, "request").unwrap_or_default();
    let resp = b
        .post(srv.url("/uma/claims/login"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("request", request.as_str()),
            ("username", "bob"),
            ("password", PW),
        ])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status().as_u16(), 303);
    let back = resp
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(back.starts_with("https://client.example/claims?"), "{back}");
    let q = query(&back);
    assert_eq!(q.get("state").map(String::as_str), Some("xyz"));
    assert_eq!(q.get("authorization_state").map(String::as_str), Some("claims_submitted"));
    let t3 = q.get("ticket").cloned().unwrap_or_default();
    assert!(!t3.is_empty() && t3 != t2, "a new ticket (UMA-GRANT-24)");
    // The ticket used at the interaction endpoint is dead at the token endpoint (UMA-GRANT-54).
    let (s, v) = uma_token(&srv, &app, &[("ticket", &t2)]).await;
    assert_eq!((s, err(&v)), (400, "invalid_grant"), "{v}");
    // Another client cannot use the gathered claims.
    let thief = app_client(&srv).await;
    let (s, v) = uma_token(&srv, &thief, &[("ticket", &t3)]).await;
    assert_eq!((s, err(&v)), (403, "need_info"), "claims are the gathering client's: {v}");
    // The gathering client, with a fresh round: RPT.
    let t4 = ticket_for(&url).await;
    let (_, v) = uma_token(&srv, &app, &[("ticket", &t4)]).await;
    let t5 = v["ticket"].as_str().unwrap_or_default().to_string();
    let q = serde_urlencoded::to_string([("client_id", app.id.as_str()), ("ticket", t5.as_str())])
        .unwrap_or_default();
    // Bob still has his session: nothing is shared until he confirms (UMA-GRANT-27) — a page,
    // not a redirect; its form is refused without the CSRF token or with another browser's.
    let page = open(&b, &format!("{interact}?{q}")).await;
    let (status, html) = page.page();
    assert_eq!(status, 200);
    assert!(html.contains("Continue as bob"), "{html}");
    let request = input_value(html, "request").unwrap_or_default();
    let csrf = input_value(html, "csrf").unwrap_or_default();
    let other = browser();
    let other_page = open(&other, &format!("{interact}?{q}")).await;
    let other_csrf = input_value(other_page.page().1, "csrf").unwrap_or_default();
    for (label, token) in [("no CSRF token", ""), ("another browser's", other_csrf.as_str())] {
        let resp = b
            .post(srv.url("/uma/claims/confirm"))
            .form(&[("csrf", token), ("request", request.as_str())])
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(resp.status().as_u16(), 400, "{label}");
        assert!(resp.headers().get("location").is_none(), "{label}");
    }
    // The single registered URI is used.
    let resp = b
        .post(srv.url("/uma/claims/confirm"))
        .form(&[("csrf", csrf.as_str()), ("request", request.as_str())])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status().as_u16(), 303);
    let back = resp
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(back.starts_with("https://client.example/claims?"), "{back}");
    assert!(!query(&back).contains_key("state"), "no state sent, none echoed (UMA-GRANT-25)");
    let t6 = query(&back).remove("ticket").unwrap_or_default();
    let (s, v) = uma_token(&srv, &app, &[("ticket", &t6)]).await;
    assert_eq!(s, 200, "{v}");
});

// The owner API: invalid Cedar is refused with its location; one owner cannot see or delete
// another's policies; nothing an owner writes grants access to another owner's resource.
both!(owner_policies_are_validated_and_private, [
    "CUSTODIA_INSECURE_LOOPBACK_HTTP_REDIRECTS" => "true",
], |srv| {
    let alice = srv.add_user("alice", PW).await;
    srv.add_user("bob", PW).await;
    let mallory = srv.add_user("mallory", PW).await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let fhir = fhir_connected(&srv, dir.path(), "alice").await;
    let alice_api = owner_session(&srv, "alice").await;
    let mallory_api = owner_session(&srv, "mallory").await;
    let (s, v) = owner_call(
        &alice_api,
        Method::POST,
        &srv.url("/owner/policies"),
        Some(json!({"kind": "cedar", "text": "permit(principal, action, resource) when { principal.nonsense ==  };"})),
    )
    .await;
    assert_eq!((s, err(&v)), (400, "invalid_policy"), "{v}");
    let d = &v["diagnostics"][0];
    assert!(d["line"].as_u64().is_some() && d["column"].as_u64().is_some(), "{v}");
    // Mallory writes the widest policy there is, for herself.
    let (s, v) = owner_call(
        &mallory_api,
        Method::POST,
        &srv.url("/owner/policies"),
        Some(json!({"kind": "cedar", "text": "permit(principal, action, resource);"})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let policy_id = v["id"].as_str().unwrap_or_default().to_string();
    let (s, _) = owner_call(
        &alice_api,
        Method::DELETE,
        &srv.url(&format!("/owner/policies/{policy_id}")),
        None,
    )
    .await;
    assert_eq!(s, 404, "alice cannot delete mallory's policy");
    let (_, list) = owner_call(&alice_api, Method::GET, &srv.url("/owner/policies"), None).await;
    assert_eq!(list, json!([]), "alice sees only her own");
    // …and it does not open alice's records to mallory.
    let app = app_client(&srv).await;
    let id_token = code_flow_tokens(&srv, &app, "mallory", PW, "openid").await["id_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let t = ticket_for(&format!("{fhir}/fhir/Patient/{alice}")).await;
    let (s, v) = uma_token(
        &srv,
        &app,
        &[("ticket", &t), ("claim_token", &id_token), ("claim_token_format", ID_TOKEN_FORMAT)],
    )
    .await;
    assert_eq!((s, err(&v)), (403, "request_denied"), "{v}");
    let _ = mallory;
    // Without a session or token: 401.
    let (s, _) = owner_call(&http(), Method::GET, &srv.url("/owner/policies"), None).await;
    assert_eq!(s, 401);
});

// UMA-FED-40 and the owner's word taking effect at once: the example server verifies RPTs by
// introspection; deleting the policy that granted an RPT, or withdrawing an approval, makes the
// next call fail (and introspection stop showing the permission).
both!(owner_revokes_and_the_next_call_fails, [
    "CUSTODIA_INSECURE_LOOPBACK_HTTP_REDIRECTS" => "true",
], |srv| {
    let alice = srv.add_user("alice", PW).await;
    let bob = srv.add_user("bob", PW).await;
    srv.add_user("carol", PW).await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let fhir =
        fhir_connected_with(&srv, dir.path(), "alice", custodia_sdk::Verification::Introspection)
            .await;
    let owner = owner_session(&srv, "alice").await;
    let patient = resource_id(&owner, &srv, "Patient record").await;
    let (s, v) = owner_call(
        &owner,
        Method::POST,
        &srv.url("/owner/policies"),
        Some(share(&srv, &patient, &bob, &["patient/Patient.read"])),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let policy = v["id"].as_str().unwrap_or_default().to_string();
    let app = app_client(&srv).await;
    let url = format!("{fhir}/fhir/Patient/{alice}");
    let id_token = |u: &'static str| {
        let (srv, app) = (&srv, &app);
        async move {
            code_flow_tokens(srv, app, u, PW, "openid").await["id_token"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        }
    };
    let bob_id = id_token("bob").await;
    let t = ticket_for(&url).await;
    let (s, v) = uma_token(
        &srv,
        &app,
        &[("ticket", &t), ("claim_token", &bob_id), ("claim_token_format", ID_TOKEN_FORMAT)],
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let rpt = v["access_token"].as_str().unwrap_or_default().to_string();
    let (s, _, _) = bearer_json(Method::GET, &url, Some(&rpt), None).await;
    assert_eq!(s, 200);
    let (s, _) = owner_call(
        &owner,
        Method::DELETE,
        &srv.url(&format!("/owner/policies/{policy}")),
        None,
    )
    .await;
    assert_eq!(s, 204);
    let (s, h, _) = bearer_json(Method::GET, &url, Some(&rpt), None).await;
    assert_eq!(s, 401, "the next call fails");
    assert!(h.get("www-authenticate").is_some());

    // An approval withdrawn: the same.
    let (s, _) = owner_call(
        &owner,
        Method::PUT,
        &srv.url("/owner/settings"),
        Some(json!({"accept_requests": true})),
    )
    .await;
    assert_eq!(s, 200);
    let carol = id_token("carol").await;
    let t = ticket_for(&url).await;
    let (_, v) = uma_token(
        &srv,
        &app,
        &[("ticket", &t), ("claim_token", &carol), ("claim_token_format", ID_TOKEN_FORMAT)],
    )
    .await;
    assert_eq!(err(&v), "request_submitted", "{v}");
    let polled = v["ticket"].as_str().unwrap_or_default().to_string();
    let (_, pending) = owner_call(
        &owner,
        Method::GET,
        &srv.url("/owner/requests?status=pending"),
        None,
    )
    .await;
    let id = pending[0]["id"].as_str().unwrap_or_default().to_string();
    let (s, _) = owner_call(
        &owner,
        Method::POST,
        &srv.url(&format!("/owner/requests/{id}/approve")),
        Some(json!({})),
    )
    .await;
    assert_eq!(s, 200);
    let (s, v) = uma_token(
        &srv,
        &app,
        &[("ticket", &polled), ("claim_token", &carol), ("claim_token_format", ID_TOKEN_FORMAT)],
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let rpt = v["access_token"].as_str().unwrap_or_default().to_string();
    let (s, _, _) = bearer_json(Method::GET, &url, Some(&rpt), None).await;
    assert_eq!(s, 200);
    let (s, _) = owner_call(
        &owner,
        Method::POST,
        &srv.url(&format!("/owner/requests/{id}/deny")),
        Some(json!({})),
    )
    .await;
    assert_eq!(s, 200, "an approval can be withdrawn");
    let (s, _, _) = bearer_json(Method::GET, &url, Some(&rpt), None).await;
    assert_eq!(s, 401, "the next call fails");
});

// UMA-GRANT-12, -14, -57, -63: a PCT from claims gathered with the requesting party's agreement
// skips a repeat sign-in, is its client's alone and revocable; an RPT upgrade keeps the old
// permissions (`upgraded`).
both!(pct_reuse_and_rpt_upgrade, [
    "CUSTODIA_INSECURE_LOOPBACK_HTTP_REDIRECTS" => "true",
], |srv| {
    let alice = srv.add_user("alice", PW).await;
    let bob = srv.add_user("bob", PW).await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let fhir = fhir_connected(&srv, dir.path(), "alice").await;
    let owner = owner_session(&srv, "alice").await;
    for (label, scope) in [
        ("Patient record", "patient/Patient.read"),
        ("Observations", "patient/Observation.read"),
    ] {
        let rid = resource_id(&owner, &srv, label).await;
        let (s, v) = owner_call(
            &owner,
            Method::POST,
            &srv.url("/owner/policies"),
            Some(share(&srv, &rid, &bob, &[scope])),
        )
        .await;
        assert_eq!(s, 201, "{v}");
    }
    let app = app_client(&srv).await;
    let patient_url = format!("{fhir}/fhir/Patient/{alice}");
    let obs_url = format!("{fhir}/fhir/Observation?patient={alice}");

    // Bob signs in at the claims interaction endpoint and lets the app remember him.
    let t = ticket_for(&patient_url).await;
    let (_, v) = uma_token(&srv, &app, &[("ticket", &t)]).await;
    let t = v["ticket"].as_str().unwrap_or_default().to_string();
    let b = browser();
    let q = serde_urlencoded::to_string([("client_id", app.id.as_str()), ("ticket", t.as_str())])
        .unwrap_or_default();
    let login = open(&b, &format!("{}?{q}", srv.url("/uma/claims"))).await;
    let (_, page) = login.page();
    assert!(page.contains("name=\"remember\""), "the page offers to remember");
    let resp = b
        .post(srv.url("/uma/claims/login"))
        .form(&[
            ("csrf", input_value(page, "csrf").unwrap_or_default().as_str()),
            ("request", input_value(page, "request").unwrap_or_default().as_str()),
            ("username", "bob"),
            ("password", PW),
            ("remember", "yes"),
        ])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let back = resp
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let t = query(&back).remove("ticket").unwrap_or_default();
    let (s, v) = uma_token(&srv, &app, &[("ticket", &t)]).await;
    assert_eq!(s, 200, "{v}");
    let rpt1 = v["access_token"].as_str().unwrap_or_default().to_string();
    let pct = v["pct"].as_str().unwrap_or_default().to_string();
    assert!(pct.starts_with("cst_pct_"), "{v}");
    assert!(v.get("upgraded").is_none());
    assert!(!srv.dump_database().await.contains(&pct), "the PCT is stored hashed");
    let (s, _, _) = bearer_json(Method::GET, &obs_url, Some(&rpt1), None).await;
    assert_eq!(s, 401, "the first RPT covers the Patient record only");

    // The PCT skips a sign-in; the upgrade keeps the Patient permission.
    let t = ticket_for(&obs_url).await;
    let (s, v) = uma_token(&srv, &app, &[("ticket", &t), ("pct", &pct), ("rpt", &rpt1)]).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["upgraded"], json!(true));
    let rpt2 = v["access_token"].as_str().unwrap_or_default().to_string();
    for url in [&patient_url, &obs_url] {
        let (s, _, _) = bearer_json(Method::GET, url, Some(&rpt2), None).await;
        assert_eq!(s, 200, "{url}");
    }
    // UMA-GRANT-43: the old RPT is revoked by the upgrade.
    assert_eq!(introspect(&srv, &app, &rpt1).await, json!({"active": false}));
    assert_eq!(introspect(&srv, &app, &rpt2).await["active"], json!(true));

    // Another client cannot use the PCT, nor upgrade this client's RPT.
    let other = app_client(&srv).await;
    let t = ticket_for(&obs_url).await;
    let (s, v) = uma_token(&srv, &other, &[("ticket", &t), ("pct", &pct)]).await;
    assert_eq!((s, err(&v)), (400, "invalid_grant"), "{v}");
    let (s, v) = uma_token(&srv, &other, &[("ticket", &t), ("rpt", &rpt2)]).await;
    assert_eq!((s, err(&v)), (400, "invalid_grant"), "the ticket survived the refusals: {v}");

    // Revoked (token type hint `pct`): no more reuse.
    let resp = http()
        .post(srv.url("/revoke"))
        .basic_auth(&app.id, app.secret.as_deref())
        .form(&[("token", pct.as_str()), ("token_type_hint", "pct")])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status().as_u16(), 200);
    let (s, v) = uma_token(&srv, &app, &[("ticket", &t), ("pct", &pct)]).await;
    assert_eq!((s, err(&v)), (400, "invalid_grant"), "{v}");
});

const UP_SECRET: &str = "custodia-at-upstream-0123456789abcdef";
const APP_SECRET: &str = "clinic-app-at-upstream-0123456789abc";

/// Custodia trusting a real upstream OpenID Provider (`oidc-provider`): Custodia is its client
/// `custodia` (for sign-in at the claims interaction endpoint), and the clinic app is its client
/// `clinic-app` (whose ID tokens may be pushed).
async fn with_upstream(backend: Backend) -> (TestServer, Upstream) {
    with_upstream_in(backend, &[]).await
}

/// [`with_upstream`] with more settings (a profile).
async fn with_upstream_in(backend: Backend, more: &[(&str, &str)]) -> (TestServer, Upstream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
    let custodia = format!("http://127.0.0.1:{port}");
    let up = Upstream::start(json!([
        {
            "client_id": "custodia",
            "client_secret": UP_SECRET,
            "redirect_uris": [format!("{custodia}/uma/claims/callback")],
        },
        {
            "client_id": "clinic-app",
            "client_secret": APP_SECRET,
            "redirect_uris": ["https://client.example/cb"],
        },
        {
            "client_id": "other-app",
            "client_secret": APP_SECRET,
            "redirect_uris": ["https://client.example/cb"],
        },
    ]))
    .await;
    let trusted = json!([{
        "issuer": up.issuer,
        "audiences": ["clinic-app"],
        "client_id": "custodia",
        "client_secret": UP_SECRET,
        "name": "Clinic IdP",
        "scope": "openid clinical email",
        "claim_types": {"role": ROLE_CLAIM_TYPE},
    }])
    .to_string();
    let mut settings = vec![
        ("CUSTODIA_INSECURE_LOOPBACK_HTTP_REDIRECTS", "true"),
        ("CUSTODIA_TRUSTED_ISSUERS", trusted.as_str()),
        // Tickets outlive the upstream's ten-minute ID tokens (the expiry test moves the clock).
        ("CUSTODIA_TICKET_TTL", "3600"),
    ];
    settings.extend_from_slice(more);
    let srv = TestServer::start_on(backend, listener, &settings).await;
    (srv, up)
}

/// An ID token from the upstream provider for `login`, issued to `client_id`.
async fn upstream_id_token(up: &Upstream, client_id: &str, login: &str) -> String {
    upstream_id_token_for(up, client_id, login, "openid clinical email").await
}

/// [`upstream_id_token`] asked with `scope` (`openid` alone: no clinical claims).
async fn upstream_id_token_for(up: &Upstream, client_id: &str, login: &str, scope: &str) -> String {
    let (verifier, challenge) = pkce();
    let d = up.discovery().await;
    let auth = format!(
        "{}?{}",
        d["authorization_endpoint"].as_str().unwrap_or_default(),
        serde_urlencoded::to_string([
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", "https://client.example/cb"),
            ("scope", scope),
            ("state", "s"),
            ("nonce", "n"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ])
        .unwrap_or_default()
    );
    let back = upstream_sign_in(&browser(), &auth, login).await;
    let code = query(&back)
        .remove("code")
        .unwrap_or_else(|| panic!("{back}"));
    let t: Value = http()
        .post(d["token_endpoint"].as_str().unwrap_or_default())
        .basic_auth(client_id, Some(APP_SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", "https://client.example/cb"),
            ("code_verifier", verifier.as_str()),
        ])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or(Value::Null);
    t["id_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{t}"))
        .to_string()
}

/// The owner shares the Patient record with the clinician `dr-who` of the upstream provider,
/// requiring the upstream's `role` claim to be `clinician`.
async fn share_with_clinician(
    srv: &TestServer,
    up: &Upstream,
    owner: &custodia_tests::reqwest::Client,
) -> String {
    let patient = resource_id(owner, srv, "Patient record").await;
    let (s, v) = owner_call(
        owner,
        Method::POST,
        &srv.url("/owner/policies"),
        Some(json!({
            "kind": "share",
            "resource": {"resource": patient},
            "with": {"subject": {"issuer": up.issuer, "subject": "dr-who"}},
            "scopes": ["patient/Patient.read"],
            "require_claim": {"name": "role", "value": "clinician", "issuer": up.issuer},
        })),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    v["id"].as_str().unwrap_or_default().to_string()
}

/// The whole UMA flow of the seed's diagram, with the claim gathered at the upstream provider:
/// owner connects the RS (PAT), resources registered, owner shares with a clinician requiring a
/// claim from the upstream provider; client → RS 401 + ticket → token endpoint → need_info →
/// claims interaction at the upstream provider → new ticket → RPT → RS verifies → 200; the owner
/// revokes and the next call fails.
async fn whole_uma_flow(backend: Backend) {
    let (srv, up) = with_upstream(backend).await;
    let alice = srv.add_user("alice", PW).await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let fhir = fhir_connected_with(
        &srv,
        dir.path(),
        "alice",
        custodia_sdk::Verification::Introspection,
    )
    .await;
    let owner = owner_session(&srv, "alice").await;
    let policy = share_with_clinician(&srv, &up, &owner).await;
    let app = app_client(&srv).await;
    let url = format!("{fhir}/fhir/Patient/{alice}");

    let t1 = ticket_for(&url).await;
    let (s, v) = uma_token(&srv, &app, &[("ticket", &t1)]).await;
    assert_eq!((s, err(&v)), (403, "need_info"), "{v}");
    let required = v["required_claims"].as_array().cloned().unwrap_or_default();
    assert!(
        required.iter().any(|c| c["issuer"] == json!([up.issuer])),
        "the required claims name the upstream issuer: {v}"
    );
    let t2 = v["ticket"].as_str().unwrap_or_default().to_string();
    let interact = v["redirect_user"].as_str().unwrap_or_default().to_string();

    // UMA-GRANT-48: `redirect_user` is for this request: it names the provider the policy needs.
    let idp = serde_urlencoded::to_string([("idp", up.issuer.as_str())]).unwrap_or_default();
    assert_eq!(interact, format!("{}?{idp}", srv.url("/uma/claims")), "{v}");
    let b = browser();
    let q = serde_urlencoded::to_string([
        ("client_id", app.id.as_str()),
        ("ticket", t2.as_str()),
        ("state", "st-1"),
    ])
    .unwrap_or_default();
    // The static endpoint offers the provider among the ways to sign in ...
    let page = open(&b, &format!("{}?{q}", srv.url("/uma/claims"))).await;
    let (_, html) = page.page();
    assert!(html.contains("Sign in with Clinic IdP"), "{html}");
    // ... and the client, appending its parameters to `redirect_user` (keeping its query,
    // UMA-GRANT-19), sends the requesting party straight to the provider.
    let start = b
        .get(format!("{interact}&{q}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(start.status().as_u16(), 303);
    let at_upstream = start
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(at_upstream.starts_with(&up.issuer), "{at_upstream}");
    assert!(at_upstream.contains("code_challenge_method=S256") && at_upstream.contains("nonce="));
    // UMA-GRANT-27: the requesting party signs in knowingly, whatever session they have there.
    assert!(at_upstream.contains("prompt=login"), "{at_upstream}");
    // HEART-UMA-09: Custodia is the relying party here. Its state (state, nonce, PKCE verifier)
    // stays with the browser, sealed: unreadable and unalterable.
    let rp_cookie = start
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("custodia_rp="))
        .and_then(|c| c.split(';').next())
        .unwrap_or_default()
        .to_string();
    assert!(rp_cookie.len() > 40, "{rp_cookie}");
    let state_sent = query(&at_upstream).remove("state").unwrap_or_default();
    assert!(!state_sent.is_empty() && !rp_cookie.contains(&state_sent));
    let callback = upstream_sign_in(&b, &at_upstream, "dr-who").await;
    assert!(
        callback.starts_with(&srv.url("/uma/claims/callback")),
        "{callback}"
    );
    // What the callback refuses, each with a page and no redirect: another browser, an altered
    // cookie, another sign-in's state, the provider's error.
    let refused = |cookie: Option<String>, url: String| async move {
        let mut req = http().get(&url);
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{e}"));
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap_or_default())
    };
    let (s, page) = refused(None, callback.clone()).await;
    assert!(
        s == 400 && page.contains("not started from this browser"),
        "{s} {page}"
    );
    // One character in the middle of the sealed value changed (the ciphertext, not its padding).
    let mut altered = rp_cookie.clone().into_bytes();
    let middle = altered.len() / 2;
    if let Some(c) = altered.get_mut(middle) {
        *c = if *c == b'A' { b'B' } else { b'A' };
    }
    let altered = String::from_utf8(altered).unwrap_or_default();
    let (s, page) = refused(Some(altered), callback.clone()).await;
    assert!(
        s == 400 && page.contains("not started from this browser"),
        "{s} {page}"
    );
    let other_state = callback.replace(&format!("state={state_sent}"), "state=another-sign-in");
    assert_ne!(other_state, callback);
    let (s, page) = refused(Some(rp_cookie.clone()), other_state).await;
    assert!(
        s == 400 && page.contains("does not belong to this sign-in"),
        "{s} {page}"
    );
    let denied = format!(
        "{}?error=access_denied&state={state_sent}",
        srv.url("/uma/claims/callback")
    );
    let (s, page) = refused(Some(rp_cookie.clone()), denied).await;
    assert!(
        s == 400 && page.contains("did not sign you in"),
        "{s} {page}"
    );
    let back = b
        .get(&callback)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back.status().as_u16(), 303, "{:?}", back.text().await);
    let to_client = back
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let q = query(&to_client);
    assert_eq!(q.get("state").map(String::as_str), Some("st-1"));
    let t3 = q.get("ticket").cloned().unwrap_or_default();
    // The answer is single-use: replayed with the sealed state, it is refused (the ticket it
    // carries was spent, before the provider's spent code is even tried).
    let (s, page) = refused(Some(rp_cookie.clone()), callback.clone()).await;
    assert!(s == 400 && page.contains("already used"), "{s} {page}");

    let (s, v) = uma_token(&srv, &app, &[("ticket", &t3)]).await;
    assert_eq!(s, 200, "{v}");
    let rpt = v["access_token"].as_str().unwrap_or_default().to_string();
    let (s, _, body) = bearer_json(Method::GET, &url, Some(&rpt), None).await;
    assert_eq!((s, &body["id"]), (200, &json!(alice)));

    // The owner revokes: the next call fails.
    let (s, _) = owner_call(
        &owner,
        Method::DELETE,
        &srv.url(&format!("/owner/policies/{policy}")),
        None,
    )
    .await;
    assert_eq!(s, 204);
    let (s, _, _) = bearer_json(Method::GET, &url, Some(&rpt), None).await;
    assert_eq!(s, 401);
}

mod whole_uma_flow_with_upstream_claims {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        whole_uma_flow(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        whole_uma_flow(Backend::Postgres).await;
    }
}

/// Pushed ID tokens from the upstream provider (UMA-GRANT-10, -11, -58): valid → RPT; wrong
/// audience, untrusted issuer, wrong role → need_info (or denied) with the reason.
async fn pushed_upstream_tokens(backend: Backend) {
    let (srv, up) = with_upstream(backend).await;
    let alice = srv.add_user("alice", PW).await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let fhir = fhir_connected(&srv, dir.path(), "alice").await;
    let owner = owner_session(&srv, "alice").await;
    share_with_clinician(&srv, &up, &owner).await;
    let app = app_client(&srv).await;
    let url = format!("{fhir}/fhir/Patient/{alice}");
    let push = |token: String| {
        let (srv, app, url) = (&srv, &app, url.clone());
        async move {
            let t = ticket_for(&url).await;
            uma_token(
                srv,
                app,
                &[
                    ("ticket", &t),
                    ("claim_token", &token),
                    ("claim_token_format", ID_TOKEN_FORMAT),
                ],
            )
            .await
        }
    };
    let (s, v) = push(upstream_id_token(&up, "clinic-app", "dr-who").await).await;
    assert_eq!(s, 200, "a valid upstream ID token: {v}");
    let (s, v) = push(upstream_id_token(&up, "other-app", "dr-who").await).await;
    assert_eq!((s, err(&v)), (403, "need_info"), "{v}");
    assert!(
        v["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("audience")),
        "{v}"
    );
    let (s, v) = push(upstream_id_token(&up, "clinic-app", "nurse-joy").await).await;
    assert_eq!(s, 403, "a nurse is not the shared clinician: {v}");
    let stranger = Upstream::start(json!([{
        "client_id": "clinic-app",
        "client_secret": APP_SECRET,
        "redirect_uris": ["https://client.example/cb"],
    }]))
    .await;
    let (s, v) = push(upstream_id_token(&stranger, "clinic-app", "dr-who").await).await;
    assert_eq!((s, err(&v)), (403, "need_info"), "{v}");
    assert!(
        v["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("not trusted")),
        "{v}"
    );
    // Expired: a valid token, presented after its ten-minute lifetime (Custodia's clock moved;
    // the ticket is taken first, while the resource server's and Custodia's clocks agree).
    let token = upstream_id_token(&up, "clinic-app", "dr-who").await;
    let t = ticket_for(&url).await;
    srv.core.clock.advance(11 * 60);
    let (s, v) = uma_token(
        &srv,
        &app,
        &[
            ("ticket", &t),
            ("claim_token", &token),
            ("claim_token_format", ID_TOKEN_FORMAT),
        ],
    )
    .await;
    assert_eq!((s, err(&v)), (403, "need_info"), "{v}");
    assert!(
        v["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("expired")),
        "{v}"
    );
}

mod pushed_upstream_tokens {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        pushed_upstream_tokens(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        pushed_upstream_tokens(Backend::Postgres).await;
    }
}

/// The claim type the upstream provider's `role` is configured with (a trusted issuer's
/// `claim_types`).
const ROLE_CLAIM_TYPE: &str = "https://clinic.example/claim-types/practitioner-role";

/// HEART-FHIR-07 (break the glass) and claim-based shares: the owner lets whoever the upstream
/// provider says is a `clinician` read the Patient record with `btg`. Without claims the client is
/// asked for `role` from that provider, with the claim type configured for it there
/// (HEART-FHIRUMA-03: `required_claims` name the claim a policy needs and its type); a nurse is
/// refused; the clinician's pushed ID token, with the client asking for `btg`, gets an RPT
/// carrying both scopes, which the resource server accepts; the owner's audit, the AS's log and
/// the RS's log show it. A claim share without an issuer is refused. A party who has answered a
/// need_info at the claims endpoint is not sent round again: the owner decides.
async fn break_the_glass_share(backend: Backend) {
    let logs = custodia_tests::captured_logs();
    let (srv, up) = with_upstream_in(backend, &[("CUSTODIA_PCT_CLAIMS_MAX_AGE", "600")]).await;
    let alice = srv.add_user("alice", PW).await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let fhir = fhir_connected(&srv, dir.path(), "alice").await;
    let owner = owner_session(&srv, "alice").await;
    let patient = resource_id(&owner, &srv, "Patient record").await;
    let emergency = |issuer: Value| {
        json!({
            "kind": "share",
            "resource": {"resource": patient},
            "with": {"claim": {"name": "role", "value": "clinician", "issuer": issuer}},
            "scopes": ["patient/Patient.read", "btg"],
        })
    };
    let mut unscoped = emergency(Value::Null);
    if let Some(claim) = unscoped["with"]["claim"].as_object_mut() {
        claim.remove("issuer");
    }
    let (s, v) = owner_call(
        &owner,
        Method::POST,
        &srv.url("/owner/policies"),
        Some(unscoped),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v.to_string().contains("must name the claim's issuer"),
        "{v}"
    );
    let (s, v) = owner_call(
        &owner,
        Method::POST,
        &srv.url("/owner/policies"),
        Some(emergency(json!(up.issuer))),
    )
    .await;
    assert_eq!(s, 201, "{v}");

    let app = TestClient::from_json(
        &srv.add_client(json!({
            "client_name": "Emergency department",
            "redirect_uris": ["https://client.example/cb"],
            "grant_types": [UMA_GRANT],
            "scope": "btg",
        }))
        .await,
    );
    let url = format!("{fhir}/fhir/Patient/{alice}");
    let t = ticket_for(&url).await;
    let (s, v) = uma_token(&srv, &app, &[("ticket", &t), ("scope", "btg")]).await;
    assert_eq!((s, err(&v)), (403, "need_info"), "{v}");
    let required = v["required_claims"].as_array().cloned().unwrap_or_default();
    assert!(
        required.iter().any(|c| c["name"] == "role"
            && c["issuer"] == json!([up.issuer])
            && c["claim_type"] == ROLE_CLAIM_TYPE),
        "the claim the share needs, from its issuer, with its configured type: {v}"
    );
    let push = |token: String| {
        let (srv, app, url) = (&srv, &app, url.clone());
        async move {
            let t = ticket_for(&url).await;
            uma_token(
                srv,
                app,
                &[
                    ("ticket", &t),
                    ("scope", "btg"),
                    ("claim_token", &token),
                    ("claim_token_format", ID_TOKEN_FORMAT),
                ],
            )
            .await
        }
    };
    // A nurse holds `role` with another value: no claim would help, and the owner takes no
    // requests: request_denied.
    let (s, v) = push(upstream_id_token(&up, "clinic-app", "nurse-joy").await).await;
    assert_eq!(
        (s, err(&v)),
        (403, "request_denied"),
        "a nurse is not a clinician: {v}"
    );
    let (s, v) = push(upstream_id_token(&up, "clinic-app", "dr-who").await).await;
    assert_eq!(s, 200, "{v}");
    let rpt = v["access_token"].as_str().unwrap_or_default().to_string();
    let permissions = crate::dpop::claims_of(&rpt)["permissions"].clone();
    let mut scopes: Vec<&str> = permissions[0]["resource_scopes"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    scopes.sort_unstable();
    assert_eq!(
        (permissions[0]["resource_id"].as_str(), scopes),
        (Some(patient.as_str()), vec!["btg", "patient/Patient.read"]),
        "{permissions}"
    );
    let (s, _, body) = bearer_json(Method::GET, &url, Some(&rpt), None).await;
    assert_eq!((s, &body["id"]), (200, &json!(alice)), "{body}");

    // Audited by the owner's audit, the AS's log and the resource server's log.
    let (s, audit) = owner_call(&owner, Method::GET, &srv.url("/owner/decisions"), None).await;
    assert_eq!(s, 200);
    let granted_btg =
        |d: &Value| d["outcome"] == "rpt_issued" && d["granted"].to_string().contains("\"btg\"");
    assert!(
        audit.as_array().is_some_and(|a| a.iter().any(granted_btg)),
        "the owner sees the emergency grant: {audit}"
    );
    let at_as: Vec<Value> = logs
        .audit("break_the_glass")
        .into_iter()
        .filter(|f| f["resources"] == patient.as_str())
        .collect();
    assert_eq!(at_as.len(), 1, "one emergency RPT, one AS event: {at_as:?}");
    assert_eq!(
        (
            &at_as[0]["owner"],
            &at_as[0]["party_issuer"],
            &at_as[0]["party_subject"],
            &at_as[0]["client_id"]
        ),
        (
            &json!(alice),
            &json!(up.issuer),
            &json!("dr-who"),
            &json!(app.id)
        ),
        "{at_as:?}"
    );
    let at_rs: Vec<Value> = logs
        .audit("break_the_glass_access")
        .into_iter()
        .filter(|f| f["resource_id"] == patient.as_str())
        .collect();
    assert_eq!(
        at_rs.len(),
        1,
        "one emergency access, one RS event: {at_rs:?}"
    );
    let rpt_claims = crate::dpop::claims_of(&rpt);
    assert_eq!(
        (
            &at_rs[0]["method"],
            &at_rs[0]["path"],
            &at_rs[0]["owner"],
            &at_rs[0]["subject"],
            &at_rs[0]["client_id"]
        ),
        (
            &json!("GET"),
            &json!(format!("/fhir/Patient/{alice}")),
            &json!(alice),
            &rpt_claims["sub"],
            &json!(app.id)
        ),
        "{at_rs:?}"
    );
    assert!(!logs.contains(&rpt), "the RPT is never logged");

    // A clinician whose token lacks the claim (asked with `openid` only) is asked for it
    // (UMA-GRANT-11), from that provider.
    let bare = upstream_id_token_for(&up, "clinic-app", "dr-who", "openid").await;
    let (s, v) = push(bare).await;
    assert_eq!((s, err(&v)), (403, "need_info"), "{v}");
    assert!(
        v["required_claims"].as_array().is_some_and(|a| a
            .iter()
            .any(|c| c["name"] == "role" && c["issuer"] == json!([up.issuer]))),
        "{v}"
    );

    // Someone the owner did not mean: asked for the claim too (UMA-GRANT-11); once they have
    // answered it they are not sent round again: the owner decides (request_submitted). A client
    // that pushes claims answers by pushing the same party's token again with the new ticket …
    let (s, _) = owner_call(
        &owner,
        Method::PUT,
        &srv.url("/owner/settings"),
        Some(json!({"accept_requests": true})),
    )
    .await;
    assert_eq!(s, 200);
    srv.add_user("bob", PW).await;
    let uma_app = app_client(&srv).await;
    let bob = code_flow_tokens(&srv, &uma_app, "bob", PW, "openid").await;
    let bob_token = bob["id_token"].as_str().unwrap_or_default().to_string();
    let push_bob = |ticket: String| {
        let (srv, uma_app, bob_token) = (&srv, &uma_app, bob_token.clone());
        async move {
            uma_token(
                srv,
                uma_app,
                &[
                    ("ticket", &ticket),
                    ("claim_token", &bob_token),
                    ("claim_token_format", ID_TOKEN_FORMAT),
                ],
            )
            .await
        }
    };
    let (s, v) = push_bob(ticket_for(&url).await).await;
    assert_eq!((s, err(&v)), (403, "need_info"), "{v}");
    let (s, v) = push_bob(v["ticket"].as_str().unwrap_or_default().to_string()).await;
    assert_eq!(
        (s, err(&v)),
        (403, "request_submitted"),
        "the same party again: {v}"
    );
    // … a fresh ticket starts over (need_info), and so does another party with that ticket.
    let (s, v) = push_bob(ticket_for(&url).await).await;
    assert_eq!((s, err(&v)), (403, "need_info"), "{v}");
    let told_bob = v["ticket"].as_str().unwrap_or_default().to_string();
    srv.add_user("carol", PW).await;
    let carol = code_flow_tokens(&srv, &uma_app, "carol", PW, "openid").await;
    let (s, v) = uma_token(
        &srv,
        &uma_app,
        &[
            ("ticket", &told_bob),
            (
                "claim_token",
                carol["id_token"].as_str().unwrap_or_default(),
            ),
            ("claim_token_format", ID_TOKEN_FORMAT),
        ],
    )
    .await;
    assert_eq!((s, err(&v)), (403, "need_info"), "told bob, not carol: {v}");

    // … and one sent to the claims interaction endpoint answers by signing in there.
    let (s, v) = push_bob(ticket_for(&url).await).await;
    assert_eq!((s, err(&v)), (403, "need_info"), "{v}");
    let t2 = v["ticket"].as_str().unwrap_or_default().to_string();
    let back = crate::grant_rules::gather(&srv, &uma_app, &t2, "bob", false).await;
    let t3 = query(&back).remove("ticket").unwrap_or_default();
    assert!(!t3.is_empty(), "{back}");
    let (s, v) = uma_token(&srv, &uma_app, &[("ticket", &t3)]).await;
    assert_eq!((s, err(&v)), (403, "request_submitted"), "{v}");
    // Polling carries the gathered claims only while they are younger than their maximum age
    // (UMA-GRANT-36): past it, need_info saying why.
    let t4 = v["ticket"].as_str().unwrap_or_default().to_string();
    srv.core.clock.advance(601);
    let (s, v) = uma_token(&srv, &uma_app, &[("ticket", &t4)]).await;
    assert_eq!((s, err(&v)), (403, "need_info"), "{v}");
    assert!(
        v["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("older than 600 seconds")),
        "{v}"
    );
}

mod break_the_glass_share {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        break_the_glass_share(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        break_the_glass_share(Backend::Postgres).await;
    }
}

// UMA-GRANT-54 (expiry) and unknown tickets: an expired ticket, a made-up one and one of another
// authorization server are `invalid_grant`.
both!(expired_and_unknown_tickets, [
    "CUSTODIA_INSECURE_LOOPBACK_HTTP_REDIRECTS" => "true",
    "CUSTODIA_TICKET_TTL" => "60",
], |srv| {
    let alice = srv.add_user("alice", PW).await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let fhir = fhir_connected(&srv, dir.path(), "alice").await;
    let app = app_client(&srv).await;
    let t = ticket_for(&format!("{fhir}/fhir/Patient/{alice}")).await;
    srv.core.clock.advance(61);
    let (s, v) = uma_token(&srv, &app, &[("ticket", &t)]).await;
    assert_eq!((s, err(&v)), (400, "invalid_grant"), "expired: {v}");
    // UMA-GRANT-15, -45: `scope` values must be the client's and offered by the ticket's resources.
    let t = ticket_for(&format!("{fhir}/fhir/Patient/{alice}")).await;
    let (s, v) = uma_token(&srv, &app, &[("ticket", &t), ("scope", "print")]).await;
    assert_eq!((s, err(&v)), (400, "invalid_scope"), "not the client's: {v}");
    let (s, v) = uma_token(&srv, &app, &[("ticket", &t), ("scope", "openid")]).await;
    assert_eq!((s, err(&v)), (400, "invalid_scope"), "no resource offers it: {v}");
    // UMA-GRANT-27: the claims sign-in form is refused without its CSRF token.
    let resp = browser()
        .post(srv.url("/uma/claims/login"))
        .form(&[("request", "client_id=x"), ("username", "alice"), ("password", PW)])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status().as_u16(), 400);
    assert!(resp.headers().get("location").is_none());
    for made_up in ["cst_pt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "016f84e8-f9b9-11e0-bd6f-0021cc6004de"] {
        let (s, v) = uma_token(&srv, &app, &[("ticket", made_up)]).await;
        assert_eq!((s, err(&v)), (400, "invalid_grant"), "{made_up}: {v}");
    }
});

/// The whole flow again under `heart-fhir` (the profiles issue's acceptance): the example FHIR
/// server and the clinic app authenticate with `private_key_jwt` (HEART-UMA-02, -03), the
/// resources carry FHIR scopes and types, the claim comes from the upstream provider, and the RPT
/// is DPoP-bound (HEART-UMA-04; DPOP-03, -11): the example server takes it only with a proof.
async fn whole_uma_flow_heart_fhir(backend: Backend) {
    use crate::dpop::{call, jkt, key, proof_at};
    let (srv, up) = with_upstream_in(backend, &[("CUSTODIA_PROFILE", "heart-fhir")]).await;
    let alice = srv.add_user("alice", PW).await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (fhir, _) = fhir_example_with(
        &srv,
        dir.path(),
        custodia_sdk::Verification::Introspection,
        true,
    )
    .await;
    connect_fhir(&srv, &fhir, "alice", PW).await;
    let owner = owner_session(&srv, "alice").await;
    let policy = share_with_clinician(&srv, &up, &owner).await;
    let app = srv
        .add_key_client(json!({
            "client_name": "Clinic app",
            "redirect_uris": ["https://client.example/cb"],
            "claims_redirect_uris": ["https://client.example/claims"],
            "grant_types": [UMA_GRANT],
            "scope": "openid",
        }))
        .await;
    let url = format!("{fhir}/fhir/Patient/{alice}");

    let t1 = ticket_for(&url).await;
    let (s, v) = token_request(&srv, &app, &[("grant_type", UMA_GRANT), ("ticket", &t1)]).await;
    assert_eq!((s, err(&v)), (403, "need_info"), "{v}");
    let t2 = v["ticket"].as_str().unwrap_or_default().to_string();
    let interact = v["redirect_user"].as_str().unwrap_or_default().to_string();
    let b = browser();
    let q = serde_urlencoded::to_string([("client_id", app.id.as_str()), ("ticket", t2.as_str())])
        .unwrap_or_default();
    let start = b
        .get(format!("{interact}&{q}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(start.status().as_u16(), 303);
    let at_upstream = start
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let callback = upstream_sign_in(&b, &at_upstream, "dr-who").await;
    let back = b
        .get(&callback)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back.status().as_u16(), 303);
    let to_client = back
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let t3 = query(&to_client).remove("ticket").unwrap_or_default();

    // The RPT, bound to the app's DPoP key.
    let k = key();
    let proof = proof_at(&k, "POST", &srv.url("/token"), None, srv.core.now());
    let mut form: Vec<(&str, String)> = vec![("grant_type", UMA_GRANT.into()), ("ticket", t3)];
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
    let claims: Value = rpt
        .split('.')
        .nth(1)
        .and_then(|p| {
            use base64::Engine as _;
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .ok()
        })
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    assert_eq!(claims["cnf"]["jkt"], json!(jkt(&k)));

    // The resource server: a bearer RPT is refused; with a proof from the key, the record.
    let (s, _, _) = call(Method::GET, &url, &format!("Bearer {rpt}"), None).await;
    assert_eq!(s, 401);
    let p = proof_at(&k, "GET", &url, Some(&rpt), srv.core.now());
    let (s, _, body) = call(Method::GET, &url, &format!("DPoP {rpt}"), Some(&p)).await;
    assert_eq!((s, &body["id"]), (200, &json!(alice)), "{body}");

    // The owner revokes: the next call fails (the example introspects with its PAT).
    let (s, _) = owner_call(
        &owner,
        Method::DELETE,
        &srv.url(&format!("/owner/policies/{policy}")),
        None,
    )
    .await;
    assert_eq!(s, 204);
    let p = proof_at(&k, "GET", &url, Some(&rpt), srv.core.now());
    let (s, _, _) = call(Method::GET, &url, &format!("DPoP {rpt}"), Some(&p)).await;
    assert_eq!(s, 401, "the next call fails");
}

mod whole_uma_flow_under_heart_fhir {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        whole_uma_flow_heart_fhir(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        whole_uma_flow_heart_fhir(Backend::Postgres).await;
    }
}

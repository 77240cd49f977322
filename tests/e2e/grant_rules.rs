//! UMA grant rules of `../shared/specs/uma.md` that `grant.rs` does not walk through: the
//! assessment of requested scopes (UMA Grant §3.3.4) on the specification's own example, the RPT
//! response and error shapes, ticket replay, the age of claims behind a PCT, client types,
//! claims redirect URIs, discovery, and RPT upgrade across resource servers. Resources and
//! tickets come straight from the protection API, so every scope is the test's choice.

use custodia_tests::reqwest::Method;
use custodia_tests::*;
use serde_json::{Value, json};

use super::grant::{ID_TOKEN_FORMAT, PW, UMA_GRANT, err, owner_call, owner_session, uma_token};

/// A resource registered by `rs` with its PAT: returns its id.
pub(crate) async fn register(srv: &TestServer, pat: &str, name: &str, scopes: &[&str]) -> String {
    let (s, _, v) = bearer_json(
        Method::POST,
        &srv.url("/uma/resources"),
        Some(pat),
        Some(&json!({"name": name, "resource_scopes": scopes})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    v["_id"].as_str().unwrap_or_default().to_string()
}

/// A ticket for `permissions` (`[(resource, [scopes])]`) from the permission endpoint.
pub(crate) async fn ticket(srv: &TestServer, pat: &str, permissions: &[(&str, &[&str])]) -> String {
    let body: Vec<Value> = permissions
        .iter()
        .map(|(r, s)| json!({"resource_id": r, "resource_scopes": s}))
        .collect();
    let (s, _, v) = bearer_json(
        Method::POST,
        &srv.url("/uma/permission"),
        Some(pat),
        Some(&json!(body)),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    v["ticket"].as_str().unwrap_or_default().to_string()
}

/// The owner shares `resource` with the local user `subject` for `scopes`.
pub(crate) async fn share_with(
    srv: &TestServer,
    owner: &custodia_tests::reqwest::Client,
    resource: &str,
    subject: &str,
    scopes: &[&str],
) {
    let (s, v) = owner_call(
        owner,
        Method::POST,
        &srv.url("/owner/policies"),
        Some(super::grant::share(srv, resource, subject, scopes)),
    )
    .await;
    assert_eq!(s, 201, "{v}");
}

/// The requesting party's client: confidential, the UMA grant, registered for `scope`.
async fn client_with(srv: &TestServer, scope: &str, claims_redirect: &str) -> TestClient {
    TestClient::from_json(
        &srv.add_client(json!({
            "client_name": "Photo app",
            "redirect_uris": ["https://client.example/cb"],
            "claims_redirect_uris": [claims_redirect],
            "grant_types": ["authorization_code", UMA_GRANT],
            "scope": scope,
        }))
        .await,
    )
}

/// `username`'s ID token for `app` (to push as a claim token).
async fn id_token(srv: &TestServer, app: &TestClient, username: &str) -> String {
    code_flow_tokens(srv, app, username, PW, "openid").await["id_token"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The UMA grant with a pushed ID token: `(status, Cache-Control, body)`.
async fn grant_raw(
    srv: &TestServer,
    app: &TestClient,
    form: &[(&str, &str)],
) -> (u16, String, Value) {
    let mut f = vec![("grant_type", UMA_GRANT)];
    f.extend_from_slice(form);
    let resp = http()
        .post(srv.url("/token"))
        .basic_auth(&app.id, app.secret.as_deref())
        .form(&f)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let status = resp.status().as_u16();
    let cache = resp
        .headers()
        .get("cache-control")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, cache, resp.json().await.unwrap_or(Value::Null))
}

/// Introspection of `token` with a resource server's PAT: what that resource server may see.
pub(crate) async fn introspect_with_pat(srv: &TestServer, pat: &str, token: &str) -> Value {
    let resp = http()
        .post(srv.url("/introspect"))
        .bearer_auth(pat)
        .form(&[("token", token)])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status().as_u16(), 200);
    resp.json().await.unwrap_or(Value::Null)
}

/// Introspection with a PAT and its resource server's client assertion, as `heart` and `igov`
/// require (HEART-OAUTH-40, CONF-11).
pub(crate) async fn introspect_as(
    srv: &TestServer,
    rs: &TestClient,
    pat: &str,
    token: &str,
) -> Value {
    let mut form = vec![("token", token.to_string())];
    form.extend(rs.auth_fields(&srv.url("/introspect")));
    let resp = http()
        .post(srv.url("/introspect"))
        .bearer_auth(pat)
        .form(&form)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status().as_u16(), 200);
    resp.json().await.unwrap_or(Value::Null)
}

/// `permissions` of an introspection answer as sorted `(resource, sorted scopes)`.
pub(crate) fn permission_sets(v: &Value) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = v["permissions"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    let mut s: Vec<String> = p["resource_scopes"]
                        .as_array()
                        .map(|x| {
                            x.iter()
                                .filter_map(Value::as_str)
                                .map(str::to_string)
                                .collect()
                        })
                        .unwrap_or_default();
                    s.sort();
                    (p["resource_id"].as_str().unwrap_or_default().to_string(), s)
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

pub(crate) fn set(resource: &str, scopes: &[&str]) -> (String, Vec<String>) {
    let mut s: Vec<String> = scopes.iter().map(|x| x.to_string()).collect();
    s.sort();
    (resource.to_string(), s)
}

/// The requesting party signs in at the claims interaction endpoint (agreeing, or not, that the
/// client may remember the claims); returns the URL the browser is sent back to.
pub(crate) async fn gather(
    srv: &TestServer,
    app: &TestClient,
    ticket: &str,
    who: &str,
    remember: bool,
) -> String {
    let b = browser();
    let q = serde_urlencoded::to_string([("client_id", app.id.as_str()), ("ticket", ticket)])
        .unwrap_or_default();
    let login = open(&b, &format!("{}?{q}", srv.url("/uma/claims"))).await;
    let (_, page) = login.page();
    let mut form = vec![
        ("csrf", input_value(page, "csrf").unwrap_or_default()),
        ("request", input_value(page, "request").unwrap_or_default()),
        ("username", who.to_string()),
        ("password", PW.to_string()),
    ];
    if remember {
        form.push(("remember", "yes".to_string()));
    }
    let resp = b
        .post(srv.url("/uma/claims/login"))
        .form(&form)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status().as_u16(), 303);
    resp.headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

// UMA-GRANT-30..35 on the specification's example (§3.3.4): ticket {album:[edit], photo1:[view],
// photo2:[view]}, the client registered for `download`, `scope=download`. All permitted → exactly
// album{edit,download}, photo1{view,download}, photo2{view,download}; only photo1:view permitted →
// an RPT for exactly that; nothing permitted → no RPT. UMA-GRANT-37, -38, -39: the RPT response
// (no `scope`, no refresh token: Custodia issues none with RPTs, so UMA-GRANT-62 has nothing to
// refresh); UMA-GRANT-44, -51: errors are JSON with `Cache-Control: no-store`.
both!(assessment_on_the_spec_example, |srv| {
    srv.add_user("alice", PW).await;
    let bob = srv.add_user("bob", PW).await;
    let carol = srv.add_user("carol", PW).await;
    srv.add_user("dave", PW).await;
    let rs = srv.rs_client("Photos").await;
    let pat = srv.pat(&rs, "alice", PW).await;
    let album = register(&srv, &pat, "Album", &["view", "edit", "download"]).await;
    let photo1 = register(&srv, &pat, "Photo 1", &["view", "download"]).await;
    let photo2 = register(&srv, &pat, "Photo 2", &["view", "download"]).await;
    let owner = owner_session(&srv, "alice").await;
    share_with(&srv, &owner, &album, &bob, &["view", "edit", "download"]).await;
    share_with(&srv, &owner, &photo1, &bob, &["view", "download"]).await;
    share_with(&srv, &owner, &photo2, &bob, &["view", "download"]).await;
    share_with(&srv, &owner, &photo1, &carol, &["view"]).await;
    let app = client_with(&srv, "openid download", "https://client.example/claims").await;
    let perms: &[(&str, &[&str])] = &[
        (album.as_str(), &["edit"]),
        (photo1.as_str(), &["view"]),
        (photo2.as_str(), &["view"]),
    ];

    // Everything permitted: the union of ticket scopes and the registered requested scope.
    let t = ticket(&srv, &pat, perms).await;
    let bob_id = id_token(&srv, &app, "bob").await;
    let (s, cache, v) = grant_raw(
        &srv,
        &app,
        &[
            ("ticket", &t),
            ("claim_token", &bob_id),
            ("claim_token_format", ID_TOKEN_FORMAT),
            ("scope", "download"),
        ],
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(cache, "no-store");
    assert_eq!(v["token_type"], json!("Bearer"));
    assert!(v["expires_in"].as_u64().is_some_and(|e| e > 0), "{v}");
    assert!(v.get("scope").is_none(), "UMA-GRANT-38: no flat scope: {v}");
    assert!(
        v.get("refresh_token").is_none(),
        "UMA-GRANT-39: no refresh token: {v}"
    );
    let rpt = v["access_token"].as_str().unwrap_or_default().to_string();
    assert_eq!(
        permission_sets(&introspect_with_pat(&srv, &pat, &rpt).await),
        {
            let mut want = vec![
                set(&album, &["edit", "download"]),
                set(&photo1, &["view", "download"]),
                set(&photo2, &["view", "download"]),
            ];
            want.sort();
            want
        }
    );

    // Only photo1:view permitted (carol): an RPT for exactly that candidate, nothing more.
    let t = ticket(&srv, &pat, perms).await;
    let carol_id = id_token(&srv, &app, "carol").await;
    let (s, _, v) = grant_raw(
        &srv,
        &app,
        &[
            ("ticket", &t),
            ("claim_token", &carol_id),
            ("claim_token_format", ID_TOKEN_FORMAT),
            ("scope", "download"),
        ],
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let rpt = v["access_token"].as_str().unwrap_or_default().to_string();
    let seen = introspect_with_pat(&srv, &pat, &rpt).await;
    assert_eq!(
        permission_sets(&seen),
        vec![set(&photo1, &["view"])],
        "{seen}"
    );

    // UMA-GRANT-35: nothing shared with dave, and no claims at all: no RPT either way.
    let t = ticket(&srv, &pat, perms).await;
    let dave_id = id_token(&srv, &app, "dave").await;
    let (s, cache, v) = grant_raw(
        &srv,
        &app,
        &[
            ("ticket", &t),
            ("claim_token", &dave_id),
            ("claim_token_format", ID_TOKEN_FORMAT),
        ],
    )
    .await;
    assert_eq!((s, err(&v)), (403, "request_denied"), "{v}");
    assert_eq!(cache, "no-store");
    assert!(
        v["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty())
    );
    let t = ticket(&srv, &pat, perms).await;
    let (s, cache, v) = grant_raw(&srv, &app, &[("ticket", &t)]).await;
    assert_eq!(
        (s, err(&v)),
        (403, "need_info"),
        "no claims are not enough: {v}"
    );
    assert!(v.get("access_token").is_none());
    assert_eq!(cache, "no-store", "UMA-GRANT-51");
    // UMA-GRANT-47: each required claim is an object of the specified member types.
    let required = v["required_claims"].as_array().cloned().unwrap_or_default();
    assert!(!required.is_empty(), "{v}");
    for c in &required {
        let o = c.as_object().unwrap_or_else(|| panic!("{c}"));
        for (k, x) in o {
            match k.as_str() {
                "name" | "friendly_name" | "claim_type" => assert!(x.is_string(), "{c}"),
                "claim_token_format" | "issuer" => assert!(
                    x.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
                    "{c}"
                ),
                other => panic!("unexpected member {other} in {c}"),
            }
        }
        assert_eq!(c["claim_token_format"], json!([ID_TOKEN_FORMAT]), "{c}");
    }

    // UMA-GRANT-44: a made-up ticket.
    let (s, cache, v) = grant_raw(&srv, &app, &[("ticket", "cst_pt_madeup")]).await;
    assert_eq!(
        (s, err(&v), cache.as_str()),
        (400, "invalid_grant", "no-store"),
        "{v}"
    );
});

// UMA-GRANT-56: a used ticket presented again is taken as stolen — the RPT issued for it is
// revoked. UMA-GRANT-55: tickets are opaque handles (`cst_pt_…`), nothing to decode.
both!(ticket_replay_revokes_its_rpt, |srv| {
    srv.add_user("alice", PW).await;
    let bob = srv.add_user("bob", PW).await;
    let rs = srv.rs_client("Photos").await;
    let pat = srv.pat(&rs, "alice", PW).await;
    let photo = register(&srv, &pat, "Photo", &["view"]).await;
    let owner = owner_session(&srv, "alice").await;
    share_with(&srv, &owner, &photo, &bob, &["view"]).await;
    let app = client_with(&srv, "openid", "https://client.example/claims").await;
    let bob_id = id_token(&srv, &app, "bob").await;
    let t = ticket(&srv, &pat, &[(photo.as_str(), &["view"])]).await;
    assert!(t.starts_with("cst_pt_") && t.split('.').count() == 1, "{t}");
    let form = [
        ("ticket", t.as_str()),
        ("claim_token", bob_id.as_str()),
        ("claim_token_format", ID_TOKEN_FORMAT),
    ];
    let (s, v) = uma_token(&srv, &app, &form).await;
    assert_eq!(s, 200, "{v}");
    let rpt = v["access_token"].as_str().unwrap_or_default().to_string();
    assert_eq!(
        introspect_with_pat(&srv, &pat, &rpt).await["active"],
        json!(true)
    );

    let (s, v) = uma_token(&srv, &app, &form).await;
    assert_eq!((s, err(&v)), (400, "invalid_grant"), "{v}");
    assert_eq!(
        introspect_with_pat(&srv, &pat, &rpt).await,
        json!({"active": false})
    );

    // A made-up ticket revokes nothing.
    let t = ticket(&srv, &pat, &[(photo.as_str(), &["view"])]).await;
    let (s, v) = uma_token(
        &srv,
        &app,
        &[
            ("ticket", &t),
            ("claim_token", &bob_id),
            ("claim_token_format", ID_TOKEN_FORMAT),
        ],
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let rpt = v["access_token"].as_str().unwrap_or_default().to_string();
    let (s, _) = uma_token(&srv, &app, &[("ticket", "cst_pt_madeup")]).await;
    assert_eq!(s, 400);
    assert_eq!(
        introspect_with_pat(&srv, &pat, &rpt).await["active"],
        json!(true)
    );
});

// UMA-GRANT-36: claims behind a PCT older than `CUSTODIA_PCT_CLAIMS_MAX_AGE` are not reused: the
// client gets `need_info` and the requesting party is asked again. UMA-GRANT-28: a PCT only when
// the requesting party agreed to be remembered. UMA-GRANT-40: the PCT is an opaque handle.
both!(pct_claims_have_a_maximum_age, [
    "CUSTODIA_PCT_CLAIMS_MAX_AGE" => "600",
    // The PAT outlives the moved clock.
    "CUSTODIA_ACCESS_TOKEN_TTL" => "3600",
], |srv| {
    srv.add_user("alice", PW).await;
    let bob = srv.add_user("bob", PW).await;
    let rs = srv.rs_client("Photos").await;
    let pat = srv.pat(&rs, "alice", PW).await;
    let photo = register(&srv, &pat, "Photo", &["view"]).await;
    let owner = owner_session(&srv, "alice").await;
    share_with(&srv, &owner, &photo, &bob, &["view"]).await;
    let app = client_with(&srv, "openid", "https://client.example/claims").await;
    let perm: &[(&str, &[&str])] = &[(photo.as_str(), &["view"])];

    // Not remembered: an RPT and no PCT.
    let t = ticket(&srv, &pat, perm).await;
    let back = gather(&srv, &app, &t, "bob", false).await;
    let t = query(&back).remove("ticket").unwrap_or_default();
    let (s, v) = uma_token(&srv, &app, &[("ticket", &t)]).await;
    assert_eq!(s, 200, "{v}");
    assert!(v.get("pct").is_none(), "{v}");

    // Remembered: a PCT, which works while the claims are young.
    let t = ticket(&srv, &pat, perm).await;
    let back = gather(&srv, &app, &t, "bob", true).await;
    let t = query(&back).remove("ticket").unwrap_or_default();
    let (s, v) = uma_token(&srv, &app, &[("ticket", &t)]).await;
    assert_eq!(s, 200, "{v}");
    let pct = v["pct"].as_str().unwrap_or_default().to_string();
    assert!(pct.starts_with("cst_pct_") && !pct.contains('.'), "{v}");
    // A made-up PCT, or the real one altered, is refused without spending the ticket.
    let t = ticket(&srv, &pat, perm).await;
    let mut altered = pct.clone();
    altered.pop();
    altered.push(if pct.ends_with('A') { 'B' } else { 'A' });
    for bad in ["cst_pct_madeup", altered.as_str()] {
        let (s, v) = uma_token(&srv, &app, &[("ticket", &t), ("pct", bad)]).await;
        assert_eq!((s, err(&v)), (400, "invalid_grant"), "{v}");
    }
    let (s, v) = uma_token(&srv, &app, &[("ticket", &t), ("pct", &pct)]).await;
    assert_eq!(s, 200, "the ticket survived the refusals: {v}");
    srv.core.clock.advance(590);
    let t = ticket(&srv, &pat, perm).await;
    let (s, v) = uma_token(&srv, &app, &[("ticket", &t), ("pct", &pct)]).await;
    assert_eq!(s, 200, "young claims are reused: {v}");

    // Older than the maximum age: need_info with a new ticket, saying why.
    srv.core.clock.advance(20);
    let t = ticket(&srv, &pat, perm).await;
    let (s, v) = uma_token(&srv, &app, &[("ticket", &t), ("pct", &pct)]).await;
    assert_eq!((s, err(&v)), (403, "need_info"), "{v}");
    assert!(v["ticket"].as_str().is_some_and(|n| n != t), "{v}");
    assert!(
        v["error_description"].as_str().is_some_and(|d| d.contains("older than 600 seconds")),
        "{v}"
    );
    assert!(v["redirect_user"].as_str().is_some(), "{v}");
});

// UMA-GRANT-03, -05, -07: discovery names the claims interaction endpoint, the claim token
// format and the grant. UMA-GRANT-16: the grant serves confidential clients (authenticated:
// none given → 401 `invalid_client`) and public ones. UMA-GRANT-19: a claims redirect URI with a
// fragment is refused at registration; one with a query keeps it on the way back.
both!(clients_discovery_and_claims_redirects, [
    "CUSTODIA_REGISTRATION_MODE" => "open",
], |srv| {
    let d: Value = http()
        .get(srv.url("/.well-known/uma2-configuration"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or(Value::Null);
    assert_eq!(d["claims_interaction_endpoint"], json!(srv.url("/uma/claims")));
    assert_eq!(d["claim_token_formats_supported"], json!([ID_TOKEN_FORMAT]));
    assert!(
        d["grant_types_supported"]
            .as_array()
            .is_some_and(|g| g.contains(&json!(UMA_GRANT))),
        "{d}"
    );

    srv.add_user("alice", PW).await;
    let bob = srv.add_user("bob", PW).await;
    let rs = srv.rs_client("Photos").await;
    let pat = srv.pat(&rs, "alice", PW).await;
    let photo = register(&srv, &pat, "Photo", &["view"]).await;
    let owner = owner_session(&srv, "alice").await;
    share_with(&srv, &owner, &photo, &bob, &["view"]).await;
    let perm: &[(&str, &[&str])] = &[(photo.as_str(), &["view"])];

    // A confidential client that does not authenticate.
    let app = client_with(&srv, "openid", "https://client.example/claims?from=uma").await;
    let t = ticket(&srv, &pat, perm).await;
    let resp = http()
        .post(srv.url("/token"))
        .form(&[("grant_type", UMA_GRANT), ("ticket", t.as_str()), ("client_id", app.id.as_str())])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status().as_u16(), 401);
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!(err(&v), "invalid_client", "{v}");

    // The query of a registered claims redirect URI is kept (the ticket survived the refusal).
    let back = gather(&srv, &app, &t, "bob", false).await;
    assert!(back.starts_with("https://client.example/claims?from=uma&"), "{back}");
    let q = query(&back);
    assert_eq!(q.get("authorization_state").map(String::as_str), Some("claims_submitted"));
    let (s, v) = uma_token(&srv, &app, &[("ticket", q.get("ticket").map(String::as_str).unwrap_or(""))]).await;
    assert_eq!(s, 200, "{v}");

    // A public client: no secret, the same grant.
    let public = TestClient::from_json(
        &srv.add_client(json!({
            "client_name": "Phone app",
            "application_type": "native",
            "token_endpoint_auth_method": "none",
            "redirect_uris": ["http://127.0.0.1/cb"],
            "claims_redirect_uris": ["http://127.0.0.1/claims"],
            "grant_types": ["authorization_code", UMA_GRANT],
            "scope": "openid",
        }))
        .await,
    );
    assert!(public.secret.is_none());
    let t = ticket(&srv, &pat, perm).await;
    let back = gather(&srv, &public, &t, "bob", false).await;
    let t = query(&back).remove("ticket").unwrap_or_default();
    let resp = http()
        .post(srv.url("/token"))
        .form(&[("grant_type", UMA_GRANT), ("ticket", t.as_str()), ("client_id", public.id.as_str())])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let s = resp.status().as_u16();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!(s, 200, "{v}");

    // UMA-GRANT-06: dynamic registration takes `claims_redirect_uris` and echoes them.
    let resp = http()
        .post(srv.url("/register"))
        .json(&json!({
            "client_name": "Dynamic app",
            "redirect_uris": ["https://client.example/cb"],
            "claims_redirect_uris": ["https://client.example/claims"],
        }))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status().as_u16(), 201);
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!(v["claims_redirect_uris"], json!(["https://client.example/claims"]), "{v}");

    // Registration refuses a claims redirect URI with a fragment.
    let resp = http()
        .post(srv.url("/register"))
        .json(&json!({
            "client_name": "Fragment app",
            "redirect_uris": ["https://client.example/cb"],
            "claims_redirect_uris": ["https://client.example/claims#frag"],
        }))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status().as_u16(), 400);
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!(err(&v), "invalid_redirect_uri", "{v}");
});

/// The `exp` of `resource`'s permission in an RPT (read from the JWT).
fn permission_exp(rpt: &str, resource: &str) -> Option<i64> {
    use base64::Engine as _;
    let payload = rpt.split('.').nth(1)?;
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .ok()?,
    )
    .ok()?;
    claims["permissions"]
        .as_array()?
        .iter()
        .find(|p| p["resource_id"] == json!(resource))?["exp"]
        .as_i64()
}

// UMA-GRANT-41, -42, -43 across resource servers: an upgrade keeps the old RPT's permissions on
// another resource server; the new RPT names both in `aud`, each resource server's PAT sees only
// its own permissions, and the old RPT is revoked. A carried permission keeps its own `exp`
// (upgrading again and again never stretches it), and nothing is carried to another requesting
// party's RPT.
both!(rpt_upgrade_across_resource_servers, |srv| {
    srv.add_user("alice", PW).await;
    let bob = srv.add_user("bob", PW).await;
    let carol = srv.add_user("carol", PW).await;
    let photos = srv.rs_client("Photos").await;
    let notes = srv.rs_client("Notes").await;
    let photos_pat = srv.pat(&photos, "alice", PW).await;
    let notes_pat = srv.pat(&notes, "alice", PW).await;
    let photo = register(&srv, &photos_pat, "Photo", &["view"]).await;
    let note = register(&srv, &notes_pat, "Note", &["read"]).await;
    let owner = owner_session(&srv, "alice").await;
    share_with(&srv, &owner, &photo, &bob, &["view"]).await;
    share_with(&srv, &owner, &note, &bob, &["read"]).await;
    let app = client_with(&srv, "openid", "https://client.example/claims").await;
    let bob_id = id_token(&srv, &app, "bob").await;
    let pushed = |t: &str| {
        vec![
            ("ticket", t.to_string()),
            ("claim_token", bob_id.clone()),
            ("claim_token_format", ID_TOKEN_FORMAT.to_string()),
        ]
    };

    let t = ticket(&srv, &photos_pat, &[(photo.as_str(), &["view"])]).await;
    let form = pushed(&t);
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (s, v) = uma_token(&srv, &app, &form).await;
    assert_eq!(s, 200, "{v}");
    let rpt1 = v["access_token"].as_str().unwrap_or_default().to_string();

    let t = ticket(&srv, &notes_pat, &[(note.as_str(), &["read"])]).await;
    let mut form = pushed(&t);
    form.push(("rpt", rpt1.clone()));
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (s, v) = uma_token(&srv, &app, &form).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["upgraded"], json!(true));
    let rpt2 = v["access_token"].as_str().unwrap_or_default().to_string();

    let by_photos = introspect_with_pat(&srv, &photos_pat, &rpt2).await;
    let by_notes = introspect_with_pat(&srv, &notes_pat, &rpt2).await;
    assert_eq!(
        permission_sets(&by_photos),
        vec![set(&photo, &["view"])],
        "{by_photos}"
    );
    assert_eq!(
        permission_sets(&by_notes),
        vec![set(&note, &["read"])],
        "{by_notes}"
    );
    let mut aud: Vec<String> = by_notes["aud"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    aud.sort();
    let mut want = vec![photos.id.clone(), notes.id.clone()];
    want.sort();
    assert_eq!(aud, want, "{by_notes}");
    assert_eq!(
        introspect_with_pat(&srv, &photos_pat, &rpt1).await,
        json!({"active": false})
    );

    // The same inputs again give the same decision (UMA-GRANT-42): upgrading the new RPT with a
    // fresh ticket, five minutes later, keeps both — the Photo permission with its first `exp`.
    let first_exp = permission_exp(&rpt1, &photo);
    assert!(first_exp.is_some());
    assert_eq!(permission_exp(&rpt2, &photo), first_exp);
    srv.core.clock.advance(300);
    let before = srv.core.now();
    let t = ticket(&srv, &notes_pat, &[(note.as_str(), &["read"])]).await;
    let mut form = pushed(&t);
    form.push(("rpt", rpt2.clone()));
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (s, v) = uma_token(&srv, &app, &form).await;
    assert_eq!((s, &v["upgraded"]), (200, &json!(true)), "{v}");
    let rpt3 = v["access_token"].as_str().unwrap_or_default().to_string();
    assert_eq!(
        permission_sets(&introspect_with_pat(&srv, &photos_pat, &rpt3).await),
        vec![set(&photo, &["view"])]
    );
    assert_eq!(permission_exp(&rpt3, &photo), first_exp, "not stretched");
    // A fresh permission lives the RPT's lifetime from its issue (a second may pass meanwhile).
    let note_exp = permission_exp(&rpt3, &note).unwrap_or_default();
    assert!(
        (before + 600..=srv.core.now() + 600).contains(&note_exp),
        "{note_exp}"
    );

    // Carol, shared the Note too, sends bob's RPT: her RPT carries nothing of his.
    share_with(&srv, &owner, &note, &carol, &["read"]).await;
    let carol_id = id_token(&srv, &app, "carol").await;
    let t = ticket(&srv, &notes_pat, &[(note.as_str(), &["read"])]).await;
    let (s, v) = uma_token(
        &srv,
        &app,
        &[
            ("ticket", &t),
            ("claim_token", &carol_id),
            ("claim_token_format", ID_TOKEN_FORMAT),
            ("rpt", &rpt3),
        ],
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert!(v.get("upgraded").is_none(), "{v}");
    let carols = v["access_token"].as_str().unwrap_or_default().to_string();
    assert_eq!(permission_exp(&carols, &photo), None, "nothing of bob's");
    assert_eq!(
        introspect_with_pat(&srv, &photos_pat, &rpt3).await["active"],
        json!(true)
    );

    // Past the Photo permission's own `exp` (the RPT itself lives on): introspection shows only
    // the Note.
    srv.core.clock.advance(301);
    let photos_pat = srv.pat(&photos, "alice", PW).await;
    let notes_pat = srv.pat(&notes, "alice", PW).await;
    assert_eq!(
        introspect_with_pat(&srv, &photos_pat, &rpt3).await,
        json!({"active": false})
    );
    assert_eq!(
        permission_sets(&introspect_with_pat(&srv, &notes_pat, &rpt3).await),
        vec![set(&note, &["read"])]
    );
});

// UMA-GRANT-14: an expired RPT may be sent for upgrade: no error for the expiry; its permissions
// have expired, so nothing of it is carried (no `upgraded`).
both!(an_expired_rpt_may_be_sent, [
    "CUSTODIA_TICKET_TTL" => "3600",
], |srv| {
    srv.add_user("alice", PW).await;
    let bob = srv.add_user("bob", PW).await;
    let rs = srv.rs_client("Photos").await;
    let pat = srv.pat(&rs, "alice", PW).await;
    let photo = register(&srv, &pat, "Photo", &["view"]).await;
    let album = register(&srv, &pat, "Album", &["view"]).await;
    let owner = owner_session(&srv, "alice").await;
    share_with(&srv, &owner, &photo, &bob, &["view"]).await;
    share_with(&srv, &owner, &album, &bob, &["view"]).await;
    let app = client_with(&srv, "openid", "https://client.example/claims").await;
    let bob_id = id_token(&srv, &app, "bob").await;
    let t = ticket(&srv, &pat, &[(photo.as_str(), &["view"])]).await;
    let (s, v) = uma_token(
        &srv,
        &app,
        &[("ticket", &t), ("claim_token", &bob_id), ("claim_token_format", ID_TOKEN_FORMAT)],
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let old = v["access_token"].as_str().unwrap_or_default().to_string();
    let t = ticket(&srv, &pat, &[(album.as_str(), &["view"])]).await;

    srv.core.clock.advance(601);
    let bob_id = id_token(&srv, &app, "bob").await;
    let (s, v) = uma_token(
        &srv,
        &app,
        &[
            ("ticket", &t),
            ("claim_token", &bob_id),
            ("claim_token_format", ID_TOKEN_FORMAT),
            ("rpt", &old),
        ],
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert!(v.get("upgraded").is_none(), "{v}");
    let pat = srv.pat(&rs, "alice", PW).await;
    let seen = introspect_with_pat(&srv, &pat, v["access_token"].as_str().unwrap_or_default()).await;
    assert_eq!(permission_sets(&seen), vec![set(&album, &["view"])], "{seen}");
});

/// `GET /uma/claims` with these parameters in a fresh browser: `(status, has Location, headers)`.
async fn interaction_page(
    srv: &TestServer,
    q: &[(&str, &str)],
) -> (u16, bool, custodia_tests::reqwest::header::HeaderMap) {
    let resp = browser()
        .get(format!(
            "{}?{}",
            srv.url("/uma/claims"),
            serde_urlencoded::to_string(q).unwrap_or_default()
        ))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let h = resp.headers().clone();
    (resp.status().as_u16(), h.contains_key("location"), h)
}

// UMA-GRANT-18: several registered claims redirect URIs and none named → an error page.
// UMA-GRANT-20: a client (public or confidential) with none registered → an error page.
// UMA-GRANT-21: only an exact match (not another case, not an extra query). UMA-GRANT-23: none of
// these redirects. UMA-GRANT-27: the sign-in and cancel forms are refused without their CSRF token
// (with a request that is otherwise valid), and the pages cannot be framed.
both!(claims_interaction_refusals, |srv| {
    srv.add_user("alice", PW).await;
    srv.add_user("bob", PW).await;
    let rs = srv.rs_client("Photos").await;
    let pat = srv.pat(&rs, "alice", PW).await;
    let photo = register(&srv, &pat, "Photo", &["view"]).await;
    let t = ticket(&srv, &pat, &[(photo.as_str(), &["view"])]).await;

    let two = TestClient::from_json(
        &srv.add_client(json!({
            "client_name": "Two",
            "redirect_uris": ["https://client.example/cb"],
            "claims_redirect_uris": ["https://client.example/a", "https://client.example/b"],
            "grant_types": ["authorization_code", UMA_GRANT],
        }))
        .await,
    );
    let none_confidential = TestClient::from_json(
        &srv.add_client(json!({
            "client_name": "None",
            "redirect_uris": ["https://client.example/cb"],
            "grant_types": ["authorization_code", UMA_GRANT],
        }))
        .await,
    );
    let none_public = TestClient::from_json(
        &srv.add_client(json!({
            "client_name": "None, public",
            "application_type": "native",
            "token_endpoint_auth_method": "none",
            "redirect_uris": ["http://127.0.0.1/cb"],
            "grant_types": ["authorization_code", UMA_GRANT],
        }))
        .await,
    );
    let one = client_with(&srv, "openid", "https://client.example/claims?x=1").await;
    for (label, q) in [
        (
            "several, none named",
            vec![("client_id", two.id.as_str()), ("ticket", t.as_str())],
        ),
        (
            "none registered",
            vec![
                ("client_id", none_confidential.id.as_str()),
                ("ticket", t.as_str()),
            ],
        ),
        (
            "none registered, public",
            vec![
                ("client_id", none_public.id.as_str()),
                ("ticket", t.as_str()),
            ],
        ),
        (
            "another case",
            vec![
                ("client_id", one.id.as_str()),
                ("ticket", t.as_str()),
                ("claims_redirect_uri", "https://CLIENT.example/claims?x=1"),
            ],
        ),
        (
            "an extra query",
            vec![
                ("client_id", one.id.as_str()),
                ("ticket", t.as_str()),
                (
                    "claims_redirect_uri",
                    "https://client.example/claims?x=1&y=2",
                ),
            ],
        ),
    ] {
        let (s, location, _) = interaction_page(&srv, &q).await;
        assert_eq!((s, location), (400, false), "{label}");
    }
    // Named among several: the page.
    let (s, _, headers) = interaction_page(
        &srv,
        &[
            ("client_id", &two.id),
            ("ticket", &t),
            ("claims_redirect_uri", "https://client.example/b"),
        ],
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        headers.get("x-frame-options").and_then(|v| v.to_str().ok()),
        Some("DENY")
    );
    assert!(
        headers
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.contains("frame-ancestors 'none'")),
        "{headers:?}"
    );

    // The forms need their CSRF token: the same browser, a valid request, no token.
    let b = browser();
    let q = serde_urlencoded::to_string([("client_id", one.id.as_str()), ("ticket", t.as_str())])
        .unwrap_or_default();
    let page = open(&b, &format!("{}?{q}", srv.url("/uma/claims"))).await;
    let (s, html) = page.page();
    assert_eq!(s, 200);
    let request = input_value(html, "request").unwrap_or_default();
    for (path, extra) in [
        (
            "/uma/claims/login",
            vec![("username", "bob"), ("password", PW)],
        ),
        ("/uma/claims/cancel", vec![]),
    ] {
        let mut form = vec![("request", request.as_str())];
        form.extend(extra);
        let resp = b
            .post(srv.url(path))
            .form(&form)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(resp.status().as_u16(), 400, "{path}");
        assert!(resp.headers().get("location").is_none(), "{path}");
    }
    // With it, the sign-in goes through (the ticket was not spent by the refusals).
    let resp = b
        .post(srv.url("/uma/claims/login"))
        .form(&[
            (
                "csrf",
                input_value(html, "csrf").unwrap_or_default().as_str(),
            ),
            ("request", request.as_str()),
            ("username", "bob"),
            ("password", PW),
        ])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status().as_u16(), 303);
});

// An owner's policy set is compiled once however many decisions need it at the same moment
// (after a change, or on a cold instance): concurrent grants wait for one build.
both!(policy_sets_are_built_once_under_concurrency, |srv| {
    let owner_id = srv.add_user("alice", PW).await;
    let bob = srv.add_user("bob", PW).await;
    let rs = srv.rs_client("Photos").await;
    let pat = srv.pat(&rs, "alice", PW).await;
    let owner = owner_session(&srv, "alice").await;
    for i in 0..3 {
        let photo = register(&srv, &pat, &format!("Photo {i}"), &["view"]).await;
        share_with(&srv, &owner, &photo, &bob, &["view"]).await;
    }
    let before = srv.core.policy_cache.builds();
    let version = 1_000_000; // no instance has this version cached
    let results = futures_util::future::join_all((0..8).map(|_| {
        let (core, o) = (srv.core.clone(), owner_id.clone());
        tokio::spawn(async move {
            custodia_server::protocol::policies::compiled(&core, &o, version)
                .await
                .is_ok()
        })
    }))
    .await;
    assert!(results.iter().all(|r| matches!(r, Ok(true))));
    assert_eq!(srv.core.policy_cache.builds() - before, 1);
});

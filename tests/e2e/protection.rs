//! The UMA protection API over HTTP (Federated Authorization §1–§5): PATs, discovery, resource
//! registration, the permission endpoint, extended introspection, and the isolation of every
//! (resource server, owner) partition. Each test names the rules of `../shared/specs/uma.md` it
//! covers.

use custodia_server::protocol::permission::{self, RequestedPermission};
use custodia_server::protocol::tokens::RptPermission;
use custodia_tests::reqwest::Method;
use custodia_tests::*;
use serde_json::{Value, json};

const PW: &str = "correct horse battery";

fn rreg(srv: &TestServer) -> String {
    srv.url("/uma/resources")
}

async fn create(srv: &TestServer, pat: &str, body: Value) -> String {
    let (s, h, v) = bearer_json(Method::POST, &rreg(srv), Some(pat), Some(&body)).await;
    assert_eq!(s, 201, "{v}");
    let id = v["_id"].as_str().unwrap_or_default().to_string();
    assert!(!id.is_empty(), "{v}");
    // UMA-FED-14: `Location` names the new resource.
    let loc = h
        .get("location")
        .and_then(|l| l.to_str().ok())
        .unwrap_or_default();
    assert_eq!(loc, format!("{}/{id}", rreg(srv)));
    id
}

async fn ticket(srv: &TestServer, pat: &str, body: Value) -> (u16, Value) {
    let (s, _, v) = bearer_json(
        Method::POST,
        &srv.url("/uma/permission"),
        Some(pat),
        Some(&body),
    )
    .await;
    (s, v)
}

fn error_of(v: &Value) -> &str {
    v["error"].as_str().unwrap_or_default()
}

// UMA-GRANT-01, UMA-GRANT-02, UMA-GRANT-04, UMA-FED-07, UMA-FED-08.
both!(uma_discovery_document, |srv| {
    let resp = http()
        .get(srv.url("/.well-known/uma2-configuration"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status().as_u16(), 200);
    assert!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"))
    );
    let m: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!(m["issuer"], json!(srv.base), "issuer byte for byte");
    for (k, path) in [
        ("token_endpoint", "/token"),
        ("authorization_endpoint", "/authorize"),
        ("introspection_endpoint", "/introspect"),
        ("resource_registration_endpoint", "/uma/resources"),
        ("permission_endpoint", "/uma/permission"),
        ("jwks_uri", "/jwks"),
    ] {
        assert_eq!(m[k], json!(srv.url(path)), "{k}");
    }
    assert!(m["response_types_supported"].is_array());
    assert_eq!(m["uma_profiles_supported"], json!([]), "default profile");
});

// UMA-FED-05 (authorization-code PAT), UMA-FED-06 (refresh without the owner), and a PAT never
// comes from client credentials.
both!(pat_issuance_and_refresh, |srv| {
    srv.add_user("alice", PW).await;
    let rs = srv.rs_client("Health Records RS").await;
    // The consent page says which resource server asks, and what it will do.
    let browser = browser();
    let (_, challenge) = pkce();
    let url = authorize_url(
        &srv,
        &rs,
        &[
            ("scope", "uma_protection"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    );
    let login = open(&browser, &url).await;
    let (_, page) = login.page();
    let consent = submit_login(&browser, &srv, page, "alice", PW).await;
    let (status, html) = consent.page();
    assert_eq!(status, 200);
    assert!(html.contains("Health Records RS"), "{html}");
    assert!(
        html.contains("register the data it holds about you with Custodia"),
        "{html}"
    );

    let t = code_flow_tokens(&srv, &rs, "alice", PW, "uma_protection").await;
    assert_eq!(t["scope"], "uma_protection");
    let pat = t["access_token"].as_str().unwrap_or_default();
    let refresh = t["refresh_token"].as_str().unwrap_or_default();
    assert!(!refresh.is_empty(), "PATs are refreshable: {t}");
    let (s, _, _) = bearer_json(Method::GET, &rreg(&srv), Some(pat), None).await;
    assert_eq!(s, 200);
    let (s, t2) = token_request(
        &srv,
        &rs,
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
    )
    .await;
    assert_eq!(s, 200, "{t2}");
    let pat2 = t2["access_token"].as_str().unwrap_or_default();
    let (s, _, _) = bearer_json(Method::GET, &rreg(&srv), Some(pat2), None).await;
    assert_eq!(s, 200, "the refreshed PAT works");

    // A client acting for itself has no owner: never `uma_protection`.
    let svc = srv
        .add_client(json!({
            "client_name": "Svc",
            "grant_types": ["client_credentials"],
            "scope": "api:read uma_protection",
        }))
        .await;
    let svc = TestClient::from_json(&svc);
    let (s, v) = token_request(
        &srv,
        &svc,
        &[
            ("grant_type", "client_credentials"),
            ("scope", "uma_protection"),
        ],
    )
    .await;
    assert_eq!((s, error_of(&v)), (400, "invalid_scope"), "{v}");
});

// UMA-FED-10, UMA-FED-11, UMA-FED-12, UMA-FED-13, UMA-FED-14, UMA-FED-15, UMA-FED-16, UMA-FED-17,
// UMA-FED-18, UMA-FED-19, UMA-FED-20, UMA-FED-21.
both!(resource_registration_crud, |srv| {
    srv.add_user("alice", PW).await;
    let rs = srv.rs_client("RS").await;
    let pat = srv.pat(&rs, "alice", PW).await;
    let full = json!({
        "resource_scopes": ["read", "https://unreachable.invalid/scopes/write"],
        "name": "Lab results",
        "name#fr": "Résultats d'analyses",
        "description": "All lab results",
        "icon_uri": "https://rs.example/lab.png",
        "type": "https://rs.example/types/lab",
    });
    let (s, _, created) = bearer_json(Method::POST, &rreg(&srv), Some(&pat), Some(&full)).await;
    assert_eq!(s, 201, "{created}");
    let id = created["_id"].as_str().unwrap_or_default().to_string();
    let policy_uri = created["user_access_policy_uri"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(policy_uri.starts_with(&srv.base), "{created}");
    let page = http()
        .get(&policy_uri)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(page.status().as_u16(), 200, "the policy page loads");

    // Read returns what was written, plus `_id`.
    let (s, _, read) = bearer_json(
        Method::GET,
        &format!("{}/{id}", rreg(&srv)),
        Some(&pat),
        None,
    )
    .await;
    assert_eq!(s, 200);
    for k in [
        "resource_scopes",
        "name",
        "name#fr",
        "description",
        "icon_uri",
        "type",
    ] {
        assert_eq!(read[k], full[k], "{k}");
    }
    assert_eq!(read["_id"], json!(id));

    // Update is a full replacement: what is left out is gone.
    let (s, _, upd) = bearer_json(
        Method::PUT,
        &format!("{}/{id}", rreg(&srv)),
        Some(&pat),
        Some(&json!({"resource_scopes": ["read"], "name": "Labs"})),
    )
    .await;
    assert_eq!((s, &upd["_id"]), (200, &json!(id)), "{upd}");
    let (_, _, read) = bearer_json(
        Method::GET,
        &format!("{}/{id}", rreg(&srv)),
        Some(&pat),
        None,
    )
    .await;
    assert_eq!(read["resource_scopes"], json!(["read"]));
    assert_eq!(read["name"], json!("Labs"));
    for gone in ["description", "icon_uri", "type", "name#fr"] {
        assert!(read.get(gone).is_none(), "{gone} must be gone: {read}");
    }

    // List: exactly this partition's ids.
    let second = create(&srv, &pat, json!({"resource_scopes": ["view"]})).await;
    let (s, _, list) = bearer_json(Method::GET, &rreg(&srv), Some(&pat), None).await;
    assert_eq!(s, 200);
    let mut listed: Vec<String> = serde_json::from_value(list).unwrap_or_default();
    listed.sort();
    let mut want = vec![id.clone(), second.clone()];
    want.sort();
    assert_eq!(listed, want);

    // Delete ends protection: 204, then 404, and no ticket can name it.
    let (s, _, _) = bearer_json(
        Method::DELETE,
        &format!("{}/{id}", rreg(&srv)),
        Some(&pat),
        None,
    )
    .await;
    assert_eq!(s, 204);
    for m in [Method::GET, Method::DELETE] {
        let (s, _, v) = bearer_json(m, &format!("{}/{id}", rreg(&srv)), Some(&pat), None).await;
        assert_eq!((s, error_of(&v)), (404, "not_found"), "{v}");
    }
    let (s, v) = ticket(
        &srv,
        &pat,
        json!({"resource_id": id, "resource_scopes": ["read"]}),
    )
    .await;
    assert_eq!((s, error_of(&v)), (400, "invalid_resource_id"), "{v}");
    let (_, _, list) = bearer_json(Method::GET, &rreg(&srv), Some(&pat), None).await;
    assert_eq!(list, json!([second]));
});

// UMA-FED-02, UMA-FED-21, UMA-FED-22, UMA-FED-23, UMA-FED-24, UMA-FED-32: every error of §3.2 and
// §4.3, each with its code and status.
both!(protection_api_errors, |srv| {
    srv.add_user("alice", PW).await;
    let rs = srv.rs_client("RS").await;
    let pat = srv.pat(&rs, "alice", PW).await;
    let id = create(&srv, &pat, json!({"resource_scopes": ["read", "write"]})).await;
    let item = format!("{}/{id}", rreg(&srv));

    // No token: 401 with a bare Bearer challenge, on all three endpoints.
    for (m, u) in [
        (Method::GET, rreg(&srv)),
        (Method::POST, rreg(&srv)),
        (Method::GET, item.clone()),
        (Method::POST, srv.url("/uma/permission")),
    ] {
        let (s, h, _) = bearer_json(m, &u, None, Some(&json!({}))).await;
        assert_eq!(s, 401, "{u}");
        assert!(
            h.get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("Bearer")),
            "{u}"
        );
    }
    // A garbage token: invalid_token. A token without `uma_protection`: insufficient_scope.
    let (s, _, v) = bearer_json(Method::GET, &rreg(&srv), Some("not-a-token"), None).await;
    assert_eq!((s, error_of(&v)), (401, "invalid_token"));
    let web = srv.web_client().await;
    let t = code_flow_tokens(&srv, &web, "alice", PW, "openid profile").await;
    let at = t["access_token"].as_str().unwrap_or_default();
    let (s, h, v) = bearer_json(Method::GET, &rreg(&srv), Some(at), None).await;
    assert_eq!((s, error_of(&v)), (403, "insufficient_scope"), "{v}");
    assert!(
        h.get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("insufficient_scope"))
    );
    // The PAT in the URL is refused.
    let (s, _, v) = bearer_json(
        Method::GET,
        &format!("{}?access_token={pat}", rreg(&srv)),
        None,
        None,
    )
    .await;
    assert_eq!((s, error_of(&v)), (400, "invalid_request"));

    // 405 with `Allow`, before anything else.
    for (m, u, allow) in [
        (Method::PATCH, item.clone(), "GET, PUT, DELETE"),
        (Method::POST, item.clone(), "GET, PUT, DELETE"),
        (Method::DELETE, rreg(&srv), "GET, POST"),
        (Method::GET, srv.url("/uma/permission"), "POST"),
    ] {
        let (s, h, v) = bearer_json(m.clone(), &u, Some(&pat), None).await;
        assert_eq!(
            (s, error_of(&v)),
            (405, "unsupported_method_type"),
            "{m} {u}"
        );
        assert_eq!(
            h.get("allow").and_then(|v| v.to_str().ok()),
            Some(allow),
            "{m} {u}"
        );
    }

    // 404 for an unknown id on read, update and delete.
    let unknown = format!("{}/{}", rreg(&srv), uuid::Uuid::new_v4());
    for m in [Method::GET, Method::PUT, Method::DELETE] {
        let (s, _, v) = bearer_json(
            m.clone(),
            &unknown,
            Some(&pat),
            Some(&json!({"resource_scopes": ["a"]})),
        )
        .await;
        assert_eq!((s, error_of(&v)), (404, "not_found"), "{m}");
        assert!(v["error_description"].is_string());
    }

    // 400 invalid_request: malformed or invalid descriptions, on create and update.
    let raw = |m: Method, u: String, ct: &'static str, body: &'static str| {
        let pat = pat.clone();
        async move {
            let resp = http()
                .request(m, &u)
                .bearer_auth(&pat)
                .header("content-type", ct)
                .body(body)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let s = resp.status().as_u16();
            (s, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    for (ct, body) in [
        ("application/json", "{not json"),
        ("application/json", r#"{"name":"no scopes"}"#),
        ("application/json", r#"{"resource_scopes":"read"}"#),
        ("application/json", r#"{"resource_scopes":[]}"#),
        (
            "application/json",
            r#"{"resource_scopes":["a"],"resource_scopes":["b"]}"#,
        ),
        ("application/json", r#"{"resource_scopes":["with space"]}"#),
        (
            "application/json",
            r#"{"resource_scopes":["a"],"icon_uri":"javascript:x"}"#,
        ),
        ("text/plain", r#"{"resource_scopes":["a"]}"#),
    ] {
        for (m, u) in [(Method::POST, rreg(&srv)), (Method::PUT, item.clone())] {
            let (s, v) = raw(m.clone(), u, ct, body).await;
            assert_eq!((s, error_of(&v)), (400, "invalid_request"), "{m} {body}");
            assert!(
                v["error_description"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty())
            );
        }
    }
    let long_name = json!({"resource_scopes": ["a"], "name": "x".repeat(201)});
    let (s, _, v) = bearer_json(Method::POST, &rreg(&srv), Some(&pat), Some(&long_name)).await;
    assert_eq!((s, error_of(&v)), (400, "invalid_request"), "{v}");
    let many: Vec<String> = (0..65).map(|i| format!("s{i}")).collect();
    let (s, _, v) = bearer_json(
        Method::POST,
        &rreg(&srv),
        Some(&pat),
        Some(&json!({"resource_scopes": many})),
    )
    .await;
    assert_eq!((s, error_of(&v)), (400, "invalid_request"), "{v}");

    // §4.3: the permission endpoint's errors.
    let (s, v) = ticket(
        &srv,
        &pat,
        json!({"resource_id": id, "resource_scopes": ["delete"]}),
    )
    .await;
    assert_eq!((s, error_of(&v)), (400, "invalid_scope"), "UMA-FED-27 {v}");
    let (s, v) = ticket(
        &srv,
        &pat,
        json!({"resource_id": "no-such-resource", "resource_scopes": []}),
    )
    .await;
    assert_eq!(
        (s, error_of(&v)),
        (400, "invalid_resource_id"),
        "UMA-FED-26 {v}"
    );
    for bad in [
        json!({"resource_id": id}),
        json!({"resource_scopes": ["read"]}),
        json!([]),
        json!("just a string"),
        json!([{"resource_id": id, "resource_scopes": "read"}]),
    ] {
        let (s, v) = ticket(&srv, &pat, bad.clone()).await;
        assert_eq!(
            (s, error_of(&v)),
            (400, "invalid_request"),
            "UMA-FED-25 {bad}: {v}"
        );
    }
    // Nothing half-written: the resource is unchanged after all of that.
    let (_, _, read) = bearer_json(Method::GET, &item, Some(&pat), None).await;
    assert_eq!(read["resource_scopes"], json!(["read", "write"]));
});

// UMA-FED-25, UMA-FED-29, UMA-FED-30, UMA-FED-31, UMA-GRANT-53: one ticket for one or many
// permissions; Custodia recognises it and it stands for exactly what was asked; stored hashed.
both!(permission_tickets, |srv| {
    srv.add_user("alice", PW).await;
    let rs = srv.rs_client("RS").await;
    let pat = srv.pat(&rs, "alice", PW).await;
    let a = create(&srv, &pat, json!({"resource_scopes": ["read", "write"]})).await;
    let b = create(&srv, &pat, json!({"resource_scopes": ["read"]})).await;
    let c = create(&srv, &pat, json!({"resource_scopes": ["view"]})).await;

    let (s, v) = ticket(
        &srv,
        &pat,
        json!({"resource_id": a, "resource_scopes": ["read"]}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let t1 = v["ticket"].as_str().unwrap_or_default().to_string();
    let now = srv.core.now();
    let info = permission::peek(&srv.core, &t1, now)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("Custodia does not recognise its ticket"));
    assert_eq!(
        info.permissions,
        vec![RequestedPermission {
            resource_id: a.clone(),
            resource_scopes: vec!["read".into()]
        }]
    );

    let (s, v) = ticket(
        &srv,
        &pat,
        json!([
            {"resource_id": a, "resource_scopes": ["read", "write"]},
            {"resource_id": b, "resource_scopes": ["read"]},
            {"resource_id": c, "resource_scopes": []},
        ]),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let obj = v.as_object().cloned().unwrap_or_default();
    assert_eq!(obj.len(), 1, "exactly one member, `ticket`: {v}");
    let t3 = v["ticket"].as_str().unwrap_or_default().to_string();
    assert_ne!(t1, t3);
    let info = permission::peek(&srv.core, &t3, now)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("unknown ticket"));
    assert_eq!(info.permissions.len(), 3);
    assert_eq!(info.permissions[2].resource_scopes, Vec::<String>::new());
    assert!(t3.len() >= 43, "≥ 256 bits: {t3}");
    // Stored only as a hash.
    let dump = srv.dump_database().await;
    assert!(!dump.contains(&t1) && !dump.contains(&t3));
    // A ticket from someone else's guess is nothing.
    assert!(
        permission::peek(&srv.core, "cst_pt_guess", now)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .is_none()
    );
});

// Tickets expire after `ticket_ttl`; deleting a resource kills its outstanding tickets.
both!(ticket_expiry_and_deletion_cascade, [
    "CUSTODIA_TICKET_TTL" => "60",
], |srv| {
    srv.add_user("alice", PW).await;
    let rs = srv.rs_client("RS").await;
    let pat = srv.pat(&rs, "alice", PW).await;
    let a = create(&srv, &pat, json!({"resource_scopes": ["read"]})).await;
    let b = create(&srv, &pat, json!({"resource_scopes": ["read"]})).await;
    let mint = |body: Value| {
        let (srv, pat) = (&srv, pat.clone());
        async move {
            let (s, v) = ticket(srv, &pat, body).await;
            assert_eq!(s, 201, "{v}");
            v["ticket"].as_str().unwrap_or_default().to_string()
        }
    };
    let only_a = mint(json!({"resource_id": a, "resource_scopes": ["read"]})).await;
    let a_and_b = mint(json!([
        {"resource_id": a, "resource_scopes": ["read"]},
        {"resource_id": b, "resource_scopes": ["read"]},
    ]))
    .await;
    let only_b = mint(json!({"resource_id": b, "resource_scopes": ["read"]})).await;
    let live = |t: String| {
        let srv = &srv;
        async move {
            permission::peek(&srv.core, &t, srv.core.now())
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .is_some()
        }
    };
    assert!(live(only_a.clone()).await && live(a_and_b.clone()).await);
    let (s, _, _) = bearer_json(
        Method::DELETE,
        &format!("{}/{a}", rreg(&srv)),
        Some(&pat),
        None,
    )
    .await;
    assert_eq!(s, 204);
    assert!(!live(only_a).await, "a ticket for the deleted resource is dead");
    assert!(!live(a_and_b).await, "so is any ticket naming it");
    assert!(live(only_b.clone()).await, "others live on");
    srv.core.clock.advance(61);
    assert!(!live(only_b).await, "expired after ticket_ttl");
});

// UMA-FED-04, UMA-FED-26, UMA-FED-28: two owners and two resource servers are fully isolated;
// each attempt to cross is refused as if the resource did not exist.
both!(partitions_are_isolated, |srv| {
    srv.add_user("alice", PW).await;
    srv.add_user("bob", PW).await;
    let rs1 = srv.rs_client("RS one").await;
    let rs2 = srv.rs_client("RS two").await;
    let alice1 = srv.pat(&rs1, "alice", PW).await;
    let bob1 = srv.pat(&rs1, "bob", PW).await;
    let alice2 = srv.pat(&rs2, "alice", PW).await;
    let mine = create(
        &srv,
        &alice1,
        json!({"resource_scopes": ["read"], "name": "mine"}),
    )
    .await;
    let bobs = create(&srv, &bob1, json!({"resource_scopes": ["read"]})).await;
    let item = format!("{}/{mine}", rreg(&srv));
    for (who, other) in [("bob via RS one", &bob1), ("alice via RS two", &alice2)] {
        let (s, _, v) = bearer_json(Method::GET, &item, Some(other), None).await;
        assert_eq!((s, error_of(&v)), (404, "not_found"), "{who} reads");
        let (s, _, v) = bearer_json(
            Method::PUT,
            &item,
            Some(other),
            Some(&json!({"resource_scopes": ["stolen"]})),
        )
        .await;
        assert_eq!((s, error_of(&v)), (404, "not_found"), "{who} updates");
        let (s, _, v) = bearer_json(Method::DELETE, &item, Some(other), None).await;
        assert_eq!((s, error_of(&v)), (404, "not_found"), "{who} deletes");
        let (s, v) = ticket(
            &srv,
            other,
            json!({"resource_id": mine, "resource_scopes": ["read"]}),
        )
        .await;
        assert_eq!(
            (s, error_of(&v)),
            (400, "invalid_resource_id"),
            "{who} asks a ticket"
        );
        let (_, _, list) = bearer_json(Method::GET, &rreg(&srv), Some(other), None).await;
        assert!(
            !list.as_array().is_some_and(|l| l.contains(&json!(mine))),
            "{who} lists"
        );
    }
    // A request mixing one's own resource and another owner's is refused whole.
    let (s, v) = ticket(
        &srv,
        &alice1,
        json!([
            {"resource_id": mine, "resource_scopes": ["read"]},
            {"resource_id": bobs, "resource_scopes": ["read"]},
        ]),
    )
    .await;
    assert_eq!((s, error_of(&v)), (400, "invalid_resource_id"), "{v}");
    // The owner's resource is untouched.
    let (s, _, v) = bearer_json(Method::GET, &item, Some(&alice1), None).await;
    assert_eq!(
        (s, &v["resource_scopes"], &v["name"]),
        (200, &json!(["read"]), &json!("mine"))
    );
});

// Revoking a PAT stops its resource server's protection calls at once (UMA-FED-02).
both!(revoked_pat_stops_at_once, |srv| {
    srv.add_user("alice", PW).await;
    let rs = srv.rs_client("RS").await;
    let t = code_flow_tokens(&srv, &rs, "alice", PW, "uma_protection").await;
    let pat = t["access_token"].as_str().unwrap_or_default();
    let refresh = t["refresh_token"].as_str().unwrap_or_default();
    create(&srv, pat, json!({"resource_scopes": ["read"]})).await;
    let resp = http()
        .post(srv.url("/revoke"))
        .basic_auth(&rs.id, rs.secret.as_deref())
        .form(&[("token", pat)])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status().as_u16(), 200);
    let (s, _, v) = bearer_json(Method::GET, &rreg(&srv), Some(pat), None).await;
    assert_eq!((s, error_of(&v)), (401, "invalid_token"), "{v}");
    // Revoking the refresh token ends the grant: no new PAT from it.
    let resp = http()
        .post(srv.url("/revoke"))
        .basic_auth(&rs.id, rs.secret.as_deref())
        .form(&[("token", refresh)])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status().as_u16(), 200);
    let (s, v) = token_request(
        &srv,
        &rs,
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
    )
    .await;
    assert_eq!((s, error_of(&v)), (400, "invalid_grant"));
});

// UMA-FED-34, UMA-FED-35, UMA-FED-36, UMA-FED-38, UMA-FED-40: introspection with the PAT.
both!(introspection_with_pat, |srv| {
    srv.add_user("alice", PW).await;
    let rs = srv.rs_client("RS").await;
    let other_rs = srv.rs_client("Other RS").await;
    let pat = srv.pat(&rs, "alice", PW).await;
    let other_pat = srv.pat(&other_rs, "alice", PW).await;
    let rid = create(&srv, &pat, json!({"resource_scopes": ["read", "write"]})).await;
    let app = srv.web_client().await;
    let rpt = srv
        .mint_rpt(
            &app.id,
            std::slice::from_ref(&rs.id),
            &[RptPermission {
                resource_id: rid.clone(),
                resource_scopes: vec!["read".into()],
                exp: None,
            }],
        )
        .await;
    let intro = |bearer: String, token: String| {
        let srv = &srv;
        async move {
            let resp = http()
                .post(srv.url("/introspect"))
                .bearer_auth(bearer)
                .form(&[
                    ("token", token.as_str()),
                    ("token_type_hint", "access_token"),
                ])
                .send()
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            (
                resp.status().as_u16(),
                resp.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (s, v) = intro(pat.clone(), rpt.clone()).await;
    assert_eq!(s, 200);
    assert_eq!(v["active"], true, "{v}");
    assert!(v.get("scope").is_none(), "an RPT has no scope: {v}");
    assert_eq!(
        v["permissions"],
        json!([{"resource_id": rid, "resource_scopes": ["read"]}])
    );
    assert_eq!(v["client_id"], json!(app.id));
    // Another resource server's PAT learns nothing about it.
    let (_, v) = intro(other_pat.clone(), rpt.clone()).await;
    assert_eq!(v, json!({"active": false}));
    // A PAT introspected by its own resource server: plain RFC 7662 with `scope`.
    let (_, v) = intro(pat.clone(), pat.clone()).await;
    assert_eq!(
        (v["active"].clone(), v["scope"].clone()),
        (json!(true), json!("uma_protection"))
    );
    assert!(v.get("permissions").is_none());
    // Revoked: inactive, and nothing more.
    let resp = http()
        .post(srv.url("/revoke"))
        .basic_auth(&app.id, app.secret.as_deref())
        .form(&[("token", rpt.as_str())])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status().as_u16(), 200);
    let (_, v) = intro(pat.clone(), rpt).await;
    assert_eq!(v, json!({"active": false}));
    // A bad PAT is the caller's authentication failure: 401, not an answer.
    let (s, v) = intro("garbage".into(), pat).await;
    assert_eq!((s, error_of(&v)), (401, "invalid_token"));
});

// The owner revokes a PAT: on the account page the resource server is listed as managing the
// protection of the owner's data; disconnecting it revokes its PAT (protection calls fail at once)
// and its refresh token, and forgets the consent.
both!(owner_disconnects_resource_server, |srv| {
    srv.add_user("alice", PW).await;
    let rs = srv.rs_client("Clinic FHIR server").await;
    let t = code_flow_tokens(&srv, &rs, "alice", PW, "uma_protection").await;
    let pat = t["access_token"].as_str().unwrap_or_default();
    let refresh = t["refresh_token"].as_str().unwrap_or_default();
    let rid = create(&srv, pat, json!({"resource_scopes": ["read"]})).await;
    let (_, v) = ticket(
        &srv,
        pat,
        json!({"resource_id": rid, "resource_scopes": ["read"]}),
    )
    .await;
    let outstanding = v["ticket"].as_str().unwrap_or_default().to_string();

    let browser = browser();
    let landing = open(&browser, &srv.url("/account")).await;
    let (status, page) = landing.page();
    assert_eq!(status, 200);
    let csrf = input_value(page, "csrf").unwrap_or_default();
    let resp = browser
        .post(srv.url("/account/login"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("username", "alice"),
            ("password", PW),
        ])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status().as_u16(), 303);
    let page = browser
        .get(srv.url("/account"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .text()
        .await
        .unwrap_or_default();
    assert!(page.contains("Clinic FHIR server"), "{page}");
    assert!(page.contains("manages the protection of data it holds about you"));
    // A hostile client id is a plain refusal, never a server error (PostgreSQL refuses NUL).
    let resp = browser
        .post(srv.url("/account/disconnect"))
        .form(&[("csrf", csrf.as_str()), ("client_id", "a\u{0}b")])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status().as_u16(), 400);
    // Without the CSRF token, nothing happens.
    let resp = browser
        .post(srv.url("/account/disconnect"))
        .form(&[("client_id", rs.id.as_str())])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status().as_u16(), 400);
    let (s, _, _) = bearer_json(Method::GET, &rreg(&srv), Some(pat), None).await;
    assert_eq!(s, 200, "still connected");

    let resp = browser
        .post(srv.url("/account/disconnect"))
        .form(&[("csrf", csrf.as_str()), ("client_id", rs.id.as_str())])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status().as_u16(), 200);
    let page = resp.text().await.unwrap_or_default();
    assert!(page.contains("disconnected"), "{page}");
    assert!(!page.contains("Clinic FHIR server"), "{page}");
    let (s, _, v) = bearer_json(Method::GET, &rreg(&srv), Some(pat), None).await;
    assert_eq!(
        (s, error_of(&v)),
        (401, "invalid_token"),
        "the PAT stopped at once"
    );
    assert!(
        permission::peek(&srv.core, &outstanding, srv.core.now())
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .is_none(),
        "its outstanding tickets are gone"
    );
    let (s, v) = token_request(
        &srv,
        &rs,
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
    )
    .await;
    assert_eq!((s, error_of(&v)), (400, "invalid_grant"), "{v}");
});

// UMA-FED-02 (expired PAT), and hostile ids never reach the database (no 500 on PostgreSQL).
both!(expired_pat_and_hostile_ids, |srv| {
    srv.add_user("alice", PW).await;
    let rs = srv.rs_client("RS").await;
    let pat = srv.pat(&rs, "alice", PW).await;
    let id = create(&srv, &pat, json!({"resource_scopes": ["read"]})).await;
    for path in ["%00", "a%00b", "%0A", &"x".repeat(300)] {
        let url = format!("{}/{path}", rreg(&srv));
        for m in [Method::GET, Method::DELETE] {
            let (s, _, v) = bearer_json(m.clone(), &url, Some(&pat), None).await;
            assert_eq!((s, error_of(&v)), (404, "not_found"), "{m} {path}");
        }
        let (s, _, v) = bearer_json(
            Method::PUT,
            &url,
            Some(&pat),
            Some(&json!({"resource_scopes": ["a"]})),
        )
        .await;
        assert_eq!((s, error_of(&v)), (404, "not_found"), "PUT {path}");
    }
    for rid in ["\u{0}", "a\u{0}b", "\u{7f}", &"r".repeat(200)] {
        let (s, v) = ticket(
            &srv,
            &pat,
            json!({"resource_id": rid, "resource_scopes": []}),
        )
        .await;
        assert_eq!((s, error_of(&v)), (400, "invalid_resource_id"), "{v}");
    }
    let (s, _, v) = bearer_json(
        Method::POST,
        &rreg(&srv),
        Some(&pat),
        Some(&json!({"resource_scopes": ["a\u{0}"], "name": "n\u{0}"})),
    )
    .await;
    assert_eq!((s, error_of(&v)), (400, "invalid_request"), "{v}");
    // An oversized body: 413, nothing stored.
    let big = json!({"resource_scopes": ["a"], "description": "x".repeat(70_000)});
    let (s, _, _) = bearer_json(Method::POST, &rreg(&srv), Some(&pat), Some(&big)).await;
    assert_eq!(s, 413);
    let (_, _, list) = bearer_json(Method::GET, &rreg(&srv), Some(&pat), None).await;
    assert_eq!(list, json!([id]));

    // The PAT expires with its access-token lifetime.
    srv.core
        .clock
        .advance(srv.core.config.access_token_ttl as i64 + 1);
    let (s, _, v) = bearer_json(Method::GET, &rreg(&srv), Some(&pat), None).await;
    assert_eq!((s, error_of(&v)), (401, "invalid_token"), "{v}");
    let (s, v) = ticket(
        &srv,
        &pat,
        json!({"resource_id": id, "resource_scopes": []}),
    )
    .await;
    assert_eq!((s, error_of(&v)), (401, "invalid_token"), "{v}");
});

// UMA-FED-04 through introspection: a PAT sees only its own partition's permissions, and a
// client-credentials token never carries `uma_protection`, even when registered for it.
both!(introspection_is_partitioned, |srv| {
    srv.add_user("alice", PW).await;
    srv.add_user("bob", PW).await;
    let rs1 = srv.rs_client("RS one").await;
    let rs2 = srv.rs_client("RS two").await;
    let alice1 = srv.pat(&rs1, "alice", PW).await;
    let bob1 = srv.pat(&rs1, "bob", PW).await;
    let alice2 = srv.pat(&rs2, "alice", PW).await;
    let a1 = create(&srv, &alice1, json!({"resource_scopes": ["read"]})).await;
    let a2 = create(&srv, &alice2, json!({"resource_scopes": ["read"]})).await;
    let app = srv.web_client().await;
    let perm = |rid: &str| RptPermission {
        resource_id: rid.to_string(),
        resource_scopes: vec!["read".into()],
        exp: None,
    };
    let both_rs = srv
        .mint_rpt(
            &app.id,
            &[rs1.id.clone(), rs2.id.clone()],
            &[perm(&a1), perm(&a2)],
        )
        .await;
    let intro = |pat: String| {
        let (srv, token) = (&srv, both_rs.clone());
        async move {
            http()
                .post(srv.url("/introspect"))
                .bearer_auth(pat)
                .form(&[("token", token.as_str())])
                .send()
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .json::<Value>()
                .await
                .unwrap_or(Value::Null)
        }
    };
    let v = intro(alice1.clone()).await;
    assert_eq!(
        v["permissions"],
        json!([{"resource_id": a1, "resource_scopes": ["read"]}]),
        "{v}"
    );
    let v = intro(alice2.clone()).await;
    assert_eq!(
        v["permissions"],
        json!([{"resource_id": a2, "resource_scopes": ["read"]}]),
        "{v}"
    );
    assert_eq!(
        intro(bob1).await,
        json!({"active": false}),
        "another owner's PAT"
    );

    let cc = TestClient::from_json(
        &srv.add_client(json!({
            "client_name": "Svc",
            "grant_types": ["client_credentials"],
            "scope": "api:read uma_protection",
        }))
        .await,
    );
    let (s, t) = token_request(&srv, &cc, &[("grant_type", "client_credentials")]).await;
    assert_eq!((s, &t["scope"]), (200, &json!("api:read")), "{t}");
    let (s, _, v) = bearer_json(Method::GET, &rreg(&srv), t["access_token"].as_str(), None).await;
    assert_eq!((s, error_of(&v)), (403, "insufficient_scope"));
});

// Updating a resource drops the tickets asked for against its old description; a public client
// cannot be a resource server.
both!(update_drops_tickets_and_rs_must_be_confidential, |srv| {
    srv.add_user("alice", PW).await;
    let rs = srv.rs_client("RS").await;
    let pat = srv.pat(&rs, "alice", PW).await;
    let id = create(&srv, &pat, json!({"resource_scopes": ["read", "write"]})).await;
    let (_, v) = ticket(
        &srv,
        &pat,
        json!({"resource_id": id, "resource_scopes": ["write"]}),
    )
    .await;
    let t = v["ticket"].as_str().unwrap_or_default().to_string();
    let live = |t: String| {
        let srv = &srv;
        async move {
            permission::peek(&srv.core, &t, srv.core.now())
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .is_some()
        }
    };
    assert!(live(t.clone()).await);
    let (s, _, _) = bearer_json(
        Method::PUT,
        &format!("{}/{id}", rreg(&srv)),
        Some(&pat),
        Some(&json!({"resource_scopes": ["read"]})),
    )
    .await;
    assert_eq!(s, 200);
    assert!(!live(t).await, "the ticket for the removed scope is gone");

    let meta: custodia_server::protocol::clients::ClientMetadata = serde_json::from_value(json!({
        "redirect_uris": ["https://client.example/cb"],
        "token_endpoint_auth_method": "none",
        "scope": "uma_protection",
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    let r =
        custodia_server::protocol::clients::validate_metadata(meta, srv.core.config.profile, false);
    assert_eq!(
        r.err().map(|e| e.error),
        Some(custodia_server::protocol::error::ErrorCode::InvalidClientMetadata)
    );
});

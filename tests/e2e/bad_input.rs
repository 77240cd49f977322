//! Bad input gets the right OAuth error code and status, never a 500: malformed forms and JSON,
//! oversized bodies, unknown grant types, bad client assertions, invalid registration metadata.

use custodia_tests::*;
use serde_json::{Value, json};

async fn post_raw(
    srv: &TestServer,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
    basic: Option<&TestClient>,
) -> (u16, Value) {
    let mut r = http()
        .post(srv.url(path))
        .header("content-type", content_type)
        .body(body);
    if let Some(c) = basic {
        r = r.basic_auth(&c.id, c.secret.as_deref());
    }
    let resp = r.send().await.unwrap_or_else(|e| panic!("{e}"));
    let s = resp.status().as_u16();
    (s, resp.json().await.unwrap_or(Value::Null))
}

/// A row: content type, body, Basic credentials, expected status and error code.
type Case<'a> = (&'a str, Vec<u8>, Option<&'a TestClient>, u16, &'a str);

both!(token_endpoint_bad_input_table, |srv| {
    let c = srv.service_client().await;
    let form = "application/x-www-form-urlencoded";
    let cases: Vec<Case> = vec![
        (
            form,
            b"grant_type=password&username=a&password=b".to_vec(),
            Some(&c),
            400,
            "unsupported_grant_type",
        ),
        (
            form,
            b"grant_type=implicit".to_vec(),
            Some(&c),
            400,
            "unsupported_grant_type",
        ),
        (
            form,
            b"grant_type=urn%3Aunknown".to_vec(),
            Some(&c),
            400,
            "unsupported_grant_type",
        ),
        (form, b"".to_vec(), Some(&c), 400, "invalid_request"),
        (
            form,
            b"grant_type=client_credentials&grant_type=client_credentials".to_vec(),
            Some(&c),
            400,
            "invalid_request",
        ),
        (
            form,
            b"%%%%=&&&==".to_vec(),
            Some(&c),
            400,
            "invalid_request",
        ),
        (
            form,
            vec![0xff, 0xfe, 0x00, 0x3d],
            Some(&c),
            400,
            "invalid_request",
        ),
        (
            "application/json",
            br#"{"grant_type":"client_credentials"}"#.to_vec(),
            Some(&c),
            400,
            "invalid_request",
        ),
        (
            "text/plain",
            b"grant_type=client_credentials".to_vec(),
            Some(&c),
            400,
            "invalid_request",
        ),
        (
            form,
            b"grant_type=client_credentials".to_vec(),
            None,
            401,
            "invalid_client",
        ),
        (
            form,
            b"grant_type=client_credentials&client_id=nobody&client_secret=x".to_vec(),
            None,
            401,
            "invalid_client",
        ),
        (
            form,
            b"grant_type=client_credentials&scope=openid".to_vec(),
            Some(&c),
            400,
            "invalid_scope",
        ),
        (
            form,
            b"grant_type=client_credentials&scope=uma_protection".to_vec(),
            Some(&c),
            400,
            "invalid_scope",
        ),
        (
            form,
            b"grant_type=client_credentials&scope=not:registered".to_vec(),
            Some(&c),
            400,
            "invalid_scope",
        ),
        (
            form,
            b"grant_type=client_credentials&scope=%22bad%22".to_vec(),
            Some(&c),
            400,
            "invalid_scope",
        ),
        (
            form,
            b"grant_type=authorization_code&code=abc".to_vec(),
            Some(&c),
            400,
            "unauthorized_client",
        ),
        (
            form,
            b"grant_type=refresh_token&refresh_token=abc".to_vec(),
            Some(&c),
            400,
            "unauthorized_client",
        ),
    ];
    for (ct, body, who, status, code) in cases {
        let label = String::from_utf8_lossy(&body).to_string();
        let (s, v) = post_raw(&srv, "/token", ct, body, who).await;
        assert_eq!(
            (s, v["error"].as_str()),
            (status, Some(code)),
            "{ct} {label}: {v}"
        );
        assert!(
            v["error_description"]
                .as_str()
                .is_some_and(|d| !d.is_empty()),
            "{label}: a useful description"
        );
    }
    // Wrong secret and Basic with both header and body credentials.
    let r = http()
        .post(srv.url("/token"))
        .basic_auth(&c.id, Some("wrong"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.headers().get("www-authenticate").is_some());
    let r = http()
        .post(srv.url("/token"))
        .basic_auth(&c.id, c.secret.as_deref())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", c.id.as_str()),
            ("client_secret", c.secret.as_deref().unwrap_or("")),
        ])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        r.status().as_u16(),
        400,
        "two authentication methods at once"
    );
});

both!(oversized_bodies_are_refused, ["CUSTODIA_MAX_BODY_BYTES" => "4096", "CUSTODIA_REGISTRATION_MODE" => "open"], |srv| {
    let c = srv.service_client().await;
    let big = format!("grant_type=client_credentials&pad={}", "a".repeat(10_000));
    let (s, v) = post_raw(&srv, "/token", "application/x-www-form-urlencoded", big.into_bytes(), Some(&c)).await;
    assert_eq!((s, v["error"].as_str()), (413, Some("invalid_request")));
    let big_json = format!("{{\"client_name\":\"{}\"}}", "a".repeat(10_000));
    let (s, _) = post_raw(&srv, "/register", "application/json", big_json.into_bytes(), None).await;
    assert_eq!(s, 413, "oversized registration refused");
    let (s, _) = post_raw(&srv, "/introspect", "application/x-www-form-urlencoded", vec![b'a'; 10_000], Some(&c)).await;
    assert_eq!(s, 413);
});

both!(unknown_paths_and_methods, |srv| {
    let r = http()
        .get(srv.url("/token"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 405);
    assert_eq!(
        r.headers().get("allow").and_then(|v| v.to_str().ok()),
        Some("POST")
    );
    let r = http()
        .get(srv.url("/nope"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 404);
});

both!(authorize_malformed_queries_get_pages, |srv| {
    let b = browser();
    for q in [
        "",
        "?client_id=",
        "?%ZZ",
        "?client_id=a&client_id=b",
        "?request=eyJ",
        &format!("?client_id={}", "x".repeat(5000)),
    ] {
        let l = open(&b, &format!("{}{q}", srv.url("/authorize"))).await;
        let (s, _) = l.page();
        assert_eq!(s, 400, "{q}");
    }
});

both!(
/// Bad client assertions (RFC 7523): each refused with `invalid_client`, never a 500.
bad_client_assertions, |srv| {
    use josekit::jws::RS256;
    let kp = RS256.generate_key_pair(2048).unwrap_or_else(|e| panic!("{e}"));
    let mut jwk = kp.to_jwk_public_key();
    jwk.set_key_id("k1");
    let jwks = json!({"keys": [Value::Object(jwk.as_ref().clone())]});
    let v = srv.add_client(json!({"grant_types": ["client_credentials"], "scope": "api:read", "token_endpoint_auth_method": "private_key_jwt", "jwks": jwks})).await;
    let id = v["client_id"].as_str().unwrap_or_default().to_string();
    let other = RS256.generate_key_pair(2048).unwrap_or_else(|e| panic!("{e}"));
    let now = custodia_server::now();
    let sign = |claims: Value, key: &josekit::jwk::alg::rsa::RsaKeyPair| {
        let mut h = josekit::jws::JwsHeader::new();
        h.set_key_id("k1");
        let p = josekit::jwt::JwtPayload::from_map(claims.as_object().cloned().unwrap_or_default()).unwrap_or_else(|e| panic!("{e}"));
        let signer = RS256.signer_from_der(key.to_der_private_key()).unwrap_or_else(|e| panic!("{e}"));
        josekit::jwt::encode_with_signer(&p, &h, &signer).unwrap_or_else(|e| panic!("{e}"))
    };
    let token_url = srv.url("/token");
    let good = |jti: &str| json!({"iss": id, "sub": id, "aud": token_url, "exp": now + 60, "iat": now, "jti": jti});
    let send = |assertion: String, atype: &'static str| {
        let srv = &srv;
        async move {
            let r = http()
                .post(srv.url("/token"))
                .form(&[("grant_type", "client_credentials"), ("client_assertion_type", atype), ("client_assertion", assertion.as_str())])
                .send()
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let s = r.status().as_u16();
            (s, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    const T: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
    // The good one works once, then its jti is a replay.
    let a = sign(good("jti-1"), &kp);
    assert_eq!(send(a.clone(), T).await.0, 200);
    let (s, e) = send(a, T).await;
    assert_eq!((s, e["error"].as_str()), (401, Some("invalid_client")), "jti replay");
    let mut cases: Vec<(String, Value)> = vec![];
    cases.push(("wrong key".into(), Value::String(sign(good("j2"), &other))));
    let mut c = good("j3");
    c["aud"] = json!("https://somewhere.else/token");
    cases.push(("wrong aud".into(), Value::String(sign(c, &kp))));
    let mut c = good("j4");
    c["exp"] = json!(now - 3600);
    cases.push(("expired".into(), Value::String(sign(c, &kp))));
    let mut c = good("j5");
    c["exp"] = json!(now + 86400);
    cases.push(("too long-lived".into(), Value::String(sign(c, &kp))));
    let mut c = good("j6");
    c.as_object_mut().map(|m| m.remove("jti"));
    cases.push(("no jti".into(), Value::String(sign(c, &kp))));
    let mut c = good("j7");
    c["sub"] = json!("someone-else");
    cases.push(("sub differs".into(), Value::String(sign(c, &kp))));
    cases.push(("not a jwt".into(), json!("abc.def")));
    cases.push(("garbage segments".into(), json!("a.b.c")));
    // alg none
    let none = {
        use base64::Engine as _;
        let e = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        format!("{}.{}.", e(json!({"alg": "none"})), e(good("j8")))
    };
    cases.push(("alg none".into(), Value::String(none)));
    for (label, a) in cases {
        let (s, e) = send(a.as_str().unwrap_or_default().to_string(), T).await;
        assert_eq!((s, e["error"].as_str()), (401, Some("invalid_client")), "{label}: {e}");
    }
    let (s, e) = send(sign(good("j9"), &kp), "urn:wrong").await;
    assert_eq!((s, e["error"].as_str()), (401, Some("invalid_client")), "wrong assertion type");
});

both!(
/// CORE-08, RFC 7591 §3.2.2: invalid metadata is `invalid_client_metadata` or `invalid_redirect_uri`.
invalid_registration_metadata, ["CUSTODIA_REGISTRATION_MODE" => "open"], |srv| {
    let cases: Vec<(Value, &str)> = vec![
        (json!({"redirect_uris": ["http://app.example/cb"]}), "invalid_redirect_uri"),
        (json!({"redirect_uris": ["https://app.example/cb#f"]}), "invalid_redirect_uri"),
        (json!({"redirect_uris": "https://app.example/cb"}), "invalid_client_metadata"),
        (json!({"redirect_uris": ["https://app.example/cb"], "grant_types": ["password"]}), "invalid_client_metadata"),
        (json!({"redirect_uris": ["https://app.example/cb"], "grant_types": ["implicit"], "response_types": ["token"]}), "invalid_client_metadata"),
        (json!({"redirect_uris": ["https://app.example/cb"], "token_endpoint_auth_method": "private_key_jwt"}), "invalid_client_metadata"),
        (json!({"redirect_uris": ["https://app.example/cb"], "jwks": {"keys": [{"kty": "oct", "k": "abc"}]}}), "invalid_client_metadata"),
        (json!({"redirect_uris": ["https://app.example/cb"], "jwks": {"keys": []}, "jwks_uri": "https://app.example/jwks"}), "invalid_client_metadata"),
        (json!({"redirect_uris": ["https://app.example/cb"], "application_type": "toaster"}), "invalid_client_metadata"),
        (json!({"redirect_uris": ["https://app.example/cb"], "client_uri": "javascript:alert(1)"}), "invalid_client_metadata"),
        (json!({"redirect_uris": ["https://app.example/cb"], "scope": "a\"b"}), "invalid_client_metadata"),
        (json!([1, 2, 3]), "invalid_client_metadata"),
    ];
    for (body, code) in cases {
        let (s, v) = post_raw(&srv, "/register", "application/json", body.to_string().into_bytes(), None).await;
        assert_eq!((s, v["error"].as_str()), (400, Some(code)), "{body}: {v}");
    }
    let (s, v) = post_raw(&srv, "/register", "application/json", b"{not json".to_vec(), None).await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_client_metadata")));
});

both!(
/// Property test over the live token endpoint: arbitrary bytes and form-like bodies never produce a
/// 500 or a non-JSON error; every answer is a spec-shaped OAuth error (or a token).
token_endpoint_never_500s_on_random_bodies, |srv| {
    use proptest::strategy::{Strategy, ValueTree};
    use proptest::test_runner::TestRunner;
    let c = srv.service_client().await;
    let mut runner = TestRunner::deterministic();
    let bytes = proptest::collection::vec(proptest::arbitrary::any::<u8>(), 0..400);
    let form = proptest::string::string_regex("(grant_type|code|scope|client_id|client_secret|refresh_token|redirect_uri|code_verifier|client_assertion|client_assertion_type|[a-z_]{1,8})=([a-zA-Z0-9%+._~:/-]{0,40})(&(grant_type|scope|code|[a-z]{1,6})=[a-zA-Z0-9%+._~-]{0,30}){0,5}")
        .unwrap_or_else(|e| panic!("{e}"));
    for i in 0..160 {
        let body: Vec<u8> = if i % 2 == 0 {
            bytes.new_tree(&mut runner).unwrap_or_else(|e| panic!("{e}")).current()
        } else {
            form.new_tree(&mut runner).unwrap_or_else(|e| panic!("{e}")).current().into_bytes()
        };
        let who = if i % 3 == 0 { None } else { Some(&c) };
        let (s, v) = post_raw(&srv, "/token", "application/x-www-form-urlencoded", body.clone(), who).await;
        assert!(s < 500, "500 for {:?}", String::from_utf8_lossy(&body));
        if s != 200 {
            let code = v["error"].as_str().unwrap_or_else(|| panic!("no error code for {:?}: {v}", String::from_utf8_lossy(&body)));
            assert!(
                ["invalid_request", "invalid_client", "invalid_grant", "unauthorized_client", "unsupported_grant_type", "invalid_scope"].contains(&code),
                "{code}"
            );
        }
    }
});

both!(
/// RFC 6749 §2.3.1, §3.2: credentials and parameters in the token endpoint's URL are refused.
token_parameters_in_the_url_are_refused, |srv| {
    let c = srv.service_client().await;
    let url = format!("{}?client_id={}&client_secret={}", srv.url("/token"), c.id, c.secret.clone().unwrap_or_default());
    let r = http().post(url).form(&[("grant_type", "client_credentials")]).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 400);
    let v: Value = r.json().await.unwrap_or_default();
    assert_eq!(v["error"], "invalid_request");
});

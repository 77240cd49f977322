//! The client credentials grant with each client authentication method, and introspection and
//! revocation of what it issues (RFC 6749 §4.4, RFC 7662, RFC 7009, RFC 9068).

use custodia_tests::*;
use serde_json::{Value, json};

both!(basic_post_and_introspection, |srv| {
    let c = srv.service_client().await;
    let (s, t) = token_request(
        &srv,
        &c,
        &[("grant_type", "client_credentials"), ("scope", "api:read")],
    )
    .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["scope"], "api:read");
    assert!(
        t.get("refresh_token").is_none(),
        "no refresh token for client credentials"
    );
    let at = t["access_token"].as_str().unwrap_or_default().to_string();

    // CORE-10: an RFC 9068 JWT with typ at+jwt and the required claims, verifiable with the JWKS.
    let header = josekit::jwt::decode_header(&at).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(header.claim("typ").and_then(Value::as_str), Some("at+jwt"));
    let jwks: Value = http()
        .get(srv.url("/jwks"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_default();
    let kid = header
        .claim("kid")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let key = jwks["keys"]
        .as_array()
        .and_then(|k| k.iter().find(|k| k["kid"] == kid))
        .cloned()
        .unwrap_or_else(|| panic!("kid not in JWKS"));
    let jwk = josekit::jwk::Jwk::from_map(key.as_object().cloned().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}"));
    let verifier = josekit::jws::RS256
        .verifier_from_jwk(&jwk)
        .unwrap_or_else(|e| panic!("{e}"));
    let (payload, _) = josekit::jwt::decode_with_verifier(&at, &verifier)
        .unwrap_or_else(|e| panic!("signature: {e}"));
    for claim in ["iss", "exp", "aud", "sub", "client_id", "iat", "jti"] {
        assert!(payload.claim(claim).is_some(), "claim {claim}");
    }
    assert_eq!(
        payload.claim("sub").and_then(Value::as_str),
        Some(c.id.as_str()),
        "BCP-27: client-only token names the client"
    );
    // IGOV-OAUTH-40: `aud` is an array (this server's APIs).
    assert_eq!(
        payload.claim("aud"),
        Some(&serde_json::json!([srv.core.issuer()])),
        "IGOV-OAUTH-40: `aud` is an array"
    );

    // A client must use the method it registered.
    let r = http()
        .post(srv.url("/token"))
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
        401,
        "a client registered for client_secret_basic cannot use client_secret_post"
    );

    let i = introspect(&srv, &c, &at).await;
    assert_eq!(i["active"], true);
    assert_eq!(i["client_id"], c.id.as_str());
    assert_eq!(i["scope"], "api:read");

    // Another client cannot see it (foreign token): active false, nothing else.
    let other = srv.service_client().await;
    assert_eq!(
        introspect(&srv, &other, &at).await,
        json!({"active": false})
    );
    // Unknown, malformed and foreign-issuer tokens: active false.
    for junk in ["nope", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig"] {
        assert_eq!(
            introspect(&srv, &c, junk).await,
            json!({"active": false}),
            "{junk}"
        );
    }
    // Another client's revocation attempt leaves it alone (RFC 7009 §2.1).
    let r = http()
        .post(srv.url("/revoke"))
        .basic_auth(&other.id, other.secret.as_deref())
        .form(&[("token", at.as_str())])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(introspect(&srv, &c, &at).await["active"], true);
    let r = http()
        .post(srv.url("/revoke"))
        .basic_auth(&c.id, c.secret.as_deref())
        .form(&[("token", at.as_str())])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(introspect(&srv, &c, &at).await, json!({"active": false}));

    // Introspection and revocation need an authenticated caller (CORE-07).
    let r = http()
        .post(srv.url("/introspect"))
        .form(&[("token", at.as_str())])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 401);
    let r = http()
        .post(srv.url("/revoke"))
        .form(&[("token", "x")])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 401);
    let r = http()
        .post(srv.url("/revoke"))
        .basic_auth(&c.id, c.secret.as_deref())
        .form(&[("token", "x"), ("token_type_hint", "pct")])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        r.status().as_u16(),
        200,
        "an unknown hint is advisory (RFC 7009 §2.1)"
    );
    let r = http()
        .post(srv.url("/revoke"))
        .basic_auth(&c.id, c.secret.as_deref())
        .form(&[("token", "unknown-token")])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        r.status().as_u16(),
        200,
        "CORE-06: unknown tokens answer 200"
    );
});

both!(client_secret_post_and_expiry, |srv| {
    let v = srv.add_client(json!({"grant_types": ["client_credentials"], "scope": "api:read", "token_endpoint_auth_method": "client_secret_post"})).await;
    let c = TestClient::from_json(&v);
    let r = http()
        .post(srv.url("/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", c.id.as_str()),
            ("client_secret", c.secret.as_deref().unwrap_or("")),
        ])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 200);
    let t: Value = r.json().await.unwrap_or_default();
    let at = t["access_token"].as_str().unwrap_or_default().to_string();
    // Basic is refused for a client_secret_post client.
    let (s, e) = token_request(&srv, &c, &[("grant_type", "client_credentials")]).await;
    assert_eq!((s, e["error"].as_str()), (401, Some("invalid_client")));
    // Expired tokens are inactive (introspecting with client_secret_post).
    srv.core.clock.advance(601);
    let r = http()
        .post(srv.url("/introspect"))
        .form(&[
            ("token", at.as_str()),
            ("client_id", c.id.as_str()),
            ("client_secret", c.secret.as_deref().unwrap_or("")),
        ])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        r.json::<Value>().await.unwrap_or_default(),
        json!({"active": false})
    );
});

both!(
    public_clients_cannot_use_client_credentials_or_introspect,
    |srv| {
        let v = srv.add_client(json!({"redirect_uris": ["https://spa.example/cb"], "token_endpoint_auth_method": "none", "scope": "openid"})).await;
        let id = v["client_id"].as_str().unwrap_or_default();
        let r = http()
            .post(srv.url("/token"))
            .form(&[("grant_type", "client_credentials"), ("client_id", id)])
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status().as_u16(), 400);
        let e: Value = r.json().await.unwrap_or_default();
        assert_eq!(e["error"], "unauthorized_client");
        let r = http()
            .post(srv.url("/introspect"))
            .form(&[("token", "x"), ("client_id", id)])
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status().as_u16(), 401);
    }
);

both!(
/// `private_key_jwt` with keys fetched from the client's `jwks_uri` (time- and size-limited, cached),
/// and an unreachable `jwks_uri` answered with `invalid_client`, not a 500.
private_key_jwt_with_jwks_uri, |srv| {
    use josekit::jws::RS256;
    let kp = RS256.generate_key_pair(2048).unwrap_or_else(|e| panic!("{e}"));
    let mut jwk = kp.to_jwk_public_key();
    jwk.set_key_id("rk1");
    let doc = json!({"keys": [Value::Object(jwk.as_ref().clone())]}).to_string();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let server = actix_web::HttpServer::new(move || {
        let doc = doc.clone();
        actix_web::App::new().route("/jwks", actix_web::web::get().to(move || {
            let doc = doc.clone();
            async move { actix_web::HttpResponse::Ok().content_type("application/json").body(doc) }
        }))
    })
    .workers(1)
    .listen(listener)
    .unwrap_or_else(|e| panic!("{e}"))
    .run();
    let handle = server.handle();
    tokio::spawn(server);

    let v = srv.add_client(json!({"grant_types": ["client_credentials"], "scope": "api:read", "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": format!("http://127.0.0.1:{port}/jwks")})).await;
    let id = v["client_id"].as_str().unwrap_or_default().to_string();
    let gone = srv.add_client(json!({"grant_types": ["client_credentials"], "scope": "api:read", "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "http://127.0.0.1:1/jwks"})).await;
    let gone_id = gone["client_id"].as_str().unwrap_or_default().to_string();
    let now = custodia_server::now();
    let assertion = |iss: &str, jti: &str| {
        let claims = json!({"iss": iss, "sub": iss, "aud": srv.url("/token"), "exp": now + 60, "jti": jti});
        let p = josekit::jwt::JwtPayload::from_map(claims.as_object().cloned().unwrap_or_default()).unwrap_or_else(|e| panic!("{e}"));
        let mut h = josekit::jws::JwsHeader::new();
        h.set_key_id("rk1");
        let signer = RS256.signer_from_der(kp.to_der_private_key()).unwrap_or_else(|e| panic!("{e}"));
        josekit::jwt::encode_with_signer(&p, &h, &signer).unwrap_or_else(|e| panic!("{e}"))
    };
    for (who, jti, want) in [(id.as_str(), "a1", 200u16), (id.as_str(), "a2", 200), (gone_id.as_str(), "a3", 401)] {
        let a = assertion(who, jti);
        let r = http()
            .post(srv.url("/token"))
            .form(&[("grant_type", "client_credentials"), ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"), ("client_assertion", a.as_str())])
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status().as_u16(), want, "{jti}");
    }
    handle.stop(false).await;
});

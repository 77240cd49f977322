//! OpenID Provider rules of the HEART and iGov profiles over HTTP: pairwise subject identifiers
//! (HEART-OIDC-05, IGOV-OIDC-10), signed UserInfo (HEART-OIDC-06, IGOV-OIDC-12), the ID token's
//! claims (HEART-OIDC-04, IGOV-OIDC-09) and iGov's authentication-request rules (IGOV-OIDC-02,
//! -03, -08).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use custodia_tests::*;
use serde_json::{Value, json};

use crate::grant::{ID_TOKEN_FORMAT, PW, UMA_GRANT, owner_session, uma_token};
use crate::grant_rules::{introspect_with_pat, permission_sets, register, set, share_with, ticket};

/// Verify a JWT of Custodia's against its published JWKS; the payload.
async fn verified(srv: &TestServer, jwt: &str) -> Value {
    let (header, payload) = jwt_parts(jwt);
    let kid = header["kid"].as_str().unwrap_or_default();
    let jwks = get_json(&srv.url("/jwks")).await;
    let key = jwks["keys"]
        .as_array()
        .and_then(|k| k.iter().find(|k| k["kid"] == json!(kid)))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_else(|| panic!("kid {kid} not in {jwks}"));
    let jwk = josekit::jwk::Jwk::from_map(key).unwrap_or_else(|e| panic!("{e}"));
    let alg = header["alg"].as_str().unwrap_or_default();
    let verifier: Box<dyn josekit::jws::JwsVerifier> = match alg {
        "RS256" => Box::new(
            josekit::jws::RS256
                .verifier_from_jwk(&jwk)
                .unwrap_or_else(|e| panic!("{e}")),
        ),
        "PS256" => Box::new(
            josekit::jws::PS256
                .verifier_from_jwk(&jwk)
                .unwrap_or_else(|e| panic!("{e}")),
        ),
        "ES256" => Box::new(
            josekit::jws::ES256
                .verifier_from_jwk(&jwk)
                .unwrap_or_else(|e| panic!("{e}")),
        ),
        other => panic!("unexpected alg {other}"),
    };
    josekit::jwt::decode_with_verifier(jwt, verifier.as_ref()).unwrap_or_else(|e| panic!("{e}"));
    payload
}

async fn userinfo(srv: &TestServer, token: &str, accept: Option<&str>) -> (u16, String, String) {
    let mut req = http().get(srv.url("/userinfo")).bearer_auth(token);
    if let Some(a) = accept {
        req = req.header("Accept", a);
    }
    let resp = req.send().await.unwrap_or_else(|e| panic!("{e}"));
    let s = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (s, ct, resp.text().await.unwrap_or_default())
}

fn pairwise_client(host: &str, name: &str) -> Value {
    json!({
        "client_name": name,
        "redirect_uris": [format!("https://{host}/cb"), format!("https://{host}/claims")],
        "claims_redirect_uris": [format!("https://{host}/claims")],
        "grant_types": ["authorization_code", UMA_GRANT],
        "scope": "openid profile",
        "subject_type": "pairwise",
    })
}

// HEART-OIDC-05, IGOV-OIDC-10: pairwise subject identifiers — one `sub` per sector (the host of
// the redirect URIs), another in every other sector, never the public one; UserInfo agrees with
// the ID token; a pairwise ID token pushed as a UMA claim token still names the person the owner
// shared with.
both!(pairwise_subject_identifiers, |srv| {
    let d = get_json(&srv.url("/.well-known/openid-configuration")).await;
    assert_eq!(d["subject_types_supported"], json!(["public", "pairwise"]));
    for (meta, wanted) in [
        (
            json!({"redirect_uris": ["https://a.example/cb", "https://b.example/cb"], "subject_type": "pairwise"}),
            "one host",
        ),
        (
            json!({"redirect_uris": ["https://a.example/cb"], "subject_type": "pairwise", "sector_identifier_uri": "https://a.example/sector.json"}),
            "sector_identifier_uri",
        ),
        (
            json!({"redirect_uris": ["https://a.example/cb"], "subject_type": "anonymous"}),
            "`public` or `pairwise`",
        ),
    ] {
        match srv.try_add_client(meta).await {
            Err((code, d)) => {
                assert_eq!(code, "invalid_client_metadata", "{d}");
                assert!(d.contains(wanted), "{d}");
            }
            Ok(v) => panic!("registered: {v}"),
        }
    }
    let alice = srv.add_user("alice", PW).await;
    let bob = srv.add_user("bob", PW).await;
    let a1 = TestClient::from_json(&srv.add_client(pairwise_client("a.example", "A one")).await);
    let a2 = TestClient::from_json(&srv.add_client(pairwise_client("a.example", "A two")).await);
    let b = TestClient::from_json(&srv.add_client(pairwise_client("b.example", "B")).await);
    let public = TestClient::from_json(
        &srv.add_client(json!({
            "client_name": "Public subjects",
            "redirect_uris": ["https://a.example/cb"],
            "scope": "openid",
        }))
        .await,
    );
    let mut subs = vec![];
    for (c, host) in [
        (&a1, "a.example"),
        (&a2, "a.example"),
        (&b, "b.example"),
        (&public, "a.example"),
    ] {
        let t =
            code_flow_tokens_at(&srv, c, "bob", PW, "openid", &format!("https://{host}/cb")).await;
        let id = verified(&srv, t["id_token"].as_str().unwrap_or_default()).await;
        let sub = id["sub"].as_str().unwrap_or_default().to_string();
        let (s, _, body) =
            userinfo(&srv, t["access_token"].as_str().unwrap_or_default(), None).await;
        assert_eq!(s, 200, "{body}");
        let info: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        assert_eq!(info["sub"], json!(sub), "UserInfo and the ID token agree");
        subs.push(sub);
    }
    assert_eq!(subs[0], subs[1], "one sector, one identifier");
    assert_ne!(subs[0], subs[2], "two sectors, two identifiers");
    assert_eq!(subs[3], bob, "public clients see the user id");
    assert!(
        subs[0] != bob && subs[2] != bob && !subs[0].contains(&bob),
        "{subs:?}"
    );

    // The pairwise ID token pushed as a claim token: the owner's share with bob applies.
    let rs = srv.rs_client("Photos").await;
    let pat = srv.pat(&rs, "alice", PW).await;
    let photo = register(&srv, &pat, "Photo", &["view"]).await;
    let owner = owner_session(&srv, "alice").await;
    share_with(&srv, &owner, &photo, &bob, &["view"]).await;
    let t = code_flow_tokens_at(&srv, &a1, "bob", PW, "openid", "https://a.example/cb").await;
    let bob_id = t["id_token"].as_str().unwrap_or_default().to_string();
    let tk = ticket(&srv, &pat, &[(photo.as_str(), &["view"])]).await;
    let (s, v) = uma_token(
        &srv,
        &a1,
        &[
            ("ticket", &tk),
            ("claim_token", &bob_id),
            ("claim_token_format", ID_TOKEN_FORMAT),
        ],
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let rpt = v["access_token"].as_str().unwrap_or_default();
    let seen = introspect_with_pat(&srv, &pat, rpt).await;
    assert_eq!(
        permission_sets(&seen),
        vec![set(&photo, &["view"])],
        "{seen}"
    );
    // The RPT and the access token the client holds name bob by its pairwise `sub` too.
    assert_eq!(jwt_parts(rpt).1["sub"], json!(subs[0]));
    assert_eq!(
        jwt_parts(t["access_token"].as_str().unwrap_or_default()).1["sub"],
        json!(subs[0])
    );
    // Another client cannot push it (the token's audience is A's).
    let tk = ticket(&srv, &pat, &[(photo.as_str(), &["view"])]).await;
    let (s, v) = uma_token(
        &srv,
        &b,
        &[
            ("ticket", &tk),
            ("claim_token", &bob_id),
            ("claim_token_format", ID_TOKEN_FORMAT),
        ],
    )
    .await;
    assert_eq!((s, v["error"].as_str()), (403, Some("need_info")), "{v}");
    let _ = alice;
});

// HEART-OIDC-05: a dynamically registered pairwise client cannot move to another sector or to
// public identifiers through RFC 7592 (it would read identifiers meant for others).
both!(pairwise_clients_keep_their_sector, [
    "CUSTODIA_REGISTRATION_MODE" => "open",
], |srv| {
    let resp = http()
        .post(srv.url("/register"))
        .json(&json!({"client_name": "Pairwise", "redirect_uris": ["https://a.example/cb"],
            "subject_type": "pairwise", "token_endpoint_auth_method": "none", "application_type": "native"}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status().as_u16(), 201);
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    let uri = v["registration_client_uri"].as_str().unwrap_or_default().to_string();
    let rat = v["registration_access_token"].as_str().unwrap_or_default().to_string();
    let id = v["client_id"].as_str().unwrap_or_default().to_string();
    let base = json!({"client_id": id, "client_name": "Pairwise", "token_endpoint_auth_method": "none", "application_type": "native"});
    for (change, what) in [
        (json!({"redirect_uris": ["https://victim.example/cb"], "subject_type": "pairwise"}), "sector"),
        (json!({"redirect_uris": ["https://a.example/cb"], "subject_type": "public"}), "type"),
        (json!({"redirect_uris": ["https://a.example/cb"]}), "type, by omission"),
    ] {
        let mut body = base.clone();
        if let (Some(o), Value::Object(c)) = (body.as_object_mut(), change) {
            o.extend(c);
        }
        let resp = http().put(&uri).bearer_auth(&rat).json(&body).send().await.unwrap_or_else(|e| panic!("{e}"));
        let s = resp.status().as_u16();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        assert_eq!((s, v["error"].as_str()), (400, Some("invalid_client_metadata")), "{what}: {v}");
        assert!(v["error_description"].as_str().unwrap_or_default().contains("cannot change"), "{v}");
    }
    // The same sector (another path on the host) is fine.
    let mut body = base.clone();
    if let Some(o) = body.as_object_mut() {
        o.insert("redirect_uris".into(), json!(["https://a.example/other"]));
        o.insert("subject_type".into(), json!("pairwise"));
    }
    let resp = http().put(&uri).bearer_auth(&rat).json(&body).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status().as_u16(), 200);
});

// HEART-OIDC-06, IGOV-OIDC-12: UserInfo as a signed JWT (`iss`, `aud`, the granted claims only)
// for a client that registered `userinfo_signed_response_alg` or asks with
// `Accept: application/jwt`; JSON otherwise. HEART-OIDC-04, IGOV-OIDC-09: the ID token carries
// `jti`, `nbf`, `acr` and `amr`.
both!(signed_userinfo_and_id_token_claims, |srv| {
    srv.add_user("alice", PW).await;
    let d = get_json(&srv.url("/.well-known/openid-configuration")).await;
    let alg = d["id_token_signing_alg_values_supported"][0]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(d["userinfo_signing_alg_values_supported"], json!([alg]));
    assert_eq!(
        d["acr_values_supported"],
        json!(["urn:custodia:acr:password"])
    );
    match srv
        .try_add_client(json!({"redirect_uris": ["https://client.example/cb"], "userinfo_signed_response_alg": "none"}))
        .await
    {
        Err((code, d)) => assert_eq!(code, "invalid_client_metadata", "{d}"),
        Ok(v) => panic!("registered: {v}"),
    }
    let signed = TestClient::from_json(
        &srv.add_client(json!({
            "client_name": "Signed UserInfo",
            "redirect_uris": ["https://client.example/cb"],
            "scope": "openid email",
            "userinfo_signed_response_alg": alg,
        }))
        .await,
    );
    let t = code_flow_tokens(&srv, &signed, "alice", PW, "openid email").await;
    let (s, ct, body) = userinfo(&srv, t["access_token"].as_str().unwrap_or_default(), None).await;
    assert_eq!((s, ct.as_str()), (200, "application/jwt"), "{body}");
    let (header, _) = jwt_parts(&body);
    assert_eq!(header["alg"], json!(alg));
    let claims = verified(&srv, &body).await;
    assert_eq!(claims["iss"], json!(srv.core.issuer()));
    assert_eq!(claims["aud"], json!(signed.id));
    assert_eq!(claims["email"], json!("alice@example.org"));
    assert!(
        claims.get("name").is_none() && claims.get("preferred_username").is_none(),
        "{claims}"
    );

    let id = verified(&srv, t["id_token"].as_str().unwrap_or_default()).await;
    assert_eq!(id["acr"], json!("urn:custodia:acr:password"));
    assert_eq!(id["amr"], json!(["pwd"]));
    assert!(
        id["nbf"]
            .as_i64()
            .is_some_and(|n| n <= id["iat"].as_i64().unwrap_or(0)),
        "{id}"
    );
    assert!(id["jti"].as_str().is_some_and(|j| j.len() >= 43), "{id}");
    assert!(id.get("vot").is_none());

    let plain = srv.web_client().await;
    let t = code_flow_tokens(&srv, &plain, "alice", PW, "openid").await;
    let at = t["access_token"].as_str().unwrap_or_default();
    let (s, ct, body) = userinfo(&srv, at, None).await;
    assert_eq!(s, 200);
    assert!(ct.starts_with("application/json"), "{ct}");
    let (s, ct, body2) = userinfo(&srv, at, Some("application/jwt")).await;
    assert_eq!((s, ct.as_str()), (200, "application/jwt"), "{body2}");
    let claims = verified(&srv, &body2).await;
    let json_sub = serde_json::from_str::<Value>(&body).unwrap_or(Value::Null)["sub"].clone();
    assert_eq!(claims["sub"], json_sub);
    assert_eq!(claims["aud"], json!(plain.id));
});

// IGOV-OIDC-03, -08, -09: under `igov` requested `acr_values` must be met (the ID token's `acr`
// is one of them), and `vtr` (not offered) never comes with `acr_values`.
both!(igov_authentication_context, [
    "CUSTODIA_PROFILE" => "igov",
], |srv| {
    let client = srv
        .add_key_client(json!({
            "client_name": "Gov app",
            "redirect_uris": ["https://client.example/cb"],
            "grant_types": ["authorization_code"],
            "scope": "openid",
            "dpop_bound_access_tokens": true,
        }))
        .await;
    let (_, challenge) = pkce();
    let base = [
        ("scope", "openid"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("state", "s1"),
        ("nonce", "n1"),
    ];
    for (extra, status, wanted) in [
        (vec![("acr_values", "urn:example:loa:4")], 400, "can be met"),
        (vec![("vtr", "[\"P1.Cc\"]"), ("acr_values", "urn:custodia:acr:password")], 400, "together"),
        (vec![("vtr", "[\"P1.Cc\"]")], 400, "not supported"),
        (vec![("acr_values", "urn:example:loa:4 urn:custodia:acr:password")], 200, ""),
    ] {
        let mut q = base.to_vec();
        q.extend(extra.iter().copied());
        let resp = browser()
            .get(authorize_url(&srv, &client, &q))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(resp.status().as_u16(), status, "{extra:?}");
        assert!(resp.headers().get("location").is_none());
        let body = resp.text().await.unwrap_or_default();
        assert!(body.contains(wanted), "{extra:?}: {body}");
    }
});

/// A JWS of `claims` signed with `key` (ES256, `kid` `k1`).
pub(crate) fn signed(key: &josekit::jwk::Jwk, claims: Value) -> String {
    let mut h = josekit::jws::JwsHeader::new();
    h.set_key_id("k1");
    let p = josekit::jwt::JwtPayload::from_map(claims.as_object().cloned().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}"));
    let signer = josekit::jws::ES256
        .signer_from_jwk(key)
        .unwrap_or_else(|e| panic!("{e}"));
    josekit::jwt::encode_with_signer(&p, &h, &signer).unwrap_or_else(|e| panic!("{e}"))
}

/// The status and body of the page `/authorize` answers with these parameters.
async fn authorize_page(
    srv: &TestServer,
    client: &TestClient,
    q: &[(&str, &str)],
) -> (u16, String) {
    let resp = browser()
        .get(authorize_url(srv, client, q))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let s = resp.status().as_u16();
    assert!(resp.headers().get("location").is_none(), "{q:?}");
    (s, resp.text().await.unwrap_or_default())
}

// HEART-OIDC-07, IGOV-OIDC-13: a request object signed with the client's registered key is
// honoured — its members supersede the query's (here the query's scope is one the client may not
// have; the object's is) through sign-in and consent to the ID token's `nonce`. A bad signature,
// `alg: none`, another client's name, an expired object, a client without keys and
// `request_uri` are refused with pages naming the problem.
both!(signed_request_objects, [
    "CUSTODIA_PROFILE" => "heart",
], |srv| {
    srv.add_user("alice", PW).await;
    let d = get_json(&srv.url("/.well-known/openid-configuration")).await;
    assert_eq!(d["request_parameter_supported"], json!(true));
    assert_eq!(d["request_uri_parameter_supported"], json!(false));
    assert_eq!(d["request_object_signing_alg_values_supported"], json!(["RS256", "PS256", "ES256"]));
    let client = srv
        .add_key_client(json!({
            "client_name": "Keyed app",
            "redirect_uris": ["https://client.example/cb"],
            "grant_types": ["authorization_code"],
            "scope": "openid profile",
        }))
        .await;
    let key = client.key.clone().unwrap_or_else(|| panic!("no key"));
    let (verifier, challenge) = pkce();
    let now = srv.core.now();
    let object = |extra: Value| {
        let mut c = json!({
            "iss": client.id, "aud": srv.core.issuer(), "client_id": client.id,
            "response_type": "code", "redirect_uri": "https://client.example/cb",
            "scope": "openid profile", "nonce": "signed-nonce", "state": "signed-state",
            "code_challenge": challenge, "code_challenge_method": "S256", "exp": now + 300,
        });
        if let (Some(o), Value::Object(e)) = (c.as_object_mut(), extra) {
            o.extend(e);
        }
        c
    };
    let good = signed(&key, object(json!({})));
    let loc = authorize_and_allow(&srv, &client, &[("request", good.as_str())], "alice", PW).await;
    let back = query(&loc);
    assert_eq!(back.get("state").map(String::as_str), Some("signed-state"), "{loc}");
    let code = back.get("code").cloned().unwrap_or_else(|| panic!("no code in {loc}"));
    let (s, t) = redeem_code(&srv, &client, &code, "https://client.example/cb", &verifier, &[])
    .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(t["scope"], json!("openid profile"));
    let (_, id) = jwt_parts(t["id_token"].as_str().unwrap_or_default());
    assert_eq!(id["nonce"], json!("signed-nonce"));

    let stranger = josekit::jws::ES256.generate_key_pair().unwrap_or_else(|e| panic!("{e}"));
    let forged = signed(&stranger.to_jwk_private_key(), object(json!({})));
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
        URL_SAFE_NO_PAD.encode(object(json!({})).to_string())
    );
    let other = signed(&key, object(json!({"client_id": "someone-else"})));
    let expired = signed(&key, object(json!({"exp": now - 10})));
    for (request, wanted) in [
        (forged.as_str(), "does not verify"),
        (unsigned.as_str(), "must be signed with one of"),
        (other.as_str(), "names another client"),
        (expired.as_str(), "expired"),
    ] {
        let (s, body) = authorize_page(&srv, &client, &[("request", request)]).await;
        assert_eq!(s, 400, "{wanted}");
        assert!(body.contains(wanted), "{wanted}: {body}");
        assert!(body.contains("invalid_request_object"), "{wanted}: {body}");
    }
    // IGOV-OIDC-13: a request object signed, then encrypted to the server's `use: enc` key.
    let d = get_json(&srv.url("/.well-known/openid-configuration")).await;
    assert_eq!(
        d["request_object_encryption_alg_values_supported"],
        json!(["ECDH-ES", "ECDH-ES+A128KW", "ECDH-ES+A256KW"])
    );
    let jwks = get_json(&srv.url("/jwks")).await;
    let enc_key = jwks["keys"]
        .as_array()
        .and_then(|k| k.iter().find(|k| k["use"] == "enc"))
        .cloned()
        .unwrap_or_else(|| panic!("no encryption key in {jwks}"));
    assert_eq!((enc_key["kty"].as_str(), enc_key["crv"].as_str()), (Some("EC"), Some("P-256")));
    assert!(enc_key.get("d").is_none(), "only the public key is published");
    let encrypt_to = |jwk: &Value, plain: &str, kid: Option<&str>| {
        let jwk = josekit::jwk::Jwk::from_map(jwk.as_object().cloned().unwrap_or_default())
            .unwrap_or_else(|e| panic!("{e}"));
        let encrypter = josekit::jwe::ECDH_ES_A256KW
            .encrypter_from_jwk(&jwk)
            .unwrap_or_else(|e| panic!("{e}"));
        let mut h = josekit::jwe::JweHeader::new();
        h.set_content_encryption("A256GCM");
        h.set_content_type("JWT");
        if let Some(k) = kid {
            h.set_key_id(k);
        }
        josekit::jwe::serialize_compact(plain.as_bytes(), &h, &encrypter)
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let (verifier2, challenge2) = pkce();
    let sealed_object = signed(&key, object(json!({"code_challenge": challenge2, "state": "sealed-state"})));
    let sealed = encrypt_to(&enc_key, &sealed_object, enc_key["kid"].as_str());
    assert_eq!(sealed.split('.').count(), 5);
    let loc = authorize_and_allow(&srv, &client, &[("request", sealed.as_str())], "alice", PW).await;
    let back = query(&loc);
    assert_eq!(back.get("state").map(String::as_str), Some("sealed-state"), "{loc}");
    let code = back.get("code").cloned().unwrap_or_else(|| panic!("no code in {loc}"));
    let (s, t) = redeem_code(&srv, &client, &code, "https://client.example/cb", &verifier2, &[]).await;
    assert_eq!(s, 200, "{t}");
    let stranger_enc = josekit::jwe::ECDH_ES
        .generate_ec_key_pair(josekit::jwk::alg::ec::EcCurve::P256)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut stranger_enc = josekit::jwk::KeyPair::to_jwk_public_key(&stranger_enc).as_ref().clone();
    stranger_enc.remove("alg");
    let stranger_enc = Value::Object(stranger_enc);
    let to_stranger = encrypt_to(&stranger_enc, &sealed_object, None);
    let to_stranger_kid = encrypt_to(&stranger_enc, &sealed_object, Some("someone-elses"));
    let sealed_unsigned = encrypt_to(&enc_key, &unsigned, enc_key["kid"].as_str());
    let sealed_forged = encrypt_to(&enc_key, &forged, enc_key["kid"].as_str());
    let sealed_text = encrypt_to(&enc_key, "not a JWT", enc_key["kid"].as_str());
    // The other algorithms: ECDH-ES (direct key agreement) and ECDH-ES+A128KW, with A128GCM.
    let mut enc_jwk = enc_key.clone();
    if let Some(o) = enc_jwk.as_object_mut() {
        o.remove("alg");
    }
    let jwk = josekit::jwk::Jwk::from_map(enc_jwk.as_object().cloned().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}"));
    let seal_with = |alg: &str, enc: &str, zip: bool| {
        let mut h = josekit::jwe::JweHeader::new();
        h.set_content_encryption(enc);
        if zip {
            h.set_compression("DEF");
        }
        let encrypter: Box<dyn josekit::jwe::JweEncrypter> = match alg {
            "ECDH-ES" => Box::new(josekit::jwe::ECDH_ES.encrypter_from_jwk(&jwk).unwrap_or_else(|e| panic!("{e}"))),
            _ => Box::new(josekit::jwe::ECDH_ES_A128KW.encrypter_from_jwk(&jwk).unwrap_or_else(|e| panic!("{e}"))),
        };
        // A fresh PKCE challenge each time: the one above already has a code (BCP-09).
        let fresh = signed(&key, object(json!({"code_challenge": pkce().1, "state": "sealed-state"})));
        josekit::jwe::serialize_compact(fresh.as_bytes(), &h, &*encrypter)
            .unwrap_or_else(|e| panic!("{e}"))
    };
    for alg in ["ECDH-ES", "ECDH-ES+A128KW"] {
        let sealed = seal_with(alg, "A128GCM", false);
        let (s, body) = authorize_page(&srv, &client, &[("request", sealed.as_str())]).await;
        assert!(!body.contains("invalid_request_object"), "{alg}: {s} {body}");
        assert!(body.contains("name=\"password\""), "{alg}: the login page: {body}");
    }
    let zipped = seal_with("ECDH-ES+A128KW", "A128GCM", true);
    let odd_enc = seal_with("ECDH-ES+A128KW", "A192GCM", false);
    let rsa = josekit::jwe::RSA_OAEP.generate_key_pair(2048).unwrap_or_else(|e| panic!("{e}"));
    let to_rsa = {
        let mut h = josekit::jwe::JweHeader::new();
        h.set_content_encryption("A128GCM");
        let e = josekit::jwe::RSA_OAEP
            .encrypter_from_jwk(&josekit::jwk::KeyPair::to_jwk_public_key(&rsa))
            .unwrap_or_else(|e| panic!("{e}"));
        josekit::jwe::serialize_compact(sealed_object.as_bytes(), &h, &e).unwrap_or_else(|e| panic!("{e}"))
    };
    for (request, wanted) in [
        (to_stranger.as_str(), "cannot be decrypted"),
        (to_stranger_kid.as_str(), "a key this server does not have"),
        (sealed_unsigned.as_str(), "must be signed with one of"),
        (sealed_forged.as_str(), "does not verify"),
        (sealed_text.as_str(), "must hold a signed request object"),
        (zipped.as_str(), "compressed (`zip`) request objects are not accepted"),
        (odd_enc.as_str(), "content encryption must be one of"),
        (to_rsa.as_str(), "must be encrypted with one of"),
    ] {
        let (s, body) = authorize_page(&srv, &client, &[("request", request)]).await;
        assert_eq!(s, 400, "{wanted}: {body}");
        assert!(body.contains(wanted), "{wanted}: {body}");
        assert!(body.contains("invalid_request_object"), "{wanted}: {body}");
    }

    let (s, body) = authorize_page(&srv, &client, &[("request_uri", "https://client.example/ro.jwt")]).await;
    assert_eq!(s, 400);
    assert!(body.contains("`request_uri` is not supported"), "{body}");
    assert!(body.contains("request_uri_not_supported"), "{body}");
    let public = TestClient::from_json(
        &srv.add_client(json!({
            "client_name": "Public app",
            "application_type": "native",
            "redirect_uris": ["https://client.example/cb"],
            "token_endpoint_auth_method": "none",
            "scope": "openid",
        }))
        .await,
    );
    let (s, body) = authorize_page(&srv, &public, &[("request", good.as_str())]).await;
    assert_eq!(s, 400);
    assert!(body.contains("no registered keys"), "{body}");
});

// HEART-OAUTH-46, IGOV-OAUTH-43: an authorization request without `scope` gets the client's
// registered scopes (the documented default, listed on the consent page); a scope the client did
// not register → `invalid_scope`.
both!(default_scopes, [
    "CUSTODIA_PROFILE" => "heart",
], |srv| {
    srv.add_user("alice", PW).await;
    let client = srv
        .add_key_client(json!({
            "client_name": "Defaults",
            "redirect_uris": ["https://client.example/cb"],
            "grant_types": ["authorization_code"],
            "scope": "openid profile",
        }))
        .await;
    let (verifier, challenge) = pkce();
    let loc = authorize_and_allow(
        &srv,
        &client,
        &[
            ("scope", ""),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ],
        "alice",
        PW,
    )
    .await;
    let code = query(&loc).remove("code").unwrap_or_else(|| panic!("no code in {loc}"));
    let (s, t) = redeem_code(&srv, &client, &code, "https://client.example/cb", &verifier, &[])
    .await;
    assert_eq!((s, &t["scope"]), (200, &json!("openid profile")), "{t}");
    let (s, body) = authorize_page(&srv, &client, &[("scope", "openid email")]).await;
    assert_eq!(s, 400);
    assert!(body.contains("scope `email` is not registered"), "{body}");
});

// IGOV-OIDC-17 (OpenID Connect Core §5.5): the `claims` parameter for data minimisation — scope
// `openid` plus `{"userinfo": {"email": null, "given_name": null}}` releases `sub` and `email`
// only (Custodia holds no given name), the consent page names the email address, and a refreshed
// token keeps the request; a `claims` value that is not a JSON object → 400 page.
both!(claims_request_parameter, |srv| {
    srv.add_user("alice", PW).await;
    let d = get_json(&srv.url("/.well-known/openid-configuration")).await;
    assert_eq!(d["claims_parameter_supported"], json!(true));
    let client = TestClient::from_json(
        &srv.add_client(json!({
            "client_name": "Minimal",
            "redirect_uris": ["https://client.example/cb"],
            "grant_types": ["authorization_code", "refresh_token"],
            "scope": "openid profile email",
        }))
        .await,
    );
    let asked = json!({"userinfo": {"email": null, "given_name": null}, "id_token": {"acr": {"essential": true}}}).to_string();
    let (verifier, challenge) = pkce();
    let q = [
        ("scope", "openid"),
        ("claims", asked.as_str()),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let b = browser();
    let login = open(&b, &authorize_url(&srv, &client, &q)).await;
    let (_, page) = login.page();
    let consent = match submit_login(&b, &srv, page, "alice", PW).await {
        Landing::Page(_, consent) => consent,
        other => panic!("no consent page: {:?}", other.redirect()),
    };
    assert!(consent.contains("see your email address"), "{consent}");
    assert!(!consent.contains("see your name"), "{consent}");
    let loc = submit_consent(&b, &srv, &consent, "allow")
        .await
        .redirect()
        .to_string();
    let code = query(&loc)
        .remove("code")
        .unwrap_or_else(|| panic!("no code in {loc}"));
    let (s, t) = redeem_code(
        &srv,
        &client,
        &code,
        "https://client.example/cb",
        &verifier,
        &[],
    )
    .await;
    assert_eq!(s, 200, "{t}");
    let keys_of = |body: &str| {
        let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        let mut k: Vec<String> = v
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        k.sort();
        k
    };
    let (s, _, body) = userinfo(&srv, t["access_token"].as_str().unwrap_or_default(), None).await;
    assert_eq!(s, 200);
    assert_eq!(keys_of(&body), vec!["email", "sub"], "{body}");
    let (s, t2) = token_request(
        &srv,
        &client,
        &[
            ("grant_type", "refresh_token"),
            (
                "refresh_token",
                t["refresh_token"].as_str().unwrap_or_default(),
            ),
        ],
    )
    .await;
    assert_eq!(s, 200, "{t2}");
    let (_, _, body) = userinfo(&srv, t2["access_token"].as_str().unwrap_or_default(), None).await;
    assert_eq!(
        keys_of(&body),
        vec!["email", "sub"],
        "after a refresh: {body}"
    );

    let (s, body) =
        authorize_page(&srv, &client, &[("scope", "openid"), ("claims", "[1, 2]")]).await;
    assert_eq!(s, 400);
    assert!(
        body.contains("`claims` parameter is not a JSON object"),
        "{body}"
    );
});

//! DPoP (RFC 9449) over HTTP: proofs made here with josekit (a real JOSE library, ES256 keys),
//! tokens bound to them at the token endpoint (client credentials, the code flow with a public
//! client and its refresh tokens, the UMA grant), and bound tokens presented to Custodia's own
//! protected endpoints. Rules: DPOP-01..07, -10, -13 of `../shared/specs/oauth-security.md`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use custodia_tests::reqwest::Method;
use custodia_tests::*;
use josekit::jwk::Jwk;
use josekit::jws::{self, JwsHeader};
use josekit::jwt::JwtPayload;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const PW: &str = "correct horse battery";

/// A client's DPoP key pair.
pub(crate) struct Key {
    private: Jwk,
    public: Jwk,
}

pub(crate) fn key() -> Key {
    let pair = jws::ES256
        .generate_key_pair()
        .unwrap_or_else(|e| panic!("{e}"));
    Key {
        private: pair.to_jwk_private_key(),
        public: pair.to_jwk_public_key(),
    }
}

/// The RFC 7638 thumbprint of an EC key, computed here from the RFC's rules (not the server's).
pub(crate) fn jkt(k: &Key) -> String {
    let p = |n: &str| {
        k.public
            .parameter(n)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let canonical = format!(
        r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
        p("crv"),
        p("x"),
        p("y")
    );
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// A proof for `htm` `htu` at `iat`, bound to `access_token` when given.
pub(crate) fn proof_at(
    k: &Key,
    htm: &str,
    htu: &str,
    access_token: Option<&str>,
    iat: i64,
) -> String {
    let mut h = JwsHeader::new();
    h.set_token_type("dpop+jwt");
    h.set_jwk(k.public.clone());
    let mut p = JwtPayload::new();
    let _ = p.set_claim("jti", Some(json!(uuid::Uuid::new_v4().to_string())));
    let _ = p.set_claim("htm", Some(json!(htm)));
    let _ = p.set_claim("htu", Some(json!(htu)));
    let _ = p.set_claim("iat", Some(json!(iat)));
    if let Some(t) = access_token {
        let ath = URL_SAFE_NO_PAD.encode(Sha256::digest(t.as_bytes()));
        let _ = p.set_claim("ath", Some(json!(ath)));
    }
    let signer = jws::ES256
        .signer_from_jwk(&k.private)
        .unwrap_or_else(|e| panic!("{e}"));
    josekit::jwt::encode_with_signer(&p, &h, &signer).unwrap_or_else(|e| panic!("{e}"))
}

/// A token-endpoint proof carrying `nonce`.
fn proof_with_nonce(srv: &TestServer, k: &Key, nonce: &str) -> String {
    let mut h = JwsHeader::new();
    h.set_token_type("dpop+jwt");
    h.set_jwk(k.public.clone());
    let mut p = JwtPayload::new();
    for (c, v) in [
        ("jti", json!(uuid::Uuid::new_v4().to_string())),
        ("htm", json!("POST")),
        ("htu", json!(srv.url("/token"))),
        ("iat", json!(srv.core.now())),
        ("nonce", json!(nonce)),
    ] {
        let _ = p.set_claim(c, Some(v));
    }
    let signer = jws::ES256
        .signer_from_jwk(&k.private)
        .unwrap_or_else(|e| panic!("{e}"));
    josekit::jwt::encode_with_signer(&p, &h, &signer).unwrap_or_else(|e| panic!("{e}"))
}

fn proof(srv: &TestServer, k: &Key, htm: &str, path: &str, access_token: Option<&str>) -> String {
    proof_at(k, htm, &srv.url(path), access_token, srv.core.now())
}

/// A token request with HTTP Basic authentication (when the client has a secret) and these
/// `DPoP` headers.
async fn token_with(
    srv: &TestServer,
    client: &TestClient,
    form: &[(&str, &str)],
    proofs: &[&str],
) -> (u16, Value) {
    let mut req = http().post(srv.url("/token")).form(form);
    if let Some(s) = &client.secret {
        req = req.basic_auth(&client.id, Some(s));
    }
    for p in proofs {
        req = req.header("DPoP", *p);
    }
    let resp = req.send().await.unwrap_or_else(|e| panic!("{e}"));
    let s = resp.status().as_u16();
    (s, resp.json().await.unwrap_or(Value::Null))
}

/// The unverified claims of a JWT.
pub(crate) fn claims_of(jwt: &str) -> Value {
    let part = jwt.split('.').nth(1).unwrap_or_default();
    URL_SAFE_NO_PAD
        .decode(part)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null)
}

/// A call to a protected endpoint with this `Authorization` and `DPoP` header.
pub(crate) async fn call(
    method: Method,
    url: &str,
    authorization: &str,
    proof: Option<&str>,
) -> (u16, String, Value) {
    let mut req = http()
        .request(method, url)
        .header("Authorization", authorization);
    if let Some(p) = proof {
        req = req.header("DPoP", p);
    }
    let resp = req.send().await.unwrap_or_else(|e| panic!("{e}"));
    let s = resp.status().as_u16();
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (s, challenge, resp.json().await.unwrap_or(Value::Null))
}

fn err(v: &Value) -> &str {
    v["error"].as_str().unwrap_or_default()
}

// BCP-12 (sender-constrained access tokens), DPOP-01, -02, -03, -05, -07, -10: a proof at the
// token endpoint binds the access token
// (`token_type: DPoP`, `cnf.jkt` = the key's thumbprint, in the JWT and in introspection); every
// defective proof is `invalid_dpop_proof`, a replayed one too.
both!(token_endpoint_binds_to_the_proof_key, |srv| {
    let d: Value = http()
        .get(srv.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or(Value::Null);
    assert_eq!(
        d["dpop_signing_alg_values_supported"],
        json!(["ES256", "RS256", "PS256"])
    );

    let client = srv.service_client().await;
    let k = key();
    let form = [("grant_type", "client_credentials")];
    let p = proof(&srv, &k, "POST", "/token", None);
    let (s, v) = token_with(&srv, &client, &form, &[&p]).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["token_type"], json!("DPoP"));
    let at = v["access_token"].as_str().unwrap_or_default().to_string();
    assert_eq!(claims_of(&at)["cnf"], json!({"jkt": jkt(&k)}));
    let seen = introspect(&srv, &client, &at).await;
    assert_eq!(
        (&seen["cnf"], &seen["token_type"]),
        (&json!({"jkt": jkt(&k)}), &json!("DPoP")),
        "{seen}"
    );

    // The same proof again: a replay.
    let (s, v) = token_with(&srv, &client, &form, &[&p]).await;
    assert_eq!((s, err(&v)), (400, "invalid_dpop_proof"), "{v}");
    assert!(
        v["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("used before")),
        "{v}"
    );

    // Without a proof: an unbound Bearer token.
    let (s, v) = token_with(&srv, &client, &form, &[]).await;
    assert_eq!((s, &v["token_type"]), (200, &json!("Bearer")), "{v}");
    assert!(
        claims_of(v["access_token"].as_str().unwrap_or_default())
            .get("cnf")
            .is_none()
    );

    let now = srv.core.now();
    let token_url = srv.url("/token");
    let other = key();
    let mut forged = proof(&srv, &k, "POST", "/token", None);
    forged.truncate(forged.len() - 4);
    forged.push_str("AAAA");
    let cases: Vec<(&str, Vec<String>, &str)> = vec![
        (
            "wrong method",
            vec![proof(&srv, &k, "GET", "/token", None)],
            "htm",
        ),
        (
            "wrong URL",
            vec![proof(&srv, &k, "POST", "/introspect", None)],
            "htu",
        ),
        (
            "stale",
            vec![proof_at(&k, "POST", &token_url, None, now - 301)],
            "older",
        ),
        (
            "from the future",
            vec![proof_at(&k, "POST", &token_url, None, now + 120)],
            "future",
        ),
        ("bad signature", vec![forged], "signature"),
        (
            "two proofs",
            vec![
                proof(&srv, &k, "POST", "/token", None),
                proof(&srv, &other, "POST", "/token", None),
            ],
            "exactly one",
        ),
        ("not a JWT", vec!["nonsense".into()], "compact"),
    ];
    for (label, proofs, why) in cases {
        let p: Vec<&str> = proofs.iter().map(String::as_str).collect();
        let (s, v) = token_with(&srv, &client, &form, &p).await;
        assert_eq!((s, err(&v)), (400, "invalid_dpop_proof"), "{label}: {v}");
        assert!(
            v["error_description"]
                .as_str()
                .is_some_and(|d| d.contains(why)),
            "{label}: {v}"
        );
    }

    // DPOP-06: a client registered with `dpop_bound_access_tokens` must send a proof.
    let always = TestClient::from_json(
        &srv.add_client(json!({
            "client_name": "Always DPoP",
            "grant_types": ["client_credentials"],
            "scope": "api:read",
            "dpop_bound_access_tokens": true,
        }))
        .await,
    );
    let (s, v) = token_with(&srv, &always, &form, &[]).await;
    assert_eq!((s, err(&v)), (400, "invalid_dpop_proof"), "{v}");
    let (s, v) = token_with(
        &srv,
        &always,
        &form,
        &[&proof(&srv, &k, "POST", "/token", None)],
    )
    .await;
    assert_eq!((s, &v["token_type"]), (200, &json!("DPoP")), "{v}");
});

// DPOP-04: a public client's refresh token is bound to its DPoP key: refreshing needs a proof
// with that key. DPOP-13 and the resource side at Custodia's own userinfo endpoint: a bound
// token only as `Authorization: DPoP` with a proof for this request, this token and this key.
both!(public_client_refresh_and_protected_endpoints, |srv| {
    srv.add_user("alice", PW).await;
    let public = TestClient::from_json(
        &srv.add_client(json!({
            "client_name": "Browser app",
            "token_endpoint_auth_method": "none",
            "redirect_uris": ["https://client.example/cb"],
            "grant_types": ["authorization_code", "refresh_token"],
            "scope": "openid profile email offline_access",
        }))
        .await,
    );
    let k = key();
    let (verifier, challenge) = pkce();
    let loc = authorize_and_allow(
        &srv,
        &public,
        &[
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("scope", "openid offline_access"),
        ],
        "alice",
        PW,
    )
    .await;
    let code = query(&loc).remove("code").unwrap_or_default();
    let (s, t) = token_with(
        &srv,
        &public,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "https://client.example/cb"),
            ("code_verifier", &verifier),
            ("client_id", &public.id),
        ],
        &[&proof(&srv, &k, "POST", "/token", None)],
    )
    .await;
    assert_eq!((s, &t["token_type"]), (200, &json!("DPoP")), "{t}");
    let at = t["access_token"].as_str().unwrap_or_default().to_string();
    let rt = t["refresh_token"].as_str().unwrap_or_default().to_string();
    let refresh = [
        ("grant_type", "refresh_token"),
        ("refresh_token", rt.as_str()),
        ("client_id", public.id.as_str()),
    ];
    let (s, v) = token_with(&srv, &public, &refresh, &[]).await;
    assert_eq!((s, err(&v)), (400, "invalid_dpop_proof"), "no proof: {v}");
    let other = key();
    let (s, v) = token_with(
        &srv,
        &public,
        &refresh,
        &[&proof(&srv, &other, "POST", "/token", None)],
    )
    .await;
    assert_eq!((s, err(&v)), (400, "invalid_grant"), "another key: {v}");
    // The refusals did not spend it: the same key refreshes, and the new tokens stay bound.
    let (s, v) = token_with(
        &srv,
        &public,
        &refresh,
        &[&proof(&srv, &k, "POST", "/token", None)],
    )
    .await;
    assert_eq!((s, &v["token_type"]), (200, &json!("DPoP")), "{v}");
    assert_eq!(
        claims_of(v["access_token"].as_str().unwrap_or_default())["cnf"]["jkt"],
        json!(jkt(&k))
    );
    let rt2 = v["refresh_token"].as_str().unwrap_or_default().to_string();
    let (s, v) = token_with(
        &srv,
        &public,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt2),
            ("client_id", &public.id),
        ],
        &[&proof(&srv, &other, "POST", "/token", None)],
    )
    .await;
    assert_eq!(
        (s, err(&v)),
        (400, "invalid_grant"),
        "the rotated token keeps the binding: {v}"
    );

    // The bound access token at userinfo.
    let url = srv.url("/userinfo");
    let dpop_auth = format!("DPoP {at}");
    let (s, ch, v) = call(Method::GET, &url, &format!("Bearer {at}"), None).await;
    assert_eq!((s, err(&v)), (401, "invalid_token"), "as Bearer: {v}");
    // RFC 9449 §7.1: the challenge for a bound token is DPoP's.
    assert!(
        ch.starts_with("DPoP") && ch.contains("invalid_token"),
        "{ch}"
    );
    for (label, p, code) in [
        ("no proof", None, "invalid_dpop_proof"),
        (
            "no ath",
            Some(proof(&srv, &k, "GET", "/userinfo", None)),
            "invalid_dpop_proof",
        ),
        (
            "another token's ath",
            Some(proof(&srv, &k, "GET", "/userinfo", Some("other"))),
            "invalid_dpop_proof",
        ),
        (
            "wrong method",
            Some(proof(&srv, &k, "POST", "/userinfo", Some(&at))),
            "invalid_dpop_proof",
        ),
        (
            "another key",
            Some(proof(&srv, &other, "GET", "/userinfo", Some(&at))),
            "invalid_token",
        ),
    ] {
        let (s, ch, v) = call(Method::GET, &url, &dpop_auth, p.as_deref()).await;
        assert_eq!((s, err(&v)), (401, code), "{label}: {v}");
        assert!(ch.starts_with("DPoP") && ch.contains(code), "{label}: {ch}");
    }
    let good = proof(&srv, &k, "GET", "/userinfo", Some(&at));
    let (s, _, v) = call(Method::GET, &url, &dpop_auth, Some(&good)).await;
    assert_eq!(s, 200, "{v}");
    assert!(v["sub"].is_string(), "{v}");
    // DPOP-10 at a protected endpoint: the same proof twice.
    let (s, _, v) = call(Method::GET, &url, &dpop_auth, Some(&good)).await;
    assert_eq!((s, err(&v)), (401, "invalid_dpop_proof"), "{v}");

    // An unbound token presented with the DPoP scheme is refused too.
    let web = srv.web_client().await;
    let plain = code_flow_tokens(&srv, &web, "alice", PW, "openid").await;
    let plain_at = plain["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (s, _, v) = call(
        Method::GET,
        &url,
        &format!("DPoP {plain_at}"),
        Some(&proof(&srv, &k, "GET", "/userinfo", Some(&plain_at))),
    )
    .await;
    assert_eq!((s, err(&v)), (401, "invalid_token"), "{v}");
});

// The UMA grant with a DPoP proof: a bound RPT (`token_type: DPoP`, `cnf.jkt`). The example FHIR
// server (the SDK's guard) then takes it only as `Authorization: DPoP` with a fresh proof from
// that key for this request and this RPT (DPOP-11, -12, -13; DPOP-10 on the resource server).
both!(bound_rpts_at_the_resource_server, [
    "CUSTODIA_INSECURE_LOOPBACK_HTTP_REDIRECTS" => "true",
], |srv| {
    use crate::grant::{ID_TOKEN_FORMAT, UMA_GRANT, app_client, fhir_connected, owner_call, owner_session, resource_id, share, ticket_for};
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
    let url = format!("{fhir}/fhir/Patient/{alice}");
    let k = key();
    let t = ticket_for(&url).await;
    let (s, v) = token_with(
        &srv,
        &app,
        &[
            ("grant_type", UMA_GRANT),
            ("ticket", &t),
            ("claim_token", &id_token),
            ("claim_token_format", ID_TOKEN_FORMAT),
        ],
        &[&proof(&srv, &k, "POST", "/token", None)],
    )
    .await;
    assert_eq!((s, &v["token_type"]), (200, &json!("DPoP")), "{v}");
    let rpt = v["access_token"].as_str().unwrap_or_default().to_string();
    assert_eq!(claims_of(&rpt)["cnf"], json!({"jkt": jkt(&k)}));

    let now = srv.core.now();
    let other = key();
    let dpop_auth = format!("DPoP {rpt}");
    for (label, auth, p, code) in [
        ("as Bearer", format!("Bearer {rpt}"), None, "invalid_token"),
        ("no proof", dpop_auth.clone(), None, "invalid_dpop_proof"),
        ("wrong method", dpop_auth.clone(), Some(proof_at(&k, "POST", &url, Some(&rpt), now)), "invalid_dpop_proof"),
        ("no ath", dpop_auth.clone(), Some(proof_at(&k, "GET", &url, None, now)), "invalid_dpop_proof"),
        ("stale", dpop_auth.clone(), Some(proof_at(&k, "GET", &url, Some(&rpt), now - 600)), "invalid_dpop_proof"),
        ("another key", dpop_auth.clone(), Some(proof_at(&other, "GET", &url, Some(&rpt), now)), "invalid_token"),
    ] {
        let (s, ch, v) = call(Method::GET, &url, &auth, p.as_deref()).await;
        assert_eq!((s, err(&v)), (401, code), "{label}: {v}");
        assert!(ch.starts_with("DPoP") && ch.contains(code), "{label}: {ch}");
    }
    let good = proof_at(&k, "GET", &url, Some(&rpt), now);
    let (s, _, body) = call(Method::GET, &url, &dpop_auth, Some(&good)).await;
    assert_eq!((s, &body["id"]), (200, &json!(alice)), "{body}");
    let (s, _, v) = call(Method::GET, &url, &dpop_auth, Some(&good)).await;
    assert_eq!((s, err(&v)), (401, "invalid_dpop_proof"), "a replay: {v}");

    // A bound RPT is upgraded only with a proof from its key (no proof, another key → refused,
    // the ticket unspent); with it, the upgrade.
    let t = ticket_for(&url).await;
    let form = [
        ("grant_type", UMA_GRANT),
        ("ticket", t.as_str()),
        ("claim_token", id_token.as_str()),
        ("claim_token_format", ID_TOKEN_FORMAT),
        ("rpt", rpt.as_str()),
    ];
    let (s, v) = token_with(&srv, &app, &form, &[]).await;
    assert_eq!((s, err(&v)), (400, "invalid_grant"), "no proof: {v}");
    let (s, v) = token_with(&srv, &app, &form, &[&proof(&srv, &other, "POST", "/token", None)]).await;
    assert_eq!((s, err(&v)), (400, "invalid_grant"), "another key: {v}");
    let (s, v) = token_with(&srv, &app, &form, &[&proof(&srv, &k, "POST", "/token", None)]).await;
    assert_eq!((s, &v["upgraded"]), (200, &json!(true)), "{v}");
});

// DPOP-13 at introspection: a resource server's DPoP-bound PAT authenticates only as
// `Authorization: DPoP` with a proof for `/introspect`.
both!(bound_pat_at_introspection, |srv| {
    srv.add_user("alice", PW).await;
    let rs = srv.rs_client("Photos").await;
    let k = key();
    let (verifier, challenge) = pkce();
    let loc = authorize_and_allow(
        &srv,
        &rs,
        &[
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("scope", "uma_protection"),
        ],
        "alice",
        PW,
    )
    .await;
    let code = query(&loc).remove("code").unwrap_or_default();
    let (s, t) = token_with(
        &srv,
        &rs,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "https://client.example/cb"),
            ("code_verifier", &verifier),
        ],
        &[&proof(&srv, &k, "POST", "/token", None)],
    )
    .await;
    assert_eq!((s, &t["token_type"]), (200, &json!("DPoP")), "{t}");
    let pat = t["access_token"].as_str().unwrap_or_default().to_string();
    let introspect_with = |auth: String, p: Option<String>| {
        let url = srv.url("/introspect");
        let pat = pat.clone();
        async move {
            let mut req = http()
                .post(url)
                .header("Authorization", auth)
                .form(&[("token", pat.as_str())]);
            if let Some(p) = p {
                req = req.header("DPoP", p);
            }
            let resp = req.send().await.unwrap_or_else(|e| panic!("{e}"));
            let s = resp.status().as_u16();
            (s, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (s, v) = introspect_with(format!("Bearer {pat}"), None).await;
    assert_eq!((s, err(&v)), (401, "invalid_token"), "as Bearer: {v}");
    let p = proof(&srv, &k, "POST", "/introspect", Some(&pat));
    let (s, v) = introspect_with(format!("DPoP {pat}"), Some(p)).await;
    assert_eq!((s, &v["active"]), (200, &json!(true)), "{v}");
});

// DPOP-09: an authorization request with `dpop_jkt` binds its code to that key: redeemed with a
// proof from another key (or none) → `invalid_dpop_proof`; a malformed `dpop_jkt` is refused.
both!(dpop_jkt_binds_the_code, |srv| {
    srv.add_user("alice", PW).await;
    let web = srv.web_client().await;
    let k = key();
    let other = key();
    let thumb = jkt(&k);
    for (label, redeem_with) in [
        ("no proof", None),
        ("another key", Some(&other)),
        ("its key", Some(&k)),
    ] {
        let (verifier, challenge) = pkce();
        let loc = authorize_and_allow(
            &srv,
            &web,
            &[
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
                ("scope", "openid"),
                ("dpop_jkt", &thumb),
            ],
            "alice",
            PW,
        )
        .await;
        let code = query(&loc).remove("code").unwrap_or_default();
        let proofs: Vec<String> = redeem_with
            .map(|key| proof(&srv, key, "POST", "/token", None))
            .into_iter()
            .collect();
        let p: Vec<&str> = proofs.iter().map(String::as_str).collect();
        let (s, v) = token_with(
            &srv,
            &web,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", "https://client.example/cb"),
                ("code_verifier", &verifier),
            ],
            &p,
        )
        .await;
        if label == "its key" {
            assert_eq!((s, &v["token_type"]), (200, &json!("DPoP")), "{label}: {v}");
        } else {
            assert_eq!((s, err(&v)), (400, "invalid_dpop_proof"), "{label}: {v}");
        }
    }
    let resp = browser()
        .get(authorize_url(&srv, &web, &[("dpop_jkt", "short")]))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status().as_u16(), 400);
});

/// A `client_credentials` request with one `DPoP` header: status, the `DPoP-Nonce` header, body.
async fn token_nonce(
    srv: &TestServer,
    client: &TestClient,
    proof: &str,
) -> (u16, Option<String>, Value) {
    let resp = http()
        .post(srv.url("/token"))
        .basic_auth(&client.id, client.secret.as_deref())
        .header("DPoP", proof)
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let s = resp.status().as_u16();
    let n = resp
        .headers()
        .get("dpop-nonce")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (s, n, resp.json().await.unwrap_or(Value::Null))
}

// DPOP-08 (RFC 9449 §8): with `CUSTODIA_DPOP_NONCE` on, a proof without a nonce, with a made-up
// one or with one from two windows ago is refused with `use_dpop_nonce` and a fresh `DPoP-Nonce`;
// a proof with the nonce given is accepted (and the answer carries the next nonce). Off, no nonce
// is asked for or sent.
both!(server_nonces, [
    "CUSTODIA_DPOP_NONCE" => "true",
], |srv| {
    let client = srv.service_client().await;
    let k = key();
    let (s, nonce, v) = token_nonce(&srv, &client, &proof(&srv, &k, "POST", "/token", None)).await;
    assert_eq!((s, err(&v)), (400, "use_dpop_nonce"), "{v}");
    let nonce = nonce.unwrap_or_else(|| panic!("no DPoP-Nonce with {v}"));
    let (s, again, v) = token_nonce(&srv, &client, &proof_with_nonce(&srv, &k, "made-up")).await;
    assert_eq!((s, err(&v)), (400, "use_dpop_nonce"), "{v}");
    assert!(again.is_some());
    let (s, next, v) = token_nonce(&srv, &client, &proof_with_nonce(&srv, &k, &nonce)).await;
    assert_eq!((s, &v["token_type"]), (200, &json!("DPoP")), "{v}");
    assert!(next.is_some());
    // Ten minutes on, that nonce is stale; the one just sent works.
    srv.core.clock.advance(660);
    let (s, fresh, v) = token_nonce(&srv, &client, &proof_with_nonce(&srv, &k, &nonce)).await;
    assert_eq!((s, err(&v)), (400, "use_dpop_nonce"), "{v}");
    let fresh = fresh.unwrap_or_default();
    let (s, _, v) = token_nonce(&srv, &client, &proof_with_nonce(&srv, &k, &fresh)).await;
    assert_eq!(s, 200, "{v}");
});

// DPOP-08 with `private_key_jwt`: the nonce challenge comes before client authentication, so the
// client retries the very same request body (its assertion unspent) with a new proof.
both!(nonce_retry_keeps_the_assertion, [
    "CUSTODIA_DPOP_NONCE" => "true",
], |srv| {
    let client = srv
        .add_key_client(json!({"client_name": "Keyed", "grant_types": ["client_credentials"], "scope": "api:read"}))
        .await;
    let k = key();
    let mut form = vec![("grant_type", "client_credentials".to_string())];
    form.extend(client.auth_fields(&srv.url("/token")));
    let send = |proof: String| {
        let form = form.clone();
        let srv = &srv;
        async move {
            let resp = http()
                .post(srv.url("/token"))
                .header("DPoP", proof)
                .form(&form)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let s = resp.status().as_u16();
            let n = resp.headers().get("dpop-nonce").and_then(|v| v.to_str().ok()).map(str::to_string);
            (s, n, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (s, nonce, v) = send(proof(&srv, &k, "POST", "/token", None)).await;
    assert_eq!((s, err(&v)), (400, "use_dpop_nonce"), "{v}");
    let (s, _, v) = send(proof_with_nonce(&srv, &k, &nonce.unwrap_or_default())).await;
    assert_eq!((s, &v["token_type"]), (200, &json!("DPoP")), "{v}");
});

both!(no_nonces_by_default, |srv| {
    let client = srv.service_client().await;
    let (s, nonce, v) =
        token_nonce(&srv, &client, &proof(&srv, &key(), "POST", "/token", None)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(nonce, None);
});

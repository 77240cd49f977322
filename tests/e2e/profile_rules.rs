//! HEART and iGov rules (`../shared/specs/heart-igov.md`) that `profiles.rs` does not cover, each
//! with a request the profile must refuse and one it must accept: client assertion algorithms per
//! profile at the token endpoint, UserInfo claims per scope, the claims of an RPT, and HSTS when
//! the issuer is https. The status of each rule is in `docs/conformance-profiles.md`.

use custodia_tests::reqwest::Method;
use custodia_tests::*;
use josekit::jwk::alg::rsa::RsaKeyPair;
use serde_json::{Map, Value, json};

use super::grant::PW;

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A `client_credentials` client (scope `api:read`) added by an administrator, authenticating with
/// `private_key_jwt` and a fresh 2048-bit RSA key whose public half is registered as `jwks` with
/// `kid` `rk1` and no `alg`: the same key can sign RS256 and PS256 assertions, so only the
/// profile's algorithm list tells them apart. `dpop_bound`: it registers
/// `dpop_bound_access_tokens` (as `igov` requires). Returns the client id and the key pair.
async fn rsa_client(srv: &TestServer, dpop_bound: bool) -> (String, RsaKeyPair) {
    let kp = josekit::jws::RS256
        .generate_key_pair(2048)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut public = kp.to_jwk_public_key();
    public.set_key_id("rk1");
    let mut jwk: Map<String, Value> = public.into();
    jwk.remove("alg");
    let v = srv
        .add_client(json!({
            "client_name": "Service",
            "grant_types": ["client_credentials"],
            "scope": "api:read",
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": {"keys": [Value::Object(jwk)]},
            "dpop_bound_access_tokens": dpop_bound,
        }))
        .await;
    let id = v["client_id"].as_str().unwrap_or_default().to_string();
    assert!(!id.is_empty(), "{v}");
    (id, kp)
}

/// An RFC 7523 client assertion of `client_id` for the token endpoint (fresh `jti`, 60 s), with
/// header `kid` `rk1`, signed by `signer` (which sets `alg`).
fn assertion(srv: &TestServer, client_id: &str, signer: &dyn josekit::jws::JwsSigner) -> String {
    let now = srv.core.now();
    let claims = json!({
        "iss": client_id, "sub": client_id, "aud": srv.url("/token"),
        "iat": now, "exp": now + 60, "jti": uuid::Uuid::new_v4().to_string(),
    });
    let payload =
        josekit::jwt::JwtPayload::from_map(claims.as_object().cloned().unwrap_or_default())
            .unwrap_or_else(|e| panic!("{e}"));
    let mut header = josekit::jws::JwsHeader::new();
    header.set_key_id("rk1");
    josekit::jwt::encode_with_signer(&payload, &header, signer).unwrap_or_else(|e| panic!("{e}"))
}

/// The form fields of `private_key_jwt` client authentication with `assertion`.
fn assertion_fields(assertion: &str) -> Vec<(&'static str, String)> {
    vec![
        ("client_assertion_type", JWT_BEARER.to_string()),
        ("client_assertion", assertion.to_string()),
    ]
}

/// `client_credentials` for scope `api:read`, the client authenticated by the form fields `auth`
/// (no HTTP Basic), with a `DPoP` proof header when given.
async fn client_credentials(
    srv: &TestServer,
    auth: &[(&'static str, String)],
    dpop: Option<&str>,
) -> (u16, Value) {
    let mut form: Vec<(&str, String)> = vec![
        ("grant_type", "client_credentials".to_string()),
        ("scope", "api:read".to_string()),
    ];
    form.extend(auth.iter().cloned());
    let mut req = http().post(srv.url("/token")).form(&form);
    if let Some(p) = dpop {
        req = req.header("DPoP", p);
    }
    let resp = req.send().await.unwrap_or_else(|e| panic!("{e}"));
    let s = resp.status().as_u16();
    (s, resp.json().await.unwrap_or(Value::Null))
}

/// A fresh DPoP proof for `POST /token` with `k` (`igov` wants one on every token request).
fn token_proof(srv: &TestServer, k: &crate::dpop::Key) -> String {
    crate::dpop::proof_at(k, "POST", &srv.url("/token"), None, srv.core.now())
}

both!(
/// HEART-OAUTH-14: under `heart` an RS256 client assertion is accepted at the token endpoint, and
/// an HS256 one (a symmetric algorithm, here with an arbitrary 32-byte secret) is refused with 401
/// `invalid_client`.
heart_client_assertions_rs256_accepted_hs256_refused, ["CUSTODIA_PROFILE" => "heart"], |srv| {
    let (id, kp) = rsa_client(&srv, false).await;
    let hs256 = josekit::jws::HS256
        .signer_from_bytes([7u8; 32])
        .unwrap_or_else(|e| panic!("{e}"));
    let a = assertion(&srv, &id, &hs256);
    assert_eq!(jwt_parts(&a).0["alg"], json!("HS256"));
    let (s, v) = client_credentials(&srv, &assertion_fields(&a), None).await;
    assert_eq!((s, v["error"].as_str()), (401, Some("invalid_client")), "HS256: {v}");
    assert!(v["error_description"].as_str().is_some_and(|d| d.contains("HS256")), "{v}");
    assert!(v.get("access_token").is_none(), "{v}");

    let rs256 = josekit::jws::RS256
        .signer_from_der(kp.to_der_private_key())
        .unwrap_or_else(|e| panic!("{e}"));
    let a = assertion(&srv, &id, &rs256);
    assert_eq!(jwt_parts(&a).0["alg"], json!("RS256"));
    let (s, v) = client_credentials(&srv, &assertion_fields(&a), None).await;
    assert_eq!(s, 200, "RS256: {v}");
    assert!(v["access_token"].as_str().is_some_and(|t| !t.is_empty()), "{v}");
    assert_eq!(v["scope"], json!("api:read"), "{v}");
});

both!(
/// IGOV-OAUTH-04: under `igov` an RS256 client assertion is refused with 401 `invalid_client`,
/// while a PS256 one signed with the very same RSA key is accepted, and so is an ES256 one (the
/// harness's key clients); the access token the server issues is not RS256 either. (`igov` wants
/// DPoP-bound clients and a proof on every token request, IGOV-OAUTH-10, -12: every request here
/// carries one, so the assertion's algorithm is the only difference.)
igov_client_assertions_refuse_rs256, ["CUSTODIA_PROFILE" => "igov"], |srv| {
    let k = crate::dpop::key();
    let (id, kp) = rsa_client(&srv, true).await;
    let rs256 = josekit::jws::RS256
        .signer_from_der(kp.to_der_private_key())
        .unwrap_or_else(|e| panic!("{e}"));
    let a = assertion(&srv, &id, &rs256);
    assert_eq!(jwt_parts(&a).0["alg"], json!("RS256"));
    let (s, v) = client_credentials(&srv, &assertion_fields(&a), Some(&token_proof(&srv, &k))).await;
    assert_eq!((s, v["error"].as_str()), (401, Some("invalid_client")), "RS256: {v}");
    assert!(v["error_description"].as_str().is_some_and(|d| d.contains("RS256")), "{v}");
    assert!(v.get("access_token").is_none(), "{v}");

    let ps256 = josekit::jws::PS256
        .signer_from_der(kp.to_der_private_key())
        .unwrap_or_else(|e| panic!("{e}"));
    let a = assertion(&srv, &id, &ps256);
    assert_eq!(jwt_parts(&a).0["alg"], json!("PS256"));
    let (s, v) = client_credentials(&srv, &assertion_fields(&a), Some(&token_proof(&srv, &k))).await;
    assert_eq!(s, 200, "PS256: {v}");
    let at = v["access_token"].as_str().unwrap_or_default().to_string();
    let alg = jwt_parts(&at).0["alg"].clone();
    assert!(alg == json!("PS256") || alg == json!("ES256"), "the server signs with {alg}");

    let es = srv
        .add_key_client(json!({
            "client_name": "EC service",
            "grant_types": ["client_credentials"],
            "scope": "api:read",
            "dpop_bound_access_tokens": true,
        }))
        .await;
    let fields = es.auth_fields(&srv.url("/token"));
    let a = fields
        .iter()
        .find(|(name, _)| *name == "client_assertion")
        .map(|(_, a)| a.clone())
        .unwrap_or_default();
    assert_eq!(jwt_parts(&a).0["alg"], json!("ES256"));
    let (s, v) = client_credentials(&srv, &fields, Some(&token_proof(&srv, &k))).await;
    assert_eq!(s, 200, "ES256: {v}");
});

/// The sorted member names of a JSON object.
fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    k.sort();
    k
}

/// GET `/userinfo` with the access token of a code flow for `scope`: `(status, headers, body)`.
async fn userinfo_for(
    srv: &TestServer,
    client: &TestClient,
    scope: &str,
) -> (u16, custodia_tests::reqwest::header::HeaderMap, Value) {
    let t = code_flow_tokens(srv, client, "alice", PW, scope).await;
    let at = t["access_token"].as_str().unwrap_or_default().to_string();
    bearer_json(Method::GET, &srv.url("/userinfo"), Some(&at), None).await
}

both!(
/// IGOV-OIDC-20: UserInfo returns `sub` plus exactly the claims of the granted scopes
/// (`server/src/protocol/userinfo.rs`): `openid` alone → only `sub`; `openid email` → `sub`,
/// `email`, `email_verified` (not the user's `name`); `openid profile` → `sub`,
/// `preferred_username`, `name` (not the email). A token without `openid` gets no claims at all:
/// 403 `insufficient_scope`.
userinfo_returns_only_the_granted_claims, |srv| {
    let alice = srv.add_user("alice", PW).await;
    let client = srv.web_client().await;

    let (s, _, v) = userinfo_for(&srv, &client, "email").await;
    assert_eq!((s, v["error"].as_str()), (403, Some("insufficient_scope")), "{v}");
    assert!(v.get("email").is_none() && v.get("sub").is_none(), "{v}");

    let (s, _, v) = userinfo_for(&srv, &client, "openid").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(keys(&v), vec!["sub"], "{v}");
    assert_eq!(v["sub"], json!(alice));

    let (s, _, v) = userinfo_for(&srv, &client, "openid email").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(keys(&v), vec!["email", "email_verified", "sub"], "{v}");
    assert_eq!(v["sub"], json!(alice));
    assert_eq!(v["email"], json!("alice@example.org"));
    assert_eq!(v["email_verified"], json!(true));

    let (s, _, v) = userinfo_for(&srv, &client, "openid profile").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(keys(&v), vec!["name", "preferred_username", "sub"], "{v}");
    assert_eq!(v["preferred_username"], json!("alice"));
    assert_eq!(v["name"], json!("Test User"));
});

both!(
/// HEART-UMA-04: under `heart` an RPT from the UMA grant (claims gathered at the claims
/// interaction endpoint, as in `profiles.rs::uma_flow_under_heart_fhir`) is a signed JWT per
/// HEART-OAUTH-34/35: header `kid` and `typ`, RS256, verifiable with the JWKS; `iss` = the issuer,
/// `azp` = `client_id` = the requesting client, `aud` = the resource server, `exp` > `iat`,
/// `permissions`, a `jti` of at least 43 base64url characters (256 bits). Refused: the ticket
/// without claims (403 `need_info`), and the RPT with its payload altered (its signature no longer
/// holds: inactive at introspection), while the RPT as issued is active.
rpt_is_a_signed_jwt_with_heart_claims, ["CUSTODIA_PROFILE" => "heart"], |srv| {
    use crate::grant::{UMA_GRANT, err, owner_session, uma_token};
    use crate::grant_rules::{gather, permission_sets, register, set, share_with, ticket};
    srv.add_user("alice", PW).await;
    let bob = srv.add_user("bob", PW).await;
    let rs = srv
        .add_key_client(json!({
            "client_name": "Photo server",
            "redirect_uris": ["https://client.example/cb"],
            "grant_types": ["authorization_code", "refresh_token"],
            "scope": "openid uma_protection",
        }))
        .await;
    let pat = srv.pat(&rs, "alice", PW).await;
    let photo = register(&srv, &pat, "Photo", &["view", "edit"]).await;
    let owner = owner_session(&srv, "alice").await;
    share_with(&srv, &owner, &photo, &bob, &["view"]).await;
    let app = srv
        .add_key_client(json!({
            "client_name": "Photo app",
            "redirect_uris": ["https://client.example/cb"],
            "claims_redirect_uris": ["https://client.example/claims"],
            "grant_types": [UMA_GRANT],
            "scope": "openid",
        }))
        .await;

    let t = ticket(&srv, &pat, &[(photo.as_str(), &["view"])]).await;
    let (s, v) = uma_token(&srv, &app, &[("ticket", &t)]).await;
    assert_eq!((s, err(&v)), (403, "need_info"), "{v}");
    assert!(v.get("access_token").is_none(), "{v}");
    let t = v["ticket"].as_str().unwrap_or_default().to_string();
    let back = gather(&srv, &app, &t, "bob", false).await;
    let t = query(&back).remove("ticket").unwrap_or_default();
    let (s, v) = uma_token(&srv, &app, &[("ticket", &t)]).await;
    assert_eq!(s, 200, "{v}");
    let rpt = v["access_token"].as_str().unwrap_or_default().to_string();

    let (header, claims) = jwt_parts(&rpt);
    let kid = header["kid"].as_str().unwrap_or_default().to_string();
    assert!(!kid.is_empty(), "{header}");
    assert_eq!(header["typ"], json!("at+jwt"), "{header}");
    assert_eq!(header["alg"], json!("RS256"), "{header}");
    assert_eq!(claims["iss"], json!(srv.base), "{claims}");
    assert_eq!(claims["azp"], json!(app.id), "{claims}");
    assert_eq!(claims["client_id"], json!(app.id), "{claims}");
    assert_eq!(claims["aud"], json!([rs.id]), "{claims}");
    let (iat, exp) = (claims["iat"].as_i64(), claims["exp"].as_i64());
    assert!(
        matches!((iat, exp), (Some(i), Some(e)) if e > i),
        "{claims}"
    );
    assert_eq!(permission_sets(&claims), vec![set(&photo, &["view"])], "{claims}");
    let jti = claims["jti"].as_str().unwrap_or_default();
    assert!(
        jti.len() >= 43 && jti.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{jti}"
    );

    // Signed by a key of the server's JWKS.
    let jwks: Value = http()
        .get(srv.url("/jwks"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_default();
    let key = jwks["keys"]
        .as_array()
        .and_then(|k| k.iter().find(|k| k["kid"] == json!(kid)))
        .cloned()
        .unwrap_or_else(|| panic!("kid {kid} not in {jwks}"));
    let jwk = josekit::jwk::Jwk::from_map(key.as_object().cloned().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}"));
    let verifier = josekit::jws::RS256
        .verifier_from_jwk(&jwk)
        .unwrap_or_else(|e| panic!("{e}"));
    josekit::jwt::decode_with_verifier(&rpt, &verifier)
        .unwrap_or_else(|e| panic!("the RPT's signature: {e}"));

    let seen = crate::grant_rules::introspect_as(&srv, &rs, &pat, &rpt).await;
    assert_eq!(seen["active"], json!(true), "{seen}");
    assert_eq!(permission_sets(&seen), vec![set(&photo, &["view"])], "{seen}");

    // The same header and signature over a payload claiming one more scope: not an RPT.
    let mut forged = claims;
    forged["permissions"] = json!([{"resource_id": photo, "resource_scopes": ["view", "edit"]}]);
    let forged_payload = {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(forged.to_string())
    };
    let parts: Vec<&str> = rpt.split('.').collect();
    let forged_rpt = format!(
        "{}.{forged_payload}.{}",
        parts.first().copied().unwrap_or_default(),
        parts.get(2).copied().unwrap_or_default()
    );
    assert_eq!(
        crate::grant_rules::introspect_as(&srv, &rs, &pat, &forged_rpt).await,
        json!({"active": false})
    );
});

/// The `Strict-Transport-Security` header of a response, if any.
fn hsts(resp: &custodia_tests::reqwest::Response) -> Option<String> {
    resp.headers()
        .get("strict-transport-security")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

both!(
/// IGOV-OAUTH-06: a server whose configured issuer is https (it still listens on plain http on
/// loopback, behind what would be a TLS-terminating proxy) sends `Strict-Transport-Security:
/// max-age=31536000; includeSubDomains` on the discovery document and on the authorization
/// endpoint; a server with a loopback http issuer sends none.
hsts_only_with_an_https_issuer, ["CUSTODIA_ISSUER" => "https://as.example"], |srv| {
    const WANT: &str = "max-age=31536000; includeSubDomains";
    let resp = http()
        .get(srv.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(hsts(&resp).as_deref(), Some(WANT));
    let d: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!(d["issuer"], json!("https://as.example"), "{d}");
    let resp = http()
        .get(srv.url("/authorize"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status().as_u16(), 400, "no client: an error page");
    assert_eq!(hsts(&resp).as_deref(), Some(WANT));

    let plain = TestServer::start(srv.backend).await;
    assert!(plain.core.config.issuer.starts_with("http://127.0.0.1:"));
    for path in ["/.well-known/openid-configuration", "/authorize"] {
        let resp = http()
            .get(plain.url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(hsts(&resp), None, "{path} over a loopback http issuer");
    }
});

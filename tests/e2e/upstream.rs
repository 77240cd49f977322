//! The upstream OpenID Provider harness (`custodia_tests::Upstream`, a real `oidc-provider`):
//! it starts, signs a user in through its own login and consent pages, and issues an ID token
//! carrying the account's clinical claims. No Custodia server here; the tests of Custodia's
//! upstream login build on this.

use base64::Engine as _;
use custodia_tests::*;
use serde_json::{Value, json};

const SECRET: &str = "rp-test-secret-0123456789abcdef";

/// The claims of a compact JWS (its signature is not checked here) and its header.
fn jwt_parts(jwt: &str) -> (Value, Value) {
    let part = |i: usize| -> Value {
        let b64 = jwt
            .split('.')
            .nth(i)
            .unwrap_or_else(|| panic!("not a JWT: {jwt}"));
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(b64)
            .unwrap_or_else(|e| panic!("JWT part {i}: {e}"));
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("JWT part {i}: {e}"))
    };
    (part(0), part(1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dr_who_signs_in_upstream_and_the_id_token_carries_clinical_claims() {
    let started = std::time::Instant::now();
    let up = Upstream::start(json!([{
        "client_id": "rp-test",
        "client_secret": SECRET,
        "redirect_uris": ["https://client.example/cb"],
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "client_secret_basic",
    }]))
    .await;
    eprintln!("upstream ready in {:?}", started.elapsed());

    let meta = up.discovery().await;
    assert_eq!(meta["issuer"], up.issuer.as_str());
    let endpoint = |name: &str| {
        meta[name]
            .as_str()
            .unwrap_or_else(|| panic!("discovery without {name}: {meta}"))
            .to_string()
    };

    let (verifier, challenge) = pkce();
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let state = uuid::Uuid::new_v4().simple().to_string();
    let authorize = format!(
        "{}?{}",
        endpoint("authorization_endpoint"),
        serde_urlencoded::to_string([
            ("response_type", "code"),
            ("client_id", "rp-test"),
            ("redirect_uri", "https://client.example/cb"),
            ("scope", "openid clinical email"),
            ("state", &state),
            ("nonce", &nonce),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ])
        .unwrap_or_default()
    );

    let back = upstream_sign_in(&browser(), &authorize, "dr-who").await;
    assert!(back.starts_with("https://client.example/cb?"), "{back}");
    let mut q = query(&back);
    assert_eq!(q.get("state"), Some(&state), "{back}");
    // RFC 9207: the provider names itself in the authorization response.
    assert_eq!(q.get("iss"), Some(&up.issuer), "{back}");
    let code = q
        .remove("code")
        .unwrap_or_else(|| panic!("no code in {back}"));

    let resp = http()
        .post(endpoint("token_endpoint"))
        .basic_auth("rp-test", Some(SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "https://client.example/cb"),
            ("code_verifier", &verifier),
        ])
        .send()
        .await
        .unwrap_or_else(|e| panic!("token: {e}"));
    let status = resp.status().as_u16();
    let tokens: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 200, "{tokens}");

    let id_token = tokens["id_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no id_token: {tokens}"));
    let (header, claims) = jwt_parts(id_token);
    assert_eq!(header["alg"], "RS256", "{header}");
    assert_eq!(claims["iss"], up.issuer.as_str(), "{claims}");
    assert_eq!(claims["aud"], "rp-test", "{claims}");
    assert_eq!(claims["sub"], "dr-who", "{claims}");
    assert_eq!(claims["nonce"], nonce.as_str(), "{claims}");
    assert_eq!(claims["role"], "clinician", "{claims}");
    assert_eq!(claims["practitioner_id"], "P-1001", "{claims}");
    assert_eq!(claims["email"], "dr.who@clinic.example", "{claims}");
    assert_eq!(claims["email_verified"], true, "{claims}");
    // `profile` was not asked for.
    assert!(claims.get("name").is_none(), "{claims}");

    // Dropping the harness stops the provider.
    let discovery = up.url("/.well-known/openid-configuration");
    drop(up);
    assert!(
        http().get(&discovery).send().await.is_err(),
        "the upstream still answers"
    );
}

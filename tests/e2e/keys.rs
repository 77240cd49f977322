//! Signing keys: RS256 by default, ES256 and PS256 on request; rotation keeps old public keys
//! published until what they signed has expired.

use custodia_tests::*;
use serde_json::Value;

/// The signing keys of the JWKS (`use: sig`; the request-object encryption key is `use: enc`).
async fn jwks(srv: &TestServer) -> Vec<Value> {
    let v: Value = http()
        .get(srv.url("/jwks"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_default();
    let all = v["keys"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        all.iter().filter(|k| k["use"] == "enc").count(),
        1,
        "one request-object encryption key: {v}"
    );
    all.into_iter().filter(|k| k["use"] == "sig").collect()
}

fn kid_of(jwt: &str) -> String {
    josekit::jwt::decode_header(jwt)
        .ok()
        .and_then(|h| h.claim("kid").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_default()
}

both!(rotation_keeps_old_keys_published, |srv| {
    let c = srv.service_client().await;
    let keys = jwks(&srv).await;
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["alg"], "RS256");
    assert_eq!(keys[0]["kty"], "RSA");
    assert!(keys[0].get("d").is_none(), "no private parts in the JWKS");
    let (_, t1) = token_request(&srv, &c, &[("grant_type", "client_credentials")]).await;
    let at1 = t1["access_token"].as_str().unwrap_or_default().to_string();

    let (store, core) = (srv.store.clone(), srv.core.clone());
    tokio::task::spawn_blocking(move || {
        core.keys
            .rotate_sync(&store, &core.config, "ES256", custodia_server::now())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"))
    .unwrap_or_else(|e| panic!("{e}"));
    let keys = jwks(&srv).await;
    assert_eq!(keys.len(), 2, "old key still published");
    let (_, t2) = token_request(&srv, &c, &[("grant_type", "client_credentials")]).await;
    let at2 = t2["access_token"].as_str().unwrap_or_default().to_string();
    assert_ne!(kid_of(&at1), kid_of(&at2));
    let new_key = keys
        .iter()
        .find(|k| k["kid"] == kid_of(&at2).as_str())
        .cloned()
        .unwrap_or_default();
    assert_eq!(new_key["alg"], "ES256");
    assert_eq!(new_key["crv"], "P-256");
    assert_eq!(
        introspect(&srv, &c, &at1).await["active"],
        true,
        "tokens of the old key stay valid"
    );
    assert_eq!(introspect(&srv, &c, &at2).await["active"], true);
});

both!(es256_server, ["CUSTODIA_SIGNING_ALG" => "ES256"], |srv| {
    let keys = jwks(&srv).await;
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["alg"], "ES256");
    let meta: Value = http().get(srv.url("/.well-known/openid-configuration")).send().await.unwrap_or_else(|e| panic!("{e}")).json().await.unwrap_or_default();
    assert_eq!(meta["id_token_signing_alg_values_supported"], serde_json::json!(["ES256"]));
    let c = srv.service_client().await;
    let (s, t) = token_request(&srv, &c, &[("grant_type", "client_credentials")]).await;
    assert_eq!(s, 200);
    assert_eq!(introspect(&srv, &c, t["access_token"].as_str().unwrap_or_default()).await["active"], true);
});

both!(ps256_server, ["CUSTODIA_SIGNING_ALG" => "PS256"], |srv| {
    let keys = jwks(&srv).await;
    assert_eq!(keys[0]["alg"], "PS256");
    let c = srv.service_client().await;
    let (s, t) = token_request(&srv, &c, &[("grant_type", "client_credentials")]).await;
    assert_eq!(s, 200);
    assert_eq!(introspect(&srv, &c, t["access_token"].as_str().unwrap_or_default()).await["active"], true);
});

//! RPT verification throughput on one thread: raw josekit `decode_with_verifier` against the
//! SDK's `RptVerifier::verify_jwt` plus the permission check, for RS256 and ES256.
//!
//! Run in release mode: `cargo run --release -p custodia-sdk --example bench_verify`
//! (`BENCH_SECS` sets the measuring time per case, default 3).

use std::error::Error;
use std::hint::black_box;
use std::time::{Duration, Instant};

use custodia_sdk::RptVerifier;
use josekit::jwk::Jwk;
use josekit::jws::{self, JwsHeader, JwsSigner, JwsVerifier};
use josekit::jwt::{self, JwtPayload};
use serde_json::{Value, json};

const ISSUER: &str = "https://as.example";
const AUDIENCE: &str = "rs-client";

/// Run `op` for `warmup`, then count how often it runs in `measure`; ops per second.
fn rate(
    warmup: Duration,
    measure: Duration,
    mut op: impl FnMut() -> Result<(), Box<dyn Error>>,
) -> Result<f64, Box<dyn Error>> {
    let start = Instant::now();
    while start.elapsed() < warmup {
        op()?;
    }
    let start = Instant::now();
    let mut n: u64 = 0;
    loop {
        for _ in 0..32 {
            op()?;
        }
        n += 32;
        let elapsed = start.elapsed();
        if elapsed >= measure {
            return Ok(n as f64 / elapsed.as_secs_f64());
        }
    }
}

fn public_jwk(mut jwk: Jwk, kid: &str, alg: &str) -> Value {
    jwk.set_key_id(kid);
    jwk.set_algorithm(alg);
    jwk.set_key_use("sig");
    Value::Object(jwk.as_ref().clone())
}

fn main() -> Result<(), Box<dyn Error>> {
    let secs: u64 = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let measure = Duration::from_secs(secs);
    let warmup = Duration::from_millis(300);

    let rsa = jws::RS256.generate_key_pair(2048)?;
    let ec = jws::ES256.generate_key_pair()?;
    let rsa_jwk = rsa.to_jwk_public_key();
    let ec_jwk = ec.to_jwk_public_key();
    let jwks = json!({"keys": [
        public_jwk(rsa_jwk.clone(), "rsa-1", "RS256"),
        public_jwk(ec_jwk.clone(), "ec-1", "ES256"),
    ]});
    let verifier = RptVerifier::from_jwks(ISSUER, AUDIENCE, &jwks.to_string())?;

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    let claims = json!({
        "iss": ISSUER, "sub": "user-bob", "aud": [AUDIENCE], "client_id": "photo-app",
        "iat": now, "exp": now + 3600, "jti": "2f1c9b0e-6a0d-4c7e-9d0a-8f3b1e2d4c5a",
        "permissions": [
            {"resource_id": "res-7d1e5c2a", "resource_scopes": ["view", "print"]},
            {"resource_id": "res-9b3f0a4d", "resource_scopes": ["view"], "exp": now + 1800},
            {"resource_id": "res-1c8e6f2b", "resource_scopes": ["view", "edit", "delete"]},
        ],
    });
    let payload = JwtPayload::from_map(
        claims
            .as_object()
            .cloned()
            .ok_or("claims are not an object")?,
    )?;

    let rs_signer = jws::RS256.signer_from_der(rsa.to_der_private_key())?;
    let es_signer = jws::ES256.signer_from_der(ec.to_der_private_key())?;
    let rs_verifier = jws::RS256.verifier_from_jwk(&rsa_jwk)?;
    let es_verifier = jws::ES256.verifier_from_jwk(&ec_jwk)?;
    let cases: [(&str, &str, &dyn JwsSigner, &dyn JwsVerifier); 2] = [
        ("RS256", "rsa-1", &rs_signer, &rs_verifier),
        ("ES256", "ec-1", &es_signer, &es_verifier),
    ];

    println!("one thread, {secs} s per case after 0.3 s warm-up");
    println!(
        "{:<6} {:>7} {:>16} {:>20} {:>7}",
        "alg", "bytes", "josekit verify/s", "sdk verify+covers/s", "ratio"
    );
    for (alg, kid, signer, raw_verifier) in cases {
        let mut header = JwsHeader::new();
        header.set_token_type("at+jwt");
        header.set_key_id(kid);
        let token = jwt::encode_with_signer(&payload, &header, signer)?;

        let raw = rate(warmup, measure, || {
            let (p, _) = jwt::decode_with_verifier(black_box(&token), raw_verifier)?;
            black_box(p);
            Ok(())
        })?;
        let sdk = rate(warmup, measure, || {
            let rpt = verifier.verify_jwt(black_box(&token), now)?;
            if !rpt.covers_all("res-1c8e6f2b", &["view", "edit"], now) {
                return Err("permission check failed".into());
            }
            black_box(rpt);
            Ok(())
        })?;
        println!(
            "{alg:<6} {:>7} {raw:>16.0} {sdk:>20.0} {:>7.2}",
            token.len(),
            sdk / raw
        );
    }
    Ok(())
}

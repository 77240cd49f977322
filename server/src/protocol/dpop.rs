//! DPoP (RFC 9449): proofs of possession of a client's key, binding access tokens and RPTs to it.
//!
//! A proof is a JWT signed with the key it carries in its header (`typ: dpop+jwt`, an asymmetric
//! `alg`, a public `jwk`), naming the request (`htm`, `htu`), fresh (`iat`), unique (`jti`) and,
//! when it accompanies an access token, bound to it (`ath`). Checked here (DPOP-01, -10):
//! exactly one proof; the header; the signature with the embedded key; `htm` and `htu` against the
//! request; `iat` within [`MAX_AGE`] seconds back and [`SKEW`] ahead; `ath`; `jti` used once per
//! target URI within the proof's window (recorded in the store, so it holds across instances).
//! The key's RFC 7638 thumbprint (`jkt`) is what tokens carry as `cnf.jkt` (DPOP-07).
//!
//! Errors are `invalid_dpop_proof` with a description of what was wrong (DPOP-02).

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use josekit::jwk::Jwk;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::Core;
use super::error::{ErrorCode, OAuthError};

/// The proof algorithms accepted (advertised as `dpop_signing_alg_values_supported`).
pub const ALGS: &[&str] = &["ES256", "RS256", "PS256"];

/// How long after its `iat` a proof is accepted, seconds.
pub const MAX_AGE: i64 = 300;

/// How far in the future a proof's `iat` may be (clock skew), seconds.
pub const SKEW: i64 = 60;

/// Longest proof accepted, bytes.
const MAX_LEN: usize = 8192;

/// The smallest RSA modulus a proof key may have (IGOV-OAUTH-05; every profile's `min_rsa_bits`).
const MIN_RSA_BITS: u32 = 2048;

/// A verified proof: the thumbprint of its key, and its `jti` (already recorded as used).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proof {
    pub jkt: String,
    pub jti: String,
    /// The proof's `nonce` claim, if any (RFC 9449 §8).
    pub nonce: Option<String>,
}

/// How long a nonce Custodia issued stays good: the window it was made in and the next one.
const NONCE_WINDOW: i64 = 300;

/// A DPoP nonce for proofs to the token endpoint (RFC 9449 §8): the time window and a MAC of it
/// under a key derived from the KEK, so it needs no storage and every instance accepts every
/// other's; good for 5 to 10 minutes.
pub fn nonce(core: &Core, now: i64) -> Option<String> {
    let window = now.div_euclid(NONCE_WINDOW).to_be_bytes();
    let mut raw = window.to_vec();
    raw.extend_from_slice(&core.keys.dpop_nonce_mac(&window)?);
    Some(URL_SAFE_NO_PAD.encode(raw))
}

/// Whether `value` is a nonce [`nonce`] made in this window or the last.
pub fn nonce_ok(core: &Core, value: &str, now: i64) -> bool {
    let Ok(raw) = URL_SAFE_NO_PAD.decode(value) else {
        return false;
    };
    let (Some(window), Some(mac)) = (raw.get(..8), raw.get(8..)) else {
        return false;
    };
    let Ok(bytes) = <[u8; 8]>::try_from(window) else {
        return false;
    };
    let w = i64::from_be_bytes(bytes);
    let current = now.div_euclid(NONCE_WINDOW);
    (w == current || w == current - 1)
        && core
            .keys
            .dpop_nonce_mac(window)
            .is_some_and(|m| crate::secrets::ct_eq(&m, mac))
}

fn bad(why: impl Into<String>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidDpopProof, why)
}

/// The RFC 7638 thumbprint of a public JWK: SHA-256 over the required members in lexical order,
/// base64url. Hand-written: josekit has no thumbprint function, and it is these few lines.
pub fn thumbprint(jwk: &Map<String, Value>) -> Option<String> {
    let kty = jwk.get("kty")?.as_str()?;
    let members: &[&str] = match kty {
        "EC" => &["crv", "kty", "x", "y"],
        "RSA" => &["e", "kty", "n"],
        "OKP" => &["crv", "kty", "x"],
        _ => return None,
    };
    let mut canonical = BTreeMap::new();
    for m in members {
        canonical.insert(*m, jwk.get(*m)?.as_str()?);
    }
    let json = serde_json::to_string(&canonical).ok()?;
    Some(URL_SAFE_NO_PAD.encode(Sha256::digest(json.as_bytes())))
}

/// `ath`: base64url of the SHA-256 of the access token (RFC 9449 §4.2).
pub fn ath(access_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(access_token.as_bytes()))
}

/// `htu` compared without query and fragment (RFC 9449 §4.3).
fn target(url: &str) -> Option<String> {
    let mut u = url::Url::parse(url).ok()?;
    u.set_query(None);
    u.set_fragment(None);
    Some(u.to_string())
}

/// Check a proof's form, signature and claims (no replay check; see [`verify`]).
/// `headers`: every `DPoP` header value of the request; `method`, `url`: the request as this
/// server names it; `access_token`: the token the proof must be bound to, if any.
pub fn check(
    headers: &[&str],
    method: &str,
    url: &str,
    access_token: Option<&str>,
    now: i64,
) -> Result<(Proof, i64), OAuthError> {
    check_with(headers, method, url, access_token, now, ALGS)
}

/// [`check`] with the algorithms the active profile accepts.
pub fn check_with(
    headers: &[&str],
    method: &str,
    url: &str,
    access_token: Option<&str>,
    now: i64,
    algs: &[&str],
) -> Result<(Proof, i64), OAuthError> {
    let proof = match headers {
        [one] => one.trim(),
        [] => return Err(bad("a DPoP proof is required")),
        _ => return Err(bad("exactly one `DPoP` header is allowed")),
    };
    if proof.len() > MAX_LEN || proof.split('.').count() != 3 {
        return Err(bad("the DPoP proof is not a compact signed JWT"));
    }
    let header = josekit::jwt::decode_header(proof)
        .map_err(|_| bad("the DPoP proof header is malformed"))?;
    if header.claim("typ").and_then(Value::as_str) != Some("dpop+jwt") {
        return Err(bad("the DPoP proof's `typ` must be `dpop+jwt`"));
    }
    let alg = header.claim("alg").and_then(Value::as_str).unwrap_or("");
    if !algs.contains(&alg) || !ALGS.contains(&alg) {
        return Err(bad(format!(
            "the DPoP proof's algorithm `{}` is not accepted (accepted: {})",
            super::scope::sanitize(alg),
            algs.join(", ")
        )));
    }
    let Some(Value::Object(jwk_map)) = header.claim("jwk").cloned() else {
        return Err(bad("the DPoP proof carries no `jwk`"));
    };
    if ["d", "p", "q", "dp", "dq", "qi", "k"]
        .iter()
        .any(|m| jwk_map.contains_key(*m))
    {
        return Err(bad("the DPoP proof's `jwk` must be a public key"));
    }
    // IGOV-OAUTH-05: the proof key is held to the sizes client keys are.
    super::clients::check_key_size(&jwk_map, MIN_RSA_BITS)
        .map_err(|e| bad(format!("the DPoP proof's `jwk` {e}")))?;
    let jwk =
        Jwk::from_map(jwk_map.clone()).map_err(|_| bad("the DPoP proof's `jwk` is invalid"))?;
    let verifier = crate::keys::verifier_for(alg, &jwk)
        .map_err(|_| bad("the DPoP proof's `jwk` does not fit its algorithm"))?;
    let (payload, _) = josekit::jwt::decode_with_verifier(proof, verifier.as_ref())
        .map_err(|_| bad("the DPoP proof's signature does not verify with its `jwk`"))?;
    let claims = payload.claims_set();
    let s = |k: &str| claims.get(k).and_then(Value::as_str);
    let jti = s("jti")
        .filter(|j| !j.is_empty() && j.len() <= 256)
        .ok_or_else(|| bad("the DPoP proof has no usable `jti`"))?;
    if s("htm") != Some(method) {
        return Err(bad(format!("the DPoP proof's `htm` must be `{method}`")));
    }
    let want = target(url).ok_or_else(|| OAuthError::internal("unparsable endpoint URL"))?;
    if s("htu").and_then(target).as_deref() != Some(want.as_str()) {
        return Err(bad(format!("the DPoP proof's `htu` must be `{want}`")));
    }
    let iat = claims
        .get("iat")
        .and_then(Value::as_i64)
        .ok_or_else(|| bad("the DPoP proof has no `iat`"))?;
    if iat > now + SKEW {
        return Err(bad("the DPoP proof was issued in the future"));
    }
    if iat < now - MAX_AGE {
        return Err(bad(format!(
            "the DPoP proof is older than {MAX_AGE} seconds"
        )));
    }
    match (access_token, s("ath")) {
        (Some(t), Some(a)) if crate::secrets::ct_eq(a.as_bytes(), ath(t).as_bytes()) => {}
        (Some(_), Some(_)) => return Err(bad("the DPoP proof's `ath` is not this access token's")),
        (Some(_), None) => return Err(bad("the DPoP proof has no `ath`")),
        (None, _) => {}
    }
    let jkt =
        thumbprint(&jwk_map).ok_or_else(|| bad("the DPoP proof's `jwk` has no thumbprint"))?;
    Ok((
        Proof {
            jkt,
            jti: jti.to_string(),
            nonce: s("nonce").map(str::to_string),
        },
        iat,
    ))
}

/// [`check`], then record the `jti` for the target URI: a replay within the proof's window is
/// refused (DPOP-10).
pub async fn verify(
    core: &Core,
    headers: &[&str],
    method: &str,
    url: &str,
    access_token: Option<&str>,
    now: i64,
) -> Result<Proof, OAuthError> {
    let algs = core.config.profile.dpop_algs;
    let (proof, iat) = check_with(headers, method, url, access_token, now, algs)?;
    let scope = format!("dpop:{}", target(url).unwrap_or_default());
    let (jti, until) = (format!("{}:{}", proof.jkt, proof.jti), iat + MAX_AGE + SKEW);
    let fresh = core.store.use_jti(scope, jti, until).await?;
    if !fresh {
        return Err(bad("this DPoP proof was used before"));
    }
    Ok(proof)
}

/// RFC 9449 §7 at Custodia's own protected endpoints (userinfo, the protection API, the owner API,
/// introspection with a PAT): a token bound to a DPoP key is accepted only with the `DPoP` scheme
/// and a proof for this request, for this token (`ath`) and with that key; a bound token presented
/// as `Bearer` is refused (DPOP-13), and so is an unbound one presented as `DPoP`.
pub async fn presented(
    core: &Core,
    dpop_scheme: bool,
    token: &str,
    proofs: &[&str],
    method: &str,
    url: &str,
    now: i64,
) -> Result<(), OAuthError> {
    let bound: Option<String> = core
        .keys
        .verify(token)
        .ok()
        .and_then(|(c, _)| c.get("cnf")?.get("jkt")?.as_str().map(str::to_string));
    if !dpop_scheme {
        return match bound {
            Some(_) => Err(OAuthError::invalid_token(
                "this access token is bound to a DPoP key: send it as `Authorization: DPoP` with a DPoP proof",
            )),
            None => Ok(()),
        };
    }
    let proof = verify(core, proofs, method, url, Some(token), now).await?;
    match bound {
        Some(j) if crate::secrets::ct_eq(j.as_bytes(), proof.jkt.as_bytes()) => Ok(()),
        Some(_) => Err(OAuthError::invalid_token(
            "the access token is bound to another key than the DPoP proof's",
        )),
        None => Err(OAuthError::invalid_token(
            "the access token is not bound to a DPoP key: send it as `Authorization: Bearer`",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use josekit::jws::{self, JwsHeader};
    use josekit::jwt::JwtPayload;
    use serde_json::json;

    type R<T> = Result<T, Box<dyn std::error::Error>>;

    fn key() -> R<(Jwk, Jwk)> {
        let pair = jws::ES256.generate_key_pair()?;
        Ok((pair.to_jwk_private_key(), pair.to_jwk_public_key()))
    }

    fn proof(private: &Jwk, public: &Jwk, claims: Value, typ: &str) -> R<String> {
        let mut h = JwsHeader::new();
        h.set_token_type(typ);
        h.set_jwk(public.clone());
        let mut p = JwtPayload::new();
        if let Value::Object(m) = claims {
            for (k, v) in m {
                p.set_claim(&k, Some(v))?;
            }
        }
        let signer = jws::ES256.signer_from_jwk(private)?;
        Ok(josekit::jwt::encode_with_signer(&p, &h, &signer)?)
    }

    const URL: &str = "https://as.example/token";

    // RFC 7638 §3.1's example key has this thumbprint.
    #[test]
    fn thumbprint_of_the_rfc_example() {
        let jwk = json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        let m = jwk.as_object().cloned().unwrap_or_default();
        assert_eq!(
            thumbprint(&m).as_deref(),
            Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
        );
    }

    // DPOP-01: a good proof passes; every defect is refused with its reason.
    #[test]
    fn proofs_are_checked() -> R<()> {
        let (private, public) = key()?;
        let now = 1_800_000_000;
        let good = json!({"jti": "j1", "htm": "POST", "htu": URL, "iat": now});
        let p = proof(&private, &public, good.clone(), "dpop+jwt")?;
        let (ok, iat) = check(&[&p], "POST", URL, None, now).map_err(|e| e.error_description)?;
        assert_eq!(iat, now);
        let m = serde_json::to_value(public.as_ref())?
            .as_object()
            .cloned()
            .unwrap_or_default();
        assert_eq!(Some(ok.jkt), thumbprint(&m));
        // The query of `htu` does not count.
        let with_query =
            json!({"jti": "j1", "htm": "POST", "htu": format!("{URL}?x=1"), "iat": now});
        let q = proof(&private, &public, with_query, "dpop+jwt")?;
        assert!(check(&[&q], "POST", URL, None, now).is_ok());

        let (other_private, _) = key()?;
        let claims = |htm: &str, htu: &str, iat: i64| json!({"jti": "j", "htm": htm, "htu": htu, "iat": iat});
        let cases: Vec<(&str, Vec<String>, &str)> = vec![
            ("none", vec![], "required"),
            ("two", vec![p.clone(), p.clone()], "exactly one"),
            ("garbage", vec!["a.b".into()], "compact"),
            (
                "typ",
                vec![proof(&private, &public, good.clone(), "JWT")?],
                "typ",
            ),
            (
                "method",
                vec![proof(
                    &private,
                    &public,
                    claims("GET", URL, now),
                    "dpop+jwt",
                )?],
                "htm",
            ),
            (
                "url",
                vec![proof(
                    &private,
                    &public,
                    claims("POST", "https://as.example/other", now),
                    "dpop+jwt",
                )?],
                "htu",
            ),
            (
                "stale",
                vec![proof(
                    &private,
                    &public,
                    claims("POST", URL, now - MAX_AGE - 1),
                    "dpop+jwt",
                )?],
                "older",
            ),
            (
                "future",
                vec![proof(
                    &private,
                    &public,
                    claims("POST", URL, now + SKEW + 1),
                    "dpop+jwt",
                )?],
                "future",
            ),
            (
                "no jti",
                vec![proof(
                    &private,
                    &public,
                    json!({"htm": "POST", "htu": URL, "iat": now}),
                    "dpop+jwt",
                )?],
                "jti",
            ),
            (
                "wrong key",
                vec![proof(&other_private, &public, good.clone(), "dpop+jwt")?],
                "signature",
            ),
            // A private key in the header.
            (
                "private jwk",
                vec![proof(&private, &private, good.clone(), "dpop+jwt")?],
                "public",
            ),
        ];
        for (label, headers, why) in cases {
            let h: Vec<&str> = headers.iter().map(String::as_str).collect();
            let Err(e) = check(&h, "POST", URL, None, now) else {
                return Err(format!("{label}: accepted").into());
            };
            assert_eq!(e.error, ErrorCode::InvalidDpopProof, "{label}");
            assert!(
                e.error_description.contains(why),
                "{label}: {}",
                e.error_description
            );
        }
        Ok(())
    }

    // IGOV-OAUTH-05: a proof key is held to the client key sizes: RSA below 2048 bits is
    // `invalid_dpop_proof` naming the size (2048 bits is accepted in `profile_algorithms`).
    #[test]
    fn small_proof_keys_are_refused() -> R<()> {
        // josekit will not make or use a 1024-bit key, so the proof is signed with openssl.
        let rsa = openssl::rsa::Rsa::generate(1024)?;
        let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        let header = json!({"typ": "dpop+jwt", "alg": "RS256",
            "jwk": {"kty": "RSA", "n": b64(&rsa.n().to_vec()), "e": b64(&rsa.e().to_vec())}});
        let payload = json!({"jti": "j", "htm": "POST", "htu": URL, "iat": 1_800_000_000});
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(payload.to_string().as_bytes())
        );
        let key = openssl::pkey::PKey::from_rsa(rsa)?;
        let mut signer = openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &key)?;
        signer.update(input.as_bytes())?;
        let proof = format!("{input}.{}", b64(&signer.sign_to_vec()?));
        let Err(e) = check(&[&proof], "POST", URL, None, 1_800_000_000) else {
            return Err("a 1024-bit proof key was accepted".into());
        };
        assert_eq!(e.error, ErrorCode::InvalidDpopProof);
        assert_eq!(
            e.error_description,
            "the DPoP proof's `jwk` holds an RSA key of 1024 bits: at least 2048 are required"
        );
        Ok(())
    }

    // IGOV-OAUTH-04: the profile's algorithms bound the proofs' (no RS256 under igov).
    #[test]
    fn profile_algorithms() -> R<()> {
        let pair = jws::RS256.generate_key_pair(2048)?;
        let mut h = JwsHeader::new();
        h.set_token_type("dpop+jwt");
        h.set_jwk(pair.to_jwk_public_key());
        let mut p = JwtPayload::new();
        for (k, v) in [
            ("jti", json!("j")),
            ("htm", json!("POST")),
            ("htu", json!(URL)),
            ("iat", json!(1_800_000_000)),
        ] {
            p.set_claim(k, Some(v))?;
        }
        let signer = jws::RS256.signer_from_jwk(&pair.to_jwk_private_key())?;
        let proof = josekit::jwt::encode_with_signer(&p, &h, &signer)?;
        assert!(check_with(&[&proof], "POST", URL, None, 1_800_000_000, ALGS).is_ok());
        let Err(e) = check_with(
            &[&proof],
            "POST",
            URL,
            None,
            1_800_000_000,
            &["ES256", "PS256"],
        ) else {
            return Err("RS256 accepted".into());
        };
        assert!(
            e.error_description.contains("RS256"),
            "{}",
            e.error_description
        );
        Ok(())
    }

    // DPOP-11 (the AS's own protected endpoints): `ath` binds the proof to the access token.
    #[test]
    fn ath_binds_the_token() -> R<()> {
        let (private, public) = key()?;
        let now = 1_800_000_000;
        let with = |ath: Option<&str>| {
            let mut c = json!({"jti": "j", "htm": "GET", "htu": URL, "iat": now});
            if let Some(a) = ath {
                c["ath"] = json!(a);
            }
            proof(&private, &public, c, "dpop+jwt")
        };
        assert!(check(&[&with(Some(&ath("tok")))?], "GET", URL, Some("tok"), now).is_ok());
        for (label, p, why) in [
            ("missing", with(None)?, "no `ath`"),
            (
                "another token's",
                with(Some(&ath("other")))?,
                "not this access token",
            ),
        ] {
            let Err(e) = check(&[&p], "GET", URL, Some("tok"), now) else {
                return Err(format!("{label}: accepted").into());
            };
            assert!(
                e.error_description.contains(why),
                "{label}: {}",
                e.error_description
            );
        }
        Ok(())
    }
}

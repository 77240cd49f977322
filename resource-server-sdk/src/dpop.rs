//! DPoP proofs for RPTs bound to a client's key (RFC 9449 §7): an RPT whose `cnf.jkt` names a
//! key is accepted only as `Authorization: DPoP <rpt>` with a `DPoP` proof for this request
//! (`htm`, `htu`), this RPT (`ath`), fresh (`iat`), signed by that key and never seen before
//! (`jti`, remembered for the proof's window).
//!
//! The checks mirror the authorization server's; they live here because the SDK never depends on
//! the server crate. The `jti` memory is per process: a resource server running several
//! instances behind a balancer accepts a replay on another instance only within the proof's short
//! window (RFC 9449 §11.1 allows a per-target memory).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use josekit::jwk::Jwk;
use josekit::jws;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The proof algorithms accepted (as the authorization server's).
pub const ALGS: &[&str] = &["ES256", "RS256", "PS256"];

/// Seconds a proof is accepted after its `iat`.
pub const MAX_AGE: i64 = 300;

/// Seconds a proof's `iat` may be ahead (clock skew).
pub const SKEW: i64 = 60;

const MAX_LEN: usize = 8192;

/// Why a proof was refused: the text of `error_description`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DpopError(pub String);

fn bad(why: impl Into<String>) -> DpopError {
    DpopError(why.into())
}

/// The RFC 7638 thumbprint of a public JWK (SHA-256 of the required members in lexical order).
pub fn thumbprint(jwk: &Map<String, Value>) -> Option<String> {
    let members: &[&str] = match jwk.get("kty")?.as_str()? {
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

/// A DPoP proof (RFC 9449 §4.2) of `key` for a request: `htm`, `htu` (without query and
/// fragment), a random `jti`, `iat` = `now`, `ath` when it carries an access token, and the
/// server's `nonce` when it asked for one.
pub(crate) fn proof(
    key: &crate::config::DpopKey,
    htm: &str,
    htu: &str,
    access_token: Option<&str>,
    now: i64,
    nonce: Option<&str>,
) -> Result<String, crate::Error> {
    let bad = |_| crate::Error::Config("cannot sign a DPoP proof".into());
    let mut header = jws::JwsHeader::new();
    header.set_token_type("dpop+jwt");
    header.set_jwk(key.public.clone());
    let mut p = josekit::jwt::JwtPayload::new();
    p.set_jwt_id(crate::pkce::random_b64(24)?);
    let htu = without_query(htu).unwrap_or_else(|| htu.to_string());
    let mut claims = vec![
        ("htm", Value::from(htm)),
        ("htu", Value::from(htu)),
        ("iat", Value::from(now)),
    ];
    if let Some(t) = access_token {
        claims.push((
            "ath",
            Value::from(URL_SAFE_NO_PAD.encode(Sha256::digest(t.as_bytes()))),
        ));
    }
    if let Some(n) = nonce {
        claims.push(("nonce", Value::from(n)));
    }
    for (k, v) in claims {
        p.set_claim(k, Some(v)).map_err(bad)?;
    }
    let signer = jws::ES256.signer_from_jwk(&key.private).map_err(bad)?;
    josekit::jwt::encode_with_signer(&p, &header, &signer).map_err(bad)
}

fn without_query(url: &str) -> Option<String> {
    let mut u = url::Url::parse(url).ok()?;
    u.set_query(None);
    u.set_fragment(None);
    Some(u.to_string())
}

/// Checks DPoP proofs and remembers their `jti`s for [`MAX_AGE`] + [`SKEW`] seconds (at most
/// `capacity` at once; when full, proofs are refused until room frees up — a flood cannot make
/// the memory forget).
#[derive(Debug)]
pub struct DpopVerifier {
    seen: Mutex<HashMap<String, i64>>,
    capacity: usize,
}

impl Default for DpopVerifier {
    fn default() -> Self {
        DpopVerifier::new(100_000)
    }
}

impl DpopVerifier {
    pub fn new(capacity: usize) -> Self {
        DpopVerifier {
            seen: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// Verify the proof of a request (`headers`: every `DPoP` header value) for `access_token`;
    /// returns the thumbprint of the proof's key.
    pub fn verify(
        &self,
        headers: &[&str],
        method: &str,
        url: &str,
        access_token: &str,
        now: i64,
    ) -> Result<String, DpopError> {
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
        let Some(Value::Object(jwk_map)) = header.claim("jwk").cloned() else {
            return Err(bad("the DPoP proof carries no `jwk`"));
        };
        if ["d", "p", "q", "dp", "dq", "qi", "k"]
            .iter()
            .any(|m| jwk_map.contains_key(*m))
        {
            return Err(bad("the DPoP proof's `jwk` must be a public key"));
        }
        let jwk =
            Jwk::from_map(jwk_map.clone()).map_err(|_| bad("the DPoP proof's `jwk` is invalid"))?;
        let decoded = match alg {
            "ES256" => jws::ES256
                .verifier_from_jwk(&jwk)
                .and_then(|v| josekit::jwt::decode_with_verifier(proof, &v)),
            "RS256" => jws::RS256
                .verifier_from_jwk(&jwk)
                .and_then(|v| josekit::jwt::decode_with_verifier(proof, &v)),
            "PS256" => jws::PS256
                .verifier_from_jwk(&jwk)
                .and_then(|v| josekit::jwt::decode_with_verifier(proof, &v)),
            _ => return Err(bad("the DPoP proof's algorithm is not accepted")),
        };
        let (payload, _) = decoded
            .map_err(|_| bad("the DPoP proof's signature does not verify with its `jwk`"))?;
        let claims = payload.claims_set();
        let s = |k: &str| claims.get(k).and_then(Value::as_str);
        let jti = s("jti")
            .filter(|j| !j.is_empty() && j.len() <= 256)
            .ok_or_else(|| bad("the DPoP proof has no usable `jti`"))?;
        if s("htm") != Some(method) {
            return Err(bad(format!("the DPoP proof's `htm` must be `{method}`")));
        }
        let want = without_query(url).ok_or_else(|| bad("the request URL is not absolute"))?;
        if s("htu").and_then(without_query).as_deref() != Some(want.as_str()) {
            return Err(bad(format!("the DPoP proof's `htu` must be `{want}`")));
        }
        let iat = claims
            .get("iat")
            .and_then(Value::as_i64)
            .ok_or_else(|| bad("the DPoP proof has no `iat`"))?;
        if iat > now + SKEW || iat < now - MAX_AGE {
            return Err(bad("the DPoP proof is not fresh"));
        }
        let ath = URL_SAFE_NO_PAD.encode(Sha256::digest(access_token.as_bytes()));
        match s("ath") {
            Some(a) if subtle::ConstantTimeEq::ct_eq(a.as_bytes(), ath.as_bytes()).into() => {}
            Some(_) => return Err(bad("the DPoP proof's `ath` is not this access token's")),
            None => return Err(bad("the DPoP proof has no `ath`")),
        }
        let jkt =
            thumbprint(&jwk_map).ok_or_else(|| bad("the DPoP proof's `jwk` has no thumbprint"))?;
        self.remember(format!("{want} {jkt} {jti}"), iat + MAX_AGE + SKEW, now)?;
        Ok(jkt)
    }

    fn remember(&self, key: String, until: i64, now: i64) -> Result<(), DpopError> {
        let mut seen = self
            .seen
            .lock()
            .map_err(|_| bad("the DPoP replay memory is unavailable"))?;
        if seen.len() >= self.capacity {
            seen.retain(|_, u| *u > now);
        }
        if seen.contains_key(&key) {
            return Err(bad("this DPoP proof was used before"));
        }
        if seen.len() >= self.capacity {
            return Err(bad("too many DPoP proofs at once; retry shortly"));
        }
        seen.insert(key, until);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use josekit::jws::JwsHeader;
    use josekit::jwt::JwtPayload;
    use serde_json::json;

    type R<T> = Result<T, Box<dyn std::error::Error>>;
    const URL: &str = "https://rs.example/fhir/Patient/1";
    const NOW: i64 = 1_800_000_000;

    fn proof(private: &Jwk, public: &Jwk, claims: Value) -> R<String> {
        let mut h = JwsHeader::new();
        h.set_token_type("dpop+jwt");
        h.set_jwk(public.clone());
        let mut p = JwtPayload::new();
        if let Value::Object(m) = claims {
            for (k, v) in m {
                p.set_claim(&k, Some(v))?;
            }
        }
        Ok(josekit::jwt::encode_with_signer(
            &p,
            &h,
            &jws::ES256.signer_from_jwk(private)?,
        )?)
    }

    // The proofs the SDK makes for its DPoP-bound PATs pass the checks it applies to RPTs:
    // method, URL without its query, `ath`, freshness, the key's thumbprint; a nonce is carried.
    #[test]
    fn own_proofs_verify() -> R<()> {
        let config = crate::ClientConfig::new(
            "https://as.example",
            "rs",
            crate::ClientSecret::new(String::from("s")),
            "https://rs.example/cb",
        )
        .with_dpop_bound_pats()?;
        let key = config.dpop_key.clone().ok_or("no key")?;
        let p = super::proof(
            &key,
            "POST",
            &format!("{URL}?x=1"),
            Some("pat"),
            NOW,
            Some("n-1"),
        )?;
        let v = DpopVerifier::default();
        assert_eq!(v.verify(&[&p], "POST", URL, "pat", NOW)?, key.jkt);
        let payload: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p.split('.').nth(1).ok_or("jws")?)?)?;
        assert_eq!(payload["nonce"], json!("n-1"));
        assert_eq!(payload["htu"], json!(URL), "no query in `htu`");
        let other = super::proof(&key, "POST", URL, Some("another token"), NOW, None)?;
        assert!(v.verify(&[&other], "POST", URL, "pat", NOW).is_err(), "ath");
        Ok(())
    }

    // DPOP-11: method, URL, `ath`, freshness, key; DPOP-10: a replay.
    #[test]
    fn proofs_for_bound_rpts() -> R<()> {
        let pair = jws::ES256.generate_key_pair()?;
        let (private, public) = (pair.to_jwk_private_key(), pair.to_jwk_public_key());
        let other = jws::ES256.generate_key_pair()?.to_jwk_private_key();
        let ath = URL_SAFE_NO_PAD.encode(Sha256::digest(b"rpt"));
        let c = |htm: &str, htu: &str, iat: i64, ath: &str| json!({"jti": format!("{htm}{htu}{iat}{ath}"), "htm": htm, "htu": htu, "iat": iat, "ath": ath});
        let v = DpopVerifier::default();
        let good = proof(&private, &public, c("GET", URL, NOW, &ath))?;
        let jkt = v.verify(&[&good], "GET", URL, "rpt", NOW)?;
        let m = serde_json::to_value(public.as_ref())?
            .as_object()
            .cloned()
            .unwrap_or_default();
        assert_eq!(Some(jkt), thumbprint(&m));
        let cases = [
            ("replay", good.clone(), "used before"),
            (
                "method",
                proof(&private, &public, c("POST", URL, NOW, &ath))?,
                "htm",
            ),
            (
                "url",
                proof(
                    &private,
                    &public,
                    c("GET", "https://rs.example/other", NOW, &ath),
                )?,
                "htu",
            ),
            (
                "stale",
                proof(&private, &public, c("GET", URL, NOW - 400, &ath))?,
                "fresh",
            ),
            (
                "ath",
                proof(&private, &public, c("GET", URL, NOW, "x"))?,
                "ath",
            ),
            (
                "key",
                proof(&other, &public, c("GET", URL, NOW + 1, &ath))?,
                "signature",
            ),
        ];
        for (label, p, why) in cases {
            let Err(e) = v.verify(&[&p], "GET", URL, "rpt", NOW) else {
                return Err(format!("{label}: accepted").into());
            };
            assert!(e.0.contains(why), "{label}: {e}");
        }
        Ok(())
    }
}

//! Compact JWS verification of the authorization server's access tokens (RFC 7515 §5.2,
//! RFC 7519 §7.2, RFC 9068 §4) against a [`KeySet`], and the claims the SDK reads.
//!
//! The token is split and decoded by hand so that the header is parsed once into a small typed
//! struct, the cached verifier is used directly, and the payload is deserialized straight into
//! typed claims: no per-token verifier construction and no intermediate JSON maps.
//! Checks: at most 16 KiB, exactly three base64url parts, `alg` one of RS256/PS256/ES256 and
//! equal to the key's, no `crit`, `typ` `at+jwt` (RFC 9068 §2.1), a known `kid`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::{self, Deserializer, IgnoredAny, Visitor};
use serde::{Deserialize, Serialize};

use crate::error::TokenError;
use crate::jwks::{Algorithm, KeySet};

/// The longest token accepted.
pub(crate) const MAX_TOKEN_LEN: usize = 16 * 1024;

#[derive(Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    alg: std::borrow::Cow<'a, str>,
    #[serde(borrow, default)]
    kid: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    typ: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    crit: Option<IgnoredAny>,
}

/// Verify the signature of a compact JWS access token and return its decoded payload.
pub(crate) fn verify_compact(token: &str, keys: &KeySet) -> Result<Vec<u8>, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed);
    }
    let mut parts = token.splitn(4, '.');
    let (Some(h64), Some(p64), Some(s64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let header_bytes = URL_SAFE_NO_PAD
        .decode(h64)
        .map_err(|_| TokenError::Malformed)?;
    let header: Header<'_> =
        serde_json::from_slice(&header_bytes).map_err(|_| TokenError::Malformed)?;
    let alg = Algorithm::from_name(&header.alg)
        .ok_or_else(|| TokenError::UnsupportedAlgorithm(header.alg.chars().take(16).collect()))?;
    if header.crit.is_some() {
        return Err(TokenError::UnsupportedCritical);
    }
    match header.typ.as_deref() {
        Some(t)
            if t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt") => {
        }
        _ => return Err(TokenError::WrongType),
    }
    let kid = header.kid.as_deref().ok_or(TokenError::UnknownKey)?;
    let verifier = keys.verifier(kid, alg).ok_or(TokenError::UnknownKey)?;
    let signature = URL_SAFE_NO_PAD
        .decode(s64)
        .map_err(|_| TokenError::Malformed)?;
    let message_len = h64.len() + 1 + p64.len();
    verifier
        .verify(&token.as_bytes()[..message_len], &signature)
        .map_err(|_| TokenError::BadSignature)?;
    URL_SAFE_NO_PAD
        .decode(p64)
        .map_err(|_| TokenError::Malformed)
}

/// The claims of a PAT or an RPT that the SDK reads.
#[derive(Deserialize)]
pub(crate) struct Claims {
    pub iss: String,
    #[serde(default)]
    pub sub: Option<String>,
    #[serde(default)]
    pub aud: Audience,
    #[serde(default)]
    pub client_id: Option<String>,
    pub exp: NumericDate,
    #[serde(default)]
    pub iat: Option<NumericDate>,
    #[serde(default)]
    pub nbf: Option<NumericDate>,
    #[serde(default)]
    pub jti: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub permissions: Option<Vec<crate::rpt::RptPermission>>,
    /// RFC 9449 §6: the key the token is bound to.
    #[serde(default)]
    pub cnf: Option<Confirmation>,
}

/// The `cnf` claim (RFC 7800), as DPoP uses it: the RFC 7638 thumbprint of the bound key.
#[derive(Deserialize)]
pub(crate) struct Confirmation {
    #[serde(default)]
    pub jkt: Option<String>,
}

impl Claims {
    /// `exp`, `nbf` and `iat` against `now`, with `leeway` seconds either way.
    pub fn check_times(&self, now: i64, leeway: i64) -> Result<(), TokenError> {
        if now >= self.exp.0.saturating_add(leeway) {
            return Err(TokenError::Expired);
        }
        if let Some(nbf) = self.nbf
            && now.saturating_add(leeway) < nbf.0
        {
            return Err(TokenError::NotYetValid);
        }
        if let Some(iat) = self.iat
            && now.saturating_add(leeway) < iat.0
        {
            return Err(TokenError::NotYetValid);
        }
        Ok(())
    }
}

/// `aud`: one string or an array of strings (RFC 7519 §4.1.3).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Audience(pub Vec<String>);

impl Audience {
    pub fn contains(&self, aud: &str) -> bool {
        self.0.iter().any(|a| a == aud)
    }
}

impl<'de> Deserialize<'de> for Audience {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Audience;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Audience, E> {
                Ok(Audience(vec![v.to_string()]))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Audience, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(1).min(16));
                while let Some(s) = seq.next_element::<String>()? {
                    out.push(s);
                }
                Ok(Audience(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// A NumericDate (RFC 7519 §2): seconds since the epoch; a fraction is dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct NumericDate(pub i64);

impl<'de> Deserialize<'de> for NumericDate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = NumericDate;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number of seconds")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<NumericDate, E> {
                Ok(NumericDate(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<NumericDate, E> {
                i64::try_from(v)
                    .map(NumericDate)
                    .map_err(|_| E::custom("date out of range"))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<NumericDate, E> {
                if v.is_finite() && v.abs() < 1e15 {
                    Ok(NumericDate(v.floor() as i64))
                } else {
                    Err(E::custom("date out of range"))
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// `Option<NumericDate>` as `Option<i64>` for public structs.
pub(crate) fn opt_numeric_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(Option::<NumericDate>::deserialize(d)?.map(|n| n.0))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::test_support::TestKeys;
    use serde_json::json;

    fn claims() -> serde_json::Value {
        json!({"iss": "https://as", "sub": "u", "aud": "rs", "exp": 2_000_000_000, "iat": 1_000})
    }

    fn b64(v: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(v)
    }

    #[test]
    fn verifies_rs256_and_es256() {
        let keys = TestKeys::generate();
        let set = keys.key_set();
        for alg in ["RS256", "ES256"] {
            let t = keys.sign(alg, "at+jwt", &claims());
            let payload = verify_compact(&t, &set).unwrap();
            let c: Claims = serde_json::from_slice(&payload).unwrap();
            assert_eq!(c.iss, "https://as");
            assert!(c.aud.contains("rs"));
        }
    }

    #[test]
    fn rejects_none_and_hmac() {
        let keys = TestKeys::generate();
        let set = keys.key_set();
        let payload = b64(claims().to_string().as_bytes());
        for alg in ["none", "HS256", "rs256", ""] {
            let header = json!({"alg": alg, "typ": "at+jwt", "kid": keys.rsa_kid});
            let t = format!("{}.{payload}.", b64(header.to_string().as_bytes()));
            assert_eq!(
                verify_compact(&t, &set),
                Err(TokenError::UnsupportedAlgorithm(alg.into()))
            );
        }
    }

    #[test]
    fn rejects_alg_that_is_not_the_keys() {
        // an RS256 key under its kid, presented as ES256 or PS256
        let keys = TestKeys::generate();
        let set = keys.key_set();
        let t = keys.sign("RS256", "at+jwt", &claims());
        let (_, rest) = t.split_once('.').unwrap();
        for alg in ["ES256", "PS256"] {
            let header = json!({"alg": alg, "typ": "at+jwt", "kid": keys.rsa_kid});
            let forged = format!("{}.{rest}", b64(header.to_string().as_bytes()));
            assert_eq!(verify_compact(&forged, &set), Err(TokenError::UnknownKey));
        }
    }

    #[test]
    fn rejects_tampering_and_malformed_tokens() {
        let keys = TestKeys::generate();
        let set = keys.key_set();
        let t = keys.sign("RS256", "at+jwt", &claims());
        let parts: Vec<&str> = t.split('.').collect();
        let other = b64(
            json!({"iss": "https://as", "exp": 2_000_000_000, "sub": "mallory"})
                .to_string()
                .as_bytes(),
        );
        let tampered = format!("{}.{other}.{}", parts[0], parts[2]);
        assert_eq!(
            verify_compact(&tampered, &set),
            Err(TokenError::BadSignature)
        );
        let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        sig[0] ^= 1;
        let bad_sig = format!("{}.{}.{}", parts[0], parts[1], b64(&sig));
        assert_eq!(
            verify_compact(&bad_sig, &set),
            Err(TokenError::BadSignature)
        );
        for bad in [
            "",
            "a.b",
            "a.b.c.d",
            &format!("{t}."),
            &format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
            &"a".repeat(MAX_TOKEN_LEN + 1),
        ] {
            assert!(verify_compact(bad, &set).is_err(), "{bad}");
        }
    }

    #[test]
    fn requires_typ_kid_and_no_crit() {
        let keys = TestKeys::generate();
        let set = keys.key_set();
        assert_eq!(
            verify_compact(&keys.sign("RS256", "JWT", &claims()), &set),
            Err(TokenError::WrongType)
        );
        assert!(verify_compact(&keys.sign("RS256", "application/at+jwt", &claims()), &set).is_ok());
        let payload = b64(claims().to_string().as_bytes());
        let header = json!({"alg": "RS256", "typ": "at+jwt"});
        let t = format!("{}.{payload}.AAAA", b64(header.to_string().as_bytes()));
        assert_eq!(verify_compact(&t, &set), Err(TokenError::UnknownKey));
        let header = json!({"alg": "RS256", "typ": "at+jwt", "kid": keys.rsa_kid, "crit": ["exp"]});
        let t = format!("{}.{payload}.AAAA", b64(header.to_string().as_bytes()));
        assert_eq!(
            verify_compact(&t, &set),
            Err(TokenError::UnsupportedCritical)
        );
    }

    #[test]
    fn numeric_dates_and_audiences() {
        let c: Claims = serde_json::from_value(json!({
            "iss": "i", "exp": 1.5e9, "iat": 10, "aud": ["a", "b"]
        }))
        .unwrap();
        assert_eq!(c.exp, NumericDate(1_500_000_000));
        assert!(c.aud.contains("b") && !c.aud.contains("c"));
        assert!(serde_json::from_value::<Claims>(json!({"iss": "i", "exp": "soon"})).is_err());
        assert!(serde_json::from_value::<Claims>(json!({"iss": "i", "exp": 1, "aud": 5})).is_err());
        assert!(serde_json::from_value::<Claims>(json!({"iss": "i"})).is_err());
        assert!(
            serde_json::from_str::<Claims>(r#"{"iss":"i","exp":1,"iss":"j"}"#).is_err(),
            "duplicate claims are refused"
        );
    }

    #[test]
    fn time_checks_with_leeway() {
        let c: Claims =
            serde_json::from_value(json!({"iss": "i", "exp": 100, "nbf": 50, "iat": 40})).unwrap();
        assert!(c.check_times(99, 0).is_ok());
        assert_eq!(c.check_times(100, 0), Err(TokenError::Expired));
        assert!(c.check_times(104, 5).is_ok());
        assert_eq!(c.check_times(49, 0), Err(TokenError::NotYetValid));
        assert!(c.check_times(46, 5).is_ok());
    }
}

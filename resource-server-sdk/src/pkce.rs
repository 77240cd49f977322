//! PKCE with the S256 method (RFC 7636 §4.1–§4.2) and the random values of the authorization
//! request (`state`, RFC 6749 §10.12), all 256 bits from the OS RNG.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::secret::Nonce;

/// `n` random bytes from the OS, base64url without padding.
pub(crate) fn random_b64(n: usize) -> Result<String, Error> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).map_err(|_| Error::Random)?;
    Ok(URL_SAFE_NO_PAD.encode(&buf))
}

/// A fresh `code_verifier`: 32 random bytes as 43 base64url characters (RFC 7636 §4.1).
pub fn code_verifier() -> Result<Nonce, Error> {
    Ok(Nonce::new(random_b64(32)?))
}

/// `code_challenge = BASE64URL(SHA256(ASCII(code_verifier)))` (RFC 7636 §4.2, S256).
pub fn code_challenge_s256(code_verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(code_verifier.as_bytes()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    /// RFC 7636 Appendix B.
    #[test]
    fn rfc7636_appendix_b_vector() {
        assert_eq!(
            code_challenge_s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn verifiers_are_43_unreserved_characters_and_differ() {
        let a = code_verifier().unwrap();
        let b = code_verifier().unwrap();
        assert_eq!(a.expose_secret().len(), 43);
        assert!(
            a.expose_secret()
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_ne!(a.expose_secret(), b.expose_secret());
    }
}

//! Opaque secrets: generation from the OS RNG, SHA-256 hashing for storage, constant-time comparison,
//! and a redacting wrapper so a secret never reaches a log through `Debug` or `Display`.
//!
//! Design ("Tokens and secrets"): codes, refresh tokens, client secrets, session ids and registration
//! tokens are 256 random bits with a short per-kind prefix, stored only as SHA-256 (they are high
//! entropy, so a slow password hash would add cost and no safety).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What kind of opaque secret a string is; the prefix tells a reader of a leaked string what it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretKind {
    AuthorizationCode,
    RefreshToken,
    ClientSecret,
    Session,
    RegistrationAccessToken,
    InitialAccessToken,
    Csrf,
    PermissionTicket,
    Pct,
}

impl SecretKind {
    fn prefix(self) -> &'static str {
        match self {
            SecretKind::AuthorizationCode => "cst_ac_",
            SecretKind::RefreshToken => "cst_rt_",
            SecretKind::ClientSecret => "cst_cs_",
            SecretKind::Session => "cst_ss_",
            SecretKind::RegistrationAccessToken => "cst_rat_",
            SecretKind::InitialAccessToken => "cst_iat_",
            SecretKind::Csrf => "cst_csrf_",
            SecretKind::PermissionTicket => "cst_pt_",
            SecretKind::Pct => "cst_pct_",
        }
    }
}

/// A secret string. `Debug` and `Display` print `[redacted]`; there is no `PartialEq`:
/// compare with [`Secret::ct_eq`].
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// A fresh 256-bit secret of the given kind.
    pub fn generate(kind: SecretKind) -> Self {
        Secret(format!("{}{}", kind.prefix(), random_b64(32)))
    }
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
    /// The storage form: hex SHA-256 of the secret.
    pub fn hash(&self) -> String {
        hash_str(&self.0)
    }
    pub fn ct_eq(&self, other: &str) -> bool {
        ct_eq(self.0.as_bytes(), other.as_bytes())
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Hex SHA-256 of a string.
pub fn hash_str(value: &str) -> String {
    let digest = Sha256::digest(value.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Constant-time equality (length may leak, content does not).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// `n` bytes from the OS RNG.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    // The OS RNG failing is not recoverable for an authorization server; every caller would have to
    // abort anyway, and returning predictable bytes would be far worse.
    #[expect(clippy::expect_used, reason = "no safe fallback when the OS RNG fails")]
    getrandom::fill(&mut buf).expect("the operating system's random number generator failed");
    buf
}

/// `n` random bytes as unpadded base64url.
pub fn random_b64(n: usize) -> String {
    URL_SAFE_NO_PAD.encode(random_bytes(n))
}

/// A random identifier (UUID v4 text) for rows that are not secrets.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A token identifier (`jti`) of 256 random bits (HEART-OAUTH-34 and IGOV-OAUTH-40 ask for at
/// least 128; a UUID has 122).
pub fn new_jti() -> String {
    random_b64(32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_prefixed_long_and_distinct() {
        let a = Secret::generate(SecretKind::RefreshToken);
        let b = Secret::generate(SecretKind::RefreshToken);
        assert!(a.expose_secret().starts_with("cst_rt_"));
        assert!(a.expose_secret().len() >= 7 + 43);
        assert!(!a.ct_eq(b.expose_secret()));
        assert!(a.ct_eq(a.expose_secret()));
        assert_eq!(format!("{a:?}"), "[redacted]");
        assert_eq!(a.hash().len(), 64);
        assert_ne!(a.hash(), b.hash());
    }

    #[test]
    fn sha256_vector() {
        assert_eq!(
            hash_str("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}

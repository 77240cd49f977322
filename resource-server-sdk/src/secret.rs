//! Redacting wrappers for the secrets the SDK handles: the client secret, the PAT and its refresh
//! token, and permission tickets.
//!
//! `Debug` and `Display` print `[redacted]`, there is no `PartialEq` (compare with
//! [`ct_eq`] where a comparison is needed), and the value is reached only through an explicit
//! `expose_secret()`, so a token cannot end up in a log by accident.

use subtle::ConstantTimeEq;

macro_rules! secret_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone)]
        pub struct $name(String);

        impl $name {
            /// Wrap a secret value.
            pub fn new(value: impl Into<String>) -> Self {
                $name(value.into())
            }

            /// The secret value itself; do not log it.
            pub fn expose_secret(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("[redacted]")
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("[redacted]")
            }
        }
    };
}

secret_type!(
    /// The resource server's OAuth client secret (RFC 6749 §2.3.1).
    ClientSecret
);
secret_type!(
    /// An access token: the PAT (UMA 2.0 Federated Authorization §1.3) or an RPT as received.
    AccessToken
);
secret_type!(
    /// A refresh token (RFC 6749 §6); Custodia rotates it on every use.
    RefreshToken
);
secret_type!(
    /// A permission ticket (UMA 2.0 Federated Authorization §4.2) for the client to redeem.
    PermissionTicket
);
secret_type!(
    /// A random value that must come back unchanged: the OAuth `state` or the PKCE
    /// `code_verifier` (RFC 7636 §4.1).
    Nonce
);

/// Constant-time equality of two byte strings (their lengths may leak, their contents do not).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_redact() {
        let t = AccessToken::new("eyJhbGciOi.secret.value");
        assert_eq!(format!("{t:?}"), "[redacted]");
        assert_eq!(format!("{t}"), "[redacted]");
        assert_eq!(t.expose_secret(), "eyJhbGciOi.secret.value");
        assert_eq!(
            format!("{:?}", Some(RefreshToken::new("r"))),
            "Some([redacted])"
        );
    }

    #[test]
    fn constant_time_eq() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
        assert!(ct_eq(b"", b""));
    }
}

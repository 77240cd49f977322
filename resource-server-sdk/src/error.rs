//! The SDK's error model: one enum for everything a call can fail with, and [`TokenError`] for the
//! reasons a PAT or an RPT is refused (RFC 7519 §7.2, RFC 9068 §4, UMA 2.0 Federated Authorization
//! §5.1.1).
//!
//! Messages are lower case without a trailing period and never contain a token.

/// Why a JWT (PAT or RPT) or an introspection answer was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not a compact JWS, bad base64url, bad JSON, a missing or mistyped claim.
    #[error("malformed token")]
    Malformed,
    /// The header `alg` is not one of RS256, PS256, ES256 (never `none` or HMAC).
    #[error("unsupported algorithm `{0}`")]
    UnsupportedAlgorithm(String),
    /// The header has a `crit` member; no extension is understood.
    #[error("unsupported critical header")]
    UnsupportedCritical,
    /// No published key has the header's `kid` (and alg), even after a refetch.
    #[error("unknown signing key")]
    UnknownKey,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// The header `typ` is not `at+jwt` (RFC 9068 §2.1).
    #[error("wrong token type")]
    WrongType,
    /// `iss` is not the configured issuer.
    #[error("wrong issuer")]
    WrongIssuer,
    /// `aud` does not name this resource server.
    #[error("wrong audience")]
    WrongAudience,
    /// The PAT's `client_id` is another client.
    #[error("token issued to another client")]
    WrongClient,
    /// Past `exp` (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// Before `nbf`, or `iat` in the future (beyond the leeway).
    #[error("token not yet valid")]
    NotYetValid,
    /// An RPT without a `permissions` array (UMA-FED-35).
    #[error("token carries no permissions")]
    MissingPermissions,
    /// A PAT whose scope lacks `uma_protection` (UMA-FED-02).
    #[error("token lacks the `uma_protection` scope")]
    MissingScope,
    /// A refreshed PAT names another owner than the one it replaces.
    #[error("token names another subject")]
    SubjectMismatch,
    /// Introspection answered `active: false` (UMA-FED-40).
    #[error("token is not active")]
    Inactive,
}

/// Everything an SDK call can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is unusable (bad URL, plain HTTP to a non-loopback host, …).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The discovery document could not be used (wrong issuer, missing endpoint, bad JSON).
    #[error("discovery failed: {0}")]
    Discovery(String),
    /// The authorization server could not be reached, or the connection failed.
    #[error("request to the authorization server failed")]
    Http(#[source] reqwest::Error),
    /// The authorization server answered with an OAuth/UMA error (`error` code and
    /// `error_description`, from the JSON body or a `WWW-Authenticate: Bearer` header).
    #[error("authorization server answered {status} `{error}`{}", description.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Protocol {
        status: u16,
        error: String,
        description: Option<String>,
    },
    /// The authorization server answered something the protocol does not allow.
    #[error("unexpected response from the authorization server ({status}): {detail}")]
    UnexpectedResponse { status: u16, detail: String },
    /// The PAT from the token endpoint did not verify.
    #[error("invalid pat: {0}")]
    InvalidPat(TokenError),
    /// The RPT presented by a client did not verify or is not active.
    #[error("invalid rpt: {0}")]
    InvalidRpt(TokenError),
    /// The JWKS could not be fetched or holds no usable key.
    #[error("jwks: {0}")]
    Jwks(String),
    /// The `state` of an authorization response does not match the pending request.
    #[error("state mismatch in the authorization response")]
    StateMismatch,
    /// The pending authorization request is older than its lifetime.
    #[error("authorization request expired")]
    AuthorizationExpired,
    /// A `WWW-Authenticate: UMA` value could not be built or parsed.
    #[error("invalid uma challenge: {0}")]
    Challenge(String),
    /// No PAT is stored for this owner: they have not authorized the resource server yet.
    #[error("no pat stored for owner `{0}`")]
    NoPat(String),
    /// The owner's PAT expired and could not be refreshed (`invalid_grant` or no refresh token):
    /// the owner must go through the authorization flow again.
    #[error("owner `{0}` must authorize the resource server again")]
    ReauthorizationRequired(String),
    /// The operating system's random number generator failed.
    #[error("the os random number generator failed")]
    Random,
    /// The [`PatStore`](crate::PatStore) failed.
    #[error("pat store failed")]
    Store(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// The OAuth/UMA `error` code when the authorization server answered with one.
    pub fn protocol_error(&self) -> Option<&str> {
        match self {
            Error::Protocol { error, .. } => Some(error),
            _ => None,
        }
    }

    /// The HTTP status of the authorization server's answer, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Protocol { status, .. } | Error::UnexpectedResponse { status, .. } => {
                Some(*status)
            }
            Error::Http(e) => e.status().map(|s| s.as_u16()),
            _ => None,
        }
    }

    /// Whether the failure says the authorization server is unreachable or failing, as opposed
    /// to a decision about this request: a transport failure (refused connection, DNS, TLS,
    /// connect or total timeout, a broken body — every [`Error::Http`]), a 5xx answer, a 429
    /// (the server sheds load; Custodia rate-limits the protection API with `slow_down`), or
    /// discovery or the JWKS failing (their documents could not be had or used).
    pub fn is_unreachable(&self) -> bool {
        match self {
            Error::Http(_) | Error::Discovery(_) | Error::Jwks(_) => true,
            Error::Protocol { status, .. } | Error::UnexpectedResponse { status, .. } => {
                *status >= 500 || *status == 429
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_lower_case_without_period() {
        let cases = [
            Error::Protocol {
                status: 400,
                error: "invalid_scope".into(),
                description: Some("scope `x` is not registered".into()),
            }
            .to_string(),
            Error::Protocol {
                status: 404,
                error: "not_found".into(),
                description: None,
            }
            .to_string(),
            Error::InvalidRpt(TokenError::UnsupportedAlgorithm("none".into())).to_string(),
            Error::StateMismatch.to_string(),
            Error::NoPat("alice".into()).to_string(),
        ];
        assert_eq!(
            cases[0],
            "authorization server answered 400 `invalid_scope`: scope `x` is not registered"
        );
        assert_eq!(cases[1], "authorization server answered 404 `not_found`");
        for c in &cases {
            assert!(!c.ends_with('.'), "{c}");
            assert!(c.starts_with(|ch: char| ch.is_lowercase()), "{c}");
        }
    }

    #[test]
    fn unreachable_classification() {
        assert!(
            Error::UnexpectedResponse {
                status: 502,
                detail: "x".into()
            }
            .is_unreachable()
        );
        assert!(
            !Error::Protocol {
                status: 400,
                error: "invalid_resource_id".into(),
                description: None
            }
            .is_unreachable()
        );
        assert!(
            Error::Protocol {
                status: 429,
                error: "slow_down".into(),
                description: None
            }
            .is_unreachable()
        );
        for (status, code) in [(401, "invalid_token"), (403, "insufficient_scope")] {
            assert!(
                !Error::Protocol {
                    status,
                    error: code.into(),
                    description: None
                }
                .is_unreachable(),
                "{code}"
            );
        }
        assert!(
            !Error::UnexpectedResponse {
                status: 201,
                detail: "empty ticket".into()
            }
            .is_unreachable()
        );
        assert!(!Error::NoPat("a".into()).is_unreachable());
        assert!(!Error::ReauthorizationRequired("a".into()).is_unreachable());
    }
}

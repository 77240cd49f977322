//! The one OAuth error model: a closed enum of the RFC 6749 §4.1.2.1/§5.2, RFC 6750 §3.1, RFC 7009,
//! RFC 7591 §3.2.2, OpenID Connect Core §3.1.2.6 and UMA 2.0 Federated Authorization §3.2/§4.3 codes with exact serde names, and an error value
//! that carries the caller-facing `error_description`. The HTTP layer maps it to a status and
//! headers in exactly one place (`http::error`). Internal causes are logged, never returned.

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    UnsupportedResponseType,
    InvalidScope,
    AccessDenied,
    UnsupportedTokenType,
    InvalidToken,
    InsufficientScope,
    InvalidClientMetadata,
    InvalidRedirectUri,
    LoginRequired,
    ConsentRequired,
    InteractionRequired,
    /// UMA Federated Authorization §4.3: a permission names a resource that is not registered
    /// (for this owner and resource server).
    InvalidResourceId,
    /// UMA Federated Authorization §3.2: the resource does not exist (404).
    NotFound,
    /// UMA Federated Authorization §3.2: the method is not supported (405).
    UnsupportedMethodType,
    /// UMA Grant §3.3.6: more claims are needed (403, new ticket, `required_claims` and/or
    /// `redirect_user`).
    NeedInfo,
    /// UMA Grant §3.3.6: the client is not authorized for these permissions (403).
    RequestDenied,
    /// UMA Grant §3.3.6: the owner has to decide (403, new ticket, `interval`).
    RequestSubmitted,
    /// The owner API: a policy that does not validate (400, with `diagnostics`).
    InvalidPolicy,
    /// RFC 9449 §5: a missing or invalid DPoP proof (400 at the token endpoint).
    InvalidDpopProof,
    /// RFC 9449 §8: the proof must carry the nonce sent in the `DPoP-Nonce` header.
    UseDpopNonce,
    /// OpenID Connect Core §3.1.2.6: the `request` object is invalid (signature, claims).
    InvalidRequestObject,
    /// OpenID Connect Core §3.1.2.6: `request_uri` is not supported.
    RequestUriNotSupported,
    /// RFC 7591 §3.2.2: the software statement is invalid.
    InvalidSoftwareStatement,
    /// RFC 7591 §3.2.2: the software statement's issuer is not trusted here.
    UnapprovedSoftwareStatement,
    /// RFC 8707 §2: a `resource` value is invalid or not allowed here.
    InvalidTarget,
    /// Rate limited (answered with 429 and `Retry-After`).
    SlowDown,
    ServerError,
    TemporarilyUnavailable,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::UnsupportedResponseType => "unsupported_response_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::UnsupportedTokenType => "unsupported_token_type",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::InsufficientScope => "insufficient_scope",
            ErrorCode::InvalidClientMetadata => "invalid_client_metadata",
            ErrorCode::InvalidRedirectUri => "invalid_redirect_uri",
            ErrorCode::LoginRequired => "login_required",
            ErrorCode::ConsentRequired => "consent_required",
            ErrorCode::InteractionRequired => "interaction_required",
            ErrorCode::InvalidResourceId => "invalid_resource_id",
            ErrorCode::NotFound => "not_found",
            ErrorCode::UnsupportedMethodType => "unsupported_method_type",
            ErrorCode::NeedInfo => "need_info",
            ErrorCode::RequestDenied => "request_denied",
            ErrorCode::RequestSubmitted => "request_submitted",
            ErrorCode::InvalidPolicy => "invalid_policy",
            ErrorCode::InvalidDpopProof => "invalid_dpop_proof",
            ErrorCode::UseDpopNonce => "use_dpop_nonce",
            ErrorCode::InvalidRequestObject => "invalid_request_object",
            ErrorCode::RequestUriNotSupported => "request_uri_not_supported",
            ErrorCode::InvalidSoftwareStatement => "invalid_software_statement",
            ErrorCode::UnapprovedSoftwareStatement => "unapproved_software_statement",
            ErrorCode::InvalidTarget => "invalid_target",
            ErrorCode::SlowDown => "slow_down",
            ErrorCode::ServerError => "server_error",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
        }
    }
}

/// An OAuth error as the caller sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OAuthError {
    pub error: ErrorCode,
    pub error_description: String,
    /// Seconds after which a rate-limited caller may retry.
    #[serde(skip)]
    pub retry_after: Option<u64>,
    /// The methods a 405 answer lists in `Allow`.
    #[serde(skip)]
    pub allow: Option<&'static str>,
    /// The UMA members of a `need_info` or `request_submitted` answer.
    #[serde(flatten)]
    pub uma: Option<Box<UmaExtras>>,
    /// Every error and warning of an invalid policy, with its location.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diagnostics: Option<Vec<serde_json::Value>>,
}

/// UMA Grant §3.3.6 error members. The ticket is a secret: `Debug` redacts it.
#[derive(Clone, PartialEq, Eq, Serialize, Default)]
pub struct UmaExtras {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub required_claims: Option<Vec<serde_json::Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirect_user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<u64>,
}

impl std::fmt::Debug for UmaExtras {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UmaExtras")
            .field("ticket", &self.ticket.as_ref().map(|_| "[redacted]"))
            .field("required_claims", &self.required_claims)
            .field("redirect_user", &self.redirect_user)
            .field("interval", &self.interval)
            .finish()
    }
}

impl OAuthError {
    pub fn new(error: ErrorCode, description: impl Into<String>) -> Self {
        OAuthError {
            error,
            error_description: description.into(),
            retry_after: None,
            allow: None,
            uma: None,
            diagnostics: None,
        }
    }
    pub fn invalid_request(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, d)
    }
    pub fn invalid_client(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidClient, d)
    }
    pub fn invalid_grant(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidGrant, d)
    }
    pub fn invalid_scope(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidScope, d)
    }
    pub fn invalid_token(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidToken, d)
    }
    pub fn unauthorized_client(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::UnauthorizedClient, d)
    }
    pub fn metadata(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidClientMetadata, d)
    }
    pub fn slow_down(retry_after: u64) -> Self {
        OAuthError {
            error: ErrorCode::SlowDown,
            error_description: format!("too many requests, retry in {retry_after} s"),
            retry_after: Some(retry_after),
            allow: None,
            uma: None,
            diagnostics: None,
        }
    }
    /// A UMA Grant §3.3.6 answer (`need_info`, `request_submitted`, `request_denied`).
    pub fn uma(error: ErrorCode, description: impl Into<String>, extras: UmaExtras) -> Self {
        OAuthError {
            uma: Some(Box::new(extras)),
            ..Self::new(error, description)
        }
    }
    /// UMA Federated Authorization §3.2: `unsupported_method_type` (405) with the allowed methods.
    pub fn method_not_allowed(method: &str, allow: &'static str) -> Self {
        OAuthError {
            allow: Some(allow),
            ..Self::new(
                ErrorCode::UnsupportedMethodType,
                format!("method `{method}` is not supported here; use {allow}"),
            )
        }
    }
    /// A failure that is not the caller's fault: the cause is logged here and the caller gets a
    /// generic `server_error`.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(cause = %cause, "internal error");
        Self::new(
            ErrorCode::ServerError,
            "the server could not complete the request",
        )
    }
}

impl std::fmt::Display for OAuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error.as_str(), self.error_description)
    }
}

impl From<crate::store::StoreError> for OAuthError {
    fn from(e: crate::store::StoreError) -> Self {
        OAuthError::internal(e)
    }
}

impl From<crate::keys::KeyError> for OAuthError {
    fn from(e: crate::keys::KeyError) -> Self {
        OAuthError::internal(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_names_match_the_rfcs() -> Result<(), serde_json::Error> {
        for code in [
            ErrorCode::InvalidRequest,
            ErrorCode::InvalidClient,
            ErrorCode::InvalidGrant,
            ErrorCode::UnauthorizedClient,
            ErrorCode::UnsupportedGrantType,
            ErrorCode::UnsupportedResponseType,
            ErrorCode::InvalidScope,
            ErrorCode::AccessDenied,
            ErrorCode::UnsupportedTokenType,
            ErrorCode::InvalidToken,
            ErrorCode::InsufficientScope,
            ErrorCode::InvalidClientMetadata,
            ErrorCode::InvalidRedirectUri,
            ErrorCode::LoginRequired,
            ErrorCode::ConsentRequired,
            ErrorCode::InteractionRequired,
            ErrorCode::InvalidResourceId,
            ErrorCode::NotFound,
            ErrorCode::UnsupportedMethodType,
            ErrorCode::NeedInfo,
            ErrorCode::RequestDenied,
            ErrorCode::RequestSubmitted,
            ErrorCode::InvalidPolicy,
            ErrorCode::InvalidDpopProof,
            ErrorCode::UseDpopNonce,
            ErrorCode::InvalidRequestObject,
            ErrorCode::RequestUriNotSupported,
            ErrorCode::InvalidSoftwareStatement,
            ErrorCode::UnapprovedSoftwareStatement,
            ErrorCode::InvalidTarget,
            ErrorCode::SlowDown,
            ErrorCode::ServerError,
            ErrorCode::TemporarilyUnavailable,
        ] {
            assert_eq!(
                serde_json::to_value(code)?,
                serde_json::Value::String(code.as_str().into())
            );
        }
        Ok(())
    }
}

//! The one mapping from [`OAuthError`] to an HTTP response (status, `WWW-Authenticate`, `Allow`,
//! `Retry-After`, `Cache-Control: no-store`), and error pages for browser endpoints.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{ALLOW, CACHE_CONTROL, PRAGMA, RETRY_AFTER, WWW_AUTHENTICATE};

use crate::protocol::error::{ErrorCode, OAuthError};

/// The HTTP status of an error code (RFC 6749 §5.2, RFC 6750 §3.1, RFC 7591 §3.2.2, RFC 7592).
pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidClient | ErrorCode::InvalidToken => StatusCode::UNAUTHORIZED,
        ErrorCode::InsufficientScope
        | ErrorCode::AccessDenied
        | ErrorCode::NeedInfo
        | ErrorCode::RequestDenied
        | ErrorCode::RequestSubmitted => StatusCode::FORBIDDEN,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::UnsupportedMethodType => StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::SlowDown => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    }
}

fn quote(s: &str) -> String {
    s.chars()
        .filter(|c| *c != '"' && *c != '\\' && !c.is_control())
        .collect()
}

/// A JSON error response.
pub fn oauth(e: &OAuthError) -> HttpResponse {
    with_status(e, status_of(e.error))
}

/// A JSON error response with an explicit status (413 for oversized bodies).
pub fn with_status(e: &OAuthError, status: StatusCode) -> HttpResponse {
    let mut r = HttpResponse::build(status);
    r.insert_header((CACHE_CONTROL, "no-store"))
        .insert_header((PRAGMA, "no-cache"));
    match e.error {
        ErrorCode::InvalidClient => {
            r.insert_header((WWW_AUTHENTICATE, "Basic realm=\"custodia\""));
        }
        ErrorCode::InvalidToken | ErrorCode::InsufficientScope => {
            r.insert_header((
                WWW_AUTHENTICATE,
                format!(
                    "Bearer realm=\"custodia\", error=\"{}\", error_description=\"{}\"",
                    e.error.as_str(),
                    quote(&e.error_description)
                ),
            ));
        }
        _ => {}
    }
    if let Some(s) = e.retry_after {
        r.insert_header((RETRY_AFTER, s.to_string()));
    }
    if let Some(methods) = e.allow {
        r.insert_header((ALLOW, methods));
    }
    r.json(e)
}

/// The error page for browser endpoints: never a redirect.
pub fn page(e: &OAuthError) -> HttpResponse {
    let (title, status) = match e.error {
        ErrorCode::ServerError => ("Something went wrong", StatusCode::INTERNAL_SERVER_ERROR),
        ErrorCode::SlowDown => ("Too many attempts", StatusCode::TOO_MANY_REQUESTS),
        _ => ("This request cannot be completed", StatusCode::BAD_REQUEST),
    };
    let mut resp =
        super::pages::error_page(title, &e.error_description, Some(e.error.as_str()), status);
    if let Some(s) = e.retry_after
        && let Ok(v) = actix_web::http::header::HeaderValue::from_str(&s.to_string())
    {
        resp.headers_mut().insert(RETRY_AFTER, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    // The mapping, pinned as a table.
    #[test]
    fn status_table() {
        let table = [
            (ErrorCode::InvalidRequest, 400),
            (ErrorCode::InvalidClient, 401),
            (ErrorCode::InvalidGrant, 400),
            (ErrorCode::UnauthorizedClient, 400),
            (ErrorCode::UnsupportedGrantType, 400),
            (ErrorCode::UnsupportedResponseType, 400),
            (ErrorCode::InvalidScope, 400),
            (ErrorCode::AccessDenied, 403),
            (ErrorCode::UnsupportedTokenType, 400),
            (ErrorCode::InvalidToken, 401),
            (ErrorCode::InsufficientScope, 403),
            (ErrorCode::InvalidClientMetadata, 400),
            (ErrorCode::InvalidRedirectUri, 400),
            (ErrorCode::LoginRequired, 400),
            (ErrorCode::ConsentRequired, 400),
            (ErrorCode::InteractionRequired, 400),
            (ErrorCode::InvalidResourceId, 400),
            (ErrorCode::NotFound, 404),
            (ErrorCode::UnsupportedMethodType, 405),
            (ErrorCode::NeedInfo, 403),
            (ErrorCode::RequestDenied, 403),
            (ErrorCode::RequestSubmitted, 403),
            (ErrorCode::InvalidPolicy, 400),
            (ErrorCode::InvalidDpopProof, 400),
            (ErrorCode::UseDpopNonce, 400),
            (ErrorCode::InvalidRequestObject, 400),
            (ErrorCode::RequestUriNotSupported, 400),
            (ErrorCode::InvalidSoftwareStatement, 400),
            (ErrorCode::UnapprovedSoftwareStatement, 400),
            (ErrorCode::SlowDown, 429),
            (ErrorCode::ServerError, 500),
            (ErrorCode::TemporarilyUnavailable, 503),
        ];
        for (code, status) in table {
            assert_eq!(status_of(code).as_u16(), status, "{code:?}");
        }
    }
}

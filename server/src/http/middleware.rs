//! Request observation and response hardening, applied to every response.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web;
use tracing::Instrument as _;

use super::AppState;

/// Endpoints that browser-based clients call cross-origin (RFC 9700 §2.6 allows CORS on token,
/// metadata, JWKS, registration, and OIDC userinfo; never on `/authorize`).
pub const CORS_PATHS: &[&str] = &[
    "/.well-known/openid-configuration",
    "/.well-known/oauth-authorization-server",
    "/.well-known/uma2-configuration",
    "/jwks",
    "/token",
    "/revoke",
    "/userinfo",
    "/register",
];

const CSP: &str =
    "default-src 'none'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'";

fn set(res: &mut actix_web::http::header::HeaderMap, name: HeaderName, value: &'static str) {
    res.insert(name, HeaderValue::from_static(value));
}

/// A request id, one span and one log line per request (method, path, status, duration — never the
/// query string, headers or body), and the security headers.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let https = req
        .app_data::<web::Data<AppState>>()
        .is_some_and(|s| s.core.config.is_https());
    let request_id = crate::secrets::random_b64(9);
    let method = req.method().to_string();
    let path: String = req.path().chars().take(200).collect();
    let span =
        tracing::info_span!("request", request_id = %request_id, method = %method, path = %path);
    let started = Instant::now();
    let cors = CORS_PATHS.contains(&req.path());

    let mut res = next.call(req).instrument(span.clone()).await?;

    let h = res.headers_mut();
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::REFERRER_POLICY, "no-referrer");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::CONTENT_SECURITY_POLICY, CSP);
    set(
        h,
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    if https {
        set(
            h,
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=31536000; includeSubDomains",
        );
    }
    if !h.contains_key(header::CACHE_CONTROL) {
        set(h, header::CACHE_CONTROL, "no-store");
        set(h, header::PRAGMA, "no-cache");
    }
    if cors {
        set(h, header::ACCESS_CONTROL_ALLOW_ORIGIN, "*");
        set(
            h,
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            "WWW-Authenticate, Retry-After",
        );
    }
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        h.insert(HeaderName::from_static("x-request-id"), v);
    }
    let status = res.status().as_u16();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| {
        if status >= 500 {
            tracing::error!(status, ms, "request failed");
        } else {
            tracing::info!(status, ms, "request");
        }
    });
    Ok(res)
}

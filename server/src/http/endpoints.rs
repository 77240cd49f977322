//! Handlers of the machine-facing endpoints: discovery, JWKS, token, introspection, revocation,
//! userinfo, registration (RFC 7591/7592), health. Each one parses, calls one protocol function and
//! maps the result.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, CACHE_CONTROL};
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt as _;

use super::AppState;
use super::error;
use crate::protocol::error::{ErrorCode, OAuthError};
use crate::protocol::params::Params;
use crate::protocol::{discovery, dpop, grant, introspect, registration, revoke, userinfo};

/// The body, or the error response to send (413 when over the configured limit).
pub async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::Bytes, HttpResponse> {
    let too_large = || {
        error::with_status(
            &OAuthError::invalid_request(format!("the request body is larger than {limit} bytes")),
            StatusCode::PAYLOAD_TOO_LARGE,
        )
    };
    if let Some(len) = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        && len > limit
    {
        return Err(too_large());
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| {
            error::oauth(&OAuthError::invalid_request(
                "the request body could not be read",
            ))
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

pub(super) fn content_type_is(req: &HttpRequest, want: &str) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(want))
}

/// A form body (RFC 6749 §3.2: `application/x-www-form-urlencoded`), parsed.
async fn read_form(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<Params, HttpResponse> {
    if !content_type_is(req, "application/x-www-form-urlencoded") {
        return Err(error::oauth(&OAuthError::invalid_request(
            "the body must be `application/x-www-form-urlencoded`",
        )));
    }
    let body = read_body(req, payload, state.core.config.max_body_bytes).await?;
    Params::parse(&body).map_err(|e| error::oauth(&e))
}

fn authorization(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
}

fn peer(req: &HttpRequest) -> String {
    req.peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Rate limit of the token-like endpoints by source address (the per-client limit applies after
/// client authentication, in the protocol core).
fn limit_source(state: &AppState, req: &HttpRequest) -> Result<(), OAuthError> {
    state
        .core
        .limits
        .token(format!("ip:{}", peer(req)))
        .map_err(OAuthError::slow_down)
}

/// Source limit, then the form: what the token, introspection and revocation endpoints share.
async fn limited_form(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<Params, HttpResponse> {
    limit_source(state, req).map_err(|e| error::oauth(&e))?;
    if !req.query_string().is_empty() {
        return Err(error::oauth(&OAuthError::invalid_request(
            "parameters in the URL are not accepted here; send them in the form body",
        )));
    }
    read_form(req, payload, state).await
}

pub(super) fn no_store_json(status: StatusCode, body: &impl serde::Serialize) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(body)
}

pub async fn discovery(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            CACHE_CONTROL,
            format!(
                "public, max-age={}",
                state.core.config.profile.metadata_max_age
            ),
        ))
        .json(discovery::metadata(&state.core))
}

pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            CACHE_CONTROL,
            format!(
                "public, max-age={}",
                state.core.config.profile.metadata_max_age
            ),
        ))
        .content_type("application/jwk-set+json")
        .body(state.core.keys.jwks().to_string())
}

/// RFC 6749 §3.2 / §5.
pub async fn token(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let params = match limited_form(&req, payload, &state).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let dpop: Vec<&str> = req
        .headers()
        .get_all("dpop")
        // a header that is not visible ASCII still counts: it fails as a malformed proof
        .map(|v| v.to_str().unwrap_or("\u{fffd}"))
        .collect();
    let now = state.core.now();
    let mut resp = match grant::token(&state.core, &params, authorization(&req), &dpop, now).await {
        Ok(t) => no_store_json(StatusCode::OK, &t),
        Err(e) => error::oauth(&e),
    };
    // RFC 9449 §8: a fresh nonce with every answer (with `use_dpop_nonce` it is the one to use).
    if state.core.config.dpop_nonce
        && let Some(n) = dpop::nonce(&state.core, now)
        && let Ok(v) = header::HeaderValue::from_str(&n)
    {
        resp.headers_mut()
            .insert(header::HeaderName::from_static("dpop-nonce"), v);
    }
    resp
}

/// RFC 7662.
pub async fn introspect(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let params = match limited_form(&req, payload, &state).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    // A PAT (`Bearer` or `DPoP`) passes the binding checks of `access_token` first: a bound PAT
    // only with its proof; then it is handed on as a bearer credential. Client authentication
    // (`Basic`) goes through as it came.
    let pat = match access_token(&req, &state).await {
        Ok(Some(t)) => Some(format!("Bearer {t}")),
        Ok(None) => None,
        Err(r) => return r,
    };
    let presented = pat.as_deref().or(authorization(&req));
    match introspect::introspect(&state.core, &params, presented, state.core.now()).await {
        Ok(v) => no_store_json(StatusCode::OK, &v),
        Err(e) => error::oauth(&e),
    }
}

/// RFC 7009.
pub async fn revoke(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let params = match limited_form(&req, payload, &state).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    match revoke::revoke(&state.core, &params, authorization(&req), state.core.now()).await {
        Ok(()) => HttpResponse::Ok()
            .insert_header((CACHE_CONTROL, "no-store"))
            .finish(),
        Err(e) => error::oauth(&e),
    }
}

/// The bearer token of an `Authorization: Bearer` header (RFC 6750 §2.1).
pub(super) fn bearer(req: &HttpRequest) -> Option<&str> {
    let h = authorization(req)?;
    let (scheme, token) = h.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|t| !t.is_empty())
}

/// The access token of `Authorization: Bearer …` or `Authorization: DPoP …` (RFC 6750 §2.1,
/// RFC 9449 §7): for either scheme, [`dpop::presented`] checks the token's binding and the proof.
/// `Ok(None)`: no token. Errors are 401 with a `WWW-Authenticate` challenge of the scheme used.
pub(super) async fn access_token(
    req: &HttpRequest,
    state: &AppState,
) -> Result<Option<String>, HttpResponse> {
    let Some((scheme, token)) = authorization(req).and_then(|h| h.split_once(' ')) else {
        return Ok(None);
    };
    let token = token.trim();
    let dpop_scheme = scheme.eq_ignore_ascii_case("dpop");
    if token.is_empty() || !(dpop_scheme || scheme.eq_ignore_ascii_case("bearer")) {
        return Ok(None);
    }
    let proofs: Vec<&str> = req
        .headers()
        .get_all("dpop")
        // a header that is not visible ASCII still counts: it fails as a malformed proof
        .map(|v| v.to_str().unwrap_or("\u{fffd}"))
        .collect();
    let url = state.core.config.url(req.path());
    let now = state.core.now();
    match dpop::presented(
        &state.core,
        dpop_scheme,
        token,
        &proofs,
        req.method().as_str(),
        &url,
        now,
    )
    .await
    {
        Ok(()) => Ok(Some(token.to_string())),
        Err(e) if e.error == ErrorCode::ServerError => Err(error::oauth(&e)),
        Err(e) => {
            // Every refusal here concerns DPoP (a bound token without its proof, or a bad proof):
            // the challenge is DPoP's (RFC 9449 §7.1).
            let challenge = format!(
                "DPoP error=\"{}\", algs=\"{}\"",
                e.error.as_str(),
                state.core.config.profile.dpop_algs.join(" ")
            );
            let mut resp = error::with_status(&e, StatusCode::UNAUTHORIZED);
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_str(&challenge)
                    .unwrap_or_else(|_| header::HeaderValue::from_static("DPoP")),
            );
            Err(resp)
        }
    }
}

/// OpenID Connect Core §5.3. Tokens only in the `Authorization` header.
pub async fn userinfo(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let in_query = Params::parse(req.query_string().as_bytes())
        .map(|p| p.contains("access_token"))
        .unwrap_or(true);
    if in_query {
        return error::oauth(&OAuthError::invalid_request(
            "access tokens in the URL are refused; use the `Authorization: Bearer` header",
        ));
    }
    if req.method() == actix_web::http::Method::POST {
        let body = match read_body(&req, payload, state.core.config.max_body_bytes).await {
            Ok(b) => b,
            Err(r) => return r,
        };
        if Params::parse(&body)
            .map(|p| p.contains("access_token"))
            .unwrap_or(false)
        {
            return error::oauth(&OAuthError::invalid_request(
                "access tokens in the body are refused; use the `Authorization: Bearer` header",
            ));
        }
    }
    let token = match access_token(&req, &state).await {
        Ok(Some(t)) => t,
        Ok(None) => {
            return HttpResponse::Unauthorized()
                .insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"custodia\""))
                .finish();
        }
        Err(r) => return r,
    };
    let wants_jwt = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| {
            a.split(',')
                .any(|t| t.split(';').next().map(str::trim) == Some("application/jwt"))
        });
    match userinfo::userinfo(&state.core, &token, wants_jwt, state.core.now()).await {
        Ok(userinfo::UserInfo::Json(v)) => no_store_json(StatusCode::OK, &v),
        Ok(userinfo::UserInfo::Jwt(jwt)) => HttpResponse::Ok()
            .content_type("application/jwt")
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .body(jwt),
        Err(e) => error::oauth(&e),
    }
}

/// RFC 7591 §3.
pub async fn register(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let now = state.core.now();
    if let Err(e) = registration::check_allowed(&state.core, bearer(&req), now).await {
        return error::oauth(&e);
    }
    if !content_type_is(&req, "application/json") {
        return error::oauth(&OAuthError::invalid_request(
            "the body must be `application/json`",
        ));
    }
    let body = match read_body(&req, payload, state.core.config.max_body_bytes).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    match registration::register(&state.core, &body, now).await {
        Ok(v) => no_store_json(StatusCode::CREATED, &v),
        Err(e) => error::oauth(&e),
    }
}

pub async fn register_read(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> HttpResponse {
    match registration::authorize_management(&state.core, &path, bearer(&req)).await {
        Ok(row) => match registration::read(&state.core, &row) {
            Ok(v) => no_store_json(StatusCode::OK, &v),
            Err(e) => error::oauth(&e),
        },
        Err(e) => error::oauth(&e),
    }
}

pub async fn register_update(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let row = match registration::authorize_management(&state.core, &path, bearer(&req)).await {
        Ok(r) => r,
        Err(e) => return error::oauth(&e),
    };
    if !content_type_is(&req, "application/json") {
        return error::oauth(&OAuthError::invalid_request(
            "the body must be `application/json`",
        ));
    }
    let body = match read_body(&req, payload, state.core.config.max_body_bytes).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    match registration::update(&state.core, row, &body, state.core.now()).await {
        Ok(v) => no_store_json(StatusCode::OK, &v),
        Err(e) => error::oauth(&e),
    }
}

pub async fn register_delete(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let row = match registration::authorize_management(&state.core, &path, bearer(&req)).await {
        Ok(r) => r,
        Err(e) => return error::oauth(&e),
    };
    match registration::delete(&state.core, row).await {
        Ok(()) => HttpResponse::NoContent().finish(),
        Err(e) => error::oauth(&e),
    }
}

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok")
}

pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    match state.core.store.ping().await {
        Ok(()) => HttpResponse::Ok().content_type("text/plain").body("ready"),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            HttpResponse::ServiceUnavailable()
                .content_type("text/plain")
                .body("database unavailable")
        }
    }
}

pub async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, "public, max-age=3600"))
        .content_type("text/css")
        .body(super::pages::STYLESHEET)
}

pub async fn preflight() -> HttpResponse {
    HttpResponse::NoContent()
        .insert_header((
            header::ACCESS_CONTROL_ALLOW_METHODS,
            "GET, POST, PUT, DELETE",
        ))
        .insert_header((
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            "Authorization, Content-Type, DPoP",
        ))
        .insert_header((header::ACCESS_CONTROL_MAX_AGE, "600"))
        .finish()
}

pub async fn not_found(req: HttpRequest) -> HttpResponse {
    let allowed = match req.path() {
        "/token"
        | "/introspect"
        | "/revoke"
        | "/register"
        | "/authorize/login"
        | "/authorize/consent"
        | "/account/login"
        | "/account/disconnect" => Some("POST"),
        "/userinfo" | "/authorize" => Some("GET, POST"),
        "/jwks"
        | "/account"
        | "/healthz"
        | "/readyz"
        | "/.well-known/openid-configuration"
        | "/.well-known/oauth-authorization-server"
        | "/.well-known/uma2-configuration" => Some("GET"),
        _ => None,
    };
    match allowed {
        Some(methods) => HttpResponse::MethodNotAllowed()
            .insert_header((header::ALLOW, methods))
            .json(OAuthError::invalid_request(format!(
                "method {} is not allowed here",
                req.method()
            ))),
        None => HttpResponse::NotFound().json(OAuthError::new(
            ErrorCode::InvalidRequest,
            "no such endpoint",
        )),
    }
}

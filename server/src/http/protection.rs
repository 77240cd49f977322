//! Handlers of the UMA protection API (Federated Authorization §3–§4) and UMA discovery: each one
//! checks the method (405 with `Allow`, UMA-FED-22), the PAT (401/403, RFC 6750), the body, then
//! calls one protocol function and maps the result.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, CACHE_CONTROL, LOCATION};
use actix_web::{HttpRequest, HttpResponse, web};

use super::AppState;
use super::endpoints::{access_token, content_type_is, no_store_json, read_body};
use super::error;
use crate::protocol::error::OAuthError;
use crate::protocol::protection::{self, Pat};
use crate::protocol::{discovery, permission, resources};

/// `GET /.well-known/uma2-configuration` (UMA-GRANT-01).
pub async fn uma_discovery(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            CACHE_CONTROL,
            format!(
                "public, max-age={}",
                state.core.config.profile.metadata_max_age
            ),
        ))
        .json(discovery::uma_metadata(&state.core))
}

/// Why a request carries no usable bearer token.
enum NoBearer {
    /// A token in the URL: refused (RFC 6750 §2.3 is not supported).
    InQuery,
    /// No token at all: a bare `Bearer` challenge with no error code (RFC 6750 §3.1).
    Missing,
}

impl NoBearer {
    fn response(self) -> HttpResponse {
        match self {
            NoBearer::InQuery => error::oauth(&OAuthError::invalid_request(
                "access tokens in the URL are refused; use the `Authorization: Bearer` header",
            )),
            NoBearer::Missing => HttpResponse::Unauthorized()
                .insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"custodia\""))
                .finish(),
        }
    }
}

/// The access token of the request (`Bearer`, or `DPoP` with its proof checked).
async fn bearer_token(req: &HttpRequest, state: &AppState) -> Result<String, HttpResponse> {
    let in_query = crate::protocol::params::Params::parse(req.query_string().as_bytes())
        .map(|p| p.contains("access_token"))
        .unwrap_or(true);
    if in_query {
        return Err(NoBearer::InQuery.response());
    }
    access_token(req, state)
        .await?
        .ok_or_else(|| NoBearer::Missing.response())
}

/// The PAT of the request, or the response to send (`invalid_token`, `insufficient_scope`).
async fn pat(req: &HttpRequest, state: &AppState) -> Result<Pat, HttpResponse> {
    let token = bearer_token(req, state).await?;
    protection::authenticate(&state.core, &token, state.core.now())
        .await
        .map_err(|e| error::oauth(&e))
}

/// The JSON body of a create, update or permission request.
async fn json_body(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<web::Bytes, HttpResponse> {
    if !content_type_is(req, "application/json") {
        return Err(error::oauth(&OAuthError::invalid_request(
            "the body must be `application/json`",
        )));
    }
    read_body(req, payload, state.core.config.max_body_bytes).await
}

fn method_not_allowed(req: &HttpRequest, allow: &'static str) -> HttpResponse {
    error::oauth(&OAuthError::method_not_allowed(
        req.method().as_str(),
        allow,
    ))
}

/// `/uma/resources`: list (GET) and create (POST), §3.2.1 and §3.2.5.
pub async fn collection(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let method = req.method().clone();
    if method != actix_web::http::Method::GET && method != actix_web::http::Method::POST {
        return method_not_allowed(&req, "GET, POST");
    }
    let pat = match pat(&req, &state).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    if method == actix_web::http::Method::GET {
        return match resources::list(&state.core, &pat).await {
            Ok(ids) => no_store_json(StatusCode::OK, &ids),
            Err(e) => error::oauth(&e),
        };
    }
    let body = match json_body(&req, payload, &state).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    match resources::create(&state.core, &pat, &body, state.core.now()).await {
        Ok((id, v)) => HttpResponse::Created()
            .insert_header((LOCATION, resources::location(&state.core, &id)))
            .insert_header((CACHE_CONTROL, "no-store"))
            .json(v),
        Err(e) => error::oauth(&e),
    }
}

/// `/uma/resources/{id}`: read (GET), update (PUT), delete (DELETE), §3.2.2–§3.2.4.
pub async fn item(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    use actix_web::http::Method;
    let method = req.method().clone();
    if ![Method::GET, Method::PUT, Method::DELETE].contains(&method) {
        return method_not_allowed(&req, "GET, PUT, DELETE");
    }
    let pat = match pat(&req, &state).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let id = path.into_inner();
    let core = &state.core;
    if method == Method::GET {
        match resources::read(core, &pat, &id).await {
            Ok(v) => no_store_json(StatusCode::OK, &v),
            Err(e) => error::oauth(&e),
        }
    } else if method == Method::DELETE {
        match resources::delete(core, &pat, &id).await {
            Ok(()) => HttpResponse::NoContent().finish(),
            Err(e) => error::oauth(&e),
        }
    } else {
        let body = match json_body(&req, payload, &state).await {
            Ok(b) => b,
            Err(r) => return r,
        };
        match resources::update(core, &pat, &id, &body, core.now()).await {
            Ok(v) => no_store_json(StatusCode::OK, &v),
            Err(e) => error::oauth(&e),
        }
    }
}

/// `/uma/permission` (POST), §4.
pub async fn permission(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    if req.method() != actix_web::http::Method::POST {
        return method_not_allowed(&req, "POST");
    }
    let token = match bearer_token(&req, &state).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let body = if content_type_is(&req, "application/json") {
        match read_body(&req, payload, state.core.config.max_body_bytes).await {
            Ok(b) => Ok(b),
            Err(r) => return r,
        }
    } else {
        Err(OAuthError::invalid_request(
            "the body must be `application/json`",
        ))
    };
    let body = body.as_ref().map(|b| &b[..]).map_err(Clone::clone);
    match permission::request(&state.core, &token, body, state.core.now()).await {
        Ok(ticket) => no_store_json(
            StatusCode::CREATED,
            &serde_json::json!({ "ticket": ticket.expose_secret() }),
        ),
        Err(e) => error::oauth(&e),
    }
}

/// `user_access_policy_uri` (UMA-FED-20): where the owner will set the resource's policies. The
/// policy UI comes later; until then the page says so, and names nothing about the resource (the
/// id alone must not disclose what it is).
pub async fn policy_page(_path: web::Path<String>) -> HttpResponse {
    super::pages::error_page(
        "Sharing settings",
        "This is where you will decide who may use this resource. The sharing settings page is not available yet in this version of Custodia.",
        None,
        StatusCode::OK,
    )
}

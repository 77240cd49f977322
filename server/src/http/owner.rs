//! The owner API (JSON): `/owner/resources`, `/owner/policies` (+ `/{id}`), `/owner/settings`,
//! `/owner/requests` (+ `/{id}/approve`, `/{id}/deny`), `/owner/decisions`. The owner is the
//! user of the browser session (the account page's sign-in) or of a bearer token with scope
//! `custodia:owner`. State-changing calls need `Content-Type: application/json`, which a
//! cross-site form cannot send and a cross-site script cannot send without a CORS preflight this
//! server never grants; the session cookie is `SameSite=Lax` besides.

use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, web};

use super::AppState;
use super::authorize::current_session;
use super::endpoints::{access_token, content_type_is, no_store_json, read_body};
use super::error;
use crate::protocol::error::OAuthError;
use crate::protocol::{owner, policies};

/// The owner of the request, or the answer to send.
async fn who(req: &HttpRequest, state: &AppState) -> Result<String, HttpResponse> {
    let now = state.core.now();
    if let Some(token) = access_token(req, state).await? {
        return owner::from_token(&state.core, &token, now)
            .await
            .map_err(|e| error::oauth(&e));
    }
    match current_session(state, req, now).await {
        Ok(Some((_, user))) => Ok(user.id),
        Ok(None) => Err(HttpResponse::Unauthorized()
            .insert_header((
                actix_web::http::header::WWW_AUTHENTICATE,
                "Bearer realm=\"custodia\"",
            ))
            .json(OAuthError::invalid_token(
                "sign in on /account, or send a token with the `custodia:owner` scope",
            ))),
        Err(e) => Err(error::oauth(&e)),
    }
}

/// The JSON body of a state-changing call (see the module docs).
async fn body(
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

fn answer(r: Result<serde_json::Value, OAuthError>) -> HttpResponse {
    match r {
        Ok(v) => no_store_json(StatusCode::OK, &v),
        Err(e) => error::oauth(&e),
    }
}

pub async fn resources(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    match who(&req, &state).await {
        Ok(o) => answer(owner::resources(&state.core, &o).await),
        Err(r) => r,
    }
}

pub async fn policies_collection(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let o = match who(&req, &state).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    if req.method() == Method::GET {
        return answer(policies::list(&state.core, &o).await);
    }
    let b = match body(&req, payload, &state).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    match policies::create(&state.core, &o, &b, state.core.now()).await {
        Ok(v) => no_store_json(StatusCode::CREATED, &v),
        Err(e) => error::oauth(&e),
    }
}

pub async fn policy_delete(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let o = match who(&req, &state).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    match policies::delete(&state.core, &o, &path, state.core.now()).await {
        Ok(()) => HttpResponse::NoContent().finish(),
        Err(e) => error::oauth(&e),
    }
}

pub async fn settings(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let o = match who(&req, &state).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    if req.method() == Method::GET {
        return answer(owner::settings(&state.core, &o).await);
    }
    let b = match body(&req, payload, &state).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    answer(owner::set_settings(&state.core, &o, &b, state.core.now()).await)
}

#[derive(serde::Deserialize)]
pub struct StatusQuery {
    status: Option<String>,
}

pub async fn requests(
    req: HttpRequest,
    q: web::Query<StatusQuery>,
    state: web::Data<AppState>,
) -> HttpResponse {
    match who(&req, &state).await {
        Ok(o) => answer(owner::requests(&state.core, &o, q.status.as_deref()).await),
        Err(r) => r,
    }
}

pub async fn decide(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let o = match who(&req, &state).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let b = match body(&req, payload, &state).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let (id, action) = path.into_inner();
    let now = state.core.now();
    match action.as_str() {
        "approve" => answer(owner::approve(&state.core, &o, &id, &b, now).await),
        "deny" => answer(owner::deny(&state.core, &o, &id, now).await),
        _ => error::oauth(&OAuthError::new(
            crate::protocol::error::ErrorCode::NotFound,
            "no such action; use `approve` or `deny`",
        )),
    }
}

pub async fn decisions(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    match who(&req, &state).await {
        Ok(o) => answer(owner::decisions(&state.core, &o).await),
        Err(r) => r,
    }
}

//! The claims interaction endpoint's pages (UMA Grant §3.3.2): `GET /uma/claims` (with a session,
//! straight back to the client; otherwise the sign-in form) and `POST /uma/claims/login`. Errors
//! are pages, never redirects (UMA-GRANT-23).

use actix_web::cookie::SameSite;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::AppState;
use super::authorize::{
    CSRF_COOKIE, SESSION_COOKIE, SignInFailed, cookie, csrf_ok, csrf_token, current_session,
    see_other, sign_in,
};
use super::endpoints::read_body;
use super::error;
use super::pages::{LoginPage, html};
use crate::protocol::error::OAuthError;
use crate::protocol::interaction::{self, Interaction};
use crate::protocol::login;
use crate::protocol::params::Params;

fn login_page(
    state: &AppState,
    req: &HttpRequest,
    it: &Interaction,
    username: &str,
    message: Option<&str>,
) -> HttpResponse {
    let (csrf, new) = csrf_token(req);
    let request = it.raw.encode();
    let mut resp = html(
        StatusCode::OK,
        LoginPage {
            action: "/uma/claims/login",
            client_name: it.client.name(),
            csrf: &csrf,
            request: &request,
            username,
            error: message,
            remember_option: true,
        }
        .render(),
    );
    if new {
        let _ = resp.add_cookie(&cookie(state, CSRF_COOKIE, csrf, SameSite::Strict, None));
    }
    resp
}

/// `GET /uma/claims`.
pub async fn start(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let now = state.core.now();
    let raw = match Params::parse(req.query_string().as_bytes()) {
        Ok(p) => p,
        Err(e) => return error::page(&e),
    };
    let it = match interaction::validate(&state.core, raw, now).await {
        Ok(i) => i,
        Err(e) => return error::page(&e),
    };
    match current_session(&state, &req, now).await {
        Ok(Some((_, user))) => {
            match interaction::complete(&state.core, &it, &user, false, now).await {
                Ok(url) => see_other(&url),
                Err(e) => error::page(&e),
            }
        }
        Ok(None) => login_page(&state, &req, &it, "", None),
        Err(e) => error::page(&e),
    }
}

/// `POST /uma/claims/login`.
pub async fn login(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let now = state.core.now();
    let ip = req
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    if let Err(wait) = state.core.limits.login(format!("ip:{ip}")) {
        return error::page(&OAuthError::slow_down(wait));
    }
    let body = match read_body(&req, payload, state.core.config.max_body_bytes).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let form = match Params::parse(&body) {
        Ok(f) => f,
        Err(e) => return error::page(&e),
    };
    if !csrf_ok(&req, &form) {
        return error::page(&OAuthError::invalid_request(
            "the form expired or did not come from this server; start again from the application",
        ));
    }
    let raw = match Params::parse(form.get("request").unwrap_or("").as_bytes()) {
        Ok(p) => p,
        Err(e) => return error::page(&e),
    };
    let it = match interaction::validate(&state.core, raw, now).await {
        Ok(i) => i,
        Err(e) => return error::page(&e),
    };
    let user = match sign_in(&state, &form, &ip, now).await {
        Ok(u) => u,
        Err(SignInFailed::Retry(username, message)) => {
            return login_page(&state, &req, &it, &username, Some(message));
        }
        Err(SignInFailed::Page(r)) => return r,
    };
    let session = match login::start_session(&state.core, &user.id, now).await {
        Ok(s) => s,
        Err(e) => return error::page(&OAuthError::internal(e)),
    };
    let persist = form.get("remember") == Some("yes");
    let mut resp = match interaction::complete(&state.core, &it, &user, persist, now).await {
        Ok(url) => see_other(&url),
        Err(e) => error::page(&e),
    };
    let _ = resp.add_cookie(&cookie(
        &state,
        SESSION_COOKIE,
        session.expose_secret().to_string(),
        SameSite::Lax,
        Some(state.core.config.session_ttl as i64),
    ));
    resp
}

//! The owner's account pages: `GET /account` (sign in, then the connected applications),
//! `POST /account/login`, `POST /account/disconnect` (withdraw an application's access: its tokens,
//! PATs included, are revoked at once). Forms carry the CSRF token like the authorization pages.

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
use super::pages::{AccountPage, ConnectionView, LoginPage, html};
use crate::protocol::account;
use crate::protocol::error::OAuthError;
use crate::protocol::login;
use crate::protocol::params::Params;
use crate::store::users::UserRow;

fn with_csrf(
    state: &AppState,
    req: &HttpRequest,
    render: impl FnOnce(&str) -> HttpResponse,
) -> HttpResponse {
    let (csrf, new) = csrf_token(req);
    let mut resp = render(&csrf);
    if new {
        let _ = resp.add_cookie(&cookie(state, CSRF_COOKIE, csrf, SameSite::Strict, None));
    }
    resp
}

fn login_page(
    state: &AppState,
    req: &HttpRequest,
    username: &str,
    message: Option<&str>,
) -> HttpResponse {
    with_csrf(state, req, |csrf| {
        html(
            StatusCode::OK,
            LoginPage {
                action: "/account/login",
                client_name: "",
                csrf,
                request: "",
                username,
                error: message,
                remember_option: false,
                providers: vec![],
            }
            .render(),
        )
    })
}

async fn account_page(
    state: &AppState,
    req: &HttpRequest,
    user: &UserRow,
    notice: Option<&str>,
) -> HttpResponse {
    let connections = match account::connections(&state.core, &user.id).await {
        Ok(c) => c,
        Err(e) => return error::page(&e),
    };
    let views = connections
        .into_iter()
        .map(|c| ConnectionView {
            client_id: c.client_id,
            client_name: c.client_name,
            resource_server: c.resource_server,
            scopes: c.scopes,
        })
        .collect();
    with_csrf(state, req, |csrf| {
        html(
            StatusCode::OK,
            AccountPage {
                username: &user.username,
                connections: views,
                csrf,
                notice,
            }
            .render(),
        )
    })
}

/// `GET /account`.
pub async fn show(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    match current_session(&state, &req, state.core.now()).await {
        Ok(Some((_, user))) => account_page(&state, &req, &user, None).await,
        Ok(None) => login_page(&state, &req, "", None),
        Err(e) => error::page(&e),
    }
}

async fn form(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<Params, HttpResponse> {
    let body = read_body(req, payload, state.core.config.max_body_bytes).await?;
    let form = Params::parse(&body).map_err(|e| error::page(&e))?;
    if !csrf_ok(req, &form) {
        return Err(error::page(&OAuthError::invalid_request(
            "the form expired or did not come from this server; open your account page again",
        )));
    }
    Ok(form)
}

/// `POST /account/login`.
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
    let form = match form(&req, payload, &state).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let user = match sign_in(&state, &form, &ip, now).await {
        Ok(u) => u,
        Err(SignInFailed::Retry(username, message)) => {
            return login_page(&state, &req, &username, Some(message));
        }
        Err(SignInFailed::Page(r)) => return r,
    };
    let session = match login::start_session(&state.core, &user.id, now).await {
        Ok(s) => s,
        Err(e) => return error::page(&OAuthError::internal(e)),
    };
    let mut resp = see_other("/account");
    let _ = resp.add_cookie(&cookie(
        &state,
        SESSION_COOKIE,
        session.expose_secret().to_string(),
        SameSite::Lax,
        Some(state.core.config.session_ttl as i64),
    ));
    resp
}

/// `POST /account/disconnect`.
pub async fn disconnect(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let form = match form(&req, payload, &state).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let user = match current_session(&state, &req, state.core.now()).await {
        Ok(Some((_, user))) => user,
        Ok(None) => return login_page(&state, &req, "", Some("your session ended; sign in again")),
        Err(e) => return error::page(&e),
    };
    let Some(client_id) = form.get("client_id") else {
        return error::page(&OAuthError::invalid_request("`client_id` is missing"));
    };
    match account::disconnect(&state.core, &user.id, client_id).await {
        Ok(()) => {
            account_page(
                &state,
                &req,
                &user,
                Some("The application was disconnected; its access ended now."),
            )
            .await
        }
        Err(e) => error::page(&e),
    }
}

//! Browser endpoints of the authorization code flow: `GET /authorize`, the login form
//! (`POST /authorize/login`, fields `username` and `password`) and the consent form
//! (`POST /authorize/consent`, submit control `decision` = `allow` | `deny`). Every form carries a
//! CSRF token (double-submit: a `SameSite=Strict` cookie and a hidden field, compared in constant
//! time). Redirects after a form are `303 See Other` (RFC 9700 §4.12). Errors are pages, never
//! redirects, except those the protocol core decides to send to the client.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::http::header::LOCATION;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::AppState;
use super::endpoints::read_body;
use super::error;
use super::pages::{ConsentPage, LoginPage, html};
use crate::protocol::authorize::{self, AuthRequest, Next};
use crate::protocol::error::OAuthError;
use crate::protocol::login::{self, LoginError};
use crate::protocol::params::Params;
use crate::secrets::{Secret, SecretKind, ct_eq};
use crate::store::sessions::SessionRow;
use crate::store::users::UserRow;

pub(super) const SESSION_COOKIE: &str = "custodia_session";
pub(super) const CSRF_COOKIE: &str = "custodia_csrf";

pub(super) fn see_other(url: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((LOCATION, url))
        .finish()
}

pub(super) fn cookie<'a>(
    state: &AppState,
    name: &'a str,
    value: String,
    same_site: SameSite,
    max_age: Option<i64>,
) -> Cookie<'a> {
    let mut c = Cookie::build(name, value)
        .path("/")
        .http_only(true)
        .same_site(same_site)
        .secure(state.core.config.is_https())
        .finish();
    if let Some(s) = max_age {
        c.set_max_age(actix_web::cookie::time::Duration::seconds(s));
    }
    c
}

/// The CSRF token of this browser (a new one when it has none).
pub(super) fn csrf_token(req: &HttpRequest) -> (String, bool) {
    match req.cookie(CSRF_COOKIE) {
        Some(c) if c.value().len() >= 32 && c.value().len() <= 128 => {
            (c.value().to_string(), false)
        }
        _ => (
            Secret::generate(SecretKind::Csrf)
                .expose_secret()
                .to_string(),
            true,
        ),
    }
}

pub(super) fn csrf_ok(req: &HttpRequest, form: &Params) -> bool {
    match (req.cookie(CSRF_COOKIE), form.get("csrf")) {
        (Some(c), Some(f)) => ct_eq(c.value().as_bytes(), f.as_bytes()),
        _ => false,
    }
}

pub(super) async fn current_session(
    state: &AppState,
    req: &HttpRequest,
    now: i64,
) -> Result<Option<(SessionRow, UserRow)>, OAuthError> {
    match req.cookie(SESSION_COOKIE) {
        Some(c) => Ok(login::session(&state.core, c.value(), now).await?),
        None => Ok(None),
    }
}

fn login_page(
    state: &AppState,
    req: &HttpRequest,
    ar: &AuthRequest,
    username: &str,
    message: Option<&str>,
) -> HttpResponse {
    let (csrf, new) = csrf_token(req);
    let request = ar.raw.encode();
    let page = LoginPage {
        action: "/authorize/login",
        client_name: ar.client.name(),
        csrf: &csrf,
        request: &request,
        username,
        error: message,
        remember_option: false,
        providers: vec![],
    };
    let mut resp = html(StatusCode::OK, page.render());
    if new {
        let _ = resp.add_cookie(&cookie(state, CSRF_COOKIE, csrf, SameSite::Strict, None));
    }
    resp
}

fn consent_page(
    state: &AppState,
    req: &HttpRequest,
    ar: &AuthRequest,
    user: &UserRow,
) -> HttpResponse {
    let (csrf, new) = csrf_token(req);
    let request = ar.raw.encode();
    let host = url::Url::parse(&ar.redirect_uri)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| ar.redirect_uri.clone());
    let page = ConsentPage {
        client_name: ar.client.name(),
        dynamic: ar.client.dynamically_registered,
        statement_issuer: ar.client.metadata.software_statement_issuer.as_deref(),
        duration: authorize::describe_duration(
            &state.core,
            ar.client.allows_grant("refresh_token"),
        ),
        username: &user.username,
        scopes: ar
            .scopes
            .iter()
            .map(|s| authorize::describe_scope(s))
            .chain(authorize::describe_claims(ar))
            .collect(),
        resources: &ar.resources,
        redirect_host: &host,
        csrf: &csrf,
        request: &request,
    };
    let mut resp = html(StatusCode::OK, page.render());
    if new {
        let _ = resp.add_cookie(&cookie(state, CSRF_COOKIE, csrf, SameSite::Strict, None));
    }
    resp
}

fn render_next(state: &AppState, req: &HttpRequest, ar: &AuthRequest, next: Next) -> HttpResponse {
    match next {
        Next::Login => login_page(state, req, ar, "", None),
        Next::Consent(user) => consent_page(state, req, ar, &user),
        Next::Redirect(url) => see_other(&url),
    }
}

/// `GET /authorize`.
pub async fn authorize(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let params = Params::parse(req.query_string().as_bytes());
    authorize_with(&req, &state, params).await
}

/// `POST /authorize`: the same request as a form body (OpenID Connect Core §3.1.2.1).
pub async fn authorize_post(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let body = match read_body(&req, payload, state.core.config.max_body_bytes).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    authorize_with(&req, &state, Params::parse(&body)).await
}

async fn authorize_with(
    req: &HttpRequest,
    state: &AppState,
    params: Result<Params, OAuthError>,
) -> HttpResponse {
    let now = state.core.now();
    let params = match params {
        Ok(p) => p,
        Err(e) => return error::page(&e),
    };
    let ar = match authorize::validate(&state.core, params, now).await {
        Ok(a) => a,
        Err(e) => return error::page(&e),
    };
    let session = match current_session(state, req, now).await {
        Ok(s) => s,
        Err(e) => return error::page(&e),
    };
    match authorize::next(&state.core, &ar, session, false, now).await {
        Ok(n) => render_next(state, req, &ar, n),
        Err(e) => error::page(&e),
    }
}

/// Read a browser form and the authorization request it carries, after the CSRF check.
async fn form_and_request(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<(Params, AuthRequest), HttpResponse> {
    let body = read_body(req, payload, state.core.config.max_body_bytes).await?;
    let form = Params::parse(&body).map_err(|e| error::page(&e))?;
    if !csrf_ok(req, &form) {
        return Err(error::page(&OAuthError::invalid_request(
            "the form expired or did not come from this server; start again from the application",
        )));
    }
    let raw =
        Params::parse(form.get("request").unwrap_or("").as_bytes()).map_err(|e| error::page(&e))?;
    let ar = authorize::validate(&state.core, raw, state.core.now())
        .await
        .map_err(|e| error::page(&e))?;
    Ok((form, ar))
}

/// Why a sign-in form did not sign anyone in.
pub(super) enum SignInFailed {
    /// Show the form again with the username typed so far and this message.
    Retry(String, &'static str),
    /// Answer with this page (throttled, internal error).
    Page(HttpResponse),
}

/// Check a sign-in form's `username` and `password` (Argon2id off the executor, the per-account
/// slow-down): the login step shared by the authorization and account pages.
pub(super) async fn sign_in(
    state: &AppState,
    form: &Params,
    ip: &str,
    now: i64,
) -> Result<UserRow, SignInFailed> {
    let username = form.get("username").unwrap_or("").trim().to_string();
    let password = form.get("password").unwrap_or("");
    if username.is_empty() || password.is_empty() || username.len() > 64 || password.len() > 1024 {
        return Err(SignInFailed::Retry(
            String::new(),
            "enter your username and password",
        ));
    }
    match login::authenticate(&state.core, &username, password, ip, now).await {
        Ok(u) => Ok(u),
        Err(LoginError::BadCredentials) => Err(SignInFailed::Retry(
            username,
            "the username or password is not right",
        )),
        Err(LoginError::Throttled(wait)) => {
            let mut e = OAuthError::slow_down(wait);
            e.error_description = format!("too many failed sign-ins; try again in {wait} s");
            Err(SignInFailed::Page(error::page(&e)))
        }
        Err(LoginError::Internal(e)) => {
            Err(SignInFailed::Page(error::page(&OAuthError::internal(e))))
        }
    }
}

/// `POST /authorize/login`.
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
    let (form, ar) = match form_and_request(&req, payload, &state).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let user = match sign_in(&state, &form, &ip, now).await {
        Ok(u) => u,
        Err(SignInFailed::Retry(username, message)) => {
            return login_page(&state, &req, &ar, &username, Some(message));
        }
        Err(SignInFailed::Page(r)) => return r,
    };
    let cookie_value = match login::start_session(&state.core, &user.id, now).await {
        Ok(s) => s,
        Err(e) => return error::page(&OAuthError::internal(e)),
    };
    let session = match login::session(&state.core, cookie_value.expose_secret(), now).await {
        Ok(Some(s)) => s,
        Ok(None) => return error::page(&OAuthError::internal("a new session vanished")),
        Err(e) => return error::page(&OAuthError::internal(e)),
    };
    let mut resp = match authorize::next(&state.core, &ar, Some(session), true, now).await {
        Ok(n) => render_next(&state, &req, &ar, n),
        Err(e) => error::page(&e),
    };
    let c = cookie(
        &state,
        SESSION_COOKIE,
        cookie_value.expose_secret().to_string(),
        SameSite::Lax,
        Some(state.core.config.session_ttl as i64),
    );
    let _ = resp.add_cookie(&c);
    resp
}

/// `POST /authorize/consent`.
pub async fn consent(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let now = state.core.now();
    let (form, ar) = match form_and_request(&req, payload, &state).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let session = match current_session(&state, &req, now).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            return login_page(
                &state,
                &req,
                &ar,
                "",
                Some("your session ended; sign in again"),
            );
        }
        Err(e) => return error::page(&e),
    };
    let allow = match form.get("decision") {
        Some("allow") => true,
        Some("deny") => false,
        _ => {
            return error::page(&OAuthError::invalid_request(
                "`decision` must be `allow` or `deny`",
            ));
        }
    };
    match authorize::consent(&state.core, &ar, &session, allow, now).await {
        Ok(next) => render_next(&state, &req, &ar, next),
        Err(e) => error::page(&e),
    }
}

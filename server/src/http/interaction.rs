//! The claims interaction endpoint's pages (UMA Grant §3.3.2): `GET /uma/claims` (the sign-in
//! form; with a session, a page asking the requesting party to confirm — nothing is shared without
//! their action, UMA-GRANT-27), `POST /uma/claims/login`, `POST /uma/claims/confirm`,
//! `POST /uma/claims/cancel`, and sign-in at an upstream provider. Every form carries a CSRF
//! token. Errors are pages, never redirects (UMA-GRANT-23).

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
use super::pages::{ClaimsConfirmPage, LoginPage, html};
use crate::protocol::error::OAuthError;
use crate::protocol::interaction::{self, Interaction};
use crate::protocol::login;
use crate::protocol::params::Params;

/// The providers a requesting party may sign in with here: (issuer, label).
fn providers(state: &AppState) -> Vec<(String, String)> {
    state
        .core
        .config
        .trusted_issuers
        .iter()
        .filter(|t| t.client_id.is_some())
        .map(|t| {
            (
                t.issuer.clone(),
                t.name.clone().unwrap_or_else(|| t.issuer.clone()),
            )
        })
        .collect()
}

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
            providers: providers(state),
        }
        .render(),
    );
    if new {
        let _ = resp.add_cookie(&cookie(state, CSRF_COOKIE, csrf, SameSite::Strict, None));
    }
    resp
}

fn confirm_page(
    state: &AppState,
    req: &HttpRequest,
    it: &Interaction,
    username: &str,
) -> HttpResponse {
    let (csrf, new) = csrf_token(req);
    let request = it.raw.encode();
    let mut resp = html(
        StatusCode::OK,
        ClaimsConfirmPage {
            client_name: it.client.name(),
            username,
            csrf: &csrf,
            request: &request,
            providers: providers(state),
        }
        .render(),
    );
    if new {
        let _ = resp.add_cookie(&cookie(state, CSRF_COOKIE, csrf, SameSite::Strict, None));
    }
    resp
}

/// A form of the interaction pages: its body, CSRF-checked, and the interaction it carries.
async fn interaction_form(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    now: i64,
) -> Result<(Params, Interaction), HttpResponse> {
    let body = read_body(req, payload, state.core.config.max_body_bytes).await?;
    let form = Params::parse(&body).map_err(|e| error::page(&e))?;
    if !csrf_ok(req, &form) {
        return Err(error::page(&OAuthError::invalid_request(
            "the form expired or did not come from this server; start again from the application",
        )));
    }
    let raw =
        Params::parse(form.get("request").unwrap_or("").as_bytes()).map_err(|e| error::page(&e))?;
    let it = interaction::validate(&state.core, raw, now)
        .await
        .map_err(|e| error::page(&e))?;
    Ok((form, it))
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
    // A `redirect_user` of the grant may name the provider the policies need (UMA-GRANT-48):
    // straight there, whoever is signed in here.
    if let Some(t) = it
        .raw
        .get("idp")
        .and_then(|i| crate::protocol::upstream::trusted(&state.core, i))
        .filter(|t| t.client_id.is_some())
    {
        return go_upstream(&state, t, it.raw.encode()).await;
    }
    match current_session(&state, &req, now).await {
        Ok(Some((_, user))) => confirm_page(&state, &req, &it, &user.username),
        Ok(None) => login_page(&state, &req, &it, "", None),
        Err(e) => error::page(&e),
    }
}

/// `POST /uma/claims/confirm`: the signed-in requesting party agrees to share who they are.
pub async fn confirm(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let now = state.core.now();
    let (form, it) = match interaction_form(&req, payload, &state, now).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let user = match current_session(&state, &req, now).await {
        Ok(Some((_, user))) => user,
        Ok(None) => return login_page(&state, &req, &it, "", Some("Please sign in again.")),
        Err(e) => return error::page(&e),
    };
    let persist = form.get("remember") == Some("yes");
    match interaction::complete(&state.core, &it, &user, persist, now).await {
        Ok(url) => see_other(&url),
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
    let (form, it) = match interaction_form(&req, payload, &state, now).await {
        Ok(x) => x,
        Err(r) => return r,
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

const RP_COOKIE: &str = "custodia_rp";

#[derive(serde::Deserialize)]
pub struct UpstreamQuery {
    request: String,
    issuer: String,
}

/// `GET /uma/claims/upstream`: sign in at another identity provider (Custodia is its relying
/// party: code + PKCE + nonce + state, remembered in a short-lived cookie of this browser).
pub async fn upstream_start(
    _req: HttpRequest,
    q: web::Query<UpstreamQuery>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let now = state.core.now();
    let raw = match Params::parse(q.request.as_bytes()) {
        Ok(p) => p,
        Err(e) => return error::page(&e),
    };
    if let Err(e) = interaction::validate(&state.core, raw, now).await {
        return error::page(&e);
    }
    let Some(t) = crate::protocol::upstream::trusted(&state.core, &q.issuer) else {
        return error::page(&OAuthError::invalid_request(
            "this identity provider is not available here",
        ));
    };
    go_upstream(&state, t, q.request.clone()).await
}

/// Send the browser to sign in at `t` for the interaction `request` (its parameters, encoded).
async fn go_upstream(
    state: &AppState,
    t: &crate::config::TrustedIssuer,
    request: String,
) -> HttpResponse {
    let (url, pending) = match crate::protocol::upstream::start(&state.core, t, request).await {
        Ok(x) => x,
        Err(e) => return error::page(&e),
    };
    // Sealed: the browser keeps the sign-in's state, PKCE verifier and nonce, and can neither
    // read nor change them.
    let value = match serde_json::to_vec(&pending)
        .map_err(OAuthError::internal)
        .and_then(|v| {
            state
                .core
                .keys
                .seal(RP_COOKIE, &v)
                .map_err(OAuthError::internal)
        }) {
        Ok(v) => v,
        Err(e) => return error::page(&e),
    };
    let mut resp = see_other(&url);
    let mut c = cookie(state, RP_COOKIE, value, SameSite::Lax, Some(600));
    c.set_path("/uma/claims");
    let _ = resp.add_cookie(&c);
    resp
}

#[derive(serde::Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /uma/claims/callback`: the provider's answer.
pub async fn upstream_callback(
    req: HttpRequest,
    q: web::Query<Callback>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let now = state.core.now();
    let pending: Option<crate::protocol::upstream::Pending> = req
        .cookie(RP_COOKIE)
        .and_then(|c| state.core.keys.open(RP_COOKIE, c.value()))
        .and_then(|b| serde_json::from_slice(&b).ok());
    let Some(pending) = pending else {
        return error::page(&OAuthError::invalid_request(
            "this sign-in was not started from this browser, or it took too long; start again from the application",
        ));
    };
    if let Some(e) = &q.error {
        return error::page(&OAuthError::invalid_request(format!(
            "the identity provider did not sign you in (`{}`)",
            crate::protocol::scope::sanitize(e)
        )));
    }
    let (Some(code), Some(st)) = (&q.code, &q.state) else {
        return error::page(&OAuthError::invalid_request(
            "the identity provider's answer is incomplete",
        ));
    };
    if !crate::secrets::ct_eq(st.as_bytes(), pending.state.as_bytes()) {
        return error::page(&OAuthError::invalid_request(
            "the identity provider's answer does not belong to this sign-in",
        ));
    }
    let Some(t) = crate::protocol::upstream::trusted(&state.core, &pending.issuer) else {
        return error::page(&OAuthError::invalid_request(
            "this identity provider is not available here",
        ));
    };
    let raw = match Params::parse(pending.request.as_bytes()) {
        Ok(p) => p,
        Err(e) => return error::page(&e),
    };
    let it = match interaction::validate(&state.core, raw, now).await {
        Ok(i) => i,
        Err(e) => return error::page(&e),
    };
    let verified =
        match crate::protocol::upstream::finish(&state.core, t, &pending, code, now).await {
            Ok(v) => v,
            Err(e) => return error::page(&e),
        };
    let mut resp = match interaction::complete_upstream(&state.core, &it, &verified, now).await {
        Ok(url) => see_other(&url),
        Err(e) => error::page(&e),
    };
    let mut gone = cookie(&state, RP_COOKIE, String::new(), SameSite::Lax, Some(0));
    gone.set_path("/uma/claims");
    let _ = resp.add_cookie(&gone);
    resp
}

/// `POST /uma/claims/cancel`: the requesting party declines (UMA-GRANT-26).
pub async fn cancel(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (_, it) = match interaction_form(&req, payload, &state, state.core.now()).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    match interaction::declined(&it) {
        Ok(url) => see_other(&url),
        Err(e) => error::page(&e),
    }
}

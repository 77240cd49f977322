//! HTML pages (askama templates in `server/templates/`, auto-escaped): login, consent, the claims
//! confirmation, the owner's account page, errors.
//! No inline script or style, so the CSP can forbid both.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use askama::Template;

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage<'a> {
    /// Where the form posts: `/authorize/login` or `/account/login`.
    pub action: &'a str,
    /// The client asking; empty on the account page.
    pub client_name: &'a str,
    pub csrf: &'a str,
    pub request: &'a str,
    pub username: &'a str,
    pub error: Option<&'a str>,
    /// Offer the requesting party to let the client reuse the gathered claims (a PCT).
    pub remember_option: bool,
    /// Other identity providers the requesting party may sign in with: (issuer, label).
    pub providers: Vec<(String, String)>,
}

/// The claims interaction endpoint with a signed-in requesting party: nothing is shared until they
/// confirm (UMA-GRANT-27).
#[derive(Template)]
#[template(path = "claims_confirm.html")]
pub struct ClaimsConfirmPage<'a> {
    pub client_name: &'a str,
    pub username: &'a str,
    pub csrf: &'a str,
    pub request: &'a str,
    pub providers: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "consent.html")]
pub struct ConsentPage<'a> {
    pub client_name: &'a str,
    /// The client registered itself (dynamic registration), unvetted by an administrator.
    pub dynamic: bool,
    /// The trusted issuer of the client's software statement, if it registered with one.
    pub statement_issuer: Option<&'a str>,
    /// How long the access lasts (IGOV-OAUTH-31).
    pub duration: String,
    pub username: &'a str,
    pub scopes: Vec<String>,
    /// Where the tokens may be used (RFC 8707 `resource`; HEART-OAUTH-27, IGOV-OAUTH-31).
    pub resources: &'a [String],
    pub redirect_host: &'a str,
    pub csrf: &'a str,
    pub request: &'a str,
}

/// One connected application on the account page.
pub struct ConnectionView {
    pub client_id: String,
    pub client_name: String,
    pub resource_server: bool,
    pub scopes: Vec<String>,
}

#[derive(Template)]
#[template(path = "account.html")]
pub struct AccountPage<'a> {
    pub username: &'a str,
    pub connections: Vec<ConnectionView>,
    pub csrf: &'a str,
    pub notice: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage<'a> {
    pub title: &'a str,
    pub message: &'a str,
    pub code: Option<&'a str>,
}

pub fn html(status: StatusCode, body: Result<String, askama::Error>) -> HttpResponse {
    match body {
        Ok(b) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(b),
        Err(e) => {
            tracing::error!(error = %e, "template rendering failed");
            HttpResponse::InternalServerError()
                .content_type("text/plain; charset=utf-8")
                .body("internal error")
        }
    }
}

pub fn error_page(
    title: &str,
    message: &str,
    code: Option<&str>,
    status: StatusCode,
) -> HttpResponse {
    html(
        status,
        ErrorPage {
            title,
            message,
            code,
        }
        .render(),
    )
}

pub const STYLESHEET: &str = include_str!("../../static/custodia.css");

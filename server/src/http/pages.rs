//! HTML pages (askama templates in `server/templates/`, auto-escaped): login, consent, errors.
//! No inline script or style, so the CSP can forbid both.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use askama::Template;

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage<'a> {
    pub client_name: &'a str,
    pub csrf: &'a str,
    pub request: &'a str,
    pub username: &'a str,
    pub error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "consent.html")]
pub struct ConsentPage<'a> {
    pub client_name: &'a str,
    pub username: &'a str,
    pub scopes: Vec<String>,
    pub redirect_host: &'a str,
    pub csrf: &'a str,
    pub request: &'a str,
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

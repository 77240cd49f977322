//! The HTTP layer (actix-web): extract, authenticate, call one protocol function, map the result.
//! Only this module imports `actix_web`.
//!
//! Cross-cutting concerns live in [`middleware`]: a request id and one log line per request (path
//! only — never a query string, header or body, so no token reaches a log), security headers
//! (RFC 9700 §4.16, design "Security posture"), and CORS only on the endpoints browser clients
//! need (RFC 9700 §2.6; never on the authorization endpoint).

pub mod account;
pub mod authorize;
pub mod endpoints;
pub mod error;
pub mod interaction;
pub mod middleware;
pub mod owner;
pub mod pages;
pub mod protection;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{App, HttpServer, web};

use crate::protocol::Core;

/// Shared state of every worker.
pub struct AppState {
    pub core: Core,
}

/// Register every route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    use endpoints as e;
    cfg.route(
        "/.well-known/openid-configuration",
        web::get().to(e::discovery),
    )
    .route(
        "/.well-known/oauth-authorization-server",
        web::get().to(e::discovery),
    )
    .route(
        "/.well-known/uma2-configuration",
        web::get().to(protection::uma_discovery),
    )
    .route("/uma/resources", web::to(protection::collection))
    .route("/uma/resources/{id}", web::to(protection::item))
    .route("/uma/permission", web::to(protection::permission))
    .route("/uma/claims", web::get().to(interaction::start))
    .route("/uma/claims/login", web::post().to(interaction::login))
    .route("/uma/claims/confirm", web::post().to(interaction::confirm))
    .route("/uma/claims/cancel", web::post().to(interaction::cancel))
    .route(
        "/uma/claims/upstream",
        web::get().to(interaction::upstream_start),
    )
    .route(
        "/uma/claims/callback",
        web::get().to(interaction::upstream_callback),
    )
    .route(
        "/resources/{id}/policy",
        web::get().to(protection::policy_page),
    )
    .route("/jwks", web::get().to(e::jwks))
    .route("/authorize", web::get().to(authorize::authorize))
    .route("/authorize", web::post().to(authorize::authorize_post))
    .route("/authorize/login", web::post().to(authorize::login))
    .route("/authorize/consent", web::post().to(authorize::consent))
    .route("/account", web::get().to(account::show))
    .route("/account/login", web::post().to(account::login))
    .route("/account/disconnect", web::post().to(account::disconnect))
    .route("/owner/resources", web::get().to(owner::resources))
    .route("/owner/policies", web::get().to(owner::policies_collection))
    .route(
        "/owner/policies",
        web::post().to(owner::policies_collection),
    )
    .route(
        "/owner/policies/{id}",
        web::delete().to(owner::policy_delete),
    )
    .route("/owner/settings", web::get().to(owner::settings))
    .route("/owner/settings", web::put().to(owner::settings))
    .route("/owner/requests", web::get().to(owner::requests))
    .route(
        "/owner/requests/{id}/{action}",
        web::post().to(owner::decide),
    )
    .route("/owner/decisions", web::get().to(owner::decisions))
    .route("/token", web::post().to(e::token))
    .route("/introspect", web::post().to(e::introspect))
    .route("/revoke", web::post().to(e::revoke))
    .route("/userinfo", web::get().to(e::userinfo))
    .route("/userinfo", web::post().to(e::userinfo))
    .route("/register", web::post().to(e::register))
    .route("/register/{client_id}", web::get().to(e::register_read))
    .route("/register/{client_id}", web::put().to(e::register_update))
    .route(
        "/register/{client_id}",
        web::delete().to(e::register_delete),
    )
    .route("/healthz", web::get().to(e::healthz))
    .route("/readyz", web::get().to(e::readyz))
    .route("/static/custodia.css", web::get().to(e::stylesheet))
    .default_service(web::to(e::not_found));
    for path in middleware::CORS_PATHS {
        cfg.route(
            path,
            web::method(actix_web::http::Method::OPTIONS).to(e::preflight),
        );
    }
}

/// Start serving on a bound listener; returns the running server (await it, or stop it with its
/// handle). Housekeeping (key reload, pruning) runs beside it.
pub fn start(core: Core, listener: TcpListener) -> std::io::Result<Server> {
    let workers = core.config.workers;
    let state = web::Data::new(AppState { core });
    let hk = state.clone().into_inner();
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .wrap(actix_web::middleware::from_fn(middleware::observe))
            .configure(routes)
    })
    .shutdown_timeout(30)
    .listen(listener)?;
    if let Some(w) = workers {
        server = server.workers(w);
    }
    let server = server.run();
    tokio::spawn(housekeeping(hk));
    Ok(server)
}

async fn housekeeping(state: Arc<AppState>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    tick.tick().await;
    loop {
        tick.tick().await;
        let core = state.core.clone();
        let now = state.core.now();
        // First the keys are reloaded (a rotation on another instance reaches this one however
        // long the pruning below takes).
        let res = tokio::task::spawn_blocking(move || {
            core.keys
                .reload_sync(&core.store, now)
                .map_err(|e| e.to_string())
        })
        .await;
        match res {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "key reload failed"),
            Err(e) => tracing::warn!(error = %e, "housekeeping task failed"),
        }
        // Expired rows go through the store's single writer (no contention for SQLite's write
        // lock with it), in steps of a few hundred rows per table, each its own writer job, so
        // queued requests are served between them.
        for _ in 0..10_000 {
            match state.core.store.prune(now).await {
                Ok(true) => tokio::time::sleep(Duration::from_millis(5)).await,
                Ok(false) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "housekeeping failed");
                    break;
                }
            }
        }
        state.core.limits.shrink();
    }
}

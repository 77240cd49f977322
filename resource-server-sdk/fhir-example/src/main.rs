//! `custodia-fhir-example`: run the example FHIR resource server.
//!
//! Settings (environment): `FHIR_VERIFY` (`local`, the default, or `introspection`), `FHIR_BIND` (default `127.0.0.1:8090`), `FHIR_PUBLIC_URL` (default
//! `http://` + bind), `FHIR_DATABASE` (default `fhir-example.db`), `CUSTODIA_ISSUER` (default
//! `http://127.0.0.1:8080`), `FHIR_DPOP_PATS` (`1`: DPoP-bound PATs, as the iGov profile
//! requires), `FHIR_CLIENT_ID` and `FHIR_CLIENT_SECRET` (required: register the
//! server with `custodia client add --name "FHIR example" --grant-type authorization_code
//! --grant-type refresh_token --scope uma_protection --redirect-uri {public url}/connect/callback`).

use std::net::TcpListener;

use custodia_fhir_example::{Settings, start};

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

#[actix_web::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FHIR_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let bind = env("FHIR_BIND").unwrap_or_else(|| "127.0.0.1:8090".into());
    // A private JWK file for `private_key_jwt` (HEART, iGov), or the client secret.
    let client_key = match env("FHIR_CLIENT_KEY_FILE") {
        Some(path) => match std::fs::read_to_string(&path) {
            Ok(k) => Some(k),
            Err(e) => {
                eprintln!("FHIR_CLIENT_KEY_FILE `{path}` cannot be read: {e}");
                return std::process::ExitCode::from(2);
            }
        },
        None => None,
    };
    let client_secret = env("FHIR_CLIENT_SECRET").unwrap_or_default();
    let Some(client_id) =
        env("FHIR_CLIENT_ID").filter(|_| client_key.is_some() || !client_secret.is_empty())
    else {
        eprintln!(
            "FHIR_CLIENT_ID and FHIR_CLIENT_SECRET (or FHIR_CLIENT_KEY_FILE, a private JWK) are required (see `custodia client add`)"
        );
        return std::process::ExitCode::from(2);
    };
    let issuer = env("CUSTODIA_ISSUER").unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let insecure_allow_http = url::Url::parse(&issuer).ok().is_some_and(|u| {
        u.scheme() == "http" && matches!(u.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"))
    });
    let settings = Settings {
        issuer,
        client_id,
        client_secret,
        client_key,
        dpop_pats: env("FHIR_DPOP_PATS").is_some_and(|v| v == "1" || v == "true"),
        public_url: env("FHIR_PUBLIC_URL").unwrap_or_else(|| format!("http://{bind}")),
        database: env("FHIR_DATABASE")
            .unwrap_or_else(|| "fhir-example.db".into())
            .into(),
        insecure_allow_http,
        verification: match env("FHIR_VERIFY").as_deref() {
            Some("introspection") => custodia_sdk::Verification::Introspection,
            _ => custodia_sdk::Verification::Local,
        },
        introspection_cache: std::time::Duration::from_secs(5),
    };
    let listener = match TcpListener::bind(&bind) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on {bind}: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let public = settings.public_url.clone();
    match start(settings, listener) {
        Ok((server, _)) => {
            println!("FHIR example on {public}; owners connect at {public}/connect");
            match server.await {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("{e}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::ExitCode::from(2)
        }
    }
}

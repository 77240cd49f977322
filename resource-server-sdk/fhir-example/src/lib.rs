//! An example FHIR-like resource server protected by Custodia with `custodia-sdk`.
//!
//! It keeps one Patient and any number of Observations per owner (SQLite). An owner connects it to
//! Custodia (`GET /connect`: the authorization code flow with PKCE for a PAT); on connect it
//! brings the owner's registrations in line (lists them, updates the known ones, creates the
//! missing ones, deletes strays): the Patient record and the Observations, with FHIR-style scopes
//! (`patient/Patient.read`, `patient/Observation.write`, …) and HEART's break-the-glass `btg`
//! ([`registered_scopes`]). Every FHIR route is protected by
//! the SDK's guard: no or a bad RPT gives `401` with `WWW-Authenticate: UMA … ticket="…"`
//! (UMA Grant §3.2), a valid RPT lacking the scope `403` with a fresh ticket.
//!
//! FHIR routes (JSON, `application/fhir+json`):
//! - `GET /fhir/Patient/{id}` (`patient/Patient.read`), `PUT /fhir/Patient/{id}` (`…write`);
//! - `GET /fhir/Patient/{id}/Observation`, `GET /fhir/Observation?patient={id}` (a searchset
//!   Bundle), `GET /fhir/Observation/{oid}` (`patient/Observation.read`);
//! - `POST /fhir/Observation` with `subject.reference` = `Patient/{id}` (`patient/Observation.write`).
//!
//! The patient id is the owner's subject at Custodia. HEART's FHIR semantics come with the
//! profiles issue.

pub mod store;

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::Server;
use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, LOCATION};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use custodia_sdk::actix::{Authorized, Requirement, UmaGuard};
use custodia_sdk::{
    ClientConfig, ClientSecret, MemoryPatStore, Pat, PatStore, PendingAuthorization,
    ResourceDescription, RptVerifier, UmaClient, Verification,
};
use serde_json::{Value, json};

pub use store::Store;

/// The FHIR resource types this server protects, with the UMA resource each owner gets for it.
pub const PROTECTED_TYPES: &[(&str, &str)] = &[
    ("Patient", "Patient record"),
    ("Observation", "Observations"),
];

/// The UMA scopes of a FHIR type (SMART/HEART style).
pub fn scopes_of(fhir_type: &str) -> [String; 2] {
    [
        format!("patient/{fhir_type}.read"),
        format!("patient/{fhir_type}.write"),
    ]
}

/// The scopes registered for a FHIR type: its read and write scopes and HEART's break-the-glass
/// scope `btg` (HEART-FHIR-07), which no route requires: an owner may grant it (to emergency
/// clinicians, say) and a client ask for it at the token endpoint; an access made with an RPT
/// that carries it is logged as an `audit` event by the SDK's guard.
pub fn registered_scopes(fhir_type: &str) -> Vec<String> {
    let mut scopes = scopes_of(fhir_type).to_vec();
    scopes.push(custodia_sdk::BREAK_THE_GLASS.to_string());
    scopes
}

/// How to run the example.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Custodia's issuer.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    /// A private JWK (JSON) to authenticate with `private_key_jwt` instead of the secret (the
    /// HEART and iGov profiles require it).
    pub client_key: Option<String>,
    /// Ask for DPoP-bound PATs (RFC 9449; the iGov profile issues no others).
    pub dpop_pats: bool,
    /// This server's own base URL (the PAT redirect URI is `{public_url}/connect/callback`).
    pub public_url: String,
    pub database: PathBuf,
    /// Allow `http` issuers (loopback development and tests only).
    pub insecure_allow_http: bool,
    /// How RPTs are verified: locally (JWT against the JWKS; fast, revocation seen when the RPT
    /// expires) or by introspection with the owner's PAT (revocation seen at once).
    pub verification: Verification,
    /// How long an introspection answer is reused (0: never).
    pub introspection_cache: std::time::Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Sdk(#[from] custodia_sdk::Error),
    #[error("{0}")]
    Store(#[from] store::StoreError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Shared state.
pub struct AppState {
    pub uma: UmaClient,
    pub pats: Arc<MemoryPatStore>,
    pub store: Store,
    verification: Verification,
    /// Pending PAT authorizations by `state` (bound to the browser by a cookie).
    pending: Mutex<HashMap<String, PendingAuthorization>>,
}

const CONNECT_COOKIE: &str = "fhir_connect";
const FHIR_JSON: &str = "application/fhir+json";

fn outcome(status: StatusCode, code: &str, text: &str) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((CONTENT_TYPE, FHIR_JSON))
        .json(json!({
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": code, "diagnostics": text}],
        }))
}

fn fhir(status: StatusCode, body: &Value) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((CONTENT_TYPE, FHIR_JSON))
        .json(body)
}

fn internal(e: impl std::fmt::Display) -> HttpResponse {
    tracing::error!(error = %e, "internal error");
    outcome(
        StatusCode::INTERNAL_SERVER_ERROR,
        "exception",
        "the server could not complete the request",
    )
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Start the example on a bound listener. Returns the running server and its state.
pub fn start(
    settings: Settings,
    listener: TcpListener,
) -> Result<(Server, web::Data<AppState>), StartError> {
    let config = ClientConfig::new(
        settings.issuer.clone(),
        settings.client_id.clone(),
        ClientSecret::new(settings.client_secret.clone()),
        format!("{}/connect/callback", settings.public_url),
    )
    .insecure_allow_http(settings.insecure_allow_http);
    let config = match &settings.client_key {
        Some(key) => config.with_private_key_jwt(key)?,
        None => config,
    };
    let config = if settings.dpop_pats {
        config.with_dpop_bound_pats()?
    } else {
        config
    };
    let uma = UmaClient::new(config)?;
    let pats = Arc::new(MemoryPatStore::new());
    let store = Store::open(&settings.database)?;
    let state = web::Data::new(AppState {
        uma: uma.clone(),
        pats: pats.clone(),
        store,
        verification: settings.verification,
        pending: Mutex::new(HashMap::new()),
    });
    let verifier =
        RptVerifier::new(&uma).with_introspection_cache(settings.introspection_cache, 10_000);
    let guard = web::Data::new(
        UmaGuard::new(uma, verifier, pats)
            .with_realm("fhir")?
            .with_public_url(settings.public_url.clone())
            .with_resolver(resolve),
    );
    let s = state.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(s.clone())
            .app_data(guard.clone())
            .route("/", web::get().to(home))
            .route("/connect", web::get().to(connect))
            .route("/connect/callback", web::get().to(callback))
            .route("/fhir/Patient/{id}", web::get().to(read_patient))
            .route("/fhir/Patient/{id}", web::put().to(write_patient))
            .route(
                "/fhir/Patient/{id}/Observation",
                web::get().to(search_observations),
            )
            .route("/fhir/Observation", web::get().to(search_observations))
            .route("/fhir/Observation", web::post().to(create_observation))
            .route("/fhir/Observation/{oid}", web::get().to(read_observation))
    })
    .workers(2)
    .listen(listener)?
    .run();
    Ok((server, state))
}

async fn home() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body("<!doctype html><title>FHIR example</title><h1>FHIR example server</h1><p><a href=\"/connect\">Connect your records to Custodia</a></p>")
}

/// `GET /connect`: send the owner to Custodia for a PAT.
async fn connect(state: web::Data<AppState>) -> HttpResponse {
    let (url, pending) = match state.uma.authorization_url().await {
        Ok(x) => x,
        Err(e) => return internal(e),
    };
    let key = pending.state().expose_secret().to_string();
    if let Ok(mut m) = state.pending.lock() {
        let cutoff = now() - 600;
        m.retain(|_, p| p.created_at() > cutoff);
        m.insert(key.clone(), pending);
    }
    let cookie = Cookie::build(CONNECT_COOKIE, key)
        .path("/connect")
        .http_only(true)
        .same_site(SameSite::Lax)
        .finish();
    HttpResponse::SeeOther()
        .insert_header((LOCATION, url.to_string()))
        .cookie(cookie)
        .finish()
}

#[derive(serde::Deserialize)]
struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /connect/callback`: redeem the code for a PAT, keep it, create the owner's Patient and
/// register the owner's resources with Custodia.
async fn callback(
    req: HttpRequest,
    q: web::Query<Callback>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let page = |status: StatusCode, text: &str| {
        HttpResponse::build(status)
            .content_type("text/plain; charset=utf-8")
            .body(text.to_string())
    };
    if let Some(e) = &q.error {
        return page(
            StatusCode::BAD_REQUEST,
            &format!("Custodia did not connect: {e}"),
        );
    }
    let (Some(code), Some(st)) = (&q.code, &q.state) else {
        return page(StatusCode::BAD_REQUEST, "missing code or state");
    };
    // The state must be the one this browser started with.
    if req.cookie(CONNECT_COOKIE).map(|c| c.value().to_string()) != Some(st.clone()) {
        return page(
            StatusCode::BAD_REQUEST,
            "this connection was not started from this browser",
        );
    }
    let pending = state.pending.lock().ok().and_then(|mut m| m.remove(st));
    let Some(pending) = pending else {
        return page(
            StatusCode::BAD_REQUEST,
            "unknown or expired connection attempt",
        );
    };
    let pat = match state.uma.exchange_code(pending, code, st).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "PAT exchange failed");
            return page(StatusCode::BAD_GATEWAY, "Custodia refused the connection");
        }
    };
    if let Err(e) = state.pats.save(&pat).await {
        return internal(e);
    }
    match on_connect(&state, &pat).await {
        Ok(()) => page(
            StatusCode::OK,
            &format!("Connected. Your patient id here is {}.", pat.owner),
        ),
        Err(r) => r,
    }
}

/// Create the owner's Patient (if new) and bring the owner's registrations at Custodia in line with
/// this server (UMA Federated Authorization §3.2): list what is registered, update the known
/// resources to the current descriptions, create the missing ones, and delete registrations this
/// server no longer knows (left over from a lost database, say).
pub async fn on_connect(state: &AppState, pat: &Pat) -> Result<(), HttpResponse> {
    let owner = &pat.owner;
    let patient = json!({"resourceType": "Patient", "id": owner});
    state
        .store
        .ensure_patient(owner, patient.to_string())
        .await
        .map_err(internal)?;
    let registered = state.uma.list_resources(pat).await.map_err(internal)?;
    let mut kept: Vec<String> = vec![];
    for (fhir_type, label) in PROTECTED_TYPES {
        let description = ResourceDescription::new(registered_scopes(fhir_type))
            .with_name(*label)
            .with_type(format!(
                "http://hl7.org/fhir/StructureDefinition/{fhir_type}"
            ));
        let known = state
            .store
            .resource_id(owner, fhir_type)
            .await
            .map_err(internal)?
            .filter(|id| registered.contains(id));
        let id = match known {
            Some(id) => {
                state
                    .uma
                    .update_resource(pat, &id, &description)
                    .await
                    .map_err(internal)?;
                id
            }
            None => {
                let created = state
                    .uma
                    .create_resource(pat, &description)
                    .await
                    .map_err(internal)?;
                state
                    .store
                    .set_resource_id(owner, fhir_type, &created.id)
                    .await
                    .map_err(internal)?;
                created.id
            }
        };
        kept.push(id);
    }
    for stray in registered.iter().filter(|id| !kept.contains(id)) {
        state
            .uma
            .delete_resource(pat, stray)
            .await
            .map_err(internal)?;
    }
    Ok(())
}

/// The requirement of a request: whose data, which UMA resource, which scope.
async fn requirement(
    state: &AppState,
    owner: &str,
    fhir_type: &str,
    write: bool,
) -> Result<Requirement, actix_web::Error> {
    let id = state
        .store
        .resource_id(owner, fhir_type)
        .await
        .map_err(actix_web::error::ErrorInternalServerError)?;
    let Some(id) = id else {
        return Err(actix_web::error::InternalError::from_response(
            "unknown patient",
            outcome(
                StatusCode::NOT_FOUND,
                "not-found",
                "no such patient on this server",
            ),
        )
        .into());
    };
    let [read, w] = scopes_of(fhir_type);
    Ok(Requirement::new(owner, id, [if write { w } else { read }])
        .with_verification(state.verification))
}

/// The guard's resolver for the routes that use the [`Authorized`] extractor.
async fn resolve(req: HttpRequest) -> Result<Requirement, actix_web::Error> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| actix_web::error::ErrorInternalServerError("no state"))?;
    let write = req.method() != actix_web::http::Method::GET;
    let path = req.match_pattern().unwrap_or_default();
    let bad = |text: &str| -> actix_web::Error {
        actix_web::error::InternalError::from_response(
            "bad request",
            outcome(StatusCode::BAD_REQUEST, "invalid", text),
        )
        .into()
    };
    match path.as_str() {
        "/fhir/Patient/{id}" => {
            let id = req.match_info().get("id").unwrap_or_default();
            requirement(&state, id, "Patient", write).await
        }
        "/fhir/Patient/{id}/Observation" => {
            let id = req.match_info().get("id").unwrap_or_default();
            requirement(&state, id, "Observation", false).await
        }
        "/fhir/Observation" => {
            let q = web::Query::<HashMap<String, String>>::from_query(req.query_string())
                .map_err(|_| bad("bad query"))?;
            let Some(p) = q.get("patient").or_else(|| q.get("subject")) else {
                return Err(bad("search needs `patient`"));
            };
            let id = p.strip_prefix("Patient/").unwrap_or(p);
            requirement(&state, id, "Observation", false).await
        }
        "/fhir/Observation/{oid}" => {
            let oid = req.match_info().get("oid").unwrap_or_default();
            let found = state
                .store
                .observation(oid)
                .await
                .map_err(actix_web::error::ErrorInternalServerError)?;
            let Some((owner, _)) = found else {
                return Err(actix_web::error::InternalError::from_response(
                    "not found",
                    outcome(StatusCode::NOT_FOUND, "not-found", "no such observation"),
                )
                .into());
            };
            requirement(&state, &owner, "Observation", false).await
        }
        _ => Err(actix_web::error::ErrorInternalServerError(
            "unprotected route",
        )),
    }
}

async fn read_patient(auth: Authorized, state: web::Data<AppState>) -> HttpResponse {
    match state.store.patient(&auth.requirement.owner).await {
        Ok(Some(body)) => match serde_json::from_str::<Value>(&body) {
            Ok(v) => fhir(StatusCode::OK, &v),
            Err(e) => internal(e),
        },
        Ok(None) => outcome(StatusCode::NOT_FOUND, "not-found", "no such patient"),
        Err(e) => internal(e),
    }
}

async fn write_patient(
    auth: Authorized,
    body: web::Json<Value>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let owner = &auth.requirement.owner;
    let mut v = body.into_inner();
    if v.get("resourceType").and_then(Value::as_str) != Some("Patient") {
        return outcome(
            StatusCode::BAD_REQUEST,
            "invalid",
            "`resourceType` must be `Patient`",
        );
    }
    if let Some(o) = v.as_object_mut() {
        o.insert("id".into(), json!(owner));
    }
    match state.store.put_patient(owner, v.to_string()).await {
        Ok(()) => fhir(StatusCode::OK, &v),
        Err(e) => internal(e),
    }
}

async fn search_observations(auth: Authorized, state: web::Data<AppState>) -> HttpResponse {
    match state.store.observations_of(&auth.requirement.owner).await {
        Ok(rows) => {
            let entries: Vec<Value> = rows
                .iter()
                .filter_map(|b| serde_json::from_str::<Value>(b).ok())
                .map(|r| json!({"resource": r}))
                .collect();
            fhir(
                StatusCode::OK,
                &json!({
                    "resourceType": "Bundle",
                    "type": "searchset",
                    "total": entries.len(),
                    "entry": entries,
                }),
            )
        }
        Err(e) => internal(e),
    }
}

async fn read_observation(
    _auth: Authorized,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> HttpResponse {
    // The guard resolved this observation's owner and checked the RPT for it.
    match state.store.observation(&path).await {
        Ok(Some((_, body))) => match serde_json::from_str::<Value>(&body) {
            Ok(v) => fhir(StatusCode::OK, &v),
            Err(e) => internal(e),
        },
        Ok(None) => outcome(StatusCode::NOT_FOUND, "not-found", "no such observation"),
        Err(e) => internal(e),
    }
}

/// `POST /fhir/Observation`: the owner comes from the body's `subject`, so this handler calls the
/// guard itself (the function form) after reading the body.
async fn create_observation(
    req: HttpRequest,
    body: web::Json<Value>,
    state: web::Data<AppState>,
    guard: web::Data<UmaGuard>,
) -> HttpResponse {
    let mut v = body.into_inner();
    if v.get("resourceType").and_then(Value::as_str) != Some("Observation") {
        return outcome(
            StatusCode::BAD_REQUEST,
            "invalid",
            "`resourceType` must be `Observation`",
        );
    }
    let Some(owner) = v
        .pointer("/subject/reference")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("Patient/"))
        .map(str::to_string)
    else {
        return outcome(
            StatusCode::BAD_REQUEST,
            "required",
            "`subject.reference` must be `Patient/{id}`",
        );
    };
    let requirement = match requirement(&state, &owner, "Observation", true).await {
        Ok(r) => r,
        Err(e) => return e.error_response(),
    };
    if let Err(e) = guard.authorize(&req, &requirement).await {
        return actix_web::ResponseError::error_response(&e);
    }
    let id = uuid::Uuid::new_v4().to_string();
    if let Some(o) = v.as_object_mut() {
        o.insert("id".into(), json!(id));
    }
    match state
        .store
        .add_observation(&id, &owner, v.to_string(), now())
        .await
    {
        Ok(()) => HttpResponse::Created()
            .insert_header((CONTENT_TYPE, FHIR_JSON))
            .insert_header((LOCATION, format!("/fhir/Observation/{id}")))
            .json(v),
        Err(e) => internal(e),
    }
}

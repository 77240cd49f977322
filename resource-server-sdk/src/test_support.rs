//! Test helpers: signing keys generated in-test, token minting, and a fake authorization server
//! on `127.0.0.1:0` (actix-web) that serves discovery, the JWKS, the token endpoint, resource
//! registration, the permission endpoint and introspection, and counts its calls.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use josekit::jws::{self, JwsHeader};
use josekit::jwt::{self, JwtPayload};
use serde_json::{Value, json};

use crate::jwks::KeySet;

/// An RS256 and an ES256 key pair with their kids.
pub struct TestKeys {
    pub rsa_kid: String,
    pub ec_kid: String,
    rsa_der: Vec<u8>,
    ec_der: Vec<u8>,
    rsa_jwk: Value,
    ec_jwk: Value,
}

impl TestKeys {
    pub fn generate() -> TestKeys {
        let rsa = jws::RS256.generate_key_pair(2048).unwrap();
        let ec = jws::ES256.generate_key_pair().unwrap();
        let mut rsa_jwk = rsa.to_jwk_public_key();
        rsa_jwk.set_key_id("rsa-1");
        rsa_jwk.set_algorithm("RS256");
        let mut ec_jwk = ec.to_jwk_public_key();
        ec_jwk.set_key_id("ec-1");
        ec_jwk.set_algorithm("ES256");
        TestKeys {
            rsa_kid: "rsa-1".into(),
            ec_kid: "ec-1".into(),
            rsa_der: rsa.to_der_private_key(),
            ec_der: ec.to_der_private_key(),
            rsa_jwk: Value::Object(rsa_jwk.as_ref().clone()),
            ec_jwk: Value::Object(ec_jwk.as_ref().clone()),
        }
    }

    pub fn jwks(&self) -> Value {
        json!({"keys": [self.rsa_jwk, self.ec_jwk]})
    }

    pub fn key_set(&self) -> KeySet {
        KeySet::from_json(self.jwks().to_string().as_bytes()).unwrap()
    }

    /// Sign `claims` with the key of `alg` under its kid.
    pub fn sign(&self, alg: &str, typ: &str, claims: &Value) -> String {
        let kid = if alg == "ES256" {
            &self.ec_kid
        } else {
            &self.rsa_kid
        };
        self.sign_with_kid(alg, kid, typ, claims)
    }

    /// Sign with the key of `alg` but put `kid` in the header.
    pub fn sign_with_kid(&self, alg: &str, kid: &str, typ: &str, claims: &Value) -> String {
        let mut header = JwsHeader::new();
        header.set_token_type(typ);
        header.set_key_id(kid);
        let payload = JwtPayload::from_map(claims.as_object().unwrap().clone()).unwrap();
        match alg {
            "RS256" => {
                let signer = jws::RS256.signer_from_der(&self.rsa_der).unwrap();
                jwt::encode_with_signer(&payload, &header, &signer).unwrap()
            }
            "PS256" => {
                let signer = jws::PS256.signer_from_der(&self.rsa_der).unwrap();
                jwt::encode_with_signer(&payload, &header, &signer).unwrap()
            }
            "ES256" => {
                let signer = jws::ES256.signer_from_der(&self.ec_der).unwrap();
                jwt::encode_with_signer(&payload, &header, &signer).unwrap()
            }
            other => panic!("no key for {other}"),
        }
    }
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Call counters of the fake authorization server.
#[derive(Default)]
pub struct Counters {
    pub discovery: AtomicUsize,
    pub jwks: AtomicUsize,
    pub token: AtomicUsize,
    pub refresh: AtomicUsize,
    pub permission: AtomicUsize,
    pub introspection: AtomicUsize,
}

impl Counters {
    pub fn get(c: &AtomicUsize) -> usize {
        c.load(Ordering::SeqCst)
    }
}

/// Mutable state of the fake authorization server.
#[derive(Default)]
pub struct FakeState {
    pub issuer: String,
    /// Valid refresh tokens → owner.
    pub refresh_tokens: HashMap<String, String>,
    /// Authorization codes → (owner, code_challenge).
    pub codes: HashMap<String, (String, String)>,
    /// Introspection answers by token; unknown tokens are inactive.
    pub introspection: HashMap<String, Value>,
    /// Registered resources by id.
    pub resources: HashMap<String, Value>,
    /// The last permission request body.
    pub last_permission_request: Option<Value>,
    /// Answer every permission request with this status and body instead of a ticket.
    pub permission_failure: Option<(u16, Value)>,
    /// PATs (access tokens) the permission and introspection endpoints refuse with 401
    /// `invalid_token`, as after the owner disconnected the resource server.
    pub revoked_pats: HashSet<String>,
    pub next_id: usize,
    /// Last seen `Authorization` header at the token endpoint.
    pub last_token_auth: Option<String>,
    pub pat_lifetime: i64,
    /// Claims merged into PATs minted by the token endpoint (to mint bad ones).
    pub pat_overrides: Option<Value>,
}

/// The client credentials the fake server accepts.
pub const CLIENT_ID: &str = "rs-client";
pub const CLIENT_SECRET: &str = "s3cret:with/odd chars";
/// The PAT every protection endpoint accepts besides freshly minted ones.
pub const OWNER: &str = "user-alice";

pub struct FakeAs {
    pub issuer: String,
    pub counters: Arc<Counters>,
    pub state: Arc<Mutex<FakeState>>,
    pub keys: Arc<TestKeys>,
    handle: actix_web::dev::ServerHandle,
}

struct Shared {
    counters: Arc<Counters>,
    state: Arc<Mutex<FakeState>>,
    keys: Arc<TestKeys>,
}

impl FakeAs {
    /// Start the fake server; must run inside an actix (or tokio) runtime.
    pub async fn start() -> FakeAs {
        let keys = Arc::new(TestKeys::generate());
        let counters = Arc::new(Counters::default());
        let state = Arc::new(Mutex::new(FakeState {
            pat_lifetime: 3600,
            ..FakeState::default()
        }));
        let shared = web::Data::new(Shared {
            counters: counters.clone(),
            state: state.clone(),
            keys: keys.clone(),
        });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(shared.clone())
                .route("/.well-known/uma2-configuration", web::get().to(discovery))
                .route("/jwks", web::get().to(jwks))
                .route("/token", web::post().to(token))
                .route("/introspect", web::post().to(introspect))
                .route("/uma/permission", web::post().to(permission))
                .route("/uma/resources", web::post().to(create_resource))
                .route("/uma/resources", web::get().to(list_resources))
                .route("/uma/resources/{id}", web::get().to(read_resource))
                .route("/uma/resources/{id}", web::put().to(update_resource))
                .route("/uma/resources/{id}", web::delete().to(delete_resource))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(0)
        .bind(("127.0.0.1", 0))
        .unwrap();
        let addr = server.addrs()[0];
        let issuer = format!("http://{addr}");
        state.lock().unwrap().issuer = issuer.clone();
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        FakeAs {
            issuer,
            counters,
            state,
            keys,
            handle,
        }
    }

    pub async fn stop(self) {
        self.handle.stop(false).await;
    }

    /// A PAT JWT for `owner` as the token endpoint would mint it.
    pub fn mint_pat(&self, owner: &str, exp: i64) -> String {
        mint_pat(&self.keys, &self.issuer, owner, exp)
    }

    /// An RPT for `permissions`, valid for an hour.
    pub fn mint_rpt(&self, alg: &str, permissions: Value) -> String {
        let now = now();
        self.keys.sign(
            alg,
            "at+jwt",
            &json!({
                "iss": self.issuer, "sub": "bob", "aud": [CLIENT_ID], "client_id": "client-app",
                "iat": now, "exp": now + 3600, "jti": "rpt-1", "permissions": permissions,
            }),
        )
    }

    pub fn with_state<R>(&self, f: impl FnOnce(&mut FakeState) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }
}

fn pat_claims(issuer: &str, owner: &str, exp: i64) -> Value {
    let now = now();
    json!({
        "iss": issuer, "sub": owner, "aud": issuer, "client_id": CLIENT_ID,
        "iat": now, "exp": exp, "jti": format!("pat-{now}-{exp}"), "scope": "uma_protection openid",
    })
}

fn mint_pat(keys: &TestKeys, issuer: &str, owner: &str, exp: i64) -> String {
    keys.sign("RS256", "at+jwt", &pat_claims(issuer, owner, exp))
}

fn bearer_ok(req: &HttpRequest) -> bool {
    req.headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer ") && v.len() > 7)
}

/// Whether the bearer token is one of the revoked PATs.
fn revoked(st: &FakeState, req: &HttpRequest) -> bool {
    req.headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| st.revoked_pats.contains(t))
}

fn unauthorized() -> HttpResponse {
    HttpResponse::Unauthorized()
        .insert_header(("WWW-Authenticate", r#"Bearer error="invalid_token""#))
        .finish()
}

fn oauth_error(status: u16, code: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
        .json(json!({"error": code, "error_description": format!("fake {code}")}))
}

async fn discovery(s: web::Data<Shared>) -> HttpResponse {
    s.counters.discovery.fetch_add(1, Ordering::SeqCst);
    let issuer = s.state.lock().unwrap().issuer.clone();
    HttpResponse::Ok().json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "introspection_endpoint": format!("{issuer}/introspect"),
        "revocation_endpoint": format!("{issuer}/revoke"),
        "resource_registration_endpoint": format!("{issuer}/uma/resources"),
        "permission_endpoint": format!("{issuer}/uma/permission"),
        "uma_profiles_supported": [],
        "grant_types_supported": ["authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:uma-ticket"],
    }))
}

async fn jwks(s: web::Data<Shared>) -> HttpResponse {
    s.counters.jwks.fetch_add(1, Ordering::SeqCst);
    HttpResponse::Ok().json(s.keys.jwks())
}

async fn token(
    s: web::Data<Shared>,
    req: HttpRequest,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    s.counters.token.fetch_add(1, Ordering::SeqCst);
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let expected = crate::http::basic_auth(CLIENT_ID, CLIENT_SECRET);
    let issuer = {
        let mut st = s.state.lock().unwrap();
        st.last_token_auth = auth.clone();
        st.issuer.clone()
    };
    if auth.as_deref() != Some(expected.as_str()) {
        return oauth_error(401, "invalid_client");
    }
    let owner = match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let code = form.get("code").cloned().unwrap_or_default();
            let verifier = form.get("code_verifier").cloned().unwrap_or_default();
            let Some((owner, challenge)) = s.state.lock().unwrap().codes.remove(&code) else {
                return oauth_error(400, "invalid_grant");
            };
            if crate::pkce::code_challenge_s256(&verifier) != challenge {
                return oauth_error(400, "invalid_grant");
            }
            owner
        }
        Some("refresh_token") => {
            s.counters.refresh.fetch_add(1, Ordering::SeqCst);
            // slow enough that concurrent refreshes would overlap
            actix_web::rt::time::sleep(std::time::Duration::from_millis(50)).await;
            let rt = form.get("refresh_token").cloned().unwrap_or_default();
            let Some(owner) = s.state.lock().unwrap().refresh_tokens.remove(&rt) else {
                return oauth_error(400, "invalid_grant");
            };
            owner
        }
        _ => return oauth_error(400, "unsupported_grant_type"),
    };
    let (lifetime, n, overrides) = {
        let mut st = s.state.lock().unwrap();
        st.next_id += 1;
        (st.pat_lifetime, st.next_id, st.pat_overrides.clone())
    };
    let refresh = format!("rt-{owner}-{n}");
    s.state
        .lock()
        .unwrap()
        .refresh_tokens
        .insert(refresh.clone(), owner.clone());
    let exp = now() + lifetime;
    let access_token = match overrides {
        None => mint_pat(&s.keys, &issuer, &owner, exp),
        Some(o) => {
            let mut claims = pat_claims(&issuer, &owner, exp);
            for (k, v) in o.as_object().unwrap() {
                claims[k] = v.clone();
            }
            s.keys.sign("RS256", "at+jwt", &claims)
        }
    };
    HttpResponse::Ok().json(json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": lifetime,
        "refresh_token": refresh,
        "scope": "uma_protection openid",
    }))
}

async fn introspect(
    s: web::Data<Shared>,
    req: HttpRequest,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    s.counters.introspection.fetch_add(1, Ordering::SeqCst);
    if !bearer_ok(&req) || revoked(&s.state.lock().unwrap(), &req) {
        return unauthorized();
    }
    let token = form.get("token").cloned().unwrap_or_default();
    let answer = s.state.lock().unwrap().introspection.get(&token).cloned();
    HttpResponse::Ok().json(answer.unwrap_or_else(|| json!({"active": false})))
}

async fn permission(
    s: web::Data<Shared>,
    req: HttpRequest,
    body: web::Json<Value>,
) -> HttpResponse {
    let n = s.counters.permission.fetch_add(1, Ordering::SeqCst);
    if !bearer_ok(&req) {
        return unauthorized();
    }
    let mut st = s.state.lock().unwrap();
    if revoked(&st, &req) {
        return unauthorized();
    }
    st.last_permission_request = Some(body.into_inner());
    if let Some((status, body)) = &st.permission_failure {
        return HttpResponse::build(actix_web::http::StatusCode::from_u16(*status).unwrap())
            .json(body);
    }
    HttpResponse::Created().json(json!({"ticket": format!("ticket-{n}")}))
}

async fn create_resource(
    s: web::Data<Shared>,
    req: HttpRequest,
    body: web::Json<Value>,
) -> HttpResponse {
    if !bearer_ok(&req) {
        return unauthorized();
    }
    if !body.get("resource_scopes").is_some_and(Value::is_array) {
        return oauth_error(400, "invalid_request");
    }
    let mut st = s.state.lock().unwrap();
    st.next_id += 1;
    let id = format!("res-{}", st.next_id);
    st.resources.insert(id.clone(), body.into_inner());
    let issuer = st.issuer.clone();
    HttpResponse::Created()
        .insert_header(("Location", format!("{issuer}/uma/resources/{id}")))
        .json(json!({"_id": id, "user_access_policy_uri": format!("{issuer}/policy/{id}")}))
}

async fn list_resources(s: web::Data<Shared>, req: HttpRequest) -> HttpResponse {
    if !bearer_ok(&req) {
        return unauthorized();
    }
    let mut ids: Vec<String> = s.state.lock().unwrap().resources.keys().cloned().collect();
    ids.sort();
    HttpResponse::Ok().json(ids)
}

async fn read_resource(
    s: web::Data<Shared>,
    req: HttpRequest,
    id: web::Path<String>,
) -> HttpResponse {
    if !bearer_ok(&req) {
        return unauthorized();
    }
    match s.state.lock().unwrap().resources.get(id.as_str()) {
        Some(body) => {
            let mut body = body.clone();
            body["_id"] = json!(id.as_str());
            HttpResponse::Ok().json(body)
        }
        None => oauth_error(404, "not_found"),
    }
}

async fn update_resource(
    s: web::Data<Shared>,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Json<Value>,
) -> HttpResponse {
    if !bearer_ok(&req) {
        return unauthorized();
    }
    let mut st = s.state.lock().unwrap();
    if !st.resources.contains_key(id.as_str()) {
        return oauth_error(404, "not_found");
    }
    st.resources.insert(id.to_string(), body.into_inner());
    HttpResponse::Ok().json(json!({"_id": id.as_str()}))
}

async fn delete_resource(
    s: web::Data<Shared>,
    req: HttpRequest,
    id: web::Path<String>,
) -> HttpResponse {
    if !bearer_ok(&req) {
        return unauthorized();
    }
    match s.state.lock().unwrap().resources.remove(id.as_str()) {
        Some(_) => HttpResponse::NoContent().finish(),
        None => oauth_error(404, "not_found"),
    }
}

//! The end-to-end test harness: real Custodia servers on free ports (`127.0.0.1:0`), each against a
//! fresh SQLite file or a fresh PostgreSQL database, driven over HTTP with real client libraries.
//!
//! Every test is written once and run against both backends with [`both!`]; the PostgreSQL half of
//! a test fails loudly when PostgreSQL is unreachable (the test script decides, and says, when that
//! half is not run at all).

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::PathBuf;

use custodia_server::config::Config;
use custodia_server::keys::{KeyRing, load_or_create_kek};
use custodia_server::protocol::Core;
use custodia_server::protocol::clients::ClientMetadata;
use custodia_server::protocol::registration::{RegisteredBy, register_on};
use custodia_server::store::Store;
use serde_json::Value;

pub use reqwest;

/// Which database a test server uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server the tests use (`CUSTODIA_TEST_PG`, default the local trust-auth server).
pub fn pg_admin_url() -> String {
    std::env::var("CUSTODIA_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_string())
}

/// A fresh PostgreSQL database for one test; returns its URL.
pub fn fresh_pg_database() -> String {
    use diesel::Connection as _;
    use diesel::connection::SimpleConnection as _;
    let admin = format!("{}/postgres", pg_admin_url());
    let mut conn = diesel::PgConnection::establish(&admin).unwrap_or_else(|e| {
        panic!("PostgreSQL is not reachable at {admin}: {e}. Start it, or run only the SQLite half (see README)")
    });
    let name = format!("custodia_t_{}", uuid::Uuid::new_v4().simple());
    conn.batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap_or_else(|e| panic!("CREATE DATABASE failed: {e}"));
    format!("{}/{name}", pg_admin_url())
}

/// A running test server.
pub struct TestServer {
    pub base: String,
    pub core: Core,
    pub store: Store,
    pub backend: Backend,
    pub database_url: String,
    handle: actix_web::dev::ServerHandle,
    _dir: tempfile::TempDir,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let h = self.handle.clone();
        // Stop without waiting; the runtime ends with the test.
        drop(h.stop(false));
        if self.backend == Backend::Postgres {
            drop_pg_database(&self.database_url);
        }
    }
}

/// Drop a test database (its pool's connections are cut with `FORCE`).
pub fn drop_pg_database(url: &str) {
    use diesel::Connection as _;
    use diesel::connection::SimpleConnection as _;
    let Some(name) = url
        .rsplit('/')
        .next()
        .filter(|n| n.starts_with("custodia_t_"))
    else {
        return;
    };
    if let Ok(mut conn) = diesel::PgConnection::establish(&format!("{}/postgres", pg_admin_url())) {
        let _ = conn.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
    }
}

impl TestServer {
    /// Start a server with default settings plus `overrides` (environment-style names).
    pub async fn start(backend: Backend) -> TestServer {
        Self::start_with(backend, &[]).await
    }

    pub async fn start_with(backend: Backend, overrides: &[(&str, &str)]) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
        Self::start_on(backend, listener, overrides).await
    }

    /// Start on a listener bound beforehand (when another party must know the URL first).
    pub async fn start_on(
        backend: Backend,
        listener: TcpListener,
        overrides: &[(&str, &str)],
    ) -> TestServer {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let port = listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("addr: {e}"));
        let base = format!("http://127.0.0.1:{port}");
        let database_url = match backend {
            Backend::Sqlite => format!("sqlite://{}", dir.path().join("custodia.db").display()),
            Backend::Postgres => tokio::task::spawn_blocking(fresh_pg_database)
                .await
                .unwrap_or_else(|e| panic!("{e}")),
        };
        let mut env: HashMap<String, String> = HashMap::new();
        env.insert("CUSTODIA_BIND".into(), format!("127.0.0.1:{port}"));
        env.insert("CUSTODIA_ISSUER".into(), base.clone());
        env.insert("CUSTODIA_DATABASE_URL".into(), database_url.clone());
        env.insert(
            "CUSTODIA_KEK_FILE".into(),
            dir.path().join("kek").display().to_string(),
        );
        env.insert("CUSTODIA_WORKERS".into(), "2".into());
        env.insert("CUSTODIA_DB_POOL_SIZE".into(), "8".into());
        for (k, v) in overrides {
            env.insert((*k).to_string(), (*v).to_string());
        }
        let config =
            Config::load(None, |k| env.get(k).cloned()).unwrap_or_else(|e| panic!("config: {e}"));
        let cfg2 = config.clone();
        let (store, keys) = tokio::task::spawn_blocking(move || {
            let store = Store::open(&cfg2.database, cfg2.db_pool_size)
                .unwrap_or_else(|e| panic!("store: {e}"));
            store.migrate().unwrap_or_else(|e| panic!("migrate: {e}"));
            let kek = load_or_create_kek(&cfg2).unwrap_or_else(|e| panic!("kek: {e}"));
            let keys = KeyRing::load_or_init(&store, &cfg2, kek, custodia_server::now())
                .unwrap_or_else(|e| panic!("keys: {e}"));
            (store, keys)
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let core = Core::new(config, store.clone(), keys);
        let server = custodia_server::http::start(core.clone(), listener)
            .unwrap_or_else(|e| panic!("start: {e}"));
        let handle = server.handle();
        tokio::spawn(server);
        TestServer {
            base,
            core,
            store,
            backend,
            database_url,
            handle,
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Register a client directly (as `custodia client add` does); returns the RFC 7591 JSON.
    pub async fn add_client(&self, metadata: Value) -> Value {
        self.try_add_client(metadata)
            .await
            .unwrap_or_else(|e| panic!("register: {} {}", e.0, e.1))
    }

    /// As [`TestServer::add_client`], but a refused registration is returned as its error code
    /// and description.
    pub async fn try_add_client(&self, metadata: Value) -> Result<Value, (String, String)> {
        let meta: ClientMetadata =
            serde_json::from_value(metadata).unwrap_or_else(|e| panic!("metadata: {e}"));
        let store = self.store.clone();
        let profile = self.core.config.profile;
        let issuer = self.core.config.issuer.clone();
        let loopback = self.core.config.insecure_loopback_http_redirects;
        store
            .run(move |c| {
                Ok(register_on(
                    c,
                    profile,
                    &issuer,
                    meta,
                    RegisteredBy::Cli,
                    loopback,
                    custodia_server::now(),
                ))
            })
            .await
            .unwrap_or_else(|e| panic!("store: {e}"))
            .map_err(|e| (e.error.as_str().to_string(), e.error_description))
    }

    /// A confidential web client for the code flow, redirecting to `https://client.example/cb`.
    pub async fn web_client(&self) -> TestClient {
        let v = self
            .add_client(serde_json::json!({
                "client_name": "Test App",
                "redirect_uris": ["https://client.example/cb"],
                "grant_types": ["authorization_code", "refresh_token"],
                "scope": "openid profile email offline_access",
            }))
            .await;
        TestClient::from_json(&v)
    }

    /// A confidential client for `client_credentials` with scope `api:read api:write`.
    pub async fn service_client(&self) -> TestClient {
        let v = self
            .add_client(serde_json::json!({
                "client_name": "Service",
                "grant_types": ["client_credentials"],
                "scope": "api:read api:write",
            }))
            .await;
        TestClient::from_json(&v)
    }

    /// A confidential resource server client (UMA): code flow for PATs (`uma_protection`),
    /// redirecting to `https://client.example/cb`.
    pub async fn rs_client(&self, name: &str) -> TestClient {
        let v = self
            .add_client(serde_json::json!({
                "client_name": name,
                "redirect_uris": ["https://client.example/cb"],
                "grant_types": ["authorization_code", "refresh_token"],
                "scope": "openid uma_protection",
            }))
            .await;
        TestClient::from_json(&v)
    }

    /// Register a `private_key_jwt` client (an ES256 key made here, its public half registered as
    /// `jwks`) with these metadata; its token requests are signed client assertions.
    pub async fn add_key_client(&self, metadata: Value) -> TestClient {
        self.try_add_key_client(metadata)
            .await
            .unwrap_or_else(|e| panic!("register: {} {}", e.0, e.1))
    }

    /// As [`TestServer::add_key_client`], but a refused registration is returned as its error
    /// code and description.
    pub async fn try_add_key_client(
        &self,
        mut metadata: Value,
    ) -> Result<TestClient, (String, String)> {
        let pair = josekit::jws::ES256
            .generate_key_pair()
            .unwrap_or_else(|e| panic!("{e}"));
        let mut public = pair.to_jwk_public_key();
        public.set_key_id("k1");
        public.set_algorithm("ES256");
        if let Some(o) = metadata.as_object_mut() {
            o.insert(
                "token_endpoint_auth_method".into(),
                serde_json::json!("private_key_jwt"),
            );
            o.insert(
                "jwks".into(),
                serde_json::json!({"keys": [Value::Object(public.as_ref().clone())]}),
            );
        }
        let mut c = TestClient::from_json(&self.try_add_client(metadata).await?);
        let mut private = pair.to_jwk_private_key();
        private.set_key_id("k1");
        private.set_algorithm("ES256");
        c.key = Some(private);
        Ok(c)
    }

    /// A PAT of `rs` for the owner `username` (code flow with PKCE, the owner consents).
    pub async fn pat(&self, rs: &TestClient, username: &str, password: &str) -> String {
        let t = code_flow_tokens(self, rs, username, password, "uma_protection").await;
        t["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no PAT in {t}"))
            .to_string()
    }

    /// Mint an RPT the way the UMA grant does, recorded so introspection and revocation know it.
    pub async fn mint_rpt(
        &self,
        client_id: &str,
        audience: &[String],
        permissions: &[custodia_server::protocol::tokens::RptPermission],
    ) -> String {
        let minter = custodia_server::protocol::tokens::Minter::from_core(&self.core);
        let (token, row) = minter
            .mint_rpt(
                &custodia_server::protocol::tokens::RptSpec {
                    client_id,
                    subject: "requesting-party",
                    user_id: None,
                    audience,
                    permissions,
                    grant_id: None,
                },
                self.core.now(),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        self.store
            .record_access_token(row)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        token
    }

    /// Stop serving (the database stays): the authorization server becomes unreachable.
    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }

    /// Add a user; returns its id.
    pub async fn add_user(&self, username: &str, password: &str) -> String {
        let row = custodia_server::protocol::users::new_user(
            username,
            &format!("{username}@example.org"),
            Some("Test User"),
            true,
            password,
            custodia_server::now(),
        )
        .unwrap_or_else(|e| panic!("user: {e}"));
        let id = row.id.clone();
        self.store
            .run(move |c| custodia_server::store::users::insert(c, &row))
            .await
            .unwrap_or_else(|e| panic!("insert user: {e}"));
        id
    }

    /// Every text value in every table, for "stored only as hashes" checks.
    pub async fn dump_database(&self) -> String {
        use diesel::prelude::*;
        #[derive(QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::Text)]
            v: String,
        }
        let tables = [
            ("users", vec!["id", "username", "email", "password_hash"]),
            (
                "clients",
                vec![
                    "id",
                    "metadata",
                    "COALESCE(secret_hash, '')",
                    "COALESCE(registration_token_hash, '')",
                ],
            ),
            (
                "auth_codes",
                vec!["code_hash", "grant_id", "redirect_uri", "scope"],
            ),
            ("access_tokens", vec!["jti", "client_id", "scope"]),
            ("refresh_tokens", vec!["token_hash", "grant_id", "scope"]),
            ("sessions", vec!["id_hash", "user_id"]),
            ("initial_access_tokens", vec!["token_hash"]),
            ("tickets", vec!["ticket_hash", "permissions"]),
            ("signing_keys", vec!["kid", "public_jwk", "private_key_enc"]),
        ];
        self.store
            .run(move |c| {
                let mut out = String::new();
                for (t, cols) in &tables {
                    for col in cols {
                        let q = format!("SELECT CAST({col} AS TEXT) AS v FROM {t}");
                        let rows: Vec<Row> = custodia_server::with_conn!(c, c => diesel::sql_query(q.clone()).load(c))?;
                        for r in rows {
                            out.push_str(&r.v);
                            out.push('\n');
                        }
                    }
                }
                Ok(out)
            })
            .await
            .unwrap_or_else(|e| panic!("dump: {e}"))
    }
}

/// A registered client's credentials.
#[derive(Clone, Debug)]
pub struct TestClient {
    pub id: String,
    pub secret: Option<String>,
    pub json: Value,
    /// The private key of a `private_key_jwt` client (ES256).
    pub key: Option<josekit::jwk::Jwk>,
}

impl TestClient {
    pub fn from_json(v: &Value) -> TestClient {
        TestClient {
            id: v["client_id"].as_str().unwrap_or_default().to_string(),
            secret: v["client_secret"].as_str().map(str::to_string),
            json: v.clone(),
            key: None,
        }
    }

    /// A client assertion (RFC 7523) for `endpoint`, signed with the client's key.
    pub fn assertion(&self, endpoint: &str) -> Option<String> {
        let key = self.key.as_ref()?;
        let now = custodia_server::now();
        let claims = serde_json::json!({
            "iss": self.id, "sub": self.id, "aud": endpoint, "iat": now, "exp": now + 60,
            "jti": uuid::Uuid::new_v4().to_string(),
        });
        let payload =
            josekit::jwt::JwtPayload::from_map(claims.as_object().cloned().unwrap_or_default())
                .ok()?;
        let mut header = josekit::jws::JwsHeader::new();
        header.set_key_id("k1");
        let signer = josekit::jws::ES256.signer_from_jwk(key).ok()?;
        josekit::jwt::encode_with_signer(&payload, &header, &signer).ok()
    }

    /// The form fields that authenticate this client at `endpoint` when it uses
    /// `private_key_jwt` (none otherwise: secrets go in HTTP Basic).
    pub fn auth_fields(&self, endpoint: &str) -> Vec<(&'static str, String)> {
        match self.assertion(endpoint) {
            Some(a) => vec![
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_string(),
                ),
                ("client_assertion", a),
            ],
            None => vec![],
        }
    }
}

/// An HTTP client that keeps cookies and never follows redirects (so tests see every `Location`).
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_else(|e| panic!("client: {e}"))
}

/// A browser whose connections come from another loopback address (`127.0.0.2`), so a test can
/// play a second source address against the server on `127.0.0.1`.
pub fn browser_from(source: std::net::IpAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .local_address(source)
        .build()
        .unwrap_or_else(|e| panic!("client: {e}"))
}

/// A plain HTTP client (no cookies, no redirects).
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_else(|e| panic!("client: {e}"))
}

/// The value of a hidden or text input in an HTML page.
pub fn input_value(html: &str, name: &str) -> Option<String> {
    let doc = scraper::Html::parse_document(html);
    let sel = scraper::Selector::parse(&format!("input[name=\"{name}\"]")).ok()?;
    doc.select(&sel)
        .next()
        .and_then(|e| e.value().attr("value"))
        .map(str::to_string)
}

/// What the browser ended on after a step of the flow.
#[derive(Debug)]
pub enum Landing {
    /// A page (status, body).
    Page(u16, String),
    /// A redirect away from the server (status, Location).
    Redirect(u16, String),
}

impl Landing {
    pub async fn from(resp: reqwest::Response) -> Landing {
        let status = resp.status().as_u16();
        if (300..400).contains(&status) {
            let loc = resp
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            Landing::Redirect(status, loc)
        } else {
            Landing::Page(status, resp.text().await.unwrap_or_default())
        }
    }

    pub fn redirect(&self) -> &str {
        match self {
            Landing::Redirect(_, l) => l,
            Landing::Page(s, b) => panic!(
                "expected a redirect, got page {s}: {}",
                &b[..b.len().min(400)]
            ),
        }
    }

    pub fn page(&self) -> (u16, &str) {
        match self {
            Landing::Page(s, b) => (*s, b),
            Landing::Redirect(s, l) => panic!("expected a page, got redirect {s} to {l}"),
        }
    }
}

/// Submit the login form of `page` with these credentials.
pub async fn submit_login(
    browser: &reqwest::Client,
    srv: &TestServer,
    page: &str,
    username: &str,
    password: &str,
) -> Landing {
    let csrf =
        input_value(page, "csrf").unwrap_or_else(|| panic!("login page without csrf: {page}"));
    let request = input_value(page, "request").unwrap_or_default();
    let resp = browser
        .post(srv.url("/authorize/login"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("request", request.as_str()),
            ("username", username),
            ("password", password),
        ])
        .send()
        .await
        .unwrap_or_else(|e| panic!("login: {e}"));
    Landing::from(resp).await
}

/// Submit the consent form of `page` with `allow` or `deny`.
pub async fn submit_consent(
    browser: &reqwest::Client,
    srv: &TestServer,
    page: &str,
    decision: &str,
) -> Landing {
    let csrf =
        input_value(page, "csrf").unwrap_or_else(|| panic!("consent page without csrf: {page}"));
    let request = input_value(page, "request").unwrap_or_default();
    let resp = browser
        .post(srv.url("/authorize/consent"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("request", request.as_str()),
            ("decision", decision),
        ])
        .send()
        .await
        .unwrap_or_else(|e| panic!("consent: {e}"));
    Landing::from(resp).await
}

/// GET an authorization URL in the browser.
pub async fn open(browser: &reqwest::Client, url: &str) -> Landing {
    Landing::from(
        browser
            .get(url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}")),
    )
    .await
}

/// The query parameters of a URL.
pub fn query(url: &str) -> HashMap<String, String> {
    url::Url::parse(url)
        .map(|u| {
            u.query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// A PKCE pair (verifier, S256 challenge).
pub fn pkce() -> (String, String) {
    use base64::Engine as _;
    use sha2::Digest as _;
    let verifier = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// Drive the whole browser part of the code flow (login and allow) for `query` and return the
/// final redirect URL.
pub async fn authorize_and_allow(
    srv: &TestServer,
    client: &TestClient,
    extra: &[(&str, &str)],
    username: &str,
    password: &str,
) -> String {
    let browser = browser();
    let url = authorize_url(srv, client, extra);
    let login = open(&browser, &url).await;
    let (_, page) = login.page();
    let after_login = submit_login(&browser, srv, page, username, password).await;
    match after_login {
        Landing::Redirect(_, l) => l,
        Landing::Page(_, consent) => submit_consent(&browser, srv, &consent, "allow")
            .await
            .redirect()
            .to_string(),
    }
}

/// An authorization URL for `client` with the defaults above, overridden by `extra`.
pub fn authorize_url(srv: &TestServer, client: &TestClient, extra: &[(&str, &str)]) -> String {
    let defaults: Vec<(&str, &str)> = vec![
        ("response_type", "code"),
        ("client_id", &client.id),
        ("redirect_uri", "https://client.example/cb"),
        ("scope", "openid profile email"),
    ];
    let mut q: Vec<(&str, &str)> = defaults
        .into_iter()
        .filter(|(k, _)| !extra.iter().any(|(e, _)| e == k))
        .collect();
    q.extend(extra.iter().filter(|(_, v)| !v.is_empty()));
    format!(
        "{}?{}",
        srv.url("/authorize"),
        serde_urlencoded::to_string(&q).unwrap_or_default()
    )
}

/// Run the code flow with PKCE and redeem the code; returns the token response.
pub async fn code_flow_tokens(
    srv: &TestServer,
    client: &TestClient,
    username: &str,
    password: &str,
    scope: &str,
) -> serde_json::Value {
    code_flow_tokens_at(
        srv,
        client,
        username,
        password,
        scope,
        "https://client.example/cb",
    )
    .await
}

/// As [`code_flow_tokens`], with another registered redirect URI.
pub async fn code_flow_tokens_at(
    srv: &TestServer,
    client: &TestClient,
    username: &str,
    password: &str,
    scope: &str,
    redirect_uri: &str,
) -> serde_json::Value {
    let (verifier, challenge) = pkce();
    let loc = authorize_and_allow(
        srv,
        client,
        &[
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("scope", scope),
            ("redirect_uri", redirect_uri),
        ],
        username,
        password,
    )
    .await;
    let code = query(&loc)
        .remove("code")
        .unwrap_or_else(|| panic!("no code in {loc}"));
    let (s, t) = redeem_code(srv, client, &code, redirect_uri, &verifier, &[]).await;
    assert_eq!(s, 200, "{t}");
    t
}

/// Redeem an authorization code at the token endpoint (with its PKCE verifier and `extra`
/// parameters): status and body.
pub async fn redeem_code(
    srv: &TestServer,
    client: &TestClient,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
    extra: &[(&str, &str)],
) -> (u16, Value) {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("code_verifier", verifier),
    ];
    form.extend_from_slice(extra);
    token_request(srv, client, &form).await
}

/// The header and the payload of a compact JWT, unverified (a test reads what a token says; the
/// tests that need a signature checked verify it against the JWKS).
pub fn jwt_parts(jwt: &str) -> (Value, Value) {
    use base64::Engine as _;
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "not a compact JWS: {jwt}");
    let segment = |i: usize| {
        parts
            .get(i)
            .and_then(|p| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(p)
                    .ok()
            })
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null)
    };
    (segment(0), segment(1))
}

/// `GET url` that must answer 200 with JSON: the body.
pub async fn get_json(url: &str) -> Value {
    let resp = http()
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(resp.status().as_u16(), 200, "GET {url}");
    resp.json()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// Form-post to the token endpoint with HTTP Basic client authentication.
pub async fn token_request(
    srv: &TestServer,
    client: &TestClient,
    form: &[(&str, &str)],
) -> (u16, Value) {
    let extra = client.auth_fields(&srv.url("/token"));
    let mut all: Vec<(&str, &str)> = form.to_vec();
    all.extend(extra.iter().map(|(k, v)| (*k, v.as_str())));
    let mut req = http().post(srv.url("/token")).form(&all);
    if let Some(s) = &client.secret {
        req = req.basic_auth(&client.id, Some(s));
    }
    let resp = req.send().await.unwrap_or_else(|e| panic!("token: {e}"));
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Introspect a token as `caller`; returns the JSON answer.
pub async fn introspect(srv: &TestServer, caller: &TestClient, token: &str) -> Value {
    let extra = caller.auth_fields(&srv.url("/introspect"));
    let mut form: Vec<(&str, &str)> = vec![("token", token)];
    form.extend(extra.iter().map(|(k, v)| (*k, v.as_str())));
    let mut req = http().post(srv.url("/introspect")).form(&form);
    if caller.key.is_none() {
        req = req.basic_auth(&caller.id, caller.secret.as_deref());
    }
    let resp = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("introspect: {e}"));
    assert_eq!(resp.status().as_u16(), 200, "introspection status");
    resp.json().await.unwrap_or(Value::Null)
}

/// A protection API call (or any JSON call) with a bearer token: `(status, headers, body)`.
pub async fn bearer_json(
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut req = http().request(method, url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    let resp = req.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap_or_default();
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

/// Start the example FHIR resource server against `srv` (its client registered with Custodia,
/// its database in `dir`, verifying RPTs as `verification` says, no introspection cache); returns
/// its base URL and its client. The server needs `CUSTODIA_INSECURE_LOOPBACK_HTTP_REDIRECTS`.
pub async fn fhir_example(
    srv: &TestServer,
    dir: &std::path::Path,
    verification: custodia_sdk::Verification,
) -> (String, TestClient) {
    fhir_example_with(srv, dir, verification, false).await
}

/// [`fhir_example`], its client authenticating with `private_key_jwt` when `key_auth`.
pub async fn fhir_example_with(
    srv: &TestServer,
    dir: &std::path::Path,
    verification: custodia_sdk::Verification,
    key_auth: bool,
) -> (String, TestClient) {
    fhir_example_dpop(srv, dir, verification, key_auth, false).await
}

/// [`fhir_example_with`], asking for DPoP-bound PATs when `dpop` (registered with
/// `dpop_bound_access_tokens` and, as the iGov profile wants, one grant type).
pub async fn fhir_example_dpop(
    srv: &TestServer,
    dir: &std::path::Path,
    verification: custodia_sdk::Verification,
    key_auth: bool,
    dpop: bool,
) -> (String, TestClient) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
    let base = format!("http://127.0.0.1:{port}");
    let metadata = if dpop {
        serde_json::json!({
            "client_name": "FHIR example",
            "redirect_uris": [format!("{base}/connect/callback")],
            "grant_types": ["authorization_code"],
            "scope": "uma_protection",
            "dpop_bound_access_tokens": true,
        })
    } else {
        serde_json::json!({
            "client_name": "FHIR example",
            "redirect_uris": [format!("{base}/connect/callback")],
            "grant_types": ["authorization_code", "refresh_token"],
            "scope": "uma_protection",
        })
    };
    let rs = if key_auth {
        srv.add_key_client(metadata).await
    } else {
        TestClient::from_json(&srv.add_client(metadata).await)
    };
    let (server, _) = custodia_fhir_example::start(
        custodia_fhir_example::Settings {
            issuer: srv.base.clone(),
            client_id: rs.id.clone(),
            client_secret: rs.secret.clone().unwrap_or_default(),
            client_key: rs
                .key
                .as_ref()
                .and_then(|k| serde_json::to_string(k.as_ref()).ok()),
            dpop_pats: dpop,
            public_url: base.clone(),
            database: dir.join("fhir.db"),
            insecure_allow_http: true,
            verification,
            introspection_cache: std::time::Duration::from_secs(0),
        },
        listener,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(server);
    (base, rs)
}

/// The owner connects the example FHIR server (from [`fhir_example`]): `/connect` → Custodia (sign in, allow) → callback.
pub async fn connect_fhir(srv: &TestServer, fhir: &str, username: &str, password: &str) -> String {
    let browser = browser();
    let to_as = browser
        .get(format!("{fhir}/connect"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(to_as.status().as_u16(), 303);
    let url = to_as
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(url.starts_with(&srv.url("/authorize")), "{url}");
    let login = open(&browser, &url).await;
    let (_, page) = login.page();
    let back = match submit_login(&browser, srv, page, username, password).await {
        Landing::Redirect(_, l) => l,
        Landing::Page(_, consent) => {
            assert!(
                consent.contains("FHIR example"),
                "the consent page names the RS"
            );
            submit_consent(&browser, srv, &consent, "allow")
                .await
                .redirect()
                .to_string()
        }
    };
    assert!(
        back.starts_with(&format!("{fhir}/connect/callback")),
        "{back}"
    );
    let done = browser
        .get(&back)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let status = done.status().as_u16();
    let text = done.text().await.unwrap_or_default();
    assert_eq!(status, 200, "{text}");
    text
}

/// The path of the `custodia` binary built by `cargo build` (the test command builds it first).
pub fn custodia_bin() -> PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let bin = target.join("debug").join("custodia");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p custodia-server --bin custodia` first (the test script does)",
        bin.display()
    );
    bin
}

/// Write one test body once and run it on SQLite and on PostgreSQL.
#[macro_export]
macro_rules! both {
    ($(#[$m:meta])* $name:ident, |$srv:ident| $body:block) => {
        $(#[$m])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            async fn run($srv: $crate::TestServer) $body
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                run($crate::TestServer::start($crate::Backend::Sqlite).await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                run($crate::TestServer::start($crate::Backend::Postgres).await).await
            }
        }
    };
    ($(#[$m:meta])* $name:ident, [$($k:expr => $v:expr),* $(,)?], |$srv:ident| $body:block) => {
        $(#[$m])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            async fn run($srv: $crate::TestServer) $body
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                run($crate::TestServer::start_with($crate::Backend::Sqlite, &[$(($k, $v)),*]).await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                run($crate::TestServer::start_with($crate::Backend::Postgres, &[$(($k, $v)),*]).await).await
            }
        }
    };
}

/// A real third-party OpenID Provider for upstream-login tests: `oidc-provider` (the Node package
/// pinned in `tests/upstream/package.json`) run by `tests/upstream/provider.mjs` on a free
/// loopback port, with its development login and consent pages (any login and password are
/// accepted; `sub` is the login). Its accounts: `dr-who` (role `clinician`, practitioner_id
/// `P-1001`, name, verified email) and `nurse-joy` (role `nurse`, practitioner_id `N-2002`); any
/// other login gets only `name` and `email`. Scopes `openid profile email clinical`; requested
/// claims also go into the RS256-signed ID token. Dropping it kills the provider.
pub struct Upstream {
    /// The issuer identifier, `http://127.0.0.1:PORT` (no trailing slash).
    pub issuer: String,
    child: std::process::Child,
}

impl Upstream {
    /// Start a provider with these clients (a JSON array of `oidc-provider` client metadata;
    /// `grant_types`, `response_types` and `token_endpoint_auth_method` default to
    /// `authorization_code`, `code` and `client_secret_basic`) and wait until its discovery
    /// document answers (up to 20 s).
    pub async fn start(clients: Value) -> Upstream {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("upstream");
        assert!(
            dir.join("node_modules").join("oidc-provider").exists(),
            "{}/node_modules is missing: run `npm ci` in tests/upstream (scripts/test does)",
            dir.display()
        );
        // The port is free when probed and taken by node a moment later; should another process
        // take it in between, node exits at once and we try another port.
        let mut last_exit = None;
        for _ in 0..3 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .unwrap_or_else(|e| panic!("bind: {e}"));
            let issuer = format!("http://127.0.0.1:{port}");
            let child = std::process::Command::new("node")
                .arg(dir.join("provider.mjs"))
                .current_dir(&dir)
                .env("PORT", port.to_string())
                .env("ISSUER", &issuer)
                .env("CLIENTS", clients.to_string())
                .env("EXIT_WITH_STDIN", "1")
                // Its stdin is a pipe that closes when this process ends, however it ends.
                .stdin(std::process::Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| {
                    panic!(
                        "cannot run `node` ({e}): install Node.js 20 or newer (scripts/test does)"
                    )
                });
            let mut up = Upstream { issuer, child };
            match up.wait_ready().await {
                Ok(()) => return up,
                Err(status) => last_exit = Some(status),
            }
        }
        panic!(
            "the upstream provider exited before it was ready ({}); its output is above",
            last_exit.map(|s| s.to_string()).unwrap_or_default()
        )
    }

    /// Poll the discovery document; `Err` with the exit status when node has exited.
    async fn wait_ready(&mut self) -> Result<(), std::process::ExitStatus> {
        let discovery = self.url("/.well-known/openid-configuration");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let client = http();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(status);
            }
            if let Ok(resp) = client.get(&discovery).send().await
                && resp.status().as_u16() == 200
            {
                return Ok(());
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the upstream provider did not answer {discovery} within 20 s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// Its discovery document (`/.well-known/openid-configuration`).
    pub async fn discovery(&self) -> Value {
        get_json(&self.url("/.well-known/openid-configuration")).await
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sign in at the upstream provider as `login` (any password) and consent, in `browser` (see
/// [`browser`]): open `authorize_url`, follow the provider's redirects to its
/// `/interaction/<uid>` pages, submit the login form and then the consent form, and follow its
/// resume redirects. Returns the first redirect that leaves the provider — to the client's
/// `redirect_uri`, with `code` and `state` (or `error`) — without fetching it.
pub async fn upstream_sign_in(
    browser: &reqwest::Client,
    authorize_url: &str,
    login: &str,
) -> String {
    let start = url::Url::parse(authorize_url)
        .unwrap_or_else(|e| panic!("authorization URL `{authorize_url}`: {e}"));
    let origin = start.origin();
    let mut resp = browser
        .get(start)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {authorize_url}: {e}"));
    for _ in 0..20 {
        let here = resp.url().clone();
        let status = resp.status().as_u16();
        if (300..400).contains(&status) {
            let location = resp
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_else(|| panic!("redirect {status} from {here} without a Location"));
            let next = here
                .join(location)
                .unwrap_or_else(|e| panic!("Location `{location}` from {here}: {e}"));
            if next.origin() != origin {
                return next.to_string();
            }
            resp = browser
                .get(next.clone())
                .send()
                .await
                .unwrap_or_else(|e| panic!("GET {next}: {e}"));
            continue;
        }
        let page = resp.text().await.unwrap_or_default();
        assert_eq!(status, 200, "upstream page {here}: {page}");
        let (action, mut fields) = upstream_form(&page)
            .unwrap_or_else(|| panic!("upstream page {here} has no form: {page}"));
        let prompt = fields
            .iter()
            .find(|(k, _)| k == "prompt")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        match prompt.as_str() {
            "login" => {
                fields.retain(|(k, _)| k != "login" && k != "password");
                fields.push(("login".into(), login.into()));
                fields.push(("password".into(), "any password".into()));
            }
            "consent" => {}
            other => panic!("upstream page {here} asks for prompt `{other}`: {page}"),
        }
        let action = here
            .join(&action)
            .unwrap_or_else(|e| panic!("form action `{action}` on {here}: {e}"));
        resp = browser
            .post(action.clone())
            .form(&fields)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {action}: {e}"));
    }
    panic!("the upstream sign-in did not come back to the client within 20 steps")
}

/// The first form of an upstream interaction page: its action and its named inputs with values.
fn upstream_form(html: &str) -> Option<(String, Vec<(String, String)>)> {
    let doc = scraper::Html::parse_document(html);
    let form_sel = scraper::Selector::parse("form").ok()?;
    let input_sel = scraper::Selector::parse("input[name]").ok()?;
    let form = doc.select(&form_sel).next()?;
    let action = form.value().attr("action").unwrap_or_default().to_string();
    let fields = form
        .select(&input_sel)
        .filter_map(|i| {
            let name = i.value().attr("name")?;
            Some((
                name.to_string(),
                i.value().attr("value").unwrap_or_default().to_string(),
            ))
        })
        .collect();
    Some((action, fields))
}

/// The audit events of this test process, as JSON objects: a process-wide subscriber installed on
/// first use captures every event of target `audit` at INFO and above — of the servers and of the
/// in-process resource servers — for tests that assert them. Events of other tests running in the
/// same process are there too, so a test picks its own by the ids it made.
pub struct LogCapture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

#[derive(Clone)]
struct CaptureWriter(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.0.lock() {
            Ok(mut b) => b.extend_from_slice(buf),
            Err(p) => p.into_inner().extend_from_slice(buf),
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

static LOGS: std::sync::OnceLock<LogCapture> = std::sync::OnceLock::new();

/// Start capturing (once per process; call before the events of interest happen).
pub fn captured_logs() -> &'static LogCapture {
    LOGS.get_or_init(|| {
        let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let writer = CaptureWriter(buf.clone());
        // Audit events only: under `cargo test` every other test's request log would pile up here.
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_env_filter(tracing_subscriber::EnvFilter::new("audit=info"))
            .with_writer(move || writer.clone())
            .finish();
        if let Err(e) = tracing_subscriber::util::SubscriberInitExt::try_init(subscriber) {
            panic!("another log subscriber is installed in this process: {e}");
        }
        LogCapture(buf)
    })
}

impl LogCapture {
    /// The `audit` events captured so far whose `event` field is `event`: their fields.
    pub fn audit(&self, event: &str) -> Vec<Value> {
        let text = match self.0.lock() {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(p) => String::from_utf8_lossy(&p.into_inner()).into_owned(),
        };
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["target"] == "audit" && e["fields"]["event"] == event)
            .map(|e| e["fields"].clone())
            .collect()
    }

    /// Whether `needle` appears anywhere in what was captured.
    pub fn contains(&self, needle: &str) -> bool {
        match self.0.lock() {
            Ok(b) => String::from_utf8_lossy(&b).contains(needle),
            Err(p) => String::from_utf8_lossy(&p.into_inner()).contains(needle),
        }
    }
}

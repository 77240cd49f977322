//! Configuration: an optional TOML file with `CUSTODIA_*` environment overrides, parsed once into a
//! validated [`Config`] that is passed down explicitly (no global configuration).
//!
//! Every error names the setting and says why, in one line; the CLI prints it and exits 2.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use custodia_profiles::Profile;
use serde::Deserialize;

/// A bad setting: which one, and why.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting `{setting}`: {reason}")]
pub struct ConfigError {
    pub setting: String,
    pub reason: String,
}

fn bad(setting: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        setting: setting.to_string(),
        reason: reason.into(),
    }
}

/// Where the data lives, chosen by the URL scheme.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// `sqlite://PATH` (a file; created if missing).
    Sqlite(PathBuf),
    /// `postgres://…` or `postgresql://…`.
    Postgres(String),
}

impl DatabaseUrl {
    pub fn parse(value: &str) -> Result<Self, ConfigError> {
        const S: &str = "CUSTODIA_DATABASE_URL";
        if let Some(path) = value.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(bad(
                    S,
                    "`sqlite://` needs a file path, for example `sqlite://custodia.db`",
                ));
            }
            Ok(DatabaseUrl::Sqlite(PathBuf::from(path)))
        } else if value.starts_with("postgres://") || value.starts_with("postgresql://") {
            Ok(DatabaseUrl::Postgres(value.to_string()))
        } else {
            Err(bad(S, "must start with `sqlite://` or `postgres://`"))
        }
    }

    /// The URL with any password replaced, for logs.
    pub fn redacted(&self) -> String {
        match self {
            DatabaseUrl::Sqlite(p) => format!("sqlite://{}", p.display()),
            DatabaseUrl::Postgres(u) => match url::Url::parse(u) {
                Ok(mut parsed) => {
                    if parsed.password().is_some() {
                        let _ = parsed.set_password(Some("[redacted]"));
                    }
                    parsed.to_string()
                }
                Err(_) => "postgres://[unparseable]".to_string(),
            },
        }
    }
}

/// Who may register clients dynamically (RFC 7591).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegistrationMode {
    /// Anyone may register.
    Open,
    /// A caller needs an initial access token (`custodia client initial-token`).
    Token,
    /// Dynamic registration is off; only `custodia client add` registers clients.
    Closed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Rate limits (per instance). Token endpoint: per client and per source address; login: per source
/// address. Failed logins additionally slow down per account (see `protocol::login`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimits {
    pub token_per_second: u32,
    pub token_burst: u32,
    pub login_per_minute: u32,
    /// Protection API calls (resource registration, permission requests) per resource server.
    pub protection_per_second: u32,
}

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub bind: SocketAddr,
    /// The issuer identifier, without a trailing slash.
    pub issuer: String,
    pub database: DatabaseUrl,
    pub db_pool_size: u32,
    pub profile: &'static Profile,
    pub registration_mode: RegistrationMode,
    /// The key-encryption key, given directly (base64 of 32 bytes).
    pub kek: Option<String>,
    /// The file that holds the key-encryption key; created (mode 0600) on first start if missing.
    pub kek_file: PathBuf,
    pub signing_alg: String,
    pub code_ttl: u64,
    pub access_token_ttl: u64,
    pub id_token_ttl: u64,
    pub refresh_token_ttl: u64,
    pub session_ttl: u64,
    /// Permission ticket lifetime (UMA Federated Authorization §4, UMA Grant §5.5).
    pub ticket_ttl: u64,
    /// How old claims behind a PCT may be before the requesting party is asked again, seconds
    /// (UMA-GRANT-36).
    pub pct_claims_max_age: u64,
    pub max_body_bytes: usize,
    pub rate_limits: RateLimits,
    /// Other OpenID Providers whose ID tokens about requesting parties Custodia accepts (pushed
    /// claim tokens, and sign-in at the claims interaction endpoint when a client id is set).
    pub trusted_issuers: Vec<TrustedIssuer>,
    /// Issuers whose signed software statements (RFC 7591 §2.3) dynamic registration accepts.
    pub software_statement_issuers: Vec<StatementIssuer>,
    /// Accept `http` loopback redirect URIs for web clients (development on one machine: a
    /// resource server on `http://127.0.0.1:…`). Off by default; logged at WARN when on.
    pub insecure_loopback_http_redirects: bool,
    /// RFC 9449 §8: DPoP proofs at the token endpoint must carry a nonce Custodia issued
    /// (`DPoP-Nonce`); off by default.
    pub dpop_nonce: bool,
    pub log_format: LogFormat,
    pub log_filter: String,
    pub workers: Option<usize>,
}

/// An OpenID Provider trusted for claims about requesting parties.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TrustedIssuer {
    /// The issuer, exactly as in its discovery document.
    pub issuer: String,
    /// `aud` values accepted on pushed ID tokens (the clients' ids at that provider).
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Custodia's own client at the provider, for sign-in at the claims interaction endpoint
    /// (its ID tokens are then accepted too).
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub client_secret: Option<String>,
    /// The button label on the sign-in page.
    #[serde(default)]
    pub name: Option<String>,
    /// Scopes asked for at sign-in (default `openid email profile`).
    #[serde(default)]
    pub scope: Option<String>,
    /// Claim mapping: the provider's claim name → the name policies use (e.g. `"npi":
    /// "practitioner_id"`). Unmapped claims keep their names.
    #[serde(default)]
    pub claims: std::collections::BTreeMap<String, String>,
    /// Claim types (UMA Grant §3.3.6 `claim_type`): the policy name of a claim from this provider
    /// → the identifier of its type, sent in `required_claims` when a policy needs that claim from
    /// this provider (e.g. a semantic profile's identifier for a practitioner role). Absolute URIs.
    #[serde(default)]
    pub claim_types: std::collections::BTreeMap<String, String>,
}

/// An issuer of software statements (RFC 7591 §2.3; HEART-OAUTH-26, IGOV-OAUTH-30): who vouches
/// for client software, and the public keys its statements are signed with.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatementIssuer {
    /// The `iss` of its statements.
    pub issuer: String,
    /// Its public signing keys, a JWK set.
    pub jwks: serde_json::Value,
}

impl std::fmt::Debug for TrustedIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustedIssuer")
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

impl TrustedIssuer {
    /// Every `aud` value accepted on this provider's ID tokens.
    pub fn accepted_audiences(&self) -> Vec<String> {
        let mut a = self.audiences.clone();
        if let Some(c) = &self.client_id
            && !a.contains(c)
        {
            a.push(c.clone());
        }
        a
    }
}

/// The file form: every field optional; unknown keys are an error.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub bind: Option<String>,
    pub issuer: Option<String>,
    pub database_url: Option<String>,
    pub db_pool_size: Option<u32>,
    pub profile: Option<String>,
    pub registration_mode: Option<String>,
    pub kek: Option<String>,
    pub kek_file: Option<String>,
    pub signing_alg: Option<String>,
    pub code_ttl: Option<u64>,
    pub access_token_ttl: Option<u64>,
    pub id_token_ttl: Option<u64>,
    pub refresh_token_ttl: Option<u64>,
    pub session_ttl: Option<u64>,
    pub ticket_ttl: Option<u64>,
    pub pct_claims_max_age: Option<u64>,
    pub max_body_bytes: Option<usize>,
    pub rate_token_per_second: Option<u32>,
    pub rate_token_burst: Option<u32>,
    pub rate_login_per_minute: Option<u32>,
    pub rate_protection_per_second: Option<u32>,
    pub insecure_loopback_http_redirects: Option<bool>,
    pub dpop_nonce: Option<bool>,
    pub trusted_issuers: Option<Vec<TrustedIssuer>>,
    pub software_statement_issuers: Option<Vec<StatementIssuer>>,
    pub log_format: Option<String>,
    pub log: Option<String>,
    pub workers: Option<usize>,
}

/// The environment variables that override file settings, with the file key each one sets.
pub const ENV_SETTINGS: &[(&str, &str, &str)] = &[
    ("CUSTODIA_BIND", "bind", "127.0.0.1:8080"),
    ("CUSTODIA_ISSUER", "issuer", "http://127.0.0.1:8080"),
    (
        "CUSTODIA_DATABASE_URL",
        "database_url",
        "sqlite://custodia.db",
    ),
    ("CUSTODIA_DB_POOL_SIZE", "db_pool_size", "8"),
    ("CUSTODIA_PROFILE", "profile", "default"),
    ("CUSTODIA_REGISTRATION_MODE", "registration_mode", "token"),
    ("CUSTODIA_KEK", "kek", "(unset: the key file is used)"),
    (
        "CUSTODIA_KEK_FILE",
        "kek_file",
        "the database file + `.kek` (SQLite), `custodia.kek` (PostgreSQL)",
    ),
    ("CUSTODIA_SIGNING_ALG", "signing_alg", "RS256"),
    ("CUSTODIA_CODE_TTL", "code_ttl", "60"),
    ("CUSTODIA_ACCESS_TOKEN_TTL", "access_token_ttl", "600"),
    ("CUSTODIA_ID_TOKEN_TTL", "id_token_ttl", "600"),
    ("CUSTODIA_REFRESH_TOKEN_TTL", "refresh_token_ttl", "1209600"),
    ("CUSTODIA_SESSION_TTL", "session_ttl", "28800"),
    ("CUSTODIA_TICKET_TTL", "ticket_ttl", "300"),
    ("CUSTODIA_PCT_CLAIMS_MAX_AGE", "pct_claims_max_age", "86400"),
    ("CUSTODIA_MAX_BODY_BYTES", "max_body_bytes", "65536"),
    (
        "CUSTODIA_RATE_TOKEN_PER_SECOND",
        "rate_token_per_second",
        "5000",
    ),
    ("CUSTODIA_RATE_TOKEN_BURST", "rate_token_burst", "5000"),
    (
        "CUSTODIA_RATE_LOGIN_PER_MINUTE",
        "rate_login_per_minute",
        "30",
    ),
    (
        "CUSTODIA_RATE_PROTECTION_PER_SECOND",
        "rate_protection_per_second",
        "20000",
    ),
    (
        "CUSTODIA_TRUSTED_ISSUERS",
        "trusted_issuers",
        "none (a JSON array of {issuer, audiences, client_id, client_secret, name, scope, claims})",
    ),
    (
        "CUSTODIA_INSECURE_LOOPBACK_HTTP_REDIRECTS",
        "insecure_loopback_http_redirects",
        "false",
    ),
    ("CUSTODIA_DPOP_NONCE", "dpop_nonce", "false"),
    (
        "CUSTODIA_SOFTWARE_STATEMENT_ISSUERS",
        "software_statement_issuers",
        "none (a JSON array of {issuer, jwks})",
    ),
    ("CUSTODIA_LOG_FORMAT", "log_format", "text"),
    ("CUSTODIA_LOG", "log", "info"),
    ("CUSTODIA_WORKERS", "workers", "the number of cores"),
];

fn parse_num<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, ConfigError> {
    value
        .trim()
        .parse()
        .map_err(|_| bad(name, format!("`{value}` is not a valid number")))
}

impl RawConfig {
    /// Read a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| bad("--config", format!("cannot read `{}`: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| {
            let msg = e.message().to_string();
            bad("--config", format!("`{}`: {msg}", path.display()))
        })
    }

    /// Apply `CUSTODIA_*` overrides from an environment (a lookup function, so tests inject one).
    pub fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        for (name, key, _) in ENV_SETTINGS {
            let Some(v) = env(name) else { continue };
            match *key {
                "bind" => self.bind = Some(v),
                "issuer" => self.issuer = Some(v),
                "database_url" => self.database_url = Some(v),
                "db_pool_size" => self.db_pool_size = Some(parse_num(name, &v)?),
                "profile" => self.profile = Some(v),
                "registration_mode" => self.registration_mode = Some(v),
                "kek" => self.kek = Some(v),
                "kek_file" => self.kek_file = Some(v),
                "signing_alg" => self.signing_alg = Some(v),
                "code_ttl" => self.code_ttl = Some(parse_num(name, &v)?),
                "access_token_ttl" => self.access_token_ttl = Some(parse_num(name, &v)?),
                "id_token_ttl" => self.id_token_ttl = Some(parse_num(name, &v)?),
                "refresh_token_ttl" => self.refresh_token_ttl = Some(parse_num(name, &v)?),
                "session_ttl" => self.session_ttl = Some(parse_num(name, &v)?),
                "ticket_ttl" => self.ticket_ttl = Some(parse_num(name, &v)?),
                "pct_claims_max_age" => self.pct_claims_max_age = Some(parse_num(name, &v)?),
                "max_body_bytes" => self.max_body_bytes = Some(parse_num(name, &v)?),
                "rate_token_per_second" => self.rate_token_per_second = Some(parse_num(name, &v)?),
                "rate_token_burst" => self.rate_token_burst = Some(parse_num(name, &v)?),
                "rate_login_per_minute" => self.rate_login_per_minute = Some(parse_num(name, &v)?),
                "rate_protection_per_second" => {
                    self.rate_protection_per_second = Some(parse_num(name, &v)?)
                }
                "software_statement_issuers" => {
                    self.software_statement_issuers =
                        Some(serde_json::from_str(&v).map_err(|e| {
                            bad(name, format!("not a JSON array of {{issuer, jwks}}: {e}"))
                        })?)
                }
                "trusted_issuers" => {
                    self.trusted_issuers = Some(serde_json::from_str(&v).map_err(|e| {
                        bad(name, format!("not a JSON array of trusted issuers: {e}"))
                    })?)
                }
                "insecure_loopback_http_redirects" | "dpop_nonce" => {
                    let flag = match v.trim() {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        other => {
                            return Err(bad(name, format!("`{other}` is not `true` or `false`")));
                        }
                    };
                    if *key == "dpop_nonce" {
                        self.dpop_nonce = Some(flag);
                    } else {
                        self.insecure_loopback_http_redirects = Some(flag);
                    }
                }
                "log_format" => self.log_format = Some(v),
                "log" => self.log = Some(v),
                "workers" => self.workers = Some(parse_num(name, &v)?),
                _ => {}
            }
        }
        Ok(())
    }

    /// Validate into a [`Config`].
    pub fn validate(self) -> Result<Config, ConfigError> {
        let bind_s = self.bind.unwrap_or_else(|| "127.0.0.1:8080".into());
        let bind: SocketAddr = bind_s.parse().map_err(|_| {
            bad(
                "CUSTODIA_BIND",
                format!("`{bind_s}` is not an address:port such as `127.0.0.1:8080`"),
            )
        })?;

        let issuer = validate_issuer(self.issuer.as_deref().unwrap_or("http://127.0.0.1:8080"))?;

        let database = DatabaseUrl::parse(
            self.database_url
                .as_deref()
                .unwrap_or("sqlite://custodia.db"),
        )?;

        let profile_name = self.profile.unwrap_or_else(|| "default".into());
        let profile = Profile::by_name(&profile_name).ok_or_else(|| {
            bad(
                "CUSTODIA_PROFILE",
                format!(
                    "unknown profile `{profile_name}` (known: {})",
                    custodia_profiles::names().join(", ")
                ),
            )
        })?;

        let registration_mode = match self.registration_mode.as_deref().unwrap_or("token") {
            "open" => RegistrationMode::Open,
            "token" => RegistrationMode::Token,
            "closed" => RegistrationMode::Closed,
            other => {
                return Err(bad(
                    "CUSTODIA_REGISTRATION_MODE",
                    format!("`{other}` is not one of `open`, `token`, `closed`"),
                ));
            }
        };

        // Unset settings take the default, or the profile's own when it allows less; a setting
        // given explicitly must fit the profile (checked below).
        let signing_alg = self.signing_alg.unwrap_or_else(|| {
            if profile.signing_algs.contains(&"RS256") {
                "RS256".into()
            } else {
                profile
                    .signing_algs
                    .first()
                    .copied()
                    .unwrap_or("ES256")
                    .into()
            }
        });
        profile
            .check_signing_alg(&signing_alg)
            .map_err(|v| bad("CUSTODIA_SIGNING_ALG", v.description))?;

        let caps = profile.lifetime_caps;
        let code_ttl = self.code_ttl.unwrap_or(60.min(caps.authorization_code));
        let access_token_ttl = self.access_token_ttl.unwrap_or(600.min(caps.access_token));
        let id_token_ttl = self.id_token_ttl.unwrap_or(600.min(caps.id_token));
        let refresh_token_ttl = self
            .refresh_token_ttl
            .unwrap_or((14 * 24 * 3600).min(caps.refresh_token));
        profile
            .check_lifetimes(code_ttl, access_token_ttl, id_token_ttl, refresh_token_ttl)
            .map_err(|v| {
                let setting = if v.description.contains("authorization code") {
                    "CUSTODIA_CODE_TTL"
                } else if v.description.contains("access token") {
                    "CUSTODIA_ACCESS_TOKEN_TTL"
                } else if v.description.contains("ID token") {
                    "CUSTODIA_ID_TOKEN_TTL"
                } else {
                    "CUSTODIA_REFRESH_TOKEN_TTL"
                };
                bad(setting, v.description)
            })?;
        let session_ttl = self.session_ttl.unwrap_or(8 * 3600);
        if session_ttl == 0 {
            return Err(bad("CUSTODIA_SESSION_TTL", "must be above 0 seconds"));
        }

        let software_statement_issuers =
            self.software_statement_issuers.clone().unwrap_or_default();
        for i in &software_statement_issuers {
            let keys = i.jwks.get("keys").and_then(serde_json::Value::as_array);
            if i.issuer.is_empty() || keys.is_none_or(|k| k.is_empty()) {
                return Err(bad(
                    "CUSTODIA_SOFTWARE_STATEMENT_ISSUERS",
                    "each issuer needs a non-empty `issuer` and a JWK set with keys",
                ));
            }
        }
        let trusted_issuers = self.trusted_issuers.clone().unwrap_or_default();
        for t in &trusted_issuers {
            let ok = url::Url::parse(&t.issuer).ok().is_some_and(|u| {
                u.query().is_none()
                    && u.fragment().is_none()
                    && (u.scheme() == "https"
                        || (u.scheme() == "http" && custodia_profiles::is_loopback_url(&u)))
            });
            if !ok {
                return Err(bad(
                    "CUSTODIA_TRUSTED_ISSUERS",
                    format!("`{}` is not an https issuer URL", t.issuer),
                ));
            }
            if let Some((name, ty)) = t
                .claim_types
                .iter()
                .find(|(n, ty)| n.is_empty() || url::Url::parse(ty).is_err())
            {
                return Err(bad(
                    "CUSTODIA_TRUSTED_ISSUERS",
                    format!(
                        "`{}`: the claim type of `{name}` must be an absolute URI, not `{ty}`",
                        t.issuer
                    ),
                ));
            }
            if t.audiences.is_empty() && t.client_id.is_none() {
                return Err(bad(
                    "CUSTODIA_TRUSTED_ISSUERS",
                    format!("`{}` needs `audiences` or a `client_id`", t.issuer),
                ));
            }
            if t.client_id.is_some() != t.client_secret.is_some() {
                return Err(bad(
                    "CUSTODIA_TRUSTED_ISSUERS",
                    format!(
                        "`{}`: `client_id` and `client_secret` go together",
                        t.issuer
                    ),
                ));
            }
        }
        let ticket_ttl = self.ticket_ttl.unwrap_or(300);
        if !(10..=3600).contains(&ticket_ttl) {
            return Err(bad(
                "CUSTODIA_TICKET_TTL",
                "must be between 10 and 3600 seconds",
            ));
        }
        let pct_claims_max_age = self.pct_claims_max_age.unwrap_or(86_400);
        if !(60..=90 * 86_400).contains(&pct_claims_max_age) {
            return Err(bad(
                "CUSTODIA_PCT_CLAIMS_MAX_AGE",
                "must be between 60 seconds and 90 days",
            ));
        }

        let db_pool_size = self.db_pool_size.unwrap_or(8);
        if !(1..=256).contains(&db_pool_size) {
            return Err(bad("CUSTODIA_DB_POOL_SIZE", "must be between 1 and 256"));
        }
        let max_body_bytes = self.max_body_bytes.unwrap_or(64 * 1024);
        if !(1024..=16 * 1024 * 1024).contains(&max_body_bytes) {
            return Err(bad(
                "CUSTODIA_MAX_BODY_BYTES",
                "must be between 1024 and 16777216",
            ));
        }
        let rate_limits = RateLimits {
            token_per_second: self.rate_token_per_second.unwrap_or(5000),
            token_burst: self.rate_token_burst.unwrap_or(5000),
            login_per_minute: self.rate_login_per_minute.unwrap_or(30),
            protection_per_second: self.rate_protection_per_second.unwrap_or(20_000),
        };
        if rate_limits.protection_per_second == 0 {
            return Err(bad(
                "CUSTODIA_RATE_PROTECTION_PER_SECOND",
                "must be above 0",
            ));
        }
        if rate_limits.token_per_second == 0 {
            return Err(bad("CUSTODIA_RATE_TOKEN_PER_SECOND", "must be above 0"));
        }
        if rate_limits.token_burst == 0 {
            return Err(bad("CUSTODIA_RATE_TOKEN_BURST", "must be above 0"));
        }
        if rate_limits.login_per_minute == 0 {
            return Err(bad("CUSTODIA_RATE_LOGIN_PER_MINUTE", "must be above 0"));
        }

        let log_format = match self.log_format.as_deref().unwrap_or("text") {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(bad(
                    "CUSTODIA_LOG_FORMAT",
                    format!("`{other}` is not `text` or `json`"),
                ));
            }
        };
        let log_filter = self.log.unwrap_or_else(|| "info".into());
        if let Some(w) = self.workers
            && !(1..=256).contains(&w)
        {
            return Err(bad("CUSTODIA_WORKERS", "must be between 1 and 256"));
        }

        if let Some(k) = &self.kek {
            crate::keys::decode_kek(k).map_err(|reason| bad("CUSTODIA_KEK", reason))?;
        }
        let kek_file = match self.kek_file {
            Some(f) if f.is_empty() => return Err(bad("CUSTODIA_KEK_FILE", "must not be empty")),
            Some(f) => PathBuf::from(f),
            None => match &database {
                DatabaseUrl::Sqlite(p) => {
                    let mut s = p.clone().into_os_string();
                    s.push(".kek");
                    PathBuf::from(s)
                }
                DatabaseUrl::Postgres(_) => PathBuf::from("custodia.kek"),
            },
        };

        Ok(Config {
            bind,
            issuer,
            database,
            db_pool_size,
            profile,
            registration_mode,
            kek: self.kek,
            kek_file,
            signing_alg,
            code_ttl,
            access_token_ttl,
            id_token_ttl,
            refresh_token_ttl,
            session_ttl,
            ticket_ttl,
            pct_claims_max_age,
            max_body_bytes,
            rate_limits,
            insecure_loopback_http_redirects: self
                .insecure_loopback_http_redirects
                .unwrap_or(false),
            dpop_nonce: self.dpop_nonce.unwrap_or(false),
            trusted_issuers,
            software_statement_issuers,
            log_format,
            log_filter,
            workers: self.workers,
        })
    }
}

/// RFC 8414 §2: https, no query or fragment; http only for a loopback host (development).
fn validate_issuer(value: &str) -> Result<String, ConfigError> {
    const S: &str = "CUSTODIA_ISSUER";
    let url =
        url::Url::parse(value).map_err(|_| bad(S, format!("`{value}` is not an absolute URL")))?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad(S, "must not have a query or fragment"));
    }
    if !matches!(url.path(), "" | "/") {
        return Err(bad(
            S,
            "must not have a path: Custodia serves its endpoints at the root of its host",
        ));
    }
    if url.username() != "" || url.password().is_some() {
        return Err(bad(S, "must not contain credentials"));
    }
    match url.scheme() {
        "https" => {}
        "http" if custodia_profiles::is_loopback_url(&url) => {}
        "http" => return Err(bad(S, "must be https unless the host is loopback")),
        other => return Err(bad(S, format!("scheme `{other}` is not https"))),
    }
    Ok(value.trim_end_matches('/').to_string())
}

impl Config {
    /// Load: file (if any), then environment overrides, then validation.
    pub fn load(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut raw = match file {
            Some(p) => RawConfig::from_file(p)?,
            None => RawConfig::default(),
        };
        raw.apply_env(env)?;
        raw.validate()
    }

    /// Whether the issuer is https (cookies get `Secure`, responses get HSTS).
    pub fn is_https(&self) -> bool {
        self.issuer.starts_with("https://")
    }

    /// An absolute URL for a path of this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.issuer, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::load(None, |k| map.get(k).cloned())
    }

    #[test]
    fn defaults() -> Result<(), ConfigError> {
        let c = load(&[])?;
        assert_eq!(c.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(c.issuer, "http://127.0.0.1:8080");
        assert_eq!(c.database, DatabaseUrl::Sqlite("custodia.db".into()));
        assert_eq!(c.profile.name, "default");
        assert_eq!(c.registration_mode, RegistrationMode::Token);
        assert_eq!(c.kek_file, PathBuf::from("custodia.db.kek"));
        Ok(())
    }

    #[test]
    fn bad_settings_name_the_setting() {
        let cases: &[(&str, &str)] = &[
            ("CUSTODIA_ISSUER", "http://auth.example"),
            ("CUSTODIA_ISSUER", "https://auth.example?x=1"),
            ("CUSTODIA_ISSUER", "https://auth.example/tenant"),
            ("CUSTODIA_BIND", "nowhere"),
            ("CUSTODIA_DATABASE_URL", "mysql://x"),
            ("CUSTODIA_PROFILE", "heart-x"),
            ("CUSTODIA_REGISTRATION_MODE", "sometimes"),
            ("CUSTODIA_CODE_TTL", "600"),
            ("CUSTODIA_ACCESS_TOKEN_TTL", "abc"),
            ("CUSTODIA_SIGNING_ALG", "HS256"),
            ("CUSTODIA_KEK", "short"),
        ];
        for (k, v) in cases {
            let err = load(&[(k, v)]).err();
            let err = err.map(|e| e.setting).unwrap_or_default();
            assert_eq!(err, *k, "{k}={v}");
        }
    }

    // HEART-FHIRUMA-03: a trusted issuer's claim types are absolute URIs.
    #[test]
    fn claim_types_are_uris() -> Result<(), ConfigError> {
        let with = |types: &str| {
            format!(
                r#"[{{"issuer": "https://idp.example", "audiences": ["app"], "claim_types": {types}}}]"#
            )
        };
        let good = with(r#"{"role": "https://types.example/role"}"#);
        let c = load(&[("CUSTODIA_TRUSTED_ISSUERS", good.as_str())])?;
        assert_eq!(
            c.trusted_issuers[0]
                .claim_types
                .get("role")
                .map(String::as_str),
            Some("https://types.example/role")
        );
        let bad = with(r#"{"role": "practitioner"}"#);
        let err = load(&[("CUSTODIA_TRUSTED_ISSUERS", bad.as_str())]).err();
        assert_eq!(
            err.map(|e| e.to_string()).unwrap_or_default(),
            "invalid setting `CUSTODIA_TRUSTED_ISSUERS`: `https://idp.example`: the claim type of `role` must be an absolute URI, not `practitioner`"
        );
        Ok(())
    }

    #[test]
    // CORE-09: the issuer is https (loopback excepted), without query, fragment or path.
    fn https_and_loopback_issuers() -> Result<(), ConfigError> {
        assert_eq!(
            load(&[("CUSTODIA_ISSUER", "https://as.example/")])?.issuer,
            "https://as.example"
        );
        assert!(load(&[("CUSTODIA_ISSUER", "http://localhost:9000")]).is_ok());
        assert!(load(&[("CUSTODIA_ISSUER", "http://[::1]:9000")]).is_ok());
        Ok(())
    }

    #[test]
    fn postgres_url_redacted() -> Result<(), ConfigError> {
        let d = DatabaseUrl::parse("postgres://u:secret@127.0.0.1/db")?;
        assert!(!d.redacted().contains("secret"));
        Ok(())
    }
}

//! The `custodia` command line: `serve`, `migrate`, `check-config`, `user add`, `client add`,
//! `client initial-token`, `keys rotate`, `keys list`. A bad setting or argument prints one clear
//! line naming it and exits 2.

use std::io::Read as _;
use std::net::TcpListener;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, LogFormat};
use crate::keys::{KeyRing, load_or_create_kek};
use crate::protocol::Core;
use crate::protocol::clients::ClientMetadata;
use crate::protocol::registration::{self, RegisteredBy};
use crate::store::Store;

#[derive(Parser, Debug)]
#[command(
    name = "custodia",
    version,
    about = "Custodia: a UMA 2.0 authorization server"
)]
pub struct Cli {
    /// TOML configuration file (environment variables CUSTODIA_* override it).
    #[arg(long, global = true, env = "CUSTODIA_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server (migrations run first; the first start generates signing keys).
    Serve,
    /// Apply database migrations.
    Migrate,
    /// Validate the configuration and exit.
    CheckConfig,
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage clients.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Manage signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Add a local user; the password is read from standard input.
    Add {
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: Option<String>,
        /// Mark the email address as verified.
        #[arg(long)]
        email_verified: bool,
        /// Read the password from standard input (required: passwords never go on the command line).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
}

#[derive(Args, Debug)]
pub struct ClientAdd {
    /// Human-readable client name.
    #[arg(long)]
    pub name: String,
    /// A redirect URI (repeatable).
    #[arg(long = "redirect-uri")]
    pub redirect_uris: Vec<String>,
    /// A grant type (repeatable): authorization_code, refresh_token, client_credentials.
    #[arg(long = "grant-type")]
    pub grant_types: Vec<String>,
    /// Space-separated scopes the client may ask for.
    #[arg(long)]
    pub scope: Option<String>,
    /// client_secret_basic (default), client_secret_post, private_key_jwt or none.
    #[arg(long = "auth-method")]
    pub auth_method: Option<String>,
    /// JWK set (JSON text, or @FILE) for private_key_jwt.
    #[arg(long)]
    pub jwks: Option<String>,
    /// JWK set URL for private_key_jwt.
    #[arg(long = "jwks-uri")]
    pub jwks_uri: Option<String>,
    /// web (default) or native.
    #[arg(long = "application-type")]
    pub application_type: Option<String>,
    /// A UMA claims redirect URI (repeatable): where the claims interaction endpoint may send the
    /// requesting party back (UMA Grant §3.3.2).
    #[arg(long = "claims-redirect-uri")]
    pub claims_redirect_uris: Vec<String>,
    /// A resource indicator (RFC 8707) this resource server answers for (repeatable): tokens
    /// audience-restricted to it are introspected for this client as their audience.
    #[arg(long = "resource-uri")]
    pub resource_uris: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Register a client; prints it as RFC 7591 JSON (the secret is shown only now).
    Add(Box<ClientAdd>),
    /// Create an initial access token for dynamic registration (shown only now).
    InitialToken {
        /// Lifetime in seconds (default: no expiry).
        #[arg(long)]
        expires_in: Option<u64>,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Generate a new signing key; old keys stay published until their tokens expire.
    Rotate {
        /// RS256, ES256 or PS256 (default: the configured signing algorithm).
        #[arg(long)]
        alg: Option<String>,
    },
    /// List the keys.
    List,
}

/// A failure of a command: the line to print and the exit code.
pub struct Failure {
    pub message: String,
    pub code: i32,
}

fn fail(code: i32, message: impl Into<String>) -> Failure {
    Failure {
        message: message.into(),
        code,
    }
}

fn load_config(cli: &Cli) -> Result<Config, Failure> {
    Config::load(cli.config.as_deref(), |k| std::env::var(k).ok())
        .map_err(|e| fail(2, e.to_string()))
}

fn open_store(config: &Config) -> Result<Store, Failure> {
    let store = Store::open(&config.database, config.db_pool_size).map_err(|e| {
        fail(
            1,
            format!("{e} (database `{}`)", config.database.redacted()),
        )
    })?;
    store.migrate().map_err(|e| fail(1, e.to_string()))?;
    Ok(store)
}

fn keyring(config: &Config, store: &Store) -> Result<KeyRing, Failure> {
    let kek = load_or_create_kek(config).map_err(|e| fail(1, e.to_string()))?;
    KeyRing::load_or_init(store, config, kek, crate::now()).map_err(|e| fail(1, e.to_string()))
}

fn init_tracing(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match config.log_format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Run a parsed command.
pub fn run(cli: Cli) -> Result<(), Failure> {
    match &cli.command {
        Command::CheckConfig => {
            let c = load_config(&cli)?;
            println!(
                "configuration ok: issuer {}, database {}, profile {}, registration {:?}",
                c.issuer,
                c.database.redacted(),
                c.profile.name,
                c.registration_mode
            );
            Ok(())
        }
        Command::Migrate => {
            let c = load_config(&cli)?;
            let store = Store::open(&c.database, 1).map_err(|e| fail(1, e.to_string()))?;
            let applied = store.migrate().map_err(|e| fail(1, e.to_string()))?;
            println!(
                "migrations applied: {}",
                if applied.is_empty() {
                    "none pending".to_string()
                } else {
                    applied.join(", ")
                }
            );
            Ok(())
        }
        Command::Serve => serve(&cli),
        Command::User(UserCommand::Add {
            username,
            email,
            name,
            email_verified,
            password_stdin: _,
        }) => {
            let c = load_config(&cli)?;
            let mut password = String::new();
            std::io::stdin()
                .read_to_string(&mut password)
                .map_err(|e| {
                    fail(
                        1,
                        format!("cannot read the password from standard input: {e}"),
                    )
                })?;
            let password = password.trim_end_matches(['\n', '\r']).to_string();
            let row = crate::protocol::users::new_user(
                username,
                email,
                name.as_deref(),
                *email_verified,
                &password,
                crate::now(),
            )
            .map_err(|e| fail(2, format!("invalid user: {e}")))?;
            let store = open_store(&c)?;
            store
                .run_sync(|conn| crate::store::users::insert(conn, &row))
                .map_err(|e| match e {
                    crate::store::StoreError::Conflict => {
                        fail(1, format!("a user named `{username}` exists already"))
                    }
                    other => fail(1, other.to_string()),
                })?;
            println!(
                "{}",
                serde_json::json!({"id": row.id, "username": row.username, "email": row.email})
            );
            Ok(())
        }
        Command::Client(ClientCommand::Add(a)) => {
            let c = load_config(&cli)?;
            let jwks = match &a.jwks {
                Some(j) => {
                    let text = match j.strip_prefix('@') {
                        Some(path) => std::fs::read_to_string(path).map_err(|e| {
                            fail(
                                2,
                                format!("invalid argument `--jwks`: cannot read `{path}`: {e}"),
                            )
                        })?,
                        None => j.clone(),
                    };
                    Some(serde_json::from_str(&text).map_err(|e| {
                        fail(2, format!("invalid argument `--jwks`: not JSON: {e}"))
                    })?)
                }
                None => None,
            };
            let metadata = ClientMetadata {
                redirect_uris: a.redirect_uris.clone(),
                token_endpoint_auth_method: a.auth_method.clone(),
                grant_types: (!a.grant_types.is_empty()).then(|| a.grant_types.clone()),
                client_name: Some(a.name.clone()),
                scope: a.scope.clone(),
                jwks,
                jwks_uri: a.jwks_uri.clone(),
                application_type: a.application_type.clone(),
                claims_redirect_uris: a.claims_redirect_uris.clone(),
                resource_uris: a.resource_uris.clone(),
                ..Default::default()
            };
            let store = open_store(&c)?;
            let out = store
                .run_sync(|conn| {
                    Ok(registration::register_on(
                        conn,
                        c.profile,
                        &c.issuer,
                        metadata,
                        RegisteredBy::Cli,
                        c.insecure_loopback_http_redirects,
                        crate::now(),
                    ))
                })
                .map_err(|e| fail(1, e.to_string()))?
                .map_err(|e| {
                    fail(
                        2,
                        format!(
                            "invalid client: {}: {}",
                            e.error.as_str(),
                            e.error_description
                        ),
                    )
                })?;
            println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
            Ok(())
        }
        Command::Client(ClientCommand::InitialToken { expires_in }) => {
            let c = load_config(&cli)?;
            let store = open_store(&c)?;
            let now = crate::now();
            let exp = expires_in.map(|s| now + s as i64);
            let t = store
                .run_sync(|conn| registration::create_initial_access_token(conn, exp, now))
                .map_err(|e| fail(1, e.to_string()))?;
            println!("{}", t.expose_secret());
            Ok(())
        }
        Command::Keys(KeysCommand::Rotate { alg }) => {
            let c = load_config(&cli)?;
            let store = open_store(&c)?;
            let ring = keyring(&c, &store)?;
            let alg = alg.clone().unwrap_or_else(|| c.signing_alg.clone());
            let kid = ring
                .rotate_sync(&store, &c, &alg, crate::now())
                .map_err(|e| fail(2, format!("invalid argument `--alg`: {e}")))?;
            println!(
                "new signing key {kid} ({alg}); older keys stay published until their tokens expire"
            );
            Ok(())
        }
        Command::Keys(KeysCommand::List) => {
            let c = load_config(&cli)?;
            let store = open_store(&c)?;
            let ring = keyring(&c, &store)?;
            for (kid, alg, current, until) in ring.describe() {
                let state = if current {
                    "current".to_string()
                } else {
                    format!("retired, published until {}", until.unwrap_or(0))
                };
                println!("{kid}\t{alg}\t{state}");
            }
            Ok(())
        }
    }
}

fn serve(cli: &Cli) -> Result<(), Failure> {
    let config = load_config(cli)?;
    init_tracing(&config);
    let store = open_store(&config)?;
    let keys = keyring(&config, &store)?;
    if let Some(alg) = keys.signing_alg().filter(|a| *a != config.signing_alg) {
        tracing::warn!(current = %alg, configured = %config.signing_alg, "the current signing key's algorithm differs from CUSTODIA_SIGNING_ALG; run `custodia keys rotate` to switch");
    }
    if config.insecure_loopback_http_redirects {
        tracing::warn!(
            "CUSTODIA_INSECURE_LOOPBACK_HTTP_REDIRECTS is on: web clients may register http loopback redirect URIs (development only)"
        );
    }
    let listener = TcpListener::bind(config.bind)
        .map_err(|e| fail(1, format!("cannot listen on {}: {e}", config.bind)))?;
    let addr = listener.local_addr().map_err(|e| fail(1, e.to_string()))?;
    let issuer = config.issuer.clone();
    let db = config.database.redacted();
    let core = Core::new(config, store, keys);
    println!("Custodia listening on http://{addr} (issuer {issuer}, database {db})");
    println!("Discovery: {issuer}/.well-known/openid-configuration");
    println!(
        "Add the first user:  echo 'a long password' | custodia user add --username alice --email alice@example.org --password-stdin"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| fail(1, e.to_string()))?;
    rt.block_on(async move {
        let server = crate::http::start(core, listener).map_err(|e| fail(1, e.to_string()))?;
        server.await.map_err(|e| fail(1, e.to_string()))
    })?;
    tracing::info!("stopped");
    Ok(())
}

//! The protocol core: OAuth 2.0 (RFC 6749, RFC 9700), PKCE (RFC 7636), OpenID Connect Core 1.0,
//! introspection (RFC 7662), revocation (RFC 7009), dynamic registration (RFC 7591/7592),
//! metadata (RFC 8414), issuer identification (RFC 9207), and the UMA 2.0 protection API
//! (Federated Authorization: PAT guard, resource registration, permission tickets, extended
//! introspection).
//!
//! Invariants: no actix-web here; no global state; `now` is always an argument; every secret is
//! stored as a hash; errors are [`error::OAuthError`].

pub mod account;
pub mod authorize;
pub mod claims;
pub mod client_auth;
pub mod clients;
pub mod discovery;
pub mod dpop;
pub mod error;
pub mod grant;
pub mod interaction;
pub mod introspect;
pub mod json;
pub mod login;
pub mod outbound;
pub mod owner;
pub mod params;
pub mod permission;
pub mod policies;
pub mod protection;
pub mod ratelimit;
pub mod registration;
pub mod request_object;
pub mod resource_indicator;
pub mod resources;
pub mod revoke;
pub mod scope;
pub mod software_statement;
pub mod subjects;
pub mod tokens;
pub mod upstream;
pub mod userinfo;
pub mod users;

use std::sync::Arc;

use crate::config::Config;
use crate::keys::KeyRing;
use crate::store::Store;

/// What the core needs: configuration, storage, keys, and HTTP clients for `jwks_uri` fetches and
/// upstream providers.
#[derive(Clone)]
pub struct Core {
    pub config: Arc<Config>,
    pub store: Store,
    pub keys: KeyRing,
    pub http: reqwest::Client,
    /// The HTTP client for URLs that dynamically registered clients chose: public addresses only
    /// ([`outbound`]).
    pub public_http: outbound::PublicFetcher,
    pub jwks_cache: client_auth::JwksCache,
    pub clients: clients::ClientCache,
    pub policy_cache: policies::PolicyCache,
    pub upstream: upstream::MetadataCache,
    pub login_throttle: Arc<login::LoginThrottle>,
    pub limits: Arc<ratelimit::Limits>,
    pub clock: Clock,
}

/// The server's clock: the system time plus an offset that is always 0 in production. The HTTP
/// layer reads `now` here and hands it to the core (which never reads a clock itself); end-to-end
/// tests move the offset to cross time windows (code and refresh lifetimes, consent freshness)
/// without sleeping.
#[derive(Clone, Default)]
pub struct Clock(Arc<std::sync::atomic::AtomicI64>);

impl Clock {
    pub fn now(&self) -> i64 {
        crate::now() + self.0.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Move the clock forward (tests).
    pub fn advance(&self, seconds: i64) {
        self.0
            .fetch_add(seconds, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Core {
    pub fn new(config: Config, store: Store, keys: KeyRing) -> Core {
        let rate_limits = config.rate_limits;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(5))
            .connect_timeout(std::time::Duration::from_secs(3))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        let public_http = outbound::PublicFetcher::new(config.insecure_loopback_http_redirects);
        Core {
            config: Arc::new(config),
            store,
            keys,
            http,
            public_http,
            jwks_cache: client_auth::JwksCache::default(),
            clients: clients::ClientCache::default(),
            policy_cache: policies::PolicyCache::default(),
            upstream: upstream::MetadataCache::default(),
            login_throttle: Arc::default(),
            limits: Arc::new(ratelimit::Limits::new(rate_limits)),
            clock: Clock::default(),
        }
    }

    /// The current time (seconds since the epoch).
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    pub fn issuer(&self) -> &str {
        &self.config.issuer
    }
}

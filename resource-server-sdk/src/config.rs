//! The resource server's settings as a client of Custodia: issuer, OAuth client credentials,
//! redirect URI, timeouts and cache lifetimes, validated once into a [`ClientConfig`].
//!
//! TLS is required on every protection API call (UMA 2.0 Federated Authorization §1.3,
//! UMA-FED-01); plain `http` is accepted only for loopback hosts (development and tests) or with
//! the explicit [`ClientConfig::insecure_allow_http`].

use std::sync::Arc;
use std::time::Duration;

use url::Url;

use crate::error::Error;
use crate::secret::ClientSecret;

/// Seconds since the Unix epoch, injectable so tests can move time.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> i64 + Send + Sync>);

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Clock(Arc::new(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0)
        }))
    }

    /// A clock reading the given function.
    pub fn from_fn(f: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        Clock(Arc::new(f))
    }

    /// The current time in seconds since the Unix epoch.
    pub fn now(&self) -> i64 {
        (self.0)()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

/// How the resource server talks to Custodia. Build with [`ClientConfig::new`] and the `with_*`
/// methods, then hand it to [`UmaClient::new`](crate::UmaClient::new).
#[derive(Clone, Debug)]
pub struct ClientConfig {
    pub(crate) issuer: String,
    pub(crate) client_id: String,
    pub(crate) client_secret: ClientSecret,
    pub(crate) redirect_uri: String,
    pub(crate) http: Option<reqwest::Client>,
    pub(crate) timeout: Duration,
    pub(crate) discovery_ttl: Duration,
    pub(crate) refresh_margin: Duration,
    pub(crate) authorization_lifetime: Duration,
    pub(crate) jwks_refetch_interval: Duration,
    pub(crate) jwks_ttl: Duration,
    pub(crate) extra_scopes: Vec<String>,
    pub(crate) insecure_allow_http: bool,
    pub(crate) clock: Clock,
    /// `private_key_jwt` (RFC 7523): the private key signing client assertions, instead of the
    /// secret in `client_secret_basic`.
    pub(crate) assertion_key: Option<AssertionKey>,
    /// DPoP (RFC 9449): the key PATs are bound to, when the authorization server should issue
    /// sender-constrained PATs (required under iGov).
    pub(crate) dpop_key: Option<DpopKey>,
}

/// The key of DPoP-bound PATs: a P-256 key made when the client is configured, or the one the
/// resource server keeps ([`ClientConfig::with_dpop_key`]). A PAT bound to another key (made
/// before a restart with a fresh key) is refreshed before use.
#[derive(Clone)]
pub(crate) struct DpopKey {
    pub private: josekit::jwk::Jwk,
    pub public: josekit::jwk::Jwk,
    /// The RFC 7638 thumbprint of `public` (the PAT's `cnf.jkt`).
    pub jkt: String,
}

impl std::fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DpopKey({})", self.jkt)
    }
}

fn dpop_key(
    private: josekit::jwk::Jwk,
    public: josekit::jwk::Jwk,
) -> Result<DpopKey, crate::Error> {
    let jkt = crate::dpop::thumbprint(public.as_ref())
        .ok_or_else(|| crate::Error::Config("the DPoP key has no thumbprint".into()))?;
    Ok(DpopKey {
        private,
        public,
        jkt,
    })
}

/// A private key for client assertions: the JWK, its `kid` and the algorithm.
#[derive(Clone)]
pub(crate) struct AssertionKey {
    pub jwk: josekit::jwk::Jwk,
    pub kid: Option<String>,
    pub alg: &'static str,
}

impl std::fmt::Debug for AssertionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted key]")
    }
}

impl ClientConfig {
    /// Settings for the confidential client `client_id` at the authorization server `issuer`
    /// (compared exactly with the discovery document's `issuer`), with the registered
    /// `redirect_uri` that receives the PAT authorization code.
    pub fn new(
        issuer: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: ClientSecret,
        redirect_uri: impl Into<String>,
    ) -> Self {
        ClientConfig {
            issuer: issuer.into(),
            client_id: client_id.into(),
            client_secret,
            redirect_uri: redirect_uri.into(),
            http: None,
            timeout: Duration::from_secs(10),
            discovery_ttl: Duration::from_secs(3600),
            refresh_margin: Duration::from_secs(60),
            authorization_lifetime: Duration::from_secs(600),
            jwks_refetch_interval: Duration::from_secs(10),
            jwks_ttl: Duration::from_secs(3600),
            extra_scopes: Vec::new(),
            insecure_allow_http: false,
            clock: Clock::system(),
            assertion_key: None,
            dpop_key: None,
        }
    }

    /// Authenticate with `private_key_jwt` (RFC 7523 §2.2; required by the HEART and iGov
    /// profiles) instead of `client_secret_basic`: `private_jwk` is the client's private key as a
    /// JWK (JSON), whose public half is registered with the authorization server. The algorithm
    /// is the JWK's `alg`, else ES256 for a P-256 key and PS256 for an RSA key. The secret given
    /// to [`ClientConfig::new`] is then not sent.
    pub fn with_private_key_jwt(mut self, private_jwk: &str) -> Result<Self, crate::Error> {
        let jwk = josekit::jwk::Jwk::from_bytes(private_jwk.as_bytes())
            .map_err(|_| crate::Error::Config("the client key is not a JWK".into()))?;
        if jwk.parameter("d").is_none() {
            return Err(crate::Error::Config(
                "the client key must be a private JWK (with `d`)".into(),
            ));
        }
        let alg = match (jwk.algorithm(), jwk.key_type(), jwk.curve()) {
            (Some("ES256"), _, _) | (None, "EC", Some("P-256")) => "ES256",
            (Some("PS256"), _, _) | (None, "RSA", _) => "PS256",
            (Some("RS256"), _, _) => "RS256",
            _ => {
                return Err(crate::Error::Config(
                    "the client key must be an ES256 (P-256), PS256 or RS256 key".into(),
                ));
            }
        };
        let usable = match alg {
            "ES256" => josekit::jws::ES256.signer_from_jwk(&jwk).is_ok(),
            "RS256" => josekit::jws::RS256.signer_from_jwk(&jwk).is_ok(),
            _ => josekit::jws::PS256.signer_from_jwk(&jwk).is_ok(),
        };
        if !usable {
            return Err(crate::Error::Config(format!(
                "the client key cannot sign with {alg} (its type and `alg` disagree)"
            )));
        }
        self.assertion_key = Some(AssertionKey {
            kid: jwk.key_id().map(str::to_string),
            jwk,
            alg,
        });
        Ok(self)
    }

    /// Ask for DPoP-bound PATs (RFC 9449; the iGov profile issues only sender-constrained
    /// tokens): every token request carries a proof of a P-256 key made here, and every
    /// protection API call sends the PAT as `Authorization: DPoP` with a fresh proof (`htm`,
    /// `htu`, `ath`). A `DPoP-Nonce` demanded by the token endpoint is sent on a retry.
    /// The key lives in this process only: a PAT kept in a persistent [`crate::PatStore`] is
    /// bound to it, so after a restart it is refreshed (or, without a refresh token, the owner
    /// connects again); [`ClientConfig::with_dpop_key`] keeps one key across restarts.
    pub fn with_dpop_bound_pats(mut self) -> Result<Self, crate::Error> {
        let pair = josekit::jws::ES256
            .generate_key_pair()
            .map_err(|_| crate::Error::Config("cannot make a DPoP key".into()))?;
        self.dpop_key = Some(dpop_key(
            pair.to_jwk_private_key(),
            pair.to_jwk_public_key(),
        )?);
        Ok(self)
    }

    /// [`ClientConfig::with_dpop_bound_pats`] with the resource server's own DPoP key, a private
    /// P-256 JWK (JSON) it keeps in its secret store: PATs it has stored stay usable across
    /// restarts (under iGov a resource server may have no refresh token to rebind them with).
    pub fn with_dpop_key(mut self, private_jwk: &str) -> Result<Self, crate::Error> {
        let bad = |why: &str| crate::Error::Config(format!("the DPoP key {why}"));
        let private = josekit::jwk::Jwk::from_bytes(private_jwk.as_bytes())
            .map_err(|_| bad("is not a JWK"))?;
        if private.key_type() != "EC" || private.curve() != Some("P-256") {
            return Err(bad("must be a P-256 (ES256) key"));
        }
        if private.parameter("d").is_none() {
            return Err(bad("must be a private JWK (with `d`)"));
        }
        let pair = josekit::jwk::alg::ec::EcKeyPair::from_jwk(&private)
            .map_err(|_| bad("is not a usable P-256 key"))?;
        let public = josekit::jwk::KeyPair::to_jwk_public_key(&pair);
        // Sign and verify once: a JWK whose `x`/`y` do not belong to its `d`, or that refuses
        // signing (`use`, `key_ops`, another `alg`), fails here, not at the first proof.
        let signed = josekit::jws::ES256
            .signer_from_jwk(&private)
            .and_then(|s| s.sign(b"custodia dpop key check"))
            .map_err(|_| bad("cannot sign with ES256"))?;
        josekit::jws::ES256
            .verifier_from_jwk(&public)
            .and_then(|v| v.verify(b"custodia dpop key check", &signed))
            .map_err(|_| bad("does not verify its own signature (`x`/`y` do not match `d`)"))?;
        self.dpop_key = Some(dpop_key(private, public)?);
        Ok(self)
    }

    /// Use this HTTP client instead of the default one (no redirects, 10 s timeout). It should not
    /// follow redirects.
    pub fn with_http_client(mut self, http: reqwest::Client) -> Self {
        self.http = Some(http);
        self
    }

    /// Timeout of each request of the default HTTP client (default 10 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long the discovery document is cached (default 1 h).
    pub fn with_discovery_ttl(mut self, ttl: Duration) -> Self {
        self.discovery_ttl = ttl;
        self
    }

    /// Refresh a PAT when it expires within this margin (default 60 s).
    pub fn with_refresh_margin(mut self, margin: Duration) -> Self {
        self.refresh_margin = margin;
        self
    }

    /// How long a [`PendingAuthorization`](crate::PendingAuthorization) stays redeemable
    /// (default 10 min).
    pub fn with_authorization_lifetime(mut self, lifetime: Duration) -> Self {
        self.authorization_lifetime = lifetime;
        self
    }

    /// The shortest time between two JWKS fetches (default 10 s): a token with an unknown `kid`
    /// triggers a refetch only when the last attempt is older than this.
    pub fn with_jwks_refetch_interval(mut self, interval: Duration) -> Self {
        self.jwks_refetch_interval = interval;
        self
    }

    /// How long a fetched JWKS is used before it is fetched again (default 1 h).
    pub fn with_jwks_ttl(mut self, ttl: Duration) -> Self {
        self.jwks_ttl = ttl;
        self
    }

    /// Scopes requested next to `uma_protection`, for example `openid`.
    pub fn with_extra_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.extra_scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Allow plain `http` to a non-loopback authorization server. Never in production
    /// (UMA-FED-01 requires TLS).
    pub fn insecure_allow_http(mut self, allow: bool) -> Self {
        self.insecure_allow_http = allow;
        self
    }

    /// Read time from this clock instead of the system clock.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The configured issuer.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The resource server's client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Check the URLs; called by [`UmaClient::new`](crate::UmaClient::new).
    pub(crate) fn validate(&self) -> Result<(), Error> {
        let issuer = parse_endpoint("issuer", &self.issuer, self.insecure_allow_http)
            .map_err(Error::Config)?;
        if issuer.query().is_some() || issuer.fragment().is_some() {
            return Err(Error::Config(
                "issuer must not have a query or fragment".into(),
            ));
        }
        let redirect = Url::parse(&self.redirect_uri).map_err(|_| {
            Error::Config(format!("redirect uri `{}` is not a url", self.redirect_uri))
        })?;
        if redirect.fragment().is_some() {
            return Err(Error::Config(
                "redirect uri must not have a fragment".into(),
            ));
        }
        if self.client_id.is_empty() {
            return Err(Error::Config("client id is empty".into()));
        }
        Ok(())
    }
}

/// Parse an endpoint URL and insist on `https` unless the host is loopback or `allow_http`.
pub(crate) fn parse_endpoint(what: &str, value: &str, allow_http: bool) -> Result<Url, String> {
    let url = Url::parse(value).map_err(|_| format!("{what} `{value}` is not a url"))?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if allow_http || is_loopback(&url) => Ok(url),
        _ => Err(format!("{what} `{value}` must use https")),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(issuer: &str) -> ClientConfig {
        ClientConfig::new(
            issuer,
            "rs",
            ClientSecret::new("s"),
            "https://rs.example/cb",
        )
    }

    #[test]
    fn https_required_except_loopback() {
        assert!(cfg("https://as.example").validate().is_ok());
        assert!(cfg("http://127.0.0.1:8080").validate().is_ok());
        assert!(cfg("http://localhost:8080").validate().is_ok());
        assert!(cfg("http://[::1]:8080").validate().is_ok());
        assert!(cfg("http://as.example").validate().is_err());
        assert!(
            cfg("http://as.example")
                .insecure_allow_http(true)
                .validate()
                .is_ok()
        );
        assert!(cfg("https://as.example/?x=1").validate().is_err());
        assert!(cfg("not a url").validate().is_err());
    }

    /// A kept DPoP key gives the same thumbprint at every start, so stored PATs bound to it stay
    /// usable; a public or non-P-256 key is refused.
    #[test]
    fn a_kept_dpop_key_survives_restarts() -> Result<(), Box<dyn std::error::Error>> {
        let pair = josekit::jws::ES256.generate_key_pair()?;
        let jwk = pair.to_jwk_private_key().to_string();
        let first = cfg("https://as.example").with_dpop_key(&jwk)?;
        let again = cfg("https://as.example").with_dpop_key(&jwk)?;
        let (a, b) = (
            first.dpop_key.clone().ok_or("no key")?,
            again.dpop_key.clone().ok_or("no key")?,
        );
        assert_eq!(a.jkt, b.jkt);
        assert_eq!(
            Some(a.jkt.clone()),
            crate::dpop::thumbprint(pair.to_jwk_public_key().as_ref())
        );
        assert!(
            a.public.parameter("d").is_none(),
            "the public half has no `d`"
        );
        let fresh = cfg("https://as.example").with_dpop_bound_pats()?;
        assert_ne!(fresh.dpop_key.map(|k| k.jkt), Some(a.jkt));
        let public = pair.to_jwk_public_key().to_string();
        assert!(cfg("https://as.example").with_dpop_key(&public).is_err());
        let rsa = josekit::jws::RS256
            .generate_key_pair(2048)?
            .to_jwk_private_key()
            .to_string();
        assert!(cfg("https://as.example").with_dpop_key(&rsa).is_err());
        assert!(cfg("https://as.example").with_dpop_key("{").is_err());
        // A private `d` with another key's public point.
        let other = josekit::jws::ES256.generate_key_pair()?.to_jwk_public_key();
        let mut mixed = pair.to_jwk_private_key();
        for m in ["x", "y"] {
            if let Some(v) = other.parameter(m) {
                mixed.set_parameter(m, Some(v.clone()))?;
            }
        }
        assert!(
            cfg("https://as.example")
                .with_dpop_key(&mixed.to_string())
                .is_err()
        );
        Ok(())
    }

    #[test]
    fn clock_is_injectable() {
        let c = Clock::from_fn(|| 42);
        assert_eq!(c.now(), 42);
        assert!(Clock::system().now() > 1_700_000_000);
    }
}

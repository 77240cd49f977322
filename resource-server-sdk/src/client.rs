//! [`UmaClient`]: the resource server's handle on Custodia. It owns the validated
//! configuration, the HTTP client, the cached discovery document and JWKS, and the per-owner
//! locks that keep PAT refreshes from racing. The protocol operations live in their own modules
//! (`pat`, `resources`, `permission`, `introspection`) as `impl UmaClient` blocks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::config::ClientConfig;
use crate::discovery::{Discovery, DiscoveryCache};
use crate::error::{Error, TokenError};
use crate::http;
use crate::jwks::{JwksCache, KeySet};
use crate::jwt::{self, Claims};

/// The client of Custodia's protection API. Cheap to clone (shared state behind an `Arc`).
#[derive(Clone)]
pub struct UmaClient {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub config: ClientConfig,
    pub http: reqwest::Client,
    discovery: DiscoveryCache,
    pub jwks: Arc<JwksCache>,
    owner_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl std::fmt::Debug for UmaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UmaClient")
            .field("issuer", &self.inner.config.issuer)
            .field("client_id", &self.inner.config.client_id)
            .finish_non_exhaustive()
    }
}

impl UmaClient {
    /// A client for `config`. Does no I/O: discovery happens on first use.
    pub fn new(config: ClientConfig) -> Result<UmaClient, Error> {
        config.validate()?;
        let http = match &config.http {
            Some(h) => h.clone(),
            None => http::default_client(config.timeout)?,
        };
        Ok(UmaClient {
            inner: Arc::new(Inner {
                discovery: DiscoveryCache::new(config.discovery_ttl),
                jwks: Arc::new(JwksCache::new(
                    config.jwks_refetch_interval,
                    config.jwks_ttl,
                )),
                config,
                http,
                owner_locks: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The configured issuer (the `as_uri` of UMA challenges).
    pub fn issuer(&self) -> &str {
        &self.inner.config.issuer
    }

    /// The resource server's client id (the audience of RPTs).
    pub fn client_id(&self) -> &str {
        &self.inner.config.client_id
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The current time from the configured clock.
    pub fn now(&self) -> i64 {
        self.inner.config.clock.now()
    }

    /// The discovery document, from cache or fetched.
    pub async fn discovery(&self) -> Result<Arc<Discovery>, Error> {
        let c = &self.inner.config;
        self.inner
            .discovery
            .get(&self.inner.http, &c.issuer, c.insecure_allow_http, false)
            .await
    }

    /// Fetch the discovery document again, whatever the cache holds.
    pub async fn refresh_discovery(&self) -> Result<Arc<Discovery>, Error> {
        let c = &self.inner.config;
        self.inner
            .discovery
            .get(&self.inner.http, &c.issuer, c.insecure_allow_http, true)
            .await
    }

    /// Fetch and parse the JWKS from `jwks_uri`.
    pub(crate) async fn fetch_jwks(&self) -> Result<KeySet, Error> {
        let d = self.discovery().await?;
        let answer = http::send(self.inner.http.get(d.jwks_uri.clone())).await?;
        if answer.status != 200 {
            return Err(Error::Jwks(format!(
                "jwks endpoint answered {}",
                answer.status
            )));
        }
        KeySet::from_json(&answer.body)
    }

    /// Verify a JWT signed by the authorization server and decode its claims, refetching the
    /// JWKS when stale or when the `kid` is unknown (bounded, see [`JwksCache::refetch`]).
    /// The outer error is an infrastructure failure, the inner one the verdict on the token.
    pub(crate) async fn verified_claims(
        &self,
        jwks: &JwksCache,
        token: &str,
    ) -> Result<Result<Claims, TokenError>, Error> {
        let seen = jwks.generation();
        let mut keys = jwks.snapshot();
        if jwks.is_stale(&keys) {
            match jwks.refetch(seen, || self.fetch_jwks()).await {
                Ok(fresh) => keys = fresh,
                Err(e) if keys.is_empty() => return Err(e),
                // keep using the keys we have while the AS is unreachable
                Err(_) => {}
            }
        }
        let seen = jwks.generation();
        let payload = match jwt::verify_compact(token, &keys) {
            Err(TokenError::UnknownKey) => {
                let keys = jwks.refetch(seen, || self.fetch_jwks()).await?;
                jwt::verify_compact(token, &keys)
            }
            other => other,
        };
        Ok(payload.and_then(|p| serde_json::from_slice(&p).map_err(|_| TokenError::Malformed)))
    }

    /// The async mutex that serialises PAT refreshes for `owner`.
    pub(crate) fn owner_lock(&self, owner: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = match self.inner.owner_locks.lock() {
            Ok(l) => l,
            Err(p) => p.into_inner(),
        };
        locks.entry(owner.to_string()).or_default().clone()
    }

    /// Drop the owner's lock from the map when nobody else holds or waits for it.
    pub(crate) fn release_owner_lock(&self, owner: &str, lock: Arc<tokio::sync::Mutex<()>>) {
        let mut locks = match self.inner.owner_locks.lock() {
            Ok(l) => l,
            Err(p) => p.into_inner(),
        };
        // ours plus the map's
        if Arc::strong_count(&lock) <= 2 && locks.get(owner).is_some_and(|l| Arc::ptr_eq(l, &lock))
        {
            locks.remove(owner);
        }
    }

    #[cfg(test)]
    pub(crate) fn owner_lock_count(&self) -> usize {
        self.inner.owner_locks.lock().map(|l| l.len()).unwrap_or(0)
    }
}

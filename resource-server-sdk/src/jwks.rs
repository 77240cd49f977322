//! The authorization server's signing keys (RFC 7517 JWK Set at `jwks_uri`), held as ready-made
//! signature verifiers per `kid`, and the bounded refetch that picks up rotated keys.
//!
//! Building a verifier from a JWK is the expensive part of verifying an RSA token, so it happens
//! once per key when the set is fetched, never per token. Readers take a shared snapshot
//! (`Arc`) under a read lock held for a pointer copy. An unknown `kid` may trigger a refetch, but
//! at most one runs at a time and at most one per refetch interval, so a flood of tokens with
//! made-up key ids cannot make the resource server hammer the authorization server.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use josekit::jwk::Jwk;
use josekit::jws::{self, JwsVerifier};
use serde_json::Value;

use crate::error::Error;

/// The signature algorithms accepted on PATs and RPTs. Never `none`, never HMAC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    Rs256,
    Ps256,
    Es256,
}

impl Algorithm {
    /// The algorithm of a JWS `alg` name, if accepted.
    pub fn from_name(name: &str) -> Option<Algorithm> {
        match name {
            "RS256" => Some(Algorithm::Rs256),
            "PS256" => Some(Algorithm::Ps256),
            "ES256" => Some(Algorithm::Es256),
            _ => None,
        }
    }

    /// The JWS `alg` name.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Rs256 => "RS256",
            Algorithm::Ps256 => "PS256",
            Algorithm::Es256 => "ES256",
        }
    }

    fn verifier(self, jwk: &Jwk) -> Option<Box<dyn JwsVerifier>> {
        Some(match self {
            Algorithm::Rs256 => Box::new(jws::RS256.verifier_from_jwk(jwk).ok()?),
            Algorithm::Ps256 => Box::new(jws::PS256.verifier_from_jwk(jwk).ok()?),
            Algorithm::Es256 => Box::new(jws::ES256.verifier_from_jwk(jwk).ok()?),
        })
    }
}

struct KeyEntry {
    kid: String,
    alg: Algorithm,
    verifier: Box<dyn JwsVerifier>,
}

/// A parsed JWK Set: one verifier per (`kid`, algorithm) the key allows.
#[derive(Default)]
pub struct KeySet {
    keys: Vec<KeyEntry>,
    /// When the set was fetched (`None`: never, or given statically).
    fetched_at: Option<Instant>,
}

impl KeySet {
    /// Parse a JWK Set. Keys without a `kid`, of another use than `sig`, or not usable with an
    /// accepted algorithm are skipped; a key without `alg` serves every algorithm its type allows
    /// (RSA: RS256 and PS256; EC P-256: ES256).
    pub fn from_json(body: &[u8]) -> Result<KeySet, Error> {
        let value: Value =
            serde_json::from_slice(body).map_err(|e| Error::Jwks(format!("invalid json: {e}")))?;
        let keys = value
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| Error::Jwks("no `keys` array".into()))?;
        let mut set = KeySet::default();
        for key in keys {
            let Some(map) = key.as_object() else { continue };
            let Ok(jwk) = Jwk::from_map(map.clone()) else {
                continue;
            };
            let Some(kid) = jwk.key_id() else { continue };
            for alg in [Algorithm::Rs256, Algorithm::Ps256, Algorithm::Es256] {
                if let Some(verifier) = alg.verifier(&jwk) {
                    set.keys.push(KeyEntry {
                        kid: kid.to_string(),
                        alg,
                        verifier,
                    });
                }
            }
        }
        Ok(set)
    }

    /// The verifier for a `kid` under an algorithm.
    pub(crate) fn verifier(&self, kid: &str, alg: Algorithm) -> Option<&dyn JwsVerifier> {
        self.keys
            .iter()
            .find(|k| k.alg == alg && k.kid == kid)
            .map(|k| k.verifier.as_ref())
    }

    /// Number of usable (key, algorithm) pairs.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is usable.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// The current key set plus refetch bookkeeping.
pub(crate) struct JwksCache {
    current: RwLock<Arc<KeySet>>,
    /// Bumped on every successful replacement, so a waiter can tell someone else refetched.
    generation: AtomicU64,
    /// When a fetch was last attempted, successful or not.
    attempted_at: Mutex<Option<Instant>>,
    fetching: tokio::sync::Mutex<()>,
    min_refetch_interval: Duration,
    ttl: Duration,
    is_static: bool,
}

impl JwksCache {
    /// An empty cache that fetches on first use.
    pub fn new(min_refetch_interval: Duration, ttl: Duration) -> Self {
        JwksCache {
            current: RwLock::new(Arc::new(KeySet::default())),
            generation: AtomicU64::new(0),
            attempted_at: Mutex::new(None),
            fetching: tokio::sync::Mutex::new(()),
            min_refetch_interval,
            ttl,
            is_static: false,
        }
    }

    /// A cache over fixed keys that never fetches.
    pub fn fixed(keys: KeySet) -> Self {
        let mut cache = JwksCache::new(Duration::MAX, Duration::MAX);
        cache.current = RwLock::new(Arc::new(keys));
        cache.is_static = true;
        cache
    }

    /// The current key set.
    pub fn snapshot(&self) -> Arc<KeySet> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Whether `keys` (a snapshot of this cache) should be (re)fetched before use: never
    /// fetched, or older than the TTL. Reads no lock.
    pub fn is_stale(&self, keys: &KeySet) -> bool {
        !self.is_static && keys.fetched_at.is_none_or(|at| at.elapsed() >= self.ttl)
    }

    /// Refetch with `fetch` unless another task replaced the set since `seen_generation`, or a
    /// fetch was attempted less than the refetch interval ago. Returns the set to use.
    pub async fn refetch<F, Fut>(
        &self,
        seen_generation: u64,
        fetch: F,
    ) -> Result<Arc<KeySet>, Error>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<KeySet, Error>>,
    {
        if self.is_static {
            return Ok(self.snapshot());
        }
        let _flight = self.fetching.lock().await;
        if self.generation() != seen_generation {
            return Ok(self.snapshot());
        }
        {
            let mut attempted = self
                .attempted_at
                .lock()
                .map_err(|_| Error::Jwks("lock poisoned".into()))?;
            if attempted.is_some_and(|at| at.elapsed() < self.min_refetch_interval) {
                return Ok(self.snapshot());
            }
            *attempted = Some(Instant::now());
        }
        let mut keys = fetch().await?;
        keys.fetched_at = Some(Instant::now());
        let keys = Arc::new(keys);
        match self.current.write() {
            Ok(mut current) => *current = keys.clone(),
            Err(poisoned) => *poisoned.into_inner() = keys.clone(),
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(keys)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::test_support::TestKeys;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn parses_keys_and_skips_unusable_ones() {
        let keys = TestKeys::generate();
        let mut jwks = keys.jwks();
        let list = jwks["keys"].as_array_mut().unwrap();
        list.push(serde_json::json!({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}));
        list.push(serde_json::json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"}));
        let mut enc = list[0].clone();
        enc["kid"] = "enc".into();
        enc["use"] = "enc".into();
        list.push(enc);
        let set = KeySet::from_json(jwks.to_string().as_bytes()).unwrap();
        // the RSA key has alg RS256, the EC key ES256: one entry each
        assert_eq!(set.len(), 2);
        assert!(set.verifier(&keys.rsa_kid, Algorithm::Rs256).is_some());
        assert!(set.verifier(&keys.rsa_kid, Algorithm::Ps256).is_none());
        assert!(set.verifier(&keys.ec_kid, Algorithm::Es256).is_some());
        assert!(set.verifier("hmac", Algorithm::Rs256).is_none());
        assert!(set.verifier("enc", Algorithm::Rs256).is_none());
        assert!(KeySet::from_json(b"{}").is_err());
        assert!(KeySet::from_json(b"not json").is_err());
    }

    #[test]
    fn a_key_without_alg_serves_rs256_and_ps256() {
        let keys = TestKeys::generate();
        let mut jwks = keys.jwks();
        jwks["keys"][0].as_object_mut().unwrap().remove("alg");
        let set = KeySet::from_json(jwks.to_string().as_bytes()).unwrap();
        assert!(set.verifier(&keys.rsa_kid, Algorithm::Rs256).is_some());
        assert!(set.verifier(&keys.rsa_kid, Algorithm::Ps256).is_some());
    }

    #[tokio::test]
    async fn refetch_is_single_flight_and_rate_limited() {
        let cache = Arc::new(JwksCache::new(Duration::from_secs(1), Duration::MAX));
        let fetches = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let cache = cache.clone();
            let fetches = fetches.clone();
            let seen = cache.generation();
            tasks.push(tokio::spawn(async move {
                cache
                    .refetch(seen, || async {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Ok(KeySet::default())
                    })
                    .await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        // a later caller within the interval does not fetch either
        let seen = cache.generation();
        cache
            .refetch(seen, || async {
                fetches.fetch_add(1, Ordering::SeqCst);
                Ok(KeySet::default())
            })
            .await
            .unwrap();
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        cache
            .refetch(seen, || async {
                fetches.fetch_add(1, Ordering::SeqCst);
                Ok(KeySet::default())
            })
            .await
            .unwrap();
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_failed_fetch_keeps_the_old_keys_and_counts_as_an_attempt() {
        let keys = TestKeys::generate();
        let cache = JwksCache::new(Duration::from_secs(60), Duration::MAX);
        let body = keys.jwks().to_string();
        cache
            .refetch(0, || async { KeySet::from_json(body.as_bytes()) })
            .await
            .unwrap();
        assert_eq!(cache.snapshot().len(), 2);
        // the interval has not passed: no fetch, the old keys stay
        let r = cache
            .refetch(cache.generation(), || async {
                Err(Error::Jwks("down".into()))
            })
            .await;
        assert!(r.is_ok());
        assert_eq!(cache.snapshot().len(), 2);
    }
}

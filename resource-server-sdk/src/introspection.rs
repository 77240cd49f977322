//! Token introspection of RPTs (RFC 7662, UMA 2.0 Federated Authorization §5): the resource
//! server posts `token=<RPT>` with the owner's PAT as bearer token (UMA-FED-34) and reads the
//! UMA-extended answer with its `permissions` (UMA-FED-35, -36); `active: false` means revoked,
//! expired or unknown (UMA-FED-40).
//!
//! Answers are cached for a short TTL (RFC 7662 §4, UMA-FED-39), never past the token's `exp`,
//! keyed by the SHA-256 of the token so the cache holds no tokens, and bounded in size.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::client::UmaClient;
use crate::error::{Error, TokenError};
use crate::http;
use crate::jwt::{Audience, opt_numeric_date};
use crate::pat::Pat;
use crate::rpt::{Rpt, RptPermission};

/// An introspection answer (RFC 7662 §2.2 with the UMA `permissions` member).
#[derive(Clone, Debug, Deserialize)]
pub struct IntrospectionResponse {
    pub active: bool,
    #[serde(default)]
    pub permissions: Option<Vec<RptPermission>>,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub sub: Option<String>,
    #[serde(default)]
    pub aud: Audience,
    #[serde(default)]
    pub iss: Option<String>,
    #[serde(default, deserialize_with = "opt_numeric_date")]
    pub exp: Option<i64>,
    #[serde(default, deserialize_with = "opt_numeric_date")]
    pub iat: Option<i64>,
    #[serde(default, deserialize_with = "opt_numeric_date")]
    pub nbf: Option<i64>,
    #[serde(default)]
    pub jti: Option<String>,
    #[serde(default)]
    pub token_type: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
    /// Every other member.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl IntrospectionResponse {
    /// The answer as an RPT for this resource server: active, from the configured issuer (when
    /// `iss` is given), for this audience (when `aud` is given), within its times, with
    /// `permissions`.
    pub fn into_rpt(
        self,
        issuer: &str,
        audience: &str,
        now: i64,
        leeway: i64,
    ) -> Result<Rpt, TokenError> {
        if !self.active {
            return Err(TokenError::Inactive);
        }
        if self.iss.as_deref().is_some_and(|i| i != issuer) {
            return Err(TokenError::WrongIssuer);
        }
        if !self.aud.0.is_empty() && !self.aud.contains(audience) {
            return Err(TokenError::WrongAudience);
        }
        let expires_at = self.exp.unwrap_or(i64::MAX);
        if now >= expires_at.saturating_add(leeway) {
            return Err(TokenError::Expired);
        }
        if self.nbf.is_some_and(|nbf| now.saturating_add(leeway) < nbf) {
            return Err(TokenError::NotYetValid);
        }
        let permissions = self.permissions.ok_or(TokenError::MissingPermissions)?;
        let mut rpt = Rpt::new(
            self.iss.unwrap_or_else(|| issuer.to_string()),
            expires_at,
            permissions,
        )
        .with_leeway(leeway);
        rpt.subject = self.sub;
        rpt.client_id = self.client_id;
        rpt.audience = self.aud.0;
        rpt.issued_at = self.iat;
        rpt.not_before = self.nbf;
        rpt.jti = self.jti;
        rpt.dpop_jkt = self
            .other
            .get("cnf")
            .and_then(|c| c.get("jkt"))
            .and_then(Value::as_str)
            .map(str::to_string);
        Ok(rpt)
    }
}

impl UmaClient {
    /// Introspect a token with the owner's PAT (`POST introspection_endpoint`,
    /// `token_type_hint=access_token`). A client configured for `private_key_jwt` also sends its
    /// client assertion, as HEART and iGov servers require (HEART-OAUTH-40).
    pub async fn introspect(&self, pat: &Pat, token: &str) -> Result<IntrospectionResponse, Error> {
        let d = self.discovery().await?;
        let endpoint = d
            .introspection_endpoint
            .clone()
            .ok_or_else(|| Error::Discovery("`introspection_endpoint` is missing".into()))?;
        let c = self.config();
        let assertion = match &c.assertion_key {
            Some(key) => Some(crate::pat::client_assertion(
                &c.client_id,
                key,
                endpoint.as_str(),
                self.now(),
            )?),
            None => None,
        };
        let mut form = vec![("token", token), ("token_type_hint", "access_token")];
        if let Some(a) = &assertion {
            form.push((
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ));
            form.push(("client_assertion", a));
        }
        let request = self
            .with_pat(reqwest::Method::POST, endpoint, pat)?
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&form);
        http::send(request).await?.json(&[200])
    }
}

struct Entry {
    until: Instant,
    /// Which insertion this is, to match it with its place in [`Entries::order`].
    seq: u64,
    verdict: Result<Rpt, TokenError>,
}

/// The cached verdicts and their insertion order. Every entry of `map` has exactly one item
/// `(key, entry.seq)` in `order`; other items are left behind by replaced or removed entries
/// and are skipped when met.
#[derive(Default)]
struct Entries {
    map: HashMap<[u8; 32], Entry>,
    order: VecDeque<([u8; 32], u64)>,
    next_seq: u64,
}

impl Entries {
    fn is_current(&self, key: &[u8; 32], seq: u64) -> bool {
        self.map.get(key).is_some_and(|e| e.seq == seq)
    }

    /// Remove the entry inserted first (with the constant TTL, the one that expires first, if
    /// it has not already).
    fn evict_oldest(&mut self) {
        while let Some((key, seq)) = self.order.pop_front() {
            if self.is_current(&key, seq) {
                self.map.remove(&key);
                return;
            }
        }
    }
}

/// Introspection verdicts by SHA-256 of the token, at most `capacity` of them. When full, the
/// oldest insertion goes: O(1) amortised per insertion, whatever the size.
pub(crate) struct IntrospectionCache {
    ttl: Duration,
    capacity: usize,
    entries: Mutex<Entries>,
}

impl IntrospectionCache {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        IntrospectionCache {
            ttl,
            capacity,
            entries: Mutex::new(Entries::default()),
        }
    }

    pub fn key(token: &str) -> [u8; 32] {
        Sha256::digest(token.as_bytes()).into()
    }

    /// A cached verdict that has not expired.
    pub fn get(&self, key: &[u8; 32]) -> Option<Result<Rpt, TokenError>> {
        let mut entries = self.entries.lock().ok()?;
        match entries.map.get(key) {
            Some(e) if e.until > Instant::now() => Some(e.verdict.clone()),
            Some(_) => {
                // its item in `order` is skipped or compacted later
                entries.map.remove(key);
                None
            }
            None => None,
        }
    }

    /// Cache a verdict for the TTL, or less when the token expires sooner (`max_secs`).
    pub fn put(&self, key: [u8; 32], verdict: Result<Rpt, TokenError>, max_secs: Option<i64>) {
        let mut ttl = self.ttl;
        if let Some(max) = max_secs {
            ttl = ttl.min(Duration::from_secs(max.max(0) as u64));
        }
        if ttl.is_zero() || self.capacity == 0 {
            return;
        }
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        let entries = &mut *entries;
        let seq = entries.next_seq;
        entries.next_seq = seq.wrapping_add(1);
        entries.map.insert(
            key,
            Entry {
                until: Instant::now() + ttl,
                seq,
                verdict,
            },
        );
        entries.order.push_back((key, seq));
        // The new entry is the last in `order`, so another current one comes first.
        while entries.map.len() > self.capacity {
            entries.evict_oldest();
        }
        // Items of replaced or expired entries pile up in `order` when the map is not full;
        // drop them once they outnumber the entries. The next pass is at least `capacity`
        // insertions away, so this is O(1) amortised too.
        if entries.order.len() > self.capacity.saturating_mul(2) {
            let Entries { map, order, .. } = entries;
            order.retain(|(k, s)| map.get(k).is_some_and(|e| e.seq == *s));
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.lock().map(|e| e.map.len()).unwrap_or(0)
    }

    #[cfg(test)]
    fn order_len(&self) -> usize {
        self.entries.lock().map(|e| e.order.len()).unwrap_or(0)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::config::ClientConfig;
    use crate::rpt::RptVerifier;
    use crate::secret::{AccessToken, ClientSecret};
    use crate::test_support::{CLIENT_ID, CLIENT_SECRET, Counters, FakeAs, OWNER, now};
    use serde_json::json;

    const ISS: &str = "https://as.example";

    fn answer(v: Value) -> IntrospectionResponse {
        serde_json::from_value(v).unwrap()
    }

    /// UMA-FED-35, -36, -40.
    #[test]
    fn answers_to_rpts() {
        let n = 1_800_000_000;
        let ok = json!({
            "active": true, "iss": ISS, "aud": CLIENT_ID, "sub": "bob", "client_id": "app",
            "exp": n + 60, "iat": n, "jti": "j", "token_type": "Bearer",
            "permissions": [{"resource_id": "r", "resource_scopes": ["s"], "exp": n + 30}],
        });
        let rpt = answer(ok.clone()).into_rpt(ISS, CLIENT_ID, n, 0).unwrap();
        assert!(rpt.covers("r", "s", n + 29));
        assert!(!rpt.covers("r", "s", n + 30));
        assert_eq!(rpt.subject.as_deref(), Some("bob"));
        let bad = |k: &str, v: Value| {
            let mut a = ok.clone();
            a[k] = v;
            answer(a).into_rpt(ISS, CLIENT_ID, n, 0).unwrap_err()
        };
        assert_eq!(bad("iss", json!("https://evil")), TokenError::WrongIssuer);
        assert_eq!(bad("aud", json!(["x"])), TokenError::WrongAudience);
        assert_eq!(bad("exp", json!(n)), TokenError::Expired);
        assert_eq!(
            bad("permissions", Value::Null),
            TokenError::MissingPermissions
        );
        assert_eq!(
            answer(json!({"active": false}))
                .into_rpt(ISS, CLIENT_ID, n, 0)
                .unwrap_err(),
            TokenError::Inactive
        );
    }

    #[test]
    fn cache_is_bounded() {
        let cache = IntrospectionCache::new(Duration::from_secs(60), 3);
        for i in 0..10 {
            cache.put(
                IntrospectionCache::key(&format!("t{i}")),
                Err(TokenError::Inactive),
                None,
            );
        }
        assert_eq!(cache.len(), 3);
        assert!(cache.get(&IntrospectionCache::key("t9")).is_some());
        assert!(cache.get(&IntrospectionCache::key("t0")).is_none());
    }

    #[test]
    fn eviction_follows_the_last_insertion() {
        let cache = IntrospectionCache::new(Duration::from_secs(60), 3);
        let key = |t: &str| IntrospectionCache::key(t);
        for t in ["a", "b", "c"] {
            cache.put(key(t), Err(TokenError::Inactive), None);
        }
        // `a` cached again: `b` is now the oldest
        cache.put(key("a"), Err(TokenError::Expired), None);
        cache.put(key("d"), Err(TokenError::Inactive), None);
        assert_eq!(cache.len(), 3);
        assert!(cache.get(&key("b")).is_none());
        assert_eq!(cache.get(&key("a")), Some(Err(TokenError::Expired)));
        assert!(cache.get(&key("c")).is_some());
        assert!(cache.get(&key("d")).is_some());
    }

    #[test]
    fn the_insertion_order_stays_bounded() {
        let cache = IntrospectionCache::new(Duration::from_secs(60), 4);
        for i in 0..1000 {
            // the same few tokens over and over, the map never full
            let t = format!("t{}", i % 2);
            cache.put(IntrospectionCache::key(&t), Err(TokenError::Inactive), None);
            assert!(cache.order_len() <= 8, "{}", cache.order_len());
        }
        assert_eq!(cache.len(), 2);
        for i in 0..1000 {
            let t = format!("u{i}");
            cache.put(IntrospectionCache::key(&t), Err(TokenError::Inactive), None);
            assert!(cache.order_len() <= 8);
            assert!(cache.len() <= 4);
        }
        assert!(cache.get(&IntrospectionCache::key("u999")).is_some());
    }

    #[test]
    fn cache_never_outlives_the_token_and_can_be_disabled() {
        let cache = IntrospectionCache::new(Duration::from_secs(60), 3);
        cache.put(
            IntrospectionCache::key("expired"),
            Err(TokenError::Inactive),
            Some(0),
        );
        assert!(cache.get(&IntrospectionCache::key("expired")).is_none());
        let off = IntrospectionCache::new(Duration::ZERO, 3);
        off.put(
            IntrospectionCache::key("t"),
            Err(TokenError::Inactive),
            None,
        );
        assert!(off.get(&IntrospectionCache::key("t")).is_none());
    }

    /// UMA-FED-34 and UMA-FED-39: introspection with the PAT, answers cached for the TTL.
    #[actix_web::test]
    async fn introspection_answers_are_cached_for_the_ttl() {
        let fake = FakeAs::start().await;
        let client = UmaClient::new(ClientConfig::new(
            fake.issuer.clone(),
            CLIENT_ID,
            ClientSecret::new(CLIENT_SECRET),
            "https://rs.example/cb",
        ))
        .unwrap();
        let v = RptVerifier::new(&client).with_introspection_cache(Duration::from_secs(1), 100);
        let pat = Pat {
            owner: OWNER.into(),
            access_token: AccessToken::new(fake.mint_pat(OWNER, now() + 600)),
            refresh_token: None,
            expires_at: now() + 600,
            scope: "uma_protection".into(),
            dpop_jkt: None,
        };
        let issuer = fake.issuer.clone();
        fake.with_state(|s| {
            s.introspection.insert(
                "opaque-rpt".into(),
                json!({"active": true, "iss": issuer, "aud": [CLIENT_ID], "exp": now() + 600,
                    "permissions": [{"resource_id": "r", "resource_scopes": ["s"]}]}),
            )
        });
        let count = || Counters::get(&fake.counters.introspection);
        let rpt = v.verify_introspection(&pat, "opaque-rpt").await.unwrap();
        assert!(rpt.covers("r", "s", now()));
        assert_eq!(count(), 1);
        v.verify_introspection(&pat, "opaque-rpt").await.unwrap();
        assert_eq!(count(), 1, "served from the cache");
        // inactive answers are cached too
        let e = v.verify_introspection(&pat, "unknown").await.unwrap_err();
        assert!(matches!(e, Error::InvalidRpt(TokenError::Inactive)), "{e}");
        v.verify_introspection(&pat, "unknown").await.unwrap_err();
        assert_eq!(count(), 2);
        // after the TTL, the AS is asked again and sees the revocation
        fake.with_state(|s| s.introspection.remove("opaque-rpt"));
        actix_web::rt::time::sleep(Duration::from_millis(1100)).await;
        let e = v
            .verify_introspection(&pat, "opaque-rpt")
            .await
            .unwrap_err();
        assert!(matches!(e, Error::InvalidRpt(TokenError::Inactive)), "{e}");
        assert_eq!(count(), 3);
        fake.stop().await;
    }
}

//! Requesting party tokens (RPTs): verifying one a client presents, and deciding whether its
//! permissions cover a request (UMA 2.0 Grant §3.3.5, Federated Authorization §5.1.1).
//!
//! Two ways to verify, chosen per route with [`Verification`]: locally, as an RFC 9068 JWT
//! against the authorization server's cached JWKS (fast, no round trip; revocation is seen only
//! at expiry), or by token introspection with the owner's PAT (RFC 7662, UMA-FED-34; sees
//! revocation, answers cached for a short TTL, UMA-FED-39). Both give the same [`Rpt`].
//!
//! Local checks: signature with an accepted algorithm (never `none`/HMAC), `typ` `at+jwt`,
//! `iss` equal to the configured issuer, `aud` naming this resource server's client id, `exp`,
//! `nbf` and `iat` with a small leeway, and a `permissions` array (UMA-FED-35/36).
//! Coverage follows UMA-FED-37: a permission's own `exp` ends it early, the token's `exp` ends
//! all of them.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::client::UmaClient;
use crate::config::Clock;
use crate::error::{Error, TokenError};
use crate::introspection::IntrospectionCache;
use crate::jwks::{JwksCache, KeySet};
use crate::jwt::{self, Claims, opt_numeric_date};
use crate::pat::Pat;

/// How a route verifies RPTs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Verification {
    /// As a JWT against the cached JWKS.
    #[default]
    Local,
    /// By introspection at the authorization server, with a short-lived cache.
    Introspection,
}

/// HEART's break-the-glass scope (HEART FHIR OAuth 2.0 scopes, HEART-FHIR-07).
pub const BREAK_THE_GLASS: &str = "btg";

/// One permission of an RPT (UMA-FED-36).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RptPermission {
    pub resource_id: String,
    pub resource_scopes: Vec<String>,
    #[serde(
        default,
        deserialize_with = "opt_numeric_date",
        skip_serializing_if = "Option::is_none"
    )]
    pub exp: Option<i64>,
    #[serde(
        default,
        deserialize_with = "opt_numeric_date",
        skip_serializing_if = "Option::is_none"
    )]
    pub iat: Option<i64>,
    #[serde(
        default,
        deserialize_with = "opt_numeric_date",
        skip_serializing_if = "Option::is_none"
    )]
    pub nbf: Option<i64>,
}

/// A verified RPT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rpt {
    pub issuer: String,
    /// The requesting party, when the authorization server names one.
    pub subject: Option<String>,
    /// The client the RPT was issued to.
    pub client_id: Option<String>,
    pub audience: Vec<String>,
    pub expires_at: i64,
    pub issued_at: Option<i64>,
    pub not_before: Option<i64>,
    pub jti: Option<String>,
    pub permissions: Vec<RptPermission>,
    /// The DPoP key the RPT is bound to (`cnf.jkt`, RFC 9449 §6): then it is accepted only with a
    /// proof from that key ([`crate::dpop`]).
    pub dpop_jkt: Option<String>,
    /// Seconds of clock-skew leeway applied to the times.
    leeway: i64,
}

impl Rpt {
    /// An RPT from its parts, with no leeway (for tests and custom verifiers).
    pub fn new(issuer: impl Into<String>, expires_at: i64, permissions: Vec<RptPermission>) -> Rpt {
        Rpt {
            issuer: issuer.into(),
            subject: None,
            client_id: None,
            audience: Vec::new(),
            expires_at,
            issued_at: None,
            not_before: None,
            jti: None,
            permissions,
            dpop_jkt: None,
            leeway: 0,
        }
    }

    /// The same RPT with this clock-skew leeway on its times.
    pub fn with_leeway(mut self, leeway: i64) -> Rpt {
        self.leeway = leeway;
        self
    }

    /// Whether a permission is in force at `now`: before its own `exp` and the token's (the
    /// earlier wins, UMA-FED-37), and not before its `nbf` or the token's.
    pub fn is_active(&self, permission: &RptPermission, now: i64) -> bool {
        let exp = permission
            .exp
            .map_or(self.expires_at, |e| e.min(self.expires_at));
        if now >= exp.saturating_add(self.leeway) {
            return false;
        }
        let nbf = permission.nbf.max(self.not_before);
        nbf.is_none_or(|nbf| now.saturating_add(self.leeway) >= nbf)
    }

    /// Whether an active permission for `resource_id` grants `scope`.
    pub fn covers(&self, resource_id: &str, scope: &str, now: i64) -> bool {
        self.permissions.iter().any(|p| {
            p.resource_id == resource_id
                && p.resource_scopes.iter().any(|s| s == scope)
                && self.is_active(p, now)
        })
    }

    /// Whether every scope in `scopes` is granted on `resource_id` (true for no scopes when an
    /// active permission for the resource exists).
    pub fn covers_all<S: AsRef<str>>(&self, resource_id: &str, scopes: &[S], now: i64) -> bool {
        if scopes.is_empty() {
            return self.permission(resource_id, now).is_some();
        }
        scopes
            .iter()
            .all(|s| self.covers(resource_id, s.as_ref(), now))
    }

    /// The first active permission for `resource_id`.
    pub fn permission(&self, resource_id: &str, now: i64) -> Option<&RptPermission> {
        self.permissions
            .iter()
            .find(|p| p.resource_id == resource_id && self.is_active(p, now))
    }

    /// Whether the active permission for `resource_id` carries HEART's break-the-glass scope
    /// `btg` (HEART-FHIR-07): emergency access, which the resource server must record. The
    /// [`crate::actix::UmaGuard`] logs every such access as an `audit` event.
    pub fn break_the_glass(&self, resource_id: &str, now: i64) -> bool {
        self.covers(resource_id, BREAK_THE_GLASS, now)
    }

    /// Whether the token as a whole has expired at `now`.
    pub fn is_expired(&self, now: i64) -> bool {
        now >= self.expires_at.saturating_add(self.leeway)
    }

    /// Build from checked claims.
    pub(crate) fn from_claims(claims: Claims, permissions: Vec<RptPermission>, leeway: i64) -> Rpt {
        Rpt {
            issuer: claims.iss,
            subject: claims.sub,
            client_id: claims.client_id,
            audience: claims.aud.0,
            expires_at: claims.exp.0,
            issued_at: claims.iat.map(|d| d.0),
            not_before: claims.nbf.map(|d| d.0),
            jti: claims.jti,
            permissions,
            dpop_jkt: claims.cnf.and_then(|c| c.jkt),
            leeway,
        }
    }
}

/// Checks a token's claims as an RPT for this resource server.
pub(crate) fn check_rpt_claims(
    mut claims: Claims,
    issuer: &str,
    audience: &str,
    now: i64,
    leeway: i64,
) -> Result<Rpt, TokenError> {
    if claims.iss != issuer {
        return Err(TokenError::WrongIssuer);
    }
    if !claims.aud.contains(audience) {
        return Err(TokenError::WrongAudience);
    }
    claims.check_times(now, leeway)?;
    let permissions = claims
        .permissions
        .take()
        .ok_or(TokenError::MissingPermissions)?;
    Ok(Rpt::from_claims(claims, permissions, leeway))
}

/// Verifies RPTs for one resource server (audience = its client id).
pub struct RptVerifier {
    issuer: String,
    audience: String,
    leeway: i64,
    clock: Clock,
    jwks: Arc<JwksCache>,
    client: Option<UmaClient>,
    introspection: IntrospectionCache,
}

impl std::fmt::Debug for RptVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RptVerifier")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway", &self.leeway)
            .finish_non_exhaustive()
    }
}

/// Default leeway on token times, in seconds.
pub const DEFAULT_LEEWAY: i64 = 5;

impl RptVerifier {
    /// A verifier for RPTs issued by the client's issuer to the client's id, sharing the
    /// client's JWKS cache and introspecting through it. Default leeway 5 s; introspection
    /// answers cached 30 s, at most 10,000 of them.
    pub fn new(client: &UmaClient) -> RptVerifier {
        RptVerifier {
            issuer: client.issuer().to_string(),
            audience: client.client_id().to_string(),
            leeway: DEFAULT_LEEWAY,
            clock: client.config().clock.clone(),
            jwks: client.inner.jwks.clone(),
            client: Some(client.clone()),
            introspection: IntrospectionCache::new(Duration::from_secs(30), 10_000),
        }
    }

    /// A verifier over a fixed JWK Set (a JSON document), with no HTTP: no JWKS refetch and no
    /// introspection. For tests, benchmarks and offline use.
    pub fn from_jwks(
        issuer: impl Into<String>,
        audience: impl Into<String>,
        jwks_json: &str,
    ) -> Result<RptVerifier, Error> {
        let keys = KeySet::from_json(jwks_json.as_bytes())?;
        if keys.is_empty() {
            return Err(Error::Jwks("no usable key".into()));
        }
        Ok(RptVerifier {
            issuer: issuer.into(),
            audience: audience.into(),
            leeway: DEFAULT_LEEWAY,
            clock: Clock::system(),
            jwks: Arc::new(JwksCache::fixed(keys)),
            client: None,
            introspection: IntrospectionCache::new(Duration::from_secs(30), 10_000),
        })
    }

    /// Accept times this far off (default 5 s; at most a few minutes makes sense).
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway.as_secs() as i64;
        self
    }

    /// Cache introspection answers for `ttl` (never past the token's `exp`), at most `capacity`
    /// of them. A zero `ttl` disables the cache.
    pub fn with_introspection_cache(mut self, ttl: Duration, capacity: usize) -> Self {
        self.introspection = IntrospectionCache::new(ttl, capacity);
        self
    }

    /// Read time from this clock.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The current time of the verifier's clock.
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// Verify a JWT RPT against the keys cached now, at time `now`. Synchronous and never does
    /// I/O: an unknown `kid` is [`TokenError::UnknownKey`]. The hot path of
    /// [`verify_local`](Self::verify_local).
    pub fn verify_jwt(&self, token: &str, now: i64) -> Result<Rpt, TokenError> {
        let payload = jwt::verify_compact(token, &self.jwks.snapshot())?;
        let claims: Claims = serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
        check_rpt_claims(claims, &self.issuer, &self.audience, now, self.leeway)
    }

    /// Verify a JWT RPT locally, fetching the JWKS when it is stale or the `kid` unknown (at
    /// most once per refetch interval). [`Error::InvalidRpt`] when the token is refused; other
    /// errors mean the keys could not be fetched.
    pub async fn verify_local(&self, token: &str) -> Result<Rpt, Error> {
        let now = self.now();
        let Some(client) = &self.client else {
            return self.verify_jwt(token, now).map_err(Error::InvalidRpt);
        };
        let claims = client
            .verified_claims(&self.jwks, token)
            .await?
            .map_err(Error::InvalidRpt)?;
        check_rpt_claims(claims, &self.issuer, &self.audience, now, self.leeway)
            .map_err(Error::InvalidRpt)
    }

    /// Verify an RPT by introspection with the owner's PAT (UMA-FED-34), using cached answers
    /// for repeated tokens.
    pub async fn verify_introspection(&self, pat: &Pat, token: &str) -> Result<Rpt, Error> {
        let client = self.client.as_ref().ok_or_else(|| {
            Error::Config("this verifier has no authorization server to introspect at".into())
        })?;
        let key = IntrospectionCache::key(token);
        let now = self.now();
        if let Some(cached) = self.introspection.get(&key) {
            return cached.map_err(Error::InvalidRpt);
        }
        let answer = client.introspect(pat, token).await?;
        let verdict = answer.into_rpt(&self.issuer, &self.audience, now, self.leeway);
        let expires_at = verdict.as_ref().map(|r| r.expires_at).ok();
        self.introspection.put(
            key,
            verdict.clone(),
            expires_at.map(|e| e.saturating_sub(now)),
        );
        verdict.map_err(Error::InvalidRpt)
    }

    /// Verify with the chosen method; introspection needs the owner's PAT.
    pub async fn verify(
        &self,
        token: &str,
        how: Verification,
        pat: Option<&Pat>,
    ) -> Result<Rpt, Error> {
        match (how, pat) {
            (Verification::Local, _) => self.verify_local(token).await,
            (Verification::Introspection, Some(pat)) => self.verify_introspection(pat, token).await,
            (Verification::Introspection, None) => {
                Err(Error::Config("introspection needs the owner's pat".into()))
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::config::ClientConfig;
    use crate::secret::ClientSecret;
    use crate::test_support::{CLIENT_ID, CLIENT_SECRET, Counters, FakeAs, TestKeys};
    use serde_json::{Value, json};

    const ISS: &str = "https://as.example";
    const NOW: i64 = 1_800_000_000;

    fn claims() -> Value {
        json!({
            "iss": ISS, "sub": "bob", "aud": ["other-rs", CLIENT_ID], "client_id": "app",
            "iat": NOW - 10, "exp": NOW + 300, "jti": "j1",
            "permissions": [
                {"resource_id": "album-1", "resource_scopes": ["view", "print"]},
                {"resource_id": "album-2", "resource_scopes": ["view"], "exp": NOW + 60},
            ],
        })
    }

    fn verifier(keys: &TestKeys) -> RptVerifier {
        RptVerifier::from_jwks(ISS, CLIENT_ID, &keys.jwks().to_string())
            .unwrap()
            .with_leeway(Duration::ZERO)
    }

    fn with(mut v: Value, key: &str, value: Value) -> Value {
        v[key] = value;
        v
    }

    #[test]
    fn a_valid_rpt_verifies_with_rs256_es256_and_ps256() {
        let keys = TestKeys::generate();
        let mut jwks = keys.jwks();
        jwks["keys"][0].as_object_mut().unwrap().remove("alg");
        let v = RptVerifier::from_jwks(ISS, CLIENT_ID, &jwks.to_string()).unwrap();
        for alg in ["RS256", "ES256", "PS256"] {
            let rpt = v
                .verify_jwt(&keys.sign(alg, "at+jwt", &claims()), NOW)
                .unwrap();
            assert_eq!(rpt.subject.as_deref(), Some("bob"));
            assert_eq!(rpt.client_id.as_deref(), Some("app"));
            assert_eq!(rpt.expires_at, NOW + 300);
            assert_eq!(rpt.permissions.len(), 2);
            assert!(rpt.covers("album-1", "print", NOW));
        }
    }

    #[test]
    fn a_string_audience_is_accepted() {
        let keys = TestKeys::generate();
        let t = keys.sign("RS256", "at+jwt", &with(claims(), "aud", json!(CLIENT_ID)));
        assert!(verifier(&keys).verify_jwt(&t, NOW).is_ok());
    }

    #[test]
    fn refusals() {
        let keys = TestKeys::generate();
        let v = verifier(&keys);
        let cases = [
            (with(claims(), "exp", json!(NOW)), TokenError::Expired),
            (with(claims(), "exp", json!(NOW - 100)), TokenError::Expired),
            (
                with(claims(), "iss", json!("https://as.example/")),
                TokenError::WrongIssuer,
            ),
            (
                with(claims(), "iss", json!("https://evil.example")),
                TokenError::WrongIssuer,
            ),
            (
                with(claims(), "aud", json!("other-rs")),
                TokenError::WrongAudience,
            ),
            (with(claims(), "aud", json!([])), TokenError::WrongAudience),
            (
                with(claims(), "nbf", json!(NOW + 100)),
                TokenError::NotYetValid,
            ),
            (
                with(claims(), "iat", json!(NOW + 100)),
                TokenError::NotYetValid,
            ),
            (
                with(claims(), "permissions", Value::Null),
                TokenError::MissingPermissions,
            ),
            (
                with(claims(), "permissions", json!([{"resource_id": 5}])),
                TokenError::Malformed,
            ),
        ];
        for (c, expected) in cases {
            assert_eq!(
                v.verify_jwt(&keys.sign("ES256", "at+jwt", &c), NOW),
                Err(expected.clone()),
                "{c}"
            );
        }
        let mut no_perms = claims();
        no_perms.as_object_mut().unwrap().remove("permissions");
        assert_eq!(
            v.verify_jwt(&keys.sign("RS256", "at+jwt", &no_perms), NOW),
            Err(TokenError::MissingPermissions)
        );
        // an ID token or other JWT is not an RPT
        assert_eq!(
            v.verify_jwt(&keys.sign("RS256", "JWT", &claims()), NOW),
            Err(TokenError::WrongType)
        );
        // signed by a key the AS does not publish
        let other = TestKeys::generate();
        assert_eq!(
            v.verify_jwt(&other.sign("RS256", "at+jwt", &claims()), NOW),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            v.verify_jwt(
                &keys.sign_with_kid("RS256", "rsa-2", "at+jwt", &claims()),
                NOW
            ),
            Err(TokenError::UnknownKey)
        );
    }

    #[test]
    fn alg_none_is_refused() {
        use base64::Engine as _;
        let b64 = |v: &Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string().as_bytes())
        };
        let keys = TestKeys::generate();
        let t = format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "typ": "at+jwt", "kid": keys.rsa_kid})),
            b64(&claims())
        );
        assert_eq!(
            verifier(&keys).verify_jwt(&t, NOW),
            Err(TokenError::UnsupportedAlgorithm("none".into()))
        );
    }

    #[test]
    fn tampered_signature_is_refused() {
        let keys = TestKeys::generate();
        let t = keys.sign("RS256", "at+jwt", &claims());
        let (head, sig) = t.rsplit_once('.').unwrap();
        let mut chars: Vec<char> = sig.chars().collect();
        chars[5] = if chars[5] == 'A' { 'B' } else { 'A' };
        let t = format!("{head}.{}", chars.into_iter().collect::<String>());
        assert_eq!(
            verifier(&keys).verify_jwt(&t, NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn leeway_applies_to_exp_and_nbf() {
        let keys = TestKeys::generate();
        let v = verifier(&keys).with_leeway(Duration::from_secs(30));
        let t = keys.sign("RS256", "at+jwt", &claims());
        let rpt = v.verify_jwt(&t, NOW + 320).unwrap();
        assert!(
            rpt.covers("album-1", "view", NOW + 320),
            "within the leeway"
        );
        assert!(v.verify_jwt(&t, NOW + 330).is_err());
        let t = keys.sign("RS256", "at+jwt", &with(claims(), "nbf", json!(NOW + 20)));
        assert!(v.verify_jwt(&t, NOW).is_ok());
    }

    /// UMA-FED-37: a permission ends at its own exp or the token's, whichever is earlier.
    #[test]
    fn permission_coverage_with_per_permission_exp() {
        let keys = TestKeys::generate();
        let rpt = verifier(&keys)
            .verify_jwt(&keys.sign("RS256", "at+jwt", &claims()), NOW)
            .unwrap();
        assert!(rpt.covers("album-1", "view", NOW));
        assert!(rpt.covers("album-1", "print", NOW));
        assert!(!rpt.covers("album-1", "delete", NOW));
        assert!(!rpt.covers("album-3", "view", NOW));
        assert!(rpt.covers_all("album-1", &["view", "print"], NOW));
        assert!(!rpt.covers_all("album-1", &["view", "delete"], NOW));
        assert!(rpt.covers_all::<&str>("album-1", &[], NOW));
        assert!(!rpt.covers_all::<&str>("album-3", &[], NOW));
        // album-2's own exp is NOW + 60
        assert!(rpt.covers("album-2", "view", NOW + 59));
        assert!(!rpt.covers("album-2", "view", NOW + 60));
        assert!(rpt.permission("album-2", NOW + 60).is_none());
        assert_eq!(
            rpt.permission("album-1", NOW + 60).unwrap().resource_scopes,
            ["view", "print"]
        );
        // the token's exp (NOW + 300) wins over a later permission exp
        let mut c = claims();
        c["permissions"][0]["exp"] = json!(NOW + 10_000);
        let rpt = verifier(&keys)
            .verify_jwt(&keys.sign("RS256", "at+jwt", &c), NOW)
            .unwrap();
        assert!(rpt.covers("album-1", "view", NOW + 299));
        assert!(!rpt.covers("album-1", "view", NOW + 300));
        assert!(rpt.is_expired(NOW + 300));
    }

    #[test]
    fn permission_nbf_and_token_nbf() {
        let p = |nbf: Option<i64>| RptPermission {
            resource_id: "r".into(),
            resource_scopes: vec!["s".into()],
            exp: None,
            iat: None,
            nbf,
        };
        let mut rpt = Rpt::new(ISS, NOW + 100, vec![p(Some(NOW + 10))]);
        assert!(!rpt.covers("r", "s", NOW));
        assert!(rpt.covers("r", "s", NOW + 10));
        rpt.permissions = vec![p(Some(NOW))];
        rpt.not_before = Some(NOW + 20);
        assert!(
            !rpt.covers("r", "s", NOW + 10),
            "the token's later nbf wins"
        );
        assert!(rpt.covers("r", "s", NOW + 20));
    }

    fn client(fake: &FakeAs, refetch: Duration) -> UmaClient {
        UmaClient::new(
            ClientConfig::new(
                fake.issuer.clone(),
                CLIENT_ID,
                ClientSecret::new(CLIENT_SECRET),
                "https://rs.example/cb",
            )
            .with_jwks_refetch_interval(refetch),
        )
        .unwrap()
    }

    #[actix_web::test]
    async fn local_verification_fetches_the_jwks_once() {
        let fake = FakeAs::start().await;
        let v = RptVerifier::new(&client(&fake, Duration::from_secs(10)));
        let t = fake.mint_rpt(
            "ES256",
            json!([{"resource_id": "r", "resource_scopes": ["s"]}]),
        );
        for _ in 0..5 {
            let rpt = v.verify_local(&t).await.unwrap();
            assert!(rpt.covers("r", "s", v.now()));
        }
        assert_eq!(Counters::get(&fake.counters.jwks), 1);
        assert_eq!(Counters::get(&fake.counters.discovery), 1);
        fake.stop().await;
    }

    /// A flood of tokens with made-up kids triggers at most one refetch per interval.
    #[actix_web::test]
    async fn unknown_kids_trigger_a_bounded_refetch() {
        let fake = FakeAs::start().await;
        let interval = Duration::from_secs(1);
        let v = Arc::new(RptVerifier::new(&client(&fake, interval)));
        // sign everything first, so the timing below is only about verification
        let good = fake.mint_rpt("RS256", json!([]));
        let claims = json!({"iss": fake.issuer, "aud": CLIENT_ID,
            "exp": crate::test_support::now() + 60, "permissions": []});
        let bogus: Vec<Vec<String>> = (0..2)
            .map(|round| {
                (0..50)
                    .map(|i| {
                        let kid = format!("bogus-{round}-{i}");
                        fake.keys.sign_with_kid("RS256", &kid, "at+jwt", &claims)
                    })
                    .collect()
            })
            .collect();
        let flood = |tokens: &[String]| {
            tokens
                .iter()
                .map(|t| {
                    let (v, t) = (v.clone(), t.clone());
                    actix_web::rt::spawn(async move { v.verify_local(&t).await })
                })
                .collect::<Vec<_>>()
        };
        v.verify_local(&good).await.unwrap();
        assert_eq!(Counters::get(&fake.counters.jwks), 1);
        for t in flood(&bogus[0]) {
            let e = t.await.unwrap().unwrap_err();
            assert!(
                matches!(e, Error::InvalidRpt(TokenError::UnknownKey)),
                "{e}"
            );
        }
        // within the interval of the first fetch: no refetch at all
        assert_eq!(Counters::get(&fake.counters.jwks), 1);
        actix_web::rt::time::sleep(interval + Duration::from_millis(100)).await;
        for t in flood(&bogus[1]) {
            assert!(t.await.unwrap().is_err());
        }
        assert_eq!(
            Counters::get(&fake.counters.jwks),
            2,
            "one single-flight refetch for 50 unknown kids"
        );
        // the known key still verifies without a fetch
        v.verify_local(&good).await.unwrap();
        assert_eq!(Counters::get(&fake.counters.jwks), 2);
        fake.stop().await;
    }

    #[actix_web::test]
    async fn an_unreachable_as_is_not_an_invalid_token() {
        let fake = FakeAs::start().await;
        let c = client(&fake, Duration::from_secs(10));
        let t = fake.mint_rpt("RS256", json!([]));
        fake.stop().await;
        let e = RptVerifier::new(&c).verify_local(&t).await.unwrap_err();
        assert!(e.is_unreachable(), "{e}");
    }
}

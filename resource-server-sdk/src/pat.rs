//! The protection API access token (PAT, UMA 2.0 Federated Authorization §1.3): obtaining it
//! with the authorization code grant and PKCE S256 (RFC 6749 §4.1, RFC 7636), verifying it to
//! learn the owner (`sub`), refreshing it before it expires (RFC 6749 §6; Custodia rotates the
//! refresh token on every use), and keeping one per owner in a [`PatStore`].
//!
//! The resource server is a confidential client and authenticates with `client_secret_basic`
//! (RFC 6749 §2.3.1). Refreshes for one owner are serialised: with rotating refresh tokens, two
//! concurrent refreshes would present the same token twice and the authorization server would
//! revoke the whole family. The SDK serialises them within one process; across processes that
//! share a [`PatStore`], the store must do it with [`PatStore::lock_for_refresh`].

use std::collections::HashMap;
use std::sync::Mutex;

use futures_util::future::BoxFuture;
use serde::Deserialize;
use url::Url;

use crate::client::UmaClient;
use crate::error::{Error, TokenError};
use crate::http;
use crate::pkce;
use crate::secret::{AccessToken, Nonce, RefreshToken, ct_eq};

/// The scope that makes an access token a PAT (UMA-FED-02).
pub const UMA_PROTECTION: &str = "uma_protection";

/// Leeway, in seconds, on the times of a freshly issued PAT (clock skew).
const PAT_LEEWAY: i64 = 30;

/// A PAT for one resource owner.
#[derive(Clone, Debug)]
pub struct Pat {
    /// The owner's user id at the authorization server (the PAT's `sub`).
    pub owner: String,
    pub access_token: AccessToken,
    pub refresh_token: Option<RefreshToken>,
    /// Seconds since the epoch (the PAT's `exp`).
    pub expires_at: i64,
    /// Space-separated granted scopes.
    pub scope: String,
    /// The thumbprint of the DPoP key the PAT is bound to (`token_type: DPoP`), if it is.
    pub dpop_jkt: Option<String>,
}

impl Pat {
    /// Whether the PAT expires within `margin` seconds of `now` (or has expired).
    pub fn expires_within(&self, now: i64, margin: i64) -> bool {
        now.saturating_add(margin) >= self.expires_at
    }

    pub(crate) fn bearer(&self) -> String {
        format!("Bearer {}", self.access_token.expose_secret())
    }
}

/// What the resource server keeps, server-side, between sending the owner to the authorization
/// endpoint and receiving the code: the `state` and the PKCE `code_verifier`. One use only.
#[derive(Debug)]
pub struct PendingAuthorization {
    state: Nonce,
    code_verifier: Nonce,
    created_at: i64,
}

impl PendingAuthorization {
    /// Rebuild from stored parts (for example from a session store).
    pub fn from_parts(state: Nonce, code_verifier: Nonce, created_at: i64) -> Self {
        PendingAuthorization {
            state,
            code_verifier,
            created_at,
        }
    }

    /// The `state` sent in the authorization request (a key to find this value again).
    pub fn state(&self) -> &Nonce {
        &self.state
    }

    /// The PKCE `code_verifier`.
    pub fn code_verifier(&self) -> &Nonce {
        &self.code_verifier
    }

    /// When the request was built, seconds since the epoch.
    pub fn created_at(&self) -> i64 {
        self.created_at
    }
}

/// Where PATs are kept, one per owner. Implement it over the resource server's database;
/// [`MemoryPatStore`] is the in-process implementation.
///
/// # Several processes sharing one store
///
/// [`UmaClient::pat_for`] refreshes each owner's PAT once however many tasks ask at the same
/// time, but only within one process (one [`UmaClient`] and its clones). Custodia rotates
/// refresh tokens: when two resource server instances sharing this store refresh the same PAT
/// at once, the second presents a refresh token that has just been used, the authorization
/// server takes it for a replay and revokes the owner's tokens, and the owner has to connect
/// the resource server again. A store shared by several processes must therefore serialise
/// refreshes across them by implementing [`PatStore::lock_for_refresh`], for example with a
/// database lock keyed by the owner (a PostgreSQL advisory lock held in a transaction, a
/// `SELECT … FOR UPDATE` on the owner's row, a lease row with an expiry).
pub trait PatStore: Send + Sync {
    /// The owner's PAT, if any.
    fn load<'a>(&'a self, owner: &'a str) -> BoxFuture<'a, Result<Option<Pat>, Error>>;
    /// Store (insert or replace) a PAT under `pat.owner`.
    fn save<'a>(&'a self, pat: &'a Pat) -> BoxFuture<'a, Result<(), Error>>;
    /// Forget the owner's PAT.
    fn remove<'a>(&'a self, owner: &'a str) -> BoxFuture<'a, Result<(), Error>>;
    /// Take a lock that serialises refreshes of `owner`'s PAT across processes. The SDK calls
    /// it after its own per-process lock, then reads the PAT again (another process may have
    /// refreshed it meanwhile), refreshes, saves the result and only then drops the guard.
    /// Also taken when a PAT refused by the authorization server is renewed or removed.
    ///
    /// The default takes no lock, which is right for a store used by one process only. Hold
    /// the lock for a bounded time (a lease, or a lock-wait timeout): a refresh lasts at most
    /// the HTTP timeout.
    fn lock_for_refresh<'a>(
        &'a self,
        owner: &'a str,
    ) -> BoxFuture<'a, Result<RefreshGuard, Error>> {
        let _ = owner;
        Box::pin(async { Ok(RefreshGuard::none()) })
    }
}

/// A cross-process refresh lock from [`PatStore::lock_for_refresh`]: the lock is released when
/// the guard, and with it the value it was built from, is dropped.
pub struct RefreshGuard(Option<Box<dyn Send>>);

impl RefreshGuard {
    /// A guard whose drop releases the lock (for example a database transaction or connection
    /// that holds it).
    pub fn new(held: impl Send + 'static) -> Self {
        RefreshGuard(Some(Box::new(held)))
    }

    /// A guard for no lock.
    pub fn none() -> Self {
        RefreshGuard(None)
    }
}

impl std::fmt::Debug for RefreshGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("RefreshGuard")
            .field(&if self.0.is_some() { "held" } else { "none" })
            .finish()
    }
}

/// PATs in process memory.
#[derive(Debug, Default)]
pub struct MemoryPatStore {
    pats: Mutex<HashMap<String, Pat>>,
}

impl MemoryPatStore {
    pub fn new() -> Self {
        MemoryPatStore::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut HashMap<String, Pat>) -> R) -> R {
        match self.pats.lock() {
            Ok(mut m) => f(&mut m),
            Err(p) => f(&mut p.into_inner()),
        }
    }
}

impl PatStore for MemoryPatStore {
    fn load<'a>(&'a self, owner: &'a str) -> BoxFuture<'a, Result<Option<Pat>, Error>> {
        let pat = self.with(|m| m.get(owner).cloned());
        Box::pin(async move { Ok(pat) })
    }

    fn save<'a>(&'a self, pat: &'a Pat) -> BoxFuture<'a, Result<(), Error>> {
        self.with(|m| m.insert(pat.owner.clone(), pat.clone()));
        Box::pin(async { Ok(()) })
    }

    fn remove<'a>(&'a self, owner: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        self.with(|m| m.remove(owner));
        Box::pin(async { Ok(()) })
    }
}

/// Whether two PATs hold the same access token (compared in constant time).
fn same_token(a: &Pat, b: &Pat) -> bool {
    ct_eq(
        a.access_token.expose_secret().as_bytes(),
        b.access_token.expose_secret().as_bytes(),
    )
}

/// The token endpoint's answer (RFC 6749 §5.1). Holds tokens: no `Debug`.
#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    token_type: String,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    scope: Option<String>,
}

impl UmaClient {
    /// The URL to send the owner to for a PAT: `response_type=code`, `scope` with
    /// `uma_protection` (plus the configured extra scopes), a random `state` and a PKCE S256
    /// challenge. Keep the returned [`PendingAuthorization`] server-side until the callback.
    pub async fn authorization_url(&self) -> Result<(Url, PendingAuthorization), Error> {
        let d = self.discovery().await?;
        let mut url = d
            .authorization_endpoint
            .clone()
            .ok_or_else(|| Error::Discovery("`authorization_endpoint` is missing".into()))?;
        let pending = PendingAuthorization {
            state: Nonce::new(pkce::random_b64(32)?),
            code_verifier: pkce::code_verifier()?,
            created_at: self.now(),
        };
        let c = self.config();
        let mut scope = String::from(UMA_PROTECTION);
        for s in c
            .extra_scopes
            .iter()
            .filter(|s| s.as_str() != UMA_PROTECTION)
        {
            scope.push(' ');
            scope.push_str(s);
        }
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &c.client_id)
            .append_pair("redirect_uri", &c.redirect_uri)
            .append_pair("scope", &scope)
            .append_pair("state", pending.state.expose_secret())
            .append_pair(
                "code_challenge",
                &pkce::code_challenge_s256(pending.code_verifier.expose_secret()),
            )
            .append_pair("code_challenge_method", "S256");
        Ok((url, pending))
    }

    /// Redeem the authorization code of the callback. `state` is the callback's `state`
    /// parameter, compared in constant time with the pending request's. The PAT is verified
    /// against the authorization server's keys and its `sub` becomes [`Pat::owner`].
    /// The caller saves the PAT in its [`PatStore`].
    pub async fn exchange_code(
        &self,
        pending: PendingAuthorization,
        code: &str,
        state: &str,
    ) -> Result<Pat, Error> {
        if !ct_eq(pending.state.expose_secret().as_bytes(), state.as_bytes()) {
            return Err(Error::StateMismatch);
        }
        let lifetime = self.config().authorization_lifetime.as_secs() as i64;
        if self.now() > pending.created_at.saturating_add(lifetime) {
            return Err(Error::AuthorizationExpired);
        }
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &self.config().redirect_uri),
            ("code_verifier", pending.code_verifier.expose_secret()),
        ];
        self.token_request(&form, None).await
    }

    /// Refresh a PAT with its refresh token (RFC 6749 §6). The answer's refresh token replaces
    /// the old one, which the authorization server has just invalidated: save the result.
    /// A PAT without refresh token, or a refresh refused with `invalid_grant`, gives
    /// [`Error::ReauthorizationRequired`].
    pub async fn refresh_pat(&self, pat: &Pat) -> Result<Pat, Error> {
        let refresh = pat
            .refresh_token
            .as_ref()
            .ok_or_else(|| Error::ReauthorizationRequired(pat.owner.clone()))?;
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.expose_secret()),
        ];
        match self.token_request(&form, Some(pat)).await {
            Err(e) if e.protocol_error() == Some("invalid_grant") => {
                Err(Error::ReauthorizationRequired(pat.owner.clone()))
            }
            other => other,
        }
    }

    /// A usable PAT for `owner`: the stored one, or a refreshed one (saved to `store`) when it
    /// expires within the refresh margin. When the refresh token is refused, the stored PAT is
    /// removed and [`Error::ReauthorizationRequired`] returned; with no PAT stored, the error is
    /// [`Error::NoPat`].
    ///
    /// Concurrent calls for one owner refresh once, but only within this process (this client
    /// and its clones). Refresh tokens rotate, so resource server instances sharing one store
    /// must serialise their refreshes through [`PatStore::lock_for_refresh`], which this method
    /// takes around the refresh (see [`PatStore`]).
    pub async fn pat_for(&self, store: &dyn PatStore, owner: &str) -> Result<Pat, Error> {
        let margin = self.config().refresh_margin.as_secs() as i64;
        let pat = store
            .load(owner)
            .await?
            .ok_or_else(|| Error::NoPat(owner.to_string()))?;
        if !pat.expires_within(self.now(), margin) && self.holds_key_of(&pat) {
            return Ok(pat);
        }
        let lock = self.owner_lock(owner);
        let result = async {
            let _refreshing = lock.lock().await;
            let _shared = store.lock_for_refresh(owner).await?;
            // Another task or process may have refreshed while we waited.
            let pat = store
                .load(owner)
                .await?
                .ok_or_else(|| Error::NoPat(owner.to_string()))?;
            if !pat.expires_within(self.now(), margin) && self.holds_key_of(&pat) {
                return Ok(pat);
            }
            match self.refresh_pat(&pat).await {
                Ok(fresh) => {
                    store.save(&fresh).await?;
                    Ok(fresh)
                }
                Err(Error::ReauthorizationRequired(o)) => {
                    store.remove(owner).await?;
                    Err(Error::ReauthorizationRequired(o))
                }
                // The authorization server is unreachable: the old PAT still works until it
                // actually expires.
                Err(_) if !pat.expires_within(self.now(), 0) => Ok(pat),
                Err(e) => Err(e),
            }
        }
        .await;
        self.release_owner_lock(owner, lock);
        result
    }

    /// The owner's PAT after the authorization server refused `refused` with a 401 (revoked, for
    /// example because the owner disconnected this resource server, or expired before its
    /// `exp` by the server's clock). If the stored PAT is another one, someone renewed it
    /// already and it is returned. Otherwise it is refreshed once and saved; when it has no
    /// refresh token or the refresh is refused, it is removed from the store and the error is
    /// [`Error::ReauthorizationRequired`]. Other refresh failures (the server unreachable) are
    /// returned and the PAT kept.
    pub(crate) async fn renew_refused_pat(
        &self,
        store: &dyn PatStore,
        refused: &Pat,
    ) -> Result<Pat, Error> {
        let owner = refused.owner.as_str();
        let lock = self.owner_lock(owner);
        let result = async {
            let _refreshing = lock.lock().await;
            let _shared = store.lock_for_refresh(owner).await?;
            let pat = store
                .load(owner)
                .await?
                .ok_or_else(|| Error::NoPat(owner.to_string()))?;
            if !same_token(&pat, refused) {
                return Ok(pat);
            }
            match self.refresh_pat(&pat).await {
                Ok(fresh) => {
                    store.save(&fresh).await?;
                    Ok(fresh)
                }
                Err(Error::ReauthorizationRequired(o)) => {
                    store.remove(owner).await?;
                    Err(Error::ReauthorizationRequired(o))
                }
                Err(e) => Err(e),
            }
        }
        .await;
        self.release_owner_lock(owner, lock);
        result
    }

    /// Remove `refused` from the store, unless it has been replaced meanwhile.
    pub(crate) async fn discard_refused_pat(
        &self,
        store: &dyn PatStore,
        refused: &Pat,
    ) -> Result<(), Error> {
        let owner = refused.owner.as_str();
        let lock = self.owner_lock(owner);
        let result = async {
            let _refreshing = lock.lock().await;
            let _shared = store.lock_for_refresh(owner).await?;
            match store.load(owner).await? {
                Some(pat) if same_token(&pat, refused) => store.remove(owner).await,
                _ => Ok(()),
            }
        }
        .await;
        self.release_owner_lock(owner, lock);
        result
    }

    /// POST the token endpoint with `client_secret_basic` and turn the answer into a verified
    /// PAT. `previous` is the PAT being refreshed (its owner must not change).
    async fn token_request(
        &self,
        form: &[(&str, &str)],
        previous: Option<&Pat>,
    ) -> Result<Pat, Error> {
        let d = self.discovery().await?;
        let c = self.config();
        // RFC 9449 §8: a server that wants a nonce answers `use_dpop_nonce` with one in
        // `DPoP-Nonce`; the request is sent once more with it (and a fresh assertion).
        let mut nonce: Option<String> = None;
        let answer = loop {
            let answer = self.send_token_request(&d, form, nonce.as_deref()).await?;
            let asked = answer
                .headers
                .get("dpop-nonce")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            match asked {
                Some(n)
                    if nonce.is_none()
                        && answer.status == 400
                        && answer.error().protocol_error() == Some("use_dpop_nonce") =>
                {
                    nonce = Some(n);
                }
                _ => break answer,
            }
        };
        let body: TokenResponse = answer.json(&[200])?;
        let bound = match (&c.dpop_key, body.token_type.to_ascii_lowercase().as_str()) {
            (None, "bearer") => None,
            (Some(key), "dpop") => Some(key.jkt.clone()),
            // Asked for a DPoP-bound PAT, got a bearer one: the server ignored the proof. Such a
            // PAT, if stored, would be refreshed at every use (it is not bound to this key).
            (Some(_), "bearer") => {
                return Err(Error::UnexpectedResponse {
                    status: answer.status,
                    detail: "a DPoP proof was sent but the authorization server issued a bearer PAT (does it support DPoP?)".into(),
                });
            }
            _ => {
                return Err(Error::UnexpectedResponse {
                    status: answer.status,
                    detail: format!("token type `{}` is not bearer", body.token_type),
                });
            }
        };
        self.pat_from(body, bound, previous).await
    }

    /// One token request (with a DPoP proof when PATs are DPoP-bound).
    async fn send_token_request(
        &self,
        d: &crate::discovery::Discovery,
        form: &[(&str, &str)],
        nonce: Option<&str>,
    ) -> Result<http::Answer, Error> {
        let c = self.config();
        let mut request = self
            .inner
            .http
            .post(d.token_endpoint.clone())
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(key) = &c.dpop_key {
            let proof = crate::dpop::proof(
                key,
                "POST",
                d.token_endpoint.as_str(),
                None,
                self.now(),
                nonce,
            )?;
            request = request.header("DPoP", proof);
        }
        request = match &c.assertion_key {
            Some(key) => {
                let assertion =
                    client_assertion(&c.client_id, key, d.token_endpoint.as_str(), self.now())?;
                let mut all: Vec<(&str, &str)> = form.to_vec();
                all.push((
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ));
                all.push(("client_assertion", &assertion));
                request.form(&all)
            }
            None => request
                .header(
                    reqwest::header::AUTHORIZATION,
                    http::basic_auth(&c.client_id, c.client_secret.expose_secret()),
                )
                .form(form),
        };
        http::send(request).await
    }

    /// The PAT of a token response, verified.
    async fn pat_from(
        &self,
        body: TokenResponse,
        dpop_jkt: Option<String>,
        previous: Option<&Pat>,
    ) -> Result<Pat, Error> {
        let c = self.config();
        let claims = self
            .verified_claims(&self.inner.jwks, &body.access_token)
            .await?
            .map_err(Error::InvalidPat)?;
        let now = self.now();
        if claims.iss != c.issuer {
            return Err(Error::InvalidPat(TokenError::WrongIssuer));
        }
        if claims.client_id.as_deref() != Some(c.client_id.as_str()) {
            return Err(Error::InvalidPat(TokenError::WrongClient));
        }
        claims
            .check_times(now, PAT_LEEWAY)
            .map_err(Error::InvalidPat)?;
        let owner = claims
            .sub
            .filter(|s| !s.is_empty())
            .ok_or(Error::InvalidPat(TokenError::Malformed))?;
        if let Some(prev) = previous
            && prev.owner != owner
        {
            return Err(Error::InvalidPat(TokenError::SubjectMismatch));
        }
        let scope = claims
            .scope
            .or(body.scope)
            .or_else(|| previous.map(|p| p.scope.clone()))
            .unwrap_or_default();
        if !scope.split(' ').any(|s| s == UMA_PROTECTION) {
            return Err(Error::InvalidPat(TokenError::MissingScope));
        }
        Ok(Pat {
            owner,
            access_token: AccessToken::new(body.access_token),
            refresh_token: body
                .refresh_token
                .map(RefreshToken::new)
                .or_else(|| previous.and_then(|p| p.refresh_token.clone())),
            expires_at: claims.exp.0,
            scope,
            dpop_jkt,
        })
    }

    /// Whether `pat` can be sent by this client: not bound, or bound to this client's DPoP key.
    /// A PAT bound to another key (made before a restart) must be refreshed first.
    pub(crate) fn holds_key_of(&self, pat: &Pat) -> bool {
        match (&pat.dpop_jkt, &self.config().dpop_key) {
            (None, None) => true,
            (Some(j), Some(k)) => ct_eq(j.as_bytes(), k.jkt.as_bytes()),
            // A bearer PAT while DPoP-bound ones are wanted: renew it bound.
            (None, Some(_)) => false,
            (Some(_), None) => false,
        }
    }

    /// A protection API request carrying `pat`: `Authorization: Bearer`, or, for a DPoP-bound
    /// PAT, `Authorization: DPoP` with a fresh proof of this client's key for this method and URL
    /// and the PAT's hash (`ath`, RFC 9449 §7.1).
    pub(crate) fn with_pat(
        &self,
        method: reqwest::Method,
        url: Url,
        pat: &Pat,
    ) -> Result<reqwest::RequestBuilder, Error> {
        let request = self.inner.http.request(method.clone(), url.clone());
        match (&pat.dpop_jkt, &self.config().dpop_key) {
            (None, _) => Ok(request.header(reqwest::header::AUTHORIZATION, pat.bearer())),
            (Some(_), Some(key)) if self.holds_key_of(pat) => {
                let token = pat.access_token.expose_secret();
                let proof = crate::dpop::proof(
                    key,
                    method.as_str(),
                    url.as_str(),
                    Some(token),
                    self.now(),
                    None,
                )?;
                Ok(request
                    .header(reqwest::header::AUTHORIZATION, format!("DPoP {token}"))
                    .header("DPoP", proof))
            }
            (Some(_), _) => Err(Error::Config(
                "this PAT is bound to a DPoP key this client does not hold: refresh it".into(),
            )),
        }
    }
}

/// A client assertion (RFC 7523 §3): `iss` = `sub` = the client, `aud` = the endpoint it is sent
/// to (the token or the introspection endpoint), a one-minute lifetime and a random `jti`.
pub(crate) fn client_assertion(
    client_id: &str,
    key: &crate::config::AssertionKey,
    audience: &str,
    now: i64,
) -> Result<String, Error> {
    let mut payload = josekit::jwt::JwtPayload::new();
    payload.set_issuer(client_id);
    payload.set_subject(client_id);
    payload.set_audience(vec![audience]);
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(now.max(0) as u64);
    payload.set_issued_at(&at);
    payload.set_expires_at(&(at + std::time::Duration::from_secs(60)));
    payload.set_jwt_id(crate::pkce::random_b64(24)?);
    let mut header = josekit::jws::JwsHeader::new();
    if let Some(kid) = &key.kid {
        header.set_key_id(kid);
    }
    let bad = |_| Error::Config("the client key cannot sign".into());
    match key.alg {
        "ES256" => josekit::jwt::encode_with_signer(
            &payload,
            &header,
            &josekit::jws::ES256.signer_from_jwk(&key.jwk).map_err(bad)?,
        ),
        "RS256" => josekit::jwt::encode_with_signer(
            &payload,
            &header,
            &josekit::jws::RS256.signer_from_jwk(&key.jwk).map_err(bad)?,
        ),
        _ => josekit::jwt::encode_with_signer(
            &payload,
            &header,
            &josekit::jws::PS256.signer_from_jwk(&key.jwk).map_err(bad)?,
        ),
    }
    .map_err(bad)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::config::{ClientConfig, Clock};
    use crate::secret::ClientSecret;
    use crate::test_support::{CLIENT_ID, CLIENT_SECRET, Counters, FakeAs, OWNER, now};
    use std::sync::Arc;

    fn client(fake: &FakeAs) -> UmaClient {
        UmaClient::new(ClientConfig::new(
            fake.issuer.clone(),
            CLIENT_ID,
            ClientSecret::new(CLIENT_SECRET),
            "https://rs.example/callback",
        ))
        .unwrap()
    }

    fn query(url: &Url) -> HashMap<String, String> {
        url.query_pairs().into_owned().collect()
    }

    #[actix_web::test]
    async fn authorization_url_has_pkce_state_and_scope() {
        let fake = FakeAs::start().await;
        let c = UmaClient::new(
            ClientConfig::new(
                fake.issuer.clone(),
                CLIENT_ID,
                ClientSecret::new(CLIENT_SECRET),
                "https://rs.example/callback",
            )
            .with_extra_scopes(["openid"]),
        )
        .unwrap();
        let (url, pending) = c.authorization_url().await.unwrap();
        assert!(
            url.as_str()
                .starts_with(&format!("{}/authorize?", fake.issuer))
        );
        let q = query(&url);
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], CLIENT_ID);
        assert_eq!(q["redirect_uri"], "https://rs.example/callback");
        assert_eq!(q["scope"], "uma_protection openid");
        assert_eq!(q["state"], pending.state().expose_secret());
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(
            q["code_challenge"],
            pkce::code_challenge_s256(pending.code_verifier().expose_secret())
        );
        let (url2, _) = c.authorization_url().await.unwrap();
        assert_ne!(
            query(&url2)["state"],
            q["state"],
            "state is random per request"
        );
        fake.stop().await;
    }

    /// Register a code at the fake server for the URL's PKCE challenge.
    fn register_code(fake: &FakeAs, url: &Url, code: &str) {
        let challenge = query(url)["code_challenge"].clone();
        fake.with_state(|s| s.codes.insert(code.into(), (OWNER.into(), challenge)));
    }

    #[actix_web::test]
    async fn code_exchange_yields_a_verified_pat_for_the_owner() {
        let fake = FakeAs::start().await;
        let c = client(&fake);
        let (url, pending) = c.authorization_url().await.unwrap();
        register_code(&fake, &url, "code-1");
        let state = pending.state().expose_secret().to_string();
        let pat = c.exchange_code(pending, "code-1", &state).await.unwrap();
        assert_eq!(pat.owner, OWNER);
        assert!(pat.expires_at > now() + 3000);
        assert!(pat.refresh_token.is_some());
        assert!(pat.scope.contains("uma_protection"));
        assert!(!format!("{pat:?}").contains(pat.access_token.expose_secret()));
        // client_secret_basic with form-encoded credentials
        let auth = fake.with_state(|s| s.last_token_auth.clone()).unwrap();
        assert_eq!(auth, http::basic_auth(CLIENT_ID, CLIENT_SECRET));
        fake.stop().await;
    }

    #[actix_web::test]
    async fn state_mismatch_is_refused_before_any_request() {
        let fake = FakeAs::start().await;
        let c = client(&fake);
        let (url, pending) = c.authorization_url().await.unwrap();
        register_code(&fake, &url, "code-1");
        let mut wrong = pending.state().expose_secret().to_string();
        wrong.push('x');
        let e = c
            .exchange_code(pending, "code-1", &wrong)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::StateMismatch), "{e}");
        assert_eq!(Counters::get(&fake.counters.token), 0);
        fake.stop().await;
    }

    #[actix_web::test]
    async fn an_old_pending_authorization_is_refused() {
        let fake = FakeAs::start().await;
        let c = client(&fake);
        let (_, pending) = c.authorization_url().await.unwrap();
        let state = pending.state().expose_secret().to_string();
        let old = PendingAuthorization::from_parts(
            Nonce::new(state.clone()),
            pending.code_verifier().clone(),
            now() - 3600,
        );
        let e = c.exchange_code(old, "code-1", &state).await.unwrap_err();
        assert!(matches!(e, Error::AuthorizationExpired), "{e}");
        fake.stop().await;
    }

    #[actix_web::test]
    async fn wrong_pkce_verifier_is_an_as_error() {
        let fake = FakeAs::start().await;
        let c = client(&fake);
        let (url, pending) = c.authorization_url().await.unwrap();
        register_code(&fake, &url, "code-1");
        let state = pending.state().expose_secret().to_string();
        let forged = PendingAuthorization::from_parts(
            Nonce::new(state.clone()),
            pkce::code_verifier().unwrap(),
            now(),
        );
        let e = c.exchange_code(forged, "code-1", &state).await.unwrap_err();
        assert_eq!(e.protocol_error(), Some("invalid_grant"));
        fake.stop().await;
    }

    #[actix_web::test]
    async fn a_pat_that_does_not_check_out_is_refused() {
        let fake = FakeAs::start().await;
        let c = client(&fake);
        let cases = [
            (
                serde_json::json!({"iss": "https://evil"}),
                TokenError::WrongIssuer,
            ),
            (
                serde_json::json!({"client_id": "other-rs"}),
                TokenError::WrongClient,
            ),
            (
                serde_json::json!({"scope": "openid"}),
                TokenError::MissingScope,
            ),
            (serde_json::json!({"sub": ""}), TokenError::Malformed),
            (serde_json::json!({"exp": now() - 120}), TokenError::Expired),
        ];
        for (i, (overrides, expected)) in cases.into_iter().enumerate() {
            fake.with_state(|s| s.pat_overrides = Some(overrides.clone()));
            let (url, pending) = c.authorization_url().await.unwrap();
            let code = format!("code-{i}");
            register_code(&fake, &url, &code);
            let state = pending.state().expose_secret().to_string();
            let e = c.exchange_code(pending, &code, &state).await.unwrap_err();
            assert!(
                matches!(&e, Error::InvalidPat(t) if *t == expected),
                "{overrides}: {e}"
            );
        }
        fake.stop().await;
    }

    fn stored_pat(fake: &FakeAs, exp: i64, refresh: &str) -> Pat {
        fake.with_state(|s| s.refresh_tokens.insert(refresh.into(), OWNER.into()));
        Pat {
            owner: OWNER.into(),
            access_token: AccessToken::new(fake.mint_pat(OWNER, exp)),
            refresh_token: Some(RefreshToken::new(refresh)),
            expires_at: exp,
            scope: "uma_protection".into(),
            dpop_jkt: None,
        }
    }

    #[actix_web::test]
    async fn pat_for_returns_a_fresh_pat_without_refreshing() {
        let fake = FakeAs::start().await;
        let c = client(&fake);
        let store = MemoryPatStore::new();
        store
            .save(&stored_pat(&fake, now() + 3600, "rt-0"))
            .await
            .unwrap();
        let pat = c.pat_for(&store, OWNER).await.unwrap();
        assert_eq!(pat.refresh_token.unwrap().expose_secret(), "rt-0");
        assert_eq!(Counters::get(&fake.counters.token), 0);
        let e = c.pat_for(&store, "nobody").await.unwrap_err();
        assert!(matches!(e, Error::NoPat(_)), "{e}");
        fake.stop().await;
    }

    /// UMA-FED-06: the RS refreshes the PAT without the owner; rotation is respected.
    #[actix_web::test]
    async fn concurrent_pat_for_refreshes_once_and_stores_the_rotated_token() {
        let fake = FakeAs::start().await;
        let c = client(&fake);
        let store = Arc::new(MemoryPatStore::new());
        // expires within the 60 s margin
        store
            .save(&stored_pat(&fake, now() + 30, "rt-0"))
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let c = c.clone();
            let store = store.clone();
            tasks.push(actix_web::rt::spawn(async move {
                c.pat_for(store.as_ref(), OWNER).await
            }));
        }
        let mut tokens = Vec::new();
        for t in tasks {
            let pat = t.await.unwrap().unwrap();
            assert!(pat.expires_at > now() + 3000);
            tokens.push(pat.access_token.expose_secret().to_string());
        }
        assert_eq!(
            Counters::get(&fake.counters.refresh),
            1,
            "one refresh for 8 callers"
        );
        assert!(tokens.windows(2).all(|w| w[0] == w[1]));
        let saved = store.load(OWNER).await.unwrap().unwrap();
        let rt = saved.refresh_token.unwrap().expose_secret().to_string();
        assert_ne!(rt, "rt-0", "the rotated refresh token is stored");
        assert!(fake.with_state(|s| s.refresh_tokens.contains_key(&rt)));
        assert_eq!(c.owner_lock_count(), 0, "owner locks are released");
        fake.stop().await;
    }

    /// A store shared by two processes, with a cross-process refresh lock.
    struct SharedStore {
        pats: MemoryPatStore,
        lock: Arc<tokio::sync::Mutex<()>>,
        locked: std::sync::atomic::AtomicUsize,
    }

    impl PatStore for SharedStore {
        fn load<'a>(&'a self, owner: &'a str) -> BoxFuture<'a, Result<Option<Pat>, Error>> {
            self.pats.load(owner)
        }
        fn save<'a>(&'a self, pat: &'a Pat) -> BoxFuture<'a, Result<(), Error>> {
            self.pats.save(pat)
        }
        fn remove<'a>(&'a self, owner: &'a str) -> BoxFuture<'a, Result<(), Error>> {
            self.pats.remove(owner)
        }
        fn lock_for_refresh<'a>(
            &'a self,
            _owner: &'a str,
        ) -> BoxFuture<'a, Result<RefreshGuard, Error>> {
            Box::pin(async move {
                let guard = self.lock.clone().lock_owned().await;
                self.locked
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok(RefreshGuard::new(guard))
            })
        }
    }

    /// The per-owner single-flight is per process; two clients (two resource server instances)
    /// sharing a store refresh once only through the store's lock.
    #[actix_web::test]
    async fn instances_sharing_a_store_refresh_once_through_its_lock() {
        let fake = FakeAs::start().await;
        let store = Arc::new(SharedStore {
            pats: MemoryPatStore::new(),
            lock: Arc::default(),
            locked: Default::default(),
        });
        store
            .save(&stored_pat(&fake, now() + 30, "rt-0"))
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for _ in 0..4 {
            // a client each: no shared in-process lock
            let c = client(&fake);
            let store = store.clone();
            tasks.push(actix_web::rt::spawn(async move {
                c.pat_for(store.as_ref(), OWNER).await
            }));
        }
        for t in tasks {
            assert!(t.await.unwrap().unwrap().expires_at > now() + 3000);
        }
        assert_eq!(Counters::get(&fake.counters.refresh), 1);
        assert_eq!(
            store.locked.load(std::sync::atomic::Ordering::SeqCst),
            4,
            "each refreshing instance took the lock"
        );
        assert!(store.load(OWNER).await.unwrap().is_some());
        fake.stop().await;
    }

    /// The futures can be spawned on a multi-threaded runtime, refresh lock held or not.
    #[test]
    fn pat_futures_are_send() {
        fn send<T: Send>(_: T) {}
        let c = UmaClient::new(ClientConfig::new(
            "https://as.example",
            CLIENT_ID,
            ClientSecret::new(CLIENT_SECRET),
            "https://rs.example/callback",
        ))
        .unwrap();
        let store = MemoryPatStore::new();
        let permission = crate::Permission::new("r", ["s"]);
        send(c.pat_for(&store, OWNER));
        send(c.request_permission_for(&store, OWNER, &permission));
    }

    #[test]
    fn the_default_refresh_guard_holds_nothing() {
        assert_eq!(
            format!("{:?}", RefreshGuard::none()),
            r#"RefreshGuard("none")"#
        );
        assert_eq!(
            format!("{:?}", RefreshGuard::new(1)),
            r#"RefreshGuard("held")"#
        );
    }

    #[actix_web::test]
    async fn a_refused_refresh_removes_the_pat_and_asks_for_reauthorization() {
        let fake = FakeAs::start().await;
        let c = client(&fake);
        let store = MemoryPatStore::new();
        let mut pat = stored_pat(&fake, now() + 10, "rt-0");
        pat.refresh_token = Some(RefreshToken::new("rt-revoked"));
        store.save(&pat).await.unwrap();
        let e = c.pat_for(&store, OWNER).await.unwrap_err();
        assert!(
            matches!(e, Error::ReauthorizationRequired(ref o) if o == OWNER),
            "{e}"
        );
        assert!(store.load(OWNER).await.unwrap().is_none());
        fake.stop().await;
    }

    #[actix_web::test]
    async fn an_unreachable_as_keeps_a_not_yet_expired_pat() {
        let fake = FakeAs::start().await;
        let issuer = fake.issuer.clone();
        let pat = stored_pat(&fake, now() + 30, "rt-0");
        fake.stop().await;
        let c = UmaClient::new(ClientConfig::new(
            issuer,
            CLIENT_ID,
            ClientSecret::new(CLIENT_SECRET),
            "https://rs.example/callback",
        ))
        .unwrap();
        let store = MemoryPatStore::new();
        store.save(&pat).await.unwrap();
        let got = c.pat_for(&store, OWNER).await.unwrap();
        assert_eq!(got.expires_at, pat.expires_at);
        // once it has expired, the failure surfaces
        let c = UmaClient::new(
            c.config()
                .clone()
                .with_clock(Clock::from_fn(move || now() + 120)),
        )
        .unwrap();
        let e = c.pat_for(&store, OWNER).await.unwrap_err();
        assert!(e.is_unreachable(), "{e}");
    }
}

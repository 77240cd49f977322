//! The actix-web adapter (feature `actix`): [`UmaGuard`] as app data and the [`Authorized`]
//! extractor, which together do the resource server's side of UMA 2.0 Grant §3.2 and §3.5 for a
//! route.
//!
//! For each request the guard's resolver maps the request to a [`Requirement`] (whose resource,
//! which scopes, how to verify); the RPT is read from `Authorization: Bearer` (RFC 6750 §2.1; a
//! token in the query is refused, §2.3 is not supported) and verified. When it covers every
//! required scope the handler runs. Otherwise the guard asks Custodia for a permission ticket
//! with the owner's PAT (UMA-FED-41) and answers with [`UmaResponseError`]:
//!
//! | request | answer |
//! | --- | --- |
//! | no RPT, an RPT that does not verify (bad signature, expired, revoked, wrong audience, …), or a valid RPT with no permission for the resource | 401 + `WWW-Authenticate: UMA realm=…, as_uri=…, ticket=…` (UMA-FED-42, UMA-GRANT-61) |
//! | a valid RPT with an active permission for the resource that lacks a required scope | 403 + the same challenge, with a fresh ticket for the scopes needed |
//! | the authorization server unreachable (transport failure, timeout, 5xx, 429) | 403 + `Warning: 199 - "UMA Authorization Server Unreachable"`, no challenge (UMA-FED-43) |
//! | the owner has not connected this resource server: no PAT stored, or the PAT and its refresh token refused (the owner disconnected it; the PAT is then removed from the store) | 403, no challenge, no `Warning`, `{"error": "resource_unavailable", …}` |
//! | the permission request refused for another reason (`invalid_resource_id` or `invalid_scope`: the resource server's mapping is stale), a failing [`PatStore`], an answer outside the protocol | 500 with a generic body; the cause is logged at ERROR |
//! | a token in the query string, or two `Authorization` headers | 400 `invalid_request` |
//!
//! **The 403 for an RPT lacking a scope is a deliberate choice.** UMA-GRANT-61 (UMA Grant §3.5)
//! asks the resource server to answer any insufficient RPT as a token-less request, that is 401
//! with a challenge. The guard answers 401 only when the RPT gives nothing for the resource, and
//! 403 when the RPT is valid but insufficient, as the issue that specified this guard asked
//! ("403 when the RPT is valid but insufficient"), so the client can tell "get an RPT" from
//! "upgrade the RPT you have". The 403 still carries the UMA challenge
//! and a fresh ticket, so a client that only looks for `WWW-Authenticate: UMA` proceeds exactly
//! as after a 401, presenting its RPT with the ticket (UMA Grant §3.3.1) to have it upgraded.
//!
//! Only this module imports `actix_web`; the core stays framework-neutral.

use std::future::Future;
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header::{AUTHORIZATION, CACHE_CONTROL, WARNING, WWW_AUTHENTICATE};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, web};
use futures_util::future::LocalBoxFuture;

use crate::challenge::{UmaChallenge, WARNING_AS_UNREACHABLE};
use crate::client::UmaClient;
use crate::error::Error;
use crate::pat::PatStore;
use crate::permission::Permission;
use crate::rpt::{Rpt, RptVerifier, Verification};

/// What a request needs: the owner of the resource (whose PAT asks for tickets and
/// introspects), the registered resource id, the scopes, and how to verify the RPT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    pub owner: String,
    pub resource_id: String,
    pub scopes: Vec<String>,
    pub verification: Verification,
}

impl Requirement {
    /// A requirement verified locally.
    pub fn new<I, S>(owner: impl Into<String>, resource_id: impl Into<String>, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Requirement {
            owner: owner.into(),
            resource_id: resource_id.into(),
            scopes: scopes.into_iter().map(Into::into).collect(),
            verification: Verification::Local,
        }
    }

    /// The same requirement with another verification method.
    pub fn with_verification(mut self, verification: Verification) -> Self {
        self.verification = verification;
        self
    }
}

type Resolver = Arc<
    dyn Fn(HttpRequest) -> LocalBoxFuture<'static, Result<Requirement, actix_web::Error>>
        + Send
        + Sync,
>;

/// The resource server's UMA guard: put it in the app as `web::Data<UmaGuard>`.
pub struct UmaGuard {
    client: UmaClient,
    verifier: Arc<RptVerifier>,
    store: Arc<dyn PatStore>,
    realm: Option<String>,
    resolver: Option<Resolver>,
    dpop: Arc<crate::dpop::DpopVerifier>,
    public_url: Option<String>,
}

impl std::fmt::Debug for UmaGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UmaGuard")
            .field("client", &self.client)
            .field("realm", &self.realm)
            .finish_non_exhaustive()
    }
}

impl UmaGuard {
    /// A guard asking `client`'s authorization server for tickets with PATs from `store`.
    pub fn new(client: UmaClient, verifier: RptVerifier, store: Arc<dyn PatStore>) -> Self {
        UmaGuard {
            client,
            verifier: Arc::new(verifier),
            store,
            realm: None,
            resolver: None,
            dpop: Arc::new(crate::dpop::DpopVerifier::default()),
            public_url: None,
        }
    }

    /// The resource server's public base URL (`https://fhir.example`), against which DPoP
    /// proofs' `htu` is checked. Without it, DPoP-bound RPTs are refused (the request's own
    /// `Host` header cannot be trusted for this).
    pub fn with_public_url(mut self, url: impl Into<String>) -> Self {
        self.public_url = Some(url.into().trim_end_matches('/').to_string());
        self
    }

    /// The URL of `req` as the client addressed it (for DPoP's `htu`): the configured public
    /// URL and the path. Never from request headers (`Host`, `X-Forwarded-*`), which the client
    /// sets: a proof made for another resource server must not pass here.
    fn request_url(&self, req: &HttpRequest) -> Option<String> {
        self.public_url
            .as_ref()
            .map(|base| format!("{base}{}", req.path()))
    }

    /// RFC 9449 §7: a bound RPT only with the `DPoP` scheme and a proof from its key; an unbound
    /// one only as `Bearer` (DPOP-11, -13).
    fn check_binding(
        &self,
        req: &HttpRequest,
        token: &str,
        dpop_scheme: bool,
        rpt: &Rpt,
    ) -> Result<(), UmaResponseError> {
        let refuse = |error: &'static str, description: String| {
            Err(UmaResponseError::Dpop { error, description })
        };
        match (&rpt.dpop_jkt, dpop_scheme) {
            (None, false) => Ok(()),
            (Some(_), false) => refuse(
                "invalid_token",
                "this RPT is bound to a DPoP key: send it as `Authorization: DPoP` with a DPoP proof"
                    .into(),
            ),
            (None, true) => refuse(
                "invalid_token",
                "this RPT is not bound to a DPoP key: send it as `Authorization: Bearer`".into(),
            ),
            (Some(bound), true) => {
                let proofs: Vec<&str> = req
                    .headers()
                    .get_all("dpop")
                    .filter_map(|v| v.to_str().ok())
                    .collect();
                let Some(url) = self.request_url(req) else {
                    tracing::error!(
                        "a DPoP-bound RPT arrived, but this guard has no public URL (`with_public_url`) to check proofs against"
                    );
                    return refuse(
                        "invalid_token",
                        "this resource server does not accept DPoP-bound RPTs".into(),
                    );
                };
                match self.dpop.verify(
                    &proofs,
                    req.method().as_str(),
                    &url,
                    token,
                    self.verifier.now(),
                ) {
                    Ok(jkt) if subtle::ConstantTimeEq::ct_eq(jkt.as_bytes(), bound.as_bytes()).into() => Ok(()),
                    Ok(_) => refuse(
                        "invalid_token",
                        "the RPT is bound to another key than the DPoP proof's".into(),
                    ),
                    Err(e) => refuse("invalid_dpop_proof", e.0),
                }
            }
        }
    }

    /// The `realm` of the challenges. Fails on control or non-ASCII characters.
    pub fn with_realm(mut self, realm: impl Into<String>) -> Result<Self, Error> {
        let realm = realm.into();
        // Validate once, so challenges built later cannot fail on it.
        UmaChallenge::new(
            Some(realm.clone()),
            self.client.issuer(),
            crate::secret::PermissionTicket::new("x"),
        )
        .to_header_value()?;
        self.realm = Some(realm);
        Ok(self)
    }

    /// How the [`Authorized`] extractor learns what a request needs. The function gets the
    /// request (cheap to clone) and may do async work, such as a database lookup of the
    /// resource; an error it returns is the response (for example a 404).
    pub fn with_resolver<F, Fut>(mut self, resolver: F) -> Self
    where
        F: Fn(HttpRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Requirement, actix_web::Error>> + 'static,
    {
        self.resolver = Some(Arc::new(move |req| Box::pin(resolver(req))));
        self
    }

    pub fn client(&self) -> &UmaClient {
        &self.client
    }

    pub fn verifier(&self) -> &RptVerifier {
        &self.verifier
    }

    pub fn store(&self) -> &Arc<dyn PatStore> {
        &self.store
    }

    /// Resolve the request's requirement with the configured resolver.
    pub async fn resolve(&self, req: &HttpRequest) -> Result<Requirement, actix_web::Error> {
        match &self.resolver {
            Some(r) => r(req.clone()).await,
            None => Err(actix_web::error::ErrorInternalServerError(
                "no requirement resolver configured",
            )),
        }
    }

    /// Authorize a request for `requirement`: the verified RPT when it covers every required
    /// scope, otherwise the UMA answer to send (see the module docs).
    pub async fn authorize(
        &self,
        req: &HttpRequest,
        requirement: &Requirement,
    ) -> Result<Rpt, UmaResponseError> {
        let token = bearer_token(req)?;
        // whether the RPT is valid and holds a permission for the resource, only too narrow
        let mut upgradable = false;
        if let Some((token, dpop_scheme)) = token {
            match self.verify(&token, requirement).await {
                Ok(rpt) => {
                    self.check_binding(req, &token, dpop_scheme, &rpt)?;
                    let now = self.verifier.now();
                    if rpt.covers_all(&requirement.resource_id, &requirement.scopes, now) {
                        if rpt.break_the_glass(&requirement.resource_id, now) {
                            // HEART-FHIR-07: emergency access is always on the record, whatever
                            // the application does with it. Never the token itself.
                            tracing::warn!(
                                target: "audit",
                                event = "break_the_glass_access",
                                owner = %requirement.owner,
                                resource_id = %requirement.resource_id,
                                method = %req.method(),
                                path = %req.path(),
                                subject = rpt.subject.as_deref().unwrap_or("-"),
                                client_id = rpt.client_id.as_deref().unwrap_or("-"),
                                rpt_jti = rpt.jti.as_deref().unwrap_or("-"),
                            );
                        }
                        return Ok(rpt);
                    }
                    upgradable = rpt.permission(&requirement.resource_id, now).is_some();
                }
                Err(e) => {
                    tracing::debug!(error = %e, "rpt refused");
                }
            }
        }
        let challenge = self.ticket_challenge(requirement).await?;
        Err(if upgradable {
            UmaResponseError::InsufficientPermission(challenge)
        } else {
            UmaResponseError::Unauthorized(challenge)
        })
    }

    async fn verify(&self, token: &str, requirement: &Requirement) -> Result<Rpt, Error> {
        match requirement.verification {
            Verification::Local => self.verifier.verify_local(token).await,
            Verification::Introspection => {
                let pat = self
                    .client
                    .pat_for(self.store.as_ref(), &requirement.owner)
                    .await?;
                self.verifier.verify_introspection(&pat, token).await
            }
        }
    }

    /// Ask for a ticket for the requirement and build the challenge (UMA-FED-41, -42), or the
    /// answer for why there is none (see the module docs).
    async fn ticket_challenge(
        &self,
        requirement: &Requirement,
    ) -> Result<UmaChallenge, UmaResponseError> {
        let permission = Permission::new(
            requirement.resource_id.clone(),
            requirement.scopes.iter().cloned(),
        );
        let owner = requirement.owner.as_str();
        let resource_id = requirement.resource_id.as_str();
        let ticket = self
            .client
            .request_permission_for(self.store.as_ref(), owner, &permission)
            .await;
        match ticket {
            Ok(ticket) => {
                let challenge = UmaChallenge::new(self.realm.clone(), self.client.issuer(), ticket);
                match challenge.to_header_value() {
                    Ok(_) => Ok(challenge),
                    Err(e) => {
                        tracing::error!(
                            error = %e,
                            owner,
                            resource_id,
                            "the authorization server issued a ticket that cannot be sent in a challenge"
                        );
                        Err(UmaResponseError::Internal(e))
                    }
                }
            }
            Err(e @ (Error::NoPat(_) | Error::ReauthorizationRequired(_))) => {
                tracing::warn!(
                    error = %e,
                    owner,
                    resource_id,
                    "the resource owner has not connected this resource server to the authorization server"
                );
                Err(UmaResponseError::ProtectionUnavailable)
            }
            Err(e) if e.is_unreachable() => {
                tracing::warn!(
                    error = %e,
                    owner,
                    resource_id,
                    "no permission ticket: the authorization server is unreachable"
                );
                Err(UmaResponseError::AuthorizationServerUnreachable)
            }
            Err(e) => {
                tracing::error!(
                    error = %e,
                    error_code = e.protocol_error().unwrap_or("none"),
                    status = e.status(),
                    owner,
                    resource_id,
                    "no permission ticket"
                );
                Err(UmaResponseError::Internal(e))
            }
        }
    }
}

/// The RPT of `Authorization: Bearer` (RFC 6750 §2.1) or `Authorization: DPoP` (RFC 9449 §7.1;
/// `true`). `Ok(None)` when there is none or the header is not a well-formed credential (the
/// client gets a challenge); an error for a token in the query (RFC 6750 §2.3 is not supported)
/// or repeated `Authorization` headers.
fn bearer_token(req: &HttpRequest) -> Result<Option<(String, bool)>, UmaResponseError> {
    if url::form_urlencoded::parse(req.query_string().as_bytes()).any(|(k, _)| k == "access_token")
    {
        return Err(UmaResponseError::InvalidRequest(
            "access tokens are accepted only in the authorization header",
        ));
    }
    let mut values = req.headers().get_all(AUTHORIZATION);
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(UmaResponseError::InvalidRequest(
            "repeated authorization header",
        ));
    }
    let Ok(value) = value.to_str() else {
        return Ok(None);
    };
    let Some((scheme, token)) = value.split_once(' ') else {
        return Ok(None);
    };
    let token = token.trim_start_matches(' ');
    let is_token68 = !token.is_empty()
        && token.trim_end_matches('=').bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        });
    let dpop = scheme.eq_ignore_ascii_case("dpop");
    if (dpop || scheme.eq_ignore_ascii_case("bearer")) && is_token68 {
        Ok(Some((token.to_string(), dpop)))
    } else {
        Ok(None)
    }
}

/// The answer when a request is not authorized (the table in the module docs).
#[derive(Debug)]
#[non_exhaustive]
pub enum UmaResponseError {
    /// 401 with the UMA challenge: no RPT, one that does not verify, or one without any
    /// permission for the resource (UMA-GRANT-61).
    Unauthorized(UmaChallenge),
    /// 403 with the UMA challenge: a valid RPT whose permission for the resource lacks a
    /// required scope; the fresh ticket lets the client ask for an upgraded RPT. A deliberate
    /// departure from UMA-GRANT-61, which asks for 401 (see the module docs).
    InsufficientPermission(UmaChallenge),
    /// 403 with `Warning: 199 - "UMA Authorization Server Unreachable"` and no challenge: the
    /// authorization server could not be reached or is failing (transport error, timeout, 5xx,
    /// 429), so no ticket could be obtained (UMA-FED-43).
    AuthorizationServerUnreachable,
    /// 403 with no challenge and no `Warning`, body `{"error": "resource_unavailable", …}`: the
    /// resource owner has not connected this resource server to the authorization server (no
    /// PAT stored, or the PAT was refused and could not be renewed, so it was removed). Only
    /// the owner can fix it, by connecting the resource server again.
    ProtectionUnavailable,
    /// 500 with a generic body: no ticket for a reason on the resource server's side, such as
    /// a permission request refused with `invalid_resource_id` or `invalid_scope` (a stale
    /// resource mapping), a failing [`PatStore`], or an answer outside the protocol. The cause
    /// is kept here and logged, never sent.
    Internal(Error),
    /// 400 `invalid_request`: a token in the query, or repeated `Authorization` headers.
    InvalidRequest(&'static str),
    /// 401 with `WWW-Authenticate: DPoP algs=…, error=…`: a DPoP-bound RPT without a valid proof
    /// from its key, a bound RPT sent as `Bearer`, or an unbound one sent as `DPoP` (RFC 9449 §7).
    Dpop {
        error: &'static str,
        description: String,
    },
}

/// The `error` of [`UmaResponseError::ProtectionUnavailable`].
const RESOURCE_UNAVAILABLE: &str = "resource_unavailable";
const RESOURCE_UNAVAILABLE_DESCRIPTION: &str =
    "the resource owner has not connected this resource server to the authorization server";

impl std::fmt::Display for UmaResponseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UmaResponseError::Unauthorized(_) => f.write_str("authorization required"),
            UmaResponseError::InsufficientPermission(_) => f.write_str("insufficient permission"),
            UmaResponseError::AuthorizationServerUnreachable => {
                f.write_str("authorization server unreachable")
            }
            UmaResponseError::ProtectionUnavailable => {
                f.write_str("the resource owner has not connected this resource server")
            }
            UmaResponseError::Internal(_) => f.write_str("internal error"),
            UmaResponseError::InvalidRequest(d) => write!(f, "invalid request: {d}"),
            UmaResponseError::Dpop { error, description } => write!(f, "{error}: {description}"),
        }
    }
}

impl std::error::Error for UmaResponseError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            UmaResponseError::Internal(e) => Some(e),
            _ => None,
        }
    }
}

impl UmaResponseError {
    /// The challenge carried, if any.
    pub fn challenge(&self) -> Option<&UmaChallenge> {
        match self {
            UmaResponseError::Unauthorized(c) | UmaResponseError::InsufficientPermission(c) => {
                Some(c)
            }
            _ => None,
        }
    }
}

impl ResponseError for UmaResponseError {
    fn status_code(&self) -> StatusCode {
        match self {
            UmaResponseError::Unauthorized(_) | UmaResponseError::Dpop { .. } => {
                StatusCode::UNAUTHORIZED
            }
            UmaResponseError::InsufficientPermission(_)
            | UmaResponseError::AuthorizationServerUnreachable
            | UmaResponseError::ProtectionUnavailable => StatusCode::FORBIDDEN,
            UmaResponseError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            UmaResponseError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((CACHE_CONTROL, "no-store"));
        match self {
            UmaResponseError::Unauthorized(c) | UmaResponseError::InsufficientPermission(c) => {
                match c.to_header_value() {
                    Ok(v) => response.insert_header((WWW_AUTHENTICATE, v)).finish(),
                    // validated when built; should it still fail, answer as for a bad ticket
                    Err(e) => UmaResponseError::Internal(e).error_response(),
                }
            }
            UmaResponseError::AuthorizationServerUnreachable => response
                .insert_header((WARNING, WARNING_AS_UNREACHABLE))
                .finish(),
            UmaResponseError::ProtectionUnavailable => response.json(serde_json::json!({
                "error": RESOURCE_UNAVAILABLE,
                "error_description": RESOURCE_UNAVAILABLE_DESCRIPTION,
            })),
            UmaResponseError::Internal(_) => response.json(serde_json::json!({
                "error": "server_error",
                "error_description": "internal error",
            })),
            UmaResponseError::InvalidRequest(d) => response.json(serde_json::json!({
                "error": "invalid_request",
                "error_description": d,
            })),
            UmaResponseError::Dpop { error, description } => {
                let quoted: String = description
                    .chars()
                    .filter(|c| *c != '"' && *c != '\\' && !c.is_control())
                    .collect();
                response
                    .insert_header((
                        WWW_AUTHENTICATE,
                        format!(
                            "DPoP algs=\"{}\", error=\"{error}\", error_description=\"{quoted}\"",
                            crate::dpop::ALGS.join(" ")
                        ),
                    ))
                    .json(serde_json::json!({
                        "error": error,
                        "error_description": description,
                    }))
            }
        }
    }
}

/// Extractor for protected handlers: the verified RPT and the requirement it satisfied.
/// Needs `web::Data<UmaGuard>` with a resolver in the app.
#[derive(Clone, Debug)]
pub struct Authorized {
    pub rpt: Rpt,
    pub requirement: Requirement,
}

impl FromRequest for Authorized {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let guard = req
                .app_data::<web::Data<UmaGuard>>()
                .cloned()
                .ok_or_else(|| {
                    actix_web::error::ErrorInternalServerError("uma guard is not configured")
                })?;
            let requirement = guard.resolve(&req).await?;
            let rpt = guard.authorize(&req, &requirement).await?;
            Ok(Authorized { rpt, requirement })
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::config::ClientConfig;
    use crate::pat::{MemoryPatStore, Pat};
    use crate::secret::{AccessToken, ClientSecret, RefreshToken};
    use crate::test_support::{CLIENT_ID, CLIENT_SECRET, Counters, FakeAs, OWNER, now};
    use actix_web::test::{TestRequest, call_service, init_service, read_body};
    use actix_web::{App, HttpResponse as Resp};
    use serde_json::{Value, json};
    use std::time::Duration;

    async fn guard_for(issuer: &str, pat: Option<Pat>) -> UmaGuard {
        let store = Arc::new(MemoryPatStore::new());
        if let Some(pat) = pat {
            store.save(&pat).await.unwrap();
        }
        guard_with(issuer, store, Duration::from_secs(10))
    }

    fn guard_with(issuer: &str, store: Arc<MemoryPatStore>, timeout: Duration) -> UmaGuard {
        let client = UmaClient::new(
            ClientConfig::new(
                issuer,
                CLIENT_ID,
                ClientSecret::new(CLIENT_SECRET),
                "https://rs.example/cb",
            )
            .with_timeout(timeout),
        )
        .unwrap();
        let verifier = RptVerifier::new(&client);
        UmaGuard::new(client, verifier, store)
            .with_realm("photos")
            .unwrap()
            .with_resolver(|req: HttpRequest| async move {
                let id = req.match_info().get("id").unwrap_or_default().to_string();
                let verification = if req.query_string().contains("introspect") {
                    Verification::Introspection
                } else {
                    Verification::Local
                };
                let scopes = if req.method() == actix_web::http::Method::DELETE {
                    vec!["view", "delete"]
                } else {
                    vec!["view"]
                };
                Ok(Requirement::new(OWNER, id, scopes).with_verification(verification))
            })
    }

    fn pat(fake: &FakeAs) -> Pat {
        Pat {
            owner: OWNER.into(),
            access_token: AccessToken::new(fake.mint_pat(OWNER, now() + 600)),
            refresh_token: None,
            expires_at: now() + 600,
            scope: "uma_protection".into(),
            dpop_jkt: None,
        }
    }

    async fn photo(auth: Authorized) -> Resp {
        Resp::Ok().json(json!({
            "resource": auth.requirement.resource_id,
            "sub": auth.rpt.subject,
        }))
    }

    macro_rules! app {
        ($guard:expr) => {
            init_service(
                App::new()
                    .app_data(web::Data::new($guard))
                    .route("/photos/{id}", web::get().to(photo))
                    .route("/photos/{id}", web::delete().to(photo)),
            )
            .await
        };
    }

    fn header(resp: &actix_web::dev::ServiceResponse, name: &str) -> Option<String> {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    }

    /// UMA-FED-41, UMA-FED-42: no RPT → permission request → 401 with the UMA challenge.
    #[actix_web::test]
    async fn no_rpt_gets_a_401_uma_challenge_with_a_ticket() {
        let fake = FakeAs::start().await;
        let app = app!(guard_for(&fake.issuer, Some(pat(&fake))).await);
        let resp = call_service(&app, TestRequest::get().uri("/photos/album-1").to_request()).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        let c = UmaChallenge::parse(&header(&resp, "www-authenticate").unwrap()).unwrap();
        assert_eq!(c.as_uri, fake.issuer, "as_uri is the issuer exactly");
        assert_eq!(c.realm.as_deref(), Some("photos"));
        assert!(c.ticket.expose_secret().starts_with("ticket-"));
        assert_eq!(
            fake.with_state(|s| s.last_permission_request.clone())
                .unwrap(),
            json!({"resource_id": "album-1", "resource_scopes": ["view"]})
        );
        assert_eq!(Counters::get(&fake.counters.permission), 1);
        fake.stop().await;
    }

    #[actix_web::test]
    async fn a_covering_rpt_reaches_the_handler() {
        let fake = FakeAs::start().await;
        let app = app!(guard_for(&fake.issuer, Some(pat(&fake))).await);
        let rpt = fake.mint_rpt(
            "RS256",
            json!([{"resource_id": "album-1", "resource_scopes": ["view", "delete"]}]),
        );
        for method in [TestRequest::get(), TestRequest::delete()] {
            let req = method
                .uri("/photos/album-1")
                .insert_header(("Authorization", format!("Bearer {rpt}")))
                .to_request();
            let resp = call_service(&app, req).await;
            assert_eq!(resp.status(), StatusCode::OK);
            let body: Value = serde_json::from_slice(&read_body(resp).await).unwrap();
            assert_eq!(body, json!({"resource": "album-1", "sub": "bob"}));
        }
        assert_eq!(Counters::get(&fake.counters.permission), 0);
        fake.stop().await;
    }

    /// A `Write` into a shared buffer, for reading what was logged.
    #[derive(Clone, Default)]
    struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// HEART-FHIR-07: an access made with a break-the-glass (`btg`) permission is logged as an
    /// `audit` event naming the owner, resource, request and requesting party (never the token);
    /// an ordinary access is not.
    #[actix_web::test]
    async fn break_the_glass_access_is_audited() {
        let fake = FakeAs::start().await;
        let app = app!(guard_for(&fake.issuer, Some(pat(&fake))).await);
        let log = Captured::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_writer(move || writer.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let ordinary = fake.mint_rpt(
            "RS256",
            json!([{"resource_id": "album-1", "resource_scopes": ["view"]}]),
        );
        let emergency = fake.mint_rpt(
            "RS256",
            json!([{"resource_id": "album-2", "resource_scopes": ["view", "btg"]}]),
        );
        for (id, rpt) in [("album-1", &ordinary), ("album-2", &emergency)] {
            let req = TestRequest::get()
                .uri(&format!("/photos/{id}"))
                .insert_header(("Authorization", format!("Bearer {rpt}")))
                .to_request();
            assert_eq!(call_service(&app, req).await.status(), StatusCode::OK);
        }
        let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
        let events: Vec<Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["fields"]["event"] == "break_the_glass_access")
            .collect();
        assert_eq!(events.len(), 1, "one emergency access, one event: {text}");
        let f = &events[0]["fields"];
        assert_eq!(events[0]["target"], "audit");
        assert_eq!(events[0]["level"], "WARN");
        assert_eq!(f["owner"], OWNER);
        assert_eq!(f["resource_id"], "album-2");
        assert_eq!(f["method"], "GET");
        assert_eq!(f["path"], "/photos/album-2");
        assert_eq!(f["subject"], "bob");
        assert_eq!(f["client_id"], "client-app");
        assert!(!text.contains(&emergency), "the token is never logged");
        fake.stop().await;
    }

    /// A valid RPT without the needed scope → 403 with a fresh ticket to upgrade. A deliberate
    /// departure from UMA-GRANT-61, which asks for 401 (see the module docs); the challenge is
    /// the same as for a 401.
    #[actix_web::test]
    async fn an_insufficient_rpt_gets_a_403_with_a_challenge() {
        let fake = FakeAs::start().await;
        let app = app!(guard_for(&fake.issuer, Some(pat(&fake))).await);
        let rpt = fake.mint_rpt(
            "ES256",
            json!([{"resource_id": "album-1", "resource_scopes": ["view"]},
                   {"resource_id": "album-2", "resource_scopes": ["view", "delete"]}]),
        );
        let req = TestRequest::delete()
            .uri("/photos/album-1")
            .insert_header(("Authorization", format!("bearer {rpt}")))
            .to_request();
        let resp = call_service(&app, req).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        let c = UmaChallenge::parse(&header(&resp, "www-authenticate").unwrap()).unwrap();
        assert_eq!(c.as_uri, fake.issuer);
        assert_eq!(
            fake.with_state(|s| s.last_permission_request.clone())
                .unwrap(),
            json!({"resource_id": "album-1", "resource_scopes": ["view", "delete"]})
        );
        fake.stop().await;
    }

    /// UMA-GRANT-61: a valid RPT with nothing for this resource is answered like no RPT.
    #[actix_web::test]
    async fn an_rpt_for_another_resource_gets_a_401_challenge() {
        let fake = FakeAs::start().await;
        let app = app!(guard_for(&fake.issuer, Some(pat(&fake))).await);
        let rpt = fake.mint_rpt(
            "RS256",
            json!([{"resource_id": "album-2", "resource_scopes": ["view", "delete"]}]),
        );
        let req = TestRequest::get()
            .uri("/photos/album-1")
            .insert_header(("Authorization", format!("Bearer {rpt}")))
            .to_request();
        let resp = call_service(&app, req).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert!(UmaChallenge::parse(&header(&resp, "www-authenticate").unwrap()).is_ok());
        fake.stop().await;
    }

    #[actix_web::test]
    async fn invalid_rpts_get_a_401_challenge() {
        let fake = FakeAs::start().await;
        let app = app!(guard_for(&fake.issuer, Some(pat(&fake))).await);
        let expired = fake.keys.sign(
            "RS256",
            "at+jwt",
            &json!({"iss": fake.issuer, "aud": CLIENT_ID, "exp": now() - 100,
                "permissions": [{"resource_id": "album-1", "resource_scopes": ["view"]}]}),
        );
        let wrong_aud = fake.keys.sign(
            "RS256",
            "at+jwt",
            &json!({"iss": fake.issuer, "aud": "other-rs", "exp": now() + 100,
                "permissions": [{"resource_id": "album-1", "resource_scopes": ["view"]}]}),
        );
        for auth in [
            format!("Bearer {expired}"),
            format!("Bearer {wrong_aud}"),
            "Bearer not-a-jwt".to_string(),
            "Bearer".to_string(),
            "Basic dXNlcjpwYXNz".to_string(),
            "Bearer a b".to_string(),
        ] {
            let req = TestRequest::get()
                .uri("/photos/album-1")
                .insert_header(("Authorization", auth.clone()))
                .to_request();
            let resp = call_service(&app, req).await;
            assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{auth}");
            assert!(
                header(&resp, "www-authenticate")
                    .unwrap()
                    .starts_with("UMA ")
            );
        }
        fake.stop().await;
    }

    /// RFC 6750 §2.3 is not supported: a token in the query is refused.
    #[actix_web::test]
    async fn a_token_in_the_query_is_refused() {
        let fake = FakeAs::start().await;
        let app = app!(guard_for(&fake.issuer, Some(pat(&fake))).await);
        let rpt = fake.mint_rpt(
            "RS256",
            json!([{"resource_id": "a", "resource_scopes": ["view"]}]),
        );
        let req = TestRequest::get()
            .uri(&format!("/photos/a?access_token={rpt}"))
            .to_request();
        let resp = call_service(&app, req).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        let body: Value = serde_json::from_slice(&read_body(resp).await).unwrap();
        assert_eq!(body["error"], "invalid_request");
        let req = TestRequest::get()
            .uri("/photos/a")
            .append_header(("Authorization", format!("Bearer {rpt}")))
            .append_header(("Authorization", format!("Bearer {rpt}")))
            .to_request();
        assert_eq!(
            call_service(&app, req).await.status(),
            StatusCode::BAD_REQUEST
        );
        fake.stop().await;
    }

    #[actix_web::test]
    async fn introspection_routes_use_the_owners_pat() {
        let fake = FakeAs::start().await;
        let app = app!(guard_for(&fake.issuer, Some(pat(&fake))).await);
        let issuer = fake.issuer.clone();
        fake.with_state(|s| {
            s.introspection.insert(
                "opaque".into(),
                json!({"active": true, "iss": issuer, "aud": CLIENT_ID, "sub": "bob", "exp": now() + 60,
                    "permissions": [{"resource_id": "album-1", "resource_scopes": ["view"]}]}),
            )
        });
        let req = TestRequest::get()
            .uri("/photos/album-1?introspect")
            .insert_header(("Authorization", "Bearer opaque"))
            .to_request();
        assert_eq!(call_service(&app, req).await.status(), StatusCode::OK);
        assert_eq!(Counters::get(&fake.counters.introspection), 1);
        fake.stop().await;
    }

    /// UMA-FED-43: no ticket → 403 with the Warning header and no UMA challenge.
    #[actix_web::test]
    async fn an_unreachable_as_gets_a_403_with_the_warning() {
        let fake = FakeAs::start().await;
        let issuer = fake.issuer.clone();
        let pat = pat(&fake);
        fake.stop().await;
        let app = app!(guard_for(&issuer, Some(pat)).await);
        let resp = call_service(&app, TestRequest::get().uri("/photos/album-1").to_request()).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            header(&resp, "warning").as_deref(),
            Some(r#"199 - "UMA Authorization Server Unreachable""#)
        );
        assert!(header(&resp, "www-authenticate").is_none());
    }

    /// UMA-FED-43: a timeout is unreachability too.
    #[actix_web::test]
    async fn an_as_that_does_not_answer_gets_a_403_with_the_warning() {
        // accepts connections (the kernel completes the handshake) and never answers
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let issuer = format!("http://{}", silent.local_addr().unwrap());
        let store = Arc::new(MemoryPatStore::new());
        store
            .save(&Pat {
                owner: OWNER.into(),
                access_token: AccessToken::new("pat"),
                refresh_token: None,
                expires_at: now() + 600,
                scope: "uma_protection".into(),
                dpop_jkt: None,
            })
            .await
            .unwrap();
        let app = app!(guard_with(&issuer, store, Duration::from_millis(300)));
        let resp = call_service(&app, TestRequest::get().uri("/photos/album-1").to_request()).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        assert!(header(&resp, "warning").is_some());
        assert!(header(&resp, "www-authenticate").is_none());
    }

    /// UMA-FED-43: a failing (5xx) or overloaded (429) permission endpoint is unreachability.
    #[actix_web::test]
    async fn a_failing_permission_endpoint_gets_the_warning() {
        let fake = FakeAs::start().await;
        for (status, code) in [
            (500, "server_error"),
            (503, "temporarily_unavailable"),
            (429, "slow_down"),
        ] {
            fake.with_state(|s| s.permission_failure = Some((status, json!({"error": code}))));
            let app = app!(guard_for(&fake.issuer, Some(pat(&fake))).await);
            let resp =
                call_service(&app, TestRequest::get().uri("/photos/album-1").to_request()).await;
            assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{status}");
            assert_eq!(
                header(&resp, "warning").as_deref(),
                Some(WARNING_AS_UNREACHABLE),
                "{status}"
            );
            assert!(header(&resp, "www-authenticate").is_none());
        }
        fake.stop().await;
    }

    async fn assert_resource_unavailable(resp: actix_web::dev::ServiceResponse) {
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        assert!(header(&resp, "warning").is_none(), "not an outage");
        assert!(header(&resp, "www-authenticate").is_none(), "no ticket");
        let body: Value = serde_json::from_slice(&read_body(resp).await).unwrap();
        assert_eq!(
            body,
            json!({
                "error": "resource_unavailable",
                "error_description": "the resource owner has not connected this resource server to the authorization server",
            })
        );
    }

    /// An owner who never connected the resource server: 403 `resource_unavailable`, no
    /// request to the authorization server.
    #[actix_web::test]
    async fn no_pat_for_the_owner_gets_a_403_resource_unavailable() {
        let fake = FakeAs::start().await;
        let app = app!(guard_for(&fake.issuer, None).await);
        let resp = call_service(&app, TestRequest::get().uri("/photos/album-1").to_request()).await;
        assert_resource_unavailable(resp).await;
        assert_eq!(Counters::get(&fake.counters.permission), 0);
        fake.stop().await;
    }

    /// The owner disconnected the resource server: the permission endpoint answers 401
    /// `invalid_token` (RFC 6750 §3.1) and the refresh token is refused. The PAT is removed, so
    /// the owner's next connection starts clean, and the client gets 403
    /// `resource_unavailable`, not the unreachable answer.
    #[actix_web::test]
    async fn a_disconnected_owner_gets_a_403_resource_unavailable_and_the_pat_is_removed() {
        let fake = FakeAs::start().await;
        for refresh in [None, Some("rt-revoked")] {
            let mut pat = pat(&fake);
            pat.refresh_token = refresh.map(RefreshToken::new);
            let token = pat.access_token.expose_secret().to_string();
            fake.with_state(|s| s.revoked_pats.insert(token));
            let store = Arc::new(MemoryPatStore::new());
            store.save(&pat).await.unwrap();
            let app = app!(guard_with(
                &fake.issuer,
                store.clone(),
                Duration::from_secs(10)
            ));
            let before = Counters::get(&fake.counters.permission);
            let resp =
                call_service(&app, TestRequest::get().uri("/photos/album-1").to_request()).await;
            assert_resource_unavailable(resp).await;
            assert!(store.load(OWNER).await.unwrap().is_none(), "{refresh:?}");
            assert_eq!(Counters::get(&fake.counters.permission), before + 1);
            // the next request does not ask the authorization server again
            let resp =
                call_service(&app, TestRequest::get().uri("/photos/album-1").to_request()).await;
            assert_resource_unavailable(resp).await;
            assert_eq!(Counters::get(&fake.counters.permission), before + 1);
        }
        assert_eq!(
            Counters::get(&fake.counters.refresh),
            1,
            "one refresh attempted"
        );
        fake.stop().await;
    }

    /// A PAT refused while its refresh token still works (revoked alone, or expired early by
    /// the authorization server's clock) is refreshed once and the client gets its challenge.
    #[actix_web::test]
    async fn a_refused_pat_with_a_working_refresh_token_is_renewed() {
        let fake = FakeAs::start().await;
        let mut pat = pat(&fake);
        pat.refresh_token = Some(RefreshToken::new("rt-ok"));
        let token = pat.access_token.expose_secret().to_string();
        fake.with_state(|s| {
            s.refresh_tokens.insert("rt-ok".into(), OWNER.into());
            s.revoked_pats.insert(token.clone());
        });
        let store = Arc::new(MemoryPatStore::new());
        store.save(&pat).await.unwrap();
        let app = app!(guard_with(
            &fake.issuer,
            store.clone(),
            Duration::from_secs(10)
        ));
        let resp = call_service(&app, TestRequest::get().uri("/photos/album-1").to_request()).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert!(UmaChallenge::parse(&header(&resp, "www-authenticate").unwrap()).is_ok());
        let saved = store.load(OWNER).await.unwrap().unwrap();
        assert_ne!(saved.access_token.expose_secret(), token);
        assert_ne!(saved.refresh_token.unwrap().expose_secret(), "rt-ok");
        assert_eq!(Counters::get(&fake.counters.refresh), 1);
        assert_eq!(Counters::get(&fake.counters.permission), 2);
        fake.stop().await;
    }

    /// A permission request refused for the resource server's own mistake (a stale resource id
    /// or scope) is a 500 with a generic body: neither the client nor the owner can fix it.
    #[actix_web::test]
    async fn a_refused_permission_request_gets_a_500() {
        let fake = FakeAs::start().await;
        for code in ["invalid_resource_id", "invalid_scope"] {
            fake.with_state(|s| {
                s.permission_failure = Some((
                    400,
                    json!({"error": code, "error_description": "secret detail"}),
                ))
            });
            let store = Arc::new(MemoryPatStore::new());
            store.save(&pat(&fake)).await.unwrap();
            let app = app!(guard_with(
                &fake.issuer,
                store.clone(),
                Duration::from_secs(10)
            ));
            let resp =
                call_service(&app, TestRequest::get().uri("/photos/album-1").to_request()).await;
            assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR, "{code}");
            assert!(header(&resp, "warning").is_none());
            assert!(header(&resp, "www-authenticate").is_none());
            let body = read_body(resp).await;
            assert!(!String::from_utf8_lossy(&body).contains(code), "{code}");
            let body: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(body["error"], "server_error");
            assert!(
                store.load(OWNER).await.unwrap().is_some(),
                "the pat is kept"
            );
        }
        let guard = guard_for(&fake.issuer, Some(pat(&fake))).await;
        let req = TestRequest::get().uri("/x").to_http_request();
        let e = guard
            .authorize(&req, &Requirement::new(OWNER, "album-1", ["view"]))
            .await
            .unwrap_err();
        let UmaResponseError::Internal(cause) = &e else {
            panic!("{e:?}")
        };
        assert_eq!(cause.protocol_error(), Some("invalid_scope"));
        assert!(std::error::Error::source(&e).is_some());
        fake.stop().await;
    }

    /// The status mapping of every answer, in one place.
    #[test]
    fn answers_map_to_statuses() {
        let challenge = || {
            UmaChallenge::new(
                None,
                "https://as.example",
                crate::secret::PermissionTicket::new("t"),
            )
        };
        let cases = [
            (
                UmaResponseError::Unauthorized(challenge()),
                401,
                true,
                false,
            ),
            (
                UmaResponseError::InsufficientPermission(challenge()),
                403,
                true,
                false,
            ),
            (
                UmaResponseError::AuthorizationServerUnreachable,
                403,
                false,
                true,
            ),
            (UmaResponseError::ProtectionUnavailable, 403, false, false),
            (UmaResponseError::Internal(Error::Random), 500, false, false),
            (UmaResponseError::InvalidRequest("x"), 400, false, false),
        ];
        for (e, status, has_challenge, warning) in cases {
            let resp = e.error_response();
            assert_eq!(resp.status().as_u16(), status, "{e}");
            assert_eq!(e.challenge().is_some(), has_challenge, "{e}");
            assert_eq!(
                resp.headers().contains_key(WWW_AUTHENTICATE),
                has_challenge,
                "{e}"
            );
            assert_eq!(resp.headers().contains_key(WARNING), warning, "{e}");
            assert_eq!(resp.headers().get(CACHE_CONTROL).unwrap(), "no-store");
            let text = e.to_string();
            assert!(text.starts_with(|c: char| c.is_lowercase()) && !text.ends_with('.'));
        }
    }

    #[actix_web::test]
    async fn the_function_form_gives_the_same_answers() {
        let fake = FakeAs::start().await;
        let guard = guard_for(&fake.issuer, Some(pat(&fake))).await;
        let req = TestRequest::get().uri("/x").to_http_request();
        let requirement = Requirement::new(OWNER, "album-1", ["view"]);
        let e = guard.authorize(&req, &requirement).await.unwrap_err();
        assert_eq!(e.status_code(), StatusCode::UNAUTHORIZED);
        assert!(e.challenge().is_some());
        let resp = e.error_response();
        assert!(resp.headers().contains_key(WWW_AUTHENTICATE));
        assert_eq!(e.to_string(), "authorization required");
        fake.stop().await;
    }

    #[test]
    fn realm_is_validated() {
        let client = UmaClient::new(ClientConfig::new(
            "https://as.example",
            CLIENT_ID,
            ClientSecret::new(CLIENT_SECRET),
            "https://rs.example/cb",
        ))
        .unwrap();
        let v = RptVerifier::new(&client);
        let g = UmaGuard::new(client, v, Arc::new(MemoryPatStore::new()));
        assert!(g.with_realm("bad\r\nrealm").is_err());
    }
}

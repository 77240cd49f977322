//! The authorization endpoint (RFC 6749 §4.1.1–4.1.2, RFC 7636, RFC 9700 §2.1 and §4.11, RFC 9207,
//! OpenID Connect Core §3.1.2): `response_type=code` only, exact redirect URIs, PKCE with S256,
//! `state` round trip, `iss` in every authorization response, `nonce`, `prompt`, `max_age`.
//!
//! Errors before the redirect URI is known to be the client's are never redirected (a 400 page).
//! Errors in a request whose client and redirect URI are valid are shown as a 400 page too, before
//! the user has authenticated (RFC 9700 §4.11.2: no automatic redirect of an unauthenticated user,
//! so an invalid scope cannot make the server an open redirector); only outcomes the user caused
//! (`access_denied`) or asked for (`prompt=none`: `login_required`, `consent_required`) are
//! redirected, always with `state` and `iss`.

use super::Core;
use super::clients::Client;
use super::error::{ErrorCode, OAuthError};
use super::params::Params;
use super::scope;
use crate::secrets::{Secret, SecretKind, new_id};
use crate::store::grants::{self, CodeRow};
use crate::store::sessions::SessionRow;
use crate::store::users::UserRow;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Prompt {
    pub none: bool,
    pub login: bool,
    pub consent: bool,
}

/// A validated authorization request.
#[derive(Clone, Debug)]
pub struct AuthRequest {
    pub client: Client,
    pub redirect_uri: String,
    pub redirect_uri_given: bool,
    pub scopes: Vec<String>,
    /// UserInfo claims asked for one by one with the `claims` parameter (OpenID Connect Core
    /// §5.5), beyond those of the scopes.
    pub claims: Vec<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    /// RFC 9449 §10: the thumbprint of the DPoP key the code must be redeemed with.
    pub dpop_jkt: Option<String>,
    /// RFC 8707: where the client will use its tokens (shown on the consent page; the tokens'
    /// audience).
    pub resources: Vec<String>,
    pub prompt: Prompt,
    pub max_age: Option<i64>,
    /// The request as received, carried through the login and consent forms.
    pub raw: Params,
}

/// What the browser sees next.
#[derive(Debug)]
pub enum Next {
    /// Show the login form.
    Login,
    /// Show the consent page for these scopes.
    Consent(UserRow),
    /// Redirect (303) to the client.
    Redirect(String),
}

/// BCP-09 (RFC 9700 §2.1.1): a client that sends a `code_challenge` it has used before is not
/// using PKCE as it must (a fresh verifier per request), and a constant challenge protects
/// nothing. Detected against the client's codes still on record (their lifetime plus
/// housekeeping's delay), across instances; a unique index settles races.
const CHALLENGE_REUSED: &str = "this `code_challenge` was used before: PKCE needs a new code_verifier for every authorization request (RFC 9700 §2.1.1)";

fn page_err(code: ErrorCode, d: impl Into<String>) -> OAuthError {
    OAuthError::new(code, d)
}

/// Validate an authorization request (with its request object's members in force,
/// [`super::request_object`]). Every error is for a 400 page, never a redirect.
pub async fn validate(core: &Core, raw: Params, now: i64) -> Result<AuthRequest, OAuthError> {
    let raw = super::request_object::apply(core, raw, now).await?;
    let client_id = raw.require("client_id")?.to_string();
    if client_id.len() > 256 {
        return Err(page_err(ErrorCode::InvalidRequest, "unknown client"));
    }
    let client = match super::clients::find(core, &client_id).await? {
        Some(c) => c,
        None => return Err(page_err(ErrorCode::InvalidRequest, "unknown client")),
    };

    let (redirect_uri, given) = match raw.get("redirect_uri") {
        Some(u) if client.matches_redirect_uri(u) => (u.to_string(), true),
        Some(_) => {
            return Err(page_err(
                ErrorCode::InvalidRequest,
                "the redirect URI is not registered for this client (it must match exactly)",
            ));
        }
        None if client.metadata.redirect_uris.len() == 1 => {
            (client.metadata.redirect_uris[0].clone(), false)
        }
        None => {
            return Err(page_err(
                ErrorCode::InvalidRequest,
                "parameter `redirect_uri` is missing",
            ));
        }
    };

    // From here on the client and redirect URI are known to be valid.
    match raw.get("response_type") {
        Some("code") => {}
        Some(other) => {
            return Err(page_err(
                ErrorCode::UnsupportedResponseType,
                format!(
                    "response type `{}` is not supported; use `code`",
                    scope::sanitize(other)
                ),
            ));
        }
        None => {
            return Err(page_err(
                ErrorCode::InvalidRequest,
                "parameter `response_type` is missing",
            ));
        }
    }
    if let Some(m) = raw.get("response_mode")
        && m != "query"
    {
        return Err(page_err(
            ErrorCode::InvalidRequest,
            "only `response_mode=query` is supported",
        ));
    }
    if !client.allows_grant("authorization_code") {
        return Err(page_err(
            ErrorCode::UnauthorizedClient,
            "this client is not registered for the authorization code grant",
        ));
    }
    // HEART-OAUTH-46, IGOV-OAUTH-43 (RFC 6749 §3.3): a request without `scope` asks for the
    // client's registered scopes — the documented default; the consent page lists them.
    let mut scopes = scope::parse(raw.get("scope").unwrap_or(""))?;
    if scopes.is_empty() {
        scopes = client.scopes.clone();
    }
    if scopes.is_empty() {
        return Err(page_err(
            ErrorCode::InvalidScope,
            "parameter `scope` is missing and this client has no registered scopes to default to",
        ));
    }
    if let Some(s) = scopes.iter().find(|s| !client.scopes.contains(s)) {
        return Err(page_err(
            ErrorCode::InvalidScope,
            format!("scope `{s}` is not registered for this client"),
        ));
    }
    if core.config.profile.redirect_uri_required && !given {
        return Err(page_err(
            ErrorCode::InvalidRequest,
            format!(
                "the `{}` profile requires `redirect_uri` in every authorization request",
                core.config.profile.name
            ),
        ));
    }
    if scopes.iter().any(|s| s == "openid") && !given {
        return Err(page_err(
            ErrorCode::InvalidRequest,
            "OpenID Connect requests must carry `redirect_uri`",
        ));
    }

    let challenge = raw.get("code_challenge");
    core.config
        .profile
        .check_pkce(
            client.is_public(),
            raw.get("code_challenge_method"),
            challenge.is_some(),
        )
        .map_err(|v| page_err(ErrorCode::InvalidRequest, v.description))?;
    if let Some(c) = challenge
        && (c.len() != 43
            || !c
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    {
        return Err(page_err(
            ErrorCode::InvalidRequest,
            "`code_challenge` must be a base64url SHA-256 (43 characters)",
        ));
    }
    if let Some(c) = challenge {
        let (cid, ch) = (client.id.clone(), c.to_string());
        if core
            .store
            .run(move |conn| grants::challenge_on_record(conn, &cid, &ch))
            .await?
        {
            tracing::warn!(target: "audit", event = "pkce_challenge_reused", client_id = %client.id);
            return Err(page_err(ErrorCode::InvalidRequest, CHALLENGE_REUSED));
        }
    }

    let mut prompt = Prompt::default();
    if let Some(p) = raw.get("prompt") {
        for v in p.split(' ').filter(|v| !v.is_empty()) {
            match v {
                "none" => prompt.none = true,
                "login" => prompt.login = true,
                "consent" => prompt.consent = true,
                "select_account" => prompt.login = true,
                other => {
                    return Err(page_err(
                        ErrorCode::InvalidRequest,
                        format!("unknown prompt value `{}`", scope::sanitize(other)),
                    ));
                }
            }
        }
        if prompt.none && (prompt.login || prompt.consent) {
            return Err(page_err(
                ErrorCode::InvalidRequest,
                "`prompt=none` cannot be combined with other values",
            ));
        }
    }
    let max_age = match raw.get("max_age") {
        Some(v) => Some(v.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
            page_err(
                ErrorCode::InvalidRequest,
                "`max_age` must be a non-negative integer",
            )
        })?),
        None => None,
    };
    if raw.get("nonce").is_some_and(|n| n.len() > 512) {
        return Err(page_err(ErrorCode::InvalidRequest, "`nonce` is too long"));
    }
    if core.config.profile.strict_oidc_requests && scopes.iter().any(|s| s == "openid") {
        strict_oidc_request(core, &raw)?;
    }
    if raw.get("state").is_some_and(|s| s.len() > 2048) {
        return Err(page_err(ErrorCode::InvalidRequest, "`state` is too long"));
    }
    // DPOP-09: a SHA-256 JWK thumbprint is 43 base64url characters.
    if raw.get("dpop_jkt").is_some_and(|j| {
        j.len() != 43
            || !j
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }) {
        return Err(page_err(
            ErrorCode::InvalidRequest,
            "`dpop_jkt` must be a JWK SHA-256 thumbprint (43 base64url characters)",
        ));
    }

    let claims = match raw.get("claims") {
        Some(c) => super::userinfo::requested_claims(c)?,
        None => vec![],
    };
    let resources = super::resource_indicator::parse(&raw)?;
    Ok(AuthRequest {
        client,
        redirect_uri,
        redirect_uri_given: given,
        scopes,
        claims,
        state: raw.get("state").map(str::to_string),
        nonce: raw.get("nonce").map(str::to_string),
        code_challenge: challenge.map(str::to_string),
        dpop_jkt: raw.get("dpop_jkt").map(str::to_string),
        resources,
        prompt,
        max_age,
        raw,
    })
}

/// iGov §2.1 (`strict_oidc_requests`): `state` and `nonce` are required (IGOV-OIDC-02), `vtr`
/// and `acr_values` are not sent together (-03), and `acr_values`, when sent, must name the
/// context Custodia's sign-in gives, as the ID token's `acr` must be one of them (-09).
fn strict_oidc_request(core: &Core, raw: &Params) -> Result<(), OAuthError> {
    let name = core.config.profile.name;
    for p in ["state", "nonce"] {
        if raw.get(p).is_none_or(str::is_empty) {
            return Err(page_err(
                ErrorCode::InvalidRequest,
                format!(
                    "the `{name}` profile requires `{p}` in OpenID Connect authentication requests"
                ),
            ));
        }
    }
    if raw.contains("vtr") && raw.contains("acr_values") {
        return Err(page_err(
            ErrorCode::InvalidRequest,
            "`vtr` and `acr_values` must not be sent together",
        ));
    }
    if raw.contains("vtr") {
        return Err(page_err(
            ErrorCode::InvalidRequest,
            format!(
                "Vectors of Trust (`vtr`) are not supported; request `acr_values={}`",
                super::tokens::ACR_PASSWORD
            ),
        ));
    }
    if let Some(a) = raw.get("acr_values")
        && !a.split(' ').any(|v| v == super::tokens::ACR_PASSWORD)
    {
        return Err(page_err(
            ErrorCode::InvalidRequest,
            format!(
                "none of the requested `acr_values` can be met: this server signs people in with `{}`",
                super::tokens::ACR_PASSWORD
            ),
        ));
    }
    Ok(())
}

/// How long access granted on the consent page lasts, in words (IGOV-OAUTH-31): the access
/// token's lifetime, and the refresh token's when the client may refresh.
pub fn describe_duration(core: &Core, refreshes: bool) -> String {
    fn words(secs: u64) -> String {
        match secs {
            s if s >= 86_400 && s % 86_400 == 0 => plural(s / 86_400, "day"),
            s if s >= 3_600 && s % 3_600 == 0 => plural(s / 3_600, "hour"),
            s if s >= 60 && s % 60 == 0 => plural(s / 60, "minute"),
            s => plural(s, "second"),
        }
    }
    fn plural(n: u64, unit: &str) -> String {
        if n == 1 {
            format!("1 {unit}")
        } else {
            format!("{n} {unit}s")
        }
    }
    let access = words(core.config.access_token_ttl);
    if refreshes {
        format!(
            "up to {access} at a time, renewable for up to {}",
            words(core.config.refresh_token_ttl)
        )
    } else {
        format!("up to {access}")
    }
}

/// Build an authorization response URL: the redirect URI with our parameters plus `state` and
/// `iss` (RFC 9207) appended to its query.
fn response_url(req: &AuthRequest, issuer: &str, pairs: &[(&str, &str)]) -> String {
    let Ok(mut url) = url::Url::parse(&req.redirect_uri) else {
        return req.redirect_uri.clone();
    };
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
        if let Some(s) = &req.state {
            q.append_pair("state", s);
        }
        q.append_pair("iss", issuer);
    }
    url.to_string()
}

/// An error authorization response (redirect), for outcomes the user caused or asked for.
///
/// An empty fragment (`#`) ends the URL so that a browser cannot carry the fragment of an earlier
/// URL over to the client on this redirect (seed notes, "Open redirect").
pub fn error_redirect(
    core: &Core,
    req: &AuthRequest,
    code: ErrorCode,
    description: &str,
) -> String {
    let mut url = response_url(
        req,
        core.issuer(),
        &[("error", code.as_str()), ("error_description", description)],
    );
    url.push('#');
    url
}

/// Decide the next step for a valid request, given the browser's session.
pub async fn next(
    core: &Core,
    req: &AuthRequest,
    session: Option<(SessionRow, UserRow)>,
    fresh_login: bool,
    now: i64,
) -> Result<Next, OAuthError> {
    let needs_login = match &session {
        None => true,
        Some((s, _)) => {
            // `max_age=0` is `prompt=login` (OpenID Connect Core §3.1.2.1).
            !fresh_login
                && (req.prompt.login
                    || req.max_age.is_some_and(|m| m == 0 || now - s.auth_time > m))
        }
    };
    if needs_login {
        if req.prompt.none {
            return Ok(Next::Redirect(error_redirect(
                core,
                req,
                ErrorCode::LoginRequired,
                "the user is not logged in",
            )));
        }
        return Ok(Next::Login);
    }
    let Some((s, user)) = session else {
        return Ok(Next::Login);
    };
    let (uid, cid) = (user.id.clone(), req.client.id.clone());
    let consented = core
        .store
        .run(move |c| grants::consent(c, &uid, &cid))
        .await?;
    let consented = scope::parse(consented.as_deref().unwrap_or("")).unwrap_or_default();
    // Claims asked for one by one are consented to on the page each time, unless a consented
    // scope already releases them.
    let claims_covered = req.claims.iter().all(|c| {
        super::userinfo::RELEASABLE
            .iter()
            .any(|(n, s, _)| n == c && consented.iter().any(|g| g == s))
    });
    // A request that names target resources (RFC 8707) is shown to the user every time: the
    // consent remembered is for scopes, not for where the tokens may be used.
    if req.prompt.consent
        || !scope::subset(&req.scopes, &consented)
        || !claims_covered
        || !req.resources.is_empty()
    {
        if req.prompt.none {
            return Ok(Next::Redirect(error_redirect(
                core,
                req,
                ErrorCode::ConsentRequired,
                "the user has not consented",
            )));
        }
        return Ok(Next::Consent(user));
    }
    Ok(Next::Redirect(
        issue_code(core, req, &user.id, s.auth_time, now).await?,
    ))
}

/// How long a consent page may be answered after the sign-in it followed, in seconds.
pub const CONSENT_WINDOW: i64 = 600;

/// The user's answer on the consent page.
///
/// A consent form can only be answered within [`CONSENT_WINDOW`] of the sign-in it followed when
/// the request demanded a fresh one (`prompt=login`, `max_age`): an old session cannot skip the
/// login by posting the consent form directly ([`Next::Login`] then asks for the password again).
pub async fn consent(
    core: &Core,
    req: &AuthRequest,
    session: &(SessionRow, UserRow),
    allow: bool,
    now: i64,
) -> Result<Next, OAuthError> {
    if req.prompt.login || req.max_age.is_some() {
        let limit = req.max_age.unwrap_or(0).max(0) + CONSENT_WINDOW;
        if now - session.0.auth_time > limit {
            return Ok(Next::Login);
        }
    }
    tracing::info!(target: "audit", event = "consent", user_id = %session.1.id, client_id = %req.client.id, allow, scope = %scope::join(&req.scopes));
    if !allow {
        return Ok(Next::Redirect(error_redirect(
            core,
            req,
            ErrorCode::AccessDenied,
            "the user denied the request",
        )));
    }
    let (uid, cid) = (session.1.id.clone(), req.client.id.clone());
    let wanted = req.scopes.clone();
    core.store
        .run(move |c| {
            let mut all = scope::parse(grants::consent(c, &uid, &cid)?.as_deref().unwrap_or(""))
                .unwrap_or_default();
            for s in wanted {
                if !all.contains(&s) {
                    all.push(s);
                }
            }
            grants::save_consent(c, &uid, &cid, &scope::join(&all), now)
        })
        .await?;
    Ok(Next::Redirect(
        issue_code(core, req, &session.1.id, session.0.auth_time, now).await?,
    ))
}

/// Issue a code and return the success redirect.
async fn issue_code(
    core: &Core,
    req: &AuthRequest,
    user_id: &str,
    auth_time: i64,
    now: i64,
) -> Result<String, OAuthError> {
    let code = Secret::generate(SecretKind::AuthorizationCode);
    let row = CodeRow {
        code_hash: code.hash(),
        grant_id: new_id(),
        client_id: req.client.id.clone(),
        user_id: user_id.to_string(),
        redirect_uri: req.redirect_uri.clone(),
        redirect_uri_given: req.redirect_uri_given,
        scope: scope::join(&req.scopes),
        nonce: req.nonce.clone(),
        code_challenge: req.code_challenge.clone(),
        auth_time,
        expires_at: now + core.config.code_ttl as i64,
        used: false,
        created_at: now,
        dpop_jkt: req.dpop_jkt.clone(),
        claims: (!req.claims.is_empty())
            .then(|| serde_json::to_string(&req.claims).unwrap_or_default()),
        resources: super::resource_indicator::to_column(&req.resources),
    };
    // BCP-09 (RFC 9700 §2.1.1): checked in `validate`; two submissions of one request racing
    // meet the unique index on (client, challenge) here. A `nonce` the client sent before is a
    // client that does not make one per request: logged for the operator (the ID token's
    // `nonce` check is the client's; refusing would only break it).
    let inserted = core
        .store
        .run(move |c| {
            let reused = match &row.nonce {
                Some(n) => grants::nonce_on_record(c, &row.client_id, n)?,
                None => false,
            };
            grants::insert_code(c, &row).map(|()| reused)
        })
        .await;
    match inserted {
        Ok(reused) => {
            if reused {
                tracing::warn!(target: "audit", event = "oidc_nonce_reused", client_id = %req.client.id);
            }
        }
        Err(crate::store::StoreError::Conflict) => {
            tracing::warn!(target: "audit", event = "pkce_challenge_reused", client_id = %req.client.id);
            return Err(page_err(ErrorCode::InvalidRequest, CHALLENGE_REUSED));
        }
        Err(e) => return Err(e.into()),
    }
    Ok(response_url(
        req,
        core.issuer(),
        &[("code", code.expose_secret())],
    ))
}

/// A short, human description of a scope for the consent page.
/// The claims asked for one by one that no requested scope already releases, as the consent page
/// lists them ("see your email address").
pub fn describe_claims(req: &AuthRequest) -> Vec<String> {
    super::userinfo::RELEASABLE
        .iter()
        .filter(|(n, s, _)| req.claims.iter().any(|c| c == n) && !req.scopes.iter().any(|g| g == s))
        .map(|(_, _, words)| format!("see {words}"))
        .collect()
}

pub fn describe_scope(s: &str) -> String {
    match s {
        "openid" => "confirm who you are".into(),
        "profile" => "see your name and username".into(),
        "email" => "see your email address".into(),
        "offline_access" => "keep access while you are away".into(),
        "uma_protection" => {
            "register the data it holds about you with Custodia, so that you decide here who may use it, and ask Custodia for permission when someone requests it".into()
        }
        other => format!("use `{other}`"),
    }
}

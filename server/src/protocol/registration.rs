//! Client registration: dynamic registration (RFC 7591 §3) in the configured mode (`open`, `token`
//! with an initial access token, or `closed`), its management API (RFC 7592: read, update, delete
//! with the registration access token), and the same validation for `custodia client add`.
//!
//! The server picks the `client_id` (client-supplied ids are ignored, RFC 9700 §4.15); generated
//! client secrets and registration access tokens are shown once and stored only as SHA-256.

use serde_json::{Map, Value, json};

use super::Core;
use super::clients::{Client, ClientMetadata, validate_metadata};
use super::error::{ErrorCode, OAuthError};
use crate::config::RegistrationMode;
use crate::secrets::{Secret, SecretKind, ct_eq, hash_str, random_b64};
use crate::store::clients::{self as client_repo, ClientRow};
use crate::store::sessions as session_repo;
use crate::store::{DbConn, StoreError};

/// Who registered a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegisteredBy {
    Cli,
    Dynamic,
}

fn uses_secret(method: &str) -> bool {
    matches!(method, "client_secret_basic" | "client_secret_post")
}

/// Parse a registration request body. Every metadata type error is `invalid_client_metadata`.
pub fn parse_metadata(body: &[u8]) -> Result<ClientMetadata, OAuthError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|_| OAuthError::metadata("the request body is not JSON"))?;
    if !v.is_object() {
        return Err(OAuthError::metadata(
            "the request body must be a JSON object",
        ));
    }
    serde_json::from_value(v).map_err(|e| {
        let msg = e.to_string();
        let msg = msg
            .split(" at line")
            .next()
            .unwrap_or("malformed metadata")
            .to_string();
        OAuthError::metadata(format!("malformed metadata: {msg}"))
    })
}

/// The RFC 7591 §3.2.1 response body for a client.
fn client_json(
    core_issuer: &str,
    client: &ClientRow,
    metadata: &ClientMetadata,
    secret: Option<&Secret>,
    rat: Option<&Secret>,
) -> Value {
    let mut out: Map<String, Value> = match serde_json::to_value(metadata) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    out.insert("client_id".into(), json!(client.id));
    out.insert("client_id_issued_at".into(), json!(client.created_at));
    if let Some(s) = secret {
        out.insert("client_secret".into(), json!(s.expose_secret()));
    }
    if client.secret_hash.is_some() {
        out.insert("client_secret_expires_at".into(), json!(0));
    }
    if let Some(r) = rat {
        out.insert("registration_access_token".into(), json!(r.expose_secret()));
    }
    if client.registration_token_hash.is_some() {
        out.insert(
            "registration_client_uri".into(),
            json!(format!("{core_issuer}/register/{}", client.id)),
        );
    }
    out.retain(|_, v| !v.is_null());
    Value::Object(out)
}

/// What a dynamically registered (so unvetted) client may not have: scopes beyond the OpenID
/// Connect ones (only an administrator grants API scopes), and a `jwks_uri` that points at this
/// machine or an internal network by address (the server fetches it, RFC 9700 §4.11 / SSRF) —
/// except an `http` loopback one when `insecure_loopback` (the development setting that lets
/// clients on this machine register loopback redirect URIs) is on.
fn check_dynamic(m: &ClientMetadata, insecure_loopback: bool) -> Result<(), OAuthError> {
    if !m.resource_uris.is_empty() {
        return Err(OAuthError::metadata(
            "`resource_uris` is for resource servers an administrator adds (`custodia client add`)",
        ));
    }
    for s in m
        .scope
        .as_deref()
        .unwrap_or("")
        .split(' ')
        .filter(|s| !s.is_empty())
    {
        if !super::scope::OIDC_SCOPES.contains(&s) {
            return Err(OAuthError::metadata(format!(
                "scope `{s}` is not available to dynamically registered clients"
            )));
        }
    }
    if let Some(u) = &m.jwks_uri {
        let parsed = url::Url::parse(u)
            .map_err(|_| OAuthError::metadata("`jwks_uri` must be an https URL"))?;
        if insecure_loopback
            && parsed.scheme() == "http"
            && custodia_profiles::is_loopback_url(&parsed)
        {
            return Ok(());
        }
        let internal = match parsed.host() {
            Some(url::Host::Domain(d)) => {
                d.eq_ignore_ascii_case("localhost") || d.ends_with(".localhost") || !d.contains('.')
            }
            Some(url::Host::Ipv4(_)) | Some(url::Host::Ipv6(_)) | None => true,
        };
        if parsed.scheme() != "https" || internal {
            return Err(OAuthError::metadata(
                "`jwks_uri` must be an https URL with a public host name",
            ));
        }
    }
    Ok(())
}

/// Register a client (synchronously, on a connection): validate, generate id and secrets, store.
pub fn register_on(
    conn: &mut DbConn,
    profile: &custodia_profiles::Profile,
    issuer: &str,
    metadata: ClientMetadata,
    by: RegisteredBy,
    insecure_loopback_http: bool,
    now: i64,
) -> Result<Value, OAuthError> {
    let metadata = validate_metadata(metadata, profile, insecure_loopback_http)?;
    // Custodia's own APIs are not another resource server's to answer for.
    if let Some(u) = metadata.resource_uris.iter().find(|u| {
        let u = u.trim_end_matches('/');
        u == issuer || u.starts_with(&format!("{issuer}/"))
    }) {
        return Err(OAuthError::metadata(format!(
            "`resource_uris` `{u}` is this authorization server's own"
        )));
    }
    if by == RegisteredBy::Dynamic {
        check_dynamic(&metadata, insecure_loopback_http)?;
        let cc = metadata
            .grant_types
            .as_ref()
            .is_some_and(|g| g.iter().any(|g| g == "client_credentials"));
        if cc && !profile.dynamic_client_credentials {
            return Err(OAuthError::metadata(format!(
                "the `{}` profile does not let `client_credentials` clients register themselves; an administrator adds them",
                profile.name
            )));
        }
    }
    let method = metadata
        .token_endpoint_auth_method
        .clone()
        .unwrap_or_default();
    let secret = uses_secret(&method).then(|| Secret::generate(SecretKind::ClientSecret));
    let rat = (by == RegisteredBy::Dynamic)
        .then(|| Secret::generate(SecretKind::RegistrationAccessToken));
    let row = ClientRow {
        id: random_b64(18),
        secret_hash: secret.as_ref().map(Secret::hash),
        registration_token_hash: rat.as_ref().map(Secret::hash),
        metadata: serde_json::to_string(&metadata).map_err(OAuthError::internal)?,
        registered_by: match by {
            RegisteredBy::Cli => "cli".into(),
            RegisteredBy::Dynamic => "dynamic".into(),
        },
        created_at: now,
    };
    client_repo::insert(conn, &row)?;
    tracing::info!(target: "audit", event = "client_registered", client_id = %row.id, by = %row.registered_by);
    Ok(client_json(
        issuer,
        &row,
        &metadata,
        secret.as_ref(),
        rat.as_ref(),
    ))
}

/// RFC 7591 §3: check the registration mode and the initial access token, if one is needed.
pub async fn check_allowed(core: &Core, bearer: Option<&str>, now: i64) -> Result<(), OAuthError> {
    match core.config.registration_mode {
        RegistrationMode::Open => Ok(()),
        RegistrationMode::Closed => Err(OAuthError::new(
            ErrorCode::AccessDenied,
            "dynamic client registration is closed on this server",
        )),
        RegistrationMode::Token => {
            let Some(t) = bearer else {
                return Err(OAuthError::invalid_token(
                    "dynamic registration needs an initial access token",
                ));
            };
            let hash = hash_str(t);
            let ok = core
                .store
                .run(move |c| session_repo::initial_access_token_valid(c, &hash, now))
                .await?;
            if ok {
                Ok(())
            } else {
                Err(OAuthError::invalid_token(
                    "the initial access token is invalid or expired",
                ))
            }
        }
    }
}

/// The checks of registration that need the running server: the UserInfo signing algorithm must
/// be the server's, and (HEART-OAUTH-18, IGOV-OAUTH-22) a `jwks_uri` must serve a JWK set the
/// profile accepts when the client registers or updates its metadata, not only when it first
/// authenticates. Run after the metadata rules; a dynamic client's `jwks_uri` is fetched only from
/// public addresses, checked when connecting ([`super::outbound`]).
async fn check_live(core: &Core, m: &ClientMetadata, dynamic: bool) -> Result<(), OAuthError> {
    // The UserInfo JWT is signed with the server's current key, so that is the one algorithm a
    // client can ask for (`userinfo_signing_alg_values_supported`).
    if let Some(alg) = &m.userinfo_signed_response_alg
        && core.keys.signing_alg().as_ref() != Some(alg)
    {
        return Err(OAuthError::metadata(format!(
            "`userinfo_signed_response_alg` must be {}, the algorithm this server signs with",
            core.keys.signing_alg().unwrap_or_default()
        )));
    }
    match &m.jwks_uri {
        Some(uri) => super::client_auth::prefetch_jwks(core, uri, dynamic)
            .await
            .map_err(|e| {
                OAuthError::metadata(format!("`jwks_uri` does not serve a usable JWK set: {e}"))
            }),
        None => Ok(()),
    }
}

pub async fn register(core: &Core, body: &[u8], now: i64) -> Result<Value, OAuthError> {
    let metadata = super::software_statement::apply(core, parse_metadata(body)?, now)?;
    let profile = core.config.profile;
    let issuer = core.config.issuer.clone();
    let loopback = core.config.insecure_loopback_http_redirects;
    let checked = validate_metadata(metadata.clone(), profile, loopback)?;
    check_dynamic(&checked, loopback)?;
    check_live(core, &checked, true).await?;
    core.store
        .run(move |c| {
            Ok(register_on(
                c,
                profile,
                &issuer,
                metadata,
                RegisteredBy::Dynamic,
                loopback,
                now,
            ))
        })
        .await?
}

/// RFC 7592 §2: the registration access token must match the client's; anything else (including
/// an unknown client) is `invalid_token` (401), so the endpoint tells nothing about other clients.
pub async fn authorize_management(
    core: &Core,
    client_id: &str,
    bearer: Option<&str>,
) -> Result<ClientRow, OAuthError> {
    let denied =
        || OAuthError::invalid_token("the registration access token is invalid for this client");
    let Some(token) = bearer else {
        return Err(denied());
    };
    if client_id.len() > 256 {
        return Err(denied());
    }
    let id = client_id.to_string();
    let row = core
        .store
        .run(move |c| client_repo::by_id(c, &id))
        .await?
        .ok_or_else(denied)?;
    match &row.registration_token_hash {
        Some(h) if ct_eq(hash_str(token).as_bytes(), h.as_bytes()) => Ok(row),
        _ => Err(denied()),
    }
}

pub fn read(core: &Core, row: &ClientRow) -> Result<Value, OAuthError> {
    let c = Client::from_row(row.clone())?;
    Ok(client_json(core.issuer(), row, &c.metadata, None, None))
}

/// RFC 7592 §2.2: replace the metadata. The body must name the client; a `client_secret`, if sent,
/// must be the current one; the token endpoint auth method cannot move between secret and
/// non-secret methods (the secret is never re-issued here).
pub async fn update(
    core: &Core,
    row: ClientRow,
    body: &[u8],
    now: i64,
) -> Result<Value, OAuthError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|_| OAuthError::metadata("the request body is not JSON"))?;
    let obj = v
        .as_object()
        .ok_or_else(|| OAuthError::metadata("the request body must be a JSON object"))?;
    if obj.get("client_id").and_then(Value::as_str) != Some(row.id.as_str()) {
        return Err(OAuthError::invalid_request(
            "`client_id` must be present and match the client",
        ));
    }
    for forbidden in [
        "registration_access_token",
        "registration_client_uri",
        "client_id_issued_at",
        "client_secret_expires_at",
    ] {
        if obj.contains_key(forbidden) {
            return Err(OAuthError::invalid_request(format!(
                "`{forbidden}` must not be sent in an update"
            )));
        }
    }
    if let Some(s) = obj.get("client_secret").and_then(Value::as_str) {
        let ok = row
            .secret_hash
            .as_deref()
            .is_some_and(|h| ct_eq(hash_str(s).as_bytes(), h.as_bytes()));
        if !ok {
            return Err(OAuthError::invalid_request(
                "`client_secret` does not match",
            ));
        }
    }
    let metadata = super::software_statement::apply(core, parse_metadata(body)?, now)?;
    let metadata = validate_metadata(
        metadata,
        core.config.profile,
        core.config.insecure_loopback_http_redirects,
    )?;
    let dynamic = row.registered_by == "dynamic";
    if dynamic {
        check_dynamic(&metadata, core.config.insecure_loopback_http_redirects)?;
    }
    check_live(core, &metadata, dynamic).await?;
    let old = Client::from_row(row.clone())?;
    // A client cannot change how it sees its users: moving from pairwise to public, or to
    // another sector, would let it read identifiers meant for others (OpenID Connect Core §8.1).
    let kind = |t: Option<&str>| t.unwrap_or(super::subjects::PUBLIC).to_string();
    let new_sector = (metadata.subject_type.as_deref() == Some(super::subjects::PAIRWISE))
        .then(|| super::subjects::sector_of(&row.id, &metadata.redirect_uris).ok())
        .flatten();
    if kind(old.metadata.subject_type.as_deref()) != kind(metadata.subject_type.as_deref())
        || super::subjects::sector_for(&old) != new_sector
    {
        return Err(OAuthError::metadata(
            "`subject_type` and the sector of pairwise identifiers (the redirect URIs' host) cannot change; register a new client",
        ));
    }
    let new_method = metadata
        .token_endpoint_auth_method
        .clone()
        .unwrap_or_default();
    if uses_secret(&old.auth_method) != uses_secret(&new_method) {
        return Err(OAuthError::metadata(
            "the token endpoint auth method cannot change between secret and non-secret methods; register a new client",
        ));
    }
    let text = serde_json::to_string(&metadata).map_err(OAuthError::internal)?;
    let id = row.id.clone();
    core.store
        .run(move |c| client_repo::update_metadata(c, &id, &text))
        .await?;
    core.clients.forget(&row.id);
    Ok(client_json(core.issuer(), &row, &metadata, None, None))
}

pub async fn delete(core: &Core, row: ClientRow) -> Result<(), OAuthError> {
    let id = row.id.clone();
    core.store
        .run(move |c| client_repo::delete(c, &id).map(|_| ()))
        .await?;
    core.clients.forget(&row.id);
    Ok(())
}

/// Create an initial access token (shown once).
pub fn create_initial_access_token(
    conn: &mut DbConn,
    expires_at: Option<i64>,
    now: i64,
) -> Result<Secret, StoreError> {
    let secret = Secret::generate(SecretKind::InitialAccessToken);
    session_repo::insert_initial_access_token(conn, &secret.hash(), expires_at, now)?;
    Ok(secret)
}

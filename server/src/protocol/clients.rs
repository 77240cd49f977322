//! Clients and their metadata (RFC 7591 §2): validation shared by dynamic registration and
//! `custodia client add`, and the parsed [`Client`] every endpoint works with.

use custodia_profiles::{ApplicationType, Profile};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::{ErrorCode, OAuthError};
use super::scope;
use crate::store::clients::ClientRow;

/// Client metadata as registered (RFC 7591 §2 names). Unknown members are ignored on input
/// (RFC 7591 §2: "the AS MUST ignore any client metadata it does not understand").
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ClientMetadata {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub token_endpoint_auth_method: Option<String>,
    #[serde(default)]
    pub grant_types: Option<Vec<String>>,
    #[serde(default)]
    pub response_types: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contacts: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tos_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_type: Option<String>,
    /// UMA Grant §2 / §3.3.2: where the claims interaction endpoint may send the requesting party
    /// back (UMA-GRANT-06); the same rules as `redirect_uris`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub claims_redirect_uris: Vec<String>,
    /// RFC 9449 §5.2: the client always uses DPoP; a token request without a proof is refused.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dpop_bound_access_tokens: bool,
    /// OpenID Connect Registration §2: `public` (the default) or `pairwise` subject identifiers
    /// ([`super::subjects`]; HEART-OIDC-05, IGOV-OIDC-10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_type: Option<String>,
    /// OpenID Connect Registration §2: not offered (the sector is the redirect URIs' host); kept
    /// so that registering one is refused rather than silently ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sector_identifier_uri: Option<String>,
    /// OpenID Connect Registration §2: UserInfo answered as a JWT signed with this algorithm
    /// (HEART-OIDC-06, IGOV-OIDC-12).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userinfo_signed_response_alg: Option<String>,
    /// RFC 7591 §2.3: the signed software statement the client registered with, as sent (it is
    /// returned in the registration response).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_statement: Option<String>,
    /// Who vouched for the client: the trusted issuer of its verified software statement. Set by
    /// the server only; a value sent in a registration request is discarded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_statement_issuer: Option<String>,
    /// The resource indicators (RFC 8707) this client answers for as a resource server: an access
    /// token audience-restricted to one of them is introspected for it as for its own audience.
    /// Custodia's own member, for clients an administrator adds (dynamic registration refuses it:
    /// a client must not name itself the audience of others' tokens).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_uris: Vec<String>,
}

/// A registered client, parsed.
#[derive(Clone, Debug)]
pub struct Client {
    pub id: String,
    pub secret_hash: Option<String>,
    pub registration_token_hash: Option<String>,
    /// Normalised metadata (defaults filled in).
    pub metadata: ClientMetadata,
    pub auth_method: String,
    pub grant_types: Vec<String>,
    pub scopes: Vec<String>,
    pub application_type: ApplicationType,
    pub created_at: i64,
    /// Registered through dynamic registration (RFC 7591), not by an administrator: the consent
    /// page says so (HEART-OAUTH-25, -27).
    pub dynamically_registered: bool,
}

impl Client {
    pub fn from_row(row: ClientRow) -> Result<Client, OAuthError> {
        let metadata: ClientMetadata = serde_json::from_str(&row.metadata).map_err(|e| {
            OAuthError::internal(format!("stored metadata of client {}: {e}", row.id))
        })?;
        let auth_method = metadata
            .token_endpoint_auth_method
            .clone()
            .unwrap_or_else(|| "client_secret_basic".into());
        let grant_types = metadata.grant_types.clone().unwrap_or_default();
        let scopes = scope::parse(metadata.scope.as_deref().unwrap_or("")).unwrap_or_default();
        let application_type = match metadata.application_type.as_deref() {
            Some("native") => ApplicationType::Native,
            _ => ApplicationType::Web,
        };
        Ok(Client {
            id: row.id,
            secret_hash: row.secret_hash,
            registration_token_hash: row.registration_token_hash,
            metadata,
            auth_method,
            grant_types,
            scopes,
            application_type,
            created_at: row.created_at,
            dynamically_registered: row.registered_by == "dynamic",
        })
    }

    pub fn is_public(&self) -> bool {
        self.auth_method == "none"
    }

    pub fn allows_grant(&self, grant: &str) -> bool {
        self.grant_types.iter().any(|g| g == grant)
    }

    pub fn name(&self) -> &str {
        self.metadata.client_name.as_deref().unwrap_or(&self.id)
    }

    /// Exact redirect URI matching (RFC 9700 §4.1.3): the string must equal a registered one. The
    /// one exception is the port of a loopback redirect URI of a native client (RFC 8252 §7.3).
    pub fn matches_redirect_uri(&self, uri: &str) -> bool {
        if self.metadata.redirect_uris.iter().any(|r| r == uri) {
            return true;
        }
        if self.application_type != ApplicationType::Native {
            return false;
        }
        let Ok(given) = url::Url::parse(uri) else {
            return false;
        };
        if given.scheme() != "http" || !custodia_profiles::is_loopback_url(&given) {
            return false;
        }
        self.metadata.redirect_uris.iter().any(|r| {
            url::Url::parse(r).is_ok_and(|reg| {
                reg.scheme() == "http"
                    && matches!(
                        reg.host(),
                        Some(url::Host::Ipv4(_)) | Some(url::Host::Ipv6(_))
                    )
                    && reg.host() == given.host()
                    && reg.path() == given.path()
                    && reg.query() == given.query()
                    && given.fragment().is_none()
                    && given.username().is_empty()
            })
        })
    }
}

/// Registered clients cached per instance: at most 10,000 entries, each for at most 10 seconds, so
/// an update or deletion made through another instance is seen within that time (this instance
/// forgets an entry at once when it changes it).
#[derive(Clone, Default)]
pub struct ClientCache(
    std::sync::Arc<
        std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, Client)>>,
    >,
);

const CLIENT_TTL: std::time::Duration = std::time::Duration::from_secs(10);
const CLIENT_CACHE_MAX: usize = 10_000;

impl ClientCache {
    fn get(&self, id: &str) -> Option<Client> {
        let map = self.0.lock().ok()?;
        map.get(id)
            .filter(|(at, _)| at.elapsed() < CLIENT_TTL)
            .map(|(_, c)| c.clone())
    }

    fn put(&self, client: &Client) {
        if let Ok(mut map) = self.0.lock() {
            if map.len() >= CLIENT_CACHE_MAX {
                map.retain(|_, (at, _)| at.elapsed() < CLIENT_TTL);
                if map.len() >= CLIENT_CACHE_MAX {
                    map.clear();
                }
            }
            map.insert(
                client.id.clone(),
                (std::time::Instant::now(), client.clone()),
            );
        }
    }

    /// Drop a client from the cache (after this instance changed or deleted it).
    pub fn forget(&self, id: &str) {
        if let Ok(mut map) = self.0.lock() {
            map.remove(id);
        }
    }
}

/// A registered client by id, through the cache.
pub async fn find(core: &super::Core, id: &str) -> Result<Option<Client>, OAuthError> {
    if id.is_empty() || id.len() > 256 {
        return Ok(None);
    }
    if let Some(c) = core.clients.get(id) {
        return Ok(Some(c));
    }
    let owned = id.to_string();
    let row = core
        .store
        .run(move |c| crate::store::clients::by_id(c, &owned))
        .await?;
    match row {
        Some(r) => {
            let client = Client::from_row(r)?;
            core.clients.put(&client);
            Ok(Some(client))
        }
        None => Ok(None),
    }
}

const MAX_REDIRECT_URIS: usize = 20;
const MAX_URI_LEN: usize = 2000;
const MAX_TEXT: usize = 200;
const MAX_SCOPES: usize = 100;

/// Check a list of redirect URIs (`redirect_uris`, `claims_redirect_uris`) against the profile;
/// duplicates are dropped.
fn checked_uris(
    list: &[String],
    profile: &Profile,
    app: ApplicationType,
    insecure_loopback_http: bool,
) -> Result<Vec<String>, OAuthError> {
    let mut uris: Vec<String> = vec![];
    for u in list {
        if u.len() > MAX_URI_LEN {
            return Err(OAuthError::new(
                ErrorCode::InvalidRedirectUri,
                "a redirect URI is too long",
            ));
        }
        let dev_loopback = insecure_loopback_http
            && url::Url::parse(u)
                .ok()
                .is_some_and(|p| p.scheme() == "http" && custodia_profiles::is_loopback_url(&p));
        if !dev_loopback {
            profile
                .check_redirect_uri(app, u)
                .map_err(|v| OAuthError::new(ErrorCode::InvalidRedirectUri, v.description))?;
        }
        if !uris.contains(u) {
            uris.push(u.clone());
        }
    }
    if uris.len() > MAX_REDIRECT_URIS {
        return Err(OAuthError::new(
            ErrorCode::InvalidRedirectUri,
            format!("at most {MAX_REDIRECT_URIS} redirect URIs"),
        ));
    }
    profile
        .check_redirect_categories(&uris)
        .map_err(|v| OAuthError::new(ErrorCode::InvalidRedirectUri, v.description))?;
    Ok(uris)
}

/// Validate and normalise metadata for registration. Errors are `invalid_redirect_uri` or
/// `invalid_client_metadata` (RFC 7591 §3.2.2).
///
/// `insecure_loopback_http`: also accept `http` loopback redirect URIs for web clients (the
/// `insecure_loopback_http_redirects` setting, for development on one machine).
pub fn validate_metadata(
    mut m: ClientMetadata,
    profile: &Profile,
    insecure_loopback_http: bool,
) -> Result<ClientMetadata, OAuthError> {
    let auth_method = m
        .token_endpoint_auth_method
        .clone()
        .unwrap_or_else(|| "client_secret_basic".into());
    let grant_types = m
        .grant_types
        .clone()
        .unwrap_or_else(|| vec!["authorization_code".into()]);
    let response_types = m.response_types.clone().unwrap_or_else(|| {
        if grant_types.iter().any(|g| g == "authorization_code") {
            vec!["code".into()]
        } else {
            vec![]
        }
    });
    if grant_types.is_empty() {
        return Err(OAuthError::metadata("`grant_types` must not be empty"));
    }
    profile
        .check_client(&grant_types, &response_types, &auth_method)
        .map_err(|v| OAuthError::metadata(v.description))?;

    let has_code = grant_types.iter().any(|g| g == "authorization_code");
    if has_code != response_types.iter().any(|r| r == "code") {
        return Err(OAuthError::metadata(
            "`grant_types` `authorization_code` and `response_types` `code` go together (RFC 7591 §2.1)",
        ));
    }
    if grant_types.iter().any(|g| g == "refresh_token") && !has_code {
        return Err(OAuthError::metadata(
            "the `refresh_token` grant needs the `authorization_code` grant",
        ));
    }

    let app = match m.application_type.as_deref() {
        None | Some("web") => ApplicationType::Web,
        Some("native") => ApplicationType::Native,
        Some(other) => {
            return Err(OAuthError::metadata(format!(
                "`application_type` `{}` is not `web` or `native`",
                scope::sanitize(other)
            )));
        }
    };

    let uris = checked_uris(&m.redirect_uris, profile, app, insecure_loopback_http)?;
    m.claims_redirect_uris = checked_uris(
        &m.claims_redirect_uris,
        profile,
        app,
        insecure_loopback_http,
    )?;
    if has_code && uris.is_empty() {
        return Err(OAuthError::new(
            ErrorCode::InvalidRedirectUri,
            "`redirect_uris` is required for the `authorization_code` grant",
        ));
    }
    m.redirect_uris = uris;

    if m.jwks.is_some() && m.jwks_uri.is_some() {
        return Err(OAuthError::metadata(
            "`jwks` and `jwks_uri` must not both be present (RFC 7591 §2)",
        ));
    }
    if let Some(j) = &m.jwks {
        validate_jwks(j, profile.min_rsa_bits)?;
    }
    if let Some(u) = &m.jwks_uri {
        check_https_uri("jwks_uri", u)?;
    }
    if !m.resource_uris.is_empty() {
        if auth_method == "none" {
            return Err(OAuthError::metadata(
                "`resource_uris` is for resource servers, which authenticate: not for a public client",
            ));
        }
        let mut normal: Vec<String> = vec![];
        for u in &m.resource_uris {
            let n = super::resource_indicator::normalize("resource_uris", u)
                .map_err(OAuthError::metadata)?;
            if !normal.contains(&n) {
                normal.push(n);
            }
        }
        if normal.len() > super::resource_indicator::MAX_RESOURCES {
            return Err(OAuthError::metadata(format!(
                "at most {} `resource_uris` may be registered",
                super::resource_indicator::MAX_RESOURCES
            )));
        }
        m.resource_uris = normal;
    }
    if auth_method == "private_key_jwt" && m.jwks.is_none() && m.jwks_uri.is_none() {
        return Err(OAuthError::metadata(
            "`private_key_jwt` needs `jwks` or `jwks_uri`",
        ));
    }

    for (name, v) in [
        ("client_uri", &m.client_uri),
        ("logo_uri", &m.logo_uri),
        ("tos_uri", &m.tos_uri),
        ("policy_uri", &m.policy_uri),
    ] {
        if let Some(u) = v {
            check_https_uri(name, u)?;
        }
    }
    for (name, v) in [
        ("client_name", &m.client_name),
        ("software_id", &m.software_id),
        ("software_version", &m.software_version),
    ] {
        if let Some(t) = v
            && (t.chars().count() > MAX_TEXT || t.chars().any(char::is_control))
        {
            return Err(OAuthError::metadata(format!(
                "`{name}` must be at most {MAX_TEXT} printable characters"
            )));
        }
    }
    if let Some(c) = &m.contacts
        && (c.len() > 10 || c.iter().any(|x| x.len() > 254))
    {
        return Err(OAuthError::metadata(
            "`contacts` must hold at most 10 addresses",
        ));
    }

    let default_scope = if has_code {
        scope::OIDC_SCOPES.join(" ")
    } else {
        String::new()
    };
    let scopes = scope::parse(m.scope.as_deref().unwrap_or(&default_scope))
        .map_err(|e| OAuthError::metadata(e.error_description))?;
    if scopes.len() > MAX_SCOPES {
        return Err(OAuthError::metadata(format!("at most {MAX_SCOPES} scopes")));
    }
    // A resource server holds PATs and introspects with them: it must be able to keep a secret.
    if auth_method == "none" && scopes.iter().any(|s| s == "uma_protection") {
        return Err(OAuthError::metadata(
            "`uma_protection` is for confidential clients (resource servers); choose a client authentication method",
        ));
    }
    if m.sector_identifier_uri.is_some() {
        return Err(OAuthError::metadata(
            "`sector_identifier_uri` is not supported: the sector of pairwise identifiers is the host of the redirect URIs",
        ));
    }
    match m.subject_type.as_deref() {
        None => {}
        Some(super::subjects::PUBLIC) => {}
        Some(super::subjects::PAIRWISE) => {
            // The id is not known yet; only the redirect URIs decide whether one sector exists.
            super::subjects::sector_of("", &m.redirect_uris).map_err(OAuthError::metadata)?;
        }
        Some(other) => {
            return Err(OAuthError::metadata(format!(
                "`subject_type` `{}` is not `public` or `pairwise`",
                scope::sanitize(other)
            )));
        }
    }
    if let Some(alg) = m.userinfo_signed_response_alg.as_deref()
        && !profile.signing_algs.contains(&alg)
    {
        return Err(OAuthError::metadata(format!(
            "`userinfo_signed_response_alg` must be one of {}",
            profile.signing_algs.join(", ")
        )));
    }
    profile
        .check_client_role(&scopes, &grant_types, m.dpop_bound_access_tokens)
        .map_err(|v| OAuthError::metadata(format!("{} ({})", v.description, v.rule)))?;
    m.scope = Some(scope::join(&scopes));
    m.token_endpoint_auth_method = Some(auth_method);
    m.grant_types = Some(grant_types);
    m.response_types = Some(response_types);
    m.application_type = Some(match app {
        ApplicationType::Web => "web".into(),
        ApplicationType::Native => "native".into(),
    });
    Ok(m)
}

fn check_https_uri(name: &str, u: &str) -> Result<(), OAuthError> {
    if u.len() > MAX_URI_LEN {
        return Err(OAuthError::metadata(format!("`{name}` is too long")));
    }
    match url::Url::parse(u) {
        Ok(p) if p.scheme() == "https" && p.host_str().is_some() && p.fragment().is_none() => {
            Ok(())
        }
        Ok(p) if p.scheme() == "http" && custodia_profiles::is_loopback_url(&p) => Ok(()),
        _ => Err(OAuthError::metadata(format!(
            "`{name}` must be an https URL"
        ))),
    }
}

/// A JWK set of public keys only, at most 10 keys, each usable by `josekit`, of a size the
/// profile accepts: RSA moduli of at least `min_rsa_bits`, EC keys on P-256, P-384 or P-521
/// (IGOV-OAUTH-05: RSA ≥ 2048 bits, EC ≥ 224 bits).
pub fn validate_jwks(j: &Value, min_rsa_bits: u32) -> Result<(), OAuthError> {
    let keys = j.get("keys").and_then(Value::as_array).ok_or_else(|| {
        OAuthError::metadata("`jwks` must be a JWK set: an object with a `keys` array")
    })?;
    if keys.is_empty() || keys.len() > 10 {
        return Err(OAuthError::metadata("`jwks` must hold 1 to 10 keys"));
    }
    for k in keys {
        let map = k
            .as_object()
            .ok_or_else(|| OAuthError::metadata("every key in `jwks` must be an object"))?;
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            if map.contains_key(private) {
                return Err(OAuthError::metadata("`jwks` must hold public keys only"));
            }
        }
        josekit::jwk::Jwk::from_map(map.clone())
            .map_err(|_| OAuthError::metadata("`jwks` holds a key that is not a valid JWK"))?;
        check_key_size(map, min_rsa_bits)
            .map_err(|e| OAuthError::metadata(format!("`jwks` {e}")))?;
    }
    Ok(())
}

/// The type and size rules for a public key (IGOV-OAUTH-05): RSA with a modulus of at least
/// `min_rsa_bits`, or EC on P-256, P-384 or P-521. The error completes "the key …" sentences:
/// "holds an RSA key of 1024 bits: …".
pub fn check_key_size(
    map: &serde_json::Map<String, Value>,
    min_rsa_bits: u32,
) -> Result<(), String> {
    match map.get("kty").and_then(Value::as_str) {
        Some("RSA") => {
            use base64::Engine as _;
            let n = map
                .get("n")
                .and_then(Value::as_str)
                .and_then(|n| {
                    base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .decode(n.trim_end_matches('='))
                        .ok()
                })
                .unwrap_or_default();
            let first = n.iter().position(|b| *b != 0).unwrap_or(n.len());
            let bits = n.get(first).map_or(0, |b| {
                (n.len() - first - 1) * 8 + (8 - b.leading_zeros() as usize)
            });
            if bits < min_rsa_bits as usize {
                return Err(format!(
                    "holds an RSA key of {bits} bits: at least {min_rsa_bits} are required"
                ));
            }
            Ok(())
        }
        Some("EC") => {
            let crv = map.get("crv").and_then(Value::as_str).unwrap_or_default();
            if ["P-256", "P-384", "P-521"].contains(&crv) {
                Ok(())
            } else {
                Err("holds an EC key that is not on P-256, P-384 or P-521".into())
            }
        }
        _ => Err("holds a key that is not of type `RSA` or `EC`".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use custodia_profiles::DEFAULT;

    // IGOV-OAUTH-05 (and every profile): client RSA keys of at least 2048 bits, EC keys on the
    // NIST curves of at least 256 bits.
    #[test]
    fn client_key_sizes() -> Result<(), Box<dyn std::error::Error>> {
        use base64::Engine as _;
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let rsa = |bits: u32| -> Result<Value, Box<dyn std::error::Error>> {
            let k = openssl::rsa::Rsa::generate(bits)?;
            Ok(
                serde_json::json!({"keys": [{"kty": "RSA", "n": b64(&k.n().to_vec()), "e": b64(&k.e().to_vec())}]}),
            )
        };
        assert!(validate_jwks(&rsa(2048)?, 2048).is_ok());
        let small = validate_jwks(&rsa(1024)?, 2048)
            .err()
            .map(|e| e.error_description);
        assert!(
            small.as_deref().is_some_and(|d| d.contains("1024 bits")),
            "{small:?}"
        );
        let ec = |crv: &str| {
            serde_json::json!({"keys": [{"kty": "EC", "crv": crv,
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]})
        };
        assert!(validate_jwks(&ec("P-256"), 2048).is_ok());
        assert!(validate_jwks(&ec("secp256k1"), 2048).is_err());
        Ok(())
    }

    fn meta(v: Value) -> ClientMetadata {
        serde_json::from_value(v).unwrap_or_default()
    }

    #[test]
    fn defaults_and_errors() {
        let ok = validate_metadata(
            meta(serde_json::json!({"redirect_uris": ["https://c.example/cb"]})),
            &DEFAULT,
            false,
        );
        let ok = ok.ok().unwrap_or_default();
        assert_eq!(
            ok.token_endpoint_auth_method.as_deref(),
            Some("client_secret_basic")
        );
        assert_eq!(ok.grant_types, Some(vec!["authorization_code".to_string()]));
        let code = |v: Value| {
            validate_metadata(meta(v), &DEFAULT, false)
                .err()
                .map(|e| e.error)
        };
        assert_eq!(
            code(serde_json::json!({})),
            Some(ErrorCode::InvalidRedirectUri)
        );
        assert_eq!(
            code(serde_json::json!({"redirect_uris": ["http://c.example/cb"]})),
            Some(ErrorCode::InvalidRedirectUri)
        );
        assert_eq!(
            code(serde_json::json!({"redirect_uris": ["https://c.example/cb#x"]})),
            Some(ErrorCode::InvalidRedirectUri)
        );
        assert_eq!(
            code(
                serde_json::json!({"redirect_uris": ["https://c.example/cb"], "grant_types": ["implicit"]})
            ),
            Some(ErrorCode::InvalidClientMetadata)
        );
        assert_eq!(
            code(
                serde_json::json!({"redirect_uris": ["https://c.example/cb"], "token_endpoint_auth_method": "private_key_jwt"})
            ),
            Some(ErrorCode::InvalidClientMetadata)
        );
        assert_eq!(
            code(
                serde_json::json!({"redirect_uris": ["https://c.example/cb"], "jwks": {"keys": []}, "jwks_uri": "https://c.example/jwks"})
            ),
            Some(ErrorCode::InvalidClientMetadata)
        );
        assert_eq!(
            code(
                serde_json::json!({"grant_types": ["client_credentials"], "response_types": ["code"]})
            ),
            Some(ErrorCode::InvalidClientMetadata)
        );
    }

    // BCP-24: http redirect URIs for web clients only behind the explicit insecure switch.
    #[test]
    fn web_loopback_http_only_with_the_insecure_switch() {
        let m = || {
            meta(serde_json::json!({"redirect_uris": ["http://127.0.0.1:8090/connect/callback"]}))
        };
        assert_eq!(
            validate_metadata(m(), &DEFAULT, false)
                .err()
                .map(|e| e.error),
            Some(ErrorCode::InvalidRedirectUri)
        );
        assert!(validate_metadata(m(), &DEFAULT, true).is_ok());
        let remote = meta(serde_json::json!({"redirect_uris": ["http://rs.example/cb"]}));
        assert!(validate_metadata(remote, &DEFAULT, true).is_err());
    }

    #[test]
    fn loopback_port_exception_only_for_native() -> Result<(), OAuthError> {
        let m = validate_metadata(
            meta(
                serde_json::json!({"redirect_uris": ["http://127.0.0.1/cb"], "application_type": "native", "token_endpoint_auth_method": "none"}),
            ),
            &DEFAULT,
            false,
        )?;
        let row = ClientRow {
            id: "c".into(),
            secret_hash: None,
            registration_token_hash: None,
            metadata: serde_json::to_string(&m).unwrap_or_default(),
            registered_by: "cli".into(),
            created_at: 0,
        };
        let c = Client::from_row(row)?;
        assert!(c.matches_redirect_uri("http://127.0.0.1/cb"));
        assert!(c.matches_redirect_uri("http://127.0.0.1:51000/cb"));
        assert!(!c.matches_redirect_uri("http://127.0.0.1:51000/cb/other"));
        assert!(!c.matches_redirect_uri("http://127.0.0.1:51000/cb?x=1"));
        assert!(!c.matches_redirect_uri("http://localhost:51000/cb"));
        Ok(())
    }
}

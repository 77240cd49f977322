//! Token minting: JWT access tokens (RFC 9068: `typ: at+jwt`, `iss`, `sub`, `aud`, `client_id`,
//! `exp`, `iat`, `jti`, `scope`), ID tokens (OpenID Connect Core §2, §3.1.3.6: `aud`, `nonce`,
//! `auth_time`, `at_hash`), opaque refresh tokens, and the token response (RFC 6749 §5.1).
//!
//! Every access token's `jti` is recorded, so introspection and revocation work for JWTs; refresh
//! tokens are stored only as hashes.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::Core;
use super::error::OAuthError;
use crate::keys::KeyRing;
use crate::secrets::{Secret, SecretKind, new_jti};
use crate::store::grants::{AccessTokenRow, RefreshTokenRow};

/// The token response body. Holds tokens: no `Debug`.
#[derive(Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// Absent from RPT responses (an RPT's authority is its permissions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// UMA Grant §3.3.5: the RPT upgraded the one the client sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upgraded: Option<bool>,
    /// UMA Grant §3.3.5: a persisted claims token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pct: Option<String>,
}

impl TokenResponse {
    /// The scope granted (empty for an RPT), for audit lines.
    pub fn scope_str(&self) -> &str {
        self.scope.as_deref().unwrap_or("")
    }
}

/// What an access token is for.
pub struct AccessSpec<'a> {
    pub client_id: &'a str,
    /// The user the token acts for; `None` for a client acting for itself.
    pub user_id: Option<&'a str>,
    pub scope: &'a str,
    pub grant_id: Option<&'a str>,
    pub auth_time: Option<i64>,
    /// UserInfo claims asked for one by one (OpenID Connect Core §5.5), carried in the token as
    /// `userinfo_claims` for the UserInfo endpoint.
    pub userinfo_claims: &'a [String],
    /// RFC 8707 targets the token is restricted to; empty: this server's own APIs.
    pub resources: &'a [String],
}

/// One permission of an RPT (UMA Federated Authorization §5.1.1: `resource_id`, `resource_scopes`,
/// optional `exp`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RptPermission {
    pub resource_id: String,
    pub resource_scopes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
}

/// What an RPT is for: the client holding it, the requesting party, the resource servers that
/// accept it (`aud`) and the permissions it carries.
pub struct RptSpec<'a> {
    pub client_id: &'a str,
    /// The requesting party's subject (or the client's id when there is none).
    pub subject: &'a str,
    /// The requesting party when it is one of our users.
    pub user_id: Option<&'a str>,
    pub audience: &'a [String],
    pub permissions: &'a [RptPermission],
    pub grant_id: Option<&'a str>,
}

/// Everything [`mint_access`] needs that is not per-request: keys, issuer, lifetime. Cheap to
/// clone into a blocking task.
#[derive(Clone)]
pub struct Minter {
    pub keys: KeyRing,
    pub issuer: String,
    pub access_ttl: u64,
    pub id_ttl: u64,
    pub refresh_ttl: u64,
    /// The DPoP key (RFC 7638 thumbprint) the tokens are bound to (`cnf.jkt`, RFC 9449 §6).
    pub cnf_jkt: Option<String>,
    /// The sector of a client with pairwise subject identifiers: ID tokens name the user by
    /// its pairwise `sub` there ([`super::subjects`]).
    pub pairwise_sector: Option<String>,
}

impl Minter {
    pub fn from_core(core: &Core) -> Minter {
        Minter {
            keys: core.keys.clone(),
            issuer: core.config.issuer.clone(),
            access_ttl: core.config.access_token_ttl,
            id_ttl: core.config.id_token_ttl,
            refresh_ttl: core.config.refresh_token_ttl,
            cnf_jkt: None,
            pairwise_sector: None,
        }
    }

    /// Tokens for `client`: a user appears by the pairwise `sub` of the client's sector when it
    /// registered pairwise subjects — in ID tokens, access tokens and RPTs alike.
    pub fn for_client(mut self, client: &super::clients::Client) -> Minter {
        self.pairwise_sector = super::subjects::sector_for(client);
        self
    }

    /// The `sub` the client is shown for `subject`: a local user's (`subject` = `user_id`)
    /// pairwise identifier for a pairwise client, else `subject` as it is.
    pub fn shown_subject(
        &self,
        subject: &str,
        user_id: Option<&str>,
    ) -> Result<String, OAuthError> {
        match (&self.pairwise_sector, user_id) {
            (Some(sector), Some(u)) if u == subject => {
                super::subjects::pairwise(self.keys.pairwise_key(), sector, u)
                    .ok_or_else(|| OAuthError::internal("pairwise subject could not be made"))
            }
            _ => Ok(subject.to_string()),
        }
    }

    /// Tokens bound to the DPoP key with thumbprint `jkt`, if any.
    pub fn bound(mut self, jkt: Option<&str>) -> Minter {
        self.cnf_jkt = jkt.map(str::to_string);
        self
    }

    fn confirm(&self, claims: &mut Map<String, Value>) {
        if let Some(j) = &self.cnf_jkt {
            claims.insert("cnf".into(), json!({ "jkt": j }));
        }
    }

    /// Sign an access token and build its record.
    pub fn mint_access(
        &self,
        spec: &AccessSpec<'_>,
        now: i64,
    ) -> Result<(String, AccessTokenRow), OAuthError> {
        let jti = new_jti();
        let exp = now + self.access_ttl as i64;
        let mut claims = Map::new();
        claims.insert("iss".into(), json!(self.issuer));
        let sub = self.shown_subject(spec.user_id.unwrap_or(spec.client_id), spec.user_id)?;
        claims.insert("sub".into(), json!(sub));
        // The audience, always an array (IGOV-OAUTH-40; RFC 9068 §2.2 allows both forms): the
        // resources the client named (RFC 8707), else this server's protected APIs (userinfo, the
        // protection and owner APIs). RPTs name resource servers.
        if spec.resources.is_empty() {
            claims.insert("aud".into(), json!([self.issuer]));
        } else {
            claims.insert("aud".into(), json!(spec.resources));
        }
        claims.insert("client_id".into(), json!(spec.client_id));
        // HEART-OAUTH-34 (CONF-10): `azp` beside RFC 9068's `client_id`.
        claims.insert("azp".into(), json!(spec.client_id));
        claims.insert("iat".into(), json!(now));
        claims.insert("exp".into(), json!(exp));
        claims.insert("jti".into(), json!(jti));
        claims.insert("scope".into(), json!(spec.scope));
        if let Some(t) = spec.auth_time {
            claims.insert("auth_time".into(), json!(t));
        }
        if !spec.userinfo_claims.is_empty() {
            claims.insert("userinfo_claims".into(), json!(spec.userinfo_claims));
        }
        self.confirm(&mut claims);
        let token = self.keys.sign("at+jwt", claims)?;
        let row = AccessTokenRow {
            jti,
            grant_id: spec.grant_id.map(str::to_string),
            client_id: spec.client_id.to_string(),
            user_id: spec.user_id.map(str::to_string),
            scope: spec.scope.to_string(),
            expires_at: exp,
            revoked: false,
            created_at: now,
        };
        Ok((token, row))
    }

    /// Sign an RPT: an RFC 9068 access token whose authority is its `permissions` (no `scope`),
    /// with the resource servers concerned as `aud`, and build its record. Resource servers verify
    /// it locally against the JWKS or introspect it with their PAT.
    pub fn mint_rpt(
        &self,
        spec: &RptSpec<'_>,
        now: i64,
    ) -> Result<(String, AccessTokenRow), OAuthError> {
        let jti = new_jti();
        let exp = now + self.access_ttl as i64;
        let mut claims = Map::new();
        claims.insert("iss".into(), json!(self.issuer));
        claims.insert(
            "sub".into(),
            json!(self.shown_subject(spec.subject, spec.user_id)?),
        );
        claims.insert("aud".into(), json!(spec.audience));
        claims.insert("client_id".into(), json!(spec.client_id));
        claims.insert("azp".into(), json!(spec.client_id));
        claims.insert("iat".into(), json!(now));
        claims.insert("exp".into(), json!(exp));
        claims.insert("jti".into(), json!(jti));
        claims.insert("permissions".into(), json!(spec.permissions));
        self.confirm(&mut claims);
        let token = self.keys.sign("at+jwt", claims)?;
        let row = AccessTokenRow {
            jti,
            grant_id: spec.grant_id.map(str::to_string),
            client_id: spec.client_id.to_string(),
            user_id: spec.user_id.map(str::to_string),
            scope: String::new(),
            expires_at: exp,
            revoked: false,
            created_at: now,
        };
        Ok((token, row))
    }

    /// A new refresh token of a grant.
    pub fn mint_refresh(
        &self,
        grant_id: &str,
        client_id: &str,
        user_id: &str,
        scope: &str,
        auth_time: i64,
        now: i64,
    ) -> (Secret, RefreshTokenRow) {
        let secret = Secret::generate(SecretKind::RefreshToken);
        let row = RefreshTokenRow {
            token_hash: secret.hash(),
            grant_id: grant_id.to_string(),
            client_id: client_id.to_string(),
            user_id: user_id.to_string(),
            scope: scope.to_string(),
            auth_time,
            expires_at: now + self.refresh_ttl as i64,
            used: false,
            revoked: false,
            created_at: now,
            dpop_jkt: None,
            claims: None,
            resources: None,
        };
        (secret, row)
    }

    /// Sign an ID token (OpenID Connect Core §2). Claims beyond `sub` are served by userinfo.
    pub fn mint_id_token(
        &self,
        sub: &str,
        client_id: &str,
        nonce: Option<&str>,
        auth_time: i64,
        access_token: &str,
        now: i64,
    ) -> Result<String, OAuthError> {
        let sub = self.shown_subject(sub, Some(sub))?;
        let mut claims = Map::new();
        claims.insert("iss".into(), json!(self.issuer));
        claims.insert("sub".into(), json!(sub));
        claims.insert("aud".into(), json!(client_id));
        claims.insert("azp".into(), json!(client_id));
        claims.insert("iat".into(), json!(now));
        claims.insert("exp".into(), json!(now + self.id_ttl as i64));
        claims.insert("auth_time".into(), json!(auth_time));
        // IGOV-OIDC-09: `jti` and `nbf` too. HEART-OIDC-04, IGOV-OIDC-08: the authentication
        // context as `acr` + `amr` (Custodia signs people in with a password only; Vectors of
        // Trust are not offered, so never `vot` beside them).
        claims.insert("nbf".into(), json!(now));
        claims.insert("jti".into(), json!(crate::secrets::new_jti()));
        claims.insert("acr".into(), json!(ACR_PASSWORD));
        claims.insert("amr".into(), json!(["pwd"]));
        if let Some(n) = nonce {
            claims.insert("nonce".into(), json!(n));
        }
        claims.insert("at_hash".into(), Value::String(at_hash(access_token)));
        Ok(self.keys.sign("JWT", claims)?)
    }
}

/// The one authentication context class Custodia's sign-in gives: a password checked by the
/// server (`amr` `pwd`, RFC 8176), single factor. Advertised as `acr_values_supported`.
pub const ACR_PASSWORD: &str = "urn:custodia:acr:password";

/// `at_hash`: the left half of SHA-256 of the access token, base64url (RS256, PS256 and ES256 all
/// hash with SHA-256).
pub fn at_hash(access_token: &str) -> String {
    let d = Sha256::digest(access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(&d[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_hash_vector() {
        // OpenID Connect Core appendix A.3 example: at_hash of "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y".
        assert_eq!(
            at_hash("jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
    }
}

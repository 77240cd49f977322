//! The authorization code grant at the token endpoint (RFC 6749 §4.1.3, RFC 7636 §4.6, RFC 9700
//! §2.1.1 and §4.2.4): the code is single-use (one atomic consumption), short-lived, bound to the
//! client, the redirect URI and the PKCE challenge; a second use fails and revokes every token the
//! code issued.

use super::super::Core;
use super::super::client_auth::Authenticated;
use super::super::error::{ErrorCode, OAuthError};
use super::super::params::Params;
use super::super::resource_indicator;
use super::super::scope;
use super::super::tokens::{AccessSpec, Minter, TokenResponse};
use crate::secrets::{Secret, ct_eq};
use crate::store::grants::{self, Issue, Redeemed};

/// RFC 7636 §4.1: 43 to 128 characters of `[A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~"`.
pub fn valid_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// RFC 7636 §4.2: `BASE64URL(SHA256(ASCII(code_verifier)))`.
pub fn s256(verifier: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()))
}

pub async fn exchange(
    core: &Core,
    auth: &Authenticated,
    params: &Params,
    dpop: Option<&str>,
    now: i64,
) -> Result<TokenResponse, OAuthError> {
    let code = Secret::new(params.require("code")?);
    let redirect_uri = params.get("redirect_uri").map(str::to_string);
    let verifier = params.get("code_verifier").map(str::to_string);
    let wanted_targets = super::super::resource_indicator::parse(params)?;
    if let Some(v) = &verifier
        && !valid_verifier(v)
    {
        return Err(OAuthError::invalid_grant(
            "`code_verifier` must be 43 to 128 unreserved characters (RFC 7636 §4.1)",
        ));
    }
    let hash = code.hash();

    // A code belongs to one client (CORE-04): look before consuming, so another client presenting a
    // stolen code cannot burn it.
    let peek_hash = hash.clone();
    let owner = core
        .store
        .run(move |c| grants::code_client(c, &peek_hash))
        .await?;
    match owner {
        Some(o) if o == auth.client.id => {}
        _ => {
            return Err(OAuthError::invalid_grant(
                "the authorization code is invalid, expired or was issued to another client",
            ));
        }
    }

    let minter = Minter::from_core(core).bound(dpop).for_client(&auth.client);
    // DPOP-04: a public client's refresh token is bound to its DPoP key (a confidential client's
    // is bound by its authentication).
    let bind_refresh = auth.client.is_public();
    let proof_jkt = dpop.map(str::to_string);
    let client_id = auth.client.id.clone();
    let issue_refresh = auth.client.allows_grant("refresh_token");
    let outcome = core
        .store
        .run(move |c| {
            grants::redeem_code(c, &hash, now, |row| {
                if row.client_id != client_id {
                    return Err(OAuthError::invalid_grant("the authorization code was issued to another client"));
                }
                // CORE-03: the redirect URI of the authorization request, identically.
                if (row.redirect_uri_given || redirect_uri.is_some())
                    && redirect_uri.as_deref() != Some(row.redirect_uri.as_str()) {
                        return Err(OAuthError::invalid_grant("`redirect_uri` does not match the authorization request"));
                    }
                // DPOP-09: a code bound to a DPoP key at the authorization endpoint.
                if let Some(j) = &row.dpop_jkt
                    && proof_jkt.as_deref() != Some(j.as_str())
                {
                    return Err(OAuthError::new(
                        ErrorCode::InvalidDpopProof,
                        "the authorization request bound this code to a DPoP key (`dpop_jkt`): send a proof from that key",
                    ));
                }
                // BCP-06 / BCP-07: PKCE enforced, and no downgrade.
                match (&row.code_challenge, &verifier) {
                    (Some(ch), Some(v)) => {
                        if !ct_eq(s256(v).as_bytes(), ch.as_bytes()) {
                            return Err(OAuthError::invalid_grant("`code_verifier` does not match the code challenge"));
                        }
                    }
                    (Some(_), None) => return Err(OAuthError::invalid_grant("`code_verifier` is required")),
                    (None, Some(_)) => {
                        return Err(OAuthError::invalid_grant("`code_verifier` sent, but the authorization request had no code challenge"));
                    }
                    (None, None) => {}
                }
                // RFC 8707 §2.2: the token's targets, within those the user saw and allowed.
                let targets = resource_indicator::narrow(
                    wanted_targets,
                    &resource_indicator::from_column(row.resources.as_deref()),
                )?;
                let scopes = scope::parse(&row.scope).unwrap_or_default();
                let asked: Vec<String> = row
                    .claims
                    .as_deref()
                    .and_then(|c| serde_json::from_str(c).ok())
                    .unwrap_or_default();
                let (access, access_row) = minter.mint_access(
                    &AccessSpec {
                        client_id: &row.client_id,
                        user_id: Some(&row.user_id),
                        scope: &row.scope,
                        grant_id: Some(&row.grant_id),
                        auth_time: Some(row.auth_time),
                        userinfo_claims: &asked,
                        resources: &targets,
                    },
                    now,
                )?;
                let id_token = if scopes.iter().any(|s| s == "openid") {
                    Some(minter.mint_id_token(&row.user_id, &row.client_id, row.nonce.as_deref(), row.auth_time, &access, now)?)
                } else {
                    None
                };
                let (refresh, refresh_row) = if issue_refresh {
                    let (s, mut r) = minter.mint_refresh(&row.grant_id, &row.client_id, &row.user_id, &row.scope, row.auth_time, now);
                    if bind_refresh {
                        r.dpop_jkt = minter.cnf_jkt.clone();
                    }
                    r.claims = row.claims.clone();
                    r.resources = row.resources.clone();
                    (Some(s), Some(r))
                } else {
                    (None, None)
                };
                let response = TokenResponse {
                    access_token: access,
                    token_type: "Bearer",
                    expires_in: minter.access_ttl,
                    refresh_token: refresh.map(|s| s.expose_secret().to_string()),
                    id_token,
                    scope: Some(row.scope.clone()),
                    upgraded: None,
                    pct: None,
                };
                Ok((Issue { access: access_row, refresh: refresh_row }, response))
            })
        })
        .await?;
    match outcome {
        Redeemed::Fresh(r) => r,
        Redeemed::Replayed => {
            tracing::warn!(client_id = %auth.client.id, "authorization code replayed; the tokens it issued are revoked");
            Err(OAuthError::invalid_grant(
                "the authorization code was already used; the tokens it issued are revoked",
            ))
        }
        Redeemed::Unknown => Err(OAuthError::invalid_grant(
            "the authorization code is invalid or expired",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b() {
        let v = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert!(valid_verifier(v));
        assert_eq!(s256(v), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        assert!(!valid_verifier(&v[..42]));
        assert!(!valid_verifier(&"a".repeat(129)));
        assert!(!valid_verifier(&format!("{}+", &v[..43])));
    }
}

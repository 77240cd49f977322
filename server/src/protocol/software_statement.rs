//! Software statements at dynamic registration (RFC 7591 §2.3, §3.1.1; HEART-OAUTH-26,
//! IGOV-OAUTH-30): a JWS about the client software, signed by an issuer this server trusts
//! (`CUSTODIA_SOFTWARE_STATEMENT_ISSUERS`: issuer and JWK set). Its members take precedence over
//! the same members sent in the clear; the profile's required members must be there; the verified
//! issuer is recorded with the client and shown on the consent page (HEART-OAUTH-27,
//! IGOV-OAUTH-31). An issuer not on the list is `unapproved_software_statement`; anything wrong
//! with the statement itself is `invalid_software_statement`.

use serde_json::{Map, Value};

use super::Core;
use super::clients::ClientMetadata;
use super::error::{ErrorCode, OAuthError};

fn invalid(d: impl Into<String>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidSoftwareStatement, d)
}

/// Claims of the statement's JWT itself, not client metadata.
const JWT_CLAIMS: &[&str] = &["iss", "sub", "aud", "iat", "exp", "nbf", "jti"];

/// The metadata with its software statement verified and applied, or as sent when it has none.
/// A `software_statement_issuer` sent by the client is discarded either way.
pub fn apply(core: &Core, mut m: ClientMetadata, now: i64) -> Result<ClientMetadata, OAuthError> {
    m.software_statement_issuer = None;
    let Some(jwt) = m.software_statement.clone() else {
        return Ok(m);
    };
    if jwt.len() > 16 * 1024 || jwt.split('.').count() != 3 {
        return Err(invalid("the software statement is not a compact JWS"));
    }
    let (alg, kid) = super::client_auth::client_signed_header(core, &jwt)
        .map_err(|e| invalid(format!("the software statement: {e}")))?;
    let unverified = super::client_auth::unverified_claims(&jwt)
        .ok_or_else(|| invalid("the software statement's claims are malformed"))?;
    let iss = unverified
        .get("iss")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("the software statement has no `iss`"))?;
    let Some(trusted) = core
        .config
        .software_statement_issuers
        .iter()
        .find(|t| t.issuer == iss)
    else {
        return Err(OAuthError::new(
            ErrorCode::UnapprovedSoftwareStatement,
            format!(
                "software statements from `{}` are not accepted here",
                super::scope::sanitize(iss)
            ),
        ));
    };
    let claims = super::client_auth::verify_with(&trusted.jwks, &alg, kid.as_deref(), &jwt)
        .ok_or_else(|| {
            invalid("the software statement's signature does not verify with its issuer's keys")
        })?;
    if claims
        .get("exp")
        .is_some_and(|e| e.as_i64().is_none_or(|e| e <= now))
    {
        return Err(invalid("the software statement has expired"));
    }
    if claims
        .get("iat")
        .is_some_and(|i| i.as_i64().is_none_or(|i| i > now + 60))
    {
        return Err(invalid("the software statement was issued in the future"));
    }
    let members: Vec<&str> = claims.keys().map(String::as_str).collect();
    core.config
        .profile
        .check_software_statement(&members)
        .map_err(|v| invalid(format!("{} ({})", v.description, v.rule)))?;
    // mTLS is not offered: a statement asking for certificate-bound tokens cannot be honoured.
    if claims.get("tls_client_certificate_bound_access_tokens") == Some(&Value::Bool(true)) {
        return Err(invalid(
            "certificate-bound access tokens (RFC 8705) are not offered; DPoP is the sender constraint here",
        ));
    }

    // RFC 7591 §2.3: the statement's values win over the same members sent in the clear.
    let mut merged: Map<String, Value> = match serde_json::to_value(&m) {
        Ok(Value::Object(o)) => o,
        _ => Map::new(),
    };
    for (k, v) in claims {
        if !JWT_CLAIMS.contains(&k.as_str()) {
            merged.insert(k, v);
        }
    }
    let mut out: ClientMetadata = serde_json::from_value(Value::Object(merged))
        .map_err(|e| invalid(format!("the software statement's members are invalid: {e}")))?;
    out.software_statement = Some(jwt);
    out.software_statement_issuer = Some(trusted.issuer.clone());
    Ok(out)
}

//! The token endpoint (RFC 6749 §3.2, §5): authenticate the client, dispatch on `grant_type`, one
//! grant per module. Unknown grant types are `unsupported_grant_type`; grants the client did not
//! register are `unauthorized_client`.

pub mod authorization_code;
pub mod client_credentials;
pub mod refresh_token;
pub mod uma_ticket;

use super::Core;
use super::client_auth::{self, Presented};
use super::error::{ErrorCode, OAuthError};
use super::params::Params;
use super::tokens::TokenResponse;

/// Handle a token request whose body has been parsed. `dpop`: the values of its `DPoP` headers
/// (RFC 9449): with a valid proof, the tokens are bound to its key and `token_type` is `DPoP`.
pub async fn token(
    core: &Core,
    params: &Params,
    authorization: Option<&str>,
    dpop: &[&str],
    now: i64,
) -> Result<TokenResponse, OAuthError> {
    let grant_type = params.require("grant_type")?;
    let known = [
        "authorization_code",
        "refresh_token",
        "client_credentials",
        uma_ticket::GRANT_TYPE,
    ];
    if !known.contains(&grant_type) || !core.config.profile.grant_types.contains(&grant_type) {
        return Err(OAuthError::new(
            ErrorCode::UnsupportedGrantType,
            format!(
                "grant type `{}` is not supported",
                super::scope::sanitize(grant_type)
            ),
        ));
    }
    // DPOP-01, -02, -06, -10: a proof, when sent. Checked before the client authenticates, so a
    // `use_dpop_nonce` answer (RFC 9449 §8) does not spend the client's assertion: the client
    // retries the same request with a new proof.
    let proof = if dpop.is_empty() {
        // IGOV-OAUTH-12: under a profile that requires sender-constrained tokens, every token
        // request carries a proof (the registration rule makes every client DPoP-bound; this
        // holds for clients registered before the profile was chosen too).
        if core.config.profile.sender_constrained_tokens {
            return Err(OAuthError::new(
                ErrorCode::InvalidDpopProof,
                format!(
                    "the `{}` profile issues only sender-constrained tokens: send a DPoP proof (RFC 9449)",
                    core.config.profile.name
                ),
            ));
        }
        None
    } else {
        let proof =
            super::dpop::verify(core, dpop, "POST", &core.config.url("/token"), None, now).await?;
        // RFC 9449 §8: with nonces on, a proof carries one Custodia issued (the HTTP layer sends
        // a fresh one in `DPoP-Nonce` with every token response).
        if core.config.dpop_nonce
            && !proof
                .nonce
                .as_deref()
                .is_some_and(|n| super::dpop::nonce_ok(core, n, now))
        {
            return Err(OAuthError::new(
                ErrorCode::UseDpopNonce,
                match proof.nonce {
                    Some(_) => {
                        "the DPoP proof's `nonce` is not a current one: use the `DPoP-Nonce` of this response"
                    }
                    None => {
                        "the DPoP proof must carry a `nonce`: use the `DPoP-Nonce` of this response"
                    }
                },
            ));
        }
        Some(proof)
    };
    let presented = Presented {
        authorization,
        params,
        endpoint_url: core.config.url("/token"),
    };
    let client = client_auth::authenticate(core, presented, now).await?;
    if !client.client.allows_grant(grant_type) {
        return Err(OAuthError::unauthorized_client(format!(
            "this client is not registered for the `{grant_type}` grant"
        )));
    }
    if proof.is_none() && client.client.metadata.dpop_bound_access_tokens {
        return Err(OAuthError::new(
            ErrorCode::InvalidDpopProof,
            "this client registered `dpop_bound_access_tokens`: send a DPoP proof",
        ));
    }
    let jkt = proof.as_ref().map(|p| p.jkt.as_str());
    let mut result = match grant_type {
        "authorization_code" => authorization_code::exchange(core, &client, params, jkt, now).await,
        "refresh_token" => refresh_token::refresh(core, &client, params, jkt, now).await,
        uma_ticket::GRANT_TYPE => uma_ticket::issue(core, &client, params, jkt, now).await,
        _ => client_credentials::issue(core, &client, params, jkt, now).await,
    };
    // DPOP-03: a bound token says so.
    if let (Ok(t), Some(_)) = (&mut result, &proof) {
        t.token_type = "DPoP";
    }
    match &result {
        Ok(t) => {
            tracing::info!(target: "audit", event = "token_issued", grant_type, client_id = %client.client.id, scope = %t.scope_str());
            // HEART-FHIR-07: break-the-glass access is always called out in the audit log.
            if t.scope_str().split(' ').any(|s| s == "btg") {
                tracing::warn!(target: "audit", event = "break_the_glass", grant_type, client_id = %client.client.id);
            }
        }
        Err(e) => {
            tracing::info!(target: "audit", event = "token_refused", grant_type, client_id = %client.client.id, error = e.error.as_str())
        }
    }
    result
}

//! Authorization server metadata (RFC 8414) and OpenID Provider metadata (OpenID Connect Discovery
//! 1.0 §3), built from one source so the two documents never disagree. Values come from the
//! configuration and the active profile: discovery advertises what the server allows and nothing
//! else.

use serde_json::{Value, json};

use super::Core;
use crate::config::RegistrationMode;

/// UMA 2.0 discovery (UMA Grant §2, Federated Authorization §2): the OAuth metadata plus the
/// protection API endpoints (UMA-GRANT-01/02, UMA-FED-07/08), the profiles in force and, as an
/// extension member, the claim token formats the grant accepts (UMA-GRANT-05).
pub fn uma_metadata(core: &Core) -> Value {
    let mut m = metadata(core);
    if let Some(o) = m.as_object_mut() {
        let c = &core.config;
        o.insert(
            "resource_registration_endpoint".into(),
            json!(c.url("/uma/resources")),
        );
        o.insert(
            "permission_endpoint".into(),
            json!(c.url("/uma/permission")),
        );
        o.insert(
            "claims_interaction_endpoint".into(),
            json!(c.url("/uma/claims")),
        );
        o.insert(
            "uma_profiles_supported".into(),
            json!(c.profile.uma_profiles),
        );
        o.insert(
            "claim_token_formats_supported".into(),
            json!([super::claims::ID_TOKEN_FORMAT]),
        );
    }
    m
}

pub fn metadata(core: &Core) -> Value {
    let c = &core.config;
    let p = c.profile;
    let auth_methods: Vec<&str> = p.token_endpoint_auth_methods.to_vec();
    let confidential_methods: Vec<&str> = auth_methods
        .iter()
        .copied()
        .filter(|m| *m != "none")
        .collect();
    // HEART-OAUTH-40: under `heart` and `igov` a public client cannot revoke.
    let revocation_methods = if p.endpoints_require_client_auth {
        &confidential_methods
    } else {
        &auth_methods
    };
    let signing = core
        .keys
        .signing_alg()
        .unwrap_or_else(|| c.signing_alg.clone());
    let mut m = json!({
        "issuer": c.issuer,
        "authorization_endpoint": c.url("/authorize"),
        "token_endpoint": c.url("/token"),
        "userinfo_endpoint": c.url("/userinfo"),
        "jwks_uri": c.url("/jwks"),
        "introspection_endpoint": c.url("/introspect"),
        "revocation_endpoint": c.url("/revoke"),
        "scopes_supported": super::scope::OIDC_SCOPES,
        "response_types_supported": p.response_types,
        "response_modes_supported": ["query"],
        "grant_types_supported": p.grant_types,
        "dpop_signing_alg_values_supported": p.dpop_algs,
        // mTLS (RFC 8705) is not offered: DPoP is the sender constraint (IGOV-OAUTH-32, -33).
        "tls_client_certificate_bound_access_tokens": false,
        "subject_types_supported": [super::subjects::PUBLIC, super::subjects::PAIRWISE],
        "id_token_signing_alg_values_supported": [signing],
        "userinfo_signing_alg_values_supported": [signing],
        "token_endpoint_auth_methods_supported": auth_methods,
        "token_endpoint_auth_signing_alg_values_supported": p.client_assertion_algs,
        "introspection_endpoint_auth_methods_supported": confidential_methods,
        "introspection_endpoint_auth_signing_alg_values_supported": p.client_assertion_algs,
        "revocation_endpoint_auth_methods_supported": revocation_methods,
        "revocation_endpoint_auth_signing_alg_values_supported": p.client_assertion_algs,
        "code_challenge_methods_supported": p.code_challenge_methods,
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "jti", "auth_time", "nonce", "at_hash", "acr", "amr", "name", "preferred_username", "email", "email_verified"],
        "acr_values_supported": [super::tokens::ACR_PASSWORD],
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "claims_parameter_supported": true,
        "request_parameter_supported": true,
        "request_object_signing_alg_values_supported": p.client_assertion_algs,
        "request_object_encryption_alg_values_supported": crate::keys::REQUEST_ENCRYPTION_ALGS,
        "request_object_encryption_enc_values_supported": crate::keys::REQUEST_ENCRYPTION_ENCS,
        "request_uri_parameter_supported": false,
        "authorization_response_iss_parameter_supported": true,
    });
    if c.registration_mode != RegistrationMode::Closed
        && let Some(o) = m.as_object_mut()
    {
        o.insert("registration_endpoint".into(), json!(c.url("/register")));
    }
    m
}

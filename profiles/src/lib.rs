//! Declarative profile lock-downs for Custodia.
//!
//! A profile is data plus small checks that the server consults at named enforcement points
//! (client registration, authorization request, token issuance, introspection, discovery):
//! `default` (the OAuth 2.0 Security BCP, RFC 9700, baseline), `heart` (HEART OAuth 2.0, OpenID
//! Connect and UMA 2.0), `heart-fhir` (`heart` with the FHIR semantic profiles) and `igov` (iGov
//! OAuth 2.0 and OpenID Connect). The server never branches on a profile's name: it reads the data.
//! Rule ids are those of `../shared/specs/heart-igov.md`.
//!
//! It knows no HTTP and no SQL: every check takes plain values and returns a [`Violation`] that the
//! server maps to the protocol error of the enforcement point.

use std::fmt;

pub mod fhir;

/// A rule a request or a registration broke: which rule, and why, written for the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The spec rule id (for example `BCP-24`), for logs and tests.
    pub rule: &'static str,
    /// A caller-facing description: lower case, no trailing period.
    pub description: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.description, self.rule)
    }
}

fn violation(rule: &'static str, description: impl Into<String>) -> Violation {
    Violation {
        rule,
        description: description.into(),
    }
}

/// Lifetimes (seconds) a profile allows at most.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LifetimeCaps {
    pub authorization_code: u64,
    pub access_token: u64,
    pub id_token: u64,
    pub refresh_token: u64,
}

/// The kind of client, as far as a profile cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApplicationType {
    Web,
    Native,
}

/// A profile: what the server may offer and accept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    pub name: &'static str,
    pub grant_types: &'static [&'static str],
    pub response_types: &'static [&'static str],
    pub token_endpoint_auth_methods: &'static [&'static str],
    pub code_challenge_methods: &'static [&'static str],
    /// Signing algorithms the server may use for its own tokens.
    pub signing_algs: &'static [&'static str],
    /// Algorithms accepted on client assertions (`private_key_jwt`).
    pub client_assertion_algs: &'static [&'static str],
    /// Smallest RSA modulus accepted, in bits.
    pub min_rsa_bits: u32,
    /// PKCE is required of public clients (RFC 9700 §2.1.1).
    pub pkce_required_for_public_clients: bool,
    /// PKCE is required of every client (IGOV-OAUTH-14).
    pub pkce_required_for_all_clients: bool,
    /// Native clients may use `http` loopback redirect URIs (RFC 8252 §7.3; iGov forbids them,
    /// IGOV-OAUTH-11).
    pub loopback_http_redirects: bool,
    /// A client registers one grant type (besides `refresh_token`): multi-mode software registers
    /// one client per mode (HEART-OAUTH-22).
    pub one_grant_type_per_client: bool,
    /// Resource registration speaks FHIR: scopes in the HEART / SMART grammar, FHIR resource
    /// types ([`fhir`]; HEART-FHIRUMA-01, -02).
    pub fhir_semantics: bool,
    /// How long clients may cache discovery documents and the JWKS, seconds (`Cache-Control:
    /// max-age`; HEART-OAUTH-30 and IGOV-OAUTH-34 recommend at least a week — a new signing key
    /// is then found by refetching on an unknown `kid`).
    pub metadata_max_age: u64,
    /// Every authorization request names its `redirect_uri` (HEART-OAUTH-11, IGOV-OAUTH-17).
    pub redirect_uri_required: bool,
    /// Algorithms accepted on DPoP proofs (`dpop_signing_alg_values_supported`).
    pub dpop_algs: &'static [&'static str],
    /// `client_credentials` clients may register themselves (HEART-OAUTH-24 forbids it: an
    /// administrator adds them).
    pub dynamic_client_credentials: bool,
    /// Every access token is sender-constrained: clients register `dpop_bound_access_tokens` and
    /// a token request without a DPoP proof is refused (IGOV-OAUTH-10, -12; CONF-06 — mTLS is not
    /// offered, so DPoP is the constraint).
    pub sender_constrained_tokens: bool,
    /// Resource servers (clients registered for `uma_protection`) are kept apart from other
    /// clients: besides `uma_protection` they register only `openid` and only the
    /// authorization-code grant, and only they may introspect (HEART-OAUTH-41, IGOV-OAUTH-44).
    pub resource_servers_apart: bool,
    /// Introspection and revocation need client authentication (HEART-OAUTH-40; under `heart`
    /// and `igov` that is `private_key_jwt`): a PAT alone does not introspect (it may come with
    /// its resource server's assertion, CONF-11) and a public client cannot revoke.
    pub endpoints_require_client_auth: bool,
    /// OpenID Connect authentication requests follow iGov §2.1: `state` and `nonce` are required
    /// (IGOV-OIDC-02), `vtr` and `acr_values` do not come together (-03), and requested
    /// `acr_values` must be met, since the ID token's `acr` must be one of them (-09).
    pub strict_oidc_requests: bool,
    /// Members a software statement must carry (HEART-OAUTH-26, IGOV-OAUTH-30); when the list is
    /// not empty the statement must also carry the client's keys (`jwks` or `jwks_uri`).
    pub software_statement_members: &'static [&'static str],
    /// A client's redirect URIs are all of one kind — https, loopback `http`, or a private-use
    /// scheme — never a mix (HEART-OAUTH-16).
    pub one_redirect_category: bool,
    pub lifetime_caps: LifetimeCaps,
    /// `uma_profiles_supported` values in force (empty for `default`).
    pub uma_profiles: &'static [&'static str],
}

/// The OAuth 2.0 Security BCP baseline (RFC 9700): code flow only, PKCE with S256, no implicit or
/// password grant, exact redirect URIs, https redirect URIs except loopback for native clients.
pub const DEFAULT: Profile = Profile {
    name: "default",
    grant_types: &[
        "authorization_code",
        "refresh_token",
        "client_credentials",
        "urn:ietf:params:oauth:grant-type:uma-ticket",
    ],
    response_types: &["code"],
    token_endpoint_auth_methods: &[
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
        "none",
    ],
    code_challenge_methods: &["S256"],
    signing_algs: &["RS256", "ES256", "PS256"],
    client_assertion_algs: &["RS256", "PS256", "ES256"],
    min_rsa_bits: 2048,
    pkce_required_for_public_clients: true,
    lifetime_caps: LifetimeCaps {
        authorization_code: 60,
        access_token: 3600,
        id_token: 3600,
        refresh_token: 60 * 60 * 24 * 90,
    },
    uma_profiles: &[],
    pkce_required_for_all_clients: false,
    loopback_http_redirects: true,
    one_grant_type_per_client: false,
    fhir_semantics: false,
    metadata_max_age: 60,
    redirect_uri_required: false,
    dpop_algs: &["ES256", "RS256", "PS256"],
    dynamic_client_credentials: true,
    sender_constrained_tokens: false,
    resource_servers_apart: false,
    endpoints_require_client_auth: false,
    strict_oidc_requests: false,
    software_statement_members: &[],
    one_redirect_category: false,
};

/// A week: the metadata cache lifetime HEART and iGov recommend.
const METADATA_MAX_AGE: u64 = 7 * 24 * 3600;

/// HEART (OAuth 2.0 ID3, OpenID Connect, UMA 2.0): full and direct-access clients authenticate
/// with `private_key_jwt` (HEART-OAUTH-12), public native clients with PKCE S256 (-07); one grant
/// type per client (-22); RS256 supported (-14, -35); access tokens ≤ 1 h and refresh tokens ≤ 24 h
/// (-43), ID tokens ≤ 5 min (HEART-OIDC-03). The implicit grant HEART asks for (-21) is not
/// offered: RFC 9700 forbids it (a recorded deviation, CONF-01).
pub const HEART: Profile = Profile {
    name: "heart",
    grant_types: &[
        "authorization_code",
        "refresh_token",
        "client_credentials",
        "urn:ietf:params:oauth:grant-type:uma-ticket",
    ],
    response_types: &["code"],
    token_endpoint_auth_methods: &["private_key_jwt", "none"],
    code_challenge_methods: &["S256"],
    signing_algs: &["RS256", "PS256", "ES256"],
    client_assertion_algs: &["RS256", "PS256", "ES256"],
    min_rsa_bits: 2048,
    pkce_required_for_public_clients: true,
    lifetime_caps: LifetimeCaps {
        authorization_code: 60,
        access_token: 3600,
        id_token: 300,
        refresh_token: 86_400,
    },
    // HEART-UMA-08: the profile's URI (the specification's address; the exact identifier is not
    // retrievable, so the conservative reading).
    uma_profiles: &["https://openid.net/specs/openid-heart-uma2-1_0.html"],
    pkce_required_for_all_clients: false,
    loopback_http_redirects: true,
    one_grant_type_per_client: true,
    fhir_semantics: false,
    metadata_max_age: METADATA_MAX_AGE,
    redirect_uri_required: true,
    dpop_algs: &["ES256", "RS256", "PS256"],
    dynamic_client_credentials: false,
    sender_constrained_tokens: false,
    resource_servers_apart: true,
    endpoints_require_client_auth: true,
    strict_oidc_requests: false,
    // HEART-OAUTH-26.
    software_statement_members: &["redirect_uris", "grant_types", "client_name", "client_uri"],
    // HEART-OAUTH-16.
    one_redirect_category: true,
};

/// `heart` with the HEART FHIR semantic profiles (scopes and resource types).
pub const HEART_FHIR: Profile = Profile {
    name: "heart-fhir",
    uma_profiles: &[
        "https://openid.net/specs/openid-heart-uma2-1_0.html",
        "https://openid.net/specs/openid-heart-fhir-oauth2-1_0.html",
    ],
    fhir_semantics: true,
    ..HEART
};

/// iGov (OAuth 2.0 draft 10, OpenID Connect draft 04): `private_key_jwt` only (IGOV-OAUTH-19; mTLS
/// is not offered), PKCE S256 from every client (-14), no `http` loopback redirect URIs (-11),
/// PS256 or ES256 and never RS256 (-04), access tokens ≤ 1 h and refresh tokens ≤ 24 h (-42).
pub const IGOV: Profile = Profile {
    name: "igov",
    grant_types: &[
        "authorization_code",
        "refresh_token",
        "client_credentials",
        "urn:ietf:params:oauth:grant-type:uma-ticket",
    ],
    response_types: &["code"],
    token_endpoint_auth_methods: &["private_key_jwt"],
    code_challenge_methods: &["S256"],
    signing_algs: &["PS256", "ES256"],
    client_assertion_algs: &["PS256", "ES256"],
    min_rsa_bits: 2048,
    pkce_required_for_public_clients: true,
    lifetime_caps: LifetimeCaps {
        authorization_code: 60,
        access_token: 3600,
        id_token: 300,
        refresh_token: 86_400,
    },
    uma_profiles: &[],
    pkce_required_for_all_clients: true,
    loopback_http_redirects: false,
    // IGOV-OAUTH-16.
    one_grant_type_per_client: true,
    fhir_semantics: false,
    metadata_max_age: METADATA_MAX_AGE,
    redirect_uri_required: true,
    // IGOV-OAUTH-04: PS256 or ES256 for every JWT, DPoP proofs included.
    dpop_algs: &["ES256", "PS256"],
    dynamic_client_credentials: true,
    // IGOV-OAUTH-12.
    sender_constrained_tokens: true,
    // IGOV-OAUTH-44: introspection only for protected resources.
    resource_servers_apart: true,
    endpoints_require_client_auth: true,
    strict_oidc_requests: true,
    // IGOV-OAUTH-30 (mTLS is not offered, so `tls_client_certificate_bound_access_tokens` is
    // required present, and must be false).
    software_statement_members: &[
        "redirect_uris",
        "grant_types",
        "client_name",
        "client_uri",
        "tls_client_certificate_bound_access_tokens",
        "dpop_signing_alg_values_supported",
    ],
    one_redirect_category: false,
};

const ALL: &[&Profile] = &[&DEFAULT, &HEART, &HEART_FHIR, &IGOV];

/// Names of the profiles this build knows.
pub fn names() -> Vec<&'static str> {
    ALL.iter().map(|p| p.name).collect()
}

impl Profile {
    /// The profile with this name, if this build has it.
    pub fn by_name(name: &str) -> Option<&'static Profile> {
        ALL.iter().copied().find(|p| p.name == name)
    }

    /// Enforcement point: client registration. Checks grant types, response types and the token
    /// endpoint authentication method against what the profile allows.
    pub fn check_client(
        &self,
        grant_types: &[String],
        response_types: &[String],
        auth_method: &str,
    ) -> Result<(), Violation> {
        for g in grant_types {
            if !self.grant_types.contains(&g.as_str()) {
                return Err(violation(
                    "BCP-19",
                    format!(
                        "grant type `{g}` is not allowed by the `{}` profile",
                        self.name
                    ),
                ));
            }
        }
        for r in response_types {
            if !self.response_types.contains(&r.as_str()) {
                return Err(violation(
                    "BCP-10",
                    format!(
                        "response type `{r}` is not allowed by the `{}` profile",
                        self.name
                    ),
                ));
            }
        }
        if !self.token_endpoint_auth_methods.contains(&auth_method) {
            return Err(violation(
                "BCP-20",
                format!(
                    "token endpoint auth method `{auth_method}` is not allowed by the `{}` profile",
                    self.name
                ),
            ));
        }
        if auth_method == "none" && grant_types.iter().any(|g| g == "client_credentials") {
            return Err(violation(
                "BCP-20",
                "a public client cannot use the `client_credentials` grant",
            ));
        }
        if self.one_grant_type_per_client
            && grant_types.iter().filter(|g| *g != "refresh_token").count() > 1
        {
            return Err(violation(
                "HEART-OAUTH-22",
                format!(
                    "the `{}` profile allows one grant type per client (besides `refresh_token`): register one client per mode",
                    self.name
                ),
            ));
        }
        Ok(())
    }

    /// Enforcement point: client registration. Under a profile that keeps resource servers apart
    /// (HEART-OAUTH-41, IGOV-OAUTH-44), a client registered for `uma_protection` registers only
    /// `openid` besides it (the resource server learns who connected it) and only the
    /// authorization-code grant (PATs), so its credentials serve nothing but the protection API
    /// and introspection. Under a profile that requires sender-constrained tokens, every client
    /// registers `dpop_bound_access_tokens: true` (IGOV-OAUTH-10, -12).
    pub fn check_client_role(
        &self,
        scopes: &[String],
        grant_types: &[String],
        dpop_bound_access_tokens: bool,
    ) -> Result<(), Violation> {
        if self.sender_constrained_tokens && !dpop_bound_access_tokens {
            return Err(violation(
                "IGOV-OAUTH-10",
                format!(
                    "the `{}` profile requires sender-constrained tokens: register `dpop_bound_access_tokens: true` and send DPoP proofs",
                    self.name
                ),
            ));
        }
        if !self.resource_servers_apart || !scopes.iter().any(|s| s == "uma_protection") {
            return Ok(());
        }
        if let Some(s) = scopes
            .iter()
            .find(|s| *s != "uma_protection" && *s != "openid")
        {
            return Err(violation(
                "HEART-OAUTH-41",
                format!(
                    "under the `{}` profile a resource server (`uma_protection`) is a client of its own: it cannot also register scope `{s}`",
                    self.name
                ),
            ));
        }
        if let Some(g) = grant_types
            .iter()
            .find(|g| *g != "authorization_code" && *g != "refresh_token")
        {
            return Err(violation(
                "HEART-OAUTH-41",
                format!(
                    "under the `{}` profile a resource server (`uma_protection`) is a client of its own: it cannot also register the `{g}` grant",
                    self.name
                ),
            ));
        }
        Ok(())
    }

    /// Enforcement point: dynamic registration with a software statement. `members`: the
    /// statement's claim names. The profile's required members must be there, and then the
    /// client's keys too (HEART-OAUTH-26, IGOV-OAUTH-30).
    pub fn check_software_statement(&self, members: &[&str]) -> Result<(), Violation> {
        let rule = "HEART-OAUTH-26, IGOV-OAUTH-30";
        if let Some(m) = self
            .software_statement_members
            .iter()
            .find(|m| !members.contains(m))
        {
            return Err(violation(
                rule,
                format!(
                    "the `{}` profile requires `{m}` in software statements",
                    self.name
                ),
            ));
        }
        if !self.software_statement_members.is_empty()
            && !members.contains(&"jwks")
            && !members.contains(&"jwks_uri")
        {
            return Err(violation(
                rule,
                format!(
                    "the `{}` profile requires the client's keys (`jwks` or `jwks_uri`) in software statements",
                    self.name
                ),
            ));
        }
        Ok(())
    }

    /// Enforcement point: client registration, all the redirect URIs at once: under a profile
    /// with `one_redirect_category`, they are all https, all loopback `http`, or all of a
    /// private-use scheme (HEART-OAUTH-16).
    pub fn check_redirect_categories(&self, uris: &[String]) -> Result<(), Violation> {
        if !self.one_redirect_category {
            return Ok(());
        }
        let category = |u: &String| match url::Url::parse(u) {
            Ok(p) if p.scheme() == "https" => "https",
            Ok(p) if p.scheme() == "http" && is_loopback_url(&p) => "loopback",
            Ok(_) => "private-use scheme",
            Err(_) => "invalid",
        };
        let mut kinds: Vec<&str> = uris.iter().map(category).collect();
        kinds.sort_unstable();
        kinds.dedup();
        if kinds.len() > 1 {
            return Err(violation(
                "HEART-OAUTH-16",
                format!(
                    "the `{}` profile does not let one client mix kinds of redirect URI ({})",
                    self.name,
                    kinds.join(", ")
                ),
            ));
        }
        Ok(())
    }

    /// Enforcement point: client registration. A redirect URI must be absolute, without fragment or
    /// wildcard, and https — except loopback http and private-use schemes for native clients
    /// (RFC 9700 §2.1 and §2.6, RFC 8252 §7).
    pub fn check_redirect_uri(&self, app: ApplicationType, uri: &str) -> Result<(), Violation> {
        let parsed = url::Url::parse(uri).map_err(|_| {
            violation(
                "BCP-01",
                format!("redirect URI `{uri}` is not an absolute URI"),
            )
        })?;
        if parsed.fragment().is_some() || uri.contains('#') {
            return Err(violation(
                "BCP-01",
                format!("redirect URI `{uri}` must not contain a fragment"),
            ));
        }
        if uri.contains('*') {
            return Err(violation(
                "BCP-01",
                format!("redirect URI `{uri}` must not contain a wildcard"),
            ));
        }
        match parsed.scheme() {
            "https" => {
                if parsed.host_str().is_none_or(str::is_empty) {
                    return Err(violation(
                        "BCP-01",
                        format!("redirect URI `{uri}` has no host"),
                    ));
                }
                Ok(())
            }
            "http" => {
                if app == ApplicationType::Native && !self.loopback_http_redirects {
                    Err(violation(
                        "IGOV-OAUTH-11",
                        format!(
                            "redirect URI `{uri}`: the `{}` profile allows no http redirect URIs, loopback included; use a private-use scheme",
                            self.name
                        ),
                    ))
                } else if app == ApplicationType::Native && is_loopback_url(&parsed) {
                    Ok(())
                } else {
                    Err(violation(
                        "BCP-24",
                        format!(
                            "redirect URI `{uri}` must use https (http only for loopback redirect URIs of native clients)"
                        ),
                    ))
                }
            }
            "javascript" | "data" | "file" | "vbscript" | "ftp" | "ws" | "wss" => Err(violation(
                "BCP-01",
                format!("redirect URI `{uri}` uses a forbidden scheme"),
            )),
            scheme => {
                // A private-use scheme (RFC 8252 §7.1) is only for native apps and must look like a
                // reverse domain name, so that two apps are unlikely to claim the same one.
                if app == ApplicationType::Native && scheme.contains('.') {
                    Ok(())
                } else {
                    Err(violation(
                        "BCP-24",
                        format!(
                            "redirect URI `{uri}` uses the scheme `{scheme}`: only native clients may use a private-use scheme, in reverse domain name form"
                        ),
                    ))
                }
            }
        }
    }

    /// Enforcement point: configuration. A lifetime above the profile's cap is refused.
    pub fn check_lifetimes(
        &self,
        code: u64,
        access: u64,
        id: u64,
        refresh: u64,
    ) -> Result<(), Violation> {
        let caps = self.lifetime_caps;
        for (what, value, cap) in [
            ("authorization code lifetime", code, caps.authorization_code),
            ("access token lifetime", access, caps.access_token),
            ("ID token lifetime", id, caps.id_token),
            ("refresh token lifetime", refresh, caps.refresh_token),
        ] {
            if value == 0 {
                return Err(violation(
                    "CORE-02",
                    format!("the {what} must be above 0 seconds"),
                ));
            }
            if value > cap {
                return Err(violation(
                    "CORE-02",
                    format!(
                        "the {what} of {value} s is above the `{}` profile's cap of {cap} s",
                        self.name
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Enforcement point: configuration and key generation.
    pub fn check_signing_alg(&self, alg: &str) -> Result<(), Violation> {
        if self.signing_algs.contains(&alg) {
            Ok(())
        } else {
            Err(violation(
                "BCP-20",
                format!(
                    "signing algorithm `{alg}` is not allowed by the `{}` profile (allowed: {})",
                    self.name,
                    self.signing_algs.join(", ")
                ),
            ))
        }
    }

    /// Enforcement point: authorization request. PKCE with an allowed method; required of public clients.
    pub fn check_pkce(
        &self,
        public_client: bool,
        method: Option<&str>,
        has_challenge: bool,
    ) -> Result<(), Violation> {
        if has_challenge {
            let m = method.unwrap_or("plain");
            if !self.code_challenge_methods.contains(&m) {
                return Err(violation(
                    "BCP-08",
                    format!("code challenge method `{m}` is not supported, use `S256`"),
                ));
            }
        } else if method.is_some() {
            return Err(violation(
                "BCP-05",
                "`code_challenge_method` was sent without `code_challenge`",
            ));
        } else if public_client && self.pkce_required_for_public_clients {
            return Err(violation(
                "BCP-05",
                "public clients must use PKCE: `code_challenge` is required",
            ));
        } else if self.pkce_required_for_all_clients {
            return Err(violation(
                "IGOV-OAUTH-14",
                format!(
                    "the `{}` profile requires PKCE of every client: `code_challenge` is required",
                    self.name
                ),
            ));
        }
        Ok(())
    }
}

/// Whether a URL's host is a loopback address or `localhost`.
pub fn is_loopback_url(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // BCP-01, BCP-24: data-driven redirect URI rules.
    #[test]
    fn redirect_uri_rules() {
        use ApplicationType::*;
        let cases: &[(ApplicationType, &str, Result<(), &str>)] = &[
            (Web, "https://client.example/cb", Ok(())),
            (Web, "https://client.example/cb?x=1", Ok(())),
            (Web, "http://client.example/cb", Err("BCP-24")),
            (Web, "http://127.0.0.1:9000/cb", Err("BCP-24")),
            (Native, "http://127.0.0.1:9000/cb", Ok(())),
            (Native, "http://[::1]/cb", Ok(())),
            (Native, "http://localhost/cb", Ok(())),
            (Native, "http://app.example/cb", Err("BCP-24")),
            (Web, "https://client.example/cb#frag", Err("BCP-01")),
            (Web, "https://*.client.example/cb", Err("BCP-01")),
            (Web, "https://client.example/*", Err("BCP-01")),
            (Web, "/relative/cb", Err("BCP-01")),
            (Native, "com.example.app:/cb", Ok(())),
            (Web, "com.example.app:/cb", Err("BCP-24")),
            (Native, "myapp:/cb", Err("BCP-24")),
            (Native, "javascript:alert(1)", Err("BCP-01")),
        ];
        for (app, uri, want) in cases {
            let got = DEFAULT.check_redirect_uri(*app, uri).map_err(|v| v.rule);
            assert_eq!(got, *want, "{app:?} {uri}");
        }
    }

    #[test]
    fn client_rules() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(
            DEFAULT
                .check_client(
                    &s(&["authorization_code"]),
                    &s(&["code"]),
                    "client_secret_basic"
                )
                .is_ok()
        );
        assert_eq!(
            DEFAULT
                .check_client(&s(&["implicit"]), &s(&["code"]), "none")
                .map_err(|v| v.rule),
            Err("BCP-19")
        );
        assert_eq!(
            DEFAULT
                .check_client(&s(&["password"]), &s(&["code"]), "none")
                .map_err(|v| v.rule),
            Err("BCP-19")
        );
        assert_eq!(
            DEFAULT
                .check_client(&s(&["authorization_code"]), &s(&["token"]), "none")
                .map_err(|v| v.rule),
            Err("BCP-10")
        );
        assert!(
            DEFAULT
                .check_client(&s(&["client_credentials"]), &[], "none")
                .is_err()
        );
        assert!(
            DEFAULT
                .check_client(
                    &s(&["authorization_code"]),
                    &s(&["code"]),
                    "client_secret_jwt"
                )
                .is_err()
        );
    }

    #[test]
    fn pkce_rules() {
        assert!(DEFAULT.check_pkce(true, Some("S256"), true).is_ok());
        assert!(DEFAULT.check_pkce(false, None, false).is_ok());
        assert_eq!(
            DEFAULT.check_pkce(true, None, false).map_err(|v| v.rule),
            Err("BCP-05")
        );
        assert_eq!(
            DEFAULT
                .check_pkce(false, Some("plain"), true)
                .map_err(|v| v.rule),
            Err("BCP-08")
        );
        assert_eq!(
            DEFAULT.check_pkce(false, None, true).map_err(|v| v.rule),
            Err("BCP-08")
        );
    }

    #[test]
    fn lifetime_caps() {
        assert!(DEFAULT.check_lifetimes(60, 600, 600, 86400).is_ok());
        assert!(DEFAULT.check_lifetimes(61, 600, 600, 86400).is_err());
        assert!(DEFAULT.check_lifetimes(60, 7200, 600, 86400).is_err());
        assert!(DEFAULT.check_lifetimes(60, 0, 600, 86400).is_err());
        assert!(Profile::by_name("default").is_some());
        assert!(Profile::by_name("nope").is_none());
    }

    // The HEART and iGov profiles as data: each rule refused and accepted at its enforcement
    // point (rule ids of `../shared/specs/heart-igov.md`).
    #[test]
    fn client_roles() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let code = s(&["authorization_code", "refresh_token"]);
        let rs = s(&["openid", "uma_protection"]);
        // HEART-OAUTH-41, IGOV-OAUTH-44: a resource server is a client of its own.
        for p in [&HEART, &HEART_FHIR, &IGOV] {
            let bound = p.sender_constrained_tokens;
            assert!(p.check_client_role(&rs, &code, bound).is_ok(), "{}", p.name);
            for (scopes, grants) in [
                (s(&["uma_protection", "patient/*.read"]), code.clone()),
                (rs.clone(), s(&["client_credentials"])),
                (
                    rs.clone(),
                    s(&["urn:ietf:params:oauth:grant-type:uma-ticket"]),
                ),
            ] {
                assert_eq!(
                    p.check_client_role(&scopes, &grants, bound)
                        .map_err(|v| v.rule),
                    Err("HEART-OAUTH-41"),
                    "{} {scopes:?} {grants:?}",
                    p.name
                );
            }
            // Ordinary clients are not touched by the rule.
            let cc = s(&["client_credentials"]);
            assert!(p.check_client_role(&s(&["api:read"]), &cc, bound).is_ok());
        }
        // The default profile lets one client be both.
        let both = s(&["authorization_code", "client_credentials"]);
        assert!(DEFAULT.check_client_role(&rs, &both, false).is_ok());
        // IGOV-OAUTH-10, -12: under igov every client is DPoP-bound.
        assert_eq!(
            IGOV.check_client_role(&s(&["openid"]), &code, false)
                .map_err(|v| v.rule),
            Err("IGOV-OAUTH-10")
        );
        assert!(
            HEART
                .check_client_role(&s(&["openid"]), &code, false)
                .is_ok()
        );
    }

    #[test]
    fn redirect_categories() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let mixed = s(&["https://app.example/cb", "com.example.app:/cb"]);
        assert_eq!(
            HEART.check_redirect_categories(&mixed).map_err(|v| v.rule),
            Err("HEART-OAUTH-16")
        );
        let one_kind = s(&["https://a.example/cb", "https://a.example/2"]);
        assert!(HEART.check_redirect_categories(&one_kind).is_ok());
        let native = s(&["http://127.0.0.1/cb", "com.example.app:/cb"]);
        assert!(HEART.check_redirect_categories(&native).is_err());
        assert!(DEFAULT.check_redirect_categories(&mixed).is_ok());
    }

    #[test]
    fn software_statement_members() {
        let heart = [
            "redirect_uris",
            "grant_types",
            "client_name",
            "client_uri",
            "jwks",
        ];
        assert!(HEART.check_software_statement(&heart).is_ok());
        assert!(DEFAULT.check_software_statement(&[]).is_ok());
        // Missing `client_uri`; missing keys.
        let v = HEART.check_software_statement(&heart[..3]);
        assert!(v.is_err_and(|v| v.description.contains("`client_uri`")));
        let v = HEART.check_software_statement(&heart[..4]);
        assert!(v.is_err_and(|v| v.description.contains("keys")));
        // iGov also asks for the sender-constraint members.
        let v = IGOV.check_software_statement(&heart);
        assert!(v.is_err_and(|v| v.description.contains("tls_client_certificate_bound")));
    }

    #[test]
    fn heart_and_igov_rules() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let code = s(&["code"]);
        for name in ["default", "heart", "heart-fhir", "igov"] {
            assert_eq!(Profile::by_name(name).map(|p| p.name), Some(name));
        }
        // HEART-OAUTH-12: full and direct-access clients use private_key_jwt; public ones none.
        for p in [&HEART, &HEART_FHIR] {
            let ac = s(&["authorization_code"]);
            assert!(p.check_client(&ac, &code, "private_key_jwt").is_ok());
            assert!(p.check_client(&ac, &code, "none").is_ok());
            assert!(p.check_client(&ac, &code, "client_secret_basic").is_err());
            assert!(p.check_client(&ac, &code, "client_secret_post").is_err());
            // HEART-OAUTH-22: one grant type per client (refresh tokens aside).
            assert_eq!(
                p.check_client(
                    &s(&["authorization_code", "client_credentials"]),
                    &code,
                    "private_key_jwt"
                )
                .map_err(|v| v.rule),
                Err("HEART-OAUTH-22")
            );
            assert!(
                p.check_client(
                    &s(&["authorization_code", "refresh_token"]),
                    &code,
                    "private_key_jwt"
                )
                .is_ok()
            );
            // HEART-OAUTH-43, HEART-OIDC-03: lifetimes.
            assert!(p.check_lifetimes(60, 3600, 300, 86_400).is_ok());
            assert!(p.check_lifetimes(60, 3601, 300, 86_400).is_err());
            assert!(p.check_lifetimes(60, 3600, 301, 86_400).is_err());
            assert!(p.check_lifetimes(60, 3600, 300, 86_401).is_err());
            // HEART-OAUTH-14, -35: RS256 supported.
            assert!(p.check_signing_alg("RS256").is_ok());
            // HEART-OAUTH-33: no `plain`.
            assert!(p.check_pkce(true, Some("plain"), true).is_err());
            // HEART-UMA-08.
            assert!(
                p.uma_profiles
                    .contains(&"https://openid.net/specs/openid-heart-uma2-1_0.html")
            );
        }
        assert!(
            HEART_FHIR
                .uma_profiles
                .contains(&"https://openid.net/specs/openid-heart-fhir-oauth2-1_0.html")
        );
        // IGOV-OAUTH-19: private_key_jwt only.
        let ac = s(&["authorization_code"]);
        assert!(IGOV.check_client(&ac, &code, "private_key_jwt").is_ok());
        for m in ["none", "client_secret_basic", "client_secret_post"] {
            assert!(IGOV.check_client(&ac, &code, m).is_err(), "{m}");
        }
        // IGOV-OAUTH-16: one grant type per client.
        assert_eq!(
            IGOV.check_client(
                &s(&["authorization_code", "client_credentials"]),
                &code,
                "private_key_jwt"
            )
            .map_err(|v| v.rule),
            Err("HEART-OAUTH-22")
        );
        // IGOV-OAUTH-04: PS256 or ES256, never RS256.
        assert!(!IGOV.dpop_algs.contains(&"RS256"));
        assert!(IGOV.check_signing_alg("RS256").is_err());
        assert!(IGOV.check_signing_alg("PS256").is_ok());
        assert!(IGOV.check_signing_alg("ES256").is_ok());
        assert!(!IGOV.client_assertion_algs.contains(&"RS256"));
        // IGOV-OAUTH-14: PKCE from every client, S256 only.
        assert_eq!(
            IGOV.check_pkce(false, None, false).map_err(|v| v.rule),
            Err("IGOV-OAUTH-14")
        );
        assert!(IGOV.check_pkce(false, Some("S256"), true).is_ok());
        assert!(DEFAULT.check_pkce(false, None, false).is_ok());
        // IGOV-OAUTH-11: no http loopback redirect URIs; private-use schemes for native apps.
        assert_eq!(
            IGOV.check_redirect_uri(ApplicationType::Native, "http://127.0.0.1:9000/cb")
                .map_err(|v| v.rule),
            Err("IGOV-OAUTH-11")
        );
        assert!(
            IGOV.check_redirect_uri(ApplicationType::Native, "com.example.app:/cb")
                .is_ok()
        );
        assert!(
            IGOV.check_redirect_uri(ApplicationType::Web, "https://client.example/cb")
                .is_ok()
        );
        // IGOV-OAUTH-42: lifetimes.
        assert!(IGOV.check_lifetimes(60, 3600, 300, 86_400).is_ok());
        assert!(IGOV.check_lifetimes(60, 3600, 300, 86_401).is_err());
    }
}

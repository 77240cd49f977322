//! End-to-end tests: one binary, one module per area. Tests name the spec rules they cover
//! (`../shared/specs/`) and the seed vulnerabilities they show refused.

mod bad_input;
mod cli;
mod client_credentials;
mod concurrency;
mod dpop;
mod grant;
mod grant_rules;
mod keys;
mod oidc_flow;
mod oidc_rules;
mod profile_rules;
mod profiles;
mod prompt;
mod protection;
mod registration;
mod resource_indicators;
mod schema;
mod sdk;
mod security;
mod upstream;

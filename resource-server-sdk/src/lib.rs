//! `custodia-sdk`: what a resource server links to be protected by Custodia (UMA 2.0 Federated
//! Authorization): discovery, PAT lifecycle, resource registration, permission tickets and the
//! `WWW-Authenticate: UMA` challenge, RPT verification, and an actix-web guard.
//!
//! Empty until the protection-API issue. It talks to the server over HTTP only and never depends on
//! the server crate.

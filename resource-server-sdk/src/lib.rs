// The README is the crate documentation; its examples use the actix adapter, so they are
// compiled as doctests when that feature is on (docs.rs builds with all features).
#![cfg_attr(feature = "actix", doc = include_str!("../README.md"))]
#![cfg_attr(
    not(feature = "actix"),
    doc = "Resource-server SDK for Custodia (UMA 2.0). See README.md; build the docs with `--features actix` for the full guide."
)]

mod challenge;
mod client;
mod config;
mod discovery;
pub mod dpop;
mod error;
mod http;
mod introspection;
mod jwks;
mod jwt;
mod pat;
mod permission;
pub mod pkce;
mod resources;
mod rpt;
mod secret;

#[cfg(feature = "actix")]
pub mod actix;

#[cfg(test)]
mod test_support;

pub use challenge::{UmaChallenge, WARNING_AS_UNREACHABLE};
pub use client::UmaClient;
pub use config::{ClientConfig, Clock};
pub use discovery::Discovery;
pub use error::{Error, TokenError};
pub use introspection::IntrospectionResponse;
pub use jwks::Algorithm;
pub use jwt::Audience;
pub use pat::{MemoryPatStore, Pat, PatStore, PendingAuthorization, RefreshGuard, UMA_PROTECTION};
pub use permission::Permission;
pub use resources::{RegisteredResource, Resource, ResourceDescription};
pub use rpt::{BREAK_THE_GLASS, DEFAULT_LEEWAY, Rpt, RptPermission, RptVerifier, Verification};
pub use secret::{AccessToken, ClientSecret, Nonce, PermissionTicket, RefreshToken};

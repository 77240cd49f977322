//! `custodia-server`: the Custodia authorization server.
//!
//! Layers run one way: [`http`] (actix-web: extract, authenticate, call, map) → [`protocol`] (OAuth
//! 2.0, OpenID Connect; takes `now` as input) → [`store`] / [`keys`] / `custodia-profiles`.
//! See `ARCHITECTURE.md` for the map and its invariants.

pub mod cli;
pub mod config;
pub mod http;
pub mod keys;
pub mod protocol;
pub mod secrets;
pub mod store;

/// Seconds since the Unix epoch (the only place the server reads the clock; the protocol core
/// takes `now` as an argument).
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

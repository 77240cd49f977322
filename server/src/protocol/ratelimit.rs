//! Per-instance rate limits (GCRA, the `governor` crate): the token, introspection and revocation
//! endpoints per source address and per authenticated client (never per a client id merely named
//! in a request, so nobody can spend another client's budget); login per source address. The source address is the TCP peer: forwarded headers are
//! not trusted (RFC 9700 §4.13).

use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::RateLimits;

pub struct Limits {
    token: DefaultKeyedRateLimiter<String>,
    login: DefaultKeyedRateLimiter<String>,
    protection: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
}

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

impl Limits {
    pub fn new(cfg: RateLimits) -> Limits {
        Limits {
            token: RateLimiter::keyed(
                Quota::per_second(nz(cfg.token_per_second)).allow_burst(nz(cfg.token_burst)),
            ),
            login: RateLimiter::keyed(Quota::per_minute(nz(cfg.login_per_minute))),
            protection: RateLimiter::keyed(
                Quota::per_second(nz(cfg.protection_per_second))
                    .allow_burst(nz(cfg.protection_per_second)),
            ),
            clock: DefaultClock::default(),
        }
    }

    fn check(&self, lim: &DefaultKeyedRateLimiter<String>, key: String) -> Result<(), u64> {
        lim.check_key(&key)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()).as_secs().max(1))
    }

    /// Token, introspection and revocation requests: `Err(seconds to wait)` when over the limit.
    pub fn token(&self, key: String) -> Result<(), u64> {
        self.check(&self.token, key)
    }

    pub fn login(&self, key: String) -> Result<(), u64> {
        self.check(&self.login, key)
    }

    /// Protection API calls, keyed by the authenticated resource server.
    pub fn protection(&self, key: String) -> Result<(), u64> {
        self.check(&self.protection, key)
    }

    /// Forget idle keys (called from housekeeping).
    pub fn shrink(&self) {
        self.token.retain_recent();
        self.login.retain_recent();
        self.protection.retain_recent();
        self.protection.shrink_to_fit();
        self.token.shrink_to_fit();
        self.login.shrink_to_fit();
    }
}

//! Local login for the authorization endpoint: password verification (Argon2id, off the executor),
//! slow-down after failed logins, and browser sessions (cookie value stored as SHA-256).
//!
//! The slow-down never locks the owner out:
//! - per (username, source address): after 5 failures that address must wait 2, 4, 8 … s (at most
//!   5 minutes) between attempts on that username; attempts inside the wait are refused (429)
//!   without looking at the password. The owner, from any other address, is not affected;
//! - per username, from any address: after 5 failures every attempt is delayed by 100 ms, doubling,
//!   at most 2 s, before the password is checked — distributed guessing slows down, and the owner
//!   still gets in;
//! - unknown and known usernames behave the same (no account enumeration), and an attempt counts
//!   as a failure from the moment it starts, so concurrent attempts cannot slip past the count.
//!
//! The counters live in memory, per instance (bounded; idle entries expire after 15 minutes); the
//! per-address login rate limit (`http::ratelimit`) caps every address on top.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use super::Core;
use super::users::{dummy_hash, verify_password};
use crate::secrets::{Secret, SecretKind, hash_str};
use crate::store::StoreError;
use crate::store::sessions::{self, SessionRow};
use crate::store::users::{self, UserRow};

/// Failures before the slow-down starts.
const FREE_FAILURES: u32 = 5;
/// The longest wait between attempts from one address on one username, in seconds.
const MAX_WAIT: i64 = 300;
/// The longest delay of an attempt on a username under attack.
const MAX_DELAY: Duration = Duration::from_secs(2);
/// Counters idle this long are forgotten.
const IDLE: i64 = 900;
/// Most counters kept; past that, idle ones are dropped, then all.
const MAX_ENTRIES: usize = 100_000;

#[derive(Debug)]
pub enum LoginError {
    BadCredentials,
    /// Too many recent failures for this username from this address: retry after this many seconds.
    Throttled(u64),
    Internal(StoreError),
}

impl From<StoreError> for LoginError {
    fn from(e: StoreError) -> Self {
        LoginError::Internal(e)
    }
}

/// Seconds still to wait after `failed` failures, the last at `last_failed_at`.
pub fn wait_for(failed: u32, last_failed_at: i64, now: i64) -> i64 {
    if failed < FREE_FAILURES {
        return 0;
    }
    // 2 s after the fifth failure (so one within the same second is always caught), then doubling.
    let exp = (failed - FREE_FAILURES + 1).min(10);
    let wait = (1i64 << exp).min(MAX_WAIT);
    (wait - (now - last_failed_at)).max(0)
}

/// The delay of an attempt on a username with `failed` recent failures from anywhere.
pub fn delay_for(failed: u32) -> Duration {
    if failed < FREE_FAILURES {
        return Duration::ZERO;
    }
    let exp = (failed - FREE_FAILURES).min(10);
    (Duration::from_millis(100) * (1u32 << exp)).min(MAX_DELAY)
}

/// Failure counters: (failures, time of the last) by key.
#[derive(Default)]
pub struct LoginThrottle(Mutex<HashMap<String, (u32, i64)>>);

impl LoginThrottle {
    /// Start an attempt: refused with the seconds to wait, or admitted with the delay to apply.
    /// The attempt counts as a failure until [`LoginThrottle::succeeded`].
    fn begin(&self, username: &str, source: &str, now: i64) -> Result<Duration, u64> {
        let Ok(mut map) = self.0.lock() else {
            return Ok(MAX_DELAY);
        };
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, (_, last)| now - *last < IDLE);
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
        }
        let fresh = |e: Option<&(u32, i64)>| {
            e.copied()
                .filter(|(_, last)| now - last < IDLE)
                .unwrap_or((0, now))
        };
        let pair_key = format!("p:{username}\u{0}{source}");
        let (pair_failed, pair_last) = fresh(map.get(&pair_key));
        let wait = wait_for(pair_failed, pair_last, now);
        if wait > 0 {
            return Err(wait as u64);
        }
        map.insert(pair_key, (pair_failed + 1, now));
        let user_key = format!("u:{username}");
        let (user_failed, _) = fresh(map.get(&user_key));
        map.insert(user_key, (user_failed + 1, now));
        Ok(delay_for(user_failed))
    }

    fn succeeded(&self, username: &str, source: &str) {
        if let Ok(mut map) = self.0.lock() {
            map.remove(&format!("p:{username}\u{0}{source}"));
            map.remove(&format!("u:{username}"));
        }
    }
}

/// Check a username and password for a login attempt from `source` (the client address).
pub async fn authenticate(
    core: &Core,
    username: &str,
    password: &str,
    source: &str,
    now: i64,
) -> Result<UserRow, LoginError> {
    let key = username.to_lowercase();
    let delay = core
        .login_throttle
        .begin(&key, source, now)
        .map_err(LoginError::Throttled)?;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let name = username.to_string();
    let user = core
        .store
        .run(move |c| users::by_username(c, &name))
        .await?;
    let password = password.to_string();
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let ok = tokio::task::spawn_blocking(move || match hash {
        Some(h) => verify_password(&password, &h),
        None => {
            // The same cost for an unknown account as for a wrong password.
            let _ = verify_password(&password, dummy_hash());
            false
        }
    })
    .await
    .map_err(|e| LoginError::Internal(StoreError::Task(e.to_string())))?;
    match (user, ok) {
        (Some(u), true) => {
            core.login_throttle.succeeded(&key, source);
            tracing::info!(target: "audit", event = "login", user_id = %u.id);
            Ok(u)
        }
        (Some(u), false) => {
            tracing::info!(target: "audit", event = "login_failed", user_id = %u.id);
            Err(LoginError::BadCredentials)
        }
        (None, _) => {
            tracing::info!(target: "audit", event = "login_failed", user_id = "unknown");
            Err(LoginError::BadCredentials)
        }
    }
}

/// Start a session; returns the cookie value.
pub async fn start_session(core: &Core, user_id: &str, now: i64) -> Result<Secret, StoreError> {
    let secret = Secret::generate(SecretKind::Session);
    let row = SessionRow {
        id_hash: secret.hash(),
        user_id: user_id.to_string(),
        auth_time: now,
        expires_at: now + core.config.session_ttl as i64,
    };
    core.store.run(move |c| sessions::insert(c, &row)).await?;
    Ok(secret)
}

/// The live session behind a cookie value, with its user.
pub async fn session(
    core: &Core,
    cookie: &str,
    now: i64,
) -> Result<Option<(SessionRow, UserRow)>, StoreError> {
    if cookie.len() > 128 {
        return Ok(None);
    }
    let hash = hash_str(cookie);
    core.store
        .run(move |c| {
            let Some(s) = sessions::live(c, &hash, now)? else {
                return Ok(None);
            };
            Ok(users::by_id(c, &s.user_id)?.map(|u| (s, u)))
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_down_grows_and_ends() {
        assert_eq!(wait_for(4, 100, 100), 0);
        assert_eq!(wait_for(5, 100, 100), 2);
        assert_eq!(wait_for(5, 100, 101), 1);
        assert_eq!(wait_for(7, 100, 100), 8);
        assert_eq!(wait_for(7, 100, 107), 1);
        assert_eq!(wait_for(7, 100, 108), 0);
        assert_eq!(wait_for(40, 100, 100), 300, "capped");
        assert_eq!(wait_for(40, 100, 400), 0);
        assert_eq!(delay_for(4), Duration::ZERO);
        assert_eq!(delay_for(5), Duration::from_millis(100));
        assert_eq!(delay_for(7), Duration::from_millis(400));
        assert_eq!(delay_for(60), MAX_DELAY);
    }

    #[test]
    fn throttle_is_per_address_and_never_locks_the_owner_out() {
        let t = LoginThrottle::default();
        for _ in 0..5 {
            assert!(t.begin("alice", "10.0.0.66", 1000).is_ok());
        }
        // The attacker's address must wait; the owner's address gets in, only delayed.
        assert_eq!(t.begin("alice", "10.0.0.66", 1000), Err(2));
        assert_eq!(
            t.begin("alice", "192.0.2.7", 1000),
            Ok(Duration::from_millis(100))
        );
        t.succeeded("alice", "192.0.2.7");
        assert_eq!(t.begin("alice", "192.0.2.7", 1000), Ok(Duration::ZERO));
        // Unknown usernames behave the same (nothing tells them apart).
        for _ in 0..5 {
            assert!(t.begin("nobody", "10.0.0.66", 1000).is_ok());
        }
        assert_eq!(t.begin("nobody", "10.0.0.66", 1000), Err(2));
        // Idle counters are forgotten.
        assert!(t.begin("nobody", "10.0.0.66", 1000 + IDLE).is_ok());
    }
}

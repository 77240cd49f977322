//! Local login for the authorization endpoint: password verification (Argon2id, off the executor),
//! per-account slow-down after failures (an exponential wait, capped at 5 minutes, that never locks
//! the owner out for good), and browser sessions (cookie value stored as SHA-256).

use super::Core;
use super::users::{dummy_hash, verify_password};
use crate::secrets::{Secret, SecretKind, hash_str};
use crate::store::StoreError;
use crate::store::sessions::{self, SessionRow};
use crate::store::users::{self, UserRow};

/// Failures before the slow-down starts.
const FREE_FAILURES: i32 = 5;
/// The longest wait between attempts, in seconds.
const MAX_WAIT: i64 = 300;

#[derive(Debug)]
pub enum LoginError {
    BadCredentials,
    /// Too many recent failures for this account: retry after this many seconds.
    Throttled(u64),
    Internal(StoreError),
}

impl From<StoreError> for LoginError {
    fn from(e: StoreError) -> Self {
        LoginError::Internal(e)
    }
}

/// Seconds an account must still wait before its next attempt.
pub fn wait_for(failed: i32, last_failed_at: Option<i64>, now: i64) -> i64 {
    if failed < FREE_FAILURES {
        return 0;
    }
    // 2 s after the fifth failure (so one within the same second is always caught), then doubling.
    let exp = (failed - FREE_FAILURES + 1).min(10) as u32;
    let wait = (1i64 << exp).min(MAX_WAIT);
    let since = now - last_failed_at.unwrap_or(0);
    (wait - since).max(0)
}

/// Check a username and password.
pub async fn authenticate(
    core: &Core,
    username: &str,
    password: &str,
    now: i64,
) -> Result<UserRow, LoginError> {
    let name = username.to_string();
    let user = core
        .store
        .run(move |c| users::by_username(c, &name))
        .await?;
    if let Some(u) = &user {
        let wait = wait_for(u.failed_logins, u.last_failed_at, now);
        if wait > 0 {
            return Err(LoginError::Throttled(wait as u64));
        }
    }
    let password = password.to_string();
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let ok = tokio::task::spawn_blocking(move || match hash {
        Some(h) => verify_password(&password, &h),
        None => {
            // Same cost for an unknown account as for a wrong password.
            let _ = verify_password(&password, &dummy_hash());
            false
        }
    })
    .await
    .map_err(|e| LoginError::Internal(StoreError::Task(e.to_string())))?;
    match (user, ok) {
        (Some(u), true) => {
            tracing::info!(target: "audit", event = "login", user_id = %u.id);
            if u.failed_logins > 0 {
                let id = u.id.clone();
                core.store
                    .run(move |c| users::reset_failed_logins(c, &id))
                    .await?;
            }
            Ok(u)
        }
        (Some(u), false) => {
            tracing::info!(target: "audit", event = "login_failed", user_id = %u.id, failures = u.failed_logins + 1);
            let id = u.id.clone();
            core.store
                .run(move |c| users::record_failed_login(c, &id, now))
                .await?;
            Err(LoginError::BadCredentials)
        }
        (None, _) => Err(LoginError::BadCredentials),
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

pub async fn end_session(core: &Core, cookie: &str) -> Result<(), StoreError> {
    let hash = hash_str(cookie);
    core.store.run(move |c| sessions::delete(c, &hash)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_down_grows_and_ends() {
        assert_eq!(wait_for(4, Some(100), 100), 0);
        assert_eq!(wait_for(5, Some(100), 100), 2);
        assert_eq!(wait_for(5, Some(100), 101), 1);
        assert_eq!(wait_for(7, Some(100), 100), 8);
        assert_eq!(wait_for(7, Some(100), 107), 1);
        assert_eq!(wait_for(7, Some(100), 108), 0);
        assert_eq!(
            wait_for(40, Some(100), 100),
            300,
            "capped: the owner is never locked out for good"
        );
        assert_eq!(wait_for(40, Some(100), 400), 0);
    }
}

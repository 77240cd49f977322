//! Local accounts: creation with validated fields and Argon2id password hashes (hashed off the
//! async executor by the callers that run on it).

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use crate::secrets::{new_id, random_bytes};
use crate::store::users::UserRow;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UserError {
    #[error("username must be 1 to 64 characters of letters, digits, `.`, `_`, `-` or `@`")]
    Username,
    #[error("email must be an address such as `alice@example.org`")]
    Email,
    #[error("name must be at most 200 printable characters")]
    Name,
    #[error("password must be 8 to 1024 characters")]
    Password,
    #[error("password hashing failed")]
    Hash,
}

/// Argon2id with the crate's defaults (m = 19 MiB, t = 2, p = 1: the OWASP minimum).
pub fn hash_password(password: &str) -> Result<String, UserError> {
    let salt_bytes = random_bytes(16);
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|_| UserError::Hash)?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| UserError::Hash)
}

/// Constant-time verification against a stored PHC string.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A valid Argon2id hash of a random password, computed once, so an unknown username costs the
/// same time (one verification) as a wrong password.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        hash_password(&crate::secrets::random_b64(16)).unwrap_or_default()
    });
    &DUMMY
}

/// Validate and build a new user row (hashing the password).
pub fn new_user(
    username: &str,
    email: &str,
    name: Option<&str>,
    email_verified: bool,
    password: &str,
    now: i64,
) -> Result<UserRow, UserError> {
    if username.is_empty()
        || username.len() > 64
        || !username
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b))
    {
        return Err(UserError::Username);
    }
    let at = email.find('@');
    if email.len() > 254
        || at.is_none_or(|i| i == 0 || i + 1 >= email.len())
        || email.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(UserError::Email);
    }
    if let Some(n) = name
        && (n.chars().count() > 200 || n.chars().any(char::is_control))
    {
        return Err(UserError::Name);
    }
    let chars = password.chars().count();
    if !(8..=1024).contains(&chars) {
        return Err(UserError::Password);
    }
    Ok(UserRow {
        id: new_id(),
        username: username.to_string(),
        email: email.to_string(),
        email_verified,
        name: name.map(str::to_string),
        password_hash: hash_password(password)?,
        created_at: now,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_and_hashing() -> Result<(), UserError> {
        let u = new_user(
            "alice",
            "alice@example.org",
            Some("Alice"),
            true,
            "correct horse",
            0,
        )?;
        assert!(u.password_hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &u.password_hash));
        assert!(!verify_password("wrong horse", &u.password_hash));
        assert_eq!(
            new_user("a b", "a@b.c", None, false, "password1", 0).err(),
            Some(UserError::Username)
        );
        assert_eq!(
            new_user("a", "nope", None, false, "password1", 0).err(),
            Some(UserError::Email)
        );
        assert_eq!(
            new_user("a", "a@b.c", None, false, "short", 0).err(),
            Some(UserError::Password)
        );
        Ok(())
    }
}

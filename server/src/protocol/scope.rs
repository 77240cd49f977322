//! Scope values (RFC 6749 §3.3): space-delimited, case-sensitive tokens of `%x21 / %x23-5B /
//! %x5D-7E`.

use super::error::OAuthError;

/// Scopes the server itself understands (OpenID Connect Core §5.4, §11).
pub const OIDC_SCOPES: &[&str] = &["openid", "profile", "email", "offline_access"];

/// Parse a scope string into distinct tokens, in order.
pub fn parse(value: &str) -> Result<Vec<String>, OAuthError> {
    let mut out: Vec<String> = vec![];
    for token in value.split(' ').filter(|t| !t.is_empty()) {
        if !valid_token(token) {
            return Err(OAuthError::invalid_scope(format!(
                "`{}` is not a valid scope token",
                sanitize(token)
            )));
        }
        if !out.iter().any(|t| t == token) {
            out.push(token.to_string());
        }
    }
    Ok(out)
}

pub fn valid_token(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= 256
        && token
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

pub fn join(scopes: &[String]) -> String {
    scopes.join(" ")
}

/// Whether every scope of `wanted` is in `have`.
pub fn subset(wanted: &[String], have: &[String]) -> bool {
    wanted.iter().all(|w| have.contains(w))
}

/// Make user input safe to quote in an error description.
pub fn sanitize(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() && *c != '"' && *c != '\\')
        .take(64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grammar() {
        assert_eq!(
            parse("openid  profile openid").ok(),
            Some(vec!["openid".to_string(), "profile".to_string()])
        );
        assert!(parse("a\"b").is_err());
        assert!(parse("a\\b").is_err());
        assert!(parse("é").is_err());
        assert_eq!(parse("").ok(), Some(vec![]));
        assert!(parse("patient/Observation.read api:read").is_ok());
    }
}

//! Form and query parameters (`application/x-www-form-urlencoded`) as the protocol needs them:
//! parsed without loss, with RFC 6749 §3.1/§3.2 "parameters MUST NOT be included more than once"
//! enforced (except `resource`, which RFC 8707 §2 lets a request repeat) and empty values treated
//! as omitted.

use super::error::OAuthError;

/// Parsed parameters. They may hold secrets (`client_secret`, `code`, `refresh_token`,
/// `client_assertion`, `password`), so `Debug` prints the names only.
#[derive(Clone, Default)]
pub struct Params(Vec<(String, String)>);

impl std::fmt::Debug for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(k, _)| format!("{k}=[redacted]")))
            .finish()
    }
}

/// Most parameters a request may carry, and the longest value accepted.
const MAX_PARAMS: usize = 64;
const MAX_VALUE: usize = 16 * 1024;
/// Parameters a request may repeat: RFC 8707 resource indicators.
const REPEATABLE: &[&str] = &["resource"];

impl Params {
    /// Parse a urlencoded string. Repeated parameters are refused with `invalid_request`.
    pub fn parse(input: &[u8]) -> Result<Params, OAuthError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(input).map_err(|_| {
            OAuthError::invalid_request("the request body is not valid form encoding")
        })?;
        if pairs.len() > MAX_PARAMS {
            return Err(OAuthError::invalid_request("too many parameters"));
        }
        let mut seen: Vec<&str> = Vec::with_capacity(pairs.len());
        for (k, v) in &pairs {
            if v.len() > MAX_VALUE {
                return Err(OAuthError::invalid_request(format!(
                    "parameter `{k}` is too long"
                )));
            }
            if seen.contains(&k.as_str()) && !REPEATABLE.contains(&k.as_str()) {
                return Err(OAuthError::invalid_request(format!(
                    "parameter `{k}` is repeated"
                )));
            }
            seen.push(k);
        }
        Ok(Params(pairs))
    }

    /// A parameter's value; empty values count as absent (RFC 6749 §3.1).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// Every non-empty value of a repeatable parameter, in order.
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn contains(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }

    /// A required parameter.
    pub fn require(&self, key: &str) -> Result<&str, OAuthError> {
        self.get(key)
            .ok_or_else(|| OAuthError::invalid_request(format!("parameter `{key}` is missing")))
    }

    /// These parameters with `overrides` in place of (or beside) their own: a request object's
    /// members supersede the query's (OpenID Connect Core §6.3.3).
    pub fn overridden_by(&self, overrides: Vec<(String, String)>) -> Params {
        let mut out: Vec<(String, String)> = self
            .0
            .iter()
            .filter(|(k, _)| !overrides.iter().any(|(o, _)| o == k))
            .cloned()
            .collect();
        out.extend(overrides);
        Params(out)
    }

    /// These parameters without any `key`.
    pub fn without(&self, key: &str) -> Params {
        Params(self.0.iter().filter(|(k, _)| k != key).cloned().collect())
    }

    /// Back to urlencoded form (for carrying an authorization request through login and consent).
    pub fn encode(&self) -> String {
        serde_urlencoded::to_string(&self.0).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn debug_never_shows_values() {
        let p = Params::parse(b"client_secret=s3cr3t&code=abc").unwrap_or_default();
        let d = format!("{p:?}");
        assert!(d.contains("client_secret") && !d.contains("s3cr3t") && !d.contains("abc"));
    }

    #[test]
    fn repeated_and_empty() {
        assert!(Params::parse(b"a=1&a=2").is_err());
        let p = Params::parse(b"a=&b=x%20y").ok().unwrap_or_default();
        assert_eq!(p.get("a"), None);
        assert_eq!(p.get("b"), Some("x y"));
        assert!(p.require("c").is_err());
    }

    proptest! {
        // The token endpoint's form parser never panics, and whatever it accepts round-trips.
        #[test]
        fn parser_total(input in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(p) = Params::parse(&input) {
                let again = Params::parse(p.encode().as_bytes());
                prop_assert!(again.is_ok());
            }
        }

        #[test]
        fn parser_on_form_like_input(s in "[a-z_=&%0-9A-F+]{0,200}") {
            let _ = Params::parse(s.as_bytes());
        }
    }
}

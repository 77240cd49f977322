//! The authorization server's metadata: `GET {issuer}/.well-known/uma2-configuration` (UMA 2.0
//! Grant §2, Federated Authorization §2, RFC 8414 §3), checked once and cached.
//!
//! The document's `issuer` must equal the configured issuer exactly (RFC 8414 §3.3); the
//! endpoints the SDK uses must be absolute `https` URLs (loopback excepted, see
//! [`ClientConfig`](crate::ClientConfig)).

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Map, Value};
use url::Url;

use crate::config::parse_endpoint;
use crate::error::Error;
use crate::http;

/// The metadata the SDK uses, validated; `other` keeps every further member.
#[derive(Clone, Debug)]
pub struct Discovery {
    pub issuer: String,
    pub authorization_endpoint: Option<Url>,
    pub token_endpoint: Url,
    pub jwks_uri: Url,
    pub introspection_endpoint: Option<Url>,
    pub revocation_endpoint: Option<Url>,
    /// UMA-FED-07: REQUIRED.
    pub resource_registration_endpoint: Url,
    /// UMA-FED-07: REQUIRED.
    pub permission_endpoint: Url,
    pub uma_profiles_supported: Vec<String>,
    /// All members as received.
    pub other: Map<String, Value>,
}

#[derive(Deserialize)]
struct Raw {
    issuer: String,
    authorization_endpoint: Option<String>,
    token_endpoint: Option<String>,
    jwks_uri: Option<String>,
    introspection_endpoint: Option<String>,
    revocation_endpoint: Option<String>,
    resource_registration_endpoint: Option<String>,
    permission_endpoint: Option<String>,
    #[serde(default)]
    uma_profiles_supported: Vec<String>,
}

impl Discovery {
    /// Validate a discovery document against the configured issuer.
    pub fn from_json(
        expected_issuer: &str,
        body: &[u8],
        allow_http: bool,
    ) -> Result<Discovery, Error> {
        let other: Map<String, Value> = serde_json::from_slice(body)
            .map_err(|e| Error::Discovery(format!("invalid json: {e}")))?;
        let raw: Raw = serde_json::from_value(Value::Object(other.clone()))
            .map_err(|e| Error::Discovery(format!("invalid document: {e}")))?;
        if raw.issuer != expected_issuer {
            return Err(Error::Discovery(format!(
                "issuer `{}` is not the configured `{expected_issuer}`",
                raw.issuer
            )));
        }
        let required = |name: &str, v: Option<String>| -> Result<Url, Error> {
            let v = v.ok_or_else(|| Error::Discovery(format!("`{name}` is missing")))?;
            parse_endpoint(name, &v, allow_http).map_err(Error::Discovery)
        };
        let optional = |name: &str, v: Option<String>| -> Result<Option<Url>, Error> {
            v.map(|v| parse_endpoint(name, &v, allow_http).map_err(Error::Discovery))
                .transpose()
        };
        Ok(Discovery {
            authorization_endpoint: optional("authorization_endpoint", raw.authorization_endpoint)?,
            token_endpoint: required("token_endpoint", raw.token_endpoint)?,
            jwks_uri: required("jwks_uri", raw.jwks_uri)?,
            introspection_endpoint: optional("introspection_endpoint", raw.introspection_endpoint)?,
            revocation_endpoint: optional("revocation_endpoint", raw.revocation_endpoint)?,
            resource_registration_endpoint: required(
                "resource_registration_endpoint",
                raw.resource_registration_endpoint,
            )?,
            permission_endpoint: required("permission_endpoint", raw.permission_endpoint)?,
            uma_profiles_supported: raw.uma_profiles_supported,
            issuer: raw.issuer,
            other,
        })
    }
}

/// The discovery URL of an issuer: `{issuer}/.well-known/uma2-configuration` (UMA 2.0 Grant §2).
pub(crate) fn discovery_url(issuer: &str) -> Result<Url, Error> {
    let base = issuer.trim_end_matches('/');
    Url::parse(&format!("{base}/.well-known/uma2-configuration"))
        .map_err(|_| Error::Config(format!("issuer `{issuer}` is not a url")))
}

/// A cached discovery document with single-flight refetch.
pub(crate) struct DiscoveryCache {
    ttl: Duration,
    current: RwLock<Option<(Arc<Discovery>, Instant)>>,
    fetching: tokio::sync::Mutex<()>,
}

impl DiscoveryCache {
    pub fn new(ttl: Duration) -> Self {
        DiscoveryCache {
            ttl,
            current: RwLock::new(None),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    fn fresh(&self) -> Option<Arc<Discovery>> {
        let guard = self.current.read().ok()?;
        let (doc, at) = guard.as_ref()?;
        (at.elapsed() < self.ttl).then(|| doc.clone())
    }

    /// The cached document, fetched when missing or older than the TTL (or when `force`).
    pub async fn get(
        &self,
        http_client: &reqwest::Client,
        issuer: &str,
        allow_http: bool,
        force: bool,
    ) -> Result<Arc<Discovery>, Error> {
        if !force && let Some(doc) = self.fresh() {
            return Ok(doc);
        }
        let started = Instant::now();
        let _flight = self.fetching.lock().await;
        // Someone else may have fetched while we waited.
        if let Ok(guard) = self.current.read()
            && let Some((doc, at)) = guard.as_ref()
            && (*at >= started || (!force && at.elapsed() < self.ttl))
        {
            return Ok(doc.clone());
        }
        let answer = http::send(http_client.get(discovery_url(issuer)?)).await?;
        if answer.status != 200 {
            return Err(Error::Discovery(format!(
                "metadata endpoint answered {}",
                answer.status
            )));
        }
        let doc = Arc::new(Discovery::from_json(issuer, &answer.body, allow_http)?);
        if let Ok(mut guard) = self.current.write() {
            *guard = Some((doc.clone(), Instant::now()));
        }
        Ok(doc)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(issuer: &str) -> Vec<u8> {
        json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/authorize"),
            "token_endpoint": format!("{issuer}/token"),
            "jwks_uri": format!("{issuer}/jwks"),
            "introspection_endpoint": format!("{issuer}/introspect"),
            "resource_registration_endpoint": format!("{issuer}/uma/resources"),
            "permission_endpoint": format!("{issuer}/uma/permission"),
            "uma_profiles_supported": [],
            "grant_types_supported": ["authorization_code"],
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn issuer_must_match_exactly() {
        let d =
            Discovery::from_json("https://as.example", &doc("https://as.example"), false).unwrap();
        assert_eq!(
            d.permission_endpoint.as_str(),
            "https://as.example/uma/permission"
        );
        assert!(d.other.contains_key("grant_types_supported"));
        for configured in [
            "https://as.example/",
            "https://AS.example",
            "http://as.example",
        ] {
            assert!(
                Discovery::from_json(configured, &doc("https://as.example"), true).is_err(),
                "{configured}"
            );
        }
    }

    /// UMA-FED-07: both protection endpoints are required.
    #[test]
    fn protection_endpoints_are_required() {
        let mut v: Value = serde_json::from_slice(&doc("https://as.example")).unwrap();
        v.as_object_mut().unwrap().remove("permission_endpoint");
        let e = Discovery::from_json("https://as.example", v.to_string().as_bytes(), false)
            .unwrap_err();
        assert!(e.to_string().contains("permission_endpoint"), "{e}");
    }

    #[test]
    fn endpoints_must_use_https() {
        let mut v: Value = serde_json::from_slice(&doc("https://as.example")).unwrap();
        v["token_endpoint"] = json!("http://as.example/token");
        assert!(
            Discovery::from_json("https://as.example", v.to_string().as_bytes(), false).is_err()
        );
    }

    #[test]
    fn discovery_url_appends_the_well_known_path() {
        assert_eq!(
            discovery_url("https://as.example/tenant").unwrap().as_str(),
            "https://as.example/tenant/.well-known/uma2-configuration"
        );
        assert_eq!(
            discovery_url("https://as.example/").unwrap().as_str(),
            "https://as.example/.well-known/uma2-configuration"
        );
    }
}

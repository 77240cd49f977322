//! HTTP plumbing shared by the endpoint modules: the default client, bounded body reads, mapping
//! an error answer to [`Error::Protocol`] (RFC 6749 §5.2 JSON body, or RFC 6750 §3
//! `WWW-Authenticate: Bearer error=…`), and `client_secret_basic` (RFC 6749 §2.3.1).

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::header::{HeaderMap, WWW_AUTHENTICATE};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::challenge::parse_challenges;
use crate::error::Error;

/// The largest answer body read from the authorization server.
pub(crate) const MAX_BODY: usize = 1 << 20;

/// The default client: no redirects (an endpoint that redirects is an error, and following one
/// could carry the PAT elsewhere), bounded connect and total time.
pub(crate) fn default_client(timeout: Duration) -> Result<reqwest::Client, Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .timeout(timeout)
        .build()
        .map_err(|_| Error::Config("cannot build the http client".into()))
}

/// A read answer: status, headers and body.
pub(crate) struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// Send a request and read its whole answer (at most [`MAX_BODY`] bytes).
pub(crate) async fn send(request: reqwest::RequestBuilder) -> Result<Answer, Error> {
    let mut response = request.send().await.map_err(Error::Http)?;
    let status = response.status().as_u16();
    let headers = std::mem::take(response.headers_mut());
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(Error::Http)? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(Error::UnexpectedResponse {
                status,
                detail: "answer body too large".into(),
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Answer {
        status,
        headers,
        body,
    })
}

impl Answer {
    /// The body as `T` when the status is one of `ok`, otherwise the error it carries.
    pub fn json<T: DeserializeOwned>(&self, ok: &[u16]) -> Result<T, Error> {
        self.expect(ok)?;
        serde_json::from_slice(&self.body).map_err(|e| Error::UnexpectedResponse {
            status: self.status,
            detail: format!("invalid json body: {e}"),
        })
    }

    /// Ok when the status is one of `ok`, otherwise the error the answer carries.
    pub fn expect(&self, ok: &[u16]) -> Result<(), Error> {
        if ok.contains(&self.status) {
            Ok(())
        } else {
            Err(self.error())
        }
    }

    /// The OAuth/UMA error of a non-success answer.
    pub fn error(&self) -> Error {
        #[derive(Deserialize)]
        struct Body {
            error: String,
            error_description: Option<String>,
        }
        if let Ok(b) = serde_json::from_slice::<Body>(&self.body) {
            return Error::Protocol {
                status: self.status,
                error: b.error,
                description: b.error_description,
            };
        }
        // RFC 6750 §3: a 401/403 may carry its code only in the Bearer challenge.
        for value in self.headers.get_all(WWW_AUTHENTICATE) {
            let Ok(value) = value.to_str() else { continue };
            let Ok(challenges) = parse_challenges(value) else {
                continue;
            };
            for c in challenges {
                if c.scheme.eq_ignore_ascii_case("bearer")
                    && let Some(code) = c.param("error")
                {
                    return Error::Protocol {
                        status: self.status,
                        error: code.to_string(),
                        description: c.param("error_description").map(str::to_string),
                    };
                }
            }
        }
        Error::UnexpectedResponse {
            status: self.status,
            detail: "no error code in the answer".into(),
        }
    }
}

/// `Authorization` header value for `client_secret_basic`: id and secret are
/// form-urlencoded before the Basic encoding (RFC 6749 §2.3.1).
pub(crate) fn basic_auth(client_id: &str, client_secret: &str) -> String {
    let id: String = url::form_urlencoded::byte_serialize(client_id.as_bytes()).collect();
    let secret: String = url::form_urlencoded::byte_serialize(client_secret.as_bytes()).collect();
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str, www: Option<&str>) -> Answer {
        let mut headers = HeaderMap::new();
        if let Some(w) = www {
            headers.insert(WWW_AUTHENTICATE, w.parse().unwrap());
        }
        Answer {
            status,
            headers,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn basic_auth_form_encodes_before_base64() {
        // RFC 6749 §2.3.1: "a b" → "a+b", ":" → "%3A"
        let v = basic_auth("rs:1", "p w");
        let decoded = STANDARD.decode(v.trim_start_matches("Basic ")).unwrap();
        assert_eq!(decoded, b"rs%3A1:p+w");
    }

    #[test]
    fn error_from_json_body() {
        let e = answer(
            400,
            r#"{"error":"invalid_resource_id","error_description":"unknown resource"}"#,
            None,
        )
        .error();
        assert_eq!(e.protocol_error(), Some("invalid_resource_id"));
        assert_eq!(e.status(), Some(400));
    }

    #[test]
    fn error_from_bearer_challenge() {
        let e = answer(
            401,
            "",
            Some(r#"Bearer realm="custodia", error="invalid_token", error_description="expired""#),
        )
        .error();
        assert_eq!(e.protocol_error(), Some("invalid_token"));
        assert_eq!(e.status(), Some(401));
    }

    #[test]
    fn error_without_code() {
        let e = answer(502, "<html>bad gateway</html>", None).error();
        assert!(matches!(e, Error::UnexpectedResponse { status: 502, .. }));
        assert!(e.is_unreachable());
    }
}

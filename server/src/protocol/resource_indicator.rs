//! Resource indicators (RFC 8707): the `resource` parameter of the authorization and token
//! requests names where the client will use its access token. Custodia shows the targets on the
//! consent page (HEART-OAUTH-27, IGOV-OAUTH-31), keeps them with the code and the refresh token,
//! and audience-restricts the access token to them (`aud`). A token request may narrow what the
//! authorization request named, never widen it (RFC 8707 §2.2). With a request object only its
//! targets count; `client_credentials` takes none (nobody would consent to them). Errors are
//! `invalid_target`.

use super::error::{ErrorCode, OAuthError};
use super::params::Params;

/// Most targets one request may name.
pub const MAX_RESOURCES: usize = 8;
/// Longest target URI accepted.
const MAX_LEN: usize = 512;

fn invalid(d: impl Into<String>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidTarget, d)
}

/// The `resource` values of a request, checked (RFC 8707 §2): each an absolute URI without a
/// fragment, `https` (or `http` on a loopback host, for development), in its parsed (normal)
/// form, de-duplicated in order.
pub fn parse(params: &Params) -> Result<Vec<String>, OAuthError> {
    let mut out: Vec<String> = vec![];
    for v in params.all("resource") {
        let normal = normalize("resource", v).map_err(invalid)?;
        if !out.contains(&normal) {
            out.push(normal);
        }
    }
    if out.len() > MAX_RESOURCES {
        return Err(invalid(format!(
            "at most {MAX_RESOURCES} `resource` values may be sent"
        )));
    }
    Ok(out)
}

/// One target URI (a `resource` value, or one of a resource server's `resource_uris`) checked:
/// its parsed (normal) form, or why not. `name` is the parameter or member named in the error.
pub fn normalize(name: &str, v: &str) -> Result<String, String> {
    if v.len() > MAX_LEN {
        return Err(format!("a `{name}` may be at most {MAX_LEN} characters"));
    }
    let shown = super::scope::sanitize(v);
    let url =
        url::Url::parse(v).map_err(|_| format!("`{name}` `{shown}` is not an absolute URI"))?;
    if url.fragment().is_some() {
        return Err(format!(
            "`{name}` `{shown}` must not have a fragment (RFC 8707 §2)"
        ));
    }
    let loopback = matches!(
        url.host(),
        Some(url::Host::Ipv4(a)) if a.is_loopback()
    ) || matches!(url.host(), Some(url::Host::Ipv6(a)) if a.is_loopback())
        || url.host_str() == Some("localhost");
    let secure = url.scheme() == "https" || (url.scheme() == "http" && loopback);
    if !secure || url.host_str().is_none() || !url.username().is_empty() {
        return Err(format!(
            "`{name}` `{shown}` must be an https URI of the resource server (http only on a loopback host)"
        ));
    }
    // The parsed form is what the consent page shows and `aud` carries, so both name the host
    // the URI really denotes (the parser trims, maps `\` to `/`, encodes IDN hosts).
    Ok(url.as_str().to_string())
}

/// The targets of a token issued under a grant that named `granted`: those the token request
/// names (each must be one of `granted`), else all of `granted`.
pub fn narrow(requested: Vec<String>, granted: &[String]) -> Result<Vec<String>, OAuthError> {
    if requested.is_empty() {
        return Ok(granted.to_vec());
    }
    match requested.iter().find(|r| !granted.contains(r)) {
        Some(r) => Err(invalid(format!(
            "`resource` `{}` was not named in the authorization request",
            super::scope::sanitize(r)
        ))),
        None => Ok(requested),
    }
}

/// The JSON form kept with codes and refresh tokens (`None` when there are no targets).
pub fn to_column(resources: &[String]) -> Option<String> {
    (!resources.is_empty()).then(|| serde_json::Value::from(resources.to_vec()).to_string())
}

/// Back from [`to_column`].
pub fn from_column(column: Option<&str>) -> Vec<String> {
    column
        .and_then(|c| serde_json::from_str(c).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(q: &str) -> Result<Vec<String>, OAuthError> {
        parse(&Params::parse(q.as_bytes())?)
    }

    #[test]
    fn rfc8707_values() -> Result<(), OAuthError> {
        assert_eq!(
            p("resource=https%3A%2F%2Ffhir.example%2Fr4&resource=https%3A%2F%2Ffhir.example%2Fr4")?,
            vec!["https://fhir.example/r4".to_string()]
        );
        assert_eq!(p("resource=http%3A%2F%2F127.0.0.1%3A8080%2F")?.len(), 1);
        // The parsed form: no surprises between what the page shows and what `aud` names.
        assert_eq!(
            p("resource=https%3A%2F%2FFHIR.example%5Cr4")?,
            vec!["https://fhir.example/r4".to_string()]
        );
        for bad in [
            "resource=fhir",
            "resource=https%3A%2F%2Ffhir.example%2Fr4%23x",
            "resource=http%3A%2F%2Ffhir.example%2F",
            "resource=urn%3Aexample%3Aapi",
            "resource=https%3A%2F%2Fu%40fhir.example%2F",
        ] {
            let e = p(bad).err().map(|e| e.error);
            assert_eq!(e, Some(ErrorCode::InvalidTarget), "{bad}");
        }
        let many: Vec<String> = (0..9)
            .map(|i| format!("resource=https%3A%2F%2Frs{i}.example%2F"))
            .collect();
        assert!(p(&many.join("&")).is_err());
        Ok(())
    }

    #[test]
    fn narrowing() {
        let granted = vec![
            "https://a.example/".to_string(),
            "https://b.example/".to_string(),
        ];
        assert_eq!(narrow(vec![], &granted).ok(), Some(granted.clone()));
        assert_eq!(
            narrow(vec!["https://b.example/".into()], &granted).ok(),
            Some(vec!["https://b.example/".to_string()])
        );
        assert_eq!(
            narrow(vec!["https://c.example/".into()], &granted)
                .err()
                .map(|e| e.error),
            Some(ErrorCode::InvalidTarget)
        );
        assert_eq!(from_column(to_column(&granted).as_deref()), granted);
        assert_eq!(to_column(&[]), None);
    }
}

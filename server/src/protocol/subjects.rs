//! Subject identifiers (OpenID Connect Core §8): what `sub` a client sees for a user in ID tokens,
//! UserInfo, access tokens and introspection. `public` (the default) is the user's id; `pairwise`
//! (HEART-OIDC-05, IGOV-OIDC-10) is different for every sector, so clients of different sectors
//! cannot join what they know about a person by `sub`.
//!
//! The sector is the host of the client's https redirect URIs, which must then share one host
//! (OpenID Connect Core §8.1; `sector_identifier_uri` is not offered), or the client itself when
//! it has none (or only loopback or private-use ones, which prove no domain). A client's subject
//! type and sector cannot change after registration (RFC 7592 updates that would are refused), so
//! a client cannot move to another sector and read its identifiers. A pairwise `sub` is AES-SIV (RFC 5297: deterministic authenticated
//! encryption) of the user id, with the sector as associated data, under a key derived from the
//! key-encryption key, in base64url: one user in one sector always gets the same `sub`, two
//! sectors get unrelated ones, nothing about the user id can be read from it, and Custodia maps it
//! back to its user when a client pushes one of Custodia's own ID tokens as a UMA claim token.
//! Encryption rather than the hash §8.1 sketches because of that way back (a hash would need a
//! table of every identifier issued); no crate does this mapping, the cipher is `aes-siv`'s.

use aes_siv::aead::KeyInit;
use aes_siv::siv::Aes256Siv;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::Core;
use super::clients::Client;
use super::error::OAuthError;

/// `subject_type` values (OpenID Connect Registration §2).
pub const PUBLIC: &str = "public";
pub const PAIRWISE: &str = "pairwise";

/// The sector of a client with these redirect URIs (`client_id` when it has none), or an error
/// that says why pairwise identifiers cannot be given: redirect URIs on several hosts.
pub fn sector_of(client_id: &str, redirect_uris: &[String]) -> Result<String, String> {
    // A loopback redirect or a private-use scheme proves no domain (any app may use
    // `127.0.0.1` or claim `com.example.app:`): such a client is a sector of its own.
    let mut hosts = redirect_uris.iter().map(|u| {
        url::Url::parse(u)
            .ok()
            .filter(|p| p.scheme() == "https" && !custodia_profiles::is_loopback_url(p))
            .and_then(|p| p.host_str().map(str::to_ascii_lowercase))
            .unwrap_or_else(|| format!("client:{client_id}"))
    });
    let Some(first) = hosts.next() else {
        return Ok(format!("client:{client_id}"));
    };
    if hosts.any(|h| h != first) {
        return Err(
            "`subject_type` `pairwise` needs redirect URIs on one host, the sector (OpenID Connect Core §8.1)".into(),
        );
    }
    Ok(first)
}

fn cipher(key: &[u8; 64]) -> Option<Aes256Siv> {
    Aes256Siv::new_from_slice(key).ok()
}

/// The pairwise identifier of `user_id` in `sector` under `key`.
pub fn pairwise(key: &[u8; 64], sector: &str, user_id: &str) -> Option<String> {
    let ct = cipher(key)?
        .encrypt([sector.as_bytes()], user_id.as_bytes())
        .ok()?;
    Some(URL_SAFE_NO_PAD.encode(ct))
}

/// The user a pairwise identifier of `sector` under `key` stands for, if it is one.
pub fn user_of_pairwise(key: &[u8; 64], sector: &str, sub: &str) -> Option<String> {
    let ct = URL_SAFE_NO_PAD.decode(sub).ok()?;
    let plain = cipher(key)?.decrypt([sector.as_bytes()], &ct).ok()?;
    String::from_utf8(plain).ok()
}

/// The sector of a pairwise client (`None` for a public one). A client whose redirect URIs are
/// on several hosts cannot register pairwise subjects; should one exist anyway, its own id is the
/// sector — never the public identifier.
pub fn sector_for(client: &Client) -> Option<String> {
    (client.metadata.subject_type.as_deref() == Some(PAIRWISE)).then(|| {
        sector_of(&client.id, &client.metadata.redirect_uris)
            .unwrap_or_else(|_| format!("client:{}", client.id))
    })
}

/// The `sub` `client` sees for `user_id`.
pub fn for_client(core: &Core, client: &Client, user_id: &str) -> Result<String, OAuthError> {
    match sector_for(client) {
        None => Ok(user_id.to_string()),
        Some(sector) => pairwise(core.keys.pairwise_key(), &sector, user_id)
            .ok_or_else(|| OAuthError::internal("pairwise subject could not be made")),
    }
}

/// The user behind a `sub` that `client` was given, public or pairwise.
pub fn user_for_client(core: &Core, client: &Client, sub: &str) -> Option<String> {
    match sector_for(client) {
        None => Some(sub.to_string()),
        Some(sector) => user_of_pairwise(core.keys.pairwise_key(), &sector, sub),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type R = Result<(), Box<dyn std::error::Error>>;

    // HEART-OIDC-05, IGOV-OIDC-10: stable per sector, different across sectors, reversible only
    // with the sector and the key.
    #[test]
    fn pairwise_identifiers() -> R {
        let key = [3u8; 64];
        let a = pairwise(&key, "app.example", "user-1").ok_or("a")?;
        assert_eq!(
            pairwise(&key, "app.example", "user-1").as_deref(),
            Some(a.as_str())
        );
        let b = pairwise(&key, "other.example", "user-1").ok_or("b")?;
        assert_ne!(a, b);
        assert_ne!(
            pairwise(&key, "app.example", "user-2").as_deref(),
            Some(a.as_str())
        );
        assert!(!a.contains("user"));
        assert_eq!(
            user_of_pairwise(&key, "app.example", &a).as_deref(),
            Some("user-1")
        );
        assert_eq!(user_of_pairwise(&key, "other.example", &a), None);
        assert_eq!(user_of_pairwise(&[4u8; 64], "app.example", &a), None);
        assert_eq!(user_of_pairwise(&key, "app.example", "user-1"), None);
        Ok(())
    }

    #[test]
    fn sectors() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            sector_of(
                "c1",
                &s(&["https://App.example/cb", "https://app.example/other"])
            ),
            Ok("app.example".to_string())
        );
        assert_eq!(sector_of("c1", &[]), Ok("client:c1".to_string()));
        // No domain proven: the client is its own sector.
        assert_eq!(
            sector_of("c1", &s(&["com.example.app:/cb"])),
            Ok("client:c1".to_string())
        );
        assert_eq!(
            sector_of("c1", &s(&["http://127.0.0.1:8080/cb"])),
            Ok("client:c1".to_string())
        );
        assert!(sector_of("c1", &s(&["https://a.example/cb", "https://b.example/cb"])).is_err());
    }
}

//! Outbound HTTP to addresses that clients choose (a dynamically registered client's `jwks_uri`):
//! only public internet addresses are connected to (RFC 9700 §4.11 / server-side request forgery;
//! HEART-OAUTH-18 and IGOV-OAUTH-22 make Custodia fetch these URLs).
//!
//! Registration already refuses IP literals, `localhost` and single-label names for dynamic
//! clients, but a public-looking name can resolve to `10.0.0.5`, `169.254.169.254` (cloud
//! metadata) or `127.0.0.1` — at registration or only later (DNS rebinding). So the check is made
//! where the connection is made: the client built here resolves names itself and keeps only public
//! addresses, so what is checked is exactly what is connected to. It uses no proxy (a proxy would
//! resolve the name itself) and follows no redirect.
//!
//! Administrators' clients (`custodia client add`) may name internal hosts and use the server's
//! ordinary client.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Whether `ip` is a public unicast address: not loopback, private (RFC 1918, unique local),
/// shared (RFC 6598), link-local, multicast, broadcast, documentation, benchmarking, reserved or
/// unspecified, and no such IPv4 address inside an IPv6 one (mapped, compatible, NAT64, 6to4).
///
/// Written here because `IpAddr::is_global` is not stable in the standard library and no
/// well-kept crate offers the check with IPv4-in-IPv6 handled.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => is_public_v4(a),
        IpAddr::V6(a) => is_public_v6(a),
    }
}

fn is_public_v4(a: Ipv4Addr) -> bool {
    let [b0, b1, b2, _] = a.octets();
    !(a.is_unspecified()
        || a.is_loopback()
        || a.is_private()
        || a.is_link_local()
        || a.is_multicast()
        || a.is_broadcast()
        || a.is_documentation()
        || b0 == 0 // "this network" (RFC 791)
        || (b0 == 100 && (64..128).contains(&b1)) // shared address space (RFC 6598)
        || (b0 == 192 && b1 == 0 && b2 == 0) // IETF protocol assignments (RFC 6890)
        || (b0 == 192 && b1 == 88 && b2 == 99) // 6to4 relay anycast (RFC 7526)
        || (b0 == 198 && (b1 == 18 || b1 == 19)) // benchmarking (RFC 2544)
        || b0 >= 240) // reserved (RFC 1112)
}

/// The IPv4 address in bits 96..128 (`::ffff:a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`).
fn low_v4(s: &[u16; 8]) -> Ipv4Addr {
    Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8)
}

/// IPv6 by allow-list: global unicast (`2000::/3`) less the special-purpose blocks inside it;
/// outside it only IPv4-mapped and well-known-prefix NAT64 addresses, judged by their IPv4
/// address. Everything else (loopback, unique local, link-local, multicast, IPv4-compatible,
/// SIIT-translated `::ffff:0:0/96`, local-use NAT64 `64:ff9b:1::/48`, …) is not public.
fn is_public_v6(a: Ipv6Addr) -> bool {
    let s = a.segments();
    if let Some(v4) = a.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return is_public_v4(low_v4(&s));
    }
    if (s[0] & 0xe000) != 0x2000 {
        return false;
    }
    // 6to4 (2002::/16) carries an IPv4 address in segments 1 and 2.
    if s[0] == 0x2002 {
        let v4 = Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8);
        return is_public_v4(v4);
    }
    // 2001::/23: IETF protocol assignments (Teredo, benchmarking, ORCHID); 2001:db8::/32 and
    // 3fff::/20: documentation (RFC 3849, RFC 9637).
    let special = s[0] == 0x2001 && (s[1] < 0x0200 || s[1] == 0x0db8);
    let documentation = s[0] == 0x3fff && s[1] < 0x1000;
    !(special || documentation)
}

/// Whether the guarded client may connect to `ip`: public addresses, and loopback ones when the
/// development setting `insecure_loopback_http_redirects` is on.
fn allowed(ip: IpAddr, allow_loopback: bool) -> bool {
    is_public(ip) || (allow_loopback && ip.is_loopback())
}

/// A resolver that drops every address the guarded client must not connect to, and fails when
/// none is left.
struct PublicOnly {
    allow_loopback: bool,
}

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_loopback = self.allow_loopback;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let kept: Vec<SocketAddr> = found.filter(|a| allowed(a.ip(), allow_loopback)).collect();
            if kept.is_empty() {
                return Err(Box::new(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!("{host} does not resolve to a public address"),
                ))
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(kept.into_iter()) as Addrs)
        })
    }
}

/// Fetches of client-chosen URLs: public addresses only (loopback too when `allow_loopback`), no
/// proxy, no redirect, short time limits. The only way to such a fetch, so the address checks
/// cannot be skipped.
#[derive(Clone)]
pub struct PublicFetcher {
    /// `None` when the guarded client could not be built: every fetch then fails (there is no
    /// unguarded fallback).
    client: Option<reqwest::Client>,
    allow_loopback: bool,
}

impl PublicFetcher {
    pub fn new(allow_loopback: bool) -> PublicFetcher {
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(PublicOnly { allow_loopback }))
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(5))
            .connect_timeout(Duration::from_secs(3))
            .build();
        if let Err(e) = &client {
            tracing::error!(error = %e, "the client for client-chosen URLs could not be built; such fetches will fail");
        }
        PublicFetcher {
            client: client.ok(),
            allow_loopback,
        }
    }

    /// GET `url`. The error completes "it …" for an `error_description`.
    pub async fn get(&self, url: &str) -> Result<reqwest::Response, String> {
        check_literal(url, self.allow_loopback)?;
        let client = self
            .client
            .as_ref()
            .ok_or_else(|| "it could not be fetched (no client)".to_string())?;
        client.get(url).send().await.map_err(|e| {
            if e.is_connect() {
                "it could not be fetched from a public address".to_string()
            } else {
                "it could not be fetched".to_string()
            }
        })
    }
}

/// The check the resolver cannot make: a URL whose host is an IP address is connected to without
/// resolving, so its address is checked before the request is sent.
fn check_literal(url: &str, allow_loopback: bool) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|_| "it is not a URL".to_string())?;
    let ip = match parsed.host() {
        Some(url::Host::Ipv4(a)) => IpAddr::V4(a),
        Some(url::Host::Ipv6(a)) => IpAddr::V6(a),
        Some(url::Host::Domain(_)) => return Ok(()),
        None => return Err("it has no host".into()),
    };
    if allowed(ip, allow_loopback) {
        Ok(())
    } else {
        Err("its address is not a public one".into())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn public_addresses() {
        for a in [
            "8.8.8.8",
            "1.1.1.1",
            "100.63.255.255",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "2a00:1450:4001::1",
            "2001:4860:4860::8888",
        ] {
            assert!(is_public(a.parse().unwrap()), "{a} is public");
        }
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "255.255.255.255",
            "192.0.0.170",
            "192.0.2.1",
            "198.18.0.1",
            "203.0.113.9",
            "240.0.0.1",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::10.0.0.1",
            "64:ff9b::a00:1",
            "2002:a00:1::1",
            "100::1",
            "64:ff9b:1::a00:1",
            "::ffff:0:10.0.0.1",
            "::ffff:0:8.8.8.8",
            "2001::1",
            "2001:2::1",
            "2001:10::1",
            "3fff::1",
            "4000::1",
            "192.88.99.1",
        ] {
            assert!(!is_public(a.parse().unwrap()), "{a} is not public");
        }
    }

    #[test]
    fn literal_hosts_are_checked() {
        assert!(check_literal("https://8.8.8.8/jwks", false).is_ok());
        assert!(check_literal("https://keys.example/jwks", false).is_ok());
        assert!(check_literal("https://169.254.169.254/latest", false).is_err());
        assert!(check_literal("https://[::ffff:10.0.0.1]/jwks", false).is_err());
        assert!(check_literal("http://127.0.0.1:8080/jwks", false).is_err());
        assert!(check_literal("http://127.0.0.1:8080/jwks", true).is_ok());
        assert!(check_literal("http://10.0.0.1/jwks", true).is_err());
    }

    /// The address check is made at connection time: a name that resolves to loopback (here
    /// `localhost`, from the hosts file) is not connected to, though a server listens there; with
    /// the development setting it is.
    #[tokio::test]
    async fn names_resolving_to_internal_addresses_are_not_connected_to() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        // One connection is served: had the refused fetch connected, it would have taken it and
        // the allowed fetch below would fail.
        let served = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            if let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
                    )
                    .await;
            }
        });
        let url = format!("http://localhost:{port}/jwks");
        let Err(err) = PublicFetcher::new(false).get(&url).await else {
            panic!("localhost is not public, yet it was fetched");
        };
        assert_eq!(err, "it could not be fetched from a public address");
        let ok = PublicFetcher::new(true).get(&url).await.unwrap();
        assert_eq!(ok.status(), 200);
        served.await.unwrap();
    }
}

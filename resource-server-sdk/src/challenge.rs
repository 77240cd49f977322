//! The `WWW-Authenticate: UMA` challenge a resource server answers with when a request carries no
//! RPT, an invalid one or one with too few permissions (UMA 2.0 Grant §3.2.1, UMA-FED-42), and a
//! parser for `WWW-Authenticate` values (RFC 9110 §11.6.1) that clients and tests use to read it
//! back.
//!
//! Values are written as RFC 9110 §5.6.4 quoted-strings: `"` and `\` are escaped with a
//! backslash; control characters and non-ASCII characters are refused, since they cannot travel
//! in a header value everywhere.

use crate::error::Error;
use crate::secret::PermissionTicket;

/// The `Warning` header value when no permission ticket could be obtained (UMA 2.0 Grant
/// §3.2.2, UMA-FED-43).
pub const WARNING_AS_UNREACHABLE: &str = "199 - \"UMA Authorization Server Unreachable\"";

/// An UMA challenge: `UMA realm="…", as_uri="…", ticket="…"`.
#[derive(Clone, Debug)]
pub struct UmaChallenge {
    /// The protection space (optional).
    pub realm: Option<String>,
    /// The authorization server's issuer, exactly as in its discovery document.
    pub as_uri: String,
    /// The permission ticket the client redeems at the token endpoint.
    pub ticket: PermissionTicket,
}

impl UmaChallenge {
    /// A challenge with a realm.
    pub fn new(realm: Option<String>, as_uri: impl Into<String>, ticket: PermissionTicket) -> Self {
        UmaChallenge {
            realm,
            as_uri: as_uri.into(),
            ticket,
        }
    }

    /// The `WWW-Authenticate` header value. Fails when a value holds a control or non-ASCII
    /// character.
    pub fn to_header_value(&self) -> Result<String, Error> {
        let mut out = String::from("UMA ");
        if let Some(realm) = &self.realm {
            out.push_str("realm=");
            push_quoted(&mut out, "realm", realm)?;
            out.push_str(", ");
        }
        out.push_str("as_uri=");
        push_quoted(&mut out, "as_uri", &self.as_uri)?;
        out.push_str(", ticket=");
        push_quoted(&mut out, "ticket", self.ticket.expose_secret())?;
        Ok(out)
    }

    /// Read the UMA challenge out of a `WWW-Authenticate` value, which may list other challenges
    /// too. `as_uri` and `ticket` are required; a repeated parameter is an error.
    pub fn parse(header_value: &str) -> Result<UmaChallenge, Error> {
        let challenges = parse_challenges(header_value)?;
        let uma = challenges
            .into_iter()
            .find(|c| c.scheme.eq_ignore_ascii_case("UMA"))
            .ok_or_else(|| Error::Challenge("no `UMA` challenge".into()))?;
        for (i, (name, _)) in uma.params.iter().enumerate() {
            if uma.params[..i]
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case(name))
            {
                return Err(Error::Challenge(format!("repeated parameter `{name}`")));
            }
        }
        let as_uri = uma
            .param("as_uri")
            .filter(|v| !v.is_empty())
            .ok_or_else(|| Error::Challenge("missing `as_uri`".into()))?;
        let ticket = uma
            .param("ticket")
            .filter(|v| !v.is_empty())
            .ok_or_else(|| Error::Challenge("missing `ticket`".into()))?;
        Ok(UmaChallenge {
            realm: uma.param("realm").map(str::to_string),
            as_uri: as_uri.to_string(),
            ticket: PermissionTicket::new(ticket),
        })
    }
}

fn push_quoted(out: &mut String, what: &str, value: &str) -> Result<(), Error> {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => {
                return Err(Error::Challenge(format!(
                    "`{what}` holds a control or non-ascii character"
                )));
            }
        }
    }
    out.push('"');
    Ok(())
}

/// One challenge of a `WWW-Authenticate` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Challenge {
    pub scheme: String,
    pub params: Vec<(String, String)>,
    pub token68: Option<String>,
}

impl Challenge {
    /// The first parameter of this name (names are case-insensitive).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_token68_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~+/".contains(&b)
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn skip_ws(&mut self) -> usize {
        let start = self.i;
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
        self.i - start
    }
    fn skip_ws_and_commas(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b',')) {
            self.i += 1;
        }
    }
    fn token(&mut self) -> &str {
        let start = self.i;
        while self.peek().is_some_and(is_tchar) {
            self.i += 1;
        }
        // tchars are ASCII, so the slice is valid UTF-8
        std::str::from_utf8(&self.s[start..self.i]).unwrap_or_default()
    }
    fn token68(&mut self) -> Option<String> {
        let start = self.i;
        while self.peek().is_some_and(is_token68_char) {
            self.i += 1;
        }
        if self.i == start {
            return None;
        }
        while self.peek() == Some(b'=') {
            self.i += 1;
        }
        std::str::from_utf8(&self.s[start..self.i])
            .ok()
            .map(str::to_string)
    }
    fn quoted(&mut self) -> Result<String, Error> {
        // at the opening quote
        self.i += 1;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return Err(Error::Challenge("unterminated quoted string".into())),
                Some(b'"') => {
                    self.i += 1;
                    break;
                }
                Some(b'\\') => {
                    self.i += 1;
                    match self.peek() {
                        Some(b) if b == b'\t' || b >= 0x20 && b != 0x7f => {
                            out.push(b);
                            self.i += 1;
                        }
                        _ => return Err(Error::Challenge("bad quoted pair".into())),
                    }
                }
                Some(b) if b == b'\t' || b >= 0x20 && b != 0x7f => {
                    out.push(b);
                    self.i += 1;
                }
                Some(_) => {
                    return Err(Error::Challenge(
                        "control character in quoted string".into(),
                    ));
                }
            }
        }
        String::from_utf8(out).map_err(|_| Error::Challenge("quoted string is not utf-8".into()))
    }
}

/// Parse a `WWW-Authenticate` field value into its challenges (RFC 9110 §11.6.1).
pub(crate) fn parse_challenges(value: &str) -> Result<Vec<Challenge>, Error> {
    let mut c = Cursor {
        s: value.as_bytes(),
        i: 0,
    };
    let mut out = Vec::new();
    'challenges: loop {
        c.skip_ws_and_commas();
        if c.peek().is_none() {
            break;
        }
        let scheme = c.token().to_string();
        if scheme.is_empty() {
            return Err(Error::Challenge("expected an auth scheme".into()));
        }
        let mut challenge = Challenge {
            scheme,
            params: Vec::new(),
            token68: None,
        };
        let spaces = c.skip_ws();
        if c.peek().is_none() || c.peek() == Some(b',') || spaces == 0 {
            if !matches!(c.peek(), None | Some(b',')) {
                return Err(Error::Challenge("expected a space after the scheme".into()));
            }
            out.push(challenge);
            continue;
        }
        let mut first = true;
        loop {
            let save = c.i;
            let name = c.token().to_string();
            c.skip_ws();
            if !name.is_empty() && c.peek() == Some(b'=') {
                c.i += 1;
                c.skip_ws();
                let value = match c.peek() {
                    Some(b'"') => Some(c.quoted()?),
                    _ => Some(c.token().to_string()).filter(|t| !t.is_empty()),
                };
                match value {
                    Some(v) => challenge.params.push((name, v)),
                    None if first => {
                        // `scheme abc=` is a token68 ending in padding
                        c.i = save;
                        challenge.token68 = c.token68();
                    }
                    None => {
                        return Err(Error::Challenge(format!("parameter `{name}` has no value")));
                    }
                }
            } else if first {
                c.i = save;
                match c.token68() {
                    Some(t) => challenge.token68 = Some(t),
                    None => return Err(Error::Challenge("expected a parameter".into())),
                }
            } else {
                // the start of the next challenge
                c.i = save;
                out.push(challenge);
                continue 'challenges;
            }
            first = false;
            c.skip_ws();
            match c.peek() {
                None => {
                    out.push(challenge);
                    break 'challenges;
                }
                Some(b',') => {
                    c.skip_ws_and_commas();
                    if c.peek().is_none() {
                        out.push(challenge);
                        break 'challenges;
                    }
                    if challenge.token68.is_some() {
                        out.push(challenge);
                        continue 'challenges;
                    }
                }
                Some(_) => return Err(Error::Challenge("expected `,` between parameters".into())),
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn ch(realm: Option<&str>, as_uri: &str, ticket: &str) -> UmaChallenge {
        UmaChallenge::new(
            realm.map(str::to_string),
            as_uri,
            PermissionTicket::new(ticket),
        )
    }

    /// UMA-FED-42: scheme `UMA` with `as_uri` and `ticket` (and an optional realm).
    #[test]
    fn header_value_matches_the_grant_spec_example() {
        let c = ch(
            Some("example"),
            "https://as.example.com",
            "016f84e8-f9b9-11e0-bd6f-0021cc6004de",
        );
        assert_eq!(
            c.to_header_value().unwrap(),
            r#"UMA realm="example", as_uri="https://as.example.com", ticket="016f84e8-f9b9-11e0-bd6f-0021cc6004de""#
        );
        let c = ch(None, "https://as.example.com", "t");
        assert_eq!(
            c.to_header_value().unwrap(),
            r#"UMA as_uri="https://as.example.com", ticket="t""#
        );
    }

    #[test]
    fn quotes_and_backslashes_are_escaped() {
        let c = ch(Some(r#"my "photos" \ more"#), "https://as", "t");
        let v = c.to_header_value().unwrap();
        assert_eq!(
            v,
            r#"UMA realm="my \"photos\" \\ more", as_uri="https://as", ticket="t""#
        );
        let back = UmaChallenge::parse(&v).unwrap();
        assert_eq!(back.realm.as_deref(), Some(r#"my "photos" \ more"#));
    }

    #[test]
    fn control_and_non_ascii_characters_are_refused() {
        for bad in [
            "a\r\nSet-Cookie: x=y",
            "a\nb",
            "nul\0",
            "tab\there",
            "del\x7f",
            "caf\u{e9}",
        ] {
            assert!(
                ch(Some(bad), "https://as", "t").to_header_value().is_err(),
                "{bad:?}"
            );
            assert!(
                ch(None, "https://as", bad).to_header_value().is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn round_trip_of_hostile_values() {
        let values = [
            "",
            "plain",
            "\"",
            "\\",
            "\\\"",
            "\"\"\"",
            "a, ticket=\"evil\"",
            "x\", as_uri=\"https://evil\"",
            "trailing\\",
            "= , ; \" \\ ' `",
            " leading and trailing ",
        ];
        for realm in values {
            for ticket in values.iter().filter(|t| !t.is_empty()) {
                let c = ch(Some(realm), "https://as.example/issuer", ticket);
                let v = c.to_header_value().unwrap();
                let back = UmaChallenge::parse(&v).unwrap_or_else(|e| panic!("{v}: {e}"));
                assert_eq!(back.realm.as_deref(), Some(realm), "{v}");
                assert_eq!(back.as_uri, "https://as.example/issuer", "{v}");
                assert_eq!(back.ticket.expose_secret(), *ticket, "{v}");
            }
        }
    }

    #[test]
    fn round_trip_of_every_printable_ascii_character() {
        let all: String = (0x20u8..0x7f).map(char::from).collect();
        let c = ch(Some(&all), &all, &all);
        let back = UmaChallenge::parse(&c.to_header_value().unwrap()).unwrap();
        assert_eq!(back.realm.as_deref(), Some(all.as_str()));
        assert_eq!(back.as_uri, all);
        assert_eq!(back.ticket.expose_secret(), all);
    }

    #[test]
    fn parse_finds_uma_among_other_challenges() {
        let v = r#"Basic realm="x", Bearer realm="api", error="invalid_token", uma as_uri="https://as", TICKET=tok.en-1, Newauth"#;
        let c = UmaChallenge::parse(v).unwrap();
        assert_eq!(c.as_uri, "https://as");
        assert_eq!(c.ticket.expose_secret(), "tok.en-1");
        assert_eq!(c.realm, None);
        let all = parse_challenges(v).unwrap();
        let schemes: Vec<_> = all.iter().map(|c| c.scheme.as_str()).collect();
        assert_eq!(schemes, ["Basic", "Bearer", "uma", "Newauth"]);
        assert_eq!(all[1].param("ERROR"), Some("invalid_token"));
    }

    #[test]
    fn parse_handles_whitespace_and_token68() {
        let all =
            parse_challenges("Bearer abc.def/ghi==, UMA  as_uri = \"u\" ,ticket=\"t\"").unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].token68.as_deref(), Some("abc.def/ghi=="));
        assert_eq!(all[1].param("as_uri"), Some("u"));
        assert_eq!(all[1].param("ticket"), Some("t"));
        assert_eq!(parse_challenges("").unwrap(), vec![]);
    }

    #[test]
    fn parse_rejects_malformed_values() {
        for bad in [
            r#"UMA as_uri="https://as", ticket="unterminated"#,
            r#"UMA as_uri="https://as""#,
            r#"UMA ticket="t""#,
            r#"UMA as_uri="", ticket="t""#,
            r#"UMA as_uri="a", ticket="t", ticket="u""#,
            r#"UMA as_uri="a", TICKET="t", ticket="u""#,
            r#"UMA as_uri="a" ticket="t""#,
            "UMA as_uri=\"a\u{1}\", ticket=\"t\"",
            r#"UMA as_uri="a", ticket="t\"#,
            r#"Bearer realm="x""#,
            r#""UMA" as_uri="a""#,
            "UMA as_uri=, ticket=t",
        ] {
            assert!(UmaChallenge::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parse_never_panics_on_prefixes_of_a_valid_value() {
        let v = r#"Bearer realm="a\"b", UMA realm="r", as_uri="https://as", ticket="t""#;
        for end in 0..=v.len() {
            let _ = parse_challenges(&v[..end]);
            let _ = UmaChallenge::parse(&v[..end]);
        }
    }
}

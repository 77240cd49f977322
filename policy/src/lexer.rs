//! A small, iterative tokenizer for Cedar text: enough to bound a policy's size and depth before
//! Cedar's (recursive) parser and printers see it, to list the claims a policy reads, and to read
//! the unknowns in a residual policy's text — all without recursion, so no input can exhaust the
//! stack here.

/// A Cedar token, as far as this crate cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Token<'a> {
    /// A string literal, unescaped (`None` when its escapes are malformed).
    Str(Option<String>),
    /// An identifier or keyword.
    Ident(&'a str),
    /// Any other character.
    Punct(char),
}

/// A token and the byte offset where it starts.
pub(crate) type Spanned<'a> = (usize, Token<'a>);

/// Tokenizes `text`, skipping whitespace and `//` comments. Never fails: unknown characters are
/// punctuation, an unterminated string runs to the end.
pub(crate) fn tokens(text: &str) -> Vec<Spanned<'_>> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < text.len() {
        let Some(c) = text.get(i..).and_then(|s| s.chars().next()) else {
            break;
        };
        if c.is_whitespace() {
            i += c.len_utf8();
        } else if c == '/' && bytes.get(i + 1) == Some(&b'/') {
            i = text
                .get(i..)
                .and_then(|s| s.find('\n'))
                .map_or(text.len(), |n| i + n);
        } else if c == '"' {
            let start = i;
            i += 1;
            let mut escaped = false;
            let mut end = text.len();
            for (j, d) in text.get(i..).unwrap_or("").char_indices() {
                if escaped {
                    escaped = false;
                } else if d == '\\' {
                    escaped = true;
                } else if d == '"' {
                    end = i + j;
                    break;
                }
            }
            let raw = text.get(i..end).unwrap_or("");
            out.push((start, Token::Str(unescape(raw))));
            i = if end < text.len() {
                end + 1
            } else {
                text.len()
            };
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            let len: usize = text
                .get(i..)
                .unwrap_or("")
                .chars()
                .take_while(|d| d.is_alphanumeric() || *d == '_')
                .map(char::len_utf8)
                .sum();
            i += len;
            out.push((start, Token::Ident(text.get(start..i).unwrap_or(""))));
        } else {
            out.push((i, Token::Punct(c)));
            i += c.len_utf8();
        }
    }
    out
}

/// Cedar string escapes: `\n \r \t \\ \0 \' \" \u{…}`.
fn unescape(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            '0' => out.push('\0'),
            '\\' => out.push('\\'),
            '\'' => out.push('\''),
            '"' => out.push('"'),
            '*' => out.push_str("\\*"),
            'u' => {
                if chars.next()? != '{' {
                    return None;
                }
                let hex: String = chars.by_ref().take_while(|d| *d != '}').collect();
                out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
            }
            _ => return None,
        }
    }
    Some(out)
}

/// Operators that add a level to an expression (each character of `&&`, `==`, … counts; so do
/// the keywords), a bound on the depth of the expression tree.
pub(crate) fn operator_count(tokens: &[Spanned<'_>]) -> usize {
    tokens
        .iter()
        .filter(|(_, t)| match t {
            Token::Punct(c) => "&|=!<>+-*.".contains(*c),
            Token::Ident(w) => matches!(*w, "if" | "in" | "has" | "like" | "is"),
            Token::Str(_) => false,
        })
        .count()
}

/// The deepest bracket nesting, and where it is first exceeded past `limit`.
pub(crate) fn too_deep(tokens: &[Spanned<'_>], limit: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (offset, t) in tokens {
        match t {
            Token::Punct('(' | '[' | '{') => {
                depth += 1;
                if depth > limit {
                    return Some(*offset);
                }
            }
            Token::Punct(')' | ']' | '}') => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// The claim names read with a literal name: `principal.hasTag("x")`, `principal.getTag("x")`.
pub(crate) fn tag_names(tokens: &[Spanned<'_>]) -> Vec<String> {
    tokens
        .windows(5)
        .filter_map(|w| match w {
            [
                (_, Token::Ident("principal")),
                (_, Token::Punct('.')),
                (_, Token::Ident("hasTag" | "getTag")),
                (_, Token::Punct('(')),
                (_, Token::Str(Some(name))),
            ] => Some(name.clone()),
            _ => None,
        })
        .collect()
}

/// In a residual's text: every `unknown("name")`, and each string literal it is compared with by
/// `==` (on either side).
pub(crate) fn unknowns(tokens: &[Spanned<'_>]) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    for (i, w) in tokens.windows(4).enumerate() {
        let [
            (_, Token::Ident("unknown")),
            (_, Token::Punct('(')),
            (_, Token::Str(Some(name))),
            (_, Token::Punct(')')),
        ] = w
        else {
            continue;
        };
        out.push((name.clone(), None));
        let after = tokens.get(i + 4..i + 7);
        if let Some(
            [
                (_, Token::Punct('=')),
                (_, Token::Punct('=')),
                (_, Token::Str(Some(lit))),
            ],
        ) = after
        {
            out.push((name.clone(), Some(lit.clone())));
        }
        let before = i.checked_sub(3).and_then(|s| tokens.get(s..i));
        if let Some(
            [
                (_, Token::Str(Some(lit))),
                (_, Token::Punct('=')),
                (_, Token::Punct('=')),
            ],
        ) = before
        {
            out.push((name.clone(), Some(lit.clone())));
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn strings_comments_and_escapes() {
        let t = tokens("a // x \"y\n\"q\\\"\\u{e9}\" b.c");
        assert_eq!(
            t.iter().map(|(_, t)| t.clone()).collect::<Vec<_>>(),
            vec![
                Token::Ident("a"),
                Token::Str(Some("q\"é".into())),
                Token::Ident("b"),
                Token::Punct('.'),
                Token::Ident("c"),
            ]
        );
        assert_eq!(tokens("\"unterminated").len(), 1);
        assert_eq!(tokens("\"bad \\q\"")[0].1, Token::Str(None));
    }

    #[test]
    fn tag_names_and_unknowns() {
        let t = tokens(
            r#"principal.hasTag("role") && principal.getTag( "np\"i" ).contains("x") && resource.hasTag("no")"#,
        );
        assert_eq!(tag_names(&t), ["role", "np\"i"]);
        let t = tokens(
            r#"(unknown("claim:role").contains("d")) && (unknown("context:cti") == "https://i") && ("x" == unknown("party:issuer"))"#,
        );
        assert_eq!(
            unknowns(&t),
            vec![
                ("claim:role".to_owned(), None),
                ("context:cti".to_owned(), None),
                ("context:cti".to_owned(), Some("https://i".to_owned())),
                ("party:issuer".to_owned(), None),
                ("party:issuer".to_owned(), Some("x".to_owned())),
            ]
        );
    }

    #[test]
    fn operators_and_depth() {
        let t = tokens("if a.b && !c in d then [[1]] else -2");
        assert_eq!(operator_count(&t), 7);
        assert_eq!(
            too_deep(&t, 1),
            Some(
                t.iter()
                    .find(|(_, t)| *t == Token::Punct('['))
                    .map(|(o, _)| *o + 1)
                    .unwrap()
            )
        );
        assert_eq!(too_deep(&t, 2), None);
    }
}

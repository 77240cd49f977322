//! Strict JSON for request bodies: a repeated member name at any depth is an error (UMA Federated
//! Authorization §3.2 lists a repeated parameter among the `invalid_request` causes), and nesting is
//! bounded. `serde_json::Value` alone would silently keep the last duplicate.
//!
//! Hand-written because serde_json has no duplicate-key switch; it is a plain serde visitor.

use std::fmt;

use serde::Deserializer as _;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::error::OAuthError;

const MAX_DEPTH: usize = 16;

struct Strict {
    depth: usize,
}

impl<'de> de::DeserializeSeed<'de> for Strict {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        if self.depth >= MAX_DEPTH {
            return Err(de::Error::custom("the JSON is nested too deeply"));
        }
        let mut out = vec![];
        while let Some(v) = seq.next_element_seed(Strict {
            depth: self.depth + 1,
        })? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        if self.depth >= MAX_DEPTH {
            return Err(de::Error::custom("the JSON is nested too deeply"));
        }
        let mut out = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            let v = map.next_value_seed(Strict {
                depth: self.depth + 1,
            })?;
            if out.contains_key(&k) {
                return Err(de::Error::custom(format!(
                    "member `{}` appears more than once",
                    super::scope::sanitize(&k)
                )));
            }
            out.insert(k, v);
        }
        Ok(Value::Object(out))
    }
}

/// Parse a request body as JSON, refusing repeated member names.
pub fn parse_strict(body: &[u8]) -> Result<Value, OAuthError> {
    let mut d = serde_json::Deserializer::from_slice(body);
    let v = d
        .deserialize_any(Strict { depth: 0 })
        .and_then(|v| d.end().map(|()| v))
        .map_err(|e| {
            // serde_json's message names a line and column, never our types.
            OAuthError::invalid_request(format!("the body is not valid JSON: {e}"))
        })?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_and_depth() {
        assert!(parse_strict(br#"{"a":1,"b":[1,{"c":2}]}"#).is_ok());
        assert!(parse_strict(br#"{"a":1,"a":2}"#).is_err());
        assert!(parse_strict(br#"[{"x":{"y":1,"y":1}}]"#).is_err());
        assert!(parse_strict(br#"{"a":1} trailing"#).is_err());
        let deep = format!("{}{}", "[".repeat(40), "]".repeat(40));
        assert!(parse_strict(deep.as_bytes()).is_err());
    }
}

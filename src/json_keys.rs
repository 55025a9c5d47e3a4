//! What is wrong with JSON input, read the same way by both frontends: duplicate keys, found so they
//! can be refused (serde_json keeps the last of `{"title": "a", "title": "b"}` without a word, so a
//! client, or a proxy that checked the first, would not know which value was stored); and the field
//! a serde error message names, without serde_json's position.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// The first key given twice in one object of `bytes`, at any depth; `None` when there is none or
/// when `bytes` is not JSON (the caller's parse reports that).
pub fn first_duplicate(bytes: &[u8]) -> Option<String> {
    let found = RefCell::new(None);
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    // An error is either the duplicate (recorded in `found`) or not JSON: the caller says which.
    let _ = Check(&found).deserialize(&mut deserializer);
    found.into_inner()
}

/// Walks one JSON value for duplicate keys, recording the first in the cell.
#[derive(Clone, Copy)]
struct Check<'a>(&'a RefCell<Option<String>>);

impl<'de> DeserializeSeed<'de> for Check<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Check<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(self)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if seen.contains(&key) {
                *self.0.borrow_mut() = Some(key);
                return Err(de::Error::custom("duplicate key"));
            }
            map.next_value_seed(self)?;
            seen.insert(key);
        }
        Ok(())
    }
}

/// The first `name` in a serde message such as "unknown field `id`" or "missing field `task_id`".
/// An unknown name may hold a backtick itself: it ends where serde's list of expected names begins.
/// An empty name names nothing (the caller falls back to the whole input).
pub fn backticked(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let rest = &message[start..];
    let len = rest.rfind("`, expected").or_else(|| rest.rfind('`'))?;
    Some(rest[..len].to_owned()).filter(|name| !name.is_empty())
}

/// serde_json appends " at line 1 column 42": useless once the field is named.
pub fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) if message[i..].contains(" column ") => message[..i].to_owned(),
        _ => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_given_twice_is_found_at_any_depth() {
        assert_eq!(first_duplicate(br#"{"title": "a", "title": "b"}"#).as_deref(), Some("title"));
        assert_eq!(first_duplicate(br#"{"p": {"arguments": [{"x": 1, "x": 2}]}}"#).as_deref(), Some("x"));
        // The same key in two objects is no duplicate; escapes are compared decoded.
        assert_eq!(first_duplicate(br#"[{"a": 1}, {"a": 2}, {"b": {"a": 3}, "a": 4}]"#), None);
        assert_eq!(first_duplicate(br#"{"a": 1, "\u0061": 2}"#).as_deref(), Some("a"));
        assert_eq!(first_duplicate(b"{\"a\": "), None, "not JSON: left to the caller's parse");
    }

    proptest::proptest! {
        #[test]
        fn objects_built_with_distinct_keys_have_no_duplicate(value in crate::domain::properties::tricky_text(30)) {
            let object = serde_json::json!({ "a": value, "b": [value], "c": { "a": value } });
            proptest::prop_assert_eq!(first_duplicate(&serde_json::to_vec(&object).unwrap_or_default()), None);
        }
    }
}

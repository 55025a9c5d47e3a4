//! Opaque page cursors: the keyset position, encoded so clients treat it as a token.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::DateTime;
use uuid::Uuid;

use crate::domain::{PageCursor, ValidationError};

const VERSION: &str = "v1";

pub fn encode(cursor: &PageCursor) -> String {
    let raw = format!("{VERSION}:{}:{}", cursor.updated_at.timestamp_micros(), cursor.id.simple());
    URL_SAFE_NO_PAD.encode(raw)
}

pub fn decode(field: &str, token: &str) -> Result<PageCursor, ValidationError> {
    let bad = || ValidationError::new(field, "is not a cursor returned by this server (pass next_cursor unchanged)");
    let bytes = URL_SAFE_NO_PAD.decode(token.trim()).map_err(|_| bad())?;
    let raw = String::from_utf8(bytes).map_err(|_| bad())?;
    let mut parts = raw.splitn(3, ':');
    if parts.next() != Some(VERSION) {
        return Err(bad());
    }
    let micros: i64 = parts.next().and_then(|m| m.parse().ok()).ok_or_else(bad)?;
    let id = parts.next().and_then(|i| Uuid::parse_str(i).ok()).ok_or_else(bad)?;
    let updated_at = DateTime::from_timestamp_micros(micros).ok_or_else(bad)?;
    Ok(PageCursor { updated_at, id })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::Strategy;

    #[test]
    fn a_cursor_survives_a_round_trip() {
        let cursor = PageCursor {
            updated_at: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
            id: Uuid::new_v4(),
        };
        assert_eq!(decode("cursor", &encode(&cursor)).unwrap(), cursor);
    }

    proptest::proptest! {
        // Fuzzing the codec (proptest; `PROPTEST_CASES` raises the 256 cases): any position
        // survives a round trip, and no token at all, forged or random, can make `decode` panic.
        #[test]
        fn every_position_survives_a_round_trip(
            updated_at in proptest::prelude::any::<i64>().prop_filter_map("a time chrono holds", DateTime::from_timestamp_micros),
            id in proptest::prelude::any::<u128>(),
        ) {
            let cursor = PageCursor { updated_at, id: Uuid::from_u128(id) };
            proptest::prop_assert_eq!(decode("cursor", &encode(&cursor)), Ok(cursor));
        }

        #[test]
        fn a_random_token_is_refused_naming_the_field_or_read_as_a_position(
            token in "\\PC{0,60}",
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..60),
            micros in proptest::prelude::any::<i64>(),
            tail in "\\PC{0,40}",
        ) {
            let forged = [
                token,
                URL_SAFE_NO_PAD.encode(&bytes),
                URL_SAFE_NO_PAD.encode(format!("v1:{micros}:{tail}")),
            ];
            for token in forged {
                match decode("cursor", &token) {
                    Ok(cursor) => proptest::prop_assert_eq!(decode("cursor", &encode(&cursor)), Ok(cursor)),
                    Err(err) => proptest::prop_assert_eq!(err.field, "cursor"),
                }
            }
        }
    }

    #[test]
    fn a_forged_cursor_is_refused() {
        assert!(decode("cursor", "not-a-cursor").is_err());
        assert!(decode("cursor", &URL_SAFE_NO_PAD.encode("v1:abc:def")).is_err());
        assert!(decode("cursor", "").is_err());
    }
}

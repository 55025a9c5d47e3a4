//! Property tests of the domain's parsing (proptest, this crate's fuzzing): the validated text
//! types, the closed value sets, user references and ids never panic, name the field they refuse,
//! accept every valid value unchanged, and give back what they accepted when parsed again.
//!
//! Each property runs 256 cases by default (a second or so); a longer run sets `PROPTEST_CASES`,
//! e.g. `PROPTEST_CASES=100000 cargo nextest run -E 'test(/properties/)'`. A failure is saved under
//! `proptest-regressions/` (commit it) and replayed first on every later run.

use proptest::prelude::*;

use super::text::{COMMENT_MAX_CHARS, DESCRIPTION_MAX_CHARS, SEARCH_MAX_CHARS, TITLE_MAX_CHARS};
use super::*;

/// Characters that sit on the edges of the rules, mixed with any character at all.
fn tricky_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => any::<char>(),
        1 => prop::sample::select(vec![
            '\0', '\n', '\r', '\t', ' ', '\u{7f}', '\u{85}', '\u{a0}', '\u{200B}', '\u{200E}', '\u{202E}', '\u{2028}',
            '\u{2066}', '\u{FEFF}', '\u{FFFD}', '%', '_', '\\', '\'', '"', '@', ';', ',', '<', '/', '.', '-', 'é', 'ß',
            'İ', '😀', '`', 'a', 'Z', '0',
        ]),
    ]
}

/// Text of tricky characters, up to `max` of them.
pub(crate) fn tricky_text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(tricky_char(), 0..=max).prop_map(|chars| chars.into_iter().collect())
}

/// Any JSON value, a few levels deep, with tricky strings (the arguments and bodies of the MCP and
/// HTTP properties).
pub(crate) fn any_json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(|n| serde_json::json!(n)),
        any::<f64>().prop_map(|f| serde_json::json!(f)),
        any::<u64>().prop_map(|n| serde_json::json!(n)),
        tricky_text(20).prop_map(serde_json::Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(tricky_text(8), inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A character every text field takes: printable, not a line break, not a direction control
/// (others become `x`: mapping, not filtering, so long runs reject nothing).
fn plain_char() -> impl Strategy<Value = char> {
    any::<char>().prop_map(|c| {
        let bad = c.is_control()
            || c.is_whitespace()
            || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}');
        if bad { 'x' } else { c }
    })
}

/// One-line text as a person writes it: plain characters and inner spaces, no blank ends.
fn one_line_text(max_chars: usize) -> impl Strategy<Value = String> {
    (plain_char(), prop::collection::vec(prop_oneof![6 => plain_char(), 1 => Just(' ')], 0..max_chars)).prop_map(
        |(first, rest)| {
            let text: String = std::iter::once(first).chain(rest).collect();
            text.trim_end().to_owned()
        },
    )
}

/// Checks what every parse promises: a refusal names the field and says why.
fn refusal_is_clear(err: &ValidationError, field: &str) -> Result<(), TestCaseError> {
    prop_assert_eq!(&err.field, field);
    prop_assert!(!err.message.trim().is_empty());
    Ok(())
}

/// `LIKE` with `\` as the escape character, case-insensitively (as `ILIKE` and the SQLite store's
/// lower-cased search text do): a reference matcher for `like_pattern`.
fn like_matches(pattern: &str, haystack: &str) -> bool {
    enum Token {
        Any,
        One,
        Char(char),
    }
    let mut tokens = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        tokens.push(match c {
            '%' => Token::Any,
            '_' => Token::One,
            '\\' => Token::Char(chars.next().unwrap_or('\\')),
            c => Token::Char(c),
        });
    }
    let hay: Vec<char> = haystack.chars().collect();
    // matched[j]: the tokens so far can match the first j characters.
    let mut matched = vec![false; hay.len() + 1];
    matched[0] = true;
    for token in &tokens {
        let mut next = vec![false; hay.len() + 1];
        for j in 0..=hay.len() {
            match token {
                Token::Any => next[j] = matched[j] || (j > 0 && next[j - 1]),
                Token::One => next[j] = j > 0 && matched[j - 1],
                Token::Char(c) => next[j] = j > 0 && matched[j - 1] && hay[j - 1].to_lowercase().eq(c.to_lowercase()),
            }
        }
        matched = next;
    }
    matched[hay.len()]
}

/// Whether `needle` occurs in `haystack`, character by character ignoring case (as `like_matches`).
fn contains_ignoring_case(haystack: &str, needle: &str) -> bool {
    let hay: Vec<char> = haystack.chars().collect();
    let needle: Vec<char> = needle.chars().collect();
    let same = |a: char, b: char| a.to_lowercase().eq(b.to_lowercase());
    needle.is_empty() || hay.windows(needle.len()).any(|w| w.iter().zip(&needle).all(|(a, b)| same(*a, *b)))
}

proptest! {
    #[test]
    fn every_text_type_refuses_clearly_or_accepts_for_good(raw in tricky_text(40)) {
        type Parse = fn(&str, &str) -> Result<String, ValidationError>;
        let parsers: [(&str, Parse); 8] = [
            ("title", |f, r| Title::parse(f, r).map(Title::into_inner)),
            ("description", |f, r| Description::parse(f, r).map(Description::into_inner)),
            ("comment", |f, r| CommentText::parse(f, r).map(CommentText::into_inner)),
            ("assignee_id", |f, r| Email::parse(f, r).map(Email::into_inner)),
            ("repository", |f, r| RepoName::parse(f, r).map(RepoName::into_inner)),
            ("created_by", |f, r| Label::parse(f, r).map(Label::into_inner)),
            ("query", |f, r| SearchText::parse(f, r).map(SearchText::into_inner)),
            ("idempotency_key", |f, r| IdempotencyKey::parse(f, r).map(IdempotencyKey::into_inner)),
        ];
        for (field, parse) in parsers {
            match parse(field, &raw) {
                Err(err) => refusal_is_clear(&err, field)?,
                Ok(value) => {
                    prop_assert!(!value.contains('\0'), "{} kept a NUL", field);
                    // Accepted once, accepted again as it is: what is stored parses back unchanged.
                    prop_assert_eq!(parse(field, &value), Ok(value.clone()), "{} is not stable", field);
                }
            }
        }
    }

    #[test]
    fn every_valid_title_is_accepted_verbatim(title in one_line_text(TITLE_MAX_CHARS)) {
        prop_assert_eq!(Title::parse("title", &title).map(Title::into_inner), Ok(title.clone()));
        prop_assert_eq!(Label::parse("l", &title).is_ok(), title.chars().count() <= 255);
    }

    #[test]
    fn a_title_is_refused_past_500_characters_whatever_their_size(c in plain_char(), n in 1usize..=700) {
        let title = c.to_string().repeat(n);
        let parsed = Title::parse("title", &title);
        prop_assert_eq!(parsed.is_ok(), n <= TITLE_MAX_CHARS, "{} × {:?}", n, c);
        if let Err(err) = parsed {
            prop_assert!(err.message.contains("500"), "{}", err.message);
        }
    }

    #[test]
    fn multi_line_text_is_kept_byte_for_byte_up_to_its_limit(
        lines in prop::collection::vec(one_line_text(30), 1..8),
        breaks in prop::sample::select(vec!["\n", "\r\n", "\t", "\u{2028}", "\u{202E}"]),
        pad in 0usize..=70_000,
    ) {
        let text = format!("{}{}", lines.join(breaks), "p".repeat(pad));
        let description = Description::parse("description", &text).map(Description::into_inner);
        prop_assert_eq!(description.is_ok(), text.chars().count() <= DESCRIPTION_MAX_CHARS);
        if let Ok(kept) = description {
            prop_assert_eq!(kept, text.clone());
        }
        let comment = CommentText::parse("comment", &text).map(CommentText::into_inner);
        prop_assert_eq!(comment.is_ok(), text.chars().count() <= COMMENT_MAX_CHARS);
        if let Ok(kept) = comment {
            prop_assert_eq!(kept, text);
        }
    }

    #[test]
    fn a_search_matches_literally_what_it_says(needle in tricky_text(12), haystack in tricky_text(30)) {
        let Ok(search) = SearchText::parse("query", &needle) else { return Ok(()) };
        prop_assert!(search.as_str().chars().count() <= SEARCH_MAX_CHARS);
        let pattern = search.like_pattern();
        prop_assert_eq!(
            like_matches(&pattern, &haystack),
            contains_ignoring_case(&haystack, search.as_str()),
            "pattern {:?} on {:?}", pattern, haystack
        );
        // Planted in the haystack, it is always found.
        let planted = format!("{haystack}{}{haystack}", search.as_str());
        prop_assert!(like_matches(&pattern, &planted), "pattern {:?} on {:?}", pattern, planted);
    }

    #[test]
    fn closed_sets_accept_their_spellings_and_list_them_otherwise(
        raw in tricky_text(16),
        pick in any::<prop::sample::Index>(),
        upper in any::<bool>(),
        separator in prop::sample::select(vec!["_", "-", " "]),
    ) {
        fn check<T: Copy + PartialEq + std::fmt::Debug>(
            raw: &str,
            all: &[T],
            name: fn(T) -> &'static str,
            parse: fn(&str, &str) -> Result<T, ValidationError>,
            pick: &prop::sample::Index,
            upper: bool,
            separator: &str,
        ) -> Result<(), TestCaseError> {
            match parse("status", raw) {
                Ok(value) => prop_assert!(all.contains(&value)),
                Err(err) => {
                    refusal_is_clear(&err, "status")?;
                    prop_assert_eq!(err.accepted.len(), all.len());
                }
            }
            let value = *pick.get(all);
            let mut spelling = name(value).replace('_', separator);
            if upper {
                spelling = format!("  {}\t", spelling.to_uppercase());
            }
            prop_assert_eq!(parse("status", &spelling), Ok(value), "{:?}", spelling);
            Ok(())
        }
        check(&raw, Status::ALL, Status::as_str, Status::parse, &pick, upper, separator)?;
        check(&raw, Priority::ALL, Priority::as_str, Priority::parse, &pick, upper, separator)?;
        check(&raw, Complexity::ALL, Complexity::as_str, Complexity::parse, &pick, upper, separator)?;
    }

    #[test]
    fn ids_and_user_references_parse_or_name_their_field(raw in tricky_text(40), id in any::<u128>()) {
        if let Err(err) = parse_uuid("task_id", &raw) {
            refusal_is_clear(&err, "task_id")?;
        }
        match UserRef::parse("assignee_id", &raw) {
            Err(err) => refusal_is_clear(&err, "assignee_id")?,
            Ok(UserRef::Email(email)) => {
                prop_assert_eq!(email.as_str().matches('@').count(), 1);
                prop_assert_eq!(email.as_str().to_lowercase(), email.as_str());
            }
            Ok(_) => {}
        }
        let uuid = uuid::Uuid::from_u128(id);
        for text in [uuid.to_string(), uuid.simple().to_string(), format!(" {} ", uuid.to_string().to_uppercase())] {
            prop_assert_eq!(parse_uuid("task_id", &text), Ok(uuid));
            prop_assert_eq!(UserRef::parse("assignee_id", &text), Ok(UserRef::Id(uuid)));
        }
    }

    #[test]
    fn an_accepted_email_parses_back_unchanged(c in tricky_char(), n in 1usize..=260) {
        let raw = format!("{}@example.com", c.to_string().repeat(n));
        if let Ok(email) = Email::parse("email", &raw) {
            prop_assert!(email.as_str().chars().count() <= 254);
            prop_assert_eq!(Email::parse("email", email.as_str()), Ok(email.clone()));
        }
    }

    #[test]
    fn every_plain_email_is_a_user(local in "[a-zA-Z0-9._+-]{1,30}", domain in "[a-zA-Z0-9-]{1,20}\\.[a-z]{2,6}") {
        let raw = format!("{local}@{domain}");
        let parsed = UserRef::parse("assignee_id", &raw);
        let expected = Email::parse("assignee_id", &raw).map(UserRef::Email);
        prop_assert_eq!(&parsed, &expected);
        prop_assert!(parsed.is_ok(), "{:?}", raw);
    }
}

#[test]
fn the_reference_matcher_reads_like_patterns_as_sql_does() {
    assert!(like_matches(r"%50\%\_off%", "big 50%_off sale"));
    assert!(!like_matches(r"%50\%\_off%", "big 500-off sale"));
    assert!(like_matches("%a_c%", "xABCx"));
    assert!(!like_matches(r"%\\%", "no backslash"));
}

//! Validated text newtypes: each has a private field and a `parse` that names the field when it refuses.

use super::ValidationError;

pub const TITLE_MAX_CHARS: usize = 500;
pub const DESCRIPTION_MAX_CHARS: usize = 64 * 1024;
pub const COMMENT_MAX_CHARS: usize = 16 * 1024;
pub const REPO_MAX_CHARS: usize = 200;
pub const LABEL_MAX_CHARS: usize = 255;
pub const EMAIL_MAX_CHARS: usize = 254;
pub const SEARCH_MAX_CHARS: usize = 200;
pub const IDEMPOTENCY_KEY_MAX_CHARS: usize = 200;
pub const KEY_NAME_MAX_CHARS: usize = 100;

/// Characters that reorder text on screen (Trojan Source): refused in one-line fields.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

fn refuse_nul(field: &str, raw: &str) -> Result<(), ValidationError> {
    if raw.contains('\0') {
        return Err(ValidationError::new(field, "must not contain the NUL character (\\u0000)"));
    }
    Ok(())
}

/// One-line text: no control characters at all, no bidi overrides.
fn one_line(field: &str, raw: &str, max_chars: usize) -> Result<String, ValidationError> {
    refuse_nul(field, raw)?;
    let value = raw.trim();
    if value.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    let chars = value.chars().count();
    if chars > max_chars {
        return Err(ValidationError::new(
            field,
            format!("is {chars} characters long; at most {max_chars} are accepted"),
        ));
    }
    // U+2028 and U+2029 are not control characters to Unicode, but they break the line all the same.
    if let Some(c) = value.chars().find(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')) {
        return Err(ValidationError::new(
            field,
            format!("must be one line without control characters (found U+{:04X})", c as u32),
        ));
    }
    if let Some(c) = value.chars().find(|c| is_bidi_control(*c)) {
        return Err(ValidationError::new(
            field,
            format!("must not contain text-direction controls (found U+{:04X})", c as u32),
        ));
    }
    Ok(value.to_owned())
}

/// Multi-line text: tabs and line breaks allowed, other control characters refused.
/// Counted in characters (Unicode scalar values), as JSON Schema's `maxLength` counts: the documents
/// that state a limit and the parser that enforces it then agree on every text, whatever its script.
fn multi_line(field: &str, raw: &str, max_chars: usize) -> Result<String, ValidationError> {
    refuse_nul(field, raw)?;
    let chars = raw.chars().count();
    if chars > max_chars {
        return Err(ValidationError::new(
            field,
            format!("is {chars} characters long; at most {max_chars} characters are accepted"),
        ));
    }
    if let Some(c) = raw.chars().find(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
        return Err(ValidationError::new(
            field,
            format!("must not contain control characters other than tab and line breaks (found U+{:04X})", c as u32),
        ));
    }
    Ok(raw.to_owned())
}

macro_rules! text_newtype {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_inner(self) -> String {
                self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

text_newtype!(
    /// A task title: one line, 1 to 500 characters, trimmed.
    Title
);
text_newtype!(
    /// A task description: up to 65,536 characters, line breaks allowed (may be empty).
    Description
);
text_newtype!(
    /// A comment: 1 to 16,384 characters, not blank, line breaks allowed.
    CommentText
);
text_newtype!(
    /// An email address, lower-cased so one person is one user.
    Email
);
text_newtype!(
    /// A repository name such as `auth-service` or `org/auth-service`.
    RepoName
);
text_newtype!(
    /// Who did something, as recorded in `created_by` / `updated_by` / `author`.
    Label
);
text_newtype!(
    /// Text searched for in titles and descriptions, matched literally.
    SearchText
);
text_newtype!(
    /// A client-chosen key that makes a create safe to retry.
    IdempotencyKey
);
text_newtype!(
    /// The name of an API key (`laptop`, `ci`): one line, 1 to 100 characters, unique among keys.
    KeyName
);

impl Title {
    pub fn parse(field: &str, raw: &str) -> Result<Self, ValidationError> {
        one_line(field, raw, TITLE_MAX_CHARS).map(Self)
    }
}

impl Description {
    pub fn parse(field: &str, raw: &str) -> Result<Self, ValidationError> {
        multi_line(field, raw, DESCRIPTION_MAX_CHARS).map(Self)
    }
}

impl CommentText {
    pub fn parse(field: &str, raw: &str) -> Result<Self, ValidationError> {
        let value = multi_line(field, raw, COMMENT_MAX_CHARS)?;
        if value.trim().is_empty() {
            return Err(ValidationError::new(field, "must not be empty"));
        }
        Ok(Self(value))
    }
}

impl Email {
    pub fn parse(field: &str, raw: &str) -> Result<Self, ValidationError> {
        // Lower-cased before the length check: lower-casing can lengthen text ('İ' is two characters
        // in lower case), and what is stored must be what parses.
        let value = one_line(field, &raw.to_lowercase(), EMAIL_MAX_CHARS)?;
        let valid = match value.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.is_empty()
                    && !domain.contains('@')
                    && !value.chars().any(|c| c.is_whitespace() || matches!(c, '<' | '>' | ',' | ';' | '"'))
            }
            None => false,
        };
        if !valid {
            return Err(ValidationError::new(field, format!("{raw:?} is not an email address (expected name@domain)")));
        }
        Ok(Self(value))
    }
}

impl RepoName {
    pub fn parse(field: &str, raw: &str) -> Result<Self, ValidationError> {
        let value = one_line(field, raw, REPO_MAX_CHARS)?;
        if let Some(c) = value.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))) {
            return Err(ValidationError::new(
                field,
                format!("{raw:?} is not a repository name: use letters, digits, '-', '_', '.' and '/' (found {c:?})"),
            ));
        }
        Ok(Self(value))
    }
}

impl Label {
    pub fn parse(field: &str, raw: &str) -> Result<Self, ValidationError> {
        one_line(field, raw, LABEL_MAX_CHARS).map(Self)
    }

    pub fn from_email(email: &Email) -> Self {
        Self(email.as_str().to_owned())
    }
}

impl SearchText {
    pub fn parse(field: &str, raw: &str) -> Result<Self, ValidationError> {
        one_line(field, raw, SEARCH_MAX_CHARS).map(Self)
    }

    /// The text as a SQL `LIKE` pattern that matches it literally anywhere (escape character `\`).
    pub fn like_pattern(&self) -> String {
        let mut pattern = String::with_capacity(self.0.len() + 2);
        pattern.push('%');
        for c in self.0.chars() {
            if matches!(c, '%' | '_' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push('%');
        pattern
    }
}

impl KeyName {
    pub fn parse(field: &str, raw: &str) -> Result<Self, ValidationError> {
        one_line(field, raw, KEY_NAME_MAX_CHARS).map(Self)
    }
}

impl IdempotencyKey {
    pub fn parse(field: &str, raw: &str) -> Result<Self, ValidationError> {
        let value = one_line(field, raw, IDEMPOTENCY_KEY_MAX_CHARS)?;
        if !value.chars().all(|c| c.is_ascii_graphic()) {
            return Err(ValidationError::new(field, "must be printable ASCII without spaces"));
        }
        Ok(Self(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_title_longer_than_500_chars_is_rejected() {
        let err = Title::parse("title", &"x".repeat(501)).unwrap_err();
        assert_eq!(err.field, "title");
        assert!(err.message.contains("500"), "{}", err.message);
        assert!(Title::parse("title", &"é".repeat(500)).is_ok());
    }

    #[test]
    fn blank_titles_and_nul_characters_are_rejected() {
        assert!(Title::parse("title", "   ").is_err());
        assert!(Description::parse("description", "a\0b").unwrap_err().message.contains("NUL"));
        assert!(Title::parse("title", "a\u{202E}b").is_err());
    }

    #[test]
    fn unicode_line_separators_are_refused_in_one_line_text_only() {
        for separator in ['\u{2028}', '\u{2029}'] {
            let err = Title::parse("title", &format!("one{separator}two")).unwrap_err();
            assert!(err.message.contains(&format!("U+{:04X}", separator as u32)), "{}", err.message);
            assert!(SearchText::parse("query", &format!("a{separator}b")).is_err());
            assert!(Description::parse("description", &format!("one{separator}two")).is_ok());
        }
    }

    #[test]
    fn emails_are_lower_cased_and_checked() {
        assert_eq!(Email::parse("e", " Ann@Example.COM ").unwrap().as_str(), "ann@example.com");
        assert!(Email::parse("e", "ann").is_err());
        assert!(Email::parse("e", "a@b@c").is_err());
    }

    #[test]
    fn an_email_that_lower_casing_lengthens_past_254_characters_is_refused() {
        // Found by the property tests: accepted before, it was stored at 508 characters and did not
        // parse back.
        let raw = format!("{}@x.io", "İ".repeat(240));
        let err = Email::parse("email", &raw).unwrap_err();
        assert!(err.message.contains("254"), "{}", err.message);
        let ok = Email::parse("email", &format!("{}@x.io", "İ".repeat(100))).unwrap();
        assert_eq!(Email::parse("email", ok.as_str()), Ok(ok.clone()));
    }

    #[test]
    fn a_key_name_is_one_line_of_1_to_100_characters() {
        assert_eq!(KeyName::parse("name", " laptop ").unwrap().as_str(), "laptop");
        assert!(KeyName::parse("name", &"k".repeat(100)).is_ok());
        let err = KeyName::parse("name", &"k".repeat(101)).unwrap_err();
        assert!(err.message.contains("100"), "{}", err.message);
        assert!(KeyName::parse("name", "  ").is_err());
        assert!(KeyName::parse("name", "a\nb").is_err());
        assert!(KeyName::parse("name", "a\0b").is_err());
    }

    #[test]
    fn like_metacharacters_are_escaped() {
        let search = SearchText::parse("query", r"50%_off\").unwrap();
        assert_eq!(search.like_pattern(), r"%50\%\_off\\%");
    }

    #[test]
    fn repository_names_refuse_commas_and_spaces() {
        assert!(RepoName::parse("repository", "org/auth-service").is_ok());
        assert!(RepoName::parse("repository", "a,b").is_err());
        assert!(RepoName::parse("repository", "a b").is_err());
    }
}

//! Task keys: the short names people and models use for tasks (`WEB-42`), their prefixes (one per
//! repository, `T` without one), how a prefix is derived from a repository's name, and `TaskRef`, a
//! task named by UUID or by key wherever a task is an argument.

use uuid::Uuid;

use super::ValidationError;

/// The prefix of the keys of tasks without a repository.
pub const DEFAULT_PREFIX: &str = "T";

/// The longest prefix (the shortest a repository's may be is 2: `T` alone is the default's).
pub const PREFIX_MAX_CHARS: usize = 6;
/// How much of a repository's first word a derived prefix keeps (`backend` → `BACK`).
const DERIVED_CHARS: usize = 4;
/// The shortest prefix a repository may have.
pub const PREFIX_MIN_CHARS: usize = 2;

/// A key prefix: 1–6 ASCII letters or digits, upper-cased (keys are case-insensitive).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyPrefix(String);

impl KeyPrefix {
    /// A prefix a repository can be given: 2–6 letters or digits.
    pub fn parse(field: &str, raw: &str) -> Result<Self, ValidationError> {
        let upper = raw.trim().to_ascii_uppercase();
        let len = upper.chars().count();
        if !(PREFIX_MIN_CHARS..=PREFIX_MAX_CHARS).contains(&len) || !upper.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(ValidationError::new(
                field,
                format!(
                    "{raw:?} is not a key prefix: give {PREFIX_MIN_CHARS} to {PREFIX_MAX_CHARS} letters or digits, e.g. \"API\""
                ),
            ));
        }
        Ok(Self(upper))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The prefixes to try for a repository named `name`, best first: its first word (`web-app` →
    /// `WEB`), its initials (`WA`), then the first word with a number (`WEB2`, …). Every candidate
    /// is 2–6 letters or digits; the store takes the first one no other repository has.
    pub fn candidates(name: &str) -> impl Iterator<Item = KeyPrefix> {
        // "org/web-app": the part after the last slash names the project.
        let last = name.rsplit('/').next().unwrap_or(name);
        let words: Vec<String> = last
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(|w| w.to_ascii_uppercase())
            .collect();
        let mut base: String = words.first().map(|w| w.chars().take(DERIVED_CHARS).collect()).unwrap_or_default();
        if base.is_empty() {
            base = "REPO".into();
        } else if base.len() < PREFIX_MIN_CHARS {
            base.push('X');
        }
        let mut first: Vec<String> = vec![base.clone()];
        if words.len() > 1 {
            let initials: String = words.iter().filter_map(|w| w.chars().next()).take(PREFIX_MAX_CHARS).collect();
            first.push(initials);
        }
        let numbered = (2u32..).map(move |n| {
            let digits = n.to_string();
            let keep = PREFIX_MAX_CHARS.saturating_sub(digits.len()).min(base.len());
            format!("{}{digits}", &base[..keep])
        });
        first.into_iter().chain(numbered).map(KeyPrefix)
    }

    /// A prefix as the store holds it (already valid).
    pub fn from_stored(raw: &str) -> Self {
        Self(raw.to_owned())
    }
}

impl std::fmt::Display for KeyPrefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A task key: a prefix and a number from 1.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TaskKey {
    pub prefix: KeyPrefix,
    pub number: i64,
}

impl std::fmt::Display for TaskKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.prefix, self.number)
    }
}

impl TaskKey {
    /// `PREFIX-N`, in any case.
    pub fn parse(field: &str, raw: &str) -> Result<Self, ValidationError> {
        let trimmed = raw.trim();
        let refuse = |why: &str| {
            ValidationError::new(
                field,
                format!("{raw:?} is not a task: {why} (give a UUID or a key such as \"WEB-42\")"),
            )
        };
        let Some((prefix, number)) = trimmed.rsplit_once('-') else {
            return Err(refuse("no key or UUID"));
        };
        let prefix = prefix.to_ascii_uppercase();
        if prefix.is_empty()
            || prefix.chars().count() > PREFIX_MAX_CHARS
            || !prefix.chars().all(|c| c.is_ascii_alphanumeric())
        {
            return Err(refuse("a key starts with 1 to 6 letters or digits"));
        }
        if number.is_empty() || !number.chars().all(|c| c.is_ascii_digit()) {
            return Err(refuse("a key ends with a number after the dash"));
        }
        let number: i64 = number.parse().map_err(|_| refuse("that number is too large"))?;
        if number < 1 {
            return Err(refuse("key numbers start at 1"));
        }
        Ok(Self { prefix: KeyPrefix(prefix), number })
    }
}

/// A task named in an argument: by UUID or by key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskRef {
    Id(Uuid),
    Key(TaskKey),
}

impl TaskRef {
    pub fn parse(field: &str, raw: &str) -> Result<Self, ValidationError> {
        if let Ok(id) = Uuid::parse_str(raw.trim()) {
            return Ok(TaskRef::Id(id));
        }
        TaskKey::parse(field, raw).map(TaskRef::Key)
    }
}

impl std::fmt::Display for TaskRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TaskRef::Id(id) => write!(f, "{id}"),
            TaskRef::Key(key) => write!(f, "{key}"),
        }
    }
}

impl From<&TaskRef> for TaskRef {
    fn from(task: &TaskRef) -> Self {
        task.clone()
    }
}

impl From<Uuid> for TaskRef {
    fn from(id: Uuid) -> Self {
        TaskRef::Id(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefixes(name: &str, n: usize) -> Vec<String> {
        KeyPrefix::candidates(name).take(n).map(|p| p.0).collect()
    }

    #[test]
    fn a_prefix_is_derived_from_the_repository_name() {
        assert_eq!(prefixes("web-app", 3), ["WEB", "WA", "WEB2"]);
        assert_eq!(prefixes("org/api", 2), ["API", "API2"]);
        assert_eq!(prefixes("frontend", 2), ["FRON", "FRON2"]);
        assert_eq!(prefixes("x", 1), ["XX"]);
        assert_eq!(prefixes("日本", 1), ["REPO"]);
        for name in ["a", "web-app", "very-long-name-here", "ü", "a/b/c", "999999"] {
            for p in KeyPrefix::candidates(name).take(120) {
                assert!(KeyPrefix::parse("p", p.as_str()).is_ok(), "{name}: {p}");
            }
        }
    }

    #[test]
    fn keys_parse_in_any_case_and_malformed_ones_are_refused() {
        let key = TaskKey::parse("task_id", " web-42 ").unwrap();
        assert_eq!(key.to_string(), "WEB-42");
        assert_eq!(TaskKey::parse("task_id", "T-1").unwrap().to_string(), "T-1");
        for bad in ["WEB-", "-1", "WEB-0", "WEB-99999999999999999999", "WEB", "TOOLONG-1", "W B-1", "WEB--1", ""] {
            let err = TaskRef::parse("task_id", bad).unwrap_err();
            assert_eq!(err.field, "task_id", "{bad}");
        }
    }
}

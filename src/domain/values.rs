//! The closed sets of values a task field may take: status, priority, complexity.

use super::ValidationError;

macro_rules! closed_set {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($variant),+ }

        impl $name {
            /// Every accepted value, in their natural order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// The accepted spellings, for error messages and schemas.
            pub fn accepted() -> Vec<&'static str> {
                Self::ALL.iter().map(|v| v.as_str()).collect()
            }

            /// Parses one of the accepted values; case and surrounding blanks are forgiven,
            /// and `-` or a space may stand for `_`.
            pub fn parse(field: &str, raw: &str) -> Result<Self, ValidationError> {
                let normal = raw.trim().to_ascii_lowercase().replace(['-', ' '], "_");
                Self::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == normal)
                    .ok_or_else(|| {
                        ValidationError::new(field, format!("{raw:?} is not a valid {}", stringify!($name).to_lowercase()))
                            .with_accepted(Self::accepted())
                    })
            }

            /// Reads a value the store wrote; an unknown one means the schema and code disagree.
            pub fn from_stored(raw: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == raw)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

closed_set!(
    /// Where a task stands.
    Status {
        NotStarted => "not_started",
        InProgress => "in_progress",
        Blocked => "blocked",
        Completed => "completed",
        Cancelled => "cancelled",
    }
);

closed_set!(
    /// How urgent a task is.
    Priority { Low => "low", Medium => "medium", High => "high", Urgent => "urgent" }
);

closed_set!(
    /// How much work a task is.
    Complexity { Low => "low", Medium => "medium", High => "high" }
);

impl Default for Status {
    fn default() -> Self {
        Status::NotStarted
    }
}

impl Default for Priority {
    fn default() -> Self {
        Priority::Medium
    }
}

impl Default for Complexity {
    fn default() -> Self {
        Complexity::Medium
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_status_lists_the_accepted_values() {
        let err = Status::parse("new_status", "done").unwrap_err();
        assert_eq!(err.field, "new_status");
        assert_eq!(err.accepted, vec!["not_started", "in_progress", "blocked", "completed", "cancelled"]);
    }

    #[test]
    fn case_and_dashes_are_forgiven() {
        assert_eq!(Status::parse("s", " In-Progress ").unwrap(), Status::InProgress);
        assert_eq!(Priority::parse("p", "URGENT").unwrap(), Priority::Urgent);
    }
}

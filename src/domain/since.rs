//! `Since`: a moment in the past, given as an RFC 3339 time or as a span back from now (`24h`, `3d`):
//! the one rule of what the `standup` prompt's `since` accepts.

use chrono::{DateTime, Duration, Utc};

use super::ValidationError;

/// The span used when none is given.
pub const SINCE_DEFAULT_HOURS: i64 = 24;
/// The longest span back (and the oldest time) accepted.
pub const SINCE_MAX_DAYS: i64 = 366;

/// A moment in the past, at most [`SINCE_MAX_DAYS`] back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Since(DateTime<Utc>);

impl Since {
    /// `raw` is `<number><unit>` with unit `m` (minutes), `h` (hours), `d` (days) or `w` (weeks), or an
    /// RFC 3339 time (`2026-12-01T09:00:00Z`) not in the future; `now` is the moment it counts back from.
    pub fn parse(field: &str, raw: &str, now: DateTime<Utc>) -> Result<Self, ValidationError> {
        let raw = raw.trim();
        let refused = |why: String| {
            ValidationError::new(field, why)
                .with_accepted(["a span back from now such as 90m, 24h, 3d or 2w", "an RFC 3339 time"])
        };
        let oldest = now - Duration::days(SINCE_MAX_DAYS);
        if let Ok(time) = DateTime::parse_from_rfc3339(raw) {
            let time = time.with_timezone(&Utc);
            if time > now {
                return Err(refused(format!("{raw} is in the future")));
            }
            return Ok(Since(time.max(oldest)));
        }
        let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
        let (number, unit) = raw.split_at(split);
        let minutes_per = match unit {
            "m" => 1,
            "h" => 60,
            "d" => 60 * 24,
            "w" => 60 * 24 * 7,
            _ => return Err(refused(format!("{raw:?} is neither a span nor an RFC 3339 time"))),
        };
        let Ok(n) = number.parse::<i64>() else {
            return Err(refused(format!("{raw:?} is neither a span nor an RFC 3339 time")));
        };
        let minutes = n.saturating_mul(minutes_per);
        if minutes == 0 || minutes > SINCE_MAX_DAYS * 24 * 60 {
            return Err(refused(format!("{raw:?} must be between 1 minute and {SINCE_MAX_DAYS} days")));
        }
        Ok(Since(now - Duration::minutes(minutes)))
    }

    /// [`SINCE_DEFAULT_HOURS`] before `now`.
    pub fn default_at(now: DateTime<Utc>) -> Self {
        Since(now - Duration::hours(SINCE_DEFAULT_HOURS))
    }

    pub fn at(self) -> DateTime<Utc> {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-07T12:00:00Z").unwrap().with_timezone(&Utc)
    }

    #[test]
    fn spans_count_back_from_now() {
        for (raw, hours) in [("24h", 24), ("3d", 72), ("90m", 1), ("2w", 336), (" 1h ", 1)] {
            let since = Since::parse("since", raw, now()).unwrap();
            assert_eq!((now() - since.at()).num_hours(), hours, "{raw}");
        }
    }

    #[test]
    fn an_rfc_3339_time_is_taken_as_it_is() {
        let since = Since::parse("since", "2026-12-06T09:30:00+01:00", now()).unwrap();
        assert_eq!(since.at().to_rfc3339(), "2026-12-06T08:30:00+00:00");
    }

    #[test]
    fn anything_else_is_refused_naming_the_field_and_what_is_accepted() {
        for raw in ["yesterday", "24", "h", "-3d", "0h", "400d", "2030-01-01T00:00:00Z", "2026-12-06", "3 d"] {
            let err = Since::parse("since", raw, now()).unwrap_err();
            assert_eq!(err.field, "since", "{raw}");
            assert_eq!(err.accepted.len(), 2, "{raw}");
        }
    }
}

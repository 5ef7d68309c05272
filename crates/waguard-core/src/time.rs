//! Instants as plain integers.
//!
//! The core never reads a clock (rule E3): every instant is handed in by the caller. Internally an
//! instant is a count of nanoseconds since the Unix epoch in an `i64`, which covers the years
//! 1677 to 2262 and makes every register a cheap integer comparison on the decide path.

use std::fmt;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::TimeError;

/// A UTC instant with nanosecond precision.
///
/// Built from a [`chrono::DateTime<Utc>`], from Unix seconds (as Meta's webhooks send them) or
/// from nanoseconds. Serialised as an RFC 3339 string in human-readable formats (JSON, TOML) and
/// as an integer of nanoseconds in binary ones.
///
/// ```
/// use waguard_core::Timestamp;
/// let t = Timestamp::from_unix_seconds(1_772_323_200).unwrap();
/// assert_eq!(t.to_string(), "2026-03-01T00:00:00Z");
/// assert_eq!(Timestamp::parse_rfc3339("2026-03-01T00:00:00Z").unwrap(), t);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

const NANOS_PER_SECOND: i64 = 1_000_000_000;

impl Timestamp {
    /// The earliest representable instant (1677-09-21).
    pub const MIN: Timestamp = Timestamp(i64::MIN);
    /// The latest representable instant (2262-04-11).
    pub const MAX: Timestamp = Timestamp(i64::MAX);

    /// An instant from nanoseconds since the Unix epoch.
    pub const fn from_unix_nanos(nanos: i64) -> Self {
        Timestamp(nanos)
    }

    /// Nanoseconds since the Unix epoch.
    pub const fn unix_nanos(self) -> i64 {
        self.0
    }

    /// The system's wall clock now (UTC), as `From<SystemTime>` converts it.
    ///
    /// Decisions take their instant as an argument; call this at the edge of a service (or
    /// use a `waguard::Clock`), not inside rules.
    ///
    /// ```
    /// use waguard_core::Timestamp;
    /// assert!(Timestamp::now() > Timestamp::parse_rfc3339("2020-01-01T00:00:00Z").unwrap());
    /// ```
    // The crate's one clock read, for callers at a service's edge: no rule calls it, every
    // rule takes its instant as an argument (rules.md E3).
    #[allow(clippy::disallowed_methods)]
    pub fn now() -> Self {
        Self::from(SystemTime::now())
    }

    /// An instant from a [`SystemTime`], failing outside the years 1677 to 2262 (where
    /// `From<SystemTime>` saturates instead). Instants before 1970 are fine.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use waguard_core::Timestamp;
    /// let before_1970 = SystemTime::UNIX_EPOCH - Duration::from_secs(86_400);
    /// assert_eq!(
    ///     Timestamp::from_system_time(before_1970).unwrap(),
    ///     Timestamp::from_unix_seconds(-86_400).unwrap(),
    /// );
    /// let far = SystemTime::UNIX_EPOCH + Duration::from_secs(400 * 365 * 86_400);
    /// assert!(Timestamp::from_system_time(far).is_err());
    /// assert_eq!(Timestamp::from(far), Timestamp::MAX);
    /// ```
    pub fn from_system_time(time: SystemTime) -> Result<Self, TimeError> {
        let nanos = match time.duration_since(SystemTime::UNIX_EPOCH) {
            Ok(after) => i64::try_from(after.as_nanos()).ok(),
            Err(before) => i64::try_from(before.duration().as_nanos()).ok().map(|n| -n),
        };
        nanos.map(Timestamp).ok_or_else(|| TimeError::OutOfRange {
            value: format!("{time:?}"),
        })
    }

    /// An instant from whole seconds since the Unix epoch, the unit of Meta's webhook timestamps.
    ///
    /// Fails for instants outside the years 1677 to 2262.
    pub fn from_unix_seconds(seconds: i64) -> Result<Self, TimeError> {
        seconds
            .checked_mul(NANOS_PER_SECOND)
            .map(Timestamp)
            .ok_or_else(|| TimeError::OutOfRange {
                value: seconds.to_string(),
            })
    }

    /// Parses an RFC 3339 instant such as `2026-03-01T00:00:00Z` or `2026-03-01T01:00:00+01:00`.
    pub fn parse_rfc3339(text: &str) -> Result<Self, TimeError> {
        let parsed = DateTime::parse_from_rfc3339(text).map_err(|source| TimeError::Invalid {
            value: text.to_owned(),
            source,
        })?;
        Self::try_from(parsed.with_timezone(&Utc))
    }

    /// This instant as a chrono `DateTime<Utc>`.
    pub fn to_datetime(self) -> DateTime<Utc> {
        Utc.timestamp_nanos(self.0)
    }

    /// `self + duration`, saturating at [`Timestamp::MAX`].
    #[inline]
    pub fn saturating_add(self, duration: Duration) -> Self {
        Timestamp(self.0.saturating_add(duration_nanos(duration)))
    }

    /// `self - duration`, saturating at [`Timestamp::MIN`].
    #[inline]
    pub fn saturating_sub(self, duration: Duration) -> Self {
        Timestamp(self.0.saturating_sub(duration_nanos(duration)))
    }

    /// The duration from `earlier` to `self`, or zero when `earlier` is not earlier.
    pub fn duration_since(self, earlier: Timestamp) -> Duration {
        let nanos = self.0.saturating_sub(earlier.0);
        if nanos <= 0 {
            Duration::ZERO
        } else {
            Duration::from_nanos(nanos as u64)
        }
    }
}

/// Nanoseconds of a duration, saturating at `i64::MAX` (about 292 years). Plain 64-bit
/// arithmetic: this runs several times per decision.
#[inline]
pub(crate) fn duration_nanos(duration: Duration) -> i64 {
    const MAX_SECS: u64 = (i64::MAX / NANOS_PER_SECOND) as u64;
    let secs = duration.as_secs();
    if secs >= MAX_SECS {
        return i64::MAX;
    }
    secs as i64 * NANOS_PER_SECOND + i64::from(duration.subsec_nanos())
}

impl TryFrom<DateTime<Utc>> for Timestamp {
    type Error = TimeError;

    fn try_from(value: DateTime<Utc>) -> Result<Self, Self::Error> {
        value
            .timestamp_nanos_opt()
            .map(Timestamp)
            .ok_or_else(|| TimeError::OutOfRange {
                value: value.to_rfc3339(),
            })
    }
}

/// The instant of a [`SystemTime`], saturating at [`Timestamp::MIN`] and [`Timestamp::MAX`]
/// outside the years 1677 to 2262 ([`Timestamp::from_system_time`] fails there instead).
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use waguard_core::Timestamp;
/// let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_772_323_200);
/// assert_eq!(Timestamp::from(t).to_string(), "2026-03-01T00:00:00Z");
/// assert_eq!(SystemTime::from(Timestamp::from(t)), t);
/// ```
impl From<SystemTime> for Timestamp {
    fn from(time: SystemTime) -> Self {
        Self::from_system_time(time).unwrap_or(if time < SystemTime::UNIX_EPOCH {
            Timestamp::MIN
        } else {
            Timestamp::MAX
        })
    }
}

/// The [`SystemTime`] of an instant (every instant waguard represents is one).
impl From<Timestamp> for SystemTime {
    fn from(value: Timestamp) -> Self {
        let magnitude = Duration::from_nanos(value.0.unsigned_abs());
        if value.0 >= 0 {
            SystemTime::UNIX_EPOCH + magnitude
        } else {
            SystemTime::UNIX_EPOCH - magnitude
        }
    }
}

impl From<Timestamp> for DateTime<Utc> {
    fn from(value: Timestamp) -> Self {
        value.to_datetime()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            &self
                .to_datetime()
                .to_rfc3339_opts(SecondsFormat::AutoSi, true),
        )
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            serializer.serialize_i64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
            Timestamp::parse_rfc3339(&text).map_err(serde::de::Error::custom)
        } else {
            i64::deserialize(deserializer).map(Timestamp)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_round_trip_through_rfc3339() {
        let t = Timestamp::from_unix_seconds(1_772_330_400).unwrap();
        assert_eq!(t.to_string(), "2026-03-01T02:00:00Z");
        assert_eq!(Timestamp::parse_rfc3339(&t.to_string()).unwrap(), t);
    }

    #[test]
    fn sub_second_precision_is_kept() {
        let t = Timestamp::parse_rfc3339("2026-03-01T00:00:00.000000001Z").unwrap();
        assert_eq!(t.unix_nanos() % NANOS_PER_SECOND, 1);
        assert_eq!(Timestamp::parse_rfc3339(&t.to_string()).unwrap(), t);
    }

    #[test]
    fn out_of_range_seconds_are_an_error() {
        assert!(matches!(
            Timestamp::from_unix_seconds(i64::MAX),
            Err(TimeError::OutOfRange { .. })
        ));
        assert!(Timestamp::parse_rfc3339("3000-01-01T00:00:00Z").is_err());
        assert!(Timestamp::parse_rfc3339("yesterday").is_err());
    }

    #[test]
    fn arithmetic_saturates() {
        assert_eq!(
            Timestamp::MAX.saturating_add(Duration::from_secs(1)),
            Timestamp::MAX
        );
        assert_eq!(
            Timestamp::MIN.saturating_sub(Duration::from_secs(1)),
            Timestamp::MIN
        );
    }
}

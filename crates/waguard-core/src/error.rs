//! Typed errors of the core. A refusal to send is never one of these: it is a
//! [`Decision`](crate::Decision).

use std::borrow::Cow;

/// An instant could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TimeError {
    /// Not an RFC 3339 instant.
    #[error("`{value}` is not an RFC 3339 instant (write it like 2026-03-01T00:00:00Z): {source}")]
    Invalid {
        /// The text that was given.
        value: String,
        /// What chrono found wrong.
        #[source]
        source: chrono::ParseError,
    },
    /// Outside the years 1677 to 2262, which waguard's nanosecond instants cover.
    #[error("instant `{value}` is outside the supported range (years 1677 to 2262)")]
    OutOfRange {
        /// The value that was given.
        value: String,
    },
}

/// Why an identifier was rejected (rules K1-K4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdProblem {
    /// Empty after stripping separators.
    Empty,
    /// A character that is neither a digit nor an allowed separator.
    NotDigits,
    /// Fewer than 7 or more than 15 digits (K1).
    PhoneLength,
    /// Starts with `0`: an international `00` prefix or a national trunk prefix (K1).
    LeadingZero,
    /// One digit repeated, such as `0000000` (K1).
    RepeatedDigit,
    /// Not of the business-scoped user id shape `CC.` followed by letters and digits (K3).
    BsuidShape,
    /// A business id must be 1 to 32 ASCII digits (K4).
    BusinessShape,
    /// A group id must be 1 to 128 printable ASCII characters without whitespace (K4).
    GroupShape,
    /// An account (WABA) id must be 1 to 32 ASCII digits (H1).
    AccountShape,
    /// A template name or language must be 1 to 512 bytes without control characters or `/`.
    TemplateShape,
}

impl IdProblem {
    fn explain(self) -> &'static str {
        match self {
            IdProblem::Empty => "it is empty",
            IdProblem::NotDigits => {
                "a phone number may hold only digits, one leading `+`, spaces, `-`, `.`, `(` and `)`"
            }
            IdProblem::PhoneLength => {
                "a phone number needs 7 to 15 digits including the country code"
            }
            IdProblem::LeadingZero => {
                "a phone number must start with its country code, not `0` or `00`"
            }
            IdProblem::RepeatedDigit => "one digit repeated is not a phone number",
            IdProblem::BsuidShape => {
                "a business-scoped user id is two uppercase letters, a dot, then up to 128 letters or digits (US.13491208655302741918)"
            }
            IdProblem::BusinessShape => "a business phone number id is 1 to 32 ASCII digits",
            IdProblem::GroupShape => {
                "a group id is 1 to 128 printable ASCII characters without whitespace"
            }
            IdProblem::AccountShape => "an account (WABA) id is 1 to 32 ASCII digits",
            IdProblem::TemplateShape => {
                "a template name or language is 1 to 512 bytes without control characters or `/`"
            }
        }
    }
}

/// An identifier (phone, user id, group id, business id) failed validation.
///
/// The message names the field, the value and what a valid one looks like.
///
/// ```
/// use waguard_core::PhoneNumber;
/// let err = PhoneNumber::parse("12345").unwrap_err().with_field("to");
/// assert!(err.to_string().contains("`to`"));
/// assert!(err.to_string().contains("12345"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value `{value}` for `{field}`: {}", problem.explain())]
#[non_exhaustive]
pub struct IdError {
    /// The field the value came from (`to`, `wa_id`, `from`, ...). Constructors fill in a generic
    /// name; callers that know the field rename it with [`IdError::with_field`].
    pub field: Cow<'static, str>,
    /// The offending value, as given.
    pub value: String,
    /// What is wrong with it.
    pub problem: IdProblem,
}

impl IdError {
    pub(crate) fn new(field: &'static str, value: &str, problem: IdProblem) -> Self {
        IdError {
            field: Cow::Borrowed(field),
            value: value.to_owned(),
            problem,
        }
    }

    /// The same error naming another field, e.g. `to` or `entry[0].changes[0].value.messages[0].from`.
    pub fn with_field(mut self, field: impl Into<Cow<'static, str>>) -> Self {
        self.field = field.into();
        self
    }
}

/// A [`Policy`](crate::Policy) failed validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid policy setting `{field}` = {value}: {expected}")]
#[non_exhaustive]
pub struct PolicyError {
    /// The setting's name as written in a policy file.
    pub field: &'static str,
    /// The offending value.
    pub value: String,
    /// What a valid value looks like.
    pub expected: &'static str,
}

/// A stored record could not be decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The record is empty: no version byte.
    #[error("stored record is empty (no version byte); the store returned a damaged value")]
    Empty,
    /// The record was written by a newer waguard.
    #[error("stored record has format version {found}, but this waguard reads versions up to {supported}: upgrade waguard before opening this store")]
    NewerVersion {
        /// The version byte found.
        found: u8,
        /// The newest version this build reads.
        supported: u8,
    },
    /// The bytes after the version byte do not form a record.
    #[error("stored record (format version {version}) is corrupt: {source}; restore it from an export or `forget` the key")]
    Corrupt {
        /// The version byte found.
        version: u8,
        /// What the decoder found wrong: a [`MalformedRecord`] for the current format, the
        /// `postcard` error for format 1.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// Bytes were left over after the record.
    #[error("stored record (format version {version}) has {extra} trailing bytes; restore it from an export or `forget` the key")]
    TrailingBytes {
        /// The version byte found.
        version: u8,
        /// How many bytes were left.
        extra: usize,
    },
}

/// Where and why the bytes of a stored record do not form a record (the source of
/// [`DecodeError::Corrupt`] for the current format).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("at byte {offset} ({field}): {problem}")]
#[non_exhaustive]
pub struct MalformedRecord {
    /// The offset in the record, counting the version byte.
    pub offset: usize,
    /// The field being read.
    pub field: &'static str,
    /// What is wrong there.
    pub problem: RecordProblem,
}

/// What is wrong in a [`MalformedRecord`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordProblem {
    /// The record ends in the middle of a field.
    #[error("the record ends early")]
    Truncated,
    /// A variable-length integer is longer than 64 bits allow.
    #[error("an integer is longer than 64 bits")]
    VarintOverflow,
    /// A number is outside the range of its field (an instant beyond the years 1677-2262, a code
    /// beyond 32 bits).
    #[error("a value is out of range")]
    OutOfRange,
    /// The record says fields are present that this format does not have.
    #[error("unknown fields are marked present (bits {0:#x})")]
    UnknownFields(u64),
    /// A list count is zero or larger than the bytes that follow could hold.
    #[error("a list count does not fit the record")]
    BadCount,
    /// A list's entries are not in strictly ascending order.
    #[error("list entries are out of order or repeated")]
    NotSorted,
}

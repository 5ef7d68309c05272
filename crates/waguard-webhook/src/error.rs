//! Typed errors: whole-body refusals ([`ParseError`], [`SignatureError`], [`SignedParseError`],
//! [`HandshakeError`]) and per-item problems ([`ItemError`]).

use std::fmt;

use waguard_core::{IdError, TimeError};

use crate::lenient::JsonKind;

/// The body as a whole was refused; nothing of it was applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// Larger than [`Limits::max_body_bytes`](crate::Limits::max_body_bytes).
    #[error("webhook body is {size} bytes, above the limit of {limit}: Meta's payloads are far smaller; raise `Limits::max_body_bytes` only if a genuine payload was refused")]
    TooLarge {
        /// The body's size.
        size: usize,
        /// The limit in force.
        limit: usize,
    },
    /// Nested deeper than [`Limits::max_depth`](crate::Limits::max_depth).
    #[error("webhook body nests arrays/objects deeper than {limit} levels (at byte {offset}): this is not a Meta payload; raise `Limits::max_depth` only if a genuine payload was refused")]
    TooDeep {
        /// The limit in force.
        limit: usize,
        /// The byte offset of the bracket that went too deep.
        offset: usize,
    },
    /// More array elements than [`Limits::max_items`](crate::Limits::max_items).
    #[error("webhook body has more than {limit} array items: Meta batches far fewer; raise `Limits::max_items` only if a genuine payload was refused")]
    TooManyItems {
        /// The limit in force.
        limit: usize,
    },
    /// Not UTF-8.
    #[error("webhook body is not valid UTF-8 (first bad byte at offset {}): pass the raw request body, undecoded", .source.valid_up_to())]
    InvalidUtf8 {
        /// Where decoding failed.
        #[source]
        source: std::str::Utf8Error,
    },
    /// Not JSON.
    #[error(
        "webhook body is not valid JSON: {source}; pass the raw request body exactly as received"
    )]
    InvalidJson {
        /// What the JSON parser found.
        #[source]
        source: serde_json::Error,
    },
    /// Valid JSON, but not a JSON object at the top level.
    #[error("webhook body is {found}, not a JSON object: this is not a Meta webhook notification")]
    NotAnObject {
        /// What was found instead.
        found: JsonKind,
    },
    /// `object` is missing or is not `whatsapp_business_account`.
    #[error("webhook `object` is {found}, expected \"whatsapp_business_account\": subscribe this endpoint to WhatsApp Business Account webhooks only, or route other objects elsewhere")]
    WrongObject {
        /// What was found, for the message (`missing`, or the value in quotes).
        found: String,
    },
}

/// The `X-Hub-Signature-256` check failed (rule H2); the body must not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// No header, or an empty one.
    #[error("missing X-Hub-Signature-256 header: Meta signs every webhook POST; refuse unsigned requests")]
    Missing,
    /// The header does not start with `sha256=`.
    #[error("X-Hub-Signature-256 header does not start with `sha256=`: expected `sha256=` followed by 64 hex digits")]
    WrongPrefix,
    /// The hex digest is not 64 characters long.
    #[error(
        "X-Hub-Signature-256 digest has {found} characters, expected 64 hex digits after `sha256=`"
    )]
    WrongLength {
        /// How many characters followed the prefix.
        found: usize,
    },
    /// A character of the digest is not a hex digit.
    #[error("X-Hub-Signature-256 digest has a non-hex character at position {position}: expected 64 hex digits after `sha256=`")]
    NotHex {
        /// Its position in the digest (0-based, after the prefix).
        position: usize,
    },
    /// The app secret is empty: a configuration mistake, refused rather than checked.
    #[error("the app secret is empty: configure the Meta app secret (App settings > Basic) to verify webhooks")]
    EmptySecret,
    /// Well-formed, but not the HMAC-SHA256 of this body with this secret.
    #[error("X-Hub-Signature-256 does not match the body: the body was altered, re-encoded, or signed with another app secret (check that the raw body is passed undecoded and the secret is this app's)")]
    Mismatch,
}

/// [`parse_signed`](crate::parse_signed) refused the body: either its signature or its content.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignedParseError {
    /// The signature check failed; nothing was parsed (rule H2).
    #[error("webhook signature rejected: {0}")]
    Signature(#[source] SignatureError),
    /// The signature was good but the body was refused.
    #[error("webhook body rejected: {0}")]
    Parse(#[source] ParseError),
}

impl From<SignatureError> for SignedParseError {
    fn from(e: SignatureError) -> Self {
        SignedParseError::Signature(e)
    }
}

impl From<ParseError> for SignedParseError {
    fn from(e: ParseError) -> Self {
        SignedParseError::Parse(e)
    }
}

/// The verify handshake was refused (rule H3): answer it with HTTP 403.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// No `hub.mode`.
    #[error("verification request has no `hub.mode`: Meta sends hub.mode=subscribe")]
    MissingMode,
    /// `hub.mode` is not `subscribe`.
    #[error("verification request has hub.mode={found:?}, expected \"subscribe\"")]
    WrongMode {
        /// The mode found.
        found: String,
    },
    /// No `hub.verify_token`.
    #[error("verification request has no `hub.verify_token`")]
    MissingToken,
    /// `hub.verify_token` is not the configured one.
    #[error("hub.verify_token does not match the configured verify token: use the same token here and in the app's webhook settings")]
    TokenMismatch,
    /// No `hub.challenge`.
    #[error("verification request has no `hub.challenge`")]
    MissingChallenge,
    /// `hub.challenge` is not 1 to 128 ASCII letters, digits, `-`, `_` or `.`.
    #[error("hub.challenge is not 1 to 128 ASCII letters, digits, `-`, `_` or `.`; refused rather than echoed back")]
    InvalidChallenge,
    /// The configured verify token is empty: a configuration mistake.
    #[error("the configured verify token is empty: set the same non-empty token here and in the app's webhook settings")]
    EmptyExpectedToken,
}

/// One item of a payload could not be applied; the other items were (rule H1).
///
/// `path` is the item's JSON path, such as `entry[0].changes[1].value.statuses[3]`.
///
/// ```
/// use waguard_core::Timestamp;
/// use waguard_webhook::{parse, Limits};
/// let body = br#"{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages",
///   "value":{"metadata":{"phone_number_id":"1"},"messages":[{"from":"12","timestamp":"1"}]}}]}]}"#;
/// let parsed = parse(body, Timestamp::from_unix_seconds(0).unwrap(), &Limits::default()).unwrap();
/// assert_eq!(parsed.errors[0].path, "entry[0].changes[0].value.messages[0]");
/// assert!(parsed.errors[0].to_string().contains(".messages[0].from"));
/// ```
#[derive(Debug, thiserror::Error)]
#[error("{path}: {problem}")]
#[non_exhaustive]
pub struct ItemError {
    /// The JSON path of the item.
    pub path: String,
    /// What is wrong with it.
    #[source]
    pub problem: ItemProblem,
}

/// What is wrong with one payload item.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ItemProblem {
    /// The item, or a value it needs, is not of the expected JSON type.
    #[error("`{field}` is {found}, expected {expected}")]
    WrongType {
        /// The full JSON path of the value.
        field: String,
        /// What was expected.
        expected: &'static str,
        /// What was found.
        found: JsonKind,
    },
    /// A value the item needs is absent.
    #[error("`{field}` is missing")]
    Missing {
        /// The full JSON path of the value.
        field: String,
    },
    /// An identifier (phone, user id, group id, business id) failed validation (K1-K4); the
    /// error names the full JSON path of the value.
    #[error(transparent)]
    Id(#[from] IdError),
    /// A timestamp is not Unix seconds.
    #[error(
        "`{field}` = {value} is not a Unix timestamp in seconds (a string or integer of digits)"
    )]
    BadTimestamp {
        /// The full JSON path of the value.
        field: String,
        /// The value, as found.
        value: String,
    },
    /// A timestamp is out of the supported range.
    #[error("`{field}` is out of range")]
    TimestampOutOfRange {
        /// The full JSON path of the value.
        field: String,
        /// Why.
        #[source]
        source: TimeError,
    },
    /// An error code is not a non-negative integer that fits in 32 bits.
    #[error("`{field}` = {value} is not an error code (a non-negative integer)")]
    BadCode {
        /// The full JSON path of the value.
        field: String,
        /// The value, as found.
        value: String,
    },
    /// Neither a phone number nor a user id names who the item is about (K3).
    #[error("no `{phone}` or `{user}`: cannot tell which contact this is about")]
    NoContact {
        /// The phone field looked for.
        phone: &'static str,
        /// The user id field looked for.
        user: &'static str,
    },
}

/// A value as found, for error messages: strings quoted, other kinds named.
pub(crate) struct Shown<'a, 'b>(pub(crate) &'b crate::lenient::Value<'a>);

impl fmt::Display for Shown<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::lenient::Value;
        match self.0 {
            Value::Str(s) => write!(f, "{:?}", truncate(s)),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            other => write!(f, "{}", other.kind()),
        }
    }
}

/// At most 64 characters of an attacker-controlled string go into an error message.
pub(crate) fn truncate(s: &str) -> &str {
    match s.char_indices().nth(64) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

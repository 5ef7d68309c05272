//! The webhook verification handshake (rule H3).

use std::borrow::Cow;

use crate::error::HandshakeError;

/// The `hub.*` parameters of Meta's verification `GET`.
///
/// ```
/// use waguard_webhook::HubQuery;
/// let q = HubQuery::parse("hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=my%20token");
/// assert_eq!(q.verify("my token"), Ok("1158201444"));
/// assert!(q.verify("other").is_err());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HubQuery<'a> {
    /// `hub.mode`: `subscribe`.
    pub mode: Option<Cow<'a, str>>,
    /// `hub.verify_token`: the token configured in the app's webhook settings.
    pub verify_token: Option<Cow<'a, str>>,
    /// `hub.challenge`: what to answer with.
    pub challenge: Option<Cow<'a, str>>,
}

impl<'a> HubQuery<'a> {
    /// The parameters from their parts (already percent-decoded).
    pub fn new(
        mode: Option<&'a str>,
        verify_token: Option<&'a str>,
        challenge: Option<&'a str>,
    ) -> Self {
        HubQuery {
            mode: mode.map(Cow::Borrowed),
            verify_token: verify_token.map(Cow::Borrowed),
            challenge: challenge.map(Cow::Borrowed),
        }
    }

    /// Reads the parameters from a URL query string (the part after `?`, with or without the
    /// `?`), percent-decoding them (`+` is a space). Other parameters are ignored; a repeated
    /// one keeps its first value; malformed escapes are kept as written.
    pub fn parse(query: &'a str) -> Self {
        let mut out = HubQuery::default();
        let query = query.strip_prefix('?').unwrap_or(query);
        for pair in query.split('&') {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = match &*decode(name) {
                "hub.mode" => &mut out.mode,
                "hub.verify_token" => &mut out.verify_token,
                "hub.challenge" => &mut out.challenge,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(decode(value));
            }
        }
        out
    }

    /// H3: with `hub.mode=subscribe` and `hub.verify_token` equal to `expected_token`, the
    /// challenge to answer with (HTTP 200, the challenge as the body); otherwise the refusal
    /// (answer HTTP 403).
    ///
    /// The token comparison takes the same time wherever the first difference is. The
    /// challenge must be 1 to 128 ASCII letters, digits, `-`, `_` or `.` (Meta sends an
    /// integer), so that nothing an attacker chose is reflected into the response.
    pub fn verify(&self, expected_token: &str) -> Result<&str, HandshakeError> {
        check(
            self.mode.as_deref(),
            self.verify_token.as_deref(),
            self.challenge.as_deref(),
            expected_token,
        )
    }
}

/// H3 in one call, for frameworks that already split the query.
///
/// ```
/// use waguard_webhook::{verify_subscription, HandshakeError};
/// assert_eq!(verify_subscription(Some("subscribe"), Some("t"), Some("42"), "t"), Ok("42"));
/// assert_eq!(
///     verify_subscription(Some("subscribe"), Some("x"), Some("42"), "t"),
///     Err(HandshakeError::TokenMismatch)
/// );
/// ```
pub fn verify_subscription<'q>(
    mode: Option<&str>,
    verify_token: Option<&str>,
    challenge: Option<&'q str>,
    expected_token: &str,
) -> Result<&'q str, HandshakeError> {
    check(mode, verify_token, challenge, expected_token)
}

fn check<'c>(
    mode: Option<&str>,
    verify_token: Option<&str>,
    challenge: Option<&'c str>,
    expected_token: &str,
) -> Result<&'c str, HandshakeError> {
    if expected_token.is_empty() {
        return Err(HandshakeError::EmptyExpectedToken);
    }
    match mode {
        None => return Err(HandshakeError::MissingMode),
        Some("subscribe") => {}
        Some(other) => {
            return Err(HandshakeError::WrongMode {
                found: crate::error::truncate(other).to_owned(),
            })
        }
    }
    let token = verify_token.ok_or(HandshakeError::MissingToken)?;
    if !constant_time_eq(token.as_bytes(), expected_token.as_bytes()) {
        return Err(HandshakeError::TokenMismatch);
    }
    let challenge = challenge.ok_or(HandshakeError::MissingChallenge)?;
    let ok = !challenge.is_empty()
        && challenge.len() <= 128
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(challenge)
    } else {
        Err(HandshakeError::InvalidChallenge)
    }
}

/// Compares without stopping at the first difference (the length is not secret).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Percent-decoding of one query component; borrowed when there is nothing to decode.
fn decode(s: &str) -> Cow<'_, str> {
    if !s.bytes().any(|b| b == b'%' || b == b'+') {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(high), Some(low)) => {
                    out.push((high << 4) | low);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

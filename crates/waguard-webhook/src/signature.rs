//! `X-Hub-Signature-256` verification (rule H2).

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::SignatureError;

/// The prefix Meta puts before the hex digest.
const PREFIX: &str = "sha256=";

/// Checks that `header` (the value of `X-Hub-Signature-256`, `None` when the request had none)
/// is `sha256=` followed by the hex HMAC-SHA256 of the raw `body` keyed with the app secret
/// (rule H2).
///
/// The header's digits may be lowercase (as Meta sends them) or uppercase; surrounding ASCII
/// whitespace is ignored. The digest comparison is constant-time (`hmac`'s `verify_slice`).
/// Each way of failing has its own [`SignatureError`].
///
/// ```
/// use waguard_webhook::{verify_signature, SignatureError};
/// // HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog"), RFC 4231 style vector.
/// let header = "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8";
/// let body = b"The quick brown fox jumps over the lazy dog";
/// assert_eq!(verify_signature(body, Some(header), b"key"), Ok(()));
/// assert_eq!(verify_signature(b"tampered", Some(header), b"key"), Err(SignatureError::Mismatch));
/// assert_eq!(verify_signature(body, None, b"key"), Err(SignatureError::Missing));
/// ```
pub fn verify_signature(
    body: &[u8],
    header: Option<&str>,
    app_secret: &[u8],
) -> Result<(), SignatureError> {
    if app_secret.is_empty() {
        return Err(SignatureError::EmptySecret);
    }
    let header = header
        .map(|h| h.trim_matches(|c: char| c.is_ascii_whitespace()))
        .filter(|h| !h.is_empty())
        .ok_or(SignatureError::Missing)?;
    let hex = header
        .strip_prefix(PREFIX)
        .ok_or(SignatureError::WrongPrefix)?;
    let digest = decode_hex(hex)?;
    let mut mac =
        Hmac::<Sha256>::new_from_slice(app_secret).expect("HMAC accepts keys of any length");
    mac.update(body);
    mac.verify_slice(&digest)
        .map_err(|_| SignatureError::Mismatch)
}

/// The `X-Hub-Signature-256` header value for `body`: what Meta sends, and what tests use to
/// sign fixtures.
///
/// ```
/// use waguard_webhook::{sign, verify_signature};
/// let header = sign(b"{}", b"secret");
/// assert!(header.starts_with("sha256="));
/// assert_eq!(verify_signature(b"{}", Some(&header), b"secret"), Ok(()));
/// ```
pub fn sign(body: &[u8], app_secret: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(app_secret).expect("HMAC accepts keys of any length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(PREFIX.len() + 64);
    out.push_str(PREFIX);
    for byte in digest {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// 64 hex digits (either case) to 32 bytes.
fn decode_hex(hex: &str) -> Result<[u8; 32], SignatureError> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        // Count characters, not bytes, so the message matches what the caller sees.
        return Err(SignatureError::WrongLength {
            found: hex.chars().count(),
        });
    }
    let nibble = |i: usize| -> Result<u8, SignatureError> {
        match bytes[i] {
            b @ b'0'..=b'9' => Ok(b - b'0'),
            b @ b'a'..=b'f' => Ok(b - b'a' + 10),
            b @ b'A'..=b'F' => Ok(b - b'A' + 10),
            _ => Err(SignatureError::NotHex { position: i }),
        }
    };
    let mut out = [0u8; 32];
    for (k, byte) in out.iter_mut().enumerate() {
        *byte = (nibble(2 * k)? << 4) | nibble(2 * k + 1)?;
    }
    Ok(out)
}

//! Input limits, enforced before any JSON is parsed.

use crate::error::ParseError;

/// How much input [`parse`](crate::parse) accepts before it parses anything.
///
/// Both limits are checked by a cheap pass over the raw bytes, so an oversized or deeply
/// nested body is refused in time linear in its size and without allocating:
///
/// - `max_body_bytes` (default [`Limits::DEFAULT_MAX_BODY_BYTES`], 1 MiB): Meta batches at most
///   a few hundred items per POST, tens of kilobytes; anything near a megabyte is not Meta.
/// - `max_depth` (default [`Limits::DEFAULT_MAX_DEPTH`], 64): the deepest array/object nesting,
///   the top-level object counting as 1. Meta's deepest payloads nest about 12 levels. The JSON
///   parser has its own hard cap of 128 levels, so values above 128 behave as 128 (a deeper
///   body is then an invalid-JSON error rather than a too-deep one).
///
/// ```
/// use waguard_webhook::Limits;
/// let limits = Limits::default().with_max_body_bytes(256 * 1024).with_max_depth(32);
/// assert_eq!(limits.max_body_bytes, 256 * 1024);
/// assert_eq!(Limits::default().max_depth, 64);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Limits {
    /// The largest body accepted, in bytes.
    pub max_body_bytes: usize,
    /// The deepest array/object nesting accepted; the top-level object is depth 1.
    pub max_depth: usize,
}

impl Limits {
    /// The default body size limit: 1 MiB.
    pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
    /// The default nesting limit: 64 levels.
    pub const DEFAULT_MAX_DEPTH: usize = 64;

    /// These limits with another body size limit.
    pub fn with_max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// These limits with another nesting limit.
    pub fn with_max_depth(mut self, depth: usize) -> Self {
        self.max_depth = depth;
        self
    }

    /// Checks the body size alone (done first, before even the signature is computed).
    pub fn check_size(&self, body: &[u8]) -> Result<(), ParseError> {
        if body.len() > self.max_body_bytes {
            return Err(ParseError::TooLarge {
                size: body.len(),
                limit: self.max_body_bytes,
            });
        }
        Ok(())
    }

    /// Checks size and nesting depth without parsing: one pass over the bytes that tracks
    /// whether it is inside a string (and after a backslash there), so brackets in strings do
    /// not count. It does not validate the JSON; the parser does that afterwards.
    pub fn check(&self, body: &[u8]) -> Result<(), ParseError> {
        self.check_size(body)?;
        let mut depth = 0usize;
        let mut i = 0;
        let n = body.len();
        while i < n {
            match body[i] {
                b'"' => {
                    // Skip the string: find the closing quote, jumping over escapes.
                    i += 1;
                    while i < n {
                        match body[i] {
                            b'"' => break,
                            b'\\' => i += 2,
                            _ => i += 1,
                        }
                    }
                }
                b'[' | b'{' => {
                    depth += 1;
                    if depth > self.max_depth {
                        return Err(ParseError::TooDeep {
                            limit: self.max_depth,
                            offset: i,
                        });
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
            i += 1;
        }
        Ok(())
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
            max_depth: Self::DEFAULT_MAX_DEPTH,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_counts_brackets_outside_strings_only() {
        let limits = Limits::default().with_max_depth(2);
        assert!(limits.check(br#"{"a":[1]}"#).is_ok());
        assert!(limits.check(br#"{"a":"[[[[{{{{"}"#).is_ok());
        assert!(limits.check(br#"{"a":"\"[[[[\\"}"#).is_ok());
        assert!(matches!(
            limits.check(br#"{"a":[[1]]}"#),
            Err(ParseError::TooDeep {
                limit: 2,
                offset: 6
            })
        ));
        // An escaped quote does not end the string; an escaped backslash does not escape it.
        assert!(limits.check(br#"{"a":"\\"}[[["#).is_err());
        assert!(limits.check(br#"{"a":"\"[[["}"#).is_ok());
        // Unterminated strings and trailing backslashes end the scan without panicking.
        assert!(limits.check(br#"{"a":"\"#).is_ok());
    }

    #[test]
    fn size_is_checked_first() {
        let limits = Limits::default().with_max_body_bytes(4);
        assert!(matches!(
            limits.check(b"[[[[[[[[[["),
            Err(ParseError::TooLarge { size: 10, limit: 4 })
        ));
    }
}

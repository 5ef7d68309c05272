//! Input limits, enforced before any JSON is parsed.

use crate::error::ParseError;

/// How much input [`parse`](crate::parse) accepts.
///
/// The first two limits are checked by a cheap pass over the raw bytes before anything is
/// parsed, so an oversized or deeply nested body is refused in time linear in its size and
/// without allocating; the third bounds the memory the parse itself may use:
///
/// - `max_body_bytes` (default [`Limits::DEFAULT_MAX_BODY_BYTES`], 1 MiB): Meta batches at most
///   a few hundred items per POST, tens of kilobytes; anything near a megabyte is not Meta.
/// - `max_depth` (default [`Limits::DEFAULT_MAX_DEPTH`], 64): the deepest array/object nesting,
///   the top-level object counting as 1. Meta's deepest payloads nest about 12 levels. The
///   parse itself never recurses deeper than the payload types (anything deeper is skipped
///   iteratively), so this limit bounds work on hostile input rather than stack use.
/// - `max_items` (default [`Limits::DEFAULT_MAX_ITEMS`], 10,000): how many array elements
///   (entries, changes, contacts, messages, statuses, errors, preferences, calls, all arrays
///   together) are read. Each costs up to half a kilobyte once read, whatever its size in the
///   body, so this caps the parse at a few megabytes; a body with more is refused whole
///   ([`ParseError::TooManyItems`]). Meta batches far fewer per POST.
///
/// ```
/// use waguard_webhook::Limits;
/// let limits = Limits::default().with_max_body_bytes(256 * 1024).with_max_depth(32);
/// assert_eq!(limits.max_body_bytes, 256 * 1024);
/// assert_eq!(Limits::default().max_depth, 64);
/// assert_eq!(Limits::default().max_items, 10_000);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Limits {
    /// The largest body accepted, in bytes.
    pub max_body_bytes: usize,
    /// The deepest array/object nesting accepted; the top-level object is depth 1.
    pub max_depth: usize,
    /// The most array elements read into the payload types, all arrays together.
    pub max_items: usize,
}

impl Limits {
    /// The default body size limit: 1 MiB.
    pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
    /// The default nesting limit: 64 levels.
    pub const DEFAULT_MAX_DEPTH: usize = 64;
    /// The default item limit: 10,000 array elements.
    pub const DEFAULT_MAX_ITEMS: usize = 10_000;

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

    /// These limits with another item limit.
    pub fn with_max_items(mut self, items: usize) -> Self {
        self.max_items = items;
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
        // The depth cannot exceed the number of opening brackets: when those are few (a typical
        // single-message payload has about 15), a vectorised count settles it.
        if count_opening(body) <= self.max_depth {
            return Ok(());
        }
        let mut depth = 0usize;
        let mut i = 0;
        let n = body.len();
        while i < n {
            match body[i] {
                b'"' => {
                    // Skip the string: find the closing quote, jumping over escapes.
                    i += 1;
                    loop {
                        match memchr::memchr2(b'"', b'\\', &body[i.min(n)..]) {
                            Some(k) if body[i + k] == b'"' => {
                                i += k;
                                break;
                            }
                            Some(k) => i += k + 2,
                            // An unterminated string: nothing after it is structure, and the
                            // parser will report the broken JSON.
                            None => return Ok(()),
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

/// How many `[` and `{` bytes the body holds (in strings too). `b | 0x20 == b'{'` holds for
/// exactly `[` (0x5B) and `{` (0x7B); counting into a `u8` per 64-byte chunk lets the compiler
/// vectorise the loop.
fn count_opening(body: &[u8]) -> usize {
    let mut chunks = body.chunks_exact(64);
    let mut total = 0usize;
    for chunk in &mut chunks {
        let mut n = 0u8;
        for &b in chunk {
            n += u8::from((b | 0x20) == b'{');
        }
        total += usize::from(n);
    }
    total
        + chunks
            .remainder()
            .iter()
            .filter(|&&b| (b | 0x20) == b'{')
            .count()
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
            max_depth: Self::DEFAULT_MAX_DEPTH,
            max_items: Self::DEFAULT_MAX_ITEMS,
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
    fn opening_brackets_are_counted_exactly() {
        for len in [0, 1, 63, 64, 65, 200] {
            let body: Vec<u8> = (0..len)
                .map(|i| [b'[', b'{', b'a', b';', b'['][i % 5])
                .collect();
            let want = body.iter().filter(|&&b| b == b'[' || b == b'{').count();
            assert_eq!(count_opening(&body), want, "{len}");
        }
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(count_opening(&all), 2);
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

//! The primitives of the compact format: LEB128 varints, fixed-width hashes and instants.
//!
//! Instants are written relative to a base (the record's newest event), so the common case, a
//! whole number of seconds a few hours or days from the base, takes two to four bytes instead of
//! the nine an absolute nanosecond count needs.

use crate::error::{MalformedRecord, RecordProblem};
use crate::time::Timestamp;

const NANOS_PER_SECOND: i64 = 1_000_000_000;

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Appends to a record being written.
pub(super) struct Writer {
    pub(super) out: Vec<u8>,
}

impl Writer {
    #[inline]
    pub(super) fn varint(&mut self, mut v: u64) {
        if v < 0x80 {
            self.out.push(v as u8);
            return;
        }
        while v >= 0x80 {
            self.out.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.out.push(v as u8);
    }

    #[inline]
    /// A length-prefixed string.
    pub(super) fn text(&mut self, v: &str) {
        self.varint(v.len() as u64);
        self.out.extend_from_slice(v.as_bytes());
    }

    pub(super) fn hash(&mut self, v: u64) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }

    /// An instant as its distance from `base`: whole seconds when it has no fraction (the
    /// usual case: webhook timestamps are seconds), else seconds plus a nanosecond remainder.
    /// The low bit of the first varint says which.
    #[inline]
    pub(super) fn time(&mut self, at: Timestamp, base: i64) {
        let delta = at.unix_nanos().wrapping_sub(base);
        if delta % NANOS_PER_SECOND == 0 {
            // Exact division: truncating and Euclidean division agree.
            self.varint(zigzag(delta / NANOS_PER_SECOND) << 1);
            return;
        }
        let seconds = delta.div_euclid(NANOS_PER_SECOND);
        let nanos = delta.rem_euclid(NANOS_PER_SECOND);
        // |seconds| < 2^34, so the shifted zigzag value cannot overflow.
        self.varint((zigzag(seconds) << 1) | 1);
        self.varint(nanos as u64);
    }
}

/// Reads a record, reporting where and why it is malformed.
pub(super) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// The version byte is not part of `bytes`; offsets in errors count it.
    origin: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn new(bytes: &'a [u8], origin: usize) -> Self {
        Reader {
            bytes,
            pos: 0,
            origin,
        }
    }

    #[cold]
    pub(super) fn error(&self, field: &'static str, problem: RecordProblem) -> MalformedRecord {
        MalformedRecord {
            offset: self.origin + self.pos,
            field,
            problem,
        }
    }

    /// The bytes not read yet (after a whole record: its trailing bytes).
    pub(super) fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    #[inline(always)]
    pub(super) fn varint(&mut self, field: &'static str) -> Result<u64, MalformedRecord> {
        if let Some(&byte) = self.bytes.get(self.pos) {
            if byte < 0x80 {
                self.pos += 1;
                return Ok(u64::from(byte));
            }
        }
        match self.varint_long() {
            Some(v) => Ok(v),
            None => Err(self.varint_error(field)),
        }
    }

    /// A varint of more than one byte, or `None` with `pos` where reading stopped. Returning
    /// an `Option` (two registers) rather than the error itself (a 40-byte value passed
    /// through memory) made this call a fifth cheaper; errors are rare.
    fn varint_long(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for i in 0..10 {
            let &byte = self.bytes.get(self.pos)?;
            // The tenth byte may only carry the top bit of a u64. (So ten bytes always end the
            // varint or stop here: the loop never runs out.)
            if i == 9 && byte > 1 {
                return None;
            }
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                return Some(value);
            }
        }
        None
    }

    /// Why `varint_long` stopped: at the end of the bytes, or on a tenth byte too large.
    #[cold]
    fn varint_error(&self, field: &'static str) -> MalformedRecord {
        let problem = if self.pos == self.bytes.len() {
            RecordProblem::Truncated
        } else {
            RecordProblem::VarintOverflow
        };
        self.error(field, problem)
    }

    pub(super) fn u32(&mut self, field: &'static str) -> Result<u32, MalformedRecord> {
        let start = self.pos;
        let v = self.varint(field)?;
        u32::try_from(v).map_err(|_| {
            self.pos = start;
            self.error(field, RecordProblem::OutOfRange)
        })
    }

    /// A length-prefixed string (at most `max` bytes of UTF-8).
    pub(super) fn text(
        &mut self,
        field: &'static str,
        max: usize,
    ) -> Result<&'a str, MalformedRecord> {
        let len = self.varint(field)?;
        let len = usize::try_from(len)
            .ok()
            .filter(|l| *l <= max)
            .ok_or_else(|| self.error(field, RecordProblem::OutOfRange))?;
        let bytes = self
            .bytes
            .get(self.pos..self.pos + len)
            .ok_or_else(|| self.error(field, RecordProblem::Truncated))?;
        let text =
            std::str::from_utf8(bytes).map_err(|_| self.error(field, RecordProblem::OutOfRange))?;
        self.pos += len;
        Ok(text)
    }

    #[inline]
    pub(super) fn hash(&mut self, field: &'static str) -> Result<u64, MalformedRecord> {
        match self.bytes.get(self.pos..self.pos + 8) {
            Some(b) => {
                self.pos += 8;
                let mut raw = [0u8; 8];
                raw.copy_from_slice(b);
                Ok(u64::from_le_bytes(raw))
            }
            None => Err(self.error(field, RecordProblem::Truncated)),
        }
    }

    #[inline]
    pub(super) fn time(
        &mut self,
        field: &'static str,
        base: i64,
    ) -> Result<Timestamp, MalformedRecord> {
        let start = self.pos;
        let head = self.varint(field)?;
        let seconds = unzigzag(head >> 1);
        let nanos = if head & 1 == 1 {
            let n = self.varint(field)?;
            if n == 0 || n >= NANOS_PER_SECOND as u64 {
                self.pos = start;
                return Err(self.error(field, RecordProblem::OutOfRange));
            }
            n as i64
        } else {
            0
        };
        // Every i64 distance splits into seconds in this range and a remainder; anything else
        // was not written by `Writer::time`.
        let seconds_range =
            i64::MIN.div_euclid(NANOS_PER_SECOND)..=i64::MAX.div_euclid(NANOS_PER_SECOND);
        if !seconds_range.contains(&seconds) {
            self.pos = start;
            return Err(self.error(field, RecordProblem::OutOfRange));
        }
        // Wrapping arithmetic undoes the writer's wrapping subtraction exactly.
        let delta = seconds.wrapping_mul(NANOS_PER_SECOND).wrapping_add(nanos);
        Ok(Timestamp::from_unix_nanos(base.wrapping_add(delta)))
    }

    /// A count of entries, each at least `min_entry_bytes` long: larger than what is left means
    /// a corrupt record, and checking it first keeps a corrupt count from allocating.
    #[inline]
    pub(super) fn count(
        &mut self,
        field: &'static str,
        min_entry_bytes: usize,
    ) -> Result<usize, MalformedRecord> {
        let start = self.pos;
        let n = self.varint(field)?;
        match usize::try_from(n) {
            Ok(n) if n >= 1 && n.saturating_mul(min_entry_bytes) <= self.remaining() => Ok(n),
            _ => {
                self.pos = start;
                Err(self.error(field, RecordProblem::BadCount))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_instants_round_trip_at_the_edges() {
        let bases = [0, 1_772_323_200_000_000_000, i64::MIN, i64::MAX];
        let instants = [
            0,
            1,
            -1,
            999_999_999,
            1_000_000_000,
            -1_000_000_000,
            1_772_323_200_000_000_000,
            1_772_323_200_123_456_789,
            i64::MIN,
            i64::MAX,
        ];
        for base in bases {
            for at in instants {
                let mut w = Writer { out: Vec::new() };
                w.time(Timestamp::from_unix_nanos(at), base);
                w.varint(u64::MAX);
                let mut r = Reader::new(&w.out, 1);
                assert_eq!(r.time("t", base).unwrap().unix_nanos(), at, "base {base}");
                assert_eq!(r.varint("v").unwrap(), u64::MAX);
                assert_eq!(r.remaining(), 0);
            }
        }
    }

    #[test]
    fn whole_seconds_near_the_base_are_short() {
        let base = 1_772_323_200_000_000_000;
        let mut w = Writer { out: Vec::new() };
        w.time(
            Timestamp::from_unix_nanos(base - 3 * 3600 * NANOS_PER_SECOND),
            base,
        );
        assert_eq!(w.out.len(), 3);
    }

    #[test]
    fn malformed_varints_are_errors_with_offsets() {
        let mut r = Reader::new(&[0xff; 11], 1);
        let e = r.varint("bitmap").unwrap_err();
        assert_eq!(e.problem, RecordProblem::VarintOverflow);
        let mut r = Reader::new(&[0x80], 1);
        let e = r.varint("bitmap").unwrap_err();
        assert_eq!((e.offset, e.problem), (2, RecordProblem::Truncated));
        // Nine continuation bytes, then the end: truncated after them.
        let mut r = Reader::new(&[0xff; 9], 1);
        let e = r.varint("bitmap").unwrap_err();
        assert_eq!((e.offset, e.problem), (10, RecordProblem::Truncated));
        // A tenth byte above 1 overflows a u64, and the error points at it, even as the
        // record's last byte.
        let mut bytes = [0xff; 10];
        bytes[9] = 0x02;
        let mut r = Reader::new(&bytes, 1);
        let e = r.varint("bitmap").unwrap_err();
        assert_eq!((e.offset, e.problem), (10, RecordProblem::VarintOverflow));
        bytes[9] = 0x01;
        let mut r = Reader::new(&bytes, 1);
        assert_eq!(r.varint("bitmap"), Ok(u64::MAX));
    }
}

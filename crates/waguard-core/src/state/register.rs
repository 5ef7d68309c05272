//! The register kinds every state field is made of (rule E1): max, min and last-writer-wins.
//! Each `set_*` returns whether the value changed, so callers know when to write.

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// Raises `slot` to `value` if it is later (a max register). `None` is the bottom.
pub(crate) fn raise(slot: &mut Option<Timestamp>, value: Timestamp) -> bool {
    if *slot < Some(value) {
        *slot = Some(value);
        true
    } else {
        false
    }
}

/// Lowers `slot` to `value` if it is earlier (a min register). `None` is the bottom.
pub(crate) fn lower(slot: &mut Option<Timestamp>, value: Timestamp) -> bool {
    match slot {
        Some(current) if *current <= value => false,
        _ => {
            *slot = Some(value);
            true
        }
    }
}

/// Joins two min registers.
pub(crate) fn min_join(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Drops a register value at or before the erasure instant (rule E4).
pub(crate) fn erase_upto(slot: &mut Option<Timestamp>, erased: Timestamp) {
    if slot.is_some_and(|t| t <= erased) {
        *slot = None;
    }
}

/// An opt-out/opt-in pair ordered by event time (rule O3): the later event wins and, at equal
/// times, opt-out wins. Both sides are max registers, so arrival order does not matter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OptRegister {
    /// The latest opt-out.
    pub out_at: Option<Timestamp>,
    /// The latest opt-in.
    pub in_at: Option<Timestamp>,
}

impl OptRegister {
    /// Whether the contact is opted out: an opt-out exists and no strictly later opt-in.
    pub fn is_out(&self) -> bool {
        self.out_at.is_some() && self.out_at >= self.in_at
    }

    /// Same as [`is_out`](Self::is_out) with one more opt-out instant taken into account.
    pub(crate) fn is_out_with(&self, extra_out: Option<Timestamp>) -> bool {
        let out = self.out_at.max(extra_out);
        out.is_some() && out >= self.in_at
    }

    pub(crate) fn join(&mut self, other: &OptRegister) {
        self.out_at = self.out_at.max(other.out_at);
        self.in_at = self.in_at.max(other.in_at);
    }

    pub(crate) fn erase_upto(&mut self, erased: Timestamp) {
        erase_upto(&mut self.out_at, erased);
        erase_upto(&mut self.in_at, erased);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_unix_seconds(s).unwrap()
    }

    #[test]
    fn o3_last_writer_wins_and_opt_out_wins_ties() {
        let mut r = OptRegister::default();
        assert!(!r.is_out());
        raise(&mut r.in_at, t(10));
        raise(&mut r.out_at, t(10));
        assert!(r.is_out(), "equal times: opt-out wins");
        raise(&mut r.in_at, t(11));
        assert!(!r.is_out());
        // An older opt-out arriving late changes nothing (E2).
        assert!(!raise(&mut r.out_at, t(5)));
        assert!(!r.is_out());
    }

    #[test]
    fn e2_registers_never_move_backwards() {
        let mut max = Some(t(10));
        assert!(!raise(&mut max, t(9)));
        assert_eq!(max, Some(t(10)));
        let mut min = Some(t(10));
        assert!(!lower(&mut min, t(11)));
        assert!(lower(&mut min, t(9)));
        assert_eq!(min, Some(t(9)));
        assert_eq!(min_join(None, Some(t(1))), Some(t(1)));
    }
}

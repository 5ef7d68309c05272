//! Target `journal_replay`: the sled store's write-ahead journal as a store finds it when it
//! opens after a crash.
//!
//! The input is read as a [`Plan`]: a generation, a list of records (well-formed operations,
//! arbitrary payloads with a valid checksum, damaged records, records of another generation),
//! whether the header is valid and whether the file is padded with zeros. The body writes that
//! file by the format documented in `crates/waguard-sled/src/journal.rs` (written again here on
//! purpose: an independent writer and reader are the oracle), opens a `SledStore` on it and
//! checks what the open must do.

use std::collections::BTreeMap;
use std::path::Path;

use arbitrary::{Arbitrary, Unstructured};
use waguard::{StoreError, StoreErrorKind};
use waguard_sled::{SledOptions, SledStore};

/// The journal file's name in the store directory.
const FILE_NAME: &str = "waguard-journal";
const MAGIC: &[u8; 8] = b"WGJRNL01";
/// Where records start.
const RECORDS_START: usize = 512;
/// The smallest journal a store creates.
const MIN_CAPACITY: usize = 64 * 1024;
/// Inputs whose journal would be larger are skipped (they test nothing more).
const MAX_RECORD_BYTES: usize = 256 * 1024;

const CONTACT_PUT: u8 = 1;
const CONTACT_DELETE: u8 = 2;
const SENDER_PUT: u8 = 3;
const SENDER_DELETE: u8 = 4;
const DELTA: u8 = 5;
const MAYBE_DELTA: u8 = 6;

/// One operation of a well-formed record.
#[derive(Arbitrary, Debug)]
pub struct PlannedOp {
    /// The `senders` tree rather than `contacts`.
    pub sender: bool,
    /// The key: one of four, so that several operations on one key are frequent.
    pub key: SmallKey,
    /// `None` deletes the key.
    pub value: Option<Vec<u8>>,
}

/// A key of at most one byte: empty, `a`, `b` or `c`.
#[derive(Debug)]
pub struct SmallKey(pub Vec<u8>);

impl<'a> Arbitrary<'a> for SmallKey {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(SmallKey(match u.int_in_range(0..=3)? {
            0 => Vec::new(),
            n => vec![b'a' + n - 1],
        }))
    }
}

/// One record of the planned file.
#[derive(Arbitrary, Debug)]
pub enum PlannedRecord {
    /// Well-formed operations, as the store writes them.
    Ops(Vec<PlannedOp>),
    /// Any payload, with a valid checksum: replayed if it parses, else the open fails.
    Raw(Vec<u8>),
    /// Well-formed operations whose checksum does not hold (a torn write): the end of the
    /// replay.
    Damaged(Vec<PlannedOp>, u8),
    /// A record left from an earlier generation: the end of the replay.
    Stale(Vec<PlannedOp>),
}

/// The journal file to write.
#[derive(Arbitrary, Debug)]
pub struct Plan {
    /// The header's generation.
    pub generation: u64,
    /// The header is damaged (so the journal counts as absent) when this is below 32: one
    /// input in eight.
    pub header: u8,
    /// Whether the file is zero-filled to its capacity after the records (else it ends with
    /// the last record).
    pub padded: bool,
    /// The records, in file order.
    pub records: Vec<PlannedRecord>,
}

fn encode_ops(ops: &[PlannedOp]) -> Vec<u8> {
    let mut out = Vec::new();
    for op in ops {
        let tag = match (op.sender, op.value.is_some()) {
            (false, true) => CONTACT_PUT,
            (false, false) => CONTACT_DELETE,
            (true, true) => SENDER_PUT,
            (true, false) => SENDER_DELETE,
        };
        out.push(tag);
        out.extend_from_slice(&(op.key.0.len() as u32).to_le_bytes());
        out.extend_from_slice(&op.key.0);
        if let Some(value) = &op.value {
            out.extend_from_slice(&(value.len() as u32).to_le_bytes());
            out.extend_from_slice(value);
        }
    }
    out
}

/// One operation as the reference reader sees it: (sender tree, key, value or delete).
type Parsed = (bool, Vec<u8>, Option<Vec<u8>>);

/// The reference reader of a payload: `None` if it is malformed.
fn parse(mut payload: &[u8]) -> Option<Vec<Parsed>> {
    fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        (bytes.len() >= n).then(|| {
            let (head, rest) = bytes.split_at(n);
            *bytes = rest;
            head
        })
    }
    fn sized<'a>(bytes: &mut &'a [u8]) -> Option<&'a [u8]> {
        let n = take(bytes, 4)?;
        take(bytes, u32::from_le_bytes([n[0], n[1], n[2], n[3]]) as usize)
    }
    let mut ops = Vec::new();
    while let Some(&[tag]) = take(&mut payload, 1) {
        if tag == DELTA || tag == MAYBE_DELTA {
            // The manifest's delta: 16 bytes, no operation.
            take(&mut payload, 16)?;
            continue;
        }
        let (sender, put) = match tag {
            CONTACT_PUT => (false, true),
            CONTACT_DELETE => (false, false),
            SENDER_PUT => (true, true),
            SENDER_DELETE => (true, false),
            _ => return None,
        };
        let key = sized(&mut payload)?.to_vec();
        let value = if put {
            Some(sized(&mut payload)?.to_vec())
        } else {
            None
        };
        ops.push((sender, key, value));
    }
    Some(ops)
}

fn record(generation: u64, payload: &[u8], crc_flip: u32) -> Vec<u8> {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&generation.to_le_bytes());
    crc.update(payload);
    let mut out = Vec::with_capacity(16 + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&(crc.finalize() ^ crc_flip).to_le_bytes());
    out.extend_from_slice(&generation.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// What opening a store on the planned journal must give.
enum Expected {
    /// The open fails: the header is damaged, or the replay stops before an intact record of
    /// the header's generation (damage in the middle, not a torn tail).
    Damaged,
    /// The open fails: a replayed record's checksum holds but its operations cannot be read.
    BadRecord,
    /// The open succeeds after replaying this many records, leaving these trees (contacts,
    /// senders).
    Replayed(usize, [BTreeMap<Vec<u8>, Vec<u8>>; 2]),
}

/// Writes the planned file (its bytes) and works out what the open must give.
fn build(plan: &Plan) -> Option<(Vec<u8>, Expected)> {
    let mut file = vec![0u8; RECORDS_START];
    file[..8].copy_from_slice(MAGIC);
    file[8..16].copy_from_slice(&plan.generation.to_le_bytes());
    let header_ok = plan.header >= 32;
    let crc = crc32fast::hash(&file[..16]) ^ u32::from(!header_ok);
    file[16..20].copy_from_slice(&crc.to_le_bytes());

    let mut trees: [BTreeMap<Vec<u8>, Vec<u8>>; 2] = Default::default();
    let mut replayed = 0;
    let mut replaying = header_ok;
    // Where the replay stops.
    let mut stop = RECORDS_START;
    let mut bad = false;
    for planned in &plan.records {
        let (payload, generation, crc_flip) = match planned {
            PlannedRecord::Ops(ops) => (encode_ops(ops), plan.generation, 0),
            PlannedRecord::Raw(bytes) => (bytes.clone(), plan.generation, 0),
            PlannedRecord::Damaged(ops, bit) => {
                (encode_ops(ops), plan.generation, 1u32 << (bit % 32))
            }
            PlannedRecord::Stale(ops) => (encode_ops(ops), plan.generation.wrapping_sub(1), 0),
        };
        file.extend_from_slice(&record(generation, &payload, crc_flip));
        if file.len() > MAX_RECORD_BYTES {
            return None;
        }
        // The replay stops at an empty record (the zero-filled tail reads as one), a damaged
        // one or one of another generation.
        replaying &= !payload.is_empty() && crc_flip == 0 && generation == plan.generation;
        if !replaying || bad {
            continue;
        }
        match parse(&payload) {
            Some(ops) => {
                replayed += 1;
                stop = file.len();
                for (sender, key, value) in ops {
                    let tree = &mut trees[usize::from(sender)];
                    match value {
                        Some(value) => tree.insert(key, value),
                        None => tree.remove(&key),
                    };
                }
            }
            None => bad = true,
        }
    }
    if plan.padded {
        file.resize(file.len().max(MIN_CAPACITY), 0);
    }
    let expected = if !header_ok || file.len() <= RECORDS_START {
        Expected::Damaged
    } else if bad {
        Expected::BadRecord
    } else if intact_after(&file, stop, plan.generation) {
        Expected::Damaged
    } else {
        Expected::Replayed(replayed, trees)
    };
    Some((file, expected))
}

/// Whether an intact record of `generation` (a nonzero size that fits, and a checksum that
/// holds) starts at any byte after `stop`.
fn intact_after(file: &[u8], stop: usize, generation: u64) -> bool {
    (stop + 1..file.len().saturating_sub(16)).any(|at| {
        let word = |i: usize, n: usize| &file[at + i..at + i + n];
        if word(8, 8) != generation.to_le_bytes() {
            return false;
        }
        let size = u32::from_le_bytes(word(0, 4).try_into().unwrap()) as usize;
        let end = at + 16 + size;
        if size == 0 || end > file.len() {
            return false;
        }
        let mut crc = crc32fast::Hasher::new();
        crc.update(&generation.to_le_bytes());
        crc.update(&file[at + 16..end]);
        crc.finalize().to_le_bytes() == word(4, 4)
    })
}

fn tree_contents(store: &SledStore, name: &str) -> BTreeMap<Vec<u8>, Vec<u8>> {
    store
        .sled_db()
        .open_tree(name)
        .expect("the store's tree")
        .iter()
        .map(|kv| {
            let (k, v) = kv.expect("readable tree");
            (k.to_vec(), v.to_vec())
        })
        .collect()
}

fn open(dir: &Path) -> Result<SledStore, StoreError> {
    SledStore::open_with(dir, SledOptions::default())
}

/// What opening a store on a `journal_replay` input's journal must give; lets a test check
/// that its inputs cover every case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JournalOutcome {
    /// The input is too short for a plan, or its journal too large: the body does nothing.
    Skipped,
    /// The open is refused (a replayed record cannot be read).
    Refused,
    /// The open is refused: the header is damaged, or a record before intact ones.
    Damaged,
    /// The open replays this many records.
    Replayed(usize),
}

/// The outcome [`journal_replay`] expects for `data`.
pub fn journal_outcome(data: &[u8]) -> JournalOutcome {
    let Ok(plan) = Plan::arbitrary_take_rest(Unstructured::new(data)) else {
        return JournalOutcome::Skipped;
    };
    match build(&plan) {
        None => JournalOutcome::Skipped,
        Some((_, Expected::BadRecord)) => JournalOutcome::Refused,
        Some((_, Expected::Damaged)) => JournalOutcome::Damaged,
        Some((_, Expected::Replayed(n, _))) => JournalOutcome::Replayed(n),
    }
}

/// Target `journal_replay`: writes the journal of a [`Plan`] into a fresh store directory
/// and opens a `SledStore` there. Checks:
///
/// - the open never panics;
/// - when a replayed record's checksum holds but its operations cannot be read, the open
///   fails with a typed [`StoreError`] of kind [`Damaged`](StoreErrorKind::Damaged) whose
///   message says to move the journal aside, and the journal file is left exactly as it was;
/// - when the header is damaged, or the replay stops before an intact record of the header's
///   generation (damage in the middle rather than a torn tail), the open fails with
///   [`Damaged`](StoreErrorKind::Damaged) and leaves the journal file as it was;
/// - otherwise the open replays exactly the records before the first empty, damaged or stale
///   one ([`SledStore::recovered_writes`]) and the trees hold what applying their operations
///   in order gives (after-images: the last write of a key wins, a delete removes it);
/// - a second open after a clean close replays nothing and finds the same trees.
pub fn journal_replay(data: &[u8]) {
    let Ok(plan) = Plan::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let Some((bytes, expected)) = build(&plan) else {
        return;
    };
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let dir = tmp.path().join("store");
    std::fs::create_dir(&dir).expect("the store directory");
    let journal = dir.join(FILE_NAME);
    std::fs::write(&journal, &bytes).expect("the journal file");

    match (open(&dir), expected) {
        (Err(e), Expected::BadRecord) => {
            assert_eq!(e.kind(), StoreErrorKind::Damaged, "{e:?}");
            let message = e.to_string();
            assert!(message.contains("move the file aside"), "{message}");
            let after = std::fs::read(&journal).expect("the journal file");
            assert!(after == bytes, "a failed open changed the journal");
        }
        (Err(e), Expected::Damaged) => {
            assert_eq!(e.kind(), StoreErrorKind::Damaged, "{e:?}");
            let after = std::fs::read(&journal).expect("the journal file");
            assert!(after == bytes, "a refused open changed the journal");
        }
        (Ok(_), Expected::Damaged) => panic!("a damaged journal was opened"),
        (Ok(_), Expected::BadRecord) => panic!("a malformed record was replayed"),
        (Err(e), Expected::Replayed(..)) => panic!("the open failed: {e}"),
        (Ok(store), Expected::Replayed(replayed, [contacts, senders])) => {
            assert_eq!(store.recovered_writes(), replayed, "records replayed");
            assert_eq!(tree_contents(&store, "contacts"), contacts, "contacts");
            assert_eq!(tree_contents(&store, "senders"), senders, "senders");
            drop(store);
            let again = open(&dir).unwrap_or_else(|e| panic!("the second open failed: {e}"));
            assert_eq!(again.recovered_writes(), 0, "a clean close leaves nothing");
            assert_eq!(tree_contents(&again, "contacts"), contacts, "contacts");
            assert_eq!(tree_contents(&again, "senders"), senders, "senders");
        }
    }
}

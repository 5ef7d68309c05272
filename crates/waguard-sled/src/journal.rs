//! The store's write-ahead journal: after-images of every write, made durable with one
//! `fdatasync` of a preallocated file before sled applies them.
//!
//! Why it exists: a durable write through sled 0.34 alone costs sled's flush (its log write
//! ends with `sync_file_range`, one device round trip) and then an `fdatasync` of sled's
//! growing data file (a second round trip, plus the file size in the file system's journal).
//! Appending the write's after-images to a file that was zero-filled when it was created, and
//! `fdatasync`ing that, is one overwrite in place: the fastest durable write the disk offers.
//! sled then applies the write in memory and writes its own log in the background.
//!
//! # Format
//! The file is `capacity` bytes, zero-filled at creation. Bytes 0..20 are the header: the magic
//! `WGJRNL01`, the current generation (u64 LE) and a CRC-32 of those 16 bytes. Records start
//! at [`RECORDS_START`], one after the other:
//!
//! ```text
//! [payload length: u32 LE][CRC-32 of generation and payload: u32 LE][generation: u64 LE][payload]
//! payload = op*;  op = [tag: u8][key length: u32 LE][key][value length: u32 LE][value]
//! ```
//!
//! (no value for the delete tags). A record of a store that keeps a manifest ends with one
//! more op, tag 5 and 16 bytes: the change the write makes to the manifest's count and sum
//! (see `manifest.rs`); a write too large for the journal, which sled applies by itself, is
//! preceded by a record of one op, tag 6 and 16 bytes: its change, which counts after a crash
//! if sled kept the write. Replay reads records from [`RECORDS_START`] while their generation is
//! the header's and their CRC holds: the zero-filled rest of the file, a torn last record, or
//! a record of an earlier lap all stop it. A record that stops it but is followed by a valid
//! record of the same generation is not a torn tail but damage in the middle, and a header
//! that is not valid is damage too: both are reported ([`JournalError::DamagedHeader`],
//! [`JournalError::DamagedRecord`]), never taken for an empty journal.
//!
//! # Protocol (enforced by `SledStore`)
//! - Every write is appended here, then synced (when it must be durable on return), and only
//!   then applied to sled, all under the locks that order writes to the same keys. So
//!   whatever sled holds, on disk or not, is in the journal's durable prefix or older than it.
//! - When the file is full, a checkpoint flushes sled, `fdatasync`s its data file, and starts
//!   a new generation at [`RECORDS_START`]: the old records are then obsolete.
//! - On open, the records of the current generation are applied to sled again, in order.
//!   After-images make that idempotent: applying `key = value` twice is applying it once.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use crate::manifest::Delta;
use crate::sync::GroupSync;

/// Where records start (the header is alone in the first sector).
pub(crate) const RECORDS_START: u64 = 512;
/// Bytes before a record's payload.
const RECORD_HEADER: usize = 16;
const MAGIC: &[u8; 8] = b"WGJRNL01";
/// The file's name inside the sled directory.
pub(crate) const FILE_NAME: &str = "waguard-journal";

/// What one journaled operation does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tree {
    /// The `contacts` tree.
    Contacts,
    /// The `senders` tree.
    Senders,
    /// The `registry` tree (template and portfolio records).
    Registry,
}

/// One operation of a record: `value` `None` deletes the key.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Op<'a> {
    pub(crate) tree: Tree,
    pub(crate) key: &'a [u8],
    pub(crate) value: Option<&'a [u8]>,
}

/// The journal could not take a record: it is full (checkpoint, then append again).
#[derive(Debug)]
pub(crate) struct Full;

/// Why the journal's file could not be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JournalError {
    #[error(
        "the journal file {path} has a damaged header, so the writes it holds since the last \
         checkpoint cannot be read"
    )]
    DamagedHeader { path: PathBuf },
    #[error(
        "the journal file {path} is damaged at byte {offset}, before records that are intact: \
         the writes from there on cannot be replayed in order"
    )]
    DamagedRecord { path: PathBuf, offset: u64 },
    #[error("I/O on the journal file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "the journal file {path} has a record at byte {offset} whose checksum holds but whose \
         operations cannot be read; move the file aside to open the store without it (its \
         writes since the last checkpoint would be lost)"
    )]
    BadRecord { path: PathBuf, offset: u64 },
}

/// The journal file, its write position and its group `fdatasync`.
pub(crate) struct Journal {
    path: PathBuf,
    file: File,
    capacity: u64,
    /// Generation and next write offset; held while writing, so records are contiguous.
    tail: Mutex<Tail>,
    /// Group commit: appends take a ticket after writing (under the tail lock, so ticket
    /// order is file order).
    pub(crate) group: GroupSync,
}

struct Tail {
    generation: u64,
    offset: u64,
}

impl Journal {
    /// Opens the journal in `dir` (creating a zero-filled one of `capacity` bytes when there
    /// is none) and returns it with the payloads to replay, in order, and whether it was
    /// created. A damaged header or a damaged record before intact ones is an error, unless
    /// `tolerant`: then the damage is returned with what replays before it, and a journal
    /// whose header is damaged is replaced by a new one, or, when `read_only`, not opened
    /// (`None`).
    pub(crate) fn open(
        dir: &Path,
        capacity: u64,
        tolerant: bool,
        read_only: bool,
    ) -> Result<Opened, JournalError> {
        let path = dir.join(FILE_NAME);
        let io = |source| JournalError::Io {
            path: path.clone(),
            source,
        };
        let mut damage = None;
        let existing = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(file) => {
                let len = file.metadata().map_err(io)?.len();
                match read_header(&file).map_err(io)? {
                    Some(generation) if len > RECORDS_START => Some((file, generation, len)),
                    _ => {
                        let error = JournalError::DamagedHeader { path: path.clone() };
                        if !tolerant {
                            return Err(error);
                        }
                        damage = Some(error);
                        if read_only {
                            return Ok(Opened {
                                journal: None,
                                replay: Vec::new(),
                                created: false,
                                damage,
                            });
                        }
                        None
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(io(e)),
        };
        let created = existing.is_none();
        let (file, generation, len) = match existing {
            Some(found) => found,
            None => (create(dir, &path, capacity).map_err(io)?, 1, capacity),
        };
        let mut replay = Vec::new();
        let mut offset = RECORDS_START;
        while let Some(payload) = read_record(&file, offset, len, generation).map_err(io)? {
            if parse(&payload).is_none() {
                let error = JournalError::BadRecord {
                    path: path.clone(),
                    offset,
                };
                if !tolerant {
                    return Err(error);
                }
                damage = Some(error);
                break;
            }
            offset += (RECORD_HEADER + payload.len()) as u64;
            replay.push(payload);
        }
        if damage.is_none() && intact_record_after(&file, offset, len, generation).map_err(io)? {
            let error = JournalError::DamagedRecord {
                path: path.clone(),
                offset,
            };
            if !tolerant {
                return Err(error);
            }
            damage = Some(error);
        }
        let journal = Journal {
            path,
            file,
            capacity: len,
            tail: Mutex::new(Tail { generation, offset }),
            group: GroupSync::new(),
        };
        Ok(Opened {
            journal: Some(journal),
            replay,
            created,
            damage,
        })
    }

    /// The current generation.
    pub(crate) fn generation(&self) -> u64 {
        self.tail.lock().generation
    }

    /// The generation [`restart`](Journal::restart) starts next.
    pub(crate) fn next_generation(&self) -> u64 {
        next_generation(self.tail.lock().generation)
    }

    /// Appends one record (written, not yet synced). `Err(Full)` when it does not fit.
    pub(crate) fn append(
        &self,
        ops: &[Op<'_>],
        delta: Option<Delta>,
    ) -> Result<Result<(), Full>, JournalError> {
        // The record is built in one buffer: its header, filled in under the tail lock once
        // the generation is known, then the payload.
        let payload_len: usize =
            ops.iter().map(op_len).sum::<usize>() + delta.map_or(0, |_| DELTA_LEN);
        let mut record = Vec::with_capacity(RECORD_HEADER + payload_len);
        record.resize(RECORD_HEADER, 0);
        for op in ops {
            encode_op(&mut record, op);
        }
        if let Some(delta) = delta {
            record.push(DELTA);
            record.extend_from_slice(&delta.to_bytes());
        }
        self.write_record(record)
    }

    /// Appends a record of this payload.
    fn append_payload(&self, payload: &[u8]) -> Result<Result<(), Full>, JournalError> {
        let mut record = Vec::with_capacity(RECORD_HEADER + payload.len());
        record.resize(RECORD_HEADER, 0);
        record.extend_from_slice(payload);
        self.write_record(record)
    }

    /// Writes a record whose payload follows `RECORD_HEADER` bytes to fill in.
    fn write_record(&self, mut record: Vec<u8>) -> Result<Result<(), Full>, JournalError> {
        let payload_len = record.len() - RECORD_HEADER;
        let mut tail = self.tail.lock();
        let len = record.len() as u64;
        if tail.offset + len > self.capacity {
            return Ok(Err(Full));
        }
        let checksum = checksum(tail.generation, &record[RECORD_HEADER..]);
        record[0..4].copy_from_slice(&(payload_len as u32).to_le_bytes());
        record[4..8].copy_from_slice(&checksum.to_le_bytes());
        record[8..16].copy_from_slice(&tail.generation.to_le_bytes());
        write_at(&self.file, &record, tail.offset).map_err(|e| self.io(e))?;
        tail.offset += len;
        // The ticket is taken after the write, still under the tail lock, so ticket order is
        // file order.
        self.group.wrote();
        Ok(Ok(()))
    }

    /// Appends a record holding only the manifest delta of a write sled applies by itself (see
    /// [`MAYBE_DELTA`]). `Err(Full)` when it does not fit.
    pub(crate) fn append_maybe(&self, delta: Delta) -> Result<Result<(), Full>, JournalError> {
        let mut payload = [0u8; DELTA_LEN];
        payload[0] = MAYBE_DELTA;
        payload[1..].copy_from_slice(&delta.to_bytes());
        self.append_payload(&payload)
    }

    /// Whether a record of these operations could ever fit (in an empty journal).
    pub(crate) fn fits_when_empty(&self, ops: &[Op<'_>]) -> bool {
        let payload: usize = ops.iter().map(op_len).sum::<usize>() + DELTA_LEN;
        RECORDS_START + (RECORD_HEADER + payload) as u64 <= self.capacity
    }

    /// Makes every record appended before this call durable; concurrent callers share one
    /// `fdatasync`.
    pub(crate) fn sync(&self) -> Result<(), JournalError> {
        self.group
            .sync_to(&self.file, self.group.last())
            .map_err(|e| self.io(e))
    }

    /// Starts a new generation: every record so far becomes obsolete. Call only when sled
    /// holds them all durably.
    pub(crate) fn restart(&self) -> Result<(), JournalError> {
        let mut tail = self.tail.lock();
        // Wraps rather than overflows (a header can claim any generation) and skips 0, the
        // generation field of the zero-filled, never written part of the file.
        let generation = next_generation(tail.generation);
        write_at(&self.file, &header(generation), 0)
            .and_then(|()| self.group.sync_to(&self.file, self.group.wrote()))
            .map_err(|e| self.io(e))?;
        tail.generation = generation;
        tail.offset = RECORDS_START;
        Ok(())
    }

    fn io(&self, source: io::Error) -> JournalError {
        JournalError::Io {
            path: self.path.clone(),
            source,
        }
    }
}

/// What [`Journal::open`] found.
pub(crate) struct Opened {
    /// The journal (`None`: its header is damaged and the open was read-only).
    pub(crate) journal: Option<Journal>,
    /// The payloads to replay, in order.
    pub(crate) replay: Vec<Vec<u8>>,
    /// Whether the file did not exist (or was replaced) and was created.
    pub(crate) created: bool,
    /// Damage found by a tolerant open.
    pub(crate) damage: Option<JournalError>,
}

impl Opened {
    /// Whether the open found no damage.
    pub(crate) fn damage_free(&self) -> bool {
        self.damage.is_none()
    }
}

/// The generation after `generation`: wraps rather than overflows (a header can claim any
/// generation) and skips 0, the generation field of the zero-filled, never written part of
/// the file.
pub(crate) fn next_generation(generation: u64) -> u64 {
    generation.wrapping_add(1).max(1)
}

/// Whether an intact record of `generation` starts anywhere after `offset`, where the replay
/// stopped: then the replay did not stop at a torn tail but at damage in the middle. Reads
/// the rest of the file once (at most the journal's capacity, a few MiB) and tries every
/// position.
fn intact_record_after(file: &File, offset: u64, len: u64, generation: u64) -> io::Result<bool> {
    if offset + RECORD_HEADER as u64 >= len {
        return Ok(false);
    }
    let mut rest = vec![0u8; (len - offset) as usize];
    read_at(file, &mut rest, offset)?;
    let wanted = generation.to_le_bytes();
    for at in 1..rest.len().saturating_sub(RECORD_HEADER) {
        if rest[at + 8..at + 16] != wanted {
            continue;
        }
        let size = u32::from_le_bytes(rest[at..at + 4].try_into().expect("4 bytes")) as usize;
        let end = at + RECORD_HEADER + size;
        if size == 0 || end > rest.len() {
            continue;
        }
        let crc = u32::from_le_bytes(rest[at + 4..at + 8].try_into().expect("4 bytes"));
        if checksum(generation, &rest[at + RECORD_HEADER..end]) == crc {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Creates the zero-filled file under a temporary name, then renames it into place: a crash
/// midway leaves no half-made journal under the real name.
fn create(dir: &Path, path: &Path, capacity: u64) -> io::Result<File> {
    let temporary = dir.join(format!("{FILE_NAME}.new"));
    {
        let mut file = File::create(&temporary)?;
        let zeros = vec![0u8; 1 << 16];
        let mut left = capacity;
        while left > 0 {
            let n = left.min(zeros.len() as u64) as usize;
            file.write_all(&zeros[..n])?;
            left -= n as u64;
        }
        write_at(&file, &header(1), 0)?;
        file.sync_all()?;
    }
    std::fs::rename(&temporary, path)?;
    // The rename is durable once the directory is synced (Unix; elsewhere a directory cannot
    // be opened as a file, and the file systems there journal renames themselves).
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    OpenOptions::new().read(true).write(true).open(path)
}

/// Writes `bytes` at `offset`: one `pwrite` on Unix. Elsewhere a seek and a write, which is
/// as good because every write of the journal happens under its tail lock (or before the
/// journal is shared).
fn write_at(file: &File, bytes: &[u8], offset: u64) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::write_all_at(file, bytes, offset)
    }
    #[cfg(not(unix))]
    {
        use std::io::{Seek, SeekFrom};
        let mut file = file;
        file.seek(SeekFrom::Start(offset))?;
        file.write_all(bytes)
    }
}

/// Reads exactly `buf.len()` bytes at `offset` (only while opening, before the journal is
/// shared).
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
    }
    #[cfg(not(unix))]
    {
        use std::io::{Read, Seek, SeekFrom};
        let mut file = file;
        file.seek(SeekFrom::Start(offset))?;
        file.read_exact(buf)
    }
}

fn header(generation: u64) -> [u8; 20] {
    let mut h = [0u8; 20];
    h[..8].copy_from_slice(MAGIC);
    h[8..16].copy_from_slice(&generation.to_le_bytes());
    let crc = crc32fast::hash(&h[..16]);
    h[16..].copy_from_slice(&crc.to_le_bytes());
    h
}

/// The generation of a valid header, `None` for anything else.
fn read_header(file: &File) -> io::Result<Option<u64>> {
    let mut h = [0u8; 20];
    match read_at(file, &mut h, 0) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let crc = u32::from_le_bytes([h[16], h[17], h[18], h[19]]);
    if &h[..8] != MAGIC || crc32fast::hash(&h[..16]) != crc {
        return Ok(None);
    }
    Ok(Some(u64::from_le_bytes(
        h[8..16].try_into().expect("8 bytes"),
    )))
}

fn checksum(generation: u64, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&generation.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

/// The payload of the record at `offset`, if one of `generation` with a valid checksum is
/// there.
fn read_record(file: &File, offset: u64, len: u64, generation: u64) -> io::Result<Option<Vec<u8>>> {
    if offset + RECORD_HEADER as u64 > len {
        return Ok(None);
    }
    let mut h = [0u8; RECORD_HEADER];
    read_at(file, &mut h, offset)?;
    let size = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as u64;
    let crc = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
    let found = u64::from_le_bytes(h[8..16].try_into().expect("8 bytes"));
    if size == 0 || found != generation || offset + RECORD_HEADER as u64 + size > len {
        return Ok(None);
    }
    let mut payload = vec![0u8; size as usize];
    read_at(file, &mut payload, offset + RECORD_HEADER as u64)?;
    Ok((checksum(generation, &payload) == crc).then_some(payload))
}

const CONTACT_PUT: u8 = 1;
const CONTACT_DELETE: u8 = 2;
const SENDER_PUT: u8 = 3;
const SENDER_DELETE: u8 = 4;
/// The manifest delta of the record's write: 16 bytes, no key length.
const DELTA: u8 = 5;
/// The manifest delta of a write too large for the journal, which sled applies by itself: a
/// record of this op alone, written before sled applies the write and retired by the
/// checkpoint after it. After a crash between the two, sled holds the write or not, and the
/// delta may or may not count.
const MAYBE_DELTA: u8 = 6;
const REGISTRY_PUT: u8 = 7;
const REGISTRY_DELETE: u8 = 8;

/// Bytes of a delta op.
const DELTA_LEN: usize = 1 + 16;

fn op_len(op: &Op<'_>) -> usize {
    1 + 4 + op.key.len() + op.value.map_or(0, |v| 4 + v.len())
}

fn encode_op(out: &mut Vec<u8>, op: &Op<'_>) {
    let tag = match (op.tree, op.value.is_some()) {
        (Tree::Contacts, true) => CONTACT_PUT,
        (Tree::Contacts, false) => CONTACT_DELETE,
        (Tree::Senders, true) => SENDER_PUT,
        (Tree::Senders, false) => SENDER_DELETE,
        (Tree::Registry, true) => REGISTRY_PUT,
        (Tree::Registry, false) => REGISTRY_DELETE,
    };
    out.push(tag);
    // Keys and records are far below 4 GiB (ids are validated; records are a few hundred
    // bytes).
    out.extend_from_slice(&(op.key.len() as u32).to_le_bytes());
    out.extend_from_slice(op.key);
    if let Some(value) = op.value {
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        out.extend_from_slice(value);
    }
}

/// The operations of a payload, `None` if it is malformed.
pub(crate) fn parse(mut payload: &[u8]) -> Option<Vec<Op<'_>>> {
    fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        if bytes.len() < n {
            return None;
        }
        let (head, rest) = bytes.split_at(n);
        *bytes = rest;
        Some(head)
    }
    fn length(bytes: &mut &[u8]) -> Option<usize> {
        let b = take(bytes, 4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }
    let mut ops = Vec::new();
    while !payload.is_empty() {
        let tag = take(&mut payload, 1)?[0];
        if tag == DELTA || tag == MAYBE_DELTA {
            take(&mut payload, 16)?;
            continue;
        }
        let (tree, has_value) = match tag {
            CONTACT_PUT => (Tree::Contacts, true),
            CONTACT_DELETE => (Tree::Contacts, false),
            SENDER_PUT => (Tree::Senders, true),
            SENDER_DELETE => (Tree::Senders, false),
            REGISTRY_PUT => (Tree::Registry, true),
            REGISTRY_DELETE => (Tree::Registry, false),
            _ => return None,
        };
        let n = length(&mut payload)?;
        let key = take(&mut payload, n)?;
        let value = if has_value {
            let n = length(&mut payload)?;
            Some(take(&mut payload, n)?)
        } else {
            None
        };
        ops.push(Op { tree, key, value });
    }
    Some(ops)
}

/// The delta of a record written by [`Journal::append_maybe`], `None` for any other record.
pub(crate) fn maybe_delta(payload: &[u8]) -> Option<Delta> {
    match payload {
        [MAYBE_DELTA, rest @ ..] => Delta::from_bytes(rest),
        _ => None,
    }
}

/// The manifest delta a payload carries, `None` if it has none (a store without a manifest
/// wrote it) or is malformed.
pub(crate) fn delta(payload: &[u8]) -> Option<Delta> {
    let at = payload.len().checked_sub(DELTA_LEN)?;
    (payload[at] == DELTA && parse(payload).is_some())
        .then(|| Delta::from_bytes(&payload[at + 1..]))
        .flatten()
}

#[cfg(test)]
mod tests;

//! The manifest: what the store acknowledged, as a record count and an order-independent
//! checksum of every record, kept up to date by every write and made durable at each of the
//! journal's checkpoints, so that an open can tell whether sled's files still hold it.
//!
//! # What it sums
//! Each record (contact or sender) counts once and adds [`record_hash`] of its tree, key and
//! value to a wrapping 64-bit sum. A sum does not depend on the order records were written or
//! are read, and a write changes it by a [`Delta`] computed from the record's old and new
//! bytes, so keeping it costs two hashes per written record.
//!
//! # File
//! `waguard-manifest` in the store's directory, 36 bytes: the magic `WGMANI01`, the journal
//! generation the manifest starts (u64 LE), the record count (u64 LE), the sum (u64 LE) and a
//! CRC-32 of those 32 bytes. It is written whole under a temporary name, synced and renamed
//! into place, at every checkpoint, after sled is durable and before the journal starts its
//! new generation: the manifest of generation `g` describes sled as the checkpoint left it,
//! and every journal record of generation `g` carries the [`Delta`] of its write.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// The file's name inside the sled directory.
pub(crate) const FILE_NAME: &str = "waguard-manifest";
const MAGIC: &[u8; 8] = b"WGMANI01";
const LEN: usize = 36;

/// Which tree a record is in, as hashed.
pub(crate) const CONTACTS: u8 = 1;
/// See [`CONTACTS`].
pub(crate) const SENDERS: u8 = 2;

/// A record count and checksum: a whole store's, or the change one write makes to them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Sums {
    /// Records (wrapping: a delta may be negative).
    pub(crate) count: u64,
    /// Wrapping sum of [`record_hash`].
    pub(crate) sum: u64,
}

/// The change a write makes to the [`Sums`].
pub(crate) type Delta = Sums;

impl Sums {
    /// `self` plus `other`.
    pub(crate) fn plus(self, other: Sums) -> Sums {
        Sums {
            count: self.count.wrapping_add(other.count),
            sum: self.sum.wrapping_add(other.sum),
        }
    }

    /// The change from `old` to `new` of one record.
    pub(crate) fn of_write(tree: u8, key: &[u8], old: Option<&[u8]>, new: Option<&[u8]>) -> Delta {
        let mut delta = Sums::default();
        if let Some(old) = old {
            delta.count = delta.count.wrapping_sub(1);
            delta.sum = delta.sum.wrapping_sub(record_hash(tree, key, old));
        }
        if let Some(new) = new {
            delta.count = delta.count.wrapping_add(1);
            delta.sum = delta.sum.wrapping_add(record_hash(tree, key, new));
        }
        delta
    }

    /// The 16 bytes of a journal record's delta.
    pub(crate) fn to_bytes(self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.count.to_le_bytes());
        out[8..].copy_from_slice(&self.sum.to_le_bytes());
        out
    }

    /// Reads [`to_bytes`](Sums::to_bytes).
    pub(crate) fn from_bytes(bytes: &[u8]) -> Option<Sums> {
        let bytes: &[u8; 16] = bytes.try_into().ok()?;
        Some(Sums {
            count: u64::from_le_bytes(bytes[..8].try_into().ok()?),
            sum: u64::from_le_bytes(bytes[8..].try_into().ok()?),
        })
    }
}

/// A 64-bit hash of one record, stable across versions and platforms (two CRC-32s with
/// different seeds, then a SplitMix64 finaliser so that sums of hashes do not inherit the
/// CRC's linearity).
pub(crate) fn record_hash(tree: u8, key: &[u8], value: &[u8]) -> u64 {
    let feed = |seed: u32| {
        let mut h = crc32fast::Hasher::new_with_initial(seed);
        h.update(&[tree]);
        h.update(&(key.len() as u32).to_le_bytes());
        h.update(key);
        h.update(value);
        h.finalize()
    };
    let mut x = (u64::from(feed(0)) << 32) | u64::from(feed(0x9E37_79B9));
    x ^= x >> 30;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The manifest as read from its file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Manifest {
    /// The journal generation that started when it was written.
    pub(crate) generation: u64,
    /// What sled held then.
    pub(crate) sums: Sums,
}

/// What reading the manifest file found.
#[derive(Debug)]
pub(crate) enum Found {
    /// No file.
    Absent,
    /// A valid manifest.
    Valid(Manifest),
    /// A file that is not a valid manifest (wrong size, magic or checksum).
    Damaged,
}

/// Reads the manifest of the store in `dir`.
pub(crate) fn read(dir: &Path) -> io::Result<Found> {
    let mut file = match File::open(dir.join(FILE_NAME)) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Found::Absent),
        Err(e) => return Err(e),
    };
    let mut bytes = Vec::with_capacity(LEN);
    file.read_to_end(&mut bytes)?;
    if bytes.len() != LEN || &bytes[..8] != MAGIC {
        return Ok(Found::Damaged);
    }
    let crc = u32::from_le_bytes(bytes[32..36].try_into().expect("4 bytes"));
    if crc32fast::hash(&bytes[..32]) != crc {
        return Ok(Found::Damaged);
    }
    let word = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
    Ok(Found::Valid(Manifest {
        generation: word(8),
        sums: Sums {
            count: word(16),
            sum: word(24),
        },
    }))
}

/// Writes the manifest durably: a temporary file, synced, renamed into place, and the
/// directory synced.
pub(crate) fn write(dir: &Path, manifest: Manifest) -> io::Result<()> {
    let mut bytes = [0u8; LEN];
    bytes[..8].copy_from_slice(MAGIC);
    bytes[8..16].copy_from_slice(&manifest.generation.to_le_bytes());
    bytes[16..24].copy_from_slice(&manifest.sums.count.to_le_bytes());
    bytes[24..32].copy_from_slice(&manifest.sums.sum.to_le_bytes());
    let crc = crc32fast::hash(&bytes[..32]);
    bytes[32..].copy_from_slice(&crc.to_le_bytes());
    let temporary = dir.join(format!("{FILE_NAME}.new"));
    {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temporary)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&temporary, dir.join(FILE_NAME))?;
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// The sums kept up to date by every write of an open store.
#[derive(Debug, Default)]
pub(crate) struct Live {
    count: AtomicU64,
    sum: AtomicU64,
}

impl Live {
    /// Starts from `sums`.
    pub(crate) fn set(&self, sums: Sums) {
        self.count.store(sums.count, Ordering::SeqCst);
        self.sum.store(sums.sum, Ordering::SeqCst);
    }

    /// Adds one write's delta.
    pub(crate) fn add(&self, delta: Delta) {
        self.count.fetch_add(delta.count, Ordering::SeqCst);
        self.sum.fetch_add(delta.sum, Ordering::SeqCst);
    }

    /// The sums now (exact when no write is in flight: at a checkpoint).
    pub(crate) fn get(&self) -> Sums {
        Sums {
            count: self.count.load(Ordering::SeqCst),
            sum: self.sum.load(Ordering::SeqCst),
        }
    }
}

/// The sums of every record sled holds: a walk of both trees.
pub(crate) fn scan(contacts: &sled::Tree, senders: &sled::Tree) -> Result<Sums, sled::Error> {
    let mut sums = Sums::default();
    for (tree, tag) in [(contacts, CONTACTS), (senders, SENDERS)] {
        for item in tree.iter() {
            let (k, v) = item?;
            sums = sums.plus(Sums {
                count: 1,
                sum: record_hash(tag, &k, &v),
            });
        }
    }
    Ok(sums)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_add_up_to_the_sums_in_any_order() {
        let a = Sums::of_write(CONTACTS, b"a", None, Some(b"1"));
        let b = Sums::of_write(CONTACTS, b"b", None, Some(b"2"));
        let a2 = Sums::of_write(CONTACTS, b"a", Some(b"1"), Some(b"3"));
        let b_gone = Sums::of_write(CONTACTS, b"b", Some(b"2"), None);
        let total = a.plus(b).plus(a2).plus(b_gone);
        assert_eq!(total, b_gone.plus(a2).plus(a).plus(b));
        assert_eq!(total, Sums::of_write(CONTACTS, b"a", None, Some(b"3")));
        assert_eq!(total.count, 1);
        assert_ne!(
            record_hash(CONTACTS, b"k", b"v"),
            record_hash(SENDERS, b"k", b"v")
        );
        assert_eq!(Sums::from_bytes(&total.to_bytes()), Some(total));
    }

    #[test]
    fn the_file_round_trips_and_damage_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(read(dir.path()).unwrap(), Found::Absent));
        let m = Manifest {
            generation: 7,
            sums: Sums { count: 3, sum: 99 },
        };
        write(dir.path(), m).unwrap();
        assert!(matches!(read(dir.path()).unwrap(), Found::Valid(found) if found == m));
        let path = dir.path().join(FILE_NAME);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[20] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(read(dir.path()).unwrap(), Found::Damaged));
    }
}

//! [`SledError`]: a failure of sled itself, said once, with the advice that fits its cause.

use std::fmt;
use std::path::{Path, PathBuf};

use waguard::{StoreError, StoreErrorKind};

/// What kind of failure a [`SledError`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SledErrorKind {
    /// The operating system refused a file operation (permissions, a path that is not a
    /// directory, no space left, an I/O error of the disk).
    Io,
    /// sled found its own files damaged.
    Corruption,
    /// Anything else sled reports (an unsupported operation, an internal bug).
    Other,
}

/// A failure of sled, as the source of a [`StoreError`](waguard::StoreError): sled's message
/// and what to do about that kind of failure. Downcast a `StoreError`'s source to this type to
/// branch on its [`kind`](SledError::kind).
#[derive(Debug)]
pub struct SledError {
    kind: SledErrorKind,
    opening: bool,
    source: sled::Error,
}

impl SledError {
    /// A failure while opening the store.
    pub(crate) fn opening(source: sled::Error) -> Self {
        Self::new(source, true)
    }

    /// A failure while the store was open.
    pub(crate) fn running(source: sled::Error) -> Self {
        Self::new(source, false)
    }

    fn new(source: sled::Error, opening: bool) -> Self {
        let kind = match &source {
            sled::Error::Io(_) => SledErrorKind::Io,
            sled::Error::Corruption { .. } => SledErrorKind::Corruption,
            _ => SledErrorKind::Other,
        };
        SledError {
            kind,
            opening,
            source,
        }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> SledErrorKind {
        self.kind
    }

    /// sled's own error.
    pub fn sled_error(&self) -> &sled::Error {
        &self.source
    }

    fn advice(&self) -> Option<&'static str> {
        match self.kind {
            SledErrorKind::Io if self.opening => {
                Some("check that the path is a directory this user can read and write")
            }
            SledErrorKind::Io => {
                Some("check the disk: free space, and I/O errors in the system log")
            }
            SledErrorKind::Corruption => Some(
                "its files cannot be opened as they are, not even to accept the loss: restore \
                 the directory from a backup, or import an `export` into a new store",
            ),
            SledErrorKind::Other => None,
        }
    }
}

impl fmt::Display for SledError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            sled::Error::Corruption { at: Some(at), .. } => {
                write!(f, "sled found its data corrupt (at {at:?})")?
            }
            sled::Error::Corruption { at: None, .. } => {
                f.write_str("sled found its data corrupt")?
            }
            other => write!(f, "{other}")?,
        }
        match self.advice() {
            Some(advice) => write!(f, "; {advice}"),
            None => Ok(()),
        }
    }
}

impl std::error::Error for SledError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self.kind {
            // Its text says nothing the message above does not ("Read corrupted data at file
            // offset None backtrace ()"); `sled_error` still has it.
            SledErrorKind::Corruption => None,
            _ => Some(&self.source),
        }
    }
}

/// Why a sled store as a whole is unavailable: the source of a
/// [`StoreError::Unavailable`](waguard::StoreError::Unavailable), with the store's directory
/// and, for a lock, the process holding it. The `StoreError`'s
/// [`kind`](waguard::StoreError::kind) says which of these it is; downcast its source to this
/// type (or call [`StoreUnavailable::of`]) for the details.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreUnavailable {
    /// The store's directory is held by another process, or by another `SledStore` of this
    /// process (sled locks its directory exclusively).
    #[error("the store at {} is already open{}; stop that process or use another path", path.display(), pid.map(|p| format!(" by process {p}")).unwrap_or_else(|| " by another process".into()))]
    Locked {
        /// The store's directory.
        path: PathBuf,
        /// The process holding the lock, when the platform tells (Linux: `/proc/locks`).
        pid: Option<u32>,
        /// sled's error.
        #[source]
        source: sled::Error,
    },
    /// The store could not be opened (missing permissions, not a directory, unreadable
    /// files). The source says why and what to do about that cause.
    #[error("cannot open the store at {}: {source}", path.display())]
    Open {
        /// The store's directory.
        path: PathBuf,
        /// The cause: a [`SledError`], an I/O error, or the journal's error.
        #[source]
        source: waguard::BoxError,
    },
    /// The store stopped and refuses every operation until it is reopened: a write reached
    /// the store's write-ahead journal but failed to apply to sled (a failure midway), or an
    /// `fdatasync` failed (the kernel may have dropped what it could not write, and a later
    /// sync would report success without it). Nothing reads or builds on what may be half
    /// applied or lost; reopening the store replays the journal as it stands on disk, which
    /// applies every journaled write whole. The caller of the failed write cannot know
    /// whether it counts: after the reopen, it counts if the journal holds it.
    #[error("the store at {} stopped ({source}); reopen the store, which replays its journal: every acknowledged write is kept", path.display())]
    Stopped {
        /// The store's directory.
        path: PathBuf,
        /// The failure that stopped the store.
        #[source]
        source: waguard::BoxError,
    },
    /// The store's files do not match what it acknowledged (a damaged, truncated or deleted
    /// file): it refuses to open, so nothing answers from it. The source (a [`DamageReport`]
    /// or a [`SledError`]) names what is missing and the ways out.
    #[error("the store at {} is damaged: {source}", path.display())]
    Damaged {
        /// The store's directory.
        path: PathBuf,
        /// What was found, and the way out.
        #[source]
        source: waguard::BoxError,
    },
}

impl StoreUnavailable {
    /// The [`StoreErrorKind`] this failure is.
    pub fn kind(&self) -> StoreErrorKind {
        match self {
            StoreUnavailable::Locked { .. } => StoreErrorKind::Locked,
            StoreUnavailable::Open { .. } => StoreErrorKind::Open,
            StoreUnavailable::Stopped { .. } => StoreErrorKind::MustReopen,
            StoreUnavailable::Damaged { .. } => StoreErrorKind::Damaged,
        }
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        match self {
            StoreUnavailable::Locked { path, .. }
            | StoreUnavailable::Open { path, .. }
            | StoreUnavailable::Stopped { path, .. }
            | StoreUnavailable::Damaged { path, .. } => path,
        }
    }

    /// The sled failure behind `error`, when `error` is a sled store's
    /// [`StoreError::Unavailable`].
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let _first = waguard_sled::SledStore::open(dir.path()).unwrap();
    /// let err = waguard_sled::SledStore::open(dir.path()).unwrap_err();
    /// let why = waguard_sled::StoreUnavailable::of(&err).unwrap();
    /// assert!(matches!(why, waguard_sled::StoreUnavailable::Locked { .. }));
    /// assert_eq!(why.path(), dir.path());
    /// ```
    pub fn of(error: &StoreError) -> Option<&StoreUnavailable> {
        match error {
            StoreError::Unavailable { source, .. } => source.downcast_ref(),
            _ => None,
        }
    }
}

impl From<StoreUnavailable> for StoreError {
    fn from(failure: StoreUnavailable) -> Self {
        StoreError::unavailable(failure.kind(), failure)
    }
}

/// One kind of damage found when a store opened (see the crate documentation, "Damage").
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Damage {
    /// The records sled's files hold are not the ones the store acknowledged: fewer or more
    /// of them, or as many with other contents (the checksum differs).
    Records {
        /// Records the store acknowledged (its manifest and journal).
        acknowledged: u64,
        /// Records sled's files hold.
        found: u64,
    },
    /// The manifest file (`waguard-manifest`) is not readable, so what the store
    /// acknowledged is unknown.
    Manifest,
    /// The journal file (`waguard-journal`) is missing while the manifest is there: the
    /// writes since the last checkpoint are gone with it.
    JournalMissing,
    /// The journal is damaged before its tail (its header, or a record followed by intact
    /// ones): what it says.
    Journal(String),
    /// The manifest and the journal come from different times (a file restored or copied on
    /// its own).
    Generations {
        /// The journal generation the manifest starts.
        manifest: u64,
        /// The journal's generation.
        journal: u64,
    },
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Damage::Records {
                acknowledged,
                found,
            } if acknowledged > found => write!(
                f,
                "it acknowledged {acknowledged} records and its files hold {found}: {} are missing",
                acknowledged - found
            ),
            Damage::Records {
                acknowledged,
                found,
            } if acknowledged < found => write!(
                f,
                "it acknowledged {acknowledged} records and its files hold {found}, {} more than \
                 it wrote",
                found - acknowledged
            ),
            Damage::Records { found, .. } => write!(
                f,
                "its files hold {found} records, as many as it acknowledged, but not the same \
                 ones (their checksum differs)"
            ),
            Damage::Manifest => f.write_str(
                "its manifest file (waguard-manifest) is unreadable, so what it acknowledged is \
                 unknown",
            ),
            Damage::JournalMissing => f.write_str(
                "its journal file (waguard-journal) is missing, and with it the writes since the \
                 last checkpoint",
            ),
            Damage::Journal(what) => f.write_str(what),
            Damage::Generations { manifest, journal } => write!(
                f,
                "its manifest (generation {manifest}) and its journal (generation {journal}) do \
                 not belong together: one of them was restored or copied on its own"
            ),
        }
    }
}

/// The damage that keeps a store from opening, as the source of
/// [`StoreUnavailable::Damaged`]: what was found and the ways out.
#[derive(Debug)]
pub struct DamageReport {
    damage: Vec<Damage>,
}

impl DamageReport {
    pub(crate) fn new(damage: Vec<Damage>) -> Self {
        DamageReport { damage }
    }

    /// What was found.
    pub fn damage(&self) -> &[Damage] {
        &self.damage
    }
}

impl fmt::Display for DamageReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.damage {
            write!(f, "{d}; ")?;
        }
        f.write_str(
            "nothing answers from it: restore the directory from a backup, or import an \
             `export` into a new store; or accept the loss with `waguard verify --repair` \
             (`Integrity::Accept`), which says what it accepts",
        )
    }
}

impl std::error::Error for DamageReport {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_advice_fits_the_cause() {
        let denied = || {
            sled::Error::Io(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                "denied",
            ))
        };
        let opening = SledError::opening(denied()).to_string();
        assert!(opening.contains("read and write"), "{opening}");
        let running = SledError::running(denied()).to_string();
        assert!(
            running.contains("free space") && !running.contains("directory"),
            "{running}"
        );
        let damaged = SledError::opening(sled::Error::Corruption {
            at: None,
            bt: Default::default(),
        })
        .to_string();
        assert!(
            damaged.contains("corrupt") && damaged.contains("restore"),
            "{damaged}"
        );
        assert!(!damaged.contains("read and write"), "{damaged}");
        assert!(!damaged.contains("retry"), "{damaged}");
    }
}

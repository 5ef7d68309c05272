//! Group commit: concurrent writers share one `fdatasync` of a file ([`GroupSync`]), for the
//! journal and for sled's data file ([`Syncer`]).

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use parking_lot::Mutex;

/// Group commit on one file: every writer takes a ticket once its write is in the file, and a
/// sync covers every ticket taken before it started, so concurrent callers share one
/// `fdatasync`. Used for sled's data file ([`Syncer`]) and for the journal.
///
/// A failed `fdatasync` is final: the kernel may have dropped the dirty pages it could not
/// write and reports the failure once, so a later `fdatasync` can succeed without them on
/// disk. The first failure is kept and every later sync fails with it; only a reopen of the
/// store (which replays what the journal holds on disk) clears it.
pub(crate) struct GroupSync {
    tickets: AtomicU64,
    synced: Mutex<u64>,
    /// Why the first failed sync failed.
    failed: OnceLock<String>,
    /// Test hook: the next sync fails with this error instead of calling `fdatasync`.
    #[cfg(test)]
    pub(crate) fail_next: Mutex<Option<std::io::ErrorKind>>,
}

impl GroupSync {
    pub(crate) fn new() -> Self {
        GroupSync {
            tickets: AtomicU64::new(0),
            synced: Mutex::new(0),
            failed: OnceLock::new(),
            #[cfg(test)]
            fail_next: Mutex::new(None),
        }
    }

    /// Records that a write is in the file; returns its ticket.
    pub(crate) fn wrote(&self) -> u64 {
        self.tickets.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// The newest ticket taken so far.
    pub(crate) fn last(&self) -> u64 {
        self.tickets.load(Ordering::SeqCst)
    }

    /// Makes the writes up to ticket `mine` durable: returns at once if a sync that started
    /// after them already finished, else syncs `file` for every ticket taken so far. Fails
    /// for good once a sync failed (see [`GroupSync`]).
    pub(crate) fn sync_to(&self, file: &File, mine: u64) -> std::io::Result<()> {
        let mut synced = self.synced.lock();
        if let Some(why) = self.failed.get() {
            return Err(std::io::Error::other(format!(
                "an earlier fdatasync of this file failed ({why}), so nothing written since \
                 is known to be on disk"
            )));
        }
        if *synced >= mine {
            return Ok(()); // a sync that started after our write covered it
        }
        let covered = self.tickets.load(Ordering::SeqCst);
        #[cfg(test)]
        let result = match self.fail_next.lock().take() {
            Some(kind) => Err(std::io::Error::new(
                kind,
                "test: injected fdatasync failure",
            )),
            None => file.sync_data(),
        };
        #[cfg(not(test))]
        let result = file.sync_data();
        if let Err(e) = result {
            let _ = self.failed.set(e.to_string());
            return Err(e);
        }
        *synced = covered;
        Ok(())
    }
}

/// `fdatasync` of sled's data file, shared by concurrent callers (group commit).
///
/// sled 0.34's own flush ends its log writes with `sync_file_range` on Linux, which neither
/// flushes the drive's write cache nor the file's metadata: it survives a process crash, not
/// necessarily a power loss. After sled's flush, the store calls `fdatasync` on the data file;
/// a caller whose flush finished before a sync started is covered by it.
pub(crate) struct Syncer {
    file: Option<File>,
    pub(crate) group: GroupSync,
}

impl Syncer {
    pub(crate) fn new(dir: Option<&Path>) -> std::io::Result<Self> {
        let file = match dir {
            Some(dir) => Some(File::open(dir.join("db"))?),
            None => None,
        };
        Ok(Syncer {
            file,
            group: GroupSync::new(),
        })
    }

    /// Makes every sled flush that completed before this call durable.
    pub(crate) fn sync(&self) -> std::io::Result<()> {
        let Some(file) = &self.file else {
            return Ok(()); // temporary store: nothing to keep
        };
        let mine = self.group.wrote();
        self.group.sync_to(file, mine)
    }
}

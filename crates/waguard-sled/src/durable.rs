//! How writes become durable: the `fdatasync` of sled's data file, the journal protocol
//! (append, sync, then apply), checkpoints, and the journal's replay when a store opens.

use std::path::Path;

use waguard::StoreError;

use crate::error::{Damage, DamageReport};
use crate::journal::{self, Journal, JournalError, Op};
use crate::manifest::{self, Delta};
use crate::{backend, open_error, Durability, Integrity, SledOptions, SledStore, StoreUnavailable};

/// What makes a write whole after a crash, for the code that applies it to sled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Covered {
    /// The journal holds the whole write and a reopen replays it, so sled may apply it one key
    /// at a time.
    ByJournal,
    /// Nothing else holds it (no journal, or a write larger than the journal): sled must
    /// apply a multi-key write atomically itself.
    BySled,
}

impl SledStore {
    /// Opens the journal, applies what it holds of writes sled may have lost in a crash,
    /// checks the records against the manifest (see [`Integrity`]), makes the result durable
    /// in sled and starts the journal over. `fresh`: sled's data file did not exist.
    pub(crate) fn open_journal(
        mut self,
        path: &Path,
        options: &SledOptions,
        fresh: bool,
    ) -> Result<Self, StoreError> {
        let integrity = options.integrity;
        let capacity = options.journal_capacity.max(64 * 1024);
        let tolerant = matches!(integrity, Integrity::Report | Integrity::Accept);
        let read_only = integrity == Integrity::Report;
        let keeps_manifest = integrity != Integrity::Off;
        let open_io = |source: std::io::Error| {
            StoreError::from(StoreUnavailable::Open {
                path: path.to_path_buf(),
                source: Box::new(source),
            })
        };
        let journal_error = |source: JournalError| {
            StoreError::from(match source {
                JournalError::Io { .. } => StoreUnavailable::Open {
                    path: path.to_path_buf(),
                    source: Box::new(source),
                },
                damaged => StoreUnavailable::Damaged {
                    path: path.to_path_buf(),
                    source: Box::new(DamageReport::new(vec![Damage::Journal(
                        damaged.to_string(),
                    )])),
                },
            })
        };
        let mut damage = Vec::new();
        let stored = if keeps_manifest {
            manifest::read(path).map_err(open_io)?
        } else {
            // A store that keeps no manifest would let it fall behind its journal: it goes,
            // and the next open that keeps one builds it from what sled holds then.
            match std::fs::remove_file(path.join(manifest::FILE_NAME)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(open_io(e)),
                _ => {}
            }
            manifest::Found::Absent
        };
        if matches!(stored, manifest::Found::Damaged) {
            damage.push(Damage::Manifest);
        }
        let opened = Journal::open(path, capacity, tolerant, read_only).map_err(|e| {
            // Nothing of this open may be checkpointed over the evidence.
            self.read_only = true;
            journal_error(e)
        })?;
        if let Some(found) = &opened.damage {
            damage.push(Damage::Journal(found.to_string()));
        }
        let mut deltas = Some(manifest::Sums::default());
        let mut maybes = Vec::new();
        for payload in &opened.replay {
            if let Some(maybe) = journal::maybe_delta(payload) {
                maybes.push(maybe);
                continue;
            }
            // Checked by `Journal::open`.
            for op in journal::parse(payload).unwrap_or_default() {
                let tree = match op.tree {
                    journal::Tree::Contacts => &self.contacts,
                    journal::Tree::Senders => &self.senders,
                    journal::Tree::Registry => &self.registry,
                };
                match op.value {
                    Some(value) => tree.insert(op.key, value).map(drop),
                    None => tree.remove(op.key).map(drop),
                }
                .map_err(|e| open_error(path, e))?;
            }
            deltas = deltas.and_then(|d| journal::delta(payload).map(|x| d.plus(x)));
        }
        // What the store acknowledged, when the manifest and the journal tell.
        let acknowledged = match (&stored, &opened.journal) {
            (manifest::Found::Valid(m), Some(journal)) if opened.damage_free() => {
                let generation = journal.generation();
                if opened.created && !fresh {
                    damage.push(Damage::JournalMissing);
                    None
                } else if m.generation == generation {
                    deltas.map(|d| m.sums.plus(d))
                } else if m.generation == journal::next_generation(generation) {
                    // A checkpoint stopped between writing the manifest and starting the
                    // journal over: the manifest counts the records replayed.
                    Some(m.sums)
                } else {
                    damage.push(Damage::Generations {
                        manifest: m.generation,
                        journal: generation,
                    });
                    None
                }
            }
            _ => None,
        };
        // A write sled applied by itself counts or not, as sled kept it.
        let alternatives: Vec<manifest::Sums> = acknowledged
            .map(|base| {
                let all = maybes.iter().fold(base, |sum, m| sum.plus(*m));
                std::iter::once(all)
                    .chain(maybes.iter().map(|m| base.plus(*m)))
                    .collect()
            })
            .unwrap_or_default();
        let found = match acknowledged {
            Some(sums) if integrity == Integrity::Trust && maybes.is_empty() => Some(sums),
            _ if keeps_manifest => Some(
                manifest::scan(&self.contacts, &self.senders).map_err(|e| open_error(path, e))?,
            ),
            _ => None,
        };
        if let (Some(acknowledged), Some(found)) = (acknowledged, found) {
            if acknowledged != found && !alternatives.contains(&found) {
                damage.push(Damage::Records {
                    acknowledged: acknowledged.count,
                    found: found.count,
                });
            }
        }
        self.recovered_writes = opened.replay.len();
        if !damage.is_empty() && !tolerant {
            self.read_only = true;
            return Err(StoreUnavailable::Damaged {
                path: path.to_path_buf(),
                source: Box::new(DamageReport::new(damage)),
            }
            .into());
        }
        let replayed = !opened.replay.is_empty();
        self.journal = opened.journal;
        if let Some(found) = found {
            let live = manifest::Live::default();
            live.set(found);
            self.manifest = Some(live);
        }
        self.damage = damage;
        if read_only {
            self.read_only = true;
            return Ok(self);
        }
        // Make what was replayed durable in sled and record the manifest that matches it.
        let needs_manifest = keeps_manifest
            && (!matches!(stored, manifest::Found::Valid(_)) || !self.damage.is_empty());
        if replayed || needs_manifest {
            self.checkpoint("open")?;
        }
        Ok(self)
    }

    /// Whether single-key writes must be durable on return.
    pub(crate) fn single_writes_durable(&self) -> bool {
        matches!(self.durability, Durability::EachWrite)
    }

    /// sled's flush and the `fdatasync` of its data file. Synchronous on purpose: not sled's
    /// `flush_async`, which runs on sled's own small thread pool that also writes the log
    /// buffers, so enough concurrent `flush_async` calls occupy every pool thread waiting for
    /// a write no thread is left to do (a deadlock seen with 8 tasks).
    pub(crate) fn flush_sled(&self, operation: &'static str) -> Result<(), StoreError> {
        self.db.flush().map_err(|e| backend(operation, None, e))?;
        self.syncer
            .sync()
            .map_err(|e| self.stop(Stop::Sync, Box::new(e)))
    }

    /// Writes `ops` (which change the manifest's sums by `delta`) through the journal, then
    /// runs `apply` (which makes the same change in
    /// sled), telling it whether the journal holds the write; `durable`: the journal is
    /// synced before `apply`. Call with the locks that order writes to these keys held.
    /// Without a journal, `apply` then (if `durable`) a sled flush.
    ///
    /// If `apply` fails after the journal took the record, the write is still replayed when
    /// the store is next opened: like any commit that fails at the last step, its outcome is
    /// unknown to the caller.
    pub(crate) fn journaled<T>(
        &self,
        ops: &[Op<'_>],
        delta: Delta,
        durable: bool,
        operation: &'static str,
        apply: impl FnOnce(Covered) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        // Checked again here, under the caller's key locks: a writer that passed the check at
        // its start may have waited for the stripe of a batch that then failed, and must not
        // write over that batch's unapplied keys.
        self.usable()?;
        if self.read_only {
            return Err(self.read_only_error(operation));
        }
        let journal_error = |e: JournalError| StoreError::backend(operation, None, e);
        let Some(journal) = &self.journal else {
            let out = apply(Covered::BySled)?;
            if durable {
                self.flush_sled(operation)?;
            }
            return Ok(out);
        };
        if !journal.fits_when_empty(ops) {
            // Larger than the whole journal: straight into sled, then a checkpoint, with every
            // other journaled write kept out meanwhile.
            let _gate = self.checkpoint_gate.write();
            if self.manifest.is_some() {
                // sled may hold the write after a crash before the checkpoint, or not: the
                // journal says the delta may count.
                if journal.append_maybe(delta).map_err(journal_error)?.is_err() {
                    self.checkpoint_locked(operation)?;
                    let _ = journal.append_maybe(delta).map_err(journal_error)?;
                }
                journal
                    .sync()
                    .map_err(|e| self.stop(Stop::Sync, Box::new(e)))?;
            }
            let out = apply(Covered::BySled)?;
            if let Some(live) = &self.manifest {
                live.add(delta);
            }
            self.checkpoint_locked(operation)?;
            return Ok(out);
        }
        let kept = self.manifest.as_ref().map(|_| delta);
        loop {
            let gate = self.checkpoint_gate.read();
            if journal.append(ops, kept).map_err(journal_error)?.is_ok() {
                if let Some(live) = &self.manifest {
                    // Under the gate: a checkpoint sees every write's delta or none of it.
                    live.add(delta);
                }
                if durable {
                    journal
                        .sync()
                        .map_err(|e| self.stop(Stop::Sync, Box::new(e)))?;
                }
                let out = apply(Covered::ByJournal);
                drop(gate);
                return out.map_err(|e| self.stop(Stop::Apply, backend_source(e)));
            }
            drop(gate);
            self.checkpoint(operation)?;
        }
    }

    /// Stops the store, after a journaled write failed to apply to sled ([`Stop::Apply`]: sled
    /// may hold part of it, as a batch applies key by key, and a write built on that would be
    /// journaled after it and replayed over it, leaving the part for good) or after a failed
    /// `fdatasync` ([`Stop::Sync`]: the kernel may have dropped pages it could not write, and
    /// a later `fdatasync` would report success without them). From now on every operation
    /// fails and the close skips its checkpoint, so the journal keeps what it holds and the
    /// next open replays it.
    pub(crate) fn stop(&self, why: Stop, cause: waguard::BoxError) -> StoreError {
        let stopped = Stopped { why, cause };
        let _ = self.stopped.set(stopped.to_string());
        StoreUnavailable::Stopped {
            path: self.path.clone().unwrap_or_default(),
            source: Box::new(stopped),
        }
        .into()
    }

    /// The change a write from `old` to `new` of `key` in `tree` makes to the manifest's sums
    /// (nothing to compute when the store keeps no manifest).
    pub(crate) fn delta(
        &self,
        tree: journal::Tree,
        key: &[u8],
        old: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Delta {
        if self.manifest.is_none() {
            return Delta::default();
        }
        let tag = match tree {
            journal::Tree::Contacts => manifest::CONTACTS,
            journal::Tree::Senders => manifest::SENDERS,
            // The manifest counts contact and sender records only.
            journal::Tree::Registry => return Delta::default(),
        };
        Delta::of_write(tag, key, old, new)
    }

    /// The error of a write to a store opened read-only.
    pub(crate) fn read_only_error(&self, operation: &'static str) -> StoreError {
        StoreError::backend(
            operation,
            None,
            "the store was opened to verify it (Integrity::Report) and takes no write; reopen \
             it with another Integrity to write",
        )
    }

    /// `Err(MustReopen)` once the store has stopped (see [`stop`](SledStore::stop)). Called
    /// once at the start of every operation, reads included (an update whose closure keeps
    /// the record is a read too), and again by [`journaled`](SledStore::journaled) under the
    /// writer's key locks.
    pub(crate) fn usable(&self) -> Result<(), StoreError> {
        match self.stopped.get() {
            None => Ok(()),
            Some(why) => Err(StoreUnavailable::Stopped {
                path: self.path.clone().unwrap_or_default(),
                source: why.clone().into(),
            }
            .into()),
        }
    }

    /// Makes sled hold every journaled write durably and starts the journal over.
    pub(crate) fn checkpoint(&self, operation: &'static str) -> Result<(), StoreError> {
        let _gate = self.checkpoint_gate.write();
        self.checkpoint_locked(operation)
    }

    pub(crate) fn checkpoint_locked(&self, operation: &'static str) -> Result<(), StoreError> {
        if self.read_only {
            return Err(self.read_only_error(operation));
        }
        self.flush_sled(operation)?;
        if let Some(journal) = &self.journal {
            // The manifest of the generation about to start describes sled as it is now; a
            // crash before the restart below leaves it one generation ahead of the journal,
            // which the next open recognises.
            if let (Some(live), Some(path)) = (&self.manifest, &self.path) {
                let manifest = manifest::Manifest {
                    generation: journal.next_generation(),
                    sums: live.get(),
                };
                manifest::write(path, manifest).map_err(|e| self.stop(Stop::Sync, Box::new(e)))?;
            }
            journal
                .restart()
                .map_err(|e| self.stop(Stop::Sync, Box::new(e)))?;
        }
        Ok(())
    }
}

/// Why a store stopped (see [`SledStore::stop`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    /// A journaled write failed to apply to sled.
    Apply,
    /// An `fdatasync` failed.
    Sync,
}

/// The cause of a stop, as [`StoreUnavailable::Stopped`] shows it.
#[derive(Debug, thiserror::Error)]
#[error("{}: {cause}", match why {
    Stop::Apply => "a write reached the journal but failed to apply",
    Stop::Sync => "an fdatasync failed, so recent writes may not be on disk",
})]
pub(crate) struct Stopped {
    why: Stop,
    cause: waguard::BoxError,
}

/// The backend's own error out of a `Backend` wrapper, whose advice ("not applied, retry") is
/// wrong for a write the journal holds.
fn backend_source(failure: StoreError) -> waguard::BoxError {
    match failure {
        StoreError::Backend { source, .. } => source,
        other => Box::new(other),
    }
}

/// A clean close checkpoints: sled is flushed and the journal starts over, so the next open
/// has nothing to replay. Errors are ignored here: the journal still holds every write then,
/// and the next open replays it.
impl Drop for SledStore {
    fn drop(&mut self) {
        // A stopped store keeps its journal for the next open to replay.
        if self.journal.is_some() && self.stopped.get().is_none() && !self.read_only {
            let _ = self.checkpoint("close");
        }
    }
}

#[cfg(test)]
mod tests;

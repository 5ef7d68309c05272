//! The contact record cache: recently read or written contact records, in memory, in front of
//! the `contacts` tree.
//!
//! Why: a `check` is one contact read, and sled's `get` walks its tree of pages through a page
//! table, an LRU and a binary search per level (about 3 000 instructions, 0.5 µs at 10 000
//! contacts and 3 µs at a million, measured in `docs/performance.md`). A hash table lookup
//! of the same key costs a tenth of that. The store is the only writer of its trees (sled locks
//! the directory against other processes, and [`SledStore::sled_db`](crate::SledStore::sled_db)
//! says not to write them), so a cache it updates on every write stays exact.
//!
//! Coherence, in two rules:
//! 1. Every write of a contact record, with the key's stripe held, writes sled first and then
//!    [`put`](RecordCache::put)s the new record (or its absence) here, bumping the shard's
//!    write count. A write that fails midway removes the key instead.
//! 2. A read that missed fills the cache with what it read from sled only if no write reached
//!    the shard since the miss ([`Ticket`]): if one did, what the read saw may be older than
//!    what that write put here, and the fill is dropped.
//!
//! So an entry is always the record sled holds, or one a write is about to replace while
//! holding its stripe. When a shard outgrows its share of the budget it drops a random half
//! of its entries: cheaper than tracking recency, and it never empties the whole cache.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

use hashbrown::HashTable;
use parking_lot::RwLock;
use waguard::KeyedRecord;

/// Shards of the cache, each under its own lock.
const SHARDS: usize = 64;

/// What an entry costs beyond its allocation: its table slot and the allocator's rounding,
/// about.
const ENTRY_OVERHEAD: usize = 36;

/// An entry's share of the budget.
fn cost(entry: &KeyedRecord) -> usize {
    entry.heap_bytes() + ENTRY_OVERHEAD
}

#[derive(Default)]
struct Shard {
    table: HashTable<KeyedRecord>,
    /// Sum of the entries' costs.
    bytes: usize,
    /// Writes that reached this shard so far (rule 2 above).
    writes: u64,
    /// Lookups that found their record, and those that did not (counted under the read
    /// lock, so atomics; one pair per shard keeps threads off each other's cache lines).
    hits: AtomicU64,
    misses: AtomicU64,
}

/// What the contact record cache holds ([`SledStore::record_cache_usage`](crate::SledStore::record_cache_usage)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheUsage {
    /// Contact records in the cache.
    pub records: usize,
    /// Their estimated memory: key and record bytes plus a fixed cost per entry for its
    /// table slot and allocation. Stays within [`SledOptions::record_cache`](crate::SledOptions::record_cache).
    pub bytes: usize,
    /// Lookups since the store was opened that found their record in the cache: reads, and
    /// the reads of updates and batches. (None while the cache is off.)
    pub hits: u64,
    /// Lookups since the store was opened that went to sled. `hits / (hits + misses)` is the
    /// figure to size the cache by.
    pub misses: u64,
}

/// Handed out by a miss: lets the reader fill the entry unless a write came in between.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ticket {
    writes: u64,
}

/// The outcome of [`RecordCache::read`].
pub(crate) enum Cached<R> {
    /// The record was cached; the closure ran on it.
    Hit(R),
    /// Not cached: read sled, then [`fill`](RecordCache::fill) with this ticket.
    Miss(Ticket),
}

/// See the module documentation.
pub(crate) struct RecordCache {
    hasher: foldhash::fast::RandomState,
    /// Bytes per shard; 0: the cache is off.
    shard_budget: usize,
    shards: Box<[RwLock<Shard>]>,
}

impl RecordCache {
    /// A cache of about `budget` bytes (0: off; every read misses and nothing is kept).
    pub(crate) fn new(budget: u64) -> Self {
        let budget = usize::try_from(budget).unwrap_or(usize::MAX);
        RecordCache {
            hasher: foldhash::fast::RandomState::default(),
            shard_budget: budget / SHARDS,
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
        }
    }

    /// The hash of a storage key, computed once per operation: the store also picks the key's
    /// stripe from it.
    pub(crate) fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    fn shard(&self, hash: u64) -> &RwLock<Shard> {
        // hashbrown takes the low bits (bucket) and the top seven (tag): pick the shard from
        // the middle, so that the two do not correlate.
        &self.shards[(hash >> 40) as usize % SHARDS]
    }

    /// Runs `f` on the cached record of `key` (under the shard's read lock: keep `f` short and
    /// never call the store from it), or says where to fill it after reading sled.
    pub(crate) fn read<R>(&self, key: &[u8], hash: u64, f: impl FnOnce(&[u8]) -> R) -> Cached<R> {
        if self.shard_budget == 0 {
            // Off: nothing is ever cached, so no lock to take (and `fill` keeps nothing).
            return Cached::Miss(Ticket { writes: 0 });
        }
        let shard = self.shard(hash).read();
        match shard.table.find(hash, |e| e.key() == key) {
            Some(entry) => {
                shard.hits.fetch_add(1, Ordering::Relaxed);
                Cached::Hit(f(entry.record()))
            }
            None => {
                shard.misses.fetch_add(1, Ordering::Relaxed);
                Cached::Miss(Ticket {
                    writes: shard.writes,
                })
            }
        }
    }

    /// Caches `record`, read from sled after the miss that gave `ticket`, unless a write
    /// reached the shard since (its record may be newer than what was read).
    pub(crate) fn fill(&self, key: &[u8], hash: u64, ticket: Ticket, record: &[u8]) {
        if self.shard_budget == 0 {
            return;
        }
        let mut shard = self.shard(hash).write();
        if shard.writes != ticket.writes {
            return;
        }
        if shard.table.find(hash, |e| e.key() == key).is_none() {
            self.insert(&mut shard, hash, KeyedRecord::new(key, record));
        }
    }

    /// Records a write of `key` (whose [`hash`](RecordCache::hash) is `hash`): its new record,
    /// or `None` when it was deleted or when the write failed and sled's state of the key is
    /// unknown. Call after the write reached sled, with the key's stripe still held.
    pub(crate) fn put(&self, key: &[u8], hash: u64, record: Option<&[u8]>) {
        let mut shard = self.shard(hash).write();
        shard.writes += 1;
        if let Ok(old) = shard.table.find_entry(hash, |e| e.key() == key) {
            let (old, _) = old.remove();
            shard.bytes -= cost(&old);
        }
        if let Some(record) = record {
            if self.shard_budget > 0 {
                self.insert(&mut shard, hash, KeyedRecord::new(key, record));
            }
        }
    }

    /// Inserts an entry known to be absent, first evicting every other entry of the shard
    /// (or all of them, if need be) when it would outgrow its budget; an entry larger than the
    /// whole budget is not kept.
    fn insert(&self, shard: &mut Shard, hash: u64, entry: KeyedRecord) {
        let needed = cost(&entry);
        if needed > self.shard_budget {
            return;
        }
        if shard.bytes + needed > self.shard_budget {
            // Every other entry in table order, which is unrelated to when or how often they
            // were used: a random half, without keeping recency. The shard then holds half its
            // budget and fills for as many inserts again, so each insert pays for evicting
            // about one entry, and a working set larger than the cache still finds 50 to 100%
            // of the budget's worth of entries in it.
            let mut keep = false;
            let mut bytes = 0;
            shard.table.retain(|e| {
                keep = !keep;
                bytes += if keep { cost(e) } else { 0 };
                keep
            });
            shard.bytes = bytes;
            if shard.bytes + needed > self.shard_budget {
                shard.table.clear();
                shard.bytes = 0;
            }
        }
        shard.bytes += needed;
        let hasher = |e: &KeyedRecord| self.hasher.hash_one(e.key());
        shard.table.insert_unique(hash, entry, hasher);
    }

    /// Entries and their cost, over every shard.
    pub(crate) fn usage(&self) -> CacheUsage {
        self.shards.iter().fold(CacheUsage::default(), |sum, s| {
            let s = s.read();
            CacheUsage {
                records: sum.records + s.table.len(),
                bytes: sum.bytes + s.bytes,
                hits: sum.hits + s.hits.load(Ordering::Relaxed),
                misses: sum.misses + s.misses.load(Ordering::Relaxed),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cached(cache: &RecordCache, key: &[u8]) -> Option<Vec<u8>> {
        match cache.read(key, cache.hash(key), <[u8]>::to_vec) {
            Cached::Hit(v) => Some(v),
            Cached::Miss(_) => None,
        }
    }

    fn miss(cache: &RecordCache, key: &[u8]) -> Ticket {
        match cache.read(key, cache.hash(key), |_| ()) {
            Cached::Hit(()) => panic!("{key:?} is cached"),
            Cached::Miss(ticket) => ticket,
        }
    }

    #[test]
    fn writes_replace_and_delete_entries() {
        let cache = RecordCache::new(1 << 20);
        cache.put(b"a", cache.hash(b"a"), Some(b"one"));
        assert_eq!(cached(&cache, b"a").as_deref(), Some(&b"one"[..]));
        cache.put(b"a", cache.hash(b"a"), Some(b"two"));
        assert_eq!(cached(&cache, b"a").as_deref(), Some(&b"two"[..]));
        assert_eq!(cache.usage().records, 1);
        cache.put(b"a", cache.hash(b"a"), None);
        assert_eq!(cached(&cache, b"a"), None);
        // The first two lookups found the key, the last one did not.
        let usage = cache.usage();
        assert_eq!((usage.records, usage.bytes), (0, 0));
        assert_eq!((usage.hits, usage.misses), (2, 1));
    }

    #[test]
    fn a_fill_after_a_write_to_its_shard_is_dropped() {
        let cache = RecordCache::new(1 << 20);
        // A read misses, then reads sled (the old record), then a write lands: the read's
        // fill would put the old record back over the write's.
        let ticket = miss(&cache, b"k");
        cache.put(b"k", cache.hash(b"k"), Some(b"new"));
        cache.fill(b"k", cache.hash(b"k"), ticket, b"old");
        assert_eq!(cached(&cache, b"k").as_deref(), Some(&b"new"[..]));
        // Also when the write deleted the key.
        cache.put(b"k", cache.hash(b"k"), None);
        let ticket = miss(&cache, b"k");
        cache.put(b"k", cache.hash(b"k"), None);
        cache.fill(b"k", cache.hash(b"k"), ticket, b"old");
        assert_eq!(cached(&cache, b"k"), None);
        // Without a write in between, the fill stays.
        let ticket = miss(&cache, b"k");
        cache.fill(b"k", cache.hash(b"k"), ticket, b"current");
        assert_eq!(cached(&cache, b"k").as_deref(), Some(&b"current"[..]));
    }

    /// One step of the model test below.
    #[derive(Clone, Debug)]
    enum Step {
        /// A store write: the tree, then the cache, in one step (the key's stripe is held).
        Write(u8, Option<u8>),
        /// Reader `r` looks `key` up; on a miss it holds a ticket.
        Look(usize, u8),
        /// Reader `r` reads the tree after its miss.
        ReadTree(usize),
        /// Reader `r` fills the cache with what it read.
        Fill(usize),
    }

    /// A reader of the model test: the key and ticket of its miss, then what it read.
    #[derive(Clone, Copy, Default)]
    struct ModelReader {
        miss: Option<(u8, Ticket)>,
        read: Option<Option<u8>>,
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        prop_oneof![
            (0..6u8, proptest::option::of(any::<u8>())).prop_map(|(k, v)| Step::Write(k, v)),
            (0..3usize, 0..6u8).prop_map(|(r, k)| Step::Look(r, k)),
            (0..3usize).prop_map(Step::ReadTree),
            (0..3usize).prop_map(Step::Fill),
        ]
    }

    proptest::proptest! {
        /// Against a model of the tree, whatever the interleaving of writes and of three
        /// readers' miss, tree read and fill: every cached record is the tree's, at every
        /// step. With one shard's worth of budget, evictions happen too.
        #[test]
        fn a_cached_record_is_always_the_trees(
            steps in proptest::collection::vec(step(), 1..200),
            budget in proptest::sample::select(vec![0u64, 64 * 60, 1 << 20]),
        ) {
            let cache = RecordCache::new(budget);
            let mut tree: std::collections::HashMap<u8, u8> = Default::default();
            let mut readers: [ModelReader; 3] = Default::default();
            for step in steps {
                match step {
                    Step::Write(k, v) => {
                        match v {
                            Some(v) => tree.insert(k, v),
                            None => tree.remove(&k),
                        };
                        cache.put(&[k], cache.hash(&[k]), v.as_ref().map(std::slice::from_ref));
                    }
                    Step::Look(r, k) => match cache.read(&[k], cache.hash(&[k]), <[u8]>::to_vec) {
                        Cached::Hit(v) => proptest::prop_assert_eq!(Some(&v[0]), tree.get(&k)),
                        Cached::Miss(ticket) => {
                            readers[r] = ModelReader { miss: Some((k, ticket)), read: None }
                        }
                    },
                    Step::ReadTree(r) => {
                        if let Some((k, _)) = readers[r].miss {
                            readers[r].read = Some(tree.get(&k).copied());
                        }
                    }
                    Step::Fill(r) => {
                        if let ModelReader { miss: Some((k, ticket)), read: Some(Some(v)) } = readers[r] {
                            cache.fill(&[k], cache.hash(&[k]), ticket, &[v]);
                        }
                        readers[r] = Default::default();
                    }
                }
                for k in 0..6u8 {
                    if let Cached::Hit(v) = cache.read(&[k], cache.hash(&[k]), <[u8]>::to_vec) {
                        proptest::prop_assert_eq!(Some(&v[0]), tree.get(&k), "key {}", k);
                    }
                }
            }
        }
    }

    #[test]
    fn the_budget_bounds_the_cache_and_zero_turns_it_off() {
        let budget = 64 * 1024;
        let cache = RecordCache::new(budget);
        for i in 0..10_000u32 {
            cache.put(
                &i.to_le_bytes(),
                cache.hash(&i.to_le_bytes()),
                Some(&[7; 30]),
            );
        }
        let CacheUsage { records, bytes, .. } = cache.usage();
        assert!(
            bytes as u64 <= budget,
            "{bytes} bytes over a budget of {budget}"
        );
        assert!(records > 0 && records < 10_000, "{records} records");
        // Every entry costs the same here, so the accounting must be exact...
        let each = 4 + 4 + 30 + ENTRY_OVERHEAD;
        assert_eq!(bytes, records * each);
        // ...and eviction drops half a shard at a time, never the whole cache: at least half
        // the budget stays in use (less one entry per shard for rounding).
        assert!(
            bytes as u64 >= budget / 2 - (SHARDS * each) as u64,
            "{bytes} bytes in use of {budget}"
        );
        // The last write is always there (its shard made room before it).
        assert!(cached(&cache, &9_999u32.to_le_bytes()).is_some());

        let off = RecordCache::new(0);
        off.put(b"a", off.hash(b"a"), Some(b"one"));
        let ticket = miss(&off, b"a");
        off.fill(b"a", off.hash(b"a"), ticket, b"one");
        assert_eq!(cached(&off, b"a"), None);
        assert_eq!(off.usage(), CacheUsage::default());
    }
}

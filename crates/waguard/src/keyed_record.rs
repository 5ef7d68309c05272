//! [`KeyedRecord`]: a storage key and its record in one allocation, for in-process stores and
//! caches.

/// A contact's storage key and its record bytes in one heap block: `[key length: u32 LE]
/// [key][record]`. A hash table of these compares the key and reads the record in one
/// allocation, where a `(key, record)` pair of vectors would touch two or three: with millions
/// of contacts each is a cache miss. [`MemoryStore`](crate::MemoryStore) holds its contacts
/// this way, and so does the sled store's record cache.
///
/// ```
/// use waguard::KeyedRecord;
/// let entry = KeyedRecord::new(b"100000001/p:33612345678", b"record");
/// assert_eq!(entry.key(), b"100000001/p:33612345678");
/// assert_eq!(entry.record(), b"record");
/// assert_eq!(entry.heap_bytes(), 4 + 23 + 6);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct KeyedRecord(Box<[u8]>);

impl KeyedRecord {
    /// Copies `key` and `record` into one allocation.
    ///
    /// # Panics
    ///
    /// If `key` is 4 GiB or longer (its length would not fit the prefix). Storage keys are a
    /// few hundred bytes at most: their ids are validated when parsed.
    pub fn new(key: &[u8], record: &[u8]) -> KeyedRecord {
        let len = u32::try_from(key.len()).expect("a storage key shorter than 4 GiB");
        let mut bytes = Vec::with_capacity(4 + key.len() + record.len());
        bytes.extend_from_slice(&len.to_le_bytes());
        bytes.extend_from_slice(key);
        bytes.extend_from_slice(record);
        KeyedRecord(bytes.into_boxed_slice())
    }

    /// The key and the record.
    #[inline]
    pub fn split(&self) -> (&[u8], &[u8]) {
        let (len, rest) = self.0.split_at(4);
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
        rest.split_at(len)
    }

    /// The storage key.
    #[inline]
    pub fn key(&self) -> &[u8] {
        self.split().0
    }

    /// The record bytes.
    #[inline]
    pub fn record(&self) -> &[u8] {
        self.split().1
    }

    /// Bytes of the allocation: both lengths and a 4-byte prefix.
    pub fn heap_bytes(&self) -> usize {
        self.0.len()
    }
}

impl std::fmt::Debug for KeyedRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedRecord")
            .field("key", &String::from_utf8_lossy(self.key()))
            .field("record_len", &self.record().len())
            .finish()
    }
}

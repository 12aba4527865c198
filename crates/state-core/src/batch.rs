//! [`WriteBatch`]: the unit of atomic write every backend accepts.

/// One operation of a [`WriteBatch`], borrowed from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchOp<'a> {
    /// Column family name.
    pub cf: &'a str,
    /// Full key bytes.
    pub key: &'a [u8],
    /// `Some(value)` for a put, `None` for a delete.
    pub value: Option<&'a [u8]>,
    /// A hint on a put: the writer knows the key has no committed value in
    /// the partition (see [`WriteBatch::put_new`]). Always `false` on
    /// deletes. Backends may ignore it; a caching layer may use it to drop
    /// a later delete of the key instead of writing put and delete.
    pub new_key: bool,
}

#[derive(Clone, Copy, Debug)]
struct OpIndex {
    cf: u32,
    start: usize,
    key_len: u32,
    /// `u32::MAX` marks a delete.
    value_len: u32,
    new_key: bool,
}

const DELETE: u32 = u32::MAX;

/// An ordered list of puts and deletes over any column families, plus an
/// optional changelog offset, that a backend applies atomically: after a
/// crash either all of it is visible or none of it.
///
/// Operations apply in order, so a later operation on the same key wins.
/// Keys and values are copied into one contiguous buffer, so building a
/// batch costs one copy and amortised allocations; [`WriteBatch::clear`]
/// keeps the buffers for reuse, and so does [`Clone::clone_from`].
#[derive(Debug, Default)]
pub struct WriteBatch {
    data: Vec<u8>,
    ops: Vec<OpIndex>,
    cfs: Vec<String>,
    changelog_offset: Option<u64>,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty batch with room for `ops` operations of `bytes` total size.
    pub fn with_capacity(ops: usize, bytes: usize) -> Self {
        WriteBatch {
            data: Vec::with_capacity(bytes),
            ops: Vec::with_capacity(ops),
            cfs: Vec::new(),
            changelog_offset: None,
        }
    }

    fn cf_index(&mut self, cf: &str) -> u32 {
        match self.cfs.iter().position(|c| c == cf) {
            Some(i) => i as u32,
            None => {
                self.cfs.push(cf.to_owned());
                (self.cfs.len() - 1) as u32
            }
        }
    }

    /// Appends a put of `key = value` in `cf`.
    ///
    /// # Panics
    /// If a key or value is 4 GiB or larger.
    pub fn put(&mut self, cf: &str, key: &[u8], value: &[u8]) {
        self.put_with(cf, key, value, false);
    }

    /// Appends a put of `key = value` in `cf` that the caller knows creates
    /// the key: `key` has no committed value in the partition the batch is
    /// written to. Backends treat it as [`put`](Self::put); a write-behind
    /// cache uses it so that the key, if deleted before the cache is
    /// flushed, leaves no trace in the partition below. A wrong hint can
    /// resurrect a deleted value there, so give it only when sure.
    ///
    /// # Panics
    /// If a key or value is 4 GiB or larger.
    pub fn put_new(&mut self, cf: &str, key: &[u8], value: &[u8]) {
        self.put_with(cf, key, value, true);
    }

    fn put_with(&mut self, cf: &str, key: &[u8], value: &[u8], new_key: bool) {
        assert!(
            value.len() < DELETE as usize && key.len() < u32::MAX as usize,
            "key or value of 4 GiB or more"
        );
        let cf = self.cf_index(cf);
        let start = self.data.len();
        self.data.extend_from_slice(key);
        self.data.extend_from_slice(value);
        self.ops.push(OpIndex {
            cf,
            start,
            key_len: key.len() as u32,
            value_len: value.len() as u32,
            new_key,
        });
    }

    /// Appends a delete of `key` in `cf`.
    pub fn delete(&mut self, cf: &str, key: &[u8]) {
        assert!(key.len() < u32::MAX as usize, "key of 4 GiB or more");
        let cf = self.cf_index(cf);
        let start = self.data.len();
        self.data.extend_from_slice(key);
        self.ops.push(OpIndex {
            cf,
            start,
            key_len: key.len() as u32,
            value_len: DELETE,
            new_key: false,
        });
    }

    /// Appends a put or delete.
    pub fn push(&mut self, cf: &str, key: &[u8], value: Option<&[u8]>) {
        match value {
            Some(v) => self.put(cf, key, v),
            None => self.delete(cf, key),
        }
    }

    /// Sets the changelog offset the backend stores atomically with the
    /// batch (in `__metadata__`, key `__changelog_offset__`).
    pub fn set_changelog_offset(&mut self, offset: u64) {
        self.changelog_offset = Some(offset);
    }

    /// The changelog offset carried by this batch, if any.
    pub fn changelog_offset(&self) -> Option<u64> {
        self.changelog_offset
    }

    /// Number of put/delete operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True if the batch has no operations and no changelog offset.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty() && self.changelog_offset.is_none()
    }

    /// Total bytes of keys and values held.
    pub fn data_size(&self) -> usize {
        self.data.len()
    }

    /// Removes everything, keeping the allocated buffers.
    pub fn clear(&mut self) {
        self.data.clear();
        self.ops.clear();
        self.cfs.clear();
        self.changelog_offset = None;
    }

    /// The column families the batch touches, in first-use order.
    pub fn column_families(&self) -> &[String] {
        &self.cfs
    }

    /// The `index`-th operation (in the order they were added), if any.
    pub fn get(&self, index: usize) -> Option<BatchOp<'_>> {
        self.iter_from(index).next()
    }

    /// The operations in the order they were added.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = BatchOp<'_>> + '_ {
        self.iter_from(0)
    }

    /// The operations from the `first`-th on (none if `first >= len()`),
    /// for a consumer that applies a batch in parts.
    pub fn iter_from(&self, first: usize) -> impl ExactSizeIterator<Item = BatchOp<'_>> + '_ {
        let ops = self.ops.get(first..).unwrap_or_default();
        ops.iter().map(move |op| {
            let key_end = op.start + op.key_len as usize;
            BatchOp {
                cf: &self.cfs[op.cf as usize],
                key: &self.data[op.start..key_end],
                value: (op.value_len != DELETE).then(|| &self.data[key_end..key_end + op.value_len as usize]),
                new_key: op.new_key,
            }
        })
    }
}

impl Clone for WriteBatch {
    fn clone(&self) -> Self {
        WriteBatch {
            data: self.data.clone(),
            ops: self.ops.clone(),
            cfs: self.cfs.clone(),
            changelog_offset: self.changelog_offset,
        }
    }

    /// Copies `source` into this batch's buffers (no allocation once they
    /// are large enough).
    fn clone_from(&mut self, source: &Self) {
        self.data.clone_from(&source.data);
        self.ops.clone_from(&source.ops);
        self.cfs.clone_from(&source.cfs);
        self.changelog_offset = source.changelog_offset;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_kinds() {
        let mut b = WriteBatch::new();
        b.put("default", b"a", b"1");
        b.delete("x", b"b");
        b.put_new("default", b"", b"");
        b.set_changelog_offset(7);
        let ops: Vec<_> = b.iter().collect();
        assert_eq!(
            ops,
            vec![
                BatchOp {
                    cf: "default",
                    key: b"a",
                    value: Some(b"1"),
                    new_key: false,
                },
                BatchOp {
                    cf: "x",
                    key: b"b",
                    value: None,
                    new_key: false,
                },
                BatchOp {
                    cf: "default",
                    key: b"",
                    value: Some(b""),
                    new_key: true,
                },
            ]
        );
        assert_eq!(b.changelog_offset(), Some(7));
        assert_eq!(b.get(1), Some(ops[1]));
        assert_eq!(b.get(3), None);
        assert_eq!(b.column_families(), ["default", "x"]);
        b.clear();
        assert!(b.is_empty());
    }

    #[test]
    fn iter_from_resumes_at_an_operation_and_clone_from_copies_everything() {
        let mut b = WriteBatch::new();
        b.put("default", b"a", b"1");
        b.delete("x", b"b");
        b.put_new("default", b"c", b"3");
        b.set_changelog_offset(9);
        let keys = |from| b.iter_from(from).map(|op| op.key.to_vec()).collect::<Vec<_>>();
        assert_eq!(keys(1), vec![b"b".to_vec(), b"c".to_vec()]);
        assert_eq!(keys(3), Vec::<Vec<u8>>::new());
        assert_eq!(keys(7), Vec::<Vec<u8>>::new(), "past the end: nothing");
        let mut copy = WriteBatch::new();
        copy.put("old", b"zzz", b"gone");
        copy.clone_from(&b);
        assert_eq!(copy.iter().collect::<Vec<_>>(), b.iter().collect::<Vec<_>>());
        assert_eq!(copy.column_families(), ["default", "x"]);
        assert_eq!(copy.changelog_offset(), Some(9));
    }
}

//! [`InlineBytes`]: a byte string kept inside its owner up to a length.

/// Bytes kept inside their owner up to `N`, on the heap beyond.
///
/// For caches and indexes that hold one key or value per entry: a lookup
/// that finds the entry finds its bytes without another cache miss, and a
/// short entry costs no allocation. `N` must be below 256.
#[derive(Clone, Debug)]
pub enum InlineBytes<const N: usize> {
    /// Up to `N` bytes: the length, then the bytes (the rest is zero).
    Inline(u8, [u8; N]),
    /// More than `N` bytes.
    Heap(Box<[u8]>),
}

impl<const N: usize> Default for InlineBytes<N> {
    /// The empty string (inline).
    fn default() -> Self {
        InlineBytes::Inline(0, [0; N])
    }
}

impl<const N: usize> InlineBytes<N> {
    /// A copy of `bytes`: inline if at most `N` long.
    pub fn new(bytes: &[u8]) -> Self {
        if bytes.len() <= N {
            let mut data = [0; N];
            data[..bytes.len()].copy_from_slice(bytes);
            InlineBytes::Inline(bytes.len() as u8, data)
        } else {
            InlineBytes::Heap(bytes.into())
        }
    }

    /// Replaces the bytes, in place where they fit (inline, or a heap
    /// block of the same length).
    pub fn set(&mut self, bytes: &[u8]) {
        match self {
            InlineBytes::Inline(len, data) if bytes.len() <= N => {
                data[..bytes.len()].copy_from_slice(bytes);
                *len = bytes.len() as u8;
            }
            InlineBytes::Heap(b) if b.len() == bytes.len() => b.copy_from_slice(bytes),
            other => *other = InlineBytes::new(bytes),
        }
    }
}

impl<const N: usize> std::ops::Deref for InlineBytes<N> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            InlineBytes::Inline(len, data) => &data[..usize::from(*len)],
            InlineBytes::Heap(b) => b,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_move_between_the_owner_and_the_heap() {
        let mut b: InlineBytes<4> = InlineBytes::new(b"abc");
        assert!(matches!(b, InlineBytes::Inline(3, _)));
        b.set(b"abcdef");
        assert_eq!(&*b, b"abcdef");
        assert!(matches!(b, InlineBytes::Heap(_)));
        b.set(b"uvwxyz");
        assert_eq!(&*b, b"uvwxyz");
        b.set(b"");
        assert_eq!(&*b, b"");
        assert!(matches!(b, InlineBytes::Inline(0, _)));
        b.set(b"1234");
        assert_eq!(&*b, b"1234");
        assert_eq!(&*InlineBytes::<4>::default(), b"");
    }
}

//! Bytes a connection holds between calls, and how many of them are used.
//!
//! An idle connection holds none nearly all day, so an empty one is a
//! single null pointer: three of these in every device stream take 24
//! bytes where three vectors with their positions took 96.

/// Bytes held, used from the front; no allocation while there are none.
#[derive(Default)]
pub(super) struct Held(Option<Box<Bytes>>);

#[derive(Default)]
struct Bytes {
    all: Vec<u8>,
    used: usize,
}

impl Held {
    /// The bytes not used yet.
    pub(super) fn unused(&self) -> &[u8] {
        self.0.as_ref().map_or(&[], |b| &b.all[b.used..])
    }

    /// The bytes not used yet, to be worked on in place.
    pub(super) fn unused_mut(&mut self) -> &mut [u8] {
        match &mut self.0 {
            Some(b) => &mut b.all[b.used..],
            None => &mut [],
        }
    }

    /// Whether every byte held was used (or none is held).
    pub(super) fn is_used_up(&self) -> bool {
        self.unused().is_empty()
    }

    /// Bytes held, used or not.
    pub(super) fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |b| b.all.len())
    }

    /// Marks `n` more bytes used; once all are, they are freed.
    pub(super) fn used(&mut self, n: usize) {
        if let Some(b) = &mut self.0 {
            b.used = (b.used + n).min(b.all.len());
            if b.used == b.all.len() {
                self.free();
            }
        }
    }

    /// Drops the used bytes from the front.
    pub(super) fn compact(&mut self) {
        if let Some(b) = &mut self.0 {
            b.all.drain(..b.used);
            b.used = 0;
        }
    }

    /// Appends `bytes`. Nothing is allocated for none.
    pub(super) fn extend(&mut self, bytes: &[u8]) {
        if !bytes.is_empty() {
            self.vec().extend_from_slice(bytes);
        }
    }

    /// The bytes as a vector to append to (allocated if need be). Used
    /// bytes stay in front: a caller may append, or truncate back to a
    /// length it saw, never below the bytes already used.
    pub(super) fn vec(&mut self) -> &mut Vec<u8> {
        &mut self.0.get_or_insert_with(Box::default).all
    }

    /// Frees everything held.
    pub(super) fn free(&mut self) {
        self.0 = None;
    }

    /// Bytes of memory held (for tests).
    #[cfg(test)]
    pub(super) fn capacity(&self) -> usize {
        self.0.as_ref().map_or(0, |b| b.all.capacity())
    }
}

#[cfg(test)]
mod tests {
    use super::Held;

    #[test]
    fn held_bytes_are_used_from_the_front_and_freed_once_all_are() {
        let mut held = Held::default();
        assert!(held.is_used_up());
        held.extend(b"");
        assert!(held.0.is_none(), "nothing allocated for nothing");
        held.extend(b"abcdef");
        held.used(2);
        assert_eq!(held.unused(), b"cdef");
        assert_eq!(held.len(), 6);
        held.compact();
        assert_eq!((held.unused(), held.len()), (&b"cdef"[..], 4));
        held.unused_mut()[0] = b'C';
        held.vec().extend_from_slice(b"gh");
        assert_eq!(held.unused(), b"Cdefgh");
        held.used(6);
        assert!(held.0.is_none(), "freed once used up");
        assert_eq!(held.capacity(), 0);
        assert!(held.unused_mut().is_empty());
        held.used(3);
        assert!(held.is_used_up());
    }

    #[test]
    fn an_empty_held_buffer_is_one_pointer() {
        assert_eq!(std::mem::size_of::<Held>(), std::mem::size_of::<usize>());
    }
}

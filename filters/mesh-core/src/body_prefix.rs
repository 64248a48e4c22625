//! A capped request-body accumulator for filters that only need the start of a
//! body (MCP method, tool, JSON-RPC id) and must never stall or buffer a large
//! upload.
//!
//! The filter returns `Action::Continue` on every chunk and copies out of the
//! host only the bytes the prefix still has room for ([`BodyPrefix::room`]);
//! once the cap is reached (or the stream ends) it parses what it has, once.

/// The first `cap` bytes of a streamed body, and how much of it went by.
#[derive(Debug, Clone)]
pub struct BodyPrefix {
    cap: usize,
    bytes: Vec<u8>,
    seen: usize,
    ended: bool,
}

impl BodyPrefix {
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            bytes: Vec::new(),
            seen: 0,
            ended: false,
        }
    }

    /// How many bytes of a chunk of `chunk_len` bytes are worth copying.
    pub fn room(&self, chunk_len: usize) -> usize {
        chunk_len.min(self.cap.saturating_sub(self.bytes.len()))
    }

    /// Records one chunk: `copied` are the bytes read out of it (at most
    /// [`room`](Self::room)), `chunk_len` its full size, `end_of_stream`
    /// whether it was the last one.
    pub fn push(&mut self, copied: &[u8], chunk_len: usize, end_of_stream: bool) {
        let take = copied.len().min(self.cap.saturating_sub(self.bytes.len()));
        self.bytes
            .extend_from_slice(copied.get(..take).unwrap_or_default());
        self.seen = self.seen.saturating_add(chunk_len.max(copied.len()));
        self.ended |= end_of_stream;
    }

    /// True once nothing more is worth reading: the cap is reached or the body ended.
    pub fn is_done(&self) -> bool {
        self.ended || self.bytes.len() >= self.cap
    }

    /// True when the kept prefix is the whole body.
    pub fn is_complete(&self) -> bool {
        self.ended && self.seen <= self.bytes.len()
    }

    /// True when more bytes went by than were kept.
    pub fn is_truncated(&self) -> bool {
        self.seen > self.bytes.len()
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Total body bytes seen so far (kept or not).
    pub fn seen(&self) -> usize {
        self.seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_cap_and_counts_the_rest() {
        let mut p = BodyPrefix::new(5);
        assert_eq!(p.room(3), 3);
        p.push(b"abc", 3, false);
        assert!(!p.is_done());
        assert_eq!(p.room(10), 2);
        p.push(b"de", 10, false);
        assert!(p.is_done());
        assert_eq!(p.room(10), 0);
        p.push(b"", 7, true);
        assert_eq!(p.bytes(), b"abcde");
        assert_eq!(p.seen(), 20);
        assert!(p.is_truncated());
        assert!(!p.is_complete());
    }

    #[test]
    fn a_body_that_fits_is_complete() {
        let mut p = BodyPrefix::new(100);
        p.push(b"{}", 2, false);
        assert!(!p.is_done() && !p.is_complete());
        p.push(b"", 0, true);
        assert!(p.is_done() && p.is_complete() && !p.is_truncated());
    }

    #[test]
    fn exactly_the_cap_is_done_but_not_known_complete() {
        let mut p = BodyPrefix::new(2);
        p.push(b"{}", 2, false);
        assert!(p.is_done());
        assert!(!p.is_complete());
        assert!(!p.is_truncated());
    }

    #[test]
    fn overlong_copies_are_clamped() {
        let mut p = BodyPrefix::new(3);
        p.push(b"abcdef", 6, true);
        assert_eq!(p.bytes(), b"abc");
        assert!(p.is_truncated());
    }

    #[test]
    fn zero_cap_reads_nothing() {
        let p = BodyPrefix::new(0);
        assert_eq!(p.room(100), 0);
        assert!(p.is_done());
    }
}

//! Incremental Server-Sent Events framer (WHATWG HTML, "event stream
//! interpretation"), for response bodies that arrive in arbitrary chunks.
//!
//! - Events may be split across chunks at any byte, including between the
//!   `\r` and `\n` of a CRLF; lines end in CRLF, LF or CR.
//! - `:` comment lines, `id:` and `retry:` are ignored; `event:` names the
//!   event; several `data:` lines join with `\n`; one space after the colon is
//!   dropped.
//! - An event is dispatched at the blank line that ends it. An unfinished
//!   event at the end of the stream is not dispatched (as in browsers): a
//!   truncated stream yields only its complete events.
//! - Memory is bounded for any stream length: the framer keeps at most one
//!   partial line and one event's data, each capped at `max_event_bytes`. An
//!   event over the cap is skipped (and counted); framing resumes at the next
//!   event. Nothing here ever fails: the framer only observes the stream.

/// One complete event. `event` is empty when the stream named none (the
/// spec's default type `message`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event<'a> {
    pub event: &'a str,
    pub data: &'a [u8],
}

/// Longest event name kept; longer names are cut (names are short tokens).
const MAX_EVENT_NAME: usize = 64;

#[derive(Debug, Clone)]
pub struct SseFramer {
    max_event_bytes: usize,
    /// Bytes of the current, unfinished line.
    line: Vec<u8>,
    /// The current line grew past the cap: drop the rest of it.
    line_overflow: bool,
    /// The previous chunk ended in `\r`: a leading `\n` belongs to it.
    after_cr: bool,
    /// `data` of the event being built.
    data: Vec<u8>,
    /// The event had at least one `data` field (an empty one counts).
    has_data: bool,
    event: String,
    /// The event being built went over the cap: it will not be dispatched.
    event_overflow: bool,
    /// Events skipped because they were larger than the cap.
    oversized_events: u64,
}

impl SseFramer {
    pub fn new(max_event_bytes: usize) -> Self {
        Self {
            max_event_bytes,
            line: Vec::new(),
            line_overflow: false,
            after_cr: false,
            data: Vec::new(),
            has_data: false,
            event: String::new(),
            event_overflow: false,
            oversized_events: 0,
        }
    }

    /// Events skipped so far because they were over `max_event_bytes`.
    pub fn oversized_events(&self) -> u64 {
        self.oversized_events
    }

    /// True while an event or line has started but not ended: at the end of
    /// the stream this means the stream was cut in the middle of an event.
    pub fn has_partial_event(&self) -> bool {
        !self.line.is_empty() || self.line_overflow || self.has_data || self.event_overflow
    }

    /// Feeds the next chunk; `on_event` runs for every event it completes.
    pub fn push(&mut self, mut chunk: &[u8], on_event: &mut dyn FnMut(Event<'_>)) {
        if self.after_cr {
            self.after_cr = false;
            if let Some(rest) = chunk.strip_prefix(b"\n") {
                chunk = rest;
            }
        }
        while !chunk.is_empty() {
            let Some(end) = chunk.iter().position(|&b| b == b'\n' || b == b'\r') else {
                self.extend_line(chunk);
                return;
            };
            let (part, rest) = chunk.split_at(end);
            self.extend_line(part);
            // `rest` starts with the terminator.
            let mut skip = 1;
            if rest.first() == Some(&b'\r') {
                match rest.get(1) {
                    Some(b'\n') => skip = 2,
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
            chunk = rest.get(skip..).unwrap_or_default();
            self.end_line(on_event);
        }
    }

    fn extend_line(&mut self, bytes: &[u8]) {
        if self.line_overflow || bytes.is_empty() {
            return;
        }
        if self.line.len() + bytes.len() > self.max_event_bytes {
            self.line.clear();
            self.line_overflow = true;
            return;
        }
        self.line.extend_from_slice(bytes);
    }

    fn end_line(&mut self, on_event: &mut dyn FnMut(Event<'_>)) {
        if self.line_overflow {
            // The line was dropped; so is the event it belonged to.
            self.line_overflow = false;
            self.event_overflow = true;
            return;
        }
        if self.line.is_empty() {
            self.dispatch(on_event);
            return;
        }
        let line = std::mem::take(&mut self.line);
        self.field(&line);
        // Keep the allocation for the next line.
        self.line = line;
        self.line.clear();
    }

    fn field(&mut self, line: &[u8]) {
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(0) => return, // comment
            Some(colon) => {
                let (name, value) = line.split_at(colon);
                let value = value.get(1..).unwrap_or_default();
                (name, value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match name {
            b"data" => {
                if self.event_overflow {
                    return;
                }
                let extra = usize::from(self.has_data) + value.len();
                if self.data.len() + extra > self.max_event_bytes {
                    self.event_overflow = true;
                    self.data.clear();
                    return;
                }
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"event" => {
                self.event.clear();
                let value = value.get(..MAX_EVENT_NAME).unwrap_or(value);
                self.event.push_str(&String::from_utf8_lossy(value));
            }
            _ => {} // id, retry and unknown fields do not matter here
        }
    }

    fn dispatch(&mut self, on_event: &mut dyn FnMut(Event<'_>)) {
        if self.event_overflow {
            self.oversized_events += 1;
        } else if self.has_data {
            on_event(Event {
                event: &self.event,
                data: &self.data,
            });
        }
        self.data.clear();
        self.event.clear();
        self.has_data = false;
        self.event_overflow = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Eq)]
    struct Owned {
        event: String,
        data: String,
    }

    fn run(framer: &mut SseFramer, chunks: &[&[u8]]) -> Vec<Owned> {
        let mut out = Vec::new();
        for chunk in chunks {
            framer.push(chunk, &mut |e| {
                out.push(Owned {
                    event: e.event.to_string(),
                    data: String::from_utf8_lossy(e.data).into_owned(),
                })
            });
        }
        out
    }

    fn whole(stream: &[u8]) -> Vec<Owned> {
        run(&mut SseFramer::new(1024), &[stream])
    }

    fn ev(event: &str, data: &str) -> Owned {
        Owned {
            event: event.into(),
            data: data.into(),
        }
    }

    /// Every way of cutting `stream` in two and byte by byte gives the same
    /// events as the whole stream.
    fn assert_split_invariant(stream: &[u8]) -> Vec<Owned> {
        let expected = whole(stream);
        for cut in 0..=stream.len() {
            let (a, b) = stream.split_at(cut);
            assert_eq!(
                run(&mut SseFramer::new(1024), &[a, b]),
                expected,
                "cut at {cut}"
            );
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(run(&mut SseFramer::new(1024), &bytes), expected);
        expected
    }

    #[test]
    fn line_endings_lf_crlf_cr() {
        for stream in [
            &b"event: a\ndata: 1\n\ndata: 2\n\n"[..],
            b"event: a\r\ndata: 1\r\n\r\ndata: 2\r\n\r\n",
            b"event: a\rdata: 1\r\rdata: 2\r\r",
            b"event: a\r\ndata: 1\n\rdata: 2\r\n\n",
        ] {
            assert_eq!(
                assert_split_invariant(stream),
                vec![ev("a", "1"), ev("", "2")],
                "{:?}",
                String::from_utf8_lossy(stream)
            );
        }
    }

    #[test]
    fn multi_line_data_comments_and_fields() {
        let stream = b": keep-alive\n\nid: 7\nretry: 10\ndata:first\ndata: second\ndata\n: note\nevent:x\n\n";
        assert_eq!(
            assert_split_invariant(stream),
            vec![ev("x", "first\nsecond\n")]
        );
    }

    #[test]
    fn only_one_leading_space_is_dropped() {
        assert_eq!(whole(b"data:  two\n\n"), vec![ev("", " two")]);
        assert_eq!(whole(b"data: a:b\n\n"), vec![ev("", "a:b")]);
    }

    #[test]
    fn events_without_data_are_not_dispatched() {
        assert_eq!(whole(b"event: ping\n\n\n\n"), vec![]);
        assert_eq!(whole(b"data\n\n"), vec![ev("", "")]);
    }

    #[test]
    fn unfinished_event_at_end_is_not_dispatched() {
        let mut f = SseFramer::new(1024);
        assert_eq!(
            run(&mut f, &[b"data: 1\n\ndata: {\"trunc"]),
            vec![ev("", "1")]
        );
        assert!(f.has_partial_event());
        let mut done = SseFramer::new(1024);
        run(&mut done, &[b"data: 1\n\n"]);
        assert!(!done.has_partial_event());
    }

    #[test]
    fn oversized_event_is_skipped_and_framing_resumes() {
        let big = "x".repeat(100);
        for stream in [
            // one long line
            format!("data: {big}\n\ndata: ok\n\n"),
            // many short data lines adding up past the cap
            format!("{}\ndata: ok\n\n", "data: xxxxxxxxxx\n".repeat(10)),
        ] {
            let mut f = SseFramer::new(64);
            let bytes: Vec<&[u8]> = stream.as_bytes().chunks(7).collect();
            assert_eq!(run(&mut f, &bytes), vec![ev("", "ok")]);
            assert_eq!(f.oversized_events(), 1);
            assert!(f.line.capacity() <= 128 && f.data.capacity() <= 128);
        }
    }

    #[test]
    fn memory_stays_bounded_on_an_endless_line() {
        let mut f = SseFramer::new(256);
        let chunk = [b'a'; 4096];
        for _ in 0..1000 {
            run(&mut f, &[&chunk]);
        }
        assert!(f.line.capacity() <= 512);
        assert_eq!(
            run(&mut f, &[b"\n\ndata: after\n\n"]),
            vec![ev("", "after")]
        );
        assert_eq!(f.oversized_events(), 1);
    }

    #[test]
    fn hostile_bytes_never_panic() {
        let mut f = SseFramer::new(32);
        let junk: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
        for chunk in junk.chunks(13) {
            f.push(chunk, &mut |_| {});
        }
        f.push(b"\xff\xfe\r\r\n\n\revent: \xff\ndata: \xc3\n\n", &mut |e| {
            assert_eq!(e.data, b"\xc3");
        });
    }
}

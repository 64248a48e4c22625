//! Runs a module's stages for one request, in phase order, as Envoy would run
//! the same stages as separate filters, but in one `HttpContext`:
//!
//! - Request headers go to each stage in turn. A stage that replies stops
//!   the chain (later stages never start); one that pauses (a rate-limit
//!   service call) holds it, and its answer starts the rest.
//! - Request body chunks are copied from Envoy once, as many bytes as the
//!   stage with the most room wants, and every started stage sees every
//!   chunk, also while one of them holds the body: later stages only observe,
//!   and bytes Envoy releases after a hold never come back to this filter.
//! - Response events go to the stages that started; the log phase to all.
//!
//! Host-free: the glue passes the body reads in as closures.

use crate::stage::{Chunk, Exchange, Flow, Host, Stage, Step};
use std::rc::Rc;

/// Where the request is held, and by which stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hold {
    /// A stage paused its request headers (later stages have not started).
    Headers(usize),
    /// A stage holds the body (waiting for more of it, or for its call).
    Body(usize),
}

pub struct Chain {
    flows: Vec<Box<dyn Flow>>,
    x: Exchange,
    /// Stages that got the request headers.
    started: usize,
    end_at_headers: bool,
    hold: Option<Hold>,
    /// Bytes at the start of Envoy's body buffer that every stage saw
    /// already (non-zero while the body is held and Envoy keeps buffering).
    seen: usize,
}

impl Chain {
    pub fn new(stages: &[Rc<dyn Stage>]) -> Self {
        Self {
            flows: stages.iter().map(|s| s.start()).collect(),
            x: Exchange {
                facts_reader: stages.iter().any(|s| s.reads_body_facts()),
                body_facts: None,
                header_call: None,
            },
            started: 0,
            end_at_headers: false,
            hold: None,
            seen: 0,
        }
    }

    /// True: the headers go on.
    pub fn request_headers(&mut self, host: &mut dyn Host, end: bool) -> bool {
        self.end_at_headers = end;
        self.headers_from(0, host)
    }

    fn headers_from(&mut self, from: usize, host: &mut dyn Host) -> bool {
        for i in from..self.flows.len() {
            let Some(flow) = self.flows.get_mut(i) else {
                break;
            };
            self.started = i + 1;
            match flow.on_request_headers(&mut self.x, host, self.end_at_headers) {
                Step::Continue => {}
                Step::Pause => {
                    self.hold = Some(Hold::Headers(i));
                    return false;
                }
                Step::Replied => return false,
            }
        }
        true
    }

    /// `buffered`: bytes in Envoy's body buffer now; `read(offset, len)`
    /// copies from it. True: the body goes on.
    pub fn request_body(
        &mut self,
        host: &mut dyn Host,
        buffered: usize,
        end: bool,
        read: &mut dyn FnMut(usize, usize) -> Vec<u8>,
    ) -> bool {
        let len = buffered.saturating_sub(self.seen);
        let seen = self.seen;
        let rooms = self
            .flows
            .iter()
            .take(self.started)
            .map(|f| f.request_body_room());
        let data = copy_once(rooms, len, |room| read(seen, room));
        for (i, flow) in self.flows.iter_mut().enumerate().take(self.started) {
            let chunk = chunk_for(&data, flow.request_body_room(), len, end);
            match flow.on_request_body(&mut self.x, host, chunk) {
                Step::Replied => {
                    self.hold = None;
                    return false;
                }
                step => note(&mut self.hold, i, step),
            }
        }
        self.release_if_free(buffered)
    }

    /// True: the trailers (and the held body) go on.
    pub fn request_trailers(&mut self, host: &mut dyn Host) -> bool {
        for (i, flow) in self.flows.iter_mut().enumerate().take(self.started) {
            match flow.on_request_trailers(&mut self.x, host) {
                Step::Replied => {
                    self.hold = None;
                    return false;
                }
                step => note(&mut self.hold, i, step),
            }
        }
        self.release_if_free(0)
    }

    /// The answer to the holding stage's call. True: resume the request.
    pub fn grpc_response(&mut self, host: &mut dyn Host, status: u32, message: &[u8]) -> bool {
        let Some(hold) = self.hold else {
            return false;
        };
        let (Hold::Headers(i) | Hold::Body(i)) = hold;
        let Some(flow) = self.flows.get_mut(i) else {
            return false;
        };
        match flow.on_grpc_response(&mut self.x, host, status, message) {
            Step::Pause => false,
            Step::Replied => {
                self.hold = None;
                false
            }
            Step::Continue => {
                self.hold = None;
                self.seen = 0;
                match hold {
                    Hold::Headers(_) => self.headers_from(i + 1, host),
                    Hold::Body(_) => true,
                }
            }
        }
    }

    pub fn response_headers(&mut self, host: &mut dyn Host, end: bool) {
        for flow in self.flows.iter_mut().take(self.started) {
            flow.on_response_headers(&mut self.x, host, end);
        }
    }

    pub fn response_body(
        &mut self,
        host: &mut dyn Host,
        len: usize,
        end: bool,
        read: &mut dyn FnMut(usize) -> Vec<u8>,
    ) {
        let rooms = self
            .flows
            .iter()
            .take(self.started)
            .map(|f| f.response_body_room(len));
        let data = copy_once(rooms, len, read);
        for flow in self.flows.iter_mut().take(self.started) {
            let chunk = chunk_for(&data, flow.response_body_room(len), len, end);
            flow.on_response_body(&mut self.x, host, chunk);
        }
    }

    pub fn response_trailers(&mut self, host: &mut dyn Host) {
        for flow in self.flows.iter_mut().take(self.started) {
            flow.on_response_trailers(&mut self.x, host);
        }
    }

    pub fn log(&mut self, host: &mut dyn Host) {
        for flow in &mut self.flows {
            flow.on_log(&mut self.x, host);
        }
    }

    /// Whether the body goes on; while held, Envoy keeps buffering, so the
    /// next callback's new bytes start after `buffered`.
    fn release_if_free(&mut self, buffered: usize) -> bool {
        if self.hold.is_some() {
            self.seen = buffered;
            false
        } else {
            self.seen = 0;
            true
        }
    }
}

/// Copies from Envoy once as many of the `len` new bytes as the stage with
/// the most room wants (nothing when none wants any).
fn copy_once(
    rooms: impl Iterator<Item = usize>,
    len: usize,
    read: impl FnOnce(usize) -> Vec<u8>,
) -> Vec<u8> {
    match rooms.map(|r| r.min(len)).max().unwrap_or(0) {
        0 => Vec::new(),
        room => read(room),
    }
}

/// One stage's view of the copy: at most its own room of it.
fn chunk_for(data: &[u8], room: usize, len: usize, end: bool) -> Chunk<'_> {
    Chunk {
        data: data.get(..room.min(data.len())).unwrap_or_default(),
        len,
        end,
    }
}

/// Records that stage `i` holds the body, or let go of it.
fn note(hold: &mut Option<Hold>, i: usize, step: Step) {
    match step {
        Step::Pause if hold.is_none() => *hold = Some(Hold::Body(i)),
        Step::Continue if *hold == Some(Hold::Body(i)) => *hold = None,
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock_host::MockHost;
    use std::cell::RefCell;

    /// A stage that writes what it saw to a shared journal and answers as told.
    struct Probe {
        name: &'static str,
        journal: Rc<RefCell<Vec<String>>>,
        headers: Step,
        body: Vec<Step>,
        room: usize,
        grpc: Step,
    }

    struct ProbeFlow {
        name: &'static str,
        journal: Rc<RefCell<Vec<String>>>,
        headers: Step,
        body: Vec<Step>,
        room: usize,
        grpc: Step,
    }

    impl Stage for Probe {
        fn start(&self) -> Box<dyn Flow> {
            Box::new(ProbeFlow {
                name: self.name,
                journal: Rc::clone(&self.journal),
                headers: self.headers,
                body: self.body.clone(),
                room: self.room,
                grpc: self.grpc,
            })
        }
    }

    impl ProbeFlow {
        fn note(&self, what: String) {
            self.journal
                .borrow_mut()
                .push(format!("{} {what}", self.name));
        }
    }

    impl Flow for ProbeFlow {
        fn on_request_headers(&mut self, _x: &mut Exchange, _h: &mut dyn Host, _e: bool) -> Step {
            self.note("headers".into());
            self.headers
        }
        fn request_body_room(&self) -> usize {
            self.room
        }
        fn on_request_body(&mut self, _x: &mut Exchange, _h: &mut dyn Host, c: Chunk<'_>) -> Step {
            self.note(format!(
                "body {:?} {} {}",
                String::from_utf8_lossy(c.data),
                c.len,
                c.end
            ));
            if self.body.is_empty() {
                Step::Continue
            } else {
                self.body.remove(0)
            }
        }
        fn on_grpc_response(
            &mut self,
            _x: &mut Exchange,
            _h: &mut dyn Host,
            s: u32,
            _m: &[u8],
        ) -> Step {
            self.note(format!("grpc {s}"));
            self.grpc
        }
        fn on_response_headers(&mut self, _x: &mut Exchange, _h: &mut dyn Host, _e: bool) {
            self.note("response".into());
        }
        fn on_log(&mut self, _x: &mut Exchange, _h: &mut dyn Host) {
            self.note("log".into());
        }
    }

    fn probe(name: &'static str, journal: &Rc<RefCell<Vec<String>>>) -> Probe {
        Probe {
            name,
            journal: Rc::clone(journal),
            headers: Step::Continue,
            body: Vec::new(),
            room: 0,
            grpc: Step::Continue,
        }
    }

    fn chain(stages: Vec<Probe>) -> Chain {
        let stages: Vec<Rc<dyn Stage>> = stages
            .into_iter()
            .map(|s| Rc::new(s) as Rc<dyn Stage>)
            .collect();
        Chain::new(&stages)
    }

    #[test]
    fn a_reply_stops_later_stages_but_everyone_logs() {
        let journal = Rc::new(RefCell::new(Vec::new()));
        let mut auth = probe("auth", &journal);
        auth.headers = Step::Replied;
        let mut c = chain(vec![auth, probe("log", &journal)]);
        let mut host = MockHost::default();
        assert!(!c.request_headers(&mut host, false));
        c.response_headers(&mut host, false);
        c.log(&mut host);
        assert_eq!(
            *journal.borrow(),
            ["auth headers", "auth response", "auth log", "log log"]
        );
    }

    #[test]
    fn a_paused_header_stage_starts_the_rest_when_its_call_answers() {
        let journal = Rc::new(RefCell::new(Vec::new()));
        let mut limit = probe("limit", &journal);
        limit.headers = Step::Pause;
        let mut c = chain(vec![limit, probe("log", &journal)]);
        let mut host = MockHost::default();
        assert!(!c.request_headers(&mut host, true));
        assert!(c.grpc_response(&mut host, 0, b""));
        assert_eq!(
            *journal.borrow(),
            ["limit headers", "limit grpc 0", "log headers"]
        );
    }

    #[test]
    fn a_held_body_is_read_once_per_chunk_and_new_bytes_only() {
        let journal = Rc::new(RefCell::new(Vec::new()));
        let mut limit = probe("limit", &journal);
        limit.room = 100;
        limit.body = vec![Step::Pause, Step::Pause];
        let mut log = probe("log", &journal);
        log.room = 3;
        let mut c = chain(vec![limit, log]);
        let mut host = MockHost::default();
        assert!(c.request_headers(&mut host, false));
        let buffer = b"abcdefgh".to_vec();
        let mut reads = Vec::new();
        let mut read = |off: usize, len: usize| {
            reads.push((off, len));
            buffer.get(off..off + len).unwrap_or_default().to_vec()
        };
        assert!(!c.request_body(&mut host, 4, false, &mut read));
        // Held: Envoy's buffer grows to 8; only bytes 4.. are new. The stage
        // then calls its service (Pause again) and is answered.
        assert!(!c.request_body(&mut host, 8, true, &mut read));
        assert!(c.grpc_response(&mut host, 0, b""));
        assert_eq!(reads, [(0, 4), (4, 4)]);
        assert_eq!(
            *journal.borrow(),
            [
                "limit headers",
                "log headers",
                "limit body \"abcd\" 4 false",
                "log body \"abc\" 4 false",
                "limit body \"efgh\" 4 true",
                "log body \"efg\" 4 true",
                "limit grpc 0",
            ]
        );
    }

    #[test]
    fn a_body_reply_stops_the_chunk_for_later_stages() {
        let journal = Rc::new(RefCell::new(Vec::new()));
        let mut limit = probe("limit", &journal);
        limit.body = vec![Step::Replied];
        let mut c = chain(vec![limit, probe("log", &journal)]);
        let mut host = MockHost::default();
        assert!(c.request_headers(&mut host, false));
        assert!(!c.request_body(&mut host, 2, true, &mut |_, _| Vec::new()));
        assert_eq!(
            *journal.borrow(),
            ["limit headers", "log headers", "limit body \"\" 2 true"]
        );
    }
}

//! Filters `tools/list`, `prompts/list` and `resources/list` responses down
//! to what the caller may call, as the response streams by.
//!
//! - JSON: the body is kept (up to the bound) and the filtered message is
//!   sent in place of the last chunk; earlier chunks go on empty.
//! - SSE: complete events are sent on as soon as they end, a list result
//!   among them rewritten; only the unfinished event is kept. Events may be
//!   split at any byte, lines end in CRLF, LF or CR.
//! - Over the bound (a JSON body, or one SSE event), or a body that cannot
//!   be read (compressed), the configured fail mode applies: `block` sends a
//!   JSON-RPC error for the call instead, `pass` sends the list unfiltered.

use crate::config::{Lists, Overflow};
use mesh_core::mcp::Call;
use serde_json::Value;

/// A list method, the result array it answers with, and the call each entry
/// stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    Tools,
    Prompts,
    Resources,
}

impl ListKind {
    pub fn of(method: &str) -> Option<Self> {
        match method {
            "tools/list" => Some(ListKind::Tools),
            "prompts/list" => Some(ListKind::Prompts),
            "resources/list" => Some(ListKind::Resources),
            _ => None,
        }
    }

    fn array(self) -> &'static str {
        match self {
            ListKind::Tools => "tools",
            ListKind::Prompts => "prompts",
            ListKind::Resources => "resources",
        }
    }

    /// The call an entry of the list stands for.
    fn call(self, entry: &Value) -> Option<Call> {
        let (method, key) = match self {
            ListKind::Tools => ("tools/call", "name"),
            ListKind::Prompts => ("prompts/get", "name"),
            ListKind::Resources => ("resources/read", "uri"),
        };
        Some(Call {
            method: method.into(),
            name: Some(entry.get(key)?.as_str()?.to_string()),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Json,
    Sse,
}

/// What happened to a list response, for the metrics and the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tally {
    /// Entries removed.
    pub removed: u64,
    /// The bound was hit, or the body could not be read.
    pub overflow: bool,
}

/// One response's filter. `allowed` decides each entry.
pub struct ListFilter<'a> {
    kinds: Vec<ListKind>,
    framing: Framing,
    /// Largest body (JSON) or event (SSE) filtered, and what happens past it.
    max_bytes: usize,
    on_overflow: Overflow,
    /// The request's JSON-RPC id, for the `block` error.
    id: Value,
    allowed: Box<dyn Fn(&Call) -> bool + 'a>,
    kept: Vec<u8>,
    /// Over the bound with `pass`: everything goes on untouched from here.
    passing: bool,
    /// Over the bound with `block`: the error was sent, the rest is dropped.
    blocked: bool,
    /// The error `block` sends with the next chunk.
    pending: Option<Vec<u8>>,
    pub tally: Tally,
}

impl<'a> ListFilter<'a> {
    pub fn new(
        kinds: Vec<ListKind>,
        framing: Framing,
        lists: &Lists,
        id: Value,
        allowed: Box<dyn Fn(&Call) -> bool + 'a>,
    ) -> Self {
        Self {
            kinds,
            framing,
            max_bytes: lists.max_bytes,
            on_overflow: lists.on_overflow,
            id,
            allowed,
            kept: Vec::new(),
            passing: false,
            blocked: false,
            pending: None,
            tally: Tally::default(),
        }
    }

    /// A body this filter cannot read (compressed): the fail mode, from
    /// the first chunk on.
    pub fn unreadable(&mut self) {
        self.tally.overflow = true;
        match self.on_overflow {
            Overflow::Pass => self.passing = true,
            Overflow::Block => {
                self.blocked = true;
                let error = self.error();
                self.pending = Some(match self.framing {
                    Framing::Json => error,
                    Framing::Sse => sse_event(&error),
                });
            }
        }
    }

    /// The next chunk of the response; returns the bytes to send in its
    /// place (`None`: send the chunk as it is).
    pub fn push(&mut self, chunk: &[u8], end: bool) -> Option<Vec<u8>> {
        if self.passing {
            return None;
        }
        if self.blocked {
            return Some(self.pending.take().unwrap_or_default());
        }
        self.kept.extend_from_slice(chunk);
        match self.framing {
            Framing::Json => self.push_json(end),
            Framing::Sse => Some(self.push_sse(end)),
        }
    }

    fn push_json(&mut self, end: bool) -> Option<Vec<u8>> {
        if self.kept.len() > self.max_bytes {
            return self.overflow(Vec::new());
        }
        if !end {
            return Some(Vec::new());
        }
        let body = std::mem::take(&mut self.kept);
        Some(self.rewrite(&body).unwrap_or(body))
    }

    fn push_sse(&mut self, end: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let kept = std::mem::take(&mut self.kept);
        let mut start = 0;
        while let Some(len) = event_len(kept.get(start..).unwrap_or_default(), end) {
            let event = kept.get(start..start + len).unwrap_or_default();
            match self.rewrite_event(event) {
                Some(new) => out.extend_from_slice(&new),
                None => out.extend_from_slice(event),
            }
            start += len;
        }
        self.kept = kept.get(start..).unwrap_or_default().to_vec();
        if end {
            // An unfinished last event is never dispatched by a client; it
            // goes on as it came.
            out.append(&mut self.kept);
        } else if self.kept.len() > self.max_bytes {
            let block = self.on_overflow == Overflow::Block;
            if let Some(kept) = self.overflow(Vec::new()) {
                out.extend_from_slice(&kept);
            }
            if block {
                out.extend_from_slice(&sse_event(&self.error()));
            }
        }
        out
    }

    /// The bound was hit: `pass` sends what was kept (after `sent`), `block`
    /// the error.
    fn overflow(&mut self, mut sent: Vec<u8>) -> Option<Vec<u8>> {
        self.tally.overflow = true;
        match self.on_overflow {
            Overflow::Pass => {
                self.passing = true;
                sent.append(&mut self.kept);
                Some(sent)
            }
            Overflow::Block => {
                self.blocked = true;
                self.kept.clear();
                if self.framing == Framing::Json {
                    sent.extend_from_slice(&self.error());
                }
                Some(sent)
            }
        }
    }

    fn error(&self) -> Vec<u8> {
        mesh_core::error_body::rpc_error(
            &self.id,
            -32603,
            "the list is larger than the mesh filters for this caller",
            Some(serde_json::json!({"code": "list_too_large"})),
        )
        .into_bytes()
    }

    /// One JSON-RPC message (or batch) with its list results filtered;
    /// `None` when it is no list result (then it goes on unchanged).
    fn rewrite(&mut self, body: &[u8]) -> Option<Vec<u8>> {
        let mut value: Value = serde_json::from_slice(body).ok()?;
        let removed = match &mut value {
            Value::Array(items) => items.iter_mut().map(|m| self.filter_message(m)).sum(),
            message => self.filter_message(message),
        };
        if removed == 0 {
            return None;
        }
        self.tally.removed += removed;
        serde_json::to_vec(&value).ok()
    }

    fn filter_message(&self, message: &mut Value) -> u64 {
        let Some(result) = message.get_mut("result") else {
            return 0;
        };
        let mut removed = 0;
        for kind in &self.kinds {
            let Some(Value::Array(entries)) = result.get_mut(kind.array()) else {
                continue;
            };
            let before = entries.len();
            // An entry without a readable name is never callable: drop it.
            entries.retain(|e| kind.call(e).is_some_and(|c| (self.allowed)(&c)));
            removed += (before - entries.len()) as u64;
        }
        removed
    }

    /// An SSE event with its `data` rewritten, when that is a list result.
    fn rewrite_event(&mut self, event: &[u8]) -> Option<Vec<u8>> {
        let mut data: Vec<u8> = Vec::new();
        let mut other: Vec<u8> = Vec::new();
        let mut has_data = false;
        for line in lines(event) {
            if line.text.is_empty() {
                continue;
            }
            if let Some(value) = field_value(line.text, b"data") {
                if has_data {
                    data.push(b'\n');
                }
                has_data = true;
                data.extend_from_slice(value);
            } else {
                other.extend_from_slice(line.text);
                other.push(b'\n');
            }
        }
        if !has_data {
            return None;
        }
        let new = self.rewrite(&data)?;
        let mut out = other;
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(&new);
        out.extend_from_slice(b"\n\n");
        Some(out)
    }
}

/// `data: <json>` as one SSE event.
fn sse_event(data: &[u8]) -> Vec<u8> {
    let mut out = b"event: message\ndata: ".to_vec();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\n\n");
    out
}

/// The value of field `name` in one SSE line (`data: x`, `data:x`, `data`).
fn field_value<'b>(line: &'b [u8], name: &[u8]) -> Option<&'b [u8]> {
    let rest = line.strip_prefix(name)?;
    if rest.is_empty() {
        return Some(rest);
    }
    let value = rest.strip_prefix(b":")?;
    Some(value.strip_prefix(b" ").unwrap_or(value))
}

struct Line<'b> {
    text: &'b [u8],
}

/// The lines of one complete event (terminators dropped).
fn lines(event: &[u8]) -> Vec<Line<'_>> {
    let mut out = Vec::new();
    let mut rest = event;
    while !rest.is_empty() {
        let Some((text, after)) = split_line(rest, true) else {
            out.push(Line { text: rest });
            break;
        };
        out.push(Line { text });
        rest = after;
    }
    out
}

/// The first line of `buf` and what follows its terminator; `None` when the
/// line has not ended (a lone `\r` at the end may still become `\r\n`,
/// unless the stream `ended`).
fn split_line(buf: &[u8], ended: bool) -> Option<(&[u8], &[u8])> {
    let at = buf.iter().position(|&b| b == b'\n' || b == b'\r')?;
    let text = buf.get(..at)?;
    let term = match (buf.get(at), buf.get(at + 1)) {
        (Some(b'\r'), Some(b'\n')) => 2,
        (Some(b'\r'), None) if !ended => return None,
        _ => 1,
    };
    Some((text, buf.get(at + term..)?))
}

/// Length of the first complete event in `buf` (through the blank line that
/// ends it), `None` while it has not ended.
fn event_len(buf: &[u8], ended: bool) -> Option<usize> {
    let mut rest = buf;
    loop {
        let (text, after) = split_line(rest, ended)?;
        if text.is_empty() {
            return Some(buf.len() - after.len());
        }
        rest = after;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = r#"{"jsonrpc":"2.0","id":3,"result":{"tools":[{"name":"get_debate","inputSchema":{}},{"name":"delete_debate","inputSchema":{}},{"name":"run_debate_round"}]}}"#;

    fn filter(framing: Framing, max: usize, mode: Overflow) -> ListFilter<'static> {
        let lists = Lists {
            filter: true,
            max_bytes: max,
            on_overflow: mode,
        };
        ListFilter::new(
            vec![ListKind::Tools],
            framing,
            &lists,
            Value::from(3),
            Box::new(|c: &Call| c.name.as_deref() != Some("delete_debate")),
        )
    }

    fn names(json: &[u8]) -> Vec<String> {
        let v: Value = serde_json::from_slice(json).unwrap();
        v["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect()
    }

    /// Feeds `body` split at `at`, returns what the client receives.
    fn run(f: &mut ListFilter<'_>, body: &[u8], at: usize) -> Vec<u8> {
        let (a, b) = body.split_at(at);
        let mut out = Vec::new();
        for (chunk, end) in [(a, false), (b, true)] {
            match f.push(chunk, end) {
                Some(new) => out.extend_from_slice(&new),
                None => out.extend_from_slice(chunk),
            }
        }
        out
    }

    #[test]
    fn json_lists_lose_what_the_caller_may_not_call() {
        for at in 0..=LIST.len() {
            let mut f = filter(Framing::Json, 4096, Overflow::Block);
            let out = run(&mut f, LIST.as_bytes(), at);
            assert_eq!(
                names(&out),
                ["get_debate", "run_debate_round"],
                "split {at}"
            );
            assert_eq!(f.tally.removed, 1);
        }
    }

    #[test]
    fn sse_lists_hold_at_every_split_point() {
        for term in ["\n", "\r\n", "\r"] {
            let body = format!(
                "event: message{t}id: 1{t}data: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}}{t}{t}event: message{t}data: {LIST}{t}{t}",
                t = term
            );
            for at in 0..=body.len() {
                let mut f = filter(Framing::Sse, 4096, Overflow::Block);
                let out = run(&mut f, body.as_bytes(), at);
                let text = String::from_utf8(out).unwrap();
                assert!(
                    !text.contains("delete_debate"),
                    "{term:?} split {at}: {text}"
                );
                assert!(text.contains("get_debate"), "{term:?} split {at}");
                assert!(
                    text.contains("notifications/progress"),
                    "{term:?} split {at}"
                );
                let data: Vec<&str> = text
                    .split(['\n', '\r'])
                    .filter_map(|l| l.strip_prefix("data: "))
                    .collect();
                assert_eq!(data.len(), 2, "{term:?} split {at}: {text}");
                assert_eq!(
                    names(data[1].as_bytes()),
                    ["get_debate", "run_debate_round"]
                );
            }
        }
    }

    #[test]
    fn multi_line_data_is_joined_before_it_is_read() {
        let body = "data: {\"jsonrpc\":\"2.0\",\"id\":3,\ndata: \"result\":{\"tools\":[{\"name\":\"delete_debate\"}]}}\n\n";
        let mut f = filter(Framing::Sse, 4096, Overflow::Block);
        let out = run(&mut f, body.as_bytes(), 10);
        assert!(!String::from_utf8(out).unwrap().contains("delete_debate"));
    }

    #[test]
    fn other_messages_pass_unchanged() {
        let body = br#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"delete_debate"}]}}"#;
        let mut f = filter(Framing::Json, 4096, Overflow::Block);
        assert_eq!(run(&mut f, body, 20), body.to_vec());
        let mut f = filter(Framing::Json, 4096, Overflow::Block);
        assert_eq!(run(&mut f, b"not json", 3), b"not json".to_vec());
    }

    #[test]
    fn over_the_bound_block_answers_with_an_error() {
        let mut f = filter(Framing::Json, 64, Overflow::Block);
        let out = run(&mut f, LIST.as_bytes(), 100);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["id"], 3);
        assert_eq!(v["error"]["data"]["code"], "list_too_large");
        assert!(f.tally.overflow);

        let body = format!("data: {LIST}\n\n");
        let mut f = filter(Framing::Sse, 64, Overflow::Block);
        let out = String::from_utf8(run(&mut f, body.as_bytes(), 100)).unwrap();
        assert!(out.contains("list_too_large") && !out.contains("delete_debate"));
    }

    #[test]
    fn over_the_bound_pass_sends_it_whole() {
        for at in [10, 70, 100] {
            let mut f = filter(Framing::Json, 64, Overflow::Pass);
            assert_eq!(run(&mut f, LIST.as_bytes(), at), LIST.as_bytes(), "{at}");
            assert!(f.tally.overflow);
        }
        let body = format!("data: {LIST}\n\n");
        let mut f = filter(Framing::Sse, 64, Overflow::Pass);
        assert_eq!(run(&mut f, body.as_bytes(), 100), body.as_bytes());
    }

    #[test]
    fn unreadable_bodies_take_the_fail_mode() {
        let mut f = filter(Framing::Json, 4096, Overflow::Block);
        f.unreadable();
        let first = f.push(b"\x1f\x8b", false).unwrap();
        assert!(String::from_utf8(first).unwrap().contains("list_too_large"));
        assert_eq!(f.push(b"...", true), Some(Vec::new()));
        let mut f = filter(Framing::Json, 4096, Overflow::Pass);
        f.unreadable();
        assert_eq!(f.push(b"\x1f\x8b...", true), None);
    }

    #[test]
    fn entries_without_a_name_are_dropped() {
        let body = br#"{"jsonrpc":"2.0","id":3,"result":{"tools":[{"name":7},{"title":"x"},{"name":"get_debate"}]}}"#;
        let mut f = filter(Framing::Json, 4096, Overflow::Block);
        assert_eq!(names(&run(&mut f, body, 5)), ["get_debate"]);
    }
}

//! A tolerant, streaming scan of a JSON-RPC request body for the facts the
//! filters act on: each message's `method`, `params.name`, `params.uri`, `id`,
//! and the values at configured JSON pointers (the debate id).
//!
//! Why not serde: the filters must read a body the way the MCP server will.
//! The official Python SDK parses with jiter (`pydantic_core.from_json`) in the
//! handshake era and `json.loads` in the 2026-07-28 era. Both accept `NaN`,
//! `Infinity`, `1e400`, 400-digit integers and nesting far deeper than
//! serde_json's 128; both let the *last* of duplicate keys win. A parser that
//! refuses what the server accepts, or keeps the first duplicate, reads a
//! different request than the one that runs (issue 12: a `run_debate_round`
//! charged as the default cost). So this scanner:
//! - never builds a tree: it keeps a small frame per open container and a
//!   capped copy of the strings it wants, so it runs on chunks as they come;
//! - treats any run of non-structural bytes as a scalar (numbers are never
//!   interpreted);
//! - decodes string escapes in keys and values (`"\u006dethod"` is `method`);
//! - lets a later duplicate replace an earlier value, subtree included;
//! - marks a message *settled* only when its object closed in a well-formed
//!   body: an unsettled message may still change, so a caller that prices or
//!   authorizes it must assume the worst.
//!
//! A body it cannot follow (mismatched brackets, a bad escape, a UTF-16 or
//! UTF-32 body, which `json.loads` would decode, nesting past [`MAX_DEPTH`])
//! stops the scan: what came before stays, nothing is settled after it.

use crate::jsonrpc::{MessageFacts, RequestFacts, MAX_FACT_LEN};
use std::rc::Rc;

/// Deepest nesting followed. Python's `json.loads` stops near 1,000 levels
/// (its recursion limit) and jiter near 200; past this the body is broken.
pub const MAX_DEPTH: usize = 1024;

/// Longest JSON-RPC `id` kept, as text. An id is echoed whole or not at all
/// (as `null`): a cut id would name another request.
pub const MAX_ID_LEN: usize = 1024;

/// Longest key compared; a longer key matches nothing we look for.
const MAX_KEY_LEN: usize = 64;

/// At most this many JSON pointers are followed (a bit mask per frame).
pub const MAX_POINTERS: usize = 16;

/// What a value slot is for, decided when the value starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Nothing we keep.
    Ignore,
    /// The top-level value.
    Top,
    /// An element of a top-level array (a batch).
    BatchItem,
    Method,
    Id,
    Params,
    ParamsName,
    ParamsUri,
    JsonRpc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Object,
    Array,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Other,
    Batch,
    Message,
    Params,
}

/// One open container.
#[derive(Debug, Clone)]
struct Frame {
    kind: Kind,
    role: Role,
    /// Pointers whose first `ptr_depth` segments lead here.
    ptr_mask: u16,
    /// Depth below the message root (only meaningful with a mask).
    ptr_depth: u16,
    /// Objects: the next string is a key. Arrays: unused.
    want_key: bool,
    /// A key was read and its `:` is still to come (objects).
    want_colon: bool,
    /// A value (or key) is complete: `,` or the closing bracket comes next.
    after_value: bool,
    /// Objects: the current member's key, as far as it was kept.
    key: Vec<u8>,
    key_overflow: bool,
    /// Arrays: index of the next element.
    index: u32,
}

/// Where the lexer is between bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lex {
    Between,
    /// Inside a string; `escape` is the state of a backslash sequence.
    Str(Escape),
    /// Inside a run of scalar bytes (number, literal, NaN, ...).
    Scalar,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escape {
    None,
    Backslash,
    /// `\u` with this many hex digits read so far and their value.
    Unicode(u8, u16),
}

/// The value being read (string or scalar), when it fills a fact.
#[derive(Debug, Clone, Default)]
struct Pending {
    slot: Option<Slot>,
    /// Pointers whose leaf this value is.
    leaves: u16,
    is_string: bool,
    text: Vec<u8>,
    /// A high surrogate waiting for its pair.
    high: Option<u16>,
}

/// A message under construction.
#[derive(Debug, Clone, Default)]
struct Message {
    method: Option<String>,
    name: Option<String>,
    uri: Option<String>,
    id: Option<Id>,
    has_jsonrpc_key: bool,
    settled: bool,
    pointers: Vec<Option<String>>,
}

/// A JSON-RPC id as it appeared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Id {
    Str(String),
    /// The raw scalar text (`7`, `1e400`, `NaN`): only valid JSON numbers are
    /// ever echoed ([`Id::to_value`]).
    Num(String),
}

impl Id {
    /// The id as a JSON value to echo, `None` when it is no valid JSON number.
    pub fn to_value(&self) -> Option<serde_json::Value> {
        match self {
            Id::Str(s) => Some(serde_json::Value::String(s.clone())),
            Id::Num(raw) => serde_json::from_str::<serde_json::Number>(raw)
                .ok()
                .map(serde_json::Value::Number),
        }
    }
}

/// RFC 6901 pointers, parsed once from config (shared: a request's scanner
/// clones an `Rc`, not the segments).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pointers(Rc<[Vec<String>]>);

impl Pointers {
    /// `None` when a pointer is not of the form `/a/b` or there are more than
    /// [`MAX_POINTERS`].
    pub fn parse<'a>(pointers: impl IntoIterator<Item = &'a str>) -> Option<Self> {
        let mut out = Vec::new();
        for p in pointers {
            let rest = p.strip_prefix('/')?;
            let segments = rest
                .split('/')
                .map(|s| s.replace("~1", "/").replace("~0", "~"))
                .collect();
            out.push(segments);
        }
        (out.len() <= MAX_POINTERS).then(|| Self(out.into()))
    }

    fn all(&self) -> u16 {
        let n = self.0.len().min(MAX_POINTERS);
        (((1u32 << n) - 1) & 0xffff) as u16
    }

    fn index_of(&self, pointer: &str) -> Option<usize> {
        let parsed = Pointers::parse([pointer])?;
        let wanted = parsed.0.first()?;
        self.0.iter().position(|p| p == wanted)
    }
}

/// The scanner: feed chunks with [`push`](Scanner::push), read the facts
/// with [`facts`](Scanner::facts) at any point.
#[derive(Debug, Clone)]
pub struct Scanner {
    pointers: Pointers,
    lex: Lex,
    stack: Vec<Frame>,
    pending: Pending,
    messages: Vec<Message>,
    batch_len: usize,
    top_kind: Option<Kind>,
    /// The top-level value ended.
    done: bool,
    /// The body cannot be followed from here on.
    broken: bool,
    /// Bytes seen, for the start-of-body checks.
    seen: usize,
    /// Bytes of a leading UTF-8 BOM matched.
    bom: u8,
}

impl Scanner {
    pub fn new(pointers: Pointers) -> Self {
        Self {
            pointers,
            lex: Lex::Between,
            stack: Vec::new(),
            pending: Pending::default(),
            messages: Vec::new(),
            batch_len: 0,
            top_kind: None,
            done: false,
            broken: false,
            seen: 0,
            bom: 0,
        }
    }

    /// True when more bytes can change nothing: the top-level value ended or
    /// the body broke.
    pub fn is_done(&self) -> bool {
        self.done || self.broken
    }

    /// Feeds the next chunk of the body.
    pub fn push(&mut self, chunk: &[u8]) {
        const BOM: [u8; 3] = [0xef, 0xbb, 0xbf];
        for &b in chunk {
            if self.broken {
                return;
            }
            let at = self.seen;
            self.seen += 1;
            // json.loads skips a UTF-8 BOM; a cut one cannot be decoded.
            if at < BOM.len() {
                if usize::from(self.bom) == at && BOM.get(at) == Some(&b) {
                    self.bom += 1;
                    continue;
                }
                if self.bom > 0 {
                    self.fail();
                    return;
                }
            }
            // A NUL among the first bytes is UTF-16 or UTF-32, which
            // json.loads decodes and this scanner does not follow.
            if at < 4 && b == 0 {
                self.fail();
                return;
            }
            self.byte(b);
        }
    }

    fn byte(&mut self, b: u8) {
        match self.lex {
            Lex::Str(escape) => self.string_byte(b, escape),
            Lex::Scalar => {
                if is_delimiter(b) {
                    self.end_scalar();
                    self.lex = Lex::Between;
                    self.structural(b);
                } else {
                    self.keep(b);
                }
            }
            Lex::Between => self.structural(b),
        }
    }

    fn structural(&mut self, b: u8) {
        match b {
            b' ' | b'\t' | b'\n' | b'\r' => {}
            b'{' | b'[' => {
                let kind = if b == b'{' { Kind::Object } else { Kind::Array };
                self.open(kind);
            }
            b'}' | b']' => {
                let kind = if b == b'}' { Kind::Object } else { Kind::Array };
                self.close(kind);
            }
            b',' => self.comma(),
            b':' => self.colon(),
            b'"' => {
                if self.is_key_position() {
                    if let Some(f) = self.stack.last_mut() {
                        f.key.clear();
                        f.key_overflow = false;
                    }
                    self.pending = Pending::default();
                } else if !self.begin_value(true) {
                    return;
                }
                self.lex = Lex::Str(Escape::None);
            }
            _ => {
                if self.begin_value(false) {
                    self.lex = Lex::Scalar;
                    self.keep(b);
                }
            }
        }
    }

    fn is_key_position(&self) -> bool {
        self.stack.last().is_some_and(|f| {
            f.kind == Kind::Object && f.want_key && !f.want_colon && !f.after_value
        })
    }

    /// A value starts at the current position: checks the grammar, decides
    /// its slot, and clears what it replaces (the last duplicate wins).
    /// False when the body broke.
    fn begin_value(&mut self, is_string: bool) -> bool {
        let (slot, leaves) = match self.stack.last() {
            None if self.done => return self.fail(),
            None => (Slot::Top, 0),
            Some(f) => {
                let ok = match f.kind {
                    Kind::Object => !f.want_key && !f.want_colon && !f.after_value,
                    Kind::Array => !f.after_value,
                };
                if !ok {
                    return self.fail();
                }
                self.slot_in(f)
            }
        };
        self.clear_replaced(slot, leaves);
        if matches!(slot, Slot::JsonRpc | Slot::Method) {
            if let Some(m) = self.current_message_mut() {
                m.has_jsonrpc_key = true;
            }
        }
        if slot == Slot::BatchItem {
            self.batch_len += 1;
        }
        self.pending = Pending {
            slot: Some(slot),
            leaves,
            is_string,
            ..Pending::default()
        };
        true
    }

    /// Slot and pointer leaves of the value of the current member or element of `f`.
    fn slot_in(&self, f: &Frame) -> (Slot, u16) {
        let key: &[u8] = &f.key;
        let slot = match (f.role, f.kind) {
            (Role::Batch, Kind::Array) => Slot::BatchItem,
            (Role::Message, Kind::Object) if !f.key_overflow => match key {
                b"method" => Slot::Method,
                b"id" => Slot::Id,
                b"params" => Slot::Params,
                b"jsonrpc" => Slot::JsonRpc,
                _ => Slot::Ignore,
            },
            (Role::Params, Kind::Object) if !f.key_overflow => match key {
                b"name" => Slot::ParamsName,
                b"uri" => Slot::ParamsUri,
                _ => Slot::Ignore,
            },
            _ => Slot::Ignore,
        };
        let (child, _) = self.child_mask(f);
        let depth = usize::from(f.ptr_depth) + 1;
        let leaves = self.mask_where(child, |p| p.len() == depth);
        (slot, leaves)
    }

    /// Pointers that continue into the current member or element of `f`.
    fn child_mask(&self, f: &Frame) -> (u16, u16) {
        if f.ptr_mask == 0 || f.key_overflow && f.kind == Kind::Object {
            return (0, f.ptr_depth.saturating_add(1));
        }
        let depth = usize::from(f.ptr_depth);
        let index;
        let segment: &[u8] = match f.kind {
            Kind::Object => &f.key,
            Kind::Array => {
                index = f.index.to_string();
                index.as_bytes()
            }
        };
        let mask = self.mask_where(f.ptr_mask, |p| {
            p.get(depth).is_some_and(|s| s.as_bytes() == segment)
        });
        (mask, f.ptr_depth.saturating_add(1))
    }

    fn mask_where(&self, within: u16, keep: impl Fn(&Vec<String>) -> bool) -> u16 {
        let mut mask = 0u16;
        for (i, p) in self.pointers.0.iter().enumerate().take(MAX_POINTERS) {
            if within & (1 << i) != 0 && keep(p) {
                mask |= 1 << i;
            }
        }
        mask
    }

    /// A new value for a member replaces the old one, subtree included.
    fn clear_replaced(&mut self, slot: Slot, leaves: u16) {
        let replaced_pointers = match self.stack.last() {
            Some(f) => self.child_mask(f).0,
            None => 0,
        };
        let Some(message) = self.current_message_mut() else {
            return;
        };
        match slot {
            Slot::Method => message.method = None,
            Slot::Id => message.id = None,
            Slot::Params => {
                message.name = None;
                message.uri = None;
            }
            Slot::ParamsName => message.name = None,
            Slot::ParamsUri => message.uri = None,
            _ => {}
        }
        for (i, value) in message.pointers.iter_mut().enumerate() {
            if (replaced_pointers | leaves) & (1 << i) != 0 {
                *value = None;
            }
        }
    }

    fn current_message_mut(&mut self) -> Option<&mut Message> {
        let in_message = self.stack.iter().any(|f| f.role == Role::Message);
        if in_message {
            self.messages.last_mut()
        } else {
            None
        }
    }

    fn open(&mut self, kind: Kind) {
        if !self.begin_value(false) {
            return;
        }
        if self.stack.len() >= MAX_DEPTH {
            self.fail();
            return;
        }
        let slot = self.pending.slot.unwrap_or(Slot::Ignore);
        let parent = self.stack.last();
        let (mut mask, mut depth) = parent.map_or((0, 0), |f| self.child_mask(f));
        let role = match (slot, kind) {
            (Slot::Top, Kind::Array) => Role::Batch,
            (Slot::Top, Kind::Object) | (Slot::BatchItem, Kind::Object) => Role::Message,
            (Slot::Params, Kind::Object) => Role::Params,
            _ => Role::Other,
        };
        if slot == Slot::Top {
            self.top_kind = Some(kind);
        }
        if role == Role::Message {
            mask = self.pointers.all();
            depth = 0;
            self.messages.push(Message {
                pointers: vec![None; self.pointers.0.len().min(MAX_POINTERS)],
                ..Message::default()
            });
        }
        self.pending = Pending::default();
        self.stack.push(Frame {
            kind,
            role,
            ptr_mask: mask,
            ptr_depth: depth,
            want_key: kind == Kind::Object,
            want_colon: false,
            after_value: false,
            key: Vec::new(),
            key_overflow: false,
            index: 0,
        });
    }

    fn close(&mut self, kind: Kind) {
        let Some(f) = self.stack.last() else {
            self.fail();
            return;
        };
        // `{}` / `[]` or after a value; never after `,` or a key.
        let empty_ok = match f.kind {
            Kind::Object => f.want_key && !f.want_colon,
            Kind::Array => true,
        };
        let trailing_comma = match f.kind {
            Kind::Object => f.want_key && !f.after_value && f.index > 0,
            Kind::Array => !f.after_value && f.index > 0,
        };
        if f.kind != kind || !(f.after_value || empty_ok) || trailing_comma {
            self.fail();
            return;
        }
        let role = f.role;
        self.stack.pop();
        if role == Role::Message {
            if let Some(m) = self.messages.last_mut() {
                m.settled = true;
            }
        }
        self.value_done();
    }

    fn comma(&mut self) {
        match self.stack.last_mut() {
            Some(f) if f.after_value => {
                f.after_value = false;
                f.index = f.index.saturating_add(1);
                if f.kind == Kind::Object {
                    f.want_key = true;
                }
            }
            _ => {
                self.fail();
            }
        }
    }

    fn colon(&mut self) {
        match self.stack.last_mut() {
            Some(f) if f.kind == Kind::Object && f.want_colon => {
                f.want_colon = false;
                f.want_key = false;
            }
            _ => {
                self.fail();
            }
        }
    }

    /// A value (string, scalar or container) of the current frame ended.
    fn value_done(&mut self) {
        match self.stack.last_mut() {
            Some(f) => f.after_value = true,
            None => self.done = true,
        }
    }

    fn string_byte(&mut self, b: u8, escape: Escape) {
        match escape {
            Escape::None => match b {
                b'"' => {
                    self.lex = Lex::Between;
                    self.end_string();
                }
                b'\\' => self.lex = Lex::Str(Escape::Backslash),
                _ => {
                    self.flush_high();
                    self.keep(b);
                }
            },
            Escape::Backslash => {
                let decoded = match b {
                    b'"' => b'"',
                    b'\\' => b'\\',
                    b'/' => b'/',
                    b'b' => 0x08,
                    b'f' => 0x0c,
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    b'u' => {
                        self.lex = Lex::Str(Escape::Unicode(0, 0));
                        return;
                    }
                    _ => {
                        self.fail();
                        return;
                    }
                };
                self.lex = Lex::Str(Escape::None);
                self.flush_high();
                self.keep(decoded);
            }
            Escape::Unicode(n, value) => {
                let Some(digit) = (b as char).to_digit(16) else {
                    self.fail();
                    return;
                };
                let value = (value << 4) | digit as u16;
                if n < 3 {
                    self.lex = Lex::Str(Escape::Unicode(n + 1, value));
                } else {
                    self.lex = Lex::Str(Escape::None);
                    self.keep_code_unit(value);
                }
            }
        }
    }

    fn keep_code_unit(&mut self, unit: u16) {
        let high = self.pending.high.take();
        let c = match (high, unit) {
            (Some(h), 0xdc00..=0xdfff) => {
                let c = 0x10000 + ((u32::from(h) - 0xd800) << 10) + (u32::from(unit) - 0xdc00);
                char::from_u32(c)
            }
            (_, 0xd800..=0xdbff) => {
                if high.is_some() {
                    self.keep_char(char::REPLACEMENT_CHARACTER);
                }
                self.pending.high = Some(unit);
                return;
            }
            (h, _) => {
                if h.is_some() {
                    self.keep_char(char::REPLACEMENT_CHARACTER);
                }
                char::from_u32(u32::from(unit))
            }
        };
        self.keep_char(c.unwrap_or(char::REPLACEMENT_CHARACTER));
    }

    /// A high surrogate not followed by its low half is a lone one.
    fn flush_high(&mut self) {
        if self.pending.high.take().is_some() {
            self.keep_char(char::REPLACEMENT_CHARACTER);
        }
    }

    fn keep_char(&mut self, c: char) {
        let mut buf = [0u8; 4];
        for &b in c.encode_utf8(&mut buf).as_bytes() {
            self.keep(b);
        }
    }

    /// Keeps one decoded byte of the current key or wanted value.
    fn keep(&mut self, b: u8) {
        if self.is_reading_key() {
            if let Some(f) = self.stack.last_mut() {
                if f.key.len() < MAX_KEY_LEN {
                    f.key.push(b);
                } else {
                    f.key_overflow = true;
                }
            }
            return;
        }
        let wanted = self.pending.leaves != 0
            || matches!(
                self.pending.slot,
                Some(Slot::Method | Slot::Id | Slot::ParamsName | Slot::ParamsUri)
            );
        let cap = if self.pending.slot == Some(Slot::Id) {
            MAX_ID_LEN
        } else {
            MAX_FACT_LEN
        };
        // One byte past the cap tells a capped value from one that fits.
        if wanted && self.pending.text.len() <= cap {
            self.pending.text.push(b);
        }
    }

    fn is_reading_key(&self) -> bool {
        matches!(self.lex, Lex::Str(_)) && self.pending.slot.is_none() && self.is_key_position()
    }

    fn end_string(&mut self) {
        self.flush_high();
        if self.pending.slot.is_none() && self.is_key_position() {
            if let Some(f) = self.stack.last_mut() {
                f.want_colon = true;
                f.after_value = false;
            }
            return;
        }
        self.store_value();
        self.value_done();
    }

    fn end_scalar(&mut self) {
        self.store_value();
        self.value_done();
    }

    /// Puts a finished string or scalar where its slot says.
    fn store_value(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        let text = fact_text(&pending.text);
        let Some(message) = self.current_message_mut() else {
            return;
        };
        match (pending.slot, pending.is_string) {
            (Some(Slot::Method), true) => message.method = Some(text.clone()),
            (Some(Slot::ParamsName), true) => message.name = Some(text.clone()),
            (Some(Slot::ParamsUri), true) => message.uri = Some(text.clone()),
            (Some(Slot::Id), is_string) => {
                let whole = String::from_utf8_lossy(&pending.text);
                message.id = match (is_string, pending.text.len() > MAX_ID_LEN) {
                    (_, true) => None,
                    (true, false) => Some(Id::Str(whole.into_owned())),
                    (false, false) if whole != "null" => Some(Id::Num(whole.into_owned())),
                    (false, false) => None,
                };
            }
            _ => {}
        }
        if pending.leaves != 0 && (pending.is_string || !is_literal(&text)) {
            for (i, value) in message.pointers.iter_mut().enumerate() {
                if pending.leaves & (1 << i) != 0 {
                    *value = Some(text.clone());
                }
            }
        }
    }

    fn fail(&mut self) -> bool {
        self.broken = true;
        false
    }

    /// The facts so far. `None` when the body is plainly not JSON-RPC: empty,
    /// a lone scalar or string, or complete with no JSON-RPC message. A body
    /// that is cut or broken always yields facts, its open (or unseen)
    /// message unsettled.
    pub fn facts(&self) -> Option<RequestFacts> {
        if self.top_kind.is_none() && !self.broken {
            return None;
        }
        let complete = self.done && !self.broken;
        let mut messages: Vec<MessageFacts> = self
            .messages
            .iter()
            // A closed object without `jsonrpc` or `method` is no message;
            // an open one may still become one.
            .filter(|m| !m.settled || m.has_jsonrpc_key)
            .map(|m| MessageFacts {
                method: m.method.clone(),
                tool: (m.method.as_deref() == Some("tools/call"))
                    .then(|| m.name.clone())
                    .flatten(),
                name: m.name.clone(),
                uri: m.uri.clone(),
                id: m.id.as_ref().and_then(Id::to_value),
                // The server refuses a body that breaks, whatever came first.
                settled: m.settled && !self.broken,
                pointers: m.pointers.clone(),
            })
            .collect();
        if messages.is_empty() {
            if complete {
                return None;
            }
            messages.push(MessageFacts::unsettled(self.pointers.0.len()));
        }
        let first = messages.first().cloned().unwrap_or_default();
        Some(RequestFacts {
            method: first.method,
            tool: first.tool,
            id: first.id,
            batch_len: self.batch_len.max(1),
            batch: self.top_kind == Some(Kind::Array),
            messages,
            truncated: !self.done && !self.broken,
            broken: self.broken,
            pointers: self.pointers.clone(),
        })
    }
}

impl RequestFacts {
    /// The string (or number) at `pointer` (one the scan was configured
    /// with) in the first message that has one.
    pub fn pointer(&self, pointer: &str) -> Option<String> {
        self.pointer_at(self.pointers.index_of(pointer)?)
    }

    /// Like [`pointer`](Self::pointer), by the pointer's index in the
    /// scan's [`Pointers`] (no parsing per lookup).
    pub fn pointer_at(&self, index: usize) -> Option<String> {
        self.messages
            .iter()
            .find_map(|m| m.pointers.get(index).cloned().flatten())
    }
}

fn is_delimiter(b: u8) -> bool {
    matches!(
        b,
        b' ' | b'\t' | b'\n' | b'\r' | b'{' | b'}' | b'[' | b']' | b',' | b':' | b'"'
    )
}

fn is_literal(text: &str) -> bool {
    matches!(text, "null" | "true" | "false")
}

/// Decoded bytes as a fact: lossy UTF-8, capped to [`MAX_FACT_LEN`] on a
/// character boundary.
fn fact_text(bytes: &[u8]) -> String {
    let mut s = String::from_utf8_lossy(bytes).into_owned();
    if s.len() > MAX_FACT_LEN {
        let mut end = MAX_FACT_LEN;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// Scans a whole body (or a prefix of one) in one go.
pub fn scan(body: &[u8], pointers: &Pointers) -> Option<RequestFacts> {
    let mut scanner = Scanner::new(pointers.clone());
    scanner.push(body);
    scanner.facts()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call_with(before_params: &str, tool: &str, before_name: &str) -> String {
        format!(
            r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call"{before_params},"params":{{{before_name}"name":"{tool}","arguments":{{"debate_id":"d-1"}}}}}}"#
        )
    }

    fn pointers() -> Pointers {
        Pointers::parse(["/params/arguments/debate_id"]).unwrap()
    }

    fn facts(body: &str) -> RequestFacts {
        scan(body.as_bytes(), &pointers()).unwrap()
    }

    fn settled_tool(body: &str) -> Option<String> {
        let f = facts(body);
        let m = f.messages.first().unwrap();
        assert!(m.settled, "not settled: {body}");
        m.tool.clone()
    }

    /// Bodies the official MCP server accepts and serde_json refuses (issue 12).
    #[test]
    fn what_the_python_server_accepts_is_read() {
        for value in ["NaN", "Infinity", "-Infinity", "1e400", &"9".repeat(400)] {
            let body = call_with(&format!(r#","x":{value}"#), "run_debate_round", "");
            assert_eq!(
                settled_tool(&body).as_deref(),
                Some("run_debate_round"),
                "{value}"
            );
            let body = call_with("", "run_debate_round", &format!(r#""n":{value},"#));
            assert_eq!(settled_tool(&body).as_deref(), Some("run_debate_round"));
        }
        let deep = format!("{}1{}", "[".repeat(300), "]".repeat(300));
        let body = call_with(&format!(r#","pad":{deep}"#), "run_debate_round", "");
        assert_eq!(settled_tool(&body).as_deref(), Some("run_debate_round"));
        assert_eq!(
            facts(&body)
                .pointer("/params/arguments/debate_id")
                .as_deref(),
            Some("d-1")
        );
    }

    #[test]
    fn the_last_duplicate_wins_like_python() {
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_debate","name":"run_debate_round"}}"#;
        assert_eq!(settled_tool(body).as_deref(), Some("run_debate_round"));
        let body = r#"{"jsonrpc":"2.0","method":"ping","id":1,"method":"tools/call","params":{"name":"x"}}"#;
        assert_eq!(settled_tool(body).as_deref(), Some("x"));
        // A later params replaces the whole object, name and pointer included.
        let body = r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"a","arguments":{"debate_id":"d"}},"params":{}}"#;
        let f = facts(body);
        assert_eq!(f.messages[0].tool, None);
        assert_eq!(f.pointer("/params/arguments/debate_id"), None);
    }

    #[test]
    fn escaped_keys_and_values_are_decoded() {
        let body = r#"{"jsonrpc":"2.0","\u006dethod":"tools\/call","params":{"n\u0061me":"run_\u0064ebate_round"}}"#;
        assert_eq!(settled_tool(body).as_deref(), Some("run_debate_round"));
        let body =
            r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"\ud83d\ude00 \ud800x"}}"#;
        assert_eq!(settled_tool(body).as_deref(), Some("\u{1F600} \u{FFFD}x"));
    }

    #[test]
    fn a_cut_message_is_never_settled() {
        // Padding before params, or arguments before name, past the cut.
        for body in [
            call_with(
                &format!(r#","pad":"{}""#, "a".repeat(100)),
                "run_debate_round",
                "",
            ),
            call_with(
                "",
                "run_debate_round",
                &format!(r#""arguments":"{}","#, "a".repeat(100)),
            ),
        ] {
            let cut = &body.as_bytes()[..60];
            let f = scan(cut, &pointers()).unwrap();
            assert!(f.truncated && !f.messages[0].settled);
            assert_eq!(f.messages[0].tool, None);
        }
        // Even with the name read, a later duplicate could replace it.
        let body = call_with("", "get_debate", "");
        let cut = &body.as_bytes()[..body.len() - 1];
        let f = scan(cut, &pointers()).unwrap();
        assert_eq!(f.messages[0].tool.as_deref(), Some("get_debate"));
        assert!(!f.messages[0].settled);
    }

    #[test]
    fn a_body_cut_before_anything_is_an_unsettled_message() {
        for cut in ["{", "[", "[{", r#"{"id":1,"params":{"pad":"#, r#"{"x"#] {
            let f = scan(cut.as_bytes(), &pointers()).unwrap();
            assert!(
                !f.messages.is_empty() && f.messages.iter().all(|m| !m.settled),
                "{cut}"
            );
        }
    }

    #[test]
    fn broken_and_foreign_encodings_settle_nothing() {
        let utf16: Vec<u8> = r#"{"method":"ping"}"#.bytes().flat_map(|b| [b, 0]).collect();
        for body in [
            &utf16[..],
            b"{\"method\":\"ping\"]",
            b"{\"method\" \"ping\"}",
            b"{\"method\":\"ping\",}",
            b"[{\"jsonrpc\":\"2.0\",\"method\":\"ping\"},]",
            b"{\"method\":\"p\\x\"}",
            b"\xef\xbb{}",
        ] {
            let f = scan(body, &pointers()).unwrap_or_else(|| panic!("{body:?}"));
            assert!(
                f.broken && f.messages.iter().all(|m| !m.settled),
                "{body:?}"
            );
        }
        let too_deep = format!("{{\"method\":\"ping\",\"x\":{}", "[".repeat(MAX_DEPTH + 1));
        assert!(facts(&too_deep).broken);
    }

    #[test]
    fn a_utf8_bom_is_skipped_like_json_loads() {
        let body = [&b"\xef\xbb\xbf"[..], call_with("", "t", "").as_bytes()].concat();
        let f = scan(&body, &pointers()).unwrap();
        assert!(f.is_complete() && f.messages[0].settled);
    }

    #[test]
    fn ids_echo_only_as_valid_json() {
        let id = |raw: &str| {
            let body = format!(r#"{{"jsonrpc":"2.0","id":{raw},"method":"ping"}}"#);
            facts(&body).id
        };
        assert_eq!(id("7"), Some(serde_json::Value::from(7)));
        assert_eq!(id(r#""a""#), Some(serde_json::Value::from("a")));
        assert_eq!(id("NaN"), None);
        assert_eq!(id("null"), None);
        assert_eq!(id("{}"), None);
    }

    /// Found by the differential fuzz target: a numeric id longer than the
    /// fact cap was cut before it was parsed (`...e-6661` lost its exponent)
    /// and echoed as another number.
    #[test]
    fn long_ids_are_echoed_whole_or_not_at_all() {
        let id = |raw: &str| {
            let body = format!(r#"{{"jsonrpc":"2.0","id":{raw},"method":"ping"}}"#);
            facts(&body).id
        };
        let long_number = format!("{}1e-6661", "6".repeat(300));
        assert_eq!(id(&long_number), serde_json::from_str(&long_number).ok());
        let long_string = format!("\"{}\"", "s".repeat(600));
        assert_eq!(
            id(&long_string),
            Some(serde_json::Value::from("s".repeat(600)))
        );
        assert_eq!(id(&format!("\"{}\"", "s".repeat(MAX_ID_LEN + 1))), None);
        assert_eq!(id(&"7".repeat(MAX_ID_LEN + 1)), None);
    }

    #[test]
    fn batches_count_every_element_and_settle_each_message() {
        let body = r#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}}, 3, {"x":1}, {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"b"}}]"#;
        let f = facts(body);
        assert_eq!(f.batch_len, 4);
        let tools: Vec<_> = f.messages.iter().map(|m| m.tool.as_deref()).collect();
        assert_eq!(tools, vec![Some("a"), Some("b")]);
        assert!(f.is_complete() && f.messages.iter().all(|m| m.settled));
    }

    #[test]
    fn uri_and_name_of_other_methods() {
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"debate://d-1?x=1"}}"#;
        let f = facts(body);
        assert_eq!(f.messages[0].uri.as_deref(), Some("debate://d-1?x=1"));
        assert_eq!(f.messages[0].tool, None);
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"summary"}}"#;
        assert_eq!(facts(body).messages[0].name.as_deref(), Some("summary"));
    }

    /// Chunks split anywhere read exactly like the whole body.
    #[test]
    fn every_split_point_gives_the_whole_body_facts() {
        let body = r#"{"jsonrpc":"2.0","id":"x\"y","method":"tools/call","params":{"name":"r\u00e9","arguments":{"debate_id":12.5e3,"t":[NaN,{"a":"\\"}]}}}"#;
        let whole = facts(body);
        assert_eq!(
            whole.pointer("/params/arguments/debate_id").as_deref(),
            Some("12.5e3")
        );
        for split in 0..=body.len() {
            let mut s = Scanner::new(pointers());
            let (a, b) = body.as_bytes().split_at(split);
            s.push(a);
            s.push(b);
            assert_eq!(s.facts().as_ref(), Some(&whole), "split at {split}");
        }
    }

    #[test]
    fn pointers_parse_and_refuse() {
        assert!(Pointers::parse(["/a/b~1c"]).is_some());
        assert!(Pointers::parse(["a/b"]).is_none());
        let many: Vec<String> = (0..=MAX_POINTERS).map(|i| format!("/p{i}")).collect();
        assert!(Pointers::parse(many.iter().map(String::as_str)).is_none());
        let body = r#"{"jsonrpc":"2.0","method":"x","params":{"a/b":["z",{"k":"v"}]}}"#;
        let p = Pointers::parse(["/params/a~1b/1/k", "/params/a~1b/0"]).unwrap();
        let f = scan(body.as_bytes(), &p).unwrap();
        assert_eq!(f.pointer("/params/a~1b/1/k").as_deref(), Some("v"));
        assert_eq!(f.pointer("/params/a~1b/0").as_deref(), Some("z"));
    }
}

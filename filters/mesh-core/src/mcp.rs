//! MCP facts: what a request says about itself, in both eras of MCP.
//!
//! - **Modern** (2026-07-28 and later, stateless): every POST names its
//!   protocol version, method and (for `tools/call`, `prompts/get`,
//!   `resources/read`) its tool, prompt or URI in headers
//!   (`MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`), and the body repeats
//!   them (`params._meta`, `method`, `params.name` / `params.uri`).
//! - **Handshake era** (up to 2025-11-25): no such headers but the version;
//!   the body is the only source.
//!
//! A stage may act on the headers of a modern request before its body
//! arrives only because [`check`] holds the headers to the body, the way the
//! official SDK's server does (`mcp/shared/inbound.py`), and a request whose
//! body disagrees is refused before any of its body reaches the service.

use crate::jsonrpc::{MessageFacts, RequestFacts, MAX_FACT_LEN};
use crate::stage::header_in;
use base64::Engine;

/// Request header names (Envoy hands them over lowercase).
pub mod header {
    pub const PROTOCOL_VERSION: &str = "mcp-protocol-version";
    pub const METHOD: &str = "mcp-method";
    pub const NAME: &str = "mcp-name";
    pub const SESSION_ID: &str = "mcp-session-id";
    /// The headers a request may carry once only: a first-copy reader and a
    /// last-copy reader would disagree.
    pub const ROUTING: [&str; 3] = [PROTOCOL_VERSION, METHOD, NAME];
}

/// JSON pointers into a request body for the facts headers do not carry
/// everywhere: the modern envelope in `params._meta`, and the handshake-era
/// `initialize` params.
pub mod pointer {
    pub const ENVELOPE_VERSION: &str = "/params/_meta/io.modelcontextprotocol~1protocolVersion";
    pub const ENVELOPE_CLIENT_NAME: &str = "/params/_meta/io.modelcontextprotocol~1clientInfo/name";
    pub const ENVELOPE_CLIENT_VERSION: &str =
        "/params/_meta/io.modelcontextprotocol~1clientInfo/version";
    pub const INITIALIZE_VERSION: &str = "/params/protocolVersion";
    pub const INITIALIZE_CLIENT_NAME: &str = "/params/clientInfo/name";
    pub const INITIALIZE_CLIENT_VERSION: &str = "/params/clientInfo/version";
    /// In this order, so [`super::BodyMeta::from_pointers`] reads them by index.
    pub const ALL: [&str; 6] = [
        ENVELOPE_VERSION,
        ENVELOPE_CLIENT_NAME,
        ENVELOPE_CLIENT_VERSION,
        INITIALIZE_VERSION,
        INITIALIZE_CLIENT_NAME,
        INITIALIZE_CLIENT_VERSION,
    ];
}

/// JSON-RPC error codes of MCP (`mcp_types/jsonrpc.py`).
pub mod code {
    pub const INVALID_REQUEST: i64 = -32600;
    pub const INVALID_PARAMS: i64 = -32602;
    /// Headers disagree with the body, or are missing or malformed.
    pub const HEADER_MISMATCH: i64 = -32020;
}

/// Protocol versions reached through the `initialize` handshake; any other
/// `MCP-Protocol-Version` is modern (the SDK routes unknown values to the
/// modern path too, so it can refuse them).
pub const HANDSHAKE_VERSIONS: [&str; 4] = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];

/// Versions whose messages may come in JSON-RPC batches (batches left MCP in
/// 2025-06-18).
pub const BATCH_VERSIONS: [&str; 2] = ["2024-11-05", "2025-03-26"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Era {
    Modern,
    Handshake,
}

/// The methods whose target is named in `Mcp-Name`, and the body field it
/// mirrors.
pub fn name_param(method: &str) -> Option<NameParam> {
    match method {
        "tools/call" | "prompts/get" => Some(NameParam::Name),
        "resources/read" => Some(NameParam::Uri),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameParam {
    /// `params.name`
    Name,
    /// `params.uri`
    Uri,
}

impl NameParam {
    pub fn field(self) -> &'static str {
        match self {
            NameParam::Name => "name",
            NameParam::Uri => "uri",
        }
    }

    /// This field of a body message.
    pub fn of(self, message: &MessageFacts) -> Option<&str> {
        match self {
            NameParam::Name => message.name.as_deref(),
            NameParam::Uri => message.uri.as_deref(),
        }
    }
}

/// What a request's headers say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderFacts {
    pub version: Option<String>,
    pub method: Option<String>,
    /// `Mcp-Name`, decoded from its `=?base64?...?=` form when so sent.
    pub name: Option<String>,
    /// `Mcp-Name` was sent but is not text, or a malformed base64 form.
    pub name_malformed: bool,
    pub session_id: Option<String>,
    /// A routing header that came more than once.
    pub duplicated: Option<&'static str>,
}

impl HeaderFacts {
    /// Reads the MCP headers of one snapshot (every copy, to see repeats).
    pub fn read(headers: &[(String, Vec<u8>)]) -> Self {
        let text = |name: &str| {
            header_in(headers, name)
                .and_then(|v| std::str::from_utf8(v).ok())
                .map(str::to_string)
        };
        let duplicated = header::ROUTING
            .into_iter()
            .find(|name| headers.iter().filter(|(k, _)| k == name).count() > 1);
        let raw_name = header_in(headers, header::NAME);
        let name = raw_name
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(decode_header_value);
        Self {
            version: text(header::PROTOCOL_VERSION),
            method: text(header::METHOD),
            name_malformed: raw_name.is_some() && name.is_none(),
            name,
            session_id: text(header::SESSION_ID),
            duplicated,
        }
    }

    pub fn era(&self) -> Era {
        match self.version.as_deref() {
            Some(v) if !HANDSHAKE_VERSIONS.contains(&v) => Era::Modern,
            _ => Era::Handshake,
        }
    }

    /// The call these headers announce, once they pass [`check_headers`].
    pub fn call(&self) -> Option<Call> {
        let method = self.method.clone()?;
        let name = name_param(&method).and_then(|_| self.name.clone());
        Some(Call { method, name })
    }
}

/// One MCP call, as authorization and cost rules see it: the method, and the
/// tool, prompt or resource URI it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub method: String,
    pub name: Option<String>,
}

impl Call {
    /// This call as the facts of a one-message body whose facts are settled:
    /// what a stage that prices or authorizes bodies reads, for a modern
    /// request decided on its (checked) headers.
    pub fn facts(&self) -> RequestFacts {
        let mut message = MessageFacts {
            method: Some(self.method.clone()),
            settled: true,
            ..MessageFacts::default()
        };
        match name_param(&self.method) {
            Some(NameParam::Name) => message.name = self.name.clone(),
            Some(NameParam::Uri) => message.uri = self.name.clone(),
            None => {}
        }
        if self.method == "tools/call" {
            message.tool = self.name.clone();
        }
        RequestFacts {
            method: message.method.clone(),
            tool: message.tool.clone(),
            batch_len: 1,
            messages: vec![message],
            ..RequestFacts::default()
        }
    }

    /// The call a body message makes; `None` for a message without a method
    /// (a response the client posts).
    pub fn of(message: &MessageFacts) -> Option<Call> {
        let method = message.method.clone()?;
        let name = name_param(&method).and_then(|p| p.of(message).map(str::to_string));
        Some(Call { method, name })
    }
}

/// `decode_header_value` of the SDK: plain printable text as is, the
/// `=?base64?<payload>?=` form decoded (canonical base64 of UTF-8 only).
pub fn decode_header_value(value: &str) -> Option<String> {
    let Some(payload) = value
        .strip_prefix("=?base64?")
        .and_then(|v| v.strip_suffix("?="))
    else {
        return Some(value.to_string());
    };
    let engine = base64::engine::general_purpose::STANDARD;
    let decoded = engine.decode(payload).ok()?;
    // Non-canonical base64 (stray bits) is refused, as the SDK refuses it.
    if engine.encode(&decoded) != payload {
        return None;
    }
    String::from_utf8(decoded).ok()
}

/// Why a modern request's headers and body do not agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mismatch {
    /// A routing header came more than once.
    Duplicated(&'static str),
    /// A modern POST without `Mcp-Method`.
    MissingMethod,
    /// The body carries no envelope protocol version.
    MissingEnvelope,
    Version,
    Method,
    /// `Mcp-Name` and the body's `name` / `uri` differ, one is missing, or
    /// the header is malformed.
    Name(NameParam),
    /// A name too long to compare whole (facts are capped).
    NameTooLong,
    /// A modern body that is a batch (the SDK refuses batches too).
    Batch,
    /// The body ended, broke or went over the bound before its message
    /// closed: the headers cannot be held to it.
    Unverifiable,
}

impl Mismatch {
    /// The JSON-RPC error code the SDK's server answers with.
    pub fn code(self) -> i64 {
        match self {
            Mismatch::MissingEnvelope => code::INVALID_PARAMS,
            Mismatch::Batch => code::INVALID_REQUEST,
            _ => code::HEADER_MISMATCH,
        }
    }

    /// The SDK's message, or one in its words.
    pub fn message(self) -> String {
        match self {
            Mismatch::Duplicated(name) => format!("{name} header appears more than once"),
            Mismatch::MissingMethod => format!("{} header is missing", header::METHOD),
            Mismatch::MissingEnvelope => format!(
                "params._meta is missing the required envelope key(s): {}",
                "io.modelcontextprotocol/protocolVersion"
            ),
            Mismatch::Version => format!(
                "{} header does not match the request envelope's protocol version",
                header::PROTOCOL_VERSION
            ),
            Mismatch::Method => format!(
                "{} header does not match the request body's method",
                header::METHOD
            ),
            Mismatch::Name(param) => format!(
                "{} header does not match the request body's '{}' parameter",
                header::NAME,
                param.field()
            ),
            Mismatch::NameTooLong => format!(
                "{} is longer than the {MAX_FACT_LEN} bytes the mesh compares",
                header::NAME
            ),
            Mismatch::Batch => "batches are not part of this protocol version".to_string(),
            Mismatch::Unverifiable => {
                "the request body could not be read far enough to check its MCP headers".to_string()
            }
        }
    }

    /// A short name for logs and metric labels.
    pub fn label(self) -> &'static str {
        match self {
            Mismatch::Duplicated(_) => "duplicated",
            Mismatch::MissingMethod => "missing_method",
            Mismatch::MissingEnvelope => "missing_envelope",
            Mismatch::Version => "version",
            Mismatch::Method => "method",
            Mismatch::Name(_) | Mismatch::NameTooLong => "name",
            Mismatch::Batch => "batch",
            Mismatch::Unverifiable => "unverifiable",
        }
    }

    pub const LABELS: [&'static str; 8] = [
        "duplicated",
        "missing_method",
        "missing_envelope",
        "version",
        "method",
        "name",
        "batch",
        "unverifiable",
    ];
}

/// The checks that need no body: a modern POST carries each routing header
/// once, `Mcp-Method` among them, and a readable `Mcp-Name`.
pub fn check_headers(headers: &HeaderFacts) -> Result<(), Mismatch> {
    if let Some(name) = headers.duplicated {
        return Err(Mismatch::Duplicated(name));
    }
    let method = headers.method.as_deref().ok_or(Mismatch::MissingMethod)?;
    if let Some(param) = name_param(method) {
        if headers.name_malformed {
            return Err(Mismatch::Name(param));
        }
        if headers
            .name
            .as_ref()
            .is_some_and(|n| n.len() >= MAX_FACT_LEN)
        {
            return Err(Mismatch::NameTooLong);
        }
    }
    Ok(())
}

/// Holds a modern request's headers to its one body message (read through a
/// scanner following [`pointer::ALL`]), in the SDK's order: envelope, version,
/// method, name. Stricter than the SDK in one place: an `Mcp-Name` with no
/// body field to match is refused, because a stage may already have acted
/// on that name.
pub fn check(headers: &HeaderFacts, message: &MessageFacts) -> Result<(), Mismatch> {
    check_headers(headers)?;
    if !message.settled {
        return Err(Mismatch::Unverifiable);
    }
    let meta = BodyMeta::from_pointers(&message.pointers);
    let body_version = meta.envelope_version.ok_or(Mismatch::MissingEnvelope)?;
    if headers.version.as_deref() != Some(body_version.as_str()) {
        return Err(Mismatch::Version);
    }
    let method = message.method.as_deref();
    if headers.method.as_deref() != method {
        return Err(Mismatch::Method);
    }
    if let Some(param) = method.and_then(name_param) {
        match (headers.name.as_deref(), param.of(message)) {
            (_, Some(body)) if body.len() >= MAX_FACT_LEN => return Err(Mismatch::NameTooLong),
            (Some(h), Some(b)) if h == b => {}
            (None, None) => {}
            _ => return Err(Mismatch::Name(param)),
        }
    }
    Ok(())
}

/// The facts only the body carries, in both eras.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BodyMeta {
    pub envelope_version: Option<String>,
    pub client_name: Option<String>,
    pub client_version: Option<String>,
    /// `initialize`'s `params.protocolVersion` (handshake era).
    pub initialize_version: Option<String>,
}

impl BodyMeta {
    /// From a message's pointer values, the scan having followed [`pointer::ALL`].
    pub fn from_pointers(values: &[Option<String>]) -> Self {
        let at = |i: usize| values.get(i).cloned().flatten();
        Self {
            envelope_version: at(0),
            client_name: at(1).or_else(|| at(4)),
            client_version: at(2).or_else(|| at(5)),
            initialize_version: at(3),
        }
    }
}

/// May a body with `messages` messages, sent at `version`, be a batch? Only
/// versions before 2025-06-18 (and a handshake-era request without a version
/// header, which can only be an `initialize` or a pre-2025-06-18 client).
pub fn batch_allowed(era: Era, version: Option<&str>) -> bool {
    match (era, version) {
        (Era::Modern, _) => false,
        (Era::Handshake, None) => true,
        (Era::Handshake, Some(v)) => BATCH_VERSIONS.contains(&v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonrpc_scan::{scan, Pointers};

    fn headers(pairs: &[(&str, &str)]) -> HeaderFacts {
        let owned: Vec<(String, Vec<u8>)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect();
        HeaderFacts::read(&owned)
    }

    fn message(body: &str) -> MessageFacts {
        let pointers = Pointers::parse(pointer::ALL).unwrap();
        let facts = scan(body.as_bytes(), &pointers).unwrap();
        facts.messages.into_iter().next().unwrap()
    }

    const CALL: &str = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"get_debate","arguments":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"mcp","version":"2.3.0"}}}}"#;

    fn modern(extra: &[(&str, &str)]) -> HeaderFacts {
        let mut pairs = vec![
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
        ];
        pairs.extend_from_slice(extra);
        headers(&pairs)
    }

    #[test]
    fn eras_follow_the_version_header() {
        assert_eq!(headers(&[]).era(), Era::Handshake);
        assert_eq!(
            headers(&[("mcp-protocol-version", "2025-11-25")]).era(),
            Era::Handshake
        );
        assert_eq!(modern(&[]).era(), Era::Modern);
        // Unknown versions go the modern way, where they can be refused.
        assert_eq!(
            headers(&[("mcp-protocol-version", "zzz")]).era(),
            Era::Modern
        );
    }

    #[test]
    fn matching_headers_pass() {
        let h = modern(&[("mcp-name", "get_debate")]);
        assert_eq!(check(&h, &message(CALL)), Ok(()));
        let meta = BodyMeta::from_pointers(&message(CALL).pointers);
        assert_eq!(meta.client_name.as_deref(), Some("mcp"));
        assert_eq!(meta.client_version.as_deref(), Some("2.3.0"));
    }

    #[test]
    fn every_disagreement_is_named() {
        let m = message(CALL);
        let cases: Vec<(HeaderFacts, Mismatch)> = vec![
            (
                modern(&[("mcp-name", "delete_debate")]),
                Mismatch::Name(NameParam::Name),
            ),
            // A body field with no header.
            (modern(&[]), Mismatch::Name(NameParam::Name)),
            // Values are compared as sent: case matters.
            (
                modern(&[("mcp-name", "GET_DEBATE")]),
                Mismatch::Name(NameParam::Name),
            ),
            (
                headers(&[
                    ("mcp-protocol-version", "2026-07-28"),
                    ("mcp-method", "tools/list"),
                    ("mcp-name", "get_debate"),
                ]),
                Mismatch::Method,
            ),
            (
                headers(&[
                    ("mcp-protocol-version", "2027-01-01"),
                    ("mcp-method", "tools/call"),
                    ("mcp-name", "get_debate"),
                ]),
                Mismatch::Version,
            ),
            (
                headers(&[("mcp-protocol-version", "2026-07-28")]),
                Mismatch::MissingMethod,
            ),
            (
                headers(&[
                    ("mcp-protocol-version", "2026-07-28"),
                    ("mcp-method", "tools/call"),
                    ("mcp-method", "tools/call"),
                    ("mcp-name", "get_debate"),
                ]),
                Mismatch::Duplicated("mcp-method"),
            ),
            (
                modern(&[("mcp-name", "=?base64?!!?=")]),
                Mismatch::Name(NameParam::Name),
            ),
        ];
        for (h, want) in cases {
            assert_eq!(check(&h, &m), Err(want), "{h:?}");
        }
    }

    #[test]
    fn a_header_name_with_no_body_field_is_refused() {
        let body = CALL.replace(r#""name":"get_debate","#, "");
        let h = modern(&[("mcp-name", "get_debate")]);
        assert_eq!(
            check(&h, &message(&body)),
            Err(Mismatch::Name(NameParam::Name))
        );
    }

    #[test]
    fn base64_names_decode_like_the_sdk() {
        assert_eq!(
            decode_header_value("=?base64?Z2V0X2RlYmF0ZQ==?=").as_deref(),
            Some("get_debate")
        );
        // Stray bits: not canonical.
        assert_eq!(decode_header_value("=?base64?Z2V0X2RlYmF0ZR==?="), None);
        let h = modern(&[("mcp-name", "=?base64?Z2V0X2RlYmF0ZQ==?=")]);
        assert_eq!(check(&h, &message(CALL)), Ok(()));
    }

    #[test]
    fn names_too_long_to_compare_are_refused() {
        let long = "a".repeat(MAX_FACT_LEN + 10);
        let body = CALL.replace("get_debate", &long);
        let h = modern(&[("mcp-name", &long)]);
        assert_eq!(check(&h, &message(&body)), Err(Mismatch::NameTooLong));
    }

    #[test]
    fn a_body_without_an_envelope_or_cut_short_is_refused() {
        let bare = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#;
        let h = headers(&[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/list"),
        ]);
        assert_eq!(check(&h, &message(bare)), Err(Mismatch::MissingEnvelope));
        let cut = CALL.get(..CALL.len() - 3).unwrap();
        let h = modern(&[("mcp-name", "get_debate")]);
        assert_eq!(check(&h, &message(cut)), Err(Mismatch::Unverifiable));
    }

    #[test]
    fn resources_compare_the_uri() {
        let body = r#"{"jsonrpc":"2.0","id":"r","method":"resources/read","params":{"uri":"debate://1","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;
        let h = headers(&[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "resources/read"),
            ("mcp-name", "debate://1"),
        ]);
        assert_eq!(check(&h, &message(body)), Ok(()));
        let h = headers(&[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "resources/read"),
            ("mcp-name", "debate://2"),
        ]);
        assert_eq!(
            check(&h, &message(body)),
            Err(Mismatch::Name(NameParam::Uri))
        );
    }

    #[test]
    fn batches_only_before_2025_06_18() {
        assert!(batch_allowed(Era::Handshake, None));
        assert!(batch_allowed(Era::Handshake, Some("2025-03-26")));
        assert!(!batch_allowed(Era::Handshake, Some("2025-06-18")));
        assert!(!batch_allowed(Era::Modern, Some("2026-07-28")));
    }
}

//! Token usage in LLM provider responses: OpenAI Chat Completions (and every
//! OpenAI-compatible server), OpenAI Responses, Anthropic Messages, Google
//! Gemini generateContent / streamGenerateContent; JSON bodies and SSE streams.
//!
//! Counts are normalized to one meaning whatever the provider, the one of the
//! OpenTelemetry GenAI conventions (`gen_ai.usage.input_tokens` includes
//! cached input):
//!
//! | [`Usage`] field | OpenAI chat | OpenAI Responses | Anthropic | Gemini |
//! |---|---|---|---|---|
//! | `input` | `prompt_tokens` | `input_tokens` | `input_tokens + cache_creation_input_tokens + cache_read_input_tokens` | `promptTokenCount + toolUsePromptTokenCount` |
//! | `output` | `completion_tokens` | `output_tokens` | `output_tokens` | `candidatesTokenCount + thoughtsTokenCount` |
//! | `cached_input` (part of input) | `prompt_tokens_details.cached_tokens` | `input_tokens_details.cached_tokens` | `cache_read_input_tokens` | `cachedContentTokenCount` |
//! | `cache_creation_input` (part of input) | - | - | `cache_creation_input_tokens` | - |
//! | `reasoning` (part of output) | `completion_tokens_details.reasoning_tokens` | `output_tokens_details.reasoning_tokens` | - | `thoughtsTokenCount` |
//!
//! Streams: OpenAI sends usage once, in the last chunk (only when the client
//! asked with `stream_options.include_usage`); OpenAI Responses in the
//! `response.completed` (or `.incomplete` / `.failed`) event; Anthropic in
//! `message_start` and then cumulative counts in `message_delta`, merged field
//! by field; Gemini in `usageMetadata` of any chunk, the last one wins.
//!
//! [`UsageReader`] observes a response body chunk by chunk with bounded
//! memory and never fails: whatever it cannot read ends as an [`Outcome`]
//! with a [`MissingReason`].

use crate::sse::{Event, SseFramer};
use serde::Deserialize;

/// The wire format of an LLM API, which decides where usage lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// Chat Completions, legacy Completions and Embeddings, and every
    /// OpenAI-compatible server (vLLM, Ollama, LiteLLM, Azure OpenAI, ...).
    OpenAiChat,
    OpenAiResponses,
    AnthropicMessages,
    /// generateContent and streamGenerateContent (Gemini API and Vertex AI).
    Gemini,
}

impl Api {
    /// Recognizes an LLM API call from its path (query ignored). Gemini paths
    /// also name the model: `/v1beta/models/gemini-2.0-flash:generateContent`.
    pub fn from_path(path: &str) -> Option<(Api, Option<&str>)> {
        let path = path.split(['?', '#']).next().unwrap_or_default();
        let last = path.rsplit('/').next().unwrap_or_default();
        if let Some((model, method)) = last.split_once(':') {
            if method == "generateContent" || method == "streamGenerateContent" {
                let model = Some(model).filter(|m| !m.is_empty());
                return Some((Api::Gemini, model));
            }
            return None;
        }
        if path.ends_with("/chat/completions")
            || path.ends_with("/v1/completions")
            || path.ends_with("/v1/embeddings")
        {
            return Some((Api::OpenAiChat, None));
        }
        if path.ends_with("/v1/responses") {
            return Some((Api::OpenAiResponses, None));
        }
        // `/v1/threads/{id}/messages` (OpenAI Assistants) is not Anthropic's.
        if path.ends_with("/v1/messages") {
            return Some((Api::AnthropicMessages, None));
        }
        None
    }

    /// The `gen_ai.provider.name` to report when the host says nothing more.
    pub const ALL: [Api; 4] = [
        Api::OpenAiChat,
        Api::OpenAiResponses,
        Api::AnthropicMessages,
        Api::Gemini,
    ];

    pub fn default_provider(self) -> &'static str {
        match self {
            Api::OpenAiChat | Api::OpenAiResponses => "openai",
            Api::AnthropicMessages => "anthropic",
            Api::Gemini => "gcp.gemini",
        }
    }

    /// The OpenTelemetry GenAI `gen_ai.operation.name` of a call to this API.
    pub fn operation(self) -> &'static str {
        match self {
            Api::OpenAiChat | Api::OpenAiResponses | Api::AnthropicMessages => "chat",
            Api::Gemini => "generate_content",
        }
    }

    /// Config spelling, as in `routes[].api`.
    pub fn from_name(name: &str) -> Option<Api> {
        Some(match name {
            "openai" | "openai_chat" => Api::OpenAiChat,
            "openai_responses" => Api::OpenAiResponses,
            "anthropic" | "anthropic_messages" => Api::AnthropicMessages,
            "gemini" => Api::Gemini,
            _ => return None,
        })
    }
}

/// Well-known provider hosts and their OpenTelemetry `gen_ai.provider.name`.
/// A suffix starting with `.` matches any subdomain.
pub const KNOWN_HOSTS: &[(&str, &str)] = &[
    ("api.openai.com", "openai"),
    ("api.anthropic.com", "anthropic"),
    ("generativelanguage.googleapis.com", "gcp.gemini"),
    ("aiplatform.googleapis.com", "gcp.vertex_ai"),
    (".aiplatform.googleapis.com", "gcp.vertex_ai"),
    (".openai.azure.com", "azure.ai.openai"),
    (".services.ai.azure.com", "azure.ai.inference"),
    ("api.mistral.ai", "mistral_ai"),
    ("api.groq.com", "groq"),
    ("api.deepseek.com", "deepseek"),
    ("api.x.ai", "x_ai"),
    ("api.perplexity.ai", "perplexity"),
];

/// The host part of an `:authority` (port and IPv6 brackets kept apart),
/// lower-cased.
pub fn host_of(authority: &str) -> String {
    let host = if let Some(rest) = authority.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// The provider for `host` in a host table: exact names first, then the
/// longest `.suffix`.
pub fn provider_for_host<'a, S: AsRef<str>>(table: &'a [(S, S)], host: &str) -> Option<&'a str> {
    let mut best: Option<(usize, &str)> = None;
    for (pattern, provider) in table {
        let pattern = pattern.as_ref();
        if pattern == host {
            return Some(provider.as_ref());
        }
        if pattern.starts_with('.')
            && host.ends_with(pattern)
            && best.is_none_or(|(len, _)| pattern.len() > len)
        {
            best = Some((pattern.len(), provider.as_ref()));
        }
    }
    best.map(|(_, p)| p)
}

/// Normalized token counts of one response (see the module table).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input: u64,
    pub output: u64,
    pub cached_input: u64,
    pub cache_creation_input: u64,
    pub reasoning: u64,
}

impl Usage {
    pub fn total(&self) -> u64 {
        self.input.saturating_add(self.output)
    }
}

/// How a response ended, for `mcp_llm_requests_total{outcome}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// HTTP status >= 400, or an error object or event in the body.
    Error,
    UsageMissing(MissingReason),
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::UsageMissing(_) => "usage_missing",
        }
    }
}

/// Why a successful response yielded no usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingReason {
    /// The body was complete and carried no usage (an OpenAI stream without
    /// `stream_options.include_usage`, for example).
    NotReported,
    /// The stream or body ended before it was complete.
    Truncated,
    /// The body was compressed (`content-encoding`), so it could not be read.
    Compressed,
    /// A JSON body over the configured cap, or an SSE event over it.
    TooLarge,
    /// A JSON body that is not JSON.
    Unparsable,
}

impl MissingReason {
    pub const ALL: [MissingReason; 5] = [
        MissingReason::NotReported,
        MissingReason::Truncated,
        MissingReason::Compressed,
        MissingReason::TooLarge,
        MissingReason::Unparsable,
    ];

    pub fn label(self) -> &'static str {
        match self {
            MissingReason::NotReported => "not_reported",
            MissingReason::Truncated => "truncated",
            MissingReason::Compressed => "compressed",
            MissingReason::TooLarge => "too_large",
            MissingReason::Unparsable => "unparsable",
        }
    }
}

/// Longest model name kept from a response.
const MAX_MODEL_LEN: usize = 128;

/// Usage as reported so far, before normalization. `None` = not reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Reported {
    input: Option<u64>,
    output: Option<u64>,
    cache_read: Option<u64>,
    cache_write: Option<u64>,
    reasoning: Option<u64>,
    /// Gemini's tool-use prompt tokens (input, counted apart by Gemini).
    tool_prompt: Option<u64>,
}

impl Reported {
    fn any(&self) -> bool {
        self.input.is_some() || self.output.is_some()
    }

    /// Anthropic: later events repeat or update some fields (cumulative).
    fn merge(&mut self, newer: Reported) {
        fn pick(old: &mut Option<u64>, new: Option<u64>) {
            if new.is_some() {
                *old = new;
            }
        }
        pick(&mut self.input, newer.input);
        pick(&mut self.output, newer.output);
        pick(&mut self.cache_read, newer.cache_read);
        pick(&mut self.cache_write, newer.cache_write);
        pick(&mut self.reasoning, newer.reasoning);
        pick(&mut self.tool_prompt, newer.tool_prompt);
    }

    fn normalize(&self, api: Api) -> Usage {
        let n = |v: Option<u64>| v.unwrap_or(0);
        match api {
            Api::OpenAiChat | Api::OpenAiResponses => Usage {
                input: n(self.input),
                output: n(self.output),
                cached_input: n(self.cache_read),
                cache_creation_input: 0,
                reasoning: n(self.reasoning),
            },
            Api::AnthropicMessages => Usage {
                input: n(self.input)
                    .saturating_add(n(self.cache_read))
                    .saturating_add(n(self.cache_write)),
                output: n(self.output),
                cached_input: n(self.cache_read),
                cache_creation_input: n(self.cache_write),
                reasoning: 0,
            },
            Api::Gemini => Usage {
                input: n(self.input).saturating_add(n(self.tool_prompt)),
                output: n(self.output).saturating_add(n(self.reasoning)),
                cached_input: n(self.cache_read),
                cache_creation_input: 0,
                reasoning: n(self.reasoning),
            },
        }
    }
}

// ---- wire shapes: only the fields we read; everything else is skipped ------

/// Lenient field readers: a value of the wrong type reads as absent instead
/// of failing the whole document (one odd field must not hide the usage next
/// to it). Hand-written visitors rather than serde's untagged enums, which
/// buffer every value and add tens of KB to the wasm.
pub mod lenient {
    use serde::de::value::MapAccessDeserializer;
    use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
    use std::fmt;
    use std::marker::PhantomData;

    /// Accepts what `Self::Value` wants; everything else is skipped as `None`.
    macro_rules! ignore_the_rest {
        ($($method:ident: $ty:ty),*) => {
            $(fn $method<E: serde::de::Error>(self, _: $ty) -> Result<Self::Value, E> { Ok(None) })*
        };
    }

    struct U64;
    impl<'de> Visitor<'de> for U64 {
        type Value = Option<u64>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a token count")
        }
        fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
            Ok(u64::try_from(v).ok())
        }
        fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
            // Some servers write `12.0`; `as` saturates, never panics.
            let whole = v.is_finite() && v >= 0.0 && v.fract() == 0.0;
            Ok(whole.then_some(v as u64))
        }
        ignore_the_rest!(visit_bool: bool, visit_str: &str);
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            skip_map(map)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            skip_seq(seq)
        }
    }

    struct Str;
    impl<'de> Visitor<'de> for Str {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        ignore_the_rest!(visit_bool: bool, visit_u64: u64, visit_i64: i64, visit_f64: f64);
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            skip_map(map)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            skip_seq(seq)
        }
    }

    struct Object<T>(PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for Object<T> {
        type Value = Option<T>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            T::deserialize(MapAccessDeserializer::new(map)).map(Some)
        }
        ignore_the_rest!(visit_bool: bool, visit_u64: u64, visit_i64: i64, visit_f64: f64, visit_str: &str);
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            skip_seq(seq)
        }
    }

    fn skip_map<'de, A: MapAccess<'de>, T>(mut map: A) -> Result<Option<T>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn skip_seq<'de, A: SeqAccess<'de>, T>(mut seq: A) -> Result<Option<T>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    pub fn count<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        d.deserialize_any(U64)
    }

    pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        d.deserialize_any(Str)
    }

    pub fn object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        d: D,
    ) -> Result<Option<T>, D::Error> {
        d.deserialize_any(Object(PhantomData))
    }

    /// Presence of a non-null value of any type (`"error": {...}`).
    pub fn present<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        Ok(Option::<IgnoredAny>::deserialize(d)?.is_some())
    }
}

#[derive(Deserialize, Default)]
struct CachedTokens {
    #[serde(default, deserialize_with = "lenient::count")]
    cached_tokens: Option<u64>,
}

#[derive(Deserialize, Default)]
struct ReasoningTokens {
    #[serde(default, deserialize_with = "lenient::count")]
    reasoning_tokens: Option<u64>,
}

/// OpenAI (both APIs) and Anthropic `usage` objects, superset.
#[derive(Deserialize, Default)]
struct WireUsage {
    #[serde(default, deserialize_with = "lenient::count")]
    prompt_tokens: Option<u64>,
    #[serde(default, deserialize_with = "lenient::count")]
    completion_tokens: Option<u64>,
    #[serde(default, deserialize_with = "lenient::object")]
    prompt_tokens_details: Option<CachedTokens>,
    #[serde(default, deserialize_with = "lenient::object")]
    completion_tokens_details: Option<ReasoningTokens>,
    #[serde(default, deserialize_with = "lenient::count")]
    input_tokens: Option<u64>,
    #[serde(default, deserialize_with = "lenient::count")]
    output_tokens: Option<u64>,
    #[serde(default, deserialize_with = "lenient::object")]
    input_tokens_details: Option<CachedTokens>,
    #[serde(default, deserialize_with = "lenient::object")]
    output_tokens_details: Option<ReasoningTokens>,
    #[serde(default, deserialize_with = "lenient::count")]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default, deserialize_with = "lenient::count")]
    cache_read_input_tokens: Option<u64>,
}

impl WireUsage {
    fn reported(&self) -> Reported {
        Reported {
            input: self.prompt_tokens.or(self.input_tokens),
            output: self.completion_tokens.or(self.output_tokens),
            cache_read: self
                .prompt_tokens_details
                .as_ref()
                .and_then(|d| d.cached_tokens)
                .or(self
                    .input_tokens_details
                    .as_ref()
                    .and_then(|d| d.cached_tokens))
                .or(self.cache_read_input_tokens),
            cache_write: self.cache_creation_input_tokens,
            reasoning: self
                .completion_tokens_details
                .as_ref()
                .and_then(|d| d.reasoning_tokens)
                .or(self
                    .output_tokens_details
                    .as_ref()
                    .and_then(|d| d.reasoning_tokens)),
            tool_prompt: None,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct GeminiUsage {
    #[serde(default, deserialize_with = "lenient::count")]
    prompt_token_count: Option<u64>,
    #[serde(default, deserialize_with = "lenient::count")]
    candidates_token_count: Option<u64>,
    #[serde(default, deserialize_with = "lenient::count")]
    cached_content_token_count: Option<u64>,
    #[serde(default, deserialize_with = "lenient::count")]
    thoughts_token_count: Option<u64>,
    #[serde(default, deserialize_with = "lenient::count")]
    tool_use_prompt_token_count: Option<u64>,
}

impl GeminiUsage {
    fn reported(&self) -> Reported {
        Reported {
            input: self.prompt_token_count,
            // A chunk may omit candidates (e.g. only thoughts so far): 0.
            output: Some(self.candidates_token_count.unwrap_or(0)),
            cache_read: self.cached_content_token_count,
            cache_write: None,
            reasoning: self.thoughts_token_count,
            tool_prompt: self.tool_use_prompt_token_count,
        }
    }
}

/// Anthropic `message_start.message` and OpenAI Responses `*.response`.
#[derive(Deserialize, Default)]
struct Inner {
    #[serde(default, deserialize_with = "lenient::string")]
    model: Option<String>,
    #[serde(default, deserialize_with = "lenient::object")]
    usage: Option<WireUsage>,
    #[serde(default, deserialize_with = "lenient::present")]
    error: bool,
}

/// One JSON document: a whole response body or one SSE event's data.
#[derive(Deserialize, Default)]
struct Document {
    #[serde(default, rename = "type", deserialize_with = "lenient::string")]
    kind: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    model: Option<String>,
    #[serde(default, rename = "modelVersion", deserialize_with = "lenient::string")]
    model_version: Option<String>,
    #[serde(default, deserialize_with = "lenient::object")]
    usage: Option<WireUsage>,
    #[serde(
        default,
        rename = "usageMetadata",
        deserialize_with = "lenient::object"
    )]
    usage_metadata: Option<GeminiUsage>,
    #[serde(default, deserialize_with = "lenient::object")]
    message: Option<Inner>,
    #[serde(default, deserialize_with = "lenient::object")]
    response: Option<Inner>,
    #[serde(default, deserialize_with = "lenient::present")]
    error: bool,
}

/// A document only if it is a JSON object (serde would also read a struct
/// from an array, by position).
struct Object(Option<Document>);

impl<'de> Deserialize<'de> for Object {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        lenient::object(d).map(Object)
    }
}

/// What the documents of one response said so far.
#[derive(Debug, Clone)]
pub struct UsageState {
    api: Api,
    reported: Reported,
    model: Option<String>,
    error: bool,
}

impl UsageState {
    pub fn new(api: Api) -> Self {
        Self {
            api,
            reported: Reported::default(),
            model: None,
            error: false,
        }
    }

    /// The usage reported so far, normalized; `None` if none was.
    pub fn usage(&self) -> Option<Usage> {
        self.reported
            .any()
            .then(|| self.reported.normalize(self.api))
    }

    /// The model the response names (`model`, `message.model`,
    /// `response.model`, `modelVersion`).
    pub fn response_model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    /// An error object or error event was seen.
    pub fn saw_error(&self) -> bool {
        self.error
    }

    /// Reads one SSE event. Events that cannot carry anything new are
    /// skipped without parsing (content deltas, most of a stream).
    pub fn on_event(&mut self, event: Event<'_>) {
        if event.event == "error" {
            self.error = true;
        }
        if self.model.is_some()
            && !contains(event.data, b"usage")
            && !contains(event.data, b"error")
        {
            return;
        }
        if let Ok(Object(Some(doc))) = serde_json::from_slice(event.data) {
            self.apply(doc);
        }
    }

    /// Reads a whole JSON body; false if it is not JSON.
    pub fn on_json(&mut self, body: &[u8]) -> bool {
        // One document, or (Gemini streamGenerateContent without `alt=sse`)
        // an array of them. Peeking avoids serde's buffering untagged enums.
        let is_array = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
        if is_array {
            match serde_json::from_slice::<Vec<Object>>(body) {
                Ok(docs) => docs
                    .into_iter()
                    .flat_map(|d| d.0)
                    .for_each(|d| self.apply(d)),
                Err(_) => return false,
            }
        } else {
            match serde_json::from_slice::<Object>(body) {
                Ok(doc) => doc.0.into_iter().for_each(|d| self.apply(d)),
                Err(_) => return false,
            }
        }
        true
    }

    fn apply(&mut self, doc: Document) {
        let kind = doc.kind.as_deref().unwrap_or_default();
        if doc.error || kind == "error" || kind == "response.failed" {
            self.error = true;
        }
        let mut model = doc.model.or(doc.model_version);
        let mut usage = doc.usage.map(|u| u.reported());
        for inner in [doc.message, doc.response].into_iter().flatten() {
            model = model.or(inner.model);
            usage = usage.or(inner.usage.map(|u| u.reported()));
            if inner.error {
                self.error = true;
            }
        }
        if let Some(gemini) = doc.usage_metadata {
            usage = Some(gemini.reported());
        }
        if self.model.is_none() {
            self.model = model
                .filter(|m| !m.is_empty())
                .map(|m| m.chars().take(MAX_MODEL_LEN).collect());
        }
        if let Some(new) = usage {
            match self.api {
                Api::AnthropicMessages => self.reported.merge(new),
                // Complete usage each time: the last report wins.
                _ if new.any() => self.reported = new,
                _ => {}
            }
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// How the response body is read.
#[derive(Debug, Clone)]
enum Mode {
    Sse(SseFramer),
    /// A JSON body collected up to a cap; `None` once the cap was passed.
    Json {
        body: Option<Vec<u8>>,
        cap: usize,
    },
    /// Nothing can be read (compressed); the body is ignored.
    Skip(MissingReason),
}

/// Reads usage from one response body, chunk by chunk, never failing.
#[derive(Debug, Clone)]
pub struct UsageReader {
    state: UsageState,
    mode: Mode,
}

/// Limits for [`UsageReader`].
#[derive(Debug, Clone, Copy)]
pub struct ReadLimits {
    /// Largest JSON body read (bytes); larger bodies pass unread.
    pub max_json_bytes: usize,
    /// Largest SSE event kept while it is built.
    pub max_event_bytes: usize,
}

impl UsageReader {
    /// `content_type` and `content_encoding` are the response headers.
    pub fn new(
        api: Api,
        content_type: Option<&str>,
        content_encoding: Option<&str>,
        limits: ReadLimits,
    ) -> Self {
        let encoded = content_encoding
            .map(str::trim)
            .is_some_and(|e| !e.is_empty() && !e.eq_ignore_ascii_case("identity"));
        let mode = if encoded {
            Mode::Skip(MissingReason::Compressed)
        } else if content_type.is_some_and(is_event_stream) {
            Mode::Sse(SseFramer::new(limits.max_event_bytes))
        } else {
            Mode::Json {
                body: Some(Vec::new()),
                cap: limits.max_json_bytes,
            }
        };
        Self {
            state: UsageState::new(api),
            mode,
        }
    }

    /// How many bytes of a chunk of `len` bytes are worth copying out of the
    /// host: all of it, or none once the body cannot be read anyway.
    pub fn wanted(&self, len: usize) -> usize {
        match &self.mode {
            Mode::Sse(_) => len,
            Mode::Json { body: Some(b), cap } if b.len() + len <= *cap => len,
            _ => 0,
        }
    }

    /// Feeds the next chunk of the body.
    pub fn push(&mut self, chunk: &[u8]) {
        match &mut self.mode {
            Mode::Sse(framer) => {
                let state = &mut self.state;
                framer.push(chunk, &mut |event| state.on_event(event));
            }
            Mode::Json { body, cap } => {
                if let Some(b) = body {
                    if b.len() + chunk.len() <= *cap {
                        b.extend_from_slice(chunk);
                    } else {
                        *body = None;
                    }
                }
            }
            Mode::Skip(_) => {}
        }
    }

    /// Marks a body chunk that was too large to copy (see [`Self::wanted`]).
    pub fn skip(&mut self, len: usize) {
        if len > 0 {
            if let Mode::Json { body, .. } = &mut self.mode {
                *body = None;
            }
        }
    }

    /// Ends the body. `complete` is false when the stream was cut (reset,
    /// timeout) before its end: an `Error`. A body that ended normally but in
    /// the middle of an event or document is `UsageMissing(Truncated)` when
    /// no usage came before. `status` is the HTTP status.
    pub fn finish(&mut self, status: u32, complete: bool) -> Outcome {
        let mut cut = false;
        let mut reason = MissingReason::NotReported;
        match &mut self.mode {
            Mode::Sse(framer) => {
                cut |= framer.has_partial_event();
                if framer.oversized_events() > 0 {
                    reason = MissingReason::TooLarge;
                }
            }
            Mode::Json { body, .. } => match body.take() {
                Some(b) if !b.is_empty() && complete => {
                    if !self.state.on_json(&b) {
                        reason = MissingReason::Unparsable;
                    }
                }
                Some(_) => {}
                None => reason = MissingReason::TooLarge,
            },
            Mode::Skip(why) => reason = *why,
        }
        // A stream cut by a reset is a failed call, even if some usage came
        // through (which is still counted: those tokens were spent).
        if status >= 400 || self.state.saw_error() || !complete {
            return Outcome::Error;
        }
        if self.state.usage().is_some() {
            return Outcome::Ok;
        }
        if cut {
            reason = MissingReason::Truncated;
        }
        Outcome::UsageMissing(reason)
    }

    pub fn state(&self) -> &UsageState {
        &self.state
    }

    /// SSE events skipped for being over `max_event_bytes` (any usage they
    /// carried is lost: worth a metric so the cap can be raised).
    pub fn skipped_events(&self) -> u64 {
        match &self.mode {
            Mode::Sse(framer) => framer.oversized_events(),
            _ => 0,
        }
    }
}

fn is_event_stream(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/event-stream"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ReadLimits = ReadLimits {
        max_json_bytes: 1 << 20,
        max_event_bytes: 1 << 16,
    };

    fn read(api: Api, ct: &str, body: &[u8]) -> (Outcome, Option<Usage>, Option<String>) {
        let mut r = UsageReader::new(api, Some(ct), None, LIMITS);
        r.push(body);
        let outcome = r.finish(200, true);
        (
            outcome,
            r.state().usage(),
            r.state().response_model().map(String::from),
        )
    }

    #[test]
    fn recognizes_apis_from_paths() {
        use Api::*;
        let cases = [
            ("/v1/chat/completions", Some((OpenAiChat, None))),
            (
                "/openai/deployments/gpt4/chat/completions?api-version=2024-10-21",
                Some((OpenAiChat, None)),
            ),
            ("/v1/completions", Some((OpenAiChat, None))),
            ("/v1/embeddings", Some((OpenAiChat, None))),
            ("/v1/responses", Some((OpenAiResponses, None))),
            ("/v1/messages", Some((AnthropicMessages, None))),
            ("/v1/threads/t1/messages", None),
            ("/v1/messages/count_tokens", None),
            (
                "/v1beta/models/gemini-2.0-flash:generateContent",
                Some((Gemini, Some("gemini-2.0-flash"))),
            ),
            (
                "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse",
                Some((Gemini, Some("gemini-2.5-pro"))),
            ),
            (
                "/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.0-flash:generateContent",
                Some((Gemini, Some("gemini-2.0-flash"))),
            ),
            ("/v1beta/models/gemini-2.0-flash:countTokens", None),
            ("/mcp", None),
            ("", None),
        ];
        for (path, want) in cases {
            assert_eq!(Api::from_path(path), want, "{path}");
        }
    }

    #[test]
    fn providers_from_hosts() {
        assert_eq!(host_of("api.openai.com:443"), "api.openai.com");
        assert_eq!(host_of("API.Anthropic.com."), "api.anthropic.com");
        assert_eq!(host_of("[::1]:8080"), "::1");
        assert_eq!(
            provider_for_host(KNOWN_HOSTS, "myres.openai.azure.com"),
            Some("azure.ai.openai")
        );
        assert_eq!(
            provider_for_host(KNOWN_HOSTS, "us-central1-aiplatform.googleapis.com"),
            None,
            "only real subdomains match a suffix"
        );
        assert_eq!(
            provider_for_host(KNOWN_HOSTS, "us-central1.aiplatform.googleapis.com"),
            Some("gcp.vertex_ai")
        );
        assert_eq!(provider_for_host(KNOWN_HOSTS, "openai.azure.com"), None);
        assert_eq!(provider_for_host(KNOWN_HOSTS, "example.com"), None);
    }

    #[test]
    fn openai_chat_json() {
        let body = br#"{"id":"c","object":"chat.completion","model":"gpt-4o-2024-08-06","choices":[{"message":{"role":"assistant","content":"usage: none"}}],
            "usage":{"prompt_tokens":19,"completion_tokens":10,"total_tokens":29,"prompt_tokens_details":{"cached_tokens":3},"completion_tokens_details":{"reasoning_tokens":4}}}"#;
        let (outcome, usage, model) = read(Api::OpenAiChat, "application/json", body);
        assert_eq!(outcome, Outcome::Ok);
        assert_eq!(
            usage,
            Some(Usage {
                input: 19,
                output: 10,
                cached_input: 3,
                cache_creation_input: 0,
                reasoning: 4
            })
        );
        assert_eq!(model.as_deref(), Some("gpt-4o-2024-08-06"));
    }

    #[test]
    fn anthropic_stream_merges_cumulative_usage() {
        let stream = b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-sonnet-4-5\",\"usage\":{\"input_tokens\":25,\"cache_read_input_tokens\":100,\"cache_creation_input_tokens\":7,\"output_tokens\":1}}}\n\n\
event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":15}}\n\n\
event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":40}}\n\n";
        let (outcome, usage, model) = read(Api::AnthropicMessages, "text/event-stream", stream);
        assert_eq!(outcome, Outcome::Ok);
        let u = usage.unwrap();
        assert_eq!(
            (u.input, u.output, u.cached_input, u.cache_creation_input),
            (132, 40, 100, 7)
        );
        assert_eq!(model.as_deref(), Some("claude-sonnet-4-5"));
    }

    #[test]
    fn gemini_last_usage_wins_and_thoughts_are_output() {
        let stream = b"data: {\"candidates\":[],\"usageMetadata\":{\"promptTokenCount\":8,\"candidatesTokenCount\":2,\"totalTokenCount\":10},\"modelVersion\":\"gemini-2.5-flash\"}\r\n\r\n\
data: {\"candidates\":[],\"usageMetadata\":{\"promptTokenCount\":8,\"candidatesTokenCount\":12,\"thoughtsTokenCount\":30,\"cachedContentTokenCount\":4,\"totalTokenCount\":50}}\r\n\r\n";
        let (outcome, usage, model) = read(Api::Gemini, "text/event-stream", stream);
        assert_eq!(outcome, Outcome::Ok);
        let u = usage.unwrap();
        assert_eq!(
            (u.input, u.output, u.reasoning, u.cached_input),
            (8, 42, 30, 4)
        );
        assert_eq!(model.as_deref(), Some("gemini-2.5-flash"));
    }

    #[test]
    fn gemini_json_array_stream() {
        let body = br#"[{"usageMetadata":{"promptTokenCount":3,"candidatesTokenCount":1}},{"usageMetadata":{"promptTokenCount":3,"candidatesTokenCount":9}}]"#;
        let (outcome, usage, _) = read(Api::Gemini, "application/json", body);
        assert_eq!(outcome, Outcome::Ok);
        assert_eq!(usage.map(|u| (u.input, u.output)), Some((3, 9)));
    }

    #[test]
    fn wrong_types_do_not_hide_usage() {
        let body = br#"{"model":42,"message":"hello","response":[1],"usage":{"prompt_tokens":"x","completion_tokens":5,"prompt_tokens_details":null}}"#;
        let (outcome, usage, model) = read(Api::OpenAiChat, "application/json", body);
        assert_eq!(outcome, Outcome::Ok);
        assert_eq!(usage.map(|u| (u.input, u.output)), Some((0, 5)));
        assert_eq!(model, None);
    }

    #[test]
    fn arrays_are_not_read_as_objects() {
        let body = br#"{"usage":[5,6],"usageMetadata":[1,2]}"#;
        let (outcome, usage, _) = read(Api::OpenAiChat, "application/json", body);
        assert_eq!(outcome, Outcome::UsageMissing(MissingReason::NotReported));
        assert_eq!(usage, None);
        let (_, usage, _) = read(
            Api::OpenAiChat,
            "text/event-stream",
            b"data: [\"m\",\"m\",\"m\",{\"prompt_tokens\":1}]\n\n",
        );
        assert_eq!(usage, None);
        let (_, usage, _) = read(
            Api::OpenAiChat,
            "application/json",
            br#"{"usage":{"prompt_tokens":7.0,"completion_tokens":-1}}"#,
        );
        assert_eq!(usage.map(|u| (u.input, u.output)), Some((7, 0)));
    }

    #[test]
    fn errors_and_missing_usage() {
        let err =
            br#"{"error":{"message":"Rate limit","type":"requests","code":"rate_limit_exceeded"}}"#;
        let mut r = UsageReader::new(Api::OpenAiChat, Some("application/json"), None, LIMITS);
        r.push(err);
        assert_eq!(r.finish(429, true), Outcome::Error);

        let (outcome, _, _) = read(
            Api::OpenAiChat,
            "text/event-stream",
            b"data: {\"model\":\"m\",\"choices\":[]}\n\ndata: [DONE]\n\n",
        );
        assert_eq!(outcome, Outcome::UsageMissing(MissingReason::NotReported));

        let (outcome, _, _) = read(Api::OpenAiChat, "application/json", b"<html>bad gateway");
        assert_eq!(outcome, Outcome::UsageMissing(MissingReason::Unparsable));

        let mut r = UsageReader::new(
            Api::OpenAiChat,
            Some("application/json"),
            Some("gzip"),
            LIMITS,
        );
        assert_eq!(r.wanted(100), 0);
        r.push(b"\x1f\x8b");
        assert_eq!(
            r.finish(200, true),
            Outcome::UsageMissing(MissingReason::Compressed)
        );

        let mut r = UsageReader::new(Api::OpenAiChat, Some("text/event-stream"), None, LIMITS);
        r.push(b"data: {\"model\":\"m\",\"choices\":[]}\n\ndata: {\"cho");
        assert_eq!(
            r.finish(200, true),
            Outcome::UsageMissing(MissingReason::Truncated)
        );

        let mut r = UsageReader::new(
            Api::AnthropicMessages,
            Some("text/event-stream"),
            None,
            LIMITS,
        );
        r.push(
            b"data: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":9}}}\n\n",
        );
        assert_eq!(
            r.finish(200, false),
            Outcome::Error,
            "a reset stream failed"
        );
        assert_eq!(
            r.state().usage().map(|u| u.input),
            Some(9),
            "but its tokens count"
        );
    }

    #[test]
    fn json_over_cap_is_not_read() {
        let limits = ReadLimits {
            max_json_bytes: 16,
            max_event_bytes: 16,
        };
        let mut r = UsageReader::new(Api::OpenAiChat, None, None, limits);
        assert_eq!(r.wanted(10), 10);
        r.push(b"{\"usage\":{\"pro");
        assert_eq!(r.wanted(10), 0);
        r.skip(10);
        assert_eq!(
            r.finish(200, true),
            Outcome::UsageMissing(MissingReason::TooLarge)
        );
    }

    #[test]
    fn responses_api_failed_event_is_an_error() {
        let stream = b"event: response.failed\ndata: {\"type\":\"response.failed\",\"response\":{\"model\":\"gpt-5\",\"status\":\"failed\",\"error\":{\"code\":\"server_error\"},\"usage\":null}}\n\n";
        let (outcome, _, model) = read(Api::OpenAiResponses, "text/event-stream", stream);
        assert_eq!(outcome, Outcome::Error);
        assert_eq!(model.as_deref(), Some("gpt-5"));
    }
}

//! Watches the response to a JSON-RPC request for an MCP-level error: a
//! JSON-RPC `error` or a tool result with `isError`, which travel in HTTP
//! 200 responses, either as one JSON body or as events of an SSE stream.
//!
//! Bounded like the request side: at most `max_bytes` of the response are
//! copied out of Envoy and looked at, the stream is never held back, and an
//! SSE stream is framed incrementally, one event in memory at a time.

use mesh_core::body_prefix::BodyPrefix;
use mesh_core::jsonrpc::{self, ResponseError};
use mesh_core::sse::SseFramer;

#[derive(Debug, Clone)]
enum Body {
    /// `application/json`: the prefix, parsed at the end.
    Json(BodyPrefix),
    /// `text/event-stream`: each event's data is one JSON-RPC message.
    Sse(SseFramer),
}

#[derive(Debug, Clone)]
pub struct ResponseWatch {
    body: Body,
    /// Bytes still worth copying.
    budget: usize,
    error: Option<ResponseError>,
}

impl ResponseWatch {
    /// A watch for a response with this `content-type` and
    /// `content-encoding`; `None` when the body cannot be read as JSON-RPC
    /// (another type, compressed) or `max_bytes` is 0.
    pub fn new(
        content_type: &str,
        content_encoding: Option<&str>,
        max_bytes: usize,
    ) -> Option<Self> {
        if max_bytes == 0
            || content_encoding.is_some_and(|e| !e.trim().eq_ignore_ascii_case("identity"))
        {
            return None;
        }
        let media = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let body = match media.as_str() {
            "application/json" => Body::Json(BodyPrefix::new(max_bytes)),
            "text/event-stream" => Body::Sse(SseFramer::new(max_bytes)),
            _ => return None,
        };
        Some(Self {
            body,
            budget: max_bytes,
            error: None,
        })
    }

    /// How many bytes of a chunk are worth copying.
    pub fn room(&self, chunk_len: usize) -> usize {
        if self.error.is_some() {
            return 0;
        }
        chunk_len.min(self.budget)
    }

    /// One chunk: `copied` are the bytes read out of it (at most [`room`](Self::room)).
    pub fn push(&mut self, copied: &[u8], chunk_len: usize, end_of_stream: bool) {
        self.budget = self.budget.saturating_sub(copied.len());
        let error = &mut self.error;
        match &mut self.body {
            Body::Json(prefix) => prefix.push(copied, chunk_len, end_of_stream),
            Body::Sse(framer) => framer.push(copied, &mut |event| {
                if error.is_none() {
                    *error = jsonrpc::response_error(event.data);
                }
            }),
        }
    }

    /// Reads what a JSON body's prefix says, once the response is over (or
    /// cut short); SSE events were read as they came.
    pub fn finish(&mut self) {
        if self.error.is_none() {
            if let Body::Json(prefix) = &self.body {
                self.error = jsonrpc::response_error(prefix.bytes());
            }
        }
    }

    /// The first error seen.
    pub fn error(&self) -> Option<ResponseError> {
        self.error
    }
}

/// The `mcp_jsonrpc_error` value: `-32602`, `error` or `tool_error`.
pub fn error_text(error: ResponseError) -> String {
    match error {
        ResponseError::Code(code) => code.to_string(),
        ResponseError::Unspecified => "error".into(),
        ResponseError::ToolError => "tool_error".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch_all(ct: &str, body: &[u8], cap: usize, split: usize) -> Option<ResponseError> {
        let mut w = ResponseWatch::new(ct, None, cap)?;
        let chunks: Vec<&[u8]> = body.chunks(split.max(1)).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let room = w.room(chunk.len());
            w.push(&chunk[..room], chunk.len(), i + 1 == chunks.len());
        }
        w.finish();
        w.error()
    }

    const JSON_ERROR: &[u8] =
        br#"{"jsonrpc":"2.0","id":3,"error":{"code":-32602,"message":"unknown debate"}}"#;
    const SSE: &[u8] = b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\n\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{\"content\":[],\"isError\":true}}\n\n";

    #[test]
    fn json_error_at_every_split() {
        for split in 1..JSON_ERROR.len() {
            assert_eq!(
                watch_all("application/json", JSON_ERROR, 1024, split),
                Some(ResponseError::Code(-32602)),
                "split {split}"
            );
        }
    }

    #[test]
    fn sse_tool_error_at_every_split() {
        for split in 1..SSE.len() {
            assert_eq!(
                watch_all("text/event-stream; charset=utf-8", SSE, 4096, split),
                Some(ResponseError::ToolError),
                "split {split}"
            );
        }
    }

    #[test]
    fn successes_and_unreadable_bodies_say_nothing() {
        let ok = br#"{"jsonrpc":"2.0","id":3,"result":{"content":[{"type":"text","text":"ok"}]}}"#;
        assert_eq!(watch_all("application/json", ok, 1024, 7), None);
        assert_eq!(watch_all("application/json", b"\xff{{{", 1024, 2), None);
        assert!(ResponseWatch::new("text/html", None, 1024).is_none());
        assert!(ResponseWatch::new("application/json", Some("gzip"), 1024).is_none());
        assert!(ResponseWatch::new("application/json", Some("identity"), 1024).is_some());
        assert!(ResponseWatch::new("application/json", None, 0).is_none());
    }

    #[test]
    fn the_budget_bounds_what_is_read() {
        // The error event starts after the budget: not seen, and nothing copied past it.
        assert_eq!(watch_all("text/event-stream", SSE, 40, 16), None);
        let mut w = ResponseWatch::new("text/event-stream", None, 40).unwrap();
        w.push(&SSE[..40], 40, false);
        assert_eq!(w.room(100), 0);
    }

    #[test]
    fn error_texts() {
        assert_eq!(error_text(ResponseError::Code(-32602)), "-32602");
        assert_eq!(error_text(ResponseError::Unspecified), "error");
        assert_eq!(error_text(ResponseError::ToolError), "tool_error");
    }
}

//! A [`Host`] in memory, for native tests of stages: headers in, and a
//! journal of everything a stage did out. Never part of a request path.

use crate::stage::{
    header_in, set_header_in, GrpcCall, Host, Level, MetricId, MetricKind, ReadError, SetError,
    SharedStore,
};
use std::cell::RefCell;
use std::collections::BTreeMap;

/// Shared data with Envoy's semantics (a missing key is written whatever
/// `cas` says).
#[derive(Debug, Default)]
pub struct MemoryStore {
    map: RefCell<BTreeMap<String, (Vec<u8>, u32)>>,
}

impl SharedStore for MemoryStore {
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, ReadError> {
        Ok(self.map.borrow().get(key).cloned())
    }

    fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), SetError> {
        let mut map = self.map.borrow_mut();
        let next = match map.get(key) {
            Some((_, current)) if cas != 0 && cas != *current => return Err(SetError::CasMismatch),
            Some((_, current)) => current.wrapping_add(1),
            None => 1,
        };
        map.insert(key.to_string(), (value.to_vec(), next));
        Ok(())
    }
}

/// A local reply a stage sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u32,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

#[derive(Debug, Default)]
pub struct MockHost {
    pub now_ns: u64,
    pub request_headers: Vec<(String, Vec<u8>)>,
    pub response_headers: Vec<(String, Vec<u8>)>,
    pub properties: BTreeMap<String, Vec<u8>>,
    pub state: BTreeMap<String, String>,
    pub replies: Vec<Reply>,
    /// Cluster and message of each gRPC call; `refuse_calls` makes them fail.
    pub calls: Vec<(String, Vec<u8>)>,
    pub refuse_calls: bool,
    pub store: MemoryStore,
    /// Metric names by id, and their values.
    pub metric_names: RefCell<Vec<String>>,
    pub metrics: RefCell<BTreeMap<String, u64>>,
    pub logs: RefCell<Vec<(Level, String)>>,
    /// Every [`Host::replace_response_chunk`], in order.
    pub replaced_chunks: Vec<Vec<u8>>,
    pub log_level: Option<Level>,
}

impl MockHost {
    pub fn with_headers(headers: &[(&str, &str)]) -> Self {
        Self {
            request_headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect(),
            ..Self::default()
        }
    }

    /// The value of request header `name` now, as text.
    pub fn request_text(&self, name: &str) -> Option<String> {
        header_in(&self.request_headers, name).map(|v| String::from_utf8_lossy(v).into_owned())
    }

    pub fn metric(&self, name: &str) -> u64 {
        self.metrics.borrow().get(name).copied().unwrap_or(0)
    }

    fn named(&self, id: MetricId) -> Option<String> {
        let index = usize::try_from(id.0?).ok()?;
        self.metric_names.borrow().get(index).cloned()
    }
}

impl Host for MockHost {
    fn now_ns(&self) -> u64 {
        self.now_ns
    }

    fn request_header(&mut self, name: &str) -> Option<&[u8]> {
        header_in(&self.request_headers, name)
    }

    fn request_headers(&mut self) -> &[(String, Vec<u8>)] {
        &self.request_headers
    }

    fn set_request_header(&mut self, name: &str, value: Option<&str>) {
        set_header_in(&mut self.request_headers, name, value);
    }

    fn response_header(&mut self, name: &str) -> Option<&[u8]> {
        header_in(&self.response_headers, name)
    }

    fn set_response_header(&mut self, name: &str, value: Option<&str>) {
        set_header_in(&mut self.response_headers, name, value);
    }

    fn replace_response_chunk(&mut self, data: &[u8]) {
        self.replaced_chunks.push(data.to_vec());
    }

    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        self.properties.get(&path.join(".")).cloned()
    }

    fn set_state(&mut self, key: &str, value: &str) {
        self.state.insert(key.to_string(), value.to_string());
    }

    fn reply(&mut self, status: u32, headers: &[(&str, &str)], body: &str) {
        self.replies.push(Reply {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.to_string(),
        });
    }

    fn call_grpc(&mut self, call: GrpcCall<'_>) -> Option<u32> {
        if self.refuse_calls {
            return None;
        }
        self.calls
            .push((call.cluster.to_string(), call.message.to_vec()));
        u32::try_from(self.calls.len()).ok()
    }

    fn store(&self) -> &dyn SharedStore {
        &self.store
    }

    fn define_metric(&self, _kind: MetricKind, name: &str) -> MetricId {
        let mut names = self.metric_names.borrow_mut();
        if let Some(i) = names.iter().position(|n| n == name) {
            return MetricId(u32::try_from(i).ok());
        }
        names.push(name.to_string());
        MetricId(u32::try_from(names.len() - 1).ok())
    }

    fn add_metric(&self, id: MetricId, n: u64) {
        if let Some(name) = self.named(id) {
            *self.metrics.borrow_mut().entry(name).or_insert(0) += n;
        }
    }

    fn record_metric(&self, id: MetricId, value: u64) {
        if let Some(name) = self.named(id) {
            self.metrics.borrow_mut().insert(name, value);
        }
    }

    fn log_enabled(&self, level: Level) -> bool {
        level >= self.log_level.unwrap_or(Level::Info)
    }

    fn log(&self, level: Level, message: &str) {
        self.logs.borrow_mut().push((level, message.to_string()));
    }
}

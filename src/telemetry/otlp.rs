//! The gateway's spans ([`Record`]) and their OTLP protobuf encoding: each
//! span is written as it ends ([`encode_span_field`]), and a batch of
//! such spans becomes an `ExportTraceServiceRequest` with one resource and
//! one scope around them ([`Envelope::encode_encoded`]).
//!
//! A record keeps what the gateway's spans say and nothing more: ids, a
//! name, a kind, two times, an error mark and up to [`MAX_ATTRIBUTES`]
//! attributes, held in the record itself with their text. Writing a span
//! costs a pass to size each nested message and a pass to write it, with
//! no intermediate message values; the record itself never moves (see
//! PERFORMANCE.md, "Tracing"). The tests decode what
//! is written with the `opentelemetry-proto` message definitions.

use prost::encoding::{encode_key, encode_varint, encoded_len_varint, key_len, WireType};

/// A span kind, with OTLP's numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Internal = 1,
    Server = 2,
    Client = 3,
    Producer = 4,
    Consumer = 5,
}

impl Kind {
    /// `otel.kind`'s value, as OpenTelemetry names kinds.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "internal" => Self::Internal,
            "server" => Self::Server,
            "client" => Self::Client,
            "producer" => Self::Producer,
            "consumer" => Self::Consumer,
            _ => return None,
        })
    }
}

/// Where a piece of a record's text is: `start..end` of [`Record::text`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range(u32, u32);

/// An attribute's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Text(Range),
    Int(i64),
    Bool(bool),
    Float(f64),
}

/// A span's name: its callsite's, or one it recorded (`otel.name`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Name {
    Static(&'static str),
    Text(Range),
}

/// Attributes a record holds (the server span has ten, a Graph attempt
/// eleven); more are dropped and counted, as OTLP allows.
pub const MAX_ATTRIBUTES: usize = 16;
/// Text a record holds in itself; past that it moves to the heap.
const INLINE_TEXT: usize = 320;

/// A record's text: in the record up to [`INLINE_TEXT`] bytes, so a span
/// costs no allocation of its own for it (and none is freed by the export
/// thread, which glibc's allocator makes dear), on the heap past that.
#[derive(Clone)]
pub struct Text {
    inline: [u8; INLINE_TEXT],
    len: usize,
    heap: Option<String>,
}

impl Text {
    fn new() -> Self {
        Self {
            inline: [0; INLINE_TEXT],
            len: 0,
            heap: None,
        }
    }

    fn len(&self) -> usize {
        self.heap.as_ref().map_or(self.len, String::len)
    }

    fn push_str(&mut self, s: &str) {
        if let Some(heap) = &mut self.heap {
            heap.push_str(s);
        } else if self.len + s.len() <= INLINE_TEXT {
            self.inline[self.len..self.len + s.len()].copy_from_slice(s.as_bytes());
            self.len += s.len();
        } else {
            let mut heap = String::with_capacity(2 * (self.len + s.len()));
            heap.push_str(std::str::from_utf8(&self.inline[..self.len]).unwrap_or_default());
            heap.push_str(s);
            self.heap = Some(heap);
        }
    }

    /// `start..end` as bytes: what the encoding writes (a protobuf string
    /// is its UTF-8 bytes), without checking them again.
    fn bytes(&self, start: usize, end: usize) -> &[u8] {
        match &self.heap {
            Some(heap) => heap.as_bytes().get(start..end).unwrap_or_default(),
            None => self.inline.get(start..end).unwrap_or_default(),
        }
    }

    /// `start..end`; whole `str`s are pushed, so a range is one.
    fn get(&self, start: usize, end: usize) -> &str {
        match &self.heap {
            Some(heap) => heap.get(start..end).unwrap_or_default(),
            None => self
                .inline
                .get(start..end)
                .and_then(|b| std::str::from_utf8(b).ok())
                .unwrap_or_default(),
        }
    }
}

impl std::fmt::Write for Text {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.push_str(s);
        Ok(())
    }
}

impl std::fmt::Debug for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Text").field("len", &self.len()).finish()
    }
}

/// One span, as recorded until it ends and as it is exported.
#[derive(Debug, Clone)]
pub struct Record {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent_span_id: Option<[u8; 8]>,
    /// The parent is the caller's span, not one of the gateway's.
    pub parent_remote: bool,
    /// W3C `tracestate`, as the caller sent it (empty: none).
    pub trace_state: String,
    pub name: Name,
    pub kind: Kind,
    /// Marked an error (`otel.status_code = "ERROR"`).
    pub error: bool,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
    attributes: [(&'static str, Value); MAX_ATTRIBUTES],
    attribute_count: usize,
    /// Attributes past [`MAX_ATTRIBUTES`], not kept.
    dropped_attributes: u32,
    /// The text of the name and of every text attribute.
    text: Text,
}

impl Record {
    /// A record with no attributes yet.
    pub fn new(trace_id: [u8; 16], span_id: [u8; 8], name: &'static str, start: u64) -> Self {
        Self {
            trace_id,
            span_id,
            parent_span_id: None,
            parent_remote: false,
            trace_state: String::new(),
            name: Name::Static(name),
            kind: Kind::Internal,
            error: false,
            start_unix_nanos: start,
            end_unix_nanos: start,
            attributes: [("", Value::Bool(false)); MAX_ATTRIBUTES],
            attribute_count: 0,
            dropped_attributes: 0,
            text: Text::new(),
        }
    }

    /// Keeps `s` in the record's text.
    pub fn keep(&mut self, s: &str) -> Range {
        let start = self.text.len();
        self.text.push_str(s);
        Range(start as u32, self.text.len() as u32)
    }

    /// Keeps what `f` writes in the record's text.
    pub fn keep_with(&mut self, f: impl FnOnce(&mut dyn std::fmt::Write)) -> Range {
        let start = self.text.len();
        f(&mut self.text);
        Range(start as u32, self.text.len() as u32)
    }

    /// Sets attribute `key`, in place of any value it had.
    pub fn set(&mut self, key: &'static str, value: Value) {
        let count = self.attribute_count;
        // Keys are field names, each one `&'static str`: the same pointer
        // for the same field, and text compared only past that.
        let same = |k: &&str| std::ptr::eq(*k, key) || *k == key;
        if let Some(slot) = self.attributes[..count].iter_mut().find(|(k, _)| same(k)) {
            slot.1 = value;
        } else if count < MAX_ATTRIBUTES {
            self.attributes[count] = (key, value);
            self.attribute_count += 1;
        } else {
            self.dropped_attributes += 1;
        }
    }

    /// The attributes, in the order they were first set.
    pub fn attributes(&self) -> &[(&'static str, Value)] {
        &self.attributes[..self.attribute_count]
    }

    /// The text `range` points at.
    pub fn str(&self, Range(start, end): Range) -> &str {
        self.text.get(start as usize, end as usize)
    }

    /// The text `range` points at, as bytes.
    fn bytes(&self, Range(start, end): Range) -> &[u8] {
        self.text.bytes(start as usize, end as usize)
    }

    /// The span's name, as bytes.
    fn name_bytes(&self) -> &[u8] {
        match self.name {
            Name::Static(s) => s.as_bytes(),
            Name::Text(r) => self.bytes(r),
        }
    }

    /// The span's name.
    pub fn name(&self) -> &str {
        match self.name {
            Name::Static(s) => s,
            Name::Text(r) => self.str(r),
        }
    }

    /// The value of attribute `key`, as text (for tests and logs).
    pub fn attribute(&self, key: &str) -> Option<String> {
        let (_, value) = self.attributes().iter().find(|(k, _)| *k == key)?;
        Some(match *value {
            Value::Text(r) => self.str(r).to_owned(),
            Value::Int(i) => i.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Float(f) => f.to_string(),
        })
    }
}

// Field numbers of opentelemetry/proto/trace/v1/trace.proto and
// opentelemetry/proto/common/v1/common.proto.
const REQUEST_RESOURCE_SPANS: u32 = 1;
const RESOURCE_SPANS_RESOURCE: u32 = 1;
const RESOURCE_SPANS_SCOPE_SPANS: u32 = 2;
const RESOURCE_ATTRIBUTES: u32 = 1;
const SCOPE_SPANS_SCOPE: u32 = 1;
const SCOPE_SPANS_SPANS: u32 = 2;
const SCOPE_NAME: u32 = 1;
const SPAN_TRACE_ID: u32 = 1;
const SPAN_SPAN_ID: u32 = 2;
const SPAN_TRACE_STATE: u32 = 3;
const SPAN_PARENT_SPAN_ID: u32 = 4;
const SPAN_NAME: u32 = 5;
const SPAN_KIND: u32 = 6;
const SPAN_START: u32 = 7;
const SPAN_END: u32 = 8;
const SPAN_ATTRIBUTES: u32 = 9;
const SPAN_DROPPED_ATTRIBUTES: u32 = 10;
const SPAN_STATUS: u32 = 15;
const SPAN_FLAGS: u32 = 16;
const STATUS_CODE: u32 = 3;
const STATUS_CODE_ERROR: u64 = 2;
const KEY_VALUE_KEY: u32 = 1;
const KEY_VALUE_VALUE: u32 = 2;
const ANY_STRING: u32 = 1;
const ANY_BOOL: u32 = 2;
const ANY_INT: u32 = 3;
const ANY_DOUBLE: u32 = 4;
/// `SpanFlags`: the low byte is the W3C trace flags; these say whether the
/// parent is remote.
const FLAGS_HAS_IS_REMOTE: u32 = 0x100;
const FLAGS_IS_REMOTE: u32 = 0x200;
const SAMPLED: u32 = 0x01;

/// The resource and scope every request carries, encoded once.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// The `Resource` message.
    resource: Vec<u8>,
    /// The `InstrumentationScope` message.
    scope: Vec<u8>,
}

impl Envelope {
    /// `attributes` are the resource's, in order; `scope` names the
    /// instrumentation scope.
    pub fn new<'a>(attributes: impl IntoIterator<Item = (&'a str, &'a str)>, scope: &str) -> Self {
        let mut resource = Vec::new();
        for (key, value) in attributes {
            let any = string_len(ANY_STRING, value.len());
            let kv = string_len(KEY_VALUE_KEY, key.len()) + message_len(KEY_VALUE_VALUE, any);
            encode_message_header(RESOURCE_ATTRIBUTES, kv, &mut resource);
            encode_string(KEY_VALUE_KEY, key, &mut resource);
            encode_message_header(KEY_VALUE_VALUE, any, &mut resource);
            encode_string(ANY_STRING, value, &mut resource);
        }
        let mut encoded_scope = Vec::new();
        encode_string(SCOPE_NAME, scope, &mut encoded_scope);
        Self {
            resource,
            scope: encoded_scope,
        }
    }

    /// Writes an `ExportTraceServiceRequest` with `spans` into `buf`
    /// (cleared first).
    pub fn encode(&self, spans: &[Record], buf: &mut Vec<u8>) {
        let mut encoded = Vec::new();
        for span in spans {
            encode_span_field(span, &mut encoded);
        }
        self.encode_encoded(&encoded, buf);
    }

    /// Writes an `ExportTraceServiceRequest` into `buf` (cleared first)
    /// around `spans`: spans as [`encode_span_field`] wrote them, one
    /// after another.
    pub fn encode_encoded(&self, spans: &[u8], buf: &mut Vec<u8>) {
        buf.clear();
        let scope_spans = message_len(SCOPE_SPANS_SCOPE, self.scope.len()) + spans.len();
        let resource_spans = message_len(RESOURCE_SPANS_RESOURCE, self.resource.len())
            + message_len(RESOURCE_SPANS_SCOPE_SPANS, scope_spans);
        buf.reserve(message_len(REQUEST_RESOURCE_SPANS, resource_spans));
        encode_message_header(REQUEST_RESOURCE_SPANS, resource_spans, buf);
        encode_message_header(RESOURCE_SPANS_RESOURCE, self.resource.len(), buf);
        buf.extend_from_slice(&self.resource);
        encode_message_header(RESOURCE_SPANS_SCOPE_SPANS, scope_spans, buf);
        encode_message_header(SCOPE_SPANS_SCOPE, self.scope.len(), buf);
        buf.extend_from_slice(&self.scope);
        buf.extend_from_slice(spans);
    }
}

/// Appends `span` to `buf` as a `ScopeSpans.spans` field: spans written
/// one after another are the spans of one [`Envelope::encode_encoded`].
pub fn encode_span_field(span: &Record, buf: &mut Vec<u8>) {
    let len = span_len(span);
    buf.reserve(message_len(SCOPE_SPANS_SPANS, len));
    encode_message_header(SCOPE_SPANS_SPANS, len, buf);
    encode_span(span, buf);
}

/// A length-delimited field of `len` bytes: its key, length and bytes.
fn message_len(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

fn string_len(tag: u32, len: usize) -> usize {
    message_len(tag, len)
}

fn encode_message_header(tag: u32, len: usize, buf: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(len as u64, buf);
}

fn encode_string(tag: u32, s: &str, buf: &mut Vec<u8>) {
    encode_bytes(tag, s.as_bytes(), buf);
}

fn encode_bytes(tag: u32, b: &[u8], buf: &mut Vec<u8>) {
    encode_message_header(tag, b.len(), buf);
    buf.extend_from_slice(b);
}

fn any_len(record: &Record, value: &Value) -> usize {
    match *value {
        Value::Text(r) => string_len(ANY_STRING, record.bytes(r).len()),
        Value::Bool(_) => key_len(ANY_BOOL) + 1,
        Value::Int(i) => key_len(ANY_INT) + encoded_len_varint(i as u64),
        Value::Float(_) => key_len(ANY_DOUBLE) + 8,
    }
}

fn key_value_len(record: &Record, key: &str, value: &Value) -> usize {
    string_len(KEY_VALUE_KEY, key.len()) + message_len(KEY_VALUE_VALUE, any_len(record, value))
}

fn status_len() -> usize {
    key_len(STATUS_CODE) + encoded_len_varint(STATUS_CODE_ERROR)
}

fn span_len(span: &Record) -> usize {
    let mut len = string_len(SPAN_TRACE_ID, 16) + string_len(SPAN_SPAN_ID, 8);
    if !span.trace_state.is_empty() {
        len += string_len(SPAN_TRACE_STATE, span.trace_state.len());
    }
    if span.parent_span_id.is_some() {
        len += string_len(SPAN_PARENT_SPAN_ID, 8);
    }
    len += string_len(SPAN_NAME, span.name_bytes().len());
    len += key_len(SPAN_KIND) + encoded_len_varint(span.kind as u64);
    len += 2 * (key_len(SPAN_START) + 8);
    for (key, value) in span.attributes() {
        len += message_len(SPAN_ATTRIBUTES, key_value_len(span, key, value));
    }
    if span.dropped_attributes > 0 {
        len += key_len(SPAN_DROPPED_ATTRIBUTES)
            + encoded_len_varint(u64::from(span.dropped_attributes));
    }
    if span.error {
        len += message_len(SPAN_STATUS, status_len());
    }
    len + key_len(SPAN_FLAGS) + 4
}

fn encode_span(span: &Record, buf: &mut Vec<u8>) {
    encode_bytes(SPAN_TRACE_ID, &span.trace_id, buf);
    encode_bytes(SPAN_SPAN_ID, &span.span_id, buf);
    if !span.trace_state.is_empty() {
        encode_string(SPAN_TRACE_STATE, &span.trace_state, buf);
    }
    if let Some(parent) = &span.parent_span_id {
        encode_bytes(SPAN_PARENT_SPAN_ID, parent, buf);
    }
    encode_bytes(SPAN_NAME, span.name_bytes(), buf);
    encode_key(SPAN_KIND, WireType::Varint, buf);
    encode_varint(span.kind as u64, buf);
    encode_key(SPAN_START, WireType::SixtyFourBit, buf);
    buf.extend_from_slice(&span.start_unix_nanos.to_le_bytes());
    encode_key(SPAN_END, WireType::SixtyFourBit, buf);
    buf.extend_from_slice(&span.end_unix_nanos.to_le_bytes());
    for (key, value) in span.attributes() {
        encode_message_header(SPAN_ATTRIBUTES, key_value_len(span, key, value), buf);
        encode_string(KEY_VALUE_KEY, key, buf);
        encode_message_header(KEY_VALUE_VALUE, any_len(span, value), buf);
        match *value {
            Value::Text(r) => encode_bytes(ANY_STRING, span.bytes(r), buf),
            Value::Bool(b) => {
                encode_key(ANY_BOOL, WireType::Varint, buf);
                encode_varint(u64::from(b), buf);
            }
            Value::Int(i) => {
                encode_key(ANY_INT, WireType::Varint, buf);
                encode_varint(i as u64, buf);
            }
            Value::Float(f) => {
                encode_key(ANY_DOUBLE, WireType::SixtyFourBit, buf);
                buf.extend_from_slice(&f.to_le_bytes());
            }
        }
    }
    if span.dropped_attributes > 0 {
        encode_key(SPAN_DROPPED_ATTRIBUTES, WireType::Varint, buf);
        encode_varint(u64::from(span.dropped_attributes), buf);
    }
    if span.error {
        encode_message_header(SPAN_STATUS, status_len(), buf);
        encode_key(STATUS_CODE, WireType::Varint, buf);
        encode_varint(STATUS_CODE_ERROR, buf);
    }
    let remote = if span.parent_remote {
        FLAGS_IS_REMOTE
    } else {
        0
    };
    encode_key(SPAN_FLAGS, WireType::ThirtyTwoBit, buf);
    buf.extend_from_slice(&(SAMPLED | FLAGS_HAS_IS_REMOTE | remote).to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
    use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
    use prost::Message;

    fn server() -> Record {
        let mut r = Record::new([7; 16], [1; 8], "rpc", 1_700_000_000_000_000_001);
        r.end_unix_nanos = 1_700_000_000_000_900_000;
        r.parent_span_id = Some([9; 8]);
        r.parent_remote = true;
        r.trace_state = "caller=1".into();
        r.kind = Kind::Server;
        r.error = true;
        let name = r.keep("svc/Method");
        r.name = Name::Text(name);
        let v = r.keep("grpc");
        r.set("rpc.system", Value::Text(v));
        r.set("rpc.grpc.status_code", Value::Int(0));
        // A later record of the same key replaces the first.
        r.set("rpc.grpc.status_code", Value::Int(14));
        r.set("token.cache_hit", Value::Bool(true));
        r.set("ratio", Value::Float(0.25));
        r.set("negative", Value::Int(-3));
        // Past what the record holds in itself: its text moves to the heap.
        let long = r.keep(&"x".repeat(300));
        r.set("long", Value::Text(long));
        let after = r.keep("é after");
        r.set("after", Value::Text(after));
        r
    }

    fn child() -> Record {
        let mut r = Record::new([7; 16], [2; 8], "access", 5);
        r.parent_span_id = Some([1; 8]);
        r.end_unix_nanos = 6;
        r
    }

    fn decode(spans: &[Record]) -> ExportTraceServiceRequest {
        let envelope = Envelope::new(
            [("service.name", "gw"), ("k8s.pod.name", "gw-0")],
            "graph-grpc-gateway",
        );
        let mut buf = vec![1, 2, 3];
        envelope.encode(spans, &mut buf);
        ExportTraceServiceRequest::decode(buf.as_slice()).expect("a valid request")
    }

    #[test]
    fn the_request_decodes_as_otlp_with_every_field_written() {
        let request = decode(&[server(), child()]);
        assert_eq!(request.resource_spans.len(), 1);
        let rs = &request.resource_spans[0];
        let resource: Vec<(String, String)> = rs
            .resource
            .as_ref()
            .expect("resource")
            .attributes
            .iter()
            .map(|kv| {
                let Some(Any::StringValue(v)) = kv.value.as_ref().and_then(|v| v.value.clone())
                else {
                    panic!("{kv:?}")
                };
                (kv.key.clone(), v)
            })
            .collect();
        assert_eq!(
            resource,
            [
                ("service.name".to_owned(), "gw".to_owned()),
                ("k8s.pod.name".to_owned(), "gw-0".to_owned())
            ]
        );
        assert_eq!(rs.scope_spans.len(), 1);
        let ss = &rs.scope_spans[0];
        assert_eq!(ss.scope.as_ref().expect("scope").name, "graph-grpc-gateway");
        assert_eq!(ss.spans.len(), 2);
        let s = &ss.spans[0];
        assert_eq!(s.trace_id, vec![7; 16]);
        assert_eq!(s.span_id, vec![1; 8]);
        assert_eq!(s.parent_span_id, vec![9; 8]);
        assert_eq!(s.trace_state, "caller=1");
        assert_eq!(s.name, "svc/Method");
        assert_eq!(s.kind, 2);
        assert_eq!(s.start_time_unix_nano, 1_700_000_000_000_000_001);
        assert_eq!(s.end_time_unix_nano, 1_700_000_000_000_900_000);
        assert_eq!(s.flags, 0x301);
        assert_eq!(
            s.status.as_ref().map(|st| st.code),
            Some(StatusCode::Error as i32)
        );
        let attrs: Vec<(String, Option<Any>)> = s
            .attributes
            .iter()
            .map(|kv| {
                (
                    kv.key.clone(),
                    kv.value.as_ref().and_then(|v| v.value.clone()),
                )
            })
            .collect();
        assert_eq!(
            attrs,
            [
                ("rpc.system".into(), Some(Any::StringValue("grpc".into()))),
                ("rpc.grpc.status_code".into(), Some(Any::IntValue(14))),
                ("token.cache_hit".into(), Some(Any::BoolValue(true))),
                ("ratio".into(), Some(Any::DoubleValue(0.25))),
                ("negative".into(), Some(Any::IntValue(-3))),
                ("long".into(), Some(Any::StringValue("x".repeat(300)))),
                ("after".into(), Some(Any::StringValue("é after".into()))),
            ]
        );
        assert_eq!(s.dropped_attributes_count, 0);
        let c = &ss.spans[1];
        assert_eq!(c.name, "access");
        assert_eq!(c.kind, 1);
        assert_eq!(c.parent_span_id, vec![1; 8]);
        assert_eq!(c.flags, 0x101, "a local parent");
        assert!(c.status.is_none(), "unset");
        assert!(c.trace_state.is_empty());
    }

    #[test]
    fn a_root_span_has_no_parent_and_an_empty_batch_is_a_valid_request() {
        let mut root = child();
        root.parent_span_id = None;
        let request = decode(&[root]);
        let span = &request.resource_spans[0].scope_spans[0].spans[0];
        assert!(span.parent_span_id.is_empty());
        let request = decode(&[]);
        assert!(request.resource_spans[0].scope_spans[0].spans.is_empty());
    }

    #[test]
    fn attributes_past_the_limit_are_dropped_and_counted() {
        let mut r = child();
        const KEYS: [&str; MAX_ATTRIBUTES + 2] = [
            "a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9", "a10", "a11", "a12", "a13",
            "a14", "a15", "a16", "a17",
        ];
        for (i, key) in KEYS.into_iter().enumerate() {
            r.set(key, Value::Int(i as i64));
        }
        // A key already held is replaced, not dropped.
        r.set("a0", Value::Int(100));
        let request = decode(&[r]);
        let span = &request.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(span.attributes.len(), MAX_ATTRIBUTES);
        assert_eq!(span.dropped_attributes_count, 2);
        assert_eq!(
            span.attributes[0]
                .value
                .as_ref()
                .and_then(|v| v.value.clone()),
            Some(Any::IntValue(100))
        );
    }

    #[test]
    fn attributes_read_back_as_text() {
        let r = server();
        assert_eq!(r.attribute("rpc.system").as_deref(), Some("grpc"));
        assert_eq!(r.attribute("rpc.grpc.status_code").as_deref(), Some("14"));
        assert_eq!(r.attribute("token.cache_hit").as_deref(), Some("true"));
        assert_eq!(r.attribute("missing"), None);
        assert_eq!(r.name(), "svc/Method");
    }
}

//! Shared by the trace tests: an OTLP/HTTP receiver (a tiny axum server decoding the protobuf
//! the `waas` processes export) and what to ask of the spans it got.

#![allow(dead_code)]

use axum::body::Bytes;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use std::sync::{Arc, Mutex};
use waas_test_support::upstream::TestUpstream;

/// What the receiver got: (service.name, span).
pub type Received = Arc<Mutex<Vec<(String, Span)>>>;

/// The OTLP/HTTP receiver, on the tests' HTTP server helper; returns it with what it got.
pub async fn receiver() -> (TestUpstream, Received) {
    let received: Received = Arc::default();
    let sink = Arc::clone(&received);
    let app = axum::Router::new().route(
        "/v1/traces",
        post(move |body: Bytes| {
            let sink = Arc::clone(&sink);
            async move {
                let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                for rs in request.resource_spans {
                    let service = rs
                        .resource
                        .iter()
                        .flat_map(|r| r.attributes.iter())
                        .find(|a| a.key == "service.name")
                        .and_then(|a| a.value.as_ref())
                        .map(|v| format!("{:?}", v.value))
                        .unwrap_or_default();
                    for ss in rs.scope_spans {
                        for span in ss.spans {
                            sink.lock().unwrap().push((service.clone(), span));
                        }
                    }
                }
                // An empty ExportTraceServiceResponse: everything accepted.
                Vec::<u8>::new()
            }
        }),
    );
    (TestUpstream::start(app).await, received)
}

pub fn named<'a>(spans: &'a [(String, Span)], name: &str) -> Vec<&'a Span> {
    spans
        .iter()
        .filter(|(_, s)| s.name == name)
        .map(|(_, s)| s)
        .collect()
}

/// `child`'s parent is `parent`, in the same trace.
pub fn is_child_of(child: &Span, parent: &Span) -> bool {
    child.trace_id == parent.trace_id && child.parent_span_id == parent.span_id
}

/// The one span named `name` whose parent is `parent`; fails with every span when there is
/// none or several.
pub fn child<'a>(spans: &'a [(String, Span)], name: &str, parent: &Span) -> &'a Span {
    let found: Vec<&Span> = named(spans, name)
        .into_iter()
        .filter(|s| is_child_of(s, parent))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "{name} under {} ({}): {:#?}",
        parent.name,
        hex(&parent.span_id),
        summary(spans)
    );
    found[0]
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The spans as `name trace/span <- parent`, for failure messages.
pub fn summary(spans: &[(String, Span)]) -> Vec<String> {
    spans
        .iter()
        .map(|(service, s)| {
            format!(
                "{service} {} {}/{} <- {}",
                s.name,
                hex(&s.trace_id),
                hex(&s.span_id),
                hex(&s.parent_span_id)
            )
        })
        .collect()
}

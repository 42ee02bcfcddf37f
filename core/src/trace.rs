//! W3C trace context (`traceparent`) for OpenTelemetry traces that cross the bus
//! (`docs/observability.md`): a publish or a request carries the span it was made in, and the
//! gateway or responder that receives it opens its own spans under that one, so one trace runs
//! from a REST publish to the socket writes of every gateway that delivered it, and from a
//! request over the socket to the server or upstream that answered it.
//!
//! Off unless the process exports traces ([`enable`], called once at start-up by `waas` with
//! `--otel-endpoint`): then [`TraceParent::current`] is one atomic load that says `None`, no
//! header is written or read, and [`span!`](crate::span) makes no span at all — the fan-out
//! path pays nothing for tracing it does not do.

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use std::sync::atomic::{AtomicBool, Ordering};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The header that carries it, on the bus and to upstreams.
pub const HEADER: &str = "traceparent";

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Turns tracing on for this process: spans are made and trace context travels. Called once,
/// before serving, by a process that exports its spans.
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Whether this process traces.
#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// An `info` span named and with fields as in [`tracing::info_span!`] when this process traces,
/// else [`tracing::Span::none`] (no span is made, whatever the log filter says).
#[macro_export]
macro_rules! span {
    ($($arg:tt)*) => {
        if $crate::trace::enabled() {
            ::tracing::info_span!($($arg)*)
        } else {
            ::tracing::Span::none()
        }
    };
}

/// One span's identity as W3C trace context: version `00`, trace id, parent span id, flags.
/// `Copy` and 25 bytes: carried next to a message without an allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub flags: u8,
}

impl TraceParent {
    /// The span this code runs in, when this process traces and that span is exported.
    pub fn current() -> Option<TraceParent> {
        if !enabled() {
            return None;
        }
        Self::of(&tracing::Span::current())
    }

    /// `span`'s context (starting it, so set its parent first).
    pub fn of(span: &tracing::Span) -> Option<TraceParent> {
        if span.is_none() {
            return None;
        }
        let cx = span.context();
        let sc = cx.span().span_context().clone();
        sc.is_valid().then(|| TraceParent {
            trace_id: sc.trace_id().to_bytes(),
            span_id: sc.span_id().to_bytes(),
            flags: sc.trace_flags().to_u8(),
        })
    }

    /// Reads a `traceparent` header value; `None` when it is not one (version `00`, lower-case
    /// hex, ids not all zero). Unknown versions are refused rather than guessed at.
    pub fn parse(value: &str) -> Option<TraceParent> {
        let mut parts = value.split('-');
        let (version, trace, span, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let hex = |s: &str, len: usize| {
            s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        };
        if parts.next().is_some()
            || version != "00"
            || !hex(trace, 32)
            || !hex(span, 16)
            || !hex(flags, 2)
        {
            return None;
        }
        let trace_id = TraceId::from_hex(trace).ok()?;
        let span_id = SpanId::from_hex(span).ok()?;
        let flags = u8::from_str_radix(flags, 16).ok()?;
        (trace_id != TraceId::INVALID && span_id != SpanId::INVALID).then(|| TraceParent {
            trace_id: trace_id.to_bytes(),
            span_id: span_id.to_bytes(),
            flags,
        })
    }

    /// The header value, `00-{trace id}-{span id}-{flags}`.
    pub fn header(&self) -> String {
        format!(
            "00-{:032x}-{:016x}-{:02x}",
            TraceId::from_bytes(self.trace_id),
            SpanId::from_bytes(self.span_id),
            self.flags
        )
    }

    /// Makes this the parent of `span`, a span not yet entered: the span joins this trace.
    pub fn adopt(&self, span: &tracing::Span) {
        if span.is_none() {
            return;
        }
        let remote = SpanContext::new(
            TraceId::from_bytes(self.trace_id),
            SpanId::from_bytes(self.span_id),
            TraceFlags::new(self.flags),
            true,
            TraceState::default(),
        );
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_roundtrip_and_bad_values() {
        let value = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let tp = TraceParent::parse(value).expect("valid");
        assert_eq!(tp.flags, 1);
        assert_eq!(tp.span_id, [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]);
        assert_eq!(tp.header(), value);
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e47-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn off_means_no_context_and_no_span() {
        // Nothing in this test binary calls `enable`.
        assert!(!enabled());
        assert_eq!(TraceParent::current(), None);
        assert!(crate::span!("x").is_none());
    }
}

//! OpenTelemetry traces, off unless `--otel-endpoint` / `WAAS_OTEL_ENDPOINT` is given: then the
//! process's `tracing` spans are exported as OTLP over HTTP/protobuf to `{endpoint}/v1/traces`
//! (`docs/observability.md`). Without an endpoint no layer is installed, so spans cost what they
//! cost without OpenTelemetry.
//!
//! The exporter's batch processor runs on a thread of its own, outside the Tokio runtime; its
//! HTTP client ([`OtlpHttp`]) hands each export to the runtime and waits for it.

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::time::Duration;

/// Longest an export may take before it is given up.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Exported spans, as one service named `service` (`waas-dev`, `waas-gateway`,
/// `waas-control-plane`).
pub struct Otel {
    provider: SdkTracerProvider,
}

impl Otel {
    /// An exporter to `endpoint` (`http://host:port`, the collector's OTLP/HTTP base).
    pub fn new(endpoint: &str, service: &str) -> anyhow::Result<Otel> {
        let base = endpoint.trim_end_matches('/');
        let uri: hyper::Uri = base
            .parse()
            .with_context(|| format!("--otel-endpoint {endpoint:?} is not a URL"))?;
        if uri.scheme_str() != Some("http") || uri.authority().is_none() {
            anyhow::bail!(
                "--otel-endpoint must be http://host:port (OTLP over HTTP), not {endpoint:?}"
            );
        }
        let client = OtlpHttp {
            runtime: tokio::runtime::Handle::current(),
        };
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(format!("{base}/v1/traces"))
            .with_timeout(EXPORT_TIMEOUT)
            .with_http_client(client)
            .build()
            .context("OpenTelemetry exporter")?;
        let resource = opentelemetry_sdk::Resource::builder()
            .with_service_name(service.to_owned())
            .build();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build();
        Ok(Otel { provider })
    }

    /// The `tracing` layer that turns spans into OpenTelemetry spans.
    pub fn layer<S>(&self) -> impl tracing_subscriber::Layer<S>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        tracing_opentelemetry::layer().with_tracer(self.provider.tracer("waas"))
    }

    /// Sends what is still buffered; called once before the process exits.
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown() {
            eprintln!("OpenTelemetry: spans not all exported: {e}");
        }
    }
}

/// OTLP's HTTP client: one HTTP/1.1 exchange per export, on the Tokio runtime.
#[derive(Debug)]
struct OtlpHttp {
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for OtlpHttp {
    async fn send_bytes(
        &self,
        request: hyper::Request<Bytes>,
    ) -> Result<hyper::Response<Bytes>, opentelemetry_http::HttpError> {
        let task = self.runtime.spawn(async move {
            tokio::time::timeout(EXPORT_TIMEOUT, exchange(request))
                .await
                .map_err(|_| "OTLP export timed out".to_string())?
        });
        let response = task.await.map_err(|e| e.to_string())??;
        Ok(response)
    }
}

async fn exchange(request: hyper::Request<Bytes>) -> Result<hyper::Response<Bytes>, String> {
    let authority = request
        .uri()
        .authority()
        .ok_or("OTLP endpoint without a host")?
        .to_string();
    let stream = tokio::net::TcpStream::connect(&authority)
        .await
        .map_err(|e| format!("OTLP endpoint {authority}: {e}"))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let (mut parts, body) = request.into_parts();
    parts.headers.insert(
        hyper::header::HOST,
        authority.parse().map_err(|_| "bad host")?,
    );
    // hyper's client connection wants origin-form (`/v1/traces`).
    parts.uri = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .parse()
        .map_err(|_| "bad path")?;
    let response = sender
        .send_request(hyper::Request::from_parts(parts, Full::new(body)))
        .await
        .map_err(|e| e.to_string())?;
    let (parts, body) = response.into_parts();
    // The answer is small (an ExportTraceServiceResponse); read at most 64 KiB of it.
    let body = http_body_util::Limited::new(body, 64 * 1024)
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok(hyper::Response::from_parts(parts, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_bad_endpoint_is_refused_by_name() {
        for bad in [
            "ftp://127.0.0.1:4318",
            "https://127.0.0.1:4318",
            "127.0.0.1:4318",
            "x y",
        ] {
            let e = Otel::new(bad, "waas").err().expect(bad).to_string();
            assert!(e.contains("--otel-endpoint"), "{bad}: {e}");
        }
        Otel::new("http://127.0.0.1:4318/", "waas")
            .expect("accepted")
            .shutdown();
    }
}

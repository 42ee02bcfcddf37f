//! Cleaning up the JetStream streams a test cluster created (channel history and recordings,
//! `{prefix}_history_{app}` and `{prefix}_record_{app}`), so that test runs do not pile streams
//! up on the machine's NATS. Speaks the NATS text protocol over a blocking socket: it runs in
//! `Drop`, outside any runtime.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Deletes every stream whose subjects fall under `{prefix}.>`. Best effort: errors are ignored.
pub fn delete_streams(nats_url: &str, prefix: &str) {
    let _ = try_delete(nats_url, prefix);
}

fn try_delete(nats_url: &str, prefix: &str) -> std::io::Result<()> {
    let addr = nats_url
        .split(',')
        .next()
        .unwrap_or_default()
        .trim()
        .trim_start_matches("nats://");
    let stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    let mut line = String::new();
    reader.read_line(&mut line)?; // INFO
    writer.write_all(b"CONNECT {\"verbose\":false}\r\nSUB _INBOX.cleanup 1\r\n")?;
    let mut request = |subject: &str, body: &Value| -> std::io::Result<Value> {
        let body = body.to_string();
        write!(
            writer,
            "PUB {subject} _INBOX.cleanup {}\r\n{body}\r\n",
            body.len()
        )?;
        writer.flush()?;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            if line.starts_with("PING") {
                writer.write_all(b"PONG\r\n")?;
            } else if line.starts_with("MSG") {
                let size: usize = line
                    .split_whitespace()
                    .last()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                let mut payload = vec![0; size + 2];
                reader.read_exact(&mut payload)?;
                payload.truncate(size);
                return serde_json::from_slice(&payload).map_err(std::io::Error::other);
            }
        }
    };
    let names = request(
        "$JS.API.STREAM.NAMES",
        &json!({"offset": 0, "subject": format!("{prefix}.>")}),
    )?;
    for name in names["streams"].as_array().into_iter().flatten() {
        if let Some(name) = name.as_str() {
            request(&format!("$JS.API.STREAM.DELETE.{name}"), &json!({}))?;
        }
    }
    Ok(())
}

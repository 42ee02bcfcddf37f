//! The bounds on connections before they become WebSockets: header time, keep-alive idle
//! time, connections per source address. Over real sockets, so the server's socket closing is
//! what each test waits for.

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use waas_test_support::raw::WAIT;
use waas_test_support::{tokens, RawClient, TestServer};

/// Reads until the server closes the connection (EOF or reset); fails the test after [`WAIT`].
async fn closed_by_server(stream: &mut TcpStream) {
    let mut buf = [0u8; 1024];
    let eof = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    };
    tokio::time::timeout(WAIT, eof)
        .await
        .expect("the server should have closed the connection");
}

/// Sends `GET /healthz` on a kept-alive connection and reads the whole response.
async fn healthz(stream: &mut TcpStream) -> String {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    let read = async {
        // The body is "ok", the response's last bytes.
        while !got.ends_with(b"\r\n\r\nok") {
            let n = stream.read(&mut buf).await.expect("read response");
            assert!(n > 0, "closed before the response: {got:?}");
            got.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(WAIT, read).await.expect("response");
    String::from_utf8(got).unwrap()
}

/// A connection to `server` from the local address `from` (any of 127.0.0.0/8).
async fn connect_from(from: &str, server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(format!("{from}:0").parse().unwrap())
        .expect("bind the client side");
    socket.connect(server).await.expect("connect")
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_header_timeout() {
    let server = TestServer::with(|s| {
        s.limits.http_header_timeout_ms = 200;
        s.limits.http_keepalive_timeout_ms = 60_000;
    })
    .await;
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    closed_by_server(&mut silent).await;
}

#[tokio::test]
async fn headers_trickled_a_byte_at_a_time_are_cut_off_by_the_header_timeout() {
    let server = TestServer::with(|s| {
        s.limits.http_header_timeout_ms = 300;
        s.limits.http_keepalive_timeout_ms = 60_000;
    })
    .await;
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    // A header that never ends, a byte every 20 ms: each byte is progress, none completes it.
    let trickle = tokio::spawn(async move {
        let head = b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Slow: ";
        for byte in head.iter().chain(std::iter::repeat(&b'a')) {
            if write.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let mut buf = [0u8; 256];
    let n = tokio::time::timeout(WAIT, read.read(&mut buf))
        .await
        .expect("the server should have closed the connection")
        .unwrap_or(0);
    assert_eq!(n, 0, "no response, just the close: {:?}", &buf[..n]);
    trickle.abort();
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_after_the_keepalive_timeout() {
    let server = TestServer::with(|s| {
        s.limits.http_header_timeout_ms = 60_000;
        s.limits.http_keepalive_timeout_ms = 200;
    })
    .await;
    let mut conn = TcpStream::connect(server.addr).await.unwrap();
    assert!(healthz(&mut conn).await.starts_with("HTTP/1.1 200"));
    closed_by_server(&mut conn).await;
}

#[tokio::test]
async fn a_kept_alive_connection_may_idle_longer_than_the_header_timeout() {
    let server = TestServer::with(|s| {
        s.limits.http_header_timeout_ms = 100;
        s.limits.http_keepalive_timeout_ms = 60_000;
    })
    .await;
    let mut conn = TcpStream::connect(server.addr).await.unwrap();
    assert!(healthz(&mut conn).await.starts_with("HTTP/1.1 200"));
    // Time passing is the point here: several header timeouts of silence between requests.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(healthz(&mut conn).await.starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn one_address_at_its_connection_cap_does_not_lock_out_others() {
    let server = TestServer::with(|s| s.limits.max_connections_per_address = 3).await;
    let token = tokens::demo("cap", &[">"], &[">"]);
    // Upgraded WebSockets count for their whole life, as much as plain HTTP connections.
    let mut sockets = Vec::new();
    for _ in 0..2 {
        sockets.push(RawClient::ready(server.addr, "demo", &token).await);
    }
    let mut third = connect_from("127.0.0.1", server.addr).await;
    assert!(healthz(&mut third).await.starts_with("HTTP/1.1 200"));
    // A fourth from 127.0.0.1 is closed without an answer...
    let mut fourth = connect_from("127.0.0.1", server.addr).await;
    let _ = fourth
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        .await;
    let mut buf = [0u8; 256];
    let n = tokio::time::timeout(WAIT, fourth.read(&mut buf))
        .await
        .expect("the server should have closed the connection")
        .unwrap_or(0);
    assert_eq!(n, 0, "refused without a response: {:?}", &buf[..n]);
    // ...while another address is served.
    let mut other = connect_from("127.0.0.2", server.addr).await;
    assert!(healthz(&mut other).await.starts_with("HTTP/1.1 200"));
    // The capped address still has its three connections, all working.
    assert!(healthz(&mut third).await.starts_with("HTTP/1.1 200"));
    let pong = sockets[0]
        .request(serde_json::json!({"op": "ping", "id": 1}))
        .await;
    assert_eq!(pong["op"], "pong");
}

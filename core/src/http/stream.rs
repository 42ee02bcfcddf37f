//! The TCP stream under hyper ([`HttpStream`]): what the accept loop's bounds and an upgraded
//! connection need of the socket, and answers to pipelined requests sent in one write.

use super::accept::{Activity, AddressSlot};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Answers held for one write are sent at once above this many bytes, and an answer larger
/// than it goes straight to the socket.
const HOLD_MAX: usize = 64 << 10;

/// The TCP stream under hyper: reports arriving bytes to the connection's [`Activity`], and
/// holds the connection's [`AddressSlot`] so that the slot lives as long as the socket, handed
/// on with it when the connection is upgraded.
///
/// It also sends the answers to pipelined requests together. hyper flushes after every
/// response, so a client with 16 requests in flight got 16 writes, each a system call with the
/// loopback's delivery inside it: most of a REST publish's cost. Here a flush sends what hyper
/// wrote only once a read has found nothing more waiting (hyper has taken every request that
/// arrived); until then the answers are held, and go out with the last one. hyper's own
/// `pipeline_flush` does the same from its read buffer, but an upgrade then drops the unsent
/// `101`; here it stays with the socket ([`HttpStream::into_upgraded`]). An answer waits at most
/// for the requests that arrived with it. hyper flushes on every turn of its loop, which reads
/// first whenever its buffer is empty (a handler at work included), so once the socket is
/// found empty what is held goes out, whether or not a handler is still at work; and a flush
/// that finds nothing written since the last one held sends, whatever the reads found.
pub struct HttpStream {
    stream: TcpStream,
    activity: Arc<Activity>,
    slot: AddressSlot,
    /// What hyper wrote and the socket has not taken yet; `held[..sent]` went out.
    held: Vec<u8>,
    sent: usize,
    /// The last read found the socket empty (or at its end): no request waits to be answered
    /// after the ones hyper has.
    drained: bool,
    /// `held.len()` when a flush last held it: a flush that finds nothing written since sends.
    held_at_flush: usize,
}

impl HttpStream {
    pub(super) fn new(stream: TcpStream, activity: Arc<Activity>, slot: AddressSlot) -> HttpStream {
        HttpStream {
            stream,
            activity,
            slot,
            held: Vec::new(),
            sent: 0,
            drained: false,
            held_at_flush: 0,
        }
    }

    /// The socket and its address slot, for an upgraded connection to keep, once the answers
    /// still held (the `101` among them) are sent.
    pub async fn into_upgraded(mut self) -> io::Result<(TcpStream, AddressSlot)> {
        use tokio::io::AsyncWriteExt;
        self.stream.write_all(&self.held[self.sent..]).await?;
        Ok((self.stream, self.slot))
    }

    fn holding(&self) -> bool {
        self.sent < self.held.len()
    }

    /// Sends what is held.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.holding() {
            match Pin::new(&mut self.stream).poll_write(cx, &self.held[self.sent..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => self.sent += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        self.sent = 0;
        self.held_at_flush = 0;
        self.held.clear();
        if self.held.capacity() > 16 << 10 {
            // A kept-alive connection keeps no large buffer between bursts.
            self.held = Vec::new();
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for HttpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let res = Pin::new(&mut this.stream).poll_read(cx, buf);
        match &res {
            Poll::Ready(Ok(())) if buf.filled().len() > before => {
                this.drained = false;
                this.activity.bytes_arrived();
            }
            Poll::Ready(Ok(())) | Poll::Pending => this.drained = true,
            Poll::Ready(Err(_)) => {}
        }
        res
    }
}

impl AsyncWrite for HttpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        if this.held.len() - this.sent + len > HOLD_MAX {
            ready!(this.poll_send(cx))?;
            return Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        }
        for b in bufs {
            this.held.extend_from_slice(b);
        }
        Poll::Ready(Ok(len))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.holding() {
            if !this.drained && this.held.len() != this.held_at_flush {
                // More requests arrived with this one: their answers go in the same write. The
                // task is polled again, so that a flush with nothing new to hold sends even if
                // hyper has no reason to read (or write) before that.
                this.held_at_flush = this.held.len();
                cx.waker().wake_by_ref();
                return Poll::Ready(Ok(()));
            }
            ready!(this.poll_send(cx))?;
        }
        Pin::new(&mut this.stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::accept::{accept_until, HttpLimits};
    use axum::body::Body;
    use axum::routing::get;
    use axum::Router;
    use hyper_util::rt::TokioIo;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::Notify;

    /// A bound on each wait, so that a regression fails instead of hanging.
    const WAIT: Duration = Duration::from_secs(10);

    async fn serve(routes: Router) -> TcpStream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let limits = HttpLimits {
            header_timeout: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(30),
            max_connections_per_address: 0,
        };
        tokio::spawn(accept_until(
            listener,
            routes,
            limits,
            std::future::pending(),
        ));
        TcpStream::connect(addr).await.unwrap()
    }

    /// Reads until `got` holds `n` occurrences of `what`.
    async fn read_until(conn: &mut TcpStream, got: &mut String, what: &str, n: usize) {
        while got.matches(what).count() < n {
            let mut chunk = [0u8; 4096];
            let read = tokio::time::timeout(WAIT, conn.read(&mut chunk))
                .await
                .expect("answer in time")
                .unwrap();
            assert!(read > 0, "closed; got {got:?}");
            got.push_str(std::str::from_utf8(&chunk[..read]).unwrap());
        }
    }

    /// One poll of `io`'s read, as hyper makes it: the byte count, or pending.
    async fn read_once(io: &mut Pin<&mut HttpStream>) -> Poll<io::Result<usize>> {
        let mut buf = [0u8; 64];
        std::future::poll_fn(|cx| {
            let mut rb = ReadBuf::new(&mut buf);
            let polled = io.as_mut().poll_read(cx, &mut rb);
            Poll::Ready(polled.map(|r| r.map(|()| rb.filled().len())))
        })
        .await
    }

    /// The mechanism alone, as hyper drives it: write, flush, read.
    #[tokio::test]
    async fn answers_are_held_until_a_read_finds_the_socket_empty() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (client, accepted) = tokio::join!(
            TcpStream::connect(listener.local_addr().unwrap()),
            listener.accept()
        );
        let mut client = client.unwrap();
        let mut io = HttpStream::new(
            accepted.unwrap().0,
            Arc::new(Activity::new()),
            // Unlimited: a slot that counts nowhere.
            crate::http::accept::AddressCounts::default()
                .acquire(std::net::Ipv4Addr::LOCALHOST.into(), 0)
                .unwrap(),
        );
        let mut io = Pin::new(&mut io);
        // Two requests arrive together; the first one's answer is written and flushed.
        client.write_all(b"one,two").await.unwrap();
        client.flush().await.unwrap();
        io.as_mut().get_mut().stream.readable().await.unwrap();
        let got = read_once(&mut io).await;
        assert!(matches!(got, Poll::Ready(Ok(7))), "{got:?}");
        io.write_all(b"ONE,").await.unwrap();
        io.flush().await.unwrap();
        assert!(
            io.holding(),
            "held while the second request may be answered"
        );
        io.write_all(b"TWO").await.unwrap();
        io.flush().await.unwrap();
        assert!(io.holding());
        // hyper reads again and finds nothing: the next flush sends both answers at once.
        let got = read_once(&mut io).await;
        assert!(got.is_pending(), "{got:?}");
        assert!(io.holding(), "a read alone sends nothing");
        io.flush().await.unwrap();
        assert!(!io.holding());
        let mut answers = [0u8; 7];
        client.read_exact(&mut answers).await.unwrap();
        assert_eq!(&answers, b"ONE,TWO");

        // Another request arrives; its answer is held by one flush, and a second flush with
        // nothing written in between sends it, though no read found the socket empty.
        client.write_all(b"three").await.unwrap();
        io.as_mut().get_mut().stream.readable().await.unwrap();
        let got = read_once(&mut io).await;
        assert!(matches!(got, Poll::Ready(Ok(5))), "{got:?}");
        io.write_all(b"THREE").await.unwrap();
        io.flush().await.unwrap();
        assert!(io.holding());
        io.flush().await.unwrap();
        assert!(!io.holding());
        let mut answer = [0u8; 5];
        client.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"THREE");

        // Larger than what is held for one write: straight to the socket, after what is held.
        io.write_all(b"small").await.unwrap();
        let big = vec![b'x'; HOLD_MAX + 1];
        io.write_all(&big).await.unwrap();
        assert!(!io.holding());
        let mut both = vec![0u8; 5 + big.len()];
        client.read_exact(&mut both).await.unwrap();
        assert!(both.starts_with(b"smallx") && both.ends_with(b"xx"));
    }

    /// On two threads, so that the client could read between two writes if there were two.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn answers_to_pipelined_requests_leave_in_one_write() {
        let mut conn = serve(Router::new().route("/fast", get(|| async { "ok" }))).await;
        let requests = "GET /fast HTTP/1.1\r\nhost: t\r\n\r\n".repeat(10);
        conn.write_all(requests.as_bytes()).await.unwrap();
        tokio::time::timeout(WAIT, conn.readable())
            .await
            .unwrap()
            .unwrap();
        // The first bytes to arrive are all ten answers: one write, one segment.
        let mut buf = vec![0u8; 64 << 10];
        let n = conn.try_read(&mut buf).unwrap();
        let got = std::str::from_utf8(&buf[..n]).unwrap();
        assert_eq!(got.matches("HTTP/1.1 200 OK").count(), 10, "{got}");
    }

    #[tokio::test]
    async fn a_request_still_in_its_handler_does_not_hold_back_earlier_answers() {
        let gate = Arc::new(Notify::new());
        let open = Arc::clone(&gate);
        let routes = Router::new()
            .route("/fast", get(|| async { "fast" }))
            .route(
                "/slow",
                get(move || async move {
                    open.notified().await;
                    "slow"
                }),
            );
        let mut conn = serve(routes).await;
        conn.write_all(
            b"GET /fast HTTP/1.1\r\nhost: t\r\n\r\nGET /slow HTTP/1.1\r\nhost: t\r\n\r\n",
        )
        .await
        .unwrap();
        let mut got = String::new();
        read_until(&mut conn, &mut got, "fast", 1).await;
        assert!(!got.contains("slow"), "{got}");
        gate.notify_one();
        read_until(&mut conn, &mut got, "slow", 1).await;
    }

    #[tokio::test]
    async fn a_closing_connection_gets_its_answer() {
        let mut conn = serve(Router::new().route("/fast", get(|| async { "fast" }))).await;
        conn.write_all(b"GET /fast HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut got = Vec::new();
        tokio::time::timeout(WAIT, conn.read_to_end(&mut got))
            .await
            .expect("closed in time")
            .unwrap();
        let got = String::from_utf8(got).unwrap();
        assert!(
            got.starts_with("HTTP/1.1 200 OK") && got.ends_with("fast"),
            "{got}"
        );
    }

    /// `Expect: 100-continue`: the client sends the body only after the interim answer, which
    /// must not be held for a request that cannot complete without it.
    #[tokio::test]
    async fn an_interim_answer_goes_out_while_the_body_is_awaited() {
        let routes = Router::new().route(
            "/echo",
            axum::routing::post(|body: String| async move { body }),
        );
        let mut conn = serve(routes).await;
        conn.write_all(
            b"POST /echo HTTP/1.1\r\nhost: t\r\nexpect: 100-continue\r\ncontent-length: 4\r\n\r\n",
        )
        .await
        .unwrap();
        let mut got = String::new();
        read_until(&mut conn, &mut got, "100 Continue", 1).await;
        conn.write_all(b"body").await.unwrap();
        read_until(&mut conn, &mut got, "body", 1).await;
        assert!(got.contains("200 OK"), "{got}");
    }

    /// A client may send its first frames right behind the upgrade request, before the `101`
    /// arrives: the `101` must still go out, ahead of everything the upgraded side writes.
    #[tokio::test]
    async fn an_upgrade_answer_is_sent_when_bytes_follow_the_request() {
        let routes = Router::new().route(
            "/up",
            get(|mut req: axum::extract::Request| async move {
                let on = hyper::upgrade::on(&mut req);
                tokio::spawn(async move {
                    let parts = on.await.unwrap().downcast::<TokioIo<HttpStream>>().unwrap();
                    let (mut stream, _slot) = parts.io.into_inner().into_upgraded().await.unwrap();
                    // An echo: what hyper read past the request, then the rest.
                    stream.write_all(&parts.read_buf).await.unwrap();
                    let (mut r, mut w) = stream.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
                axum::response::Response::builder()
                    .status(101)
                    .header("connection", "upgrade")
                    .header("upgrade", "echo")
                    .body(Body::empty())
                    .unwrap()
            }),
        );
        let mut conn = serve(routes).await;
        conn.write_all(
            b"GET /up HTTP/1.1\r\nhost: t\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\nearly,",
        )
        .await
        .unwrap();
        let mut got = String::new();
        read_until(&mut conn, &mut got, "early,", 1).await;
        conn.write_all(b"later").await.unwrap();
        read_until(&mut conn, &mut got, "later", 1).await;
        assert!(got.starts_with("HTTP/1.1 101"), "{got}");
        assert!(got.ends_with("\r\n\r\nearly,later"), "{got}");
    }
}

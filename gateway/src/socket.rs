//! The TCP socket under an upgraded WebSocket, shared by the frame reader and the connection's
//! raw writer. The writer sends pre-encoded frames straight to the socket — many per syscall —
//! and on close the connection drains what the client still sends, so the kernel does not answer
//! our close frame's tail with a reset that would hide it from the client.

use bytes::{Buf, Bytes};
use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::TcpStream;

/// Frames written per `writev`; Linux allows 1024 slices, fewer keeps the stack array small.
const MAX_SLICES: usize = 64;

/// Reads the socket, first yielding bytes the HTTP layer had already buffered.
pub struct SocketReader {
    stream: Arc<TcpStream>,
    pending: Bytes,
}

impl SocketReader {
    /// `pending` usually is an empty slice of the HTTP layer's whole read buffer; keeping it
    /// would keep that buffer (8 KiB) alive for the life of the connection, so only a copy of
    /// what it holds is kept.
    pub fn new(stream: Arc<TcpStream>, pending: Bytes) -> Self {
        let pending = if pending.is_empty() {
            Bytes::new()
        } else {
            Bytes::copy_from_slice(&pending)
        };
        SocketReader { stream, pending }
    }
}

impl AsyncRead for SocketReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.pending.is_empty() {
            let n = self.pending.len().min(buf.remaining());
            buf.put_slice(&self.pending[..n]);
            self.pending.advance(n);
            if self.pending.is_empty() {
                self.pending = Bytes::new();
            }
            return Poll::Ready(Ok(()));
        }
        loop {
            ready!(self.stream.poll_read_ready(cx))?;
            match self.stream.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

/// Writes whole frames to the socket.
pub struct SocketWriter {
    stream: Arc<TcpStream>,
}

impl SocketWriter {
    pub fn new(stream: Arc<TcpStream>) -> Self {
        SocketWriter { stream }
    }

    /// Writes every frame in `frames`, as few syscalls as the kernel allows, leaving it empty.
    pub async fn write_all(&mut self, frames: &mut VecDeque<Bytes>) -> io::Result<()> {
        while !frames.is_empty() {
            self.stream.writable().await?;
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let count = frames.len().min(MAX_SLICES);
            for (slot, frame) in slices.iter_mut().zip(frames.iter()) {
                *slot = IoSlice::new(frame);
            }
            let mut written = match self.stream.try_write_vectored(&slices[..count]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            };
            while written > 0 {
                let front = frames.front_mut().expect("wrote more than queued");
                if written >= front.len() {
                    written -= front.len();
                    frames.pop_front();
                } else {
                    front.advance(written);
                    written = 0;
                }
            }
        }
        Ok(())
    }

    /// Sends FIN after the last frame, then discards what the client still sends until it
    /// closes or `linger` passes.
    pub async fn shutdown_and_drain(&self, linger: Duration) {
        let _ = socket2::SockRef::from(&*self.stream).shutdown(std::net::Shutdown::Write);
        let stream = Arc::clone(&self.stream);
        let drain = async move {
            let mut scratch = [0u8; 4096];
            loop {
                if stream.readable().await.is_err() {
                    return;
                }
                match stream.try_read(&mut scratch) {
                    Ok(0) => return,
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => return,
                }
            }
        };
        let _ = tokio::time::timeout(linger, drain).await;
    }
}

/// The span of one socket write of `frames` frames, under `trace` (the latest traced frame among
/// them); no span when none of them is traced.
pub fn write_span(trace: Option<waas_core::trace::TraceParent>, frames: usize) -> tracing::Span {
    match trace {
        None => tracing::Span::none(),
        Some(parent) => {
            let span = waas_core::span!("socket.write", frames);
            parent.adopt(&span);
            span
        }
    }
}

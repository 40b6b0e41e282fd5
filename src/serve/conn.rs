//! Connections as the server accepts them: at most `server.max_connections` open at once (more
//! wait in the listen backlog), each closed once no byte has moved either way for
//! `server.idle_timeout_ms` (a half-sent request head, an idle keep-alive, a client that
//! stopped reading), and closed when a request head is not complete within
//! `server.header_read_timeout_ms` of its first byte (a client that trickles a head a byte at
//! a time keeps the idle clock from running out, but not this one).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// A [`TcpListener`] that caps and times out its connections.
pub struct GuardedListener {
    inner: TcpListener,
    slots: Arc<Semaphore>,
    limits: Limits,
}

/// The time limits of one connection.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// No byte either way for this long closes the connection.
    pub idle: Duration,
    /// A request head (up to its blank line) must arrive within this of its first byte.
    pub head: Duration,
}

impl GuardedListener {
    pub fn new(inner: TcpListener, max_connections: usize, limits: Limits) -> Self {
        Self {
            inner,
            slots: Arc::new(Semaphore::new(max_connections)),
            limits,
        }
    }
}

impl axum::serve::Listener for GuardedListener {
    type Io = GuardedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        // A free slot first: beyond the cap, connections wait in the kernel's backlog.
        let permit = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    return (GuardedStream::new(stream, permit, self.limits), addr);
                }
                // Out of descriptors and the like: wait a little, as axum's own listener does.
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A connection that fails with `TimedOut` once it has been idle too long; it holds its slot
/// until dropped.
pub struct GuardedStream {
    inner: TcpStream,
    _slot: OwnedSemaphorePermit,
    limits: Limits,
    head: Head,
    /// The earlier of the idle deadline and the head's.
    deadline: Pin<Box<Sleep>>,
}

/// Where the connection is in the request / response exchange, as far as the head limit goes.
#[derive(Debug, Clone, Copy)]
enum Head {
    /// Between requests (before the first, or after a response started): only the idle limit.
    Between,
    /// A request head has started and must be complete by `by`; `seen` counts the bytes of
    /// "\r\n\r\n" matched so far.
    Reading { by: Instant, seen: u8 },
    /// The head is complete: the body and the handler run under the idle limit.
    Complete,
}

impl GuardedStream {
    fn new(inner: TcpStream, slot: OwnedSemaphorePermit, limits: Limits) -> Self {
        Self {
            inner,
            _slot: slot,
            limits,
            head: Head::Between,
            deadline: Box::pin(tokio::time::sleep(limits.idle)),
        }
    }

    fn moved(&mut self) {
        let mut at = Instant::now() + self.limits.idle;
        if let Head::Reading { by, .. } = self.head {
            at = at.min(by);
        }
        self.deadline.as_mut().reset(at);
    }

    /// Follows the request head through bytes just read.
    fn read_bytes(&mut self, bytes: &[u8]) {
        let mut state = self.head;
        if let Head::Between = state {
            state = Head::Reading {
                by: Instant::now() + self.limits.head,
                seen: 0,
            };
        }
        if let Head::Reading { by, mut seen } = state {
            const END: &[u8; 4] = b"\r\n\r\n";
            state = Head::Reading { by, seen };
            for &b in bytes {
                seen = if b == END[seen as usize] {
                    seen + 1
                } else if b == b'\r' {
                    1
                } else {
                    0
                };
                if seen == 4 {
                    state = Head::Complete;
                    break;
                }
                state = Head::Reading { by, seen };
            }
        }
        self.head = state;
    }

    /// Follows the exchange through bytes just written: a response (other than an interim
    /// "100 Continue", after which the body still comes) ends the request.
    fn wrote_bytes(&mut self, bytes: &[u8]) {
        if !bytes.starts_with(b"HTTP/1.1 100 ") {
            self.head = Head::Between;
        }
    }

    /// A write's outcome: bytes written restart the idle clock; `Pending` may time out.
    fn after_write(
        &mut self,
        written: Poll<io::Result<usize>>,
        first: &[u8],
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        match written {
            Poll::Ready(r) => {
                if matches!(r, Ok(n) if n > 0) {
                    self.wrote_bytes(first);
                    self.moved();
                }
                Poll::Ready(r)
            }
            Poll::Pending => self.pending_or_timed_out(cx),
        }
    }

    /// `Pending` from the socket becomes `TimedOut` once the deadline passed.
    fn pending_or_timed_out<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                match self.head {
                    Head::Reading { .. } => "request head not complete in time",
                    _ => "connection idle for too long",
                },
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    let this = &mut *self;
                    this.read_bytes(&buf.filled()[before..]);
                    // Bytes that trickle in never leave the socket empty for long: the
                    // head's deadline is checked on every read too.
                    if let Head::Reading { by, .. } = this.head
                        && Instant::now() >= by
                    {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "request head not complete in time",
                        )));
                    }
                    this.moved();
                }
                Poll::Ready(r)
            }
            Poll::Pending => self.pending_or_timed_out(cx),
        }
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write(cx, data);
        self.after_write(written, data, cx)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        let first = bufs
            .iter()
            .find(|b| !b.is_empty())
            .map_or(&[][..], |b| &b[..]);
        self.after_write(written, first, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

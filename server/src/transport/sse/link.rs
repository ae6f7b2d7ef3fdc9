//! One SSE stream on a socket the front door owns: a future that writes
//! what the connection's queue holds, chunked on HTTP/1.1, raw on HTTP/1.0.
//!
//! Nothing is allocated for an idle stream but this struct: bytes wait in
//! `out` only while the socket is behind, and reads (which only watch for
//! the client's leaving) go through the stack. The stream never reads its
//! queue while the socket is behind, so each batch is encoded at the front
//! of an empty buffer and its chunk header is written in place, without a
//! copy of the events.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::ReadBuf;

use super::Writer;
use crate::transport::ws::Socket;

/// Room before a batch for its chunk header: 16 hex digits and CRLF hold
/// any length.
const CHUNK_HEAD_ROOM: usize = 18;

/// The chunk that ends a chunked body.
const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// What a client may send after its request before the stream ends: a
/// stream is not followed by another answer, so what comes is read and
/// dropped, up to this.
const MAX_DISCARDED: usize = 8 * 1024;

pub struct Link<Io: Socket> {
    writer: Writer,
    io: Io,
    /// Bytes the socket has not taken yet; empty (no allocation) when caught up.
    out: BytesMut,
    /// HTTP/1.1: each batch is a chunk and the stream ends with the last chunk.
    chunked: bool,
    discarded: usize,
    /// The stream's last bytes are out: flushing, then closing our side.
    ending: bool,
    /// The first batch is encoded behind the response head (one write).
    started: bool,
}

impl<Io: Socket> Link<Io> {
    /// `out`: the response head, written with the first batch.
    pub(super) fn new(writer: Writer, io: Io, out: BytesMut, chunked: bool) -> Self {
        Self { writer, io, out, chunked, discarded: 0, ending: false, started: false }
    }

    /// The client's side: `Ready` when it is gone (end of stream, error,
    /// or more sent than a stream client sends).
    fn poll_client(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut chunk = [0u8; 512];
        // Bounded by MAX_DISCARDED: every pass reads at least one byte.
        loop {
            let mut read = ReadBuf::new(&mut chunk);
            match Pin::new(&mut self.io).poll_read(cx, &mut read) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(())) if !read.filled().is_empty() => {
                    self.discarded += read.filled().len();
                    if self.discarded > MAX_DISCARDED {
                        return Poll::Ready(());
                    }
                }
                Poll::Ready(_) => return Poll::Ready(()),
            }
        }
    }

    /// Encodes a batch from the queue onto `out` (empty, or holding only
    /// the response head), framed as a chunk on HTTP/1.1.
    fn encode(&mut self, cx: &mut Context<'_>) {
        let start = self.out.len();
        if self.chunked {
            self.out.put_bytes(0, CHUNK_HEAD_ROOM);
        }
        let body = self.out.len();
        self.writer.fill(cx.waker(), &mut self.out);
        let n = self.out.len() - body;
        if self.chunked {
            if n == 0 {
                self.out.truncate(start);
            } else {
                let mut head = [0u8; CHUNK_HEAD_ROOM];
                let at = chunk_head(n, &mut head);
                self.out[start + at..body].copy_from_slice(&head[at..]);
                // The unused room: what precedes it (a response head) moves
                // up against the chunk, and the front is dropped.
                self.out.copy_within(0..start, at);
                self.out.advance(at);
                self.out.put_slice(b"\r\n");
            }
            if self.writer.done {
                self.out.put_slice(LAST_CHUNK);
            }
        }
    }
}

/// Writes `n` in hex and CRLF at the end of `buf`; returns where it starts.
fn chunk_head(mut n: usize, buf: &mut [u8; CHUNK_HEAD_ROOM]) -> usize {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    buf[CHUNK_HEAD_ROOM - 2..].copy_from_slice(b"\r\n");
    let mut at = CHUNK_HEAD_ROOM - 2;
    loop {
        at -= 1;
        buf[at] = HEX[n & 0xf];
        n >>= 4;
        if n == 0 {
            return at;
        }
    }
}

impl<Io: Socket> Future for Link<Io> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if !this.ending && this.poll_client(cx).is_ready() {
            return Poll::Ready(());
        }
        if !this.started {
            this.started = true;
            this.encode(cx);
        }
        // Bounded: each pass writes, encodes a batch, or returns.
        loop {
            if this.out.is_empty() {
                if this.ending || this.writer.done {
                    this.ending = true;
                    this.out = BytesMut::new();
                    // Flushed (TLS), then our side closed: the end of an
                    // HTTP/1.0 body, and no further request on this one.
                    return match Pin::new(&mut this.io).poll_flush(cx) {
                        Poll::Ready(Ok(())) => Pin::new(&mut this.io).poll_shutdown(cx).map(|_| ()),
                        Poll::Ready(Err(_)) => Poll::Ready(()),
                        Poll::Pending => Poll::Pending,
                    };
                }
                this.encode(cx);
                if this.out.is_empty() {
                    // Caught up: give the buffer back, and push out what a
                    // TLS layer still holds (a no-op on plain TCP).
                    this.out = BytesMut::new();
                    return match Pin::new(&mut this.io).poll_flush(cx) {
                        Poll::Ready(Err(_)) => Poll::Ready(()),
                        _ => Poll::Pending,
                    };
                }
            }
            match Pin::new(&mut this.io).poll_write(cx, &this.out) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(()),
                Poll::Ready(Ok(n)) => this.out.advance(n),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_heads_are_hex_and_end_the_room() {
        let mut buf = [0u8; CHUNK_HEAD_ROOM];
        for (n, text) in
            [(1usize, "1\r\n"), (255, "ff\r\n"), (65_536, "10000\r\n"), (usize::MAX, "ffffffffffffffff\r\n")]
        {
            let at = chunk_head(n, &mut buf);
            assert_eq!(&buf[at..], text.as_bytes(), "{n}");
        }
    }
}

//! A WebSocket client written by hand on a bare TCP socket.
//!
//! Real client libraries answer pings and keep reading on their own; the
//! peers these tests need do neither. [`RawWs`] sends the upgrade request
//! itself, then reads (or does not read) frames exactly when the test says.
//! It writes after the upgrade only what a test hands to [`RawWs::send`]
//! (so it never answers a ping), built with [`client_frame`] or
//! [`client_header`]: frames no library would send.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{Instant, timeout_at};

/// The sample key of RFC 6455; the server only has to accept it.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// Bound on the upgrade response head.
const MAX_HEAD: usize = 16 * 1024;

/// How much one socket read may take in.
const READ_CHUNK: usize = 64 * 1024;

pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// One frame as it came off the wire (server frames are not masked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl RawFrame {
    /// The status code of a close frame that carries one.
    pub fn close_code(&self) -> Option<u16> {
        match (self.opcode, self.payload.as_slice()) {
            (OP_CLOSE, [hi, lo, ..]) => Some(u16::from_be_bytes([*hi, *lo])),
            _ => None,
        }
    }

    /// The text of a text frame.
    pub fn text(&self) -> Option<&str> {
        (self.opcode == OP_TEXT).then(|| std::str::from_utf8(&self.payload).ok()).flatten()
    }
}

/// The mask every client frame here uses (any mask is valid).
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// The header of a masked client frame announcing `len` payload bytes
/// (RFC 6455 §5.2), mask included: what a client sends before its payload.
pub fn client_header(fin: bool, opcode: u8, len: u64) -> Vec<u8> {
    let mut head = vec![if fin { 0x80 } else { 0 } | opcode];
    match len {
        0..=125 => head.push(0x80 | len as u8),
        126..=0xFFFF => {
            head.push(0x80 | 126);
            head.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            head.push(0x80 | 127);
            head.extend_from_slice(&len.to_be_bytes());
        }
    }
    head.extend_from_slice(&MASK);
    head
}

/// A whole masked client frame.
pub fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = client_header(fin, opcode, payload.len() as u64);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    frame
}

/// A WebSocket upgrade request head: `extra_headers` are header lines,
/// each ending in CRLF.
pub fn upgrade_request(addr: SocketAddr, method: &str, target: &str, extra_headers: &str) -> String {
    format!(
        "{method} {target} HTTP/1.1\r\n\
         Host: {addr}\r\n\
         Upgrade: websocket\r\n\
         Connection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\n\
         Sec-WebSocket-Version: 13\r\n{extra_headers}\r\n"
    )
}

/// What one read produced.
#[derive(Debug)]
pub enum RawRead {
    Frame(RawFrame),
    /// The server closed the TCP connection.
    Eof,
    /// Nothing complete arrived before the deadline.
    Timeout,
    /// The read failed; the error is shown in failure messages only.
    Failed(#[allow(dead_code)] std::io::Error),
}

/// How a connection ended, seen from the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// A close frame, with its code when it had one.
    Close(Option<u16>),
    /// The TCP connection ended (or was reset) without a close frame.
    Dropped,
}

/// An upgraded connection that reads only when asked to.
pub struct RawWs {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl RawWs {
    /// Sends `GET {target}` as a WebSocket upgrade and reads the response
    /// head; `Err(head)` when it is not `101`.
    ///
    /// # Panics
    /// When the server cannot be reached or answers nothing usable.
    pub async fn connect(addr: SocketAddr, target: &str) -> Result<Self, String> {
        Self::connect_with(addr, target, &[]).await
    }

    /// [`RawWs::connect`], with `early` sent in the same write right behind
    /// the request (frames a client pipelines after its upgrade).
    ///
    /// # Panics
    /// When the server cannot be reached or answers nothing usable.
    pub async fn connect_with(addr: SocketAddr, target: &str, early: &[u8]) -> Result<Self, String> {
        let stream = TcpStream::connect(addr).await.unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        Self::upgrade(stream, addr, target, early).await
    }

    /// [`RawWs::connect`] on a socket whose receive buffer is set to
    /// `bytes` before it connects, which also stops the kernel from growing
    /// it: a client that stops reading then holds at most about twice that
    /// (the kernel's bookkeeping share included), whatever the machine's
    /// `tcp_rmem`.
    ///
    /// # Panics
    /// When the server cannot be reached or answers nothing usable.
    pub async fn connect_with_recv_buffer(
        addr: SocketAddr,
        target: &str,
        bytes: u32,
    ) -> Result<Self, String> {
        let socket = TcpSocket::new_v4().unwrap_or_else(|e| panic!("a TCP socket: {e}"));
        socket.set_recv_buffer_size(bytes).unwrap_or_else(|e| panic!("SO_RCVBUF {bytes}: {e}"));
        let stream = socket.connect(addr).await.unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        Self::upgrade(stream, addr, target, &[]).await
    }

    /// Sends the upgrade request (and `early` right behind it) on `stream`
    /// and reads the response head.
    async fn upgrade(
        mut stream: TcpStream,
        addr: SocketAddr,
        target: &str,
        early: &[u8],
    ) -> Result<Self, String> {
        let mut request = upgrade_request(addr, "GET", target, "").into_bytes();
        request.extend_from_slice(early);
        stream.write_all(&request).await.unwrap_or_else(|e| panic!("send upgrade: {e}"));
        let mut this = Self { stream, buf: Vec::new() };
        let deadline = Instant::now() + tandem_e2e::WAIT;
        let head_end = loop {
            if let Some(pos) = this.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break pos + 4;
            }
            assert!(this.buf.len() < MAX_HEAD, "upgrade response head over {MAX_HEAD} bytes");
            match this.fill(deadline).await {
                Ok(()) => {}
                Err(end) => panic!("no upgrade response from {addr}{target}: {end:?}"),
            }
        };
        let head = String::from_utf8_lossy(&this.buf[..head_end]).into_owned();
        this.buf.drain(..head_end);
        if head.starts_with("HTTP/1.1 101") { Ok(this) } else { Err(head) }
    }

    /// Writes `bytes` as they are; `Err` when the server has closed.
    pub async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// Reads more bytes into the buffer.
    async fn fill(&mut self, deadline: Instant) -> Result<(), RawRead> {
        let start = self.buf.len();
        self.buf.resize(start + READ_CHUNK, 0);
        let read = timeout_at(deadline, self.stream.read(&mut self.buf[start..])).await;
        let n = match read {
            Err(_) => {
                self.buf.truncate(start);
                return Err(RawRead::Timeout);
            }
            Ok(Err(e)) => {
                self.buf.truncate(start);
                return Err(RawRead::Failed(e));
            }
            Ok(Ok(n)) => n,
        };
        self.buf.truncate(start + n);
        if n == 0 { Err(RawRead::Eof) } else { Ok(()) }
    }

    /// Makes sure `n` bytes are buffered.
    async fn need(&mut self, n: usize, deadline: Instant) -> Result<(), RawRead> {
        while self.buf.len() < n {
            self.fill(deadline).await?;
        }
        Ok(())
    }

    /// The next frame, or why there is none.
    pub async fn next(&mut self, deadline: Instant) -> RawRead {
        match self.read_frame(deadline).await {
            Ok(frame) => RawRead::Frame(frame),
            Err(end) => end,
        }
    }

    async fn read_frame(&mut self, deadline: Instant) -> Result<RawFrame, RawRead> {
        self.need(2, deadline).await?;
        let opcode = self.buf[0] & 0x0F;
        let masked = self.buf[1] & 0x80 != 0;
        let (len, mut header) = match self.buf[1] & 0x7F {
            126 => {
                self.need(4, deadline).await?;
                (u64::from(u16::from_be_bytes([self.buf[2], self.buf[3]])), 4)
            }
            127 => {
                self.need(10, deadline).await?;
                let mut be = [0u8; 8];
                be.copy_from_slice(&self.buf[2..10]);
                (u64::from_be_bytes(be), 10)
            }
            short => (u64::from(short), 2),
        };
        let mask_at = header;
        if masked {
            header += 4;
        }
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        assert!(len <= 64 * 1024 * 1024, "a frame of {len} bytes: not a Tandem frame");
        self.need(header + len, deadline).await?;
        let mut payload = self.buf[header..header + len].to_vec();
        if masked {
            let mask =
                [self.buf[mask_at], self.buf[mask_at + 1], self.buf[mask_at + 2], self.buf[mask_at + 3]];
            for (i, b) in payload.iter_mut().enumerate() {
                *b ^= mask[i % 4];
            }
        }
        self.buf.drain(..header + len);
        Ok(RawFrame { opcode, payload })
    }

    /// Reads (and discards) frames until the connection ends, at most
    /// `max_frames` of them; returns how it ended and what was read.
    ///
    /// # Panics
    /// When it is still open at `deadline` or after `max_frames` frames.
    pub async fn until_end(&mut self, deadline: Instant, max_frames: usize) -> (Ending, Vec<RawFrame>) {
        let mut frames = Vec::new();
        for _ in 0..max_frames {
            match self.next(deadline).await {
                RawRead::Frame(f) if f.opcode == OP_CLOSE => return (Ending::Close(f.close_code()), frames),
                RawRead::Frame(f) => frames.push(f),
                RawRead::Eof | RawRead::Failed(_) => return (Ending::Dropped, frames),
                RawRead::Timeout => panic!("still open at the deadline after {} frame(s)", frames.len()),
            }
        }
        panic!("still open after {max_frames} frames");
    }
}

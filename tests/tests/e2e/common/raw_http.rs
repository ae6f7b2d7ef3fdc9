//! An HTTP client on a bare TCP socket that sends its request and then
//! reads only when the test says: an SSE client that stops reading, which
//! a real HTTP client library would not let a test imitate.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

/// How much one socket read may take in.
const READ_CHUNK: usize = 64 * 1024;

/// A raw TCP client that sends one HTTP request and then reads only when
/// asked to (for an SSE client that stops reading).
pub struct RawHttp {
    stream: TcpStream,
}

impl RawHttp {
    /// Connects and sends `GET {target}` with `Accept: text/event-stream`.
    ///
    /// # Panics
    /// When the server cannot be reached.
    pub async fn get(addr: SocketAddr, target: &str) -> Self {
        let mut stream = TcpStream::connect(addr).await.unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        let request = format!(
            "GET {target} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap_or_else(|e| panic!("send request: {e}"));
        Self { stream }
    }

    /// Reads until the bytes read so far contain `marker` followed by a
    /// blank line, or the connection ends; returns the last `keep` bytes
    /// read and whether the connection ended.
    ///
    /// # Panics
    /// When neither happens by `deadline` or within `max_bytes`.
    pub async fn read_until(
        &mut self,
        marker: &[u8],
        keep: usize,
        max_bytes: usize,
        deadline: Instant,
    ) -> (Vec<u8>, bool) {
        let mut tail: Vec<u8> = Vec::with_capacity(2 * keep + READ_CHUNK);
        let mut chunk = vec![0u8; READ_CHUNK];
        let mut total = 0usize;
        loop {
            if let Some(pos) = tail.windows(marker.len()).position(|w| w == marker) {
                if tail[pos..].windows(2).any(|w| w == b"\n\n") {
                    return (tail, false);
                }
            }
            assert!(total <= max_bytes, "{total} bytes read and no {:?}", String::from_utf8_lossy(marker));
            let n = match timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Err(_) => {
                    panic!("{total} bytes read by the deadline and no {:?}", String::from_utf8_lossy(marker))
                }
                Ok(Err(_)) | Ok(Ok(0)) => return (tail, true),
                Ok(Ok(n)) => n,
            };
            total += n;
            tail.extend_from_slice(&chunk[..n]);
            if tail.len() > 2 * keep {
                tail.drain(..tail.len() - keep);
            }
        }
    }
}

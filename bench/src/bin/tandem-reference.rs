//! `tandem-reference`: the raw tokio broadcast server Tandem's CPU per
//! delivery is compared against. It does the least a fan-out server can:
//! WebSocket upgrade (tokio-tungstenite) on `GET /ws` or a raw
//! `text/event-stream` response on `GET /sse`, one bounded queue per
//! connection, `POST /api/publish` broadcasts one shared frame to every
//! connection. No sessions, no history, no auth, no metrics. Loopback only.
//!
//! Run: `tandem-reference --port 9090`, then point `tandem-bench --url
//! http://127.0.0.1:9090 --pid <its pid> fanout …` at it.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use bytes::Bytes;

#[derive(Parser)]
struct Cli {
    #[arg(long, default_value_t = 9090)]
    port: u16,
    /// Worker threads (Tandem uses one per core).
    #[arg(long, default_value_t = 2)]
    workers: usize,
}

/// Outbound queue per connection, as Tandem's default.
const QUEUE: usize = 256;
/// Largest publish body accepted.
const MAX_BODY: usize = 1 << 20;

/// Largest request head read from an SSE client.
const MAX_HEAD: usize = 16 * 1024;

/// One publication, serialized once for each transport.
#[derive(Clone)]
struct Frame {
    text: Utf8Bytes,
    sse: Bytes,
}

type Subscribers = Arc<Mutex<Vec<mpsc::Sender<Frame>>>>;

fn main() -> std::io::Result<()> {
    let cli = Cli::parse();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.workers.max(1))
        .enable_all()
        .build()?
        .block_on(async move {
            // The same accept backlog as Tandem and tandem-floor.
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.set_reuseaddr(true)?;
            socket.bind(([127, 0, 0, 1], cli.port).into())?;
            let listener: TcpListener = socket.listen(4096)?;
            println!("tandem-reference listening on 127.0.0.1:{}", cli.port);
            let subs: Subscribers = Arc::default();
            loop {
                let (stream, _) = listener.accept().await?;
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve(stream, Arc::clone(&subs)));
            }
        })
}

async fn serve(stream: TcpStream, subs: Subscribers) {
    let mut head = [0u8; 8];
    // The first bytes may arrive in pieces; wait (bounded) for all eight.
    for _ in 0..100 {
        match stream.peek(&mut head).await {
            Ok(n) if n >= head.len() => break,
            Ok(0) | Err(_) => return,
            Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(1)).await,
        }
    }
    if head.starts_with(b"POST") {
        let _ = publish(stream, &subs).await;
    } else if &head == b"GET /sse" {
        let _ = sse_subscriber(stream, &subs).await;
    } else {
        subscriber(stream, &subs).await;
    }
}

/// `GET /sse`: a raw event stream (no chunked encoding; the connection ends
/// the body), one write per event.
async fn sse_subscriber(mut stream: TcpStream, subs: &Subscribers) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 || head.len() > MAX_HEAD {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    drop(head);
    let (queue, mut outbound) = mpsc::channel::<Frame>(QUEUE);
    subs.lock().push(queue);
    stream
        .write_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n\
              connection: close\r\n\r\nevent: welcome\ndata: {\"type\":\"welcome\"}\n\n",
        )
        .await?;
    let (mut rx, mut tx) = stream.into_split();
    let mut buf = [0u8; 64];
    loop {
        tokio::select! {
            frame = outbound.recv() => match frame {
                Some(frame) => tx.write_all(&frame.sse).await?,
                None => return Ok(()),
            },
            // The client sends nothing; a read of 0 or an error means it left.
            n = rx.read(&mut buf) => if n? == 0 { return Ok(()) },
        }
    }
}

async fn subscriber(stream: TcpStream, subs: &Subscribers) {
    // tungstenite's default 128 KiB read buffer would be most of an idle
    // connection's memory; clients here send nothing but control frames.
    let config = WebSocketConfig::default().read_buffer_size(4096);
    let Ok(ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else { return };
    let (mut tx, mut rx) = ws.split();
    let (queue, mut outbound) = mpsc::channel::<Frame>(QUEUE);
    subs.lock().push(queue);
    if tx.send(Message::text(r#"{"type":"welcome"}"#)).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            frame = outbound.recv() => match frame {
                Some(frame) => if tx.send(Message::Text(frame.text)).await.is_err() { return },
                None => return,
            },
            incoming = rx.next() => match incoming {
                Some(Ok(_)) => {}
                _ => return,
            },
        }
    }
}

/// Keep-alive HTTP/1.1 loop answering `POST /api/publish`.
async fn publish(stream: TcpStream, subs: &Subscribers) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    let mut seq = 0u64;
    loop {
        let mut length = 0usize;
        let mut line = String::new();
        let mut first = true;
        loop {
            line.clear();
            if reader.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            if first {
                first = false;
                continue;
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0u8; length.min(MAX_BODY)];
        reader.read_exact(&mut body).await?;
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        seq += 1;
        let ts = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
        // Same frame shape and size as Tandem's deliveries; serialized once.
        let frame = serde_json::json!({
            "type": "message", "seq": seq, "id": format!("m_{seq:016x}"),
            "channel": v["channel"], "event": v["event"], "data": v["data"], "ts": ts,
        })
        .to_string();
        let sse = Bytes::from(format!("id: {seq}\nevent: message\ndata: {frame}\n\n"));
        let shared = Frame { text: Utf8Bytes::from(frame), sse };
        let mut recipients = 0;
        subs.lock().retain(|q| match q.try_send(shared.clone()) {
            Ok(()) => {
                recipients += 1;
                true
            }
            // A full queue drops that subscriber, as Tandem's slow-consumer rule.
            Err(_) => false,
        });
        let answer = format!("{{\"recipients\":{recipients}}}");
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
            answer.len()
        );
        reader.get_mut().write_all(response.as_bytes()).await?;
    }
}

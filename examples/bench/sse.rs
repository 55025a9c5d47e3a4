//! A minimal Server-Sent Events client on a raw TCP socket: light enough to hold 10,000 streams from
//! one process. It sends one HTTP/1.1 request, waits for the stream's `: connected` comment, then
//! reports the `task_id` of every event's `data:` line with the moment it was read.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc::UnboundedSender;

pub struct SseStream {
    stream: TcpStream,
    /// Bytes read past the last complete line.
    pending: Vec<u8>,
}

/// One event as a client saw it.
pub struct Receipt {
    pub task_id: String,
    pub at: Instant,
}

impl SseStream {
    /// Opens `GET /api/tasks/stream` and waits (at most 30 s) until the server says it is connected.
    pub async fn open(addr: SocketAddr, token: &str) -> Result<SseStream> {
        let mut stream = TcpStream::connect(addr).await.context("connect")?;
        stream.set_nodelay(true)?;
        let request = format!(
            "GET /api/tasks/stream HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
             Accept: text/event-stream\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        let mut pending = Vec::with_capacity(1024);
        let mut chunk = [0u8; 1024];
        let read = async {
            loop {
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    bail!("the server closed the stream before it was connected");
                }
                pending.extend_from_slice(&chunk[..n]);
                if !pending.starts_with(b"HTTP/1.1 200") && pending.len() >= 12 {
                    bail!("the stream was refused: {}", String::from_utf8_lossy(&pending));
                }
                if let Some(at) = find(&pending, b": connected\n") {
                    pending.drain(..at + b": connected\n".len());
                    return Ok(());
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(30), read).await.context("no `: connected` within 30 s")??;
        pending.shrink_to_fit();
        Ok(SseStream { stream, pending })
    }

    /// Reads until the stream ends, sending a [`Receipt`] per event (stops when nobody listens).
    pub async fn follow(mut self, receipts: UnboundedSender<Receipt>) {
        let mut chunk = vec![0u8; 16 * 1024];
        loop {
            let n = match self.stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let at = Instant::now();
            self.pending.extend_from_slice(&chunk[..n]);
            let mut start = 0;
            while let Some(end) = find(&self.pending[start..], b"\n") {
                let line = &self.pending[start..start + end];
                if line.starts_with(b"data: ")
                    && let Some(id) = task_id(line)
                    && receipts.send(Receipt { task_id: id, at }).is_err()
                {
                    return;
                }
                start += end + 1;
            }
            self.pending.drain(..start);
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The `task_id` of an event's JSON (a UUID is 36 characters).
fn task_id(line: &[u8]) -> Option<String> {
    const KEY: &[u8] = b"\"task_id\":\"";
    let at = find(line, KEY)? + KEY.len();
    let id = line.get(at..at + 36)?;
    std::str::from_utf8(id).ok().map(str::to_owned)
}

//! The stdio transport handed to rmcp: one JSON-RPC message per line, lines capped at
//! [`MAX_LINE_BYTES`], and every line that cannot be served answered with a JSON-RPC error (rmcp's
//! own stdio transport drops unparsable and oversized lines without a word, and the client then
//! waits forever). An answer is written before the next line is read, through the same lock as
//! rmcp's frames, so one frame never interleaves with another. It says when the first answer is
//! written, for the work that waits until then.

use std::sync::Arc;

use rmcp::RoleServer;
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{Mutex, oneshot};
use tokio::task::JoinSet;

use super::framing::{self, Inbound, MAX_LINE_BYTES, Refusal};

type Writer<W> = Arc<Mutex<Option<W>>>;

pub struct LineTransport<R, W> {
    reader: BufReader<R>,
    /// The line being read. It survives a cancelled `receive` (rmcp polls it inside a `select!`),
    /// so a line read in several pieces is never lost.
    line: Vec<u8>,
    /// Inside a line already refused as too long, until its end.
    discarding: bool,
    writer: Writer<W>,
    /// Refusals being written; awaited before the next line is read, and before closing.
    answers: JoinSet<()>,
    /// Told once the first frame rmcp sends (the answer to `initialize`) is written.
    first_answer: Option<oneshot::Sender<()>>,
}

enum Read {
    Line,
    Oversized,
    Eof,
}

impl<R, W> LineTransport<R, W>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    pub fn new(read: R, write: W) -> Self {
        Self {
            reader: BufReader::new(read),
            line: Vec::new(),
            discarding: false,
            writer: Arc::new(Mutex::new(Some(write))),
            answers: JoinSet::new(),
            first_answer: None,
        }
    }

    /// Tells `written` once the first frame rmcp sends is on its way out: the work a session can do
    /// without (opening the store, reading the working directory) waits for it, so the answer to
    /// `initialize` does not share the CPU with it.
    pub fn after_first_answer(mut self, written: oneshot::Sender<()>) -> Self {
        self.first_answer = Some(written);
        self
    }

    /// Reads up to the next line break into `self.line`, never holding more than the cap.
    /// Cancellation-safe: bytes are consumed only once copied (or discarded), with no await between.
    async fn read_line(&mut self) -> std::io::Result<Read> {
        loop {
            let available = self.reader.fill_buf().await?;
            if available.is_empty() {
                return Ok(Read::Eof);
            }
            let newline = available.iter().position(|b| *b == b'\n');
            let take = newline.map_or(available.len(), |i| i + 1);
            let outcome = if self.discarding {
                self.discarding = newline.is_none();
                None
            } else if self.line.len() + take > MAX_LINE_BYTES + 1 {
                // The cap counts the message, not its line break.
                self.line.clear();
                self.discarding = newline.is_none();
                Some(Read::Oversized)
            } else {
                self.line.extend_from_slice(&available[..take]);
                newline.map(|_| Read::Line)
            };
            self.reader.consume(take);
            if let Some(outcome) = outcome {
                return Ok(outcome);
            }
        }
    }

    /// Answers a refused line in the background (so a cancelled `receive` cannot cut the frame).
    fn answer(&mut self, refusal: Refusal) {
        tracing::debug!(code = refusal.code, "refused an incoming line: {}", refusal.message);
        let writer = self.writer.clone();
        self.answers.spawn(async move {
            if let Err(err) = write_frame(&writer, &refusal.to_json()).await {
                tracing::debug!("could not answer a refused line: {err}");
            }
        });
    }
}

async fn write_frame<W: AsyncWrite + Unpin>(writer: &Writer<W>, frame: &impl serde::Serialize) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec(frame).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    let mut guard = writer.lock().await;
    let Some(out) = guard.as_mut() else {
        return Err(std::io::Error::new(std::io::ErrorKind::NotConnected, "the transport is closed"));
    };
    out.write_all(&bytes).await?;
    out.flush().await
}

impl<R, W> rmcp::transport::Transport<RoleServer> for LineTransport<R, W>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    type Error = std::io::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleServer>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let writer = self.writer.clone();
        let first_answer = self.first_answer.take();
        async move {
            let written = write_frame(&writer, &item).await;
            if let Some(first_answer) = first_answer {
                let _ = first_answer.send(());
            }
            written
        }
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleServer>> {
        loop {
            // The answer to the previous bad line goes out before anything after it is read.
            while self.answers.join_next().await.is_some() {}
            match self.read_line().await {
                Ok(Read::Line) => {}
                Ok(Read::Oversized) => {
                    self.answer(Refusal::oversized());
                    continue;
                }
                // A last line without its line break is an unfinished message: nothing to serve.
                Ok(Read::Eof) => return None,
                Err(err) => {
                    tracing::error!("cannot read stdin: {err}");
                    return None;
                }
            }
            let line = std::mem::take(&mut self.line);
            let message = line.strip_suffix(b"\n").unwrap_or(&line);
            let message = message.strip_suffix(b"\r").unwrap_or(message);
            if message.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match framing::classify(message) {
                Inbound::Message(message) => return Some(*message),
                Inbound::Ignored => {}
                Inbound::Refused(refusal) => self.answer(refusal),
            }
        }
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        while self.answers.join_next().await.is_some() {}
        let mut guard = self.writer.lock().await;
        if let Some(mut out) = guard.take() {
            out.flush().await?;
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rmcp::transport::Transport;
    use tokio::io::AsyncReadExt;

    /// Feeds `input` to a transport `chunk` bytes at a time and returns what it received and what
    /// it answered by itself.
    pub(crate) async fn run_chunked(
        input: Vec<u8>,
        chunk: usize,
    ) -> (Vec<RxJsonRpcMessage<RoleServer>>, Vec<serde_json::Value>) {
        let (mut client, server_in) = tokio::io::duplex(64 * 1024);
        let (server_out, mut answers) = tokio::io::duplex(64 * 1024);
        let mut transport = LineTransport::new(server_in, server_out);
        let feeder = tokio::spawn(async move {
            for piece in input.chunks(chunk.max(1)) {
                client.write_all(piece).await.expect("feed the transport");
                tokio::task::yield_now().await;
            }
        });
        // Answers are read while the transport runs, so a full pipe never stalls it.
        let reader = tokio::spawn(async move {
            let mut out = Vec::new();
            answers.read_to_end(&mut out).await.expect("read the answers");
            out
        });
        let mut received = Vec::new();
        while let Some(message) = transport.receive().await {
            received.push(message);
        }
        feeder.await.expect("the feeder");
        transport.close().await.expect("close");
        drop(transport);
        let out = String::from_utf8(reader.await.expect("the reader")).expect("answers are UTF-8");
        (received, out.lines().map(|l| serde_json::from_str(l).expect("each answer is JSON")).collect())
    }

    async fn run(input: Vec<u8>) -> (Vec<RxJsonRpcMessage<RoleServer>>, Vec<serde_json::Value>) {
        run_chunked(input, 64 * 1024).await
    }

    #[tokio::test]
    async fn a_bad_line_is_answered_and_the_next_line_is_still_served() {
        let input = b"not json\n{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\r\n\n".to_vec();
        let (received, answers) = run(input).await;
        assert_eq!(received.len(), 1);
        assert_eq!(answers.len(), 1, "{answers:?}");
        assert_eq!(answers[0]["error"]["code"], framing::PARSE_ERROR);
        assert!(answers[0]["id"].is_null() && answers[0].get("id").is_some(), "{:?}", answers[0]);
    }

    #[tokio::test]
    async fn a_line_over_the_cap_is_refused_unread_and_framing_holds() {
        let mut input = vec![b'x'; MAX_LINE_BYTES + 10];
        input.extend_from_slice(b"\n{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}\n");
        let (received, answers) = run(input).await;
        assert_eq!(received.len(), 1, "the ping after the long line is served");
        assert_eq!(answers.len(), 1, "{answers:?}");
        assert_eq!(answers[0]["error"]["code"], framing::INVALID_REQUEST);
        assert!(answers[0]["error"]["message"].as_str().unwrap().contains(&MAX_LINE_BYTES.to_string()));
    }

    #[tokio::test]
    async fn a_receive_cancelled_mid_line_loses_nothing() {
        // rmcp polls `receive` inside a `select!`: each time another branch wins, the read in
        // progress is dropped. Lines trickling in a few bytes at a time must still arrive whole.
        let (mut client, server_in) = tokio::io::duplex(1024);
        let (server_out, _answers) = tokio::io::duplex(64 * 1024);
        let mut transport = LineTransport::new(server_in, server_out);
        let feeder = tokio::spawn(async move {
            let mut input = Vec::new();
            for id in 0..20 {
                input
                    .extend_from_slice(format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"ping\"}}\n").as_bytes());
            }
            for piece in input.chunks(3) {
                client.write_all(piece).await.expect("feed");
                tokio::time::sleep(std::time::Duration::from_micros(200)).await;
            }
        });
        let (mut received, mut cancelled) = (Vec::new(), 0);
        loop {
            tokio::select! {
                message = transport.receive() => match message {
                    Some(message) => received.push(message),
                    None => break,
                },
                _ = tokio::time::sleep(std::time::Duration::from_micros(100)) => cancelled += 1,
            }
        }
        feeder.await.expect("the feeder");
        let ids: Vec<String> =
            received.iter().map(|m| serde_json::to_value(m).expect("JSON")["id"].to_string()).collect();
        assert_eq!(ids, (0..20).map(|i| i.to_string()).collect::<Vec<_>>());
        assert!(cancelled > 0, "no read was ever cancelled: the test proves nothing");
    }

    #[tokio::test]
    async fn a_line_of_exactly_the_cap_is_read() {
        let ping = br#"{"jsonrpc":"2.0","id":3,"method":"ping"}"#;
        let mut input = ping.to_vec();
        input.resize(MAX_LINE_BYTES, b' ');
        input.push(b'\n');
        let (received, answers) = run(input).await;
        assert_eq!((received.len(), answers.len()), (1, 0), "{answers:?}");
    }
}

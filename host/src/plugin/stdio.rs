//! What a plugin prints: its stdout and stderr are forwarded to lthost's, each line
//! prefixed with the plugin's name (`[digits-mlp] ...`), so output is attributable and a
//! plugin cannot pass its text off as lthost's. Nothing else of the host's stdio is
//! inherited (no stdin).

use std::io::Write as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

#[derive(Clone)]
pub struct Prefixed {
    prefix: Arc<str>,
    stderr: bool,
    line_start: Arc<AtomicBool>,
}

impl Prefixed {
    pub fn new(plugin: &str, stderr: bool) -> Self {
        Prefixed { prefix: format!("[{plugin}] ").into(), stderr, line_start: Arc::new(AtomicBool::new(true)) }
    }

    fn emit(&self, bytes: &[u8]) -> std::io::Result<()> {
        let mut text = Vec::with_capacity(bytes.len() + self.prefix.len());
        for line in bytes.split_inclusive(|&b| b == b'\n') {
            if self.line_start.load(Ordering::Relaxed) {
                text.extend_from_slice(self.prefix.as_bytes());
            }
            text.extend_from_slice(line);
            self.line_start.store(line.ends_with(b"\n"), Ordering::Relaxed);
        }
        if self.stderr {
            std::io::stderr().lock().write_all(&text)
        } else {
            std::io::stdout().lock().write_all(&text)
        }
    }

    fn flush_host(&self) -> std::io::Result<()> {
        if self.stderr { std::io::stderr().flush() } else { std::io::stdout().flush() }
    }
}

impl IsTerminal for Prefixed {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Prefixed {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl OutputStream for Prefixed {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.emit(&bytes).map_err(|e| StreamError::LastOperationFailed(e.into()))
    }
    fn flush(&mut self) -> StreamResult<()> {
        self.flush_host().map_err(|e| StreamError::LastOperationFailed(e.into()))
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

#[async_trait::async_trait]
impl Pollable for Prefixed {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for Prefixed {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Poll::Ready(self.emit(buf).map(|()| buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(self.flush_host())
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

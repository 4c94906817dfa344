//! What a plugin prints: its stdout and stderr are forwarded to lthost's, each line
//! prefixed with the plugin's name (`[digits-mlp] ...`), so output is attributable and a
//! plugin cannot pass its text off as lthost's: control characters other than newline
//! and tab (`\r`, ANSI escapes, backspace) are shown escaped, so no line can move the cursor
//! back over its prefix. Nothing else of the host's stdio is inherited (no stdin).

use std::io::Write as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

/// `text` with every control character escaped (`\r` → `\\r`, ESC → `\\u{1b}`), except
/// tabs, and newlines where `keep_newlines`: plugin text made safe to print on a line of
/// lthost's.
pub fn printable(text: &str, keep_newlines: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' if keep_newlines => out.push(c),
            '\t' => out.push(c),
            // Control characters, and the bidirectional overrides that reorder what follows.
            c if c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') => {
                out.extend(c.escape_default())
            }
            c => out.push(c),
        }
    }
    out
}

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
            text.extend_from_slice(printable(&String::from_utf8_lossy(line), true).as_bytes());
            self.line_start.store(line.ends_with(b"\n"), Ordering::Relaxed);
        }
        if self.stderr {
            std::io::stderr().lock().write_all(&text)
        } else {
            std::io::stdout().lock().write_all(&text)
        }
    }

    fn flush_host(&self) -> std::io::Result<()> {
        if self.stderr {
            std::io::stderr().flush()
        } else {
            std::io::stdout().flush()
        }
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

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn control_characters_are_shown_escaped() {
        assert_eq!(printable("ok\r[lthost] fake\x1b[2K\n", true), "ok\\r[lthost] fake\\u{1b}[2K\n");
        assert_eq!(printable("a\nb", false), "a\\nb");
        assert_eq!(printable("x\u{202e}y", true), "x\\u{202e}y");
    }
}

//! The logger's JSON-RPC adapter (`LOGGER_RPC_PORT`, 5001): `RPCServer.LogInfo` in Go's
//! `net/rpc/jsonrpc` framing, so a Go program can call it with `jsonrpc.Dial`.
//!
//! One JSON object per line: `{"method","params":[{"Name","Data"}],"id"}` is answered with
//! `{"id","result","error"}` (`id` echoed as the JSON value it came as). Each connection is a
//! task serving many calls in order; up to `LOGGER_RPC_MAX_CONNECTIONS` connections are
//! served at once, and one more gets a `server busy` error reply and is closed (idle ones
//! close after 5 minutes). A line that is not a request gets an error reply and the
//! connection stays open; a line longer than the limit gets an error reply and the connection
//! is closed. With a certificate (TLS_CERT_FILE) the listener speaks TLS only, each handshake
//! within TLS_HANDSHAKE_TIMEOUT.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::Recipient;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::codec::{AnyDelimiterCodec, AnyDelimiterCodecError, Framed};
use troupe_core::messages::{NewLogEntry, WriteLog};

/// The one method served.
pub const METHOD: &str = "RPCServer.LogInfo";

/// A connection idle this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Deserialize)]
struct RpcPayload {
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "Data")]
    data: String,
}

/// Serve `RPCServer.LogInfo` on `listener`, at most `max_connections` connections at once,
/// until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    write: Recipient<WriteLog>,
    timeout: Duration,
    max_connections: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    tokio::pin!(shutdown);
    let slots = Arc::new(Semaphore::new(max_connections));
    let process = crate::tls::current();
    let tls = process.acceptor(&[]).map(|acceptor| (acceptor, process.handshake_timeout()));
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    // A place is taken before the handshake: at most `max_connections` at once.
                    let slot = slots.clone().try_acquire_owned().ok();
                    let serve = Serve { write: write.clone(), timeout, slot, max_connections };
                    tokio::spawn(serve.over(stream, peer, tls.clone()));
                }
                Err(err) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %err, "JSON-RPC accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    tracing::info!("JSON-RPC server stopped");
}

/// One accepted connection: served when it got a `slot`, else told the server is busy.
struct Serve {
    write: Recipient<WriteLog>,
    timeout: Duration,
    slot: Option<OwnedSemaphorePermit>,
    max_connections: usize,
}

impl Serve {
    /// Serve `stream` from `peer`, after a TLS handshake when the listener has `tls`.
    async fn over(self, stream: TcpStream, peer: SocketAddr, tls: Option<(TlsAcceptor, Duration)>) {
        let Some((acceptor, within)) = tls else {
            return self.io(stream).await;
        };
        if let Some(stream) = crate::tls::handshake_within(within, acceptor.accept(stream), peer).await {
            self.io(stream).await;
        }
    }

    async fn io<S: AsyncRead + AsyncWrite + Unpin>(self, stream: S) {
        match self.slot {
            Some(slot) => connection(stream, self.write, self.timeout, slot).await,
            None => busy(stream, self.max_connections).await,
        }
    }
}

/// Tell a connection over the limit why it is closed.
async fn busy<S: AsyncWrite + Unpin>(mut stream: S, max_connections: usize) {
    tracing::warn!(max_connections, "JSON-RPC connection refused: LOGGER_RPC_MAX_CONNECTIONS reached");
    let line =
        reply(&Value::Null, Err(format!("server busy: {max_connections} connections open; retry later")));
    let told = async {
        stream.write_all(format!("{line}\n").as_bytes()).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), told).await;
}

/// Serve one connection; `_slot` frees its place when the connection ends.
async fn connection<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    write: Recipient<WriteLog>,
    timeout: Duration,
    _slot: OwnedSemaphorePermit,
) {
    // Lines as bytes: one that is not UTF-8 gets an error reply, and the next is served.
    let lines =
        AnyDelimiterCodec::new_with_max_length(b"\n".to_vec(), b"\n".to_vec(), crate::api::BODY_LIMIT);
    let mut framed = Framed::new(stream, lines);
    loop {
        let line = match tokio::time::timeout(IDLE_TIMEOUT, framed.next()).await {
            Ok(Some(Ok(line))) => line,
            Ok(Some(Err(AnyDelimiterCodecError::MaxChunkLengthExceeded))) => {
                let _ = framed.send(reply(&Value::Null, Err("request too large".into()))).await;
                return;
            }
            Ok(Some(Err(AnyDelimiterCodecError::Io(_)))) | Ok(None) | Err(_) => return,
        };
        let (id, result) = match std::str::from_utf8(&line) {
            Ok(text) if text.trim().is_empty() => continue,
            Ok(text) => call(text, &write, timeout).await,
            Err(_) => (Value::Null, Err("invalid request: not UTF-8".into())),
        };
        if framed.send(reply(&id, result)).await.is_err() {
            return;
        }
    }
}

fn reply(id: &Value, result: Result<String, String>) -> String {
    match result {
        Ok(r) => json!({"id": id, "result": r, "error": null}).to_string(),
        Err(e) => json!({"id": id, "result": null, "error": e}).to_string(),
    }
}

/// Handle one request line; returns the id to echo and the result or error text.
async fn call(line: &str, write: &Recipient<WriteLog>, timeout: Duration) -> (Value, Result<String, String>) {
    let request: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => return (Value::Null, Err(format!("invalid request: {e}"))),
    };
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let method = request.get("method").and_then(Value::as_str);
    if method != Some(METHOD) {
        let name = method.unwrap_or_default();
        return (id, Err(format!("rpc: can't find method {name:?}")));
    }
    let payload = match request.get("params").and_then(|p| p.get(0)).cloned().map(RpcPayload::deserialize) {
        Some(Ok(p)) => p,
        Some(Err(e)) => return (id, Err(format!("invalid params: {e}"))),
        None => return (id, Err("invalid params: expected [{\"Name\",\"Data\"}]".into())),
    };
    let name = payload.name.clone();
    let entry = match NewLogEntry::new(payload.name, payload.data).and_then(|e| e.with_service("rpc")) {
        Ok(entry) => entry,
        Err(e) => return (id, Err(e.to_string())),
    };
    match write.send(WriteLog(entry)).timeout(timeout).await {
        Ok(Ok(_)) => (id, Ok(format!("Processed payload via RPC: {name}"))),
        Ok(Err(e)) => (id, Err(e.to_string())),
        Err(_) => (id, Err("logger unavailable".into())),
    }
}

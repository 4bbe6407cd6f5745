//! The logger: its actor (the log store, batching writes) with its HTTP, gRPC and JSON-RPC
//! servers, or the clients that reach a logger running elsewhere.

use std::time::Duration;

use actix::Addr;
use anyhow::Context as _;
use troupe_actors::logger::{LoggerActor, LoggerConfig};
use troupe_core::config::{CommonSettings, LoggerSettings, LoggerUpstream};
use troupe_core::health::Readiness;

use super::{Service, bind, on_own_thread, options};
use crate::api::serve;
use crate::grpc::GrpcLogProxy;
use crate::logger::LogClients;
use crate::platform::Part;
use crate::proxy::LoggerProxy;
use crate::tail::LogTail;

/// The logger's actor alone (the store), for a process that writes logs without serving
/// them (`troupe serve listener`).
pub fn store(
    common: &CommonSettings,
    settings: &LoggerSettings,
    readiness: &Readiness,
) -> anyhow::Result<Addr<LoggerActor>> {
    let config = LoggerConfig::from_settings(settings, common.backoff()).map_err(anyhow::Error::msg)?;
    Ok(LoggerActor::start(config, readiness))
}

/// Clients of a logger actor in this process, each call answered within `timeout`.
pub fn clients(actor: &Addr<LoggerActor>, timeout: Duration) -> LogClients {
    let write = actor.clone().recipient();
    LogClients {
        write_grpc: write.clone(),
        write,
        query: actor.clone().recipient(),
        get: actor.clone().recipient(),
        tail: LogTail::local(actor.clone().recipient()),
        timeout,
    }
}

/// The logger actor and its servers: HTTP on LOGGER_PORT, gRPC on LOGGER_GRPC_PORT,
/// JSON-RPC on LOGGER_RPC_PORT.
pub fn local(
    common: &CommonSettings,
    settings: &LoggerSettings,
    readiness: &Readiness,
    workers: usize,
) -> anyhow::Result<Service<LogClients>> {
    let http = bind(common.bind_address, settings.logger_port, "LOGGER_PORT")?;
    let grpc = tokio_listener(bind(common.bind_address, settings.logger_grpc_port, "LOGGER_GRPC_PORT")?)?;
    let rpc = tokio_listener(bind(common.bind_address, settings.logger_rpc_port, "LOGGER_RPC_PORT")?)?;
    let (grpc_port, rpc_port) = (grpc.local_addr()?.port(), rpc.local_addr()?.port());
    let logs = clients(&store(common, settings, readiness)?, settings.answer_within());
    let server =
        serve("logger", http, options(common, readiness, &[], workers), crate::logger::routes(logs.clone()))?;
    let (write, timeout) = (logs.write.clone(), logs.timeout);
    let grpc = Part::task("logger-grpc", grpc_port, move |stop| async move {
        if let Err(err) = crate::grpc::serve(grpc, write, timeout, stop.cancelled_owned()).await {
            tracing::error!(error = %err, "gRPC server failed");
        }
    });
    let (write, max) = (logs.write.clone(), settings.logger_rpc_max_connections as usize);
    let rpc = Part::task("logger-rpc", rpc_port, move |stop| {
        crate::jsonrpc::serve(rpc, write, timeout, max, stop.cancelled_owned())
    });
    tracing::info!(grpc_port, rpc_port, "logger RPC servers listening");
    let streams = Part::Streams(logs.tail.closing.clone());
    Ok(Service::new("logger", logs, vec![streams, Part::Http(server), grpc, rpc]))
}

fn tokio_listener(listener: std::net::TcpListener) -> anyhow::Result<tokio::net::TcpListener> {
    listener.set_nonblocking(true)?;
    Ok(tokio::net::TcpListener::from_std(listener)?)
}

/// Clients of a logger elsewhere: HTTP at LOGGER_URL, gRPC at LOGGER_GRPC_URL, each one
/// long-lived client (keep-alive pool / HTTP/2 channel) on its own thread, a deadline per
/// call.
pub fn remote(upstream: &LoggerUpstream, timeout: Duration) -> anyhow::Result<LogClients> {
    let http = LoggerProxy::new(&upstream.logger_url, timeout).context("LOGGER_URL")?;
    let http = on_own_thread(move || http);
    let endpoint = GrpcLogProxy::endpoint(&upstream.logger_grpc_url, timeout).context("LOGGER_GRPC_URL")?;
    let grpc = on_own_thread(move || GrpcLogProxy::lazy(endpoint, timeout));
    Ok(LogClients {
        write: http.clone().recipient(),
        write_grpc: grpc.recipient(),
        query: http.clone().recipient(),
        get: http.recipient(),
        tail: LogTail::remote(&upstream.logger_url).context("LOGGER_URL")?,
        timeout,
    })
}

/// A proxy that writes to the logger at `url` (audit entries from `troupe serve auth`).
pub fn writer(
    url: &url::Url,
    timeout: Duration,
) -> anyhow::Result<actix::Recipient<troupe_core::messages::WriteLog>> {
    let proxy = LoggerProxy::new(url, timeout).context("LOGGER_URL")?;
    Ok(on_own_thread(move || proxy).recipient())
}

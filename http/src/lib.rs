//! Troupe's network adapters and the `troupe` binary's machinery.
//!
//! - [`api`]: envelope errors, the JSON body extractor, health routes, CORS, the server builder.
//! - [`broker`]: the API gateway's routes.
//! - [`auth`]: the authentication service's routes (login, tokens, user management).
//! - [`mailer`]: the mailer's routes (`POST /send`).
//! - [`openapi`]: each service's OpenAPI 3.1 document, served at `GET /openapi.json`.
//! - [`catcher`]: the built-in mail catcher's JSON API.
//! - [`events`]: the listener service's status and dead-letter routes.
//! - [`limits`]: per-client rate limits at the HTTP edge (logins, broker requests).
//! - [`logger`]: the logger service's HTTP routes (also served by the broker for reads).
//! - [`grpc`]: the logger's gRPC server (`logs.LogService`, health) and the broker's client.
//! - [`jsonrpc`]: the logger's JSON-RPC server (`RPCServer.LogInfo`, Go framing).
//! - [`proxy`]: actors that forward service messages over HTTP (split mode).
//! - [`traces`]: the recent traces (`GET /traces`, `GET /traces/{id}`) on every service.
//! - [`tail`]: the live log tail (`GET /logs/stream`, server-sent events).
//! - [`history`]: the broker's `GET /metrics/history` (15 minutes of every service's metrics).
//! - [`status`]: the broker's `GET /status` (every service's readiness, for the console).
//! - [`tls`]: TLS of the listeners (certificate reloaded on change) and of the clients (TLS_CA_FILE).
//! - [`platform`]: starting services for `troupe up` and `troupe serve`.
//! - [`cli`]: the command line.
//! - [`follow`]: `troupe logs [--follow]`, the log in the terminal.
//! - [`trace_cli`]: `troupe trace ID`, one request's trace in the terminal.
//! - [`health`]: `troupe health`, the container health check.
//!
//! No SQL, SMTP or AMQP here: handlers parse, send one message to an actor, and translate.

pub mod api;
pub mod auth;
pub mod broker;
pub mod catcher;
pub mod cli;
pub mod events;
pub mod follow;
pub mod grpc;
pub mod health;
pub mod history;
pub mod jsonrpc;
pub mod limits;
pub mod logger;
pub mod mailer;
pub mod openapi;
pub mod platform;
pub mod proxy;
pub mod reads;
pub mod status;
pub mod tail;
pub mod tls;
pub mod trace_cli;
pub mod traces;

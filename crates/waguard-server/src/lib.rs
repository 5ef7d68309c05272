//! The guard as an authenticated HTTP service: what `waguard serve` runs, as a library a Rust
//! service can also mount.
//!
//! The contract is `waguard replay`'s (design.md sections 7 and 8): each `/v1` body is the inner
//! object of the replay line of that kind, read by the same code ([`line`](mod@line)), applied by the
//! same code ([`apply()`]), and `check`/`reserve` answer the same JSON ([`answer`]) without the
//! `line` field.
//!
//! | route | listener | what |
//! | --- | --- | --- |
//! | `POST /v1/check`, `/v1/reserve` | main, bearer token | `{"decision", "allowed", "reason", "until"}` |
//! | `POST /v1/send-errors`, `/v1/opt-outs`, `/v1/opt-ins`, `/v1/forget`, `/v1/clear-sender` | main, bearer token | 204 |
//! | `GET` / `DELETE /v1/contacts/{business}/{contact}` | main, bearer token | the state and decisions (as `waguard show`) / erasure (204) |
//! | `GET /webhook` | main | the verify handshake (H3) |
//! | `POST /webhook` | main, signature (H2) | 200 `{"applied", "ignored", "errors"}` once durable (H4) |
//! | `GET /openapi.json` | main | the OpenAPI document |
//! | `GET /metrics`, `/healthz` | admin | Prometheus text; 200 while the store answers |
//!
//! Bad input answers 400 `{"error": "<what and where>"}`; a missing or unknown token, or a bad
//! webhook signature, 401; a body over the limit 413; a request over the timeout 408; a store
//! that cannot answer 503. Nothing is applied from a request that answers 4xx, except the valid
//! items of a webhook (H1).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use waguard::{Guard, MemoryStore, Policy};
//! use waguard_server::{Config, DynStore, Server, Tokens};
//!
//! let guard = Guard::new(Arc::new(MemoryStore::new()) as DynStore, Policy::default())?;
//! let config = Config::new(Tokens::new(["a-long-random-token"])?).with_app_secret("app-secret");
//! let server = Server::new(guard, config);
//! // Mount `server.router()` in an axum application, or run both listeners:
//! let main = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! let admin = tokio::net::TcpListener::bind("127.0.0.1:9090").await?;
//! waguard_server::serve(server, main, admin, waguard_server::shutdown_signal()).await?;
//! # Ok(()) }
//! ```

pub mod answer;
mod apply;
mod auth;
mod config;
pub mod key;
pub mod line;
pub mod metrics;
mod openapi;
mod serve;
mod server;

pub use apply::{apply, Applied, ApplyError};
pub use auth::{Tokens, TokensError};
pub use config::Config;
pub use openapi::document as openapi_document;
pub use serve::{serve, shutdown_signal, ServeError};
pub use server::{DynStore, ErrorAnswer, Server, WebhookAnswer, RECEIVED_AT_HEADER};

//! `waguard serve`: the guard as an HTTP sidecar (design.md section 8).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use waguard::observe::Observed;
use waguard::Guard;
use waguard_server::metrics::Metrics;
use waguard_server::{Config, DynStore, Server, Tokens};

use crate::{store, PolicyArgs, StoreArgs};

/// Flags of `waguard serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    policy: PolicyArgs,
    /// The address of the `/v1` calls, `/webhook` and `/openapi.json` (port 0: any free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The address of `/metrics` and `/healthz`, for operators only.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9090")]
    admin_listen: SocketAddr,
    /// The bearer tokens of `/v1` callers, one per line (blank lines and `#` lines skipped).
    #[arg(long, env = "WAGUARD_TOKENS_FILE", value_name = "FILE")]
    tokens_file: PathBuf,
    /// The Meta app secret that signs webhook bodies (rule H2); without it `POST /webhook`
    /// answers 401.
    #[arg(
        long,
        env = "WAGUARD_APP_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    app_secret: Option<String>,
    /// The verify token of the webhook subscription (rule H3); without it the handshake
    /// answers 403.
    #[arg(
        long,
        env = "WAGUARD_VERIFY_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    verify_token: Option<String>,
    /// Let `"at"` in `/v1` bodies and the `Waguard-Received-At` header set the instant, for
    /// replays and tests only; without it they are refused and the server's clock decides.
    #[arg(long)]
    trust_client_time: bool,
    /// The largest request body, in bytes (413 above it).
    #[arg(long, value_name = "BYTES", default_value_t = 1024 * 1024)]
    max_body_bytes: usize,
    /// How long one request may take, in seconds (408 after it).
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    request_timeout: u64,
    /// How many requests are handled at once; others wait their turn.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    max_concurrent_requests: usize,
}

/// Serves until SIGTERM or Ctrl-C, then drains the requests in flight and closes the store.
pub async fn run(args: ServeArgs) -> Result<ExitCode> {
    init_tracing();
    let tokens = Tokens::from_file(&args.tokens_file)
        .with_context(|| format!("tokens file {}", args.tokens_file.display()))?;
    let policy = store::policy(&args.policy)?;
    let metrics = Arc::new(Metrics::default());
    let store: DynStore = Arc::new(Observed::new(
        store::open(&args.store).await?,
        metrics.clone(),
    ));
    let guard = Guard::new(store, policy).context("invalid policy")?;
    let mut config = Config::new(tokens)
        .with_trust_client_time(args.trust_client_time)
        .with_max_body_bytes(args.max_body_bytes)
        .with_request_timeout(Duration::from_secs(args.request_timeout.max(1)))
        .with_max_concurrent_requests(args.max_concurrent_requests)
        .with_blocking_store(args.store.postgres.is_none() && !args.store.memory);
    if let Some(secret) = args.app_secret.filter(|s| !s.is_empty()) {
        config = config.with_app_secret(secret);
    } else {
        eprintln!("waguard: no app secret (--app-secret or WAGUARD_APP_SECRET): POST /webhook refuses every body");
    }
    if let Some(token) = args.verify_token.filter(|s| !s.is_empty()) {
        config = config.with_verify_token(token);
    }
    if args.trust_client_time {
        eprintln!("waguard: --trust-client-time: callers set the instant of each call (for replays and tests only; never in production)");
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let admin = tokio::net::TcpListener::bind(args.admin_listen)
        .await
        .with_context(|| format!("cannot listen on {} (admin)", args.admin_listen))?;
    let main_addr = listener.local_addr()?;
    let admin_addr = admin.local_addr()?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "waguard: serving /v1, /webhook and /openapi.json on http://{main_addr}"
        )?;
        writeln!(
            out,
            "waguard: serving /metrics and /healthz on http://{admin_addr}"
        )?;
        out.flush()?;
    }
    let server = Server::with_metrics(guard, config, metrics);
    waguard_server::serve(server, listener, admin, waguard_server::shutdown_signal()).await?;
    eprintln!("waguard: stopped; the store is flushed and closed");
    Ok(ExitCode::SUCCESS)
}

/// Logs and traces on stderr, filtered by `RUST_LOG` (default: warnings and errors only).
/// Guard operations are spans named `waguard` whose key is hashed, never the phone number.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

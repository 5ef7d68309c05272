//! What a server needs besides its guard.

use std::time::Duration;

use waguard_webhook::Limits;

use crate::auth::Tokens;

/// The settings of a [`Server`](crate::Server).
///
/// ```
/// use waguard_server::{Config, Tokens};
/// let config = Config::new(Tokens::new(["a-long-token"]).unwrap())
///     .with_app_secret("app-secret")
///     .with_verify_token("verify-me");
/// assert!(!config.trust_client_time);
/// assert_eq!(config.max_body_bytes, 1024 * 1024);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// The bearer tokens of `/v1` callers.
    pub tokens: Tokens,
    /// The Meta app secret that signs webhook bodies (rule H2); without it every
    /// `POST /webhook` answers 401 and nothing is applied.
    pub app_secret: Option<Vec<u8>>,
    /// The verify token of the webhook subscription (rule H3); without it every handshake
    /// answers 403.
    pub verify_token: Option<String>,
    /// Whether `"at"` in `/v1` bodies and the `Waguard-Received-At` header set the instant
    /// (replays and tests only); otherwise they are refused with 400 and the server's clock
    /// decides.
    pub trust_client_time: bool,
    /// The largest request body, in bytes (413 above it); also the webhook parser's limit.
    pub max_body_bytes: usize,
    /// Webhook nesting and item limits.
    pub limits: Limits,
    /// How long one request may take, body included, before it answers 408.
    pub request_timeout: Duration,
    /// How many requests are handled at once on the main listener; others wait their turn.
    pub max_concurrent_requests: usize,
    /// Whether the store blocks its thread on writes (sled `fsync`s on the calling thread):
    /// writes then run with [`tokio::task::block_in_place`] on a multi-thread runtime, so
    /// that the other requests go on meanwhile and concurrent writes share `fsync`s.
    pub blocking_store: bool,
}

impl Config {
    /// The defaults (no webhook secrets, the server's clock, 1 MiB bodies, 10 s per request,
    /// 1024 requests at once) with these tokens.
    pub fn new(tokens: Tokens) -> Self {
        Config {
            tokens,
            app_secret: None,
            verify_token: None,
            trust_client_time: false,
            max_body_bytes: Limits::DEFAULT_MAX_BODY_BYTES,
            limits: Limits::default(),
            request_timeout: Duration::from_secs(10),
            max_concurrent_requests: 1024,
            blocking_store: false,
        }
    }

    /// With the app secret that signs webhooks.
    pub fn with_app_secret(mut self, secret: impl Into<Vec<u8>>) -> Self {
        self.app_secret = Some(secret.into());
        self
    }

    /// With the webhook verify token.
    pub fn with_verify_token(mut self, token: impl Into<String>) -> Self {
        self.verify_token = Some(token.into());
        self
    }

    /// Trusting (or not) the instants that callers give.
    pub fn with_trust_client_time(mut self, trust: bool) -> Self {
        self.trust_client_time = trust;
        self
    }

    /// With another body size limit.
    pub fn with_max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// With another request timeout.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Saying whether the store blocks its thread on writes (true for sled).
    pub fn with_blocking_store(mut self, blocking: bool) -> Self {
        self.blocking_store = blocking;
        self
    }

    /// With another concurrency limit (at least 1).
    pub fn with_max_concurrent_requests(mut self, requests: usize) -> Self {
        self.max_concurrent_requests = requests.max(1);
        self
    }
}

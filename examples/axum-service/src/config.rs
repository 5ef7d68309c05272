//! Configuration from the environment, the store choice and the policy file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use waguard::{Policy, Store};

/// The default of `WAGUARD_GRAPH_BASE_URL`.
pub const DEFAULT_GRAPH_BASE_URL: &str = "https://graph.facebook.com";
/// The default of `WAGUARD_GRAPH_VERSION`.
pub const DEFAULT_GRAPH_VERSION: &str = "v23.0";
/// The default of `WAGUARD_LISTEN`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// The default of `WAGUARD_STORE`: the sled directory the `waguard` CLI also uses by default,
/// so `waguard export --db ./waguard.db` reads it once the service is stopped.
pub const DEFAULT_STORE: &str = "sled:./waguard.db";

/// The store that holds the guard's state, as `WAGUARD_STORE` names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreSpec {
    /// `memory`: nothing survives a restart (tests, demos).
    Memory,
    /// `sled:PATH`: an embedded store in a directory, for one process (sled locks it).
    Sled(PathBuf),
    /// `postgres:URL`: a PostgreSQL database shared by every instance of the service.
    Postgres(String),
}

impl StoreSpec {
    /// Reads `memory`, `sled:PATH` or `postgres:URL` (the URL itself starts with
    /// `postgres://` or `postgresql://`).
    ///
    /// ```
    /// use waguard_example_axum::StoreSpec;
    /// assert_eq!(StoreSpec::parse("memory").unwrap(), StoreSpec::Memory);
    /// assert_eq!(
    ///     StoreSpec::parse("postgres:postgres://waguard@127.0.0.1:5432/waguard").unwrap(),
    ///     StoreSpec::Postgres("postgres://waguard@127.0.0.1:5432/waguard".into())
    /// );
    /// assert!(StoreSpec::parse("redis:foo").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let bad = |why: &str| ConfigError::Invalid {
            var: "WAGUARD_STORE",
            value: text.to_owned(),
            expected: format!(
                "{why}; expected `memory`, `sled:PATH` or `postgres:postgres://USER@HOST:PORT/DB`"
            ),
        };
        let text = text.trim();
        if text == "memory" {
            return Ok(StoreSpec::Memory);
        }
        match text.split_once(':') {
            Some(("sled", path)) if !path.trim().is_empty() => {
                Ok(StoreSpec::Sled(PathBuf::from(path.trim())))
            }
            Some(("sled", _)) => Err(bad("the sled directory is empty")),
            Some(("postgres", url))
                if url.starts_with("postgres://") || url.starts_with("postgresql://") =>
            {
                Ok(StoreSpec::Postgres(url.to_owned()))
            }
            Some(("postgres", _)) => Err(bad(
                "the PostgreSQL URL must start with `postgres://` or `postgresql://`",
            )),
            _ => Err(bad("unknown store kind")),
        }
    }

    /// Opens the store. For PostgreSQL this connects and applies the embedded migrations.
    pub async fn open(&self) -> Result<Arc<dyn Store>, waguard::StoreError> {
        Ok(match self {
            StoreSpec::Memory => Arc::new(waguard::MemoryStore::new()),
            StoreSpec::Sled(path) => Arc::new(waguard_sled::SledStore::open(path)?),
            StoreSpec::Postgres(url) => {
                Arc::new(waguard_postgres::PostgresStore::connect(url).await?)
            }
        })
    }
}

impl std::fmt::Display for StoreSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreSpec::Memory => f.write_str("memory"),
            StoreSpec::Sled(path) => write!(f, "sled:{}", path.display()),
            // Never print the URL: it may hold a password.
            StoreSpec::Postgres(_) => f.write_str("postgres:<url>"),
        }
    }
}

/// Where and how to call Meta's Cloud API.
#[derive(Clone)]
pub struct GraphConfig {
    /// `WAGUARD_GRAPH_BASE_URL`, without a trailing `/` (default `https://graph.facebook.com`;
    /// tests point it at a fake server on 127.0.0.1).
    pub base_url: String,
    /// `WAGUARD_GRAPH_VERSION`, e.g. `v23.0`.
    pub version: String,
    /// `WAGUARD_ACCESS_TOKEN`: a system-user access token with `whatsapp_business_messaging`.
    pub access_token: String,
}

impl std::fmt::Debug for GraphConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphConfig")
            .field("base_url", &self.base_url)
            .field("version", &self.version)
            .field("access_token", &"<redacted>")
            .finish()
    }
}

impl GraphConfig {
    /// The messages endpoint of one business number:
    /// `{base_url}/{version}/{phone_number_id}/messages`.
    pub fn messages_url(&self, phone_number_id: &str) -> String {
        format!(
            "{}/{}/{}/messages",
            self.base_url, self.version, phone_number_id
        )
    }
}

/// Everything the service reads from its environment.
#[derive(Clone)]
pub struct Config {
    /// `WAGUARD_APP_SECRET` (required): the Meta app secret webhooks are signed with (H2).
    pub app_secret: String,
    /// `WAGUARD_VERIFY_TOKEN` (required): the token typed into the app's webhook settings (H3).
    pub verify_token: String,
    /// The Cloud API settings.
    pub graph: GraphConfig,
    /// `WAGUARD_STORE` (default `sled:./waguard.db`).
    pub store: StoreSpec,
    /// `WAGUARD_POLICY`: a TOML or JSON policy file; absent means the documented defaults.
    pub policy: Option<PathBuf>,
    /// `WAGUARD_LISTEN` (default `127.0.0.1:8080`).
    pub listen: SocketAddr,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("app_secret", &"<redacted>")
            .field("verify_token", &"<redacted>")
            .field("graph", &self.graph)
            .field("store", &self.store.to_string())
            .field("policy", &self.policy)
            .field("listen", &self.listen)
            .finish()
    }
}

/// A configuration value is missing or invalid; the message names the variable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A required variable is not set (or is empty).
    #[error("{var} is not set: {hint}")]
    Missing {
        /// The variable.
        var: &'static str,
        /// What to put there.
        hint: &'static str,
    },
    /// A variable is set to something unusable.
    #[error("{var}={value:?} is invalid: {expected}")]
    Invalid {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// What a valid value looks like.
        expected: String,
    },
    /// The policy file cannot be read, parsed or validated.
    #[error("WAGUARD_POLICY: policy file {}: {message}", path.display())]
    Policy {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// Reads the configuration from `var` (a lookup by variable name), so tests need not touch
    /// the process environment.
    ///
    /// ```
    /// use waguard_example_axum::{Config, StoreSpec};
    /// let env = |name: &str| match name {
    ///     "WAGUARD_APP_SECRET" => Some("s3cret".to_owned()),
    ///     "WAGUARD_VERIFY_TOKEN" => Some("verify-me".to_owned()),
    ///     "WAGUARD_ACCESS_TOKEN" => Some("EAAG...".to_owned()),
    ///     "WAGUARD_STORE" => Some("memory".to_owned()),
    ///     _ => None,
    /// };
    /// let config = Config::from_vars(env).unwrap();
    /// assert_eq!(config.store, StoreSpec::Memory);
    /// assert_eq!(config.graph.messages_url("106540352242922"),
    ///            "https://graph.facebook.com/v23.0/106540352242922/messages");
    ///
    /// let err = Config::from_vars(|_| None).unwrap_err();
    /// assert!(err.to_string().starts_with("WAGUARD_APP_SECRET is not set"));
    /// ```
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let required = |name: &'static str, hint: &'static str| {
            get(name).ok_or(ConfigError::Missing { var: name, hint })
        };
        let app_secret = required(
            "WAGUARD_APP_SECRET",
            "set it to the Meta app secret (App settings > Basic); webhooks are verified with it",
        )?;
        let verify_token = required(
            "WAGUARD_VERIFY_TOKEN",
            "set it to the verify token typed into the app's webhook settings",
        )?;
        let access_token = required(
            "WAGUARD_ACCESS_TOKEN",
            "set it to a system-user access token with the whatsapp_business_messaging permission",
        )?;

        let base_url =
            get("WAGUARD_GRAPH_BASE_URL").unwrap_or_else(|| DEFAULT_GRAPH_BASE_URL.to_owned());
        let base_url = base_url.trim().trim_end_matches('/').to_owned();
        if !(base_url.starts_with("https://") || base_url.starts_with("http://"))
            || base_url.len() <= "https://".len()
        {
            return Err(ConfigError::Invalid {
                var: "WAGUARD_GRAPH_BASE_URL",
                value: base_url,
                expected: format!("an http(s) URL such as {DEFAULT_GRAPH_BASE_URL}"),
            });
        }

        let version =
            get("WAGUARD_GRAPH_VERSION").unwrap_or_else(|| DEFAULT_GRAPH_VERSION.to_owned());
        let version = version.trim().to_owned();
        if !is_graph_version(&version) {
            return Err(ConfigError::Invalid {
                var: "WAGUARD_GRAPH_VERSION",
                value: version,
                expected: format!("a Graph API version such as {DEFAULT_GRAPH_VERSION}"),
            });
        }

        let store =
            StoreSpec::parse(&get("WAGUARD_STORE").unwrap_or_else(|| DEFAULT_STORE.into()))?;
        let policy = get("WAGUARD_POLICY").map(PathBuf::from);
        let listen_text = get("WAGUARD_LISTEN").unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen = listen_text
            .trim()
            .parse()
            .map_err(|e| ConfigError::Invalid {
                var: "WAGUARD_LISTEN",
                value: listen_text.clone(),
                expected: format!("an address and port such as {DEFAULT_LISTEN} ({e})"),
            })?;

        Ok(Config {
            app_secret,
            verify_token,
            graph: GraphConfig {
                base_url,
                version,
                access_token,
            },
            store,
            policy,
            listen,
        })
    }

    /// The policy: the file named by `WAGUARD_POLICY`, or the defaults.
    pub fn load_policy(&self) -> Result<Policy, ConfigError> {
        match &self.policy {
            None => Ok(Policy::default()),
            Some(path) => load_policy(path),
        }
    }
}

/// `v` followed by digits, a dot and digits.
fn is_graph_version(text: &str) -> bool {
    let Some(rest) = text.strip_prefix('v') else {
        return false;
    };
    let Some((major, minor)) = rest.split_once('.') else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(major) && digits(minor)
}

/// Loads and validates a policy file: JSON when it ends in `.json` or starts with `{`, TOML
/// otherwise (durations are written like `"24h"` or `"90s"`; `waguard policy --format toml`
/// prints the defaults to start from).
pub fn load_policy(path: &Path) -> Result<Policy, ConfigError> {
    let fail = |message: String| ConfigError::Policy {
        path: path.to_owned(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read it: {e}")))?;
    let is_json =
        path.extension().is_some_and(|e| e == "json") || text.trim_start().starts_with('{');
    let policy: Policy = if is_json {
        serde_json::from_str(&text).map_err(|e| fail(format!("not a valid JSON policy: {e}")))?
    } else {
        toml::from_str(&text).map_err(|e| fail(format!("not a valid TOML policy: {e}")))?
    };
    policy.validate().map_err(|e| fail(e.to_string()))?;
    Ok(policy)
}

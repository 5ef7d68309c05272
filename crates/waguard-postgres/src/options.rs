//! [`PostgresOptions`]: how to connect, with the defaults of every time-out; [`Durability`]
//! and [`Migrations`].

use std::path::PathBuf;
use std::time::Duration;

use crate::SslMode;

/// When a write is durable (see the crate documentation, "Durability").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// The default. Every write is committed with the server's `synchronous_commit` setting
    /// (`on` unless the server says otherwise): when a call returns `Ok`, its write is on the
    /// server's disk. Each single-key write (`reserve`, `forget`, `update`, ...) waits for one
    /// WAL flush of the server; concurrent writers share flushes.
    #[default]
    EachWrite,
    /// Single-key writes ([`update`](waguard::Store::update), [`update_sender`](waguard::Store::update_sender),
    /// [`remove`](waguard::Store::remove), so `reserve`, `forget`, `opt_out` with one key...) commit
    /// with `synchronous_commit = off`: they are visible to every instance at once, atomic and
    /// never lost by a server *restart*, but a server *crash* (or power loss) may lose the last
    /// few hundred milliseconds of them (PostgreSQL's `wal_writer_delay` times three at most).
    /// Batches ([`apply_batch`](waguard::Store::apply_batch), so `Guard::ingest`) stay durable on return,
    /// and [`flush`](waguard::Store::flush) makes every write that returned before it durable.
    Deferred,
}

/// Whether connecting may create or upgrade the schema (see the crate documentation,
/// "Migrations and least privilege").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Migrations {
    /// The default. Connecting reads the schema's version (read-only); only when the schema is
    /// missing or older than this build does it run the migrations, which needs a role that
    /// may create the schema. A role without that privilege connects to an up-to-date schema
    /// all the same.
    #[default]
    OnConnect,
    /// Connecting never changes the schema: a schema that is missing or behind is an error of
    /// kind [`ErrorKind::MigrationNeeded`](crate::ErrorKind::MigrationNeeded). Migrations then run explicitly, with
    /// [`PostgresStore::migrate`](crate::PostgresStore::migrate) (for instance from a deployment job with an owner role).
    Never,
}

/// How to connect a [`PostgresStore`](crate::PostgresStore). Every time-out is a default that the URL can override
/// where PostgreSQL has a URL parameter for it (`connect_timeout`, `keepalives_idle`,
/// `options=-c lock_timeout=...`).
///
/// | option | default | what expires |
/// |---|---|---|
/// | [`pool_wait_timeout`](Self::pool_wait_timeout) | 5 s | waiting for a free connection of the pool ([`ErrorKind::PoolTimeout`](crate::ErrorKind::PoolTimeout)) |
/// | [`connect_timeout`](Self::connect_timeout) | 5 s | opening a TCP connection to each address; the whole connection, TLS and authentication included, gets twice that ([`ErrorKind::Unreachable`](crate::ErrorKind::Unreachable)) |
/// | [`recycle_timeout`](Self::recycle_timeout) | 5 s | checking a returned connection before reuse (the connection is replaced) |
/// | [`statement_timeout`](Self::statement_timeout) | 30 s | one statement on the server ([`ErrorKind::StatementTimeout`](crate::ErrorKind::StatementTimeout)) |
/// | [`lock_timeout`](Self::lock_timeout) | 5 s | waiting for a row lock held by another session ([`ErrorKind::LockTimeout`](crate::ErrorKind::LockTimeout)) |
/// | [`keepalives_idle`](Self::keepalives_idle) | 60 s | TCP keepalives: a silent peer is dropped after this plus 3 probes 10 s apart |
/// | [`tcp_user_timeout`](Self::tcp_user_timeout) | 30 s | data sent to the server and not acknowledged (a network cut mid-call; Linux) |
///
/// None of these expiries leaves a write half done: the server rolls the statement back, and
/// the error says "nothing was written"
/// ([`PostgresError::write_may_have_happened`](crate::PostgresError::write_may_have_happened)
/// is `false`).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PostgresOptions {
    /// The most connections the store's pool opens (default 16). Each concurrent store call
    /// holds one connection while it runs.
    pub pool_size: usize,
    /// The PostgreSQL schema holding the tables (default `waguard`): lower-case ASCII letters,
    /// digits and `_`, at most 63 bytes. Services sharing a schema share their state.
    pub schema: String,
    /// How long to wait for the TCP connection to each address of the URL (default 5 s),
    /// unless the URL sets `connect_timeout` itself; a new connection as a whole (TLS and
    /// authentication included) may take twice that.
    pub connect_timeout: Duration,
    /// How long a call waits for a free connection when all of the pool's are busy (default
    /// 5 s; `None` waits for ever).
    pub pool_wait_timeout: Option<Duration>,
    /// How long the check of a returned connection may take before it is replaced (default
    /// 5 s).
    pub recycle_timeout: Option<Duration>,
    /// The session's `statement_timeout` (default 30 s; `None` keeps the server's or role's
    /// setting).
    pub statement_timeout: Option<Duration>,
    /// The session's `lock_timeout` (default 5 s; `None` keeps the server's or role's setting,
    /// by default to wait for ever).
    pub lock_timeout: Option<Duration>,
    /// TCP keepalives: idle time before the first probe (default 60 s, then 3 probes 10 s
    /// apart); `None` turns them off.
    pub keepalives_idle: Option<Duration>,
    /// How long data sent to the server may stay unacknowledged before the connection is
    /// dropped (default 30 s; Linux's `TCP_USER_TIMEOUT`, ignored elsewhere): a call in flight
    /// when the network is cut fails then, rather than after the system's retransmissions
    /// (about 15 minutes). A slow query is not affected (its request was acknowledged).
    /// `None` keeps the system's behaviour.
    pub tcp_user_timeout: Option<Duration>,
    /// TLS: `None` (the default) takes the URL's `sslmode`, else [`SslMode::Prefer`]; a mode
    /// set here wins over the URL's.
    pub ssl_mode: Option<SslMode>,
    /// A PEM file of the CA certificates to trust (libpq's `sslrootcert`, which the URL can
    /// also give). Without one, `verify-ca` and `verify-full` trust the bundled Mozilla roots
    /// (webpki-roots).
    pub ca_file: Option<PathBuf>,
    /// Whether connecting may create or upgrade the schema (default
    /// [`Migrations::OnConnect`]).
    pub migrations: Migrations,
    /// How many times an update or a batch runs again after losing a race before it gives up
    /// with [`ErrorKind::Contention`](crate::ErrorKind::Contention) (default 10 000; each try backs off a little more, up to
    /// 5 ms).
    pub max_conflicts: u32,
    /// When writes are durable (default [`Durability::EachWrite`]).
    pub durability: Durability,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            pool_size: 16,
            schema: "waguard".to_owned(),
            connect_timeout: Duration::from_secs(5),
            pool_wait_timeout: Some(Duration::from_secs(5)),
            recycle_timeout: Some(Duration::from_secs(5)),
            statement_timeout: Some(Duration::from_secs(30)),
            lock_timeout: Some(Duration::from_secs(5)),
            keepalives_idle: Some(Duration::from_secs(60)),
            tcp_user_timeout: Some(Duration::from_secs(30)),
            ssl_mode: None,
            ca_file: None,
            migrations: Migrations::OnConnect,
            max_conflicts: 10_000,
            durability: Durability::EachWrite,
        }
    }
}

impl PostgresOptions {
    /// These options with another pool size (at least 1).
    pub fn with_pool_size(mut self, connections: usize) -> Self {
        self.pool_size = connections.max(1);
        self
    }

    /// These options with another schema name (checked by [`PostgresStore::connect_with`](crate::PostgresStore::connect_with)).
    pub fn with_schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// These options with another connect time-out.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// These options with another wait for a free connection of the pool.
    pub fn with_pool_wait_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.pool_wait_timeout = timeout;
        self
    }

    /// These options with another time-out for checking a returned connection.
    pub fn with_recycle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.recycle_timeout = timeout;
        self
    }

    /// These options with another `statement_timeout`.
    pub fn with_statement_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.statement_timeout = timeout;
        self
    }

    /// These options with another `lock_timeout`.
    pub fn with_lock_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// These options with other TCP keepalives (`None`: off).
    pub fn with_keepalives_idle(mut self, idle: Option<Duration>) -> Self {
        self.keepalives_idle = idle;
        self
    }

    /// These options with another bound on unacknowledged data (`None`: the system's).
    pub fn with_tcp_user_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.tcp_user_timeout = timeout;
        self
    }

    /// These options with a TLS mode, which wins over the URL's `sslmode`.
    pub fn with_ssl_mode(mut self, mode: SslMode) -> Self {
        self.ssl_mode = Some(mode);
        self
    }

    /// These options trusting the CA certificates of a PEM file.
    pub fn with_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// These options with another migration policy.
    pub fn with_migrations(mut self, migrations: Migrations) -> Self {
        self.migrations = migrations;
        self
    }

    /// These options with another durability.
    pub fn with_durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// These options with another bound on retries after conflicts.
    pub fn with_max_conflicts(mut self, tries: u32) -> Self {
        self.max_conflicts = tries;
        self
    }

    /// Sets up a connection configuration as the store's own pool does, for a pool of your
    /// own ([`PostgresStore::from_pool`](crate::PostgresStore::from_pool)): the connect
    /// time-out, keepalives and TCP user time-out (unless already set), the application name
    /// `waguard` (unless set), and the session settings (`statement_timeout`, `lock_timeout`,
    /// and `synchronous_commit = off` for [`Durability::Deferred`]) as startup `options`,
    /// before any the configuration already has (so that those win). TLS is the connector's
    /// business, not the configuration's.
    pub fn configure(&self, config: &mut tokio_postgres::Config) {
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(self.connect_timeout);
        }
        if config.get_application_name().is_none() {
            config.application_name("waguard");
        }
        if let Some(timeout) = self.tcp_user_timeout {
            if config.get_tcp_user_timeout().is_none() {
                config.tcp_user_timeout(timeout);
            }
        }
        match self.keepalives_idle {
            Some(idle) => {
                if config.get_keepalives()
                    && config.get_keepalives_idle() == KEEPALIVES_IDLE_DEFAULT
                {
                    config
                        .keepalives_idle(idle)
                        .keepalives_interval(Duration::from_secs(10))
                        .keepalives_retries(3);
                }
            }
            None => {
                config.keepalives(false);
            }
        }
        let mut session = Vec::new();
        if let Some(t) = self.statement_timeout {
            session.push(format!("-c statement_timeout={}", t.as_millis().max(1)));
        }
        if let Some(t) = self.lock_timeout {
            session.push(format!("-c lock_timeout={}", t.as_millis().max(1)));
        }
        if self.durability == Durability::Deferred {
            // Session default of the pool's connections; batches and flush turn it back on.
            session.push("-c synchronous_commit=off".to_owned());
        }
        if let Some(own) = config.get_options() {
            if !own.is_empty() {
                session.push(own.to_owned());
            }
        }
        if !session.is_empty() {
            config.options(session.join(" "));
        }
    }

    /// The pool time-outs of these options ([`pool_wait_timeout`](Self::pool_wait_timeout),
    /// [`connect_timeout`](Self::connect_timeout) for creating a connection,
    /// [`recycle_timeout`](Self::recycle_timeout)), for a pool of your own.
    pub fn pool_timeouts(&self) -> deadpool_postgres::Timeouts {
        let mut timeouts = deadpool_postgres::Timeouts::new();
        timeouts.wait = self.pool_wait_timeout;
        // Connecting resolves, opens, negotiates TLS and authenticates: the connect time-out
        // bounds each address tried, this bounds the whole.
        timeouts.create = Some(self.connect_timeout.saturating_mul(2));
        timeouts.recycle = self.recycle_timeout;
        timeouts
    }
}

/// tokio-postgres's default idle time before keepalive probes (2 hours).
const KEEPALIVES_IDLE_DEFAULT: Duration = Duration::from_secs(2 * 60 * 60);

/// What [`PostgresStore::migrate`](crate::PostgresStore::migrate) did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Migrated {
    /// The schema's version before (0: it did not exist).
    pub from_version: i32,
    /// The schema's version now ([`SCHEMA_VERSION`](crate::SCHEMA_VERSION)).
    pub to_version: i32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configure_puts_the_store_settings_before_the_urls_own() {
        let mut config: tokio_postgres::Config =
            "postgres://u@h/db?options=-c%20lock_timeout%3D7s&application_name=mine"
                .parse()
                .unwrap();
        PostgresOptions::default()
            .with_durability(Durability::Deferred)
            .configure(&mut config);
        assert_eq!(
            config.get_options(),
            Some(
                "-c statement_timeout=30000 -c lock_timeout=5000 -c synchronous_commit=off \
                 -c lock_timeout=7s"
            )
        );
        assert_eq!(config.get_application_name(), Some("mine"));
        assert_eq!(config.get_connect_timeout(), Some(&Duration::from_secs(5)));
        assert_eq!(config.get_keepalives_idle(), Duration::from_secs(60));
        assert_eq!(
            config.get_tcp_user_timeout(),
            Some(&Duration::from_secs(30))
        );

        let mut config: tokio_postgres::Config = "postgres://u@h/db".parse().unwrap();
        PostgresOptions::default()
            .with_statement_timeout(None)
            .with_lock_timeout(None)
            .with_keepalives_idle(None)
            .configure(&mut config);
        assert_eq!(config.get_options(), None);
        assert_eq!(config.get_application_name(), Some("waguard"));
        assert!(!config.get_keepalives());
    }

    #[test]
    fn pool_timeouts_follow_the_options() {
        let t = PostgresOptions::default()
            .with_pool_wait_timeout(Some(Duration::from_millis(250)))
            .with_connect_timeout(Duration::from_secs(3))
            .with_recycle_timeout(None)
            .pool_timeouts();
        assert_eq!(t.wait, Some(Duration::from_millis(250)));
        assert_eq!(t.create, Some(Duration::from_secs(6)));
        assert_eq!(t.recycle, None);
    }
}

//! Making a store: from a URL (with TLS as its `sslmode` says), from a configuration and a
//! connector, or from a pool of the caller's own; the read-only schema check and the
//! migrations on connect; the explicit migration.

use std::path::PathBuf;
use std::time::Duration;

use deadpool_postgres::{
    Manager, ManagerConfig, Pool, PoolError, QueueMode, RecyclingMethod, Runtime, TimeoutType,
};
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{NoTls, Socket};
use waguard::StoreError;

use crate::sql::Sql;
use crate::tls;
use crate::{
    redact_url, schema, ErrorKind, Migrated, Migrations, PostgresError, PostgresOptions,
    PostgresStore, RustlsConnect, SslMode, SCHEMA_VERSION,
};

/// A connection configuration read from a URL, and the TLS it asks for.
struct Target {
    config: tokio_postgres::Config,
    redacted: String,
    mode: SslMode,
    ca_file: Option<PathBuf>,
}

impl Target {
    fn parse(url: &str, options: &PostgresOptions) -> Result<Self, PostgresError> {
        let redacted = redact_url(url);
        let split = tls::split_tls_params(url);
        let url_mode = match &split.sslmode {
            None => None,
            Some(text) => Some(SslMode::parse(text).ok_or_else(|| {
                PostgresError::new(
                    ErrorKind::Config,
                    format!(
                        "the PostgreSQL URL {redacted} has sslmode={text}: use disable, prefer, \
                         require, verify-ca or verify-full"
                    ),
                )
            })?),
        };
        let ca_file = options
            .ca_file
            .clone()
            .or_else(|| split.sslrootcert.as_ref().map(PathBuf::from));
        let mode = options.ssl_mode.or(url_mode).unwrap_or_default();
        let mut config: tokio_postgres::Config = split.rest.parse().map_err(|e| {
            PostgresError::new(
                ErrorKind::Config,
                format!(
                    "cannot read the PostgreSQL URL {redacted}: {e}; expected \
                     postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=verify-full]"
                ),
            )
        })?;
        config.ssl_mode(mode.negotiation());
        options.configure(&mut config);
        Ok(Target {
            config,
            redacted,
            mode,
            ca_file,
        })
    }

    /// A pool manager for this target, with its TLS connector.
    fn manager(self, url: &str) -> Result<(Manager, String), PostgresError> {
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = if self.mode == SslMode::Disable {
            Manager::from_config(self.config, NoTls, manager_config)
        } else {
            let tls = RustlsConnect::new(self.mode, self.ca_file.as_deref()).map_err(|e| {
                PostgresError::with_source(
                    ErrorKind::Tls,
                    format!(
                        "cannot set up TLS for PostgreSQL at {}: {e}",
                        redact_url(url)
                    ),
                    Box::new(e),
                )
            })?;
            Manager::from_config(self.config, tls, manager_config)
        };
        Ok((manager, self.redacted))
    }
}

/// How messages name the server of a pool given by the caller, until the server says more.
const OWN_POOL: &str = "the given pool's server";

fn check_schema_name(schema: &str) -> Result<(), PostgresError> {
    if schema::valid_schema_name(schema) {
        return Ok(());
    }
    Err(PostgresError::new(
        ErrorKind::Config,
        format!(
            "`{schema}` is not a usable schema name: use lower-case ASCII letters, digits and \
             `_`, not starting with a digit or `pg_`, at most 63 bytes"
        ),
    ))
}

fn build_pool(
    manager: Manager,
    options: &PostgresOptions,
    url: &str,
) -> Result<Pool, PostgresError> {
    Pool::builder(manager)
        .max_size(options.pool_size.max(1))
        .timeouts(options.pool_timeouts())
        // The most recently used connection first: its server process and connection task are
        // warm, and idle ones stay idle.
        .queue_mode(QueueMode::Lifo)
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| {
            PostgresError::new(
                ErrorKind::Config,
                format!("cannot build the connection pool for {url}: {e}"),
            )
        })
}

impl PostgresStore {
    /// Connects to the PostgreSQL server at `url` (`postgres://user:password@host:port/db`, or
    /// the `key=value` form; `sslmode` and `sslrootcert` as libpq reads them) with default
    /// [`PostgresOptions`], and creates or upgrades the schema `waguard` if it is missing or
    /// behind (see [`Migrations`]).
    ///
    /// Fails with a [`StoreError::Backend`] (operation `connect`) whose source is a
    /// [`PostgresError`] naming the URL (password redacted) and what to do: nothing listening
    /// ("is PostgreSQL running at URL?"), authentication refused, missing database, TLS
    /// refused or not trusted, a schema to migrate that this role may not migrate, a schema
    /// of a newer version.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, PostgresOptions::default()).await
    }

    /// Like [`connect`](PostgresStore::connect), with options (pool size, schema name,
    /// time-outs, TLS, ...).
    pub async fn connect_with(url: &str, options: PostgresOptions) -> Result<Self, StoreError> {
        let fail = |e: PostgresError| e.into_store("connect", None);
        check_schema_name(&options.schema).map_err(fail)?;
        let (manager, redacted) = Target::parse(url, &options)
            .and_then(|target| target.manager(url))
            .map_err(fail)?;
        let pool = build_pool(manager, &options, &redacted).map_err(fail)?;
        Self::open(pool, Some(redacted), options).await
    }

    /// Connects with a connection configuration and a TLS connector of your own (any
    /// tokio-postgres `MakeTlsConnect`: [`RustlsConnect`], `postgres-native-tls`, a connector
    /// that traces, ...). `options` adds what [`PostgresOptions::configure`] sets, and sizes
    /// the pool; its TLS fields are not used.
    pub async fn connect_config<T>(
        mut config: tokio_postgres::Config,
        tls: T,
        options: PostgresOptions,
    ) -> Result<Self, StoreError>
    where
        T: MakeTlsConnect<Socket> + Clone + Sync + Send + 'static,
        T::Stream: Sync + Send,
        T::TlsConnect: Sync + Send,
        <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
    {
        let fail = |e: PostgresError| e.into_store("connect", None);
        check_schema_name(&options.schema).map_err(fail)?;
        options.configure(&mut config);
        let label = describe_config(&config);
        let manager = Manager::from_config(
            config,
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = build_pool(manager, &options, &label).map_err(fail)?;
        Self::open(pool, Some(label), options).await
    }

    /// A store on a deadpool-postgres pool of your own: its TLS connector, its hooks, its
    /// tracing, its sizing and time-outs. `options` gives the schema, the durability, the
    /// migration policy and the conflict bound; its pool and connection fields are not used.
    ///
    /// The session settings are the pool's business: build its `tokio_postgres::Config` with
    /// [`PostgresOptions::configure`] (which sets `statement_timeout`, `lock_timeout` and, for
    /// [`Durability::Deferred`](crate::Durability::Deferred), `synchronous_commit = off`) and its pool with
    /// [`PostgresOptions::pool_timeouts`] to get the store's defaults.
    pub async fn from_pool(pool: Pool, options: PostgresOptions) -> Result<Self, StoreError> {
        check_schema_name(&options.schema).map_err(|e| e.into_store("connect", None))?;
        Self::open(pool, None, options).await
    }

    /// Creates or upgrades the schema of `options` at `url` to [`SCHEMA_VERSION`], as the
    /// operator's explicit step when services connect with [`Migrations::Never`] or with a role
    /// that may not create the schema. Run it as a role that may create schemas in the
    /// database (its owner). Instances running it together migrate one after the other; on an
    /// up-to-date schema it changes nothing.
    pub async fn migrate(url: &str, options: PostgresOptions) -> Result<Migrated, StoreError> {
        let fail = |e: PostgresError| e.into_store("migrate", None);
        check_schema_name(&options.schema).map_err(fail)?;
        let options = options.with_pool_size(1);
        let (manager, redacted) = Target::parse(url, &options)
            .and_then(|target| target.manager(url))
            .map_err(fail)?;
        let pool = build_pool(manager, &options, &redacted).map_err(fail)?;
        Self::migrate_through(&pool, &options.schema, Some(redacted)).await
    }

    /// Like [`migrate`](PostgresStore::migrate), through a pool of your own.
    pub async fn migrate_pool(pool: &Pool, schema: &str) -> Result<Migrated, StoreError> {
        Self::migrate_through(pool, schema, None).await
    }

    /// Migrates through `pool`; `label` names the server in messages (asked of the server when
    /// `None`).
    async fn migrate_through(
        pool: &Pool,
        schema: &str,
        label: Option<String>,
    ) -> Result<Migrated, StoreError> {
        let fail = |e: PostgresError| e.into_store("migrate", None);
        check_schema_name(schema).map_err(fail)?;
        let shown = label.as_deref().unwrap_or(OWN_POOL);
        let mut client = pool.get().await.map_err(|e| {
            pool_error(e, shown, pool.timeouts().wait)
                .0
                .into_store("migrate", None)
        })?;
        let url = match label {
            Some(label) => label,
            None => server_label(&client).await,
        };
        let from_version = schema::migrate(&mut client, &url, schema)
            .await
            .map_err(fail)?;
        Ok(Migrated {
            from_version,
            to_version: SCHEMA_VERSION,
        })
    }

    /// The statements that give `role` what the store needs on `schema` and nothing more (no
    /// `CREATE`), to run as the schema's owner after [`migrate`](PostgresStore::migrate).
    pub fn grant_statements(schema: &str, role: &str) -> String {
        schema::grants(schema, role)
    }

    /// Checks the schema (and migrates it when allowed) and makes the store.
    async fn open(
        pool: Pool,
        label: Option<String>,
        options: PostgresOptions,
    ) -> Result<Self, StoreError> {
        let fail = |e: PostgresError| e.into_store("connect", None);
        let pool_wait = pool.timeouts().wait;
        let mut store = PostgresStore {
            pool,
            sql: Sql::new(&options.schema),
            schema: options.schema,
            url: label.unwrap_or_else(|| OWN_POOL.to_owned()),
            max_conflicts: options.max_conflicts,
            durability: options.durability,
            pool_wait,
        };
        let mut client = store.client("connect", None).await?;
        if store.url == OWN_POOL {
            store.url = server_label(&client).await;
        }
        // Read-only first: a role with no privilege to create anything connects to an
        // up-to-date schema without trying to.
        let current = schema::current_version(&client, &store.url, &store.schema)
            .await
            .map_err(fail)?;
        if current > SCHEMA_VERSION {
            return Err(fail(schema::newer(&store.url, &store.schema, current)));
        }
        if current < SCHEMA_VERSION {
            match options.migrations {
                Migrations::OnConnect => {
                    schema::migrate(&mut client, &store.url, &store.schema)
                        .await
                        .map_err(fail)?;
                }
                Migrations::Never => {
                    return Err(fail(schema::migration_needed(
                        &store.url,
                        &store.schema,
                        current,
                        "migrations on connect are off (Migrations::Never)",
                        None,
                    )));
                }
            }
        }
        Ok(store)
    }
}

/// A pool's failure to hand out a connection, and whether trying again may help.
pub(crate) fn pool_error(
    error: PoolError,
    url: &str,
    wait: Option<Duration>,
) -> (PostgresError, bool) {
    match error {
        PoolError::Backend(e) => {
            let err = PostgresError::connect(url, e);
            let retry = matches!(
                err.kind(),
                ErrorKind::Unreachable | ErrorKind::ConnectionLost
            );
            (err, retry)
        }
        PoolError::Timeout(TimeoutType::Wait) => (
            PostgresError::new(
                ErrorKind::PoolTimeout,
                format!(
                    "every connection of the pool to PostgreSQL at {url} stayed busy for {}; \
                     nothing was sent, so nothing was written: retry, and raise \
                     PostgresOptions::pool_size (within the server's max_connections) or look \
                     for slow calls holding connections",
                    wait.map_or_else(
                        || "the pool's wait time-out".to_owned(),
                        |w| format!("{w:?}")
                    )
                ),
            ),
            false,
        ),
        PoolError::Timeout(TimeoutType::Create) => (
            PostgresError::new(
                ErrorKind::Unreachable,
                format!(
                    "opening a connection to PostgreSQL at {url} took longer than the connect \
                     time-out; nothing was written: is PostgreSQL running at that address, \
                     and does the network let the connection through?"
                ),
            ),
            true,
        ),
        PoolError::Timeout(_) => (
            PostgresError::new(
                ErrorKind::ConnectionLost,
                format!(
                    "checking a pooled connection to PostgreSQL at {url} timed out; nothing was \
                     written: retry"
                ),
            ),
            true,
        ),
        PoolError::PostCreateHook(e) => (
            PostgresError::new(
                ErrorKind::Unreachable,
                format!("a new connection to PostgreSQL at {url} failed the pool's hook: {e}"),
            ),
            false,
        ),
        e => (
            PostgresError::new(
                ErrorKind::Unreachable,
                format!("no connection to PostgreSQL at {url}: {e}"),
            ),
            false,
        ),
    }
}

/// `postgres://USER@HOST:PORT/DATABASE` of a configuration (no password), for messages.
fn describe_config(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgres://{}@{host}:{port}/{}",
        config.get_user().unwrap_or(""),
        config.get_dbname().unwrap_or("")
    )
}

/// `postgres://USER@ADDRESS:PORT/DATABASE` as the server reports it, for messages about a
/// pool of the caller's own.
async fn server_label(client: &tokio_postgres::Client) -> String {
    match client
        .query_one(
            "SELECT current_user::text, coalesce(host(inet_server_addr()), 'local socket'), \
             coalesce(inet_server_port(), 0), current_database()::text",
            &[],
        )
        .await
    {
        Ok(row) => format!(
            "postgres://{}@{}:{}/{}",
            row.get::<_, String>(0),
            row.get::<_, String>(1),
            row.get::<_, i32>(2),
            row.get::<_, String>(3)
        ),
        Err(_) => OWN_POOL.to_owned(),
    }
}

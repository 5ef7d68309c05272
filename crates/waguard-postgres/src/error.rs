//! [`PostgresError`]: what went wrong talking to PostgreSQL, said with the server's URL
//! (password redacted) and what to do about it.

use std::error::Error as _;

use tokio_postgres::error::SqlState;
use waguard::{BoxError, RecordKey, StoreError};

/// What kind of failure a [`PostgresError`] is.
///
/// [`PostgresError::write_may_have_happened`] says, for every kind, whether the failed call may
/// have changed the store: only [`OutcomeUnknown`](ErrorKind::OutcomeUnknown) may.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The URL (or its options) could not be read.
    Config,
    /// Nothing answers at the URL's address (connection refused, unknown host, connect time
    /// out). Nothing was written.
    Unreachable,
    /// The server refused the user or password.
    Authentication,
    /// The database named in the URL does not exist.
    NoDatabase,
    /// TLS could not be set up: the server does not offer it (with `sslmode=require` or
    /// stricter), its certificate is not trusted or does not name the host, or the CA file is
    /// unreadable. Nothing was written.
    Tls,
    /// The connection broke (server restart, network) before anything was written: the
    /// operation was not applied and may be retried.
    ConnectionLost,
    /// The connection broke after a write was sent: the write may or may not have been
    /// applied (see the crate documentation, "When an outcome is unknown").
    OutcomeUnknown,
    /// Every connection of the pool stayed busy for the pool's wait time-out
    /// ([`PostgresOptions::pool_wait_timeout`](crate::PostgresOptions::pool_wait_timeout)).
    /// Nothing was sent, so nothing was written.
    PoolTimeout,
    /// A row or table stayed locked by another session for the session's `lock_timeout`
    /// ([`PostgresOptions::lock_timeout`](crate::PostgresOptions::lock_timeout)); the server
    /// cancelled the statement and rolled it back: nothing was written.
    LockTimeout,
    /// A statement ran longer than the session's `statement_timeout`
    /// ([`PostgresOptions::statement_timeout`](crate::PostgresOptions::statement_timeout)), or
    /// was cancelled; the server rolled it back: nothing was written.
    StatementTimeout,
    /// The role lacks a privilege on the store's schema, tables or sequence.
    PermissionDenied,
    /// The schema is missing or older than this build, and it was not migrated: migrations
    /// are off ([`Migrations::Never`](crate::Migrations::Never)) or the role may not run them.
    MigrationNeeded,
    /// The schema was migrated by a newer waguard-postgres than this one.
    NewerSchema,
    /// An update kept losing races (compare-and-swap conflicts or deadlocks) and gave up.
    Contention,
    /// The server refused a statement.
    Query,
}

/// A PostgreSQL failure, as the `source` of a [`StoreError`] (a [`StoreError::Backend`] that
/// names the operation and the record).
///
/// Its message names the server (URL with the password replaced by `***`), says what
/// happened, includes the server's own message, and says what to do; that advice fits the
/// kind (an outcome that is unknown is never called "not applied"). The driver's error (or the
/// TLS or I/O error) is kept as its [`source`](std::error::Error::source). Downcast a
/// [`StoreError`]'s source to this type to branch on its [`kind`](PostgresError::kind).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
#[non_exhaustive]
pub struct PostgresError {
    kind: ErrorKind,
    message: String,
    #[source]
    source: Option<BoxError>,
}

impl PostgresError {
    /// The PostgreSQL failure behind `error`, when a PostgreSQL store raised it (the source of
    /// its [`StoreError::Backend`]); `None` for a decode error, an aborted update, or another
    /// store's error.
    pub fn of(error: &StoreError) -> Option<&PostgresError> {
        std::error::Error::source(error).and_then(|s| s.downcast_ref())
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether the failed call may have written to the store. `true` only for
    /// [`ErrorKind::OutcomeUnknown`]: a connection that broke after a write was sent. Every
    /// other failure (time-outs included) left the store as it was.
    pub fn write_may_have_happened(&self) -> bool {
        self.kind == ErrorKind::OutcomeUnknown
    }

    /// The driver's error, when there is one.
    pub fn driver_error(&self) -> Option<&tokio_postgres::Error> {
        self.source
            .as_deref()
            .and_then(|e| e.downcast_ref::<tokio_postgres::Error>())
    }

    pub(crate) fn new(kind: ErrorKind, message: String) -> Self {
        PostgresError {
            kind,
            message,
            source: None,
        }
    }

    pub(crate) fn with_source(kind: ErrorKind, message: String, source: BoxError) -> Self {
        PostgresError {
            kind,
            message,
            source: Some(source),
        }
    }

    /// A failure to connect (or to get a connection from the pool), with advice by cause.
    pub(crate) fn connect(url: &str, error: tokio_postgres::Error) -> Self {
        let text = describe(&error);
        let (kind, advice) = match error.code() {
            Some(c)
                if *c == SqlState::INVALID_PASSWORD
                    || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
            {
                (
                    ErrorKind::Authentication,
                    "check the user and password in the URL, and the server's pg_hba.conf \
                     (a `hostssl` line needs sslmode=require or stricter)"
                        .to_owned(),
                )
            }
            Some(c) if *c == SqlState::INVALID_CATALOG_NAME => (
                ErrorKind::NoDatabase,
                "create the database (createdb) or name an existing one in the URL".to_owned(),
            ),
            Some(c) if *c == SqlState::CANNOT_CONNECT_NOW => (
                ErrorKind::ConnectionLost,
                "the server is starting up or shutting down: retry in a moment".to_owned(),
            ),
            Some(c) if *c == SqlState::TOO_MANY_CONNECTIONS => (
                ErrorKind::Unreachable,
                "the server has no connection slot left: lower the pool size of the instances \
                 sharing it, or raise its max_connections"
                    .to_owned(),
            ),
            _ if error.as_db_error().is_none() && is_tls_error(&error) => (
                ErrorKind::Tls,
                "TLS failed: with sslmode=verify-full the server's certificate must be signed by \
                 a trusted CA (give the CA's PEM file with sslrootcert=PATH or \
                 PostgresOptions::with_ca_file) and name the host of the URL; with \
                 sslmode=require the server must have ssl = on"
                    .to_owned(),
            ),
            _ if error.as_db_error().is_none() && is_timeout(&error) => (
                ErrorKind::Unreachable,
                format!(
                    "connecting took longer than the connect time-out: is PostgreSQL running at \
                     {url}, and does the network let the connection through? (raise \
                     PostgresOptions::connect_timeout for a slow network)"
                ),
            ),
            _ if error.as_db_error().is_none() => (
                ErrorKind::Unreachable,
                format!(
                    "is PostgreSQL running at {url}? Start it (on a development machine: \
                     scripts/ensure-postgres) or fix the URL (tests read WAGUARD_PG_URL)"
                ),
            ),
            _ => (
                ErrorKind::Query,
                "see the server's message and its log".to_owned(),
            ),
        };
        PostgresError {
            kind,
            message: format!("cannot connect to PostgreSQL at {url}: {text}; {advice}"),
            source: Some(Box::new(error)),
        }
    }

    /// A statement failed; `written` says whether a write may already have reached the server
    /// (then a broken connection leaves the outcome unknown). Time-outs and refusals roll the
    /// statement (or the transaction) back, so they never leave an outcome unknown.
    pub(crate) fn query(url: &str, error: tokio_postgres::Error, written: bool) -> Self {
        let text = describe(&error);
        let code = error.code().cloned();
        let (kind, message) = if is_connection_error(&error) {
            if written {
                (
                    ErrorKind::OutcomeUnknown,
                    format!(
                        "the connection to PostgreSQL at {url} broke after a write was sent \
                         ({text}): the write may or may not have been applied, and this store \
                         does not retry it. Ingesting the same events again is safe (rule E1: \
                         applying an event twice changes nothing); a `reserve` whose outcome is \
                         unknown counts as taken: do not send on it, reserve again once the \
                         server answers"
                    ),
                )
            } else {
                (
                    ErrorKind::ConnectionLost,
                    format!(
                        "the connection to PostgreSQL at {url} broke ({text}); nothing was \
                         written: retry, and check that the server is running"
                    ),
                )
            }
        } else if code == Some(SqlState::LOCK_NOT_AVAILABLE) {
            (
                ErrorKind::LockTimeout,
                format!(
                    "PostgreSQL at {url} gave up waiting for a row lock held by another session \
                     ({text}); the statement was rolled back and nothing was written: retry, \
                     and look for a long transaction holding the row (pg_stat_activity, \
                     state 'idle in transaction'); PostgresOptions::lock_timeout sets the wait"
                ),
            )
        } else if code == Some(SqlState::QUERY_CANCELED) {
            (
                ErrorKind::StatementTimeout,
                format!(
                    "PostgreSQL at {url} cancelled a statement ({text}), after the session's \
                     statement_timeout or at an administrator's request; it was rolled back and \
                     nothing was written: retry, and if it recurs check the server's load or \
                     raise PostgresOptions::statement_timeout"
                ),
            )
        } else if code == Some(SqlState::INSUFFICIENT_PRIVILEGE) {
            (
                ErrorKind::PermissionDenied,
                format!(
                    "PostgreSQL at {url} refused a statement for lack of privilege ({text}); \
                     nothing was written: grant the role USAGE on the schema, SELECT, INSERT, \
                     UPDATE and DELETE on its tables and USAGE on its sequence (the crate \
                     documentation, \"Least privilege\", has the statements)"
                ),
            )
        } else {
            (
                ErrorKind::Query,
                format!(
                    "PostgreSQL at {url} refused a statement ({text}); it was rolled back and \
                     nothing was written: see the server's message"
                ),
            )
        };
        PostgresError {
            kind,
            message,
            source: Some(Box::new(error)),
        }
    }

    pub(crate) fn into_store(
        self,
        operation: &'static str,
        record: Option<RecordKey>,
    ) -> StoreError {
        StoreError::backend(operation, record, self)
    }
}

/// The driver's error and its causes in one line (the driver's own `Display` of a server error
/// is only "db error").
pub(crate) fn describe(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        let mut text = format!("{} {}: {}", db.severity(), db.code().code(), db.message());
        if let Some(detail) = db.detail() {
            text.push_str(&format!(" ({detail})"));
        }
        return text;
    }
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

/// Whether the error is a broken or refused connection (as opposed to a refused statement).
pub(crate) fn is_connection_error(error: &tokio_postgres::Error) -> bool {
    if error.is_closed() {
        return true;
    }
    if let Some(code) = error.code() {
        return code.code().starts_with("08")
            || *code == SqlState::ADMIN_SHUTDOWN
            || *code == SqlState::CRASH_SHUTDOWN
            || *code == SqlState::CANNOT_CONNECT_NOW;
    }
    let mut cause = error.source();
    while let Some(c) = cause {
        if c.is::<std::io::Error>() {
            return true;
        }
        cause = c.source();
    }
    // A driver error without a server code and without an I/O cause (e.g. a type mismatch) is
    // not a connection problem.
    false
}

/// Whether a cause of the error is a TLS failure (a rustls error, or the server refusing TLS).
fn is_tls_error(error: &tokio_postgres::Error) -> bool {
    let mut cause = error.source();
    while let Some(c) = cause {
        if c.is::<rustls::Error>() {
            return true;
        }
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            if io
                .get_ref()
                .is_some_and(|inner| inner.is::<rustls::Error>())
            {
                return true;
            }
        }
        let text = c.to_string();
        if text.contains("server does not support TLS") || text.contains("InvalidDnsName") {
            return true;
        }
        cause = c.source();
    }
    error.to_string().contains("TLS")
}

/// Whether a cause of the error is a time-out.
fn is_timeout(error: &tokio_postgres::Error) -> bool {
    let mut cause = error.source();
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return true;
            }
        }
        cause = c.source();
    }
    error.to_string().contains("timeout") || error.to_string().contains("timed out")
}

/// Whether the error is a deadlock or serialization failure: the transaction was rolled back
/// and may be run again.
pub(crate) fn is_conflict(error: &tokio_postgres::Error) -> bool {
    matches!(error.code(), Some(c) if *c == SqlState::T_R_DEADLOCK_DETECTED
        || *c == SqlState::T_R_SERIALIZATION_FAILURE)
}

/// The URL with its password replaced by `***` (URL form and `key=value` form).
pub fn redact_url(url: &str) -> String {
    let url = url.trim();
    for scheme in ["postgresql://", "postgres://"] {
        if let Some(rest) = url.strip_prefix(scheme) {
            let end = rest.find(['/', '?']).unwrap_or(rest.len());
            let (authority, tail) = rest.split_at(end);
            let authority = match authority.rsplit_once('@') {
                Some((userinfo, host)) => match userinfo.split_once(':') {
                    Some((user, _)) => format!("{user}:***@{host}"),
                    None => authority.to_owned(),
                },
                None => authority.to_owned(),
            };
            let tail = match tail.split_once('?') {
                Some((path, query)) => {
                    let query: Vec<String> = query
                        .split('&')
                        .map(|pair| match pair.split_once('=') {
                            Some((k, _)) if k.eq_ignore_ascii_case("password") => {
                                format!("{k}=***")
                            }
                            _ => pair.to_owned(),
                        })
                        .collect();
                    format!("{path}?{}", query.join("&"))
                }
                None => tail.to_owned(),
            };
            return format!("{scheme}{authority}{tail}");
        }
    }
    // key=value form.
    url.split_whitespace()
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://bob:s3cr3t@db.example:5432/app?sslmode=disable"),
            "postgres://bob:***@db.example:5432/app?sslmode=disable"
        );
        assert_eq!(
            redact_url("postgresql://bob@db/app?password=s3cr3t&x=1"),
            "postgresql://bob@db/app?password=***&x=1"
        );
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1:5432/postgres"),
            "postgres://postgres@127.0.0.1:5432/postgres"
        );
        assert_eq!(
            redact_url("host=localhost user=bob password=s3cr3t dbname=app"),
            "host=localhost user=bob password=*** dbname=app"
        );
    }
}

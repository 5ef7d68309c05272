//! [`PostgresError`]: what went wrong talking to PostgreSQL, said with the server's URL
//! (password redacted) and what to do about it.

use std::error::Error as _;
use std::fmt;

use tokio_postgres::error::SqlState;
use waguard::{RecordKey, StoreError};

/// What kind of failure a [`PostgresError`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The URL (or its options) could not be read.
    Config,
    /// Nothing answers at the URL's address (connection refused, unknown host, time out).
    Unreachable,
    /// The server refused the user or password.
    Authentication,
    /// The database named in the URL does not exist.
    NoDatabase,
    /// The connection broke (server restart, network) before anything was written: the
    /// operation was not applied and may be retried.
    ConnectionLost,
    /// The connection broke after a write was sent: the write may or may not have been
    /// applied (see the crate documentation, "When an outcome is unknown").
    OutcomeUnknown,
    /// The schema was migrated by a newer waguard-postgres than this one.
    NewerSchema,
    /// An update kept losing races (compare-and-swap conflicts or deadlocks) and gave up.
    Contention,
    /// The server refused a statement.
    Query,
}

/// A PostgreSQL failure, as the `source` of a [`StoreError`].
///
/// Its message names the server (URL with the password replaced by `***`), says what
/// happened, includes the server's own message, and says what to do. Downcast a
/// [`StoreError`]'s source to this type to branch on its [`kind`](PostgresError::kind).
#[derive(Debug)]
pub struct PostgresError {
    kind: ErrorKind,
    message: String,
    source: Option<tokio_postgres::Error>,
}

impl fmt::Display for PostgresError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PostgresError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl PostgresError {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The driver's error, when there is one.
    pub fn driver_error(&self) -> Option<&tokio_postgres::Error> {
        self.source.as_ref()
    }

    pub(crate) fn new(kind: ErrorKind, message: String) -> Self {
        PostgresError {
            kind,
            message,
            source: None,
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
                    "check the user and password in the URL, and the server's pg_hba.conf"
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
            _ if error.as_db_error().is_none() && url.contains("sslmode=require") => (
                ErrorKind::Config,
                "this version of waguard-postgres connects without TLS: use sslmode=prefer or \
                 sslmode=disable"
                    .to_owned(),
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
            source: Some(error),
        }
    }

    /// A statement failed; `written` says whether a write may already have reached the server
    /// (then a broken connection leaves the outcome unknown).
    pub(crate) fn query(url: &str, error: tokio_postgres::Error, written: bool) -> Self {
        let text = describe(&error);
        let (kind, message) = if is_connection_error(&error) {
            if written {
                (
                    ErrorKind::OutcomeUnknown,
                    format!(
                        "the connection to PostgreSQL at {url} broke after a write was sent \
                         ({text}): the write may or may not have been applied. Ingesting events \
                         again is safe (rule E1: applying an event twice changes nothing); a \
                         `reserve` whose outcome is unknown must be counted as taken (do not \
                         send without a new reserve)"
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
        } else {
            (
                ErrorKind::Query,
                format!("PostgreSQL at {url} refused a statement: {text}"),
            )
        };
        PostgresError {
            kind,
            message,
            source: Some(error),
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

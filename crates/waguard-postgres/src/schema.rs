//! The embedded schema migrations: the read-only version check made on connect, and the
//! migrations themselves, run on connect when the schema is behind (and the options allow it)
//! or explicitly by [`PostgresStore::migrate`](crate::PostgresStore::migrate).

use tokio_postgres::error::SqlState;

use crate::error::{describe, ErrorKind, PostgresError};

/// The schema version this build writes and understands.
pub const SCHEMA_VERSION: i32 = 2;

/// Migration `n` (1-based) brings the schema from version `n - 1` to `n`. `{s}` stands for the
/// quoted schema name. Every statement is idempotent (`IF NOT EXISTS`), so a migration
/// interrupted before its version was recorded can run again.
const MIGRATIONS: &[&str] = &[
    // 1: the two record tables and the version sequence.
    r#"
    CREATE SEQUENCE IF NOT EXISTS {s}.record_version;
    CREATE TABLE IF NOT EXISTS {s}.contacts (
        business   text COLLATE "C" NOT NULL,
        contact    text COLLATE "C" NOT NULL,
        state      bytea NOT NULL,
        version    bigint NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (business, contact)
    );
    CREATE TABLE IF NOT EXISTS {s}.senders (
        business   text COLLATE "C" NOT NULL PRIMARY KEY,
        state      bytea NOT NULL,
        version    bigint NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now()
    );
    "#,
    // 2: registry records (templates, rules T1-T3), keyed by their storage key.
    r#"
    CREATE TABLE IF NOT EXISTS {s}.registry (
        key        text COLLATE "C" NOT NULL PRIMARY KEY,
        state      bytea NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now()
    );
    "#,
];

/// Whether `name` is acceptable as a schema name: lower-case ASCII letters, digits and `_`,
/// not starting with a digit, at most 63 bytes (PostgreSQL's identifier limit), and not one of
/// PostgreSQL's own schemas.
pub(crate) fn valid_schema_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'_'))
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
        && name.len() <= 63
        && !name.starts_with("pg_")
        && name != "information_schema"
}

/// The advisory lock key of a schema's migrations: a stable 64-bit FNV-1a hash of its name,
/// so that instances migrating different schemas do not wait for each other.
fn lock_key(schema: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in "waguard-postgres migrations ".bytes().chain(schema.bytes()) {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash as i64
}

/// The version of the schema, read without writing anything: 0 when the schema or its
/// version table does not exist yet.
pub(crate) async fn current_version(
    client: &tokio_postgres::Client,
    url: &str,
    schema: &str,
) -> Result<i32, PostgresError> {
    let sql = format!("SELECT version FROM \"{schema}\".schema_version WHERE id = 1");
    match client.query_opt(&sql, &[]).await {
        Ok(row) => Ok(row.map_or(0, |row| row.get(0))),
        Err(e)
            if matches!(e.code(), Some(c) if *c == SqlState::UNDEFINED_TABLE
                || *c == SqlState::INVALID_SCHEMA_NAME) =>
        {
            Ok(0)
        }
        Err(e) if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => {
            let text = describe(&e);
            Err(PostgresError::with_source(
                ErrorKind::PermissionDenied,
                format!(
                    "cannot read the version of the waguard schema `{schema}` in PostgreSQL at \
                     {url}: {text}; grant the role what the store needs, as the schema's owner:\n{}",
                    grants(schema, "<role>")
                ),
                Box::new(e),
            ))
        }
        Err(e) => Err(PostgresError::query(url, e, false)),
    }
}

/// The error of a schema written by a newer waguard-postgres.
pub(crate) fn newer(url: &str, schema: &str, current: i32) -> PostgresError {
    PostgresError::new(
        ErrorKind::NewerSchema,
        format!(
            "the waguard schema `{schema}` in PostgreSQL at {url} is at version {current}, \
             written by a newer waguard-postgres; this build knows versions up to \
             {SCHEMA_VERSION}: upgrade waguard-postgres (never downgrade a shared schema), or \
             use another schema"
        ),
    )
}

/// The statements that give `role` what the store needs on `schema`, and nothing more (no
/// `CREATE`): run them as the schema's owner after [`migrate`].
pub(crate) fn grants(schema: &str, role: &str) -> String {
    format!(
        "GRANT USAGE ON SCHEMA \"{schema}\" TO {role};\n\
         GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA \"{schema}\" TO {role};\n\
         GRANT USAGE ON ALL SEQUENCES IN SCHEMA \"{schema}\" TO {role};"
    )
}

/// The error of a schema that is behind and was not migrated: `cause` says why (migrations
/// off, or the role may not run them).
pub(crate) fn migration_needed(
    url: &str,
    schema: &str,
    current: i32,
    cause: &str,
    source: Option<tokio_postgres::Error>,
) -> PostgresError {
    let found = if current == 0 {
        "does not exist yet".to_owned()
    } else {
        format!("is at version {current}")
    };
    let message = format!(
        "the waguard schema `{schema}` in PostgreSQL at {url} {found} and this build needs \
         version {SCHEMA_VERSION}, but {cause}: run the migrations once as a role that may \
         create the schema (the database owner: `waguard migrate --postgres URL`, or \
         PostgresStore::migrate), then grant the \
         service's role what it needs:\n{}",
        grants(schema, "<role>")
    );
    match source {
        Some(e) => PostgresError::with_source(ErrorKind::MigrationNeeded, message, Box::new(e)),
        None => PostgresError::new(ErrorKind::MigrationNeeded, message),
    }
}

/// Creates or upgrades the schema, in one transaction under a transaction-scoped advisory
/// lock: instances starting together migrate one after the other, and the later ones find the
/// work done.
/// Returns the version the schema was at before.
pub(crate) async fn migrate(
    client: &mut tokio_postgres::Client,
    url: &str,
    schema: &str,
) -> Result<i32, PostgresError> {
    let q = format!("\"{schema}\"");
    let before = current_version(client, url, schema).await.unwrap_or(0);
    let fail = |e: tokio_postgres::Error| {
        if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) {
            let text = describe(&e);
            return migration_needed(
                url,
                schema,
                before,
                &format!("this role may not create or change it ({text})"),
                Some(e),
            );
        }
        PostgresError::query(url, e, false)
    };
    let tx = client.transaction().await.map_err(fail)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&lock_key(schema)])
        .await
        .map_err(fail)?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {q};
         CREATE TABLE IF NOT EXISTS {q}.schema_version (
             id         integer PRIMARY KEY CHECK (id = 1),
             version    integer NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         );"
    ))
    .await
    .map_err(fail)?;
    let current: i32 = tx
        .query_opt(
            &format!("SELECT version FROM {q}.schema_version WHERE id = 1"),
            &[],
        )
        .await
        .map_err(fail)?
        .map_or(0, |row| row.get(0));
    if current > SCHEMA_VERSION {
        return Err(newer(url, schema, current));
    }
    if current == SCHEMA_VERSION {
        // Nothing to do: commit the (read-only) transaction, releasing the lock.
        tx.commit().await.map_err(fail)?;
        return Ok(current);
    }
    for migration in &MIGRATIONS[current as usize..SCHEMA_VERSION as usize] {
        tx.batch_execute(&migration.replace("{s}", &q))
            .await
            .map_err(fail)?;
    }
    tx.execute(
        &format!(
            "INSERT INTO {q}.schema_version (id, version) VALUES (1, $1)
             ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version, applied_at = now()"
        ),
        &[&SCHEMA_VERSION],
    )
    .await
    .map_err(fail)?;
    tx.commit().await.map_err(fail)?;
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names() {
        for good in ["waguard", "waguard_test_1a2b", "_x", "a1"] {
            assert!(valid_schema_name(good), "{good}");
        }
        for bad in [
            "",
            "1abc",
            "Waguard",
            "a-b",
            "a\"b",
            "pg_catalog",
            "information_schema",
            &"a".repeat(64),
        ] {
            assert!(!valid_schema_name(bad), "{bad}");
        }
    }

    #[test]
    fn lock_keys_are_stable_and_differ_by_schema() {
        assert_eq!(lock_key("waguard"), lock_key("waguard"));
        assert_ne!(lock_key("waguard"), lock_key("waguard2"));
        assert_eq!(MIGRATIONS.len(), SCHEMA_VERSION as usize);
    }
}

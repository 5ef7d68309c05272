//! The embedded schema migrations, applied on connect.

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

/// Creates or upgrades the schema, in one transaction under a transaction-scoped advisory
/// lock: instances starting together migrate one after the other, and the later ones find the
/// work done.
pub(crate) async fn migrate(
    client: &mut tokio_postgres::Client,
    url: &str,
    schema: &str,
) -> Result<(), PostgresError> {
    let q = format!("\"{schema}\"");
    let fail =
        |e: tokio_postgres::Error| {
            let mut err = PostgresError::query(url, e, false);
            if err.kind() == ErrorKind::Query {
                err =
                    PostgresError::new(
                        ErrorKind::Query,
                        format!(
                    "cannot create or upgrade the waguard schema `{schema}` in PostgreSQL at \
                     {url}: {}; the user needs the CREATE privilege on the database (or create \
                     the schema beforehand and grant it)",
                    describe(err.driver_error().expect("a query error has a driver error"))
                ),
                    );
            }
            err
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
        return Err(PostgresError::new(
            ErrorKind::NewerSchema,
            format!(
                "the waguard schema `{schema}` in PostgreSQL at {url} is at version {current}, \
                 written by a newer waguard-postgres; this build knows versions up to \
                 {SCHEMA_VERSION}: upgrade waguard-postgres (never downgrade a shared schema), \
                 or use another schema"
            ),
        ));
    }
    if current == SCHEMA_VERSION {
        // Nothing to do: commit the (read-only) transaction, releasing the lock.
        tx.commit().await.map_err(fail)?;
        return Ok(());
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
    Ok(())
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

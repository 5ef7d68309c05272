//! `waguard migrate` end to end: it creates the PostgreSQL store's schema, says from which
//! version to which, prints the grants of a least-privileged role, finds nothing to do the
//! second time, and names the server without its password when nothing answers. Needs the
//! PostgreSQL server `scripts/test` starts (`WAGUARD_PG_URL`); fails loudly without it.

// Shared by several test files; this one uses only `run`.
#[allow(dead_code)]
mod support;

use support::run;

fn url() -> String {
    std::env::var("WAGUARD_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_creates_the_schema_once_and_prints_the_grants() {
    let schema = format!(
        "waguard_migrate_{}_{:08x}",
        std::process::id(),
        fastrand::u32(..)
    );
    let url = url();
    let first = run(
        &[
            "migrate",
            "--postgres",
            &url,
            "--pg-schema",
            &schema,
            "--grants-for",
            "app",
        ],
        None,
    );
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(
        first.status.success(),
        "waguard migrate failed (start PostgreSQL with scripts/ensure-postgres): {stderr}"
    );
    assert!(stderr.contains("from version 0 to 2"), "{stderr}");
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(
        stdout.contains(&format!("GRANT USAGE ON SCHEMA \"{schema}\" TO app;")),
        "{stdout}"
    );
    let second = run(
        &["migrate", "--postgres", &url, "--pg-schema", &schema],
        None,
    );
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(second.status.success(), "{stderr}");
    assert!(stderr.contains("up to date (version 2)"), "{stderr}");

    // A connection with `Migrations::Never` finds the schema ready.
    let store = waguard_postgres::PostgresStore::connect_with(
        &url,
        waguard_postgres::PostgresOptions::default()
            .with_schema(&schema)
            .with_migrations(waguard_postgres::Migrations::Never),
    )
    .await
    .unwrap();
    store.drop_schema().await.unwrap();

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let refused = run(
        &[
            "migrate",
            "--postgres",
            &format!("postgres://app:hunter2@127.0.0.1:{port}/postgres"),
        ],
        None,
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("is PostgreSQL running"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "the password leaked: {stderr}");
}

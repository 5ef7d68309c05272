//! Least privilege: a role with only USAGE on the schema, SELECT, INSERT, UPDATE and DELETE on
//! its tables and USAGE on its sequence (what `PostgresStore::grant_statements` grants) runs
//! every store operation (the whole conformance suite) on a schema migrated beforehand by the
//! owner, without trying to create anything; on a schema that is missing or behind it gets an
//! error that says how to migrate. `Migrations::Never` never changes the schema.

mod common;

use waguard_postgres::{ErrorKind, Migrations, PostgresOptions, PostgresStore, SCHEMA_VERSION};

use common::{admin, pg_error, Schemas};

/// A login role of this test, dropped (with its privileges) when this is dropped.
struct Role {
    name: String,
}

impl Role {
    async fn create() -> Self {
        let name = format!(
            "waguard_app_{}_{:08x}",
            std::process::id(),
            fastrand::u32(..)
        );
        admin(&common::url())
            .await
            .batch_execute(&format!("CREATE ROLE {name} LOGIN"))
            .await
            .unwrap();
        Role { name }
    }

    /// The shared server's URL with this role as the user.
    fn url(&self) -> String {
        let url = common::url();
        let (scheme, rest) = url.split_once("://").expect("WAGUARD_PG_URL is a URL");
        let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
        format!("{scheme}://{}@{host}", self.name)
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        let name = self.name.clone();
        let url = common::url();
        let handle = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let Ok((client, connection)) =
                    tokio_postgres::connect(&url, tokio_postgres::NoTls).await
                else {
                    return;
                };
                tokio::spawn(connection);
                let _ = client
                    .batch_execute(&format!("DROP OWNED BY {name}; DROP ROLE {name}"))
                    .await;
            });
        });
        let _ = handle.join();
    }
}

/// Migrates `schema` as the owner and grants `role` what the store needs.
async fn migrate_and_grant(schema: &str, role: &Role) {
    let migrated = PostgresStore::migrate(
        &common::url(),
        PostgresOptions::default().with_schema(schema),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}: start PostgreSQL with scripts/ensure-postgres"));
    assert_eq!(migrated.to_version, SCHEMA_VERSION);
    admin(&common::url())
        .await
        .batch_execute(&PostgresStore::grant_statements(schema, &role.name))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_role_with_only_read_write_grants_passes_the_conformance_suite() {
    let role = std::sync::Arc::new(Role::create().await);
    // The role may not create schemas: a plain `CREATE SCHEMA` fails for it.
    let (client, connection) = tokio_postgres::connect(&role.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let err = client
        .batch_execute("CREATE SCHEMA waguard_should_not_exist")
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("permission") || format!("{err:?}").contains("42501"),
        "{err:?}"
    );
    drop(client);

    let schemas = Schemas::default();
    let factory = {
        let schemas = schemas.clone();
        let role = std::sync::Arc::clone(&role);
        move || {
            let schema = schemas.fresh();
            let role = std::sync::Arc::clone(&role);
            async move {
                migrate_and_grant(&schema, &role).await;
                let store = PostgresStore::connect_with(
                    &role.url(),
                    PostgresOptions::default()
                        .with_schema(&schema)
                        .with_pool_size(4),
                )
                .await
                .unwrap_or_else(|e| panic!("the least-privileged role cannot connect: {e}"));
                let user: String = store
                    .pool()
                    .get()
                    .await
                    .unwrap()
                    .query_one("SELECT current_user::text", &[])
                    .await
                    .unwrap()
                    .get(0);
                assert_eq!(user, role.name);
                store
            }
        }
    };
    waguard::testing::run_all(factory).await;
    drop(schemas);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_to_migrate_without_the_privilege_says_how() {
    let role = Role::create().await;
    let schemas = Schemas::default();
    let schema = schemas.fresh();
    let err =
        PostgresStore::connect_with(&role.url(), PostgresOptions::default().with_schema(&schema))
            .await
            .unwrap_err();
    let pg = pg_error(&err);
    assert_eq!(pg.kind(), ErrorKind::MigrationNeeded, "{err}");
    let text = err.to_string();
    assert!(text.contains("does not exist yet"), "{text}");
    assert!(text.contains("PostgresStore::migrate"), "{text}");
    assert!(
        text.contains(&format!("GRANT USAGE ON SCHEMA \"{schema}\"")),
        "{text}"
    );
    assert!(
        std::error::Error::source(pg).is_some(),
        "the server's refusal is kept as the source"
    );

    // Once the owner has migrated and granted, the same role connects.
    migrate_and_grant(&schema, &role).await;
    PostgresStore::connect_with(&role.url(), PostgresOptions::default().with_schema(&schema))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_never_leaves_the_schema_alone() {
    let schemas = Schemas::default();
    let schema = schemas.fresh();
    let never = || {
        PostgresOptions::default()
            .with_schema(&schema)
            .with_migrations(Migrations::Never)
    };
    let err = PostgresStore::connect_with(&common::url(), never())
        .await
        .unwrap_err();
    assert_eq!(pg_error(&err).kind(), ErrorKind::MigrationNeeded, "{err}");
    assert!(err.to_string().contains("Migrations::Never"), "{err}");
    let exists: bool = admin(&common::url())
        .await
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
            &[&schema],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!exists, "Migrations::Never created the schema");
    // The explicit step migrates; a second run finds nothing to do.
    let first = PostgresStore::migrate(&common::url(), never())
        .await
        .unwrap();
    assert_eq!((first.from_version, first.to_version), (0, SCHEMA_VERSION));
    let second = PostgresStore::migrate(&common::url(), never())
        .await
        .unwrap();
    assert_eq!(second.from_version, SCHEMA_VERSION);
    PostgresStore::connect_with(&common::url(), never())
        .await
        .unwrap();
}

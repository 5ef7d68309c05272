//! The store conformance suite of `waguard::testing`, unchanged, on PostgreSQL: every case on
//! its own fresh schema (`waguard_test_<pid>_<random>`), dropped afterwards.

mod common;

use common::Schemas;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_store_passes_the_conformance_suite() {
    let schemas = Schemas::default();
    let factory = {
        let schemas = schemas.clone();
        move || {
            let schema = schemas.fresh();
            async move { common::connect(&schema, 16).await }
        }
    };
    waguard::testing::run_all(factory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_store_with_two_connections_passes_the_conformance_suite() {
    // Few connections: tasks queue for the pool while others hold rows.
    let schemas = Schemas::default();
    let factory = {
        let schemas = schemas.clone();
        move || {
            let schema = schemas.fresh();
            async move { common::connect(&schema, 2).await }
        }
    };
    waguard::testing::run_all(factory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_store_in_deferred_mode_passes_the_conformance_suite() {
    let schemas = Schemas::default();
    let factory = {
        let schemas = schemas.clone();
        move || {
            let schema = schemas.fresh();
            async move {
                let store = waguard_postgres::PostgresStore::connect_with(
                    &common::url(),
                    waguard_postgres::PostgresOptions::default()
                        .with_schema(schema)
                        .with_durability(waguard_postgres::Durability::Deferred),
                )
                .await
                .unwrap_or_else(|e| panic!("{e}: start PostgreSQL with scripts/ensure-postgres"));
                assert_eq!(store.durability(), waguard_postgres::Durability::Deferred);
                store
            }
        }
    };
    waguard::testing::run_all(factory).await;
}

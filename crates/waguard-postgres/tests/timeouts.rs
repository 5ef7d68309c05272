//! Time-outs: a row locked by another session makes writes fail within the lock time-out
//! (rather than hang) with an error saying nothing was written, and leaves no backend waiting
//! (with the lock time-out off, the statement time-out does the same);
//! a pool that stays busy fails within its wait time-out; the session settings reach the
//! server, and the URL's own settings win.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use waguard::{
    ContactKey, Event, Guard, KeyedEvent, Outgoing, Policy, Store as _, Timestamp, UpdateAction,
};
use waguard_postgres::{ErrorKind, PostgresOptions, PostgresStore};

use common::{admin, pg_error, Schemas};

const LOCK_TIMEOUT: Duration = Duration::from_millis(300);

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_unix_seconds(1_772_323_200 + seconds).unwrap()
}

/// Backends of this test's store (application name `waguard`, this schema's statements)
/// waiting for a lock.
async fn waiting_backends(client: &tokio_postgres::Client, schema: &str) -> Vec<String> {
    client
        .query(
            "SELECT pid::text || ': ' || coalesce(query, '') FROM pg_stat_activity
             WHERE wait_event_type = 'Lock' AND query LIKE '%' || $1 || '%'
               AND pid <> pg_backend_pid()",
            &[&schema],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_locked_by_another_session_fails_writes_within_the_lock_timeout() {
    let schemas = Schemas::default();
    let schema = schemas.fresh();
    let store = Arc::new(
        PostgresStore::connect_with(
            &common::url(),
            PostgresOptions::default()
                .with_schema(&schema)
                .with_pool_size(4)
                .with_lock_timeout(Some(LOCK_TIMEOUT)),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}: start PostgreSQL with scripts/ensure-postgres")),
    );
    let guard = Guard::new(Arc::clone(&store), Policy::default()).unwrap();
    let key: ContactKey = "100000001/p:33612345678".parse().unwrap();
    let inbound = Event::Inbound {
        at: at(0),
        text: None,
        referral: false,
    };
    guard
        .ingest([KeyedEvent::Contact {
            key: key.clone(),
            event: inbound,
        }])
        .await
        .unwrap();
    let before = store.load(&key).await.unwrap();

    // Another session locks the contact's row and keeps its transaction open.
    let holder = admin(&common::url()).await;
    holder.batch_execute("BEGIN").await.unwrap();
    let locked = holder
        .query(
            &format!(
                "SELECT state FROM \"{schema}\".contacts WHERE business = $1 AND contact = $2 \
                 FOR UPDATE"
            ),
            &[&key.business.as_str(), &key.contact.to_string()],
        )
        .await
        .unwrap();
    assert_eq!(locked.len(), 1);

    // A reserve (a single-key compare-and-swap write) gives up after the lock time-out.
    let started = Instant::now();
    let outcome = tokio::time::timeout(
        Duration::from_secs(10),
        guard.reserve(&key, Outgoing::FreeForm, None, at(60)),
    )
    .await
    .expect("reserve hung on a locked row instead of failing after its lock time-out");
    let took = started.elapsed();
    let err = match outcome {
        Err(waguard::GuardError::Store(e)) => e,
        other => panic!("reserve on a locked row did not fail with a store error: {other:?}"),
    };
    let pg = pg_error(&err);
    assert_eq!(pg.kind(), ErrorKind::LockTimeout, "{err}");
    assert!(!pg.write_may_have_happened(), "{err}");
    let text = pg.to_string();
    assert!(text.contains("nothing was written"), "{text}");
    assert!(!text.contains("may or may not"), "{text}");
    assert!(
        took >= LOCK_TIMEOUT && took < LOCK_TIMEOUT + Duration::from_secs(3),
        "reserve failed after {took:?}, the lock time-out is {LOCK_TIMEOUT:?}"
    );

    // A single update and a batch on the same row fail the same way.
    let started = Instant::now();
    let err = store
        .update(&key, &mut |_, _| Ok(UpdateAction::Write(b"other".to_vec())))
        .await
        .unwrap_err();
    assert_eq!(pg_error(&err).kind(), ErrorKind::LockTimeout, "{err}");
    assert!(started.elapsed() < LOCK_TIMEOUT + Duration::from_secs(3));
    let started = Instant::now();
    let err = guard
        .ingest([KeyedEvent::Contact {
            key: key.clone(),
            event: Event::TemplateSent { at: at(120) },
        }])
        .await
        .unwrap_err();
    let err = match err {
        waguard::GuardError::Store(e) => e,
        other => panic!("ingest on a locked row: {other}"),
    };
    assert_eq!(pg_error(&err).kind(), ErrorKind::LockTimeout, "{err}");
    assert!(started.elapsed() < LOCK_TIMEOUT + Duration::from_secs(3));

    // Nothing waits on the server any more, while the lock is still held.
    let observer = admin(&common::url()).await;
    let waiting = waiting_backends(&observer, &schema).await;
    assert!(
        waiting.is_empty(),
        "backends still wait for the lock: {waiting:?}"
    );

    // Reads do not wait for row locks; nothing was written by the failed calls.
    assert_eq!(store.load(&key).await.unwrap(), before);
    holder.batch_execute("ROLLBACK").await.unwrap();
    // Once the lock is released, the same reserve goes through.
    guard
        .reserve(&key, Outgoing::FreeForm, None, at(60))
        .await
        .unwrap();
}

/// With no lock time-out, the statement time-out bounds the wait for a row lock all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_lock_timeout_the_statement_timeout_ends_the_wait() {
    let schemas = Schemas::default();
    let schema = schemas.fresh();
    let statement_timeout = Duration::from_millis(300);
    let store = PostgresStore::connect_with(
        &common::url(),
        PostgresOptions::default()
            .with_schema(&schema)
            .with_pool_size(2)
            .with_lock_timeout(None)
            .with_statement_timeout(Some(statement_timeout)),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}: start PostgreSQL with scripts/ensure-postgres"));
    let key: ContactKey = "100000001/p:33612345678".parse().unwrap();
    store
        .update(&key, &mut |_, _| {
            Ok(UpdateAction::Write(b"before".to_vec()))
        })
        .await
        .unwrap();
    let holder = admin(&common::url()).await;
    holder.batch_execute("BEGIN").await.unwrap();
    holder
        .execute(
            &format!("SELECT 1 FROM \"{schema}\".contacts FOR UPDATE"),
            &[],
        )
        .await
        .unwrap();
    let started = Instant::now();
    let err = tokio::time::timeout(
        Duration::from_secs(10),
        store.update(&key, &mut |_, _| Ok(UpdateAction::Write(b"after".to_vec()))),
    )
    .await
    .expect("the update hung on a locked row")
    .unwrap_err();
    let pg = pg_error(&err);
    assert_eq!(pg.kind(), ErrorKind::StatementTimeout, "{err}");
    assert!(!pg.write_may_have_happened());
    assert!(pg.to_string().contains("nothing was written"), "{err}");
    assert!(started.elapsed() < statement_timeout + Duration::from_secs(3));
    let observer = admin(&common::url()).await;
    let waiting = waiting_backends(&observer, &schema).await;
    assert!(waiting.is_empty(), "backends still wait: {waiting:?}");
    holder.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(
        store.load(&key).await.unwrap().contact.as_deref(),
        Some(&b"before"[..])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_that_stays_busy_fails_within_its_wait_timeout() {
    let schemas = Schemas::default();
    let schema = schemas.fresh();
    let wait = Duration::from_millis(200);
    let store = PostgresStore::connect_with(
        &common::url(),
        PostgresOptions::default()
            .with_schema(&schema)
            .with_pool_size(1)
            .with_pool_wait_timeout(Some(wait)),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}: start PostgreSQL with scripts/ensure-postgres"));
    let key: ContactKey = "100000001/p:33612345678".parse().unwrap();
    let held = store.pool().get().await.unwrap();
    let started = Instant::now();
    let err = store.load(&key).await.unwrap_err();
    let took = started.elapsed();
    let pg = pg_error(&err);
    assert_eq!(pg.kind(), ErrorKind::PoolTimeout, "{err}");
    assert!(!pg.write_may_have_happened());
    assert!(pg.to_string().contains("pool_size"), "{err}");
    assert!(
        took >= wait && took < wait * 5,
        "failed after {took:?} with a wait of {wait:?} (a busy pool is not retried)"
    );
    let err = store
        .update(&key, &mut |_, _| Ok(UpdateAction::Write(b"x".to_vec())))
        .await
        .unwrap_err();
    assert_eq!(pg_error(&err).kind(), ErrorKind::PoolTimeout, "{err}");
    drop(held);
    assert!(store.load(&key).await.unwrap().contact.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_timeouts_reach_the_server_and_the_url_wins() {
    let schemas = Schemas::default();
    let show = |pool: deadpool_postgres::Pool| async move {
        let client = pool.get().await.unwrap();
        let row = client
            .query_one(
                "SELECT current_setting('statement_timeout'), current_setting('lock_timeout')",
                &[],
            )
            .await
            .unwrap();
        (row.get::<_, String>(0), row.get::<_, String>(1))
    };
    let store = common::connect(&schemas.fresh(), 1).await;
    assert_eq!(
        show(store.pool().clone()).await,
        ("30s".to_owned(), "5s".to_owned())
    );
    let store = PostgresStore::connect_with(
        &common::url(),
        PostgresOptions::default()
            .with_schema(schemas.fresh())
            .with_statement_timeout(Some(Duration::from_millis(100)))
            .with_lock_timeout(None),
    )
    .await
    .unwrap();
    let (statement, lock) = show(store.pool().clone()).await;
    assert_eq!(statement, "100ms");
    assert_eq!(lock, "0", "lock_timeout None keeps the server's default");
    // The URL's own options win over the store's.
    let url = format!(
        "{}?options=-c%20lock_timeout%3D7s",
        common::url().trim_end_matches('/')
    );
    let store = PostgresStore::connect_with(
        &url,
        PostgresOptions::default().with_schema(schemas.fresh()),
    )
    .await
    .unwrap();
    assert_eq!(show(store.pool().clone()).await.1, "7s");
}

use waguard_postgres::deadpool_postgres;

//! Bad input and faults: connection refused, authentication failure, TLS required from a
//! server without it, a schema from a newer version, a bad schema name, and a server
//! restarting mid-run. Authentication, TLS and the restart run on private clusters this test
//! creates with `initdb` and starts with `pg_ctl` on a spare port (never the shared server).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use waguard::{
    ContactKey, DeliveryStatus, Event, Guard, KeyedEvent, Policy, StoreError, Timestamp, WamidHash,
};
use waguard_postgres::{ErrorKind, PostgresOptions, PostgresStore};

use common::pg_error;

use common::cluster::free_port;

#[tokio::test]
async fn connection_refused_names_the_url_without_its_password() {
    let port = free_port();
    let url = format!("postgres://app:hunter2@127.0.0.1:{port}/postgres");
    let err = PostgresStore::connect(&url).await.unwrap_err();
    let text = err.to_string();
    assert_eq!(pg_error(&err).kind(), ErrorKind::Unreachable, "{text}");
    assert!(
        text.contains(&format!(
            "is PostgreSQL running at postgres://app:***@127.0.0.1:{port}/postgres?"
        )),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "the password leaked: {text}");
    assert!(
        matches!(
            err,
            StoreError::Backend {
                operation: "connect",
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_bad_url_or_schema_name_is_a_config_error() {
    let err = PostgresStore::connect("mysql://nope").await.unwrap_err();
    assert_eq!(pg_error(&err).kind(), ErrorKind::Config, "{err}");
    for bad in ["Upper", "with-dash", "pg_toast", "1digit", "quote\"d"] {
        let err = PostgresStore::connect_with(
            &common::url(),
            PostgresOptions::default().with_schema(bad),
        )
        .await
        .unwrap_err();
        assert_eq!(pg_error(&err).kind(), ErrorKind::Config, "{err}");
        assert!(err.to_string().contains(bad), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_from_a_newer_version_is_refused_and_left_alone() {
    let schemas = common::Schemas::default();
    let schema = schemas.fresh();
    let store = Arc::new(common::connect(&schema, 2).await);
    let key: ContactKey = "100000001/p:33612345678".parse().unwrap();
    let guard = Guard::new(Arc::clone(&store), Policy::default()).unwrap();
    guard
        .opt_out(
            &key,
            waguard::Scope::All,
            Timestamp::from_unix_seconds(1_772_323_200).unwrap(),
        )
        .await
        .unwrap();
    store
        .pool()
        .get()
        .await
        .unwrap()
        .batch_execute(&format!(
            "UPDATE \"{schema}\".schema_version SET version = 99"
        ))
        .await
        .unwrap();
    let err = PostgresStore::connect_with(
        &common::url(),
        PostgresOptions::default().with_schema(&schema),
    )
    .await
    .unwrap_err();
    assert_eq!(pg_error(&err).kind(), ErrorKind::NewerSchema, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("version 99") && text.contains(&schema),
        "{text}"
    );
    // The data is untouched: the older instance still reads it.
    assert!(store.load(&key).await.unwrap().contact.is_some());
    // Connecting twice more to an up-to-date schema is a no-op.
    let other = common::connect(&schemas.fresh(), 1).await;
    drop(other);
}

use waguard::Store as _;

use common::cluster::{pg_ctl_at, PrivateCluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_failure_names_the_user_not_the_password() {
    let cluster = PrivateCluster::start(
        "local all all trust\n\
         host all app 127.0.0.1/32 scram-sha-256\n\
         host all all 127.0.0.1/32 trust\n",
    );
    let admin = common_admin(&cluster.url("postgres")).await;
    admin
        .batch_execute("CREATE ROLE app LOGIN PASSWORD 'right-password'")
        .await
        .unwrap();
    let url = format!(
        "postgres://app:wrong-password@127.0.0.1:{}/postgres",
        cluster.port
    );
    let err = PostgresStore::connect(&url).await.unwrap_err();
    let text = err.to_string();
    assert_eq!(pg_error(&err).kind(), ErrorKind::Authentication, "{text}");
    assert!(text.contains("app:***@127.0.0.1"), "{text}");
    assert!(
        !text.contains("wrong-password"),
        "the password leaked: {text}"
    );
    // The right password works.
    let url = format!(
        "postgres://app:right-password@127.0.0.1:{}/postgres",
        cluster.port
    );
    admin
        .batch_execute("GRANT CREATE ON DATABASE postgres TO app")
        .await
        .unwrap();
    PostgresStore::connect(&url).await.unwrap();
    // A missing database.
    let err = PostgresStore::connect(&format!(
        "postgres://postgres@127.0.0.1:{}/no_such_db",
        cluster.port
    ))
    .await
    .unwrap_err();
    assert_eq!(pg_error(&err).kind(), ErrorKind::NoDatabase, "{err}");
    // TLS required from a server without it (this cluster has ssl = off).
    let err = PostgresStore::connect(&format!(
        "postgres://postgres@127.0.0.1:{}/postgres?sslmode=require",
        cluster.port
    ))
    .await
    .unwrap_err();
    assert_eq!(pg_error(&err).kind(), ErrorKind::Tls, "{err}");
    assert!(err.to_string().contains("ssl = on"), "{err}");
}

async fn common_admin(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

/// The server restarts while 4 tasks ingest: calls fail with typed errors while it is down,
/// work again once it is back (the pool replaces broken connections), and every event whose
/// ingest returned `Ok` is in the store afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_mid_run_loses_no_acknowledged_event() {
    let cluster = PrivateCluster::start("local all all trust\nhost all all 127.0.0.1/32 trust\n");
    let store = Arc::new(
        PostgresStore::connect_with(
            &cluster.url("postgres"),
            PostgresOptions::default().with_pool_size(4),
        )
        .await
        .unwrap(),
    );
    let guard = Guard::new(Arc::clone(&store), Policy::default()).unwrap();
    let key = |n: u32| -> ContactKey { format!("100000001/p:3361{n:07}").parse().unwrap() };
    let acked: Arc<Mutex<Vec<(u32, String)>>> = Arc::default();
    let errors: Arc<Mutex<Vec<ErrorKind>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let ok_after = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let restarted = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for task in 0..4u32 {
        let (guard, acked, errors, stop, ok_after, restarted) = (
            guard.clone(),
            Arc::clone(&acked),
            Arc::clone(&errors),
            Arc::clone(&stop),
            Arc::clone(&ok_after),
            Arc::clone(&restarted),
        );
        tasks.push(tokio::spawn(async move {
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let k = (task * 7 + i) % 20;
                let wamid = format!("wamid.{task}.{i}");
                let event = KeyedEvent::Contact {
                    key: key(k),
                    event: Event::Status {
                        at: Timestamp::from_unix_seconds(1_772_323_200 + i64::from(i)).unwrap(),
                        status: DeliveryStatus::Delivered,
                        wamid: Some(WamidHash::of(&wamid)),
                    },
                };
                match guard.ingest([event]).await {
                    Ok(_) => {
                        acked.lock().unwrap().push((k, wamid));
                        if restarted.load(Ordering::Relaxed) {
                            ok_after.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(waguard::GuardError::Store(e)) => {
                        let pg = pg_error(&e);
                        // The advice fits the kind: only an unknown outcome says the write
                        // may have happened, and never also that nothing was written.
                        let text = pg.to_string();
                        if pg.kind() == ErrorKind::OutcomeUnknown {
                            assert!(pg.write_may_have_happened(), "{text}");
                            assert!(!text.contains("nothing was written"), "{text}");
                            assert!(!text.contains("not applied"), "{text}");
                        } else {
                            assert!(!pg.write_may_have_happened(), "{text}");
                            assert!(!text.contains("may or may not"), "{text}");
                        }
                        errors.lock().unwrap().push(pg.kind());
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Err(e) => panic!("unexpected error: {e}"),
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = acked.lock().unwrap().len();
    assert!(before > 0, "nothing was ingested before the restart");
    let (dir, port, as_postgres) = (cluster.dir.clone(), cluster.port, cluster.as_postgres);
    tokio::task::spawn_blocking(move || {
        pg_ctl_at(&dir, port, as_postgres, &["-m", "fast", "restart"])
    })
    .await
    .unwrap();
    restarted.store(true, Ordering::Relaxed);
    // Run on until every task has succeeded a few times after the restart.
    for _ in 0..200 {
        if ok_after.load(Ordering::Relaxed) >= 40 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    assert!(
        ok_after.load(Ordering::Relaxed) >= 40,
        "the store did not recover after the restart"
    );
    for kind in errors.lock().unwrap().iter() {
        assert!(
            matches!(
                kind,
                ErrorKind::ConnectionLost | ErrorKind::OutcomeUnknown | ErrorKind::Unreachable
            ),
            "unexpected error kind during the restart: {kind:?}"
        );
    }
    let acked = acked.lock().unwrap().clone();
    for (k, wamid) in &acked {
        let (state, _) = guard.state(&key(*k)).await.unwrap();
        assert!(
            state
                .feedback
                .deliveries
                .iter()
                .any(|d| d.wamid == WamidHash::of(wamid)),
            "the acknowledged event {wamid} on key {k} was lost"
        );
    }
    eprintln!(
        "restart mid-run: {} events acknowledged ({before} before the restart), errors while \
         it was down: {:?}",
        acked.len(),
        errors.lock().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deferred_mode_sets_synchronous_commit_off_and_flush_works() {
    let schemas = common::Schemas::default();
    let schema = schemas.fresh();
    let show = |store: &PostgresStore| {
        let pool = store.pool().clone();
        async move {
            let client = pool.get().await.unwrap();
            let row = client
                .query_one("SHOW synchronous_commit", &[])
                .await
                .unwrap();
            row.get::<_, String>(0)
        }
    };
    let each = common::connect(&schema, 2).await;
    assert_eq!(each.durability(), waguard_postgres::Durability::EachWrite);
    assert_eq!(show(&each).await, "on");
    let deferred = PostgresStore::connect_with(
        &common::url(),
        PostgresOptions::default()
            .with_schema(&schema)
            .with_durability(waguard_postgres::Durability::Deferred),
    )
    .await
    .unwrap();
    assert_eq!(show(&deferred).await, "off");
    let key: ContactKey = "100000001/p:33612345678".parse().unwrap();
    deferred
        .update(&key, &mut |_, _| {
            Ok(waguard::UpdateAction::Write(b"x".to_vec()))
        })
        .await
        .unwrap();
    deferred.flush().await.unwrap();
    each.flush().await.unwrap();
    assert_eq!(
        each.load(&key).await.unwrap().contact.as_deref(),
        Some(&b"x"[..]),
        "a deferred write is visible to other instances at once"
    );
}

//! TLS against a private cluster this test starts (`initdb`, `ssl = on`, a certificate for
//! `localhost` signed by a CA generated here with rcgen, and a `pg_hba.conf` that accepts TLS
//! connections only): `verify-full` connects with the right CA and host and refuses the wrong
//! host or the wrong CA; `verify-ca` accepts any host name under the right CA; `require` and
//! the default `prefer` encrypt without checking; `disable` is refused by the server.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use waguard::{ContactKey, Store as _, UpdateAction};
use waguard_postgres::{ErrorKind, PostgresOptions, PostgresStore, RustlsConnect, SslMode};

use common::cluster::PrivateCluster;
use common::pg_error;

/// A CA of this test.
fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

struct TlsCluster {
    cluster: PrivateCluster,
    /// PEM file of the CA that signed the server's certificate.
    right_ca: PathBuf,
    /// PEM file of another CA.
    wrong_ca: PathBuf,
}

impl TlsCluster {
    fn start() -> Self {
        let ca_right = ca("waguard test CA");
        let ca_wrong = ca("another CA");
        let server_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let server_cert = params.signed_by(&server_key, &ca_right).unwrap();
        let cluster = PrivateCluster::start_with(
            // TLS connections only: a plain one finds no pg_hba.conf line.
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
            "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n",
            &[
                ("server.crt", &server_cert.pem()),
                ("server.key", &server_key.serialize_pem()),
            ],
        );
        let right_ca = cluster.dir.join("right-ca.pem");
        let wrong_ca = cluster.dir.join("wrong-ca.pem");
        std::fs::write(&right_ca, ca_right.pem()).unwrap();
        std::fs::write(&wrong_ca, ca_wrong.pem()).unwrap();
        TlsCluster {
            cluster,
            right_ca,
            wrong_ca,
        }
    }

    /// The URL naming `host` (resolved to 127.0.0.1 through `hostaddr`), with `query`.
    fn url(&self, host: &str, query: &str) -> String {
        format!(
            "postgres://postgres@{host}:{}/postgres?hostaddr=127.0.0.1&{query}",
            self.cluster.port
        )
    }
}

/// Connects, writes and reads one record, and checks that the session is encrypted.
async fn works(store: PostgresStore) {
    let key: ContactKey = "100000001/p:33612345678".parse().unwrap();
    store
        .update(&key, &mut |_, _| Ok(UpdateAction::Write(b"tls".to_vec())))
        .await
        .unwrap();
    assert_eq!(
        store.load(&key).await.unwrap().contact.as_deref(),
        Some(&b"tls"[..])
    );
    let client = store.pool().get().await.unwrap();
    let ssl: bool = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(ssl, "the session is not encrypted");
    drop(client);
    store.drop_schema().await.unwrap();
}

fn schema() -> String {
    common::fresh_schema()
}

async fn connect(url: &str) -> Result<PostgresStore, waguard::StoreError> {
    PostgresStore::connect_with(
        url,
        PostgresOptions::default()
            .with_schema(schema())
            .with_pool_size(2),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_modes_check_what_they_promise() {
    let tls = TlsCluster::start();
    let right_ca = tls.right_ca.display().to_string();
    let wrong_ca = tls.wrong_ca.display().to_string();

    // verify-full: the right CA and the right host.
    let url = tls.url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={right_ca}"),
    );
    works(
        connect(&url)
            .await
            .unwrap_or_else(|e| panic!("verify-full: {e}")),
    )
    .await;

    // verify-full: the right CA, a host the certificate does not name.
    let url = tls.url(
        "127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={right_ca}"),
    );
    let err = connect(&url).await.unwrap_err();
    assert_eq!(pg_error(&err).kind(), ErrorKind::Tls, "{err}");
    let text = err.to_string();
    assert!(text.contains("verify-full"), "{text}");
    assert!(!text.contains("is PostgreSQL running"), "{text}");
    eprintln!("verify-full, wrong host: {text}");

    // verify-full: the right host, another CA.
    let url = tls.url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={wrong_ca}"),
    );
    let err = connect(&url).await.unwrap_err();
    assert_eq!(pg_error(&err).kind(), ErrorKind::Tls, "{err}");

    // verify-full without a CA file: the bundled public roots do not know this CA.
    let url = tls.url("localhost", "sslmode=verify-full");
    let err = connect(&url).await.unwrap_err();
    assert_eq!(pg_error(&err).kind(), ErrorKind::Tls, "{err}");

    // verify-ca: the right CA, any host name; the wrong CA fails.
    let url = tls.url(
        "127.0.0.1",
        &format!("sslmode=verify-ca&sslrootcert={right_ca}"),
    );
    works(
        connect(&url)
            .await
            .unwrap_or_else(|e| panic!("verify-ca: {e}")),
    )
    .await;
    let url = tls.url(
        "127.0.0.1",
        &format!("sslmode=verify-ca&sslrootcert={wrong_ca}"),
    );
    assert_eq!(
        pg_error(&connect(&url).await.unwrap_err()).kind(),
        ErrorKind::Tls
    );

    // require (no CA) and the default prefer: encrypted, not checked.
    works(
        connect(&tls.url("127.0.0.1", "sslmode=require"))
            .await
            .unwrap(),
    )
    .await;
    works(
        connect(&format!(
            "postgres://postgres@127.0.0.1:{}/postgres",
            tls.cluster.port
        ))
        .await
        .unwrap(),
    )
    .await;
    // require with a CA file checks the chain (libpq's rule).
    let url = tls.url(
        "127.0.0.1",
        &format!("sslmode=require&sslrootcert={wrong_ca}"),
    );
    assert_eq!(
        pg_error(&connect(&url).await.unwrap_err()).kind(),
        ErrorKind::Tls
    );

    // disable: the server accepts TLS connections only.
    let err = connect(&tls.url("127.0.0.1", "sslmode=disable"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("pg_hba.conf"), "{err}");

    // The options win over the URL.
    let store = PostgresStore::connect_with(
        &tls.url("localhost", "sslmode=disable"),
        PostgresOptions::default()
            .with_schema(schema())
            .with_ssl_mode(SslMode::VerifyFull)
            .with_ca_file(&tls.right_ca),
    )
    .await
    .unwrap();
    works(store).await;

    // An unknown mode is a configuration error.
    let err = connect(&tls.url("localhost", "sslmode=verify_full"))
        .await
        .unwrap_err();
    assert_eq!(pg_error(&err).kind(), ErrorKind::Config, "{err}");
    // An unreadable CA file says which.
    let err = connect(&tls.url(
        "localhost",
        "sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
    ))
    .await
    .unwrap_err();
    assert_eq!(pg_error(&err).kind(), ErrorKind::Tls, "{err}");
    assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_own_pool_with_its_own_connector_works() {
    let tls = TlsCluster::start();
    let options = PostgresOptions::default().with_schema(schema());
    let mut config: waguard_postgres::tokio_postgres::Config = format!(
        "host=localhost hostaddr=127.0.0.1 port={} user=postgres dbname=postgres",
        tls.cluster.port
    )
    .parse()
    .unwrap();
    config.ssl_mode(waguard_postgres::tokio_postgres::config::SslMode::Require);
    options.configure(&mut config);
    let connector = RustlsConnect::new(SslMode::VerifyFull, Some(&tls.right_ca)).unwrap();
    let manager =
        waguard_postgres::deadpool_postgres::Manager::new(config.clone(), connector.clone());
    let pool = waguard_postgres::deadpool_postgres::Pool::builder(manager)
        .max_size(2)
        .timeouts(options.pool_timeouts())
        .runtime(waguard_postgres::deadpool_postgres::Runtime::Tokio1)
        .build()
        .unwrap();
    let store = PostgresStore::from_pool(pool, options.clone())
        .await
        .unwrap();
    assert!(
        store.url().contains(&tls.cluster.port.to_string()),
        "{}",
        store.url()
    );
    let settings = store
        .pool()
        .get()
        .await
        .unwrap()
        .query_one("SELECT current_setting('lock_timeout')", &[])
        .await
        .unwrap()
        .get::<_, String>(0);
    assert_eq!(
        settings, "5s",
        "PostgresOptions::configure sets the session"
    );
    let store = Arc::new(store);
    works(Arc::into_inner(store).unwrap()).await;

    // The same with a configuration and a connector.
    let store = PostgresStore::connect_config(config, connector, options.with_schema(schema()))
        .await
        .unwrap();
    works(store).await;
}

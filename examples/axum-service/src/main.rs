//! `waguard-example-axum [DIRECTORY]`: the example service on a sled store in `DIRECTORY`
//! (default `./waguard.db`), with the app secret and verify token from `WAGUARD_APP_SECRET`
//! and `WAGUARD_VERIFY_TOKEN`, listening on `WAGUARD_LISTEN` (default `127.0.0.1:8080`).

use waguard::{Guard, Policy, Store};
use waguard_example_axum::{router, App};
use waguard_sled::SledStore;

fn var(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name} is not set"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let directory = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "./waguard.db".into());
    let listen = std::env::var("WAGUARD_LISTEN").unwrap_or_else(|_| "127.0.0.1:8080".into());
    let guard = Guard::new(SledStore::open(&directory)?, Policy::default())?;
    let app = App::new(
        guard,
        var("WAGUARD_APP_SECRET")?,
        &var("WAGUARD_VERIFY_TOKEN")?,
    );
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    tracing::info!(%listen, %directory, "serving /webhook");
    axum::serve(listener, router(app.clone()))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    app.guard().store().flush().await?;
    Ok(())
}

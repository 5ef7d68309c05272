//! Running a [`Server`] on its two listeners until shutdown, then closing the store.

use std::future::{Future, IntoFuture};

use tokio::net::TcpListener;
use tokio::sync::watch;
use waguard::StoreError;

use crate::server::Server;

/// [`serve`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// A listener failed.
    #[error("the {listener} listener failed: {source}")]
    Listener {
        /// `main` or `admin`.
        listener: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The store could not be flushed after the last request.
    #[error("the store could not be flushed at shutdown: {0}")]
    Flush(#[source] StoreError),
}

/// Serves `server`'s main router on `listener` and its admin router on `admin` until
/// `shutdown` completes; then stops accepting, lets the requests in flight finish (each is
/// bounded by the request timeout), flushes the store, and returns.
pub async fn serve(
    server: Server,
    listener: TcpListener,
    admin: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let (stop, stopped) = watch::channel(false);
    let until_stopped = |mut stopped: watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|s| *s).await;
    };
    let main = axum::serve(listener, server.router())
        .with_graceful_shutdown(until_stopped(stopped.clone()))
        .into_future();
    let admin = axum::serve(admin, server.admin_router())
        .with_graceful_shutdown(until_stopped(stopped))
        .into_future();
    let trigger = async move {
        shutdown.await;
        tracing::info!("shutting down: draining requests in flight");
        let _ = stop.send(true);
    };
    let (main, admin, ()) = tokio::join!(main, admin, trigger);
    main.map_err(|source| ServeError::Listener {
        listener: "main",
        source,
    })?;
    admin.map_err(|source| ServeError::Listener {
        listener: "admin",
        source,
    })?;
    server
        .guard()
        .store()
        .flush()
        .await
        .map_err(ServeError::Flush)?;
    Ok(())
}

/// Completes on SIGTERM or Ctrl-C (SIGINT); on other platforms, on Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

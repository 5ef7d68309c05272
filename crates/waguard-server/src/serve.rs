//! Running a [`Server`] on its two listeners until shutdown, then closing the store.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use futures_util::FutureExt;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use waguard::StoreError;

use crate::server::Server;

/// [`serve`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The store could not be flushed after the last request.
    #[error("the store could not be flushed at shutdown: {0}")]
    Flush(#[source] StoreError),
}

/// Serves `server`'s main router on `listener` and its admin router on `admin` until
/// `shutdown` completes; then stops accepting, lets the requests in flight finish (each is
/// bounded by the request timeout), flushes the store, and returns.
///
/// Connections speak HTTP/1.1 with keep-alive. A client must send a request's headers within
/// the request timeout, or its connection is closed: a connection cannot be held open by
/// sending headers slowly.
pub async fn serve(
    server: Server,
    listener: TcpListener,
    admin: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let (stop, stopped) = watch::channel(false);
    let timeout = server.config().request_timeout;
    let main = accept(listener, server.router(), timeout, stopped.clone());
    let admin = accept(admin, server.admin_router(), timeout, stopped);
    let trigger = async move {
        shutdown.await;
        tracing::info!("shutting down: draining requests in flight");
        let _ = stop.send(true);
    };
    tokio::join!(main, admin, trigger);
    server
        .guard()
        .store()
        .flush()
        .await
        .map_err(ServeError::Flush)?;
    Ok(())
}

/// Accepts connections on `listener` for `router` until `stopped` turns true, then closes
/// idle connections and waits for the others to finish their request (at most the request
/// timeout and a grace second).
async fn accept(
    listener: TcpListener,
    router: Router,
    timeout: Duration,
    mut stopped: watch::Receiver<bool>,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(timeout)
        .keep_alive(true);
    let graceful = GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of file descriptors and the like: wait a little, go on.
                        tracing::warn!(error = %e, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let service = TowerToHyperService::new(router.clone());
                let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            _ = stopped.wait_for(|s| *s).map(|r| r.is_ok()) => break,
        }
    }
    drop(listener);
    let grace = timeout + Duration::from_secs(1);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the drain period; closing them");
    }
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

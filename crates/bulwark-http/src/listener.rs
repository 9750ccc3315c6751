//! The TLS accept loop: our own, over tokio-rustls, so that every limit below the HTTP
//! layer is ours to set.
//!
//! Per connection: an open-connection cap at accept, a TLS handshake timeout (failures
//! counted in `tls_handshake_failures_total`), then HTTP/1.1 or HTTP/2 (ALPN or preface)
//! with a header-read timeout against slow clients (counted as
//! `rejected_total{reason="header_timeout"}`). The TLS configuration is read from a
//! `watch` channel at each accept, so a rotated certificate applies to new connections
//! without a restart. With a [`Revalidate`], connections that presented a client
//! certificate are re-judged whenever its epoch moves (a revocation, a quarantine) and
//! closed at once when no longer allowed (`rejected_total{reason="peer_revoked"}`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt as _;

use crate::layers::{ClientCertLeaf, ClientCertSha256, PeerAddr};
use crate::limits::Limits;
use crate::metrics as m;

/// ALPN protocols we offer, most preferred first.
pub const ALPN: &[&[u8]] = &[b"h2", b"http/1.1"];

/// Judges, again, whether the holder of a client certificate may keep its connection.
pub trait PeerRecheck: Send + Sync + 'static {
    /// Whether the connection whose client presented this leaf (DER) may stay open.
    fn still_allowed(&self, leaf: &[u8]) -> bool;
}

/// When to re-judge open connections (each change of `epoch`) and how.
#[derive(Clone)]
pub struct Revalidate {
    /// The judge.
    pub check: Arc<dyn PeerRecheck>,
    /// Moves whenever a judgement may have changed.
    pub epoch: watch::Receiver<u64>,
}

/// Serves `app` over TLS on `listener` until `shutdown` resolves.
pub async fn serve_tls(
    listener: TcpListener,
    tls: watch::Receiver<Arc<rustls::ServerConfig>>,
    app: Router,
    limits: &Limits,
    revalidate: Option<Revalidate>,
    shutdown: impl Future<Output = ()>,
) {
    let conns = Arc::new(Semaphore::new(limits.max_connections));
    let builder = Arc::new(http_builder(limits));
    let handshake_timeout = limits.handshake_timeout;
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = conns.clone().try_acquire_owned() else {
            metrics::counter!(m::REJECTED_TOTAL, "reason" => m::reason::CONNECTION_CAP)
                .increment(1);
            tracing::warn!(reason = m::reason::CONNECTION_CAP, peer_addr = %peer, "connection refused");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.borrow().clone());
        let app = app.clone();
        let builder = builder.clone();
        let revalidate = revalidate.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let tls_stream =
                match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        metrics::counter!(m::TLS_HANDSHAKE_FAILURES_TOTAL).increment(1);
                        tracing::info!(
                            peer_addr = %peer,
                            reason = "tls_handshake_failed",
                            error = %e,
                            "tls handshake failed"
                        );
                        return;
                    }
                    Err(_) => {
                        metrics::counter!(m::TLS_HANDSHAKE_FAILURES_TOTAL).increment(1);
                        tracing::info!(
                            peer_addr = %peer,
                            reason = "tls_handshake_timeout",
                            "tls handshake timed out"
                        );
                        return;
                    }
                };
            // The verified client certificate, hashed once per connection.
            let client_cert = tls_stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|leaf| {
                    let mut h = [0u8; 32];
                    h.copy_from_slice(
                        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, leaf.as_ref())
                            .as_ref(),
                    );
                    (
                        ClientCertSha256(h),
                        ClientCertLeaf(Arc::from(leaf.as_ref())),
                    )
                });
            let leaf = client_cert.as_ref().map(|(_, l)| l.0.clone());
            // Judged once more after the handshake: a resumed TLS session skips the
            // certificate verifier, and a revocation may have landed since the ticket.
            if let (Some(leaf), Some(rv)) = (&leaf, &revalidate)
                && !rv.check.still_allowed(leaf)
            {
                metrics::counter!(m::TLS_HANDSHAKE_FAILURES_TOTAL).increment(1);
                tracing::info!(
                    peer_addr = %peer,
                    reason = m::reason::PEER_REVOKED,
                    "tls handshake refused: the client certificate is no longer allowed"
                );
                return;
            }
            let svc = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
                req.extensions_mut().insert(PeerAddr(peer));
                if let Some((sha, leaf)) = &client_cert {
                    req.extensions_mut().insert(*sha);
                    req.extensions_mut().insert(leaf.clone());
                }
                app.clone().oneshot(req)
            });
            let conn = builder.serve_connection(TokioIo::new(tls_stream), svc);
            let watched = leaf.zip(revalidate);
            let served = match watched {
                None => conn.await,
                Some((leaf, mut rv)) => {
                    tokio::pin!(conn);
                    loop {
                        tokio::select! {
                            // A verdict first: a request that arrives with it is not served.
                            biased;
                            changed = rv.epoch.changed() => {
                                if changed.is_err() {
                                    break conn.as_mut().await;
                                }
                                if !rv.check.still_allowed(&leaf) {
                                    metrics::counter!(m::REJECTED_TOTAL, "reason" => m::reason::PEER_REVOKED)
                                        .increment(1);
                                    tracing::warn!(
                                        reason = m::reason::PEER_REVOKED,
                                        peer_addr = %peer,
                                        "connection closed: its client certificate is no longer allowed"
                                    );
                                    // Dropping the connection closes it, in-flight
                                    // requests included.
                                    return;
                                }
                            }
                            r = conn.as_mut() => break r,
                        }
                    }
                }
            };
            if let Err(e) = served {
                let timed_out = e
                    .downcast_ref::<hyper::Error>()
                    .is_some_and(hyper::Error::is_timeout);
                if timed_out {
                    metrics::counter!(m::REJECTED_TOTAL, "reason" => m::reason::HEADER_TIMEOUT)
                        .increment(1);
                    tracing::warn!(
                        reason = m::reason::HEADER_TIMEOUT,
                        peer_addr = %peer,
                        "connection closed: headers not received in time"
                    );
                } else {
                    tracing::debug!(peer_addr = %peer, error = %e, "connection ended with an error");
                }
            }
        });
    }
}

fn http_builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(64 * 1024);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(128)
        .max_header_list_size(64 * 1024)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(10));
    b
}

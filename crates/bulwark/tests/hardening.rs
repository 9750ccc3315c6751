//! Attacks on the running server over real TLS: every hardening limit answers with its
//! exact status and problem code, and moves its counter.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Server, gzip, read_raw_response, write_lossy};
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::Frame;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const TWO_MIB: usize = 2 << 20;

fn post(path: &str) -> http::request::Builder {
    http::Request::post(path).header("host", "localhost")
}

/// Reads from `r` until a complete problem body has arrived or the peer closes.
async fn read_until_problem(r: &mut (impl tokio::io::AsyncRead + Unpin)) -> String {
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        let mut chunk = [0u8; 4096];
        loop {
            let text = String::from_utf8_lossy(&buf);
            if text.contains("\r\n\r\n") && text.ends_with('}') {
                break;
            }
            let n = r.read(&mut chunk).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    })
    .await;
    String::from_utf8_lossy(&buf).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_over_cap_is_refused_in_every_framing() {
    let s = Server::start(&[]);
    let before = s.metric(r#"rejected_total{reason="body_too_large"}"#).await;

    // 1. Declared Content-Length over the cap: refused before a byte of body is sent,
    //    on an existing route and on a path that does not exist.
    for path in ["/healthz", "/no/such/route"] {
        let mut c = s.connect().await;
        let head =
            format!("POST {path} HTTP/1.1\r\nhost: localhost\r\ncontent-length: {TWO_MIB}\r\n\r\n");
        write_lossy(&mut c, head.as_bytes()).await;
        let r = tokio::time::timeout(Duration::from_secs(5), read_raw_response(&mut c))
            .await
            .expect("answered without waiting for the body")
            .expect("a response");
        assert_eq!(r.status, 413);
        assert_eq!(r.code(), "body_too_large");
    }

    // 2. Chunked, no declared length: refused once the running total crosses the cap.
    let mut c = s.connect().await;
    write_lossy(
        &mut c,
        b"POST /healthz HTTP/1.1\r\nhost: localhost\r\ntransfer-encoding: chunked\r\n\r\n",
    )
    .await;
    let (mut rd, mut wr) = tokio::io::split(c);
    let writer = tokio::spawn(async move {
        let chunk = vec![b'a'; 64 * 1024];
        for _ in 0..(TWO_MIB / chunk.len()) {
            let size = format!("{:x}\r\n", chunk.len());
            if wr.write_all(size.as_bytes()).await.is_err()
                || wr.write_all(&chunk).await.is_err()
                || wr.write_all(b"\r\n").await.is_err()
            {
                return;
            }
        }
        let _ = wr.write_all(b"0\r\n\r\n").await;
    });
    let text = read_until_problem(&mut rd).await;
    writer.abort();
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains(r#""code":"body_too_large""#), "{text}");

    // 3. HTTP/2, streamed body, no content-length.
    let mut h2 = s.h2().await;
    let frames = futures_util::stream::iter(
        (0..TWO_MIB / (64 * 1024))
            .map(|_| Ok::<_, std::io::Error>(Frame::data(Bytes::from(vec![b'a'; 64 * 1024])))),
    );
    let req = http::Request::post(format!("https://localhost:{}/healthz", s.addr.port()))
        .body(StreamBody::new(frames).boxed())
        .unwrap();
    let r = common::collect(h2.send_request(req).await.unwrap()).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.code(), "body_too_large");

    let after = s.metric(r#"rejected_total{reason="body_too_large"}"#).await;
    assert_eq!(after - before, 4.0);
    let refused = s.await_logs("request refused", 4, |l| {
        l["reason"] == "body_too_large" && l["corr_id"].is_string()
    });
    assert_eq!(
        refused.len(),
        4,
        "one JSON log line per refusal, with reason and corr_id"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decompression_bombs_are_refused_with_bounded_memory() {
    let s = Server::start(&[]);
    let before = s
        .metric(r#"rejected_total{reason="decompression_cap"}"#)
        .await;

    // Past the ratio: 1 MiB of zeros is ~1 KiB of gzip (>1000x), well under 8 MiB decoded.
    let small_bomb = gzip(&vec![0u8; 1 << 20]);
    // Past the absolute cap: 256 MiB of zeros in ~250 KiB.
    let big_bomb = gzip(&vec![0u8; 256 << 20]);
    assert!(big_bomb.len() < 1 << 20, "fits under the body cap");

    let rss_before = s.rss_kib();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let body = if i == 0 {
            small_bomb.clone()
        } else {
            big_bomb.clone()
        };
        let req = post("/healthz")
            .header("content-encoding", "gzip")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        tasks.push(s.request(req));
    }
    for r in futures_util::future::join_all(tasks).await {
        assert_eq!(r.status, 413);
        assert_eq!(r.code(), "decompression_cap");
    }
    let rss_after = s.rss_kib();
    // Eight concurrent 256 MiB bombs: inflating first would cost gigabytes; the guard
    // stops each at the cap (at most 8 MiB + one 16 KiB step).
    assert!(
        rss_after < rss_before + 96 * 1024,
        "server RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
    let after = s
        .metric(r#"rejected_total{reason="decompression_cap"}"#)
        .await;
    assert_eq!(after - before, 8.0);

    // An honest compressed body passes the guard and reaches routing (405 on GET-only /healthz).
    let honest = gzip(br#"{"hello":"world, a body that does not compress ten times"}"#);
    let r = s
        .request(
            post("/healthz")
                .header("content-encoding", "gzip")
                .body(Full::new(Bytes::from(honest)))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stacked_and_unknown_encodings_are_refused() {
    let s = Server::start(&[]);
    let body = gzip(&gzip(b"hi"));
    let r = s
        .request(
            post("/healthz")
                .header("content-encoding", "gzip, gzip")
                .body(Full::new(Bytes::from(body.clone())))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, 415);
    assert_eq!(r.code(), "stacked_encoding");

    // Two header lines stack just the same.
    let r = s
        .request(
            post("/healthz")
                .header("content-encoding", "gzip")
                .header("content-encoding", "deflate")
                .body(Full::new(Bytes::from(body)))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, 415);
    assert_eq!(r.code(), "stacked_encoding");

    let r = s
        .request(
            post("/healthz")
                .header("content-encoding", "br")
                .body(Full::new(Bytes::from_static(b"xx")))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, 415);
    assert_eq!(r.code(), "encoding_unsupported");

    assert_eq!(
        s.metric(r#"rejected_total{reason="stacked_encoding"}"#)
            .await,
        2.0
    );
    assert_eq!(
        s.metric(r#"rejected_total{reason="encoding_unsupported"}"#)
            .await,
        1.0
    );
}

/// Opens a request whose body never arrives: it holds an in-flight slot until the timeout.
async fn slow_body_request(s: &Server) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut c = s.connect().await;
    write_lossy(
        &mut c,
        b"POST /healthz HTTP/1.1\r\nhost: localhost\r\ncontent-length: 10\r\n\r\nab",
    )
    .await;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_slow_requests_than_the_inflight_cap_get_too_busy() {
    let s = Server::start(&["--max-inflight", "4", "--request-timeout-ms", "4000"]);
    let before = s.metric(r#"rejected_total{reason="too_busy"}"#).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(slow_body_request(&s).await);
    }
    // Give the server a moment to dispatch the four into the stack.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut extra = Vec::new();
    for _ in 0..4 {
        extra.push(slow_body_request(&s).await);
    }
    for c in &mut extra {
        let r = tokio::time::timeout(Duration::from_secs(3), read_raw_response(c))
            .await
            .expect("refused at once")
            .expect("a response");
        assert_eq!(r.status, 503);
        assert_eq!(r.code(), "too_busy");
        assert_eq!(r.json()["retryable"], true);
    }
    // The held ones end in a timeout; then the server serves again.
    for c in &mut held {
        let r = read_raw_response(c).await.expect("a response");
        assert_eq!(r.code(), "timeout");
    }
    let after = s.metric(r#"rejected_total{reason="too_busy"}"#).await;
    assert_eq!(after - before, 4.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_over_the_rate_gets_429_with_retry_after() {
    let s = Server::start(&["--rate-limit-rps", "5", "--rate-limit-burst", "5"]);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let io = hyper_util::rt::TokioIo::new(s.connect().await);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
    tokio::spawn(conn);
    let mut limited = Vec::new();
    for _ in 0..20 {
        let req = http::Request::get("/healthz")
            .header("host", "localhost")
            .body(Full::new(Bytes::new()))
            .unwrap();
        sender.ready().await.unwrap();
        let r = common::collect(sender.send_request(req).await.unwrap()).await;
        if r.status == 429 {
            limited.push(r);
        } else {
            assert_eq!(r.status, 200);
        }
    }
    assert!(
        limited.len() >= 10,
        "only {} of 20 were limited",
        limited.len()
    );
    for r in &limited {
        assert_eq!(r.code(), "rate_limited");
        let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=2).contains(&retry), "retry-after {retry}");
        assert_eq!(r.json()["retry_after_seconds"], retry);
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let n = s.metric(r#"rejected_total{reason="rate_limited"}"#).await;
    assert!(n >= limited.len() as f64, "counter {n}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sending_headers_one_byte_a_second_is_cut_off() {
    let s = Server::start(&["--header-read-timeout-ms", "2000"]);
    let before = s.metric(r#"rejected_total{reason="header_timeout"}"#).await;
    let mut c = s.connect().await;
    let start = Instant::now();
    let request = b"GET /healthz HTTP/1.1\r\nhost: localhost\r\nx-slow: aaaaaaaaaaaaaaaa\r\n\r\n";
    let mut closed_after = None;
    for b in request.iter().take(12) {
        if c.write_all(&[*b]).await.is_err() || c.flush().await.is_err() {
            closed_after = Some(start.elapsed());
            break;
        }
        // Is the connection still open? A closed one reads EOF at once.
        let mut one = [0u8; 1];
        match tokio::time::timeout(Duration::from_secs(1), c.read(&mut one)).await {
            Ok(Ok(0) | Err(_)) => {
                closed_after = Some(start.elapsed());
                break;
            }
            Ok(Ok(_)) => {
                // hyper may answer 408 before closing; that is also a cut-off.
                closed_after = Some(start.elapsed());
                break;
            }
            Err(_) => {}
        }
    }
    let closed_after = closed_after.expect("the slow client was never cut off");
    assert!(
        closed_after < Duration::from_secs(6),
        "cut off after {closed_after:?}"
    );
    let after = s.metric(r#"rejected_total{reason="header_timeout"}"#).await;
    assert_eq!(after - before, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_running_past_the_timeout_gets_503_timeout() {
    let s = Server::start(&["--request-timeout-ms", "1000"]);
    let before = s.metric(r#"rejected_total{reason="timeout"}"#).await;
    let start = Instant::now();
    let mut c = slow_body_request(&s).await;
    let r = read_raw_response(&mut c).await.expect("a response");
    let took = start.elapsed();
    assert_eq!(r.status, 503);
    assert_eq!(r.code(), "timeout");
    assert!(r.headers.contains_key("retry-after"));
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "{took:?}"
    );
    let after = s.metric(r#"rejected_total{reason="timeout"}"#).await;
    assert_eq!(after - before, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_http_gets_no_answer_and_counts_a_failed_handshake() {
    let s = Server::start(&[]);
    let before = s.metric("tls_handshake_failures_total").await;
    let mut tcp = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut buf)).await;
    assert!(
        !String::from_utf8_lossy(&buf).contains("HTTP/1.1 200"),
        "plaintext must never be served"
    );
    let after = s.metric("tls_handshake_failures_total").await;
    assert_eq!(after - before, 1.0);
}

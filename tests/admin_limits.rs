//! The admin port's limits, over real loopback HTTP/1.1 written by hand so
//! that each test controls exactly what the server receives: oversized heads,
//! bodies, other methods, clients that never finish their headers, and more
//! connections than the cap.

mod common;

use common::Harness;
use graph_grpc_gateway::admin::{
    HEADER_READ_TIMEOUT, MAX_BODY_BYTES, MAX_CONNECTIONS, MAX_HEAD_BYTES,
};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Longer than any answer or cut-off the tests wait for.
const PATIENCE: Duration = Duration::from_secs(20);

/// What came back on a connection: the bytes read until the server closed
/// it (or reset it).
struct Answer {
    bytes: Vec<u8>,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    /// The status code, if an HTTP answer arrived.
    fn status(&self) -> Option<u16> {
        let text = self.text();
        let line = text.lines().next()?;
        line.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
    }

    fn header(&self, name: &str) -> Option<String> {
        let text = self.text();
        let head = text.split("\r\n\r\n").next()?;
        head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name)
                .then(|| value.trim().to_owned())
        })
    }
}

/// Reads until the server closes the connection, failing after [`PATIENCE`].
async fn read_to_close(stream: &mut TcpStream) -> Answer {
    let mut bytes = Vec::new();
    let read = tokio::time::timeout(PATIENCE, async {
        let mut buf = [0_u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => bytes.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server neither answered nor closed");
    Answer { bytes }
}

/// Sends `request` as is (the caller adds `Connection: close`) and reads the
/// answer. A write cut short by the server closing is part of the answer.
async fn exchange(addr: SocketAddr, request: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(addr).await.expect("connects");
    let _ = stream.write_all(request).await;
    read_to_close(&mut stream).await
}

fn get(path: &str, extra_headers: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: admin\r\n{extra_headers}Connection: close\r\n\r\n")
        .into_bytes()
}

#[tokio::test]
async fn probes_and_metrics_still_answer() {
    let h = Harness::start().await;
    let admin = h.gateway.admin_addr;
    for (path, body) in [
        ("/healthz", "ok"),
        ("/readyz", "ready"),
        ("/metrics", "# TYPE graph_gateway_grpc_calls counter"),
    ] {
        let answer = exchange(admin, &get(path, "")).await;
        assert_eq!(answer.status(), Some(200), "{path}: {}", answer.text());
        assert!(answer.text().contains(body), "{path}: {}", answer.text());
    }
    let head = exchange(
        admin,
        b"HEAD /healthz HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(head.status(), Some(200), "{}", head.text());
    let missing = exchange(admin, &get("/nope", "")).await;
    assert_eq!(missing.status(), Some(404), "{}", missing.text());
    // Keep-alive: two requests on one connection both answer.
    let mut stream = TcpStream::connect(admin).await.expect("connects");
    let two = [
        "GET /healthz HTTP/1.1\r\nHost: admin\r\n\r\n".as_bytes(),
        &get("/healthz", ""),
    ]
    .concat();
    stream.write_all(&two).await.expect("written");
    let answer = read_to_close(&mut stream).await;
    assert_eq!(answer.text().matches("HTTP/1.1 200 OK").count(), 2);
}

#[tokio::test]
async fn methods_other_than_get_and_head_are_405() {
    let h = Harness::start().await;
    let admin = h.gateway.admin_addr;
    for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"] {
        for path in ["/healthz", "/metrics", "/anything"] {
            let request = format!(
                "{method} {path} HTTP/1.1\r\nHost: admin\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let answer = exchange(admin, request.as_bytes()).await;
            assert_eq!(
                answer.status(),
                Some(405),
                "{method} {path}: {}",
                answer.text()
            );
            assert_eq!(answer.header("allow").as_deref(), Some("GET, HEAD"));
        }
    }
}

#[tokio::test]
async fn a_request_body_is_413() {
    let h = Harness::start().await;
    let admin = h.gateway.admin_addr;
    // Within the limit: harmless, and ignored.
    let small = [
        get("/healthz", "Content-Length: 5\r\n")
            .strip_suffix(b"\r\n\r\n")
            .expect("head")
            .to_vec(),
        b"\r\n\r\nhello".to_vec(),
    ]
    .concat();
    let answer = exchange(admin, &small).await;
    assert_eq!(answer.status(), Some(200), "{}", answer.text());

    let size = MAX_BODY_BYTES + 1;
    let big = [
        get("/healthz", &format!("Content-Length: {size}\r\n")),
        vec![b'x'; size],
    ]
    .concat();
    let answer = exchange(admin, &big).await;
    assert_eq!(answer.status(), Some(413), "{}", answer.text());

    let chunked = [
        get("/metrics", "Transfer-Encoding: chunked\r\n"),
        b"5\r\nhello\r\n0\r\n\r\n".to_vec(),
    ]
    .concat();
    let answer = exchange(admin, &chunked).await;
    assert_eq!(answer.status(), Some(413), "{}", answer.text());
}

#[tokio::test]
async fn oversized_headers_are_refused() {
    let h = Harness::start().await;
    let admin = h.gateway.admin_addr;
    // Well under the limit: served.
    let fits = get(
        "/healthz",
        &format!("X-Fill: {}\r\n", "a".repeat(MAX_HEAD_BYTES / 2)),
    );
    let answer = exchange(admin, &fits).await;
    assert_eq!(answer.status(), Some(200), "{}", answer.text());

    for oversized in [
        get(
            "/healthz",
            &format!("X-Fill: {}\r\n", "a".repeat(MAX_HEAD_BYTES + 1)),
        ),
        get(
            "/healthz",
            &(0..400)
                .map(|i| format!("X-Many-{i}: {}\r\n", "b".repeat(40)))
                .collect::<String>(),
        ),
        get(&format!("/healthz?{}", "q".repeat(MAX_HEAD_BYTES * 2)), ""),
    ] {
        let answer = exchange(admin, &oversized).await;
        match answer.status() {
            Some(status) => assert_eq!(status, 431, "{}", answer.text()),
            None => assert!(answer.bytes.is_empty(), "closed, or 431"),
        }
    }
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let h = Harness::start().await;
    let admin = h.gateway.admin_addr;
    let started = Instant::now();
    let mut slow = TcpStream::connect(admin).await.expect("connects");
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: admin\r\nX-Slow: ")
        .await
        .expect("written");
    // Meanwhile others are served.
    let answer = exchange(admin, &get("/healthz", "")).await;
    assert_eq!(answer.status(), Some(200));
    let cut = read_to_close(&mut slow).await;
    let waited = started.elapsed();
    assert!(
        cut.status().is_none_or(|s| s == 408),
        "no answer to a request never completed: {}",
        cut.text()
    );
    assert!(
        waited >= HEADER_READ_TIMEOUT - Duration::from_millis(100),
        "cut after {waited:?}, before the header read timeout"
    );

    // An idle keep-alive connection is cut the same way.
    let started = Instant::now();
    let mut idle = TcpStream::connect(admin).await.expect("connects");
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: admin\r\n\r\n")
        .await
        .expect("written");
    let answer = read_to_close(&mut idle).await;
    assert!(
        answer.text().starts_with("HTTP/1.1 200"),
        "{}",
        answer.text()
    );
    assert!(started.elapsed() >= HEADER_READ_TIMEOUT - Duration::from_millis(100));
}

#[tokio::test]
async fn connections_past_the_cap_are_closed_until_one_frees() {
    let h = Harness::start().await;
    let admin = h.gateway.admin_addr;
    // Held open with unfinished heads; served connections count from accept.
    let mut held = Vec::new();
    for _ in 0..MAX_CONNECTIONS {
        let mut stream = TcpStream::connect(admin).await.expect("connects");
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\n")
            .await
            .expect("written");
        held.push(stream);
    }
    let started = Instant::now();
    let refused = exchange(admin, &get("/healthz", "")).await;
    assert!(
        refused.bytes.is_empty(),
        "closed without an answer: {}",
        refused.text()
    );
    assert!(
        started.elapsed() < HEADER_READ_TIMEOUT,
        "closed at once, not by the header timeout"
    );
    // One finishes its request: its place is free again.
    let mut first = held.remove(0);
    first
        .write_all(b"Host: admin\r\nConnection: close\r\n\r\n")
        .await
        .expect("written");
    assert_eq!(read_to_close(&mut first).await.status(), Some(200));
    drop(first);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let answer = exchange(admin, &get("/healthz", "")).await;
        if answer.status() == Some(200) {
            break;
        }
        assert!(Instant::now() < deadline, "no connection freed");
        tokio::task::yield_now().await;
    }
}

//! The Graph calls' HTTP client against plain HTTP/1.1 servers on loopback
//! that record each request as it arrived: gzip answers inflated under the
//! answer limit, redirects returned as answers, proxies used (absolute form
//! for `http://`, a `CONNECT` tunnel for `https://`) or bypassed by their
//! no-proxy list, and a connection that could not be made known unsent.

mod common;

use flate2::write::GzEncoder;
use flate2::Compression;
use graph_grpc_gateway::graph::transport::ProxyMatcher;
use graph_grpc_gateway::graph::{CallContext, GraphClient, GraphError, GraphHttp};
use graph_grpc_gateway::metrics::Metrics;
use graph_grpc_gateway::translate::IdSegment;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const TASK: &str = "5d630f12-0f12-5d63-120f-635d120f635d";

/// One request as it arrived.
#[derive(Debug, Clone)]
struct Seen {
    /// The request line and headers, header names lowercased by the client.
    head: String,
}

impl Seen {
    fn request_line(&self) -> &str {
        self.head.lines().next().unwrap_or_default()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

type Seens = Arc<Mutex<Vec<Seen>>>;

/// A server that answers every request with `answer`, one connection at a
/// time, each closed after its answer.
async fn serve(answer: Vec<u8>) -> (SocketAddr, Seens) {
    let listener = TcpListener::bind(common::loopback()).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Seens::default();
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let head_end = loop {
                match conn.read(&mut chunk).await {
                    Ok(0) | Err(_) => break None,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break Some(i);
                }
            };
            let Some(head_end) = head_end else { continue };
            let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
            let seen = Seen { head };
            let length: usize = seen
                .header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            while buf.len() < head_end + 4 + length {
                match conn.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            record.lock().expect("lock").push(seen);
            let _ = conn.write_all(&answer).await;
            let _ = conn.shutdown().await;
        }
    });
    (addr, seen)
}

fn answer(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\nconnection: close\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip")
}

fn gzip_answer(inflated: &[u8]) -> Vec<u8> {
    answer(
        "200 OK",
        &[
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
        ],
        &gzip(inflated),
    )
}

/// A client of `base` that sends each request once, reading answers of at
/// most `limit` bytes.
fn client(http: GraphHttp, base: &str, limit: u64) -> GraphClient {
    let mut settings = common::fast_retries();
    settings.retry.max_retries = 0;
    settings.max_answer_bytes = limit;
    GraphClient::new(
        http,
        &base.parse().expect("url"),
        None,
        Duration::from_secs(10),
        &settings,
        Arc::new(Metrics::default()),
    )
}

fn direct() -> GraphHttp {
    GraphHttp::new(false).expect("client")
}

fn ctx() -> CallContext {
    CallContext {
        client_request_id: "c1".into(),
        deadline: None,
        sent: Default::default(),
        caller: Default::default(),
    }
}

fn task() -> IdSegment {
    IdSegment::new(TASK).expect("id")
}

fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

#[tokio::test]
async fn gzip_answers_are_asked_for_and_inflated() {
    let task_json = format!(r#"{{"id":"{TASK}","displayName":"{}"}}"#, "x".repeat(5000));
    let (addr, seen) = serve(gzip_answer(task_json.as_bytes())).await;
    let graph = client(direct(), &format!("http://{addr}/beta"), 1 << 20);
    let resp = graph.get_task(&task(), &ctx()).await.expect("answered");
    assert_eq!(resp.body, task_json.as_bytes());
    let seen = seen.lock().expect("lock")[0].clone();
    assert_eq!(
        seen.request_line(),
        format!("GET /beta/deviceAppManagement/deviceAppManagementTasks/{TASK} HTTP/1.1")
    );
    assert_eq!(seen.header("accept-encoding"), Some("gzip"));
    assert_eq!(
        seen.header("user-agent"),
        Some(concat!("graph-grpc-gateway/", env!("CARGO_PKG_VERSION")))
    );
    assert_eq!(seen.header("client-request-id"), Some("c1"));
    assert_eq!(seen.header("accept"), Some("application/json"));
    assert_eq!(seen.header("host"), Some(addr.to_string().as_str()));
}

#[tokio::test]
async fn an_inflated_answer_is_held_to_the_limit() {
    const LIMIT: u64 = 64 * 1024;
    let at_limit = vec![b'a'; LIMIT as usize];
    let (addr, _) = serve(gzip_answer(&at_limit)).await;
    let graph = client(direct(), &format!("http://{addr}/beta"), LIMIT);
    let resp = graph.get_task(&task(), &ctx()).await.expect("at the limit");
    assert_eq!(resp.body.len() as u64, LIMIT);

    let past = vec![b'a'; LIMIT as usize + 1];
    let (addr, _) = serve(gzip_answer(&past)).await;
    let graph = client(direct(), &format!("http://{addr}/beta"), LIMIT);
    match graph.get_task(&task(), &ctx()).await {
        Err(GraphError::AnswerTooLarge(a)) => assert_eq!((a.status, a.limit), (200, LIMIT)),
        other => panic!("one byte past the limit: {other:?}"),
    }

    // 64 MiB of zeros in about 64 KiB: refused, not inflated whole.
    let bomb = vec![0u8; 64 << 20];
    let (addr, _) = serve(gzip_answer(&bomb)).await;
    let graph = client(direct(), &format!("http://{addr}/beta"), LIMIT);
    match graph.get_task(&task(), &ctx()).await {
        Err(GraphError::AnswerTooLarge(a)) => assert_eq!(a.limit, LIMIT),
        other => panic!("a gzip bomb: {other:?}"),
    }
}

#[tokio::test]
async fn a_corrupt_gzip_answer_is_an_answer_that_broke_off() {
    let mut body = gzip(br#"{"id":"x"}"#);
    let crc = body.len() - 8;
    body[crc] ^= 0xff;
    let (addr, _) = serve(answer("200 OK", &[("content-encoding", "gzip")], &body)).await;
    let graph = client(direct(), &format!("http://{addr}/beta"), 1 << 20);
    match graph.get_task(&task(), &ctx()).await {
        Err(GraphError::Body(why)) => assert!(why.contains("gzip"), "{why}"),
        other => panic!("a corrupt gzip answer: {other:?}"),
    }
}

#[tokio::test]
async fn redirects_are_answers_not_followed() {
    let (elsewhere, stolen) = serve(answer("200 OK", &[], b"{}")).await;
    let location = format!("http://{elsewhere}/steal");
    let (addr, seen) = serve(answer("302 Found", &[("location", &location)], b"")).await;
    let graph = client(direct(), &format!("http://{addr}/beta"), 1 << 20);
    match graph.get_task(&task(), &ctx()).await {
        Err(GraphError::Status(f)) => assert_eq!(f.status, 302),
        other => panic!("a redirect: {other:?}"),
    }
    assert_eq!(seen.lock().expect("lock").len(), 1);
    assert!(stolen.lock().expect("lock").is_empty(), "followed");
}

#[tokio::test]
async fn plain_http_goes_to_the_proxy_in_absolute_form_with_its_credentials() {
    let (proxy, seen) = serve(answer("200 OK", &[], br#"{"id":"p"}"#)).await;
    let http = GraphHttp::with_proxy(Some(
        ProxyMatcher::builder()
            .http(format!("http://user:secret@{proxy}"))
            .build(),
    ))
    .expect("client");
    // Nothing resolves `graph.invalid`: only the proxy can answer.
    let graph = client(http, "http://graph.invalid/beta", 1 << 20);
    let resp = graph.get_task(&task(), &ctx()).await.expect("answered");
    assert_eq!(resp.body, br#"{"id":"p"}"#.as_slice());
    let seen = seen.lock().expect("lock")[0].clone();
    assert_eq!(
        seen.request_line(),
        format!(
            "GET http://graph.invalid/beta/deviceAppManagement/deviceAppManagementTasks/{TASK} HTTP/1.1"
        )
    );
    // base64("user:secret")
    assert_eq!(
        seen.header("proxy-authorization"),
        Some("Basic dXNlcjpzZWNyZXQ=")
    );
}

#[tokio::test]
async fn no_proxy_hosts_are_reached_directly() {
    let (proxy, through_proxy) = serve(answer("200 OK", &[], br#"{"id":"p"}"#)).await;
    let (addr, direct_seen) = serve(answer("200 OK", &[], br#"{"id":"d"}"#)).await;
    let http = GraphHttp::with_proxy(Some(
        ProxyMatcher::builder()
            .all(format!("http://{proxy}"))
            .no("127.0.0.1")
            .build(),
    ))
    .expect("client");
    let graph = client(http, &format!("http://{addr}/beta"), 1 << 20);
    let resp = graph.get_task(&task(), &ctx()).await.expect("answered");
    assert_eq!(resp.body, br#"{"id":"d"}"#.as_slice());
    assert!(through_proxy.lock().expect("lock").is_empty());
    let seen = direct_seen.lock().expect("lock")[0].clone();
    assert!(
        seen.request_line()
            .starts_with("GET /beta/deviceAppManagement/"),
        "{}",
        seen.request_line()
    );
    assert_eq!(seen.header("proxy-authorization"), None);
}

#[tokio::test]
async fn https_goes_through_a_connect_tunnel_and_a_refused_one_was_never_sent() {
    let (proxy, seen) = serve(answer("407 Proxy Authentication Required", &[], b"")).await;
    let http = GraphHttp::with_proxy(Some(
        ProxyMatcher::builder()
            .https(format!("http://user:secret@{proxy}"))
            .build(),
    ))
    .expect("client");
    let graph = client(http, "https://graph.invalid/beta", 1 << 20);
    let ctx = ctx();
    let error = graph
        .patch_task(&task(), br#"{"status":"active"}"#.to_vec(), &ctx)
        .await
        .expect_err("the proxy refused the tunnel");
    assert!(matches!(error, GraphError::Connect(_)), "{error:?}");
    assert!(!ctx.sent.may_have_reached_graph());
    let text = error.to_string();
    assert!(
        !text.contains(TASK) && !text.contains("secret"),
        "the error names the task or the proxy's password: {text}"
    );
    let seen = seen.lock().expect("lock")[0].clone();
    assert_eq!(seen.request_line(), "CONNECT graph.invalid:443 HTTP/1.1");
    assert_eq!(
        seen.header("proxy-authorization"),
        Some("Basic dXNlcjpzZWNyZXQ=")
    );
    assert_eq!(
        seen.header("user-agent"),
        Some(concat!("graph-grpc-gateway/", env!("CARGO_PKG_VERSION")))
    );
}

#[tokio::test]
async fn a_connection_that_could_not_be_made_was_never_sent() {
    let graph = client(
        direct(),
        &format!("http://127.0.0.1:{}/beta", closed_port()),
        1 << 20,
    );
    let ctx = ctx();
    let error = graph
        .create_task(br#"{"displayName":"t"}"#.to_vec(), &ctx)
        .await
        .expect_err("nothing listens");
    match &error {
        GraphError::Connect(why) => assert!(
            !why.contains("deviceAppManagement") && !why.contains("127.0.0.1"),
            "the error names the URL: {why}"
        ),
        other => panic!("a refused connection: {other:?}"),
    }
    assert!(!ctx.sent.may_have_reached_graph(), "known unsent");
}

#[tokio::test]
async fn a_connection_closed_before_an_answer_may_have_been_taken() {
    // The request is read whole, then the connection closes unanswered.
    let (addr, seen) = serve(Vec::new()).await;
    let graph = client(direct(), &format!("http://{addr}/beta"), 1 << 20);
    let ctx = ctx();
    let error = graph
        .patch_task(&task(), br#"{"status":"active"}"#.to_vec(), &ctx)
        .await
        .expect_err("no answer");
    assert!(matches!(error, GraphError::Lost(_)), "{error:?}");
    assert!(ctx.sent.may_have_reached_graph());
    assert_eq!(seen.lock().expect("lock").len(), 1);
}

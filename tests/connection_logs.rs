//! Closed connections are summarised in the log, a line a second at most
//! with a count, never one line each: a flood of silent sockets must not
//! become a flood of log lines. Against the real binary.

mod common;

use common::process::{serve_emulator, Running};
use serde_json::Value;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

const SOCKETS: u64 = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_handshake_timeouts_make_few_log_lines_with_their_count() {
    let gw = Running::spawn_with_env(
        &serve_emulator(&["--log-format", "json"]),
        &[("GATEWAY_HANDSHAKE_TIMEOUT", "100ms".to_owned())],
    );
    let (gw, line) = tokio::task::spawn_blocking(move || {
        let line = gw.wait_for_line("graph-grpc-gateway serving", Duration::from_secs(60));
        (gw, line)
    })
    .await
    .expect("joined");
    let serving: Value = serde_json::from_str(&line).expect("json log line");
    let addr = serving["grpc_addr"].as_str().expect("grpc_addr").to_owned();
    let mut sockets = Vec::new();
    for _ in 0..SOCKETS {
        sockets.push(TcpStream::connect(&addr).await.expect("connects"));
    }
    // Each is closed by the gateway (end of file after its SETTINGS).
    for socket in &mut sockets {
        let mut buf = [0_u8; 256];
        let closed = tokio::time::timeout(Duration::from_secs(30), async {
            while socket.read(&mut buf).await.is_ok_and(|n| n > 0) {}
        })
        .await;
        assert!(closed.is_ok(), "a silent socket was never closed");
    }
    // The summary lines add up to every socket.
    let (gw, summaries) = tokio::task::spawn_blocking(move || {
        let mut summaries = Vec::new();
        let mut counted = 0;
        while counted < SOCKETS {
            let line = gw.wait_for_line("handshake_timeout", Duration::from_secs(30));
            let fields: Value = serde_json::from_str(&line).expect("json log line");
            counted += fields["handshake_timeout"].as_u64().expect("a count");
            summaries.push(line);
        }
        (gw, summaries)
    })
    .await
    .expect("joined");
    assert!(
        (summaries.len() as u64) < SOCKETS,
        "one line per connection: {summaries:#?}"
    );
    // And nothing else said a word about those connections.
    let transcript = gw.finish(Duration::from_secs(30));
    let about_them = transcript
        .lines()
        .filter(|l| l.contains("handshake") || l.contains("closed"))
        .count();
    assert_eq!(about_them, summaries.len(), "{transcript}");
}

//! The gRPC port's connection lifetimes, over real loopback sockets: silent
//! sockets cannot hold the connection slots, idle connections are closed, old
//! ones are sent away with GOAWAY while their channel keeps working, and the
//! calls open at once are capped. Every wait is on real state (end of file,
//! the gateway's own metrics), bounded by [`PATIENCE`].

mod common;

use common::{config, connect, fake_cloud, get, Harness};
use graph_grpc_gateway::config::{Config, GraphTarget, Inbound};
use graph_grpc_gateway::emulator::seed;
use graph_grpc_gateway::listener::Lifetimes;
use graph_grpc_gateway::proto::v1::security_configuration_task_service_client::SecurityConfigurationTaskServiceClient;
use graph_grpc_gateway::proto::v1::SecurityConfigurationTask;
use graph_grpc_gateway::server::Gateway;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::{Code, Request};
use tonic_types::StatusExt;

/// Longer than anything the tests wait for; reaching it is a failure.
const PATIENCE: Duration = Duration::from_secs(30);

/// The HTTP/2 client preface and an empty SETTINGS frame.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

fn with_inbound(graph: GraphTarget, inbound: Inbound) -> Config {
    Config {
        inbound,
        ..config(graph)
    }
}

/// The value of the metric line starting with `series` (name and labels).
fn metric(gw: &Gateway, series: &str) -> Option<f64> {
    gw.metrics.render().lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

/// Waits until `series` reads `want` (a bounded poll of the gateway's state).
async fn metric_reaches(gw: &Gateway, series: &str, want: f64) {
    let waited = tokio::time::timeout(PATIENCE, async {
        while metric(gw, series) != Some(want) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "{series} never reached {want}: {:?}\n{}",
        metric(gw, series),
        gw.metrics.render()
    );
}

/// Reads until the gateway closes the socket (end of file or reset).
async fn closed_by_gateway(stream: &mut TcpStream) -> Vec<u8> {
    let mut seen = Vec::new();
    let read = tokio::time::timeout(PATIENCE, async {
        let mut buf = [0_u8; 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the gateway never closed the connection");
    seen
}

const CLOSED: &str = "graph_gateway_grpc_connections_closed_total";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_sockets_cannot_hold_the_connection_slots() {
    let gw = Gateway::start(with_inbound(
        GraphTarget::Emulator,
        Inbound {
            max_connections: 4,
            lifetimes: Lifetimes {
                handshake_timeout: Duration::from_millis(500),
                ..Lifetimes::default()
            },
            ..Inbound::open()
        },
    ))
    .await
    .expect("gateway starts");
    // Every slot taken by a socket that says nothing; one of them says the
    // HTTP/2 preface and then nothing, which must not be enough either.
    let mut silent = Vec::new();
    for _ in 0..3 {
        silent.push(TcpStream::connect(gw.grpc_addr).await.expect("connects"));
    }
    let mut preface_only = TcpStream::connect(gw.grpc_addr).await.expect("connects");
    preface_only.write_all(PREFACE).await.expect("preface sent");
    metric_reaches(&gw, "graph_gateway_grpc_connections_open", 4.0).await;

    // A real client waits in the backlog, then is served.
    let mut client = connect(gw.grpc_addr).await;
    let mut req = Request::new(get(seed::EXAMPLE_TASK_ID));
    req.set_timeout(PATIENCE);
    let got = client
        .get_security_configuration_task(req)
        .await
        .expect("served once the silent sockets are closed");
    assert_eq!(got.into_inner().id, seed::EXAMPLE_TASK_ID);

    // Each got the gateway's SETTINGS at most, then its end of file.
    for stream in &mut silent {
        closed_by_gateway(stream).await;
    }
    closed_by_gateway(&mut preface_only).await;
    metric_reaches(
        &gw,
        &format!("{CLOSED}{{reason=\"handshake_timeout\"}}"),
        4.0,
    )
    .await;
    // The served client's connection made its call in time: not closed.
    metric_reaches(&gw, "graph_gateway_grpc_connections_open", 1.0).await;
    gw.shutdown().await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_sockets_are_closed_on_the_tls_port_too() {
    // The TLS handshake is bounded by the same deadline.
    let dir = common::pki::Dir::new();
    let ca = common::pki::Ca::new("lifetimes-ca");
    let server = ca.server();
    let (cert_file, key_file) = common::pki::write_server(&dir, &server);
    let gw = Gateway::start(with_inbound(
        GraphTarget::Emulator,
        Inbound {
            transport: graph_grpc_gateway::config::Transport::Tls(
                graph_grpc_gateway::security::tls::TlsSettings {
                    cert_file,
                    key_file,
                    client_ca_file: None,
                    client_auth: graph_grpc_gateway::security::tls::ClientAuth::Required,
                    reload_interval: Duration::from_secs(30),
                },
            ),
            max_connections: 1,
            lifetimes: Lifetimes {
                handshake_timeout: Duration::from_millis(300),
                ..Lifetimes::default()
            },
            ..Inbound::open()
        },
    ))
    .await
    .expect("gateway starts");
    let mut silent = TcpStream::connect(gw.grpc_addr).await.expect("connects");
    // Not even a TLS alert: nothing was asked.
    assert!(closed_by_gateway(&mut silent).await.is_empty());
    metric_reaches(
        &gw,
        &format!("{CLOSED}{{reason=\"handshake_timeout\"}}"),
        1.0,
    )
    .await;
    metric_reaches(&gw, "graph_gateway_grpc_connections_open", 0.0).await;
    gw.shutdown().await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_with_no_open_call_is_closed_after_the_idle_timeout() {
    let (url, cloud) = fake_cloud::start().await;
    let gw = Gateway::start(with_inbound(
        fake_cloud::graph_with_credentials(&url),
        Inbound {
            lifetimes: Lifetimes {
                idle_timeout: Duration::from_millis(300),
                ..Lifetimes::default()
            },
            ..Inbound::open()
        },
    ))
    .await
    .expect("gateway starts");
    // A call held open far past the idle timeout keeps its connection.
    let mut busy = connect(gw.grpc_addr).await;
    let held = tokio::spawn(async move {
        let answer = busy
            .get_security_configuration_task(get(fake_cloud::HELD))
            .await;
        // The client stays open: the gateway, not the client, ends it.
        (busy, answer)
    });
    cloud.arrived.notified().await;
    // Another connection makes one call and falls idle after it; it ends
    // later than the held call began, so a wrong idle clock would close
    // the busy connection first.
    let mut idle = connect(gw.grpc_addr).await;
    idle.get_security_configuration_task(get(fake_cloud::FAST))
        .await
        .expect("OK");
    metric_reaches(&gw, &format!("{CLOSED}{{reason=\"idle\"}}"), 1.0).await;
    metric_reaches(&gw, "graph_gateway_grpc_connections_open", 1.0).await;
    cloud.release.notify_one();
    let (_busy, answer) = held.await.expect("joined");
    assert_eq!(
        answer.expect("the held call completes").into_inner().id,
        fake_cloud::HELD
    );
    // Now the busy one has no call open either.
    metric_reaches(&gw, &format!("{CLOSED}{{reason=\"idle\"}}"), 2.0).await;
    metric_reaches(&gw, "graph_gateway_grpc_connections_open", 0.0).await;
    gw.shutdown().await.expect("stops");
}

/// The stream was refused by the server's graceful GOAWAY (`NO_ERROR`).
fn refused_by_goaway(status: &tonic::Status) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(e) = source {
        if let Some(h2) = e.downcast_ref::<h2::Error>() {
            return h2.is_go_away() && h2.reason() == Some(h2::Reason::NO_ERROR);
        }
        // hyper's client cancels a request queued on a connection that
        // closed before the request was written: it never left either.
        if let Some(hyper) = e.downcast_ref::<hyper::Error>() {
            if hyper.is_canceled() {
                return true;
            }
        }
        source = e.source();
    }
    false
}

/// Gets the example task on `client`, sending the call again while the
/// channel reports it refused by an age-out GOAWAY before it ran (as gRPC's
/// transparent retry does in other clients); how many times it was refused.
async fn get_through_goaways(
    client: &mut SecurityConfigurationTaskServiceClient<tonic::transport::Channel>,
) -> (SecurityConfigurationTask, usize) {
    let mut refused = 0;
    loop {
        match client
            .get_security_configuration_task(get(seed::EXAMPLE_TASK_ID))
            .await
        {
            Ok(got) => return (got.into_inner(), refused),
            // Until the channel has seen the connection close, it may refuse
            // a few more the same way.
            Err(status) if refused_by_goaway(&status) && refused < 10 => refused += 1,
            Err(status) => panic!("every call on the long-lived channel succeeds: {status:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_connection_is_sent_away_and_its_channel_keeps_working() {
    let mut h = Harness::with_config(with_inbound(
        GraphTarget::Emulator,
        Inbound {
            lifetimes: Lifetimes {
                max_age: Duration::from_millis(300),
                max_age_grace: Duration::from_secs(10),
                ..Lifetimes::default()
            },
            ..Inbound::open()
        },
    ))
    .await;
    let aged = format!("{CLOSED}{{reason=\"max_age\"}}");
    // Calls on one channel, one after another, until two connections have
    // aged out under them: every call succeeds, the channel reconnecting
    // on its own after each GOAWAY.
    let mut refused = 0;
    let calls = tokio::time::timeout(PATIENCE, async {
        let mut calls = 0;
        while metric(&h.gateway, &aged).unwrap_or(0.0) < 2.0 {
            let (got, again) = get_through_goaways(&mut h.client).await;
            refused += usize::from(again > 0);
            assert_eq!(got.id, seed::EXAMPLE_TASK_ID);
            calls += 1;
        }
        calls
    })
    .await
    .expect("connections age out");
    assert!(calls > refused, "{refused} of {calls} calls met a GOAWAY");
    let (after, _) = get_through_goaways(&mut h.client).await;
    assert_eq!(after.id, seed::EXAMPLE_TASK_ID);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_past_the_concurrent_call_cap_are_refused_unsent() {
    let (url, cloud) = fake_cloud::start().await;
    let gw = Gateway::start(with_inbound(
        fake_cloud::graph_with_credentials(&url),
        Inbound {
            max_concurrent_calls: 1,
            ..Inbound::open()
        },
    ))
    .await
    .expect("gateway starts");
    let mut first = connect(gw.grpc_addr).await;
    let held = tokio::spawn(async move {
        first
            .get_security_configuration_task(get(fake_cloud::HELD))
            .await
    });
    cloud.arrived.notified().await;
    let sent_before = cloud.authorizations.lock().expect("lock").len();
    // The cap is across connections: another connection is refused too.
    let mut second = connect(gw.grpc_addr).await;
    let refused = second
        .get_security_configuration_task(get(fake_cloud::FAST))
        .await
        .expect_err("over the cap");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    let info = refused.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.reason, "TOO_MANY_CONCURRENT_CALLS");
    assert_eq!(
        info.metadata
            .get("max_concurrent_calls")
            .map(String::as_str),
        Some("1")
    );
    assert!(refused.get_details_retry_info().is_some());
    assert_eq!(
        cloud.authorizations.lock().expect("lock").len(),
        sent_before,
        "nothing sent to Graph for the refused call"
    );
    assert_eq!(
        metric(
            &gw,
            "graph_gateway_grpc_calls_refused_total{reason=\"max_concurrent_calls\"}"
        ),
        Some(1.0)
    );
    assert_eq!(metric(&gw, "graph_gateway_grpc_calls_in_flight"), Some(1.0));
    cloud.release.notify_one();
    held.await
        .expect("joined")
        .expect("the held call completes");
    metric_reaches(&gw, "graph_gateway_grpc_calls_in_flight", 0.0).await;
    let got = second
        .get_security_configuration_task(get(fake_cloud::FAST))
        .await
        .expect("served once the slot is free");
    assert_eq!(got.into_inner().id, fake_cloud::FAST);
    gw.shutdown().await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_still_running_after_the_age_grace_is_cut_off() {
    let (url, cloud) = fake_cloud::start().await;
    let gw = Gateway::start(with_inbound(
        fake_cloud::graph_with_credentials(&url),
        Inbound {
            lifetimes: Lifetimes {
                max_age: Duration::from_millis(200),
                max_age_grace: Duration::from_millis(300),
                ..Lifetimes::default()
            },
            ..Inbound::open()
        },
    ))
    .await
    .expect("gateway starts");
    let mut client = connect(gw.grpc_addr).await;
    let mut req = Request::new(get(fake_cloud::HELD));
    req.set_timeout(PATIENCE);
    // Graph never answers it: only the end of the grace ends the call.
    let cut = client
        .get_security_configuration_task(req)
        .await
        .expect_err("the connection was closed under it");
    assert_ne!(cut.code(), Code::DeadlineExceeded, "{cut:?}");
    metric_reaches(&gw, &format!("{CLOSED}{{reason=\"max_age\"}}"), 1.0).await;
    metric_reaches(&gw, "graph_gateway_grpc_connections_open", 0.0).await;
    cloud.release.notify_one();
    drop(client);
}

/// The HTTP/2 frame types in `bytes`, with their flags, in order.
fn frames(bytes: &[u8]) -> Vec<(u8, u8)> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while rest.len() >= 9 {
        let length = usize::from(rest[0]) << 16 | usize::from(rest[1]) << 8 | usize::from(rest[2]);
        out.push((rest[3], rest[4]));
        rest = rest.get(9 + length..).unwrap_or_default();
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_does_not_answer_pings_is_closed() {
    let gw = Gateway::start(with_inbound(
        GraphTarget::Emulator,
        Inbound {
            lifetimes: Lifetimes {
                // Only the keepalive can end this connection.
                handshake_timeout: Duration::from_secs(300),
                keepalive_interval: Duration::from_millis(200),
                keepalive_timeout: Duration::from_millis(200),
                ..Lifetimes::default()
            },
            ..Inbound::open()
        },
    ))
    .await
    .expect("gateway starts");
    let mut peer = TcpStream::connect(gw.grpc_addr).await.expect("connects");
    peer.write_all(PREFACE).await.expect("preface sent");
    let seen = closed_by_gateway(&mut peer).await;
    const PING: u8 = 0x6;
    const GOAWAY: u8 = 0x7;
    let frames = frames(&seen);
    assert!(
        frames
            .iter()
            .any(|&(kind, flags)| kind == PING && flags & 1 == 0),
        "the gateway pinged: {frames:?}"
    );
    assert!(
        frames.iter().any(|&(kind, _)| kind == GOAWAY),
        "and said goodbye: {frames:?}"
    );
    assert_eq!(
        metric(&gw, &format!("{CLOSED}{{reason=\"handshake_timeout\"}}")),
        None
    );
    gw.shutdown().await.expect("stops");
}

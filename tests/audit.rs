//! The audit trail of the real binary: one JSON record per mutating call
//! under the `audit` target, naming the caller, task, field names and
//! outcome; and, at trace level, no value or bearer token in any log line.

mod common;

use common::issuer::Issuer;
use common::pki::Dir;
use common::process::{serve_emulator, Running};
use graph_grpc_gateway::emulator::seed;
use graph_grpc_gateway::proto::v1::security_configuration_task_service_client::SecurityConfigurationTaskServiceClient;
use graph_grpc_gateway::proto::v1::{
    SecurityConfigurationTask, UpdateSecurityConfigurationTaskRequest,
};
use prost_types::FieldMask;
use serde_json::{json, Value};
use std::time::Duration;
use tonic::metadata::MetadataValue;
use tonic::{Code, Request};
use tonic_types::StatusExt;

const SECRET_VALUE: &str = "quarterly-value-7f3a9";

fn update(
    name: &str,
    mask: &[&str],
    token: &str,
) -> Request<UpdateSecurityConfigurationTaskRequest> {
    let mut req = Request::new(UpdateSecurityConfigurationTaskRequest {
        security_configuration_task: Some(SecurityConfigurationTask {
            id: seed::EXAMPLE_TASK_ID.into(),
            display_name: Some(name.into()),
            ..Default::default()
        }),
        update_mask: Some(FieldMask {
            paths: mask.iter().map(|p| (*p).to_owned()).collect(),
        }),
        ..Default::default()
    });
    req.metadata_mut().insert(
        "authorization",
        MetadataValue::try_from(format!("Bearer {token}")).expect("ascii"),
    );
    req.metadata_mut().insert(
        "client-request-id",
        MetadataValue::from_static("audit-test-1"),
    );
    req
}

/// Every log line until `count` audit records have arrived.
fn lines_until_audits(gw: &Running, count: usize) -> (Vec<String>, Vec<Value>) {
    let mut lines = Vec::new();
    let mut audits = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while audits.len() < count {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = gw
            .lines
            .recv_timeout(left)
            .unwrap_or_else(|e| panic!("{} audit records of {count}: {e}", audits.len()));
        if let Ok(v) = serde_json::from_str::<Value>(&line) {
            if v["target"] == "audit" {
                audits.push(v);
            }
        }
        lines.push(line);
    }
    (lines, audits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_update_leaves_one_audit_record_with_names_not_values() {
    let issuer = Issuer::start().await;
    let dir = Dir::new();
    let policy = dir.write(
        "policy.toml",
        format!(
            "{}\n[[callers]]\nname = \"writer\"\nidentities = [\"jwt:writer-app\"]\nrpcs = [\"*\"]\n\n[[callers]]\nname = \"reader\"\nidentities = [\"jwt:reader-app\"]\nrpcs = [\"GetSecurityConfigurationTask\"]\n",
            issuer.policy_section()
        ),
    );
    let policy = policy.to_str().expect("utf-8").to_owned();
    let gw = tokio::task::spawn_blocking(move || {
        let gw = Running::spawn(&serve_emulator(&[
            "--policy-file",
            &policy,
            "--log-format",
            "json",
            "--log",
            "trace",
        ]));
        let line = gw.wait_for_line("graph-grpc-gateway serving", Duration::from_secs(60));
        (gw, line)
    })
    .await
    .expect("spawned");
    let (gw, line) = gw;
    let serving: Value = serde_json::from_str(&line).expect("json log line");
    let addr = serving["grpc_addr"].as_str().expect("grpc_addr").to_owned();
    let mut client = SecurityConfigurationTaskServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connects");

    let writer = issuer.token("writer-app");
    let reader = issuer.token("reader-app");
    let ok = client
        .update_security_configuration_task(update(SECRET_VALUE, &["display_name"], &writer))
        .await
        .expect("writer updates");
    let request_id = ok
        .metadata()
        .get("request-id")
        .and_then(|v| v.to_str().ok())
        .expect("request-id")
        .to_owned();
    let invalid = client
        .update_security_configuration_task(update(SECRET_VALUE, &["no_such_field"], &writer))
        .await
        .expect_err("invalid mask");
    assert_eq!(invalid.code(), Code::InvalidArgument);
    let denied = client
        .update_security_configuration_task(update(SECRET_VALUE, &["display_name"], &reader))
        .await
        .expect_err("reader may not update");
    assert_eq!(denied.code(), Code::PermissionDenied);

    let (lines, audits) = tokio::task::spawn_blocking(move || lines_until_audits(&gw, 3))
        .await
        .expect("lines");
    let applied = &audits[0];
    assert_eq!(applied["rpc"], "UpdateSecurityConfigurationTask");
    assert_eq!(applied["caller"], "writer");
    assert_eq!(applied["via"], "jwt");
    assert_eq!(applied["task_id"], seed::EXAMPLE_TASK_ID);
    assert_eq!(applied["fields"], "display_name");
    assert_eq!(applied["outcome"], "applied");
    assert_eq!(applied["code"], "OK");
    assert_eq!(applied["graph_request_id"], request_id.as_str());
    assert_eq!(applied["client_request_id"], "audit-test-1");
    assert!(applied["peer"]
        .as_str()
        .is_some_and(|p| p.starts_with("127.0.0.1:")));
    assert!(applied["timestamp"].is_string(), "{applied}");

    let refused = &audits[1];
    assert_eq!(refused["caller"], "writer");
    assert_eq!(refused["outcome"], "not_applied");
    assert_eq!(refused["code"], "INVALID_ARGUMENT");

    let denied = &audits[2];
    assert_eq!(denied["caller"], "reader");
    assert_eq!(denied["outcome"], "refused");
    assert_eq!(denied["reason"], "RPC_NOT_ALLOWED");

    for line in &lines {
        for forbidden in [SECRET_VALUE, writer.as_str(), reader.as_str()] {
            assert!(
                !line.contains(forbidden),
                "a value or token in the log: {line}"
            );
        }
    }
}

/// `serve --emulator` as a child process, with its JSON log stream, its
/// emulator's control routes and a gRPC client.
struct Gateway {
    process: Running,
    grpc: String,
    admin: String,
    emulator: String,
    http: reqwest::Client,
}

impl Gateway {
    /// Starts the binary with `env` on top of fast retries.
    async fn start(env: &[(&'static str, &str)]) -> Self {
        let mut vars: Vec<(&str, String)> = vec![
            ("GRAPH_MAX_RETRIES", "1".into()),
            ("GRAPH_RETRY_BASE_DELAY", "1ms".into()),
        ];
        vars.extend(env.iter().map(|(k, v)| (*k, (*v).to_owned())));
        let (process, emulator, serving) = tokio::task::spawn_blocking(move || {
            let process =
                Running::spawn_with_env(&serve_emulator(&["--log-format", "json"]), &vars);
            let emulator =
                process.wait_for_line("built-in Graph emulator", Duration::from_secs(60));
            let serving =
                process.wait_for_line("graph-grpc-gateway serving", Duration::from_secs(60));
            (process, emulator, serving)
        })
        .await
        .expect("spawned");
        let field = |line: &str, name: &str| -> String {
            let v: Value = serde_json::from_str(line).expect("json log line");
            v[name]
                .as_str()
                .unwrap_or_else(|| panic!("{name}"))
                .to_owned()
        };
        let base = field(&emulator, "base_url");
        Self {
            process,
            grpc: format!("http://{}", field(&serving, "grpc_addr")),
            admin: format!("http://{}", field(&serving, "admin_addr")),
            emulator: base.trim_end_matches("/beta").to_owned(),
            http: reqwest::Client::new(),
        }
    }

    async fn client(&self) -> SecurityConfigurationTaskServiceClient<tonic::transport::Channel> {
        SecurityConfigurationTaskServiceClient::connect(self.grpc.clone())
            .await
            .expect("connects")
    }

    /// Scripts the emulator's next answers.
    async fn faults(&self, faults: Value) {
        let resp = self
            .http
            .post(format!("{}/_emulator/faults", self.emulator))
            .json(&faults)
            .send()
            .await
            .expect("faults posted");
        assert!(
            resp.status().is_success(),
            "{}",
            resp.text().await.unwrap_or_default()
        );
    }

    /// How many Graph requests the emulator has received.
    async fn received(&self) -> u64 {
        let v: Value = self
            .http
            .get(format!("{}/_emulator/requests", self.emulator))
            .send()
            .await
            .expect("requests")
            .json()
            .await
            .expect("json");
        v["received"].as_u64().expect("received")
    }

    /// Waits (a bounded poll on the emulator's count) until it has received `n`.
    async fn until_received(&self, n: u64) {
        tokio::time::timeout(Duration::from_secs(30), async {
            while self.received().await < n {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the emulator received the request");
    }

    /// Waits (a bounded poll on the metrics) until `n` Graph calls wait for a slot.
    async fn until_queued(&self, n: u32) {
        let want = format!("graph_gateway_graph_queued {n}\n");
        tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let text = self
                    .http
                    .get(format!("{}/metrics", self.admin))
                    .send()
                    .await
                    .expect("metrics")
                    .text()
                    .await
                    .expect("text");
                if text.contains(&want) {
                    return;
                }
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the call queued");
    }

    /// The audit record of the update sent with `client_request_id`, read
    /// from the log stream as it arrives.
    async fn audit_of(&self, client_request_id: &str) -> Value {
        let lines = &self.process.lines;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        tokio::task::block_in_place(|| loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = lines
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("no audit record for {client_request_id}: {e}"));
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                if v["target"] == "audit" && v["client_request_id"] == client_request_id {
                    return v;
                }
            }
        })
    }
}

/// An update of the example task's insights, sent as `client_request_id`.
fn set_insights(
    value: &str,
    client_request_id: &'static str,
) -> Request<UpdateSecurityConfigurationTaskRequest> {
    let mut req = Request::new(UpdateSecurityConfigurationTaskRequest {
        security_configuration_task: Some(SecurityConfigurationTask {
            id: seed::EXAMPLE_TASK_ID.into(),
            insights: Some(value.into()),
            ..Default::default()
        }),
        update_mask: Some(FieldMask {
            paths: vec!["insights".into()],
        }),
        ..Default::default()
    });
    req.metadata_mut().insert(
        "client-request-id",
        MetadataValue::from_static(client_request_id),
    );
    req
}

fn error_info(s: &tonic::Status) -> tonic_types::ErrorInfo {
    s.get_details_error_info()
        .unwrap_or_else(|| panic!("ErrorInfo in {s:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_graph_took_whose_read_back_fails_is_applied_and_unavailable() {
    let gw = Gateway::start(&[]).await;
    let mut client = gw.client().await;
    let cases: [(&'static str, Value, &str, &str); 3] = [
        (
            "read-back-503",
            json!([{"status": 503}, {"status": 503}]),
            "UNAVAILABLE",
            "SERVICE_NOT_AVAILABLE",
        ),
        (
            "read-back-404",
            json!([{"status": 404, "code": "ResourceNotFound"}]),
            "NOT_FOUND",
            "RESOURCE_NOT_FOUND",
        ),
        (
            "read-back-403",
            json!([{"status": 403, "code": "accessDenied"}]),
            "PERMISSION_DENIED",
            "ACCESS_DENIED",
        ),
    ];
    for (request_id, read_faults, read_status, read_reason) in cases {
        let mut faults = vec![json!({"status": 204, "body": "NoContentAfterApply"})];
        faults.extend(read_faults.as_array().expect("array").iter().cloned());
        gw.faults(Value::Array(faults)).await;
        let s = client
            .update_security_configuration_task(set_insights(request_id, request_id))
            .await
            .expect_err("the read back failed");
        assert_eq!(s.code(), Code::Unavailable, "{request_id}: {s:?}");
        let info = error_info(&s);
        assert_eq!(
            info.reason, "UPDATE_APPLIED_READ_BACK_FAILED",
            "{request_id}"
        );
        assert_eq!(info.metadata["applied"], "true");
        assert_eq!(info.metadata["read-with"], "GetSecurityConfigurationTask");
        assert_eq!(info.metadata["id"], seed::EXAMPLE_TASK_ID);
        assert_eq!(info.metadata["read-status"], read_status, "{request_id}");
        assert_eq!(info.metadata["read-reason"], read_reason, "{request_id}");
        assert!(s.message().contains("applied"), "{}", s.message());

        let record = gw.audit_of(request_id).await;
        assert_eq!(record["outcome"], "applied", "{record}");
        assert_eq!(record["code"], "UNAVAILABLE", "{record}");
        assert_eq!(record["fields"], "insights");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_success_body_that_is_not_the_task_is_internal_and_the_update_applied() {
    let gw = Gateway::start(&[]).await;
    let mut client = gw.client().await;
    let other = json!({
        "@odata.type": "#microsoft.graph.securityConfigurationTask",
        "id": "00000000-0000-4000-8000-000000000001",
    })
    .to_string();
    let cases: [(&'static str, String, &str); 3] = [
        ("empty-object", "{}".into(), "missing_odata_type"),
        (
            "no-id",
            json!({"@odata.type": "#microsoft.graph.securityConfigurationTask"}).to_string(),
            "missing_id",
        ),
        ("another-task", other, "id_mismatch"),
    ];
    for (request_id, body, problem) in cases {
        gw.faults(json!([{"status": 200, "body": {"Raw": body}}]))
            .await;
        let s = client
            .update_security_configuration_task(set_insights(request_id, request_id))
            .await
            .expect_err("not the task");
        assert_eq!(s.code(), Code::Internal, "{request_id}: {s:?}");
        let info = error_info(&s);
        assert_eq!(info.reason, "GRAPH_ANSWER_UNEXPECTED");
        assert_eq!(info.metadata["problem"], problem);
        assert_eq!(info.metadata["applied"], "true");
        let record = gw.audit_of(request_id).await;
        assert_eq!(record["outcome"], "applied", "{record}");
        assert_eq!(record["code"], "INTERNAL", "{record}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_cancels_mid_patch_leaves_an_unknown_cancelled_record() {
    let gw = Gateway::start(&[]).await;
    // The PATCH is applied at once; its answer is held back.
    gw.faults(json!([{"body": "Unchanged", "delay_ms": 30000}]))
        .await;
    let mut client = gw.client().await;
    let call = tokio::spawn(async move {
        client
            .update_security_configuration_task(set_insights("cancelled", "cancel-mid-patch"))
            .await
    });
    gw.until_received(1).await;
    // Dropping the call's future resets its HTTP/2 stream.
    call.abort();
    assert!(call.await.expect_err("aborted").is_cancelled());
    let record = gw.audit_of("cancel-mid-patch").await;
    assert_eq!(record["outcome"], "unknown", "{record}");
    assert_eq!(record["code"], "CANCELLED", "{record}");
    assert_eq!(record["fields"], "insights");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_whose_connection_dies_mid_patch_leaves_an_unknown_cancelled_record() {
    let gw = Gateway::start(&[]).await;
    gw.faults(json!([{"body": "Unchanged", "delay_ms": 30000}]))
        .await;
    // A connection whose socket the test can shut down under the client.
    let addr: std::net::SocketAddr = gw.grpc.trim_start_matches("http://").parse().expect("addr");
    let socket = std::net::TcpStream::connect(addr).expect("connects");
    let handle = socket.try_clone().expect("clone");
    socket.set_nonblocking(true).expect("nonblocking");
    let socket = std::sync::Mutex::new(Some(socket));
    let channel = tonic::transport::Endpoint::from_shared(gw.grpc.clone())
        .expect("uri")
        .connect_with_connector(tower::service_fn(move |_: http::Uri| {
            let socket = socket.lock().expect("lock").take();
            async move {
                let socket = socket.ok_or_else(|| std::io::Error::other("one connection only"))?;
                let stream = tokio::net::TcpStream::from_std(socket)?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        }))
        .await
        .expect("connects");
    let mut client = SecurityConfigurationTaskServiceClient::new(channel);
    let call = tokio::spawn(async move {
        client
            .update_security_configuration_task(set_insights(
                "disconnected",
                "disconnect-mid-patch",
            ))
            .await
    });
    gw.until_received(1).await;
    handle
        .shutdown(std::net::Shutdown::Both)
        .expect("shut down");
    let record = gw.audit_of("disconnect-mid-patch").await;
    assert_eq!(record["outcome"], "unknown", "{record}");
    assert_eq!(record["code"], "CANCELLED", "{record}");
    let _ = call.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_cancels_while_queued_leaves_a_not_applied_record() {
    let gw = Gateway::start(&[("GRAPH_MAX_IN_FLIGHT", "1")]).await;
    // The first update holds the only Graph slot while its answer is held back.
    gw.faults(json!([{"body": "Unchanged", "delay_ms": 30000}]))
        .await;
    let mut first = gw.client().await;
    let holder = tokio::spawn(async move {
        first
            .update_security_configuration_task(set_insights("holder", "holds-the-slot"))
            .await
    });
    gw.until_received(1).await;
    let mut second = gw.client().await;
    let queued = tokio::spawn(async move {
        second
            .update_security_configuration_task(set_insights("queued", "cancel-while-queued"))
            .await
    });
    gw.until_queued(1).await;
    queued.abort();
    let record = gw.audit_of("cancel-while-queued").await;
    assert_eq!(record["outcome"], "not_applied", "{record}");
    assert_eq!(record["code"], "CANCELLED", "{record}");
    assert_eq!(gw.received().await, 1, "the queued update was never sent");
    holder.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_whose_connection_dropped_after_apply_is_confirmed_by_read_back() {
    let gw = Gateway::start(&[]).await;
    gw.faults(json!([{"body": "DropAfterApply"}])).await;
    let mut client = gw.client().await;
    let got = client
        .update_security_configuration_task(set_insights("dropped", "dropped-after-apply"))
        .await
        .expect("confirmed by reading the task back")
        .into_inner();
    assert_eq!(got.insights.as_deref(), Some("dropped"));
    let record = gw.audit_of("dropped-after-apply").await;
    assert_eq!(record["outcome"], "applied", "{record}");
    assert_eq!(record["code"], "OK");
    assert_eq!(record["confirmed_by"], "read_back", "{record}");
    assert_eq!(record["resent"], false, "{record}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_lost_before_graph_applied_it_is_sent_once_more_and_says_so() {
    let gw = Gateway::start(&[]).await;
    gw.faults(json!([{"body": "DropConnection"}])).await;
    let mut client = gw.client().await;
    let got = client
        .update_security_configuration_task(set_insights("resent", "resent-after-read-back"))
        .await
        .expect("sent again after the read-back")
        .into_inner();
    assert_eq!(got.insights.as_deref(), Some("resent"));
    let record = gw.audit_of("resent-after-read-back").await;
    assert_eq!(record["outcome"], "applied", "{record}");
    assert_eq!(record["resent"], true, "{record}");
    assert!(record.get("confirmed_by").is_none(), "{record}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_whose_answer_and_read_back_are_lost_is_unknown() {
    let gw = Gateway::start(&[("GRAPH_MAX_RETRIES", "0")]).await;
    gw.faults(json!([{"body": "DropAfterApply"}, {"status": 503}]))
        .await;
    let mut client = gw.client().await;
    let s = client
        .update_security_configuration_task(set_insights("unknown", "outcome-unknown"))
        .await
        .expect_err("neither answer came");
    assert_eq!(s.code(), Code::Unavailable, "{s:?}");
    let info = error_info(&s);
    assert_eq!(info.reason, "UPDATE_OUTCOME_UNKNOWN");
    assert_eq!(info.metadata["applied"], "unknown");
    assert_eq!(info.metadata["write-reason"], "GRAPH_CONNECTION_LOST");
    assert_eq!(info.metadata["read-status"], "UNAVAILABLE");
    assert_eq!(info.metadata["read-with"], "GetSecurityConfigurationTask");
    let record = gw.audit_of("outcome-unknown").await;
    assert_eq!(record["outcome"], "unknown", "{record}");
    assert_eq!(record["code"], "UNAVAILABLE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_still_running_when_the_drain_ends_leaves_an_unknown_cancelled_record() {
    let gw = Gateway::start(&[("GATEWAY_DRAIN_TIMEOUT", "300ms")]).await;
    gw.faults(json!([{"body": "Unchanged", "delay_ms": 30000}]))
        .await;
    let mut client = gw.client().await;
    let call = tokio::spawn(async move {
        client
            .update_security_configuration_task(set_insights("drained", "abandoned-at-drain"))
            .await
    });
    gw.until_received(1).await;
    gw.process.terminate();
    let record = gw.audit_of("abandoned-at-drain").await;
    assert_eq!(record["outcome"], "unknown", "{record}");
    assert_eq!(record["code"], "CANCELLED", "{record}");
    let _ = call.await;
}

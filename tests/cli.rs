//! The binary as a user runs it.

mod common;

use common::process::{serve_emulator, Running, BIN};
use std::process::Command;
use std::time::Duration;

#[test]
fn serve_without_credentials_exits_naming_what_is_missing() {
    let out = Command::new(BIN)
        .args([
            "serve",
            "--grpc-addr",
            "127.0.0.1:0",
            "--admin-addr",
            "127.0.0.1:0",
        ])
        .env_remove("AZURE_TENANT_ID")
        .env_remove("AZURE_CLIENT_ID")
        .env_remove("AZURE_CLIENT_SECRET")
        .env_remove("AZURE_CLIENT_SECRET_FILE")
        .env_remove("AZURE_CLIENT_CERTIFICATE_PATH")
        .env_remove("AZURE_FEDERATED_TOKEN_FILE")
        .env_remove("GRAPH_CLOUD")
        .env_remove("GRAPH_BASE_URL")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for name in [
        "AZURE_TENANT_ID",
        "AZURE_CLIENT_ID",
        "AZURE_CLIENT_SECRET",
        "AZURE_CLIENT_SECRET_FILE",
        "AZURE_CLIENT_CERTIFICATE_PATH",
        "AZURE_FEDERATED_TOKEN_FILE",
        "--emulator",
        "GATEWAY_PLAINTEXT=true",
        "GATEWAY_ALLOW_UNAUTHENTICATED=true",
    ] {
        assert!(stderr.contains(name), "{name} not named in: {stderr}");
    }
}

#[test]
fn configuration_errors_never_print_the_secret() {
    let out = Command::new(BIN)
        .args(["serve", "--graph-base-url", "http://graph.example.com/beta"])
        .env("AZURE_TENANT_ID", "t")
        .env("AZURE_CLIENT_ID", "c")
        .env("AZURE_CLIENT_SECRET", "do-not-print-me")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(all.contains("GRAPH_BASE_URL"), "{all}");
    assert!(!all.contains("do-not-print-me"), "{all}");
}

#[test]
fn two_credentials_are_refused_naming_both() {
    let token_file = std::env::temp_dir().join(format!("gw-cli-{}", std::process::id()));
    std::fs::write(&token_file, "federated-token-text").expect("write");
    let out = Command::new(BIN)
        .args(["serve", "--cloud", "usgov"])
        .env("AZURE_TENANT_ID", "t")
        .env("AZURE_CLIENT_ID", "c")
        .env("AZURE_CLIENT_SECRET", "do-not-print-me")
        .env("AZURE_FEDERATED_TOKEN_FILE", &token_file)
        .env_remove("AZURE_CLIENT_SECRET_FILE")
        .env_remove("AZURE_CLIENT_CERTIFICATE_PATH")
        .env_remove("AZURE_AUTHORITY_HOST")
        .env_remove("GRAPH_BASE_URL")
        .output()
        .expect("runs");
    let _ = std::fs::remove_file(&token_file);
    assert_eq!(out.status.code(), Some(2));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        all.contains(
            "more than one credential is set (AZURE_CLIENT_SECRET, AZURE_FEDERATED_TOKEN_FILE)"
        ),
        "{all}"
    );
    assert!(
        !all.contains("do-not-print-me") && !all.contains("federated-token-text"),
        "{all}"
    );
}

#[test]
fn sigterm_drains_and_exits_zero() {
    let mut gw = Running::spawn(&serve_emulator(&[]));
    // The demo's open door and plaintext port are said out loud, in order.
    gw.wait_for_line("no caller policy", Duration::from_secs(30));
    gw.wait_for_line("gRPC port serves plaintext", Duration::from_secs(30));
    gw.wait_for_line("graph-grpc-gateway serving", Duration::from_secs(30));
    gw.terminate();
    gw.wait_for_line("drained", Duration::from_secs(30));
    let status = gw.child.wait().expect("exits");
    assert_eq!(status.code(), Some(0));
}

/// Starts `emulator` with `flags` and GETs the task collection.
fn emulator_answer(flags: &[&str]) -> (u16, serde_json::Value) {
    emulator_answer_with_env(flags, &[]).0
}

/// Starts `emulator` with `flags` and `env`, GETs the task collection with
/// a bearer, and reads the request log over the control route.
fn emulator_answer_with_env(
    flags: &[&str],
    env: &[(&str, String)],
) -> ((u16, serde_json::Value), serde_json::Value) {
    let mut args = vec!["emulator", "--addr", "127.0.0.1:0"];
    args.extend_from_slice(flags);
    let em = Running::spawn_with_env(&args, env);
    let line = em.wait_for_line("Graph emulator serving", Duration::from_secs(30));
    let base = line
        .split('"')
        .find(|part| part.starts_with("http://127.0.0.1:"))
        .expect("base_url in the log line")
        .to_owned();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(async {
            let client = reqwest::Client::new();
            let resp = client
                .get(format!(
                    "{base}/deviceAppManagement/deviceAppManagementTasks"
                ))
                .header("authorization", "Bearer cli-token-value")
                .send()
                .await
                .expect("answers");
            let status = resp.status().as_u16();
            let answer = (
                status,
                resp.json::<serde_json::Value>().await.expect("json"),
            );
            let control = base.trim_end_matches("/beta");
            let log = client
                .get(format!("{control}/_emulator/requests?log=true"))
                .send()
                .await
                .expect("control route")
                .json::<serde_json::Value>()
                .await
                .expect("json");
            (answer, log)
        })
    })
    .join()
    .expect("thread")
}

#[test]
fn emulator_subcommand_serves_graph_routes() {
    let (status, body) = emulator_answer(&[]);
    assert_eq!(status, 200);
    assert!(
        body["value"].as_array().is_some_and(|v| !v.is_empty()),
        "{body}"
    );
}

#[test]
fn emulator_flags_turn_on_auth_and_chaos() {
    let (status, body) = emulator_answer(&["--require-auth"]);
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");
    let (status, body) = emulator_answer(&["--chaos-percent", "100", "--chaos-seed", "7"]);
    assert!([429, 500, 502, 503, 504].contains(&status), "{status}");
    assert!(body["error"]["code"].is_string(), "{body}");
}

/// Runs the binary with one setting in the environment; its exit code and
/// output. A binary that starts serving instead of refusing is killed after
/// a minute and reported as such.
fn with_setting(command: &[&str], name: &str, value: &str) -> (Option<i32>, String) {
    let child = Command::new(BIN)
        .args(command)
        .env(name, value)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("runs");
    let pid = child.id().to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(out) => out.expect("waits"),
        Err(_) => {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
            panic!("{name}={value}: the binary did not stop at start");
        }
    };
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), all)
}

#[test]
fn settings_out_of_range_stop_the_start_naming_the_setting_and_its_range() {
    const HUGE: &str = "18446744073709551615s";
    let serve = [
        "serve",
        "--emulator",
        "--grpc-addr",
        "127.0.0.1:0",
        "--admin-addr",
        "127.0.0.1:0",
    ];
    for (command, name, value, expected) in [
        (
            &serve[..],
            "GRAPH_TIMEOUT",
            HUGE,
            "GRAPH_TIMEOUT must be 1ms to 1d",
        ),
        (
            &serve,
            "GRAPH_ATTEMPT_TIMEOUT",
            HUGE,
            "GRAPH_ATTEMPT_TIMEOUT must be 1ms to 1d",
        ),
        (
            &serve,
            "GRAPH_RETRY_BASE_DELAY",
            HUGE,
            "GRAPH_RETRY_BASE_DELAY must be 0s to 1d",
        ),
        (
            &serve,
            "GRAPH_TIMEOUT",
            "0s",
            "GRAPH_TIMEOUT must be 1ms to 1d",
        ),
        (
            &serve,
            "GRAPH_MAX_IN_FLIGHT",
            "0",
            "GRAPH_MAX_IN_FLIGHT must be 1 to 1000000",
        ),
        (
            &serve,
            "GATEWAY_WORKER_THREADS",
            "100000",
            "GATEWAY_WORKER_THREADS must be 1 to 1024",
        ),
        (
            &["emulator", "--addr", "127.0.0.1:0"][..],
            "EMULATOR_LATENCY",
            HUGE,
            "EMULATOR_LATENCY must be 0s to 1d",
        ),
    ] {
        let (code, all) = with_setting(command, name, value);
        assert_eq!(code, Some(2), "{name}={value}: {all}");
        assert!(all.contains(expected), "{name}={value}: {all}");
        assert!(!all.contains("panicked"), "{name}={value}: {all}");
    }
}

#[test]
fn emulator_request_log_is_off_unless_asked_for_and_never_keeps_the_token() {
    let (_, off) = emulator_answer_with_env(&[], &[]);
    assert_eq!(off["received"], 1, "{off}");
    assert_eq!(off["requests"].as_array().map(Vec::len), Some(0), "{off}");
    for (flags, env) in [
        (&["--request-log"][..], vec![]),
        (&[][..], vec![("EMULATOR_REQUEST_LOG", "true".to_owned())]),
    ] {
        let (_, on) = emulator_answer_with_env(flags, &env);
        let requests = on["requests"].as_array().expect("requests");
        assert_eq!(requests.len(), 1, "{on}");
        let auth = requests[0]["authorization"]
            .as_str()
            .expect("authorization");
        assert!(auth.starts_with("Bearer <redacted sha256:"), "{auth}");
        assert!(!on.to_string().contains("cli-token-value"), "{on}");
    }
}

//! The README's quickstart, verbatim: its grpcurl and buf commands run with
//! the real tools against the real binary serving `--emulator`.

mod common;

use common::process::Running;
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

const README: &str = include_str!("../README.md");
const TASK_ID: &str = "5d630f12-0f12-5d63-120f-635d120f635d";

/// A README command that calls a gRPC tool, with the output the README
/// shows for it (a ```text block right after its ```sh block), if any.
struct Example {
    command: String,
    shown_output: Option<String>,
}

fn readme_examples() -> Vec<Example> {
    let mut examples: Vec<Example> = Vec::new();
    let mut block: Option<&str> = None;
    let mut text = String::new();
    let mut lines_since_block = 0;
    for line in README.lines() {
        match (block, line.trim_end()) {
            (None, "```sh") => block = Some("sh"),
            (None, "```text") => {
                block = Some("text");
                text.clear();
            }
            (Some(kind), "```") => {
                if kind == "text" && lines_since_block <= 1 {
                    if let Some(last) = examples.last_mut() {
                        last.shown_output = Some(text.clone());
                    }
                }
                block = None;
                lines_since_block = 0;
                continue;
            }
            (Some("sh"), cmd) if cmd.starts_with("grpcurl ") || cmd.starts_with("buf curl ") => {
                examples.push(Example {
                    command: cmd.to_owned(),
                    shown_output: None,
                });
            }
            (Some("text"), l) => {
                text.push_str(l);
                text.push('\n');
            }
            _ => {}
        }
        if block.is_none() {
            lines_since_block += 1;
        }
    }
    examples
}

/// The JSON after `-d '`, if any.
fn payload(cmd: &str) -> Option<Value> {
    let start = cmd.find("-d '")? + 4;
    let end = start + cmd[start..].find('\'')?;
    serde_json::from_str(&cmd[start..end]).ok()
}

fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|i| strings(i, out)),
        Value::Object(map) => map.values().for_each(|i| strings(i, out)),
        _ => {}
    }
}

fn tool_on_path(tool: &str) {
    let found = Command::new(tool).arg("--version").output().is_ok();
    assert!(
        found,
        "{tool} is not on PATH: run the tests with scripts/test.sh, or `source scripts/tools.sh` first"
    );
}

#[test]
fn readme_commands_work_verbatim() {
    tool_on_path("grpcurl");
    tool_on_path("buf");
    let examples = readme_examples();
    assert!(examples.len() >= 8, "README commands not found");
    assert!(examples.iter().any(|e| e.command.starts_with("buf curl")));
    assert!(examples.iter().any(|e| e.shown_output.is_some()));

    let gw = Running::spawn(&[
        "serve",
        "--emulator",
        "--grpc-addr",
        "127.0.0.1:50051",
        "--admin-addr",
        "127.0.0.1:0",
    ]);
    gw.wait_for_line("graph-grpc-gateway serving", Duration::from_secs(60));

    for Example {
        command: cmd,
        shown_output,
    } in &examples
    {
        let out = Command::new("bash")
            .args(["-c", cmd])
            .output()
            .expect("bash runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if let Some(shown) = shown_output {
            let printed = format!("{stdout}{stderr}");
            assert_eq!(
                !out.status.success(),
                shown.starts_with("ERROR:"),
                "`{cmd}`:\n{printed}"
            );
            for line in shown.lines() {
                assert!(
                    printed.contains(line),
                    "`{cmd}`: README shows {line:?}, the tool printed:\n{printed}"
                );
            }
            continue;
        }
        assert!(out.status.success(), "`{cmd}` failed:\n{stdout}\n{stderr}");
        assert!(!stdout.trim().is_empty(), "`{cmd}` printed nothing");

        if cmd.ends_with(" list") {
            for service in [
                "graphgateway.v1.SecurityConfigurationTaskService",
                "grpc.health.v1.Health",
                "grpc.reflection.v1alpha.ServerReflection",
            ] {
                assert!(stdout.contains(service), "{service} not listed:\n{stdout}");
            }
            continue;
        }
        let answer: Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("`{cmd}`: not JSON ({e}):\n{stdout}"));
        if cmd.contains("/UpdateSecurityConfigurationTask") {
            // Every value the command sets comes back in Graph's answer.
            let mut sent = Vec::new();
            strings(
                &payload(cmd).expect("payload")["security_configuration_task"],
                &mut sent,
            );
            strings(
                &payload(cmd).expect("payload")["securityConfigurationTask"],
                &mut sent,
            );
            let got = answer.to_string();
            for value in sent {
                assert!(
                    got.contains(&value),
                    "`{cmd}`: {value} not in the answer {got}"
                );
            }
            if cmd.contains("\"description\"]") {
                assert!(
                    answer.get("description").is_none(),
                    "description not cleared: {answer}"
                );
            }
        } else if cmd.contains("/CreateSecurityConfigurationTask") {
            // A new task: Graph's id and time differ each run, so the test
            // checks what is stable: an id was given, and what was sent came back.
            let sent = &payload(cmd).expect("payload")["security_configuration_task"];
            assert!(
                answer["id"]
                    .as_str()
                    .is_some_and(|id| !id.is_empty() && id != TASK_ID),
                "`{cmd}`: no new id in {answer}"
            );
            assert!(answer.get("createdDateTime").is_some(), "{answer}");
            assert_eq!(answer["displayName"], sent["display_name"], "{answer}");
            assert_eq!(answer["status"], sent["status"], "{answer}");
        } else if cmd.contains("/SetSecurityConfigurationTaskStatus") {
            let sent = payload(cmd).expect("payload");
            assert_eq!(answer["id"], sent["id"], "{answer}");
            assert_eq!(answer["status"], sent["status"], "{answer}");
        } else if cmd.contains("/GetSecurityConfigurationTask") {
            assert_eq!(answer["id"], TASK_ID);
        } else if cmd.contains("/ListSecurityConfigurationTasks") {
            let tasks = answer["securityConfigurationTasks"]
                .as_array()
                .expect("tasks");
            assert!(tasks.iter().any(|t| t["id"] == TASK_ID), "{answer}");
        } else if cmd.contains("grpc.health.v1.Health/Check") {
            assert_eq!(answer["status"], "SERVING");
        }
    }
}

/// The README's fenced blocks of `kind`.
fn blocks(kind: &str) -> Vec<String> {
    let open = format!("```{kind}");
    let mut found = Vec::new();
    let mut current: Option<String> = None;
    for line in README.lines() {
        match (&mut current, line.trim_end()) {
            (None, l) if l == open => current = Some(String::new()),
            (Some(_), "```") => found.extend(current.take()),
            (Some(text), l) => {
                text.push_str(l);
                text.push('\n');
            }
            (None, _) => {}
        }
    }
    found
}

#[test]
fn the_readme_policy_and_audit_examples_are_what_the_gateway_reads_and_writes() {
    let policies = blocks("toml");
    assert!(!policies.is_empty(), "no policy example in the README");
    for text in &policies {
        graph_grpc_gateway::security::policy::Policy::from_toml(text)
            .unwrap_or_else(|e| panic!("README policy example refused: {e}\n{text}"));
    }
    let audit = blocks("json");
    let record: Value = serde_json::from_str(audit.first().expect("audit example")).expect("JSON");
    for field in [
        "target",
        "rpc",
        "caller",
        "via",
        "peer",
        "task_id",
        "fields",
        "outcome",
        "resent",
        "code",
        "graph_request_id",
        "client_request_id",
    ] {
        assert!(
            record.get(field).is_some(),
            "{field} missing from the README's audit record"
        );
    }
    assert_eq!(record["target"], "audit");
}

/// The cells of a Markdown table row.
fn cells(line: &str) -> Vec<&str> {
    line.trim()
        .trim_matches('|')
        .split(" | ")
        .map(str::trim)
        .collect()
}

/// The rows of the README's table of ranges, by environment name.
fn range_rows() -> std::collections::BTreeMap<String, (String, String)> {
    let header = "| environment | default | range |";
    let mut lines = README.lines().skip_while(|l| *l != header);
    assert_eq!(lines.next(), Some(header), "README has no table of ranges");
    lines
        .skip(1)
        .take_while(|l| l.starts_with('|'))
        .map(|l| match cells(l)[..] {
            [env, default, range] => (
                env.trim_matches('`').to_owned(),
                (default.to_owned(), range.to_owned()),
            ),
            _ => panic!("not a row of three cells: {l}"),
        })
        .collect()
}

#[test]
fn the_readme_lists_every_setting_with_its_default_and_range_and_no_other() {
    use graph_grpc_gateway::settings::ALL;
    let rows = range_rows();
    let table: std::collections::BTreeSet<&str> = ALL.iter().map(|s| s.env()).collect();
    let listed: std::collections::BTreeSet<&str> = rows.keys().map(String::as_str).collect();
    assert_eq!(
        listed, table,
        "README's table of ranges and src/settings.rs list different settings"
    );
    for s in ALL {
        let (default, range) = &rows[s.env()];
        let (min, max) = s
            .range_text()
            .split_once(" to ")
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .expect("MIN to MAX");
        assert_eq!(range, &format!("`{min}` to `{max}`"), "{}: range", s.env());
        match s.default() {
            Some(d) => assert_eq!(default, &format!("`{d}`"), "{}: default", s.env()),
            None => assert!(!default.starts_with('`'), "{}: has no default", s.env()),
        }
        // The flags table says the same default.
        for line in README.lines().filter(|l| l.starts_with("| `--")) {
            let row = cells(line);
            if row.len() == 4 && row[1] == format!("`{}`", s.env()) && s.default().is_some() {
                assert_eq!(row[2], default, "{}: the flags table's default", s.env());
            }
        }
    }
}

//! The `batch` scenario: what Graph JSON batching saves a caller with many
//! updates to make. The emulator adds `--latency` to every Graph answer
//! (each `$batch` item too, the items of a batch in parallel), standing in
//! for the round trip to Graph, and the gateway runs with Intune's budget
//! off (`GRAPH_BUDGET=off`), so nothing but Graph's answers paces the
//! writes. The same `--updates` updates are made twice, each phase with
//! its own emulator, seeded tasks and gateway:
//! - **batch**: one `BatchUpdateSecurityConfigurationTasks` call carrying
//!   them all (the gateway sends them as `$batch` envelopes of 20);
//! - **singles**: one `UpdateSecurityConfigurationTask` call after another,
//!   each sent when the one before was answered.
//!
//! Before the clock starts each gateway answers one Get (its token, a
//! connection to Graph), and the emulator's request log (`--request-log`)
//! is read; after the phase it is read again, and the requests the phase
//! made are counted by kind: requests alone, envelopes and the items they
//! carried ([`super::batch_report::Traffic`]). Every answer is checked: the
//! call OK, no `failed_requests`, every task answered, in order, holding
//! the name that was sent. The report ([`super::batch_report`]) gives each
//! phase's wall time, the HTTP requests Graph received, the ratio of the
//! two phases and the targets.

use super::batch_report::{BatchReport, Logged, Mode, PhaseResult, Tally, Traffic};
use super::{gateway_env, start_emulator, start_gateway, token, Workload, TENANT};
use crate::proto::v1::security_configuration_task_service_client::SecurityConfigurationTaskServiceClient;
use crate::proto::v1::{
    BatchUpdateSecurityConfigurationTasksRequest, GetSecurityConfigurationTaskRequest,
    SecurityConfigurationTask, UpdateSecurityConfigurationTaskRequest,
};
use anyhow::{bail, Context};
use std::path::Path;
use std::time::{Duration, Instant};
use tonic::transport::Channel;
use tonic_types::StatusExt;

/// Most updates one batch call carries.
const MAX_UPDATES: usize = 1000;

/// `graph-grpc-gateway-load batch`.
#[derive(Debug, Clone, clap::Args)]
pub struct BatchArgs {
    /// Updates made in each phase, each to a task of its own (1 to 1,000:
    /// what one batch call carries).
    #[arg(long, default_value_t = 200)]
    pub updates: usize,
    /// Latency the emulator adds to every Graph answer (its `--latency`).
    #[arg(long, default_value = "50ms", value_parser = humantime::parse_duration)]
    pub latency: Duration,
    /// Each call's deadline (`grpc-timeout`).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub deadline: Duration,
    /// Exit non-zero when a target is missed, not only when an update failed.
    #[arg(long)]
    pub enforce_targets: bool,
    /// Exit 0 even when updates failed.
    #[arg(long)]
    pub allow_errors: bool,
}

/// Runs both phases and prints the report.
pub async fn run(bin: &Path, args: &BatchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=MAX_UPDATES).contains(&args.updates),
        "--updates must be 1 to {MAX_UPDATES}"
    );
    anyhow::ensure!(!args.deadline.is_zero(), "--deadline must be positive");
    let mut report = BatchReport::new(args.updates, args.latency);
    for mode in [Mode::Batch, Mode::Singles] {
        eprintln!("batch: phase {:?}", mode.name(args.updates));
        let result = phase(bin, args, mode)
            .await
            .with_context(|| format!("phase {:?}", mode.name(args.updates)))?;
        report.phases.push(result);
    }
    print!("{}", report.render());
    let failed = report.failed();
    if failed > 0 && !args.allow_errors {
        bail!("{failed} updates failed");
    }
    let missed = report.missed_targets();
    if args.enforce_targets && !missed.is_empty() {
        bail!("targets missed: {}", missed.join("; "));
    }
    Ok(())
}

async fn phase(bin: &Path, args: &BatchArgs, mode: Mode) -> anyhow::Result<PhaseResult> {
    let latency = humantime::format_duration(args.latency).to_string();
    let (emulator, graph_base, authority) =
        start_emulator(bin, &["--latency", &latency, "--request-log"])?;
    let http = crate::graph::http_client(false)?;
    let graph_token = token(&http, &authority, TENANT).await?;
    let tasks = super::seed(&http, &graph_base, &graph_token, args.updates).await?;
    let work = Workload::new(&tasks, &graph_base, graph_token)?;
    let updates: Vec<UpdateSecurityConfigurationTaskRequest> = work
        .updates
        .iter()
        .map(|[first, _]| first.clone())
        .collect();

    let mut env = gateway_env(&graph_base, &authority);
    env.extend([
        // Loopback measurement: no caller policy, said out loud.
        ("GATEWAY_ALLOW_UNAUTHENTICATED", "true".to_owned()),
        ("GATEWAY_PLAINTEXT", "true".to_owned()),
        ("GRAPH_BUDGET", "off".to_owned()),
    ]);
    let (gateway, addr) = start_gateway(bin, "warn,graph_grpc_gateway::server=info", &env)?;
    let channel = Channel::from_shared(format!("http://{addr}"))?
        .connect()
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    let mut client = SecurityConfigurationTaskServiceClient::new(channel);
    // The gateway's token and first connection to Graph, before the clock.
    client
        .get_security_configuration_task(GetSecurityConfigurationTaskRequest {
            id: tasks[0].clone(),
        })
        .await
        .context("the Get before the phase")?;

    let before = journal(&http, &authority).await?;
    let cpu_before = gateway.usage()?.cpu;
    let started = Instant::now();
    let tally = match mode {
        Mode::Batch => batch(&mut client, &updates, args.deadline).await,
        Mode::Singles => singles(&mut client, &updates, args.deadline).await,
    };
    let elapsed = started.elapsed();
    let gateway_cpu = gateway.usage()?.cpu.saturating_sub(cpu_before);
    let after = journal(&http, &authority).await?;
    let traffic = phase_traffic(&before, &after)?;
    drop((gateway, emulator));
    Ok(PhaseResult {
        mode,
        updates: args.updates,
        tally,
        elapsed,
        traffic,
        gateway_cpu,
    })
}

/// All the updates in one batch call; each item checked.
async fn batch(
    client: &mut SecurityConfigurationTaskServiceClient<Channel>,
    updates: &[UpdateSecurityConfigurationTaskRequest],
    deadline: Duration,
) -> Tally {
    let mut tally = Tally::default();
    let mut request = tonic::Request::new(BatchUpdateSecurityConfigurationTasksRequest {
        requests: updates.to_vec(),
        ..Default::default()
    });
    request.set_timeout(deadline);
    tally.calls = 1;
    let answer = match client
        .batch_update_security_configuration_tasks(request)
        .await
    {
        Ok(answer) => answer.into_inner(),
        Err(status) => {
            tally.failed_all(updates.len(), status_key(&status), status.message());
            return tally;
        }
    };
    let tasks = &answer.security_configuration_tasks;
    if tasks.len() != updates.len() {
        tally.note(format!(
            "{} tasks answered for {} updates",
            tasks.len(),
            updates.len()
        ));
    }
    for (i, sent) in updates.iter().enumerate() {
        let index = i32::try_from(i).unwrap_or(i32::MAX);
        if let Some(status) = answer.failed_requests.get(&index) {
            let code = tonic::Code::from_i32(status.code);
            tally.failed(
                crate::metrics::code_name(code).to_owned(),
                &format!("requests[{i}]: {}", status.message),
            );
            continue;
        }
        match tasks.get(i) {
            Some(got) => tally.judge(sent, got),
            None => tally.failed("not answered".to_owned(), &format!("requests[{i}]")),
        }
    }
    tally
}

/// The updates one call at a time, each sent when the one before was
/// answered; each answer checked.
async fn singles(
    client: &mut SecurityConfigurationTaskServiceClient<Channel>,
    updates: &[UpdateSecurityConfigurationTaskRequest],
    deadline: Duration,
) -> Tally {
    let mut tally = Tally::default();
    for sent in updates {
        let mut request = tonic::Request::new(sent.clone());
        request.set_timeout(deadline);
        tally.calls += 1;
        match client.update_security_configuration_task(request).await {
            Ok(answer) => tally.judge(sent, &answer.into_inner()),
            Err(status) => tally.failed(status_key(&status), status.message()),
        }
    }
    tally
}

impl Tally {
    /// An answered task: OK when it is the task the update named, holding
    /// the name it was given.
    fn judge(
        &mut self,
        sent: &UpdateSecurityConfigurationTaskRequest,
        got: &SecurityConfigurationTask,
    ) {
        let asked = sent.security_configuration_task.as_ref();
        let id = asked.map_or("", |t| t.id.as_str());
        let name = asked.and_then(|t| t.display_name.as_deref());
        if got.id != id {
            self.failed(
                "another task".to_owned(),
                &format!("asked {id}, answered {:?}", got.id),
            );
        } else if got.display_name.as_deref() != name {
            self.failed(
                "change not held".to_owned(),
                &format!("{id}: displayName {:?}", got.display_name),
            );
        } else {
            self.ok += 1;
        }
    }
}

/// A failed call's code, with its ErrorInfo reason when it has one.
fn status_key(status: &tonic::Status) -> String {
    let code = crate::metrics::code_name(status.code());
    match status.get_details_error_info() {
        Some(info) if !info.reason.is_empty() => format!("{code} {}", info.reason),
        _ => code.to_owned(),
    }
}

/// The emulator's request count and log.
#[derive(serde::Deserialize)]
struct Journal {
    received: u64,
    requests: Vec<Logged>,
}

async fn journal(http: &reqwest::Client, authority: &str) -> anyhow::Result<Journal> {
    http.get(format!("{authority}/_emulator/requests?log=true"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await
        .context("the emulator's request log")
}

/// The requests logged between `before` and `after`, counted; an error if
/// the log dropped any (it holds 8 MiB, far more than a phase sends).
fn phase_traffic(before: &Journal, after: &Journal) -> anyhow::Result<Traffic> {
    let received = after.received.saturating_sub(before.received);
    let logged = after.requests.get(before.requests.len()..).unwrap_or(&[]);
    let dropped = after.requests.len() < before.requests.len()
        || u64::try_from(logged.len()).unwrap_or(u64::MAX) != received;
    if dropped {
        bail!(
            "the emulator received {received} Graph requests in the phase but its log holds {}",
            logged.len()
        );
    }
    Ok(Traffic::of(logged))
}

//! Intune's budget across replicas, as deployed: gateway processes (the real
//! binary, `serve`) sharing one budget in a real redis-server
//! (`GRAPH_BUDGET_REDIS_URL`, `GATEWAY_REPLICAS`), in front of one emulator
//! process that enforces Intune's limits at a tenth of the window (100
//! writes per 2 s per app per tenant). Writers keep every replica busy with
//! Updates over loopback, each with a deadline (400 ms or 2.5 s), for about
//! three windows.
//!
//! What holds: every call is either applied or refused unsent with
//! `RESOURCE_EXHAUSTED` `GRAPH_BUDGET_EXHAUSTED` before its deadline; no
//! window the emulator saw held more than 100 writes, so it answered no
//! 429; and each replica says it shares the budget. With Redis killed in
//! the middle, the same holds while each replica paces on its local share
//! (visible in its metrics and readiness), and sharing resumes once Redis
//! is back on the same port.

mod common;

use common::metrics::Scrape;
use common::process::{loopback_gateway_env, spawn_gateway, wait_serving, Running};
use common::redis::RedisServer;
use graph_grpc_gateway::budget::redis::BudgetKey;
use graph_grpc_gateway::emulator::{IntuneReport, IntuneUsage};
use graph_grpc_gateway::proto::v1::security_configuration_task_service_client::SecurityConfigurationTaskServiceClient;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tonic::transport::Channel;
use tonic::Code;
use tonic_types::StatusExt;

/// Intune's window divided by ten, in the emulator and in the gateways'
/// budgets alike.
const SCALE: &str = "10";
const WINDOW: Duration = Duration::from_secs(2);
/// Intune's per-app writes per window.
const WRITES: u64 = 100;
const WRITE_BUDGET: &str = "100/2s";
const REQUEST_BUDGET: &str = "1000/2s";
/// The tenant and app of the gateways' Graph token: the emulator meters
/// them, and the shared budget is keyed by them.
const TENANT: &str = "contoso-budget";
const APP: &str = "budget-replicas";
const WRITERS: usize = 24;
/// The writers' deadlines, in turn: one too short to wait long for a
/// token, one that waits most of a window.
const DEADLINES: [Duration; 2] = [Duration::from_millis(400), Duration::from_millis(2500)];
/// How long the writers run in the tests without a fault: three windows.
const RUN: Duration = Duration::from_secs(3 * WINDOW.as_secs());
/// Past its deadline plus this, a call that has not been answered counts as
/// unanswered (the gateway answers before the deadline).
const GRACE: Duration = Duration::from_secs(5);
/// How long a process may take to start, and a condition to come true.
const PATIENCE: Duration = Duration::from_secs(60);
const BUDGET_EXHAUSTED: &str = "GRAPH_BUDGET_EXHAUSTED";
const SHARED: &str = "graph_gateway_budget_shared";
const FALLBACKS: &str = "graph_gateway_budget_fallbacks_total";

/// One test at a time: each runs five or six processes, and together on a
/// small machine they would measure the machine rather than the budget.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A field of a JSON log line.
fn field(line: &str, name: &str) -> String {
    let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    v[name]
        .as_str()
        .unwrap_or_else(|| panic!("no {name} in {line}"))
        .to_owned()
}

/// The emulator as its own process, enforcing Intune's limits.
struct Emulator {
    _process: Running,
    /// `http://127.0.0.1:<port>`: the token authority and control routes.
    base: String,
    http: reqwest::Client,
}

impl Emulator {
    fn start() -> Self {
        let process = Running::spawn(&[
            "emulator",
            "--addr",
            "127.0.0.1:0",
            "--intune-limits",
            "--intune-limits-scale",
            SCALE,
            "--log-format",
            "json",
            "--log",
            "warn,graph_grpc_gateway=info",
        ]);
        let line = process.wait_for_line("Graph emulator serving", PATIENCE);
        let graph = field(&line, "base_url");
        Self {
            _process: process,
            base: graph.trim_end_matches("/beta").to_owned(),
            http: reqwest::Client::new(),
        }
    }

    /// Creates `n` tasks through Graph's route, without a token: they are
    /// metered for the anonymous tenant, so the budget under test starts
    /// unspent.
    async fn seed(&self, n: usize) -> Vec<String> {
        let mut ids = Vec::with_capacity(n);
        for k in 0..n {
            let created: Value = self
                .http
                .post(format!(
                    "{}/beta/deviceAppManagement/deviceAppManagementTasks",
                    self.base
                ))
                .json(&serde_json::json!({
                    "@odata.type": graph_grpc_gateway::translate::ODATA_TYPE,
                    "displayName": format!("replica budget task {k}"),
                    "dueDateTime": "2026-12-31T00:00:00Z",
                    "category": "advancedThreatProtection",
                    "status": "pending",
                }))
                .send()
                .await
                .expect("create")
                .error_for_status()
                .expect("created")
                .json()
                .await
                .expect("json");
            ids.push(created["id"].as_str().expect("id").to_owned());
        }
        ids
    }

    /// What the Intune limits counted for the gateways' app.
    async fn usage(&self) -> IntuneUsage {
        let report: IntuneReport = self
            .http
            .get(format!("{}/_emulator/intune-limits", self.base))
            .send()
            .await
            .expect("intune-limits")
            .json()
            .await
            .expect("the emulator's Intune report");
        report
            .apps
            .into_iter()
            .find(|u| u.tenant == TENANT && u.app.as_deref() == Some(APP))
            .unwrap_or_default()
    }

    /// Waits until the emulator has admitted `n` of the app's writes.
    async fn until_admitted(&self, n: u64) -> IntuneUsage {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let usage = self.usage().await;
            if usage.admitted_writes >= n {
                return usage;
            }
            assert!(
                Instant::now() < deadline,
                "the emulator admitted only {} writes, waiting for {n}",
                usage.admitted_writes
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// One gateway replica as its own process.
struct Replica {
    _process: Running,
    grpc: SocketAddr,
    admin: String,
}

impl Replica {
    async fn metrics(&self) -> Scrape {
        Scrape::get(&format!("{}/metrics", self.admin)).await
    }

    /// `/readyz`: its status and text.
    async fn readiness(&self) -> (u16, String) {
        let resp = reqwest::get(format!("{}/readyz", self.admin))
            .await
            .expect("readyz");
        let status = resp.status().as_u16();
        (status, resp.text().await.expect("readyz text"))
    }
}

/// Starts `n` replicas sharing the budget in `redis`, against `emulator`,
/// all spawned before any is waited for.
fn start_replicas(n: usize, emulator: &Emulator, redis: &RedisServer) -> Vec<Replica> {
    let mut env = loopback_gateway_env(&emulator.base, TENANT, APP, "replica-secret");
    env.extend([
        ("GRAPH_BUDGET", "on".to_owned()),
        ("GRAPH_WRITE_BUDGET", WRITE_BUDGET.to_owned()),
        ("GRAPH_REQUEST_BUDGET", REQUEST_BUDGET.to_owned()),
        ("GRAPH_BUDGET_REDIS_URL", redis.url()),
        ("GATEWAY_REPLICAS", n.to_string()),
    ]);
    let processes: Vec<Running> = (0..n)
        .map(|_| {
            spawn_gateway(
                &[
                    "--log",
                    "warn,graph_grpc_gateway::server=info,graph_grpc_gateway::budget=info",
                ],
                &env,
            )
        })
        .collect();
    processes
        .into_iter()
        .map(|process| {
            let (grpc, admin) = wait_serving(&process, PATIENCE);
            Replica {
                grpc: grpc.parse().expect("grpc_addr"),
                admin,
                _process: process,
            }
        })
        .collect()
}

/// The processes of one test: killed when dropped.
struct Stage {
    emulator: Emulator,
    redis: RedisServer,
    replicas: Vec<Replica>,
    tasks: Vec<String>,
}

impl Stage {
    async fn start(replicas: usize) -> Self {
        let (emulator, redis, replicas) = tokio::task::block_in_place(|| {
            let emulator = Emulator::start();
            let redis = RedisServer::start();
            let replicas = start_replicas(replicas, &emulator, &redis);
            (emulator, redis, replicas)
        });
        let tasks = emulator.seed(WRITERS).await;
        Self {
            emulator,
            redis,
            replicas,
            tasks,
        }
    }

    /// Starts the writers, spread over the replicas in turn; they stop
    /// when `stop` turns true.
    async fn writers(&self, stop: watch::Receiver<bool>) -> Writers {
        let started = Instant::now();
        let mut handles = Vec::with_capacity(WRITERS);
        for (i, task) in self.tasks.iter().enumerate() {
            let addr = self.replicas[i % self.replicas.len()].grpc;
            let channel = Channel::from_shared(format!("http://{addr}"))
                .expect("uri")
                .connect()
                .await
                .expect("connects");
            let (task, stop) = (task.clone(), stop.clone());
            handles.push(tokio::spawn(writer(i, channel, task, started, stop)));
        }
        Writers { started, handles }
    }

    /// Each replica's view of the budget: shared gauge, fallbacks, 429s.
    async fn scrapes(&self) -> Vec<Scrape> {
        let mut all = Vec::new();
        for r in &self.replicas {
            all.push(r.metrics().await);
        }
        all
    }

    /// Waits until every replica's shared gauge reads `want`.
    async fn until_shared(&self, want: f64) {
        let deadline = Instant::now() + PATIENCE;
        for (i, r) in self.replicas.iter().enumerate() {
            loop {
                let m = r.metrics().await;
                if m.value(SHARED, &[]) == Some(want) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "replica {i}: {SHARED} never read {want}:\n{m}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    /// The write tokens in the shared log now, by the replica that took
    /// them (a token's member is `<replica's budget id>:<n>`).
    async fn shared_write_tokens(&self) -> BTreeMap<String, usize> {
        let [_, writes] = BudgetKey {
            tenant: TENANT.into(),
            app: APP.into(),
        }
        .redis_keys();
        let mut conn = redis::Client::open(self.redis.url())
            .expect("client")
            .get_multiplexed_async_connection()
            .await
            .expect("a connection to the shared store");
        let members: Vec<String> = redis::cmd("ZRANGE")
            .arg(&writes)
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await
            .expect("ZRANGE");
        let mut by_replica = BTreeMap::new();
        for m in members {
            let replica = m.split(':').next().unwrap_or_default().to_owned();
            *by_replica.entry(replica).or_default() += 1;
        }
        by_replica
    }
}

/// The running writers, and when they started (the zero of every "sent
/// at").
struct Writers {
    started: Instant,
    handles: Vec<tokio::task::JoinHandle<Tally>>,
}

/// What one writer saw.
#[derive(Debug, Default)]
struct Tally {
    applied: u64,
    refused: u64,
    /// Every other outcome: when it was sent (since the writers started),
    /// its code and reason, and how long it took against its deadline.
    failures: Vec<String>,
}

/// Everyone's tallies together.
#[derive(Debug, Default)]
struct Outcomes {
    applied: u64,
    refused: u64,
    failures: Vec<String>,
}

impl Outcomes {
    async fn join(writers: Writers) -> Self {
        let mut all = Self::default();
        for h in writers.handles {
            let t = h.await.expect("writer");
            all.applied += t.applied;
            all.refused += t.refused;
            all.failures.extend(t.failures);
        }
        all
    }

    /// Nothing but applied writes and budget refusals before the deadline;
    /// and the budget bound (some were refused), so the run proves it.
    /// `context` ends the message of a failure.
    fn assert_only_applied_or_refused(&self, context: &str) {
        let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
        for f in &self.failures {
            let kind = f.split(" (").next().unwrap_or(f);
            *kinds.entry(kind).or_default() += 1;
        }
        assert!(
            self.failures.is_empty(),
            "{} calls neither applied nor refused by the budget before their deadline \
             ({} applied, {} refused); by outcome: {kinds:?}\n{}\n{context}",
            self.failures.len(),
            self.applied,
            self.refused,
            self.failures.join("\n")
        );
        assert!(
            self.applied > 0 && self.refused > 0,
            "the writers did not press on the budget: {self:?}"
        );
    }
}

/// Updates `task` in a closed loop until `stop` turns true. A refused
/// call is sent again after the `RetryInfo` delay, as a well-behaved client
/// does.
async fn writer(
    i: usize,
    channel: Channel,
    task: String,
    started: Instant,
    mut stop: watch::Receiver<bool>,
) -> Tally {
    let mut client = SecurityConfigurationTaskServiceClient::new(channel);
    let mut tally = Tally::default();
    let mut n = 0usize;
    while !*stop.borrow() {
        let deadline = DEADLINES[(i + n) % DEADLINES.len()];
        let mut request =
            tonic::Request::new(common::rename(&task, &format!("writer {i} call {n}"), ""));
        request.set_timeout(deadline);
        n += 1;
        let sent = Instant::now();
        let answer = tokio::time::timeout(
            deadline + GRACE,
            client.update_security_configuration_task(request),
        )
        .await;
        let took = sent.elapsed();
        let at = sent.duration_since(started);
        let status = match answer {
            Ok(Ok(_)) => {
                tally.applied += 1;
                continue;
            }
            Ok(Err(status)) => status,
            Err(_) => {
                tally
                    .failures
                    .push(format!("no answer (sent at {at:?}, deadline {deadline:?})"));
                continue;
            }
        };
        let reason = status
            .get_details_error_info()
            .map(|info| info.reason)
            .unwrap_or_default();
        // The gateway enforces the call's deadline itself (`grpc-timeout`):
        // a refusal decided after it would be a `CANCELLED` or
        // `DEADLINE_EXCEEDED` instead. So a budget refusal was decided in
        // time, however late a busy machine delivers it here.
        if status.code() == Code::ResourceExhausted && reason == BUDGET_EXHAUSTED {
            tally.refused += 1;
            let delay = status
                .get_details_retry_info()
                .and_then(|r| r.retry_delay)
                .unwrap_or_default();
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                _ = stop.changed() => {}
            }
        } else {
            tally.failures.push(format!(
                "{:?} {reason} (sent at {at:?}, took {took:?} of {deadline:?}: {})",
                status.code(),
                status.message()
            ));
        }
    }
    tally
}

/// The emulator's count for the whole run: no window held more than the
/// budget's writes, so nothing was refused.
fn assert_within_intune_limits(usage: &IntuneUsage) {
    assert!(
        usage.peak_offered_writes <= WRITES,
        "a window at the emulator held {} writes (limit {WRITES}): {usage:?}",
        usage.peak_offered_writes
    );
    assert_eq!(
        usage.refused_requests, 0,
        "the emulator answered 429s: {usage:?}"
    );
    assert!(usage.admitted_writes > 0, "{usage:?}");
}

/// Every replica shares the budget and never fell back nor met a 429.
fn assert_shared_throughout(scrapes: &[Scrape]) {
    for (i, m) in scrapes.iter().enumerate() {
        assert_eq!(m.value(SHARED, &[]), Some(1.0), "replica {i}:\n{m}");
        assert_eq!(m.sum(FALLBACKS), 0.0, "replica {i}:\n{m}");
        assert_eq!(
            m.sum("graph_gateway_budget_throttled_total"),
            0.0,
            "replica {i}:\n{m}"
        );
    }
}

/// `n` replicas writing through one shared budget for three windows.
async fn replicas_share_one_budget(n: usize) {
    let _alone = ONE_AT_A_TIME.lock().await;
    let stage = Stage::start(n).await;
    let (stop_tx, stop) = watch::channel(false);
    let writers = stage.writers(stop).await;
    // The length of the run, not a wait for anything to happen.
    tokio::time::sleep(RUN).await;
    stop_tx.send(true).expect("writers listen");
    let outcomes = Outcomes::join(writers).await;
    // Read at once: the log keeps only the last window's tokens.
    let tokens = stage.shared_write_tokens().await;
    let usage = stage.emulator.usage().await;
    println!("{n} replicas: {outcomes:?}\nemulator: {usage:?}\nshared log: {tokens:?}");

    outcomes.assert_only_applied_or_refused("");
    assert_within_intune_limits(&usage);
    assert!(
        usage.admitted_writes >= outcomes.applied,
        "every applied Update reached the emulator: {usage:?}"
    );
    assert_shared_throughout(&stage.scrapes().await);
    for (i, r) in stage.replicas.iter().enumerate() {
        let (status, text) = r.readiness().await;
        assert_eq!(status, 200, "replica {i}: {text}");
        assert!(text.contains("graph budget: shared"), "replica {i}: {text}");
    }
    // The tokens of the last window are in one log, taken by every replica.
    assert_eq!(tokens.len(), n, "write tokens by replica: {tokens:?}");
    assert!(
        tokens.values().sum::<usize>() <= usize::try_from(WRITES).expect("small"),
        "{tokens:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateway_processes_keep_inside_one_budget_shared_in_redis() {
    replicas_share_one_budget(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_gateway_processes_keep_inside_one_budget_shared_in_redis() {
    replicas_share_one_budget(3).await;
}

/// What the emulator had counted at each step of a run, for the report of
/// a failure: which step the 429s came in.
#[derive(Default)]
struct Timeline(Vec<(&'static str, Duration, IntuneUsage)>);

impl Timeline {
    fn mark(&mut self, step: &'static str, writers: &Writers, usage: IntuneUsage) {
        self.0.push((step, writers.started.elapsed(), usage));
    }

    /// The 429s the emulator answered between each step and the one before.
    fn throttled_by_step(&self) -> Vec<(&'static str, u64)> {
        let mut before = 0;
        self.0
            .iter()
            .map(|(step, _, usage)| {
                let n = usage.refused_requests - before;
                before = usage.refused_requests;
                (*step, n)
            })
            .collect()
    }
}

impl fmt::Display for Timeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (step, at, u) in &self.0 {
            writeln!(
                f,
                "{at:>8.2?} {step}: {} writes admitted, {} refused with 429, \
                 peak {} writes offered in a window",
                u.admitted_writes, u.refused_writes, u.peak_offered_writes
            )?;
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_killed_the_replicas_pace_on_their_shares_and_share_again_once_it_is_back() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let mut stage = Stage::start(3).await;
    let (stop_tx, stop) = watch::channel(false);
    let writers = stage.writers(stop).await;
    let mut timeline = Timeline::default();

    // One window's worth of writes through the shared budget, then Redis dies.
    let shared = stage.emulator.until_admitted(WRITES).await;
    timeline.mark("shared, Redis killed", &writers, shared.clone());
    stage.redis.kill();
    stage.until_shared(0.0).await;
    timeline.mark(
        "every replica on its local share",
        &writers,
        stage.emulator.usage().await,
    );
    for (i, r) in stage.replicas.iter().enumerate() {
        let m = r.metrics().await;
        assert!(m.sum(FALLBACKS) >= 1.0, "replica {i}:\n{m}");
        let (status, text) = r.readiness().await;
        assert_eq!(status, 200, "replica {i}: readiness never depends on Redis");
        assert!(
            text.contains("graph budget: local share (shared store not answering)"),
            "replica {i}: {text}"
        );
    }
    // A window's worth of writes on the local shares, then Redis is back
    // (empty, on the same port).
    let local = stage
        .emulator
        .until_admitted(shared.admitted_writes + WRITES)
        .await;
    timeline.mark(
        "a window on the local shares, Redis restarted",
        &writers,
        local.clone(),
    );
    tokio::task::block_in_place(|| stage.redis.restart());
    stage.until_shared(1.0).await;
    timeline.mark(
        "every replica sharing again",
        &writers,
        stage.emulator.usage().await,
    );
    let again = stage
        .emulator
        .until_admitted(local.admitted_writes + WRITES)
        .await;
    timeline.mark("a window shared again, writers stopped", &writers, again);
    stop_tx.send(true).expect("writers listen");
    let started = writers.started;
    let outcomes = Outcomes::join(writers).await;
    let usage = stage.emulator.usage().await;
    timeline
        .0
        .push(("the end", started.elapsed(), usage.clone()));
    println!("Redis killed: {outcomes:?}\n{timeline}");

    let throttled = timeline.throttled_by_step();
    assert!(
        throttled.iter().all(|(_, n)| *n == 0),
        "the emulator answered 429s, counted at each step: {throttled:?}\n{timeline}"
    );
    outcomes.assert_only_applied_or_refused(&timeline.to_string());
    assert_within_intune_limits(&usage);
    for (i, r) in stage.replicas.iter().enumerate() {
        let m = r.metrics().await;
        assert_eq!(m.value(SHARED, &[]), Some(1.0), "replica {i}:\n{m}");
        assert!(m.sum(FALLBACKS) >= 1.0, "replica {i}:\n{m}");
        let (_, text) = r.readiness().await;
        assert!(text.contains("graph budget: shared"), "replica {i}: {text}");
    }
    assert!(
        !stage.shared_write_tokens().await.is_empty(),
        "writes go through the shared log again"
    );
}

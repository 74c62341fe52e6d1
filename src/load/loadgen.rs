//! The `loadgen` scenario: the gateway measured with load generators from
//! outside the project, as a second opinion on the tool's own figures.
//!
//! - **direct**: `wrk` (HTTP/1.1) sends the PATCH the gateway would send
//!   for the same Update (the Graph beta route of one seeded
//!   securityConfigurationTask, the JSON body of the gateway's translation,
//!   a bearer token from the emulator's token endpoint, `Content-Type`,
//!   `Accept`, and a fresh `client-request-id` per request) straight to
//!   the emulator, from a Lua script the tool writes. The script's `done()`
//!   prints the counts and latency percentiles as one machine-readable line.
//! - **gateway**: `h2load` sends one pre-encoded unary gRPC
//!   `UpdateSecurityConfigurationTask` message (gRPC framing: a 0 byte, the
//!   big-endian length, the protobuf) over one HTTP/2 connection with
//!   prior knowledge, `-m` streams in flight, to the gateway's plaintext
//!   port; `--log-file` gives each request's duration. A gRPC failure is an
//!   HTTP 200 with `grpc-status` in the trailers, which h2load counts as a
//!   success, so every call is checked at the gateway too: its `/metrics`
//!   count of OK Updates must grow by exactly the requests h2load made, and
//!   the count of non-OK ones not at all.
//!
//! h2load makes a number of requests (`-n`), not a duration: `-D` abandons
//! the calls in flight when the time is up, and an abandoned call can be
//! neither counted nor checked. The count is the rate of the phase's
//! warm-up times `--duration` (or `--calls`). wrk runs for `--duration`
//! (whole seconds: it takes no finer unit).
//!
//! The emulator, the gateway (and, with `--baseline-bin`, a second gateway
//! binary, started the same way against the same emulator) run as separate
//! processes; one path is loaded at a time, and /proc gives each process's
//! CPU time over its phase. Each round runs, per concurrency, direct, then
//! the gateway, then the baseline. The report
//! ([`super::loadgen_report`]) gives the medians over the rounds.

use super::loadgen_report::{DirectRun, GatewayRun, LoadgenReport, Target};
use super::procs::Proc;
use super::{measured_gateway_env, realistic_update, start_emulator, token, TENANT};
use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use prost::Message;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// `graph-grpc-gateway-load loadgen`.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadgenArgs {
    /// Concurrencies to measure, in order: wrk connections for direct,
    /// HTTP/2 streams in flight on the one h2load connection.
    #[arg(long, value_delimiter = ',', default_values_t = [64usize, 1])]
    pub concurrency: Vec<usize>,
    /// How long each measured phase runs (whole seconds: wrk's unit).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Requests h2load makes in each measured gateway phase, instead of
    /// its warm-up's rate times `--duration`.
    #[arg(long)]
    pub calls: Option<std::num::NonZeroU64>,
    /// Calls h2load makes before each measured gateway phase (and whose
    /// rate sets the phase's count).
    #[arg(long, default_value_t = 2000)]
    pub warmup: u64,
    /// How long wrk runs before each measured direct phase (whole seconds;
    /// 0s: no warm-up).
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub direct_warmup: Duration,
    /// Rounds: each measures every concurrency on every path in turn.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub rounds: u32,
    /// Another gateway binary measured the same way after the gateway in
    /// each phase (one built before a change, to quote both from one run).
    #[arg(long)]
    pub baseline_bin: Option<PathBuf>,
    /// The wrk to run.
    #[arg(long, default_value = "wrk")]
    pub wrk: PathBuf,
    /// The h2load to run.
    #[arg(long, default_value = "h2load")]
    pub h2load: PathBuf,
    /// wrk's threads (at most one per connection).
    #[arg(long, default_value_t = 1)]
    pub wrk_threads: usize,
    /// The task every request updates, instead of one the tool seeds. An
    /// id the emulator does not hold makes every request fail: how a run
    /// is shown to fail when calls fail.
    #[arg(long)]
    pub task_id: Option<String>,
}

/// The gRPC route h2load posts to.
const UPDATE_PATH: &str =
    "/graphgateway.v1.SecurityConfigurationTaskService/UpdateSecurityConfigurationTask";
/// The gateway's `rpc` label for it.
const UPDATE_RPC: &str = "UpdateSecurityConfigurationTask";
const CALLS_METRIC: &str = "graph_gateway_grpc_calls_total";
const GRAPH_REQUESTS_METRIC: &str = "graph_gateway_graph_requests_total";
/// How long a gateway may take to exit on SIGTERM at the end.
const STOP_LIMIT: Duration = Duration::from_secs(30);

/// Files the run writes (the wrk script, the gRPC message, h2load's
/// logs), removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn create() -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "graph-grpc-gateway-load-loadgen-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self(dir))
    }

    fn put(&self, name: &str, bytes: &[u8]) -> anyhow::Result<PathBuf> {
        let path = self.0.join(name);
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A gateway under load and where to reach it.
struct Gateway {
    target: Target,
    proc: Proc,
    grpc_addr: String,
    admin_addr: String,
}

/// Runs the rounds and prints the report; fails when any request failed.
pub async fn run(bin: &Path, args: &LoadgenArgs) -> anyhow::Result<()> {
    check_args(args)?;
    for (tool, path) in [("wrk", &args.wrk), ("h2load", &args.h2load)] {
        which(path).with_context(|| {
            format!("{tool} ({}) not found: scripts/tools.sh installs it into .cache/tools/bin, which has to be on PATH", path.display())
        })?;
    }
    let max_concurrency = args.concurrency.iter().copied().max().unwrap_or(1);

    let (emulator, graph_base, authority) = start_emulator(bin, &[])?;
    let http = crate::graph::http_client(false)?;
    let graph_token = token(&http, &authority, TENANT).await?;
    let task_id = match &args.task_id {
        Some(id) => id.clone(),
        None => super::seed(&http, &graph_base, &graph_token, 1)
            .await?
            .pop()
            .context("seeding a task")?,
    };

    // The one Update both paths make: as the gateway receives it, and as
    // the gateway's translation sends it to Graph.
    let update = realistic_update(&task_id, 0, 0);
    let patch = crate::translate::patch_request(&update).map_err(|e| anyhow::anyhow!("{e}"))?;
    let files = TempDir::create()?;
    let message = files.put("update.grpc", &grpc_frame(&update.encode_to_vec()))?;
    let url = format!("{graph_base}/deviceAppManagement/deviceAppManagementTasks/{task_id}");
    let script = files.put(
        "patch.lua",
        wrk_script(&patch.body, &format!("Bearer {graph_token}")).as_bytes(),
    )?;

    let mut env = measured_gateway_env(&graph_base, &authority, max_concurrency);
    env.extend([
        ("GATEWAY_PLAINTEXT", "true".to_owned()),
        ("GATEWAY_SHUTDOWN_DELAY", "0s".to_owned()),
    ]);
    let mut gateways = Vec::new();
    let binaries = std::iter::once((Target::Gateway, bin))
        .chain(args.baseline_bin.as_deref().map(|b| (Target::Baseline, b)));
    for (target, path) in binaries {
        let (proc, grpc_addr, admin_addr) = super::trace_export::start(path, &env)
            .with_context(|| format!("starting {} ({})", target.name(), path.display()))?;
        gateways.push(Gateway {
            target,
            proc,
            grpc_addr,
            admin_addr,
        });
    }

    let mut report = LoadgenReport {
        concurrencies: args.concurrency.clone(),
        duration: args.duration,
        calls: args.calls.map(std::num::NonZeroU64::get),
        warmup: args.warmup,
        direct_warmup: args.direct_warmup,
        rounds: args.rounds,
        wrk_threads: args.wrk_threads,
        direct: Vec::new(),
        gateway: Vec::new(),
    };
    for round in 1..=args.rounds {
        for &concurrency in &args.concurrency {
            eprintln!(
                "loadgen: round {round} of {}, concurrency {concurrency}, direct (wrk)",
                args.rounds
            );
            let direct = direct_phase(args, &emulator, &script, &url, concurrency)
                .await
                .with_context(|| format!("round {round}, concurrency {concurrency}, wrk"))?;
            report.direct.push(DirectRun { round, ..direct });
            for gw in &gateways {
                eprintln!(
                    "loadgen: round {round} of {}, concurrency {concurrency}, {} (h2load)",
                    args.rounds,
                    gw.target.name()
                );
                let run = gateway_phase(args, &http, &emulator, gw, &files, &message, concurrency)
                    .await
                    .with_context(|| {
                        format!(
                            "round {round}, concurrency {concurrency}, h2load against the {}",
                            gw.target.name()
                        )
                    })?;
                report.gateway.push(GatewayRun { round, ..run });
            }
        }
    }
    for mut gw in gateways {
        if !gw.proc.stop(STOP_LIMIT)? {
            eprintln!(
                "loadgen: the {} did not exit 0 on SIGTERM",
                gw.target.name()
            );
        }
    }
    drop(emulator);

    print!("{}", report.render());
    let problems = report.problems();
    if !problems.is_empty() {
        bail!(
            "{} phase(s) had failed requests:\n{}",
            problems.len(),
            problems.join("\n")
        );
    }
    Ok(())
}

fn check_args(args: &LoadgenArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        !args.concurrency.is_empty() && args.concurrency.iter().all(|&c| c > 0),
        "--concurrency: positive counts"
    );
    anyhow::ensure!(args.wrk_threads > 0, "--wrk-threads must be positive");
    for (flag, d, least) in [
        ("--duration", args.duration, 1),
        ("--direct-warmup", args.direct_warmup, 0),
    ] {
        anyhow::ensure!(
            d.subsec_nanos() == 0 && d.as_secs() >= least,
            "{flag} {}: wrk runs for whole seconds ({least}s at least)",
            humantime::format_duration(d)
        );
    }
    anyhow::ensure!(
        args.warmup > 0 || args.calls.is_some(),
        "--warmup 0 needs --calls: the warm-up's rate sets the measured phase's count"
    );
    Ok(())
}

/// The path of `program` as the system would run it (a path, or a name
/// looked up on PATH).
fn which(program: &Path) -> anyhow::Result<PathBuf> {
    if program.components().count() > 1 {
        anyhow::ensure!(program.is_file(), "no file {}", program.display());
        return Ok(program.to_owned());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .context("not on PATH")
}

/// A gRPC length-prefixed message: not compressed, its length big-endian.
pub fn grpc_frame(message: &[u8]) -> Vec<u8> {
    let len = u32::try_from(message.len()).expect("a message under 4 GiB");
    let mut frame = Vec::with_capacity(5 + message.len());
    frame.push(0);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(message);
    frame
}

/// `text` as a Lua string literal: printable ASCII as is, anything else
/// (and `"`, `\`) as a decimal escape.
fn lua_string(text: &[u8]) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for &b in text {
        match b {
            b'"' | b'\\' => out.push_str(&format!("\\{b:03}")),
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\{b:03}")),
        }
    }
    out.push('"');
    out
}

/// The first word of the line wrk's script prints in `done()`.
const WRK_SUMMARY: &str = "wrk-summary";

/// The wrk script: the PATCH with the gateway's headers (a fresh
/// `client-request-id` per request, as the gateway sends), and in `done()`
/// one line of counts and latency percentiles (µs).
pub fn wrk_script(body: &[u8], authorization: &str) -> String {
    format!(
        r#"-- The PATCH the gateway sends for the same Update, with its headers.
wrk.method = "PATCH"
wrk.body = {body}
wrk.headers["Authorization"] = {authorization}
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json"
wrk.headers["Accept-Encoding"] = "gzip"
wrk.headers["return-client-request-id"] = "true"

local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("thread_number", threads)
end

local sent = 0
function request()
  sent = sent + 1
  wrk.headers["client-request-id"] =
    string.format("%08x-0000-4000-8000-%012x", thread_number or 0, sent)
  return wrk.format()
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "{WRK_SUMMARY} requests=%.0f duration_us=%.0f connect=%.0f read=%.0f write=%.0f status=%.0f timeout=%.0f p50_us=%.0f p99_us=%.0f max_us=%.0f\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"#,
        body = lua_string(body),
        authorization = lua_string(authorization.as_bytes()),
    )
}

/// `key=value` pairs (numbers) of the script's summary line.
pub fn parse_wrk_summary(stdout: &str) -> anyhow::Result<BTreeMap<String, f64>> {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix(WRK_SUMMARY))
        .context("wrk printed no summary line")?;
    line.split_whitespace()
        .map(|kv| {
            let (k, v) = kv.split_once('=').context("key=value")?;
            Ok((
                k.to_owned(),
                v.parse::<f64>().with_context(|| kv.to_owned())?,
            ))
        })
        .collect()
}

/// Runs a program to its end on a blocking thread; answers its stdout,
/// failing with its stderr when it exits non-zero.
async fn run_tool(program: &Path, args: Vec<String>) -> anyhow::Result<String> {
    let program = program.to_owned();
    let shown = format!("{} {}", program.display(), args.join(" "));
    let out = tokio::task::spawn_blocking(move || Command::new(&program).args(&args).output())
        .await?
        .with_context(|| format!("running {shown}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "{shown}: {}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(stdout)
}

/// wrk for `duration` at `concurrency` connections.
async fn wrk(
    args: &LoadgenArgs,
    script: &Path,
    url: &str,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<BTreeMap<String, f64>> {
    let wrk_args = vec![
        format!("-t{}", args.wrk_threads.min(concurrency)),
        format!("-c{concurrency}"),
        format!("-d{}s", duration.as_secs()),
        "--timeout".to_owned(),
        "10s".to_owned(),
        "-s".to_owned(),
        script.display().to_string(),
        url.to_owned(),
    ];
    let stdout = run_tool(&args.wrk, wrk_args).await?;
    parse_wrk_summary(&stdout).with_context(|| format!("wrk's output:\n{stdout}"))
}

async fn direct_phase(
    args: &LoadgenArgs,
    emulator: &Proc,
    script: &Path,
    url: &str,
    concurrency: usize,
) -> anyhow::Result<DirectRun> {
    if !args.direct_warmup.is_zero() {
        wrk(args, script, url, concurrency, args.direct_warmup).await?;
    }
    let before = emulator.usage()?;
    let s = wrk(args, script, url, concurrency, args.duration).await?;
    let after = emulator.usage()?;
    let n = |key: &str| s.get(key).copied().unwrap_or(0.0) as u64;
    Ok(DirectRun {
        round: 0,
        concurrency,
        requests: n("requests"),
        elapsed: Duration::from_micros(n("duration_us")),
        emulator_cpu: after.cpu.saturating_sub(before.cpu),
        p50_us: n("p50_us"),
        p99_us: n("p99_us"),
        socket_errors: n("connect") + n("read") + n("write") + n("timeout"),
        non_2xx: n("status"),
    })
}

/// What h2load reports of its requests (`requests:` and `status codes:`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct H2loadCounts {
    pub total: u64,
    pub started: u64,
    pub done: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub errored: u64,
    pub timeout: u64,
    pub status_2xx: u64,
}

pub fn parse_h2load(stdout: &str) -> anyhow::Result<H2loadCounts> {
    // "requests: 300 total, 300 started, 300 done, 300 succeeded, 0 failed, 0 errored, 0 timeout"
    let pairs = |prefix: &str| -> anyhow::Result<BTreeMap<String, u64>> {
        let line = stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .with_context(|| format!("h2load printed no {prefix:?} line"))?;
        line.split(',')
            .map(|part| {
                let mut words = part.split_whitespace();
                let n = words.next().context("a count")?.parse::<u64>()?;
                let what = words.next().context("what it counts")?;
                Ok((what.to_owned(), n))
            })
            .collect()
    };
    let requests = pairs("requests:")?;
    let codes = pairs("status codes:")?;
    let get = |m: &BTreeMap<String, u64>, k: &str| {
        m.get(k)
            .copied()
            .with_context(|| format!("h2load's count {k:?}"))
    };
    Ok(H2loadCounts {
        total: get(&requests, "total")?,
        started: get(&requests, "started")?,
        done: get(&requests, "done")?,
        succeeded: get(&requests, "succeeded")?,
        failed: get(&requests, "failed")?,
        errored: get(&requests, "errored")?,
        timeout: get(&requests, "timeout")?,
        status_2xx: get(&codes, "2xx")?,
    })
}

/// h2load's `--log-file`: per request, its start (µs since the epoch),
/// HTTP status (-1: the stream failed) and duration (µs).
#[derive(Debug)]
pub struct H2loadLog {
    pub rows: u64,
    /// Rows whose status is not 200.
    pub not_200: u64,
    /// From the first request's start to the last one's end.
    pub span: Duration,
    /// Durations in µs.
    pub hist: Histogram<u64>,
}

pub fn parse_h2load_log(text: &str) -> anyhow::Result<H2loadLog> {
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let (mut rows, mut not_200) = (0u64, 0u64);
    let (mut first, mut last) = (u64::MAX, 0u64);
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut cols = line.split('\t');
        let mut col = |what: &str| -> anyhow::Result<i64> {
            cols.next()
                .with_context(|| format!("no {what} in {line:?}"))?
                .trim()
                .parse::<i64>()
                .with_context(|| format!("{what} in {line:?}"))
        };
        let start = u64::try_from(col("start")?)?;
        let status = col("status")?;
        let micros = u64::try_from(col("duration")?)?;
        rows += 1;
        if status != 200 {
            not_200 += 1;
        }
        first = first.min(start);
        last = last.max(start + micros);
        hist.record(micros.clamp(1, 60_000_000))?;
    }
    Ok(H2loadLog {
        rows,
        not_200,
        span: Duration::from_micros(last.saturating_sub(first.min(last))),
        hist,
    })
}

/// One h2load run of `calls` requests, `concurrency` streams in flight on
/// one connection; answers its counts and log.
async fn h2load(
    args: &LoadgenArgs,
    gw: &Gateway,
    files: &TempDir,
    message: &Path,
    concurrency: usize,
    calls: u64,
) -> anyhow::Result<(H2loadCounts, H2loadLog)> {
    let log = files
        .0
        .join(format!("h2load-{}.log", uuid::Uuid::new_v4().simple()));
    let h2load_args = vec![
        "-c1".to_owned(),
        "-t1".to_owned(),
        format!("-m{concurrency}"),
        format!("-n{calls}"),
        "-d".to_owned(),
        message.display().to_string(),
        "-H".to_owned(),
        "content-type: application/grpc".to_owned(),
        "-H".to_owned(),
        "te: trailers".to_owned(),
        format!("--log-file={}", log.display()),
        format!("http://{}{UPDATE_PATH}", gw.grpc_addr),
    ];
    let stdout = run_tool(&args.h2load, h2load_args).await?;
    let counts = parse_h2load(&stdout).with_context(|| format!("h2load's output:\n{stdout}"))?;
    let text =
        std::fs::read_to_string(&log).with_context(|| format!("reading {}", log.display()))?;
    let _ = std::fs::remove_file(&log);
    Ok((counts, parse_h2load_log(&text)?))
}

/// The gateway's counts that say what became of its calls.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    update_ok: u64,
    update_not_ok: u64,
    patches: u64,
    patches_200: u64,
}

async fn counts(http: &reqwest::Client, gw: &Gateway) -> anyhow::Result<Counts> {
    let text = http
        .get(format!("http://{}/metrics", gw.admin_addr))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await
        .context("the gateway's /metrics")?;
    let series = parse_series(&text);
    let sum = |name: &str, keep: &dyn Fn(&BTreeMap<String, String>) -> bool| -> u64 {
        series
            .iter()
            .filter(|(n, labels, _)| n == name && keep(labels))
            .map(|(_, _, v)| *v as u64)
            .sum()
    };
    let label = |labels: &BTreeMap<String, String>, k: &str| labels.get(k).cloned();
    Ok(Counts {
        update_ok: sum(CALLS_METRIC, &|l| {
            label(l, "rpc").as_deref() == Some(UPDATE_RPC)
                && label(l, "code").as_deref() == Some("OK")
        }),
        update_not_ok: sum(CALLS_METRIC, &|l| {
            label(l, "rpc").as_deref() == Some(UPDATE_RPC)
                && label(l, "code").as_deref() != Some("OK")
        }),
        patches: sum(GRAPH_REQUESTS_METRIC, &|l| {
            label(l, "method").as_deref() == Some("PATCH")
        }),
        patches_200: sum(GRAPH_REQUESTS_METRIC, &|l| {
            label(l, "method").as_deref() == Some("PATCH")
                && label(l, "status").as_deref() == Some("200")
        }),
    })
}

/// Prometheus text as (name, labels, value), comments left out.
pub fn parse_series(text: &str) -> Vec<(String, BTreeMap<String, String>, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (head, value) = l.rsplit_once(' ')?;
            let value = value.parse::<f64>().ok()?;
            let (name, labels) = match head.split_once('{') {
                Some((name, rest)) => (name, parse_labels(rest.strip_suffix('}')?)?),
                None => (head, BTreeMap::new()),
            };
            Some((name.to_owned(), labels, value))
        })
        .collect()
}

/// `a="x",b="y"` (values without escapes, as the gateway's labels are).
fn parse_labels(text: &str) -> Option<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"")?;
        let (value, after) = after.split_once('"')?;
        labels.insert(key.trim().to_owned(), value.to_owned());
        rest = after.strip_prefix(',').unwrap_or(after);
    }
    Some(labels)
}

async fn gateway_phase(
    args: &LoadgenArgs,
    http: &reqwest::Client,
    emulator: &Proc,
    gw: &Gateway,
    files: &TempDir,
    message: &Path,
    concurrency: usize,
) -> anyhow::Result<GatewayRun> {
    let calls = match (args.calls, args.warmup) {
        (Some(n), 0) => n.get(),
        (fixed, warmup) => {
            let (_, log) = h2load(args, gw, files, message, concurrency, warmup).await?;
            let rate = log.rows as f64 / log.span.as_secs_f64().max(1e-6);
            fixed.map_or_else(
                || ((rate * args.duration.as_secs_f64()).ceil() as u64).max(concurrency as u64),
                std::num::NonZeroU64::get,
            )
        }
    };
    let before = counts(http, gw).await?;
    let (gw_before, emu_before) = (gw.proc.usage()?, emulator.usage()?);
    let (h2load_counts, log) = h2load(args, gw, files, message, concurrency, calls).await?;
    let (gw_after, emu_after) = (gw.proc.usage()?, emulator.usage()?);
    let after = counts(http, gw).await?;
    Ok(GatewayRun {
        round: 0,
        target: gw.target,
        concurrency,
        calls,
        elapsed: log.span,
        gateway_cpu: gw_after.cpu.saturating_sub(gw_before.cpu),
        emulator_cpu: emu_after.cpu.saturating_sub(emu_before.cpu),
        p50_us: log.hist.value_at_quantile(0.5),
        p99_us: log.hist.value_at_quantile(0.99),
        log_rows: log.rows,
        log_not_200: log.not_200,
        h2load: h2load_counts,
        ok_delta: after.update_ok.saturating_sub(before.update_ok),
        not_ok_delta: after.update_not_ok.saturating_sub(before.update_not_ok),
        patch_delta: after.patches.saturating_sub(before.patches),
        patch_200_delta: after.patches_200.saturating_sub(before.patches_200),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grpc_frame_is_a_zero_byte_the_big_endian_length_and_the_message() {
        assert_eq!(grpc_frame(b"abc"), [0, 0, 0, 0, 3, b'a', b'b', b'c']);
        let long = vec![7u8; 300];
        let frame = grpc_frame(&long);
        assert_eq!(&frame[..5], &[0, 0, 0, 1, 44]);
        assert_eq!(&frame[5..], &long[..]);
    }

    #[test]
    fn lua_strings_escape_quotes_backslashes_and_bytes_outside_printable_ascii() {
        assert_eq!(
            lua_string(br#"{"a":"b\c"}"#),
            r#""{\034a\034:\034b\092c\034}""#
        );
        assert_eq!(lua_string("é\n".as_bytes()), r#""\195\169\010""#);
    }

    #[test]
    fn the_wrk_summary_line_is_read_as_numbers() {
        let out = "Running 1s test\nwrk-summary requests=1234 duration_us=1000512 connect=0 read=0 write=0 status=2 timeout=0 p50_us=410 p99_us=1310 max_us=5000\n";
        let s = parse_wrk_summary(out).unwrap();
        assert_eq!(s["requests"], 1234.0);
        assert_eq!(s["status"], 2.0);
        assert_eq!(s["p99_us"], 1310.0);
        assert!(parse_wrk_summary("Running 1s test\n").is_err());
    }

    #[test]
    fn h2load_counts_are_read_from_its_summary() {
        let out = "finished in 1.02s, 294.12 req/s, 50.00KB/s\n\
                   requests: 300 total, 300 started, 299 done, 298 succeeded, 2 failed, 1 errored, 0 timeout\n\
                   status codes: 298 2xx, 0 3xx, 0 4xx, 1 5xx\n";
        assert_eq!(
            parse_h2load(out).unwrap(),
            H2loadCounts {
                total: 300,
                started: 300,
                done: 299,
                succeeded: 298,
                failed: 2,
                errored: 1,
                timeout: 0,
                status_2xx: 298,
            }
        );
        assert!(parse_h2load("finished in 1.02s\n").is_err());
    }

    #[test]
    fn the_h2load_log_gives_rows_failures_span_and_durations() {
        let log = "1000000\t200\t500\n1000100\t200\t700\n1000200\t-1\t100\n";
        let parsed = parse_h2load_log(log).unwrap();
        assert_eq!(parsed.rows, 3);
        assert_eq!(parsed.not_200, 1);
        assert_eq!(parsed.span, Duration::from_micros(800));
        assert_eq!(parsed.hist.value_at_quantile(0.5), 500);
        assert!(parse_h2load_log("1000\tx\t5\n").is_err());
    }

    #[test]
    fn metric_series_are_read_with_their_labels() {
        let text = "# HELP graph_gateway_grpc_calls gRPC calls\n\
                    # TYPE graph_gateway_grpc_calls counter\n\
                    graph_gateway_grpc_calls_total{rpc=\"UpdateSecurityConfigurationTask\",code=\"OK\"} 42\n\
                    graph_gateway_grpc_calls_total{rpc=\"UpdateSecurityConfigurationTask\",code=\"NOT_FOUND\"} 3\n\
                    graph_gateway_ready 1\n";
        let series = parse_series(text);
        assert_eq!(series.len(), 3);
        assert_eq!(series[0].0, CALLS_METRIC);
        assert_eq!(series[0].1["rpc"], UPDATE_RPC);
        assert_eq!(series[0].1["code"], "OK");
        assert_eq!(series[0].2, 42.0);
        assert_eq!(series[1].1["code"], "NOT_FOUND");
        assert!(series[2].1.is_empty());
    }
}

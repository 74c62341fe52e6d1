//! `graph-grpc-gateway serve` and `graph-grpc-gateway emulator`.

use clap::Parser;
use graph_grpc_gateway::cli::{Cli, Command, EmulatorArgs, ServeRuntime};
use graph_grpc_gateway::config::{self, Config};
use graph_grpc_gateway::server::Gateway;
use graph_grpc_gateway::{emulator, telemetry};
use std::process::ExitCode;

/// With the `mimalloc` feature, mimalloc instead of glibc's malloc
/// (PERFORMANCE.md has both, on CPU per call and resident memory).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match &cli.command {
        Command::Serve(args) => args.runtime.build(),
        Command::Emulator(args) => args.runtime.build().map(|runtime| ServeRuntime {
            runtime,
            extra_workers: 0,
        }),
    };
    match runtime {
        Ok(ServeRuntime {
            runtime,
            extra_workers,
        }) => runtime.block_on(run(cli, extra_workers)),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
            // A setting out of its range, refused like the others.
            eprintln!("graph-grpc-gateway: invalid configuration:\n  - {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("graph-grpc-gateway: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli, extra_workers: usize) -> ExitCode {
    match cli.command {
        Command::Serve(args) => {
            let trace = match telemetry::otel::TraceSettings::from_args(&args.trace) {
                Ok(trace) => trace,
                Err(problems) => {
                    eprintln!(
                        "graph-grpc-gateway: invalid configuration:\n  - {}",
                        problems.join("\n  - ")
                    );
                    return ExitCode::from(2);
                }
            };
            let _logs = telemetry::init(&args.log, trace.as_ref());
            let config = match Config::from_args(*args) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("graph-grpc-gateway: {e}");
                    return ExitCode::from(2);
                }
            };
            match serve(config, extra_workers).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = format!("{e:#}"), "stopped with an error");
                    eprintln!("graph-grpc-gateway: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Emulator(args) => {
            let _logs = telemetry::init(&args.log, None);
            if let Err(e) = config::check_emulator(&args) {
                eprintln!("graph-grpc-gateway emulator: {e}");
                return ExitCode::from(2);
            }
            match run_emulator(&args).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("graph-grpc-gateway emulator: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

async fn serve(config: Config, extra_workers: usize) -> anyhow::Result<()> {
    let stop = shutdown_signal()?;
    let gateway = Gateway::start_with_workers(config, extra_workers).await?;
    stop.await;
    tracing::info!("shutdown requested");
    // Abandoning calls at the drain bound is still an orderly, requested stop.
    gateway.shutdown().await.map(|_| ())
}

async fn run_emulator(args: &EmulatorArgs) -> anyhow::Result<()> {
    let mut options = emulator::EmulatorOptions::default()
        .with_require_auth(args.require_auth)
        .with_token_lifetime(args.token_lifetime)
        .with_latency(args.latency)
        .with_batch_order_seed(args.batch_order_seed)
        .with_record_requests(args.request_log);
    if args.chaos_percent > 0.0 {
        let mut chaos = emulator::Chaos::new(args.chaos_seed, args.chaos_percent);
        if let Some(retry_after) = &args.chaos_retry_after {
            chaos = chaos.with_retry_after(retry_after.clone());
        }
        options = options.with_chaos(chaos);
    }
    if let Some((requests, per)) = args.tenant_budget {
        options = options.with_tenant_budget(emulator::TenantBudget::new(requests, per));
    }
    if args.intune_limits {
        // At most 1000 (checked): exact as an f64.
        let scale = args.intune_limits_scale as f64;
        options = options.with_intune_limits(emulator::IntuneLimits::scaled(scale));
    }
    if let Some(problem) = options.problem() {
        anyhow::bail!("emulator options: {problem}");
    }
    let listener = tokio::net::TcpListener::bind(args.addr).await?;
    let local = listener.local_addr()?;
    tracing::info!(base_url = %format!("http://{local}/beta"), ?options, "Graph emulator serving");
    let emulator = emulator::Emulator::with_options(options);
    emulator::serve(listener, emulator, shutdown_signal()?).await?;
    Ok(())
}

/// SIGTERM (Kubernetes) or SIGINT (Ctrl-C). The handlers are installed
/// when this is called, before the returned future is awaited, so a signal
/// that arrives while the gateway starts is not lost.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

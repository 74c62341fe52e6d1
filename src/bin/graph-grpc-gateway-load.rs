//! `graph-grpc-gateway-load`: the gateway's load tool. See `PERFORMANCE.md`.

use clap::Parser;
use graph_grpc_gateway::load::{run, LoadArgs};
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    match run(LoadArgs::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("graph-grpc-gateway-load: {e:#}");
            ExitCode::FAILURE
        }
    }
}

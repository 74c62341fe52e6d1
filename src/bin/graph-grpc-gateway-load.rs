//! `graph-grpc-gateway-load`: the gateway's load tool. See `PERFORMANCE.md`.

use clap::Parser;
use graph_grpc_gateway::load::{floor, run, LoadArgs};
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    // The tool starts itself again to serve the floor (`--floor`).
    let result = if std::env::args().nth(1).as_deref() == Some(floor::COMMAND) {
        floor::serve().await
    } else {
        run(LoadArgs::parse()).await
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("graph-grpc-gateway-load: {e:#}");
            ExitCode::FAILURE
        }
    }
}

//! Compiles the gateway's proto with protox (pure Rust, no system `protoc`)
//! and writes the descriptor set that server reflection serves.

use prost::Message;
use std::{env, fs, path::PathBuf};

const PROTO: &str = "graphgateway/v1/security_configuration_task.proto";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    // `proto/google/api` holds the googleapis protos it imports, vendored so
    // the build needs no network.
    let fds = protox::compile([PROTO], ["proto"])?;

    // `compile_fds` does not write a descriptor set, and reflection needs one.
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out_dir.join("graphgateway_descriptor.bin"),
        fds.encode_to_vec(),
    )?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Every method a server does not implement answers UNIMPLEMENTED, so
        // a partial server (the load tool's floor) need not spell them out.
        .generate_default_stubs(true)
        // google.rpc.Status (a batch's failed items) is tonic-types' own, so
        // a status built for a single call's details is the same type.
        .extern_path(".google.rpc.Status", "::tonic_types::Status")
        .compile_fds(fds)?;
    Ok(())
}

//! `--tls`: a throwaway certificate for `localhost` and 127.0.0.1, the files
//! the gateway and the floor serve it from, and the client side that trusts it.

use anyhow::Context;
use std::path::PathBuf;
use tonic::transport::{Certificate, ClientTlsConfig};

/// The certificate and key as files, removed when dropped.
pub struct TlsFiles {
    dir: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    cert_pem: String,
}

impl TlsFiles {
    pub fn create() -> anyhow::Result<Self> {
        let certified = rcgen::generate_simple_self_signed(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
        ])?;
        let dir =
            std::env::temp_dir().join(format!("graph-grpc-gateway-load-{}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let cert = dir.join("tls.crt");
        let key = dir.join("tls.key");
        let cert_pem = certified.cert.pem();
        std::fs::write(&cert, &cert_pem)?;
        std::fs::write(&key, certified.signing_key.serialize_pem())?;
        Ok(Self {
            dir,
            cert,
            key,
            cert_pem,
        })
    }

    /// A client that trusts only this certificate, by the name it carries.
    pub fn client(&self) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.cert_pem))
            .domain_name("localhost")
    }
}

impl Drop for TlsFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

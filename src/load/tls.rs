//! Throwaway certificates: for `--tls`, one self-signed certificate for
//! `localhost` and 127.0.0.1; for the budget scenario, a CA that signs the
//! server's certificate and one client certificate per caller (mutual TLS
//! names each caller by its CN). Written as files the gateway and the floor
//! serve from, with the client side that trusts them.

use anyhow::Context;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use std::path::PathBuf;
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

/// The certificate and key as files (and what else the run writes next to
/// them), removed when dropped.
pub struct TlsFiles {
    dir: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The CA that signed the callers' certificates, when there are callers.
    pub client_ca: Option<PathBuf>,
    /// What clients trust: the certificate itself, or the CA that signed it.
    trust_pem: String,
    callers: Vec<Identity>,
}

const SERVER_NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

impl TlsFiles {
    /// A self-signed server certificate; clients present none.
    pub fn create() -> anyhow::Result<Self> {
        let certified =
            rcgen::generate_simple_self_signed(SERVER_NAMES.map(str::to_owned).to_vec())?;
        let cert_pem = certified.cert.pem();
        Self::write(
            &cert_pem,
            &certified.signing_key.serialize_pem(),
            cert_pem.clone(),
        )
    }

    /// A CA, a server certificate it signed, and a client certificate for
    /// each of `callers`, its subject CN the caller's name.
    pub fn with_callers(callers: &[String]) -> anyhow::Result<Self> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "graph-grpc-gateway-load CA");
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        let sign = |params: CertificateParams| -> anyhow::Result<(String, String)> {
            let key = KeyPair::generate()?;
            let cert = params.signed_by(&key, &ca)?;
            Ok((cert.pem(), key.serialize_pem()))
        };
        let (server_cert, server_key) = sign(CertificateParams::new(
            SERVER_NAMES.map(str::to_owned).to_vec(),
        )?)?;
        let mut files = Self::write(&server_cert, &server_key, ca.pem())?;
        let ca_file = files.dir.join("client-ca.crt");
        std::fs::write(&ca_file, ca.pem())?;
        files.client_ca = Some(ca_file);
        for name in callers {
            let mut params = CertificateParams::new(Vec::<String>::new())?;
            params.distinguished_name.push(DnType::CommonName, name);
            let (cert, key) = sign(params)?;
            files.callers.push(Identity::from_pem(cert, key));
        }
        Ok(files)
    }

    fn write(cert_pem: &str, key_pem: &str, trust_pem: String) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "graph-grpc-gateway-load-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let cert = dir.join("tls.crt");
        let key = dir.join("tls.key");
        std::fs::write(&cert, cert_pem)?;
        std::fs::write(&key, key_pem)?;
        Ok(Self {
            dir,
            cert,
            key,
            client_ca: None,
            trust_pem,
            callers: Vec::new(),
        })
    }

    /// Writes `text` as `name` next to the certificates (removed with them).
    pub fn put(&self, name: &str, text: &str) -> anyhow::Result<PathBuf> {
        let path = self.dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    /// A client that trusts only this server, by the name it carries.
    pub fn client(&self) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.trust_pem))
            .domain_name("localhost")
    }

    /// The client of the `i`th caller, presenting its certificate.
    pub fn caller(&self, i: usize) -> anyhow::Result<ClientTlsConfig> {
        let identity = self.callers.get(i).context("no such caller")?;
        Ok(self.client().identity(identity.clone()))
    }
}

impl Drop for TlsFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

//! Inbound TLS for the gRPC port: the server certificate and key, and for
//! mutual TLS the client CA bundle, read from PEM files and read again when
//! they change, so a certificate rotated by cert-manager (or any tool that
//! replaces the mounted files) takes effect without a restart.

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

/// Whether callers must present a client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ClientAuth {
    /// The handshake fails without a certificate signed by the client CA.
    Required,
    /// A certificate is verified when presented; callers without one may
    /// still identify with a bearer token.
    Optional,
}

/// Where the TLS material is and how often to look for a new one.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// Mutual TLS: the CAs client certificates must chain to.
    pub client_ca_file: Option<PathBuf>,
    pub client_auth: ClientAuth,
    pub reload_interval: Duration,
}

/// Why TLS material could not be used. Names files, never their contents.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {what}")]
    Pem { path: String, what: String },
    #[error("building the TLS configuration: {0}")]
    Config(String),
}

/// The files' bytes as last read, to tell whether anything changed.
#[derive(PartialEq, Eq)]
struct Material {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
}

/// The current server configuration, replaced when the files change.
/// Each new connection takes the configuration current at its handshake;
/// connections already open keep theirs.
pub struct TlsReloader {
    settings: TlsSettings,
    current: RwLock<(Arc<ServerConfig>, Material)>,
}

impl TlsReloader {
    /// Reads and checks the files; an error here stops start-up.
    pub fn load(settings: TlsSettings) -> Result<Self, TlsError> {
        let material = read_material(&settings)?;
        let config = server_config(&settings, &material)?;
        Ok(Self {
            settings,
            current: RwLock::new((config, material)),
        })
    }

    /// The configuration for the next handshake.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .0
            .clone()
    }

    pub fn reload_interval(&self) -> Duration {
        self.settings.reload_interval
    }

    /// Reads the files again; swaps the configuration when they changed and
    /// still make a valid one. On error the previous configuration stays.
    pub fn reload(&self) -> Result<Reload, TlsError> {
        let material = read_material(&self.settings)?;
        if self
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .1
            == material
        {
            return Ok(Reload::Unchanged);
        }
        let config = server_config(&self.settings, &material)?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = (config, material);
        Ok(Reload::Replaced)
    }

    /// Checks the files every reload interval until `stop` resolves.
    pub async fn watch(
        self: Arc<Self>,
        metrics: Arc<crate::metrics::Metrics>,
        stop: impl std::future::Future<Output = ()>,
    ) {
        let mut tick = tokio::time::interval(self.settings.reload_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => return,
                _ = tick.tick() => {}
            }
            // Files are read on a blocking thread: a slow volume must not
            // stall the runtime.
            let this = self.clone();
            match tokio::task::spawn_blocking(move || this.reload()).await {
                Ok(Ok(Reload::Replaced)) => {
                    metrics.tls_reload("replaced");
                    tracing::info!(cert_file = %self.settings.cert_file.display(), "TLS certificate reloaded")
                }
                Ok(Ok(Reload::Unchanged)) => {}
                Ok(Err(e)) => {
                    metrics.tls_reload("refused");
                    tracing::warn!(error = %e, "TLS files cannot be used; keeping the previous certificate")
                }
                Err(e) => tracing::warn!(error = %e, "TLS reload task failed"),
            }
        }
    }
}

/// What a reload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reload {
    Unchanged,
    Replaced,
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.display().to_string(),
        source,
    })
}

fn read_material(settings: &TlsSettings) -> Result<Material, TlsError> {
    Ok(Material {
        cert: read(&settings.cert_file)?,
        key: read(&settings.key_file)?,
        client_ca: settings.client_ca_file.as_deref().map(read).transpose()?,
    })
}

fn certificates(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bad = |what: String| TlsError::Pem {
        path: path.display().to_string(),
        what,
    };
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(bad("holds no CERTIFICATE block".into()));
    }
    Ok(certs)
}

fn server_config(
    settings: &TlsSettings,
    material: &Material,
) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = certificates(&settings.cert_file, &material.cert)?;
    // The key's own parse error could quote key bytes; only say what failed.
    let key = PrivateKeyDer::from_pem_slice(&material.key).map_err(|_| TlsError::Pem {
        path: settings.key_file.display().to_string(),
        what: "holds no usable PRIVATE KEY block (PKCS#8, PKCS#1 or SEC1)".into(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match (&settings.client_ca_file, &material.client_ca) {
        (Some(path), Some(pem)) => {
            let mut roots = RootCertStore::empty();
            for ca in certificates(path, pem)? {
                roots.add(ca).map_err(|e| TlsError::Pem {
                    path: path.display().to_string(),
                    what: format!("not a usable CA certificate: {e}"),
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = match settings.client_auth {
                ClientAuth::Required => verifier,
                ClientAuth::Optional => verifier.allow_unauthenticated(),
            };
            let verifier = verifier
                .build()
                .map_err(|e| TlsError::Config(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Pem {
            path: settings.key_file.display().to_string(),
            what: format!(
                "not a usable key for {} ({e})",
                settings.cert_file.display()
            ),
        })?;
    // gRPC is HTTP/2 only.
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Files(PathBuf);

    impl Files {
        fn new() -> Self {
            let dir = std::env::temp_dir().join(format!("gw-tls-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&dir).expect("dir");
            Self(dir)
        }

        fn write(&self, name: &str, text: &str) -> PathBuf {
            let path = self.0.join(name);
            std::fs::write(&path, text).expect("write");
            path
        }
    }

    impl Drop for Files {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn pair() -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        (cert.pem(), key.serialize_pem())
    }

    fn settings(files: &Files, cert: &str, key: &str) -> TlsSettings {
        TlsSettings {
            cert_file: files.write("tls.crt", cert),
            key_file: files.write("tls.key", key),
            client_ca_file: None,
            client_auth: ClientAuth::Required,
            reload_interval: Duration::from_secs(1),
        }
    }

    #[test]
    fn reload_swaps_only_for_a_changed_valid_pair() {
        let files = Files::new();
        let (cert, key) = pair();
        let tls = TlsReloader::load(settings(&files, &cert, &key)).expect("loads");
        let first = tls.config();
        assert_eq!(first.alpn_protocols, vec![b"h2".to_vec()]);
        assert_eq!(tls.reload().expect("same files"), Reload::Unchanged);
        assert!(Arc::ptr_eq(&first, &tls.config()));

        let (cert2, key2) = pair();
        files.write("tls.key", &key2);
        files.write("tls.crt", &cert2);
        assert_eq!(tls.reload().expect("new pair"), Reload::Replaced);
        assert!(!Arc::ptr_eq(&first, &tls.config()));

        // A certificate that does not match the key is refused; the
        // previous configuration stays.
        let current = tls.config();
        files.write("tls.crt", &cert);
        assert!(matches!(tls.reload(), Err(TlsError::Pem { .. })));
        assert!(Arc::ptr_eq(&current, &tls.config()));
    }

    #[test]
    fn errors_name_the_file_never_its_contents() {
        let files = Files::new();
        let (cert, _) = pair();
        let marker = "c2VjcmV0LWtleS1ieXRlcw";
        let bad_key = format!("-----BEGIN PRIVATE KEY-----\n{marker}\n-----END PRIVATE KEY-----\n");
        let e = TlsReloader::load(settings(&files, &cert, &bad_key))
            .err()
            .expect("bad key refused");
        let text = format!("{e} {e:?}");
        assert!(text.contains("tls.key"), "{text}");
        assert!(!text.contains(marker), "{text}");

        let e = TlsReloader::load(settings(&files, "no certificate here", &bad_key))
            .err()
            .expect("no certificate");
        assert!(e.to_string().contains("holds no CERTIFICATE"), "{e}");

        let mut missing = settings(&files, &cert, &bad_key);
        missing.cert_file = files.0.join("absent.crt");
        let e = TlsReloader::load(missing).err().expect("missing file");
        assert!(e.to_string().contains("absent.crt"), "{e}");
    }
}

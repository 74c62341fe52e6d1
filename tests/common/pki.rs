//! Certificates made in the test: a CA, server and client leaves, written as
//! PEM files into a [`Dir`].

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, SanType};
use std::path::PathBuf;

pub use super::temp::TempDir as Dir;

/// A certificate authority that signs leaves.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A leaf certificate and its key, as PEM.
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: Vec<u8>,
}

impl Ca {
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().expect("key");
        Self {
            issuer: CertifiedIssuer::self_signed(params, key).expect("CA"),
        }
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server certificate for `localhost` and 127.0.0.1.
    pub fn server(&self) -> Leaf {
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
        params
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        params
            .distinguished_name
            .push(DnType::CommonName, "gateway");
        self.sign(params)
    }

    /// A client certificate with common name `cn` and, if given, a DNS and a
    /// URI subject alternative name.
    pub fn client(&self, cn: &str, dns: Option<&str>, uri: Option<&str>) -> Leaf {
        let mut params =
            CertificateParams::new(dns.map(str::to_owned).into_iter().collect::<Vec<_>>())
                .expect("params");
        params.distinguished_name.push(DnType::CommonName, cn);
        if let Some(uri) = uri {
            params
                .subject_alt_names
                .push(SanType::URI(uri.try_into().expect("uri")));
        }
        self.sign(params)
    }

    fn sign(&self, params: CertificateParams) -> Leaf {
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("signed");
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }
}

/// Writes a server leaf as `server.crt` and `server.key` in `dir`.
pub fn write_server(dir: &Dir, leaf: &Leaf) -> (PathBuf, PathBuf) {
    // Key first: a reader that sees the new certificate must find its key.
    let key = dir.write("server.key", &leaf.key_pem);
    let cert = dir.write("server.crt", &leaf.cert_pem);
    (cert, key)
}

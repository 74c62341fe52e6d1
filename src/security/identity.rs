//! Caller identities: the names a connection or a token vouches for, in the
//! `kind:value` form the policy file uses.

use std::fmt;
use std::sync::Arc;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// One name a caller is known by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identity {
    /// A client certificate's subject common name.
    Cn(String),
    /// A client certificate's DNS subject alternative name.
    Dns(String),
    /// A client certificate's URI subject alternative name (e.g. SPIFFE).
    Uri(String),
    /// A client certificate's email subject alternative name.
    Email(String),
    /// A bearer JWT's subject claim, from the configured issuer.
    Jwt(String),
}

impl Identity {
    /// True for names that come from a client certificate.
    pub fn is_certificate(&self) -> bool {
        !matches!(self, Identity::Jwt(_))
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kind, value) = match self {
            Identity::Cn(v) => ("cn", v),
            Identity::Dns(v) => ("dns", v),
            Identity::Uri(v) => ("uri", v),
            Identity::Email(v) => ("email", v),
            Identity::Jwt(v) => ("jwt", v),
        };
        write!(f, "{kind}:{value}")
    }
}

impl std::str::FromStr for Identity {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, value) = s
            .split_once(':')
            .ok_or_else(|| format!("{s:?}: expected KIND:VALUE (cn, dns, uri, email or jwt)"))?;
        if value.is_empty() {
            return Err(format!("{s:?}: the value after {kind}: is empty"));
        }
        let value = value.to_owned();
        Ok(match kind {
            "cn" => Identity::Cn(value),
            // DNS names compare case-insensitively.
            "dns" => Identity::Dns(value.to_ascii_lowercase()),
            "uri" => Identity::Uri(value),
            "email" => Identity::Email(value),
            "jwt" => Identity::Jwt(value),
            other => {
                return Err(format!(
                    "{s:?}: unknown kind {other:?}; use cn, dns, uri, email or jwt"
                ))
            }
        })
    }
}

/// What the connection tells about its peer; tonic puts it in every
/// request's extensions.
#[derive(Debug, Clone, Default)]
pub struct PeerInfo {
    pub remote: Option<std::net::SocketAddr>,
    /// The names in the verified client certificate (mutual TLS only).
    pub certificate: Option<Arc<[Identity]>>,
    /// The connection's open calls, for its idle deadline.
    pub activity: Option<Arc<crate::listener::Activity>>,
}

/// The names a verified client certificate carries: subject CNs and the
/// DNS, URI and email subject alternative names. `None` when the
/// certificate cannot be parsed (rustls already verified its chain).
pub fn certificate_names(der: &[u8]) -> Option<Arc<[Identity]>> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let mut names = Vec::new();
    for cn in cert.subject().iter_common_name() {
        if let Ok(cn) = cn.as_str() {
            names.push(Identity::Cn(cn.to_owned()));
        }
    }
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(d) => names.push(Identity::Dns(d.to_ascii_lowercase())),
                GeneralName::URI(u) => names.push(Identity::Uri((*u).to_owned())),
                GeneralName::RFC822Name(e) => names.push(Identity::Email((*e).to_owned())),
                _ => {}
            }
        }
    }
    Some(names.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_parse_and_print_in_policy_form() {
        for text in [
            "cn:patcher",
            "dns:patcher.security.svc",
            "uri:spiffe://cluster.local/ns/security/sa/patcher",
            "email:ops@example.com",
            "jwt:11111111-2222-3333-4444-555555555555",
        ] {
            let id: Identity = text.parse().expect(text);
            assert_eq!(id.to_string(), text);
        }
        let dns: Identity = "dns:Patcher.Example".parse().expect("dns");
        assert_eq!(dns, Identity::Dns("patcher.example".into()));
        for bad in ["patcher", "cn:", "ip:10.0.0.1", ":x"] {
            assert!(bad.parse::<Identity>().is_err(), "{bad}");
        }
    }

    #[test]
    fn names_come_from_the_certificate() {
        let mut params =
            rcgen::CertificateParams::new(vec!["Patcher.Security.svc".to_owned()]).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "patcher");
        params.subject_alt_names.push(rcgen::SanType::URI(
            "spiffe://cluster.local/ns/security/sa/patcher"
                .try_into()
                .expect("uri"),
        ));
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("cert");
        let names = certificate_names(cert.der()).expect("parsed");
        assert!(names.contains(&Identity::Cn("patcher".into())));
        assert!(names.contains(&Identity::Dns("patcher.security.svc".into())));
        assert!(names.contains(&Identity::Uri(
            "spiffe://cluster.local/ns/security/sa/patcher".into()
        )));
        assert_eq!(certificate_names(b"not a certificate"), None);
    }
}

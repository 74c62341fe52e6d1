//! The caller policy file (TOML): which callers there are, the names they
//! are recognised by (client-certificate names or JWT subjects), which RPCs
//! each may call, how fast, and which JWT issuer vouches for callers.
//!
//! Health is public unless the policy closes it (the kubelet's gRPC probe
//! has no identity); server reflection, which lists every method and
//! message, answers only the callers the policy names unless it opens it.
//!
//! ```toml
//! [public]
//! health = true       # grpc.health.v1 without a caller identity (default true)
//! reflection = true   # server reflection without a caller identity (default false)
//!
//! [jwt]
//! issuer = "https://login.microsoftonline.com/<tenant>/v2.0"
//! audiences = ["api://graph-grpc-gateway"]
//! jwks_url = "https://login.microsoftonline.com/<tenant>/discovery/v2.0/keys"
//!
//! [defaults]
//! rate_limit = { per_second = 50, burst = 100 }
//!
//! [[callers]]
//! name = "patcher"
//! identities = ["uri:spiffe://cluster.local/ns/security/sa/patcher"]
//! rpcs = ["GetSecurityConfigurationTask", "UpdateSecurityConfigurationTask"]
//! rate_limit = { per_second = 20, burst = 40 }
//! weight = 2          # share of Intune's Graph budget while callers wait (1 to 1000, default 1)
//! ```

use super::identity::Identity;
use super::jwt::JwtSettings;
use super::rate::{Bucket, RateLimit};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use url::Url;

pub use crate::methods::Method;

/// One caller the policy knows.
#[derive(Debug)]
pub struct Caller {
    pub name: Arc<str>,
    methods: crate::methods::MethodSet,
    bucket: Option<Bucket>,
    /// Its share of the Graph budget against other waiting callers.
    pub weight: u32,
}

impl Caller {
    pub fn may_call(&self, method: Method) -> bool {
        self.methods & method.bit() != 0
    }

    /// The caller's rate limit bucket, if it has a limit.
    pub fn bucket(&self) -> Option<&Bucket> {
        self.bucket.as_ref()
    }
}

/// The largest budget weight a caller may have.
pub const MAX_WEIGHT: u32 = 1000;

/// The loaded policy.
#[derive(Debug)]
pub struct Policy {
    pub public_health: bool,
    pub public_reflection: bool,
    pub jwt: Option<JwtSettings>,
    callers: Vec<Caller>,
    by_identity: HashMap<Identity, usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    public: PublicFile,
    jwt: Option<JwtFile>,
    #[serde(default)]
    defaults: DefaultsFile,
    #[serde(default)]
    callers: Vec<CallerFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublicFile {
    #[serde(default = "yes")]
    health: bool,
    #[serde(default)]
    reflection: bool,
}

impl Default for PublicFile {
    fn default() -> Self {
        Self {
            health: true,
            reflection: false,
        }
    }
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JwtFile {
    issuer: String,
    audiences: Vec<String>,
    jwks_url: String,
    #[serde(default)]
    leeway: Option<String>,
    #[serde(default)]
    jwks_refresh: Option<String>,
    #[serde(default)]
    subject_claim: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DefaultsFile {
    rate_limit: Option<RateLimit>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallerFile {
    name: String,
    identities: Vec<String>,
    rpcs: Vec<String>,
    rate_limit: Option<RateLimit>,
    weight: Option<u32>,
}

/// Why a policy file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("reading the policy file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("policy file {path}: {message}")]
    Invalid { path: String, message: String },
}

impl Policy {
    /// Reads and checks the policy file.
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text).map_err(|message| PolicyError::Invalid {
            path: path.display().to_string(),
            message,
        })
    }

    /// Parses and checks a policy; the error names every problem found.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut problems = Vec::new();
        let jwt = file.jwt.map(|j| jwt_policy(j, &mut problems));
        if let Some(p) = file.defaults.rate_limit.and_then(|r| r.problem()) {
            problems.push(format!("defaults.rate_limit: {p}"));
        }
        let mut callers = Vec::new();
        let mut by_identity = HashMap::new();
        let mut names = HashMap::new();
        for (i, c) in file.callers.into_iter().enumerate() {
            let at = format!("callers[{i}] ({:?})", c.name);
            if c.name.trim().is_empty() {
                problems.push(format!("callers[{i}]: name is empty"));
            }
            if names.insert(c.name.clone(), i).is_some() {
                problems.push(format!("{at}: the name is used twice"));
            }
            if c.identities.is_empty() {
                problems.push(format!(
                    "{at}: no identities, so no one could be this caller"
                ));
            }
            for text in &c.identities {
                match text.parse::<Identity>() {
                    Ok(id) => {
                        if matches!(id, Identity::Jwt(_)) && jwt.is_none() {
                            problems.push(format!("{at}: {text} needs a [jwt] section"));
                        }
                        match by_identity.get(&id) {
                            Some(&other) if other != i => {
                                let first: &Caller = &callers[other];
                                problems.push(format!(
                                    "identity {id} names two callers, {:?} (callers[{other}]) and {:?} (callers[{i}]): an identity names one caller",
                                    &*first.name, c.name
                                ));
                            }
                            Some(_) => {}
                            None => {
                                by_identity.insert(id, i);
                            }
                        }
                    }
                    Err(e) => problems.push(format!("{at}: {e}")),
                }
            }
            let mut methods: crate::methods::MethodSet = 0;
            for rpc in &c.rpcs {
                if rpc == "*" {
                    methods = Method::ALL.iter().fold(0, |m, r| m | r.bit());
                } else if let Some(m) = Method::from_name(rpc) {
                    methods |= m.bit();
                } else {
                    let known: Vec<_> = Method::ALL.iter().map(|m| m.name()).collect();
                    problems.push(format!(
                        "{at}: unknown rpc {rpc:?}; use \"*\" or one of {}",
                        known.join(", ")
                    ));
                }
            }
            let limit = c.rate_limit.or(file.defaults.rate_limit);
            if let Some(p) = c.rate_limit.and_then(|r| r.problem()) {
                problems.push(format!("{at}.rate_limit: {p}"));
            }
            let weight = c.weight.unwrap_or(1);
            if !(1..=MAX_WEIGHT).contains(&weight) {
                problems.push(format!("{at}.weight: must be 1 to {MAX_WEIGHT}"));
            }
            callers.push(Caller {
                name: c.name.into(),
                methods,
                bucket: limit.filter(|l| l.problem().is_none()).map(Bucket::new),
                weight,
            });
        }
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
        Ok(Self {
            public_health: file.public.health,
            public_reflection: file.public.reflection,
            jwt: jwt.flatten(),
            callers,
            by_identity,
        })
    }

    /// The caller any of these identities names.
    pub fn caller<'a>(
        &self,
        identities: impl IntoIterator<Item = &'a Identity>,
    ) -> Option<&Caller> {
        identities
            .into_iter()
            .find_map(|id| self.by_identity.get(id))
            .map(|&i| &self.callers[i])
    }

    /// True when some caller is known by a client-certificate name, which
    /// only mutual TLS can vouch for.
    pub fn names_certificates(&self) -> bool {
        self.by_identity.keys().any(Identity::is_certificate)
    }

    pub fn callers(&self) -> impl Iterator<Item = &Caller> {
        self.callers.iter()
    }
}

fn jwt_policy(j: JwtFile, problems: &mut Vec<String>) -> Option<JwtSettings> {
    let jwks_url = match Url::parse(&j.jwks_url) {
        Ok(u) => u,
        Err(e) => {
            problems.push(format!("jwt.jwks_url {:?}: {e}", j.jwks_url));
            return None;
        }
    };
    let mut settings = JwtSettings::new(j.issuer, j.audiences, jwks_url);
    let mut duration = |field: &str, value: Option<String>, into: &mut Duration| {
        if let Some(v) = value {
            match humantime::parse_duration(&v) {
                Ok(d) => *into = d,
                Err(e) => problems.push(format!("jwt.{field}: {v:?}: {e}")),
            }
        }
    };
    duration("leeway", j.leeway, &mut settings.leeway);
    duration("jwks_refresh", j.jwks_refresh, &mut settings.refresh);
    if let Some(claim) = j.subject_claim {
        settings.subject_claim = claim;
    }
    if let Err(found) = settings.validate() {
        problems.extend(found.into_iter().map(|p| format!("jwt: {p}")));
    }
    Some(settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
[public]
health = true
reflection = false

[jwt]
issuer = "https://issuer.example/tenant/v2.0"
audiences = ["api://graph-grpc-gateway"]
jwks_url = "https://issuer.example/tenant/keys"
leeway = "30s"

[defaults]
rate_limit = { per_second = 50, burst = 100 }

[[callers]]
name = "patcher"
identities = ["uri:spiffe://cluster.local/ns/security/sa/patcher", "jwt:app-1"]
rpcs = ["GetSecurityConfigurationTask", "UpdateSecurityConfigurationTask"]
rate_limit = { per_second = 2, burst = 4 }

[[callers]]
name = "dashboard"
identities = ["dns:dashboard.monitoring.svc", "cn:dashboard"]
rpcs = ["GetSecurityConfigurationTask", "ListSecurityConfigurationTasks"]

[[callers]]
name = "admin"
identities = ["email:ops@example.com"]
rpcs = ["*"]
"#;

    #[test]
    fn the_helm_charts_example_policy_is_valid() {
        let p = Policy::from_toml(include_str!("../../tests/helm/policy/example.toml"))
            .expect("the chart's example parses");
        let patcher = p
            .caller([&Identity::Jwt(
                "11111111-2222-3333-4444-555555555555".into(),
            )])
            .expect("patcher");
        assert!(patcher.may_call(Method::Update));
        assert!(patcher.may_call(Method::SetStatus));
        assert!(!patcher.may_call(Method::Create));
        let provisioner = p
            .caller([&Identity::Uri(
                "spiffe://cluster.local/ns/security/sa/provisioner".into(),
            )])
            .expect("provisioner");
        for m in [Method::Get, Method::List, Method::Create, Method::Delete] {
            assert!(provisioner.may_call(m), "{}", m.name());
        }
        assert!(!provisioner.may_call(Method::Update));
        // The read-only example stays read-only.
        let dashboard = p
            .caller([&Identity::Dns("dashboard.monitoring.svc".into())])
            .expect("dashboard");
        for m in Method::ALL {
            assert_eq!(dashboard.may_call(m), !m.is_mutating(), "{}", m.name());
        }
    }

    /// The lifecycle RPCs are named as the proto names them, each one
    /// granting exactly itself.
    #[test]
    fn a_policy_naming_the_lifecycle_rpcs_grants_exactly_them() {
        let p = Policy::from_toml(
            "[[callers]]\nname = \"provisioner\"\nidentities = [\"cn:provisioner\"]\n\
             rpcs = [\"CreateSecurityConfigurationTask\", \"DeleteSecurityConfigurationTask\"]\n\
             [[callers]]\nname = \"approver\"\nidentities = [\"cn:approver\"]\n\
             rpcs = [\"SetSecurityConfigurationTaskStatus\"]\n",
        )
        .expect("the new names load");
        let provisioner = p
            .caller([&Identity::Cn("provisioner".into())])
            .expect("provisioner");
        let approver = p
            .caller([&Identity::Cn("approver".into())])
            .expect("approver");
        for m in Method::ALL {
            assert_eq!(
                provisioner.may_call(m),
                matches!(m, Method::Create | Method::Delete),
                "provisioner, {}",
                m.name()
            );
            assert_eq!(
                approver.may_call(m),
                m == Method::SetStatus,
                "approver, {}",
                m.name()
            );
        }
    }

    #[test]
    fn an_unknown_rpc_is_refused_with_every_known_name() {
        let e = Policy::from_toml(
            "[[callers]]\nname = \"a\"\nidentities = [\"cn:a\"]\n\
             rpcs = [\"CreateSecurityConfigurationTasks\", \"SetStatus\"]\n",
        )
        .expect_err("not RPC names");
        assert!(
            e.contains("unknown rpc \"CreateSecurityConfigurationTasks\""),
            "{e}"
        );
        assert!(e.contains("unknown rpc \"SetStatus\""), "{e}");
        for name in [
            "GetSecurityConfigurationTask",
            "ListSecurityConfigurationTasks",
            "UpdateSecurityConfigurationTask",
            "CreateSecurityConfigurationTask",
            "DeleteSecurityConfigurationTask",
            "SetSecurityConfigurationTaskStatus",
        ] {
            assert!(
                e.contains(&format!("{name},")) || e.contains(&format!(", {name}")),
                "{name} missing from: {e}"
            );
        }
        // The list is the method table's, whole.
        let known: Vec<_> = Method::ALL.iter().map(|m| m.name()).collect();
        assert!(e.contains(&known.join(", ")), "{e}");
    }

    #[test]
    fn the_example_policy_reads_as_written() {
        let p = Policy::from_toml(EXAMPLE).expect("valid");
        assert!(p.public_health);
        assert!(!p.public_reflection);
        let jwt = p.jwt.as_ref().expect("jwt");
        assert_eq!(jwt.leeway, Duration::from_secs(30));
        assert_eq!(jwt.refresh, Duration::from_secs(3600));
        assert_eq!(jwt.subject_claim, "sub");
        assert!(p.names_certificates());

        let patcher = p.caller([&Identity::Jwt("app-1".into())]).expect("patcher");
        assert_eq!(&*patcher.name, "patcher");
        assert!(patcher.may_call(Method::Update));
        assert!(!patcher.may_call(Method::List));

        let dashboard = p
            .caller([
                &Identity::Uri("x".into()),
                &Identity::Cn("dashboard".into()),
            ])
            .expect("dashboard by its CN");
        assert_eq!(&*dashboard.name, "dashboard");
        assert!(dashboard.may_call(Method::Get));
        assert!(!dashboard.may_call(Method::Update));
        // No own limit: the default applies.
        assert!(dashboard.bucket().is_some());

        let admin = p
            .caller([&Identity::Email("ops@example.com".into())])
            .expect("admin");
        assert!(Method::ALL.iter().all(|m| admin.may_call(*m)));

        assert!(p.caller([&Identity::Jwt("someone-else".into())]).is_none());
        assert!(p.caller([&Identity::Cn("patcher".into())]).is_none());
    }

    #[test]
    fn every_problem_is_named() {
        let bad = r#"
[jwt]
issuer = ""
audiences = []
jwks_url = "http://keys.example/keys"
leeway = "soon"

[[callers]]
name = "a"
identities = ["jwt:x", "ip:10.0.0.1"]
rpcs = ["DeleteEverything"]
rate_limit = { per_second = 0, burst = 0 }

[[callers]]
name = "a"
identities = ["jwt:x"]
rpcs = ["*"]

[[callers]]
name = "nobody"
identities = []
rpcs = ["*"]
"#;
        let e = Policy::from_toml(bad).expect_err("invalid");
        for expected in [
            "the JWT issuer is empty",
            "audiences must be a non-empty list",
            "must be https://",
            "jwt.leeway",
            "unknown kind \"ip\"",
            "unknown rpc \"DeleteEverything\"",
            "per_second must be a positive number",
            "the name is used twice",
            "identity jwt:x names two callers, \"a\" (callers[0]) and \"a\" (callers[1])",
            "no identities",
        ] {
            assert!(e.contains(expected), "{expected:?} missing from: {e}");
        }
    }

    #[test]
    fn an_identity_naming_two_callers_is_refused_with_both_names() {
        let policy = |first: &str, second: &str| {
            format!(
                "[jwt]\nissuer = \"i\"\naudiences = [\"a\"]\njwks_url = \"http://127.0.0.1:9/keys\"\n\
                 [[callers]]\nname = \"reader\"\nidentities = [\"jwt:other\", {first:?}]\nrpcs = [\"ListSecurityConfigurationTasks\"]\n\
                 [[callers]]\nname = \"writer\"\nidentities = [{second:?}]\nrpcs = [\"*\"]\n"
            )
        };
        for (first, second, named) in [
            ("jwt:app-1", "jwt:app-1", "jwt:app-1"),
            ("cn:ops", "cn:ops", "cn:ops"),
            (
                "uri:spiffe://c/ns/a/sa/b",
                "uri:spiffe://c/ns/a/sa/b",
                "uri:spiffe://c/ns/a/sa/b",
            ),
            (
                "email:ops@example.com",
                "email:ops@example.com",
                "email:ops@example.com",
            ),
            // DNS names compare case-insensitively, so these are one name.
            (
                "dns:Patcher.Example",
                "dns:patcher.example",
                "dns:patcher.example",
            ),
        ] {
            let e = Policy::from_toml(&policy(first, second)).expect_err(first);
            assert!(
                e.contains(&format!(
                    "identity {named} names two callers, \"reader\" (callers[0]) and \"writer\" (callers[1])"
                )),
                "{first} / {second}: {e}"
            );
        }
        // The same name twice in one caller, or names that differ, are fine.
        Policy::from_toml(&policy("jwt:app-1", "jwt:app-2")).expect("distinct");
        Policy::from_toml(&policy("jwt:other", "cn:other")).expect("kinds differ");
        // A JWT subject and a certificate CN with the same text are different identities.
        Policy::from_toml(&policy("jwt:ops", "cn:ops")).expect("different kinds");
    }

    #[test]
    fn jwt_identities_need_an_issuer_and_unknown_keys_are_refused() {
        let e = Policy::from_toml(
            "[[callers]]\nname = \"a\"\nidentities = [\"jwt:x\"]\nrpcs = [\"*\"]\n",
        )
        .expect_err("no jwt section");
        assert!(e.contains("needs a [jwt] section"), "{e}");
        let e = Policy::from_toml("[public]\nhealth = true\nmetrics = true\n").expect_err("typo");
        assert!(e.contains("metrics"), "{e}");
    }

    #[test]
    fn loopback_jwks_may_be_http_and_empty_policies_allow_no_one() {
        let p = Policy::from_toml(
            "[jwt]\nissuer = \"i\"\naudiences = [\"a\"]\njwks_url = \"http://127.0.0.1:9/keys\"\n",
        )
        .expect("loopback http");
        assert!(p.jwt.is_some());
        assert!(!p.names_certificates());
        let empty = Policy::from_toml("").expect("empty");
        assert!(empty.caller([&Identity::Cn("x".into())]).is_none());
    }

    #[test]
    fn health_is_public_and_reflection_private_unless_the_policy_says_otherwise() {
        for (text, health, reflection) in [
            ("", true, false),
            ("[public]\n", true, false),
            ("[public]\nhealth = true\n", true, false),
            ("[public]\nreflection = true\n", true, true),
            ("[public]\nhealth = false\nreflection = true\n", false, true),
            ("[public]\nhealth = false\n", false, false),
        ] {
            let p = Policy::from_toml(text).expect(text);
            assert_eq!(
                (p.public_health, p.public_reflection),
                (health, reflection),
                "{text:?}"
            );
        }
    }
}

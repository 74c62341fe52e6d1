//! Microsoft's national clouds: each has its own Entra ID authority and its
//! own Graph, and a token from one is no good in another.

use std::fmt;

/// A Microsoft cloud: picks the authority host, the Graph base URL and the
/// token scope together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Cloud {
    /// The global cloud (login.microsoftonline.com, graph.microsoft.com).
    #[default]
    #[value(name = "global")]
    Global,
    /// US Government L4, GCC High (login.microsoftonline.us, graph.microsoft.us).
    #[value(name = "usgov")]
    UsGov,
    /// US Government L5, DoD (login.microsoftonline.us, dod-graph.microsoft.us).
    #[value(name = "usgovdod")]
    UsGovDod,
    /// Microsoft Azure operated by 21Vianet (login.chinacloudapi.cn,
    /// microsoftgraph.chinacloudapi.cn).
    #[value(name = "china")]
    China,
}

impl Cloud {
    pub const ALL: [Cloud; 4] = [Cloud::Global, Cloud::UsGov, Cloud::UsGovDod, Cloud::China];

    /// The `GRAPH_CLOUD` value naming this cloud.
    pub fn name(self) -> &'static str {
        match self {
            Cloud::Global => "global",
            Cloud::UsGov => "usgov",
            Cloud::UsGovDod => "usgovdod",
            Cloud::China => "china",
        }
    }

    /// The Entra ID authority host, e.g. `https://login.microsoftonline.com`.
    pub fn authority_host(self) -> &'static str {
        match self {
            Cloud::Global => "https://login.microsoftonline.com",
            Cloud::UsGov | Cloud::UsGovDod => "https://login.microsoftonline.us",
            Cloud::China => "https://login.chinacloudapi.cn",
        }
    }

    /// The Graph host name, e.g. `graph.microsoft.com`.
    pub fn graph_host(self) -> &'static str {
        match self {
            Cloud::Global => "graph.microsoft.com",
            Cloud::UsGov => "graph.microsoft.us",
            Cloud::UsGovDod => "dod-graph.microsoft.us",
            Cloud::China => "microsoftgraph.chinacloudapi.cn",
        }
    }

    /// The Graph beta base URL, `https://{graph host}/beta`.
    pub fn graph_base_url(self) -> String {
        format!("https://{}/beta", self.graph_host())
    }

    /// The client-credentials scope, `https://{graph host}/.default`.
    pub fn scope(self) -> String {
        format!("https://{}/.default", self.graph_host())
    }

    /// The cloud whose Graph is at `host`, if it is one of them.
    pub fn of_graph_host(host: &str) -> Option<Cloud> {
        Self::ALL
            .into_iter()
            .find(|c| host.eq_ignore_ascii_case(c.graph_host()))
    }

    /// The clouds whose authority is at `host` (the two US Government clouds
    /// share one); empty for any other host.
    pub fn of_authority_host(host: &str) -> Vec<Cloud> {
        Self::ALL
            .into_iter()
            .filter(|c| {
                c.authority_host()
                    .strip_prefix("https://")
                    .is_some_and(|h| host.eq_ignore_ascii_case(h))
            })
            .collect()
    }
}

impl fmt::Display for Cloud {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    #[test]
    fn each_cloud_names_its_authority_graph_and_scope() {
        let table = [
            (
                "global",
                "https://login.microsoftonline.com",
                "https://graph.microsoft.com/beta",
                "https://graph.microsoft.com/.default",
            ),
            (
                "usgov",
                "https://login.microsoftonline.us",
                "https://graph.microsoft.us/beta",
                "https://graph.microsoft.us/.default",
            ),
            (
                "usgovdod",
                "https://login.microsoftonline.us",
                "https://dod-graph.microsoft.us/beta",
                "https://dod-graph.microsoft.us/.default",
            ),
            (
                "china",
                "https://login.chinacloudapi.cn",
                "https://microsoftgraph.chinacloudapi.cn/beta",
                "https://microsoftgraph.chinacloudapi.cn/.default",
            ),
        ];
        for (name, authority, base, scope) in table {
            let cloud = Cloud::from_str(name, false).expect(name);
            assert_eq!(cloud.name(), name);
            assert_eq!(cloud.to_string(), name);
            assert_eq!(cloud.authority_host(), authority, "{name}");
            assert_eq!(cloud.graph_base_url(), base, "{name}");
            assert_eq!(cloud.scope(), scope, "{name}");
            assert_eq!(Cloud::of_graph_host(cloud.graph_host()), Some(cloud));
            assert!(Cloud::of_authority_host(&authority[8..]).contains(&cloud));
        }
        assert_eq!(Cloud::default(), Cloud::Global);
        assert_eq!(
            Cloud::of_authority_host("LOGIN.microsoftonline.us"),
            vec![Cloud::UsGov, Cloud::UsGovDod]
        );
        assert_eq!(Cloud::of_graph_host("127.0.0.1"), None);
        assert!(Cloud::of_authority_host("localhost").is_empty());
    }
}

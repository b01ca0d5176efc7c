//! How the demo ends: the commands to go on with, against the cluster it
//! leaves running, each one pasteable as printed. Pure, so its wording is
//! tested without a cluster.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use super::shell;
use super::traffic::PROXY_ADMIN_PORT;

/// What the closing lines need to know.
pub(super) struct NextSteps<'a> {
    /// The cluster's admin kubeconfig (absolute).
    pub(super) kubeconfig: &'a Path,
    /// The folders of `weft` and of the cluster's `kubectl`, for `PATH`.
    pub(super) path: Vec<PathBuf>,
    /// The sample's namespace.
    pub(super) namespace: &'a str,
    /// The Deployment the report was about.
    pub(super) deployment: &'a str,
    /// The sample's manifest.
    pub(super) manifest: &'a Path,
    /// A meshed pod's name and IP, whose proxy metrics are worth a look.
    pub(super) proxy: Option<(&'a str, Ipv4Addr)>,
    /// The command that stops the cluster.
    pub(super) down: String,
}

impl NextSteps<'_> {
    /// The closing lines.
    pub(super) fn render(&self) -> Vec<String> {
        let ns = self.namespace;
        let path: Vec<String> = self.path.iter().map(|p| p.display().to_string()).collect();
        let mut lines = vec![
            "What to try next (the cluster keeps running):".to_string(),
            format!(
                "  export KUBECONFIG={}",
                shell::word(&self.kubeconfig.display().to_string())
            ),
            format!(
                "  export PATH={}:$PATH    # weft, and a kubectl of the cluster's release",
                shell::word(&path.join(":"))
            ),
            format!("  kubectl get pods -n {ns} -o wide"),
            format!(
                "  kubectl logs -n {ns} deploy/{} -c weft-proxy",
                self.deployment
            ),
        ];
        if let Some((who, ip)) = self.proxy {
            lines.push(format!(
                "  curl -s http://{ip}:{PROXY_ADMIN_PORT}/metrics | grep '^response_total'    # {who}'s proxy, from this machine"
            ));
        }
        lines.push(format!(
            "  weft inject --patch {}    # what the webhook adds to each workload, offline",
            shell::word(&self.manifest.display().to_string())
        ));
        lines.push(format!(
            "  {}    # stop the cluster and its node",
            self.down
        ));
        lines.push(
            "weft has no tap, top or stat command today: a proxy's /metrics is where its traffic shows."
                .to_string(),
        );
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_closing_names_the_kubeconfig_the_pod_ip_and_the_way_down() {
        let next = NextSteps {
            kubeconfig: Path::new("/w/e2e/.cluster/kubeconfig"),
            path: vec!["/w/target/debug".into(), "/w/e2e/.bin".into()],
            namespace: "emojivoto",
            deployment: "web",
            manifest: Path::new("/w/examples/emojivoto.yml"),
            proxy: Some(("web", Ipv4Addr::new(10, 89, 0, 7))),
            down: "make cluster-down".to_string(),
        };
        let text = next.render().join("\n");
        assert_eq!(
            text,
            "What to try next (the cluster keeps running):
  export KUBECONFIG=/w/e2e/.cluster/kubeconfig
  export PATH=/w/target/debug:/w/e2e/.bin:$PATH    # weft, and a kubectl of the cluster's release
  kubectl get pods -n emojivoto -o wide
  kubectl logs -n emojivoto deploy/web -c weft-proxy
  curl -s http://10.89.0.7:4191/metrics | grep '^response_total'    # web's proxy, from this machine
  weft inject --patch /w/examples/emojivoto.yml    # what the webhook adds to each workload, offline
  make cluster-down    # stop the cluster and its node
weft has no tap, top or stat command today: a proxy's /metrics is where its traffic shows."
        );
        let without = NextSteps {
            proxy: None,
            ..next
        };
        assert!(!without.render().join("\n").contains("curl"));
    }
}

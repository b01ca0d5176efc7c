//! Step 11: web → voting is mutual TLS with the workloads' identities, as
//! their proxies count it. Each meshed pod's proxy serves its metrics on its
//! admin port, which the host reaches at the pod's IP on the node's bridge,
//! so the demo reads them as `curl` would; the vote-bot drives a vote about
//! once a second.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;

use super::NewPod;
use super::mtls::{self, Call, CallReport, Workload};
use super::progress::Progress;
use super::snapshot::Snapshot;
use crate::error::{Error, Result};
use crate::http;

/// The proxy's admin port (`/metrics`, `/ready`).
pub(super) const PROXY_ADMIN_PORT: u16 = 4191;
/// The call looked for: emojivoto's web calling voting through its Service.
const CLIENT: &str = "web";
const SERVER: &str = "voting";
const SERVICE: &str = "voting-svc";
/// How long both proxies get to count a response of the call.
const SEEN: Duration = Duration::from_secs(90);
/// How long one `/metrics` request may take.
const FETCH: Duration = Duration::from_secs(5);

/// Step 11: waits until web's proxy counts mTLS responses from voting
/// through `voting-svc` and voting's counts them for web, then prints both
/// sides. Skipped (`None`) when the namespace has no new web and voting
/// pods.
pub(super) async fn mtls(
    p: &mut Progress<'_>,
    snap: &Snapshot,
    new_pods: &[NewPod],
    ns: &str,
) -> Result<Option<CallReport>> {
    p.step(format!(
        "{CLIENT} → {SERVER}: mutual TLS with the workloads' identities, from their proxies' metrics"
    ))?;
    let (Some(client), Some(server)) = (
        new_pod(snap, new_pods, CLIENT),
        new_pod(snap, new_pods, SERVER),
    ) else {
        p.done(format!(
            "skipped: namespace {ns} has no deployment/{CLIENT} and deployment/{SERVER} (emojivoto's)"
        ))?;
        return Ok(None);
    };
    let (client_ip, server_ip) = (pod_ip(client)?, pod_ip(server)?);
    let trust_domain = mtls::trust_domain(client);
    let domain = trust_domain
        .clone()
        .unwrap_or_else(|| weft_webhook_config::DEFAULT_TRUST_DOMAIN.to_string());
    let workload = |deployment: &str, pod: &Pod| Workload {
        deployment: deployment.to_string(),
        identity: mtls::spiffe_id(&domain, ns, &mtls::service_account(pod)),
    };
    let call = Call {
        client: workload(CLIENT, client),
        service: SERVICE.to_string(),
        server: workload(SERVER, server),
    };
    p.note(match &trust_domain {
        Some(d) => format!("trust domain {d}, as the injector gave it to {CLIENT}'s proxy"),
        None => {
            format!("trust domain {domain}: {CLIENT}'s proxy names none, so weft install's default")
        }
    })?;
    p.note("each proxy's metrics, read from this machine as these commands read them:")?;
    for (deployment, ip) in [(CLIENT, client_ip), (SERVER, server_ip)] {
        p.note(format!(
            "$ curl -s http://{ip}:{PROXY_ADMIN_PORT}/metrics    # {deployment}'s proxy"
        ))?;
    }
    let report = p
        .until(
            &format!("both proxies counting {CLIENT} → {SERVICE} over mTLS"),
            SEEN,
            || {
                let call = &call;
                async move {
                    let (a, b) = tokio::try_join!(metrics(client_ip), metrics(server_ip))?;
                    call.report(&a, &b)
                }
            },
        )
        .await?;
    for line in report.render() {
        p.note(line)?;
    }
    p.note(format!(
        "server_id: the identity {CLIENT}'s proxy required {SERVER}'s to prove in the TLS handshake; client_id: the one {CLIENT}'s proxy proved with its client certificate"
    ))?;
    if report.any_failed() {
        p.note("the success rate is below 100% by design: emojivoto's voting fails every VoteDoughnut call (gRPC UNKNOWN), and 15% of the vote-bot's votes are for :doughnut:")?;
    }
    p.done(format!(
        "{CLIENT} and {SERVER} talk over mutual TLS, each proving its ServiceAccount's identity"
    ))?;
    Ok(Some(report))
}

/// The client's Deployment and its new pod's IP, when it has one: whose
/// metrics a user would look at next.
pub(super) fn client_proxy(
    snap: &Snapshot,
    new_pods: &[NewPod],
) -> Option<(&'static str, Ipv4Addr)> {
    let pod = new_pod(snap, new_pods, CLIENT)?;
    Some((CLIENT, pod_ip(pod).ok()?))
}

/// `deployment`'s pod created by the restart, as listed in `snap`.
fn new_pod<'s>(snap: &'s Snapshot, new_pods: &[NewPod], deployment: &str) -> Option<&'s Pod> {
    let name = &new_pods.iter().find(|n| n.deployment == deployment)?.pod;
    snap.pods
        .iter()
        .find(|p| p.metadata.name.as_ref() == Some(name))
}

/// `pod`'s IP on the node's bridge.
fn pod_ip(pod: &Pod) -> Result<Ipv4Addr> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let ip = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.as_deref())
        .ok_or_else(|| Error::Demo(format!("pod {name} has no IP")))?;
    ip.parse()
        .map_err(|e| Error::Demo(format!("pod {name}'s IP {ip}: {e}")))
}

/// The metrics of the proxy at `ip`; an error is a reason to look again.
async fn metrics(ip: Ipv4Addr) -> std::result::Result<String, String> {
    let addr = SocketAddr::from((ip, PROXY_ADMIN_PORT));
    let r = http::get_from(addr, "/metrics", FETCH)
        .await
        .map_err(|e| e.to_string())?;
    if r.status == 200 {
        Ok(r.body)
    } else {
        Err(format!("GET http://{addr}/metrics: {}", r.status))
    }
}

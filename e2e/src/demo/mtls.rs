//! Whether one call between meshed workloads is mutual TLS with the right
//! identities, as the two proxies count it in `response_total`: the
//! client's proxy labels its outbound responses with the identity the server
//! proved in the handshake (`server_id`) and the Service it called
//! (`dst_service`), the server's proxy labels its inbound responses with the
//! client's (`client_id`). Pure: it reads metrics text the demo fetched.

use k8s_openapi::api::core::v1::Pod;

use crate::metrics::metric;

/// The proxies' response counter.
const RESPONSE_TOTAL: &str = "response_total";
/// The proxy's variable naming its SPIFFE trust domain (set by the injector).
const TRUST_DOMAIN_ENV: &str = "WEFT_PROXY_IDENTITY_TRUST_DOMAIN";

/// One side of a call: a Deployment and the identity of its pods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    /// The Deployment (`web`).
    pub deployment: String,
    /// Its ServiceAccount's SPIFFE identity.
    pub identity: String,
}

/// The call to look for: `client` calling Service `service`, served by
/// `server`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The caller.
    pub client: Workload,
    /// The Service it calls (`voting-svc`).
    pub service: String,
    /// The workload behind the Service.
    pub server: Workload,
}

/// What one proxy counted for the call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tally {
    /// Responses, of every classification.
    pub responses: f64,
    /// Those classified `success`.
    pub successes: f64,
}

impl Tally {
    /// Successes as a percentage of responses; `None` without responses.
    pub fn success_rate(&self) -> Option<f64> {
        (self.responses > 0.0).then(|| 100.0 * self.successes / self.responses)
    }
}

/// The call as both proxies counted it.
#[derive(Debug, Clone, PartialEq)]
pub struct CallReport {
    /// The call.
    pub call: Call,
    /// The client proxy's outbound responses from the server over mTLS.
    pub outbound: Tally,
    /// The server proxy's inbound responses to the client over mTLS.
    pub inbound: Tally,
}

/// `spiffe://<trust domain>/ns/<namespace>/sa/<service account>`.
pub(crate) fn spiffe_id(trust_domain: &str, namespace: &str, service_account: &str) -> String {
    format!("spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}")
}

/// The trust domain `pod`'s injected proxy was given, if it names one.
pub(crate) fn trust_domain(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    spec.init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
        .filter(|c| c.name == "weft-proxy")
        .flat_map(|c| c.env.iter().flatten())
        .find(|e| e.name == TRUST_DOMAIN_ENV)
        .and_then(|e| e.value.clone())
}

/// The ServiceAccount `pod` runs as (`default` when it names none).
pub(crate) fn service_account(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_else(|| "default".to_string())
}

impl Call {
    fn outbound_labels(&self) -> [(&str, &str); 4] {
        [
            ("direction", "outbound"),
            ("tls", "true"),
            ("server_id", &self.server.identity),
            ("dst_service", &self.service),
        ]
    }

    fn inbound_labels(&self) -> [(&str, &str); 3] {
        [
            ("direction", "inbound"),
            ("tls", "true"),
            ("client_id", &self.client.identity),
        ]
    }

    /// The client proxy's outbound responses for the call, in its metrics.
    pub fn outbound(&self, client_metrics: &str) -> Tally {
        tally(client_metrics, &self.outbound_labels())
    }

    /// The server proxy's inbound responses for the call, in its metrics.
    pub fn inbound(&self, server_metrics: &str) -> Tally {
        tally(server_metrics, &self.inbound_labels())
    }

    /// The report once both proxies have counted a response of the call;
    /// else what each one lacks, in words.
    pub fn report(
        &self,
        client_metrics: &str,
        server_metrics: &str,
    ) -> std::result::Result<CallReport, String> {
        let outbound = self.outbound(client_metrics);
        let inbound = self.inbound(server_metrics);
        let mut missing = Vec::new();
        if outbound.responses == 0.0 {
            missing.push(self.outbound_missing(client_metrics));
        }
        if inbound.responses == 0.0 {
            missing.push(self.inbound_missing(server_metrics));
        }
        if missing.is_empty() {
            Ok(CallReport {
                call: self.clone(),
                outbound,
                inbound,
            })
        } else {
            Err(missing.join("; "))
        }
    }

    /// Why the client's proxy shows no response of the call: the nearest
    /// thing it does show.
    fn outbound_missing(&self, text: &str) -> String {
        let client = &self.client.deployment;
        let server_id = &self.server.identity;
        let labels = self.outbound_labels();
        let from_server = count(metric(text, RESPONSE_TOTAL, &labels[..3]));
        let mtls = count(metric(text, RESPONSE_TOTAL, &labels[..2]));
        let plain = count(metric(
            text,
            RESPONSE_TOTAL,
            &[("direction", "outbound"), ("tls", "false")],
        ));
        if from_server > 0 {
            format!(
                "{client}'s proxy: {from_server} mTLS responses from server_id {server_id}, none labelled dst_service=\"{}\"",
                self.service
            )
        } else if mtls > 0 {
            format!(
                "{client}'s proxy: {mtls} outbound mTLS responses, none from server_id {server_id}"
            )
        } else {
            format!("{client}'s proxy: no outbound mTLS response yet ({plain} without TLS)")
        }
    }

    /// Why the server's proxy shows no response of the call.
    fn inbound_missing(&self, text: &str) -> String {
        let server = &self.server.deployment;
        let labels = self.inbound_labels();
        let mtls = count(metric(text, RESPONSE_TOTAL, &labels[..2]));
        let all = count(metric(text, RESPONSE_TOTAL, &labels[..1]));
        if mtls > 0 {
            format!(
                "{server}'s proxy: {mtls} inbound mTLS responses, none for client_id {}",
                self.client.identity
            )
        } else {
            format!("{server}'s proxy: no inbound mTLS response yet ({all} without TLS)")
        }
    }
}

/// The responses of the series carrying `labels`, and their successes.
fn tally(text: &str, labels: &[(&str, &str)]) -> Tally {
    let mut success = labels.to_vec();
    success.push(("classification", "success"));
    Tally {
        responses: metric(text, RESPONSE_TOTAL, labels),
        successes: metric(text, RESPONSE_TOTAL, &success),
    }
}

impl CallReport {
    /// One line per side:
    /// `web → voting-svc: mTLS, server_id spiffe://..., 57 responses, success rate 86.0%`.
    pub fn render(&self) -> [String; 2] {
        let Call {
            client,
            service,
            server,
        } = &self.call;
        [
            format!(
                "{} → {service}: mTLS, server_id {}, {}",
                client.deployment,
                server.identity,
                counted(&self.outbound)
            ),
            format!(
                "{} ← {}: mTLS, client_id {}, {}",
                server.deployment,
                client.deployment,
                client.identity,
                counted(&self.inbound)
            ),
        ]
    }

    /// Whether either side counted a failure.
    pub fn any_failed(&self) -> bool {
        self.outbound.successes < self.outbound.responses
            || self.inbound.successes < self.inbound.responses
    }
}

/// `57 responses, success rate 86.0%`.
fn counted(t: &Tally) -> String {
    let rate = t
        .success_rate()
        .map_or_else(|| "no".to_string(), |r| format!("{r:.1}%"));
    let n = count(t.responses);
    let plural = if n == 1 { "" } else { "s" };
    format!("{n} response{plural}, success rate {rate}")
}

/// A counter's value as the whole number it is (an empty sum is -0.0).
fn count(value: f64) -> u64 {
    value.round().max(0.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const WEB: &str = "spiffe://cluster.local/ns/emojivoto/sa/web";
    const VOTING: &str = "spiffe://cluster.local/ns/emojivoto/sa/voting";

    fn call() -> Call {
        Call {
            client: Workload {
                deployment: "web".into(),
                identity: spiffe_id("cluster.local", "emojivoto", "web"),
            },
            service: "voting-svc".into(),
            server: Workload {
                deployment: "voting".into(),
                identity: spiffe_id("cluster.local", "emojivoto", "voting"),
            },
        }
    }

    /// web's proxy: votes to voting-svc (one failed, VoteDoughnut), a list
    /// from emoji-svc, and its inbound from the vote-bot.
    fn web_metrics() -> String {
        format!(
            r#"# HELP response_total Responses.
# TYPE response_total counter
response_total{{direction="outbound",tls="true",server_id="{VOTING}",dst_deployment="voting",dst_namespace="emojivoto",dst_service="voting-svc",dst_port="8080",authority="voting-svc.emojivoto:8080",status_code="200",grpc_status="0",classification="success"}} 6
response_total{{direction="outbound",tls="true",server_id="{VOTING}",dst_deployment="voting",dst_namespace="emojivoto",dst_service="voting-svc",dst_port="8080",authority="voting-svc.emojivoto:8080",status_code="200",grpc_status="2",classification="failure"}} 1
response_total{{direction="outbound",tls="true",server_id="spiffe://cluster.local/ns/emojivoto/sa/emoji",dst_service="emoji-svc",dst_port="8080",authority="emoji-svc.emojivoto:8080",status_code="200",grpc_status="0",classification="success"}} 9
response_total{{direction="inbound",tls="false",dst_port="8080",authority="web-svc.emojivoto:80",status_code="200",grpc_status="",classification="success"}} 7
"#
        )
    }

    fn voting_metrics() -> String {
        format!(
            r#"response_total{{direction="inbound",tls="true",client_id="{WEB}",dst_port="8080",authority="voting-svc.emojivoto:8080",status_code="200",grpc_status="0",classification="success"}} 5
response_total{{direction="inbound",tls="true",client_id="{WEB}",dst_port="8080",authority="voting-svc.emojivoto:8080",status_code="200",grpc_status="2",classification="failure"}} 1
response_total{{direction="inbound",tls="false",dst_port="8801",authority="10.89.0.9:8801",status_code="200",grpc_status="",classification="success"}} 40
"#
        )
    }

    #[test]
    fn both_sides_are_found_and_summarised() {
        let report = call()
            .report(&web_metrics(), &voting_metrics())
            .expect("both sides counted");
        assert_eq!(
            report.outbound,
            Tally {
                responses: 7.0,
                successes: 6.0
            }
        );
        assert_eq!(
            report.inbound,
            Tally {
                responses: 6.0,
                successes: 5.0
            }
        );
        assert!(report.any_failed());
        assert_eq!(
            report.render(),
            [
                format!(
                    "web → voting-svc: mTLS, server_id {VOTING}, 7 responses, success rate 85.7%"
                ),
                format!("voting ← web: mTLS, client_id {WEB}, 6 responses, success rate 83.3%"),
            ]
        );
    }

    #[test]
    fn what_is_missing_names_the_nearest_series() {
        let c = call();
        // Nothing yet on either side.
        let why = c.report("", "").expect_err("nothing counted");
        assert_eq!(
            why,
            "web's proxy: no outbound mTLS response yet (0 without TLS); \
             voting's proxy: no inbound mTLS response yet (0 without TLS)"
        );
        // mTLS to voting, but the Service not labelled yet.
        let unlabelled = format!(
            r#"response_total{{direction="outbound",tls="true",server_id="{VOTING}",dst_port="8080",classification="success"}} 3
"#
        );
        let why = c
            .report(&unlabelled, &voting_metrics())
            .expect_err("no dst_service");
        assert_eq!(
            why,
            format!(
                "web's proxy: 3 mTLS responses from server_id {VOTING}, none labelled dst_service=\"voting-svc\""
            )
        );
        // The wrong identity on either side.
        let other = web_metrics().replace(VOTING, "spiffe://cluster.local/ns/emojivoto/sa/x");
        let stranger = voting_metrics().replace(WEB, "spiffe://cluster.local/ns/emojivoto/sa/y");
        let why = c.report(&other, &stranger).expect_err("wrong identities");
        assert_eq!(
            why,
            format!(
                "web's proxy: 16 outbound mTLS responses, none from server_id {VOTING}; \
                 voting's proxy: 6 inbound mTLS responses, none for client_id {WEB}"
            )
        );
        // Plaintext only.
        let plain = r#"response_total{direction="outbound",tls="false",dst_port="8080",classification="success"} 4
"#;
        let why = c.report(plain, &voting_metrics()).expect_err("plaintext");
        assert_eq!(
            why,
            "web's proxy: no outbound mTLS response yet (4 without TLS)"
        );
    }

    #[test]
    fn a_call_without_failures_has_a_full_success_rate() {
        let only_ok: String = web_metrics()
            .lines()
            .filter(|l| !l.contains("failure"))
            .map(|l| format!("{l}\n"))
            .collect();
        let voting_ok: String = voting_metrics()
            .lines()
            .filter(|l| !l.contains("failure"))
            .map(|l| format!("{l}\n"))
            .collect();
        let report = call().report(&only_ok, &voting_ok).expect("counted");
        assert!(!report.any_failed());
        assert!(report.render()[0].ends_with("6 responses, success rate 100.0%"));
        let one = Tally {
            responses: 1.0,
            successes: 1.0,
        };
        assert_eq!(counted(&one), "1 response, success rate 100.0%");
        let none = Tally {
            responses: 0.0,
            successes: 0.0,
        };
        assert_eq!(none.success_rate(), None);
    }

    #[test]
    fn identities_come_from_the_pod() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web-1"},
            "spec": {
                "serviceAccountName": "web",
                "initContainers": [
                    {"name": "weft-init"},
                    {"name": "weft-proxy", "env": [
                        {"name": "WEFT_PROXY_IDENTITY_TRUST_DOMAIN", "value": "example.org"},
                    ]},
                ],
                "containers": [{"name": "web-svc"}],
            },
        }))
        .expect("pod");
        assert_eq!(trust_domain(&pod).as_deref(), Some("example.org"));
        assert_eq!(service_account(&pod), "web");
        let bare: Pod = serde_json::from_value(json!({
            "metadata": {"name": "x"},
            "spec": {"containers": [{"name": "app"}]},
        }))
        .expect("pod");
        assert_eq!(trust_domain(&bare), None);
        assert_eq!(service_account(&bare), "default");
        assert_eq!(
            spiffe_id("cluster.local", "emojivoto", "web"),
            "spiffe://cluster.local/ns/emojivoto/sa/web"
        );
    }
}

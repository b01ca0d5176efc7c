//! What a node cluster applies once its node is Ready: the RBAC that lets
//! the API server call the kubelet, and cluster DNS (CoreDNS in a pod, on
//! the node, behind the `kube-dns` Service at [`CLUSTER_DNS`]).

use super::config::{CLUSTER_DNS, corefile};
use crate::pki::APISERVER_KUBELET_CLIENT;

/// The CoreDNS image name the node's containerd holds.
pub const COREDNS_IMAGE: &str = "localhost/weft/coredns:v1.15.0";

/// The port CoreDNS listens on in its pod: unprivileged, so the container
/// needs no capability; the Service maps 53 to it.
pub const COREDNS_PORT: u16 = 1053;

/// The manifests, as one multi-document YAML for `kubectl apply -f -`.
pub fn manifests() -> String {
    let corefile = corefile().replace(":53 {", &format!(":{COREDNS_PORT} {{"));
    let corefile: String = corefile.lines().map(|l| format!("    {l}\n")).collect();
    format!(
        r#"# The API server's client for kubelets (logs, exec, port-forward, the
# summary API) gets what the kubelet's webhook authorizer checks for.
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: weft-e2e:apiserver-kubelet-client
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: system:kubelet-api-admin
subjects:
  - apiGroup: rbac.authorization.k8s.io
    kind: User
    name: {APISERVER_KUBELET_CLIENT}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: coredns
  namespace: kube-system
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: weft-e2e:coredns
rules:
  - apiGroups: [""]
    resources: [services, pods, namespaces]
    verbs: [list, watch]
  - apiGroups: [discovery.k8s.io]
    resources: [endpointslices]
    verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: weft-e2e:coredns
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: weft-e2e:coredns
subjects:
  - kind: ServiceAccount
    name: coredns
    namespace: kube-system
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: coredns
  namespace: kube-system
data:
  Corefile: |
{corefile}---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: coredns
  namespace: kube-system
  labels:
    k8s-app: kube-dns
spec:
  replicas: 1
  selector:
    matchLabels:
      k8s-app: kube-dns
  template:
    metadata:
      labels:
        k8s-app: kube-dns
    spec:
      serviceAccountName: coredns
      # Pods get this DNS; CoreDNS itself must not ask itself.
      dnsPolicy: Default
      priorityClassName: system-cluster-critical
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        runAsGroup: 65532
        seccompProfile:
          type: RuntimeDefault
      containers:
        - name: coredns
          image: {COREDNS_IMAGE}
          imagePullPolicy: IfNotPresent
          args: [-conf, /etc/coredns/Corefile]
          ports:
            - {{name: dns, containerPort: {COREDNS_PORT}, protocol: UDP}}
            - {{name: dns-tcp, containerPort: {COREDNS_PORT}, protocol: TCP}}
          readinessProbe:
            httpGet: {{path: /ready, port: 8181}}
            periodSeconds: 2
          livenessProbe:
            httpGet: {{path: /health, port: 8080}}
            periodSeconds: 10
          resources:
            requests: {{cpu: 10m, memory: 32Mi}}
            limits: {{memory: 128Mi}}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities:
              drop: [ALL]
          volumeMounts:
            - {{name: config, mountPath: /etc/coredns, readOnly: true}}
      volumes:
        - name: config
          configMap:
            name: coredns
---
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels:
    k8s-app: kube-dns
spec:
  selector:
    k8s-app: kube-dns
  clusterIP: {CLUSTER_DNS}
  ports:
    - {{name: dns, port: 53, targetPort: {COREDNS_PORT}, protocol: UDP}}
    - {{name: dns-tcp, port: 53, targetPort: {COREDNS_PORT}, protocol: TCP}}
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_document_parses_and_dns_sits_at_the_cluster_address() {
        let text = manifests();
        let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&text)
            .map(|d| serde::Deserialize::deserialize(d).expect("YAML"))
            .collect();
        assert_eq!(docs.len(), 7);
        let service = docs
            .iter()
            .find(|d| d["kind"] == "Service")
            .expect("Service");
        assert_eq!(service["spec"]["clusterIP"], CLUSTER_DNS);
        let cm = docs
            .iter()
            .find(|d| d["kind"] == "ConfigMap")
            .expect("ConfigMap");
        let corefile = cm["data"]["Corefile"].as_str().expect("Corefile");
        assert!(corefile.starts_with(".:1053 {"), "{corefile}");
    }
}

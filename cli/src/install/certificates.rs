//! The webhook's certificates for `weft install`: a CA (new, or the
//! operator's) and a serving certificate for every name the API server may
//! use to reach the injector.

use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use weft_certs::{Ca, DEFAULT_CA_VALIDITY, DEFAULT_SERVING_VALIDITY};
use weft_webhook_config::{INJECTOR_NAME, RenderOptions, Tls, WebhookTarget};

/// The subject of the CAs `weft install` makes.
const CA_NAME: &str = "weft webhook CA";

/// A fresh CA.
pub(super) fn new_ca() -> anyhow::Result<Ca> {
    Ca::generate(CA_NAME, DEFAULT_CA_VALIDITY).context("generating the webhook CA")
}

/// The operator's CA, from `--ca-cert-file` and `--ca-key-file`.
pub(super) fn load_ca(cert_file: &Path, key_file: &Path) -> anyhow::Result<Ca> {
    let read = |path: &Path, flag: &str| {
        std::fs::read_to_string(path)
            .with_context(|| format!("could not read {flag} {}", path.display()))
    };
    let cert_pem = read(cert_file, "--ca-cert-file")?;
    let key_pem = read(key_file, "--ca-key-file")?;
    let ca = Ca::from_pem(&cert_pem, &key_pem).with_context(|| {
        format!(
            "cannot sign with the CA in {} and {} (pass one PEM CA certificate and its PKCS#8 key, \
             or omit both flags to make a new CA)",
            cert_file.display(),
            key_file.display()
        )
    })?;
    let left = ca
        .not_after()
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    if left < DEFAULT_SERVING_VALIDITY {
        eprintln!(
            "warning: the CA in {} expires in {} days; the serving certificate expires with it",
            cert_file.display(),
            left.as_secs() / 86_400
        );
    }
    Ok(ca)
}

/// A serving certificate signed by `ca` for the injector's Service names
/// (and, with `--webhook-url`, the URL's host), as bundled TLS material.
pub(super) fn serving(ca: &Ca, options: &RenderOptions) -> anyhow::Result<Tls> {
    let mut names = weft_certs::webhook_dns_names(INJECTOR_NAME, &options.namespace);
    if let WebhookTarget::Url(url) = &options.webhook_target {
        // The API server checks the URL's host against the certificate.
        if let Some(host) = url_host(url)
            && !names.iter().any(|n| n == host)
        {
            names.push(host.to_owned());
        }
    }
    let serving = ca
        .issue_serving(&names, DEFAULT_SERVING_VALIDITY)
        .context("issuing the webhook's serving certificate")?;
    Ok(Tls::Bundled {
        ca_cert_pem: ca.cert_pem().to_owned(),
        cert_pem: serving.cert_pem,
        key_pem: serving.key_pem,
    })
}

/// The host of an `https://host[:port]/path` URL (brackets removed from an
/// IPv6 literal).
fn url_host(url: &str) -> Option<&str> {
    let authority = url.strip_prefix("https://")?.split('/').next()?;
    let host = match authority.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next()?,
        None => authority.split(':').next()?,
    };
    (!host.is_empty()).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::url_host;

    #[test]
    fn url_hosts_lose_their_port_and_brackets() {
        assert_eq!(url_host("https://127.0.0.1:8443/mutate"), Some("127.0.0.1"));
        assert_eq!(url_host("https://[::1]:8443/mutate"), Some("::1"));
        assert_eq!(
            url_host("https://injector.local/mutate"),
            Some("injector.local")
        );
        assert_eq!(url_host("https://:8443/"), None);
        assert_eq!(url_host("http://x/"), None);
    }
}

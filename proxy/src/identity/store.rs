//! The certificate the proxy presents, swapped in place on renewal.
//!
//! rustls asks [`IdentityStore`] for the certificate at every handshake,
//! inbound (as server) and outbound (as client), so a renewed certificate
//! is used from the next handshake on and open connections are untouched.

use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwapOption;
use rustls::SignatureScheme;
use rustls::client::ResolvesClientCert;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::sync::watch;
use weft_certs::SpiffeId;

#[derive(Debug)]
struct Current {
    key: Arc<CertifiedKey>,
    not_after: SystemTime,
}

/// The proxy's identity and its current certificate, if any.
#[derive(Debug)]
pub struct IdentityStore {
    identity: SpiffeId,
    current: ArcSwapOption<Current>,
    ready: watch::Sender<bool>,
}

impl IdentityStore {
    /// A store for `identity`, empty until the first certificate.
    pub fn new(identity: SpiffeId) -> Self {
        Self {
            identity,
            current: ArcSwapOption::empty(),
            ready: watch::Sender::new(false),
        }
    }

    /// The proxy's SPIFFE identity.
    pub fn identity(&self) -> &SpiffeId {
        &self.identity
    }

    /// Presents `key` (certificate chain and private key) from now on.
    pub fn install(&self, key: CertifiedKey, not_after: SystemTime) {
        self.current.store(Some(Arc::new(Current {
            key: Arc::new(key),
            not_after,
        })));
        self.ready.send_replace(true);
    }

    /// Stops presenting the certificate (it expired).
    pub fn clear(&self) {
        self.current.store(None);
    }

    /// When the current certificate expires.
    pub fn not_after(&self) -> Option<SystemTime> {
        self.current.load().as_ref().map(|c| c.not_after)
    }

    /// Whether a first certificate was ever installed.
    pub fn has_been_certified(&self) -> bool {
        *self.ready.borrow()
    }

    /// Waits for the first certificate.
    pub async fn certified(&self) {
        let mut ready = self.ready.subscribe();
        // The sender lives in `self`, so the channel cannot close here.
        let _ = ready.wait_for(|ready| *ready).await;
    }

    fn key(&self) -> Option<Arc<CertifiedKey>> {
        self.current.load().as_ref().map(|c| c.key.clone())
    }
}

impl ResolvesServerCert for IdentityStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.key()
    }
}

impl ResolvesClientCert for IdentityStore {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.key()
    }

    fn has_certs(&self) -> bool {
        self.current.load().is_some()
    }
}

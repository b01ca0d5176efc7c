//! The proxy's own mesh identity: a key made in memory at start
//! ([`csr`]), a certificate for it from the identity service ([`certify`])
//! obtained before the proxy reports ready and renewed at about 70 % of
//! its lifetime ([`renew`]), and the store rustls reads it from at each
//! handshake ([`store`]). [`settings`] says when all this is on.
//!
//! Verifying *peers* is [`crate::tls`]'s job; this module only makes sure
//! the proxy has a certificate to present.

pub mod certify;
pub mod csr;
pub mod renew;
pub mod settings;
pub mod store;

pub use certify::{Certifier, CertifyError};
pub use csr::LocalKey;
pub use settings::MeshSettings;
pub use store::IdentityStore;

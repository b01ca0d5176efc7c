//! The work identity does per certification request once the token is
//! vouched for: parse the proxy's CSR and verify its signature, check the
//! identity it asks for, and sign a leaf with the issuer. The TokenReview
//! round trip to the API server comes on top (measured end to end by
//! `control/tests/identity_e2e.rs`, `certification_throughput`).
//!
//!     cargo bench -p weft-certs --bench certify

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use rcgen::{CertificateParams, KeyPair, SanType};
use weft_certs::{
    CertificateRequest, DEFAULT_ISSUER_NAME, DEFAULT_LEAF_VALIDITY, Issuer, SpiffeId, TrustAnchor,
};

const URI: &str = "spiffe://cluster.local/ns/emojivoto/sa/web";

fn setup() -> Result<(Issuer, SpiffeId, String), Box<dyn std::error::Error>> {
    let anchor = TrustAnchor::generate("bench anchor", Duration::from_secs(86_400 * 30))?;
    let pair = anchor.issue_issuer(DEFAULT_ISSUER_NAME, Duration::from_secs(86_400 * 7))?;
    let issuer = Issuer::from_pem(&pair.cert_pem, &pair.key_pem)?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params.subject_alt_names = vec![SanType::URI(URI.try_into()?)];
    let csr = params.serialize_request(&key)?.pem()?;
    Ok((issuer, URI.parse()?, csr))
}

fn certify(c: &mut Criterion) {
    let (issuer, identity, csr) = match setup() {
        Ok(setup) => setup,
        Err(error) => panic!("bench setup failed: {error}"),
    };
    let mut group = c.benchmark_group("identity");
    group.bench_function("parse and verify a CSR", |b| {
        b.iter(|| CertificateRequest::from_pem(black_box(&csr)))
    });
    group.bench_function("CSR to signed leaf", |b| {
        b.iter(|| {
            let request = CertificateRequest::from_pem(black_box(&csr))?;
            request.check_identity(&identity)?;
            issuer.certify(
                &request,
                &identity,
                DEFAULT_LEAF_VALIDITY,
                SystemTime::now(),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, certify);
criterion_main!(benches);

//! The certification handler against a fake API server: each documented
//! answer (200, 400, 401, 403, 413, 503), its body and its metric.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use futures::future::BoxFuture;
use http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use k8s_openapi::api::authentication::v1::{TokenReviewStatus, UserInfo};
use prometheus_client::registry::Registry;
use rcgen::{CertificateParams, KeyPair, SanType};
use tower::ServiceExt as _;
use weft_certs::{DEFAULT_ISSUER_NAME, Issuer, TrustAnchor, summarize};

use super::issuer::IssuerStore;
use super::metrics::{CertifyResult, IdentityMetrics};
use super::token::{AUDIENCE, ReviewError, TokenReviewer};
use super::*;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Answers TokenReviews from a table: token → status; other tokens are
/// rejected as the API server rejects a forged one; `"down"` fails.
struct FakeApiServer(HashMap<&'static str, TokenReviewStatus>);

impl TokenReviewer for FakeApiServer {
    fn review<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, Result<TokenReviewStatus, ReviewError>> {
        Box::pin(async move {
            if token == "down" {
                return Err(ReviewError::Timeout(Duration::from_secs(5)));
            }
            Ok(self.0.get(token).cloned().unwrap_or(TokenReviewStatus {
                authenticated: Some(false),
                error: Some("invalid bearer token".to_owned()),
                ..TokenReviewStatus::default()
            }))
        })
    }
}

fn account(audience: &str, username: &str) -> TokenReviewStatus {
    TokenReviewStatus {
        authenticated: Some(true),
        audiences: Some(vec![audience.to_owned()]),
        user: Some(UserInfo {
            username: Some(username.to_owned()),
            ..UserInfo::default()
        }),
        error: None,
    }
}

struct Fixture {
    identity: Identity,
    issuers: Arc<IssuerStore>,
    anchor: TrustAnchor,
}

fn fixture() -> Result<Fixture, Box<dyn std::error::Error>> {
    let api = FakeApiServer(HashMap::from([
        (
            "web-token",
            account(AUDIENCE, "system:serviceaccount:shop:web"),
        ),
        (
            "api-audience-token",
            account(
                "https://kubernetes.default.svc.cluster.local",
                "system:serviceaccount:shop:web",
            ),
        ),
        ("user-token", account(AUDIENCE, "jane@example.com")),
    ]));
    let anchor = TrustAnchor::generate("test anchor", Duration::from_secs(86_400))?;
    let pair = anchor.issue_issuer(DEFAULT_ISSUER_NAME, Duration::from_secs(86_400))?;
    let issuers = Arc::new(IssuerStore::new());
    issuers.set(Issuer::from_pem(&pair.cert_pem, &pair.key_pem)?);
    let metrics = IdentityMetrics::register(&mut Registry::default());
    let identity = Identity::new(
        IdentityConfig::new("cluster.local", "weft"),
        Arc::new(api),
        issuers.clone(),
        metrics,
    )?;
    Ok(Fixture {
        identity,
        issuers,
        anchor,
    })
}

fn csr(uri: &str) -> Result<String, Box<dyn std::error::Error>> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params.subject_alt_names = vec![SanType::URI(uri.try_into()?)];
    Ok(params.serialize_request(&key)?.pem()?)
}

fn json(token: &str, csr: &str) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&CertifyRequest {
        token: token.to_owned(),
        csr: csr.to_owned(),
    })
}

async fn post(
    identity: &Identity,
    body: Vec<u8>,
) -> Result<(StatusCode, String), Box<dyn std::error::Error>> {
    let request = Request::post(CERTIFY_PATH)
        .header("content-type", "application/json")
        .body(Body::from(body))?;
    let response = identity.router().oneshot(request).await?;
    let status = response.status();
    let bytes = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8(bytes.to_vec())?))
}

fn error_of(body: &str) -> Result<String, serde_json::Error> {
    Ok(serde_json::from_str::<ErrorBody>(body)?.error)
}

#[tokio::test]
async fn a_valid_token_and_csr_get_a_certificate_for_exactly_that_identity() -> TestResult {
    let f = fixture()?;
    let body = json("web-token", &csr("spiffe://cluster.local/ns/shop/sa/web")?)?;
    let (status, text) = post(&f.identity, body).await?;
    assert_eq!(status, StatusCode::OK, "{text}");
    let answer: CertifyResponse = serde_json::from_str(&text)?;
    let leaf = &summarize(&answer.certificate)?[0];
    assert_eq!(leaf.uris, ["spiffe://cluster.local/ns/shop/sa/web"]);
    assert!(leaf.dns_names.is_empty());
    let current = f.issuers.current().ok_or("issuer")?;
    assert_eq!(answer.chain, [current.issuer.cert_pem().to_owned()]);
    assert_eq!(answer.not_after, rfc3339(leaf.not_after));
    assert!(answer.not_after.ends_with('Z'), "{}", answer.not_after);
    let issuer = &summarize(&answer.chain[0])?[0];
    assert_eq!(issuer.issuer, summarize(f.anchor.cert_pem())?[0].subject);
    assert_eq!(f.identity.metrics().certify_count(CertifyResult::issued), 1);
    Ok(())
}

#[tokio::test]
async fn each_refusal_has_its_status_reason_and_metric() -> TestResult {
    let f = fixture()?;
    let web = csr("spiffe://cluster.local/ns/shop/sa/web")?;
    let db = csr("spiffe://cluster.local/ns/shop/sa/db")?;
    let cases: Vec<(Vec<u8>, StatusCode, &str, CertifyResult)> = vec![
        (
            json("web-token", &db)?,
            StatusCode::FORBIDDEN,
            "may only ask for spiffe://cluster.local/ns/shop/sa/web",
            CertifyResult::forbidden,
        ),
        (
            json("api-audience-token", &web)?,
            StatusCode::UNAUTHORIZED,
            "not valid for audience identity.weft.dev",
            CertifyResult::unauthenticated,
        ),
        (
            json("forged", &web)?,
            StatusCode::UNAUTHORIZED,
            "invalid bearer token",
            CertifyResult::unauthenticated,
        ),
        (
            json("user-token", &web)?,
            StatusCode::UNAUTHORIZED,
            "not to a ServiceAccount",
            CertifyResult::unauthenticated,
        ),
        (
            json(
                "web-token",
                "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
            )?,
            StatusCode::BAD_REQUEST,
            "invalid certificate signing request",
            CertifyResult::bad_request,
        ),
        (
            json("", &web)?,
            StatusCode::BAD_REQUEST,
            "the token is empty",
            CertifyResult::bad_request,
        ),
        (
            b"{\"token\": 1}".to_vec(),
            StatusCode::BAD_REQUEST,
            "expected JSON",
            CertifyResult::bad_request,
        ),
        (
            vec![b'x'; MAX_BODY_BYTES + 1],
            StatusCode::PAYLOAD_TOO_LARGE,
            "larger than 65536 bytes",
            CertifyResult::bad_request,
        ),
        (
            json("down", &web)?,
            StatusCode::SERVICE_UNAVAILABLE,
            "cannot check the token",
            CertifyResult::error,
        ),
    ];
    for (body, want_status, want_reason, want_result) in cases {
        let before = f.identity.metrics().certify_count(want_result);
        let (status, text) = post(&f.identity, body).await?;
        assert_eq!(status, want_status, "{text}");
        let reason = error_of(&text)?;
        assert!(
            reason.contains(want_reason),
            "{reason:?} lacks {want_reason:?}"
        );
        assert_eq!(f.identity.metrics().certify_count(want_result), before + 1);
    }
    assert_eq!(f.identity.metrics().certify_count(CertifyResult::issued), 0);
    Ok(())
}

#[tokio::test]
async fn a_malformed_csr_costs_no_token_review() -> TestResult {
    // "down" would answer 503 if it were asked; a bad CSR is refused first.
    let f = fixture()?;
    let (status, _) = post(&f.identity, json("down", "not a csr")?).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    Ok(())
}

#[tokio::test]
async fn without_an_issuer_identity_is_unready_and_answers_503() -> TestResult {
    let api = FakeApiServer(HashMap::from([(
        "web-token",
        account(AUDIENCE, "system:serviceaccount:shop:web"),
    )]));
    let identity = Identity::new(
        IdentityConfig::new("cluster.local", "weft"),
        Arc::new(api),
        Arc::new(IssuerStore::new()),
        IdentityMetrics::register(&mut Registry::default()),
    )?;
    identity.refresh_serving();
    assert!(!identity.is_ready());
    let body = json("web-token", &csr("spiffe://cluster.local/ns/shop/sa/web")?)?;
    let (status, text) = post(&identity, body).await?;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(error_of(&text)?.contains("no issuer"));
    Ok(())
}

#[tokio::test]
async fn ready_once_the_serving_certificate_is_issued() -> TestResult {
    let f = fixture()?;
    assert!(!f.identity.is_ready());
    f.identity.refresh_serving();
    assert!(f.identity.is_ready());
    Ok(())
}

#[test]
fn the_request_debug_hides_the_token() {
    let request = CertifyRequest {
        token: "SECRET".to_owned(),
        csr: String::new(),
    };
    assert!(!format!("{request:?}").contains("SECRET"));
}

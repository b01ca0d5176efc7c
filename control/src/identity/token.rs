//! Who a ServiceAccount token belongs to, as the API server says.
//!
//! Identity never reads a token itself: it asks the API server with a
//! TokenReview for the audience `identity.weft.dev`, and [`interpret`] turns
//! the answer into the namespace and ServiceAccount the token proves — or
//! the reason it proves nothing. [`KubeTokenReviewer`] is the real reviewer;
//! tests give the handler any other [`TokenReviewer`].

use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, TokenReviewStatus};
use kube::api::{Api, PostParams};

/// The audience a proxy's projected token is issued for, and the only one
/// identity accepts.
pub const AUDIENCE: &str = "identity.weft.dev";

/// How long a TokenReview may take before the request fails with 503.
pub const DEFAULT_REVIEW_TIMEOUT: Duration = Duration::from_secs(5);

/// The prefix of a ServiceAccount's username in the API server's answer.
const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";

/// The ServiceAccount a token proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccountRef {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

/// Why a token proves nothing (HTTP 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unauthenticated {
    /// The API server did not authenticate it (expired, forged, revoked,
    /// wrong audience, its ServiceAccount or pod deleted, ...).
    #[error("the API server did not authenticate the token: {0}")]
    Rejected(String),
    /// Authenticated, but not for our audience.
    #[error("the token is not valid for audience {AUDIENCE} (its audiences: [{}])", .0.join(", "))]
    WrongAudience(Vec<String>),
    /// Authenticated as someone who is not a ServiceAccount.
    #[error("the token belongs to {0:?}, not to a ServiceAccount")]
    NotAServiceAccount(String),
}

/// Why a token could not be reviewed at all (HTTP 503: try again).
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// The API server did not answer in time.
    #[error("the TokenReview timed out after {0:?}")]
    Timeout(Duration),
    /// The API server refused or failed the request.
    #[error("the TokenReview failed: {0}")]
    Api(#[from] kube::Error),
    /// The answer had no status.
    #[error("the TokenReview came back without a status")]
    NoStatus,
}

/// The ServiceAccount `status` vouches for, for audience [`AUDIENCE`].
pub fn interpret(status: &TokenReviewStatus) -> Result<ServiceAccountRef, Unauthenticated> {
    if status.authenticated != Some(true) {
        let why = status
            .error
            .clone()
            .filter(|e| !e.is_empty())
            .unwrap_or_else(|| "not authenticated".to_owned());
        return Err(Unauthenticated::Rejected(why));
    }
    // Asked with spec.audiences, the API server answers with the ones the
    // token is valid for; check rather than trust that it enforced them.
    let audiences = status.audiences.clone().unwrap_or_default();
    if !audiences.iter().any(|a| a == AUDIENCE) {
        return Err(Unauthenticated::WrongAudience(audiences));
    }
    let username = status
        .user
        .as_ref()
        .and_then(|u| u.username.as_deref())
        .unwrap_or_default();
    parse_username(username).ok_or_else(|| Unauthenticated::NotAServiceAccount(username.to_owned()))
}

/// `system:serviceaccount:<ns>:<name>` → its namespace and name.
pub fn parse_username(username: &str) -> Option<ServiceAccountRef> {
    let rest = username.strip_prefix(SERVICE_ACCOUNT_PREFIX)?;
    let (namespace, name) = rest.split_once(':')?;
    if namespace.is_empty() || name.is_empty() || name.contains(':') {
        return None;
    }
    Some(ServiceAccountRef {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    })
}

/// Asks someone (the API server) what a token proves.
pub trait TokenReviewer: Send + Sync + 'static {
    /// The status of a TokenReview of `token` for audience [`AUDIENCE`].
    fn review<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, Result<TokenReviewStatus, ReviewError>>;
}

/// Reviews tokens with the API server (`create tokenreviews`).
#[derive(Clone)]
pub struct KubeTokenReviewer {
    api: Api<TokenReview>,
    timeout: Duration,
}

impl std::fmt::Debug for KubeTokenReviewer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeTokenReviewer")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl KubeTokenReviewer {
    /// A reviewer using `client`, giving up on an answer after `timeout`.
    pub fn new(client: kube::Client, timeout: Duration) -> Self {
        KubeTokenReviewer {
            api: Api::all(client),
            timeout,
        }
    }
}

impl TokenReviewer for KubeTokenReviewer {
    fn review<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, Result<TokenReviewStatus, ReviewError>> {
        Box::pin(async move {
            let review = TokenReview {
                spec: TokenReviewSpec {
                    token: Some(token.to_owned()),
                    audiences: Some(vec![AUDIENCE.to_owned()]),
                },
                ..TokenReview::default()
            };
            let answer = tokio::time::timeout(
                self.timeout,
                self.api.create(&PostParams::default(), &review),
            )
            .await
            .map_err(|_| ReviewError::Timeout(self.timeout))??;
            answer.status.ok_or(ReviewError::NoStatus)
        })
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::authentication::v1::UserInfo;

    use super::*;

    fn status(authenticated: bool, audiences: &[&str], username: &str) -> TokenReviewStatus {
        TokenReviewStatus {
            authenticated: Some(authenticated),
            audiences: Some(audiences.iter().map(|a| (*a).to_owned()).collect()),
            user: Some(UserInfo {
                username: Some(username.to_owned()),
                ..UserInfo::default()
            }),
            error: None,
        }
    }

    #[test]
    fn a_service_account_token_for_our_audience_names_its_account() {
        let found = interpret(&status(true, &[AUDIENCE], "system:serviceaccount:shop:web"));
        assert_eq!(
            found,
            Ok(ServiceAccountRef {
                namespace: "shop".to_owned(),
                name: "web".to_owned()
            })
        );
    }

    #[test]
    fn unauthenticated_tokens_carry_the_api_servers_reason() {
        let mut rejected = status(false, &[], "");
        rejected.error = Some("token has expired".to_owned());
        assert_eq!(
            interpret(&rejected),
            Err(Unauthenticated::Rejected("token has expired".to_owned()))
        );
        let silent = TokenReviewStatus::default();
        assert!(matches!(
            interpret(&silent),
            Err(Unauthenticated::Rejected(_))
        ));
    }

    #[test]
    fn another_audience_is_refused_even_if_authenticated() {
        for audiences in [&[][..], &["https://kubernetes.default.svc"][..]] {
            assert!(matches!(
                interpret(&status(true, audiences, "system:serviceaccount:shop:web")),
                Err(Unauthenticated::WrongAudience(_))
            ));
        }
    }

    #[test]
    fn users_and_odd_usernames_are_not_service_accounts() {
        for username in [
            "",
            "admin",
            "system:node:worker-1",
            "system:serviceaccount:",
            "system:serviceaccount:shop",
            "system:serviceaccount:shop:",
            "system:serviceaccount::web",
            "system:serviceaccount:shop:web:extra",
            "System:ServiceAccount:shop:web",
        ] {
            assert!(
                matches!(
                    interpret(&status(true, &[AUDIENCE], username)),
                    Err(Unauthenticated::NotAServiceAccount(_))
                ),
                "{username:?}"
            );
        }
    }
}

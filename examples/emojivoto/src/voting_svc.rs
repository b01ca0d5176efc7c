//! `emojivoto voting-svc`: `emojivoto.v1.VotingService`, one `Vote<Name>`
//! RPC per emoji of the public proto and `Results`, counted in memory,
//! plus `/healthz` on the admin port.
//!
//! `VoteDoughnut` always fails with UNKNOWN ("ERROR"), the status grpc-go
//! gives the plain error the sample returns: the demo's steady source of
//! failed requests, so success rates in the mesh are visibly below 100 %.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::emoji::DOUGHNUT;
use crate::grpc::server::{self, Service};
use crate::grpc::{Code, Status};
use crate::health;
use crate::poll::Poll;
use crate::proto::{Empty, Message, ResultsResponse, VotingResult};
use crate::shutdown::Shutdown;
use crate::vote_method;

/// The service's name in call paths.
pub const SERVICE: &str = "emojivoto.v1.VotingService";

/// The voting service and its votes.
#[derive(Debug, Default)]
pub struct VotingService {
    poll: Poll,
}

impl Service for VotingService {
    fn name(&self) -> &'static str {
        SERVICE
    }

    fn call(&self, method: &str, request: &[u8]) -> Result<Vec<u8>, Status> {
        if method == "Results" {
            Empty::decode(request)?;
            let results = self
                .poll
                .results()
                .into_iter()
                .map(|(shortcode, votes)| VotingResult {
                    shortcode: shortcode.to_string(),
                    votes: i32::try_from(votes).unwrap_or(i32::MAX),
                })
                .collect();
            return Ok(ResultsResponse { results }.encode());
        }
        let Some(shortcode) = vote_method::shortcode_for(method) else {
            return Err(server::unimplemented(SERVICE, method));
        };
        Empty::decode(request)?;
        if shortcode == DOUGHNUT {
            return Err(Status::new(Code::Unknown, "ERROR"));
        }
        let total = self.poll.vote(shortcode);
        tracing::debug!("voted for {shortcode}, now {total} votes");
        Ok(Empty.encode())
    }
}

/// Serves gRPC on `grpc` and `/healthz` on `admin` until `shutdown`.
pub async fn run(grpc: TcpListener, admin: TcpListener, shutdown: Shutdown, grace: Duration) {
    let service = Arc::new(VotingService::default());
    tokio::join!(
        server::serve(service, grpc, shutdown.clone(), grace),
        health::serve(admin, shutdown, grace),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn results(svc: &VotingService) -> Vec<(String, i32)> {
        let bytes = svc.call("Results", &[]).expect("OK");
        ResultsResponse::decode(&bytes)
            .expect("decodes")
            .results
            .into_iter()
            .map(|r| (r.shortcode, r.votes))
            .collect()
    }

    #[test]
    fn votes_are_counted() {
        let svc = VotingService::default();
        assert!(results(&svc).is_empty());
        for method in ["VoteJoy", "VoteBeer", "VoteJoy", "Vote100", "VoteRelaxed"] {
            assert_eq!(svc.call(method, &[]), Ok(vec![]), "{method}");
        }
        assert_eq!(
            results(&svc),
            [
                (":joy:".to_string(), 2),
                (":100:".to_string(), 1),
                (":beer:".to_string(), 1),
                (":relaxed:".to_string(), 1),
            ]
        );
    }

    #[test]
    fn doughnut_always_fails() {
        let svc = VotingService::default();
        for _ in 0..3 {
            let err = svc.call("VoteDoughnut", &[]).expect_err("doughnut");
            assert_eq!(err, Status::new(Code::Unknown, "ERROR"));
        }
        assert!(results(&svc).is_empty(), "a failed vote is not counted");
    }

    #[test]
    fn errors() {
        let svc = VotingService::default();
        for method in ["VoteNope", "Vote", "results", ""] {
            let err = svc.call(method, &[]).expect_err(method);
            assert_eq!(err.code, Code::Unimplemented, "{method}");
        }
        let err = svc.call("VoteJoy", &[0x0b]).expect_err("garbage");
        assert_eq!(err.code, Code::Internal);
        assert!(results(&svc).is_empty());
    }
}

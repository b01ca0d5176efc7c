//! `emojivoto emoji-svc`: the catalogue over gRPC, `emojivoto.v1.EmojiService`
//! with `ListAll` and `FindByShortcode`, plus `/healthz` on the admin port.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::emoji;
use crate::grpc::Status;
use crate::grpc::server::{self, Service};
use crate::health;
use crate::proto::{
    Empty, FindByShortcodeRequest, FindByShortcodeResponse, ListAllEmojiResponse, Message,
};
use crate::shutdown::Shutdown;

/// The service's name in call paths.
pub const SERVICE: &str = "emojivoto.v1.EmojiService";

/// The emoji service; it has no state.
#[derive(Debug, Default)]
pub struct EmojiService;

impl Service for EmojiService {
    fn name(&self) -> &'static str {
        SERVICE
    }

    fn call(&self, method: &str, request: &[u8]) -> Result<Vec<u8>, Status> {
        match method {
            "ListAll" => {
                Empty::decode(request)?;
                let list = emoji::ALL.iter().map(Into::into).collect();
                Ok(ListAllEmojiResponse { list }.encode())
            }
            "FindByShortcode" => {
                let request = FindByShortcodeRequest::decode(request)?;
                // Unknown shortcode: OK without an emoji, as the sample.
                let emoji = emoji::find(&request.shortcode).map(Into::into);
                Ok(FindByShortcodeResponse { emoji }.encode())
            }
            _ => Err(server::unimplemented(SERVICE, method)),
        }
    }
}

/// Serves gRPC on `grpc` and `/healthz` on `admin` until `shutdown`.
pub async fn run(grpc: TcpListener, admin: TcpListener, shutdown: Shutdown, grace: Duration) {
    tokio::join!(
        server::serve(Arc::new(EmojiService), grpc, shutdown.clone(), grace),
        health::serve(admin, shutdown, grace),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grpc::Code;
    use crate::proto;

    #[test]
    fn list_all() {
        let bytes = EmojiService.call("ListAll", &[]).expect("OK");
        let response = ListAllEmojiResponse::decode(&bytes).expect("decodes");
        assert_eq!(response.list.len(), 99);
        assert_eq!(response.list[2].shortcode, ":doughnut:");
    }

    #[test]
    fn find_by_shortcode() {
        let find = |shortcode: &str| {
            let request = FindByShortcodeRequest {
                shortcode: shortcode.into(),
            };
            let bytes = EmojiService
                .call("FindByShortcode", &request.encode())
                .expect("OK");
            FindByShortcodeResponse::decode(&bytes)
                .expect("decodes")
                .emoji
        };
        assert_eq!(
            find(":joy:"),
            Some(proto::Emoji {
                unicode: "\u{1F602}".into(),
                shortcode: ":joy:".into()
            })
        );
        assert_eq!(find(":nope:"), None);
    }

    #[test]
    fn errors() {
        let err = EmojiService.call("Nope", &[]).expect_err("unknown");
        assert_eq!(err.code, Code::Unimplemented);
        let err = EmojiService
            .call("FindByShortcode", &[0xff; 3])
            .expect_err("garbage");
        assert_eq!(err.code, Code::Internal);
    }
}

//! The response body handed back to the client: the upstream body, streamed
//! frame by frame, watched for its end so `response_total` is counted with
//! the gRPC status from the trailers and with resets as failures.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::StatusCode;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use super::classify;
use super::handles::AuthorityMetrics;

/// Counts one response in `response_total` when it ends.
#[derive(Debug)]
pub struct ResponseRecorder {
    series: Arc<AuthorityMetrics>,
    status: StatusCode,
    grpc_status: Option<u32>,
}

impl ResponseRecorder {
    /// A recorder for a response with `status` (and maybe a trailers-only
    /// `grpc_status` in its headers) to a request counted in `series`.
    pub fn new(
        series: Arc<AuthorityMetrics>,
        status: StatusCode,
        grpc_status: Option<u32>,
    ) -> Self {
        Self {
            series,
            status,
            grpc_status,
        }
    }

    /// Counts the response; `reset` when its stream failed or was abandoned.
    pub fn finish(self, reset: bool) {
        let classification = classify::classify(self.status, self.grpc_status, reset);
        self.series
            .response(self.status, self.grpc_status, classification);
    }
}

/// The upstream response body, observed on its way to the client.
#[derive(Debug)]
pub struct ObservedBody {
    inner: Incoming,
    recorder: Option<ResponseRecorder>,
}

impl ObservedBody {
    /// Wraps `inner`; a body that is already complete is counted at once.
    pub fn new(inner: Incoming, recorder: ResponseRecorder) -> Self {
        let mut body = Self {
            inner,
            recorder: Some(recorder),
        };
        if body.inner.is_end_stream() {
            body.finish(false);
        }
        body
    }

    fn finish(&mut self, reset: bool) {
        if let Some(recorder) = self.recorder.take() {
            recorder.finish(reset);
        }
    }
}

impl Body for ObservedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_frame(cx);
        match &poll {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(trailers), Some(recorder)) =
                    (frame.trailers_ref(), this.recorder.as_mut())
                {
                    recorder.grpc_status = classify::grpc_status(trailers).or(recorder.grpc_status);
                }
                if this.inner.is_end_stream() {
                    this.finish(false);
                }
            }
            Poll::Ready(Some(Err(_))) => this.finish(true),
            Poll::Ready(None) => this.finish(false),
            Poll::Pending => {}
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ObservedBody {
    fn drop(&mut self) {
        // Dropped before its end: the client went away or the connection
        // failed mid-response; DESIGN.md counts that as a reset stream.
        let reset = !self.inner.is_end_stream();
        self.finish(reset);
    }
}

//! Calls any gRPC method by path with message bodies as raw bytes, so a test
//! can send what no generated stub would: random well-formed messages of any
//! type, or bytes that are no protobuf at all.

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes};
use futures::StreamExt;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;
use tonic::{Code, Status};

/// Passes message bodies through untouched, both ways.
#[derive(Clone, Copy, Debug, Default)]
pub struct RawCodec;

#[derive(Debug)]
pub struct RawEncoder;

#[derive(Debug)]
pub struct RawDecoder;

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

/// How a method streams, from its descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    Unary,
    ServerStreaming,
    ClientStreaming,
    Bidi,
}

impl Shape {
    pub fn of(client_streaming: bool, server_streaming: bool) -> Shape {
        match (client_streaming, server_streaming) {
            (false, false) => Shape::Unary,
            (false, true) => Shape::ServerStreaming,
            (true, false) => Shape::ClientStreaming,
            (true, true) => Shape::Bidi,
        }
    }
}

/// What one call came to.
#[derive(Debug)]
pub enum Answer {
    /// Ended with this status (`Ok` for a unary answer or a stream that ended
    /// cleanly). `responses` are the message bodies received before it.
    Status {
        status: Status,
        responses: Vec<Bytes>,
    },
    /// A response stream was still open, and idle, when the test stopped
    /// reading: legitimate for streams that follow new data.
    StillOpen { responses: Vec<Bytes> },
    /// No answer within the call's deadline.
    Hang,
}

impl Answer {
    pub fn code(&self) -> Option<Code> {
        match self {
            Answer::Status { status, .. } => Some(status.code()),
            Answer::StillOpen { .. } => Some(Code::Ok),
            Answer::Hang => None,
        }
    }

    pub fn responses(&self) -> &[Bytes] {
        match self {
            Answer::Status { responses, .. } | Answer::StillOpen { responses } => responses,
            Answer::Hang => &[],
        }
    }
}

/// One call. Streaming requests send `frames`, then end the request stream
/// (`half_close`) or keep it open until the call is abandoned. Response
/// streams are read until they end, `max_responses` arrive, or nothing comes
/// for `idle`; `deadline` bounds the whole call.
pub struct Call {
    pub path: String,
    pub shape: Shape,
    pub frames: Vec<Bytes>,
    pub half_close: bool,
    pub deadline: Duration,
    pub idle: Duration,
    pub max_responses: usize,
}

pub async fn call(channel: Channel, c: Call) -> Answer {
    let deadline = c.deadline;
    match tokio::time::timeout(deadline, run(channel, c)).await {
        Ok(answer) => answer,
        Err(_) => Answer::Hang,
    }
}

async fn run(channel: Channel, c: Call) -> Answer {
    let path = match PathAndQuery::try_from(c.path.as_str()) {
        Ok(p) => p,
        Err(e) => {
            return Answer::Status {
                status: Status::invalid_argument(format!("bad path {}: {e}", c.path)),
                responses: Vec::new(),
            }
        }
    };
    let mut grpc = tonic::client::Grpc::new(channel)
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX);
    if let Err(e) = grpc.ready().await {
        return Answer::Status {
            status: Status::unavailable(format!("channel not ready: {e}")),
            responses: Vec::new(),
        };
    }
    let first = c.frames.first().cloned().unwrap_or_default();
    match c.shape {
        Shape::Unary => {
            let result = grpc.unary(tonic::Request::new(first), path, RawCodec).await;
            match result {
                Ok(r) => Answer::Status {
                    status: Status::ok(""),
                    responses: vec![r.into_inner()],
                },
                Err(status) => Answer::Status {
                    status,
                    responses: Vec::new(),
                },
            }
        }
        Shape::ServerStreaming => {
            let result = grpc
                .server_streaming(tonic::Request::new(first), path, RawCodec)
                .await;
            read_stream(result, c.idle, c.max_responses).await
        }
        Shape::ClientStreaming | Shape::Bidi => {
            let frames = futures::stream::iter(c.frames);
            let requests = if c.half_close {
                frames.boxed()
            } else {
                frames.chain(futures::stream::pending()).boxed()
            };
            let answer = grpc.streaming(tonic::Request::new(requests), path, RawCodec);
            if c.half_close {
                return read_stream(answer.await, c.idle, c.max_responses).await;
            }
            // A server may wait for more of a stream the client keeps open
            // before it answers at all: that is no hang.
            match tokio::time::timeout(c.idle, answer).await {
                Ok(result) => read_stream(result, c.idle, c.max_responses).await,
                Err(_) => Answer::StillOpen {
                    responses: Vec::new(),
                },
            }
        }
    }
}

async fn read_stream(
    result: Result<tonic::Response<tonic::Streaming<Bytes>>, Status>,
    idle: Duration,
    max_responses: usize,
) -> Answer {
    let mut stream = match result {
        Ok(r) => r.into_inner(),
        Err(status) => {
            return Answer::Status {
                status,
                responses: Vec::new(),
            }
        }
    };
    let mut responses = Vec::new();
    while responses.len() < max_responses {
        match tokio::time::timeout(idle, stream.message()).await {
            Ok(Ok(Some(m))) => responses.push(m),
            Ok(Ok(None)) => {
                return Answer::Status {
                    status: Status::ok(""),
                    responses,
                }
            }
            Ok(Err(status)) => return Answer::Status { status, responses },
            Err(_) => return Answer::StillOpen { responses },
        }
    }
    Answer::StillOpen { responses }
}

//! Every method a node serves, from the descriptor sets the server embeds,
//! and the judgement of one answer: a precise status or a finding.

use bytes::Bytes;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor};
use tonic::Code;

use crate::raw_grpc::{Answer, Shape};

/// One RPC as the fuzzer calls it.
#[derive(Clone, Debug)]
pub struct Method {
    /// `/package.Service/Method`.
    pub path: String,
    pub shape: Shape,
    pub input: MessageDescriptor,
    pub output: MessageDescriptor,
}

/// The raftq services (public API and peer transport) and the standard health
/// service, as served on the one port.
pub fn pool() -> DescriptorPool {
    let mut pool = DescriptorPool::decode(raftq_proto::FILE_DESCRIPTOR_SET)
        .expect("raftq's embedded descriptor set decodes");
    pool.decode_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .expect("the health service's descriptor set decodes");
    pool
}

pub fn methods(pool: &DescriptorPool) -> Vec<Method> {
    pool.services()
        .flat_map(|s| {
            s.methods()
                .map(|m| Method {
                    path: format!("/{}/{}", s.full_name(), m.name()),
                    shape: Shape::of(m.is_client_streaming(), m.is_server_streaming()),
                    input: m.input(),
                    output: m.output(),
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Why an answer is a finding, or `None` when it is precise.
///
/// `UNKNOWN` never is (the server did not say what went wrong). `INTERNAL` is
/// correct only for a request that is no valid message of the input type:
/// the gRPC status code table prescribes INTERNAL for "error parsing request
/// proto" on the server; for anything that parses it is a finding.
pub fn judge(method: &Method, frames: &[Bytes], answer: &Answer) -> Option<String> {
    match answer {
        Answer::Hang => Some("hang: no answer within the call's deadline".into()),
        Answer::StillOpen { .. } => None,
        Answer::Status { status, .. } => match status.code() {
            Code::Unknown => Some(format!("UNKNOWN status: {}", status.message())),
            Code::Internal => {
                let unparsable = frames
                    .iter()
                    .any(|f| DynamicMessage::decode(method.input.clone(), f.clone()).is_err());
                if unparsable {
                    None
                } else {
                    Some(format!(
                        "INTERNAL for a well-formed request: {}",
                        status.message()
                    ))
                }
            }
            _ => None,
        },
    }
}

/// Hex of a message body, for a reproducer line.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

//! Serves the public API, the peer transport, reflection and health on one port.

use std::net::SocketAddr;
use std::sync::Arc;

use raftq_proto::internal::raft_peer_server::RaftPeerServer;
use raftq_proto::v1::admin_service_server::AdminServiceServer;
use raftq_proto::v1::queue_service_server::QueueServiceServer;
use tonic::transport::Server;

use crate::api::queue_service::Api;
use crate::api::MAX_GRPC_MESSAGE;
use crate::node::Node;
use crate::raft::transport::server::PeerService;

/// Streams one connection may have open at once.
pub const MAX_CONCURRENT_STREAMS: u32 = 4096;

pub async fn serve(
    node: Arc<Node>,
    addr: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let api = Api { node: node.clone() };
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<QueueServiceServer<Api>>()
        .await;
    health_reporter
        .set_serving::<AdminServiceServer<Api>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(raftq_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    // The older protocol too: grpcurl before 1.9 and Python's grpcio-reflection
    // client speak only v1alpha.
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(raftq_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    let max_request = usize::try_from(node.config().max_request_bytes).unwrap_or(usize::MAX);
    let tls = node.tls().cloned();
    let metrics = node.metrics().clone();
    let router = Server::builder()
        .layer(crate::api::limits::RequestSizeLimit::new(
            node.config().max_request_bytes,
        ))
        .tcp_nodelay(true)
        // h2 closes a connection whose client reset more than this many
        // streams before they were accepted (the rapid-reset attack). A peer
        // times out heartbeats of 60 ms while this node is busy, which is not
        // an attack: 20, the default, dropped peer connections under load.
        .http2_max_pending_accept_reset_streams(Some(256))
        // tonic's default is no limit at all. Peers multiplex every group's
        // replication on one connection, one request per group at a time.
        .max_concurrent_streams(Some(MAX_CONCURRENT_STREAMS))
        .initial_stream_window_size(Some(crate::raft::transport::pool::STREAM_WINDOW))
        .initial_connection_window_size(Some(crate::raft::transport::pool::CONNECTION_WINDOW))
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(1)))
        .http2_keepalive_timeout(Some(std::time::Duration::from_secs(2)))
        .add_service(
            QueueServiceServer::new(api.clone())
                .max_decoding_message_size(max_request)
                .max_encoding_message_size(MAX_GRPC_MESSAGE),
        )
        .add_service(
            AdminServiceServer::new(api)
                .max_decoding_message_size(max_request)
                .max_encoding_message_size(MAX_GRPC_MESSAGE),
        )
        .add_service(
            RaftPeerServer::new(PeerService { node })
                .max_decoding_message_size(usize::MAX)
                .max_encoding_message_size(usize::MAX),
        )
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_v1alpha);
    match tls {
        None => router.serve_with_shutdown(addr, shutdown).await?,
        Some(tls) => {
            let listener = tokio::net::TcpListener::bind(addr).await?;
            let incoming = crate::tls::incoming::accept(listener, tls, metrics);
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await?
        }
    }
    Ok(())
}

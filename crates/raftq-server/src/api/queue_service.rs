//! tonic glue: the generated service traits, delegating to one module per RPC.

use std::sync::Arc;

use raftq_proto::v1::admin_service_server::AdminService;
use raftq_proto::v1::queue_service_server::QueueService;
use raftq_proto::v1::{
    ChangeReplicasRequest, ClusterStatusRequest, ClusterStatusResponse, CommitOffsetRequest,
    CommitOffsetResponse, Consistency, ConsumeRequest, CreateQueueRequest, CreateQueueResponse,
    DeleteQueueRequest, DeleteQueueResponse, GetQueueRequest, ListQueuesRequest,
    ListQueuesResponse, PublishRequest, PublishResponse, QueueInfo, ReadRequest, ReadResponse,
    ReadStreamRequest, RebalanceRequest, RebalanceResponse, RemoveNodeRequest,
    TransferLeaderRequest,
};
use tonic::{Request, Response, Status, Streaming};

use crate::api::{admin, commit, consume, info, membership, publish, read, stream};
use crate::node::Node;
use crate::router;

#[derive(Clone)]
pub struct Api {
    pub node: Arc<Node>,
}

#[tonic::async_trait]
impl QueueService for Api {
    async fn publish(
        &self,
        request: Request<PublishRequest>,
    ) -> Result<Response<PublishResponse>, Status> {
        let hops = router::hops(request.metadata());
        let resp = publish::publish(&self.node, request.into_inner(), hops).await?;
        Ok(Response::new(resp))
    }

    type ConsumeStream = consume::ConsumeStream;

    async fn consume(
        &self,
        request: Request<Streaming<ConsumeRequest>>,
    ) -> Result<Response<Self::ConsumeStream>, Status> {
        let hops = router::hops(request.metadata());
        let stream = consume::consume(&self.node, request.into_inner(), hops).await?;
        Ok(Response::new(stream))
    }

    async fn read(&self, request: Request<ReadRequest>) -> Result<Response<ReadResponse>, Status> {
        let hops = router::hops(request.metadata());
        Ok(Response::new(
            read::read(&self.node, request.into_inner(), hops).await?,
        ))
    }

    type ReadStreamStream = stream::ReadStreamStream;

    async fn read_stream(
        &self,
        request: Request<ReadStreamRequest>,
    ) -> Result<Response<Self::ReadStreamStream>, Status> {
        let hops = router::hops(request.metadata());
        let stream = stream::read_stream(&self.node, request.into_inner(), hops).await?;
        Ok(Response::new(stream))
    }

    async fn commit_offset(
        &self,
        request: Request<CommitOffsetRequest>,
    ) -> Result<Response<CommitOffsetResponse>, Status> {
        let hops = router::hops(request.metadata());
        Ok(Response::new(
            commit::commit_offset(&self.node, request.into_inner(), hops).await?,
        ))
    }
}

#[tonic::async_trait]
impl AdminService for Api {
    async fn create_queue(
        &self,
        request: Request<CreateQueueRequest>,
    ) -> Result<Response<CreateQueueResponse>, Status> {
        let hops = router::hops(request.metadata());
        Ok(Response::new(
            admin::create_queue(&self.node, request.into_inner(), hops).await?,
        ))
    }

    async fn delete_queue(
        &self,
        request: Request<DeleteQueueRequest>,
    ) -> Result<Response<DeleteQueueResponse>, Status> {
        let hops = router::hops(request.metadata());
        admin::delete_queue(&self.node, request.into_inner(), hops).await?;
        Ok(Response::new(DeleteQueueResponse {}))
    }

    async fn list_queues(
        &self,
        request: Request<ListQueuesRequest>,
    ) -> Result<Response<ListQueuesResponse>, Status> {
        let hops = router::hops(request.metadata());
        let queues = admin::list_queues(&self.node, hops).await;
        Ok(Response::new(ListQueuesResponse { queues }))
    }

    async fn get_queue(
        &self,
        request: Request<GetQueueRequest>,
    ) -> Result<Response<QueueInfo>, Status> {
        let hops = router::hops(request.metadata());
        let req = request.into_inner();
        let consistency = req
            .consistency
            .map(|c| {
                Consistency::try_from(c)
                    .map_err(|_| Status::invalid_argument(format!("unknown consistency {c}")))
            })
            .transpose()?;
        let def = router::queue_def(&self.node, &req.name).await?;
        Ok(Response::new(
            info::queue_info(&self.node, &def, hops, consistency).await?,
        ))
    }

    async fn cluster_status(
        &self,
        request: Request<ClusterStatusRequest>,
    ) -> Result<Response<ClusterStatusResponse>, Status> {
        let hops = router::hops(request.metadata());
        Ok(Response::new(admin::cluster_status(&self.node, hops).await))
    }

    async fn change_replicas(
        &self,
        request: Request<ChangeReplicasRequest>,
    ) -> Result<Response<QueueInfo>, Status> {
        let hops = router::hops(request.metadata());
        let info = membership::change_replicas(&self.node, request.into_inner(), hops).await?;
        Ok(Response::new(info))
    }

    async fn transfer_leader(
        &self,
        request: Request<TransferLeaderRequest>,
    ) -> Result<Response<QueueInfo>, Status> {
        let hops = router::hops(request.metadata());
        let info = membership::transfer_leader(&self.node, request.into_inner(), hops).await?;
        Ok(Response::new(info))
    }

    async fn rebalance(
        &self,
        request: Request<RebalanceRequest>,
    ) -> Result<Response<RebalanceResponse>, Status> {
        let hops = router::hops(request.metadata());
        Ok(Response::new(
            membership::rebalance(&self.node, hops).await?,
        ))
    }

    async fn remove_node(
        &self,
        request: Request<RemoveNodeRequest>,
    ) -> Result<Response<ClusterStatusResponse>, Status> {
        let hops = router::hops(request.metadata());
        let status = membership::remove_node(&self.node, request.into_inner(), hops).await?;
        Ok(Response::new(status))
    }
}

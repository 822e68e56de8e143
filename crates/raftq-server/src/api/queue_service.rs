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
use crate::auth::audit;
use crate::auth::guard::{authorize, Caller};
use crate::auth::users::Right;
use crate::error::ApiError;
use crate::node::Node;
use crate::router;

#[derive(Clone)]
pub struct Api {
    pub node: Arc<Node>,
}

impl Api {
    /// The caller (with an auth file), once it may exercise `right` on
    /// `queue` (`None`: on the cluster); refused otherwise, before anything
    /// is done.
    fn allow<T>(
        &self,
        request: &Request<T>,
        right: Right,
        queue: Option<&str>,
    ) -> Result<Option<Caller>, Status> {
        let Some(caller) = self.caller(request)? else {
            return Ok(None);
        };
        authorize(&caller, right, queue)?;
        Ok(Some(caller))
    }

    /// Who sent `request`: `None` without an auth file.
    fn caller<T>(&self, request: &Request<T>) -> Result<Option<Caller>, Status> {
        match self.node.auth() {
            None => Ok(None),
            Some(guard) => Ok(Some(
                guard.caller(request.metadata(), request.peer_certs())?,
            )),
        }
    }

    /// Like `allow` for an admin action, which also goes to the audit log.
    fn allow_audited<T>(
        &self,
        request: &Request<T>,
        right: Right,
        queue: Option<&str>,
        action: &str,
        target: &str,
    ) -> Result<(), Status> {
        let caller = self.allow(request, right, queue)?;
        audit::record(caller.as_ref(), action, target);
        Ok(())
    }

    /// A caller may see a queue it has any right on.
    fn allow_seeing<T>(&self, request: &Request<T>, queue: &str) -> Result<(), Status> {
        match self.caller(request)? {
            Some(Caller::User(user)) if !user.sees(queue) => Err(ApiError::PermissionDenied(
                format!("user {} has no right on queue '{queue}'", user.name),
            )
            .into()),
            _ => Ok(()),
        }
    }
}

#[tonic::async_trait]
impl QueueService for Api {
    async fn publish(
        &self,
        request: Request<PublishRequest>,
    ) -> Result<Response<PublishResponse>, Status> {
        self.allow(&request, Right::Write, Some(&request.get_ref().queue))?;
        let hops = router::hops(request.metadata());
        let resp = publish::publish(&self.node, request.into_inner(), hops).await?;
        Ok(Response::new(resp))
    }

    type ConsumeStream = consume::ConsumeStream;

    async fn consume(
        &self,
        request: Request<Streaming<ConsumeRequest>>,
    ) -> Result<Response<Self::ConsumeStream>, Status> {
        let caller = self.caller(&request)?;
        // The queue is named in the stream's first message.
        let allowed = move |queue: &str| match &caller {
            Some(c) => authorize(c, Right::Read, Some(queue)),
            None => Ok(()),
        };
        let hops = router::hops(request.metadata());
        let stream = consume::consume(&self.node, request.into_inner(), hops, allowed).await?;
        Ok(Response::new(stream))
    }

    async fn read(&self, request: Request<ReadRequest>) -> Result<Response<ReadResponse>, Status> {
        self.allow(&request, Right::Read, Some(&request.get_ref().queue))?;
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
        self.allow(&request, Right::Read, Some(&request.get_ref().queue))?;
        let hops = router::hops(request.metadata());
        let stream = stream::read_stream(&self.node, request.into_inner(), hops).await?;
        Ok(Response::new(stream))
    }

    async fn commit_offset(
        &self,
        request: Request<CommitOffsetRequest>,
    ) -> Result<Response<CommitOffsetResponse>, Status> {
        self.allow(&request, Right::Read, Some(&request.get_ref().queue))?;
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
        let name = request.get_ref().name.clone();
        self.allow_audited(
            &request,
            Right::Configure,
            Some(&name),
            "create queue",
            &name,
        )?;
        let hops = router::hops(request.metadata());
        Ok(Response::new(
            admin::create_queue(&self.node, request.into_inner(), hops).await?,
        ))
    }

    async fn delete_queue(
        &self,
        request: Request<DeleteQueueRequest>,
    ) -> Result<Response<DeleteQueueResponse>, Status> {
        let name = request.get_ref().name.clone();
        self.allow_audited(
            &request,
            Right::Configure,
            Some(&name),
            "delete queue",
            &name,
        )?;
        let hops = router::hops(request.metadata());
        admin::delete_queue(&self.node, request.into_inner(), hops).await?;
        Ok(Response::new(DeleteQueueResponse {}))
    }

    async fn list_queues(
        &self,
        request: Request<ListQueuesRequest>,
    ) -> Result<Response<ListQueuesResponse>, Status> {
        let caller = self.caller(&request)?;
        let hops = router::hops(request.metadata());
        let mut queues = admin::list_queues(&self.node, hops).await;
        if let Some(Caller::User(user)) = &caller {
            queues.retain(|q| user.sees(&q.name));
        }
        Ok(Response::new(ListQueuesResponse { queues }))
    }

    async fn get_queue(
        &self,
        request: Request<GetQueueRequest>,
    ) -> Result<Response<QueueInfo>, Status> {
        self.allow_seeing(&request, &request.get_ref().name)?;
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
        // Any known caller may watch the cluster's health.
        self.caller(&request)?;
        let hops = router::hops(request.metadata());
        Ok(Response::new(admin::cluster_status(&self.node, hops).await))
    }

    async fn change_replicas(
        &self,
        request: Request<ChangeReplicasRequest>,
    ) -> Result<Response<QueueInfo>, Status> {
        let queue = request.get_ref().queue.clone();
        let what = format!("{:?}", request.get_ref());
        self.allow_audited(
            &request,
            Right::Configure,
            Some(&queue),
            "change replicas",
            &what,
        )?;
        let hops = router::hops(request.metadata());
        let info = membership::change_replicas(&self.node, request.into_inner(), hops).await?;
        Ok(Response::new(info))
    }

    async fn transfer_leader(
        &self,
        request: Request<TransferLeaderRequest>,
    ) -> Result<Response<QueueInfo>, Status> {
        let queue = request.get_ref().queue.clone();
        self.allow_audited(
            &request,
            Right::Configure,
            Some(&queue),
            "transfer leader",
            &queue,
        )?;
        let hops = router::hops(request.metadata());
        let info = membership::transfer_leader(&self.node, request.into_inner(), hops).await?;
        Ok(Response::new(info))
    }

    async fn rebalance(
        &self,
        request: Request<RebalanceRequest>,
    ) -> Result<Response<RebalanceResponse>, Status> {
        self.allow_audited(&request, Right::Admin, None, "rebalance", "cluster")?;
        let hops = router::hops(request.metadata());
        Ok(Response::new(
            membership::rebalance(&self.node, hops).await?,
        ))
    }

    async fn remove_node(
        &self,
        request: Request<RemoveNodeRequest>,
    ) -> Result<Response<ClusterStatusResponse>, Status> {
        let node = format!("node {}", request.get_ref().node_id);
        self.allow_audited(&request, Right::Admin, None, "remove node", &node)?;
        let hops = router::hops(request.metadata());
        let status = membership::remove_node(&self.node, request.into_inner(), hops).await?;
        Ok(Response::new(status))
    }
}

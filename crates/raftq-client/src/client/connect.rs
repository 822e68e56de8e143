//! Making a [`Client`] from seed addresses, and the gRPC stubs for one node,
//! over the pool's channel to it.

use std::sync::Arc;

use futures::stream::{FuturesUnordered, StreamExt};
use raftq_proto::v1::admin_service_client::AdminServiceClient;
use raftq_proto::v1::queue_service_client::QueueServiceClient;
use tonic::transport::Channel;

use super::credentials::Credentials;
use super::{ClientOptions, Inner};

/// A channel that adds the client's credentials to every request.
pub(crate) type Authed = tonic::service::interceptor::InterceptedService<Channel, Credentials>;
use crate::connection::{normalize_address, ChannelSettings, Directory, Pool};
use crate::{Client, Error};

/// Largest gRPC message the client sends or accepts (large read answers).
const MAX_MESSAGE_BYTES: usize = 64 << 20;

impl Client {
    /// Connects with default options. Fails with [`Error::Unreachable`] when
    /// no seed answers at all; after that, nodes may come and go.
    pub async fn connect<S: Into<String>>(
        seeds: impl IntoIterator<Item = S>,
    ) -> Result<Client, Error> {
        Self::connect_with(seeds, ClientOptions::default()).await
    }

    /// Connects, asking every seed at once for the cluster's membership.
    pub async fn connect_with<S: Into<String>>(
        seeds: impl IntoIterator<Item = S>,
        options: ClientOptions,
    ) -> Result<Client, Error> {
        let client = Self::lazy(seeds, options)?;
        if client.probe().await {
            Ok(client)
        } else {
            Err(Error::Unreachable(client.seeds().join(",")))
        }
    }

    /// Asks every seed at once for the cluster's membership; true as soon as
    /// one answers anything (an error status is still an answer).
    async fn probe(&self) -> bool {
        let timeout = self.inner.options.request_timeout;
        let mut probes: FuturesUnordered<_> = self
            .seeds()
            .iter()
            .map(|addr| self.cluster_status_at(addr, timeout))
            .collect();
        let mut answered = false;
        while let Some(result) = probes.next().await {
            match result {
                Ok(_) => return true,
                Err(Error::Connect(_) | Error::Transport(_) | Error::RequestTimeout(_)) => {}
                Err(_) => answered = true,
            }
        }
        answered
    }

    /// A client that has not contacted anything yet: the first request will.
    /// Only fails on malformed or missing addresses.
    pub fn lazy<S: Into<String>>(
        seeds: impl IntoIterator<Item = S>,
        options: ClientOptions,
    ) -> Result<Client, Error> {
        let mut list: Vec<String> = Vec::new();
        for seed in seeds {
            let seed: String = seed.into();
            // "a:1,b:2" in one string works too.
            for addr in seed.split(',').filter_map(normalize_address) {
                if !list.contains(&addr) {
                    list.push(addr);
                }
            }
        }
        if list.is_empty() {
            return Err(Error::InvalidArgument("no server addresses given".into()));
        }
        let settings = ChannelSettings {
            connect_timeout: options.connect_timeout,
            tls: options.tls.clone(),
        };
        let credentials = Credentials::new(options.token.as_deref())?;
        let pool = Pool::new(list, settings);
        for addr in pool.seeds() {
            pool.channel(addr)?;
        }
        Ok(Client {
            inner: Arc::new(Inner {
                pool,
                credentials,
                directory: Directory::default(),
                options,
                publish_key_source: rand::random(),
                publish_key_counter: Default::default(),
            }),
        })
    }

    pub(crate) fn admin_at(&self, addr: &str) -> Result<AdminServiceClient<Authed>, Error> {
        Ok(AdminServiceClient::with_interceptor(
            self.inner.pool.channel(addr)?,
            self.inner.credentials.clone(),
        ))
    }

    pub(crate) fn queue_at(&self, addr: &str) -> Result<QueueServiceClient<Authed>, Error> {
        Ok(QueueServiceClient::with_interceptor(
            self.inner.pool.channel(addr)?,
            self.inner.credentials.clone(),
        )
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES))
    }
}

//! The producer's background task: feeds the pipeline with messages from the
//! handle, makes its requests concurrently, and hands results back.

use std::time::Instant;

use futures::stream::{FuturesUnordered, StreamExt};
use raftq_proto::v1::PublishMessage;
use tokio::sync::{mpsc, oneshot};

use super::pipeline::{Pipeline, Resolved};
use crate::{Client, Error};

pub(crate) type Waiter = oneshot::Sender<Result<u64, Error>>;

pub(crate) enum Command {
    Send(PublishMessage, Waiter),
    /// Answered once every message sent before it is resolved.
    Flush(oneshot::Sender<()>),
}

/// Commands taken per wake-up before requests go out: enough to fill batches
/// when the caller is fast, without starving the response side.
const COMMANDS_PER_TURN: usize = 4096;

pub(crate) async fn run(
    client: Client,
    mut pipeline: Pipeline<Waiter>,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let mut requests = FuturesUnordered::new();
    let mut flushes: Vec<(u64, oneshot::Sender<()>)> = Vec::new();
    let mut resolved: Resolved<Waiter> = Vec::new();
    let mut input_open = true;
    loop {
        let now = Instant::now();
        pipeline.expire(now, &mut resolved);
        while let Some(send) = pipeline.poll_send(now) {
            let client = client.clone();
            requests.push(async move {
                let result = client.publish_once(send.request).await;
                (send.batch_id, result)
            });
        }
        for (waiter, result) in resolved.drain(..) {
            // The caller may have dropped its confirm future: nothing to tell.
            let _ = waiter.send(result);
        }
        let done = pipeline.resolved_below();
        let mut i = 0;
        while i < flushes.len() {
            if flushes[i].0 <= done {
                let (_, tx) = flushes.swap_remove(i);
                let _ = tx.send(());
            } else {
                i += 1;
            }
        }
        if !input_open && pipeline.is_idle() && requests.is_empty() {
            return;
        }
        let wakeup = pipeline.next_wakeup();
        tokio::select! {
            command = commands.recv(), if input_open => {
                let mut next = command;
                let mut taken = 0;
                loop {
                    match next {
                        Some(Command::Send(message, waiter)) => {
                            pipeline.push(message, waiter, Instant::now());
                        }
                        Some(Command::Flush(tx)) => flushes.push((pipeline.flush(), tx)),
                        None => {
                            input_open = false;
                            pipeline.close();
                            break;
                        }
                    }
                    taken += 1;
                    if taken >= COMMANDS_PER_TURN {
                        break;
                    }
                    match commands.try_recv() {
                        Ok(c) => next = Some(c),
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        Err(mpsc::error::TryRecvError::Disconnected) => next = None,
                    }
                }
            }
            Some((batch_id, result)) = requests.next(), if !requests.is_empty() => {
                pipeline.on_result(batch_id, result, Instant::now(), &mut resolved);
            }
            _ = sleep_until(wakeup), if wakeup.is_some() => {}
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at.into()).await;
    }
}

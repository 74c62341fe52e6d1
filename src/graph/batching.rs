//! Many requests sent as Graph JSON batches ([`super::batch`]): chunks of
//! at most 20, a few chunks at Graph at once, each item with its own budget
//! token, and each item's throttling answered on its own.
//!
//! - **Tokens**: with Intune's budget on, an item is put in a chunk only
//!   once it holds its token. A chunk waits (fairly, up to the deadline) for
//!   its first item's token and takes the next ones only if they are free
//!   now, so a large batch goes out at the budget's pace instead of holding
//!   tokens idle; items without a token wait for a later chunk.
//! - **Items answered 429 or 503** (and a read's 504) inside the 200 were
//!   not taken: they are sent again in a later chunk after their own
//!   `Retry-After` (held to `GRAPH_MAX_RETRY_AFTER`; without one, the retry
//!   backoff), while the call's deadline, the retry limit and the retry
//!   budget allow. A 429 also lowers the budget's pace. An item whose time
//!   runs out keeps its last answer, with the delay Graph asked for.
//! - **An envelope that failed** is every write's failure, as if each had
//!   been sent alone: the stack has already retried what it safely could (a
//!   `$batch` is a POST, sent again only if Graph did not take it); its
//!   reads are sent again, as a read alone would be. An answer
//!   that cannot be trusted item by item ([`super::batch::EnvelopeError`])
//!   leaves reads to be sent again and writes with an unknown outcome
//!   ([`GraphError::Lost`]): the caller reads them back.

use super::batch::{self, Item, MAX_ITEMS};
use super::stack::{GrantSlot, GraphRequest, Resend};
use super::{CallContext, GraphClient, GraphError, GraphResponse, Sent};
use crate::budget::{Cost, Grant, Lane};
use futures_util::stream::{FuturesUnordered, StreamExt};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;
use tower::ServiceExt;

/// Chunks at Graph at once for one call.
pub const CHUNKS_IN_FLIGHT: usize = 4;

/// One item's answer, and whether any request carrying it may have reached
/// Graph.
#[derive(Debug, Clone)]
pub struct ItemAnswer {
    pub result: Result<GraphResponse, GraphError>,
    pub sent: bool,
    /// `result` is the failure of the envelope that carried the item, not
    /// an answer of Graph's to the item: whatever the item did is unknown
    /// unless the failure says Graph took none of it.
    pub envelope_failed: bool,
}

/// An item still to send: not before `at`, after `tries` sends.
#[derive(Debug, Clone, Copy)]
struct Pending {
    index: usize,
    at: Instant,
    tries: u32,
}

/// What became of one chunk.
struct Chunk {
    /// The items it carried, with their tries so far.
    carried: Vec<Pending>,
    /// The items that got no token in time, to go in a later chunk.
    unsent: Vec<Pending>,
    answer: Result<Vec<Result<GraphResponse, GraphError>>, GraphError>,
    sent: bool,
}

fn lane(item: &Item) -> Lane {
    Lane::for_method(&item.method)
}

/// Whether an item's failure inside a batch answer says Graph did not take
/// it, so that it may go again.
fn not_taken(item: &Item, error: &GraphError) -> bool {
    match error {
        GraphError::Status(f) => {
            matches!(f.status, 429 | 503) || (f.status == 504 && lane(item) == Lane::Read)
        }
        _ => false,
    }
}

impl GraphClient {
    /// Sends `items` in JSON batches and answers each in their order; see
    /// the module doc.
    pub async fn batch(&self, items: &[Item], ctx: &CallContext) -> Vec<ItemAnswer> {
        let deadline = self.deadline(ctx);
        let start = Instant::now();
        let mut answers: Vec<Option<ItemAnswer>> = vec![None; items.len()];
        let mut sent = vec![false; items.len()];
        let mut pending: Vec<Pending> = (0..items.len())
            .map(|index| Pending {
                index,
                at: start,
                tries: 0,
            })
            .collect();
        let mut in_flight = FuturesUnordered::new();
        loop {
            let now = Instant::now();
            while in_flight.len() < CHUNKS_IN_FLIGHT {
                let ready: Vec<Pending> = take_ready(&mut pending, now);
                if ready.is_empty() {
                    break;
                }
                in_flight.push(self.send_chunk(items, ready, ctx, deadline));
            }
            if in_flight.is_empty() {
                let Some(next) = pending.iter().map(|p| p.at).min() else {
                    break;
                };
                // Only items waiting out a Retry-After are left.
                tokio::time::sleep_until(next).await;
                continue;
            }
            let Some(chunk) = in_flight.next().await else {
                continue;
            };
            pending.extend(chunk.unsent);
            for p in &chunk.carried {
                sent[p.index] |= chunk.sent;
            }
            match chunk.answer {
                Ok(results) => {
                    for (p, result) in chunk.carried.into_iter().zip(results) {
                        let again = self.again(&items[p.index], &result, p, deadline);
                        settle(&mut pending, &mut answers, &sent, p, again, result, false);
                    }
                }
                Err(e) => {
                    for p in chunk.carried {
                        let again = self.again_after_envelope(&items[p.index], &e, p, deadline);
                        settle(
                            &mut pending,
                            &mut answers,
                            &sent,
                            p,
                            again,
                            Err(e.clone()),
                            true,
                        );
                    }
                }
            }
        }
        answers
            .into_iter()
            .zip(sent)
            .map(|(answer, sent)| {
                // Every item ends with an answer; the fallback keeps that
                // true without a panic.
                answer.unwrap_or(ItemAnswer {
                    result: Err(GraphError::Timeout),
                    sent,
                    envelope_failed: true,
                })
            })
            .collect()
    }

    /// When an item answered `result` should go again, if it should: Graph
    /// did not take it, and its delay, the retry limit and the retry budget
    /// allow another send before the deadline.
    fn again(
        &self,
        item: &Item,
        result: &Result<GraphResponse, GraphError>,
        p: Pending,
        deadline: Instant,
    ) -> Option<Instant> {
        let Err(error) = result else { return None };
        if !not_taken(item, error) {
            return None;
        }
        let GraphError::Status(f) = error else {
            return None;
        };
        if f.status == 429 {
            if let Some(budget) = self.budget() {
                budget.throttled(lane(item));
            }
        }
        let settings = &self.retry_settings;
        if p.tries >= settings.max_retries {
            self.metrics.retry_skipped("limit");
            return None;
        }
        let delay = f.retry_after.unwrap_or_else(|| {
            settings
                .base_delay
                .saturating_mul(2u32.saturating_pow(p.tries))
        });
        let at = Instant::now() + delay;
        if at >= deadline {
            self.metrics.retry_skipped("deadline");
            return None;
        }
        let reason = match f.status {
            429 => "batch_item_429",
            503 => "batch_item_503",
            _ => "batch_item_504",
        };
        self.withdraw_retry(reason).then_some(at)
    }

    /// When a read whose envelope failed should go again: reading again is
    /// harmless, so after any failure another send may cure (the stack
    /// sends a `$batch` again only when Graph did not take it), within the
    /// same limits as a throttled item. A write keeps the envelope's
    /// failure, and so does every item refused before it was sent.
    fn again_after_envelope(
        &self,
        item: &Item,
        error: &GraphError,
        p: Pending,
        deadline: Instant,
    ) -> Option<Instant> {
        if lane(item) != Lane::Read {
            return None;
        }
        match error {
            GraphError::Lost(_)
            | GraphError::Timeout
            | GraphError::Body(_)
            | GraphError::Connect(_) => {}
            GraphError::Status(f) if f.status >= 500 => {}
            _ => return None,
        }
        let settings = &self.retry_settings;
        if p.tries >= settings.max_retries {
            self.metrics.retry_skipped("limit");
            return None;
        }
        let at = Instant::now()
            + settings
                .base_delay
                .saturating_mul(2u32.saturating_pow(p.tries));
        if at >= deadline {
            self.metrics.retry_skipped("deadline");
            return None;
        }
        self.withdraw_retry("batch_envelope").then_some(at)
    }

    /// Takes the tokens `ready` needs (waiting only for the first), sends
    /// the items that got one as one batch, and reads its answer.
    async fn send_chunk(
        &self,
        items: &[Item],
        ready: Vec<Pending>,
        ctx: &CallContext,
        deadline: Instant,
    ) -> Chunk {
        let (carried, unsent, grants) = match self.budget() {
            None => (ready, Vec::new(), Vec::new()),
            Some(budget) => {
                let mut ready = ready.into_iter();
                let mut carried = Vec::new();
                let mut grants: Vec<Grant> = Vec::new();
                if let Some(first) = ready.next() {
                    let cost = Cost::of(lane(&items[first.index]));
                    match budget.acquire_cost(&ctx.caller, cost, deadline).await {
                        Ok(g) => {
                            grants.extend(g);
                            carried.push(first);
                        }
                        Err(e) => {
                            // No token before the deadline for the first:
                            // none would come for the others either.
                            let mut carried = vec![first];
                            carried.extend(ready);
                            return Chunk {
                                carried,
                                unsent: Vec::new(),
                                answer: Err(GraphError::BudgetExhausted(e)),
                                sent: false,
                            };
                        }
                    }
                }
                let mut unsent = Vec::new();
                for p in ready {
                    let cost = Cost::of(lane(&items[p.index]));
                    match unsent
                        .is_empty()
                        .then(|| budget.try_acquire_cost(cost))
                        .flatten()
                    {
                        Some(g) => {
                            grants.extend(g);
                            carried.push(p);
                        }
                        None => unsent.push(p),
                    }
                }
                (carried, unsent, grants)
            }
        };
        let chunk_items: Vec<Item> = carried.iter().map(|p| items[p.index].clone()).collect();
        let sent = Sent::default();
        let answer = self
            .send_envelope(&chunk_items, ctx, &sent, grants, deadline)
            .await;
        let sent = sent.may_have_reached_graph();
        if sent {
            ctx.sent.mark();
        }
        Chunk {
            carried,
            unsent,
            answer,
            sent,
        }
    }

    /// One `POST /$batch` through the stack, with the items' tokens already
    /// taken, read into each item's answer.
    async fn send_envelope(
        &self,
        items: &[Item],
        ctx: &CallContext,
        sent: &Sent,
        grants: Vec<Grant>,
        deadline: Instant,
    ) -> Result<Vec<Result<GraphResponse, GraphError>>, GraphError> {
        let cost = items.iter().fold(Cost::default(), |c, item| {
            let one = Cost::of(lane(item));
            Cost {
                reads: c.reads + one.reads,
                writes: c.writes + one.writes,
            }
        });
        let slot = GrantSlot::default();
        slot.put(grants);
        let req = GraphRequest {
            method: http::Method::POST,
            uri: self.batch_uri.clone()?,
            body: Some(batch::envelope(items).into()),
            client_request_id: ctx.client_request_id.as_str().into(),
            deadline,
            authorization: None,
            attempt: 0,
            sent: sent.clone(),
            resend: Resend::OnlyIfNotTaken,
            caller: ctx.caller.clone(),
            cost,
            grant: slot,
        };
        let result = tokio::time::timeout_at(deadline, self.stack.clone().oneshot(req))
            .await
            .unwrap_or(Err(GraphError::Timeout));
        self.metrics
            .graph_request("BATCH", super::answered_status(&result));
        let resp = result?;
        match batch::answers(
            &resp.body,
            items.len(),
            SystemTime::now(),
            self.max_retry_after,
        ) {
            Ok(answers) => Ok(answers),
            Err(why) => {
                tracing::warn!(error = %why, items = items.len(), "Graph's batch answer cannot be read item by item");
                Ok(items
                    .iter()
                    .map(|item| {
                        if lane(item) == Lane::Read {
                            // A read is sent again: treated as unavailable.
                            Err(GraphError::Status(Box::new(super::GraphFailure {
                                status: 503,
                                code: None,
                                message: Some(why.to_string()),
                                request_id: resp.request_id.clone(),
                                client_request_id: None,
                                date: None,
                                retry_after: Some(Duration::ZERO),
                            })))
                        } else {
                            Err(GraphError::Lost(why.to_string()))
                        }
                    })
                    .collect())
            }
        }
    }
}

/// An item's answer is final unless it goes `again` (at that time): then
/// it waits in `pending` for a later chunk.
fn settle(
    pending: &mut Vec<Pending>,
    answers: &mut [Option<ItemAnswer>],
    sent: &[bool],
    p: Pending,
    again: Option<Instant>,
    result: Result<GraphResponse, GraphError>,
    envelope_failed: bool,
) {
    match again {
        Some(at) => pending.push(Pending {
            at,
            tries: p.tries + 1,
            ..p
        }),
        None => {
            answers[p.index] = Some(ItemAnswer {
                result,
                sent: sent[p.index],
                envelope_failed,
            })
        }
    }
}

/// Up to [`MAX_ITEMS`] of `pending` whose time has come, in their order,
/// taken out of it.
fn take_ready(pending: &mut Vec<Pending>, now: Instant) -> Vec<Pending> {
    let mut ready = Vec::new();
    pending.retain(|p| {
        if ready.len() < MAX_ITEMS && p.at <= now {
            ready.push(*p);
            false
        } else {
            true
        }
    });
    ready
}

/// The shared batch URL of a Graph base: `{base}/$batch`.
pub(super) fn batch_url(base: &url::Url) -> url::Url {
    super::with_path(base, &["/$batch"])
}

//! The seam to a budget shared by every replica (Redis, in
//! [`super::redis`]): what the pacing asks of it, nothing of how.

use super::Rate;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

pub type StoreFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The limits in force, as this replica's pace has them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub requests: Rate,
    pub writes: Rate,
}

/// What a shared budget answers to a take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    Granted,
    /// No room: the earliest a token could free, from now.
    Wait(Duration),
}

/// How many tokens each shared log holds in the window, every replica's
/// together, as the store saw them when it answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Used {
    pub requests: u32,
    pub writes: u32,
}

/// A take's answer, and how full the shared budget was after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    pub take: Take,
    pub used: Used,
}

/// One of this replica's tokens of the last window, to put back in a store
/// that has not seen it ([`Store::restore`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// The token's name in the store (a new one for a token taken while the
    /// store did not answer).
    pub member: Arc<str>,
    /// From its answer to now.
    pub age: Duration,
    /// It was a write's: it counts in both budgets.
    pub write: bool,
}

/// The shared budget did not answer (unreachable, too slow, refused):
/// why, as a short word for logs and metrics, never with an address or a
/// password in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreDown(pub &'static str);

/// A budget shared with other replicas. Each call is bounded by the
/// store's own short timeout.
pub trait Store: Send + Sync + 'static {
    /// Takes one token of the request budget and, for a write, one of the
    /// write budget, atomically: both or neither. `member` names the token
    /// for [`Store::release`].
    fn take(
        &self,
        write: bool,
        limits: Limits,
        member: Arc<str>,
    ) -> StoreFuture<Result<Answer, StoreDown>>;
    /// The token's Graph answer came back: count its window from now.
    fn release(&self, write: bool, member: Arc<str>) -> StoreFuture<Result<(), StoreDown>>;
    /// The token was never used (its call was not sent): free it now.
    fn give_back(&self, member: Arc<str>) -> StoreFuture<Result<(), StoreDown>>;
    /// Logs this replica's tokens of the last `window` that the store does
    /// not hold (spent while it did not answer, or lost when it restarted);
    /// one it holds keeps its entry.
    fn restore(&self, window: Duration, tokens: Vec<Held>) -> StoreFuture<Result<(), StoreDown>>;
    /// Whether the store answers.
    fn ping(&self) -> StoreFuture<Result<(), StoreDown>>;
}

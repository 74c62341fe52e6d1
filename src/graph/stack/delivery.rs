//! Whether a request that got no answer can have reached Graph.
//!
//! A write may be sent again only when it provably never reached Graph:
//! otherwise Graph may have applied it, and sending it again could overwrite
//! a change another writer made in between. Provably unsent:
//!
//! - the connection could not be made (TCP, TLS, proxy);
//! - the HTTP client gave the request back unstarted (hyper's "canceled":
//!   the pooled connection closed before the request was written);
//! - HTTP/2 refused the stream (`REFUSED_STREAM`: no processing happened,
//!   RFC 9113 §8.7), or a graceful `GOAWAY` (`NO_ERROR`) named a last stream
//!   below this one (h2 fails only those streams with it, §6.8).
//!
//! Anything else (a reset or a close after the request was written, a
//! timeout) may have reached Graph.

use crate::graph::GraphError;
use std::error::Error as _;

/// What a failed send says about the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// It never left: sending it again is safe.
    NotSent,
    /// It may have reached Graph, and no answer came.
    MaybeSent,
    /// The HTTP client's own timeout ended the exchange.
    TimedOut,
}

impl Delivery {
    /// The error for a failed send, described by `why`.
    pub fn error(self, why: String) -> GraphError {
        match self {
            Self::NotSent => GraphError::Connect(why),
            Self::MaybeSent => GraphError::Lost(why),
            Self::TimedOut => GraphError::Timeout,
        }
    }
}

/// Reads the HTTP client's error and its causes.
pub fn classify(e: &hyper_util::client::legacy::Error) -> Delivery {
    // A connect timeout is a connect error too: nothing was written.
    if e.is_connect() {
        return Delivery::NotSent;
    }
    let mut timed_out = false;
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(h) = s.downcast_ref::<hyper::Error>() {
            if h.is_canceled() {
                return Delivery::NotSent;
            }
            timed_out |= h.is_timeout();
        }
        if let Some(h2) = s.downcast_ref::<h2::Error>() {
            if never_processed(h2) {
                return Delivery::NotSent;
            }
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            timed_out |= io.kind() == std::io::ErrorKind::TimedOut;
        }
        source = s.source();
    }
    if timed_out {
        Delivery::TimedOut
    } else {
        Delivery::MaybeSent
    }
}

/// An HTTP/2 error that says the server did not process the stream.
fn never_processed(e: &h2::Error) -> bool {
    match e.reason() {
        Some(h2::Reason::REFUSED_STREAM) => true,
        Some(h2::Reason::NO_ERROR) => e.is_go_away() && e.is_remote(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_streams_and_graceful_goaways_were_never_processed() {
        assert!(never_processed(&h2::Error::from(
            h2::Reason::REFUSED_STREAM
        )));
        // A reset for another reason (or one the client made) proves nothing.
        assert!(!never_processed(&h2::Error::from(h2::Reason::CANCEL)));
        assert!(!never_processed(&h2::Error::from(
            h2::Reason::INTERNAL_ERROR
        )));
    }
}

//! Reading an answer's body under a limit, for every body the gateway reads
//! from a server it does not control (Graph, Entra ID, a key set).
//!
//! The body is read chunk by chunk, after decompression (reqwest inflates
//! gzip as it goes), and reading stops as soon as the limit is passed, so an
//! endless or inflating answer (a gzip bomb) never costs more memory than the
//! limit. A `Content-Length` past the limit is refused before any of the body
//! is read.

use bytes::{Bytes, BytesMut};

/// Why a body was not read whole.
#[derive(Debug)]
pub enum BodyError {
    /// The body, or its declared length, passed the limit.
    TooLarge { limit: u64 },
    /// The body broke off.
    Broken(reqwest::Error),
}

/// The whole body, if it is at most `limit` bytes.
pub async fn read_limited(mut resp: reqwest::Response, limit: u64) -> Result<Bytes, BodyError> {
    let declared = resp.content_length();
    if declared.is_some_and(|n| n > limit) {
        return Err(BodyError::TooLarge { limit });
    }
    let too_large = |len: usize| u64::try_from(len).map_or(true, |n| n > limit);
    // Most answers arrive in one chunk: keep it as is, without a copy.
    let Some(first) = resp.chunk().await.map_err(BodyError::Broken)? else {
        return Ok(Bytes::new());
    };
    if too_large(first.len()) {
        return Err(BodyError::TooLarge { limit });
    }
    let Some(second) = resp.chunk().await.map_err(BodyError::Broken)? else {
        return Ok(first);
    };
    // The declared length is within the limit: room for all of it at once.
    let declared = declared.and_then(|n| usize::try_from(n).ok()).unwrap_or(0);
    let mut body = BytesMut::with_capacity(declared.max(first.len() + second.len()));
    body.extend_from_slice(&first);
    let mut next = Some(second);
    while let Some(chunk) = next {
        if too_large(body.len().saturating_add(chunk.len())) {
            return Err(BodyError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
        next = resp.chunk().await.map_err(BodyError::Broken)?;
    }
    Ok(body.freeze())
}

/// At most the first `limit` bytes of the body (all of it, if shorter), for
/// error bodies, which are read for what they say, not kept whole. A body
/// that breaks off gives what arrived before it broke.
pub async fn read_prefix(mut resp: reqwest::Response, limit: usize) -> Bytes {
    let mut body = BytesMut::new();
    while body.len() < limit {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let room = limit - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    body.freeze()
}

//! Reading an answer's body under a limit, for every body the gateway reads
//! from a server it does not control (Graph, Entra ID, a key set).
//!
//! The body is read chunk by chunk, after decompression (a Graph answer's
//! gzip is inflated here as it arrives, [`GraphBody`]; reqwest inflates the
//! others), and reading stops as soon as the limit is passed, so an endless
//! or inflating answer (a gzip bomb) never costs more memory than the limit.
//! A `Content-Length` past the limit is refused before any of the body is
//! read.

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use std::future::Future;
use std::io::Write;

/// Why a body was not read whole.
#[derive(Debug)]
pub enum BodyError<E = reqwest::Error> {
    /// The body, or its declared length, passed the limit.
    TooLarge { limit: u64 },
    /// The body broke off.
    Broken(E),
}

/// A body read chunk by chunk.
pub(crate) trait Chunks {
    type Error;

    /// The length the answer declared, if it did (and is not compressed).
    fn declared(&self) -> Option<u64>;

    /// The reader keeps at most `bytes` of what it yields: what it holds
    /// past that is never made (an inflating body stops inflating).
    fn keep_at_most(&mut self, bytes: u64);

    /// The next chunk; `None` at the end.
    fn chunk(&mut self) -> impl Future<Output = Result<Option<Bytes>, Self::Error>> + Send;
}

impl Chunks for reqwest::Response {
    type Error = reqwest::Error;

    fn declared(&self) -> Option<u64> {
        self.content_length()
    }

    fn keep_at_most(&mut self, _bytes: u64) {}

    fn chunk(&mut self) -> impl Future<Output = Result<Option<Bytes>, reqwest::Error>> + Send {
        reqwest::Response::chunk(self)
    }
}

/// The whole body, if it is at most `limit` bytes.
pub async fn read_limited(resp: reqwest::Response, limit: u64) -> Result<Bytes, BodyError> {
    read_limited_from(resp, limit).await
}

/// At most the first `limit` bytes of the body (all of it, if shorter), for
/// error bodies, which are read for what they say, not kept whole. A body
/// that breaks off gives what arrived before it broke.
pub async fn read_prefix(resp: reqwest::Response, limit: usize) -> Bytes {
    read_prefix_from(resp, limit).await
}

/// [`read_limited`] for any body.
pub(crate) async fn read_limited_from<C: Chunks + Send>(
    mut body: C,
    limit: u64,
) -> Result<Bytes, BodyError<C::Error>> {
    let declared = body.declared();
    if declared.is_some_and(|n| n > limit) {
        return Err(BodyError::TooLarge { limit });
    }
    // One byte past the limit is enough to know it was passed.
    body.keep_at_most(limit.saturating_add(1));
    let too_large = |len: usize| u64::try_from(len).map_or(true, |n| n > limit);
    // Most answers arrive in one chunk: keep it as is, without a copy.
    let Some(first) = body.chunk().await.map_err(BodyError::Broken)? else {
        return Ok(Bytes::new());
    };
    if too_large(first.len()) {
        return Err(BodyError::TooLarge { limit });
    }
    let Some(second) = body.chunk().await.map_err(BodyError::Broken)? else {
        return Ok(first);
    };
    // The declared length is within the limit: room for all of it at once.
    let declared = declared.and_then(|n| usize::try_from(n).ok()).unwrap_or(0);
    let mut out = BytesMut::with_capacity(declared.max(first.len() + second.len()));
    out.extend_from_slice(&first);
    let mut next = Some(second);
    while let Some(chunk) = next {
        if too_large(out.len().saturating_add(chunk.len())) {
            return Err(BodyError::TooLarge { limit });
        }
        out.extend_from_slice(&chunk);
        next = body.chunk().await.map_err(BodyError::Broken)?;
    }
    Ok(out.freeze())
}

/// [`read_prefix`] for any body.
pub(crate) async fn read_prefix_from<C: Chunks + Send>(mut body: C, limit: usize) -> Bytes {
    body.keep_at_most(u64::try_from(limit).unwrap_or(u64::MAX));
    let mut out = BytesMut::new();
    while out.len() < limit {
        match body.chunk().await {
            Ok(Some(chunk)) => {
                let room = limit - out.len();
                out.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    out.freeze()
}

/// Why a Graph answer's body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum GraphBodyError {
    /// The connection broke off.
    #[error(transparent)]
    Http(#[from] hyper::Error),
    /// The gzip stream is not one.
    #[error("the gzip answer is corrupt: {0}")]
    Gzip(std::io::Error),
}

/// A Graph answer's body: as sent, or inflated as it arrives when it is
/// `Content-Encoding: gzip`.
pub struct GraphBody {
    body: hyper::body::Incoming,
    inflate: Option<Inflate>,
}

/// Gzip being inflated into at most the bytes the reader keeps.
struct Inflate {
    decoder: flate2::write::GzDecoder<Capped>,
    /// Whether any compressed byte arrived: an empty body is an empty answer.
    started: bool,
    /// The end of the stream was reached, or the reader has all it keeps.
    done: bool,
}

impl GraphBody {
    /// The body of an answer with these headers.
    pub fn new(headers: &http::HeaderMap, body: hyper::body::Incoming) -> Self {
        // As HTTP clients do: only exactly `gzip` is undone.
        let gzip = headers
            .get(http::header::CONTENT_ENCODING)
            .is_some_and(|v| v.as_bytes() == b"gzip");
        Self {
            body,
            inflate: gzip.then(|| Inflate {
                decoder: flate2::write::GzDecoder::new(Capped::default()),
                started: false,
                done: false,
            }),
        }
    }

    async fn frame(&mut self) -> Result<Option<Bytes>, GraphBodyError> {
        while let Some(frame) = self.body.frame().await {
            // Trailers carry no data.
            if let Ok(data) = frame?.into_data() {
                return Ok(Some(data));
            }
        }
        Ok(None)
    }

    async fn inflated(&mut self) -> Result<Option<Bytes>, GraphBodyError> {
        loop {
            let Some(inflate) = self.inflate.as_mut() else {
                return Ok(None);
            };
            let out = inflate.decoder.get_mut().take();
            if !out.is_empty() {
                return Ok(Some(out));
            }
            if inflate.done {
                return Ok(None);
            }
            let frame = self.frame().await?;
            let Some(inflate) = self.inflate.as_mut() else {
                return Ok(None);
            };
            let result = match frame {
                Some(data) => {
                    inflate.started |= !data.is_empty();
                    inflate
                        .decoder
                        .write_all(&data)
                        .and_then(|()| inflate.decoder.flush())
                }
                None => {
                    inflate.done = true;
                    if inflate.started {
                        inflate.decoder.try_finish()
                    } else {
                        Ok(())
                    }
                }
            };
            if let Err(e) = result {
                if !inflate.decoder.get_ref().full {
                    return Err(GraphBodyError::Gzip(e));
                }
                // The reader has all it keeps: what is inflated so far goes
                // to it, nothing more is inflated.
                inflate.done = true;
            }
        }
    }
}

impl Chunks for GraphBody {
    type Error = GraphBodyError;

    fn declared(&self) -> Option<u64> {
        // A compressed body's length says nothing of what it inflates to.
        if self.inflate.is_some() {
            None
        } else {
            http_body::Body::size_hint(&self.body).exact()
        }
    }

    fn keep_at_most(&mut self, bytes: u64) {
        if let Some(inflate) = &mut self.inflate {
            inflate.decoder.get_mut().room = bytes;
        }
    }

    async fn chunk(&mut self) -> Result<Option<Bytes>, GraphBodyError> {
        if self.inflate.is_some() {
            self.inflated().await
        } else {
            self.frame().await
        }
    }
}

/// Where inflated bytes go: at most `room` of them in all, then every
/// write fails.
struct Capped {
    out: Vec<u8>,
    room: u64,
    full: bool,
}

impl Default for Capped {
    fn default() -> Self {
        Self {
            out: Vec::new(),
            room: u64::MAX,
            full: false,
        }
    }
}

impl Capped {
    fn take(&mut self) -> Bytes {
        Bytes::from(std::mem::take(&mut self.out))
    }
}

impl Write for Capped {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        if self.room == 0 {
            self.full = true;
            return Err(std::io::Error::other("the answer limit is reached"));
        }
        let n = usize::try_from(self.room).map_or(data.len(), |room| room.min(data.len()));
        self.out.extend_from_slice(&data[..n]);
        self.room -= n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

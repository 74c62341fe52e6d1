//! Answers too large to hold: a body of any length, and a gzip stream that
//! inflates to any length (a gzip bomb). Both are made as they are sent,
//! a chunk at a time, so a 1 GiB answer costs the emulator kilobytes.
//!
//! The gzip stream is not compressed from its inflated bytes (a gibibyte of
//! zeros would take seconds of CPU per answer): a deflate run that inflates
//! to [`UNIT`] zero bytes, compressed once, decodes the same wherever the
//! previous 32 KiB were zeros, so it is repeated as often as needed.

use std::io;
use std::sync::OnceLock;

use axum::body::{Body, Bytes};
use axum::http::header::{HeaderValue, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::StatusCode;
use axum::response::Response;
use flate2::{Compress, Compression, Crc, FlushCompress};

/// The inflated size of one repeated deflate run.
const UNIT: usize = 1 << 20;
/// Zeros or spaces are sent this many bytes per chunk.
const CHUNK: usize = 64 * 1024;
/// Runs sent per chunk of a gzip bomb (each is about a kilobyte).
const RUNS_PER_CHUNK: usize = 64;

/// `status` with a body of `bytes` spaces, sent as JSON. With `chunked`, no
/// `Content-Length` is sent, so the client learns the size only by reading.
pub fn huge(status: StatusCode, bytes: u64, chunked: bool) -> Response {
    static SPACES: [u8; CHUNK] = [b' '; CHUNK];
    let chunk = CHUNK as u64;
    let full = bytes / chunk;
    let rest = usize::try_from(bytes % chunk).unwrap_or(0);
    let chunks = (0..full)
        .map(|_| Bytes::from_static(&SPACES))
        .chain((rest > 0).then(|| Bytes::from_static(&SPACES[..rest])));
    let mut response = streamed(status, chunks);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if !chunked {
        headers.insert(CONTENT_LENGTH, HeaderValue::from(bytes));
    }
    response
}

/// `status` with `Content-Encoding: gzip` and a body that inflates to
/// `inflated` zero bytes.
pub fn gzip_bomb(status: StatusCode, inflated: u64) -> Response {
    let mut response = streamed(status, gzip_zeros(inflated));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    response
}

fn streamed(status: StatusCode, chunks: impl Iterator<Item = Bytes> + Send + 'static) -> Response {
    let stream = tokio_stream::iter(chunks.map(Ok::<_, io::Error>));
    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() = status;
    response
}

/// The deflate runs, made once: the first inflates to [`UNIT`] zeros from an
/// empty window, the second to [`UNIT`] more after zeros. Each ends with a
/// sync flush, so it ends on a byte boundary and can be followed by anything.
struct Runs {
    first: Bytes,
    repeat: Bytes,
}

fn runs() -> &'static Runs {
    static RUNS: OnceLock<Runs> = OnceLock::new();
    RUNS.get_or_init(|| {
        let zeros = vec![0u8; UNIT];
        let mut deflate = Compress::new(Compression::default(), false);
        let mut run = || {
            let mut out = Vec::with_capacity(UNIT / 64);
            let start = deflate.total_in();
            while deflate.total_in() - start < UNIT as u64 {
                let done = usize::try_from(deflate.total_in() - start).unwrap_or(UNIT);
                out.reserve(4096);
                // Compressing to a growable Vec cannot fail.
                let _ = deflate.compress_vec(&zeros[done..], &mut out, FlushCompress::None);
            }
            loop {
                out.reserve(4096);
                let before = out.len();
                let _ = deflate.compress_vec(&[], &mut out, FlushCompress::Sync);
                if out.len() == before || out.len() < out.capacity() {
                    break;
                }
            }
            Bytes::from(out)
        };
        let first = run();
        let repeat = run();
        Runs { first, repeat }
    })
}

/// A gzip member that inflates to `inflated` zeros, in chunks.
fn gzip_zeros(inflated: u64) -> impl Iterator<Item = Bytes> + Send + 'static {
    const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    let runs = runs();
    let unit = UNIT as u64;
    let whole = inflated / unit;
    let rest = inflated % unit;
    let batch: Bytes = runs.repeat.repeat(RUNS_PER_CHUNK).into();
    let repeats = whole.saturating_sub(1);
    let batches = repeats / RUNS_PER_CHUNK as u64;
    let single = usize::try_from(repeats % RUNS_PER_CHUNK as u64).unwrap_or(0);
    let tail: Bytes = runs.repeat.repeat(single).into();
    std::iter::once(Bytes::from_static(&HEADER))
        .chain((whole > 0).then(|| runs.first.clone()))
        .chain((0..batches).map(move |_| batch.clone()))
        .chain((single > 0).then_some(tail))
        .chain(stored_zeros(rest))
        .chain(std::iter::once_with(move || trailer(inflated)))
}

/// `len` zeros as stored (uncompressed) deflate blocks, each at most
/// 65,535 bytes. Stored blocks start on a byte boundary, where a sync flush
/// leaves the stream.
fn stored_zeros(len: u64) -> impl Iterator<Item = Bytes> + Send + 'static {
    const MAX: u64 = 65_535;
    let blocks = len.div_ceil(MAX);
    (0..blocks).map(move |i| {
        let size = MAX.min(len - i * MAX) as u16;
        let mut block = Vec::with_capacity(5 + usize::from(size));
        block.push(0); // not final, stored
        block.extend_from_slice(&size.to_le_bytes());
        block.extend_from_slice(&(!size).to_le_bytes());
        block.resize(5 + usize::from(size), 0);
        Bytes::from(block)
    })
}

/// The last, empty deflate block, then the gzip trailer: the CRC-32 of the
/// inflated bytes and their length modulo 2^32.
fn trailer(inflated: u64) -> Bytes {
    let mut out = vec![0x03, 0x00];
    out.extend_from_slice(&crc_of_zeros(inflated).to_le_bytes());
    out.extend_from_slice(&((inflated & 0xffff_ffff) as u32).to_le_bytes());
    Bytes::from(out)
}

/// CRC-32 of `len` zeros, by combining the CRCs of power-of-two runs.
fn crc_of_zeros(len: u64) -> u32 {
    let mut total = Crc::new();
    // The CRC of 2^bit zeros.
    let mut run = Crc::new();
    run.update(&[0]);
    let mut bit = 0;
    while len >> bit != 0 {
        if len >> bit & 1 == 1 {
            total.combine(&run);
        }
        let mut doubled = Crc::new();
        doubled.combine(&run);
        doubled.combine(&run);
        run = doubled;
        bit += 1;
    }
    total.sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gzip_bytes(inflated: u64) -> Vec<u8> {
        gzip_zeros(inflated).flat_map(|b| b.to_vec()).collect()
    }

    #[test]
    fn the_bomb_inflates_to_exactly_that_many_zeros() {
        for inflated in [0, 1, 65_535, 65_536, UNIT as u64, 3 * UNIT as u64 + 70_000] {
            let gz = gzip_bytes(inflated);
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&gz[..])
                .read_to_end(&mut out)
                .expect("a valid gzip stream, CRC and length included");
            assert_eq!(out.len() as u64, inflated);
            assert!(out.iter().all(|b| *b == 0));
        }
    }

    #[test]
    fn the_bomb_is_a_thousandth_of_its_inflated_size() {
        let inflated = 200 * UNIT as u64;
        let sent: usize = gzip_zeros(inflated).map(|b| b.len()).sum();
        assert!((sent as u64) < inflated / 500, "{sent}");
    }

    #[test]
    fn crc_of_zeros_matches_a_direct_crc() {
        for len in [0usize, 1, 2, 3, 1000, 65_536, 1_000_003] {
            let mut crc = Crc::new();
            crc.update(&vec![0; len]);
            assert_eq!(crc_of_zeros(len as u64), crc.sum(), "{len}");
        }
    }
}

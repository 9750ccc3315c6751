//! The body guard: the last layer before routing.
//!
//! - A declared `Content-Length` over the cap is refused before a byte of body is read.
//! - A body without a declared length (chunked, HTTP/2) is read frame by frame and refused
//!   as soon as the running total crosses the cap.
//! - `Content-Encoding` is checked before reading: stacked or unknown codings are refused;
//!   a known coding is decoded under the ratio and absolute caps ([`crate::decode`]), and
//!   the route sees the decoded body with the coding header removed.
//! - A `Transfer-Encoding` other than `chunked` is refused: we never let a coding slip past
//!   the guard in the transfer layer.

use axum::body::Body;
use axum::extract::Request;
use bulwark_core::{Problem, ProblemCode};
use http::{HeaderValue, header};
use http_body::Body as _;
use http_body_util::{BodyExt as _, LengthLimitError, Limited};

use crate::decode::{self, Coding, DecodeLimits};
use crate::layers::Hardening;

/// Checks and buffers the body; `Err` is the refusal to answer instead of routing.
pub(crate) async fn guard(h: &Hardening, req: Request) -> Result<Request, Problem> {
    let limits = h.limits();
    let max = limits.max_body_bytes;

    if let Some(te) = req.headers().get(header::TRANSFER_ENCODING) {
        let only_chunked = te
            .as_bytes()
            .split(|b| *b == b',')
            .all(|t| t.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        if !only_chunked {
            return Err(Problem::new(
                ProblemCode::EncodingUnsupported,
                "transfer codings other than chunked are refused",
            ));
        }
    }

    let coding = match decode::parse_content_encoding(
        req.headers()
            .get_all(header::CONTENT_ENCODING)
            .iter()
            .map(HeaderValue::as_bytes),
    ) {
        Ok(c) => c,
        Err(e) => return Err(Problem::new(e.code(), encoding_detail(e))),
    };

    if content_length(&req).is_some_and(|declared| declared > max as u64) {
        return Err(too_large(max));
    }

    let (mut parts, body) = req.into_parts();
    if body.is_end_stream() {
        return Ok(Request::from_parts(parts, body));
    }

    let bytes = match Limited::new(body, max).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return Err(too_large(max));
        }
        Err(_) => {
            return Err(Problem::new(
                ProblemCode::BadRequest,
                "the request body could not be read",
            ));
        }
    };

    let bytes = if coding == Coding::Identity {
        bytes
    } else {
        let limits = DecodeLimits {
            max_decoded: limits.max_decoded_bytes,
            max_ratio: limits.max_decompression_ratio,
        };
        // Decoding is CPU work on at most `max_body_bytes` of input: keep it off the
        // reactor threads, and bounded in concurrency.
        let Some(_slot) = h.decode_slot().await else {
            return Err(Problem::new(ProblemCode::Internal, "decoder unavailable"));
        };
        let decoded =
            tokio::task::spawn_blocking(move || decode::decode_bounded(coding, &bytes, limits))
                .await;
        match decoded {
            Ok(Ok(d)) => {
                parts.headers.remove(header::CONTENT_ENCODING);
                bytes::Bytes::from(d)
            }
            Ok(Err(e)) => return Err(Problem::new(e.code(), encoding_detail(e))),
            Err(_) => {
                return Err(Problem::new(ProblemCode::Internal, "decoding failed"));
            }
        }
    };
    parts.headers.remove(header::TRANSFER_ENCODING);
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

fn content_length(req: &Request) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse().ok())
}

fn too_large(max: usize) -> Problem {
    Problem::new(
        ProblemCode::BodyTooLarge,
        format!("request body is over the {max}-byte cap"),
    )
}

fn encoding_detail(e: decode::DecodeError) -> &'static str {
    match e {
        decode::DecodeError::Stacked => "more than one content coding is refused",
        decode::DecodeError::Unsupported => "supported content codings: gzip, deflate, zstd",
        decode::DecodeError::Cap => "the decoded body is over the ratio or size cap",
        decode::DecodeError::Invalid => "the body is not valid for its content coding",
    }
}

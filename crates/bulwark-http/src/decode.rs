//! Bounded decoding of request bodies (gzip, deflate, zstd).
//!
//! The encoded body is already capped (it is at most the body limit). Decoding streams
//! into 16 KiB steps and stops the moment the output crosses
//! `min(max_decoded, ratio × encoded length)`: a bomb is refused after at most one step
//! past the cap, never inflated first and measured after.

use std::io::Read;

use bulwark_core::ProblemCode;

/// A content coding we decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// No coding.
    Identity,
    /// RFC 1952 gzip (also `x-gzip`).
    Gzip,
    /// RFC 1950 zlib, which HTTP calls `deflate`.
    Deflate,
    /// RFC 8878 zstd.
    Zstd,
}

/// Why a body was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// More than one coding was applied.
    Stacked,
    /// A coding we do not decode.
    Unsupported,
    /// The decoded body would exceed its cap.
    Cap,
    /// The bytes are not valid for the coding.
    Invalid,
}

impl DecodeError {
    /// The problem code a client sees.
    pub fn code(self) -> ProblemCode {
        match self {
            Self::Stacked => ProblemCode::StackedEncoding,
            Self::Unsupported => ProblemCode::EncodingUnsupported,
            Self::Cap => ProblemCode::DecompressionCap,
            Self::Invalid => ProblemCode::InvalidEncoding,
        }
    }
}

/// Parses every `Content-Encoding` value of a request into at most one coding.
/// `identity` tokens are ignored; two real codings are stacked; anything else unsupported.
pub fn parse_content_encoding<'a>(
    values: impl Iterator<Item = &'a [u8]>,
) -> Result<Coding, DecodeError> {
    let mut found = Coding::Identity;
    for value in values {
        for token in value.split(|b| *b == b',') {
            let token = token.trim_ascii();
            let coding = if token.is_empty() || token.eq_ignore_ascii_case(b"identity") {
                continue;
            } else if token.eq_ignore_ascii_case(b"gzip") || token.eq_ignore_ascii_case(b"x-gzip") {
                Coding::Gzip
            } else if token.eq_ignore_ascii_case(b"deflate") {
                Coding::Deflate
            } else if token.eq_ignore_ascii_case(b"zstd") {
                Coding::Zstd
            } else {
                return Err(DecodeError::Unsupported);
            };
            if found != Coding::Identity {
                return Err(DecodeError::Stacked);
            }
            found = coding;
        }
    }
    Ok(found)
}

/// Limits for [`decode_bounded`].
#[derive(Debug, Clone, Copy)]
pub struct DecodeLimits {
    /// Absolute ceiling on the decoded size.
    pub max_decoded: usize,
    /// Ceiling on decoded/encoded.
    pub max_ratio: usize,
}

impl DecodeLimits {
    /// The cap that applies to an encoded body of `encoded_len` bytes.
    pub fn cap_for(&self, encoded_len: usize) -> usize {
        self.max_decoded
            .min(encoded_len.saturating_mul(self.max_ratio))
    }
}

const STEP: usize = 16 * 1024;

/// Decodes `input` with `coding`, refusing as soon as the output passes the cap.
pub fn decode_bounded(
    coding: Coding,
    input: &[u8],
    limits: DecodeLimits,
) -> Result<Vec<u8>, DecodeError> {
    let cap = limits.cap_for(input.len());
    match coding {
        Coding::Identity => Ok(input.to_vec()),
        Coding::Gzip => {
            let mut r = flate2::read::MultiGzDecoder::new(input);
            read_capped(&mut r, cap)
        }
        Coding::Deflate => {
            let mut r = flate2::read::ZlibDecoder::new(input);
            let out = read_capped(&mut r, cap)?;
            if r.total_in() != input.len() as u64 {
                return Err(DecodeError::Invalid);
            }
            Ok(out)
        }
        Coding::Zstd => {
            // ruzstd reserves the frame's declared window up front (up to 100 MiB): refuse a
            // window larger than the largest body we would accept before the decoder sees
            // it. (Not `cap`: encoders declare at least 1 KiB even for tiny bodies.)
            let window = zstd_window_size(input).ok_or(DecodeError::Invalid)?;
            if window > limits.max_decoded as u64 {
                return Err(DecodeError::Cap);
            }
            let mut src = input;
            let mut r = ruzstd::decoding::StreamingDecoder::new(&mut src)
                .map_err(|_| DecodeError::Invalid)?;
            let out = read_capped(&mut r, cap)?;
            drop(r);
            if !src.is_empty() {
                // A second frame or trailing bytes: we decode exactly one frame.
                return Err(DecodeError::Invalid);
            }
            Ok(out)
        }
    }
}

fn read_capped(r: &mut impl Read, cap: usize) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    let mut buf = [0u8; STEP];
    loop {
        let n = r.read(&mut buf).map_err(|_| DecodeError::Invalid)?;
        if n == 0 {
            return Ok(out);
        }
        if out.len() + n > cap {
            return Err(DecodeError::Cap);
        }
        out.extend_from_slice(buf.get(..n).ok_or(DecodeError::Invalid)?);
    }
}

/// The window size a zstd frame declares (RFC 8878 §3.1.1.1), or `None` if the header is
/// malformed or not a zstd frame.
pub fn zstd_window_size(input: &[u8]) -> Option<u64> {
    const MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
    if input.get(..4)? != MAGIC {
        return None;
    }
    let fhd = *input.get(4)?;
    let fcs_flag = fhd >> 6;
    let single_segment = fhd & 0x20 != 0;
    let dict_flag = fhd & 0x03;
    let mut pos = 5usize;
    if !single_segment {
        let wd = *input.get(pos)?;
        let exponent = u64::from(wd >> 3);
        let mantissa = u64::from(wd & 0x07);
        let base = 1u64 << (10 + exponent);
        return Some(base + (base / 8) * mantissa);
    }
    pos += match dict_flag {
        0 => 0,
        1 => 1,
        2 => 2,
        _ => 4,
    };
    // Single segment: the window is the frame content size.
    let fcs_len = match fcs_flag {
        0 => 1,
        1 => 2,
        2 => 4,
        _ => 8,
    };
    let bytes = input.get(pos..pos + fcs_len)?;
    let mut v = 0u64;
    for (i, b) in bytes.iter().enumerate() {
        v |= u64::from(*b) << (8 * i);
    }
    if fcs_len == 2 {
        v += 256;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const LIMITS: DecodeLimits = DecodeLimits {
        max_decoded: 8 << 20,
        max_ratio: 10,
    };

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn zstd(data: &[u8]) -> Vec<u8> {
        ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
    }

    fn parse(v: &str) -> Result<Coding, DecodeError> {
        parse_content_encoding(std::iter::once(v.as_bytes()))
    }

    #[test]
    fn content_encoding_parsing() {
        assert_eq!(parse(""), Ok(Coding::Identity));
        assert_eq!(parse("identity"), Ok(Coding::Identity));
        assert_eq!(parse("GZIP"), Ok(Coding::Gzip));
        assert_eq!(parse("x-gzip"), Ok(Coding::Gzip));
        assert_eq!(parse("deflate"), Ok(Coding::Deflate));
        assert_eq!(parse("zstd"), Ok(Coding::Zstd));
        assert_eq!(parse("gzip, gzip"), Err(DecodeError::Stacked));
        assert_eq!(parse("gzip, zstd"), Err(DecodeError::Stacked));
        assert_eq!(parse("br"), Err(DecodeError::Unsupported));
        assert_eq!(parse("compress"), Err(DecodeError::Unsupported));
        // Two header lines stack as well.
        let two = [b"gzip".as_slice(), b"deflate".as_slice()];
        assert_eq!(
            parse_content_encoding(two.into_iter()),
            Err(DecodeError::Stacked)
        );
    }

    #[test]
    fn honest_bodies_round_trip_in_every_coding() {
        let data: Vec<u8> = (0..50_000u32).flat_map(|i| i.to_le_bytes()).collect();
        for (coding, enc) in [
            (Coding::Gzip, gzip(&data)),
            (Coding::Deflate, zlib(&data)),
            (Coding::Zstd, zstd(&data)),
        ] {
            let out = decode_bounded(coding, &enc, LIMITS).unwrap();
            assert_eq!(out, data, "{coding:?}");
        }
    }

    #[test]
    fn bombs_are_refused_in_every_coding() {
        let zeros = vec![0u8; 4 << 20];
        for (coding, enc) in [
            (Coding::Gzip, gzip(&zeros)),
            (Coding::Deflate, zlib(&zeros)),
            (Coding::Zstd, zstd(&zeros)),
        ] {
            assert!(enc.len() * 10 < zeros.len(), "{coding:?} compresses well");
            assert_eq!(
                decode_bounded(coding, &enc, LIMITS),
                Err(DecodeError::Cap),
                "{coding:?}"
            );
        }
    }

    #[test]
    fn absolute_cap_applies_even_at_modest_ratio() {
        // Random-ish data compresses poorly; 9 MiB of it still breaks the 8 MiB cap.
        let mut x = 0x1234_5678u32;
        let data: Vec<u8> = (0..9 << 20)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x & 0x3f) as u8
            })
            .collect();
        let enc = gzip(&data);
        let limits = DecodeLimits {
            max_decoded: 8 << 20,
            max_ratio: 1000,
        };
        assert_eq!(
            decode_bounded(Coding::Gzip, &enc, limits),
            Err(DecodeError::Cap)
        );
    }

    #[test]
    fn garbage_is_invalid_not_a_panic() {
        for coding in [Coding::Gzip, Coding::Deflate, Coding::Zstd] {
            assert_eq!(
                decode_bounded(coding, b"definitely not compressed", LIMITS),
                Err(DecodeError::Invalid),
                "{coding:?}"
            );
        }
    }

    #[test]
    fn zstd_frame_declaring_a_huge_window_is_refused_before_decoding() {
        // Magic, FHD = 0 (no single segment), window descriptor with exponent 17 (128 MiB).
        let frame = [0x28, 0xb5, 0x2f, 0xfd, 0x00, 17 << 3, 0, 0, 0];
        assert_eq!(zstd_window_size(&frame), Some(128 << 20));
        assert_eq!(
            decode_bounded(Coding::Zstd, &frame, LIMITS),
            Err(DecodeError::Cap)
        );
    }

    #[test]
    fn small_zstd_bodies_with_a_minimum_window_decode() {
        let enc = zstd(b"{}");
        assert_eq!(decode_bounded(Coding::Zstd, &enc, LIMITS).unwrap(), b"{}");
    }

    #[test]
    fn zstd_trailing_bytes_are_invalid() {
        let mut enc = zstd(b"hello world");
        enc.extend_from_slice(b"junk");
        assert_eq!(
            decode_bounded(Coding::Zstd, &enc, LIMITS),
            Err(DecodeError::Invalid)
        );
    }
}

//! What happens to a message body once the message is emitted: content
//! codings removed, content type sniffed, gRPC messages split.

use crate::compression::{self, Coding, DecodeError, Decoded, parse_codings};
use crate::grpc::{self, GrpcMessages};
use crate::{Counters, Limits, Message, signature};

/// Decodes, sniffs and splits `m`'s body, counting what went wrong.
pub(crate) fn process(m: &mut Message, limits: &Limits, counters: &mut Counters) {
    if m.body.data.is_empty() {
        return;
    }
    // One pass over the header fields (names are lower-case) for what
    // matters here; most messages have no coding and are not gRPC.
    let mut coded = false;
    let mut grpc_type = None;
    // Only names of these lengths matter (pseudo-header names, `:status`...,
    // are none of them): the others are passed over by their length.
    for f in m.headers.with_name_len(|n| matches!(n, 12 | 16 | 17)) {
        match f.name {
            b"content-encoding" => coded = true,
            b"transfer-encoding" => {
                coded |= f
                    .value
                    .split(|&b| b == b',')
                    .any(|t| !t.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            }
            // Only a value starting with `a` can be `application/grpc...`:
            // the usual `text/...` is turned down by its first byte.
            b"content-type"
                if f.value.trim_ascii_start().first().map(|b| b | 0x20) == Some(b'a')
                    && grpc::is_grpc_content_type(f.value) =>
            {
                grpc_type = Some(
                    f.value.len() >= 20
                        && f.value[..20].eq_ignore_ascii_case(b"application/grpc-web"),
                );
            }
            _ => {}
        }
    }
    let complete = m.complete && !m.body.truncated && !m.data_lost;
    if coded && limits.max_decoded_body_size > 0 {
        decode_body(m, complete, limits, counters);
    }
    let decoded_whole = m
        .body
        .decoded
        .as_ref()
        .is_none_or(|d| d.error.is_none() && !d.truncated);
    let body = &mut m.body;
    body.sniffed_type = signature::sniff(body.content());
    if let Some(web) = grpc_type {
        let encoding = m.headers.get(b"grpc-encoding");
        let mut g = grpc::split(
            body.content(),
            complete && decoded_whole,
            web,
            limits.grpc_max_messages as usize,
        );
        decode_grpc(&mut g, body.content(), encoding, limits, counters);
        counters.grpc_messages += g.messages.len() as u64;
        counters.grpc_messages_dropped += g.dropped;
        if g.error.is_some() {
            counters.grpc_framing_errors += 1;
        }
        body.grpc = Some(Box::new(g));
    }
}

/// Content-Encoding (and HTTP/1 transfer codings other than chunked).
fn decode_body(m: &mut Message, complete: bool, limits: &Limits, counters: &mut Counters) {
    let mut items: Vec<&[u8]> = m.headers.get_all(b"content-encoding").collect();
    // Transfer codings are applied after content codings.
    items.extend(
        m.headers
            .get_all(b"transfer-encoding")
            .flat_map(|v| v.split(|&b| b == b','))
            .filter(|t| !t.trim_ascii().eq_ignore_ascii_case(b"chunked")),
    );
    let decoded = match parse_codings(items, limits.max_content_codings as usize) {
        Ok(c) if c.is_empty() => return,
        Ok(c) => compression::decode(&c, &m.body.data, complete, limits),
        Err(e) => Decoded {
            truncated: true,
            error: Some(e),
            ..Decoded::default()
        },
    };
    counters.bodies_decoded += 1;
    count(&decoded, counters);
    m.body.decoded = Some(decoded);
}

fn count(d: &Decoded, counters: &mut Counters) {
    counters.decoded_bytes_dropped += d.size.saturating_sub(d.data.len() as u64);
    match d.error {
        None => {}
        Some(DecodeError::Unsupported | DecodeError::TooManyCodings) => {
            counters.body_decode_unsupported += 1;
        }
        Some(DecodeError::Corrupt(_)) => counters.body_decode_errors += 1,
        Some(DecodeError::Truncated(_)) => counters.body_decode_truncated += 1,
        Some(
            DecodeError::OutputLimit | DecodeError::RatioLimit | DecodeError::WindowTooLarge(_),
        ) => counters.decompression_capped += 1,
    }
}

/// Removes the side's `grpc-encoding` from compressed messages.
fn decode_grpc(
    g: &mut GrpcMessages,
    content: &[u8],
    encoding: Option<&[u8]>,
    limits: &Limits,
    counters: &mut Counters,
) {
    let coding = encoding.and_then(Coding::from_name);
    let mut keep_left = limits.max_decoded_body_size;
    for msg in g.messages.iter_mut().filter(|m| m.compressed) {
        if limits.max_decoded_body_size == 0 {
            break;
        }
        let d = match coding {
            Some(c) => {
                let input = content
                    .get(msg.offset..msg.offset + msg.kept)
                    .unwrap_or_default();
                let limits = Limits {
                    max_decoded_body_size: keep_left,
                    ..*limits
                };
                compression::decode(&[c], input, msg.kept == msg.length as usize, &limits)
            }
            None => Decoded {
                truncated: true,
                error: Some(DecodeError::Unsupported),
                ..Decoded::default()
            },
        };
        keep_left = keep_left.saturating_sub(u32::try_from(d.data.len()).unwrap_or(u32::MAX));
        count(&d, counters);
        msg.decoded = Some(d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first-byte check before `is_grpc_content_type` turns down no
    /// gRPC content type.
    #[test]
    fn grpc_first_byte_check_keeps_grpc_types() {
        for v in [
            &b"application/grpc"[..],
            b"  Application/GRPC+proto",
            b"\tapplication/grpc-web; charset=x",
            b"APPLICATION/GRPC-WEB+json",
            b"text/plain",
            b"",
            b" ",
            b"application/json",
        ] {
            let first = v.trim_ascii_start().first().map(|b| b | 0x20) == Some(b'a');
            assert!(first || !grpc::is_grpc_content_type(v), "{v:?}");
        }
    }
}

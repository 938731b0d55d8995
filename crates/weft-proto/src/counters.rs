//! [`Counters`]: everything a decoder dropped, skipped or could not decode.

/// Counts of every place a decoder dropped data, lost sync or hit a limit.
///
/// Each connection decoder keeps its own; a pipeline sums them
/// ([`Counters::add`]) into its statistics. Events carry flags for the
/// transactions affected; these counters make the totals visible.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Transactions emitted.
    pub transactions: u64,
    /// Transactions emitted without both messages seen whole.
    pub transactions_incomplete: u64,
    /// Bytes the caller reported lost (`gap`).
    pub gap_bytes: u64,
    /// Bytes discarded while resynchronising on message/frame boundaries.
    pub dropped_bytes: u64,
    /// Times a decoder lost alignment with frame/message boundaries.
    pub desyncs: u64,
    /// HTTP/2 frames skipped as malformed (bad padding, stray CONTINUATION, ...).
    pub frame_errors: u64,
    /// HTTP/2 frames of unknown type (skipped, as the protocol requires).
    pub frames_unknown_type: u64,
    /// HTTP/2 DATA or HEADERS frames for streams not tracked.
    pub frames_unknown_stream: u64,
    /// Header blocks larger than `Limits::max_header_block_size` (skipped).
    pub header_blocks_too_large: u64,
    /// HPACK header blocks that failed to decode.
    pub hpack_errors: u64,
    /// Times an HPACK decoder had to forget its table (gap, error, lost block).
    pub hpack_resyncs: u64,
    /// Header fields not decodable because they referenced table entries
    /// sent before the decoder joined.
    pub hpack_unknown_references: u64,
    /// HPACK size updates above `Limits::hpack_max_table_size` (table clamped).
    pub hpack_table_clamped: u64,
    /// Header fields dropped by `Limits::max_header_list_size` or `Limits::h1_max_headers`.
    pub header_fields_dropped: u64,
    /// HTTP/2 streams evicted because `Limits::h2_max_streams` were open.
    pub streams_evicted: u64,
    /// HTTP/2 client streams of which no header block was seen at all: stream
    /// ids skipped between two header blocks (clients open streams in order,
    /// by two; the protocol allows skipping, real clients do not). Each is
    /// one transaction that happened and that no event reports.
    pub streams_unseen: u64,
    /// HTTP/1 requests lost whole together with their responses: library
    /// calls carrying requests of which nothing arrived and that no response
    /// answered (see `Http1Decoder::lost_call`). Each is one transaction that
    /// happened and that no event reports.
    pub h1_requests_unseen: u64,
    /// Bodies cut at `Limits::max_body_size`.
    pub bodies_truncated: u64,
    /// Body bytes not kept because of `Limits::max_body_size`.
    pub body_bytes_dropped: u64,
    /// Bytes of holes (`ConnectionDecoder::skip`) passed over in sync
    /// inside a body of known length, or inside an HTTP/2 DATA frame's
    /// payload (its padding included): bytes the capture did not copy
    /// because they lay past `Limits::max_body_size`. Their body bytes are
    /// also in `body_bytes_dropped`, as when they are fed and dropped here.
    pub body_bytes_skipped: u64,
    /// Holes (`ConnectionDecoder::skip`) that could not be passed over
    /// inside a known body (in a head, past a body's end, a body of unknown
    /// length, a WebSocket stream, ...): each was taken as a gap, its bytes
    /// counted in `gap_bytes`.
    pub skip_gaps: u64,
    /// HTTP/1 messages that could not be parsed (the connection resynchronises).
    pub h1_parse_errors: u64,
    /// HTTP/1 requests evicted because `Limits::h1_max_pipeline` were waiting.
    pub h1_pipeline_evicted: u64,
    /// Bytes of connections (or parts after an upgrade) in a protocol not
    /// decoded here: unrecognised, CONNECT tunnels, upgrades to other protocols.
    pub undecoded_bytes: u64,
    /// WebSocket messages (and control frames) emitted.
    pub ws_messages: u64,
    /// WebSocket messages emitted without their final frame, or with bytes lost.
    pub ws_messages_incomplete: u64,
    /// WebSocket frames decoded.
    pub ws_frames: u64,
    /// WebSocket frames breaking RFC 6455 in a way decoding tolerates
    /// (wrong masking, fragmented control frame, RSV1 without
    /// permessage-deflate, continuation without a first frame, ...).
    pub ws_protocol_errors: u64,
    /// WebSocket messages cut at `Limits::ws_max_message_size` or by a decompression stop.
    pub ws_messages_truncated: u64,
    /// WebSocket payload bytes not kept (beyond `Limits::ws_max_message_size`).
    pub ws_bytes_dropped: u64,
    /// Compressed WebSocket messages that failed to inflate (corrupt, or
    /// referring to history lost in a gap).
    pub ws_inflate_errors: u64,
    /// Decompressions stopped by `Limits::max_decompressed_size`,
    /// `Limits::max_decompression_ratio` or `Limits::max_decompression_window`.
    pub decompression_capped: u64,
    /// Bodies with a content coding, decoded (possibly partly).
    pub bodies_decoded: u64,
    /// Bodies (or gRPC messages) whose coded data is corrupt.
    pub body_decode_errors: u64,
    /// Bodies (or gRPC messages) whose coded data was cut (body limit,
    /// capture gap, connection end) before the coding's end.
    pub body_decode_truncated: u64,
    /// Bodies left coded: unknown coding, or more than
    /// `Limits::max_content_codings`.
    pub body_decode_unsupported: u64,
    /// Decoded body bytes not kept (beyond `Limits::max_decoded_body_size`).
    pub decoded_bytes_dropped: u64,
    /// gRPC messages listed.
    pub grpc_messages: u64,
    /// gRPC messages not listed because of `Limits::grpc_max_messages`.
    pub grpc_messages_dropped: u64,
    /// gRPC bodies whose framing broke (reserved flags, cut message).
    pub grpc_framing_errors: u64,
}

impl Counters {
    /// `dropped` bytes of a body were not kept (past the body bound, or
    /// not captured at all): counted, and the body counted as cut the first
    /// time (`already_cut`: it was cut before these bytes).
    pub(crate) fn body_cut(&mut self, already_cut: bool, dropped: u64) {
        if dropped > 0 {
            self.body_bytes_dropped += dropped;
            self.bodies_truncated += u64::from(!already_cut);
        }
    }

    /// Adds every counter of `other` to `self`.
    pub fn add(&mut self, other: &Counters) {
        let Counters {
            transactions,
            transactions_incomplete,
            gap_bytes,
            dropped_bytes,
            desyncs,
            frame_errors,
            frames_unknown_type,
            frames_unknown_stream,
            header_blocks_too_large,
            hpack_errors,
            hpack_resyncs,
            hpack_unknown_references,
            hpack_table_clamped,
            header_fields_dropped,
            streams_evicted,
            streams_unseen,
            h1_requests_unseen,
            bodies_truncated,
            body_bytes_dropped,
            body_bytes_skipped,
            skip_gaps,
            h1_parse_errors,
            h1_pipeline_evicted,
            undecoded_bytes,
            ws_messages,
            ws_messages_incomplete,
            ws_frames,
            ws_protocol_errors,
            ws_messages_truncated,
            ws_bytes_dropped,
            ws_inflate_errors,
            decompression_capped,
            bodies_decoded,
            body_decode_errors,
            body_decode_truncated,
            body_decode_unsupported,
            decoded_bytes_dropped,
            grpc_messages,
            grpc_messages_dropped,
            grpc_framing_errors,
        } = other;
        self.transactions += transactions;
        self.transactions_incomplete += transactions_incomplete;
        self.gap_bytes += gap_bytes;
        self.dropped_bytes += dropped_bytes;
        self.desyncs += desyncs;
        self.frame_errors += frame_errors;
        self.frames_unknown_type += frames_unknown_type;
        self.frames_unknown_stream += frames_unknown_stream;
        self.header_blocks_too_large += header_blocks_too_large;
        self.hpack_errors += hpack_errors;
        self.hpack_resyncs += hpack_resyncs;
        self.hpack_unknown_references += hpack_unknown_references;
        self.hpack_table_clamped += hpack_table_clamped;
        self.header_fields_dropped += header_fields_dropped;
        self.streams_evicted += streams_evicted;
        self.streams_unseen += streams_unseen;
        self.h1_requests_unseen += h1_requests_unseen;
        self.bodies_truncated += bodies_truncated;
        self.body_bytes_dropped += body_bytes_dropped;
        self.body_bytes_skipped += body_bytes_skipped;
        self.skip_gaps += skip_gaps;
        self.h1_parse_errors += h1_parse_errors;
        self.h1_pipeline_evicted += h1_pipeline_evicted;
        self.undecoded_bytes += undecoded_bytes;
        self.ws_messages += ws_messages;
        self.ws_messages_incomplete += ws_messages_incomplete;
        self.ws_frames += ws_frames;
        self.ws_protocol_errors += ws_protocol_errors;
        self.ws_messages_truncated += ws_messages_truncated;
        self.ws_bytes_dropped += ws_bytes_dropped;
        self.ws_inflate_errors += ws_inflate_errors;
        self.decompression_capped += decompression_capped;
        self.bodies_decoded += bodies_decoded;
        self.body_decode_errors += body_decode_errors;
        self.body_decode_truncated += body_decode_truncated;
        self.body_decode_unsupported += body_decode_unsupported;
        self.decoded_bytes_dropped += decoded_bytes_dropped;
        self.grpc_messages += grpc_messages;
        self.grpc_messages_dropped += grpc_messages_dropped;
        self.grpc_framing_errors += grpc_framing_errors;
    }
}

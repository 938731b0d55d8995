//! [`Limits`]: every bound the decoders enforce, in one value.

/// Every limit the decoders in this crate enforce.
///
/// A decoder never buffers, allocates or tracks more than these allow; each
/// time one is hit, a counter in [`crate::Counters`] goes up and, where data
/// is dropped, the affected event says so (e.g. [`crate::Body::truncated`]).
/// `Limits::default()` suits a sensor watching ordinary web traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// HPACK: the largest dynamic table we keep, in RFC 7541 size units
    /// (name + value + 32 per entry). A peer that signals a larger table is
    /// followed up to this size; references to entries we had to forget then
    /// decode as "unknown" (the header block is flagged incomplete).
    /// Default 65 536.
    pub hpack_max_table_size: u32,
    /// HPACK: the table size we keep after joining a connection mid-way (or
    /// after a gap), until the encoder sends a size update. Most encoders use
    /// the 4 096 default; a smaller value saves memory, a larger one recovers
    /// more headers when an encoder uses a larger table. Default 4 096.
    pub hpack_join_table_size: u32,
    /// The decoded size of one header list (RFC 7540 §6.5.2: name + value +
    /// 32 per field) we keep; later fields of the block are dropped and the
    /// message is flagged truncated (the block is still fully decoded so the
    /// HPACK table stays in sync). Default 65 536.
    pub max_header_list_size: u32,
    /// HPACK: the longest single string literal (encoded or decoded) accepted;
    /// longer is a decoding error. Default 262 144.
    pub max_header_string_len: u32,
    /// HTTP/2: the largest encoded header block (HEADERS or PUSH_PROMISE plus
    /// CONTINUATION frames) buffered; a larger block is skipped and the HPACK
    /// decoder of that direction resynchronises. Default 262 144.
    pub max_header_block_size: u32,
    /// HTTP/2: the largest frame payload accepted. DATA payloads are streamed
    /// and never buffered whole; other frames are buffered up to
    /// `max_header_block_size` (header frames) or 64 KiB (others).
    /// Default 16 777 215 (the protocol maximum).
    pub h2_max_frame_size: u32,
    /// HTTP/2: streams tracked at once per connection; frames of further
    /// streams are counted and ignored (header blocks are still decoded).
    /// Default 1 024.
    pub h2_max_streams: u32,
    /// HTTP/2: a stream with no frame for this many seconds (by the clock
    /// given to [`crate::ConnectionDecoder::feed_at`]) is emitted incomplete
    /// ([`crate::End::Evicted`], counted in `Counters::streams_evicted`) and
    /// forgotten: a response that never comes does not hold a stream slot
    /// for the life of the connection. WebSocket streams are kept. 0 = never.
    /// Default 300.
    pub h2_stream_idle_secs: u32,
    /// Bytes of each message body kept (HTTP/1 and HTTP/2); the rest is
    /// counted in [`crate::Body::size`] and flagged truncated. Default 1 MiB.
    pub max_body_size: u32,
    /// HTTP/1: the largest request/status line plus header section buffered
    /// while waiting for its end. Default 65 536.
    pub h1_max_header_bytes: u32,
    /// HTTP/1: the most header fields in one header section. Default 128.
    pub h1_max_headers: u32,
    /// HTTP/1: requests awaiting their response (pipelining) per connection;
    /// beyond, the oldest is emitted without a response. Default 64.
    pub h1_max_pipeline: u32,
    /// WebSocket: payload bytes kept per message (after unmasking and
    /// decompression); the rest is counted in [`crate::WsMessage::size`] and
    /// flagged truncated. Control frames always keep their (at most 125)
    /// bytes. Default 1 MiB.
    pub ws_max_message_size: u32,
    /// Decompression (bodies, permessage-deflate): the most bytes one
    /// decompression stage may produce; decoding stops there (a
    /// decompression bomb guard). Default 16 MiB.
    pub max_decompressed_size: u32,
    /// Decompression: the most bytes produced per compressed byte consumed,
    /// checked once a stage has produced
    /// [`RATIO_GRACE`](crate::compression::RATIO_GRACE) bytes; 0 disables.
    /// Default 100.
    pub max_decompression_ratio: u32,
    /// Decompression: the largest history window a brotli or zstd stream may
    /// ask for (each byte of window is memory the decoder must hold);
    /// larger windows are refused. Default 16 MiB (brotli's maximum, and
    /// twice what zstd recommends decoders support).
    pub max_decompression_window: u32,
    /// Bodies: decoded (Content-Encoding removed) bytes kept per body, in
    /// [`crate::Body::decoded`]; 0 disables content decoding. Decoding goes on
    /// past this (up to `max_decompressed_size`) to learn the real size.
    /// Default 1 MiB.
    pub max_decoded_body_size: u32,
    /// Bodies: the longest chain of content codings decoded (`gzip, br` is
    /// 2); a longer chain is left encoded. Default 4.
    pub max_content_codings: u32,
    /// gRPC: messages listed per body ([`crate::Body::grpc`]); further ones
    /// are counted. Default 1 024.
    pub grpc_max_messages: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            hpack_max_table_size: 65_536,
            hpack_join_table_size: 4_096,
            max_header_list_size: 65_536,
            max_header_string_len: 262_144,
            max_header_block_size: 262_144,
            h2_max_frame_size: 16_777_215,
            h2_max_streams: 1_024,
            h2_stream_idle_secs: 300,
            max_body_size: 1 << 20,
            h1_max_header_bytes: 65_536,
            h1_max_headers: 128,
            h1_max_pipeline: 64,
            ws_max_message_size: 1 << 20,
            max_decompressed_size: 16 << 20,
            max_decompression_ratio: 100,
            max_decompression_window: 16 << 20,
            max_decoded_body_size: 1 << 20,
            max_content_codings: 4,
            grpc_max_messages: 1_024,
        }
    }
}

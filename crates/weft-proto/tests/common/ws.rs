//! Test-only WebSocket builders and the fixture record reader.

use flate2::{Compress, Compression, FlushCompress};
use weft_proto::{Direction, Event, WsMessage};

/// One frame; `mask` masks the payload (client frames).
pub fn frame(fin: bool, rsv1: bool, opcode: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![(u8::from(fin) << 7) | (u8::from(rsv1) << 6) | opcode];
    let m = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => f.push(m | n as u8),
        n if n <= 0xffff => {
            f.push(m | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(m | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(k) => {
            f.extend_from_slice(&k);
            f.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
        }
        None => f.extend_from_slice(payload),
    }
    f
}

/// A permessage-deflate compressor for one direction.
pub struct Deflater(Compress);

impl Deflater {
    pub fn new() -> Self {
        Deflater(Compress::new(Compression::default(), false))
    }

    /// Compresses one message as permessage-deflate does: sync flush, then
    /// the trailing `00 00 ff ff` removed.
    pub fn message(&mut self, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len() / 2 + 64);
        let mut input = data;
        loop {
            out.reserve(64 * 1024);
            let before = self.0.total_in();
            self.0
                .compress_vec(input, &mut out, FlushCompress::Sync)
                .expect("compress");
            input = &input[(self.0.total_in() - before) as usize..];
            if input.is_empty() && out.capacity() > out.len() {
                break;
            }
        }
        assert!(out.ends_with(&[0, 0, 0xff, 0xff]), "sync flush tail");
        out.truncate(out.len() - 4);
        out
    }
}

/// Reads a `ws_record.py` recording: `[dir][len:u32 BE][bytes]` records.
pub fn read_records(path: &str) -> Vec<(Direction, Vec<u8>)> {
    let full = format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    let data = std::fs::read(&full).unwrap_or_else(|e| panic!("{full}: {e}"));
    let mut out = Vec::new();
    let mut rest = &data[..];
    while !rest.is_empty() {
        let dir = match rest[0] {
            0 => Direction::ClientToServer,
            _ => Direction::ServerToClient,
        };
        let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        out.push((dir, rest[5..5 + len].to_vec()));
        rest = &rest[5 + len..];
    }
    out
}

/// The WebSocket messages among `events`.
pub fn messages(events: &[Event]) -> Vec<&WsMessage> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::WebSocket(m) => Some(m),
            _ => None,
        })
        .collect()
}

//! WebSocket decoder fed records: `[op][len:2][bytes]` where op's low bit
//! is the direction and op & 0x80 reports a gap instead. The first byte
//! picks permessage-deflate and its parameters. Checks the payload bound
//! and, when nothing was lost, that feeding each direction in one piece
//! gives the same messages as feeding it record by record.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_proto::websocket::DeflateParams;
use weft_proto::{Direction, Event, Limits, WsDecoder, WsMessage};

const KEEP: u32 = 64;

fn messages(out: Vec<Event>, dir: Direction) -> Vec<WsMessage> {
    out.into_iter()
        .filter_map(|e| match e {
            Event::WebSocket(m) if m.direction == dir => Some(m),
            _ => None,
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut rest)) = data.split_first() else { return };
    let limits = Limits {
        ws_max_message_size: KEEP,
        max_decompressed_size: 1 << 16,
        // The ratio cap depends on how much compressed input has arrived,
        // hence on how input is split: off, so split and whole agree.
        max_decompression_ratio: 0,
        ..Limits::default()
    };
    let deflate = (mode & 1 != 0).then_some(DeflateParams {
        server_no_context_takeover: mode & 2 != 0,
        client_no_context_takeover: mode & 4 != 0,
        ..DeflateParams::default()
    });
    let mut dec = WsDecoder::new(&limits, 1, deflate);
    let mut out = Vec::new();
    let mut whole: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    let mut gaps = false;
    while rest.len() >= 3 {
        let op = rest[0];
        let len = usize::from(u16::from_be_bytes([rest[1], rest[2]])).min(rest.len() - 3);
        let bytes = &rest[3..3 + len];
        rest = &rest[3 + len..];
        let dir = if op & 1 == 0 { Direction::ClientToServer } else { Direction::ServerToClient };
        if op & 0x80 != 0 {
            dec.gap(dir, len as u64);
            gaps = true;
        } else {
            dec.feed(dir, bytes, &mut out);
            whole[dir.index()].extend_from_slice(bytes);
        }
    }
    dec.finish(&mut out);
    for e in &out {
        if let Event::WebSocket(m) = e {
            let cap = if m.opcode.is_control() { 125 } else { KEEP as usize };
            assert!(m.payload.len() <= cap);
            assert!(m.size >= m.payload.len() as u64 || m.opcode == weft_proto::Opcode::Close);
        }
    }
    let c = dec.take_counters();
    if gaps || c.desyncs > 0 {
        return;
    }
    for dir in [Direction::ClientToServer, Direction::ServerToClient] {
        let mut again = WsDecoder::new(&limits, 1, deflate);
        let mut out2 = Vec::new();
        again.feed(dir, &whole[dir.index()], &mut out2);
        again.finish(&mut out2);
        assert_eq!(messages(out.clone(), dir), messages(out2, dir));
    }
});

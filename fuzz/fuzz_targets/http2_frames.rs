//! HTTP/2 frame decoder: arbitrary bytes in arbitrary splits. Never panics,
//! always makes progress, and (when the input decodes without errors) gives
//! the same frames whatever the split.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_proto::Limits;
use weft_proto::http2::{Frame, FrameDecoder};

fn run(dec: &mut FrameDecoder, chunks: &[&[u8]]) -> (Vec<String>, usize) {
    let mut frames = Vec::new();
    let mut data = Vec::new();
    let mut errors = 0;
    for chunk in chunks {
        let mut input: &[u8] = chunk;
        let mut spins = 0;
        loop {
            let (n, r) = dec.decode(input);
            assert!(n <= input.len());
            input = &input[n..];
            spins = if n == 0 { spins + 1 } else { 0 };
            assert!(spins < 8, "decoder makes no progress");
            match r {
                Ok(Some(Frame::Data { stream_id, data: d, end_of_frame, end_stream })) => {
                    data.extend_from_slice(d);
                    if end_of_frame {
                        frames.push(format!("data {stream_id} {data:?} {end_stream}"));
                        data.clear();
                    }
                }
                Ok(Some(f)) => frames.push(format!("{f:?}")),
                Ok(None) => break,
                Err(_) => errors += 1,
            }
        }
    }
    (frames, errors)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let limits = Limits { max_header_block_size: 512, h2_max_frame_size: 4096, ..Limits::default() };
    let new = |m: u8| match m % 3 {
        0 => FrameDecoder::new_client(&limits),
        1 => FrameDecoder::new_server(&limits),
        _ => FrameDecoder::new_mid_connection(&limits),
    };
    let (whole, errors) = run(&mut new(mode), &[rest]);
    let at = usize::from(mode) * rest.len() / 256;
    let (split, _) = run(&mut new(mode), &[&rest[..at], &rest[at..]]);
    if errors == 0 && mode % 3 != 2 {
        assert_eq!(whole, split);
    }
});

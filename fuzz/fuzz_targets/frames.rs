//! Bytes from a cluster connection, cut at arbitrary points: the frame decoder never panics nor
//! buffers beyond its bound, and every frame it yields decodes (or fails to) as each message type
//! a peer may send.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rivulet_core::protocol::client::{ClientRequest, ClientResponse};
use rivulet_core::protocol::messages::{DataMessage, ToJobManager, ToTaskManager};
use rivulet_core::protocol::{decode_message, FrameDecoder};

fuzz_target!(|input: &[u8]| {
    // The first byte says where to cut the input into pushes.
    let Some((&cut, bytes)) = input.split_first() else { return };
    let step = usize::from(cut).max(1);
    let mut decoder = FrameDecoder::new();
    for chunk in bytes.chunks(step) {
        let room = decoder.push_capacity();
        decoder.push(&chunk[..chunk.len().min(room)]);
        loop {
            match decoder.next_frame() {
                Ok(Some(payload)) => {
                    let _ = decode_message::<ToJobManager>(&payload);
                    let _ = decode_message::<ToTaskManager>(&payload);
                    let _ = decode_message::<DataMessage>(&payload);
                    let _ = decode_message::<ClientRequest>(&payload);
                    let _ = decode_message::<ClientResponse>(&payload);
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});

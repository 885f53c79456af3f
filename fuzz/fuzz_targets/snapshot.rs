//! A subtask snapshot from storage or the network: decoding arbitrary bytes never panics, and
//! whatever decodes encodes back to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rivulet_core::state::snapshot::{decode_snapshot, encode_snapshot};

fuzz_target!(|bytes: &[u8]| {
    if let Ok(snapshot) = decode_snapshot(bytes) {
        assert_eq!(decode_snapshot(&encode_snapshot(&snapshot)).as_ref(), Ok(&snapshot));
    }
});

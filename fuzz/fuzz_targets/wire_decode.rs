//! The module-supervisor messages and the nesting record read from a process: decoding never
//! panics, and whatever decodes encodes back to the same message.
#![no_main]
use libfuzzer_sys::fuzz_target;
use session_wrapper_protocol::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Message::decode(data) {
        let again = Message::decode(&m.encode()).expect("re-decodes");
        assert_eq!(again, m);
    }
});

//! DNS message parser: the input is one message (UDP), and the same bytes
//! as a TCP stream (2-byte length first).
#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_proto::dns;

fuzz_target!(|data: &[u8]| {
    for m in [dns::parse(data), dns::parse_tcp(data)].into_iter().flatten() {
        assert!(m.answers.len() <= dns::MAX_RECORDS);
        assert!(m.questions.len() <= dns::MAX_QUESTIONS);
        for q in &m.questions {
            assert!(q.name.len() <= dns::MAX_NAME_LEN + 4 * 64);
        }
        for a in &m.answers {
            let _ = a.data.to_text();
        }
        let _ = m.resolved_ips().count();
    }
});

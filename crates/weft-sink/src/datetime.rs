//! Civil (calendar) time from Unix nanoseconds, without a date library on the
//! hot path: the JSON sink formats one RFC 3339 timestamp per event.

const NANOS_PER_SEC: u64 = 1_000_000_000;
const SECS_PER_DAY: i64 = 86_400;

/// Appends `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ` (RFC 3339, UTC, always nine
/// fractional digits) for `ns` nanoseconds since the Unix epoch.
pub(crate) fn push_rfc3339_utc(out: &mut Vec<u8>, ns: u64) {
    // Events come in bursts within the same second: the date and time up to
    // the second are formatted once per second per thread.
    thread_local! {
        static LAST: std::cell::Cell<(u64, [u8; 20])> = const {
            std::cell::Cell::new((u64::MAX, [0; 20]))
        };
    }
    let secs = ns / NANOS_PER_SEC;
    let nanos = ns % NANOS_PER_SEC;
    let (cached, mut prefix) = LAST.get();
    if cached != secs {
        prefix = second_prefix(secs as i64);
        LAST.set((secs, prefix));
    }
    out.extend_from_slice(&prefix);
    // Nine digits (nanos < 10^9), two at a time.
    let pair = |k: u64| PAIRS[k as usize % 100];
    let [a, b] = pair(nanos / 1_000_000 % 100);
    let [c, d] = pair(nanos / 10_000 % 100);
    let [e, f] = pair(nanos / 100 % 100);
    let [g, h] = pair(nanos % 100);
    out.extend_from_slice(&[
        b'0' + (nanos / 100_000_000) as u8,
        a,
        b,
        c,
        d,
        e,
        f,
        g,
        h,
        b'Z',
    ]);
}

/// `YYYY-MM-DDTHH:MM:SS.` of a second since the epoch.
fn second_prefix(secs: i64) -> [u8; 20] {
    // u64 nanoseconds end in the year 2554: the year always has four digits.
    let (year, month, day) = civil_from_days(secs.div_euclid(SECS_PER_DAY));
    let (h, m, s) = hms(secs);
    let mut v = Vec::with_capacity(20);
    push_digits(&mut v, year as u64, 4);
    v.push(b'-');
    push_digits(&mut v, u64::from(month), 2);
    v.push(b'-');
    push_digits(&mut v, u64::from(day), 2);
    v.push(b'T');
    push_digits(&mut v, u64::from(h), 2);
    v.push(b':');
    push_digits(&mut v, u64::from(m), 2);
    v.push(b':');
    push_digits(&mut v, u64::from(s), 2);
    v.push(b'.');
    let mut out = [0u8; 20];
    out.copy_from_slice(&v[..20]);
    out
}

/// Appends `HH:MM:SS.mmm` for `ns` nanoseconds since the epoch shifted by
/// `offset_secs` (the local UTC offset; 0 for UTC).
pub(crate) fn push_clock_time(out: &mut String, ns: u64, offset_secs: i32) {
    let secs = (ns / NANOS_PER_SEC) as i64 + i64::from(offset_secs);
    let millis = (ns % NANOS_PER_SEC) / 1_000_000;
    let (h, m, s) = hms(secs);
    let mut buf = Vec::with_capacity(12);
    push_digits(&mut buf, u64::from(h), 2);
    buf.push(b':');
    push_digits(&mut buf, u64::from(m), 2);
    buf.push(b':');
    push_digits(&mut buf, u64::from(s), 2);
    buf.push(b'.');
    push_digits(&mut buf, millis, 3);
    // Only ASCII digits and punctuation were written.
    out.extend(buf.iter().map(|&b| char::from(b)));
}

fn hms(secs: i64) -> (u8, u8, u8) {
    let sod = secs.rem_euclid(SECS_PER_DAY);
    ((sod / 3600) as u8, (sod / 60 % 60) as u8, (sod % 60) as u8)
}

/// Year, month (1..=12) and day (1..=31) of a day count since 1970-01-01 in
/// the proleptic Gregorian calendar (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March-based
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// "00" to "99": two digits per division.
const DIGIT_PAIRS: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Appends `n` in decimal: [`push_digits`] with width 1, with the small
/// numbers most fields hold (statuses, sizes, stream ids, ports) written as
/// copies of constant length rather than through a digit buffer.
#[inline(always)]
pub(crate) fn push_uint(out: &mut Vec<u8>, n: u64) {
    let pair = |k: u64| PAIRS[k as usize % 100];
    if n < 10 {
        out.push(b'0' + n as u8);
    } else if n < 100 {
        out.extend_from_slice(&pair(n));
    } else if n < 1_000 {
        let [a, b] = pair(n % 100);
        out.extend_from_slice(&[b'0' + (n / 100) as u8, a, b]);
    } else if n < 10_000 {
        let ([a, b], [c, d]) = (pair(n / 100), pair(n % 100));
        out.extend_from_slice(&[a, b, c, d]);
    } else if n < 100_000 {
        let ([b, c], [d, e]) = (pair(n / 100 % 100), pair(n % 100));
        out.extend_from_slice(&[b'0' + (n / 10_000) as u8, b, c, d, e]);
    } else if n < 100_000_000 {
        // Six to eight digits (durations in nanoseconds): the eight-digit
        // form as one word, its leading zeros shifted out, written whole and
        // the tail cut: no copy of variable length (a `memcpy` call).
        let digits = if n < 1_000_000 {
            6
        } else if n < 10_000_000 {
            7
        } else {
            8
        };
        let ([a, b], [c, d], [e, f], [g, h]) = (
            pair(n / 1_000_000),
            pair(n / 10_000 % 100),
            pair(n / 100 % 100),
            pair(n % 100),
        );
        let word = u64::from_le_bytes([a, b, c, d, e, f, g, h]) >> (8 * (8 - digits));
        let len = out.len();
        out.extend_from_slice(&word.to_le_bytes());
        out.truncate(len + digits);
    } else {
        push_digits(out, n, 1);
    }
}

/// [`DIGIT_PAIRS`] as pairs: `PAIRS[n]` is `n` in two digits.
const PAIRS: [[u8; 2]; 100] = {
    let mut t = [[0u8; 2]; 100];
    let mut i = 0;
    while i < 100 {
        t[i] = [DIGIT_PAIRS[2 * i], DIGIT_PAIRS[2 * i + 1]];
        i += 1;
    }
    t
};

/// Appends `n` in decimal, zero-padded to at least `width` digits.
pub(crate) fn push_digits(out: &mut Vec<u8>, mut n: u64, width: usize) {
    let mut buf = [b'0'; 20];
    let mut i = buf.len();
    while n >= 100 {
        let pair = (n % 100) as usize * 2;
        n /= 100;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    }
    if n >= 10 {
        let pair = n as usize * 2;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    } else {
        i -= 1;
        buf[i] = b'0' + n as u8;
    }
    let start = i.min(buf.len().saturating_sub(width));
    out.extend_from_slice(&buf[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uint_agrees_with_format() {
        let mut values: Vec<u64> = (0..=200_000).collect();
        values.extend((1..20).flat_map(|k| [10u64.pow(k) - 1, 10u64.pow(k), 10u64.pow(k) + 1]));
        values.extend([u64::MAX, 123_456_789]);
        values.extend((0..100_000u64).map(|i| i * 997 + 100_000)); // six to eight digits
        values.extend([
            99_999_999,
            100_000_000,
            999_999,
            1_000_000,
            9_999_999,
            10_000_000,
        ]);
        for n in values {
            let mut v = Vec::new();
            push_uint(&mut v, n);
            assert_eq!(String::from_utf8(v).expect("ASCII"), n.to_string());
        }
    }

    #[test]
    fn digits_agree_with_format_at_every_width() {
        let mut values: Vec<u64> = (0..=100_000).collect();
        values.extend([u64::MAX, u64::MAX - 1, 10u64.pow(19), 10u64.pow(19) - 1]);
        values.extend((1..20).map(|k| 10u64.pow(k) - 1));
        for n in values {
            for width in [0, 1, 2, 3, 4, 9, 20, 25] {
                let mut v = Vec::new();
                push_digits(&mut v, n, width);
                assert_eq!(
                    String::from_utf8(v).expect("ASCII"),
                    format!("{n:0width$}", width = width.min(20)),
                    "{n} width {width}"
                );
            }
        }
    }

    fn rfc3339(ns: u64) -> String {
        let mut out = Vec::new();
        push_rfc3339_utc(&mut out, ns);
        String::from_utf8(out).expect("ASCII")
    }

    #[test]
    fn known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            rfc3339(1_795_809_824_123_456_789),
            "2026-11-27T20:03:44.123456789Z"
        );
        // 2024-02-29T23:59:59.000000001Z (leap day)
        assert_eq!(
            rfc3339(1_709_251_199_000_000_001),
            "2024-02-29T23:59:59.000000001Z"
        );
        assert_eq!(
            rfc3339(951_782_400 * NANOS_PER_SEC),
            "2000-02-29T00:00:00.000000000Z"
        );
        assert_eq!(
            rfc3339(951_868_800 * NANOS_PER_SEC),
            "2000-03-01T00:00:00.000000000Z"
        );
        assert_eq!(rfc3339(u64::MAX), "2554-07-21T23:34:33.709551615Z");
    }

    /// Agrees with jiff over a sweep of instants from 1970 to 2554.
    #[test]
    fn agrees_with_jiff() {
        let mut ns: u64 = 0;
        let step = u64::MAX / 50_000;
        while let Some(next) = ns.checked_add(step) {
            let ours = rfc3339(ns);
            let parsed: jiff::Timestamp = ours.parse().expect("valid RFC 3339");
            assert_eq!(parsed.as_nanosecond(), i128::from(ns), "{ours}");
            ns = next + 7_777; // vary the sub-second part too
        }
    }

    /// The per-second cache: the same second again, the next one, and back.
    #[test]
    fn cached_second_is_reused_only_within_its_second() {
        let base = 1_795_809_824 * NANOS_PER_SEC;
        for (ns, want) in [
            (base + 5, "2026-11-27T20:03:44.000000005Z"),
            (base + 999_999_999, "2026-11-27T20:03:44.999999999Z"),
            (base + NANOS_PER_SEC, "2026-11-27T20:03:45.000000000Z"),
            (base + 1, "2026-11-27T20:03:44.000000001Z"),
            (base - 1, "2026-11-27T20:03:43.999999999Z"),
        ] {
            assert_eq!(rfc3339(ns), want);
        }
    }

    #[test]
    fn clock_time_applies_offset_and_wraps() {
        let mut s = String::new();
        push_clock_time(&mut s, 1_795_809_824_123_456_789, 0);
        assert_eq!(s, "20:03:44.123");
        s.clear();
        push_clock_time(&mut s, 1_795_809_824_123_456_789, 5 * 3600 + 1800);
        assert_eq!(s, "01:33:44.123");
        s.clear();
        push_clock_time(&mut s, 1_000_000, -3600);
        assert_eq!(s, "23:00:00.001");
    }

    #[test]
    fn digits() {
        let mut v = Vec::new();
        push_digits(&mut v, 0, 1);
        push_digits(&mut v, 7, 3);
        push_digits(&mut v, 12345, 2);
        push_digits(&mut v, u64::MAX, 1);
        assert_eq!(v, b"00071234518446744073709551615");
    }
}

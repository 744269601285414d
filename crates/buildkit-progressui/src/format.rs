//! Number and time formats shared by the renderers, each matching the Go code it imitates.

use buildkit_events::{Elapsed, Time};

/// A byte count the way BuildKit's printer shows it (`%.2f` of `tonistiigi/units.Bytes`):
/// decimal units, two decimals, and whole bytes as an integer below 1 kB.
///
/// ```
/// use buildkit_progressui::format::bytes;
/// assert_eq!(bytes(0), "0B");
/// assert_eq!(bytes(451), "451B");
/// assert_eq!(bytes(1_360), "1.36kB");
/// assert_eq!(bytes(2_220_000), "2.22MB");
/// ```
pub fn bytes(n: i64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let magnitude = i128::from(n).abs();
    let mut unit = 0;
    let mut base: i128 = 1;
    while unit + 1 < UNITS.len() && magnitude >= base * 1000 {
        base *= 1000;
        unit += 1;
    }
    if unit == 0 {
        return format!("{n}B");
    }
    format!("{:.2}{}", n as f64 / base as f64, UNITS[unit])
}

/// Seconds since the start of a vertex, as BuildKit prefixes log lines: 3 decimals below
/// 10 s, 2 below 100 s, else 1.
///
/// ```
/// use buildkit_progressui::format::log_elapsed;
/// assert_eq!(log_elapsed(0.0842), "0.084");
/// assert_eq!(log_elapsed(12.344), "12.34");
/// assert_eq!(log_elapsed(123.44), "123.4");
/// ```
pub fn log_elapsed(secs: f64) -> String {
    let precision = if secs < 10.0 {
        3
    } else if secs < 100.0 {
        2
    } else {
        1
    };
    format!("{secs:.precision$}")
}

/// Appends [`log_elapsed`] of the `nanos` between a vertex's start and a line, followed by a
/// space, as `format!("{} ", log_elapsed(nanos as f64 / 1e9))` writes it, without `fmt` or
/// floats on the common path: once per log line in plain output, it was the largest single
/// cost there. From 0 to 10¹⁵ ns the rounding of the integer quotient is the rounding `fmt`
/// does of the float (the float is within 0.12 ns of the exact quotient, and a remainder that
/// is not exactly half a unit is at least 1 ns from the midpoint); an exact half, a negative
/// or a larger value goes through `fmt`.
pub(crate) fn push_log_elapsed(out: &mut Vec<u8>, nanos: i128) {
    const LIMIT: i128 = 1_000_000_000_000_000;
    let (precision, unit): (u32, i64) = match nanos {
        0..10_000_000_000 => (3, 1_000_000),
        10_000_000_000..100_000_000_000 => (2, 10_000_000),
        100_000_000_000..LIMIT => (1, 100_000_000),
        _ => (0, 0),
    };
    // In `i64` (below 10¹⁵ here): `i128` division is a library call.
    let small = i64::try_from(nanos).ok().filter(|_| unit != 0);
    let Some(nanos) = small.filter(|n| n % unit != unit / 2) else {
        out.extend_from_slice(log_elapsed(nanos as f64 / 1e9).as_bytes());
        out.push(b' ');
        return;
    };
    let scaled = nanos / unit + i64::from(nanos % unit > unit / 2);
    let scale = 10i64.pow(precision);
    let (whole, mut fraction) = (scaled / scale, scaled % scale);
    let mut digits = [0u8; 24];
    let mut at = digits.len();
    for _ in 0..precision {
        at -= 1;
        digits[at] = b'0' + (fraction % 10) as u8;
        fraction /= 10;
    }
    at -= 1;
    digits[at] = b'.';
    let mut w = whole;
    loop {
        at -= 1;
        digits[at] = b'0' + (w % 10) as u8;
        w /= 10;
        if w == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
    out.push(b' ');
}

/// `later - earlier` in seconds; negative when `later` is earlier.
pub fn seconds_between(earlier: Time, later: Time) -> f64 {
    (later.0 - earlier.0) as f64 / 1e9
}

/// A [`Elapsed`] in seconds.
pub fn seconds(d: Elapsed) -> f64 {
    d.as_secs_f64()
}

/// A time as Go's `time.Time` marshals to JSON in UTC (RFC 3339 with nanoseconds, trailing
/// zeros of the fraction dropped, the fraction left out when zero).
///
/// ```
/// use buildkit_progressui::format::rfc3339;
/// use buildkit_events::Time;
/// assert_eq!(rfc3339(Time(0)), "1970-01-01T00:00:00Z");
/// assert_eq!(rfc3339(Time(1_740_623_817_728_358_844)), "2025-02-27T02:36:57.728358844Z");
/// assert_eq!(rfc3339(Time(1_500_000_000)), "1970-01-01T00:00:01.5Z");
/// ```
pub fn rfc3339(t: Time) -> String {
    let mut out = Vec::with_capacity(32);
    Rfc3339::default().push(&mut out, t);
    String::from_utf8(out).expect("ASCII")
}

/// Writes times as [`rfc3339`] does, straight into a byte buffer, without `fmt` for what
/// changes from one event to the next: the date (`YYYY-MM-DDT`) of the latest day written is
/// kept, the time of day and the fraction are written digit by digit.
#[derive(Debug, Clone, Default)]
pub(crate) struct Rfc3339 {
    /// The day of `date`, days since the epoch.
    day: Option<i128>,
    /// `YYYY-MM-DDT` of `day`.
    date: String,
}

impl Rfc3339 {
    /// Appends `t` (without quotes).
    pub(crate) fn push(&mut self, out: &mut Vec<u8>, t: Time) {
        // In `i64` when it fits (years 1677 to 2262): `i128` division is a library call.
        let (day, of_day, nanos) = match i64::try_from(t.0) {
            Ok(t) => {
                let secs = t.div_euclid(1_000_000_000);
                (
                    i128::from(secs.div_euclid(86_400)),
                    secs.rem_euclid(86_400) as u32,
                    t.rem_euclid(1_000_000_000) as u32,
                )
            }
            Err(_) => {
                let secs = t.0.div_euclid(1_000_000_000);
                (
                    secs.div_euclid(86_400),
                    secs.rem_euclid(86_400) as u32,
                    t.0.rem_euclid(1_000_000_000) as u32,
                )
            }
        };
        if self.day != Some(day) {
            let (year, month, day_of_month) = civil_from_days(day);
            self.date = format!("{year:04}-{month:02}-{day_of_month:02}T");
            self.day = Some(day);
        }
        out.extend_from_slice(self.date.as_bytes());
        let two = |n: u32| [b'0' + (n / 10) as u8, b'0' + (n % 10) as u8];
        let (h, m, s) = (two(of_day / 3600), two(of_day / 60 % 60), two(of_day % 60));
        out.extend_from_slice(&[h[0], h[1], b':', m[0], m[1], b':', s[0], s[1]]);
        if nanos != 0 {
            // Nine digits, trailing zeros dropped.
            let mut digits = [b'0'; 9];
            let mut n = nanos;
            for d in digits.iter_mut().rev() {
                *d = b'0' + (n % 10) as u8;
                n /= 10;
            }
            let len = 9 - digits.iter().rev().take_while(|&&d| d == b'0').count();
            out.push(b'.');
            out.extend_from_slice(&digits[..len]);
        }
        out.push(b'Z');
    }
}

/// (year, month, day) of a count of days since 1970-01-01 (proleptic Gregorian calendar).
fn civil_from_days(days: i128) -> (i128, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i128::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_use_decimal_units_and_two_decimals() {
        assert_eq!(bytes(999), "999B");
        assert_eq!(bytes(1000), "1.00kB");
        assert_eq!(bytes(40_123_456), "40.12MB");
        assert_eq!(bytes(3_000_000_000), "3.00GB");
        assert_eq!(bytes(-1500), "-1.50kB");
        assert_eq!(bytes(i64::MAX), "9.22EB");
    }

    #[test]
    fn log_elapsed_switches_precision_at_10_and_100_seconds() {
        assert_eq!(log_elapsed(9.9994), "9.999");
        assert_eq!(log_elapsed(10.0), "10.00");
        assert_eq!(log_elapsed(99.994), "99.99");
        assert_eq!(log_elapsed(100.0), "100.0");
    }

    #[test]
    fn rfc3339_handles_leap_years_and_times_before_1970() {
        // 2024-02-29T23:59:59.000000001Z
        let t = (19_782 * 86_400 + 86_399) * 1_000_000_000 + 1;
        assert_eq!(rfc3339(Time(t)), "2024-02-29T23:59:59.000000001Z");
        assert_eq!(rfc3339(Time(-1)), "1969-12-31T23:59:59.999999999Z");
        assert_eq!(
            rfc3339(Time(951_782_400_000_000_000)),
            "2000-02-29T00:00:00Z"
        );
    }

    #[test]
    fn log_elapsed_from_nanoseconds_is_what_fmt_writes() {
        let mut cases: Vec<i128> = vec![0, 1, 499_999, 500_000, 500_001, 1_500_000, 2_500_000];
        for base in [
            0i128,
            9_999_000_000,
            9_999_500_000,
            9_999_499_999,
            9_999_500_001,
            10_000_000_000,
            99_995_000_000,
            99_994_999_999,
            99_995_000_001,
            100_000_000_000,
            123_450_000_000,
            999_999_950_000_000,
            1_000_000_000_000_000,
        ] {
            cases.extend((-3..=3).map(|d| base + d));
        }
        // A pseudo-random spread over the whole range, and values near every half unit.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let n = i128::from(x % 2_000_000_000_000_000) >> (x % 40);
            cases.push(n);
            let unit = [1_000_000i128, 10_000_000, 100_000_000][(x % 3) as usize];
            cases.push(n / unit * unit + unit / 2 + i128::from(x % 3) - 1);
        }
        cases.extend([-1, -1_000_000_000, -1_500_000]);
        for nanos in cases {
            let mut out = Vec::new();
            push_log_elapsed(&mut out, nanos);
            let want = format!("{} ", log_elapsed(nanos as f64 / 1e9));
            assert_eq!(String::from_utf8(out).unwrap(), want, "{nanos}");
        }
    }

    #[test]
    fn the_cached_writer_writes_what_rfc3339_writes() {
        let mut cached = Rfc3339::default();
        let mut out = Vec::new();
        let times = [
            0,
            1,
            10,
            999_999_999,
            1_000_000_000,
            1_500_000_000,
            1_740_623_817_728_358_844,
            1_740_623_817_000_000_100,
            1_740_623_817_120_000_000,
            1_740_623_818_000_000_000,
            -1,
            -1_000_000_000,
            i128::from(i64::MAX),
            i128::from(i64::MIN),
            i128::from(i64::MAX) + 1,
            i128::from(i64::MIN) - 1,
            i128::from(i64::MAX) * 1000 + 7,
            -i128::from(i64::MAX) * 1000 - 7,
        ];
        for t in times {
            out.clear();
            cached.push(&mut out, Time(t));
            assert_eq!(String::from_utf8(out.clone()).unwrap(), rfc3339(Time(t)));
            assert_eq!(
                String::from_utf8(out.clone()).unwrap(),
                old_rfc3339(Time(t)),
                "{t}"
            );
        }
    }

    /// The formatting before the cached writer, kept to compare with.
    fn old_rfc3339(t: Time) -> String {
        let nanos = t.0.rem_euclid(1_000_000_000);
        let secs = t.0.div_euclid(1_000_000_000);
        let days = secs.div_euclid(86_400);
        let of_day = secs.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        let mut out = format!(
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
            of_day / 3600,
            of_day / 60 % 60,
            of_day % 60
        );
        if nanos != 0 {
            let fraction = format!("{nanos:09}");
            out.push('.');
            out.push_str(fraction.trim_end_matches('0'));
        }
        out.push('Z');
        out
    }
}

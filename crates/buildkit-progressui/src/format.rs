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
}

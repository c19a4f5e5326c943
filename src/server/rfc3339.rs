//! RFC 3339 timestamps (`2026-12-31T23:59:59Z`, `2026-12-31T23:59:59.5+08:00`) to
//! [`SystemTime`], for token expiry. Small enough not to need a date crate.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::{self, Deserializer, MapAccess, Visitor};

/// Parse an RFC 3339 date-time with a `Z` or `±HH:MM` offset. Times before 1970
/// are refused; a leap second (`:60`) counts as the second before it.
pub(crate) fn parse(s: &str) -> Result<SystemTime, String> {
    let err =
        |why: &str| format!("{s:?} is not an RFC 3339 time such as 2026-12-31T23:59:59Z ({why})");
    let b = s.as_bytes();
    if b.len() < 19 {
        return Err(err("too short"));
    }
    let num = |range: std::ops::Range<usize>| -> Result<u32, String> {
        let digits = &b[range];
        if digits.iter().all(u8::is_ascii_digit) {
            Ok(digits.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
        } else {
            Err(err("a digit is expected"))
        }
    };
    let seps = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
    if seps.iter().any(|&(i, c)| b[i] != c) || !matches!(b[10], b'T' | b't' | b' ') {
        return Err(err("the layout is YYYY-MM-DDTHH:MM:SS"));
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return Err(err("no such date"));
    }
    if hour > 23 || minute > 59 || second > 60 {
        return Err(err("no such time of day"));
    }
    let mut rest = &s[19..];
    let mut nanos = 0u32;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(err("digits are expected after the decimal point"));
        }
        for (i, d) in frac.bytes().take(digits.min(9)).enumerate() {
            nanos += u32::from(d - b'0') * 10u32.pow(8 - i as u32);
        }
        rest = &frac[digits..];
    }
    let offset_secs: i64 = match rest.as_bytes() {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2]
            if [h1, h2, m1, m2].iter().all(|d| d.is_ascii_digit()) =>
        {
            let hours = i64::from((h1 - b'0') * 10 + (h2 - b'0'));
            let minutes = i64::from((m1 - b'0') * 10 + (m2 - b'0'));
            if hours > 23 || minutes > 59 {
                return Err(err("no such offset"));
            }
            let offset = hours * 3600 + minutes * 60;
            if *sign == b'+' {
                offset
            } else {
                -offset
            }
        }
        _ => return Err(err("it must end in Z or an offset such as +08:00")),
    };
    let days = days_from_civil(i64::from(year), month, day);
    let local =
        days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second.min(59));
    let utc = u64::try_from(local - offset_secs).map_err(|_| err("before 1970"))?;
    Ok(UNIX_EPOCH + Duration::new(utc, nanos))
}

fn is_leap(year: u32) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Serde: an optional RFC 3339 time, written as a string or as a TOML date-time.
pub(crate) fn deserialize_opt<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<SystemTime>, D::Error> {
    deserializer.deserialize_any(TimeVisitor).map(Some)
}

struct TimeVisitor;

impl<'de> Visitor<'de> for TimeVisitor {
    type Value = SystemTime;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an RFC 3339 time such as \"2026-12-31T23:59:59Z\"")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<SystemTime, E> {
        parse(v).map_err(E::custom)
    }

    // The toml crate hands an unquoted date-time over as a one-entry map.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SystemTime, A::Error> {
        let Some((_, value)) = map.next_entry::<String, String>()? else {
            return Err(de::Error::custom("an empty table is not a time"));
        };
        parse(&value).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: &str) -> u64 {
        parse(s).unwrap_or_else(|e| panic!("{e}")).duration_since(UNIX_EPOCH).unwrap().as_secs()
    }

    #[test]
    fn known_instants() {
        assert_eq!(secs("1970-01-01T00:00:00Z"), 0);
        assert_eq!(secs("2000-03-01T00:00:00Z"), 951_868_800);
        assert_eq!(secs("2026-12-31T23:59:59Z"), 1_798_761_599);
        assert_eq!(secs("2024-02-29T12:00:00z"), 1_709_208_000);
        assert_eq!(secs("2038-01-19T03:14:08Z"), 1 << 31);
        // Offsets move to UTC.
        assert_eq!(secs("2026-01-01T08:00:00+08:00"), secs("2026-01-01T00:00:00Z"));
        assert_eq!(secs("2025-12-31T19:30:00-04:30"), secs("2026-01-01T00:00:00Z"));
        assert_eq!(secs("2026-06-30T23:59:60Z"), secs("2026-06-30T23:59:59Z"));
        let frac = parse("2026-01-01T00:00:00.25Z").unwrap();
        assert_eq!(frac.duration_since(UNIX_EPOCH).unwrap().subsec_millis(), 250);
        assert!(parse("2026-01-01 00:00:00.123456789123Z").is_ok());
    }

    #[test]
    fn bad_times_are_refused() {
        for bad in [
            "",
            "2026-12-31",
            "2026-12-31T23:59:59",
            "2026-12-31T23:59:59+0800",
            "2026-12-31T23:59:59 Z",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2100-02-29T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-00-10T00:00:00Z",
            "2026-12-31T24:00:00Z",
            "2026-12-31T23:60:00Z",
            "2026-12-31T23:59:59.Z",
            "2026-12-31T23:59:59+24:00",
            "2026/12/31T23:59:59Z",
            "+026-12-31T23:59:59Z",
            "1969-12-31T23:59:59Z",
            "1970-01-01T00:00:00+00:01",
        ] {
            let e = parse(bad).expect_err(bad);
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
        assert!(parse("2000-02-29T00:00:00Z").is_ok());
    }

    #[test]
    fn deserializes_strings_and_toml_datetimes() {
        #[derive(serde::Deserialize)]
        struct T {
            #[serde(default, deserialize_with = "deserialize_opt")]
            expires: Option<SystemTime>,
        }
        let quoted: T = toml::from_str(r#"expires = "2026-12-31T23:59:59Z""#).unwrap();
        let bare: T = toml::from_str("expires = 2026-12-31T23:59:59Z").unwrap();
        assert_eq!(quoted.expires, bare.expires);
        assert_eq!(quoted.expires, Some(parse("2026-12-31T23:59:59Z").unwrap()));
        assert_eq!(toml::from_str::<T>("").unwrap().expires, None);
        let local = toml::from_str::<T>("expires = 2026-12-31T23:59:59").err().unwrap();
        assert!(local.to_string().contains("Z or an offset"), "{local}");
        assert!(toml::from_str::<T>("expires = 5").is_err());
    }
}

//! `Timestamp` / `x-acs-date` parsing and the ±window check.
//!
//! Accepted: `yyyy-MM-ddTHH:mm:ssZ` with optional 1–9 fractional digits (the Rust SDK sends
//! nanoseconds), upper-case `T` and `Z` only. Offsets (`+08:00`), lower-case `z`, leap seconds
//! and out-of-range fields are `InvalidTimeStamp.Format`: the vendor requires UTC.

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

use crate::{Gateway, RpcError};

/// Parses a strict UTC timestamp.
pub fn parse_timestamp(s: &str) -> Option<OffsetDateTime> {
    let b = s.as_bytes();
    if b.len() < 20 || b.len() > 30 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let mut v = 0u32;
        for &c in b.get(r)? {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u32::from(c - b'0');
        }
        Some(v)
    };
    if b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let year = num(0..4)?;
    let month = num(5..7)?;
    let day = num(8..10)?;
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let rest = &b[19..];
    let nanos = match rest {
        [b'Z'] => 0,
        [b'.', frac @ .., b'Z'] if (1..=9).contains(&frac.len()) => {
            let digits = num(20..20 + frac.len())?;
            digits * 10u32.pow(9 - frac.len() as u32)
        }
        _ => return None,
    };
    let month = Month::try_from(u8::try_from(month).ok()?).ok()?;
    let date =
        Date::from_calendar_date(i32::try_from(year).ok()?, month, u8::try_from(day).ok()?).ok()?;
    let time = Time::from_hms_nano(
        u8::try_from(hour).ok()?,
        u8::try_from(minute).ok()?,
        u8::try_from(second).ok()?,
        nanos,
    )
    .ok()?;
    Some(PrimitiveDateTime::new(date, time).assume_utc())
}

/// Parses and checks the window; the errors are the gateway's `InvalidTimeStamp.*` rows.
pub(crate) fn check_timestamp(
    name: &str,
    raw: &str,
    now: OffsetDateTime,
    window_secs: i64,
) -> Result<OffsetDateTime, RpcError> {
    let t = parse_timestamp(raw).ok_or_else(|| {
        RpcError::gateway_with_detail(
            Gateway::InvalidTimeStampFormat,
            format!("{name} must be UTC in the form yyyy-MM-ddTHH:mm:ssZ."),
        )
    })?;
    let skew = (t - now).whole_seconds().abs();
    if skew > window_secs {
        return Err(RpcError::gateway_with_detail(
            Gateway::InvalidTimeStampExpired,
            format!("{name} differs from the server time by more than {window_secs} seconds."),
        ));
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn accepts_the_forms_clients_send() {
        assert_eq!(
            parse_timestamp("2026-11-26T03:41:36Z"),
            Some(datetime!(2026-11-26 03:41:36 UTC))
        );
        assert_eq!(
            parse_timestamp("2026-11-26T03:50:44.484917903Z"),
            Some(datetime!(2026-11-26 03:50:44.484917903 UTC))
        );
        assert_eq!(
            parse_timestamp("2026-11-26T03:50:44.5Z"),
            Some(datetime!(2026-11-26 03:50:44.5 UTC))
        );
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            "",
            "2026-11-26T03:41:36",
            "2026-11-26T03:41:36z",
            "2026-11-26t03:41:36Z",
            "2026-11-26 03:41:36Z",
            "2026-11-26T03:41:36+08:00",
            "2026-11-26T03:41:36.Z",
            "2026-11-26T03:41:36.1234567890Z",
            "2026-13-26T03:41:36Z",
            "2026-02-30T03:41:36Z",
            "2026-11-26T24:00:00Z",
            "2026-11-26T23:59:60Z",
            "2026-11-26T03:41:3xZ",
            "+026-11-26T03:41:36Z",
            "2026-11-26T03:41:36ZZ",
            "２026-11-26T03:41:36Z",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
    }

    #[test]
    fn window_boundaries() {
        let now = datetime!(2026-11-26 12:00:00 UTC);
        let ok = |s: &str| {
            check_timestamp("Timestamp", s, now, 900)
                .map(|_| ())
                .map_err(|e| e.code().to_string())
        };
        assert_eq!(ok("2026-11-26T12:15:00Z"), Ok(()));
        assert_eq!(ok("2026-11-26T11:45:00Z"), Ok(()));
        assert_eq!(
            ok("2026-11-26T12:15:01Z"),
            Err("InvalidTimeStamp.Expired".into())
        );
        assert_eq!(
            ok("2026-11-26T11:44:59Z"),
            Err("InvalidTimeStamp.Expired".into())
        );
        assert_eq!(
            ok("2026-11-26T11:44:59+00:00"),
            Err("InvalidTimeStamp.Format".into())
        );
    }
}

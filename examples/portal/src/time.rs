//! Civil UTC times for forms and tables (days from 1970-01-01 by Howard Hinnant's algorithm).

/// `YYYY-MM-DD HH:MM` for unix seconds.
pub fn format_utc(unix: i64) -> String {
    let (days, rest) = (unix.div_euclid(86_400), unix.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60
    )
}

/// Unix seconds for `YYYY-MM-DDTHH:MM` (an HTML `datetime-local` value, read as UTC); `None`
/// for anything else.
pub fn parse_utc(text: &str) -> Option<i64> {
    let (date, time) = text.trim().split_once(['T', ' '])?;
    let mut date = date.split('-').map(str::parse::<i64>);
    let (year, month, day) = (date.next()?.ok()?, date.next()?.ok()?, date.next()?.ok()?);
    let mut time = time.split(':').map(str::parse::<i64>);
    let (hour, minute) = (time.next()?.ok()?, time.next()?.ok()?);
    let valid = (1970..=9999).contains(&year)
        && (1..=12).contains(&month)
        && (1..=31).contains(&day)
        && (0..24).contains(&hour)
        && (0..60).contains(&minute);
    if !valid {
        return None;
    }
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = days * 86_400 + hour * 3600 + minute * 60;
    // A day that does not exist (31 February) does not come back the same.
    (format_utc(seconds) == format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}"))
        .then_some(seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_impossible_dates() {
        assert_eq!(format_utc(0), "1970-01-01 00:00");
        assert_eq!(format_utc(1_800_000_000), "2027-01-15 08:00");
        assert_eq!(parse_utc("2027-01-15T08:00"), Some(1_800_000_000));
        assert_eq!(parse_utc("2024-02-29 23:59"), Some(1_709_251_140));
        for bad in [
            "2023-02-29T00:00",
            "2027-13-01T00:00",
            "2027-01-15",
            "x",
            "1969-12-31T23:59",
        ] {
            assert_eq!(parse_utc(bad), None, "{bad}");
        }
    }
}

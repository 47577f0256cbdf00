//! Cron schedules: the standard five fields (minute, hour, day of month, month, day of week)
//! with lists, ranges, steps and names (`jan`, `mon`), the `@hourly`-style shortcuts, and the
//! next or latest firing time in a time zone. As in cron, when both day fields are restricted a
//! day matches if either does.

use chrono::{DateTime, Datelike, Duration, TimeZone, Timelike, Utc};

#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    days_any: bool,
    weekdays_any: bool,
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

fn value(s: &str, names: &[&str], offset: u32, what: &str) -> Result<u32, String> {
    if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
        return Ok(i as u32 + offset);
    }
    s.parse::<u32>().map_err(|_| {
        format!(
            "{what}: {s:?} is not a number{}",
            if names.is_empty() { "" } else { " or a name" }
        )
    })
}

fn field(
    spec: &str,
    lo: u32,
    hi: u32,
    names: &[&str],
    offset: u32,
    what: &str,
) -> Result<(u64, bool), String> {
    let mut bits = 0u64;
    for part in spec.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s
                    .parse()
                    .map_err(|_| format!("{what}: step {s:?} is not a number"))?;
                if step == 0 {
                    return Err(format!("{what}: a step must be at least 1"));
                }
                (r, step)
            }
            None => (part, 1),
        };
        let (a, b) = if range == "*" || range == "?" {
            (lo, hi)
        } else if let Some((x, y)) = range.split_once('-') {
            (
                value(x, names, offset, what)?,
                value(y, names, offset, what)?,
            )
        } else {
            let v = value(range, names, offset, what)?;
            (v, if part.contains('/') { hi } else { v })
        };
        // Sunday may be written 7
        let (a, b) = if what == "day of week" {
            (a.min(7), b.min(7))
        } else {
            (a, b)
        };
        if a < lo || b > hi || a > b {
            return Err(format!("{what}: {range:?} is outside {lo}-{hi}"));
        }
        let mut v = a;
        while v <= b {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok((bits, spec == "*" || spec == "?"))
}

impl Schedule {
    pub fn parse(spec: &str) -> Result<Schedule, String> {
        let s = spec.trim();
        let expanded = match s {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other if other.starts_with('@') => {
                return Err(format!(
                "{other:?} is not a known shortcut (@yearly, @monthly, @weekly, @daily, @hourly)"
            ))
            }
            other => other,
        };
        let f: Vec<&str> = expanded.split_whitespace().collect();
        if f.len() != 5 {
            return Err(format!(
                "{s:?} has {} fields: a schedule has five (minute hour day-of-month month day-of-week)",
                f.len()
            ));
        }
        let (minutes, _) = field(f[0], 0, 59, &[], 0, "minute")?;
        let (hours, _) = field(f[1], 0, 23, &[], 0, "hour")?;
        let (days, days_any) = field(f[2], 1, 31, &[], 0, "day of month")?;
        let (months, _) = field(f[3], 1, 12, &MONTHS, 1, "month")?;
        let (mut weekdays, weekdays_any) = field(f[4], 0, 7, &DAYS, 0, "day of week")?;
        if weekdays & (1 << 7) != 0 {
            weekdays |= 1;
        }
        Ok(Schedule {
            minutes,
            hours,
            days,
            months,
            weekdays,
            days_any,
            weekdays_any,
        })
    }

    fn day_matches<T: Datelike>(&self, d: &T) -> bool {
        let dom = self.days & (1 << d.day()) != 0;
        let dow = self.weekdays & (1 << d.weekday().num_days_from_sunday()) != 0;
        match (self.days_any, self.weekdays_any) {
            (true, true) => true,
            (false, true) => dom,
            (true, false) => dow,
            (false, false) => dom || dow,
        }
    }

    fn matches<Tz: TimeZone>(&self, t: &DateTime<Tz>) -> bool {
        self.minutes & (1 << t.minute()) != 0
            && self.hours & (1 << t.hour()) != 0
            && self.months & (1 << t.month()) != 0
            && self.day_matches(t)
    }

    /// The latest firing time in `(after, until]`, in time zone `tz`.
    pub fn latest_between<Tz: TimeZone>(
        &self,
        tz: &Tz,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let mut t = until.with_timezone(tz).with_second(0)?.with_nanosecond(0)?;
        let floor = after.with_timezone(tz);
        // at most a year back, minute by minute is too slow: step by minute within matching hours
        let mut steps = 0;
        while t > floor && steps < 600_000 {
            if self.matches(&t) {
                return Some(t.with_timezone(&Utc));
            }
            t -= Duration::minutes(1);
            steps += 1;
        }
        None
    }

    /// The first firing time strictly after `after`, in time zone `tz` (within four years).
    pub fn next_after<Tz: TimeZone>(&self, tz: &Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut t =
            after.with_timezone(tz).with_second(0)?.with_nanosecond(0)? + Duration::minutes(1);
        let end = after + Duration::days(4 * 366);
        while t.with_timezone(&Utc) < end {
            if self.months & (1 << t.month()) == 0 || !self.day_matches(&t) {
                // jump to the next day's midnight
                let next = (t.date_naive() + Duration::days(1)).and_hms_opt(0, 0, 0)?;
                t = tz.from_local_datetime(&next).earliest()?;
                continue;
            }
            if self.hours & (1 << t.hour()) == 0 {
                t = t.with_minute(0)? + Duration::hours(1);
                continue;
            }
            if self.minutes & (1 << t.minute()) != 0 {
                return Some(t.with_timezone(&Utc));
            }
            t += Duration::minutes(1);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn fields_shortcuts_and_errors() {
        assert!(Schedule::parse("*/5 * * * *").is_ok());
        assert!(Schedule::parse("0 9-17/2 * jan-mar mon,wed,fri").is_ok());
        assert_eq!(
            Schedule::parse("@hourly").unwrap(),
            Schedule::parse("0 * * * *").unwrap()
        );
        assert!(Schedule::parse("61 * * * *")
            .unwrap_err()
            .contains("minute"));
        assert!(Schedule::parse("* * * *").unwrap_err().contains("4 fields"));
        assert!(Schedule::parse("@often").unwrap_err().contains("shortcut"));
        assert!(Schedule::parse("*/0 * * * *").unwrap_err().contains("step"));
    }

    #[test]
    fn next_and_latest_firing_times() {
        let s = Schedule::parse("30 2 * * *").unwrap();
        assert_eq!(
            s.next_after(&Utc, at("2026-11-28T10:00:00Z")),
            Some(at("2026-11-29T02:30:00Z"))
        );
        assert_eq!(
            s.latest_between(&Utc, at("2026-11-27T00:00:00Z"), at("2026-11-28T10:00:00Z")),
            Some(at("2026-11-28T02:30:00Z"))
        );
        let every = Schedule::parse("* * * * *").unwrap();
        assert_eq!(
            every.next_after(&Utc, at("2026-11-28T10:00:30Z")),
            Some(at("2026-11-28T10:01:00Z"))
        );
        // Sunday written as 7; 2026-11-29 is a Sunday
        let sunday = Schedule::parse("0 0 * * 7").unwrap();
        assert_eq!(
            sunday.next_after(&Utc, at("2026-11-28T10:00:00Z")),
            Some(at("2026-11-29T00:00:00Z"))
        );
        // day-of-month OR day-of-week when both are restricted: the 1st, or any Monday
        let either = Schedule::parse("0 0 1 * mon").unwrap();
        assert_eq!(
            either.next_after(&Utc, at("2026-11-28T10:00:00Z")),
            Some(at("2026-11-30T00:00:00Z"))
        );
    }

    #[test]
    fn time_zones_shift_the_firing_time() {
        let tz: chrono_tz::Tz = "Europe/Paris".parse().unwrap();
        let s = Schedule::parse("0 9 * * *").unwrap();
        // 09:00 in Paris in winter is 08:00 UTC
        assert_eq!(
            s.next_after(&tz, at("2026-11-28T10:00:00Z")),
            Some(at("2026-11-29T08:00:00Z"))
        );
    }
}

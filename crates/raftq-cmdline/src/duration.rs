//! Durations on the command line: `500ms`, `30s`, `1.5s`, `5m`, `1h`, `0`.

use std::time::Duration;

/// Parses a duration with a unit. A bare number is refused (except `0`):
/// whether `30` meant seconds or milliseconds is a guess we do not make.
pub fn parse(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: expected e.g. 500ms, 30s, 5m"))?;
    let secs_per_unit = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        "" => return Err(format!("duration {s:?} needs a unit: {s}s or {s}ms?")),
        other => {
            return Err(format!(
                "invalid duration unit {other:?} in {s:?}: use ms, s, m, h or d"
            ))
        }
    };
    Duration::try_from_secs_f64(n * secs_per_unit)
        .map_err(|_| format!("duration {s:?} is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse(" 0 "), Ok(Duration::ZERO));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn refuses_what_it_would_have_to_guess() {
        assert!(parse("30").unwrap_err().contains("needs a unit"));
        assert!(parse("ten").is_err());
        assert!(parse("5w").unwrap_err().contains("unit"));
        assert!(parse("").is_err());
        assert!(parse("1.2.3s").is_err());
        assert!(parse("-1s").is_err());
        assert!(parse("1e400s").is_err());
    }
}

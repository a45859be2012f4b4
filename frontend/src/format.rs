//! Pure helpers (no browser APIs), unit-tested on the host.

use chrono::{DateTime, Utc};

/// Parses a duration typed as hours and minutes into whole minutes.
pub fn duration_minutes(hours: &str, minutes: &str) -> Result<u32, String> {
    let parse = |label: &str, value: &str| -> Result<u32, String> {
        let value = value.trim();
        if value.is_empty() {
            return Ok(0);
        }
        value
            .parse::<u32>()
            .map_err(|_| format!("{label} must be a whole number"))
    };
    let h = parse("hours", hours)?;
    let m = parse("minutes", minutes)?;
    if m > 59 {
        return Err("minutes must be 0-59".into());
    }
    let total = h
        .checked_mul(60)
        .and_then(|h| h.checked_add(m))
        .ok_or("too long")?;
    if total == 0 {
        return Err("ask for at least one minute".into());
    }
    Ok(total)
}

/// `90` → `1 h 30 min`.
pub fn human_minutes(total: u32) -> String {
    match (total / 60, total % 60) {
        (0, m) => format!("{m} min"),
        (h, 0) => format!("{h} h"),
        (h, m) => format!("{h} h {m} min"),
    }
}

/// Time left until `end`, as `1:02:03`, or `ended`.
pub fn countdown(now: DateTime<Utc>, end: DateTime<Utc>) -> String {
    let left = (end - now).num_seconds();
    if left <= 0 {
        return "ended".into();
    }
    format!("{}:{:02}:{:02}", left / 3600, (left % 3600) / 60, left % 60)
}

/// A request or grant status as people read it, with its CSS class.
pub fn status_label(status: &str) -> (&'static str, &'static str) {
    match status {
        "pending_approval" => ("Pending approval", "st-wait"),
        "approved" => ("Approved", "st-wait"),
        "granting" | "sending" | "sent" => ("Granting", "st-busy"),
        "pending" => ("Pending", "st-wait"),
        "active" => ("Active", "st-ok"),
        "revoking" | "removing" => ("Revoking", "st-busy"),
        "expired" => ("Expired", "st-done"),
        "revoked" => ("Revoked", "st-done"),
        "removed" => ("Removed", "st-done"),
        "rejected" => ("Rejected", "st-bad"),
        "canceled" => ("Canceled", "st-done"),
        "failed" => ("Failed", "st-bad"),
        "refused" => ("Not granted", "st-done"),
        "remove_failed" => ("Removal failed", "st-bad"),
        _ => ("Unknown", "st-done"),
    }
}

/// How many grants are in each status, in a stable order (the most urgent first), for a compact
/// summary of requests with many subjects × instances.
pub fn grant_tally<'a>(statuses: impl IntoIterator<Item = &'a str>) -> Vec<(String, usize)> {
    const ORDER: [&str; 9] = [
        "remove_failed",
        "failed",
        "refused",
        "sending",
        "sent",
        "removing",
        "pending",
        "active",
        "removed",
    ];
    let mut counts: std::collections::BTreeMap<(usize, String), usize> = Default::default();
    for status in statuses {
        let rank = ORDER
            .iter()
            .position(|s| *s == status)
            .unwrap_or(ORDER.len());
        *counts.entry((rank, status.to_owned())).or_default() += 1;
    }
    counts
        .into_iter()
        .map(|((_, status), n)| (status, n))
        .collect()
}

/// Whether a request status is final.
pub fn is_final(status: &str) -> bool {
    matches!(
        status,
        "expired" | "revoked" | "rejected" | "canceled" | "failed"
    )
}

/// What the policy will do with a request, said before it is sent.
pub fn policy_outcome(
    minutes: u32,
    auto_max: u32,
    max: u32,
    only_self: bool,
    auto_others: bool,
) -> Result<&'static str, String> {
    if minutes > max {
        return Err(format!(
            "this environment allows at most {}",
            human_minutes(max)
        ));
    }
    if minutes <= auto_max && (only_self || auto_others) {
        Ok("granted at once")
    } else {
        Ok("needs an approver")
    }
}

/// Splits "bob, carol  dave" into user ids.
pub fn split_ids(value: &str) -> Vec<String> {
    value
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `2026-12-03T19:05:00Z` → `2026-12-03 19:05 UTC`.
pub fn when(at: &DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(duration_minutes("1", "30"), Ok(90));
        assert_eq!(duration_minutes("", "45"), Ok(45));
        assert_eq!(duration_minutes("2", ""), Ok(120));
        assert!(duration_minutes("0", "0").is_err());
        assert!(duration_minutes("1", "60").is_err());
        assert!(duration_minutes("x", "1").is_err());
        assert!(duration_minutes("-1", "1").is_err());
        assert!(duration_minutes("99999999", "0").is_err());
    }

    #[test]
    fn human_text() {
        assert_eq!(human_minutes(45), "45 min");
        assert_eq!(human_minutes(120), "2 h");
        assert_eq!(human_minutes(90), "1 h 30 min");
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        assert_eq!(
            countdown(t("2026-01-01T10:00:00Z"), t("2026-01-01T11:02:03Z")),
            "1:02:03"
        );
        assert_eq!(
            countdown(t("2026-01-01T10:00:00Z"), t("2026-01-01T09:00:00Z")),
            "ended"
        );
        assert_eq!(when(&t("2026-12-03T19:05:00Z")), "2026-12-03 19:05 UTC");
    }

    #[test]
    fn statuses() {
        assert_eq!(status_label("pending_approval").0, "Pending approval");
        assert_eq!(status_label("remove_failed").1, "st-bad");
        assert_eq!(status_label("refused").0, "Not granted");
        assert_eq!(status_label("nonsense").0, "Unknown");
        assert!(is_final("expired") && !is_final("active"));
    }

    #[test]
    fn policy_is_explained_before_sending() {
        assert_eq!(
            policy_outcome(60, 240, 480, true, false),
            Ok("granted at once")
        );
        assert_eq!(
            policy_outcome(60, 240, 480, false, false),
            Ok("needs an approver")
        );
        assert_eq!(
            policy_outcome(60, 240, 480, false, true),
            Ok("granted at once")
        );
        assert_eq!(
            policy_outcome(300, 240, 480, true, false),
            Ok("needs an approver")
        );
        assert!(policy_outcome(500, 240, 480, true, false).is_err());
    }

    #[test]
    fn grants_are_tallied_most_urgent_first() {
        assert_eq!(
            grant_tally(["active", "failed", "active", "remove_failed"]),
            vec![
                ("remove_failed".to_owned(), 1),
                ("failed".to_owned(), 1),
                ("active".to_owned(), 2)
            ]
        );
        assert!(grant_tally([]).is_empty());
    }

    #[test]
    fn ids_split() {
        assert_eq!(split_ids("bob, carol  dave,"), vec!["bob", "carol", "dave"]);
        assert!(split_ids("  ").is_empty());
    }
}

//! Event type filters of subscriptions: exact names or `prefix.*` wildcards.

/// Whether `event_type` passes a list of filters; an empty list passes everything.
pub fn matches_any(filters: &[String], event_type: &str) -> bool {
    filters.is_empty() || filters.iter().any(|f| matches(f, event_type))
}

/// `*` matches everything; `issues.*` matches `issues.opened` and `issues.labeled.x` but not
/// `issues` itself nor `issuesx.y`; anything else must be equal.
pub fn matches(filter: &str, event_type: &str) -> bool {
    if filter == "*" {
        return true;
    }
    match filter.strip_suffix(".*") {
        Some(prefix) => event_type
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.len() > 1 && rest.starts_with('.')),
        None => filter == event_type,
    }
}

/// A filter is a non-empty name without wildcards other than a trailing `.*` (or `*` alone).
pub fn is_valid_filter(filter: &str) -> bool {
    if filter == "*" {
        return true;
    }
    let name = filter.strip_suffix(".*").unwrap_or(filter);
    !name.is_empty() && !name.contains('*') && !name.chars().any(char::is_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn exact_and_wildcards() {
        assert!(matches("push", "push"));
        assert!(!matches("push", "pushed"));
        assert!(matches("issues.*", "issues.opened"));
        assert!(matches("issues.*", "issues.labeled.extra"));
        assert!(!matches("issues.*", "issues"));
        assert!(!matches("issues.*", "issues."));
        assert!(!matches("issues.*", "issuesx.opened"));
        assert!(matches("*", "anything"));
    }

    #[test]
    fn lists() {
        assert!(matches_any(&[], "x"));
        assert!(matches_any(&v(&["push", "issues.*"]), "issues.closed"));
        assert!(!matches_any(
            &v(&["push", "issues.*"]),
            "pull_request.opened"
        ));
    }

    #[test]
    fn validity() {
        assert!(is_valid_filter("push"));
        assert!(is_valid_filter("a.b.*"));
        assert!(is_valid_filter("*"));
        assert!(!is_valid_filter(""));
        assert!(!is_valid_filter(".*"));
        assert!(!is_valid_filter("a*b"));
        assert!(!is_valid_filter("a b"));
    }
}

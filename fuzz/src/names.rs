//! Identifiers and capability patterns: what parses re-parses to itself, survives JSON, and
//! means what `docs/auth.md` says it means.

use waas_protocol::names::{channel_subject, MAX_APP_ID_LEN, MAX_CHANNEL_LEN};
use waas_protocol::rpc::{check_path, split_query, PathPrefix, ServiceName};
use waas_protocol::{AppId, ChannelName, ChannelPattern, PatternSet};

/// Characters a channel segment may hold (`names.rs`); also what NATS accepts in a subject token.
fn channel_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_-:@=+,;!~#/".contains(c)
}

/// A channel name, if `s` is one, with its invariants checked.
pub fn channel(s: &str) -> Option<ChannelName> {
    let c = ChannelName::parse(s).ok()?;
    assert_eq!(c.as_str(), s);
    assert_eq!(c.to_string(), s);
    assert!(!s.is_empty() && s.len() <= MAX_CHANNEL_LEN);
    let segments: Vec<&str> = c.segments().collect();
    assert_eq!(segments.join("."), s);
    for seg in &segments {
        assert!(!seg.is_empty(), "empty segment in {s:?}");
        assert!(seg.chars().all(channel_char), "bad char in {s:?}");
    }
    assert_eq!(ChannelName::parse(c.as_str()).as_ref(), Ok(&c));
    let json = serde_json::to_string(&c).expect("a name serialises");
    assert_eq!(
        serde_json::from_str::<ChannelName>(&json).ok().as_ref(),
        Some(&c)
    );
    // A channel name is also a literal pattern, and that pattern matches the channel alone.
    let literal = ChannelPattern::parse(s).expect("a channel name is a valid pattern");
    assert!(literal.matches(&c));
    // Its bus subject has exactly the channel's segments after prefix and app: nothing in a
    // name can add or merge subject tokens.
    let app = AppId::parse("app").expect("valid app id");
    let subject = channel_subject("waas", &app, &c);
    assert_eq!(subject.split('.').count(), 2 + segments.len());
    Some(c)
}

/// An app id, if `s` is one, with its invariants checked.
pub fn app_id(s: &str) -> Option<AppId> {
    let a = AppId::parse(s).ok()?;
    assert_eq!(a.as_str(), s);
    assert!(!s.is_empty() && s.len() <= MAX_APP_ID_LEN);
    assert!(s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'));
    assert_eq!(AppId::parse(a.as_str()).as_ref(), Ok(&a));
    let json = serde_json::to_string(&a).expect("an app id serialises");
    assert_eq!(serde_json::from_str::<AppId>(&json).ok().as_ref(), Some(&a));
    // An app id is one subject token, so it is a one-segment channel name too.
    assert!(ChannelName::parse(s).is_ok(), "{s:?}");
    Some(a)
}

/// A service name, if `s` is one, with its invariants checked.
pub fn service(s: &str) -> Option<ServiceName> {
    let n = ServiceName::parse(s).ok()?;
    assert_eq!(n.as_str(), s);
    assert_eq!(ServiceName::parse(n.as_str()).as_ref(), Ok(&n));
    // Services are one bus subject token, exactly as app ids are.
    assert!(AppId::parse(s).is_ok(), "{s:?}");
    Some(n)
}

/// A capability pattern, if `s` is one, with its invariants checked.
pub fn pattern(s: &str) -> Option<ChannelPattern> {
    let p = ChannelPattern::parse(s).ok()?;
    assert_eq!(p.as_str(), s);
    assert_eq!(ChannelPattern::parse(p.as_str()).as_ref(), Ok(&p));
    let json = serde_json::to_string(&p).expect("a pattern serialises");
    assert_eq!(
        serde_json::from_str::<ChannelPattern>(&json).ok().as_ref(),
        Some(&p)
    );
    let segments: Vec<&str> = s.split('.').collect();
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            "*" => {}
            ">" => assert_eq!(i + 1, segments.len(), "'>' not last in {s:?}"),
            lit => assert!(lit.chars().all(channel_char), "bad literal in {s:?}"),
        }
    }
    // Without wildcards a pattern is a channel name and matches only that channel.
    if !segments.iter().any(|s| *s == "*" || *s == ">") {
        let c = ChannelName::parse(s).expect("a wildcard-free pattern is a channel name");
        assert!(p.matches(&c));
    }
    // Every wildcard replaced by a literal segment gives a channel the pattern matches.
    let instance: Vec<&str> = segments
        .iter()
        .map(|s| if *s == "*" || *s == ">" { "x" } else { s })
        .collect();
    if let Ok(c) = ChannelName::parse(&instance.join(".")) {
        assert!(p.matches(&c), "{s:?} does not match its instance {c}");
    }
    Some(p)
}

/// NATS subject matching from its definition: `*` is one token, `>` (last) one or more.
pub fn reference_match(pattern: &str, channel: &str) -> bool {
    let p: Vec<&str> = pattern.split('.').collect();
    let c: Vec<&str> = channel.split('.').collect();
    fn go(p: &[&str], c: &[&str]) -> bool {
        match (p.split_first(), c.split_first()) {
            (None, None) => true,
            (Some((&">", [])), _) => !c.is_empty(),
            (Some((&"*", p)), Some((_, c))) => go(p, c),
            (Some((lit, p)), Some((seg, c))) => lit == seg && go(p, c),
            _ => false,
        }
    }
    go(&p, &c)
}

/// Patterns (all lines but the last) and a channel (the last line): matching agrees with the
/// reference, and a set of patterns allows exactly what one of its patterns matches.
pub fn pattern_match(text: &str) {
    let lines: Vec<&str> = text.split('\n').collect();
    let Some((chan, pats)) = lines.split_last() else {
        return;
    };
    let Some(c) = channel(chan) else { return };
    let parsed: Vec<ChannelPattern> = pats.iter().filter_map(|p| pattern(p)).collect();
    let mut any = false;
    for p in &parsed {
        let m = p.matches(&c);
        assert_eq!(m, reference_match(p.as_str(), c.as_str()), "{p:?} vs {c}");
        any |= m;
    }
    let set = PatternSet::new(parsed);
    assert_eq!(set.allows(&c), any);
    // The set as a token carries it (a JSON list) allows the same.
    let json = serde_json::to_string(&set).expect("a set serialises");
    let again: PatternSet = serde_json::from_str(&json).expect("a set re-parses");
    assert_eq!(again.allows(&c), any);
}

/// A request path, as `request` frames carry it: one that passes the check cannot climb out of
/// a prefix, and is matched by the prefix made of its own path part.
pub fn path(s: &str) {
    if check_path(s).is_err() {
        return;
    }
    let (p, _) = split_query(s);
    assert!(p.starts_with('/'));
    for seg in p.split('/').skip(1) {
        let decoded = seg.to_ascii_lowercase().replace("%2e", ".");
        assert!(decoded != "." && decoded != "..", "{s:?}");
        assert!(!seg.is_empty() || p == "/", "{s:?}");
    }
    let own = PathPrefix::parse(p).expect("the path part of a valid path is a valid prefix");
    assert!(own.matches(s), "{s:?}");
    assert!(PathPrefix::parse("/").expect("root").matches(s));
}

/// Every identifier check over one string.
pub fn all(s: &str) {
    channel(s);
    app_id(s);
    service(s);
    pattern(s);
    path(s);
    if let Ok(prefix) = PathPrefix::parse(s) {
        assert_eq!(prefix.as_str(), s);
        assert!(prefix.matches(s));
        assert!(check_path(s).is_ok(), "a prefix is a valid path: {s:?}");
    }
}

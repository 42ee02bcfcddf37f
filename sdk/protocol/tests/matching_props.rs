//! Property tests of capability matching: channel patterns against a reference implementation of
//! the NATS wildcard rules `docs/auth.md` promises (`*` one segment, `>` one or more trailing
//! segments), literal patterns, pattern sets as unions, and `caps.call` path prefixes.
//!
//! Segments come from a tiny alphabet so that random patterns and channels collide often enough
//! for "matches" to be tested as much as "does not match". The case count is kept modest so that
//! `cargo test --workspace` stays fast; `PROPTEST_CASES` raises it for a longer run.

use proptest::prelude::*;
use waas_protocol::pattern::PatternError;
use waas_protocol::{Caps, ChannelName, ChannelPattern, PathPrefix, PatternSet};

/// One element of a pattern as the reference implementation sees it.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Lit(String),
    One,
    Rest,
}

/// NATS subject matching, written as directly as possible from its definition.
fn reference(pattern: &[Tok], channel: &[String]) -> bool {
    match (pattern.split_first(), channel.split_first()) {
        (None, None) => true,
        (None, Some(_)) => false,
        (Some((Tok::Rest, rest)), _) => {
            assert!(rest.is_empty(), "'>' is only generated last");
            !channel.is_empty()
        }
        (Some(_), None) => false,
        (Some((Tok::One, p)), Some((_, c))) => reference(p, c),
        (Some((Tok::Lit(l), p)), Some((s, c))) => l == s && reference(p, c),
    }
}

fn render(pattern: &[Tok]) -> String {
    pattern
        .iter()
        .map(|t| match t {
            Tok::Lit(l) => l.as_str(),
            Tok::One => "*",
            Tok::Rest => ">",
        })
        .collect::<Vec<_>>()
        .join(".")
}

fn config() -> ProptestConfig {
    ProptestConfig {
        // Overridden by PROPTEST_CASES when set.
        cases: 256,
        // A failure prints its minimal input; no regression files appear in the tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A channel segment: few distinct values (collisions), plus some of the punctuation allowed.
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[ab]{1,2}",
        1 => "[a-z0-9_:@=+,;!~#/-]{1,3}",
    ]
}

fn channel() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(segment(), 1..6)
}

fn pattern() -> impl Strategy<Value = Vec<Tok>> {
    let tok = prop_oneof![3 => segment().prop_map(Tok::Lit), 1 => Just(Tok::One)];
    (prop::collection::vec(tok, 0..6), any::<bool>()).prop_map(|(mut toks, rest)| {
        if rest || toks.is_empty() {
            toks.push(Tok::Rest);
        }
        toks
    })
}

/// A pattern derived from `channel` so that it matches it: some segments become `*`, and the
/// tail after some point may become `>`.
fn matching_pattern() -> impl Strategy<Value = (Vec<String>, Vec<Tok>)> {
    channel().prop_flat_map(|ch| {
        let n = ch.len();
        (
            Just(ch),
            prop::collection::vec(any::<bool>(), n),
            0..=n, // cut: `>` replaces segments from here on when cut < n
        )
            .prop_map(|(ch, stars, cut)| {
                let mut p: Vec<Tok> = ch
                    .iter()
                    .zip(&stars)
                    .take(cut)
                    .map(|(s, star)| if *star { Tok::One } else { Tok::Lit(s.clone()) })
                    .collect();
                if cut < ch.len() {
                    p.push(Tok::Rest);
                }
                (ch, p)
            })
    })
}

fn chan(segments: &[String]) -> ChannelName {
    ChannelName::parse(&segments.join(".")).expect("generated channels are valid")
}

fn pat(tokens: &[Tok]) -> ChannelPattern {
    ChannelPattern::parse(&render(tokens)).expect("generated patterns are valid")
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn pattern_matches_iff_reference_does(p in pattern(), c in channel()) {
        prop_assert_eq!(pat(&p).matches(&chan(&c)), reference(&p, &c), "{} vs {}", render(&p), c.join("."));
    }

    #[test]
    fn wildcarded_channel_matches_itself((c, p) in matching_pattern()) {
        prop_assert!(reference(&p, &c));
        prop_assert!(pat(&p).matches(&chan(&c)), "{} vs {}", render(&p), c.join("."));
    }

    #[test]
    fn literal_pattern_matches_only_itself(a in channel(), b in channel()) {
        let literal = ChannelPattern::parse(&a.join(".")).unwrap();
        prop_assert!(literal.matches(&chan(&a)));
        prop_assert_eq!(literal.matches(&chan(&b)), a == b);
    }

    #[test]
    fn pattern_parses_to_itself(p in pattern()) {
        let parsed = pat(&p);
        prop_assert_eq!(parsed.as_str(), render(&p));
        prop_assert_eq!(ChannelPattern::parse(parsed.as_str()).unwrap(), parsed.clone());
        let json = serde_json::to_string(&parsed).unwrap();
        prop_assert_eq!(serde_json::from_str::<ChannelPattern>(&json).unwrap(), parsed);
    }

    #[test]
    fn misplaced_wildcards_are_refused(p in pattern(), c in channel(), glue in "[ab]{0,2}") {
        // `>` followed by anything is refused, whatever came before.
        let mut inside: Vec<Tok> = p.iter().filter(|t| **t != Tok::Rest).cloned().collect();
        inside.push(Tok::Rest);
        inside.push(Tok::Lit("x".into()));
        prop_assert_eq!(ChannelPattern::parse(&render(&inside)), Err(PatternError::RestNotLast));
        // A wildcard glued to other characters in one segment is refused.
        let partial = format!("{}.{glue}*{glue}x", c.join("."));
        prop_assert_eq!(ChannelPattern::parse(&partial), Err(PatternError::PartialWildcard));
        // Wildcards are never valid in channel names; wildcard-free patterns are channel names.
        let wild = p.iter().any(|t| !matches!(t, Tok::Lit(_)));
        prop_assert_eq!(ChannelName::parse(&render(&p)).is_err(), wild);
    }

    #[test]
    fn a_set_grants_exactly_the_union(
        a in prop::collection::vec(pattern(), 0..4),
        b in prop::collection::vec(pattern(), 0..4),
        c in channel(),
    ) {
        let set = |ps: &[Vec<Tok>]| PatternSet::new(ps.iter().map(|p| pat(p)).collect());
        let both: Vec<Vec<Tok>> = a.iter().chain(&b).cloned().collect();
        let want = both.iter().any(|p| reference(p, &c));
        let channel = chan(&c);
        prop_assert_eq!(set(&both).allows(&channel), want);
        prop_assert_eq!(
            set(&both).allows(&channel),
            set(&a).allows(&channel) || set(&b).allows(&channel)
        );
        if both.is_empty() {
            prop_assert!(!set(&both).allows(&channel));
        }
    }

    /// Capabilities as a token carries them (JSON in the claims) grant what their patterns do:
    /// subscribe, publish and share each exactly the union of their own patterns, nothing of
    /// the others'.
    #[test]
    fn caps_from_json_grant_each_list_separately(
        sub in prop::collection::vec(pattern(), 0..3),
        publ in prop::collection::vec(pattern(), 0..3),
        c in channel(),
    ) {
        let list = |ps: &[Vec<Tok>]| ps.iter().map(|p| render(p)).collect::<Vec<_>>();
        let json = serde_json::json!({ "subscribe": list(&sub), "publish": list(&publ) });
        let caps: Caps = serde_json::from_value(json).unwrap();
        let channel = chan(&c);
        prop_assert_eq!(caps.subscribe.allows(&channel), sub.iter().any(|p| reference(p, &c)));
        prop_assert_eq!(caps.publish.allows(&channel), publ.iter().any(|p| reference(p, &c)));
        prop_assert!(!caps.share.allows(&channel));
        let again: Caps = serde_json::from_str(&serde_json::to_string(&caps).unwrap()).unwrap();
        prop_assert_eq!(again, caps);
    }

    /// `caps.call` prefixes match a path iff the prefix's segments are the path's first segments
    /// (`/` matches every path); the query string never counts.
    #[test]
    fn path_prefix_matches_on_segment_boundaries(
        prefix in prop::collection::vec("[ab]{1,2}", 0..4),
        path in prop::collection::vec("[ab]{1,2}", 0..5),
        query in prop::option::of("[ab=&]{0,4}"),
    ) {
        let p = PathPrefix::parse(&format!("/{}", prefix.join("/"))).unwrap();
        let mut text = format!("/{}", path.join("/"));
        if let Some(q) = &query {
            text.push('?');
            text.push_str(q);
        }
        let want = path.len() >= prefix.len() && path[..prefix.len()] == prefix[..];
        prop_assert_eq!(p.matches(&text), want, "{} vs {}", p, text);
        prop_assert!(waas_protocol::rpc::check_path(&text).is_ok());
    }
}

//! Which `VotingService` RPC counts a vote for which shortcode: the public
//! proto has one `Vote<Name>` method per emoji (`:doughnut:` is
//! `VoteDoughnut`, `:point_up_2:` is `VotePointUp2`, `:100:` is `Vote100`).
//!
//! The name is derived, not tabled: strip the colons, split at `_`, and
//! capitalise each part. The proto also has `VoteRelaxed`, for an emoji the
//! catalogue no longer lists; it stays callable so clients of the public
//! proto see every method they know.

use crate::emoji;

/// Votable although not in the catalogue (the public proto keeps its RPC).
const UNLISTED: [&str; 1] = [":relaxed:"];

/// The RPC method name for a shortcode: `:doughnut:` → `VoteDoughnut`.
/// `None` for text that is not a `:shortcode:`.
pub fn method_for(shortcode: &str) -> Option<String> {
    let inner = shortcode.strip_prefix(':')?.strip_suffix(':')?;
    if inner.is_empty()
        || !inner
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return None;
    }
    let mut name = String::from("Vote");
    for part in inner.split('_') {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            name.push(first.to_ascii_uppercase());
            name.extend(chars);
        }
    }
    Some(name)
}

/// Every shortcode a vote can be cast for: the catalogue, then the
/// unlisted ones.
pub fn votable() -> impl Iterator<Item = &'static str> {
    emoji::ALL
        .iter()
        .map(|e| e.shortcode)
        .chain(UNLISTED.iter().copied())
}

/// The shortcode that the RPC method `method` votes for, if it is one of
/// the proto's `Vote<Name>` methods.
pub fn shortcode_for(method: &str) -> Option<&'static str> {
    // A linear scan of about 100 names, each built on the fly: a vote is
    // rare enough (one a second from the bot) that a table is not worth it.
    method
        .starts_with("Vote")
        .then(|| votable().find(|s| method_for(s).as_deref() == Some(method)))
        .flatten()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn names_as_in_the_public_proto() {
        for (shortcode, method) in [
            (":doughnut:", "VoteDoughnut"),
            (":poop:", "VotePoop"),
            (
                ":stuck_out_tongue_winking_eye:",
                "VoteStuckOutTongueWinkingEye",
            ),
            (":point_up_2:", "VotePointUp2"),
            (":cat2:", "VoteCat2"),
            (":100:", "Vote100"),
            (":jack_o_lantern:", "VoteJackOLantern"),
            (":thumbsup:", "VoteThumbsup"),
            (":relaxed:", "VoteRelaxed"),
        ] {
            assert_eq!(method_for(shortcode).as_deref(), Some(method));
            assert_eq!(shortcode_for(method), Some(shortcode));
        }
    }

    #[test]
    fn not_shortcodes() {
        for text in [
            "",
            "::",
            "doughnut",
            ":doughnut",
            ":Doughnut:",
            ":a b:",
            ":é:",
        ] {
            assert_eq!(method_for(text), None, "{text:?}");
        }
        for method in [
            "Results",
            "Vote",
            "VoteDonut",
            "voteDoughnut",
            "VoteDoughnut2",
        ] {
            assert_eq!(shortcode_for(method), None, "{method:?}");
        }
    }

    #[test]
    fn one_method_per_votable_shortcode() {
        let methods: HashSet<String> = votable().filter_map(method_for).collect();
        assert_eq!(methods.len(), emoji::ALL.len() + UNLISTED.len());
        assert!(!methods.contains("VoteResults"));
    }
}

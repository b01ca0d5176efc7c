//! The JSON the web API answers with, shaped as the sample's web does:
//! keys in the order Go writes them (sorted), and `votes` as a string.

use serde::Serialize;

use crate::proto;

/// An entry of `/api/list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listed {
    pub shortcode: String,
    pub unicode: String,
}

/// An entry of `/api/leaderboard`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ranked {
    pub shortcode: String,
    pub unicode: String,
    /// A string, as the sample sends it (`"votes": "3"`).
    pub votes: String,
}

/// The body of every error answer: `{"error": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorBody {
    pub error: String,
}

pub fn listed(list: Vec<proto::Emoji>) -> Vec<Listed> {
    list.into_iter()
        .map(|e| Listed {
            shortcode: e.shortcode,
            unicode: e.unicode,
        })
        .collect()
}

/// The leaderboard: voting-svc's results in its order (most votes first),
/// each with its emoji from the catalogue `list`. A shortcode the
/// catalogue lacks (`:relaxed:` voted over gRPC) keeps an empty unicode.
pub fn ranked(results: Vec<proto::VotingResult>, list: &[proto::Emoji]) -> Vec<Ranked> {
    results
        .into_iter()
        .map(|r| {
            let unicode = list
                .iter()
                .find(|e| e.shortcode == r.shortcode)
                .map(|e| e.unicode.clone())
                .unwrap_or_default();
            Ranked {
                shortcode: r.shortcode,
                unicode,
                votes: r.votes.to_string(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emoji(shortcode: &str, unicode: &str) -> proto::Emoji {
        proto::Emoji {
            shortcode: shortcode.into(),
            unicode: unicode.into(),
        }
    }

    #[test]
    fn list_json() {
        let json = serde_json::to_string(&listed(vec![emoji(":joy:", "J")])).expect("json");
        assert_eq!(json, r#"[{"shortcode":":joy:","unicode":"J"}]"#);
    }

    #[test]
    fn leaderboard_json() {
        let results = vec![
            proto::VotingResult {
                shortcode: ":joy:".into(),
                votes: 3,
            },
            proto::VotingResult {
                shortcode: ":relaxed:".into(),
                votes: 1,
            },
        ];
        let board = ranked(results, &[emoji(":beer:", "B"), emoji(":joy:", "J")]);
        let json = serde_json::to_string(&board).expect("json");
        assert_eq!(
            json,
            r#"[{"shortcode":":joy:","unicode":"J","votes":"3"},{"shortcode":":relaxed:","unicode":"","votes":"1"}]"#
        );
    }
}

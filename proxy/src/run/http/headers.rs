//! Hop-by-hop header fields (RFC 9110 §7.6.1): they describe one connection,
//! so a proxy removes them before forwarding a message onto another.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Header fields that are hop-by-hop whatever `Connection` says.
const ALWAYS_HOP_BY_HOP: [HeaderName; 4] = [
    header::CONNECTION,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::TE,
];

/// Removes `Connection` and the fields it names, `Keep-Alive`,
/// `Proxy-Connection`, `Transfer-Encoding`, `Upgrade`, and `TE` unless it
/// asks for trailers (gRPC needs `TE: trailers` end to end).
///
/// `Proxy-Authenticate`/`Proxy-Authorization` stay: RFC 9110 makes them
/// end to end, and an application may talk to its own forward proxy
/// through the mesh.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Runs twice per request: one pass over the names settles the common
    // cases (no hop-by-hop field, or only gRPC's `TE: trailers`) without a
    // lookup or an allocation.
    let mut te = false;
    let mut others = false;
    for name in headers.keys() {
        if name == header::TE {
            te = true;
        } else if is_hop_by_hop(name) {
            others = true;
        }
    }
    if !others && (!te || te_is_exactly_trailers(headers)) {
        return;
    }
    let named: Vec<HeaderName> = connection_tokens(headers)
        .filter_map(|token| HeaderName::from_bytes(token.as_bytes()).ok())
        .collect();
    let wants_trailers = te
        && headers
            .get_all(header::TE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| {
                t.split(';')
                    .next()
                    .is_some_and(|t| t.trim().eq_ignore_ascii_case("trailers"))
            });
    for name in named.iter().chain(ALWAYS_HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
    if wants_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
}

/// A hop-by-hop field other than `TE`.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    name == header::CONNECTION
        || name == header::TRANSFER_ENCODING
        || name == header::UPGRADE
        || name == "keep-alive"
        || name == "proxy-connection"
}

/// `TE` is present once, with exactly the value that is kept as it is.
fn te_is_exactly_trailers(headers: &HeaderMap) -> bool {
    let mut values = headers.get_all(header::TE).iter();
    matches!((values.next(), values.next()), (Some(v), None) if v.as_bytes() == b"trailers")
}

/// The `Upgrade` value of a message that asks to switch protocols
/// (`Connection: upgrade` and an `Upgrade` field), e.g. `websocket`.
pub fn upgrade_protocol(headers: &HeaderMap) -> Option<HeaderValue> {
    // Asked of every HTTP/1 message; scanning the few names is cheaper than
    // the hash lookup when, as usual, there is no `Connection` field.
    if !headers.keys().any(|name| name == header::CONNECTION) {
        return None;
    }
    let asks = connection_tokens(headers).any(|t| t.eq_ignore_ascii_case("upgrade"));
    if asks {
        headers.get(header::UPGRADE).cloned()
    } else {
        None
    }
}

/// Puts back the two fields an upgrade needs after [`strip_hop_by_hop`].
pub fn restore_upgrade(headers: &mut HeaderMap, protocol: HeaderValue) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, protocol);
}

/// The comma-separated tokens of every `Connection` field, trimmed (header
/// names compare case-insensitively; `HeaderName::from_bytes` lowercases).
fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> + '_ {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        map
    }

    #[test]
    fn removes_fixed_and_named_fields() {
        let mut map = headers(&[
            ("connection", "close, X-Hop"),
            ("connection", "x-other"),
            ("x-hop", "1"),
            ("x-other", "2"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("te", "gzip"),
            ("x-end-to-end", "kept"),
            ("host", "web"),
        ]);
        strip_hop_by_hop(&mut map);
        let mut left: Vec<&str> = map.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["host", "x-end-to-end"]);
    }

    #[test]
    fn end_to_end_fields_and_grpc_te_are_left_alone() {
        for pairs in [
            &[
                ("host", "web"),
                ("content-type", "text/plain"),
                ("x-a", "1"),
            ][..],
            &[("content-type", "application/grpc"), ("te", "trailers")][..],
        ] {
            let mut map = headers(pairs);
            let before = map.clone();
            strip_hop_by_hop(&mut map);
            assert_eq!(map, before);
        }
    }

    #[test]
    fn te_trailers_stays_beside_other_hop_by_hop_fields() {
        let mut map = headers(&[
            ("te", "trailers"),
            ("connection", "keep-alive"),
            ("keep-alive", "timeout=5"),
            ("Proxy-Connection", "keep-alive"),
        ]);
        strip_hop_by_hop(&mut map);
        let left: Vec<&str> = map.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["te"]);
        assert_eq!(
            map.get(header::TE),
            Some(&HeaderValue::from_static("trailers"))
        );
    }

    #[test]
    fn keeps_te_trailers() {
        let mut map = headers(&[("te", "trailers, deflate;q=0.5")]);
        strip_hop_by_hop(&mut map);
        assert_eq!(
            map.get(header::TE),
            Some(&HeaderValue::from_static("trailers"))
        );
    }

    #[test]
    fn upgrade_needs_both_fields() {
        let ws = headers(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
        ]);
        assert_eq!(
            upgrade_protocol(&ws),
            Some(HeaderValue::from_static("websocket"))
        );
        assert_eq!(
            upgrade_protocol(&headers(&[("upgrade", "websocket")])),
            None
        );
        assert_eq!(
            upgrade_protocol(&headers(&[("connection", "upgrade")])),
            None
        );

        let mut map = ws.clone();
        strip_hop_by_hop(&mut map);
        restore_upgrade(&mut map, HeaderValue::from_static("websocket"));
        assert_eq!(
            map.get(header::CONNECTION),
            Some(&HeaderValue::from_static("upgrade"))
        );
        assert_eq!(
            map.get(header::UPGRADE),
            Some(&HeaderValue::from_static("websocket"))
        );
    }
}

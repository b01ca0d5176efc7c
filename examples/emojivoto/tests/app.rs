//! The three servers in-process on loopback, driven over real HTTP/1.1 and
//! HTTP/2: web's API through both gRPC services, the doughnut failure, and
//! gRPC errors on the wire.

mod support;

use std::time::Duration;

use http::Method;
use tokio::time::Instant;
use weft_emojivoto::proto::{FindByShortcodeRequest, ListAllEmojiResponse, Message};

use support::{App, H2, get, http1};

const LIST_ALL: &str = "/emojivoto.v1.EmojiService/ListAll";
const FIND: &str = "/emojivoto.v1.EmojiService/FindByShortcode";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_lists_votes_and_ranks() {
    let app = App::start().await;
    let web = app.web.addr;

    let list = get(web, "/api/list").await;
    assert_eq!(list.status, 200, "{list:?}");
    assert_eq!(
        list.headers["content-type"],
        "application/json; charset=UTF-8"
    );
    let list = list.json();
    let list = list.as_array().expect("a JSON array");
    assert_eq!(list.len(), 99);
    assert_eq!(
        list[2],
        serde_json::json!({"shortcode": ":doughnut:", "unicode": "\u{1F369}"})
    );

    for choice in [":joy:", "%3Ajoy%3A", ":beer:"] {
        let vote = get(web, &format!("/api/vote?choice={choice}")).await;
        assert_eq!(vote.status, 200, "{choice}: {vote:?}");
        assert_eq!(vote.body, "");
    }
    // A form POST counts too, as in the sample (Go's FormValue).
    let vote = http1(
        web,
        Method::POST,
        "/api/vote",
        Some("application/x-www-form-urlencoded"),
        "choice=%3A100%3A",
    )
    .await;
    assert_eq!(vote.status, 200, "{vote:?}");

    let board = get(web, "/api/leaderboard").await;
    assert_eq!(board.status, 200, "{board:?}");
    assert_eq!(
        board.json(),
        serde_json::json!([
            {"shortcode": ":joy:", "unicode": "\u{1F602}", "votes": "2"},
            {"shortcode": ":100:", "unicode": "\u{1F4AF}", "votes": "1"},
            {"shortcode": ":beer:", "unicode": "\u{1F37A}", "votes": "1"},
        ])
    );

    let page = get(web, "/").await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("/api/leaderboard"),
        "the page uses the API"
    );
    assert!(!page.body.contains("https://"), "no external resources");
    assert_eq!(get(web, "/healthz").await.body, "ok\n");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doughnut_votes_fail_with_500_and_grpc_unknown() {
    let app = App::start().await;
    let vote = get(app.web.addr, "/api/vote?choice=:doughnut:").await;
    assert_eq!(vote.status, 500, "{vote:?}");
    let error = vote.json()["error"].as_str().expect("an error").to_string();
    assert_eq!(error, "rpc error: code = Unknown desc = ERROR");

    // The voting service itself: HTTP 200, grpc-status 2 in the trailers.
    let mut h2 = H2::connect(app.voting.addr).await;
    let answer = h2
        .unary("/emojivoto.v1.VotingService/VoteDoughnut", &[])
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.headers["content-type"], "application/grpc");
    assert_eq!(answer.grpc_status(), Some(2), "{answer:?}");
    assert_eq!(answer.grpc_message().as_deref(), Some("ERROR"));
    assert!(answer.data.is_empty());

    // Other votes work on the same connection; doughnut is never counted.
    let answer = h2.unary("/emojivoto.v1.VotingService/VoteJoy", &[]).await;
    assert_eq!(answer.grpc_status(), Some(0));
    assert_eq!(&answer.data[..], [0, 0, 0, 0, 0], "an empty VoteResponse");
    let board = get(app.web.addr, "/api/leaderboard").await.json();
    assert_eq!(board.as_array().map(Vec::len), Some(1), "{board}");
    assert_eq!(board[0]["shortcode"], ":joy:");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_web_requests_are_4xx() {
    let app = App::start().await;
    let web = app.web.addr;
    for (path, status, error) in [
        ("/api/vote", 400, "Emoji choice [] is mandatory"),
        ("/api/vote?choice=", 400, "Emoji choice [] is mandatory"),
        (
            "/api/vote?choice=:nope:",
            400,
            "Chosen emoji shortcode [:nope:] doesn't exist",
        ),
        (
            "/api/vote?choice=%zz",
            400,
            "bad query: bad percent-escape at byte 7",
        ),
        ("/nope", 404, "not found: /nope"),
    ] {
        let answer = get(web, path).await;
        assert_eq!(answer.status, status, "{path}: {answer:?}");
        assert_eq!(answer.json()["error"], error, "{path}");
    }
    let answer = http1(web, Method::DELETE, "/api/list", None, "").await;
    assert_eq!(answer.status, 405);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_methods_are_unimplemented_in_trailers() {
    let app = App::start().await;
    let mut h2 = H2::connect(app.voting.addr).await;
    for path in [
        "/emojivoto.v1.VotingService/VoteNope",
        "/emojivoto.v1.VotingService/ListAll",
        "/emojivoto.v1.EmojiService/ListAll",
        "/nope",
    ] {
        let answer = h2.unary(path, &[]).await;
        assert_eq!(answer.status, 200, "{path}");
        assert!(
            !answer.headers.contains_key("grpc-status"),
            "{path}: the status is in the trailers"
        );
        assert_eq!(answer.grpc_status(), Some(12), "{path}: {answer:?}");
    }
    let answer = h2.unary("/emojivoto.v1.VotingService/Results", &[]).await;
    assert_eq!(answer.grpc_status(), Some(0), "still serving: {answer:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_get_a_status_and_the_connection_keeps_serving() {
    let app = App::start().await;
    let mut h2 = H2::connect(app.emoji.addr).await;
    let find = FindByShortcodeRequest {
        shortcode: ":joy:".into(),
    }
    .encode();
    let mut two_messages = vec![0, 0, 0, 0, find.len() as u8];
    two_messages.extend_from_slice(&find);
    two_messages.extend_from_slice(&two_messages.clone());
    for (what, body, status) in [
        ("empty body", vec![], 13),
        ("short header", vec![0, 0, 0], 13),
        ("length past the end", vec![0, 0, 0, 0, 9, 0x0a], 13),
        ("4 GiB length", vec![0, 0xff, 0xff, 0xff, 0xff, 1, 2, 3], 8),
        ("compressed", vec![1, 0, 0, 0, 0], 13),
        ("bad flag", vec![9, 0, 0, 0, 0], 13),
        ("two messages", two_messages, 13),
        (
            "garbage protobuf",
            vec![0, 0, 0, 0, 3, 0xff, 0xff, 0xff],
            13,
        ),
        ("a group", vec![0, 0, 0, 0, 1, 0x0b], 13),
    ] {
        let answer = h2.call(FIND, "application/grpc", body).await;
        assert_eq!(answer.status, 200, "{what}");
        assert_eq!(answer.grpc_status(), Some(status), "{what}: {answer:?}");
        assert!(answer.grpc_message().is_some(), "{what}: says why");
    }
    let answer = h2.call(FIND, "application/json", vec![]).await;
    assert_eq!(answer.status, 415, "not gRPC");

    // Same connection, still serving.
    let answer = h2.unary(LIST_ALL, &[]).await;
    assert_eq!(answer.grpc_status(), Some(0), "{answer:?}");
    let list = ListAllEmojiResponse::decode(&answer.data[5..]).expect("a ListAll response");
    assert_eq!(list.list.len(), 99);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_endpoints_answer_plain_http1() {
    let app = App::start().await;
    for running in [&app.emoji, &app.voting] {
        let admin = running.admin.expect("an admin port");
        let answer = get(admin, "/healthz").await;
        assert_eq!(
            (answer.status.as_u16(), answer.body.as_str()),
            (200, "ok\n")
        );
        assert_eq!(get(admin, "/other").await.status, 404);
        // The gRPC port answers probes too, over HTTP/1.1.
        assert_eq!(get(running.addr, "/healthz").await.status, 200);
    }
    assert_eq!(get(app.web.addr, "/healthz").await.status, 200);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_fails_fast_without_a_backend_and_reconnects() {
    let grpc = support::loopback().await;
    let port = grpc.local_addr().expect("address");
    let emoji = support::emoji_svc_on(grpc).await;
    let voting = support::voting_svc().await;
    let web = support::web_to(emoji.addr, voting.addr).await;
    assert_eq!(get(web.addr, "/api/list").await.status, 200);

    // emoji-svc gone: 500 at once (connection refused), not a hang.
    emoji.stop().await;
    let started = Instant::now();
    let answer = get(web.addr, "/api/list").await;
    assert_eq!(answer.status, 500, "{answer:?}");
    assert!(
        answer.json()["error"]
            .as_str()
            .is_some_and(|e| e.contains("Unavailable")),
        "{answer:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));

    // Back on the same port: web connects again.
    let listener = tokio::net::TcpListener::bind(port)
        .await
        .expect("the port again");
    let emoji = support::emoji_svc_on(listener).await;
    let mut status = None;
    for _ in 0..20 {
        status = Some(get(web.addr, "/api/list").await.status);
        if status == Some(http::StatusCode::OK) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, Some(http::StatusCode::OK));
    web.stop().await;
    voting.stop().await;
    emoji.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_requests_finish_on_shutdown() {
    let app = App::start().await;
    let mut h2 = H2::connect(app.emoji.addr).await;
    assert_eq!(h2.unary(LIST_ALL, &[]).await.grpc_status(), Some(0));
    // Shutdown with a connection open: the server sends GOAWAY, the idle
    // connection closes, and stop() returns well within the grace.
    let started = Instant::now();
    app.stop().await;
    assert!(started.elapsed() < Duration::from_secs(5));
}

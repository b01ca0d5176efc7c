//! The `emojivoto` command line: one subcommand per part of the app, each
//! flag also read from an environment variable (the sample's names where
//! it has one: `EMOJISVC_HOST`, `VOTINGSVC_HOST`, `INDEX_BUNDLE`,
//! `WEB_HOST`), and the wiring from flags to the servers.
//!
//! Flags are checked by clap before anything starts: a bad value is a
//! usage error (exit 2) naming the flag, never a panic.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use http::uri::Authority;
use tokio::net::TcpListener;

use crate::bot::{self, BotConfig};
use crate::grpc::Channel;
use crate::shutdown;
use crate::vote_load::{self, LoadConfig};
use crate::web::{self, WebConfig};
use crate::{emoji_svc, vote_method, voting_svc};

/// An emojivoto-compatible demo app: two gRPC services, a web front end
/// and a vote bot, in one binary.
#[derive(Debug, Parser)]
#[command(name = "emojivoto", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log filter (tracing's env-filter syntax), e.g. `info` or `debug`.
    #[arg(long, global = true, env = "EMOJIVOTO_LOG", default_value = "info")]
    pub log: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// gRPC emojivoto.v1.EmojiService: ListAll, FindByShortcode.
    EmojiSvc(GrpcArgs),
    /// gRPC emojivoto.v1.VotingService: a Vote RPC per emoji, and Results.
    VotingSvc(GrpcArgs),
    /// The web front end and its JSON API, calling both services.
    Web(WebArgs),
    /// Votes through web's API at a steady rate.
    VoteBot(BotArgs),
    /// Calls voting-svc on a fixed schedule over one HTTP/2 connection and
    /// prints the calls' latency percentiles as one JSON line.
    VoteLoad(LoadArgs),
}

/// Flags of the two gRPC services.
#[derive(Debug, Args)]
pub struct GrpcArgs {
    /// Address of the gRPC port (HTTP/2 without TLS).
    #[arg(long, env = "EMOJIVOTO_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Address of the admin port: GET /healthz over HTTP/1.1.
    #[arg(long, env = "EMOJIVOTO_ADMIN_LISTEN", default_value = "0.0.0.0:8801")]
    pub admin_listen: SocketAddr,
    /// How long SIGTERM waits for calls in flight, e.g. `5s`, `500ms`.
    #[arg(long, env = "EMOJIVOTO_SHUTDOWN_GRACE", default_value = "5s", value_parser = duration)]
    pub shutdown_grace: Duration,
}

#[derive(Debug, Args)]
pub struct WebArgs {
    /// Address of the HTTP port.
    #[arg(long, env = "EMOJIVOTO_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// emoji-svc as host:port (resolved at each connection).
    #[arg(long, env = "EMOJISVC_HOST", value_parser = host_port)]
    pub emoji_addr: Authority,
    /// voting-svc as host:port (resolved at each connection).
    #[arg(long, env = "VOTINGSVC_HOST", value_parser = host_port)]
    pub voting_addr: Authority,
    /// A JavaScript file to serve at /js (the sample's bundle); the page
    /// at / needs none.
    #[arg(long, env = "INDEX_BUNDLE")]
    pub index_bundle: Option<PathBuf>,
    /// Deadline of each gRPC call, connecting included.
    #[arg(long, env = "EMOJIVOTO_RPC_TIMEOUT", default_value = "2s", value_parser = duration)]
    pub rpc_timeout: Duration,
    /// How long SIGTERM waits for requests in flight.
    #[arg(long, env = "EMOJIVOTO_SHUTDOWN_GRACE", default_value = "5s", value_parser = duration)]
    pub shutdown_grace: Duration,
}

#[derive(Debug, Args)]
pub struct BotArgs {
    /// web as host:port (port 80 if left out).
    #[arg(long, env = "WEB_HOST", value_parser = web_host)]
    pub web_host: Authority,
    /// Votes a second (at most 1000).
    #[arg(long, env = "EMOJIVOTO_VOTE_RATE", default_value = "1.0", value_parser = rate)]
    pub rate: f64,
    /// Share of votes for :doughnut:, from 0 to 1.
    #[arg(long, env = "EMOJIVOTO_DOUGHNUT_SHARE", default_value = "0.15", value_parser = share)]
    pub doughnut_share: f64,
    /// Send this many votes and exit (as a Job); without it, vote until
    /// SIGTERM.
    #[arg(long, env = "EMOJIVOTO_VOTE_COUNT")]
    pub count: Option<u64>,
    /// How long one vote may take, connecting included.
    #[arg(long, env = "EMOJIVOTO_VOTE_TIMEOUT", default_value = "5s", value_parser = duration)]
    pub timeout: Duration,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// voting-svc as host:port (resolved at each connection).
    #[arg(long, env = "VOTINGSVC_HOST", value_parser = host_port)]
    pub voting_addr: Authority,
    /// Calls a second, above 0 (at most 100000).
    #[arg(long, env = "EMOJIVOTO_LOAD_RATE", default_value = "100", value_parser = load_rate)]
    pub rate: f64,
    /// How long the measured run lasts, above 0, e.g. `20s`.
    #[arg(long, env = "EMOJIVOTO_LOAD_DURATION", default_value = "20s", value_parser = positive_duration)]
    pub duration: Duration,
    /// An uncounted run at the same rate first (connections made, caches
    /// warm); `0s` for none.
    #[arg(long, env = "EMOJIVOTO_LOAD_WARMUP", default_value = "2s", value_parser = duration)]
    pub warmup: Duration,
    /// The most calls in flight; a call due while this many are waits, and
    /// its wait counts in its latency.
    #[arg(long, env = "EMOJIVOTO_LOAD_CONCURRENCY", default_value = "100", value_parser = concurrency)]
    pub concurrency: usize,
    /// The VotingService method called: one of the proto's `Vote<Name>`
    /// (`VoteDoughnut` always fails).
    #[arg(long, env = "EMOJIVOTO_LOAD_METHOD", default_value = "VoteJoy", value_parser = vote_rpc)]
    pub method: String,
    /// Deadline of each call, connecting included.
    #[arg(long, env = "EMOJIVOTO_RPC_TIMEOUT", default_value = "2s", value_parser = positive_duration)]
    pub timeout: Duration,
    /// How long the first call is retried (voting-svc or the pod's proxy
    /// still starting) before giving up.
    #[arg(long, env = "EMOJIVOTO_LOAD_READY_TIMEOUT", default_value = "30s", value_parser = duration)]
    pub ready_timeout: Duration,
}

/// Why the app could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read --index-bundle {path}: {source}")]
    IndexBundle {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot watch for SIGTERM: {0}")]
    Signals(#[source] std::io::Error),
    #[error("vote-load: {0}")]
    Load(#[from] vote_load::Error),
}

/// Runs the subcommand until it ends or SIGTERM.
pub async fn run(command: Command) -> Result<ExitCode, Error> {
    let shutdown = shutdown::on_signals().map_err(Error::Signals)?;
    match command {
        Command::EmojiSvc(args) => {
            let (grpc, admin) = (bind(args.listen).await?, bind(args.admin_listen).await?);
            emoji_svc::run(grpc, admin, shutdown, args.shutdown_grace).await;
        }
        Command::VotingSvc(args) => {
            let (grpc, admin) = (bind(args.listen).await?, bind(args.admin_listen).await?);
            voting_svc::run(grpc, admin, shutdown, args.shutdown_grace).await;
        }
        Command::Web(args) => {
            let index_bundle = match &args.index_bundle {
                Some(path) => Some(std::fs::read(path).map_err(|source| Error::IndexBundle {
                    path: path.clone(),
                    source,
                })?),
                None => None,
            };
            let config = WebConfig {
                emoji: Channel::new(args.emoji_addr, args.rpc_timeout),
                voting: Channel::new(args.voting_addr, args.rpc_timeout),
                index_bundle: index_bundle.map(Into::into),
            };
            let listener = bind(args.listen).await?;
            web::run(listener, config, shutdown, args.shutdown_grace).await;
        }
        Command::VoteBot(args) => {
            let config = BotConfig {
                web: args.web_host,
                rate: args.rate,
                doughnut_share: args.doughnut_share,
                count: args.count,
                timeout: args.timeout,
            };
            let summary = bot::run(&config, shutdown, &mut std::io::stdout()).await;
            println!("vote-bot: {summary}");
            if !summary.reached_web() {
                eprintln!("vote-bot: no vote reached {}", config.web);
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::VoteLoad(args) => {
            let config = LoadConfig {
                voting: args.voting_addr,
                method: args.method,
                rate: args.rate,
                duration: args.duration,
                warmup: args.warmup,
                concurrency: args.concurrency,
                timeout: args.timeout,
                ready_timeout: args.ready_timeout,
            };
            let report = vote_load::run(&config, shutdown).await?;
            println!("{}", report.to_json());
            if report.sent > 0 && report.succeeded == 0 {
                eprintln!("vote-load: no call to {} succeeded", config.voting);
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Listen { addr, source })
}

/// `5s`, `500ms`, `2m`; a bare number is seconds.
pub fn duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 5s or 500ms"))?;
    let seconds = match unit {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        _ => return Err(format!("{text:?}: unit must be ms, s or m")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("{text:?} is out of range"))
}

/// `host:port`, port required (a Service's port is not guessable).
pub fn host_port(text: &str) -> Result<Authority, String> {
    let authority = authority(text)?;
    if authority.port_u16().is_none() {
        return Err(format!("{text:?} has no port: expected host:port"));
    }
    Ok(authority)
}

/// `host[:port]`, port 80 if left out; an `http://` prefix is accepted.
pub fn web_host(text: &str) -> Result<Authority, String> {
    let text = text.strip_prefix("http://").unwrap_or(text);
    let text = text.strip_suffix('/').unwrap_or(text);
    let authority = authority(text)?;
    if authority.port_u16().is_some() {
        return Ok(authority);
    }
    Authority::from_str(&format!("{}:80", authority.host()))
        .map_err(|err| format!("{text:?}: {err}"))
}

fn authority(text: &str) -> Result<Authority, String> {
    let authority =
        Authority::from_str(text).map_err(|err| format!("{text:?} is not host:port: {err}"))?;
    if authority.host().is_empty() || authority.as_str().contains('@') {
        return Err(format!("{text:?} is not host:port"));
    }
    Ok(authority)
}

/// A rate in votes a second: above 0, at most 1000.
pub fn rate(text: &str) -> Result<f64, String> {
    let rate: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if rate.is_finite() && rate > 0.0 && rate <= 1000.0 {
        Ok(rate)
    } else {
        Err(format!("{text}: the rate must be above 0 and at most 1000"))
    }
}

/// A [`duration`] above zero.
pub fn positive_duration(text: &str) -> Result<Duration, String> {
    match duration(text)? {
        d if d.is_zero() => Err(format!("{text:?}: must be longer than 0")),
        d => Ok(d),
    }
}

/// A load generator's rate in calls a second: above 0, at most 100000.
pub fn load_rate(text: &str) -> Result<f64, String> {
    let rate: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if rate.is_finite() && rate > 0.0 && rate <= 100_000.0 {
        Ok(rate)
    } else {
        Err(format!(
            "{text}: the rate must be above 0 and at most 100000"
        ))
    }
}

/// A number of calls in flight: at least 1.
pub fn concurrency(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("0: at least one call must be allowed in flight".to_string()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{text:?} is not a whole number")),
    }
}

/// A `Vote<Name>` method of the VotingService proto, e.g. `VoteJoy`.
pub fn vote_rpc(text: &str) -> Result<String, String> {
    match vote_method::shortcode_for(text) {
        Some(_) => Ok(text.to_string()),
        None => Err(format!(
            "{text:?} is not a Vote method of emojivoto.v1.VotingService (e.g. VoteJoy)"
        )),
    }
}

/// A share from 0 to 1.
pub fn share(text: &str) -> Result<f64, String> {
    let share: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if (0.0..=1.0).contains(&share) {
        Ok(share)
    } else {
        Err(format!("{text}: the share must be from 0 to 1"))
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations() {
        assert_eq!(duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(duration("0.5s"), Ok(Duration::from_millis(500)));
        for bad in ["", "s", "5h", "-1s", "five", "1e999s"] {
            assert!(duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn addresses() {
        let ok = |a: Result<Authority, String>| a.map(|a| a.to_string());
        assert_eq!(
            ok(host_port("emoji-svc.emojivoto:8080")),
            Ok("emoji-svc.emojivoto:8080".into())
        );
        assert_eq!(ok(host_port("[::1]:8080")), Ok("[::1]:8080".into()));
        assert!(host_port("emoji-svc").is_err(), "port required");
        assert!(host_port("a:b").is_err());
        assert!(host_port("user@host:1").is_err());
        assert!(host_port("").is_err());
        assert_eq!(
            ok(web_host("web-svc.emojivoto")),
            Ok("web-svc.emojivoto:80".into())
        );
        assert_eq!(
            ok(web_host("http://127.0.0.1:9/")),
            Ok("127.0.0.1:9".into())
        );
    }

    #[test]
    fn rates_and_shares() {
        assert_eq!(rate("50"), Ok(50.0));
        for bad in ["0", "-1", "NaN", "inf", "1001", "x"] {
            assert!(rate(bad).is_err(), "{bad}");
        }
        assert_eq!(share("0.15"), Ok(0.15));
        assert_eq!(share("1"), Ok(1.0));
        for bad in ["-0.1", "1.5", "NaN", "x"] {
            assert!(share(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn flags_parse() {
        let cli = Cli::try_parse_from([
            "emojivoto",
            "vote-bot",
            "--web-host",
            "web-svc.emojivoto:80",
            "--count",
            "20",
            "--rate",
            "50",
        ])
        .expect("parses");
        let Command::VoteBot(args) = cli.command else {
            panic!("vote-bot expected");
        };
        assert_eq!(args.count, Some(20));
        assert_eq!(args.doughnut_share, 0.15);
        let err = Cli::try_parse_from(["emojivoto", "vote-bot", "--web-host", "w", "--rate=-3"])
            .expect_err("bad rate");
        assert!(err.to_string().contains("--rate"), "{err}");
    }

    #[test]
    fn vote_load_flags() {
        let parse = |extra: &[&str]| {
            let mut argv = vec![
                "emojivoto",
                "vote-load",
                "--voting-addr",
                "voting-svc.bench:8080",
            ];
            argv.extend_from_slice(extra);
            Cli::try_parse_from(argv)
        };
        let Command::VoteLoad(args) = parse(&[]).expect("defaults").command else {
            panic!("vote-load expected");
        };
        assert_eq!(args.voting_addr.as_str(), "voting-svc.bench:8080");
        assert_eq!((args.rate, args.duration), (100.0, Duration::from_secs(20)));
        assert_eq!((args.method.as_str(), args.concurrency), ("VoteJoy", 100));
        assert_eq!(args.warmup, Duration::from_secs(2));

        let Command::VoteLoad(args) = parse(&[
            "--rate=1000",
            "--duration=500ms",
            "--warmup=0s",
            "--concurrency=4",
            "--method=VotePointUp2",
        ])
        .expect("parses")
        .command
        else {
            panic!("vote-load expected");
        };
        assert_eq!(
            (args.rate, args.duration),
            (1000.0, Duration::from_millis(500))
        );
        assert_eq!((args.warmup, args.concurrency), (Duration::ZERO, 4));
        assert_eq!(args.method, "VotePointUp2");

        for (flag, bad) in [
            ("--rate", "--rate=0"),
            ("--rate", "--rate=-5"),
            ("--rate", "--rate=NaN"),
            ("--duration", "--duration=0s"),
            ("--duration", "--duration=soon"),
            ("--concurrency", "--concurrency=0"),
            ("--method", "--method=Results"),
            ("--method", "--method=VoteDonut"),
            ("--timeout", "--timeout=0ms"),
        ] {
            let err = parse(&[bad]).expect_err(bad);
            assert!(err.to_string().contains(flag), "{bad}: {err}");
        }
        assert!(
            Cli::try_parse_from(["emojivoto", "vote-load"]).is_err(),
            "--voting-addr is required"
        );
    }

    #[test]
    fn load_values() {
        assert_eq!(positive_duration("20s"), Ok(Duration::from_secs(20)));
        assert!(positive_duration("0").is_err());
        assert_eq!(load_rate("1000"), Ok(1000.0));
        assert_eq!(load_rate("0.5"), Ok(0.5));
        for bad in ["0", "-1", "inf", "100001", "x"] {
            assert!(load_rate(bad).is_err(), "{bad}");
        }
        assert_eq!(concurrency("1"), Ok(1));
        assert!(concurrency("0").is_err());
        assert!(concurrency("-1").is_err());
        assert_eq!(vote_rpc("VoteJoy"), Ok("VoteJoy".to_string()));
        assert!(vote_rpc("vote_joy").is_err());
    }
}

//! What every weft server binary (`weft-injector`, `weft-control`) does at
//! start and stop: logging to stderr, the client for the API server from
//! `--kubeconfig`, and waiting for the signal that ends the process.
//!
//! The binaries keep their own flags and wiring; only this shared edge
//! lives here, so both behave the same for an operator.

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

use std::io::IsTerminal as _;

use kube::config::{KubeConfigOptions, Kubeconfig};

/// Why a binary could not start its shared edge.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `--log` is not a tracing filter.
    #[error("invalid --log filter {filter:?}: {source}")]
    LogFilter {
        filter: String,
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    /// A file named by `--kubeconfig` could not be read or merged.
    #[error("cannot read kubeconfig {path}: {source}")]
    Kubeconfig {
        path: String,
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// `--kubeconfig` was given but named no file.
    #[error("--kubeconfig names no file")]
    NoKubeconfig,
    /// Neither in a cluster nor a usable `~/.kube/config`.
    #[error(
        "not in a cluster ({in_cluster}) and no usable ~/.kube/config ({file}); pass --kubeconfig"
    )]
    NoCluster {
        in_cluster: kube::config::InClusterError,
        file: kube::config::KubeconfigError,
    },
    /// The configuration was read but no client could be built from it.
    #[error("cannot build a client for the API server: {0}")]
    Client(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Logs to stderr with `filter` (a tracing filter such as `info` or
/// `warn,weft_injector=debug`); colours only when a person is watching.
pub fn init_logging(filter: &str) -> Result<(), Error> {
    let parsed =
        tracing_subscriber::EnvFilter::try_new(filter).map_err(|source| Error::LogFilter {
            filter: filter.to_owned(),
            source,
        })?;
    tracing_subscriber::fmt()
        .with_env_filter(parsed)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    Ok(())
}

/// A client for the API server: `kubeconfig` (a list of files, merged in
/// order, as `KUBECONFIG` is), else the in-cluster service account, else
/// `~/.kube/config`.
pub async fn kube_client(kubeconfig: Option<&str>) -> Result<kube::Client, Error> {
    let config = kube_config(kubeconfig).await?;
    kube::Client::try_from(config).map_err(|e| Error::Client(Box::new(e)))
}

async fn kube_config(kubeconfig: Option<&str>) -> Result<kube::Config, Error> {
    let options = KubeConfigOptions::default();
    let Some(paths) = kubeconfig.filter(|paths| !paths.is_empty()) else {
        return match kube::Config::incluster() {
            Ok(config) => Ok(config),
            Err(in_cluster) => kube::Config::from_kubeconfig(&options)
                .await
                .map_err(|file| Error::NoCluster { in_cluster, file }),
        };
    };
    let mut merged: Option<Kubeconfig> = None;
    for path in std::env::split_paths(paths) {
        let kubeconfig_error = |source| Error::Kubeconfig {
            path: path.display().to_string(),
            source,
        };
        let file = Kubeconfig::read_from(&path).map_err(kubeconfig_error)?;
        merged = Some(match merged {
            Some(merged) => merged.merge(file).map_err(kubeconfig_error)?,
            None => file,
        });
    }
    let merged = merged.ok_or(Error::NoKubeconfig)?;
    kube::Config::from_custom_kubeconfig(merged, &options)
        .await
        .map_err(|source| Error::Kubeconfig {
            path: paths.to_owned(),
            source,
        })
}

/// Resolves on SIGTERM (the kubelet stopping the pod) or Ctrl-C.
pub async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        () = terminate => tracing::info!("SIGTERM"),
        () = interrupt => tracing::info!("interrupted"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_log_filter_names_the_flag() {
        let err = init_logging("info,[").expect_err("not a filter");
        assert!(err.to_string().starts_with("invalid --log filter"), "{err}");
    }

    #[tokio::test]
    async fn a_missing_kubeconfig_file_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("absent");
        let Err(err) = kube_client(path.to_str()).await else {
            panic!("a client from a file that does not exist");
        };
        assert!(err.to_string().contains("absent"), "{err}");
    }

    #[tokio::test]
    async fn kubeconfig_files_are_merged_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = dir.path().join("a");
        let second = dir.path().join("b");
        let cluster = |name: &str, server: &str| {
            format!(
                "apiVersion: v1\nkind: Config\ncurrent-context: {name}\nclusters:\n- name: {name}\n  cluster:\n    server: {server}\ncontexts:\n- name: {name}\n  context:\n    cluster: {name}\n    user: {name}\nusers:\n- name: {name}\n  user:\n    token: t\n"
            )
        };
        std::fs::write(&first, cluster("one", "https://127.0.0.1:1")).expect("write");
        std::fs::write(&second, cluster("two", "https://127.0.0.1:2")).expect("write");
        let paths = std::env::join_paths([&first, &second]).expect("join");
        let config = kube_config(paths.to_str()).await.expect("merged config");
        // The first file's current-context wins, as kubectl does.
        assert_eq!(config.cluster_url.port_u16(), Some(1));
    }
}

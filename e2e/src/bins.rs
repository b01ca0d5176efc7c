//! Where the cluster's binaries live, and building them when they are missing
//! or stale (`e2e/go/build.sh`, which is a no-op when the pinned versions have
//! not changed), so a test never depends on a preinstalled Kubernetes.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};

/// The folder of the `weft-e2e` crate (`e2e/` in the workspace).
pub fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The workspace root (the folder above `e2e/`).
pub fn workspace_root() -> PathBuf {
    crate_dir()
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| crate_dir().to_path_buf())
}

/// Paths of the programs the local cluster runs.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// The etcd server.
    pub etcd: PathBuf,
    /// kube-apiserver.
    pub kube_apiserver: PathBuf,
    /// kube-controller-manager.
    pub kube_controller_manager: PathBuf,
    /// kubectl, built from the same release as the API server.
    pub kubectl: PathBuf,
    /// kube-scheduler.
    pub kube_scheduler: PathBuf,
    /// The node's kubelet.
    pub kubelet: PathBuf,
    /// The node's kube-proxy.
    pub kube_proxy: PathBuf,
    /// CoreDNS, which the image builder puts in the cluster DNS image.
    pub coredns: PathBuf,
}

impl Binaries {
    /// The binaries in `dir`, whether or not they exist yet.
    pub fn in_dir(dir: &Path) -> Self {
        Binaries {
            etcd: dir.join("etcd"),
            kube_apiserver: dir.join("kube-apiserver"),
            kube_controller_manager: dir.join("kube-controller-manager"),
            kubectl: dir.join("kubectl"),
            kube_scheduler: dir.join("kube-scheduler"),
            kubelet: dir.join("kubelet"),
            kube_proxy: dir.join("kube-proxy"),
            coredns: dir.join("coredns"),
        }
    }

    /// The folder the binaries are built into: `$WEFT_E2E_BIN_DIR`, else
    /// `e2e/.bin`.
    pub fn default_dir() -> PathBuf {
        std::env::var_os("WEFT_E2E_BIN_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| crate_dir().join(".bin"))
    }

    /// Builds the binaries if they are missing or stale and returns them.
    ///
    /// A cold build takes many minutes (see `e2e/README.md`); afterwards this
    /// costs a hash of four small files. When Go is not installed but all
    /// four binaries are present (copied from elsewhere), they are used as is.
    pub fn ensure() -> Result<Self> {
        let dir = Self::default_dir();
        let bins = Self::in_dir(&dir);
        if !on_path("go") {
            if bins.all_present() {
                return Ok(bins);
            }
            return Err(Error::MissingProgram {
                program: "go",
                hint: "the e2e cluster builds etcd and Kubernetes from their Go modules (e2e/go/); install Go 1.26 or newer",
            });
        }
        let script = crate_dir().join("go").join("build.sh");
        let status = Command::new("bash")
            .arg(&script)
            .env("WEFT_E2E_BIN_DIR", &dir)
            .status()
            .map_err(Error::io(format!("running {}", script.display())))?;
        if !status.success() {
            return Err(Error::BuildBinaries { status });
        }
        Ok(bins)
    }

    fn all_present(&self) -> bool {
        [
            &self.etcd,
            &self.kube_apiserver,
            &self.kube_controller_manager,
            &self.kubectl,
            &self.kube_scheduler,
            &self.kubelet,
            &self.kube_proxy,
            &self.coredns,
        ]
        .iter()
        .all(|p| p.is_file())
    }
}

/// Whether `program` is an executable file in one of `$PATH`'s folders.
pub(crate) fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false)
}

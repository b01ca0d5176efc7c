//! The harness of a node suite: one node cluster for the whole binary, set
//! up once, the selected trials run one after another against it (some
//! stop parts of the control plane), then torn down with the host put
//! back. libtest-mimic gives the usual filters and output.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use libtest_mimic::{Arguments, Failed, Trial};

use super::{NodeEnv, TrialResult};

/// One trial: a function of the suite's cluster.
pub type TrialFn =
    for<'a> fn(&'a NodeEnv) -> Pin<Box<dyn Future<Output = TrialResult> + Send + 'a>>;

/// What the suite does once the cluster and weft are up, before its trials.
pub type SetupFn =
    for<'a> fn(&'a NodeEnv) -> Pin<Box<dyn Future<Output = TrialResult> + Send + 'a>>;

/// Each trial's time limit.
const TRIAL_TIMEOUT: Duration = Duration::from_secs(300);

/// `(name, trial)` pairs from trial functions.
#[macro_export]
macro_rules! trials {
    ($($name:ident),* $(,)?) => {
        vec![$((stringify!($name), (|env| Box::pin($name(env))) as $crate::node_support::suite::TrialFn)),*]
    };
}

/// Runs the suite `suite` of `all` trials; never returns.
pub fn run(suite: &str, all: Vec<(&'static str, TrialFn)>, setup: Option<SetupFn>) -> ! {
    let mut args = Arguments::from_args();
    args.test_threads = Some(1);
    let selected = |name: &str| match &args.filter {
        Some(f) if args.exact => name == f,
        Some(f) => name.contains(f.as_str()),
        None => true,
    } && !args.skip.iter().any(|s| name.contains(s.as_str()));
    let wanted = !args.list && all.iter().any(|(n, _)| selected(n));

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => Arc::new(rt),
        Err(e) => {
            eprintln!("{suite} suite: no tokio runtime: {e}");
            std::process::exit(1);
        }
    };
    let env: Option<Arc<NodeEnv>> = if wanted {
        let started = runtime.block_on(async {
            let env = NodeEnv::start().await?;
            if let Some(setup) = setup {
                setup(&env).await?;
            }
            Ok::<_, String>(env)
        });
        match started {
            Ok(env) => Some(Arc::new(env)),
            Err(e) => {
                eprintln!("{suite} suite: the node cluster did not start:\n{e}");
                std::process::exit(1);
            }
        }
    } else {
        None
    };

    let trials = all
        .into_iter()
        .map(|(trial_name, f)| {
            let env = env.clone();
            let runtime = runtime.clone();
            Trial::test(trial_name, move || {
                let env = env.ok_or_else(|| Failed::from("no node cluster"))?;
                runtime
                    .block_on(async { tokio::time::timeout(TRIAL_TIMEOUT, f(&env)).await })
                    .map_err(|_| Failed::from(format!("timed out after {TRIAL_TIMEOUT:?}")))?
                    .map_err(|why| {
                        Failed::from(format!(
                            "{why}\n----- component logs -----\n{}",
                            env.cluster.log_tails(15)
                        ))
                    })
            })
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);

    if let Some(env) = env {
        match Arc::try_unwrap(env) {
            Ok(env) => {
                let problems = env.cluster.stop_checked();
                if !problems.is_empty() {
                    eprintln!(
                        "{suite} suite: the host was not put back: {}",
                        problems.join("; ")
                    );
                    std::process::exit(1);
                }
            }
            Err(_) => eprintln!(
                "{suite} suite: the cluster is still in use; it stops when the process exits"
            ),
        }
    }
    conclusion.exit();
}

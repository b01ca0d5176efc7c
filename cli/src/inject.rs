//! `weft inject`: manual injection and patch review.
//!
//! Reads manifests (files, folders, stdin), injects every workload through
//! the planner the webhook uses (`weft_core::plan`), so the CLI and the
//! cluster never disagree, and prints the objects (or, with `--patch`, each
//! workload's JSON patch) on stdout and a report on stderr. Objects without
//! a pod pass through unchanged, in their place.
//!
//! Nothing is printed unless every input was read: a half-written stream
//! piped into `kubectl apply -f -` would apply half an application.

mod apply;
mod order;
mod read;
mod render;
mod workload;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use weft_core::InjectorConfig;

use self::apply::Injector;
use self::read::Format;

/// Arguments of `weft inject`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Manifests: files, folders (read recursively: *.yaml, *.yml, *.json)
    /// or `-` for stdin.
    #[arg(required = true, value_name = "FILE|DIR|-")]
    inputs: Vec<PathBuf>,

    /// Namespace of objects that do not name one.
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,

    /// Proxy image of both injected containers (a workload's
    /// `config.weft.dev/proxy-image` still wins).
    #[arg(long, value_name = "IMAGE")]
    proxy_image: Option<String>,

    /// Print each injected workload's JSON patch (with its kind, name and
    /// namespace) instead of the objects, for review.
    #[arg(long)]
    patch: bool,

    /// Output format. Default: the input's (JSON when every input is JSON,
    /// else YAML); JSON for `--patch`.
    #[arg(short = 'o', long, value_enum)]
    output: Option<OutputFormat>,
}

/// `-o`: how stdout is written.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum OutputFormat {
    Yaml,
    Json,
}

impl From<OutputFormat> for Format {
    fn from(format: OutputFormat) -> Self {
        match format {
            OutputFormat::Yaml => Format::Yaml,
            OutputFormat::Json => Format::Json,
        }
    }
}

/// Runs `weft inject`: exit 0 when every input was read and written (skipped
/// workloads included, the report says why); an error otherwise.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut config = InjectorConfig::for_cli();
    if let Some(image) = args.proxy_image {
        check_image(&image)?;
        config = config.with_proxy_image(image);
    }

    let sources = read::read_inputs(&args.inputs, std::io::stdin().lock())?;
    let mut injector = Injector::new(config, args.namespace);
    injector.learn_namespaces(sources.iter().flat_map(|s| &s.documents));

    let input_format = if !sources.is_empty() && sources.iter().all(|s| s.format == Format::Json) {
        Format::Json
    } else {
        Format::Yaml
    };
    let mut reports = Vec::new();
    let mut outputs = Vec::new();
    for source in sources {
        for (i, document) in source.documents.into_iter().enumerate() {
            let injected = injector
                .inject(document, &mut reports)
                .with_context(|| format!("{}: document {}", source.name, i + 1))?;
            outputs.push(injected);
        }
    }

    let stdout = if args.patch {
        let format = args.output.map_or(Format::Json, Format::from);
        render::patches(&reports, format)?
    } else {
        let format = args.output.map_or(input_format, Format::from);
        render::documents(&outputs, format)?
    };
    std::io::stdout()
        .lock()
        .write_all(stdout.as_bytes())
        .context("writing to stdout")?;
    std::io::stderr()
        .lock()
        .write_all(render::report(&reports).as_bytes())
        .context("writing to stderr")?;
    Ok(ExitCode::SUCCESS)
}

/// Refuses a `--proxy-image` that could not be an image reference, by the
/// rule the `config.weft.dev/proxy-image` annotation follows.
fn check_image(image: &str) -> anyhow::Result<()> {
    const MAX_LEN: usize = 512;
    if image.is_empty()
        || image.len() > MAX_LEN
        || image.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        anyhow::bail!(
            "--proxy-image {image:?}: expected an image reference (no whitespace, 1 to {MAX_LEN} characters)"
        );
    }
    Ok(())
}

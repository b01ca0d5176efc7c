//! The report: markdown tables of latency (and latency added over the
//! direct path), saturation throughput, memory and CPU per proxy.

use super::Options;
use super::measure::Rows;
use super::paths::Path;

fn fmt_opt<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

pub fn print_report(options: &Options, paths: &[Path], loads: &[Option<u32>], rows: &Rows) {
    println!(
        "\nweft-proxy benchmark: {} s per run, {} run(s) per figure (medians), 1 KiB request and response bodies, {}, {} CPUs\n",
        options.duration.as_secs_f64(),
        options.repeat,
        if options.netns {
            "between network namespaces (rig pods, weft behind the iptables redirect)"
        } else {
            "loopback"
        },
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    for proto in options.protos.iter().copied() {
        println!(
            "### {} — latency (µs; added = path minus direct at the same percentile)\n",
            proto.name()
        );
        println!(
            "| load | path | p50 | p90 | p99 | max | added p50 | added p90 | added p99 | added max | requests | errors |"
        );
        println!(
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        for load in loads.iter().filter(|l| l.is_some()) {
            let Some(direct) = rows.get(&(proto, *load, Path::Direct)) else {
                continue;
            };
            for path in paths {
                let Some(row) = rows.get(&(proto, *load, *path)) else {
                    continue;
                };
                let (l, d) = (row.latency, direct.latency);
                println!(
                    "| {} rps | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:+.0} | {:+.0} | {:+.0} | {:+.0} | {} | {} |",
                    fmt_opt(*load),
                    path.name(&options.variants),
                    l.p50,
                    l.p90,
                    l.p99,
                    l.max,
                    l.p50 - d.p50,
                    l.p90 - d.p90,
                    l.p99 - d.p99,
                    l.max - d.max,
                    row.requests,
                    row.errors
                );
            }
        }
        println!(
            "\n### {} — saturation ({} concurrent requests) and resources per proxy\n",
            proto.name(),
            options.concurrency
        );
        println!(
            "| path | saturation rps | p50 at saturation (µs) | RSS idle (KiB) | RSS peak at saturation (KiB) | CPU s per 1,000 req at 1,000 rps | cores at 1,000 rps | CPU s per 1,000 req at saturation |"
        );
        println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        for path in paths {
            let Some(sat) = rows.get(&(proto, None, *path)) else {
                continue;
            };
            let at_1k = rows.get(&(proto, Some(1000), *path));
            println!(
                "| {} | {:.0} | {:.0} | {} | {} | {} | {} | {} |",
                path.name(&options.variants),
                sat.rps,
                sat.latency.p50,
                fmt_opt(at_1k.map_or(sat.rss_idle, |r| r.rss_idle)),
                fmt_opt(sat.rss_peak),
                fmt_opt(at_1k.and_then(|r| r.cpu_per_1k).map(|v| format!("{v:.4}"))),
                fmt_opt(at_1k.and_then(|r| r.cores).map(|v| format!("{v:.3}"))),
                fmt_opt(sat.cpu_per_1k.map(|v| format!("{v:.4}"))),
            );
        }
        println!();
    }
}

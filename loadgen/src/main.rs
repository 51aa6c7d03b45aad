//! `loadgen`: argument parsing, the runtime, and writing the outputs around
//! [`loadgen::run::run`]. Exit status 0 only when every check passed; 1 when
//! one failed or the run stopped (a run stopped before its traffic prints
//! one line on stderr and no table); 64 for bad arguments, as one line,
//! the way `logosnet_server` and `logosnet_client` report them.

use std::process::ExitCode;

use anyhow::Context as _;
use loadgen::config::Config;
use loadgen::report::{self, Report};
use loadgen::{plot, run};
use logosnet::cli::{self, EXIT_USAGE};

fn main() -> ExitCode {
    let config = match cli::parse::<Config, _, _>("loadgen", std::env::args_os()) {
        Ok(config) => config,
        Err(stop) => return stop.exit(),
    };
    if let Err(e) = config.validate() {
        eprintln!("loadgen: {e} (try --help)");
        return ExitCode::from(EXIT_USAGE);
    }
    raise_open_file_limit();
    match run_and_report(config) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_and_report(config: Config) -> anyhow::Result<bool> {
    // One thread by default: loadgen shares the machine with the server.
    let runtime = if config.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.threads)
            .enable_all()
            .build()
    }
    .context("cannot start the runtime")?;
    let data = runtime.block_on(run::run(config.clone()))?;
    let report = Report::new(&data);
    if let Some(path) = &config.json {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    // A run stopped before its traffic has one line to say and no figures.
    if let Some(line) = &data.stopped {
        eprintln!("loadgen: {line}");
        return Ok(false);
    }
    print!("{}", report.table());
    if let Some(path) = &config.hgrm {
        std::fs::write(path, report::hgrm(&data.delivery))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &config.svg {
        let title = format!(
            "LogosNet delivery latency: {}+{} clients, {} msgs/s",
            config.participants, config.observers, config.rate
        );
        plot::write_svg(
            path,
            &title,
            &[
                ("delivery (scheduled → received)", &data.delivery),
                ("send lag (scheduled → sent)", &data.send_lag),
            ],
        )
        .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(report.passed)
}

/// A full room is 510 sockets plus the probes; lift the soft open-file limit
/// to the hard one (as the server does) in case the default is 256 or 1024.
fn raise_open_file_limit() {
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

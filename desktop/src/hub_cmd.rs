//! `stocksync hub`: runs the reference hub until Ctrl-C.

use crate::cli::HubArgs;
use crate::output::say;
use std::io::IsTerminal;
use std::process::ExitCode;
use stocksync_hub::config::{Bootstrap, HubConfig};
use stocksync_hub::{Hub, server};

pub fn run(args: &HubArgs) -> ExitCode {
    // STOCKSYNC_LOG=error|warn|info|debug|trace (default info).
    let level = std::env::var("STOCKSYNC_LOG")
        .ok()
        .and_then(|l| l.parse::<tracing::Level>().ok())
        .unwrap_or(tracing::Level::INFO);
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        // Colour for a terminal only: a log file or a pipe gets plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(3);
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(3)
        }
    }
}

async fn serve(args: &HubArgs) -> Result<(), Box<dyn std::error::Error>> {
    let mut bootstrap = match &args.config {
        Some(path) => server::read_bootstrap(path)?,
        None => Bootstrap::default(),
    };
    let dev = if args.dev {
        std::fs::create_dir_all(&args.data_dir)?;
        let (b, creds) = server::dev_bootstrap(&args.data_dir);
        bootstrap.organizations.extend(b.organizations);
        Some(creds)
    } else {
        None
    };
    let mut config = HubConfig::new(&args.data_dir);
    config.rate_limit = args.rate_limit;
    let hub = Hub::start(config, &bootstrap, &args.bind).await?;
    if let Some(mut creds) = dev {
        creds.base_url = hub.base_url();
        server::write_dev_credentials(&args.data_dir, &creds)?;
        say!("stocksync hub (dev) on {}", creds.base_url);
        say!("  organization_id  {}", creds.organization_id);
        say!("  branch_id        {}", creds.branch_id);
        say!("  api_key          {}", creds.api_key);
        say!("  enrollment_key   {}", creds.enrollment_key);
        say!(
            "  written to       {}",
            args.data_dir.join(server::DEV_CREDENTIALS).display()
        );
    } else {
        say!("stocksync hub on {}", hub.base_url());
    }
    hub.run_until_signal().await?;
    Ok(())
}

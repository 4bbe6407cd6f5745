//! The `troupe` binary: parse the command line, set up logging, run.

use std::process::ExitCode;

use clap::Parser;
use troupe_http::cli::{Cli, Command, ServeCommand};
use troupe_http::platform;

/// mimalloc, not the system allocator: a request's allocations are made on an HTTP worker and
/// freed on the logger's thread (and a span's in the trace store), the cross-thread pattern
/// glibc's malloc handles worst (docs/benchmarks.md: its consolidation and free lists were
/// the largest cost tracing added under load).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let mut cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) if !err.use_stderr() => {
            let _ = err.print();
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            // One line naming the bad variable, not clap's usage block.
            let text = err.render().to_string();
            eprintln!(
                "troupe: {}",
                text.lines().next().unwrap_or("invalid arguments").trim_start_matches("error: ")
            );
            return ExitCode::from(2);
        }
    };
    if let Err(err) = cli.command.read_secret_files() {
        eprintln!("troupe: {err}");
        return ExitCode::from(2);
    }
    let Some(common) = cli.command.common() else {
        return tool(&cli.command);
    };
    troupe_core::telemetry::init(common.log_format, service_name(&cli.command));
    // Before any listener or client: they all take the process's TLS.
    if let Err(err) = troupe_http::tls::install(&common.tls) {
        eprintln!("troupe: {err:#}");
        return ExitCode::FAILURE;
    }
    match actix_web::rt::System::new().block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("troupe: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The commands that run no service: `troupe logs`, `troupe trace`, `troupe health`.
fn tool(command: &Command) -> ExitCode {
    let ca_file = match command {
        Command::Logs(args) => args.ca_file.as_deref(),
        Command::Trace(args) => args.ca_file.as_deref(),
        _ => None,
    };
    if let Err(err) = troupe_http::tls::install_ca(ca_file) {
        eprintln!("troupe: {err:#}");
        return ExitCode::from(2);
    }
    fn block_on(run: impl Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
        actix_web::rt::System::new().block_on(run)
    }
    let (name, done) = match command {
        Command::Logs(args) => {
            ("logs", block_on(async { troupe_http::follow::run(args, &mut std::io::stdout().lock()).await }))
        }
        Command::Trace(args) => (
            "trace",
            block_on(async { troupe_http::trace_cli::run(args, &mut std::io::stdout().lock()).await }),
        ),
        Command::Health(args) => ("health", troupe_http::health::run(args).map_err(anyhow::Error::msg)),
        _ => return ExitCode::SUCCESS,
    };
    // `logs` and `trace` print to stdout until done (`logs --follow`: until stopped).
    if let Err(err) = done {
        eprintln!("troupe {name}: {err:#}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// The service this process runs, as its traces name it (`troupe` when it runs them all).
fn service_name(command: &Command) -> &'static str {
    match command {
        Command::Serve(ServeCommand::Broker { .. }) => "broker",
        Command::Serve(ServeCommand::Auth { .. }) => "auth",
        Command::Serve(ServeCommand::Logger { .. }) => "logger",
        Command::Serve(ServeCommand::Listener { .. }) => "listener",
        Command::Serve(ServeCommand::Frontend { .. }) => "frontend",
        Command::Serve(ServeCommand::Mailer { .. }) => "mailer",
        Command::Serve(ServeCommand::Catcher { .. }) => "catcher",
        _ => "troupe",
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    let platform = match &command {
        Command::Health(_) | Command::Logs(_) | Command::Trace(_) => return Ok(()),
        Command::Up(a) => platform::up(a)?,
        Command::Serve(ServeCommand::Broker { common, broker, upstream, events }) => {
            platform::serve_broker(common, broker, upstream, events)?
        }
        Command::Serve(ServeCommand::Auth { common, auth, logger_url, events }) => {
            platform::serve_auth(common, auth, logger_url.as_ref(), events)?
        }
        Command::Serve(ServeCommand::Logger { common, logger }) => platform::serve_logger(common, logger)?,
        Command::Serve(ServeCommand::Listener { common, events, listener, logger, mailer_url, keys }) => {
            platform::serve_listener(common, events, listener, logger, (mailer_url.as_ref(), keys))?
        }
        Command::Serve(ServeCommand::Frontend { common, frontend }) => {
            platform::serve_frontend(common, frontend)?
        }
        Command::Serve(ServeCommand::Mailer { common, mailer, auth_url }) => {
            platform::serve_mailer(common, mailer, auth_url.as_ref())?
        }
        Command::Serve(ServeCommand::Catcher { common, catcher }) => {
            platform::serve_catcher(common, catcher)?
        }
    };
    platform.run_until(platform::stop_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

//! The `troupe` command line: `troupe up` and `troupe serve <service>`.
//!
//! Every setting is an environment variable (also accepted as a `--flag`); `--help` on each
//! command lists them with their defaults.

use clap::{Args, Parser, Subcommand};
use troupe_core::config::{
    AuthSettings, BrokerSettings, CatcherSettings, CommonSettings, EventSettings, FrontendSettings,
    ListenerSettings, LoggerSettings, MailerSettings, ServiceKeySettings, UpstreamSettings,
};
use url::Url;

/// Width `troupe --help`'s list of variables is wrapped to.
const HELP_WIDTH: usize = 100;

/// One environment variable as the commands declare it.
struct Variable {
    name: String,
    help: String,
    /// Each command taking it, with its default there (empty: none).
    defaults: Vec<(String, String)>,
}

/// The text after `troupe --help`: every variable of every command once, with its help and
/// default, read from the settings' own declarations so that it cannot drift from them.
fn variables() -> String {
    let serve = ServeCommand::augment_subcommands(clap::Command::new("serve"));
    let commands = std::iter::once(("up".to_owned(), UpArgs::augment_args(clap::Command::new("up"))))
        .chain(serve.get_subcommands().map(|c| (format!("serve {}", c.get_name()), c.clone())));
    let mut variables: Vec<Variable> = Vec::new();
    for (command, args) in commands {
        for arg in args.get_arguments() {
            let Some(name) = arg.get_env().map(|n| n.to_string_lossy().into_owned()) else { continue };
            let default: Vec<_> = arg.get_default_values().iter().map(|v| v.to_string_lossy()).collect();
            let index = variables.iter().position(|v| v.name == name).unwrap_or_else(|| {
                let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
                variables.push(Variable { name, help, defaults: Vec::new() });
                variables.len() - 1
            });
            variables[index].defaults.push((command.clone(), default.join(",")));
        }
    }
    let width = variables.iter().map(|v| v.name.len()).max().unwrap_or(0) + 2;
    let mut text = String::from(
        "Configuration comes from environment variables (each also accepted as a --flag).\n\
         `troupe up --help` and `troupe serve <service> --help` list a command's own.\n",
    );
    for v in &variables {
        let line = format!("{} {}", v.help, default_note(&v.defaults)).trim_end().to_owned();
        text.push_str(&wrap(&format!("  {:<width$}", v.name), &line));
    }
    text
}

/// `[default: ..]` for a variable: one value, or each command's when they differ.
fn default_note(defaults: &[(String, String)]) -> String {
    let shown = |d: &str| if d.is_empty() { "unset".to_owned() } else { d.to_owned() };
    match defaults {
        [(_, first), rest @ ..] if rest.iter().all(|(_, d)| d == first) => {
            if first.is_empty() {
                String::new()
            } else {
                format!("[default: {first}]")
            }
        }
        _ => {
            let each: Vec<_> = defaults.iter().map(|(c, d)| format!("{} under `{c}`", shown(d))).collect();
            format!("[default: {}]", each.join(", "))
        }
    }
}

/// `lead` then `words` wrapped to [`HELP_WIDTH`], continuation lines indented under them.
fn wrap(lead: &str, words: &str) -> String {
    let indent = " ".repeat(lead.len());
    let mut out = lead.to_owned();
    let mut column = lead.len();
    for word in words.split_whitespace() {
        if column > lead.len() && column + 1 + word.len() > HELP_WIDTH {
            out.push('\n');
            out.push_str(&indent);
            column = indent.len();
        }
        if column > lead.len() {
            out.push(' ');
            column += 1;
        }
        out.push_str(word);
        column += word.len();
    }
    out.push('\n');
    out
}

/// Troupe: an API gateway and services (auth, ...) on a supervised actor runtime.
#[derive(Debug, Parser)]
#[command(
    name = "troupe",
    version,
    about = "Troupe: an API gateway and its services on a supervised actor runtime.",
    after_help = variables()
)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
// Parsed once at start-up; boxing the settings would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every service in one process. With no configuration it needs no server at all:
    /// users in SQLite under TROUPE_DATA_DIR, a random per-process JWT key.
    Up(UpArgs),
    /// Run one service in this process (what compose and Kubernetes run).
    #[command(subcommand)]
    Serve(ServeCommand),
    /// Check a running service's /healthz (or /readyz): exit 0 when it answers 2xx. The
    /// container HEALTHCHECK: no shell or curl needed.
    Health(crate::health::HealthArgs),
    /// Print the log from the broker; `--follow` keeps printing new entries as they are
    /// stored (filters: `--request-id`, `--service`, `--name`, `--level`; `--url`).
    Logs(crate::follow::LogsArgs),
    /// Print one request's trace as a waterfall across services (ID: a trace id or a request
    /// id; `--json` for the spans; `--url` or BROKER_URL for the broker).
    Trace(crate::trace_cli::TraceArgs),
}

/// Settings of `troupe up`.
#[derive(Debug, Clone, Args)]
pub struct UpArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: CommonSettings,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub broker: BrokerSettings,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub auth: AuthSettings,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub logger: LoggerSettings,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub frontend: FrontendSettings,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub mailer: MailerSettings,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub catcher: CatcherSettings,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub events: EventSettings,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub listener: ListenerSettings,
}

/// The services `troupe serve` can run.
// Parsed once at start-up; boxing the settings would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum ServeCommand {
    /// The API gateway on BROKER_PORT, reaching the services at their URLs.
    Broker {
        #[command(flatten)]
        #[allow(missing_docs)]
        common: CommonSettings,
        #[command(flatten)]
        #[allow(missing_docs)]
        broker: BrokerSettings,
        #[command(flatten)]
        #[allow(missing_docs)]
        upstream: UpstreamSettings,
        #[command(flatten)]
        #[allow(missing_docs)]
        events: EventSettings,
    },
    /// The authentication service on AUTH_PORT (PostgreSQL from DSN, else SQLite).
    Auth {
        #[command(flatten)]
        #[allow(missing_docs)]
        common: CommonSettings,
        #[command(flatten)]
        #[allow(missing_docs)]
        auth: AuthSettings,
        /// The logger that records login attempts (unset: not recorded).
        #[arg(long, env = "LOGGER_URL")]
        logger_url: Option<Url>,
        #[command(flatten)]
        #[allow(missing_docs)]
        events: EventSettings,
    },
    /// The logger on LOGGER_PORT (HTTP), LOGGER_GRPC_PORT and LOGGER_RPC_PORT (MongoDB from
    /// MONGO_URL, else SQLite).
    Logger {
        #[command(flatten)]
        #[allow(missing_docs)]
        common: CommonSettings,
        #[command(flatten)]
        #[allow(missing_docs)]
        logger: LoggerSettings,
    },
    /// The event listener: consumes LISTENER_QUEUE on RABBIT_URL (required) and stores each
    /// event through its own logger actor (MongoDB from MONGO_URL, else SQLite); health and
    /// consumer status on LISTENER_PORT.
    Listener {
        #[command(flatten)]
        #[allow(missing_docs)]
        common: CommonSettings,
        #[command(flatten)]
        #[allow(missing_docs)]
        events: EventSettings,
        #[command(flatten)]
        #[allow(missing_docs)]
        listener: ListenerSettings,
        #[command(flatten)]
        #[allow(missing_docs)]
        logger: LoggerSettings,
        /// The mailer that runs `mail` jobs (unset: `mail` events are stored, not mailed).
        #[arg(long, env = "MAILER_URL")]
        mailer_url: Option<Url>,
        /// The key the listener signs its service tokens for the mailer with.
        #[command(flatten)]
        keys: ServiceKeySettings,
    },
    /// The web console on FRONTEND_PORT.
    Frontend {
        #[command(flatten)]
        #[allow(missing_docs)]
        common: CommonSettings,
        #[command(flatten)]
        #[allow(missing_docs)]
        frontend: FrontendSettings,
    },
    /// The mailer on MAILER_PORT, sending over SMTP to MAIL_HOST.
    Mailer {
        #[command(flatten)]
        #[allow(missing_docs)]
        common: CommonSettings,
        #[command(flatten)]
        #[allow(missing_docs)]
        mailer: MailerSettings,
        /// The auth service that checks senders' tokens (required when POST /send needs one).
        #[arg(long, env = "AUTH_URL")]
        auth_url: Option<Url>,
    },
    /// The built-in mail catcher: SMTP on 127.0.0.1:CATCHER_SMTP_PORT, API on CATCHER_HTTP_PORT.
    Catcher {
        #[command(flatten)]
        #[allow(missing_docs)]
        common: CommonSettings,
        #[command(flatten)]
        #[allow(missing_docs)]
        catcher: CatcherSettings,
    },
}

impl Command {
    /// Read every secret given as a file (`DSN_FILE`, `MONGO_URL_FILE`, `MONGO_PASSWORD_FILE`,
    /// `RABBIT_URL_FILE`, `MAIL_PASSWORD_FILE`) into its setting, before anything starts.
    /// (`JWT_SECRET_FILE` is read where the keys are made.)
    ///
    /// # Errors
    ///
    /// A value and its file both set, an unreadable or empty file, or contents the variable
    /// itself would refuse: one message naming the variable, never the secret.
    pub fn read_secret_files(&mut self) -> Result<(), String> {
        match self {
            Self::Health(_) | Self::Logs(_) | Self::Trace(_) => Ok(()),
            Self::Up(a) => {
                a.auth.read_secret_files()?;
                a.logger.read_secret_files()?;
                a.mailer.read_secret_files()?;
                a.events.read_secret_files()
            }
            Self::Serve(serve) => match serve {
                ServeCommand::Broker { events, .. } => events.read_secret_files(),
                ServeCommand::Auth { auth, events, .. } => {
                    auth.read_secret_files()?;
                    events.read_secret_files()
                }
                ServeCommand::Logger { logger, .. } => logger.read_secret_files(),
                ServeCommand::Listener { events, logger, .. } => {
                    events.read_secret_files()?;
                    logger.read_secret_files()
                }
                ServeCommand::Mailer { mailer, .. } => mailer.read_secret_files(),
                ServeCommand::Frontend { .. } | ServeCommand::Catcher { .. } => Ok(()),
            },
        }
    }

    /// The settings shared by every command that runs services (`None`: `troupe health`,
    /// `troupe logs`, `troupe trace`).
    pub fn common(&self) -> Option<&CommonSettings> {
        Some(match self {
            Self::Health(_) | Self::Logs(_) | Self::Trace(_) => return None,
            Self::Up(a) => &a.common,
            Self::Serve(ServeCommand::Broker { common, .. })
            | Self::Serve(ServeCommand::Auth { common, .. })
            | Self::Serve(ServeCommand::Logger { common, .. })
            | Self::Serve(ServeCommand::Listener { common, .. })
            | Self::Serve(ServeCommand::Frontend { common, .. })
            | Self::Serve(ServeCommand::Mailer { common, .. })
            | Self::Serve(ServeCommand::Catcher { common, .. }) => common,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn the_help_lists_each_variable_once_with_its_own_default() {
        let help = Cli::command().render_help().to_string();
        let line = |name: &str| {
            let lines: Vec<_> = help.lines().filter(|l| l.starts_with(&format!("  {name} "))).collect();
            assert_eq!(lines.len(), 1, "{name} once in:\n{help}");
            lines[0].to_owned()
        };
        assert!(line("LISTENER_PORT").ends_with("[default: 8085]"), "{help}");
        assert!(line("BIND_ADDRESS").ends_with("[default: 0.0.0.0]"), "{help}");
        assert!(!line("MONGO_URL").contains("default"), "{help}");
        line("MAILER_URL");
        let words = help.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            words.contains("http://localhost:8084 under `serve broker`, unset under `serve listener`"),
            "{help}"
        );
    }

    #[test]
    fn secrets_are_read_from_their_files_and_checked_like_their_values() {
        use secrecy::ExposeSecret as _;
        let dir = tempfile::tempdir().expect("temp dir");
        let file = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).expect("written");
            path.display().to_string()
        };
        let read = |args: &[&str]| {
            let mut cli = Cli::try_parse_from(args).expect("parsed");
            cli.command.read_secret_files().map(|()| cli.command)
        };
        let (dsn, rabbit) =
            (file("dsn", "host=db password=s3cret\n"), file("rabbit", "amqp://u:p@mq:5672/%2f\n"));
        let (mongo, mail) = (file("mongo", "mongodb://u:p@db:27017"), file("mail", "smtp-pass"));
        let up = ["--dsn-file", &dsn, "--rabbit-url-file", &rabbit, "--mongo-url-file", &mongo];
        let args = [&["troupe", "up"][..], &up, &["--mail-password-file", &mail]].concat();
        let Ok(Command::Up(up)) = read(&args) else { panic!("troupe up reads its secret files") };
        let secret = |s: Option<&secrecy::SecretString>| s.map(|s| s.expose_secret().to_owned());
        assert_eq!(secret(up.auth.dsn.value()).as_deref(), Some("host=db password=s3cret"));
        assert_eq!(secret(up.events.rabbit_url.value()).as_deref(), Some("amqp://u:p@mq:5672/%2f"));
        assert_eq!(secret(up.logger.mongo_url.value()).as_deref(), Some("mongodb://u:p@db:27017"));
        assert_eq!(secret(up.mailer.mail_password.value()).as_deref(), Some("smtp-pass"));

        let http = file("http", "http://u:hidden@mq:5671");
        let err = read(&["troupe", "serve", "broker", "--rabbit-url-file", &http]).expect_err("refused");
        assert!(err.starts_with("RABBIT_URL_FILE: expected amqp://") && !err.contains("hidden"), "{err}");
        let err = read(&["troupe", "serve", "auth", "--dsn", "x", "--dsn-file", &dsn]).expect_err("refused");
        assert_eq!(err, "DSN and DSN_FILE: set only one");
        let absent = dir.path().join("absent").display().to_string();
        let err = read(&["troupe", "serve", "mailer", "--mail-password-file", &absent]).expect_err("refused");
        assert!(err.starts_with("MAIL_PASSWORD_FILE: cannot read"), "{err}");
        let empty = file("empty", "\n");
        let err = read(&["troupe", "serve", "logger", "--mongo-password-file", &empty]).expect_err("refused");
        assert!(err.starts_with("MONGO_PASSWORD_FILE:") && err.ends_with("is empty"), "{err}");
    }

    #[test]
    fn bad_values_are_named() {
        let err = Cli::try_parse_from(["troupe", "up", "--broker-port", "eighty"]).expect_err("rejected");
        assert!(err.to_string().contains("BROKER_PORT"), "{err}");
    }
}

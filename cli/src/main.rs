//! `protolink`: check and generate protocol definitions, and run the seed protocols' reference
//! servers and clients.
//!
//! ```text
//! protolink check protocol-defs/            # diagnostics on stderr, exit 1 on any error
//! protolink check --explain E0134           # what an error code means and how to fix it
//! protolink gen protocol-defs/litecord.protocol --out target/review
//! protolink schema protocol-defs/ --out target/schemas     # JSON Schemas of every frame
//! protolink asyncapi protocol-defs/skynet.protocol --path /connect   # AsyncAPI 3.0, on stdout
//! protolink docs protocol-defs/ --out target/docs              # Markdown and HTML references
//! protolink ts protocol-defs/ --out web/src/protocols           # TypeScript types of every frame
//! protolink diff old/chat.protocol new/chat.protocol --with protocol-defs/socketcluster.protocol
//! protolink serve litecord --listen 127.0.0.1:0 --password P
//! protolink litecord connect ws://127.0.0.1:PORT/ --password P
//! protolink serve clusterio --listen 127.0.0.1:0 --secret S
//! protolink clusterio ctl --url ws://127.0.0.1:PORT/api/socket --token T list-slaves
//! protolink serve socketcluster --listen 127.0.0.1:0 --protocol-version 1 --auth-secret S
//! protolink serve skynet --listen 127.0.0.1:0 --broker redis://127.0.0.1:6379   # one of many
//! protolink socketcluster client ws://127.0.0.1:PORT/socketcluster/ 'invoke:sum:{"a":2,"b":3}'
//! ```

mod clusterio;
mod litecord;
mod output;
mod skynet;
mod socketcluster;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use protolink_codegen::Config;

#[derive(Parser)]
#[command(
    name = "protolink",
    version,
    about = "Typed Rust bindings for JSON-over-WebSocket protocols"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Checks definition files (or folders of them) and reports every error.
    Check {
        /// Files or folders; a folder means every `*.protocol` file in it.
        #[arg(required_unless_present = "explain")]
        inputs: Vec<PathBuf>,
        /// Prints what an error code means (`--explain E0134`) instead of checking.
        #[arg(long, value_name = "CODE")]
        explain: Option<String>,
    },
    /// Writes the generated Rust for review, one file per protocol.
    Gen {
        /// The definition files (a protocol's base must be given too).
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// Where to write the `.rs` files.
        #[arg(long)]
        out: PathBuf,
    },
    /// Writes JSON Schemas (draft 2020-12) of every frame each side may send: one per link
    /// direction, one per message and one per request's reply, under `OUT/PROTOCOL/`.
    Schema {
        /// The definition files (a protocol's base must be given too).
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// The folder to write them under.
        #[arg(long)]
        out: PathBuf,
    },
    /// Writes each protocol's reference for its users: `PROTOCOL.md` and a self-contained
    /// `PROTOCOL.html` (envelope, session rules, close codes, every message with an example).
    Docs {
        /// The definition files (a protocol's base must be given too).
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// The folder to write them into.
        #[arg(long)]
        out: PathBuf,
    },
    /// Writes each protocol's TypeScript, `PROTOCOL.ts` (types for its payloads and frames, and a
    /// typed client per connecting side), and the runtime the clients import, `protolink.ts`.
    Ts {
        /// The definition files (a protocol's base must be given too).
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// The folder to write them into.
        #[arg(long)]
        out: PathBuf,
    },
    /// Compares two versions of a definition: every change, rustc-style, and whether it breaks
    /// existing peers. Exit status 0 when nothing breaks, 1 when something does, 2 when a
    /// definition does not check.
    Diff {
        /// The old definition file.
        old: PathBuf,
        /// The new definition file.
        new: PathBuf,
        /// Files checked with both (the base of a protocol that `extends` one).
        #[arg(long = "with")]
        with: Vec<PathBuf>,
    },
    /// Prints an AsyncAPI 3.0 document (JSON) of the last protocol given (an extension comes
    /// after its base), or of `--protocol`; with `--out`, writes every protocol's instead.
    Asyncapi {
        /// The definition files (a protocol's base must be given too).
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// The protocol to print.
        #[arg(long)]
        protocol: Option<String>,
        /// The server's `host[:port]`.
        #[arg(long, default_value = "localhost")]
        host: String,
        /// The URL path the protocol is served at, such as `/connect` (default: the
        /// definition's `path`, or `/`).
        #[arg(long)]
        path: Option<String>,
        /// Write `PROTOCOL.asyncapi.json` for every protocol into this folder.
        #[arg(long, conflicts_with = "protocol")]
        out: Option<PathBuf>,
    },
    /// Runs a seed protocol's reference server until SIGINT or SIGTERM.
    ///
    /// The first line on stdout is `listening on ws://IP:PORT/PATH`; logs go to stderr.
    Serve {
        #[command(subcommand)]
        protocol: ServeCommand,
    },
    /// Litecord client commands.
    Litecord {
        #[command(subcommand)]
        command: LitecordCommand,
    },
    /// Skynet client commands.
    Skynet {
        #[command(subcommand)]
        command: SkynetCommand,
    },
    /// SocketCluster client commands.
    Socketcluster {
        #[command(subcommand)]
        command: SocketclusterCommand,
    },
    /// Clusterio slave, control client and tokens.
    Clusterio {
        #[command(subcommand)]
        command: ClusterioCommand,
    },
}

#[derive(Subcommand)]
enum ClusterioCommand {
    /// Connects to the master (reconnecting), registers and hosts simulated instances, printing
    /// what it receives as JSON lines.
    Slave {
        /// The master's URL, such as `ws://127.0.0.1:8080/api/socket`.
        #[arg(long)]
        url: String,
        /// The slave's token (`protolink clusterio token --slave ID`).
        #[arg(long)]
        token: String,
        /// The slave's id.
        #[arg(long)]
        id: i64,
        /// The slave's name.
        #[arg(long)]
        name: String,
    },
    /// Sends one request to the master and prints the reply as a JSON line.
    Ctl {
        /// The master's URL.
        #[arg(long)]
        url: String,
        /// A control token (`protolink clusterio token --control`).
        #[arg(long)]
        token: String,
        #[command(subcommand)]
        command: clusterio::CtlCommand,
    },
    /// Prints a token signed with the master's secret.
    Token {
        /// The master's secret.
        #[arg(long)]
        secret: String,
        /// A slave token for this slave id.
        #[arg(long, conflicts_with = "control", required_unless_present = "control")]
        slave: Option<i64>,
        /// A control token.
        #[arg(long)]
        control: bool,
    },
}

#[derive(Subcommand)]
enum SocketclusterCommand {
    /// Connects, runs the steps in order and prints JSON lines (steps: `emit:EVENT:JSON`,
    /// `invoke:EVENT:JSON`, `subscribe:CH`, `unsubscribe:CH`, `publish:CH:JSON`,
    /// `invoke-publish:CH:JSON`, `authenticate:TOKEN|saved`, `deauthenticate`, `wait:KEY`,
    /// `stay:MS`).
    Client {
        /// The server's URL, such as `ws://127.0.0.1:8000/socketcluster/`.
        url: String,
        /// 1 (`#1` / `#2`) or 2 (empty frames): the server's ping / pong.
        #[arg(long, default_value_t = 2)]
        protocol_version: u8,
        /// A signed auth token to send in the handshake.
        #[arg(long)]
        auth_token: Option<String>,
        /// Milliseconds a request or a `wait:` step waits.
        #[arg(long, default_value_t = 5000)]
        timeout: u64,
        /// The steps, in order.
        steps: Vec<String>,
    },
}

#[derive(Subcommand)]
enum SkynetCommand {
    /// Opens channels and prints every message on them as JSON lines.
    Listen {
        /// The server's URL, such as `ws://127.0.0.1:8080/connect`.
        url: String,
        /// Channels to open: a JSON number is a number channel, anything else a string.
        #[arg(long = "channel", required = true)]
        channels: Vec<String>,
    },
    /// Sends one message and prints what the server returns.
    Send {
        /// The server's URL.
        url: String,
        /// The channel.
        #[arg(long)]
        channel: String,
        /// The message: JSON if it parses as JSON, else a string.
        message: String,
    },
}

#[derive(Subcommand)]
enum ServeCommand {
    /// Litecord's common protocol (with the example methods of `litecord_example`).
    Litecord {
        /// Address to listen on; port 0 picks a free port.
        #[arg(long)]
        listen: String,
        /// The shared secret clients send in HELLO_ACK.
        #[arg(long)]
        password: String,
        /// Heartbeat interval announced in HELLO, in milliseconds.
        #[arg(long, default_value_t = 10_000)]
        hb_interval: u32,
        /// Ask every client whether this token is valid (TOKEN_VALIDATE), as the real gateway does.
        #[arg(long)]
        validate_token: Option<String>,
    },
    /// The Clusterio master, at `/api/socket`.
    Clusterio {
        /// Address to listen on; port 0 picks a free port.
        #[arg(long)]
        listen: String,
        /// The secret tokens are signed with.
        #[arg(long)]
        secret: String,
    },
    /// SocketCluster (with the `socketcluster_chat` procedures), at `/socketcluster/`.
    Socketcluster {
        /// Address to listen on; port 0 picks a free port.
        #[arg(long)]
        listen: String,
        /// 1 (`#1` / `#2`) or 2 (empty frames, the 20.x default): the ping / pong.
        #[arg(long, default_value_t = 2)]
        protocol_version: u8,
        /// The key auth tokens are signed (HS256) and checked (HS256, HS384 or HS512) with;
        /// without it, a random key made at start, so tokens last as long as the process.
        #[arg(long)]
        auth_secret: Option<String>,
        /// Milliseconds between pings.
        #[arg(long, default_value_t = 8000)]
        ping_interval: u64,
        /// Milliseconds without anything from a client before it is closed (4001).
        #[arg(long, default_value_t = 20_000)]
        ping_timeout: u64,
        /// Invoke `askClient` with this JSON on every client right after its handshake, and
        /// transmit the reply back as `askClientResult`.
        #[arg(long, value_name = "JSON", value_parser = parse_json)]
        ask_client: Option<serde_json::Value>,
        /// Connections served at once; an upgrade beyond them is answered with HTTP 503.
        #[arg(long, default_value_t = 10_000)]
        max_connections: usize,
        /// Share pub/sub with every server on this Redis (`redis://HOST:PORT`); by default
        /// in this process only.
        #[arg(long, value_name = "URL")]
        broker: Option<String>,
    },
    /// Skynet, at `/connect`.
    Skynet {
        /// Address to listen on; port 0 picks a free port.
        #[arg(long)]
        listen: String,
        /// Messages kept in the log (not persisted across restarts).
        #[arg(long, default_value_t = 100)]
        log_size: usize,
        /// Bytes of messages kept in the log, at most (the oldest go first).
        #[arg(long, default_value_t = 32 << 20)]
        log_bytes: usize,
        /// Share messages and the log with every server on this Redis (`redis://HOST:PORT`);
        /// by default in this process only.
        #[arg(long, value_name = "URL")]
        broker: Option<String>,
    },
}

#[derive(Subcommand)]
enum LitecordCommand {
    /// Connects, keeps the heartbeat and answers the server's requests, printing JSON lines.
    Connect {
        /// The server's URL, such as `ws://127.0.0.1:8080/`.
        url: String,
        /// The shared secret.
        #[arg(long)]
        password: String,
        /// Tokens TOKEN_VALIDATE should call valid.
        #[arg(long = "valid-token")]
        valid_tokens: Vec<String>,
        /// Guild ids to ask for (GET_GUILD) after connecting.
        #[arg(long = "get-guild")]
        guilds: Vec<String>,
    },
}

/// A command-line value that must be JSON.
fn parse_json(text: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Check {
            explain: Some(code),
            ..
        } => explain(&code),
        Command::Check { inputs, .. } => check(&inputs),
        Command::Gen { inputs, out } => generate(&inputs, out),
        Command::Schema { inputs, out } => schema(&inputs, out),
        Command::Docs { inputs, out } => docs(&inputs, out),
        Command::Ts { inputs, out } => {
            write_all(with_ts_runtime(Config::new().generate_ts(&inputs)), out)
        }
        Command::Diff { old, new, with } => diff(&old, &new, &with),
        Command::Asyncapi {
            inputs,
            protocol,
            host,
            path,
            out,
        } => asyncapi(&inputs, protocol, host, path, out),
        Command::Serve { protocol } => run(async move {
            match protocol {
                ServeCommand::Litecord {
                    listen,
                    password,
                    hb_interval,
                    validate_token,
                } => litecord::serve(&listen, password, hb_interval, validate_token).await,
                ServeCommand::Skynet {
                    listen,
                    log_size,
                    log_bytes,
                    broker,
                } => skynet::serve(&listen, log_size, log_bytes, broker.as_deref()).await,
                ServeCommand::Socketcluster {
                    listen,
                    protocol_version,
                    auth_secret,
                    ping_interval,
                    ping_timeout,
                    ask_client,
                    max_connections,
                    broker,
                } => {
                    let options = socketcluster::ServeOptions {
                        protocol_version,
                        auth_secret,
                        ping_interval,
                        ping_timeout,
                        ask_client,
                        max_connections,
                        broker,
                    };
                    socketcluster::serve(&listen, options).await
                }
                ServeCommand::Clusterio { listen, secret } => {
                    clusterio::serve(&listen, secret).await
                }
            }
        }),
        Command::Socketcluster {
            command:
                SocketclusterCommand::Client {
                    url,
                    protocol_version,
                    auth_token,
                    timeout,
                    steps,
                },
        } => run(async move {
            let options = socketcluster::ClientOptions {
                protocol_version,
                auth_token,
                timeout,
                steps,
            };
            socketcluster::client(&url, options).await
        }),
        Command::Skynet { command } => run(async move {
            match command {
                SkynetCommand::Listen { url, channels } => skynet::listen(&url, channels).await,
                SkynetCommand::Send {
                    url,
                    channel,
                    message,
                } => skynet::send(&url, &channel, &message).await,
            }
        }),
        Command::Clusterio {
            command:
                ClusterioCommand::Token {
                    secret,
                    slave,
                    control: _,
                },
        } => match clusterio::token(&secret, slave) {
            Ok(token) => {
                output::Printer::stdout().line_text(&token);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Clusterio { command } => run(async move {
            match command {
                ClusterioCommand::Slave {
                    url,
                    token,
                    id,
                    name,
                } => clusterio::slave(url, token, id, name).await,
                ClusterioCommand::Ctl {
                    url,
                    token,
                    command,
                } => clusterio::ctl(&url, token, command).await,
                ClusterioCommand::Token { .. } => Ok(()),
            }
        }),
        Command::Litecord { command } => run(async move {
            match command {
                LitecordCommand::Connect {
                    url,
                    password,
                    valid_tokens,
                    guilds,
                } => {
                    litecord::connect(url, password, valid_tokens, guilds).await;
                    Ok(())
                }
            }
        }),
    }
}

/// Runs a network command on a tokio runtime, with logs on stderr (`RUST_LOG` respected).
fn run(command: impl std::future::Future<Output = std::io::Result<()>>) -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Prints an error code's title and explanation, from the codegen's table of codes.
fn explain(code: &str) -> ExitCode {
    match protolink_codegen::diagnostics::codes::explain(code) {
        Some(c) => {
            // Through the printer: a closed stdout (`| head`) is not worth a panic.
            output::Printer::stdout()
                .line_text(&format!("{}: {}\n\n{}", c.code, c.title, c.explanation));
            ExitCode::SUCCESS
        }
        None => {
            eprintln!("error: there is no error code `{code}`");
            ExitCode::FAILURE
        }
    }
}

fn check(inputs: &[PathBuf]) -> ExitCode {
    let checked = match Config::new().check(inputs) {
        Ok(checked) => checked,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let rendered = checked.diagnostics.render(&checked.sources);
    eprint!("{rendered}");
    if checked.diagnostics.has_errors() {
        return ExitCode::FAILURE;
    }
    let files = checked.sources.files().count();
    let messages: usize = checked.protocols.iter().map(|p| p.messages.len()).sum();
    // Through the printer: a closed stdout (`| head`) is not worth a panic.
    output::Printer::stdout().line_text(&format!(
        "checked {files} file{}: {} protocol{}, {messages} messages, no errors",
        plural(files),
        checked.protocols.len(),
        plural(checked.protocols.len())
    ));
    ExitCode::SUCCESS
}

fn generate(inputs: &[PathBuf], out: PathBuf) -> ExitCode {
    match Config::new().out_dir(&out).compile(inputs) {
        Ok(generated) => {
            let printer = output::Printer::stdout();
            for g in &generated {
                printer.line_text(&out.join(&g.file_name).display().to_string());
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{error}");
            ExitCode::FAILURE
        }
    }
}

fn schema(inputs: &[PathBuf], out: PathBuf) -> ExitCode {
    write_all(Config::new().generate_schemas(inputs), out)
}

fn docs(inputs: &[PathBuf], out: PathBuf) -> ExitCode {
    write_all(Config::new().generate_docs(inputs), out)
}

/// The TypeScript of the protocols, and the runtime their clients import beside them.
fn with_ts_runtime(
    generated: Result<Vec<protolink_codegen::Generated>, protolink_codegen::Error>,
) -> Result<Vec<protolink_codegen::Generated>, protolink_codegen::Error> {
    use protolink_codegen::emit::ts;
    generated.map(|mut files| {
        files.push(protolink_codegen::Generated {
            protocol: String::new(),
            file_name: ts::RUNTIME_FILE.to_owned(),
            code: ts::RUNTIME.to_owned(),
        });
        files
    })
}

/// Writes generated files under `out` and lists them, or reports why not.
fn write_all(
    generated: Result<Vec<protolink_codegen::Generated>, protolink_codegen::Error>,
    out: PathBuf,
) -> ExitCode {
    let written =
        generated.and_then(|files| protolink_codegen::write_changed(&out, &files).map(|()| files));
    match written {
        Ok(files) => {
            // Written so that a closed stdout (`| head`) cannot panic.
            let printer = output::Printer::stdout();
            for f in &files {
                printer.line_text(&out.join(&f.file_name).display().to_string());
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{error}");
            ExitCode::FAILURE
        }
    }
}

fn asyncapi(
    inputs: &[PathBuf],
    protocol: Option<String>,
    host: String,
    path: Option<String>,
    out: Option<PathBuf>,
) -> ExitCode {
    let server = protolink_codegen::emit::asyncapi::Server { host, path };
    let documents = match Config::new().generate_asyncapi(inputs, &server) {
        Ok(documents) => documents,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(out) = out {
        return match protolink_codegen::write_changed(&out, &documents) {
            Ok(()) => {
                let printer = output::Printer::stdout();
                for d in &documents {
                    printer.line_text(&out.join(&d.file_name).display().to_string());
                }
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("{error}");
                ExitCode::FAILURE
            }
        };
    }
    let chosen = match &protocol {
        Some(name) => documents.iter().find(|d| &d.protocol == name),
        None => documents.last(),
    };
    match chosen {
        Some(d) => {
            output::Printer::stdout().line_text(d.code.trim_end());
            ExitCode::SUCCESS
        }
        None => {
            let names: Vec<&str> = documents.iter().map(|d| d.protocol.as_str()).collect();
            eprintln!(
                "error: no protocol {:?} among those given ({})",
                protocol.unwrap_or_default(),
                names.join(", ")
            );
            ExitCode::FAILURE
        }
    }
}

fn diff(old: &PathBuf, new: &PathBuf, with: &[PathBuf]) -> ExitCode {
    let load = |file: &PathBuf| {
        let mut inputs = with.to_vec();
        inputs.push(file.clone());
        let checked = Config::new().check_clean(&inputs)?;
        let found = checked.protocols.iter().position(|p| p.source == *file);
        Ok::<_, protolink_codegen::Error>((checked, found))
    };
    let (old_checked, new_checked) = match (load(old), load(new)) {
        (Ok(o), Ok(n)) => (o, n),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let (Some(o), Some(n)) = (old_checked.1, new_checked.1) else {
        eprintln!("error: no protocol in the files compared");
        return ExitCode::from(2);
    };
    let (old_checked, new_checked) = (old_checked.0, new_checked.0);
    let changes =
        protolink_codegen::diff::diff(&old_checked.protocols[o], &new_checked.protocols[n]);
    let rendered =
        protolink_codegen::diff::render(&changes, &old_checked.sources, &new_checked.sources);
    output::Printer::stdout().line_text(rendered.trim_end());
    if changes.iter().any(|c| c.breaking) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

//! `iaso`: the Iaso binary. `iaso serve` runs the server; `iaso import` loads FHIR data;
//! `iaso user create` / `iaso user list` manage accounts.

mod import;
mod user;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use server::bundle::BundleOptions;
use server::negotiate::PreferReturn;
use store::Store;
use tracing_subscriber::EnvFilter;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "iaso", version, about = "Iaso: a FHIR R4 server and clinic platform in one binary")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log format: `json` (one object per line) or `text`; defaults to text on a terminal.
    #[arg(long, env = "IASO_LOG_FORMAT", global = true)]
    log_format: Option<String>,
}

#[derive(Args, Clone)]
struct StoreArgs {
    /// Directory for the SQLite database, keys and binaries.
    #[arg(long, env = "IASO_DATA_DIR", default_value = "./iaso-data")]
    data_dir: PathBuf,
    /// `sqlite://PATH` (default: iaso.db in the data directory) or `postgres://…`.
    #[arg(long, env = "IASO_DATABASE_URL")]
    database: Option<String>,
}

/// Sign-in and session settings of `iaso serve`.
#[derive(Args, Clone)]
struct IdentityArgs {
    /// Minutes without activity after which a browser session ends (automatic logoff).
    #[arg(long, env = "IASO_SESSION_IDLE_MINUTES", default_value_t = 15, value_parser = clap::value_parser!(i64).range(1..=1440))]
    session_idle_minutes: i64,
    /// Hours after sign-in after which a browser session ends whatever its activity.
    #[arg(long, env = "IASO_SESSION_MAX_HOURS", default_value_t = 12, value_parser = clap::value_parser!(i64).range(1..=720))]
    session_max_hours: i64,
    /// Whether staff (every role but patient) must set up two-step verification.
    #[arg(long, env = "IASO_MFA_FOR_STAFF", default_value_t = true, action = clap::ArgAction::Set)]
    mfa_for_staff: bool,
}

impl IdentityArgs {
    fn config(&self) -> server::idp::IdentityConfig {
        server::idp::IdentityConfig {
            session: auth::session::SessionPolicy {
                idle_seconds: self.session_idle_minutes * 60,
                absolute_seconds: self.session_max_hours * 3600,
            },
            require_mfa_for_staff: self.mfa_for_staff,
            ..Default::default()
        }
    }
}

impl StoreArgs {
    async fn open(&self) -> Result<Arc<dyn Store>, String> {
        store::open(self.database.as_deref(), &self.data_dir).await.map_err(|e| format!("cannot open the store: {e}"))
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        #[command(flatten)]
        store: StoreArgs,
        /// Address to listen on (`127.0.0.1:0` picks a free port and prints it).
        #[arg(long, env = "IASO_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Seed a demo clinic into an empty store.
        #[arg(long)]
        demo: bool,
        /// Number of demo patients.
        #[arg(long, default_value_t = 25, requires = "demo")]
        demo_patients: usize,
        /// The FHIR base URL clients use, e.g. https://clinic.example/fhir (default: from Host).
        #[arg(long, env = "IASO_BASE_URL")]
        base_url: Option<String>,
        /// Largest accepted request body, in bytes.
        #[arg(long, env = "IASO_MAX_BODY_BYTES", default_value_t = server::DEFAULT_MAX_BODY_BYTES)]
        max_body_bytes: usize,
        #[command(flatten)]
        identity: IdentityArgs,
    },
    /// Load FHIR Bundles (transaction, batch, collection) and NDJSON files or directories.
    Import {
        #[command(flatten)]
        store: StoreArgs,
        /// Files or directories (searched recursively for .json and .ndjson).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Files loaded at once; SQLite serialises writes, so more only overlaps parsing.
        #[arg(long, default_value_t = 3)]
        parallel: usize,
    },
    /// Manage the token signing keys in the data directory.
    Keys {
        #[command(subcommand)]
        action: KeysCommand,
    },
    /// Manage accounts.
    User {
        #[command(subcommand)]
        action: UserCommand,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// List the keys, one JSON object per line: kid, algorithm, created and retired times.
    List {
        /// The directory holding the database and keys.
        #[arg(long, env = "IASO_DATA_DIR", default_value = "./iaso-data")]
        data_dir: PathBuf,
    },
    /// Make a new key of each algorithm and retire the current ones; retired keys stay
    /// published (tokens they signed still verify) for `--keep-hours`, then are deleted.
    Rotate {
        #[arg(long, env = "IASO_DATA_DIR", default_value = "./iaso-data")]
        data_dir: PathBuf,
        /// Longer than the longest token lifetime, so no token outlives its key.
        #[arg(long, default_value_t = 48)]
        keep_hours: i64,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// List the accounts, one JSON object per line, in email order (never a password hash).
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Create an account; prints it as JSON.
    Create {
        #[command(flatten)]
        store: StoreArgs,
        /// The sign-in email (compared without regard to case).
        #[arg(long)]
        email: String,
        /// A role (patient, practitioner, nurse, front-desk, billing, admin, researcher, or one of
        /// the clinic's own); repeat for several.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// The FHIR identity the account acts as: Patient/id, Practitioner/id or RelatedPerson/id.
        #[arg(long)]
        fhir_user: Option<String>,
        /// Read the password from the first line of standard input (without it the account is
        /// invited and has no password yet).
        #[arg(long)]
        password_stdin: bool,
    },
}

fn init_logging(format: Option<&str>) {
    let filter = EnvFilter::try_from_env("IASO_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match format {
        Some(f) => f == "json",
        None => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        builder.json().with_current_span(true).with_span_list(false).init();
    } else {
        builder.compact().init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format.as_deref());
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("iaso: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve { store, listen, demo, demo_patients, base_url, max_body_bytes, identity } => {
                let config = server::Config { base_url, max_body_bytes, identity: identity.config() };
                serve(store, listen, demo.then_some(demo_patients), config).await
            }
            Command::Import { store, paths, parallel } => {
                let store = store.open().await?;
                let summary = import::run(store, &paths, parallel.max(1)).await?;
                summary.print();
                if summary.failures.is_empty() { Ok(()) } else { Err(format!("{} failure(s)", summary.failures.len())) }
            }
            Command::User { action: UserCommand::List { store } } => {
                let store = store.open().await?;
                user::list(store.as_ref(), &mut std::io::stdout().lock()).await.map(|_| ())
            }
            Command::Keys { action } => keys_command(action),
            Command::User { action: UserCommand::Create { store, email, roles, fhir_user, password_stdin } } => {
                let password = if password_stdin { Some(user::read_password()?) } else { None };
                let store = store.open().await?;
                let created = user::create(store.as_ref(), user::NewUser { email, roles, fhir_user, password }).await?;
                println!("{created}");
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("iaso: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(
    store_args: StoreArgs,
    listen: SocketAddr,
    demo_patients: Option<usize>,
    config: server::Config,
) -> Result<(), String> {
    let started = std::time::Instant::now();
    // Decoding the definitions up front keeps the first request fast and fails early if the
    // embedded file were damaged.
    let resource_types = fhir::definitions().resource_types().count();
    let store = store_args.open().await?;
    if let Some(patients) = demo_patients {
        seed_demo(store.as_ref(), patients).await?;
    }
    let listener =
        tokio::net::TcpListener::bind(listen).await.map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let keys_dir = store_args.data_dir.join("keys");
    let keys = server::signing::SigningKeys::open(keys_dir.clone())
        .map_err(|e| format!("cannot open the signing keys in {}: {e}", keys_dir.display()))?;
    let mut state = server::AppState::new(store.clone(), config);
    state.keys = Some(Arc::new(keys));
    server::reindex::on_start(&state).await.map_err(|e| format!("cannot prepare the search index: {e}"))?;
    let shutdown = shutdown_signal()?;
    tracing::info!(
        address = %local,
        store = store.backend(),
        resource_types,
        startup_ms = started.elapsed().as_millis() as u64,
        "Iaso is ready"
    );
    println!("Iaso FHIR R4 server listening on http://{local}/fhir ({} store)", store.backend());
    server::serve(listener, state, shutdown).await.map_err(|e| format!("server error: {e}"))?;
    tracing::info!("stopped");
    Ok(())
}

fn keys_command(action: KeysCommand) -> Result<(), String> {
    let now = chrono::Utc::now().timestamp();
    let (ring, dir) = match action {
        KeysCommand::List { data_dir } => {
            let dir = data_dir.join("keys");
            (auth::keys::KeyRing::load(&dir), dir)
        }
        KeysCommand::Rotate { data_dir, keep_hours } => {
            let dir = data_dir.join("keys");
            (auth::keys::KeyRing::rotate(&dir, now, keep_hours.max(0) * 3600), dir)
        }
    };
    let ring = ring.map_err(|e| format!("signing keys in {}: {e}", dir.display()))?;
    for key in ring.keys() {
        let line = serde_json::json!({
            "kid": key.kid, "alg": key.alg.as_str(), "created": key.created, "retiredAt": key.retired_at,
        });
        println!("{line}");
    }
    Ok(())
}

/// Resolves on the first SIGTERM or SIGINT. The handlers are installed when this is called, not
/// when the future is first polled, so a signal that arrives right after start-up is not lost
/// (nor does it kill the process before the handlers exist).
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>, String> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).map_err(|e| format!("cannot handle SIGTERM: {e}"))?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(|e| format!("cannot handle SIGINT: {e}"))?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {},
            _ = interrupt.recv() => {},
        }
        tracing::info!("shutting down: finishing in-flight requests");
    })
}

/// Loads the deterministic demo clinic into an empty store; a store with data is left alone.
async fn seed_demo(store: &dyn Store, patients: usize) -> Result<(), String> {
    let existing = store
        .history_total(store::DEFAULT_TENANT, &store::HistoryQuery { count: 1, ..Default::default() })
        .await
        .map_err(|e| e.to_string())?;
    if existing > 0 {
        println!("Demo: the store already holds data; nothing seeded.");
        return Ok(());
    }
    let prepared =
        server::reindex::prepare(store).await.map_err(|e| format!("cannot prepare the search index: {e}"))?;
    let options = BundleOptions::new("http://localhost/fhir", PreferReturn::Minimal, prepared.registry);
    let mut resources = 0;
    for bundle in demo::demo_clinic(DEMO_SEED, patients) {
        resources += bundle.get("entry").and_then(|e| e.as_array()).map_or(0, Vec::len);
        server::bundle::process(store, store::DEFAULT_TENANT, &bundle, &options)
            .await
            .map_err(|e| format!("demo data failed to load: {:?}", e.issues()))?;
    }
    println!("Demo clinic seeded: {patients} patients, {resources} resources.");
    user::seed_demo_accounts(store).await
}

const DEMO_SEED: u64 = 20_260_101;

//! The daemon (`redeemd run`): composition only. It starts the ledger owner, the scanner
//! and its bridge, the forwarder loop and the HTTP server, wires their channels, talks
//! to systemd (READY, WATCHDOG while every loop is alive, STOPPING) and owns shutdown.
//! No rules live here: decisions are the core's, SQL the store's, HTTP to upstream the
//! syncer's.
//!
//! ```text
//!  scanner thread ─frames─► bridge ─┐                       ┌─► EventBus ─► SSE, wait, sync events
//!  axum (api, pages) ───── jobs ────┼─► ledger owner ───────┤
//!  sync loop ◄──── Notify ──────────┘   (one thread, the     └─► feedback ─► scanner (good/bad read)
//!                                        only SQLite writer)
//! ```

pub mod api;
pub mod body;
pub mod guard;
pub mod hubwork;
pub mod identity;
pub mod ledger;
pub mod login;
pub mod metrics;
pub mod pages;

use crate::agent::Agent;
use crate::clock::Clock;
use crate::config::Config;
use crate::events::{EventBus, EventKind};
use crate::messages::Text;
use crate::scanner::transport::{PortSpec, Scanner, ScannerEvent};
use crate::scanner::{profile, Feedback};
use crate::sync::{AgentAccess, Cadence, Syncer};
use api::{AppState, ScannerStatus, SyncStatus};
use ledger::{LedgerHandle, ScanOutcome, Source};
use metrics::Metrics;
use serde_json::json;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use thiserror::Error;
use tokio_util::sync::CancellationToken;

pub use crate::config::{DEFAULT_LISTEN, DEFAULT_PROFILE};
pub use crate::local_daemon::LISTEN_FILE;
/// How long shutdown may take before the process gives up waiting (the spec allows 5 s).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(4);

/// `run`'s flags; each overrides the config. Not `Clone`: it may carry the listen socket.
#[derive(Debug, Default)]
pub struct RunOptions {
    pub listen: Option<String>,
    pub scanner: Option<String>,
    pub profile: Option<String>,
    /// More pages beside the terminal's own (the interactive demo's `/demo`).
    pub extra_routes: Option<axum::Router<Arc<AppState>>>,
    /// The config file, for `doctor` from the manager's page.
    pub config_path: Option<std::path::PathBuf>,
    /// A socket already bound to the listen address, served instead of binding one: the
    /// live demo binds before it prints its links, so a taken port fails before them.
    pub listener: Option<std::net::TcpListener>,
}

/// Why the daemon did not start (or stopped serving). A text of the message tables: the
/// command line says it in the configured language; `Display` (the log) stays English.
#[derive(Debug, Error)]
pub enum RunError {
    /// A configuration the daemon refuses to start with (exit 2).
    #[error("{0}")]
    Config(Text),
    #[error("{0}")]
    Start(Text),
}

impl RunError {
    pub fn text(&self) -> &Text {
        match self {
            RunError::Config(text) | RunError::Start(text) => text,
        }
    }
}

/// The listen address could not be bound (by `run`, or by the live demo beforehand).
pub fn listen_failed(addr: SocketAddr, e: std::io::Error) -> RunError {
    // An address in use is the common case (another daemon): said in full words.
    let key = if e.kind() == std::io::ErrorKind::AddrInUse { "run.listen_in_use" } else { "run.listen" };
    RunError::Start(Text::new(key, vec![("addr", addr.to_string()), ("error", e.to_string())]))
}

/// A start-up step that failed, with the system's own reason quoted as it is.
fn start_failed(key: &'static str, error: impl std::fmt::Display) -> RunError {
    RunError::Start(Text::new(key, vec![("error", error.to_string())]))
}

/// The listen address: flag, else config, else the default; loopback unless allowed.
pub fn listen_address(config: &Config, flag: Option<&str>) -> Result<SocketAddr, RunError> {
    let text = flag.or(config.api.as_ref().and_then(|a| a.listen.as_deref())).unwrap_or(DEFAULT_LISTEN);
    let addr: SocketAddr = text
        .parse()
        .map_err(|_| RunError::Config(Text::new("run.listen_format", vec![("value", format!("{text:?}"))])))?;
    let allowed = config.api.as_ref().is_some_and(|a| a.allow_remote);
    if !addr.ip().is_loopback() && !allowed {
        return Err(RunError::Config(Text::new("run.listen_remote", vec![("addr", addr.to_string())])));
    }
    Ok(addr)
}

/// Runs the daemon until SIGTERM or SIGINT. `clock` is the daemon's one time source.
pub fn run(config: &Config, agent: Agent, clock: Arc<dyn Clock>, mut options: RunOptions) -> Result<(), RunError> {
    let addr = listen_address(config, options.listen.as_deref())?;
    let scanner_text = options
        .scanner
        .clone()
        .or_else(|| config.scanner.as_ref().and_then(|s| s.port.clone()))
        .unwrap_or_else(|| "auto".into());
    let profile_id = options
        .profile
        .clone()
        .or_else(|| config.scanner.as_ref().and_then(|s| s.profile.clone()))
        .unwrap_or_else(|| DEFAULT_PROFILE.into());
    let scanner_profile = if scanner_text == "none" {
        None
    } else {
        Some(
            profile::load(&profile_id)
                .map_err(|e| RunError::Config(Text::new("run.profile", vec![]).with("error", e.text())))?,
        )
    };
    if crate::secret::ensure_pos_token(&config.data_dir).map_err(|e| {
        let path = config.data_dir.join("pos-token").display().to_string();
        RunError::Start(Text::new("run.pos_token", vec![("path", path), ("error", e.to_string())]))
    })? {
        tracing::info!("made the POS token (`redeemd pos-token` prints it)");
    }
    let upstream = match &config.upstream {
        Some(up) => Some((
            crate::upstream::client_for(config, up)
                .map_err(|e| RunError::Config(Text::new("run.upstream", vec![]).with("error", e.text())))?,
            up.terminal_id.clone(),
            Cadence {
                heartbeat: Duration::from_secs(up.heartbeat_secs),
                refresh: Duration::from_secs(up.refresh_minutes.saturating_mul(60)),
            },
        )),
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("redeemd-rt")
        .enable_all()
        .build()
        .map_err(|e| start_failed("run.runtime", e))?;

    let bus = Arc::new(EventBus::default());
    let metrics = Arc::new(Metrics::default());
    let wake_forwarder = Arc::new(tokio::sync::Notify::new());
    let sync_state = load_sync_state(&agent);
    // The store hub: connecting goes on in the background; until it answers, the lane
    // decides as if it were down.
    let store_problem = |problem: String| RunError::Config(Text::new("config.store", vec![("problem", problem)]));
    let hub_link = match hubwork::settings(config).map_err(store_problem)? {
        None => None,
        Some(settings) => {
            let hub = runtime.block_on(crate::hub::Hub::connect(settings)).map_err(|e| store_problem(e.to_string()))?;
            Some(hubwork::HubLink {
                hub,
                runtime: runtime.handle().clone(),
                wake: Arc::new(tokio::sync::Notify::new()),
            })
        }
    };
    let (ledger, owner) = ledger::spawn(agent, bus.clone(), metrics.clone(), wake_forwarder.clone(), hub_link.clone())
        .map_err(|e| start_failed("run.ledger_owner", e))?;
    let hub_status = Arc::new(Mutex::new(serde_json::Value::Null));
    let shutdown = CancellationToken::new();
    let state = Arc::new(AppState {
        ledger: ledger.clone(),
        bus: bus.clone(),
        metrics: metrics.clone(),
        clock,
        pos_token: crate::secret::WatchedFile::new(crate::secret::pos_token_path(&config.data_dir)),
        manager_pin: crate::secret::WatchedFile::new(config.data_dir.join(crate::secret::MANAGER_PIN_FILE)),
        data_dir: config.data_dir.clone(),
        terminal_id: config.upstream.as_ref().map(|u| u.terminal_id.clone()),
        merchant_id: config.merchant_id.clone(),
        merchant_name: config.merchant_name.clone(),
        language: config.language,
        scanner: Mutex::new(ScannerStatus {
            state: if scanner_profile.is_some() { "disconnected" } else { "none" },
            port: (scanner_text != "none").then(|| scanner_text.clone()),
            profile: scanner_profile.as_ref().map(|p| p.id.clone()),
        }),
        sync: Mutex::new(None),
        shutdown: shutdown.clone(),
        login: Mutex::new(api::LoginThrottle::default()),
        sessions_ended: Default::default(),
        config_path: options.config_path.clone(),
        identity: std::sync::OnceLock::new(),
        hub: hub_link.as_ref().map(|link| link.hub.clone()),
        hub_status: hub_status.clone(),
        store_day: Arc::new(hubwork::StoreDay::default()),
    });
    metrics.scanner_state(if scanner_profile.is_some() { "disconnected" } else { "none" });

    let result = runtime.block_on(async {
        let listener = match options.listener.take() {
            Some(bound) => bound
                .set_nonblocking(true)
                .and_then(|()| tokio::net::TcpListener::from_std(bound))
                .map_err(|e| listen_failed(addr, e))?,
            None => tokio::net::TcpListener::bind(addr).await.map_err(|e| listen_failed(addr, e))?,
        };
        let bound = listener.local_addr().map_err(|e| start_failed("run.listen_address", e))?;
        // A fresh key before the address: `doctor`, `restore` and the command line send
        // the POS token only to a listener that proves it holds the key of this run, so
        // a process that takes the port after we are gone gets nothing. A daemon whose
        // key cannot be written would be taken for a stranger: it does not start.
        let identity = crate::local_daemon::Identity::create(&config.data_dir, bound).map_err(|e| {
            let path = crate::local_daemon::key_path(&config.data_dir).display().to_string();
            RunError::Start(Text::new("run.daemon_key", vec![("path", path), ("error", e.to_string())]))
        })?;
        let _ = state.identity.set(identity);
        let _ = crate::secret::write_atomic(&config.data_dir.join(LISTEN_FILE), bound.to_string().as_bytes(), 0o644);
        // The first line on stdout: scripts and tests read the port from it (the address
        // file and the key are written by then); `redeemd cashier-url` reads the address file.
        // Not `println!`: a reader that went away (`run | head -1`) must not panic us.
        let _ = writeln!(std::io::stdout(), "redeemd: listening on http://{bound}");
        tracing::info!(%bound, "local API listening");

        let scanner = scanner_profile.map(|p| {
            let spec = PortSpec::parse(&scanner_text);
            let scanner = Scanner::spawn(spec, p);
            let stopper = scanner.stopper();
            let bridge_state = state.clone();
            let finished = BridgeAlive::default();
            let flag = finished.clone();
            let bridge = std::thread::Builder::new()
                .name("scanner-bridge".into())
                .spawn(move || {
                    bridge_scanner(scanner, &bridge_state);
                    flag.store(true, std::sync::atomic::Ordering::Relaxed);
                })
                .expect("spawning the scanner bridge");
            (stopper, bridge, finished)
        });

        let sync_task = upstream.map(|(client, terminal_id, cadence)| {
            let syncer = Syncer::with_state(
                AgentAccess::Owner(ledger.clone()),
                client,
                terminal_id,
                config.data_dir.clone(),
                sync_state,
            );
            tokio::spawn(sync_loop(state.clone(), syncer, cadence, wake_forwarder.clone(), shutdown.clone()))
        });

        let hub_task = hub_link.clone().map(|link| {
            let work = hubwork::work_loop(
                link,
                ledger.clone(),
                bus.clone(),
                metrics.clone(),
                hub_status.clone(),
                state.store_day.clone(),
                shutdown.clone(),
            );
            tokio::spawn(work)
        });

        let bridge_alive = scanner.as_ref().map(|(_, _, finished)| finished.clone());
        let watchdog = tokio::spawn(watchdog(ledger.clone(), shutdown.clone(), bridge_alive));
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
        tokio::spawn(wait_for_signal(shutdown.clone()));

        let own = guard::OwnHosts::new(bound, config.api.as_ref().is_some_and(|a| a.allow_remote));
        let app = app(state.clone(), options.extra_routes.take(), own);
        let serve = axum::serve(listener, app).with_graceful_shutdown(shutdown.clone().cancelled_owned());
        let mut serving = tokio::spawn(async move { serve.await });
        let served = tokio::select! {
            served = &mut serving => Some(served),
            _ = shutdown.cancelled() => None,
        };
        shutdown.cancel();
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
        tracing::info!("stopping: no more requests or scans");
        watchdog.abort();
        // Scans stop at once; the bridge finishes the decision in hand, then sees the
        // scanner gone.
        let bridge = scanner.map(|(stopper, bridge, _)| {
            stopper.stop();
            tokio::task::spawn_blocking(move || bridge.join())
        });
        // Requests in flight get a moment to finish; a client that holds a half-sent
        // request open does not hold the process (the spec allows 5 s in all).
        let served = match served {
            Some(served) => served,
            None => match tokio::time::timeout(SHUTDOWN_GRACE / 2, &mut serving).await {
                Ok(served) => served,
                Err(_) => {
                    tracing::warn!("connections still open after {:?}: closing them", SHUTDOWN_GRACE / 2);
                    serving.abort();
                    Ok(Ok(()))
                }
            },
        };
        if let Some(task) = sync_task {
            // The forwarder stops between requests; an answer in flight is applied, or
            // the events are sent again next time (upstream's event_id makes that safe).
            let _ = tokio::time::timeout(SHUTDOWN_GRACE / 4, task).await;
        }
        if let Some(bridge) = bridge {
            let _ = tokio::time::timeout(SHUTDOWN_GRACE / 4, bridge).await;
        }
        if let Some(task) = hub_task {
            let _ = tokio::time::timeout(SHUTDOWN_GRACE / 4, task).await;
        }
        match served {
            Ok(result) => result.map_err(|e| start_failed("run.serve", e)),
            Err(e) => Err(start_failed("run.server_failed", e)),
        }
    });
    ledger.stop();
    let _ = owner.join();
    runtime.shutdown_timeout(Duration::from_millis(200));
    result
}

/// The whole HTTP surface: the local API, the pages, the identity proof and any extra
/// routes (the live demo's), each call but the event stream within the request timeout,
/// every body within the limit, and nothing routed before the Host and origin checks.
fn app(state: Arc<AppState>, extra: Option<axum::Router<Arc<AppState>>>, own: guard::OwnHosts) -> axum::Router {
    use axum::routing::get;
    let timed = api::routes()
        .merge(pages::router())
        .merge(identity::router())
        .merge(extra.unwrap_or_default())
        .layer(axum::middleware::from_fn(api::request_timeout));
    axum::Router::new()
        .route("/v1/events", get(api::events))
        .merge(timed)
        .fallback(|| async { api::error(404, "not_found", "no such path") })
        .method_not_allowed_fallback(|| async {
            api::error(405, "method_not_allowed", "this path does not take that method")
        })
        .layer(axum::extract::DefaultBodyLimit::max(api::BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(Arc::new(own), api::guard))
        .with_state(state)
}

fn load_sync_state(agent: &Agent) -> crate::sync::SyncState {
    crate::sync::load_state(agent.store()).unwrap_or_default()
}

async fn wait_for_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).ok();
    let mut int = signal(SignalKind::interrupt()).ok();
    tokio::select! {
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        _ = async { match int.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        _ = shutdown.cancelled() => return,
    }
    // Cancel first: nothing after this (a log line to a closed stderr, say) may stop it.
    shutdown.cancel();
    tracing::info!("signal received: shutting down");
}

/// Pings systemd's watchdog at half its interval, but only while the ledger owner answers
/// and the scanner bridge runs: a stuck writer stops the pings and systemd restarts us.
async fn watchdog(ledger: LedgerHandle, shutdown: CancellationToken, bridge: Option<BridgeAlive>) {
    let Some(interval) = sd_notify::watchdog_enabled() else {
        return;
    };
    let period = interval / 2;
    loop {
        let ledger_ok = tokio::time::timeout(period, ledger.call(|_| ())).await.is_ok_and(|r| r.is_ok());
        let bridge_ok = bridge.as_ref().is_none_or(|b| !b.is_finished());
        if ledger_ok && bridge_ok {
            let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
        } else {
            tracing::error!(ledger_ok, bridge_ok, "a loop is stuck or gone: withholding the watchdog ping");
        }
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Set by the scanner bridge when it ends.
type BridgeAlive = Arc<std::sync::atomic::AtomicBool>;

trait Finished {
    fn is_finished(&self) -> bool;
}

impl Finished for BridgeAlive {
    fn is_finished(&self) -> bool {
        self.load(std::sync::atomic::Ordering::Relaxed)
    }
}

fn set_scanner(state: &AppState, status: ScannerStatus) {
    let changed = {
        let mut current = state.scanner.lock().unwrap_or_else(|e| e.into_inner());
        let changed = *current != status;
        *current = status.clone();
        changed
    };
    if changed {
        state.metrics.scanner_state(status.state);
        state.bus.publish(EventKind::Scanner, json!(status));
    }
}

/// Carries scanner frames to the ledger owner and its decisions back as feedback.
fn bridge_scanner(scanner: Scanner, state: &AppState) {
    let (port, profile) = {
        let s = state.scanner.lock().unwrap_or_else(|e| e.into_inner());
        (s.port.clone(), s.profile.clone())
    };
    while let Some(event) = scanner.recv() {
        match event {
            ScannerEvent::Connected { port } => {
                set_scanner(state, ScannerStatus { state: "connected", port: Some(port), profile: profile.clone() })
            }
            ScannerEvent::Disconnected { .. } | ScannerEvent::Unavailable { .. } => set_scanner(
                state,
                ScannerStatus { state: "disconnected", port: port.clone(), profile: profile.clone() },
            ),
            ScannerEvent::Frame { text, .. } => {
                let code = text.clone();
                let outcome = state.ledger.call_blocking(move |l| l.present(None, &code, Source::Scanner, None).1);
                let feedback = match outcome {
                    Ok(ScanOutcome::Accepted) => Feedback::Good,
                    Ok(ScanOutcome::Refused) => Feedback::Bad,
                    Ok(ScanOutcome::NoCheckout) => {
                        // Not taken, so not a scan to suppress: the cashier who opens a
                        // checkout after the bad-read (or just tries again) rescans at once,
                        // and a duplicate would be dropped without a sound. Forgotten before
                        // the beep, so before any rescan.
                        scanner.forget(text);
                        Feedback::Bad
                    }
                    Err(_) => return,
                };
                scanner.feedback(feedback);
            }
            ScannerEvent::Discarded { reason, bytes } => {
                state.metrics.discarded(reason.as_str());
                state.bus.publish(EventKind::Scan, json!({"discarded": reason.as_str(), "bytes": bytes}));
            }
        }
    }
}

/// Heartbeat, refresh and forwarding on the spec's cadence, woken at once by a new
/// outbox event; publishes `sync` events as things change (the ledger owner announces
/// rule sets).
async fn sync_loop(
    state: Arc<AppState>,
    mut syncer: Syncer<'static>,
    cadence: Cadence,
    wake: Arc<tokio::sync::Notify>,
    shutdown: CancellationToken,
) {
    let scanner_state = state.clone();
    syncer.scanner_state =
        Box::new(move || scanner_state.scanner.lock().map(|s| s.state.to_owned()).unwrap_or_default());
    let mut announced_pause = false;
    let mut published: Option<(&'static str, u64, Option<String>)> = None;
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        let step = tokio::select! {
            step = syncer.tick(cadence, &mut announced_pause) => step,
            _ = shutdown.cancelled() => return,
        };
        let wait = match step {
            Ok(wait) => wait,
            Err(e) => {
                tracing::warn!(error = %e, "sync loop: ledger not reachable");
                Some(Duration::from_secs(1))
            }
        };
        let sync_state = match (&syncer.state.paused, syncer.state.failures) {
            (Some(_), _) => "paused",
            (None, 0) => "online",
            _ => "offline",
        };
        *state.sync.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(SyncStatus { state: sync_state, last_error: syncer.state.last_error.clone() });
        if let Ok(Ok(status)) = state.ledger.call(|l| l.status()).await {
            let now = (sync_state, status.unsynced, status.last_sync.clone());
            if published.as_ref() != Some(&now) {
                state.bus.publish(
                    EventKind::Sync,
                    json!({"state": sync_state, "unsynced": status.unsynced, "last_sync": status.last_sync}),
                );
                published = Some(now);
            }
        }
        if let Some(wait) = wait {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = wake.notified() => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }
}

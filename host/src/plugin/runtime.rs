//! The wasmtime engine and linker shared by every plugin of a run: component model on,
//! async and concurrency off (halves the call cost), epoch interruption for hook time-outs.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine};

use crate::plugin::state::PluginState;

/// The most stack a plugin's WebAssembly may use.
pub const STACK_BYTES: usize = 1 << 20;

/// How often the epoch advances; hook time-outs are counted in these ticks.
pub const TICK: Duration = Duration::from_millis(100);

pub struct Runtime {
    pub engine: Engine,
    /// Modules and data modules: WASI and every `lt:plugin` import.
    pub linker: Linker<PluginState>,
    /// Loggers and callbacks: WASI only (their worlds import nothing else).
    pub wasi_linker: Linker<PluginState>,
    pub cache: Option<super::cache::ComponentCache>,
    /// Components loaded from the cache / compiled, for the summary.
    pub hits: AtomicUsize,
    pub compiled: AtomicUsize,
}

impl Runtime {
    pub fn new() -> anyhow::Result<Arc<Runtime>> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.concurrency_support(false);
        config.epoch_interruption(true);
        // Deep recursion in a plugin ends in a "call stack exhausted" trap, not a crash.
        config.max_wasm_stack(STACK_BYTES);
        // `LTHOST_PERFMAP=1`: /tmp/perf-<pid>.map names the plugins' functions for `perf`.
        if std::env::var_os("LTHOST_PERFMAP").is_some() {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&config).map_err(|e| anyhow::anyhow!("wasmtime engine: {e:?}"))?;
        let mut wasi_linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut wasi_linker).map_err(|e| anyhow::anyhow!("linking WASI: {e:?}"))?;
        super::interrupt::add_to_linker(&mut wasi_linker).map_err(|e| anyhow::anyhow!("linking WASI clocks: {e:?}"))?;
        super::disk_quota::add_to_linker(&mut wasi_linker)
            .map_err(|e| anyhow::anyhow!("linking WASI file writes: {e:?}"))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(|e| anyhow::anyhow!("linking WASI: {e:?}"))?;
        super::interrupt::add_to_linker(&mut linker).map_err(|e| anyhow::anyhow!("linking WASI clocks: {e:?}"))?;
        super::disk_quota::add_to_linker(&mut linker)
            .map_err(|e| anyhow::anyhow!("linking WASI file writes: {e:?}"))?;
        super::views::add_to_linker(&mut linker).map_err(|e| anyhow::anyhow!("linking lt:plugin: {e:?}"))?;
        start_ticker(&engine);
        let cache = super::cache::ComponentCache::from_env();
        Ok(Arc::new(Runtime {
            engine,
            linker,
            wasi_linker,
            cache,
            hits: AtomicUsize::new(0),
            compiled: AtomicUsize::new(0),
        }))
    }

    /// A component from the cache, or compiled (call only for admitted plugins); `sha256`
    /// is the bytes' digest.
    pub fn component(&self, bytes: &[u8], sha256: &str) -> anyhow::Result<Component> {
        let (c, outcome) = match &self.cache {
            Some(cache) => cache.load_or_compile(&self.engine, bytes, sha256)?,
            None => (
                Component::new(&self.engine, bytes).map_err(|e| anyhow::anyhow!("{e}"))?,
                super::cache::Outcome::Compiled,
            ),
        };
        tracing::debug!(?outcome, cache = ?self.cache.as_ref().map(|c| &c.dir), "component");
        let counter = if outcome == super::cache::Outcome::Hit { &self.hits } else { &self.compiled };
        counter.fetch_add(1, Ordering::Relaxed);
        Ok(c)
    }
}

/// One background thread per process advances the epoch of the engines it was given; on a
/// signal it jumps them past every hook's deadline once (see [`super::interrupt`]).
fn start_ticker(engine: &Engine) {
    static TICKER: OnceLock<std::sync::Mutex<Vec<wasmtime::EngineWeak>>> = OnceLock::new();
    let mut started = false;
    let engines = TICKER.get_or_init(|| {
        started = true;
        std::sync::Mutex::new(Vec::new())
    });
    if let Ok(mut list) = engines.lock() {
        list.push(engine.weak());
    }
    if started {
        std::thread::spawn(move || {
            let mut jumped = false;
            let mut seen: Option<std::time::Instant> = None;
            loop {
                std::thread::sleep(TICK);
                // A signal gets a grace period first: a plugin that returns in time lets the
                // loops save between steps, with its own state.
                if super::interrupt::signalled() != 0 && seen.is_none() {
                    seen = Some(std::time::Instant::now());
                }
                let jump = !jumped
                    && super::interrupt::stops_inside_hooks()
                    && seen.is_some_and(|t| t.elapsed() >= super::interrupt::SIGNAL_GRACE);
                jumped |= jump;
                if let Ok(mut list) = engines.lock() {
                    list.retain(|w| match w.upgrade() {
                        Some(e) => {
                            let n = if jump { super::interrupt::SIGNAL_JUMP } else { 1 };
                            for _ in 0..n {
                                e.increment_epoch();
                            }
                            true
                        }
                        None => false,
                    });
                }
            }
        });
    }
}

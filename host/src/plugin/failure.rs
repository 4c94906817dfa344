//! Turns what a failed guest call returns (a host op error, a trap, a limit hit) into a
//! [`PluginError`] naming the plugin, the hook and, where there is one, the op.

use wasmtime::{Trap, WasmBacktrace};

use crate::error::{OpError, PluginError};

/// The op a guest frame was calling, read from its demangled name
/// (`…::lt::plugin::tensor::Tensor::matmul` → `matmul`).
fn op_from_frame(raw: &str) -> Option<String> {
    let name = demangle(raw);
    if !["plugin::tensor::", "plugin::nn::", "plugin::log::"].iter().any(|m| name.contains(m)) {
        return None;
    }
    name.rsplit("::").next().map(|s| s.trim_end_matches('>').to_string())
}

/// Frames of the guest's standard library and allocator, which say nothing about the plugin.
fn is_runtime_frame(name: &str) -> bool {
    ["std::", "core::", "alloc::", "__rustc", "dlmalloc", "<dlmalloc", "abort", "sbrk", "wit_bindgen::", "<unnamed>"]
        .iter()
        .any(|p| name.starts_with(p))
}

fn demangle(raw: &str) -> String {
    format!("{:#}", rustc_demangle::demangle(raw))
}

pub fn describe(plugin: &str, hook: &str, err: wasmtime::Error) -> PluginError {
    let backtrace = err.downcast_ref::<WasmBacktrace>();
    let bt_text = backtrace.and_then(|bt| {
        let frames: Vec<String> = bt
            .frames()
            .iter()
            .filter_map(|f| f.func_name().map(demangle))
            .filter(|name| !is_runtime_frame(name))
            .take(6)
            .map(|name| format!("  {name}"))
            .collect();
        if frames.is_empty() {
            None
        } else {
            Some(frames.join("\n"))
        }
    });
    if let Some(f) = err.downcast_ref::<crate::error::GuestFailure>() {
        return PluginError {
            plugin: plugin.into(),
            hook: hook.into(),
            op: None,
            detail: f.0.clone(),
            backtrace: None,
        };
    }
    if let Some(op) = err.downcast_ref::<OpError>() {
        return PluginError {
            plugin: plugin.into(),
            hook: hook.into(),
            op: Some(op.op.clone()),
            detail: op.detail.clone(),
            backtrace: None,
        };
    }
    let op = backtrace.and_then(|bt| bt.frames().iter().filter_map(|f| f.func_name()).find_map(op_from_frame));
    // Deep recursion: the same function fills the backtrace (the guest's stack lives in its
    // linear memory, so overflowing it shows as an out-of-bounds access).
    let recursion = backtrace.is_some_and(|bt| {
        let names: Vec<&str> = bt.frames().iter().filter_map(|f| f.func_name()).take(256).collect();
        names.iter().any(|n| names.iter().filter(|m| *m == n).count() >= 16)
    });
    let detail = match err.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => match crate::plugin::interrupt::signalled() {
            0 => "the hook ran past its time limit (hook_timeout_s) and was stopped".to_string(),
            sig => format!("stopped by signal {sig}"),
        },
        Some(Trap::UnreachableCodeReached) => {
            "the plugin trapped (`unreachable`: a panic or abort in the guest)".to_string()
        }
        Some(t) if recursion => format!("the plugin trapped: {t}: its stack overflowed (unbounded recursion)"),
        Some(Trap::StackOverflow) => "the plugin trapped: its call stack overflowed (unbounded recursion)".to_string(),
        Some(t) => format!("the plugin trapped: {t}"),
        None if memory_grow_refused(&err).is_some() => {
            let bytes = memory_grow_refused(&err).unwrap_or(0);
            format!(
                "the plugin hit its wasm memory limit (plugin.memory_limit_mb, --memory-limit-mb): it asked to grow its \
                 linear memory to {:.1} MiB",
                bytes as f64 / (1024.0 * 1024.0)
            )
        }
        None => {
            let parts: Vec<String> =
                err.chain().map(|c| c.to_string()).filter(|s| !s.contains("wasm backtrace")).collect();
            if parts.is_empty() {
                format!("{err:?}")
            } else {
                parts.join(": ")
            }
        }
    };
    PluginError { plugin: plugin.into(), hook: hook.into(), op, detail, backtrace: bt_text }
}

/// The size a refused `memory.grow` asked for (wasmtime's StoreLimits traps with "forcing
/// trap when growing memory to N bytes").
fn memory_grow_refused(err: &wasmtime::Error) -> Option<u64> {
    err.chain().find_map(|c| {
        let text = c.to_string();
        let rest = text.split("forcing trap when growing memory to ").nth(1)?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_memory_grow_is_read_from_wasmtimes_error() {
        let err = wasmtime::Error::msg("forcing trap when growing memory to 68222976 bytes");
        assert_eq!(memory_grow_refused(&err), Some(68222976));
        assert_eq!(memory_grow_refused(&wasmtime::Error::msg("out of bounds memory access")), None);
        let d = describe("p", "training_step", err);
        assert!(d.detail.contains("hit its wasm memory limit") && d.detail.contains("65.1 MiB"), "{}", d.detail);
    }

    #[test]
    fn op_names_come_from_binding_frames() {
        assert_eq!(
            op_from_frame("lthost_sdk::bindings::lt::plugin::tensor::Tensor::matmul").as_deref(),
            Some("matmul")
        );
        assert_eq!(op_from_frame("my_plugin::Model::forward"), None);
    }
}

//! The ATen operators a plugin may not call, each with its reason: anything that reads or
//! writes files or raw storage, changes process-wide state, reaches outside the tensor
//! budget, or talks to other processes. Every other operator of the `aten` namespace is
//! allowed ([`super::aten::Op::find`] checks here first). An entry names an operator; its
//! overloads (`.out`, `.generator`, …) are covered with it.

/// (operator name without `aten::`, why a plugin may not call it).
const DENIED: &[(&str, &str)] = &[
    ("from_file", "it maps a file of the host's filesystem into a tensor"),
    ("set", "its `source_Storage` forms rebind a tensor to a raw storage"),
    ("set_", "its `source_Storage` forms rebind a tensor to a raw storage"),
    ("_nested_view_from_buffer", "it views a raw buffer at offsets the caller picks"),
    ("_nested_view_from_buffer_copy", "it reads a raw buffer at offsets the caller picks"),
    ("manual_seed", "it reseeds a generator the whole run shares (seed the run with `--seed`)"),
    ("seed", "it reseeds a generator the whole run shares (seed the run with `--seed`)"),
    ("_cufft_set_plan_cache_max_size", "it changes a process-wide CUDA cache"),
    ("_cufft_clear_plan_cache", "it changes a process-wide CUDA cache"),
    ("record_stream", "it ties a tensor's memory to a CUDA stream the host manages"),
    ("pin_memory", "pinned host memory comes from CUDA's host allocator, outside the tensor budget"),
    ("_pin_memory", "pinned host memory comes from CUDA's host allocator, outside the tensor budget"),
];

/// Only the overloads of these operators that take a raw storage are denied.
const STORAGE_OVERLOADS: &[&str] = &["set", "set_"];

/// Every denied operator name, with its reason.
pub fn denied() -> &'static [(&'static str, &'static str)] {
    DENIED
}

/// Why `aten::name.overload` is refused, if it is.
pub fn refusal(name: &str, overload: &str) -> Option<&'static str> {
    let &(_, reason) = DENIED.iter().find(|(n, _)| *n == name)?;
    if STORAGE_OVERLOADS.contains(&name) && !overload.starts_with("source_Storage") {
        return None;
    }
    Some(reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_raw_storage_and_shared_state_are_refused_with_a_reason() {
        assert!(refusal("from_file", "").is_some_and(|r| r.contains("file")));
        assert!(refusal("from_file", "out").is_some());
        assert!(refusal("set_", "source_Storage_storage_offset").is_some());
        assert!(refusal("set_", "source_Tensor").is_none(), "sharing another tensor's storage is a view");
        assert!(refusal("manual_seed", "generator").is_some());
        assert!(refusal("masked_fill", "Scalar").is_none());
        for (name, reason) in DENIED {
            assert!(!reason.is_empty(), "{name} has a reason");
        }
    }
}

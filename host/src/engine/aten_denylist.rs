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
    ("_unsafe_index", "it skips the bounds checks of its indices (index is allowed)"),
    ("_unsafe_index_put", "it skips the bounds checks of its indices (index_put is allowed)"),
    ("_unsafe_masked_index", "it skips the bounds checks of its indices"),
    ("_unsafe_masked_index_put_accumulate", "it skips the bounds checks of its indices"),
    ("_print", "it writes to the host's standard output, past the plugin's own (use the log interface)"),
    ("pin_memory", "pinned host memory comes from CUDA's host allocator, outside the tensor budget"),
    ("_pin_memory", "pinned host memory comes from CUDA's host allocator, outside the tensor budget"),
];

/// How a [`DENIED_FAMILIES`] entry matches an operator name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Match {
    Prefix,
    Contains,
}

/// Families of operators refused by name: kernels that trust their inputs to be what
/// autograd or a packing step made, and would read or write outside a tensor's storage when
/// a plugin hands them anything else.
const DENIED_FAMILIES: &[(&str, Match, &str)] = &[
    ("backward", Match::Contains, "backward kernels trust indices and shapes that autograd made (max_pool2d_with_indices_backward writes wherever its `indices` point); gradients come from `tensor.backward`"),
    ("_index_put_impl_", Match::Prefix, "its `unsafe` flag skips the bounds checks (index_put_ is allowed)"),
    ("_reshape_alias", Match::Prefix, "it makes a view of any sizes and strides without checking them against the storage"),
    ("sparse_", Match::Prefix, "sparse tensors index their values by indices torch checks only when asked"),
    ("_sparse_", Match::Prefix, "sparse tensors index their values by indices torch checks only when asked"),
    ("_nested_", Match::Prefix, "nested tensors read their buffer at offsets the caller gives"),
    ("fbgemm_", Match::Prefix, "it reads a packed weight's raw bytes in a layout it does not check"),
    ("_weight_int", Match::Prefix, "it reads a packed weight's raw bytes in a layout it does not check"),
    ("_convert_weight_to_int", Match::Prefix, "it packs a weight into raw bytes another kernel trusts"),
    ("_dyn_quant_", Match::Prefix, "it reads a packed weight's raw bytes in a layout it does not check"),
    ("_cslt_", Match::Prefix, "it reads a packed weight's raw bytes in a layout it does not check"),
    ("mkldnn_", Match::Prefix, "oneDNN's opaque tensors are raw buffers in a layout it does not check"),
    ("_mkldnn_", Match::Prefix, "oneDNN's opaque tensors are raw buffers in a layout it does not check"),
];

/// Only the overloads of these operators that take a raw storage are denied.
const STORAGE_OVERLOADS: &[&str] = &["set", "set_"];

/// Every operator denied by its exact name, with its reason (families: [`refusal`]).
pub fn denied() -> &'static [(&'static str, &'static str)] {
    DENIED
}

/// Every registered operator name `refusal` denies (`names`: `aten::name[.overload]`).
pub fn denied_among<'a>(names: &'a [String]) -> Vec<&'a str> {
    names
        .iter()
        .filter_map(|n| n.strip_prefix("aten::"))
        .filter(|n| {
            let (name, overload) = n.split_once('.').unwrap_or((n, ""));
            refusal(name, overload).is_some()
        })
        .collect()
}

/// Why `aten::name.overload` is refused, if it is.
pub fn refusal(name: &str, overload: &str) -> Option<&'static str> {
    let family = DENIED_FAMILIES.iter().find(|(p, m, _)| match m {
        Match::Prefix => name.starts_with(p),
        Match::Contains => name.contains(p),
    });
    if let Some(&(_, _, reason)) = family {
        return Some(reason);
    }
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
        assert!(refusal("max_pool2d_with_indices_backward", "").is_some_and(|r| r.contains("indices")));
        assert!(refusal("_reshape_alias", "").is_some());
        assert!(refusal("_unsafe_index", "Tensor").is_some());
        assert!(refusal("sparse_coo_tensor", "indices").is_some());
        assert!(refusal("index_put_", "").is_none());
        for (name, reason) in DENIED {
            assert!(!reason.is_empty(), "{name} has a reason");
        }
    }
}

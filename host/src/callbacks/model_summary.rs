//! Lightning's ModelSummary: a table of the top-level modules and their parameter counts.

use crate::engine::params::{EntryKind, ParamStore};

/// `1.2 K`, `3.4 M`: Lightning's way of writing counts.
pub fn human(n: i64) -> String {
    let f = n as f64;
    if f >= 1e9 {
        format!("{:.1} B", f / 1e9)
    } else if f >= 1e6 {
        format!("{:.1} M", f / 1e6)
    } else if f >= 1e3 {
        format!("{:.1} K", f / 1e3)
    } else {
        format!("{n}")
    }
}

pub fn render(params: &ParamStore) -> String {
    let rows = params.summary();
    let width = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(4).max(4);
    let mut out = format!("  | {:<width$} | Params\n", "Name");
    out.push_str(&format!("{}\n", "-".repeat(width + 15)));
    for (i, (name, n)) in rows.iter().enumerate() {
        out.push_str(&format!("{i} | {name:<width$} | {}\n", human(*n)));
    }
    out.push_str(&format!("{}\n", "-".repeat(width + 15)));
    let trainable = params.num_parameters();
    let buffers: i64 = params.entries().iter().filter(|e| e.kind == EntryKind::Buffer).map(|e| e.tensor.numel() as i64).sum();
    let bytes: i64 = params.entries().iter().map(|e| e.tensor.numel() as i64 * e.tensor.kind().elt_size_in_bytes() as i64).sum();
    out.push_str(&format!("{:<10} Trainable params\n", human(trainable)));
    out.push_str(&format!("{:<10} Buffer elements\n", human(buffers)));
    out.push_str(&format!("{:<10} Total estimated model params size (MB)\n", format!("{:.3}", bytes as f64 / 1e6)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_read_like_lightning() {
        assert_eq!(human(999), "999");
        assert_eq!(human(101_770), "101.8 K");
        assert_eq!(human(2_500_000), "2.5 M");
    }
}

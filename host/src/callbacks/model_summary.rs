//! Lightning's ModelSummary (max_depth 1): one row per top-level layer with its type, its
//! parameter count and its mode, then the totals and the estimated size, as Lightning
//! prints them. Layer types come from the host's layer constructors; a top-level name
//! holding several layers is its own registered type (Lightning's class name: a
//! `MultiheadAttention` with its `out_proj` inside) or else `Module`, a free parameter a `Parameter`.

use crate::engine::params::{EntryKind, ParamStore};

/// Lightning's `get_human_readable_count`: `256`, `1.3 K`, `100 K`, `2.5 M`.
pub fn human(n: i64) -> String {
    let labels = ["", "K", "M", "B", "T"];
    let digits = if n > 0 { (n as f64).log10().floor() as usize + 1 } else { 1 };
    let groups = digits.div_ceil(3).clamp(1, labels.len());
    let index = groups - 1;
    let x = n as f64 / 10f64.powi(3 * index as i32);
    if index == 0 {
        format!("{n}")
    } else if x >= 100.0 {
        format!("{} {}", x as i64, labels[index])
    } else {
        format!("{x:.1} {}", labels[index])
    }
}

/// (name, type, parameters) per top-level name, in first-seen order.
pub fn rows(params: &ParamStore) -> Vec<(String, String, i64)> {
    let top = |p: &str| p.split('.').next().unwrap_or("").to_string();
    let mut rows: Vec<(String, String, i64)> = Vec::new();
    let mut order: Vec<String> = Vec::new();
    let names = params
        .modules()
        .iter()
        .map(|(p, _)| p.as_str())
        .chain(params.entries().iter().filter(|e| e.kind == EntryKind::Parameter).map(|e| e.name.as_str()));
    for p in names {
        let t = top(p);
        if !order.contains(&t) {
            order.push(t);
        }
    }
    for name in order {
        let under: Vec<&(String, String)> =
            params.modules().iter().filter(|(p, _)| *p == name || p.starts_with(&format!("{name}."))).collect();
        let kind = match under.iter().find(|(p, _)| *p == name) {
            Some((_, k)) => k.to_string(),
            None if under.is_empty() => "Parameter".to_string(),
            None => "Module".to_string(),
        };
        let n = params
            .entries()
            .iter()
            .filter(|e| e.kind == EntryKind::Parameter && top(&e.name) == name)
            .map(|e| e.tensor.numel() as i64)
            .sum();
        rows.push((name, kind, n));
    }
    rows
}

pub fn render(params: &ParamStore) -> String {
    let rows = rows(params);
    let cells: Vec<[String; 5]> = rows
        .iter()
        .enumerate()
        .map(|(i, (n, k, p))| [i.to_string(), n.clone(), k.clone(), human(*p), "train".to_string()])
        .collect();
    let header = ["".to_string(), "Name".into(), "Type".into(), "Params".into(), "Mode".into()];
    let widths: Vec<usize> = (0..5)
        .map(|c| cells.iter().map(|r| r[c].chars().count()).chain([header[c].len()]).max().unwrap_or(0))
        .collect();
    let fmt = |r: &[String; 5]| r.iter().zip(&widths).map(|(v, w)| format!("{v:<w$}")).collect::<Vec<_>>().join(" | ");
    let head = fmt(&header);
    let rule = "-".repeat(head.chars().count());
    let mut out = format!("{head}\n{rule}\n");
    for r in &cells {
        out.push_str(&format!("{}\n", fmt(r)));
    }
    out.push_str(&format!("{rule}\n"));
    let trainable = params.num_parameters();
    let bytes: i64 =
        params.named_parameters().iter().map(|(_, t)| t.numel() as i64 * t.kind().elt_size_in_bytes() as i64).sum();
    let modules = params.modules().len();
    for (v, what) in [
        (human(trainable), "Trainable params"),
        (human(0), "Non-trainable params"),
        (human(trainable), "Total params"),
        (format!("{:.3}", bytes as f64 / 1e6), "Total estimated model params size (MB)"),
        (modules.to_string(), "Modules in train mode"),
        ("0".to_string(), "Modules in eval mode"),
    ] {
        out.push_str(&format!("{v:<10}{what}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind, Tensor};

    #[test]
    fn counts_read_like_lightning() {
        assert_eq!(human(256), "256");
        assert_eq!(human(1290), "1.3 K");
        assert_eq!(human(100_480), "100 K");
        assert_eq!(human(102_026), "102 K");
        assert_eq!(human(2_500_000), "2.5 M");
        assert_eq!(human(0), "0");
    }

    #[test]
    fn rows_name_layer_types() {
        let mut ps = ParamStore::default();
        let z = |n: i64| Tensor::zeros([n], (Kind::Float, Device::Cpu));
        let _ = ps.add_parameter("fc.weight", z(6)).unwrap();
        ps.add_module("fc", "Linear");
        let _ = ps.add_parameter("enc.0.weight", z(4)).unwrap();
        ps.add_module("enc.0", "Linear");
        ps.add_module("enc.1", "LayerNorm");
        let _ = ps.add_parameter("scale", z(1)).unwrap();
        let _ = ps.add_parameter("attn.in_proj_weight", z(3)).unwrap();
        let _ = ps.add_parameter("attn.out_proj.weight", z(2)).unwrap();
        ps.add_module("attn", "MultiheadAttention");
        ps.add_module("attn.out_proj", "NonDynamicallyQuantizableLinear");
        let r = rows(&ps);
        assert_eq!(
            r,
            vec![
                ("fc".into(), "Linear".into(), 6),
                ("enc".into(), "Module".into(), 4),
                ("attn".into(), "MultiheadAttention".into(), 5),
                ("scale".into(), "Parameter".into(), 1)
            ]
        );
        let table = render(&ps);
        assert!(table.contains("0 | fc    | Linear             | 6      | train"), "{table}");
        assert!(table.contains("2 | attn  | MultiheadAttention | 5      | train"), "{table}");
        assert!(table.contains("16        Trainable params"), "{table}");
    }
}

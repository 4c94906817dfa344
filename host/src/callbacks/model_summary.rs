//! Lightning's ModelSummary (max_depth 1): one row per top-level layer with its type, its
//! parameter count, its mode and FLOPs, then the totals and the estimated size, as Lightning
//! 2.6 prints them. Layer types are the registered ones; a top-level name holding several
//! layers is its own registered type (Lightning's class name: a `MultiheadAttention` with its
//! `out_proj` inside) or else `Module`; parameters outside every layer are `other params`.

use crate::engine::params::{EntryKind, ParamStore};

/// Lightning's `get_human_readable_count`: `256`, `1.3 K`, `100 K`, `2.5 M`.
pub fn human(n: i64) -> String {
    let labels = ["", "K", "M", "B", "T"];
    let digits = if n > 0 { (n as f64).log10().floor() as usize + 1 } else { 1 };
    let groups = digits.div_ceil(3).clamp(1, labels.len());
    let index = groups - 1;
    // Multiplied by 10**-3k as Lightning does, not divided: 55 050 is 55.050000000000004
    // that way and prints as `55.1 K` (55.05 would print `55.0 K`).
    let x = n as f64 * [1.0, 1e-3, 1e-6, 1e-9, 1e-12][index];
    if index == 0 {
        format!("{n}")
    } else if x >= 100.0 {
        format!("{} {}", x as i64, labels[index])
    } else {
        format!("{x:.1} {}", labels[index])
    }
}

/// (name, type, parameters) per top-level layer, in first-seen order: each parameter under
/// it counted once (a tensor tied within the layer once, as `module.parameters()` counts).
pub fn rows(params: &ParamStore) -> Vec<(String, String, i64)> {
    let top = |p: &str| p.split('.').next().unwrap_or("").to_string();
    let mut order: Vec<String> = Vec::new();
    for (p, _) in params.modules() {
        let t = top(p);
        if !order.contains(&t) {
            order.push(t);
        }
    }
    let mut rows = Vec::new();
    for name in order {
        let kind = match params.modules().iter().find(|(p, _)| *p == name) {
            Some((_, k)) => k.to_string(),
            None => "Module".to_string(),
        };
        let n = params
            .entries()
            .iter()
            .filter(|e| e.kind == EntryKind::Parameter && top(&e.name) == name)
            .filter(|e| params.tied_to(e).is_none_or(|first| top(first) != name))
            .map(|e| e.tensor.numel() as i64)
            .sum();
        rows.push((name, kind, n));
    }
    rows
}

/// Lightning 2.6's table: a row per top-level layer, parameters held by no layer in an
/// `other params` row, trainable (`requires_grad`) and non-trainable counts, each layer's mode
/// and the layers in train and eval mode (as the plugin reported them: `module.training`). Its
/// FLOPs are counted over a forward of `example_input_array`, which lthost does not run (nor
/// does Lightning without one): 0, as Lightning prints them then.
pub fn render(params: &ParamStore) -> String {
    let rows = rows(params);
    let mode = |name: &str| if params.module_training(name) { "train" } else { "eval" };
    let mut cells: Vec<[String; 6]> = rows
        .iter()
        .enumerate()
        .map(|(i, (n, k, p))| [i.to_string(), n.clone(), k.clone(), human(*p), mode(n).into(), human(0)])
        .collect();
    let all = params.named_parameters();
    let total: i64 = all.iter().map(|(_, t)| t.numel() as i64).sum();
    let trainable: i64 = all.iter().filter(|(_, t)| t.requires_grad()).map(|(_, t)| t.numel() as i64).sum();
    let leftover = total - rows.iter().map(|r| r.2).sum::<i64>();
    if leftover > 0 {
        let na = || "n/a".to_string();
        cells.push([" ".into(), "other params".into(), na(), human(leftover), na(), na()]);
    }
    let header = ["".to_string(), "Name".into(), "Type".into(), "Params".into(), "Mode".into(), "FLOPs".into()];
    let widths: Vec<usize> = (0..header.len())
        .map(|c| cells.iter().map(|r| r[c].chars().count()).chain([header[c].len()]).max().unwrap_or(0))
        .collect();
    let fmt = |r: &[String; 6]| r.iter().zip(&widths).map(|(v, w)| format!("{v:<w$}")).collect::<Vec<_>>().join(" | ");
    // Lightning's rule: the widths plus 3 per column, one column more than there are.
    let rule = "-".repeat(widths.iter().sum::<usize>() + 3 * (header.len() + 1));
    let mut out = format!("{}\n{rule}\n", fmt(&header));
    for r in &cells {
        out.push_str(&format!("{}\n", fmt(r)));
    }
    out.push_str(&format!("{rule}\n"));
    let bytes: i64 = all.iter().map(|(_, t)| t.numel() as i64 * t.kind().elt_size_in_bytes() as i64).sum();
    let modules = params.modules().len();
    let in_eval = params.modules().iter().filter(|(p, _)| !params.module_training(p)).count();
    for (v, what) in [
        (human(trainable), "Trainable params"),
        (human(total - trainable), "Non-trainable params"),
        (human(total), "Total params"),
        (format!("{:.3}", bytes as f64 / 1e6), "Total estimated model params size (MB)"),
        ((modules - in_eval).to_string(), "Modules in train mode"),
        (in_eval.to_string(), "Modules in eval mode"),
        (human(0), "Total Flops"),
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
        assert_eq!(human(55_050), "55.1 K");
        assert_eq!(human(2_500_000), "2.5 M");
        assert_eq!(human(0), "0");
    }

    #[test]
    fn rows_name_layer_types() {
        let mut ps = ParamStore::default();
        let z = |n: i64| Tensor::zeros([n], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let _ = ps.add_parameter("fc.weight", z(6)).unwrap();
        ps.add_module("fc", "Linear");
        // A frozen layer, its weight also registered under a second path (tied, counted once).
        let frozen = ps.add_parameter("enc.0.weight", z(4)).unwrap();
        let _ = ps.register_parameter("enc.1.weight", frozen.shallow_clone()).unwrap();
        let _ = frozen.set_requires_grad(false);
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
            ]
        );
        // As Lightning 2.6.6 prints the same LightningModule (a free `nn.Parameter` scale,
        // `enc` frozen with `requires_grad_(False)`, `attn.eval()`).
        ps.set_module_training("attn", false);
        ps.set_module_training("attn.out_proj", false);
        let table = render(&ps);
        let want = "  | Name         | Type               | Params | Mode  | FLOPs
--------------------------------------------------------------------
0 | fc           | Linear             | 6      | train | 0    
1 | enc          | Module             | 4      | train | 0    
2 | attn         | MultiheadAttention | 5      | eval  | 0    
  | other params | n/a                | 1      | n/a   | n/a  
--------------------------------------------------------------------
12        Trainable params
4         Non-trainable params
16        Total params
0.000     Total estimated model params size (MB)
3         Modules in train mode
2         Modules in eval mode
0         Total Flops
";
        assert_eq!(table, want);
    }
}

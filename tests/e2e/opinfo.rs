//! torch's own op tests through lthost's generic operator call (issue 16): every ATen call
//! that OpInfo's CPU samples make in torch, in float32, float64 and int64 (recorded with its arguments and results
//! by tests/reference/opinfo_reference.py) is replayed through `engine::aten::Op` — found by
//! its schema name, called with the same values — and its results compared with torch's.
//! `empty*` results (uninitialised memory) are compared by shape and dtype. Where the op has a
//! backward, the gradients of sum(out · linspace(-1, 1)) with respect to every floating tensor
//! argument are compared with torch's too. Prints the count
//! (OpInfo entries, one per OpInfo and dtype; calls; passing; failing with why) and holds the pass rate.

use std::collections::BTreeMap;

use lthost::engine::aten::{Op, Value};
use serde_json::Value as Json;
use tch::{Kind, Tensor};

use crate::common::repo_root;

/// Gradient tensors compared with torch's (the count the test prints).
static GRADS_COMPARED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
/// Calls also made through the tensors-only path ([`Op::call_on_tensors`], the generated
/// bindings' call for an operator given only tensors) and compared with torch's.
static DIRECT_COMPARED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
/// Of those, the calls that went straight to the operator's unboxed kernel.
static UNBOXED_COMPARED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The share of OpInfos (with at least one recorded call) whose every call must match.
const GOAL: f64 = 0.95;

fn kind(name: &str) -> Kind {
    match name {
        "f32" => Kind::Float,
        "f64" => Kind::Double,
        "i64" => Kind::Int64,
        "i32" => Kind::Int,
        "i16" => Kind::Int16,
        "i8" => Kind::Int8,
        "u8" => Kind::Uint8,
        "bool" => Kind::Bool,
        other => panic!("unknown dtype {other}"),
    }
}

fn number(v: &Json) -> f64 {
    match v {
        Json::String(s) => s.parse().expect("nan or inf"),
        Json::Bool(b) => f64::from(u8::from(*b)),
        other => other.as_f64().expect("a number"),
    }
}

fn tensor(j: &Json) -> Tensor {
    let shape: Vec<i64> = j["shape"].as_array().expect("shape").iter().map(|d| d.as_i64().expect("a dim")).collect();
    let values = j["values"].as_array().expect("values");
    let k = kind(j["dtype"].as_str().expect("dtype"));
    let flat = if matches!(k, Kind::Float | Kind::Double) {
        Tensor::from_slice(&values.iter().map(number).collect::<Vec<f64>>())
    } else {
        Tensor::from_slice(&values.iter().map(|v| v.as_i64().unwrap_or_else(|| number(v) as i64)).collect::<Vec<i64>>())
    };
    flat.to_kind(k).view(shape.as_slice())
}

fn value(j: &Json) -> Value {
    let v = &j["v"];
    match j["t"].as_str().expect("a tag") {
        "tensor" => Value::Tensor(tensor(j)),
        "none" => Value::None,
        "bool" => Value::Bool(v.as_bool().expect("bool")),
        "int" => Value::Int(v.as_i64().expect("int")),
        "float" => Value::Float(number(v)),
        "str" => Value::Str(v.as_str().expect("str").to_string()),
        "ints" => Value::Ints(v.as_array().expect("ints").iter().map(|x| x.as_i64().expect("int")).collect()),
        "floats" => Value::Floats(v.as_array().expect("floats").iter().map(number).collect()),
        "bools" => Value::Bools(v.as_array().expect("bools").iter().map(|x| x.as_bool().expect("bool")).collect()),
        "tensors" => {
            Value::Tensors(v.as_array().expect("tensors").iter().map(|x| (!x.is_null()).then(|| tensor(x))).collect())
        }
        other => panic!("unknown value tag {other}"),
    }
}

/// Why `got` is not torch's `want`, if it is not.
fn mismatch(got: &Value, want: &Json) -> Option<String> {
    match (got, want["t"].as_str().expect("a tag")) {
        (Value::Tensor(g), "tensor") if want["values"].is_null() => {
            // Uninitialised memory (`empty*`): its shape and dtype only.
            let shape: Vec<i64> =
                want["shape"].as_array().expect("shape").iter().map(|d| d.as_i64().expect("a dim")).collect();
            let k = kind(want["dtype"].as_str().expect("dtype"));
            (g.size() != shape || g.kind() != k)
                .then(|| format!("{:?} {:?}, torch {shape:?} {k:?}", g.size(), g.kind()))
        }
        (Value::Tensor(g), "tensor") => {
            let w = tensor(want);
            if g.size() != w.size() {
                return Some(format!("shape {:?}, torch {:?}", g.size(), w.size()));
            }
            if g.kind() != w.kind() {
                return Some(format!("dtype {:?}, torch {:?}", g.kind(), w.kind()));
            }
            let close = if matches!(w.kind(), Kind::Float | Kind::Double) {
                g.to_kind(Kind::Double).allclose(&w.to_kind(Kind::Double), 1e-5, 1e-5, true)
            } else {
                g.equal(&w)
            };
            (!close).then(|| "values differ".to_string())
        }
        (Value::None, "none") => None,
        (Value::Int(g), "int") => (*g != want["v"].as_i64().expect("int")).then(|| format!("{g} vs {}", want["v"])),
        (Value::Bool(g), "bool") => (Some(*g) != want["v"].as_bool()).then(|| format!("{g} vs {}", want["v"])),
        (Value::Float(g), "float") => {
            let w = number(&want["v"]);
            let same = (g - w).abs() <= 1e-5 * w.abs().max(1.0) || (g.is_nan() && w.is_nan()) || *g == w;
            (!same).then(|| format!("{g} vs {w}"))
        }
        (Value::Int(g), "float") => mismatch(&Value::Float(*g as f64), want),
        (Value::Ints(g), "ints") => {
            let w: Vec<i64> = want["v"].as_array().expect("ints").iter().map(|x| x.as_i64().expect("int")).collect();
            (*g != w).then(|| format!("{g:?} vs {w:?}"))
        }
        (Value::Tensors(g), "tensors") => {
            let w = want["v"].as_array().expect("tensors");
            if g.len() != w.len() {
                return Some(format!("{} tensors, torch {}", g.len(), w.len()));
            }
            g.iter().zip(w).find_map(|(g, w)| match g {
                Some(t) => mismatch(&Value::Tensor(t.shallow_clone()), w),
                None => (!w.is_null()).then(|| "a None".to_string()),
            })
        }
        (g, w) => Some(format!("returned {g:?} where torch returned a {w}")),
    }
}

/// Replays one recorded call: None when it matches torch, else why not.
fn replay(case: &Json) -> Option<String> {
    let name = case["op"].as_str().expect("op");
    let op = match Op::find(name) {
        Ok(op) => op,
        Err(e) => return Some(e.detail),
    };
    // Where torch has gradients, the floating tensor arguments are leaves requiring grad, and
    // the one call gives both the values and the graph to differentiate.
    let with_grads = case["grads"].is_array();
    let leaf = |v: Value| match v {
        Value::Tensor(t) if with_grads && t.is_floating_point() => Value::Tensor(t.set_requires_grad(true)),
        other => other,
    };
    let args: Vec<Value> = case["args"].as_array().expect("args").iter().map(value).map(leaf).collect();
    let (names, values): (Vec<&String>, Vec<Value>) =
        case["kwargs"].as_object().expect("kwargs").iter().map(|(k, v)| (k, value(v))).unzip();
    let kw: Vec<(&str, Value)> = names.into_iter().map(String::as_str).zip(values).collect();
    let got = match op.call(&args, &kw) {
        Ok(got) => got,
        Err(e) => return Some(e.message()),
    };
    let want = case["out"].as_array().expect("out");
    if got.len() != want.len() {
        return Some(format!("{} results, torch {}", got.len(), want.len()));
    }
    if let Some(m) = got.iter().zip(want).find_map(|(g, w)| mismatch(g, w)) {
        return Some(format!("{name}: {m}"));
    }
    // Given only tensors (and no named arguments), the same call through the tensors-only
    // path must give the same result.
    let tensors: Vec<&Tensor> =
        args.iter().filter_map(|a| if let Value::Tensor(t) = a { Some(t) } else { None }).collect();
    let one_tensor = want.len() == 1 && want[0]["t"].as_str() == Some("tensor");
    if (1..=3).contains(&args.len()) && tensors.len() == args.len() && kw.is_empty() && one_tensor {
        let direct = match op.call_on_tensors(&tensors, None) {
            Ok(t) => Value::Tensor(t),
            Err(e) => return Some(format!("{name} given only tensors: {e}")),
        };
        if let Some(m) = mismatch(&direct, &want[0]) {
            return Some(format!("{name} given only tensors: {m}"));
        }
        DIRECT_COMPARED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if op.direct_with(tensors.len()) {
            UNBOXED_COMPARED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
    if with_grads {
        return gradients(&args, &got, &case["grads"]).map(|m| format!("{name} backward: {m}"));
    }
    None
}

/// The gradients of sum(out_i * linspace(-1, 1)) over the floating results `out` of a call
/// with respect to each of its floating tensor arguments (leaves), against torch's.
fn gradients(args: &[Value], out: &[Value], want: &Json) -> Option<String> {
    let outs: Vec<&Tensor> = out
        .iter()
        .filter_map(|v| match v {
            Value::Tensor(t) if t.is_floating_point() && t.requires_grad() => Some(t),
            _ => None,
        })
        .collect();
    let loss = outs
        .iter()
        .map(|o| {
            let w =
                Tensor::linspace(-1.0, 1.0, o.numel() as i64, (o.kind(), tch::Device::Cpu)).view(o.size().as_slice());
            (*o * w).sum(o.kind())
        })
        .reduce(|a, b| a + b)?;
    let inputs: Vec<&Tensor> = args
        .iter()
        .filter_map(|a| match a {
            Value::Tensor(t) if t.requires_grad() => Some(t),
            _ => None,
        })
        .collect();
    let grads = match Tensor::f_run_backward(&[&loss], &inputs, false, false) {
        Ok(g) => g,
        Err(e) => return Some(format!("{e}")),
    };
    let mut grads = grads.into_iter();
    for (a, w) in args.iter().zip(want.as_array().expect("grads")) {
        let Value::Tensor(t) = a else { continue };
        if !t.requires_grad() {
            continue;
        }
        let g = grads.next().expect("one gradient per input");
        match (g.defined(), w.is_null()) {
            (_, true) => {}
            (false, false) => return Some("no gradient where torch has one".to_string()),
            (true, false) => {
                GRADS_COMPARED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if let Some(m) = mismatch(&Value::Tensor(g), w) {
                    return Some(m);
                }
            }
        }
    }
    None
}

#[test]
fn opinfo_samples_give_torchs_results_through_the_generic_call() {
    let _rng = crate::common::global_rng();
    let _threads = tch::set_num_threads(1);
    let path = repo_root().join("tests/reference/opinfo.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} is missing: run `make reference`", path.display()));
    let r: Json = serde_json::from_str(&text).expect("valid JSON");
    let cases = r["cases"].as_array().expect("cases");
    let mut by_opinfo: BTreeMap<&str, Vec<Option<String>>> = BTreeMap::new();
    for case in cases {
        by_opinfo.entry(case["opinfo"].as_str().expect("opinfo")).or_default().push(replay(case));
    }
    // An entry whose calls include a denied operator is counted apart: it does not map to
    // allowed ops (the goal is over those that do).
    let is_denied =
        |rs: &Vec<Option<String>>| rs.iter().flatten().any(|why| why.contains("is not allowed in a plugin"));
    let denied: Vec<(&str, &String)> = by_opinfo
        .iter()
        .filter(|(_, rs)| is_denied(rs))
        .filter_map(|(name, rs)| rs.iter().flatten().next().map(|why| (*name, why)))
        .collect();
    let failing: Vec<(&str, &String)> = by_opinfo
        .iter()
        .filter(|(_, rs)| !is_denied(rs))
        .filter_map(|(name, rs)| rs.iter().flatten().next().map(|why| (*name, why)))
        .collect();
    let calls_ok = by_opinfo.values().flatten().filter(|r| r.is_none()).count();
    let (total, passing) = (by_opinfo.len() - denied.len(), by_opinfo.len() - denied.len() - failing.len());
    let skipped = r["skipped"].as_object().expect("skipped").len();
    println!(
        "OpInfo: {} entries; {skipped} without a replayable CPU call; {} call a denied operator; {total} replayed \
         ({} calls to {} ATen overloads): {passing} pass, {} fail; calls {calls_ok}/{} match; {} gradients compared; \
         {} calls also given only tensors ({} of them straight to the unboxed kernel)",
        r["opinfos"],
        denied.len(),
        cases.len(),
        cases.iter().map(|c| c["op"].as_str().expect("op")).collect::<std::collections::BTreeSet<_>>().len(),
        failing.len(),
        cases.len(),
        GRADS_COMPARED.load(std::sync::atomic::Ordering::Relaxed),
        DIRECT_COMPARED.load(std::sync::atomic::Ordering::Relaxed),
        UNBOXED_COMPARED.load(std::sync::atomic::Ordering::Relaxed)
    );
    for (name, why) in &denied {
        println!("  denied: {name}: {why}");
    }
    for (name, why) in &failing {
        println!("  fails: {name}: {why}");
    }
    let rate = passing as f64 / total.max(1) as f64;
    assert!(total > 500, "OpInfo gave cases for {total} entries");
    assert!(
        rate >= GOAL,
        "{passing} of {total} OpInfo entries pass ({:.1}%), under the {:.0}% goal",
        100.0 * rate,
        100.0 * GOAL
    );
}

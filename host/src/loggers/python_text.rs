//! Numbers and hyperparameters as Lightning's loggers write them: Python's `repr` of a float
//! (metrics.csv's cells; `py_format::repr_float`, shared with checkpoint names) and PyYAML's
//! `yaml.dump` of the hparams (hparams.yaml), so a file reads back as the same values in
//! Python (`1.0e-06`, never the string `'1e-6'`) and its text is Lightning's.

use serde_json::{Map, Value};

pub use crate::callbacks::py_format::repr_float as float_repr;
use crate::callbacks::py_format::repr_str;

/// `yaml.dump(hparams)` as PyYAML writes it (block style, keys sorted, Python's floats with a
/// `.` as YAML 1.1 needs, strings quoted only where a plain one would read as another value).
/// Two simplifications, each reading back the same: strings with line breaks are written
/// double-quoted (PyYAML folds them single-quoted) and long strings are never folded.
pub fn yaml_dump(v: &Value) -> String {
    let mut out = String::new();
    match v {
        Value::Object(m) if !m.is_empty() => mapping(m, 0, &mut out, false),
        Value::Array(a) if !a.is_empty() => sequence(a, 0, &mut out, false),
        other => {
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
    out
}

/// Python's `repr` of the value `json.loads` gives (`None`, `True`, `1.0`, `'a'`, `[1, 2]`,
/// `{'a': 1}`): what Lightning's `_sanitize_params` (`str(v)`) makes of a list or None
/// for TensorBoard's hparams.
pub fn repr(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => float_repr(f),
            _ => n.to_string(),
        },
        Value::String(s) => repr_str(s),
        Value::Array(items) => format!("[{}]", items.iter().map(repr).collect::<Vec<_>>().join(", ")),
        Value::Object(m) => {
            format!(
                "{{{}}}",
                m.iter().map(|(k, v)| format!("{}: {}", repr_str(k), repr(v))).collect::<Vec<_>>().join(", ")
            )
        }
    }
}

fn mapping(m: &Map<String, Value>, indent: usize, out: &mut String, first_on_line: bool) {
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort();
    for (i, k) in keys.into_iter().enumerate() {
        if i > 0 || !first_on_line {
            out.push_str(&" ".repeat(indent));
        }
        out.push_str(&string(k));
        out.push(':');
        match &m[k] {
            Value::Object(inner) if !inner.is_empty() => {
                out.push('\n');
                mapping(inner, indent + 2, out, false);
            }
            // PyYAML's sequences inside a mapping are not indented.
            Value::Array(items) if !items.is_empty() => {
                out.push('\n');
                sequence(items, indent, out, false);
            }
            other => {
                out.push(' ');
                out.push_str(&scalar(other));
                out.push('\n');
            }
        }
    }
}

fn sequence(items: &[Value], indent: usize, out: &mut String, first_on_line: bool) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 || !first_on_line {
            out.push_str(&" ".repeat(indent));
        }
        out.push_str("- ");
        match item {
            Value::Object(inner) if !inner.is_empty() => mapping(inner, indent + 2, out, true),
            Value::Array(inner) if !inner.is_empty() => sequence(inner, indent + 2, out, true),
            other => {
                out.push_str(&scalar(other));
                out.push('\n');
            }
        }
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) if n.is_f64() => match n.as_f64() {
            Some(f) if f.is_nan() => ".nan".into(),
            Some(f) if f.is_infinite() => if f > 0.0 { ".inf" } else { "-.inf" }.into(),
            // PyYAML's represent_float: `repr(v)`, with `.0` before an exponent that has no `.`.
            Some(f) => {
                let r = float_repr(f);
                if r.contains('e') && !r.contains('.') {
                    r.replacen('e', ".0e", 1)
                } else {
                    r
                }
            }
            None => n.to_string(),
        },
        Value::Number(n) => n.to_string(),
        Value::String(s) => string(s),
        Value::Object(_) => "{}".into(),
        Value::Array(_) => "[]".into(),
    }
}

/// A string plain where PyYAML writes it plain, else single-quoted (`'it''s'`), or
/// double-quoted with PyYAML's escapes when it holds a line break or a non-ASCII or
/// control character.
fn string(s: &str) -> String {
    let printable = s.chars().all(|c| (' '..='~').contains(&c));
    if !printable {
        return double_quoted(s);
    }
    if plain_allowed(s) && !resolves_as_other_type(s) {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "''"))
}

fn double_quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '\0' => out.push_str("\\0"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\x0B' => out.push_str("\\v"),
            '\x0C' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            '\x1B' => out.push_str("\\e"),
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{85}' => out.push_str("\\N"),
            '\u{A0}' => out.push_str("\\_"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            ' '..='~' => out.push(c),
            c if (c as u32) <= 0xFF => out.push_str(&format!("\\x{:02X}", c as u32)),
            c if (c as u32) <= 0xFFFF => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push_str(&format!("\\U{:08X}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// PyYAML's `analyze_scalar` for a printable one-line string in block context: no leading or
/// trailing space, no document marker, no indicator that would start or end a node.
fn plain_allowed(s: &str) -> bool {
    let b = s.as_bytes();
    if b.is_empty() || b[0] == b' ' || b[b.len() - 1] == b' ' || s.starts_with("---") || s.starts_with("...") {
        return false;
    }
    let space_after = |i: usize| i + 1 >= b.len() || b[i + 1] == b' ';
    if b"#,[]{}&*!|>'\"%@`".contains(&b[0]) || (b"?:-".contains(&b[0]) && space_after(0)) {
        return false;
    }
    (1..b.len()).all(|i| !(b[i] == b':' && space_after(i)) && !(b[i] == b'#' && b[i - 1] == b' '))
}

/// Whether PyYAML's implicit resolvers (YAML 1.1) read `s` written plain as something other
/// than a string: a bool, null, an int, a float, a timestamp, `<<` or `=`.
fn resolves_as_other_type(s: &str) -> bool {
    const BOOLS: &[&str] = &[
        "yes", "Yes", "YES", "no", "No", "NO", "true", "True", "TRUE", "false", "False", "FALSE", "on", "On", "ON",
        "off", "Off", "OFF",
    ];
    BOOLS.contains(&s)
        || ["~", "null", "Null", "NULL", "<<", "="].contains(&s)
        || is_int(s)
        || is_float(s)
        || is_date(s)
}

fn digits_underscore(s: &str, radix: u32) -> bool {
    s.chars().all(|c| c == '_' || c.is_digit(radix))
}

/// `:[0-5]?[0-9]` groups, at least one (sexagesimal).
fn sexagesimal_tail(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() > 1
        && parts[0].is_empty()
        && parts[1..].iter().all(|p| {
            let b = p.as_bytes();
            match b.len() {
                1 => b[0].is_ascii_digit(),
                2 => (b'0'..=b'5').contains(&b[0]) && b[1].is_ascii_digit(),
                _ => false,
            }
        })
}

/// `[1-9][0-9_]*` followed by a sexagesimal tail.
fn sexagesimal(s: &str) -> bool {
    let head_end = s.find(':').unwrap_or(s.len());
    let head = &s[..head_end];
    head.starts_with(|c: char| ('1'..='9').contains(&c))
        && digits_underscore(head, 10)
        && sexagesimal_tail(&s[head_end..])
}

fn is_int(s: &str) -> bool {
    let u = s.strip_prefix(['-', '+']).unwrap_or(s);
    if let Some(bin) = u.strip_prefix("0b") {
        return !bin.is_empty() && bin.chars().all(|c| c == '_' || c == '0' || c == '1');
    }
    if let Some(hex) = u.strip_prefix("0x") {
        return !hex.is_empty() && digits_underscore(hex, 16);
    }
    if let Some(oct) = u.strip_prefix('0') {
        return oct.is_empty() || digits_underscore(oct, 8);
    }
    (u.starts_with(|c: char| ('1'..='9').contains(&c)) && digits_underscore(u, 10)) || sexagesimal(u)
}

fn is_float(s: &str) -> bool {
    if [".nan", ".NaN", ".NAN"].contains(&s) {
        return true;
    }
    let signed = s.strip_prefix(['-', '+']);
    let u = signed.unwrap_or(s);
    if [".inf", ".Inf", ".INF"].contains(&u) {
        return true;
    }
    // `[0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]*`
    if let Some((head, frac)) = u.split_once('.') {
        if head.contains(':') {
            let first = head.find(':').unwrap_or(0);
            return head.starts_with(|c: char| c.is_ascii_digit())
                && digits_underscore(&head[..first], 10)
                && sexagesimal_tail(&head[first..])
                && digits_underscore(frac, 10);
        }
    }
    // `[0-9][0-9_]*\.[0-9_]*([eE][-+][0-9]+)?`, or unsigned `\.[0-9][0-9_]*([eE][-+][0-9]+)?`
    let (body, exp) = match u.find(['e', 'E']) {
        Some(i) => (&u[..i], Some(&u[i + 1..])),
        None => (u, None),
    };
    let exp_ok = exp.is_none_or(|e| {
        e.strip_prefix(['-', '+']).is_some_and(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()))
    });
    let Some((head, frac)) = body.split_once('.') else { return false };
    let mantissa_ok = if head.is_empty() {
        signed.is_none() && frac.starts_with(|c: char| c.is_ascii_digit()) && digits_underscore(frac, 10)
    } else {
        head.starts_with(|c: char| c.is_ascii_digit()) && digits_underscore(head, 10) && digits_underscore(frac, 10)
    };
    mantissa_ok && exp_ok
}

/// `YYYY-MM-DD`, or a date and a time (`2001-12-14t21:59:43.10-05:00`, the space-separated form too).
fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    let ymd = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && [0, 1, 2, 3, 5, 6, 8, 9].iter().all(|&i| b[i].is_ascii_digit());
    if ymd {
        return true;
    }
    // The full timestamp form: a date with 1- or 2-digit month and day, then a time.
    let mut parts = s.splitn(3, '-');
    let (Some(y), Some(m), Some(rest)) = (parts.next(), parts.next(), parts.next()) else { return false };
    let two = |p: &str| (1..=2).contains(&p.len()) && p.chars().all(|c| c.is_ascii_digit());
    if y.len() != 4 || !y.chars().all(|c| c.is_ascii_digit()) || !two(m) {
        return false;
    }
    // `(?:[Tt]|[ \t]+)`: one letter, or spaces and tabs, not both.
    let Some(sep) = rest.find(['t', 'T', ' ', '\t']) else { return false };
    let (d, after) = (&rest[..sep], &rest[sep..]);
    let time = match after.strip_prefix(['t', 'T']) {
        Some(t) => t,
        None => after.trim_start_matches([' ', '\t']),
    };
    two(d) && time_of_day(time)
}

/// `H?H:MM:SS(.fraction)?` then an optional zone (`Z`, `±H?H(:MM)?`, spaces before it).
fn time_of_day(t: &str) -> bool {
    let b = t.as_bytes();
    let h = if b.len() > 1 && b[1] == b':' { 1 } else { 2 };
    let hms = b.len() >= h + 6
        && b[..h].iter().all(u8::is_ascii_digit)
        && b[h] == b':'
        && b[h + 1..h + 3].iter().all(u8::is_ascii_digit)
        && b[h + 3] == b':'
        && b[h + 4..h + 6].iter().all(u8::is_ascii_digit);
    if !hms {
        return false;
    }
    let mut rest = &t[h + 6..];
    if let Some(f) = rest.strip_prefix('.') {
        rest = f.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    let rest = rest.trim_start_matches([' ', '\t']);
    if rest.is_empty() || rest == "Z" {
        return true;
    }
    let Some(zone) = rest.strip_prefix(['-', '+']) else { return false };
    let (zh, zm) = zone.split_once(':').unwrap_or((zone, "00"));
    (1..=2).contains(&zh.len())
        && zh.chars().all(|c| c.is_ascii_digit())
        && zm.len() == 2
        && zm.chars().all(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_read_as_pythons_repr() {
        // `repr(v)` in CPython 3.11.
        let cases = [
            (0.1, "0.1"),
            (1e-5, "1e-05"),
            (1e-4, "0.0001"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (123456789.125, "123456789.125"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (-0.0, "-0.0"),
            (0.3333333432674408, "0.3333333432674408"),
            (2.0, "2.0"),
            (1e22, "1e+22"),
            (1.0000000000000002, "1.0000000000000002"),
            (-2.5, "-2.5"),
            (f64::NAN, "nan"),
            (f64::NEG_INFINITY, "-inf"),
        ];
        for (v, want) in cases {
            assert_eq!(float_repr(v), want, "{v:e}");
        }
    }

    #[test]
    fn hparams_are_written_as_pyyamls_dump() {
        // `yaml.dump(hparams)` from PyYAML in the project venv (Lightning's save_hparams_to_yaml),
        // for every kind of value; `nl` (a line break) is the one simplified case, left out.
        let hparams = serde_json::json!({
            "lr": 1e-6, "eps": 1e-8, "big": 1e16, "wd": 0.01, "n": 3, "neg": -2.5, "whole": 2.0, "name": "mlp",
            "flag": true, "none": null, "layers": [64, 32], "nested": {"a": 1, "b": {"c": "x"}}, "empty": {},
            "elist": [], "yes": "yes", "num": "1.5", "colon": "a: b", "sp": " lead", "quote": "it's", "1": "one",
            "true": 1, "lst": [{"a": 1, "b": 2}, [1, 2], "s"], "path": "/tmp/x-y_z.ckpt", "dash": "-x",
            "hash": "a #b", "star": "*x", "tilde": "~", "emptystr": "", "uni": "é",
            "int_big": 12345678901234567890u64, "t": "00:01:02", "dt": "2020-01-01"
        });
        let want = "'1': one\nbig: 1.0e+16\ncolon: 'a: b'\ndash: -x\ndt: '2020-01-01'\nelist: []\nempty: {}\nemptystr: ''\neps: 1.0e-08\nflag: true\nhash: 'a #b'\nint_big: 12345678901234567890\nlayers:\n- 64\n- 32\nlr: 1.0e-06\nlst:\n- a: 1\n  b: 2\n- - 1\n  - 2\n- s\nn: 3\nname: mlp\nneg: -2.5\nnested:\n  a: 1\n  b:\n    c: x\nnone: null\nnum: '1.5'\npath: /tmp/x-y_z.ckpt\nquote: it's\nsp: ' lead'\nstar: '*x'\nt: 00:01:02\ntilde: '~'\n'true': 1\nuni: \"\\xE9\"\nwd: 0.01\nwhole: 2.0\n'yes': 'yes'\n";
        assert_eq!(yaml_dump(&hparams), want);
        assert_eq!(yaml_dump(&serde_json::json!({})), "{}\n");
        let breaks = serde_json::json!({"k": "a\u{85}b\u{a0}c\u{2028}d\u{2029}"});
        assert_eq!(yaml_dump(&breaks), "k: \"a\\Nb\\_c\\Ld\\P\"\n");
    }

    #[test]
    fn values_read_as_pythons_repr() {
        // `repr(json.loads(text))` in the project venv's CPython.
        let cases = [
            (r#"[1, 2.0, "a", null, true, {"k": [false]}]"#, "[1, 2.0, 'a', None, True, {'k': [False]}]"),
            (r#""it's""#, r#""it's""#),
            (r#""a\\b'\"c""#, r#"'a\\b\'"c'"#),
            (r#""tab\there\u0001\u00e9""#, "'tab\\there\\x01é'"),
            ("1e-06", "1e-06"),
        ];
        for (text, want) in cases {
            let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
            assert_eq!(repr(&v), want, "{text}");
        }
    }

    #[test]
    fn strings_that_read_as_other_values_are_quoted() {
        for s in [
            "0b101",
            "0x1F",
            "017",
            "+12",
            "1_000",
            "1:30",
            "1.5e+3",
            ".5",
            "-.inf",
            ".NaN",
            "2001-12-14t21:59:43.10-05:00",
            "2001-12-14 21:59:43.10 -5",
            "Off",
            "NULL",
            "<<",
        ] {
            assert!(resolves_as_other_type(s), "{s}");
        }
        for s in ["1e5", "0.5.1", "abc", "00:01:02", "1.5e3", "v1", "2020-1-1", "-.5", "2001-12-14 t21:59:43"] {
            assert!(!resolves_as_other_type(s), "{s}");
        }
    }
}

//! YAML in (yaml-rust2's YAML 1.2 core schema, as LightningCLI's configs are written) as JSON
//! values, and out as PyYAML writes LightningCLI's `--print_config` (block style, two-space
//! indent, list items at their key's indent, `null`, `1.0e-08`).

use anyhow::{anyhow, bail, Result};
use serde_json::{Map, Number, Value};
use yaml_rust2::{Yaml, YamlLoader};

/// One YAML document as a JSON value (an empty file is `null`).
pub fn parse(text: &str, shown: &str) -> Result<Value> {
    let mut parser = yaml_rust2::parser::Parser::new_from_str(text);
    loop {
        match parser.next_token() {
            Ok((yaml_rust2::parser::Event::StreamEnd, _)) => break,
            Ok((yaml_rust2::parser::Event::Alias(_), m)) => {
                bail!("{shown}: line {}: a YAML alias (`*name`); write the value out (aliases are refused: a few repeated ones can expand without bound)", m.line())
            }
            Ok(_) => {}
            Err(e) => bail!("{shown}: not YAML: {e}"),
        }
    }
    let docs = YamlLoader::load_from_str(text).map_err(|e| anyhow!("{shown}: not YAML: {e}"))?;
    match docs.as_slice() {
        [] => Ok(Value::Null),
        [doc] => to_json(doc, shown, ""),
        _ => bail!("{shown}: {} YAML documents; a config is one", docs.len()),
    }
}

fn to_json(y: &Yaml, shown: &str, at: &str) -> Result<Value> {
    Ok(match y {
        Yaml::Null => Value::Null,
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Integer(i) => Value::Number((*i).into()),
        Yaml::Real(s) => {
            let f = y.as_f64().ok_or_else(|| anyhow!("{shown}: {at} = {s}: not a number"))?;
            match Number::from_f64(f) {
                Some(n) => Value::Number(n),
                // ±inf/nan: kept as the text Python's float() reads.
                None => Value::String(if f.is_nan() {
                    "nan".into()
                } else if f > 0.0 {
                    "inf".into()
                } else {
                    "-inf".into()
                }),
            }
        }
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Array(items) => Value::Array(
            items.iter().enumerate().map(|(i, v)| to_json(v, shown, &format!("{at}[{i}]"))).collect::<Result<_>>()?,
        ),
        Yaml::Hash(h) => {
            let mut m = Map::new();
            for (k, v) in h {
                let key = match k {
                    Yaml::String(s) => s.clone(),
                    Yaml::Integer(i) => i.to_string(),
                    Yaml::Boolean(b) => b.to_string(),
                    other => bail!("{shown}: {at}: a key {other:?} that is not a string"),
                };
                let here = if at.is_empty() { key.clone() } else { format!("{at}.{key}") };
                m.insert(key, to_json(v, shown, &here)?);
            }
            Value::Object(m)
        }
        Yaml::Alias(_) | Yaml::BadValue => bail!("{shown}: {at}: a YAML value lthost cannot read"),
    })
}

/// What `--print_config` writes: mappings keep their order (JSON maps here are sorted).
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Map(Vec<(String, Node)>),
    List(Vec<Node>),
    Leaf(Value),
}

impl Node {
    pub fn map(entries: Vec<(&str, Node)>) -> Node {
        Node::Map(entries.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    }

    pub fn leaf(v: impl Into<Value>) -> Node {
        Node::Leaf(v.into())
    }

    /// A JSON value (its maps in their sorted order).
    pub fn from_json(v: &Value) -> Node {
        match v {
            Value::Object(m) => Node::Map(m.iter().map(|(k, v)| (k.clone(), Node::from_json(v))).collect()),
            Value::Array(a) => Node::List(a.iter().map(Node::from_json).collect()),
            other => Node::Leaf(other.clone()),
        }
    }
}

/// A mapping as LightningCLI prints it.
pub fn dump(n: &Node) -> String {
    let mut out = String::new();
    if let Node::Map(m) = n {
        mapping(m, 0, &mut out);
    }
    out
}

fn mapping(m: &[(String, Node)], indent: usize, out: &mut String) {
    for (k, v) in m {
        out.push_str(&" ".repeat(indent));
        out.push_str(&scalar_str(k));
        out.push(':');
        value_after_key(v, indent, out);
    }
}

fn value_after_key(v: &Node, indent: usize, out: &mut String) {
    match v {
        Node::Map(inner) if !inner.is_empty() => {
            out.push('\n');
            mapping(inner, indent + 2, out);
        }
        Node::List(items) if !items.is_empty() => {
            out.push('\n');
            sequence(items, indent, out);
        }
        Node::Map(_) => out.push_str(" {}\n"),
        Node::List(_) => out.push_str(" []\n"),
        Node::Leaf(other) => {
            out.push(' ');
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
}

fn sequence(items: &[Node], indent: usize, out: &mut String) {
    for item in items {
        out.push_str(&" ".repeat(indent));
        out.push_str("- ");
        match item {
            Node::Map(m) if !m.is_empty() => {
                // The first key on the dash's line, the rest under it.
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push_str(&" ".repeat(indent + 2));
                    }
                    out.push_str(&scalar_str(k));
                    out.push(':');
                    value_after_key(v, indent + 2, out);
                }
            }
            Node::Map(_) => out.push_str("{}\n"),
            Node::List(_) => out.push_str("[]\n"),
            Node::Leaf(other) => {
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
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => float(f),
            _ => n.to_string(),
        },
        Value::String(s) => scalar_str(s),
        Value::Array(_) => "[]".into(),
        Value::Object(_) => "{}".into(),
    }
}

/// PyYAML's float: Python's repr, with `.0` before an exponent (`1.0e-08`).
fn float(f: f64) -> String {
    if f.is_infinite() {
        return if f > 0.0 { ".inf".into() } else { "-.inf".into() };
    }
    if f.is_nan() {
        return ".nan".into();
    }
    let r = crate::loggers::python_text::float_repr(f);
    match r.split_once('e') {
        Some((m, e)) if !m.contains('.') => format!("{m}.0e{e}"),
        _ => r,
    }
}

/// A string plain when YAML reads it back as the same string, else single-quoted.
fn scalar_str(s: &str) -> String {
    let reads_as_other = s.is_empty()
        || matches!(
            s.to_ascii_lowercase().as_str(),
            "null" | "~" | "true" | "false" | "yes" | "no" | "on" | "off" | ".inf" | "-.inf" | ".nan"
        )
        || s.parse::<f64>().is_ok()
        || s.starts_with(|c: char| "-?:,[]{}#&*!|>'\"%@` ".contains(c))
        || s.ends_with(' ')
        || s.contains(": ")
        || s.contains(" #")
        || s.contains('\n');
    if reads_as_other {
        format!("'{}'", s.replace('\'', "''"))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_reads_and_prints_as_lightning_cli_does() {
        let v = parse("a: 1\nb: 1.0e-08\nc: null\nd: [x, 2]\ne: {f: .inf}\ng: ''\n", "t").unwrap();
        assert_eq!(v["a"], 1);
        assert_eq!(v["b"].as_f64(), Some(1e-8));
        assert!(v["c"].is_null());
        assert_eq!(v["e"]["f"], "inf");
        let cb =
            Node::map(vec![("class_path", Node::leaf("a.B")), ("init_args", Node::map(vec![("k", Node::leaf(1))]))]);
        let trainer = Node::map(vec![
            ("max_epochs", Node::leaf(Value::Null)),
            ("lr", Node::leaf(1e-8)),
            ("x", Node::leaf(0.0)),
            ("name", Node::leaf("")),
            ("cbs", Node::List(vec![cb])),
            ("betas", Node::List(vec![Node::leaf(0.9), Node::leaf(0.999)])),
        ]);
        let printed = dump(&Node::map(vec![("trainer", trainer)]));
        assert_eq!(
            printed,
            "trainer:\n  max_epochs: null\n  lr: 1.0e-08\n  x: 0.0\n  name: ''\n  cbs:\n  - class_path: a.B\n    init_args:\n      k: 1\n  betas:\n  - 0.9\n  - 0.999\n"
        );
        assert_eq!(parse(&printed, "t").unwrap()["trainer"]["cbs"][0]["init_args"]["k"], 1);
    }
}

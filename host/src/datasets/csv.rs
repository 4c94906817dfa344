//! CSV with a schema: the plugin names the columns it wants and their dtypes; the host reads
//! them (by header name, or by position without a header) into one 1-D tensor per column.
//! Quoted fields (`"a,b"`, `""` for a quote) are understood; a cell that does not parse
//! is refused with its line and column.

use tch::{Kind, Tensor};

use super::{err, FormatError, Parsed};

#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub kind: Kind,
}

/// Splits one line into fields.
fn fields(line: &str, delim: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            c if c == delim && !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}

pub fn parse(
    text: &str,
    columns: &[Column],
    header: bool,
    delim: char,
    max_rows: usize,
) -> Parsed<Vec<(String, Tensor)>> {
    if columns.is_empty() {
        return err("the schema names no columns");
    }
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let positions: Vec<usize> = if header {
        let Some((_, h)) = lines.next() else { return err("line 1: no header line") };
        let names = fields(h, delim);
        let names: Vec<String> = names.iter().map(|n| n.trim().to_string()).collect();
        columns
            .iter()
            .map(|c| {
                names.iter().position(|n| *n == c.name).ok_or_else(|| {
                    FormatError(format!("line 1: no column `{}` in the header (it has: {})", c.name, names.join(", ")))
                })
            })
            .collect::<Parsed<_>>()?
    } else {
        (0..columns.len()).collect()
    };
    let mut values: Vec<Vec<f64>> = vec![Vec::new(); columns.len()];
    for (i, line) in lines {
        let f = fields(line, delim);
        if values[0].len() >= max_rows {
            return err(format!("line {}: more than {max_rows} rows", i + 1));
        }
        for (c, (&pos, col)) in positions.iter().zip(columns).enumerate() {
            let Some(cell) = f.get(pos) else {
                return err(format!("line {}: {} fields, column `{}` is field {}", i + 1, f.len(), col.name, pos + 1));
            };
            let cell = cell.trim();
            let v = match col.kind {
                Kind::Float | Kind::Double | Kind::Half => cell.parse::<f64>().ok(),
                Kind::Bool => match cell {
                    "true" | "True" | "1" => Some(1.0),
                    "false" | "False" | "0" => Some(0.0),
                    _ => None,
                },
                _ => cell.parse::<i64>().ok().map(|v| v as f64),
            };
            let Some(v) = v else {
                return err(format!("line {}, column `{}`: `{cell}` is not a {:?}", i + 1, col.name, col.kind));
            };
            values[c].push(v);
        }
    }
    let mut out = Vec::with_capacity(columns.len());
    for (col, vals) in columns.iter().zip(values) {
        let t =
            Tensor::f_from_slice(&vals).and_then(|t| t.f_to_kind(col.kind)).map_err(|e| FormatError(e.to_string()))?;
        out.push((col.name.clone(), t));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_named_columns_and_names_bad_cells() {
        let text = "x,label,name\n0.5,1,\"a,b\"\n-1.25,0,c\n";
        let cols = [Column { name: "label".into(), kind: Kind::Int64 }, Column { name: "x".into(), kind: Kind::Float }];
        let out = parse(text, &cols, true, ',', 100).unwrap();
        assert_eq!(Vec::<i64>::try_from(&out[0].1).unwrap(), vec![1, 0]);
        assert_eq!(Vec::<f32>::try_from(&out[1].1).unwrap(), vec![0.5, -1.25]);
        let e = parse("x,label\n0.5,one\n", &cols, true, ',', 100).unwrap_err().0;
        assert!(e.contains("line 2, column `label`: `one`"), "{e}");
        let e = parse("a,b\n1,2\n", &cols, true, ',', 100).unwrap_err().0;
        assert!(e.contains("no column `label`") && e.contains("a, b"), "{e}");
        let e = parse("1\n", &cols, false, ',', 100).unwrap_err().0;
        assert!(e.contains("line 1: 1 fields"), "{e}");
    }
}

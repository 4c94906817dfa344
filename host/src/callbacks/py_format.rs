//! Python's format-spec mini-language (`format(value, spec)`) for the numbers a checkpoint
//! filename template holds: `{epoch:03d}`, `{val_loss:.2f}`, `{lr:.1e}`, `{acc:.1%}`, and a
//! bare `{val_loss}` as Python's `repr` of the float. Lightning formats 0-dim tensors, whose
//! `__format__` is the Python number's: an int for `epoch`, `step` and missing keys, a float
//! (the float32 value) for metrics.

/// A template value: Python's int or float.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    Int(i64),
    Float(f64),
}

struct Spec {
    fill: char,
    align: Option<char>,
    sign: char,
    alternate: bool,
    width: usize,
    grouping: Option<char>,
    precision: Option<usize>,
    kind: Option<char>,
}

fn parse(spec: &str) -> Result<Spec, String> {
    let chars: Vec<char> = spec.chars().collect();
    let mut i = 0;
    let mut s = Spec {
        fill: ' ',
        align: None,
        sign: '-',
        alternate: false,
        width: 0,
        grouping: None,
        precision: None,
        kind: None,
    };
    let is_align = |c: char| matches!(c, '<' | '>' | '^' | '=');
    if chars.len() >= 2 && is_align(chars[1]) {
        (s.fill, s.align, i) = (chars[0], Some(chars[1]), 2);
    } else if chars.first().is_some_and(|&c| is_align(c)) {
        (s.align, i) = (Some(chars[0]), 1);
    }
    if let Some(&c) = chars.get(i).filter(|c| matches!(c, '+' | '-' | ' ')) {
        (s.sign, i) = (c, i + 1);
    }
    if chars.get(i) == Some(&'#') {
        (s.alternate, i) = (true, i + 1);
    }
    if chars.get(i) == Some(&'0') {
        if s.align.is_none() {
            (s.fill, s.align) = ('0', Some('='));
        }
        i += 1;
    }
    let digits = |i: &mut usize| {
        let start = *i;
        while chars.get(*i).is_some_and(|c| c.is_ascii_digit()) {
            *i += 1;
        }
        chars[start..*i].iter().collect::<String>()
    };
    // Python takes any size; a checkpoint name needs no more than this.
    const MAX: usize = 1000;
    let w = digits(&mut i);
    if !w.is_empty() {
        s.width =
            w.parse().ok().filter(|w| *w <= MAX).ok_or_else(|| format!("width over {MAX} in format spec {spec:?}"))?;
    }
    if let Some(&c) = chars.get(i).filter(|c| matches!(c, ',' | '_')) {
        (s.grouping, i) = (Some(c), i + 1);
    }
    if chars.get(i) == Some(&'.') {
        i += 1;
        let p = digits(&mut i);
        if p.is_empty() {
            return Err("Format specifier missing precision".into());
        }
        s.precision = Some(
            p.parse()
                .ok()
                .filter(|p| *p <= MAX)
                .ok_or_else(|| format!("precision over {MAX} in format spec {spec:?}"))?,
        );
    }
    if i < chars.len() {
        s.kind = Some(chars[i]);
        i += 1;
    }
    if i < chars.len() {
        return Err("Invalid format specifier".into());
    }
    Ok(s)
}

/// Python's `format(value, spec)`; an error carries Python's message.
pub fn format(value: Number, spec: &str) -> Result<String, String> {
    let s = parse(spec)?;
    let (negative, body) = match (value, s.kind) {
        (Number::Int(v), None | Some('d') | Some('n')) => {
            if s.precision.is_some() {
                return Err("Precision not allowed in integer format specifier".into());
            }
            (v < 0, group(&v.unsigned_abs().to_string(), s.grouping))
        }
        (Number::Int(v), Some(k @ ('b' | 'o' | 'x' | 'X'))) => {
            if s.precision.is_some() {
                return Err("Precision not allowed in integer format specifier".into());
            }
            let a = v.unsigned_abs();
            let digits = match k {
                'b' => format!("{a:b}"),
                'o' => format!("{a:o}"),
                'x' => format!("{a:x}"),
                _ => format!("{a:X}"),
            };
            let prefix = if s.alternate { format!("0{}", if k == 'X' { 'X' } else { k }) } else { String::new() };
            (v < 0, format!("{prefix}{digits}"))
        }
        (Number::Int(_), Some(k)) if !"eEfFgG%".contains(k) => {
            return Err(format!("Unknown format code '{k}' for object of type 'int'"))
        }
        (Number::Int(v), kind) => float_body(v as f64, kind, &s),
        (Number::Float(_), Some(k)) if !"eEfFgG%n".contains(k) => {
            return Err(format!("Unknown format code '{k}' for object of type 'float'"))
        }
        (Number::Float(v), kind) => float_body(v, kind, &s),
    };
    let sign = match (negative, s.sign) {
        (true, _) => "-",
        (false, '+') => "+",
        (false, ' ') => " ",
        _ => "",
    };
    let len = sign.chars().count() + body.chars().count();
    let pad = s.width.saturating_sub(len);
    let fill = |n: usize| s.fill.to_string().repeat(n);
    Ok(match s.align.unwrap_or('>') {
        '<' => format!("{sign}{body}{}", fill(pad)),
        '^' => format!("{}{sign}{body}{}", fill(pad / 2), fill(pad - pad / 2)),
        '=' => format!("{sign}{}{body}", fill(pad)),
        _ => format!("{}{sign}{body}", fill(pad)),
    })
}

/// The digits of |v| for a float presentation type (the sign is added by the caller).
fn float_body(v: f64, kind: Option<char>, s: &Spec) -> (bool, String) {
    let negative = v.is_sign_negative() && !v.is_nan();
    let a = v.abs();
    let upper = kind.is_some_and(|k| k.is_ascii_uppercase());
    if !a.is_finite() {
        let t = if a.is_nan() { "nan" } else { "inf" };
        let t = if upper { t.to_uppercase() } else { t.to_string() };
        return (negative, if kind == Some('%') { format!("{t}%") } else { t });
    }
    let text = match kind {
        Some('f') | Some('F') => fixed(a, s.precision.unwrap_or(6), s.alternate, s.grouping),
        Some('e') | Some('E') => sci(a, s.precision.unwrap_or(6), s.alternate),
        Some('%') => format!("{}%", fixed(a * 100.0, s.precision.unwrap_or(6), s.alternate, s.grouping)),
        Some('g') | Some('G') | Some('n') => general(a, s.precision.unwrap_or(6), s.alternate, false, s.grouping),
        _ => match s.precision {
            Some(p) => general(a, p, s.alternate, true, s.grouping),
            None => repr(a, s.grouping),
        },
    };
    (negative, if upper { text.to_uppercase() } else { text })
}

fn group(int_digits: &str, sep: Option<char>) -> String {
    let Some(sep) = sep else { return int_digits.to_string() };
    let n = int_digits.len();
    int_digits.chars().enumerate().fold(String::new(), |mut out, (i, c)| {
        if i > 0 && (n - i) % 3 == 0 {
            out.push(sep);
        }
        out.push(c);
        out
    })
}

fn fixed(a: f64, p: usize, alternate: bool, grouping: Option<char>) -> String {
    let t = format!("{a:.p$}");
    let (int, frac) = t.split_once('.').unwrap_or((&t, ""));
    let int = group(int, grouping);
    match (frac.is_empty(), alternate) {
        (true, true) => format!("{int}."),
        (true, false) => int,
        _ => format!("{int}.{frac}"),
    }
}

/// `d.ddde±XX` with `p` digits after the point (Python writes at least two exponent digits).
fn sci(a: f64, p: usize, alternate: bool) -> String {
    let t = format!("{a:.p$e}");
    let (mantissa, exp) = t.split_once('e').unwrap_or((&t, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let dot = if alternate && p == 0 { "." } else { "" };
    format!("{mantissa}{dot}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
}

/// Python's 'g' (and the no-type form with a precision, `repr_like`): `p` significant
/// digits, scientific when the exponent is < -4 or >= p, trailing zeros dropped.
fn general(a: f64, p: usize, alternate: bool, repr_like: bool, grouping: Option<char>) -> String {
    let p = p.max(1);
    if a == 0.0 {
        return if alternate {
            format!("0.{}", "0".repeat(p - 1))
        } else if repr_like {
            "0.0".into()
        } else {
            "0".into()
        };
    }
    let rounded = format!("{a:.*e}", p - 1);
    let exp: i32 = rounded.split_once('e').and_then(|(_, e)| e.parse().ok()).unwrap_or(0);
    let strip = |t: String| -> String {
        if alternate || !t.contains('.') {
            return t;
        }
        let t = t.trim_end_matches('0');
        let t = t.strip_suffix('.').unwrap_or(t).to_string();
        if repr_like && !t.contains('.') {
            format!("{t}.0")
        } else {
            t
        }
    };
    // Python switches to exponent form at exp >= p for 'g', at exp >= p - 1 without a type.
    let limit = if repr_like { p as i32 - 1 } else { p as i32 };
    if -4 <= exp && exp < limit {
        strip(fixed(a, (p as i32 - 1 - exp) as usize, alternate, grouping))
    } else {
        let t = sci(a, p - 1, alternate);
        let (m, e) = t.split_once('e').unwrap_or((&t, ""));
        let m = if alternate || !m.contains('.') {
            m.to_string()
        } else {
            m.trim_end_matches('0').trim_end_matches('.').to_string()
        };
        format!("{m}e{e}")
    }
}

/// Python's `repr` of a str: single quotes, or double ones when the text holds a single
/// quote and no double one; backslashes, the quote and the characters Python does not
/// print (controls, DEL to NBSP) escaped.
pub fn repr_str(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
    let mut out = String::from(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || (0x7f..=0xa0).contains(&(c as u32)) => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// A number from a run file as Python holds it: an int stays an int (`100`), a float a float
/// (`100.0`), so a message prints it as Lightning's f-string prints the argument.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PyNumber {
    pub value: f64,
    /// The int as given (exact: Python's ints have no size limit, a run file's up to 64 bits).
    pub int: Option<i128>,
}

impl PyNumber {
    pub fn float(value: f64) -> Self {
        PyNumber { value, int: None }
    }

    /// Python's `abs`: an int stays an int.
    pub fn abs(self) -> Self {
        PyNumber { value: self.value.abs(), int: self.int.map(i128::abs) }
    }
}

impl std::fmt::Display for PyNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.int {
            Some(i) => write!(f, "{i}"),
            None => f.write_str(&repr_float(self.value)),
        }
    }
}

impl serde::Serialize for PyNumber {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.int {
            Some(i) => match i64::try_from(i) {
                Ok(v) => s.serialize_i64(v),
                Err(_) => s.serialize_f64(self.value),
            },
            None => s.serialize_f64(self.value),
        }
    }
}

impl<'de> serde::Deserialize<'de> for PyNumber {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = PyNumber;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<PyNumber, E> {
                Ok(PyNumber { value: v as f64, int: Some(i128::from(v)) })
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<PyNumber, E> {
                Ok(PyNumber { value: v as f64, int: Some(i128::from(v)) })
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<PyNumber, E> {
                Ok(PyNumber::float(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// Python's `repr(float)` (and `str`): `1.0`, `1e-07`, `-0.0`, `nan`, `-inf`.
pub fn repr_float(v: f64) -> String {
    if v.is_nan() {
        return "nan".into();
    }
    let sign = if v.is_sign_negative() { "-" } else { "" };
    if v.is_infinite() {
        return format!("{sign}inf");
    }
    format!("{sign}{}", repr(v.abs(), None))
}

/// Python's `repr(float)` of |x|: the shortest digits that read back, in decimal when
/// 1e-4 <= |x| < 1e16, else `d.ddde±XX`.
fn repr(a: f64, grouping: Option<char>) -> String {
    let t = format!("{a:e}");
    let (mantissa, exp) = t.split_once('e').unwrap_or((&t, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    if (-4..16).contains(&exp) {
        if exp >= 0 {
            let e = exp as usize;
            let int: String = digits.chars().chain(std::iter::repeat('0')).take(e + 1).collect();
            let frac = if digits.len() > e + 1 { &digits[e + 1..] } else { "0" };
            format!("{}.{frac}", group(&int, grouping))
        } else {
            format!("0.{}{digits}", "0".repeat((-exp - 1) as usize))
        }
    } else {
        let (first, rest) = digits.split_at(1);
        let m = if rest.is_empty() { first.to_string() } else { format!("{first}.{rest}") };
        format!("{m}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected strings: what CPython's format() returns for the same value and spec.
    #[test]
    fn formats_as_python_does() {
        let f = |v: f64, s: &str| format(Number::Float(v), s).unwrap();
        let i = |v: i64, s: &str| format(Number::Int(v), s).unwrap();
        let x = 0.8999999761581421;
        assert_eq!(f(x, ""), "0.8999999761581421");
        assert_eq!(f(x, ".2f"), "0.90");
        assert_eq!(f(x, ".3f"), "0.900");
        assert_eq!(f(x, ".1e"), "9.0e-01");
        assert_eq!(f(x, ".1%"), "90.0%");
        assert_eq!(f(x, ".3g"), "0.9");
        assert_eq!(f(x, "8.3f"), "   0.900");
        assert_eq!(f(x, "<8.2f"), "0.90    ");
        assert_eq!(f(x, "08.3f"), "0000.900");
        assert_eq!(f(-x, "+.2f"), "-0.90");
        assert_eq!(f(x, "+.2f"), "+0.90");
        assert_eq!(f(2.0, ""), "2.0");
        assert_eq!(f(1.5e-5, ""), "1.5e-05");
        assert_eq!(f(1e16, ""), "1e+16");
        assert_eq!(f(123456.0, ".3"), "1.23e+05");
        assert_eq!(f(0.5, ".3"), "0.5");
        assert_eq!(f(2.0, ".3"), "2.0");
        assert_eq!(f(0.00012345, "g"), "0.00012345");
        assert_eq!(f(1234567.0, "g"), "1.23457e+06");
        assert_eq!(f(1234567.0, ",.1f"), "1,234,567.0");
        assert_eq!(f(f64::INFINITY, ".2f"), "inf");
        assert_eq!(f(f64::NAN, ""), "nan");
        assert_eq!(i(5, "03d"), "005");
        assert_eq!(i(5, "03"), "005");
        assert_eq!(i(16, "05d"), "00016");
        assert_eq!(i(7, ""), "7");
        assert_eq!(i(7, ".2f"), "7.00");
        assert_eq!(i(-7, "4d"), "  -7");
        assert_eq!(i(1234567, "_d"), "1_234_567");
        assert_eq!(i(3, "^5d"), "  3  ");
        assert_eq!(f(100.0, ".3"), "1e+02");
        assert_eq!(f(12.0, ".2"), "1.2e+01");
        assert_eq!(f(1.0, ".1"), "1e+00");
        assert_eq!(f(0.5, ".1"), "0.5");
        assert_eq!(f(9.5, ".1"), "1e+01");
        assert_eq!(f(0.25, ".2"), "0.25");
        assert_eq!(i(10, "x"), "a");
        assert_eq!(i(255, "#X"), "0XFF");
        assert_eq!(i(5, "b"), "101");
    }

    #[test]
    fn refuses_what_python_refuses() {
        assert_eq!(format(Number::Float(0.5), "d").unwrap_err(), "Unknown format code 'd' for object of type 'float'");
        assert!(format(Number::Int(1), ".2d").is_err());
        assert!(format(Number::Float(1.0), ".f").is_err());
        assert!(format(Number::Float(1.0), ".70000f").is_err(), "a precision past the limit is an error, not a panic");
        assert!(format(Number::Int(1), "99999999999d").is_err());
    }
}

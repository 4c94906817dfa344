//! Lightning's callback state keys (`Callback._generate_state_key`): the class name and
//! Python's `repr` of the keyword arguments that tell two instances apart, e.g.
//! `EarlyStopping{'monitor': 'val_loss', 'mode': 'min'}`. A checkpoint keeps each built-in
//! callback's state under its key, so state is restored only into a callback configured
//! the same way (a changed trigger starts a ModelCheckpoint afresh, as in Lightning).

use crate::callbacks::py_format::repr_str;

/// A keyword argument's value, as Python would hold it.
#[derive(Debug, Clone, PartialEq)]
pub enum PyValue {
    Str(String),
    Int(i64),
    None,
    /// A `datetime.timedelta` of this many seconds.
    Timedelta(f64),
}

/// `Class{'key': value, ...}`, as Lightning writes it.
pub fn state_key(class: &str, kwargs: &[(&str, PyValue)]) -> String {
    let items: Vec<String> = kwargs.iter().map(|(k, v)| format!("{}: {}", repr_str(k), repr(v))).collect();
    format!("{class}{{{}}}", items.join(", "))
}

fn repr(v: &PyValue) -> String {
    match v {
        PyValue::Str(s) => repr_str(s),
        PyValue::Int(i) => i.to_string(),
        PyValue::None => "None".into(),
        PyValue::Timedelta(s) => repr_timedelta(*s),
    }
}

/// Python's `repr` of `timedelta(seconds=s)`: `datetime.timedelta(days=1, seconds=5,
/// microseconds=250000)`, the zero fields left out (`datetime.timedelta(0)` when all are).
fn repr_timedelta(s: f64) -> String {
    // timedelta rounds to the microsecond half to even.
    let micros = (s * 1e6).round_ties_even() as i128;
    let (days, rest) = (micros.div_euclid(86_400_000_000), micros.rem_euclid(86_400_000_000));
    let (secs, us) = (rest / 1_000_000, rest % 1_000_000);
    let parts: Vec<String> = [("days", days), ("seconds", secs), ("microseconds", us)]
        .iter()
        .filter(|(_, v)| *v != 0)
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if parts.is_empty() {
        "datetime.timedelta(0)".into()
    } else {
        format!("datetime.timedelta({})", parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_lightnings() {
        // The strings are CPython 3.11's and Lightning 2.6.6's (`ModelCheckpoint(monitor=
        // "val_loss").state_key`, `repr(timedelta(...))`, `repr(str)`).
        let mc = state_key(
            "ModelCheckpoint",
            &[
                ("monitor", PyValue::Str("val_loss".into())),
                ("mode", PyValue::Str("min".into())),
                ("every_n_train_steps", PyValue::Int(0)),
                ("every_n_epochs", PyValue::Int(1)),
                ("train_time_interval", PyValue::None),
            ],
        );
        assert_eq!(
            mc,
            "ModelCheckpoint{'monitor': 'val_loss', 'mode': 'min', 'every_n_train_steps': 0, 'every_n_epochs': 1, 'train_time_interval': None}"
        );
        assert_eq!(repr_timedelta(60.0), "datetime.timedelta(seconds=60)");
        assert_eq!(repr_timedelta(0.0), "datetime.timedelta(0)");
        assert_eq!(repr_timedelta(90_000.0), "datetime.timedelta(days=1, seconds=3600)");
        assert_eq!(repr_timedelta(1.5), "datetime.timedelta(seconds=1, microseconds=500000)");
        assert_eq!(repr_timedelta(2.5e-6), "datetime.timedelta(microseconds=2)");
        assert_eq!(repr_timedelta(5e-7), "datetime.timedelta(0)");
        assert_eq!(repr_str("it's"), "\"it's\"");
        assert_eq!(repr_str("a'b\"c"), "'a\\'b\"c'");
        assert_eq!(repr_str("tab\there\\"), "'tab\\there\\\\'");
    }
}

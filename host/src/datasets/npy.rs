//! NumPy `.npy`: the magic, a version, a header dict (`descr`, `fortran_order`, `shape`),
//! then the data; little-endian (or byte-order-free) dtypes, C order.

use tch::{Kind, Tensor};

use super::{err, numel, Parsed};

fn kind_of(descr: &str) -> Parsed<Kind> {
    let (order, ty) = descr.split_at(1.min(descr.len()));
    if order == ">" && !matches!(ty, "u1" | "i1" | "b1") {
        return err(format!("big-endian dtype `{descr}` (save little-endian)"));
    }
    Ok(match ty {
        "f4" => Kind::Float,
        "f8" => Kind::Double,
        "f2" => Kind::Half,
        "i8" => Kind::Int64,
        "i4" => Kind::Int,
        "i2" => Kind::Int16,
        "i1" => Kind::Int8,
        "u1" => Kind::Uint8,
        "b1" => Kind::Bool,
        _ => return err(format!("dtype `{descr}` is not supported (f2/f4/f8, i1/i2/i4/i8, u1, b1)")),
    })
}

/// Parses a `.npy` image into a CPU tensor.
pub fn parse(bytes: &[u8], max_elements: i64) -> Parsed<Tensor> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return err("byte 0: no \\x93NUMPY magic");
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        v => return err(format!("byte 6: unknown version {v}")),
    };
    let Some(header) = bytes.get(start..start + header_len) else {
        return err(format!(
            "byte {start}: the header of {header_len} bytes runs past the end ({} bytes)",
            bytes.len()
        ));
    };
    let Ok(header) = std::str::from_utf8(header) else { return err(format!("byte {start}: the header is not text")) };
    let field = |key: &str| header.split(key).nth(1).map(str::trim_start);
    let Some(descr) = field("'descr':").and_then(|r| r.strip_prefix('\'')).and_then(|r| r.split('\'').next()) else {
        return err(format!("byte {start}: the header has no 'descr'"));
    };
    let kind = kind_of(descr).map_err(|e| super::FormatError(format!("byte {start}: {e}")))?;
    if field("'fortran_order':").is_some_and(|r| r.starts_with("True")) {
        return err(format!("byte {start}: Fortran-ordered arrays are not supported (save with np.ascontiguousarray)"));
    }
    let Some(shape_text) = field("'shape':").and_then(|r| r.strip_prefix('(')).and_then(|r| r.split(')').next()) else {
        return err(format!("byte {start}: the header has no 'shape'"));
    };
    let shape: Vec<i64> = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<i64>())
        .collect::<Result<_, _>>()
        .map_err(|_| super::FormatError(format!("byte {start}: shape ({shape_text}) is not a tuple of integers")))?;
    let n = numel(&shape, max_elements).map_err(|e| super::FormatError(format!("byte {start}: {e}")))?;
    let data_at = start + header_len;
    let need = (n as usize).saturating_mul(kind.elt_size_in_bytes());
    let have = bytes.len() - data_at;
    if have != need {
        return err(format!(
            "byte {data_at}: shape {shape:?} of {descr} needs {need} bytes of data, the file holds {have}"
        ));
    }
    Tensor::f_from_data_size(&bytes[data_at..], &shape, kind).map_err(|e| super::FormatError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
        let header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend((header.len() as u16).to_le_bytes());
        out.extend(header.as_bytes());
        out.extend(data);
        out
    }

    #[test]
    fn parses_and_refuses_with_offsets() {
        let data: Vec<u8> = [1.5f32, -2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let t = parse(&npy("<f4", "(2,)", &data), 1 << 31).unwrap();
        assert_eq!(Vec::<f32>::try_from(t).unwrap(), vec![1.5, -2.0]);
        let e = parse(&npy("<f4", "(3,)", &data), 1 << 31).unwrap_err().0;
        assert!(e.contains("needs 12 bytes") && e.contains("holds 8"), "{e}");
        assert!(parse(&npy(">f4", "(2,)", &data), 1 << 31).unwrap_err().0.contains("big-endian"));
        assert!(parse(b"garbage!!!!!", 1 << 31).unwrap_err().0.starts_with("byte 0"));
    }
}

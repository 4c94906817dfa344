//! IDX, the MNIST file format: two zero bytes, a type code (0x08 u8, 0x09 i8, 0x0B i16,
//! 0x0C i32, 0x0D f32, 0x0E f64), the number of dimensions, each dimension as a big-endian
//! u32, then the data, big-endian. Files ending in `.gz` are gunzipped first.

use tch::{Kind, Tensor};

use super::{err, numel, Parsed};

pub fn parse(bytes: &[u8], max_elements: i64) -> Parsed<Tensor> {
    if bytes.len() < 4 {
        return err(format!("byte 0: {} bytes is too short for an IDX header", bytes.len()));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return err(format!(
            "byte 0: an IDX file starts with two zero bytes, found {:#04x} {:#04x}",
            bytes[0], bytes[1]
        ));
    }
    let (kind, size) = match bytes[2] {
        0x08 => (Kind::Uint8, 1),
        0x09 => (Kind::Int8, 1),
        0x0B => (Kind::Int16, 2),
        0x0C => (Kind::Int, 4),
        0x0D => (Kind::Float, 4),
        0x0E => (Kind::Double, 8),
        t => return err(format!("byte 2: unknown IDX type code {t:#04x} (0x08, 0x09, 0x0B, 0x0C, 0x0D or 0x0E)")),
    };
    let ndim = bytes[3] as usize;
    if ndim == 0 {
        return err("byte 3: zero dimensions");
    }
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return err(format!(
            "byte {}: the header declares {ndim} dimensions but the file ends at byte {}",
            bytes.len(),
            bytes.len()
        ));
    }
    let shape: Vec<i64> = (0..ndim)
        .map(|i| u32::from_be_bytes([bytes[4 + 4 * i], bytes[5 + 4 * i], bytes[6 + 4 * i], bytes[7 + 4 * i]]) as i64)
        .collect();
    let n = numel(&shape, max_elements).map_err(|e| super::FormatError(format!("byte 4: {e}")))?;
    let need = (n as usize).saturating_mul(size);
    let have = bytes.len() - header;
    if have != need {
        return err(format!("byte {header}: dimensions {shape:?} need {need} bytes of data, the file holds {have}"));
    }
    let data = &bytes[header..];
    // Big-endian to native.
    let native: Vec<u8> =
        if size == 1 { data.to_vec() } else { data.chunks_exact(size).flat_map(|c| c.iter().rev().copied()).collect() };
    Tensor::f_from_data_size(&native, &shape, kind).map_err(|e| super::FormatError(e.to_string()))
}

/// The bytes of a file, gunzipped when it ends in `.gz`.
/// The file's IDX bytes: `raw` as read, gunzipped first if `gz`. A gzip stream that would
/// inflate past `max_bytes` is refused before it does (a decompression bomb).
pub fn unpack(raw: Vec<u8>, gz: bool, max_bytes: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    if !gz {
        return Ok(raw);
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&raw[..]).take(max_bytes.saturating_add(1)).read_to_end(&mut out)?;
    if out.len() as u64 > max_bytes {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("it inflates past {} MiB, more than the plugin's tensor budget can hold; refused", max_bytes >> 20),
        ));
    }
    Ok(out)
}

/// An IDX image for tests and tools: big-endian `data` of `kind_code` with `shape`.
pub fn write(kind_code: u8, shape: &[u32], data_be: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, kind_code, shape.len() as u8];
    for d in shape {
        out.extend(d.to_be_bytes());
    }
    out.extend(data_be);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gzip_bomb_is_refused_before_it_inflates() {
        use std::io::Write as _;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&vec![0u8; 64 << 20]).unwrap();
        let bomb = gz.finish().unwrap();
        assert!(bomb.len() < 1 << 20, "64 MiB of zeros packs small");
        let err = unpack(bomb.clone(), true, 16 << 20).unwrap_err().to_string();
        assert!(err.contains("inflates past 16 MiB"), "{err}");
        assert_eq!(unpack(bomb, true, 64 << 20).unwrap().len(), 64 << 20);
    }

    #[test]
    fn reads_mnist_shaped_files_and_names_bad_bytes() {
        let img = write(0x08, &[2, 2, 3], &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 255]);
        let t = parse(&img, 1 << 31).unwrap();
        assert_eq!(t.size(), vec![2, 2, 3]);
        assert_eq!(t.kind(), Kind::Uint8);
        let f = write(0x0D, &[2], &[0x3f, 0x80, 0, 0, 0xc0, 0, 0, 0]);
        assert_eq!(Vec::<f32>::try_from(parse(&f, 1 << 31).unwrap()).unwrap(), vec![1.0, -2.0]);
        assert!(parse(&img[..img.len() - 1], 1 << 31)
            .unwrap_err()
            .0
            .contains("byte 16: dimensions [2, 2, 3] need 12 bytes"));
        assert!(parse(&[1, 0, 8, 1], 1 << 31).unwrap_err().0.starts_with("byte 0"));
        assert!(parse(&[0, 0, 7, 1, 0, 0, 0, 1, 0], 1 << 31)
            .unwrap_err()
            .0
            .starts_with("byte 2: unknown IDX type code 0x07"));
        assert!(parse(&write(0x08, &[u32::MAX, u32::MAX], &[]), 1 << 31).unwrap_err().0.contains("more than"));
    }
}

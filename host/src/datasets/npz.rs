//! NumPy `.npz`: a zip archive of `.npy` members (`np.savez`: stored; `np.savez_compressed`:
//! deflated). Read through the central directory; each member is parsed as `.npy` and named
//! by its file name without `.npy`.

use std::io::Read as _;

use tch::Tensor;

use super::{err, npy, FormatError, Parsed};

fn u16_at(b: &[u8], at: usize) -> Parsed<u16> {
    b.get(at..at + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or_else(|| FormatError(format!("byte {at}: the archive ends inside a header")))
}

fn u32_at(b: &[u8], at: usize) -> Parsed<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| FormatError(format!("byte {at}: the archive ends inside a header")))
}

pub fn parse(bytes: &[u8], max_elements: i64, max_member_bytes: u64) -> Parsed<Vec<(String, Tensor)>> {
    // End of central directory: the last 0x06054b50 (a comment may follow it).
    let Some(eocd) = (0..bytes.len().saturating_sub(21)).rev().find(|&i| bytes[i..i + 4] == [0x50, 0x4b, 0x05, 0x06])
    else {
        return err("no end-of-central-directory record: not a zip (.npz) archive");
    };
    let entries = u16_at(bytes, eocd + 10)? as usize;
    let mut at = u32_at(bytes, eocd + 16)? as usize;
    let mut out = Vec::with_capacity(entries);
    for _ in 0..entries {
        if u32_at(bytes, at)? != 0x0201_4b50 {
            return err(format!("byte {at}: expected a central directory entry"));
        }
        let method = u16_at(bytes, at + 10)?;
        let csize = u32_at(bytes, at + 20)? as usize;
        let usize_ = u32_at(bytes, at + 24)? as u64;
        let (nlen, elen, clen) =
            (u16_at(bytes, at + 28)? as usize, u16_at(bytes, at + 30)? as usize, u16_at(bytes, at + 32)? as usize);
        let local = u32_at(bytes, at + 42)? as usize;
        let name = bytes
            .get(at + 46..at + 46 + nlen)
            .and_then(|n| std::str::from_utf8(n).ok())
            .ok_or_else(|| FormatError(format!("byte {}: bad member name", at + 46)))?
            .to_string();
        at += 46 + nlen + elen + clen;
        if u32_at(bytes, local)? != 0x0403_4b50 {
            return err(format!("byte {local}: member `{name}`: expected a local file header"));
        }
        let data_at = local + 30 + u16_at(bytes, local + 26)? as usize + u16_at(bytes, local + 28)? as usize;
        let Some(data) = bytes.get(data_at..data_at + csize) else {
            return err(format!(
                "byte {data_at}: member `{name}` of {csize} bytes runs past the end of the archive ({} bytes)",
                bytes.len()
            ));
        };
        if usize_ > max_member_bytes {
            return err(format!("byte {local}: member `{name}` unpacks to {usize_} bytes, over the limit"));
        }
        let raw = match method {
            0 => data.to_vec(),
            8 => {
                let mut v = Vec::with_capacity(usize_ as usize);
                flate2::read::DeflateDecoder::new(data)
                    .take(max_member_bytes + 1)
                    .read_to_end(&mut v)
                    .map_err(|e| FormatError(format!("byte {data_at}: member `{name}`: {e}")))?;
                v
            }
            m => {
                return err(format!(
                    "byte {}: member `{name}`: compression method {m} (npz uses 0 stored or 8 deflate)",
                    local + 8
                ))
            }
        };
        if raw.len() as u64 != usize_ {
            return err(format!(
                "byte {data_at}: member `{name}` unpacks to {} bytes, its header says {usize_}",
                raw.len()
            ));
        }
        let t = npy::parse(&raw, max_elements).map_err(|e| FormatError(format!("member `{name}`, {e}")))?;
        out.push((name.trim_end_matches(".npy").to_string(), t));
    }
    Ok(out)
}

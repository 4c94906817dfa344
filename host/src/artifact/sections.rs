//! The top-level sections of a WebAssembly component (or module), read without
//! validation: `id, LEB128 size, payload`, after the 8-byte preamble. Custom sections
//! (id 0) carry a name.

use anyhow::{bail, Result};

pub const PREAMBLE: usize = 8;

#[derive(Debug, Clone, Copy)]
pub struct RawSection<'a> {
    pub id: u8,
    /// The whole section, id and size included.
    pub bytes: &'a [u8],
    pub payload: &'a [u8],
}

impl<'a> RawSection<'a> {
    /// A custom section's name and data.
    pub fn custom(&self) -> Option<(&'a str, &'a [u8])> {
        if self.id != 0 {
            return None;
        }
        let (len, n) = leb_u32(self.payload)?;
        let end = n.checked_add(len as usize)?;
        let name = std::str::from_utf8(self.payload.get(n..end)?).ok()?;
        Some((name, &self.payload[end..]))
    }
}

fn leb_u32(b: &[u8]) -> Option<(u32, usize)> {
    let mut v: u64 = 0;
    for (i, &byte) in b.iter().enumerate().take(5) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return u32::try_from(v).ok().map(|v| (v, i + 1));
        }
    }
    None
}

pub fn leb(mut v: usize, out: &mut Vec<u8>) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Whether the bytes start like a component (not a core module).
pub fn is_component(b: &[u8]) -> bool {
    b.len() >= PREAMBLE && &b[..4] == b"\0asm" && b[4..8] == [0x0d, 0x00, 0x01, 0x00]
}

/// Splits the file into its top-level sections.
pub fn sections(b: &[u8]) -> Result<Vec<RawSection<'_>>> {
    if b.len() < PREAMBLE || &b[..4] != b"\0asm" {
        bail!("not a WebAssembly file");
    }
    let mut out = Vec::new();
    let mut at = PREAMBLE;
    while at < b.len() {
        let id = b[at];
        let Some((size, n)) = leb_u32(&b[at + 1..]) else { bail!("bad section size at byte {}", at + 1) };
        let start = at + 1 + n;
        let end = start.checked_add(size as usize).filter(|&e| e <= b.len());
        let Some(end) = end else { bail!("section at byte {at} runs past the end of the file") };
        out.push(RawSection { id, bytes: &b[at..end], payload: &b[start..end] });
        at = end;
    }
    Ok(out)
}

/// A custom section's bytes: `0, size, name, data`.
pub fn custom_section(name: &str, data: &[u8]) -> Vec<u8> {
    let mut payload = Vec::new();
    leb(name.len(), &mut payload);
    payload.extend_from_slice(name.as_bytes());
    payload.extend_from_slice(data);
    let mut out = vec![0u8];
    leb(payload.len(), &mut out);
    out.extend(payload);
    out
}

/// The data of the first top-level custom section `name` of the file at `path`, read from the
/// section headers alone (the other sections are skipped, not read: a Python plugin is 22 MB);
/// None when it has none. At most `limit` bytes of data.
pub fn custom_section_in_file(path: &std::path::Path, name: &str, limit: usize) -> Result<Option<Vec<u8>>> {
    use std::io::{BufReader, Read as _};
    let mut f = BufReader::with_capacity(256, std::fs::File::open(path)?);
    let mut preamble = [0u8; PREAMBLE];
    f.read_exact(&mut preamble)?;
    if &preamble[..4] != b"\0asm" {
        bail!("not a WebAssembly file");
    }
    let mut id = [0u8; 1];
    while f.read(&mut id)? == 1 {
        let size = leb_from(&mut f)?;
        if id[0] != 0 {
            f.seek_relative(i64::from(size))?;
            continue;
        }
        let name_len = leb_from(&mut f)?;
        let header = leb_len(name_len);
        let Some(rest) = size.checked_sub(header).and_then(|r| r.checked_sub(name_len)) else {
            bail!("a custom section's name runs past the section")
        };
        let mut found = vec![0u8; name_len as usize];
        f.read_exact(&mut found)?;
        if found != name.as_bytes() {
            f.seek_relative(i64::from(rest))?;
            continue;
        }
        if rest as usize > limit {
            bail!("the `{name}` section is {rest} bytes (at most {limit})");
        }
        let mut data = vec![0u8; rest as usize];
        f.read_exact(&mut data)?;
        return Ok(Some(data));
    }
    Ok(None)
}

fn leb_from(r: &mut impl std::io::Read) -> Result<u32> {
    let mut v: u64 = 0;
    for i in 0..5 {
        let mut b = [0u8; 1];
        r.read_exact(&mut b)?;
        v |= u64::from(b[0] & 0x7f) << (7 * i);
        if b[0] & 0x80 == 0 {
            return Ok(u32::try_from(v)?);
        }
    }
    bail!("a section size longer than 5 bytes")
}

/// The bytes `leb` writes for `v`.
fn leb_len(v: u32) -> u32 {
    let mut out = Vec::new();
    leb(v as usize, &mut out);
    out.len() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_sections_round_trip() {
        let mut b = b"\0asm\x0d\x00\x01\x00".to_vec();
        b.extend(custom_section("hello", b"world"));
        b.extend(custom_section("x", &[7u8; 300]));
        let s = sections(&b).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].custom(), Some(("hello", &b"world"[..])));
        assert_eq!(s[1].custom().unwrap().1.len(), 300);
        assert!(is_component(&b));
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("c.wasm");
        std::fs::write(&f, &b).unwrap();
        assert_eq!(custom_section_in_file(&f, "x", 300).unwrap(), Some(vec![7u8; 300]));
        assert_eq!(custom_section_in_file(&f, "hello", 300).unwrap().as_deref(), Some(&b"world"[..]));
        assert!(custom_section_in_file(&f, "x", 299).is_err(), "over the limit");
        assert_eq!(custom_section_in_file(&f, "none", 300).unwrap(), None);
        b.push(0);
        b.push(0x80);
        assert!(sections(&b).is_err(), "a truncated section");
        std::fs::write(&f, &b).unwrap();
        assert!(custom_section_in_file(&f, "none", 300).is_err(), "a truncated section");
    }
}

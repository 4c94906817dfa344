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
        b.push(0);
        b.push(0x80);
        assert!(sections(&b).is_err(), "a truncated section");
    }
}

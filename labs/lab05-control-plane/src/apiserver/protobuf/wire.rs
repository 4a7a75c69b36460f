//! The protobuf wire format, as far as decoding needs it: a message is a
//! run of fields, each a key (field number and wire type) and a value
//! (a varint, 8 or 4 fixed bytes, or length-prefixed bytes).

/// One field's value as it sits on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireValue<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    /// Strings, bytes, nested messages, packed repeated scalars.
    Bytes(&'a [u8]),
}

/// A field number and its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireField<'a> {
    pub number: u32,
    pub value: WireValue<'a>,
}

/// The fields of one message, in wire order.
pub fn fields(mut buf: &[u8]) -> Result<Vec<WireField<'_>>, String> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let key = varint(&mut buf)?;
        let number = u32::try_from(key >> 3)
            .map_err(|_| format!("field number {} is too large", key >> 3))?;
        let value = match key & 7 {
            0 => WireValue::Varint(varint(&mut buf)?),
            1 => WireValue::Fixed64(u64::from_le_bytes(take_array(&mut buf)?)),
            2 => {
                let len = usize::try_from(varint(&mut buf)?)
                    .map_err(|_| "length does not fit".to_string())?;
                WireValue::Bytes(take(&mut buf, len)?)
            }
            5 => WireValue::Fixed32(u32::from_le_bytes(take_array(&mut buf)?)),
            t => {
                return Err(format!(
                    "field {number}: wire type {t} unsupported"
                ))
            }
        };
        out.push(WireField { number, value });
    }
    Ok(out)
}

/// A base-128 varint, least significant group first.
pub fn varint(buf: &mut &[u8]) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = buf
            .split_first()
            .ok_or("the message ends inside a varint")?;
        *buf = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("a varint longer than 10 bytes".into())
}

fn take<'a>(buf: &mut &'a [u8], len: usize) -> Result<&'a [u8], String> {
    if buf.len() < len {
        return Err(format!("{len} bytes announced, {} left", buf.len()));
    }
    let (head, rest) = buf.split_at(len);
    *buf = rest;
    Ok(head)
}

fn take_array<const N: usize>(buf: &mut &[u8]) -> Result<[u8; N], String> {
    let bytes = take(buf, N)?;
    let mut array = [0u8; N];
    array.copy_from_slice(bytes);
    Ok(array)
}

/// Whether bytes of an unknown field hold nothing: no bytes, or a
/// message all of whose fields are zero or empty. Go's generated code
/// writes every non-pointer field, so unknown parts of a body are mostly
/// such empty messages, safe to drop.
pub fn is_empty_message(bytes: &[u8]) -> bool {
    let Ok(fields) = fields(bytes) else {
        return false;
    };
    fields.iter().all(|f| match f.value {
        WireValue::Varint(v) | WireValue::Fixed64(v) => v == 0,
        WireValue::Fixed32(v) => v == 0,
        WireValue::Bytes(b) => is_empty_message(b),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_fields() {
        let mut b: &[u8] = &[0xac, 0x02];
        assert_eq!(varint(&mut b), Ok(300));
        let f = fields(&[0x08, 0x96, 0x01, 0x12, 0x02, b'h', b'i']).unwrap();
        assert_eq!(
            f[0],
            WireField {
                number: 1,
                value: WireValue::Varint(150)
            }
        );
        assert_eq!(f[1].value, WireValue::Bytes(b"hi"));
        assert!(fields(&[0x12, 0x05, b'h']).is_err());
        assert!(is_empty_message(&[0x0a, 0x00, 0x10, 0x00]));
        assert!(!is_empty_message(b"\x0a\x02hi"));
    }
}

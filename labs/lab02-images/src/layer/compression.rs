//! Layers come gzip- or zstd-compressed, or plain; the first bytes tell
//! which (the media type says it too, but a blob is read without it).

use std::io::{self, Read};

/// What a layer blob's first bytes say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    /// A plain tar (`application/vnd.oci.image.layer.v1.tar`).
    None,
    /// zstd (`application/vnd.oci.image.layer.v1.tar+zstd`): what
    /// `skopeo copy --dest-compress-format zstd` and newer builders write.
    Zstd,
}

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

/// Tells the compression from a blob's first bytes.
pub fn sniff(prefix: &[u8]) -> Compression {
    if prefix.starts_with(GZIP_MAGIC) {
        Compression::Gzip
    } else if prefix.starts_with(ZSTD_MAGIC) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

// ANCHOR: uncompressed
/// The tar stream inside `layer`, whether it is gzip- or zstd-compressed or
/// not.
pub fn uncompressed<'a>(
    mut layer: impl Read + 'a,
) -> io::Result<Box<dyn Read + 'a>> {
    // Read the magic number, then put it back in front of the rest.
    let mut prefix = [0u8; 4];
    let mut got = 0;
    while got < prefix.len() {
        match layer.read(&mut prefix[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let whole = io::Cursor::new(prefix[..got].to_vec()).chain(layer);
    match sniff(&prefix[..got]) {
        Compression::Gzip => {
            Ok(Box::new(flate2::read::MultiGzDecoder::new(whole)))
        }
        Compression::None => Ok(Box::new(whole)),
        // Several frames one after the other are one stream, as with gzip.
        Compression::Zstd => {
            Ok(Box::new(zstd::stream::read::Decoder::new(whole)?))
        }
    }
}
// ANCHOR_END: uncompressed

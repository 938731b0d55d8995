//! Content identification by magic bytes: [`sniff`].

/// Signatures at offset 0: (bytes, MIME type), most specific first.
const MAGIC: &[(&[u8], &str)] = &[
    // Images.
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
    (b"8BPS", "image/vnd.adobe.photoshop"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "image/jxl"),
    (b"\xff\x0a", "image/jxl"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "image/jp2"),
    (b"qoif", "image/qoi"),
    // Documents.
    (b"%PDF-", "application/pdf"),
    (b"%!PS", "application/postscript"),
    (b"{\\rtf", "application/rtf"),
    (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
        "application/x-ole-storage",
    ),
    // Archives and compressed data.
    (b"PK\x03\x04", "application/zip"),
    (b"PK\x05\x06", "application/zip"),
    (b"PK\x07\x08", "application/zip"),
    (b"\x1f\x8b\x08", "application/gzip"),
    (b"BZh", "application/x-bzip2"),
    (b"\xfd7zXZ\x00", "application/x-xz"),
    (b"\x28\xb5\x2f\xfd", "application/zstd"),
    (b"\x04\x22\x4d\x18", "application/x-lz4"),
    (b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"),
    (b"Rar!\x1a\x07\x01\x00", "application/vnd.rar"),
    (b"Rar!\x1a\x07\x00", "application/vnd.rar"),
    (b"MSCF\x00\x00\x00\x00", "application/vnd.ms-cab-compressed"),
    (b"!<arch>\ndebian", "application/vnd.debian.binary-package"),
    (b"!<arch>\n", "application/x-archive"),
    (b"\xed\xab\xee\xdb", "application/x-rpm"),
    (b"Cr24", "application/x-chrome-extension"),
    // Executables and bytecode.
    (b"\x00asm", "application/wasm"),
    (b"\xfe\xed\xfa\xce", "application/x-mach-binary"),
    (b"\xfe\xed\xfa\xcf", "application/x-mach-binary"),
    (b"\xce\xfa\xed\xfe", "application/x-mach-binary"),
    (b"\xcf\xfa\xed\xfe", "application/x-mach-binary"),
    (b"dex\n", "application/vnd.android.dex"),
    // Data.
    (b"SQLite format 3\x00", "application/vnd.sqlite3"),
    (b"PAR1", "application/vnd.apache.parquet"),
    (b"bplist00", "application/x-bplist"),
    (b"\xd4\xc3\xb2\xa1", "application/vnd.tcpdump.pcap"),
    (b"\xa1\xb2\xc3\xd4", "application/vnd.tcpdump.pcap"),
    (b"\x4d\x3c\xb2\xa1", "application/vnd.tcpdump.pcap"),
    (b"\xa1\xb2\x3c\x4d", "application/vnd.tcpdump.pcap"),
    (b"\x0a\x0d\x0d\x0a", "application/x-pcapng"),
    // Fonts.
    (b"wOFF", "font/woff"),
    (b"wOF2", "font/woff2"),
    (b"OTTO", "font/otf"),
    (b"\x00\x01\x00\x00\x00", "font/ttf"),
    // Audio and video.
    (b"ID3", "audio/mpeg"),
    (b"OggS", "audio/ogg"),
    (b"fLaC", "audio/flac"),
    (b"MThd", "audio/midi"),
    (b"#!AMR", "audio/amr"),
    (b"FLV\x01", "video/x-flv"),
];

/// Signatures further in: (offset, bytes, MIME type).
const DEEP: &[(usize, &[u8], &str)] = &[
    (257, b"ustar", "application/x-tar"),
    (0x8001, b"CD001", "application/x-iso9660-image"),
];

/// For each first byte, the indices (up to 4) of the `MAGIC` entries that
/// start with it, in table order; `u8::MAX` ends the list. Built at compile
/// time (a fifth entry for one byte fails the build).
const INDEX: [[u8; 4]; 256] = {
    let mut idx = [[u8::MAX; 4]; 256];
    let mut i = 0;
    while i < MAGIC.len() {
        let b = MAGIC[i].0[0] as usize;
        let mut k = 0;
        while idx[b][k] != u8::MAX {
            k += 1;
        }
        idx[b][k] = i as u8;
        i += 1;
    }
    idx
};

/// `ftyp` brands of ISO base media files (offset 8), with their type.
const FTYP: &[(&[u8], &str)] = &[
    (b"avif", "image/avif"),
    (b"avis", "image/avif"),
    (b"heic", "image/heic"),
    (b"heix", "image/heic"),
    (b"heim", "image/heic"),
    (b"heis", "image/heic"),
    (b"mif1", "image/heif"),
    (b"msf1", "image/heif"),
    (b"M4A ", "audio/mp4"),
    (b"M4B ", "audio/mp4"),
    (b"qt  ", "video/quicktime"),
    (b"3gp", "video/3gpp"),
    (b"3g2", "video/3gpp2"),
    (b"crx ", "image/x-canon-cr3"),
];

/// The MIME type of `data` as told by its first bytes ("magic numbers"),
/// or `None` when nothing is recognised.
///
/// Recognises images (PNG, JPEG, GIF, WebP, AVIF/HEIF, TIFF, BMP, ICO,
/// JPEG XL/2000, PSD), documents (PDF, PostScript, RTF, OLE/MS Office,
/// HTML, XML, SVG), archives and compressed data (ZIP, gzip, bzip2, xz,
/// zstd, LZ4, 7z, RAR, tar, ar/deb, RPM, CAB, ISO 9660), executables (ELF by
/// type, PE, Mach-O and fat Mach-O, wasm, Java class, Android DEX), data
/// (SQLite, Parquet, binary plist, pcap, pcapng), fonts (WOFF, WOFF2, OTF,
/// TTF) and audio/video (MP3, MP4/QuickTime, Ogg, FLAC, WAV, AVI, WebM,
/// Matroska, MIDI, FLV). Text formats are only recognised by an
/// unambiguous opening (`<?xml`, `<!DOCTYPE html`, `<html`, `<svg`); JSON
/// and plain text give `None`. Checks only look at a bounded prefix.
pub fn sniff(data: &[u8]) -> Option<&'static str> {
    // Called on every body: only the signatures starting with its first byte.
    let &first = data.first()?;
    for &i in &INDEX[usize::from(first)] {
        let Some(&(magic, mime)) = MAGIC.get(usize::from(i)) else {
            break;
        };
        if data.starts_with(magic) {
            return Some(mime);
        }
    }
    for &(offset, magic, mime) in DEEP {
        if data.get(offset..).is_some_and(|d| d.starts_with(magic)) {
            return Some(mime);
        }
    }
    if data.get(4..8) == Some(b"ftyp") {
        return ftyp(data);
    }
    match first {
        b'R' => riff(data),
        0x7f => elf(data),
        b'M' => pe(data),
        0xca => cafebabe(data),
        0x1a => ebml(data),
        b'B' | 0 => bmp_ico(data),
        0xff => mp3_frame(data),
        b'<' | 0xef => markup(data),
        b if b.is_ascii_whitespace() => markup(data),
        _ => None,
    }
}

fn riff(d: &[u8]) -> Option<&'static str> {
    if !d.starts_with(b"RIFF") {
        return None;
    }
    match d.get(8..12)? {
        b"WEBP" => Some("image/webp"),
        b"WAVE" => Some("audio/wav"),
        b"AVI " => Some("video/x-msvideo"),
        _ => None,
    }
}

fn ftyp(d: &[u8]) -> Option<&'static str> {
    if d.get(4..8)? != b"ftyp" {
        return None;
    }
    let brand = d.get(8..12)?;
    FTYP.iter()
        .find(|(b, _)| brand.starts_with(b))
        .map(|&(_, m)| m)
        .or(Some("video/mp4"))
}

fn elf(d: &[u8]) -> Option<&'static str> {
    if !d.starts_with(b"\x7fELF") {
        return None;
    }
    let t = match (d.get(5), d.get(16..18)) {
        (Some(1), Some(&[a, b])) => u16::from_le_bytes([a, b]),
        (Some(2), Some(&[a, b])) => u16::from_be_bytes([a, b]),
        _ => 0,
    };
    Some(match t {
        1 => "application/x-object",
        3 => "application/x-sharedlib",
        4 => "application/x-coredump",
        _ => "application/x-executable",
    })
}

fn pe(d: &[u8]) -> Option<&'static str> {
    if !d.starts_with(b"MZ") || d.len() < 64 {
        return None;
    }
    let lfanew = u32::from_le_bytes([d[0x3c], d[0x3d], d[0x3e], d[0x3f]]) as usize;
    match d.get(lfanew..lfanew.saturating_add(4)) {
        Some(b"PE\x00\x00") => Some("application/vnd.microsoft.portable-executable"),
        // The PE header is beyond what we have: a DOS header is still a
        // strong hint (64 bytes with a plausible header offset).
        None if (64..0x10000).contains(&lfanew) => Some("application/x-msdownload"),
        _ => None,
    }
}

/// `CA FE BA BE`: a fat Mach-O (few architectures) or a Java class file
/// (major version >= 45).
fn cafebabe(d: &[u8]) -> Option<&'static str> {
    if !d.starts_with(b"\xca\xfe\xba\xbe") {
        return None;
    }
    let n = u32::from_be_bytes(d.get(4..8)?.try_into().ok()?);
    if (1..=30).contains(&n) {
        Some("application/x-mach-binary")
    } else if n & 0xffff >= 45 {
        Some("application/java-vm")
    } else {
        None
    }
}

fn ebml(d: &[u8]) -> Option<&'static str> {
    if !d.starts_with(b"\x1a\x45\xdf\xa3") {
        return None;
    }
    let head = &d[..d.len().min(64)];
    if head.windows(4).any(|w| w == b"webm") {
        Some("video/webm")
    } else {
        Some("video/x-matroska")
    }
}

fn bmp_ico(d: &[u8]) -> Option<&'static str> {
    if d.starts_with(b"BM") && d.len() >= 14 && d[6..10] == [0, 0, 0, 0] {
        return Some("image/bmp");
    }
    if d.starts_with(&[0, 0, 1, 0]) && d.len() >= 22 && d[4..6] != [0, 0] && d[9] == 0 {
        return Some("image/x-icon");
    }
    None
}

/// An MPEG audio frame header without ID3 tag (layer III, MPEG 1/2/2.5).
fn mp3_frame(d: &[u8]) -> Option<&'static str> {
    match d {
        [0xff, b1, b2, ..] if b1 & 0xe6 == 0xe2 && b2 & 0xf0 != 0xf0 && b2 & 0x0c != 0x0c => {
            Some("audio/mpeg")
        }
        _ => None,
    }
}

/// XML, HTML and SVG by their opening, after a BOM and whitespace.
fn markup(d: &[u8]) -> Option<&'static str> {
    let d = d.strip_prefix(b"\xef\xbb\xbf").unwrap_or(d);
    let start = d.iter().take(256).position(|b| !b.is_ascii_whitespace())?;
    let d = &d[start..];
    let opens = |p: &[u8]| d.len() >= p.len() && d[..p.len()].eq_ignore_ascii_case(p);
    if opens(b"<!doctype html") || opens(b"<html") {
        Some("text/html")
    } else if opens(b"<svg") {
        Some("image/svg+xml")
    } else if opens(b"<?xml") {
        let head = &d[..d.len().min(512)];
        if head.windows(4).any(|w| w == b"<svg") {
            Some("image/svg+xml")
        } else {
            Some("application/xml")
        }
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_common_formats() {
        let mut tar = vec![0u8; 512];
        tar[257..262].copy_from_slice(b"ustar");
        let mut pe_file = vec![0u8; 256];
        pe_file[..2].copy_from_slice(b"MZ");
        pe_file[0x3c] = 0x80;
        pe_file[0x80..0x84].copy_from_slice(b"PE\x00\x00");
        let mut elf_so = b"\x7fELF\x02\x01\x01\x00".to_vec();
        elf_so.resize(16, 0);
        elf_so.extend([3, 0]);
        let cases: &[(&[u8], Option<&str>)] = &[
            (b"\x89PNG\r\n\x1a\n\x00\x00", Some("image/png")),
            (b"\xff\xd8\xff\xe0\x00\x10JFIF", Some("image/jpeg")),
            (b"GIF89a\x01\x00", Some("image/gif")),
            (b"RIFF\x24\x00\x00\x00WEBPVP8 ", Some("image/webp")),
            (b"RIFF\x24\x00\x00\x00WAVEfmt ", Some("audio/wav")),
            (b"%PDF-1.7\n", Some("application/pdf")),
            (b"PK\x03\x04\x14\x00", Some("application/zip")),
            (b"\x1f\x8b\x08\x00\x00\x00", Some("application/gzip")),
            (&elf_so, Some("application/x-sharedlib")),
            (b"\x7fELF", Some("application/x-executable")),
            (
                &pe_file,
                Some("application/vnd.microsoft.portable-executable"),
            ),
            (
                b"\xcf\xfa\xed\xfe\x07\x00",
                Some("application/x-mach-binary"),
            ),
            (
                b"\xca\xfe\xba\xbe\x00\x00\x00\x02",
                Some("application/x-mach-binary"),
            ),
            (
                b"\xca\xfe\xba\xbe\x00\x00\x00\x41",
                Some("application/java-vm"),
            ),
            (b"\x00asm\x01\x00\x00\x00", Some("application/wasm")),
            (
                b"7z\xbc\xaf\x27\x1c\x00\x04",
                Some("application/x-7z-compressed"),
            ),
            (b"Rar!\x1a\x07\x01\x00", Some("application/vnd.rar")),
            (&tar, Some("application/x-tar")),
            (
                b"SQLite format 3\x00\x10\x00",
                Some("application/vnd.sqlite3"),
            ),
            (b"\x00\x00\x00\x20ftypavif", Some("image/avif")),
            (b"\x00\x00\x00\x18ftypisom", Some("video/mp4")),
            (
                b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01webm",
                Some("video/webm"),
            ),
            (b"\x28\xb5\x2f\xfd\x24\x00", Some("application/zstd")),
            (b"wOF2\x00\x01", Some("font/woff2")),
            (b"\xef\xbb\xbf  <!DOCTYPE HTML><html>", Some("text/html")),
            (b"<?xml version=\"1.0\"?><svg xmlns=", Some("image/svg+xml")),
            (b"<?xml version=\"1.0\"?><feed>", Some("application/xml")),
            (b"{\"json\": true}", None),
            (b"hello world", None),
            (b"MZ", None),
            (b"", None),
        ];
        for (data, want) in cases {
            assert_eq!(sniff(data), *want, "{:02x?}", &data[..data.len().min(12)]);
        }
    }
}

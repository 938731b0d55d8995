//! Reading just enough of an ELF file to recognise a TLS library.
//!
//! The file is read through [`ReadCache`], which issues positioned reads for
//! exactly the ranges asked for: the file header, program and section headers,
//! the symbol table and its string table, and the note segments. For
//! `/usr/bin/node` (~95 MiB) that is ~7 MiB (`.dynsym` + `.dynstr`), and the
//! rest of the file is never touched. `.symtab` is read only when `.dynsym`
//! does not have what a library needs. Symbol names are looked up in the
//! in-memory string table, not through `object`'s per-string reads (each of
//! which would be a syscall on a `ReadCache`).

use std::collections::HashMap;
use std::fs::File;

use object::elf;
use object::read::ReadCache;
use object::read::elf::{FileHeader, ProgramHeader, SectionHeader, Sym};
use object::{Endianness, ReadRef};

use super::SymbolOffset;
use super::spec::LibrarySpec;
use crate::event::TlsLibrary;

/// Largest symbol or string table read, in bytes. Debian's unstripped node
/// has a 7 MiB `.strtab`; a table past this limit is not a library we want.
pub const MAX_TABLE_BYTES: u64 = 256 << 20;

/// What a recognised file offers.
#[derive(Debug)]
pub(crate) struct Found {
    pub library: TlsLibrary,
    pub symbols: Vec<SymbolOffset>,
    pub build_id: Option<Vec<u8>>,
}

#[derive(Debug)]
pub(crate) enum ElfError {
    Object(object::read::Error),
    Malformed(&'static str),
    TooLarge { table: &'static str, size: u64 },
}

impl From<object::read::Error> for ElfError {
    fn from(e: object::read::Error) -> Self {
        ElfError::Object(e)
    }
}

/// The symbol names the libraries ask for, deduplicated.
struct Wanted {
    names: Vec<&'static str>,
    index: HashMap<&'static [u8], usize>,
    max_len: usize,
}

impl Wanted {
    fn new(libraries: &[LibrarySpec]) -> Self {
        let mut names = Vec::new();
        let mut index = HashMap::new();
        for name in libraries.iter().flat_map(|l| l.all_symbols()) {
            if !index.contains_key(name.as_bytes()) {
                index.insert(name.as_bytes(), names.len());
                names.push(name);
            }
        }
        let max_len = names.iter().map(|n| n.len()).max().unwrap_or(0);
        Wanted {
            names,
            index,
            max_len,
        }
    }

    fn get(&self, name: &str) -> Option<usize> {
        self.index.get(name.as_bytes()).copied()
    }
}

/// A defined function symbol: its virtual address, and whether it is global
/// (preferred over a local of the same name from `.symtab`).
#[derive(Debug, Clone, Copy)]
struct Def {
    vaddr: u64,
    global: bool,
}

/// A `PT_LOAD` segment: the file bytes `[offset, offset + filesz)` are mapped
/// at `[vaddr, vaddr + filesz)`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Load {
    pub(crate) vaddr: u64,
    pub(crate) offset: u64,
    pub(crate) filesz: u64,
    pub(crate) executable: bool,
}

/// The `PT_LOAD` segments of an ELF file's program headers.
pub(crate) fn load_segments<P>(phdrs: &[P], endian: Endianness) -> Vec<Load>
where
    P: ProgramHeader<Endian = Endianness>,
    P::Word: Into<u64>,
{
    phdrs
        .iter()
        .filter(|p| p.p_type(endian) == elf::PT_LOAD)
        .map(|p| Load {
            vaddr: p.p_vaddr(endian).into(),
            offset: p.p_offset(endian).into(),
            filesz: p.p_filesz(endian).into(),
            executable: p.p_flags(endian).0 & elf::PF_X.0 != 0,
        })
        .collect()
}

/// Recognise `file`; `file_name` is the last path component as the process
/// sees it (for the file-name rules). `Ok(None)` when the file is not ELF or
/// is not one of `libraries`.
pub(crate) fn inspect(
    file: File,
    file_name: &str,
    libraries: &[LibrarySpec],
) -> Result<Option<Found>, ElfError> {
    let cache = ReadCache::new(file);
    let data = &cache;
    let Ok(ident) = data.read_bytes_at(0, 16) else {
        return Ok(None); // shorter than an ELF identification: not ELF
    };
    if ident[..4] != elf::ELFMAG {
        return Ok(None);
    }
    match elf::FileClass(ident[4]) {
        elf::ELFCLASS32 => {
            inspect_class::<elf::FileHeader32<Endianness>>(data, file_name, libraries)
        }
        elf::ELFCLASS64 => {
            inspect_class::<elf::FileHeader64<Endianness>>(data, file_name, libraries)
        }
        _ => Err(ElfError::Malformed("unknown ELF class")),
    }
}

fn inspect_class<Elf: FileHeader<Endian = Endianness>>(
    data: &ReadCache<File>,
    file_name: &str,
    libraries: &[LibrarySpec],
) -> Result<Option<Found>, ElfError> {
    let header = Elf::parse(data)?;
    let endian = header.endian()?;
    let thumb = header.e_machine(endian) == elf::EM_ARM;
    let phdrs = header.program_headers(endian, data)?;
    let loads = load_segments(phdrs, endian);
    let sections = header.section_headers(endian, data)?;

    let wanted = Wanted::new(libraries);
    let mut defs: Vec<Option<Def>> = vec![None; wanted.names.len()];
    for (table, kind) in [(".dynsym", elf::SHT_DYNSYM), (".symtab", elf::SHT_SYMTAB)] {
        let Some(sh) = sections.iter().find(|s| s.sh_type(endian) == kind) else {
            continue;
        };
        read_symbols::<Elf>(endian, data, sections, sh, table, &wanted, &mut defs)?;
        let resolve = |name: &str| {
            let def = defs.get(wanted.get(name)?).copied().flatten()?;
            let vaddr = if thumb { def.vaddr & !1 } else { def.vaddr };
            file_offset(&loads, vaddr)
        };
        if let Some((library, symbols)) = choose(libraries, file_name, resolve) {
            let build_id = build_id::<Elf>(endian, data, phdrs, sections);
            return Ok(Some(Found {
                library,
                symbols,
                build_id,
            }));
        }
    }
    Ok(None)
}

/// The file offset of the defined function `name` in a 64-bit ELF file's
/// `.symtab` or `.dynsym` (`Ok(None)` when neither defines it). Used for
/// internal functions that only an unstripped build names (BoringSSL's
/// `ssl_log_secret`); reads the symbol tables, nothing else.
pub(crate) fn find_function(file: File, name: &'static str) -> Result<Option<u64>, ElfError> {
    let cache = ReadCache::new(file);
    let data = &cache;
    let header = elf::FileHeader64::<Endianness>::parse(data)?;
    let endian = header.endian()?;
    let phdrs = header.program_headers(endian, data)?;
    let loads = load_segments(phdrs, endian);
    let sections = header.section_headers(endian, data)?;
    let mut index = HashMap::new();
    index.insert(name.as_bytes(), 0);
    let wanted = Wanted {
        names: vec![name],
        index,
        max_len: name.len(),
    };
    let mut defs = [None];
    for (table, kind) in [(".symtab", elf::SHT_SYMTAB), (".dynsym", elf::SHT_DYNSYM)] {
        let Some(sh) = sections.iter().find(|s| s.sh_type(endian) == kind) else {
            continue;
        };
        read_symbols::<elf::FileHeader64<Endianness>>(
            endian, data, sections, sh, table, &wanted, &mut defs,
        )?;
        if let Some(def) = defs[0] {
            return Ok(file_offset(&loads, def.vaddr));
        }
    }
    Ok(None)
}

/// Record the wanted, defined function symbols of one symbol table.
fn read_symbols<'data, Elf: FileHeader<Endian = Endianness>>(
    endian: Endianness,
    data: &'data ReadCache<File>,
    sections: &'data [Elf::SectionHeader],
    sh: &Elf::SectionHeader,
    table: &'static str,
    wanted: &Wanted,
    defs: &mut [Option<Def>],
) -> Result<(), ElfError> {
    let strtab = sections
        .get(sh.sh_link(endian) as usize)
        .ok_or(ElfError::Malformed(
            "symbol table links to a missing string table",
        ))?;
    for (name, s) in [(table, sh), (".strtab", strtab)] {
        let size: u64 = s.sh_size(endian).into();
        if size > MAX_TABLE_BYTES {
            return Err(ElfError::TooLarge { table: name, size });
        }
    }
    let sym_bytes = sh.data(endian, data)?;
    let strings = strtab.data(endian, data)?;
    let count = sym_bytes.len() / size_of::<Elf::Sym>();
    let (syms, _) = object::pod::slice_from_bytes::<Elf::Sym>(sym_bytes, count)
        .map_err(|()| ElfError::Malformed("symbol table is not a whole number of entries"))?;
    for sym in syms {
        if sym.st_type() != elf::STT_FUNC {
            continue;
        }
        let shndx = sym.st_shndx(endian);
        if shndx == elf::SHN_UNDEF || shndx == elf::SHN_ABS || shndx == elf::SHN_COMMON {
            continue; // imported, not defined here
        }
        let vaddr: u64 = sym.st_value(endian).into();
        if vaddr == 0 {
            continue;
        }
        let Some(name) = name_at(strings, sym.st_name(endian), wanted.max_len) else {
            continue;
        };
        let Some(&i) = wanted.index.get(name) else {
            continue;
        };
        let global = sym.st_bind() != elf::STB_LOCAL;
        let slot = &mut defs[i];
        match slot {
            Some(d) if d.global || !global => {}
            _ => *slot = Some(Def { vaddr, global }),
        }
    }
    Ok(())
}

/// The NUL-terminated name at `offset`, if it is at most `max_len` bytes
/// (longer names cannot be wanted, so they are not scanned to the end).
fn name_at(strings: &[u8], offset: u32, max_len: usize) -> Option<&[u8]> {
    let start = usize::try_from(offset).ok()?;
    let tail = strings.get(start..)?;
    let window = &tail[..tail.len().min(max_len + 1)];
    let nul = window.iter().position(|&b| b == 0)?;
    Some(&window[..nul])
}

/// Convert a virtual address to the file offset uprobes want, through the
/// `PT_LOAD` segment that maps it (executable segments first).
fn file_offset(loads: &[Load], vaddr: u64) -> Option<u64> {
    let load = loads
        .iter()
        .filter(|l| vaddr >= l.vaddr && vaddr - l.vaddr < l.filesz)
        .max_by_key(|l| l.executable)?;
    (vaddr - load.vaddr).checked_add(load.offset)
}

/// The first library whose rules `resolve` satisfies, with its symbols.
fn choose(
    libraries: &[LibrarySpec],
    file_name: &str,
    resolve: impl Fn(&str) -> Option<u64>,
) -> Option<(TlsLibrary, Vec<SymbolOffset>)> {
    libraries.iter().find_map(|spec| {
        if !spec.name_allowed(file_name) {
            return None;
        }
        if !spec.markers.is_empty() && !spec.markers.iter().any(|m| resolve(m).is_some()) {
            return None;
        }
        let mut symbols = Vec::with_capacity(spec.required.len() + spec.optional.len());
        for name in spec.required {
            symbols.push(SymbolOffset {
                name: (*name).to_owned(),
                offset: resolve(name)?,
            });
        }
        for name in spec.optional {
            if let Some(offset) = resolve(name) {
                symbols.push(SymbolOffset {
                    name: (*name).to_owned(),
                    offset,
                });
            }
        }
        Some((spec.library, symbols))
    })
}

/// The GNU build-id from the note segments, else the note sections. A
/// malformed note is ignored: the build-id is informative, not needed to probe.
fn build_id<'data, Elf: FileHeader<Endian = Endianness>>(
    endian: Endianness,
    data: &'data ReadCache<File>,
    phdrs: &'data [Elf::ProgramHeader],
    sections: &'data [Elf::SectionHeader],
) -> Option<Vec<u8>> {
    let from_segments = phdrs
        .iter()
        .filter_map(|p| p.notes(endian, data).ok().flatten());
    let from_sections = sections
        .iter()
        .filter_map(|s| s.notes(endian, data).ok().flatten());
    for mut notes in from_segments.chain(from_sections) {
        while let Ok(Some(note)) = notes.next() {
            if note.name() == elf::ELF_NOTE_GNU && note.n_type(endian) == elf::NT_GNU_BUILD_ID {
                return Some(note.desc().to_vec());
            }
        }
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may panic
mod tests {
    use super::*;

    #[test]
    fn name_at_bounds() {
        let s = b"\0SSL_write\0averyveryverylongname\0x";
        assert_eq!(name_at(s, 1, 9), Some(&b"SSL_write"[..]));
        assert_eq!(name_at(s, 1, 8), None);
        assert_eq!(name_at(s, 11, 9), None);
        assert_eq!(name_at(s, 33, 9), None); // unterminated at end
        assert_eq!(name_at(s, 1000, 9), None);
        assert_eq!(name_at(s, u32::MAX, 9), None);
    }

    #[test]
    fn file_offset_through_segments() {
        let loads = [
            Load {
                vaddr: 0x400000,
                offset: 0,
                filesz: 0x1000,
                executable: false,
            },
            Load {
                vaddr: 0xb72000,
                offset: 0x772000,
                filesz: 0x1a8bca0,
                executable: true,
            },
        ];
        // node's SSL_write: st_value 0x1a6b940 in the segment at 0xb72000/0x772000.
        assert_eq!(file_offset(&loads, 0x1a6b940), Some(0x166b940));
        assert_eq!(file_offset(&loads, 0x400010), Some(0x10));
        assert_eq!(file_offset(&loads, 0x300000), None);
        assert_eq!(file_offset(&loads, u64::MAX), None);
    }

    #[test]
    fn choose_needs_required_and_markers() {
        use super::super::spec::{ALL_LIBRARIES, NSS, OPENSSL};
        let have = |names: &'static [&'static str]| {
            move |n: &str| names.iter().position(|x| *x == n).map(|i| i as u64 * 16)
        };
        let (lib, syms) = choose(
            ALL_LIBRARIES,
            "node",
            have(&["SSL_read", "SSL_write", "SSL_free"]),
        )
        .unwrap();
        assert_eq!(lib, TlsLibrary::OpenSsl);
        let names: Vec<&str> = syms.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["SSL_write", "SSL_read", "SSL_free"]);
        let boring = have(&["SSL_read", "SSL_write", "SSL_CTX_set_grease_enabled"]);
        assert_eq!(
            choose(ALL_LIBRARIES, "envoy", boring).unwrap().0,
            TlsLibrary::BoringSsl
        );
        assert!(choose(&[OPENSSL], "libssl.so.3", have(&["SSL_write"])).is_none());
        // NSPR names only count in NSPR's own files.
        let nspr = have(&["PR_Write", "PR_Read"]);
        assert!(choose(&[NSS], "myapp", nspr).is_none());
        assert_eq!(
            choose(&[NSS], "libnspr4.so", nspr).unwrap().0,
            TlsLibrary::Nss
        );
    }
}

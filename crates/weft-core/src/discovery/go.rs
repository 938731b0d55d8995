//! Go's `crypto/tls`, linked into Go executables.
//!
//! Every Go program carries its own copy of `crypto/tls`, called with Go's
//! register ABI (Go >= 1.17 on x86-64: arguments and results in RAX, RBX,
//! RCX..., the current goroutine in R14). Goroutine stacks move when they
//! grow, so a uretprobe (which replaces the return address on the stack)
//! would corrupt the program: weft probes the **entry** of
//! `crypto/tls.(*Conn).Write` and `crypto/tls.(*Conn).Read` and **every `RET`
//! instruction** inside them instead.
//!
//! How the two functions are found:
//!
//! 1. The file is a Go executable: it has a `.go.buildinfo` or a `.gopclntab`
//!    section (`.data.rel.ro.gopclntab` in position-independent builds).
//! 2. Their address and size come from `.symtab` when the file has one.
//! 3. Else (stripped binaries such as Debian's `nats-server`) from the
//!    **pclntab**, the function table every Go program keeps for its own stack
//!    traces: the Go 1.18+ layout (magic `0xfffffff0` for 1.18/1.19,
//!    `0xfffffff1` for 1.20+), its function table (`functab`: entry offset from
//!    the text start, offset of the `_func` record) and function-name table.
//!    A function ends where the next one starts.
//! 4. Each function is **verified** before anything is attached: it lies in an
//!    executable segment; its first instructions are Go's stack-bound check
//!    against the goroutine register, `cmp rsp|r12, [r14+0x10]` (which only
//!    the register ABI emits); every byte from entry to end decodes as x86-64
//!    (`iced-x86`); it has at least one `RET`; and, from the pclntab, the
//!    `_func` record names the function and agrees on its entry.
//!
//! A file that defines the functions but fails a check is refused with
//! [`GoError::Unverified`]: a uprobe on a wrong offset corrupts the program.
//!
//! Probe points are [`SymbolOffset`]s: the function's name for its entry
//! and `name+0xN` (see [`return_point_name`]) for a `RET` N bytes into it.

use std::fs::File;
use std::path::Path;

use iced_x86::{Decoder, DecoderError, DecoderOptions, Instruction, Mnemonic, OpKind, Register};
use object::elf;
use object::read::ReadCache;
use object::read::elf::{FileHeader, SectionHeader, Sym};
use object::{Endianness, ReadRef};

use super::elf::{ElfError, Found, Load, MAX_TABLE_BYTES, load_segments};
use super::{DiscoveryError, SymbolOffset};
use crate::event::TlsLibrary;

/// The function that encrypts and sends: `func (c *Conn) Write(b []byte) (int, error)`.
pub const GO_TLS_WRITE: &str = "crypto/tls.(*Conn).Write";
/// The function that receives and decrypts: `func (c *Conn) Read(b []byte) (int, error)`.
pub const GO_TLS_READ: &str = "crypto/tls.(*Conn).Read";
const FUNCS: [&str; 2] = [GO_TLS_WRITE, GO_TLS_READ];

/// Longest function decoded, in bytes. `(*Conn).Write` is about 2 KiB.
const MAX_FUNC_BYTES: u64 = 1 << 20;
/// pclntab magics: Go 1.18 and 1.19; Go 1.20 and later (same layout).
const PCLN_MAGIC_118: u32 = 0xffff_fff0;
const PCLN_MAGIC_120: u32 = 0xffff_fff1;
/// `pcHeader`: magic, two pad bytes, minLC, ptrSize, then eight words.
const PCLN_HEADER_LEN: usize = 8 + 8 * 8;

/// The name of the return point `rel` bytes into `func`.
pub fn return_point_name(func: &str, rel: u64) -> String {
    format!("{func}+{rel:#x}")
}

/// Why a Go executable was not accepted.
#[derive(Debug)]
pub(crate) enum GoError {
    Elf(ElfError),
    /// It uses `crypto/tls`, but a check failed: it must not be probed.
    Unverified(String),
}

impl From<ElfError> for GoError {
    fn from(e: ElfError) -> Self {
        GoError::Elf(e)
    }
}

impl From<object::read::Error> for GoError {
    fn from(e: object::read::Error) -> Self {
        GoError::Elf(ElfError::Object(e))
    }
}

/// The discovery error for `e`; a refused program is also logged as a
/// warning, since it is a TLS user weft chose not to see.
pub(crate) fn discovery_error(e: GoError, path: &Path) -> DiscoveryError {
    let path = path.to_owned();
    match e {
        GoError::Elf(ElfError::Object(e)) => DiscoveryError::MalformedElf {
            path,
            reason: e.to_string(),
        },
        GoError::Elf(ElfError::Malformed(reason)) => DiscoveryError::MalformedElf {
            path,
            reason: reason.to_owned(),
        },
        GoError::Elf(ElfError::TooLarge { table, size }) => {
            DiscoveryError::TableTooLarge { path, table, size }
        }
        GoError::Unverified(reason) => {
            let e = DiscoveryError::GoUnverified { path, reason };
            tracing::warn!("{e}");
            e
        }
    }
}

fn unverified<T>(reason: impl Into<String>) -> Result<T, GoError> {
    Err(GoError::Unverified(reason.into()))
}

/// A function found in the file: virtual address and size in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Func {
    pub vaddr: u64,
    pub size: u64,
}

/// Recognise a Go executable that uses `crypto/tls` and find its probe
/// points. `Ok(None)`: not ELF, not Go, or Go without `crypto/tls`.
pub(crate) fn inspect(file: File) -> Result<Option<Found>, GoError> {
    let cache = ReadCache::new(file);
    let data = &cache;
    let Ok(ident) = data.read_bytes_at(0, 16) else {
        return Ok(None);
    };
    // Go's register ABI exists on 64-bit targets only.
    if ident[..4] != elf::ELFMAG || elf::FileClass(ident[4]) != elf::ELFCLASS64 {
        return Ok(None);
    }
    inspect64(data)
}

/// The parts of the file the lookups need.
struct GoFile<'data> {
    endian: Endianness,
    data: &'data ReadCache<File>,
    machine: elf::Machine,
    loads: Vec<Load>,
    sections: &'data [elf::SectionHeader64<Endianness>],
    /// Section names, by section index.
    names: Vec<&'data [u8]>,
}

impl<'data> GoFile<'data> {
    fn section(&self, name: &[u8]) -> Option<&'data elf::SectionHeader64<Endianness>> {
        self.names
            .iter()
            .position(|n| *n == name)
            .and_then(|i| self.sections.get(i))
    }

    /// The pclntab: `.gopclntab`, or `.data.rel.ro.gopclntab` (PIE).
    fn pclntab_section(&self) -> Option<&'data elf::SectionHeader64<Endianness>> {
        self.names
            .iter()
            .position(|n| n.ends_with(b".gopclntab"))
            .and_then(|i| self.sections.get(i))
    }

    fn section_data(
        &self,
        sh: &elf::SectionHeader64<Endianness>,
        table: &'static str,
    ) -> Result<&'data [u8], GoError> {
        let size = sh.sh_size(self.endian);
        if size > MAX_TABLE_BYTES {
            return Err(ElfError::TooLarge { table, size }.into());
        }
        Ok(sh.data(self.endian, self.data)?)
    }
}

fn inspect64(data: &ReadCache<File>) -> Result<Option<Found>, GoError> {
    let header = elf::FileHeader64::<Endianness>::parse(data)?;
    let endian = header.endian()?;
    let sections = header.section_headers(endian, data)?;
    let shstr_index = header.section_strings_index(endian, data)?;
    let shstr = match sections.get(shstr_index.0) {
        Some(sh) if shstr_index.0 != 0 => sh.data(endian, data).unwrap_or(&[]),
        _ => &[],
    };
    let names = sections
        .iter()
        .map(|sh| cstr_at(shstr, sh.sh_name(endian) as usize).unwrap_or(&[]))
        .collect();
    let loads = load_segments(header.program_headers(endian, data)?, endian);
    let f = GoFile {
        endian,
        data,
        machine: header.e_machine(endian),
        loads,
        sections,
        names,
    };
    let buildinfo = f.section(b".go.buildinfo");
    if buildinfo.is_none() && f.pclntab_section().is_none() {
        return Ok(None); // not a Go executable
    }
    let version = buildinfo
        .and_then(|sh| sh.data(endian, data).ok())
        .and_then(go_version);

    let funcs = match find_in_symtab(&f)? {
        Some(funcs) => funcs,
        None => match find_in_pclntab(&f)? {
            Some(funcs) => funcs,
            None => return Ok(None), // Go, but no crypto/tls
        },
    };
    let go = version.as_deref().unwrap_or("an unknown Go version");
    if f.machine != elf::EM_X86_64 {
        return unverified(format!(
            "built by {go} for ELF machine {:#x}; weft probes Go on x86-64 only",
            f.machine.0
        ));
    }
    if let Some((1, minor)) = version.as_deref().and_then(parse_version)
        && minor < 17
    {
        return unverified(format!(
            "built by {go}, before Go 1.17's register ABI that weft's probes read"
        ));
    }
    let mut symbols = Vec::new();
    let mut returns = Vec::new();
    for (name, func) in FUNCS.iter().zip(funcs) {
        let (entry, rets) = probe_points(&f, name, func)?;
        symbols.push(SymbolOffset {
            name: (*name).to_owned(),
            offset: entry,
        });
        returns.extend(rets.into_iter().map(|(rel, offset)| SymbolOffset {
            name: return_point_name(name, rel),
            offset,
        }));
    }
    symbols.extend(returns);
    tracing::debug!(version = go, points = symbols.len(), "found Go crypto/tls");
    Ok(Some(Found {
        library: TlsLibrary::GoTls,
        symbols,
        build_id: build_id(&f),
    }))
}

/// The Go version recorded in `.go.buildinfo` (Go 1.18+ layout: the version
/// string follows the 32-byte header, length-prefixed), e.g. `go1.23.5`.
fn go_version(info: &[u8]) -> Option<String> {
    const MAGIC: &[u8] = b"\xff Go buildinf:";
    if !info.starts_with(MAGIC) || info.get(15)? & 2 == 0 {
        return None;
    }
    let rest = info.get(32..)?;
    let (len, used) = uvarint(rest)?;
    let len = usize::try_from(len).ok().filter(|l| *l <= 64)?;
    let s = rest.get(used..used.checked_add(len)?)?;
    let s = std::str::from_utf8(s).ok()?;
    s.starts_with("go").then(|| s.to_owned())
}

/// `go1.23.5` -> `(1, 23)`.
fn parse_version(v: &str) -> Option<(u32, u32)> {
    let mut it = v.strip_prefix("go")?.split(['.', '-', ' ']);
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?;
    let digits = minor.bytes().take_while(u8::is_ascii_digit).count();
    let minor = minor[..digits].parse().ok()?;
    Some((major, minor))
}

fn uvarint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

/// The NUL-terminated string at `off`.
fn cstr_at(b: &[u8], off: usize) -> Option<&[u8]> {
    let tail = b.get(off..)?;
    let nul = tail.iter().position(|&c| c == 0)?;
    Some(&tail[..nul])
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    let bytes = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    let bytes = b.get(off..off.checked_add(8)?)?;
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

/// Both functions from `.symtab`: `None` when there is no `.symtab` or it
/// lacks either function (the pclntab then decides).
fn find_in_symtab(f: &GoFile<'_>) -> Result<Option<[Func; 2]>, GoError> {
    let Some(sh) = f
        .sections
        .iter()
        .find(|s| s.sh_type(f.endian) == elf::SHT_SYMTAB)
    else {
        return Ok(None);
    };
    let Some(strtab) = f.sections.get(sh.sh_link(f.endian) as usize) else {
        return Ok(None);
    };
    let syms = f.section_data(sh, ".symtab")?;
    let strings = f.section_data(strtab, ".strtab")?;
    let count = syms.len() / size_of::<elf::Sym64<Endianness>>();
    let (syms, _) = object::pod::slice_from_bytes::<elf::Sym64<Endianness>>(syms, count)
        .map_err(|()| ElfError::Malformed("symbol table is not a whole number of entries"))?;
    let mut found: [Option<Func>; 2] = [None; 2];
    for sym in syms {
        if sym.st_type() != elf::STT_FUNC || sym.st_shndx(f.endian) == elf::SHN_UNDEF {
            continue;
        }
        let Some(name) = cstr_at(strings, sym.st_name(f.endian) as usize) else {
            continue;
        };
        if let Some(i) = FUNCS.iter().position(|n| n.as_bytes() == name) {
            found[i] = Some(Func {
                vaddr: sym.st_value(f.endian),
                size: sym.st_size(f.endian),
            });
        }
    }
    Ok(match found {
        [Some(w), Some(r)] => Some([w, r]),
        _ => None,
    })
}

/// Both functions from the pclntab: `None` when the program has neither
/// (it does not use `crypto/tls`), an error when the table cannot be read
/// or has only one of them.
fn find_in_pclntab(f: &GoFile<'_>) -> Result<Option<[Func; 2]>, GoError> {
    let Some(sh) = f.pclntab_section() else {
        return unverified("stripped, and no .gopclntab section to recover its functions from");
    };
    let tab = f.section_data(sh, ".gopclntab")?;
    let found = pclntab_lookup(tab, &FUNCS)?;
    Ok(match found[..] {
        [None, None] => None,
        [Some(w), Some(r)] => Some([w, r]),
        _ => return unverified("its pclntab has only one of (*Conn).Write and (*Conn).Read"),
    })
}

/// Look `names` up in a Go 1.18+ pclntab (the bytes of `.gopclntab`).
/// Never panics: every offset is checked against the table.
pub(crate) fn pclntab_lookup(tab: &[u8], names: &[&str]) -> Result<Vec<Option<Func>>, GoError> {
    let bad = |what: &str| GoError::Unverified(format!("its pclntab is malformed ({what})"));
    if tab.len() < PCLN_HEADER_LEN {
        return Err(bad("shorter than its header"));
    }
    let magic = u32_at(tab, 0).ok_or_else(|| bad("header"))?;
    if magic != PCLN_MAGIC_118 && magic != PCLN_MAGIC_120 {
        return unverified(format!(
            "its pclntab has magic {magic:#x}, not the Go 1.18+ layout weft reads"
        ));
    }
    // pad, pad, minLC (1 on x86), ptrSize (8 on 64-bit targets).
    if tab[4] != 0 || tab[5] != 0 || tab[6] != 1 || tab[7] != 8 {
        return Err(bad("header is not x86-64's"));
    }
    let word = |i: usize| u64_at(tab, 8 + 8 * i).ok_or_else(|| bad("header"));
    let to_usize = |v: u64, what: &str| {
        usize::try_from(v)
            .ok()
            .filter(|&v| v <= tab.len())
            .ok_or_else(|| bad(what))
    };
    let nfunc = to_usize(word(0)?, "function count")?;
    let text_start = word(2)?;
    let funcnames = to_usize(word(3)?, "function-name table offset")?;
    let pcln = to_usize(word(7)?, "function table offset")?;
    if text_start == 0 {
        return Err(bad("no text start: relocated at run time"));
    }
    let funcnametab = &tab[funcnames..];
    let functab_len = nfunc
        .checked_add(1)
        .and_then(|n| n.checked_mul(8))
        .ok_or_else(|| bad("function count"))?;
    let pclntab = &tab[pcln..];
    let functab = pclntab
        .get(..functab_len)
        .ok_or_else(|| bad("function table past its end"))?;
    let entry_off = |i: usize| u32_at(functab, i * 8).ok_or_else(|| bad("function table"));

    let mut found = vec![None; names.len()];
    for i in 0..nfunc {
        let func_off = u32_at(functab, i * 8 + 4).ok_or_else(|| bad("function table"))? as usize;
        // _func: entryOff u32, nameOff i32, ...
        let Some(name_off) = u32_at(pclntab, func_off.saturating_add(4)) else {
            return Err(bad("function record past its end"));
        };
        // Compare in place: most names differ in their first bytes.
        let Some(tail) = funcnametab.get(name_off as usize..) else {
            continue;
        };
        let Some(k) = names.iter().position(|n| {
            tail.strip_prefix(n.as_bytes())
                .is_some_and(|rest| rest.first() == Some(&0))
        }) else {
            continue;
        };
        let entry = entry_off(i)?;
        let end = entry_off(i + 1)?;
        if u32_at(pclntab, func_off) != Some(entry) {
            return Err(bad("a function record disagrees with the function table"));
        }
        if end <= entry {
            return Err(bad("functions out of order"));
        }
        found[k] = Some(Func {
            vaddr: text_start
                .checked_add(u64::from(entry))
                .ok_or_else(|| bad("entry address"))?,
            size: u64::from(end - entry),
        });
    }
    Ok(found)
}

/// The entry's file offset and `(offset into the function, file offset)` of
/// every `RET` of `func`, after the checks of the module documentation.
fn probe_points(f: &GoFile<'_>, name: &str, func: Func) -> Result<(u64, Vec<(u64, u64)>), GoError> {
    if func.size == 0 || func.size > MAX_FUNC_BYTES {
        return unverified(format!(
            "{name} has an implausible size of {} bytes",
            func.size
        ));
    }
    let Some(load) = f.loads.iter().find(|l| {
        l.executable
            && func.vaddr >= l.vaddr
            && func
                .vaddr
                .checked_add(func.size)
                .is_some_and(|end| end <= l.vaddr.saturating_add(l.filesz))
    }) else {
        return unverified(format!(
            "{name} at {:#x} is not inside an executable segment",
            func.vaddr
        ));
    };
    let offset = func.vaddr - load.vaddr + load.offset;
    let code = f
        .data
        .read_bytes_at(offset, func.size)
        .map_err(|()| GoError::Unverified(format!("{name}: its code cannot be read")))?;
    let rets = find_returns(code, func.vaddr)
        .map_err(|why| GoError::Unverified(format!("{name} at {:#x}: {why}", func.vaddr)))?;
    Ok((
        offset,
        rets.into_iter().map(|rel| (rel, offset + rel)).collect(),
    ))
}

/// Decode a Go function and return the offsets of its `RET`s. Fails unless
/// it starts with Go's stack-bound check on R14, every byte decodes, and
/// there is at least one `RET`.
pub(crate) fn find_returns(code: &[u8], vaddr: u64) -> Result<Vec<u64>, String> {
    let mut decoder = Decoder::try_with_ip(64, code, vaddr, DecoderOptions::NONE)
        .map_err(|e| format!("cannot decode: {e}"))?;
    let mut ins = Instruction::default();
    let mut rets = Vec::new();
    let mut index = 0usize;
    let mut stack_check = false;
    while decoder.can_decode() {
        decoder.decode_out(&mut ins);
        if ins.is_invalid() {
            let rel = ins.ip() - vaddr;
            return Err(match decoder.last_error() {
                DecoderError::NoMoreBytes => {
                    format!("an instruction runs past its end at +{rel:#x}")
                }
                e => format!("undecodable bytes at +{rel:#x} ({e:?})"),
            });
        }
        // Go's prologue: `cmp rsp, [r14+0x10]`, or for larger frames
        // `lea r12, [rsp-N]` (or `mov r12, rsp; sub r12, N; jb`) then
        // `cmp r12, [r14+0x10]`: R14 holds the goroutine, 0x10 is g.stackguard0.
        if index < 4 && is_stack_check(&ins) {
            stack_check = true;
        }
        if index == 3 && !stack_check {
            return Err("it does not start with Go's stack check on R14 (not register-ABI Go code, or not a function entry)".into());
        }
        if ins.mnemonic() == Mnemonic::Ret {
            rets.push(ins.ip() - vaddr);
        }
        index += 1;
    }
    if !stack_check {
        return Err("too short to be the function".into());
    }
    if rets.is_empty() {
        return Err("no RET instruction".into());
    }
    Ok(rets)
}

fn is_stack_check(ins: &Instruction) -> bool {
    ins.mnemonic() == Mnemonic::Cmp
        && ins.op0_kind() == OpKind::Register
        && matches!(ins.op0_register(), Register::RSP | Register::R12)
        && ins.op1_kind() == OpKind::Memory
        && ins.memory_base() == Register::R14
        && ins.memory_index() == Register::None
        && ins.memory_displacement64() == 0x10
}

/// The GNU build-id, when the file has one (Go links one in with `-B` or
/// external linking; Go's own `.note.go.buildid` is a different note).
fn build_id(f: &GoFile<'_>) -> Option<Vec<u8>> {
    for sh in f.sections {
        let Ok(Some(mut notes)) = sh.notes(f.endian, f.data) else {
            continue;
        };
        while let Ok(Some(note)) = notes.next() {
            if note.name() == elf::ELF_NOTE_GNU && note.n_type(f.endian) == elf::NT_GNU_BUILD_ID {
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
    fn version_strings() {
        assert_eq!(parse_version("go1.23.5"), Some((1, 23)));
        assert_eq!(parse_version("go1.19.8"), Some((1, 19)));
        assert_eq!(parse_version("go1.21rc2"), Some((1, 21)));
        assert_eq!(parse_version("devel"), None);
        let mut info = b"\xff Go buildinf:\x08\x02".to_vec();
        info.resize(32, 0);
        info.push(8);
        info.extend_from_slice(b"go1.19.8");
        assert_eq!(go_version(&info).as_deref(), Some("go1.19.8"));
        info[32] = 200; // length past the end
        assert_eq!(go_version(&info), None);
        assert_eq!(go_version(b"\xff Go buildinf:"), None);
    }

    #[test]
    fn return_point_names() {
        assert_eq!(
            return_point_name(GO_TLS_WRITE, 0x246),
            "crypto/tls.(*Conn).Write+0x246"
        );
    }

    #[test]
    fn decode_finds_rets_after_stack_check() {
        // cmp rsp,[r14+0x10]; jbe +0; push rbp; ret; int3
        let code = [0x49, 0x3b, 0x66, 0x10, 0x76, 0x00, 0x55, 0xc3, 0xcc];
        assert_eq!(find_returns(&code, 0x1000).unwrap(), vec![7]);
        // lea r12,[rsp-0x50]; cmp r12,[r14+0x10]; ret
        let code = [0x4c, 0x8d, 0x64, 0x24, 0xb0, 0x4d, 0x3b, 0x66, 0x10, 0xc3];
        assert_eq!(find_returns(&code, 0).unwrap(), vec![9]);
    }

    #[test]
    fn decode_refuses_what_is_not_go() {
        // C prologue: push rbp; mov rbp,rsp; sub rsp,8; leave; ret
        let c = [0x55, 0x48, 0x89, 0xe5, 0x48, 0x83, 0xec, 0x08, 0xc9, 0xc3];
        assert!(find_returns(&c, 0).is_err());
        // Go's check but no RET.
        assert!(find_returns(&[0x49, 0x3b, 0x66, 0x10, 0x90, 0x90], 0).is_err());
        // An instruction cut at the end.
        assert!(find_returns(&[0x49, 0x3b, 0x66, 0x10, 0xc3, 0x48, 0x8b], 0).is_err());
        // Pre-1.17 Go (`mov rcx, fs:[-8]`; `cmp rsp, [rcx+0x10]`).
        let old = [
            0x64, 0x48, 0x8b, 0x0c, 0x25, 0xf8, 0xff, 0xff, 0xff, 0x48, 0x3b, 0x61, 0x10, 0x90,
            0x90, 0xc3,
        ];
        assert!(find_returns(&old, 0).is_err());
        assert!(find_returns(&[], 0).is_err());
    }

    /// A pclntab with `funcs` as (name, entry offset, size), text at 0x401000.
    fn fake_pclntab(magic: u32, funcs: &[(&str, u32, u32)]) -> Vec<u8> {
        let mut names = vec![0u8];
        let mut name_offs = Vec::new();
        for (n, _, _) in funcs {
            name_offs.push(names.len() as u32);
            names.extend_from_slice(n.as_bytes());
            names.push(0);
        }
        let funcnames = PCLN_HEADER_LEN;
        let pcln = funcnames + names.len();
        let nfunc = funcs.len();
        let mut tab = Vec::new();
        tab.extend_from_slice(&magic.to_le_bytes());
        tab.extend_from_slice(&[0, 0, 1, 8]);
        for w in [
            nfunc as u64,
            0,
            0x401000,
            funcnames as u64,
            0,
            0,
            0,
            pcln as u64,
        ] {
            tab.extend_from_slice(&w.to_le_bytes());
        }
        tab.extend_from_slice(&names);
        let records = (nfunc + 1) * 8;
        for (i, (_, entry, _)) in funcs.iter().enumerate() {
            tab.extend_from_slice(&entry.to_le_bytes());
            tab.extend_from_slice(&((records + i * 8) as u32).to_le_bytes());
        }
        let (_, last, size) = funcs.last().unwrap();
        tab.extend_from_slice(&(last + size).to_le_bytes());
        tab.extend_from_slice(&0u32.to_le_bytes());
        for ((_, entry, _), name_off) in funcs.iter().zip(name_offs) {
            tab.extend_from_slice(&entry.to_le_bytes());
            tab.extend_from_slice(&name_off.to_le_bytes());
        }
        tab
    }

    #[test]
    fn pclntab_lookup_by_name() {
        let tab = fake_pclntab(
            PCLN_MAGIC_120,
            &[
                ("main.main", 0, 0x40),
                (GO_TLS_WRITE, 0x40, 0x100),
                (GO_TLS_READ, 0x140, 0x80),
            ],
        );
        let found = pclntab_lookup(&tab, &FUNCS).unwrap();
        assert_eq!(
            found,
            vec![
                Some(Func {
                    vaddr: 0x401040,
                    size: 0x100
                }),
                Some(Func {
                    vaddr: 0x401140,
                    size: 0x80
                }),
            ]
        );
        let none = pclntab_lookup(&tab, &["crypto/tls.(*Conn).Close"]).unwrap();
        assert_eq!(none, vec![None]);
    }

    #[test]
    fn pclntab_never_panics_on_garbage() {
        let tab = fake_pclntab(
            PCLN_MAGIC_118,
            &[(GO_TLS_WRITE, 0, 0x100), (GO_TLS_READ, 0x100, 0x80)],
        );
        assert!(pclntab_lookup(&tab, &FUNCS).is_ok());
        // Every truncation and every single-byte corruption: no panic.
        for len in 0..tab.len() {
            let _ = pclntab_lookup(&tab[..len], &FUNCS);
        }
        for i in 0..tab.len() {
            for v in [0x00, 0x7f, 0xff] {
                let mut t = tab.clone();
                t[i] = v;
                let _ = pclntab_lookup(&t, &FUNCS);
            }
        }
        // Old layouts are refused, not misread.
        let mut old = tab.clone();
        old[..4].copy_from_slice(&0xffff_fffbu32.to_le_bytes());
        assert!(matches!(
            pclntab_lookup(&old, &FUNCS),
            Err(GoError::Unverified(_))
        ));
        // A huge function count cannot make it read out of bounds.
        let mut huge = tab.clone();
        huge[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(pclntab_lookup(&huge, &FUNCS).is_err());
    }

    // ---- against real Go programs (Debian's golang-1.23-go and nats-server) ----

    use std::collections::BTreeSet;
    use std::process::Command;

    use super::super::{ALL_LIBRARIES, DiscoveryError, ProbeTarget, inspect_file};

    const GO: &str = "/usr/lib/go-1.23/bin/go";
    const NATS: &str = "/usr/sbin/nats-server";

    /// Go's own reader of the same table (debug/gosym), as the reference.
    const GOSYM_MAIN: &str = r#"package main

import (
	"debug/elf"
	"encoding/binary"
	"debug/gosym"
	"fmt"
	"os"
	"strings"
)

func main() {
	f, err := elf.Open(os.Args[1])
	if err != nil {
		panic(err)
	}
	var data []byte
	for _, s := range f.Sections {
		if strings.HasSuffix(s.Name, ".gopclntab") {
			data, _ = s.Data()
		}
	}
	// The runtime's text start (pcHeader.textStart), as the runtime uses it:
	// .text's address is wrong where C code precedes runtime.text.
	text := binary.LittleEndian.Uint64(data[24:])
	tab, err := gosym.NewTable(nil, gosym.NewLineTable(data, text))
	if err != nil {
		panic(err)
	}
	for _, name := range os.Args[2:] {
		fn := tab.LookupFunc(name)
		fmt.Printf("%d %d\n", fn.Entry, fn.End)
	}
}
"#;

    const TLS_MAIN: &str = r#"package main

import (
	"crypto/tls"
	"os"
)

func main() {
	c, err := tls.Dial("tcp", os.Args[1], &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		return
	}
	c.Write([]byte("x"))
	c.Read(make([]byte, 1))
}
"#;

    fn fixture<'a>(path: &'a str, package: &str) -> &'a Path {
        let p = Path::new(path);
        assert!(
            p.exists(),
            "test fixture {path} is missing: install {package} (scripts/deps.sh)"
        );
        p
    }

    /// `go build` a one-file program offline (stdlib only) into `dir`.
    fn go_build(dir: &Path, name: &str, src: &str, flags: &[&str]) -> std::path::PathBuf {
        fixture(GO, "golang-1.23-go");
        let cache = std::env::temp_dir().join("weft-go-cache");
        std::fs::create_dir_all(dir).unwrap();
        let main = dir.join(format!("{name}.go"));
        std::fs::write(&main, src).unwrap();
        let out = dir.join(name);
        let st = Command::new(GO)
            .arg("build")
            .args(flags)
            .arg("-o")
            .arg(&out)
            .arg(&main)
            .current_dir(dir)
            .env("GOCACHE", cache.join("build"))
            .env("GOPATH", cache.join("path"))
            .env("GOTOOLCHAIN", "local")
            .env("GOFLAGS", "")
            .env("GOENV", "off")
            .env("CGO_ENABLED", "0")
            .status()
            .unwrap();
        assert!(st.success(), "go build {name} failed");
        out
    }

    fn scratch(tag: &str) -> std::path::PathBuf {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let d = std::env::temp_dir().join(format!("weft-go-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// `(entry vaddr, end vaddr)` of Write and Read according to debug/gosym.
    fn reference(bin: &Path) -> [(u64, u64); 2] {
        let dir = scratch("gosym");
        let tool = go_build(&dir, "gosym", GOSYM_MAIN, &[]);
        let out = Command::new(&tool).arg(bin).args(FUNCS).output().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(out.status.success(), "gosym reference failed");
        let text = String::from_utf8(out.stdout).unwrap();
        let v: Vec<(u64, u64)> = text
            .lines()
            .map(|l| {
                let (a, b) = l.split_once(' ').unwrap();
                (a.parse().unwrap(), b.parse().unwrap())
            })
            .collect();
        [v[0], v[1]]
    }

    /// File offset of a virtual address, through the section holding it
    /// (independently of go.rs, which goes through PT_LOAD).
    fn section_offset(bin: &Path, vaddr: u64) -> u64 {
        use object::{Object, ObjectSection};
        let data = std::fs::read(bin).unwrap();
        let file = object::File::parse(&*data).unwrap();
        let s = file
            .sections()
            .find(|s| vaddr >= s.address() && vaddr < s.address() + s.size())
            .unwrap();
        vaddr - s.address() + s.file_range().unwrap().0
    }

    /// Every probe point of `t` checked against debug/gosym and the bytes.
    fn assert_go_points(t: &ProbeTarget, bin: &Path) {
        assert_eq!(t.library, TlsLibrary::GoTls);
        let bytes = std::fs::read(bin).unwrap();
        for (name, (entry, end)) in FUNCS.iter().zip(reference(bin)) {
            let off = section_offset(bin, entry);
            assert_eq!(
                t.offset(name),
                Some(off),
                "{name} entry in {}",
                bin.display()
            );
            let rets: Vec<u64> = t
                .symbols
                .iter()
                .filter_map(|s| {
                    let rel = s.name.strip_prefix(name)?.strip_prefix("+0x")?;
                    let rel = u64::from_str_radix(rel, 16).unwrap();
                    assert_eq!(s.offset, off + rel, "{}", s.name);
                    Some(rel)
                })
                .collect();
            assert!(!rets.is_empty(), "{name}: no RET");
            for rel in &rets {
                assert!(*rel < end - entry, "{name}+{rel:#x} past the end");
                assert_eq!(
                    bytes[(off + rel) as usize],
                    0xc3,
                    "{name}+{rel:#x} is not RET"
                );
            }
            // Every 0xc3 byte that is a RET instruction is found: count the
            // RETs independently from the reference bounds.
            let code = &bytes[off as usize..(off + (end - entry)) as usize];
            assert_eq!(find_returns(code, entry).unwrap(), rets);
        }
    }

    #[test]
    fn stripped_nats_server_from_pclntab() {
        // Go 1.19, external linking, stripped: only the pclntab (magic f0).
        let bin = fixture(NATS, "nats-server");
        let t = inspect_file(bin, ALL_LIBRARIES)
            .unwrap()
            .expect("Go crypto/tls in nats-server");
        assert_go_points(&t, bin);
        assert_eq!(t.build_id.as_ref().map(Vec::len), Some(20));
        // 2 entries, then the RETs.
        assert_eq!(t.symbols[0].name, GO_TLS_WRITE);
        assert_eq!(t.symbols[1].name, GO_TLS_READ);
        assert!(t.symbols.len() > 2);
    }

    #[test]
    fn stripped_go_toolchain_from_pclntab() {
        // Go 1.23, stripped (magic f1): the go command speaks HTTPS itself.
        let bin = fixture(GO, "golang-1.23-go");
        let t = inspect_file(bin, ALL_LIBRARIES)
            .unwrap()
            .expect("Go crypto/tls in go");
        assert_go_points(&t, bin);
    }

    #[test]
    fn symtab_pclntab_and_pie_agree() {
        let dir = scratch("build");
        let plain = go_build(&dir, "plain", TLS_MAIN, &[]);
        let stripped = go_build(&dir, "stripped", TLS_MAIN, &["-ldflags=-s -w"]);
        let pie = go_build(&dir, "pie", TLS_MAIN, &["-buildmode=pie", "-ldflags=-s -w"]);
        let t_plain = inspect_file(&plain, ALL_LIBRARIES).unwrap().unwrap();
        let t_stripped = inspect_file(&stripped, ALL_LIBRARIES).unwrap().unwrap();
        let t_pie = inspect_file(&pie, ALL_LIBRARIES).unwrap().unwrap();
        assert_go_points(&t_plain, &plain);
        assert_go_points(&t_stripped, &stripped);
        assert_go_points(&t_pie, &pie);
        // Same code with and without .symtab: the same points.
        let names = |t: &ProbeTarget| {
            t.symbols
                .iter()
                .map(|s| s.name.clone())
                .collect::<BTreeSet<_>>()
        };
        assert_eq!(names(&t_plain), names(&t_stripped));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn refuses_a_program_it_cannot_verify() {
        let bin = fixture(NATS, "nats-server");
        let t = inspect_file(bin, ALL_LIBRARIES).unwrap().unwrap();
        let dir = scratch("corrupt");
        // A copy whose (*Conn).Write no longer starts with Go's stack check
        // (as if the pclntab pointed at the wrong place).
        let mut bytes = std::fs::read(bin).unwrap();
        let at = t.offset(GO_TLS_WRITE).unwrap() as usize;
        bytes[at..at + 4].copy_from_slice(&[0x90; 4]);
        let copy = dir.join("nats-server");
        std::fs::write(&copy, &bytes).unwrap();
        let err = inspect_file(&copy, ALL_LIBRARIES).unwrap_err();
        assert!(matches!(err, DiscoveryError::GoUnverified { .. }), "{err}");
        assert!(err.to_string().contains("not probed"), "{err}");
        // A pclntab of an unknown layout: refused too, never guessed.
        let mut bytes = std::fs::read(bin).unwrap();
        let magic = 0xffff_fff0u32.to_le_bytes();
        let pos = bytes
            .windows(8)
            .position(|w| w[..4] == magic && w[4..] == [0, 0, 1, 8])
            .unwrap();
        bytes[pos..pos + 4].copy_from_slice(&0xffff_fffau32.to_le_bytes());
        std::fs::write(&copy, &bytes).unwrap();
        let err = inspect_file(&copy, ALL_LIBRARIES).unwrap_err();
        assert!(matches!(err, DiscoveryError::GoUnverified { .. }), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn not_go_and_go_without_tls() {
        assert!(
            inspect_file(Path::new("/bin/ls"), ALL_LIBRARIES)
                .unwrap()
                .is_none()
        );
        // gofmt is Go without crypto/tls.
        let gofmt = fixture("/usr/lib/go-1.23/bin/gofmt", "golang-1.23-go");
        assert!(inspect_file(gofmt, ALL_LIBRARIES).unwrap().is_none());
    }
}

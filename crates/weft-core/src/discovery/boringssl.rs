//! BoringSSL linked into a stripped executable (Chromium and its relatives):
//! finding `SSL_write`, `SSL_read`, `SSL_do_handshake` and `SSL_free` without
//! symbols, and proving every candidate before a uprobe goes on it (a uprobe
//! in the middle of an instruction crashes the process it is in).
//!
//! # What is known, and where it lives
//!
//! `data/boringssl.json` (embedded at build time) holds **data, not code**:
//! the source file and error codes that identify BoringSSL's functions, the
//! reason codes each function reports, the executable names worth a pattern
//! search, and per known build (keyed by GNU build-id) the file offset, size,
//! FNV-1a hash and `(reason, line)` error reports of each function.
//!
//! # How the functions are recognised
//!
//! BoringSSL reports errors with `OPENSSL_PUT_ERROR(SSL, reason)`, which
//! compiles to `ERR_put_error(ERR_LIB_SSL, 0, reason, __FILE__, __LINE__)`:
//! a RIP-relative `lea` of the string `.../ssl/ssl_lib.cc` into `rcx`, and
//! immediates into `edi` (16), `edx` (the reason) and `r8d` (the line), then a
//! call. Each function of interest has its own set of reasons:
//! `SSL_do_handshake` reports only `SSL_R_CONNECTION_TYPE_NOT_SET`,
//! `SSL_write` exactly {`ERR_R_SHOULD_NOT_HAVE_BEEN_CALLED`,
//! `SSL_R_UNINITIALIZED`, `SSL_R_SSL_HANDSHAKE_FAILURE`, `SSL_R_BAD_LENGTH`}
//! in that source order, and so on (the `roles` table of the data file).
//!
//! For a **known build** the offsets come from the data file. For an
//! **unknown build** of an executable named like a Chromium-based browser, the
//! read-only data is searched for the source-file string, the code for `lea`s
//! of it, and each reference is grown into its function (below). Both paths
//! then go through the same verification; a known build must in addition
//! match the recorded size and hash byte for byte.
//!
//! # Verification (all must hold, else nothing is attached)
//!
//! - **A function start.** When `.eh_frame` has an entry covering the
//!   address, it must start exactly there (an address inside another function
//!   is refused). Chromium's `.eh_frame` covers only ~8 MiB of its 225 MiB of
//!   code and none of BoringSSL, so otherwise the address must be 16-byte
//!   aligned, preceded by `int3` padding (what lld puts between functions),
//!   set up a frame (`push rbp; mov rbp, rsp`, Chromium keeps frame pointers)
//!   within its first four instructions, and its end must be followed by
//!   padding.
//! - **It decodes.** Recursive-descent disassembly (iced-x86) from the start
//!   follows every branch; an undecodable byte or a path running past the
//!   function is a refusal.
//! - **Its error reports** are exactly the role's reasons in source order,
//!   all with `ERR_LIB_SSL`, all naming the same `ssl_lib.cc` string and
//!   calling the same `ERR_put_error`.
//! - **Its calls fit the source.** `SSL_write` and `ssl_read_impl` call
//!   `SSL_do_handshake`, `SSL_write` calls through the method table;
//!   `SSL_read` and `SSL_peek` both call `ssl_read_impl` and only `SSL_read`
//!   stores to memory (it consumes the buffered data; attaching `SSL_peek`
//!   instead would duplicate every read); `SSL_free` calls the destructor
//!   `SSL_new` calls on failure and tail-calls the `OPENSSL_free` that follows
//!   it there.
//!
//! `SSL_free` is optional (it only ages out the socket cache): when it does
//! not verify, the others are still attached. Outcomes are cached by build-id
//! and file length; a cached success is reused only while the bytes of every
//! probed function still hash the same.
//!
//! # Cost
//!
//! A known build reads the ELF headers, `.eh_frame`/`.eh_frame_hdr` (~0.5 MiB
//! for Chromium) and ~16 KiB per function: ~1 ms (release build, Debian's
//! chromium 156 in the page cache; ~4 ms from disk). The pattern search reads
//! `.rodata` (~20 MiB) and the code (~225 MiB) once, in 8 MiB pieces:
//! ~0.2-0.35 s (~0.6 s from disk, ~3 s in a debug build). Files that are
//! neither a known build nor named like a browser cost a header read.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use iced_x86::{
    Code, Decoder, DecoderOptions, FlowControl, Instruction, InstructionInfoFactory, Mnemonic,
    OpAccess, OpKind, Register,
};
use object::Endianness;
use object::elf;
use object::read::ReadCache;
use object::read::ReadRef;
use object::read::elf::{FileHeader, ProgramHeader, SectionHeader};
use serde::Deserialize;

pub(crate) mod keylog;

use super::SymbolOffset;
use super::elf::{Found, Load, load_segments};
use crate::event::TlsLibrary;

/// The embedded table of known builds and patterns.
const DATA_JSON: &str = include_str!("../../data/boringssl.json");

/// Longest function decoded, in bytes.
const MAX_FUNCTION: u64 = 16 * 1024;
/// Most instructions decoded for one function.
const MAX_INSNS: usize = 4096;
/// Code read per piece during the pattern search.
const CHUNK: u64 = 8 << 20;
/// Largest `.rodata` or code searched (bigger files are refused).
const MAX_SEARCH: u64 = 1 << 30;
/// Largest `.eh_frame`/`.eh_frame_hdr` read.
const MAX_EH: u64 = 64 << 20;
/// How far around the error reports the pattern search looks for functions.
const REGION_MARGIN: u64 = 64 * 1024;

/// Why BoringSSL in a file is not probed.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "not attaching BoringSSL probes to {path} (build-id {build_id}, {source_of_offsets}): \
     cannot verify {reason}; a wrong offset would crash the process, so it gets no probe"
)]
pub struct LocateError {
    pub path: String,
    pub build_id: String,
    /// "known build ..." or "unknown build, pattern search".
    pub source_of_offsets: String,
    pub reason: String,
}

// ---------------------------------------------------------------------------
// The data file
// ---------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    #[allow(dead_code)] // documentation inside the data file
    about: Vec<String>,
    schema: u32,
    embedders: Vec<String>,
    source_file_suffix: String,
    err_lib_ssl: u64,
    reasons: BTreeMap<String, u64>,
    roles: BTreeMap<String, Vec<String>>,
    builds: Vec<RawBuild>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBuild {
    build_id: String,
    package: String,
    functions: Vec<RawFunction>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFunction {
    name: String,
    offset: String,
    size: u64,
    fnv1a64: String,
    errors: Vec<[u64; 2]>,
}

/// A function BoringSSL's verification knows: the four probed ones and the
/// three that anchor their checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Role {
    DoHandshake,
    Write,
    ReadImpl,
    Read,
    Peek,
    New,
    Free,
}

impl Role {
    const ALL: [Role; 7] = [
        Role::DoHandshake,
        Role::Write,
        Role::ReadImpl,
        Role::Read,
        Role::Peek,
        Role::New,
        Role::Free,
    ];

    fn name(self) -> &'static str {
        match self {
            Role::DoHandshake => "SSL_do_handshake",
            Role::Write => "SSL_write",
            Role::ReadImpl => "ssl_read_impl",
            Role::Read => "SSL_read",
            Role::Peek => "SSL_peek",
            Role::New => "SSL_new",
            Role::Free => "SSL_free",
        }
    }

    fn from_name(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == name)
    }
}

/// The functions attached, in this order (required ones first).
const PROBED: [Role; 4] = [Role::Write, Role::Read, Role::DoHandshake, Role::Free];

#[derive(Debug, Clone)]
struct KnownFunction {
    role: Role,
    offset: u64,
    size: u64,
    fnv1a64: u64,
    /// `(reason, line)`, by line.
    errors: Vec<(u64, u64)>,
}

#[derive(Debug, Clone)]
struct KnownBuild {
    package: String,
    functions: Vec<KnownFunction>,
}

/// The validated table.
#[derive(Debug)]
struct Data {
    embedders: Vec<String>,
    suffix: Vec<u8>,
    err_lib_ssl: u64,
    /// Reasons of each role, in source order.
    roles: HashMap<Role, Vec<u64>>,
    builds: HashMap<Vec<u8>, KnownBuild>,
}

fn parse_hex(s: &str) -> Option<u64> {
    u64::from_str_radix(s.strip_prefix("0x")?, 16).ok()
}

fn parse_build_id(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.is_empty() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

impl Data {
    fn parse(json: &str) -> Result<Data, String> {
        let raw: RawTable =
            serde_json::from_str(json).map_err(|e| format!("data/boringssl.json: {e}"))?;
        if raw.schema != 1 {
            return Err(format!(
                "data/boringssl.json: schema {} (this weft reads 1)",
                raw.schema
            ));
        }
        if raw.source_file_suffix.is_empty() {
            return Err("data/boringssl.json: empty source_file_suffix".into());
        }
        let mut roles = HashMap::new();
        for (name, reasons) in &raw.roles {
            let role =
                Role::from_name(name).ok_or_else(|| format!("unknown role {name:?} in roles"))?;
            let codes = reasons
                .iter()
                .map(|r| {
                    raw.reasons
                        .get(r)
                        .copied()
                        .ok_or_else(|| format!("role {name}: unknown reason {r:?}"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            roles.insert(role, codes);
        }
        for role in Role::ALL {
            if !roles.contains_key(&role) {
                return Err(format!("roles: {} is missing", role.name()));
            }
        }
        let mut builds = HashMap::new();
        for b in raw.builds {
            let id = parse_build_id(&b.build_id)
                .ok_or_else(|| format!("bad build_id {:?}", b.build_id))?;
            let mut functions = Vec::new();
            for f in b.functions {
                let role = Role::from_name(&f.name).ok_or_else(|| {
                    format!("build {}: unknown function {:?}", b.build_id, f.name)
                })?;
                let offset = parse_hex(&f.offset)
                    .ok_or_else(|| format!("{}: bad offset {:?}", f.name, f.offset))?;
                let fnv1a64 = parse_hex(&f.fnv1a64)
                    .ok_or_else(|| format!("{}: bad fnv1a64 {:?}", f.name, f.fnv1a64))?;
                let mut errors: Vec<(u64, u64)> = f.errors.iter().map(|[r, l]| (*r, *l)).collect();
                errors.sort_by_key(|&(_, line)| line);
                functions.push(KnownFunction {
                    role,
                    offset,
                    size: f.size,
                    fnv1a64,
                    errors,
                });
            }
            for role in [Role::Write, Role::Read, Role::DoHandshake, Role::ReadImpl] {
                if !functions.iter().any(|f| f.role == role) {
                    return Err(format!("build {}: {} is required", b.build_id, role.name()));
                }
            }
            if builds
                .insert(
                    id,
                    KnownBuild {
                        package: b.package,
                        functions,
                    },
                )
                .is_some()
            {
                return Err(format!("build {} listed twice", b.build_id));
            }
        }
        Ok(Data {
            embedders: raw.embedders,
            suffix: raw.source_file_suffix.into_bytes(),
            err_lib_ssl: raw.err_lib_ssl,
            roles,
            builds,
        })
    }

    fn is_embedder(&self, file_name: &str) -> bool {
        self.embedders.iter().any(|e| e == file_name)
    }
}

/// The embedded table, parsed once. A broken table (a unit test prevents
/// shipping one) disables BoringSSL discovery with one warning.
fn data() -> Option<&'static Data> {
    static DATA: OnceLock<Result<Data, String>> = OnceLock::new();
    match DATA.get_or_init(|| Data::parse(DATA_JSON)) {
        Ok(d) => Some(d),
        Err(e) => {
            static WARNED: OnceLock<()> = OnceLock::new();
            WARNED.get_or_init(|| tracing::warn!("BoringSSL discovery disabled: {e}"));
            None
        }
    }
}

// ---------------------------------------------------------------------------
// The ELF image: just the facts and the reads the locator needs
// ---------------------------------------------------------------------------

/// `.eh_frame_hdr` and `.eh_frame`, with their addresses.
struct Eh {
    hdr: Vec<u8>,
    hdr_vaddr: u64,
    frame: Vec<u8>,
    frame_vaddr: u64,
    text_vaddr: u64,
}

/// What `.eh_frame` says about an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unwind {
    /// A function starts here and is this long.
    Starts(u64),
    /// Inside the function starting at this address.
    Inside(u64),
    NotCovered,
}

impl Eh {
    fn lookup(&self, addr: u64) -> Unwind {
        use gimli::{BaseAddresses, EhFrame, EhFrameHdr, LittleEndian, UnwindSection};
        let bases = BaseAddresses::default()
            .set_eh_frame_hdr(self.hdr_vaddr)
            .set_eh_frame(self.frame_vaddr)
            .set_text(self.text_vaddr);
        let Ok(hdr) = EhFrameHdr::new(&self.hdr, LittleEndian).parse(&bases, 8) else {
            return Unwind::NotCovered;
        };
        let Some(table) = hdr.table() else {
            return Unwind::NotCovered;
        };
        let frame = EhFrame::new(&self.frame, LittleEndian);
        match table.fde_for_address(&frame, &bases, addr, |s, b, o| s.cie_from_offset(b, o)) {
            Ok(fde) if fde.initial_address() == addr => Unwind::Starts(fde.len()),
            Ok(fde) => Unwind::Inside(fde.initial_address()),
            Err(_) => Unwind::NotCovered,
        }
    }
}

struct Image<'a> {
    file: &'a File,
    loads: Vec<Load>,
    build_id: Option<Vec<u8>>,
    /// Code to search: `.text`, else the executable segments.
    code: Vec<(u64, u64)>,
    /// Read-only data to search for the source-file string.
    rodata: Vec<(u64, u64)>,
    eh: Option<Eh>,
}

impl<'a> Image<'a> {
    /// `Ok(None)` when the file is not a 64-bit little-endian x86-64 ELF.
    fn open(file: &'a File) -> Result<Option<Image<'a>>, String> {
        let cache = ReadCache::new(file);
        let data = &cache;
        let Ok(ident) = data.read_bytes_at(0, 16) else {
            return Ok(None);
        };
        if ident[..4] != elf::ELFMAG
            || elf::FileClass(ident[4]) != elf::ELFCLASS64
            || elf::DataEncoding(ident[5]) != elf::ELFDATA2LSB
        {
            return Ok(None);
        }
        let header = elf::FileHeader64::<Endianness>::parse(data).map_err(|e| e.to_string())?;
        let endian = header.endian().map_err(|e| e.to_string())?;
        if header.e_machine(endian) != elf::EM_X86_64 {
            return Ok(None);
        }
        let phdrs = header
            .program_headers(endian, data)
            .map_err(|e| e.to_string())?;
        let loads = load_segments(phdrs, endian);
        let mut build_id = None;
        for p in phdrs {
            let Ok(Some(mut notes)) = p.notes(endian, data) else {
                continue;
            };
            while let Ok(Some(note)) = notes.next() {
                if note.name() == elf::ELF_NOTE_GNU && note.n_type(endian) == elf::NT_GNU_BUILD_ID {
                    build_id = Some(note.desc().to_vec());
                }
            }
        }
        Ok(Some(Image {
            file,
            loads,
            build_id,
            code: Vec::new(),
            rodata: Vec::new(),
            eh: None,
        }))
    }

    /// The section facts the locator uses (only for files worth a look:
    /// `open` stays cheap for every other file a process maps).
    fn read_sections(&mut self) -> Result<(), String> {
        let cache = ReadCache::new(self.file);
        let data = &cache;
        let header = elf::FileHeader64::<Endianness>::parse(data).map_err(|e| e.to_string())?;
        let endian = header.endian().map_err(|e| e.to_string())?;
        // Section headers are optional (the segments suffice); used when present.
        let sections = header.sections(endian, data).ok();
        let find = |name: &[u8]| {
            let (_, s) = sections.as_ref()?.section_by_name(endian, name)?;
            (s.sh_type(endian) != elf::SHT_NOBITS).then(|| (s.sh_addr(endian), s.sh_size(endian)))
        };
        let text = find(b".text");
        let segments = |executable: bool| -> Vec<(u64, u64)> {
            self.loads
                .iter()
                .filter(|l| l.executable == executable)
                .map(|l| (l.vaddr, l.filesz))
                .collect()
        };
        self.code = text.map_or_else(|| segments(true), |t| vec![t]);
        self.rodata = find(b".rodata").map_or_else(|| segments(false), |r| vec![r]);
        self.eh = None;
        if let (Some((hv, hs)), Some((fv, fs))) = (find(b".eh_frame_hdr"), find(b".eh_frame"))
            && hs <= MAX_EH
            && fs <= MAX_EH
            && let (Ok(hdr), Ok(frame)) = (self.read(hv, hs), self.read(fv, fs))
        {
            self.eh = Some(Eh {
                hdr,
                hdr_vaddr: hv,
                frame,
                frame_vaddr: fv,
                text_vaddr: text.map_or(0, |t| t.0),
            });
        }
        Ok(())
    }

    fn load_of(&self, vaddr: u64) -> Option<&Load> {
        self.loads
            .iter()
            .filter(|l| vaddr >= l.vaddr && vaddr - l.vaddr < l.filesz)
            .max_by_key(|l| l.executable)
    }

    /// `len` bytes at virtual address `vaddr`, all inside one segment.
    fn read(&self, vaddr: u64, len: u64) -> Result<Vec<u8>, String> {
        let l = self
            .load_of(vaddr)
            .ok_or_else(|| format!("{vaddr:#x} is not in the file"))?;
        let rel = vaddr - l.vaddr;
        if len > l.filesz - rel {
            return Err(format!("{len} bytes at {vaddr:#x} run past their segment"));
        }
        let n = usize::try_from(len).map_err(|_| "read too large".to_string())?;
        let mut buf = vec![0; n];
        self.file
            .read_exact_at(&mut buf, l.offset.saturating_add(rel))
            .map_err(|e| format!("reading {n} bytes at {vaddr:#x}: {e}"))?;
        Ok(buf)
    }

    /// Code bytes around `[lo, hi)`, clamped to the executable segment that
    /// holds `anchor`.
    fn window(&self, anchor: u64, lo: u64, hi: u64) -> Result<Window, String> {
        let l = self
            .load_of(anchor)
            .filter(|l| l.executable)
            .ok_or_else(|| format!("{anchor:#x} is not in an executable segment"))?;
        let lo = lo.max(l.vaddr);
        let hi = hi.min(l.vaddr.saturating_add(l.filesz));
        if lo >= hi {
            return Err(format!("empty code window at {anchor:#x}"));
        }
        Ok(Window {
            base: lo,
            bytes: self.read(lo, hi - lo)?,
        })
    }

    fn file_offset(&self, vaddr: u64) -> Option<u64> {
        let l = self.load_of(vaddr)?;
        (vaddr - l.vaddr).checked_add(l.offset)
    }

    fn vaddr_of_offset(&self, offset: u64) -> Option<u64> {
        let l = self
            .loads
            .iter()
            .filter(|l| offset >= l.offset && offset - l.offset < l.filesz)
            .max_by_key(|l| l.executable)?;
        (offset - l.offset).checked_add(l.vaddr)
    }

    /// The NUL-terminated string at `vaddr` ends with `suffix`.
    fn string_ends_with(&self, vaddr: u64, suffix: &[u8]) -> bool {
        let Some(l) = self.load_of(vaddr) else {
            return false;
        };
        let len = (l.filesz - (vaddr - l.vaddr)).min(512);
        let Ok(bytes) = self.read(vaddr, len) else {
            return false;
        };
        match bytes.iter().position(|&b| b == 0) {
            Some(n) => bytes[..n].ends_with(suffix),
            None => false,
        }
    }
}

// ---------------------------------------------------------------------------
// Decoding one function
// ---------------------------------------------------------------------------

/// Code bytes mapped at `base`.
struct Window {
    base: u64,
    bytes: Vec<u8>,
}

impl Window {
    fn byte(&self, va: u64) -> Option<u8> {
        let i = usize::try_from(va.checked_sub(self.base)?).ok()?;
        self.bytes.get(i).copied()
    }

    fn end(&self) -> u64 {
        self.base.saturating_add(self.bytes.len() as u64)
    }

    fn slice(&self, start: u64, end: u64) -> Option<&[u8]> {
        let a = usize::try_from(start.checked_sub(self.base)?).ok()?;
        let b = usize::try_from(end.checked_sub(self.base)?).ok()?;
        self.bytes.get(a..b)
    }

    /// 16-byte aligned and preceded by `int3` padding: where lld starts a
    /// function after the previous one.
    fn is_boundary(&self, va: u64) -> bool {
        va.is_multiple_of(16) && va > 0 && self.byte(va - 1) == Some(0xCC)
    }
}

/// How a function's start was established.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    /// An `.eh_frame` entry starts there.
    Unwind,
    /// Padding before, a frame set up at the start, padding after.
    Padding,
}

struct Func {
    start: u64,
    end: u64,
    entry: Entry,
    insns: BTreeMap<u64, Instruction>,
    /// Direct call targets, in address order.
    calls: Vec<(u64, u64)>,
    /// Branches that leave the function (tail calls).
    tail_jumps: Vec<u64>,
    indirect_calls: usize,
    indirect_jumps: usize,
    /// Instructions writing memory not on the stack.
    stores: usize,
    fnv1a64: u64,
}

impl Func {
    fn size(&self) -> u64 {
        self.end - self.start
    }

    fn calls_to(&self, target: u64) -> bool {
        self.calls.iter().any(|&(_, t)| t == target)
    }
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn decode_at(win: &Window, ip: u64) -> Option<Instruction> {
    let data = win.slice(ip, win.end())?;
    let mut d = Decoder::try_with_ip(64, data, ip, DecoderOptions::NONE).ok()?;
    let ins = d.decode();
    (!ins.is_invalid()).then_some(ins)
}

/// `push rbp; mov rbp, rsp` within the first four instructions, in address
/// order (a null check may come first: `test rdi, rdi; je`).
fn sets_up_frame(win: &Window, start: u64) -> bool {
    let mut ip = start;
    let mut prev_push_rbp = false;
    for _ in 0..5 {
        let Some(ins) = decode_at(win, ip) else {
            return false;
        };
        let is_mov_rbp_rsp = matches!(ins.code(), Code::Mov_rm64_r64 | Code::Mov_r64_rm64)
            && ins.op0_kind() == OpKind::Register
            && ins.op1_kind() == OpKind::Register
            && ins.op0_register() == Register::RBP
            && ins.op1_register() == Register::RSP;
        if prev_push_rbp && is_mov_rbp_rsp {
            return true;
        }
        prev_push_rbp = ins.code() == Code::Push_r64 && ins.op0_register() == Register::RBP;
        ip = ins.next_ip();
    }
    false
}

/// Recursive-descent decoding of the function at `start` (see the module
/// documentation for what makes it one).
fn decode_function(win: &Window, start: u64, eh: Option<&Eh>) -> Result<Func, String> {
    if win.byte(start).is_none() {
        return Err(format!("{start:#x} is outside the code read"));
    }
    let (entry, unwind_end) = match eh.map_or(Unwind::NotCovered, |e| e.lookup(start)) {
        Unwind::Starts(len) => (Entry::Unwind, Some(start.saturating_add(len))),
        Unwind::Inside(begin) => {
            return Err(format!(
                "{start:#x} lies inside the function at {begin:#x} that .eh_frame describes"
            ));
        }
        Unwind::NotCovered => {
            if !win.is_boundary(start) {
                return Err(format!(
                    "{start:#x} is not 16-byte aligned after int3 padding (not a function start)"
                ));
            }
            if !sets_up_frame(win, start) {
                return Err(format!(
                    "the code at {start:#x} does not set up a frame (push rbp; mov rbp, rsp)"
                ));
            }
            (Entry::Padding, None)
        }
    };
    let limit = win
        .end()
        .min(start.saturating_add(MAX_FUNCTION))
        .min(unwind_end.unwrap_or(u64::MAX));
    let internal = |t: u64| {
        t >= start && t < limit && (entry == Entry::Unwind || t == start || !win.is_boundary(t))
    };
    let mut insns = BTreeMap::new();
    let mut calls = Vec::new();
    let mut tail_jumps = Vec::new();
    let (mut indirect_calls, mut indirect_jumps) = (0, 0);
    let mut work = vec![start];
    while let Some(mut ip) = work.pop() {
        loop {
            if insns.contains_key(&ip) {
                break;
            }
            if ip != start && entry == Entry::Padding && win.is_boundary(ip) {
                break; // ran into the next function: this path ended (noreturn)
            }
            if ip >= limit {
                return Err(format!(
                    "the function at {start:#x} runs past {limit:#x} without returning"
                ));
            }
            let ins = decode_at(win, ip).ok_or_else(|| {
                format!("undecodable bytes at {ip:#x} in the function at {start:#x}")
            })?;
            if ins.next_ip() > limit {
                return Err(format!("the instruction at {ip:#x} runs past {limit:#x}"));
            }
            if insns.len() >= MAX_INSNS {
                return Err(format!(
                    "the function at {start:#x} has more than {MAX_INSNS} instructions"
                ));
            }
            insns.insert(ip, ins);
            let next = ins.next_ip();
            match ins.flow_control() {
                FlowControl::Next => ip = next,
                FlowControl::Call => {
                    calls.push((ip, ins.near_branch_target()));
                    // A call that ends the function `.eh_frame` describes
                    // cannot return into it (`__stack_chk_fail`): this path
                    // ends here.
                    if unwind_end == Some(next) {
                        break;
                    }
                    ip = next;
                }
                FlowControl::IndirectCall => {
                    indirect_calls += 1;
                    ip = next;
                }
                FlowControl::ConditionalBranch => {
                    let t = ins.near_branch_target();
                    if internal(t) {
                        work.push(t);
                    } else {
                        tail_jumps.push(t);
                    }
                    ip = next;
                }
                FlowControl::UnconditionalBranch => {
                    let t = ins.near_branch_target();
                    if internal(t) {
                        ip = t;
                    } else {
                        tail_jumps.push(t);
                        break;
                    }
                }
                FlowControl::IndirectBranch => {
                    indirect_jumps += 1;
                    break;
                }
                FlowControl::Return | FlowControl::Interrupt | FlowControl::Exception => break,
                FlowControl::XbeginXabortXend => {
                    return Err(format!("transactional instruction at {ip:#x}"));
                }
            }
        }
    }
    let end = insns
        .values()
        .map(Instruction::next_ip)
        .max()
        .unwrap_or(start);
    if entry == Entry::Padding && !(end.is_multiple_of(16) || win.byte(end) == Some(0xCC)) {
        return Err(format!(
            "the function at {start:#x} ends at {end:#x} without padding after it"
        ));
    }
    let mut factory = InstructionInfoFactory::new();
    let stores = insns
        .values()
        .filter(|ins| {
            factory.info(ins).used_memory().iter().any(|m| {
                matches!(
                    m.access(),
                    OpAccess::Write | OpAccess::ReadWrite | OpAccess::CondWrite
                ) && !matches!(m.base(), Register::RSP | Register::RBP | Register::None)
            })
        })
        .count();
    calls.sort_unstable();
    let bytes = win
        .slice(start, end)
        .ok_or_else(|| format!("the function at {start:#x} is outside the code read"))?;
    Ok(Func {
        start,
        end,
        entry,
        calls,
        tail_jumps,
        indirect_calls,
        indirect_jumps,
        stores,
        fnv1a64: fnv1a64(bytes),
        insns,
    })
}

// ---------------------------------------------------------------------------
// Error reports: OPENSSL_PUT_ERROR call sites
// ---------------------------------------------------------------------------

/// One `ERR_put_error(lib, 0, reason, file, line)` call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Site {
    lea: u64,
    file: u64,
    lib: u64,
    reason: u64,
    line: u64,
    put_error: u64,
}

const TRACKED: [Register; 4] = [Register::RDI, Register::RDX, Register::R8, Register::RCX];

/// Follow the code after the `lea` of the file name to the call, tracking
/// the immediates loaded into the argument registers.
fn trace_site(
    func: &Func,
    lea: &Instruction,
    factory: &mut InstructionInfoFactory,
) -> Option<Site> {
    let file = lea.ip_rel_memory_address();
    let mut vals: [Option<u64>; 4] = [None; 4];
    let mut file_in_rcx = lea.op0_register() == Register::RCX;
    let mut ip = lea.next_ip();
    let mut hops = 0;
    for _ in 0..24 {
        let ins = func.insns.get(&ip)?;
        let target = match ins.flow_control() {
            FlowControl::Call => Some(ins.near_branch_target()),
            FlowControl::UnconditionalBranch => {
                let t = ins.near_branch_target();
                if func.insns.contains_key(&t) {
                    hops += 1;
                    if hops > 3 {
                        return None;
                    }
                    ip = t;
                    continue;
                }
                Some(t) // a tail call to ERR_put_error
            }
            FlowControl::Next => None,
            _ => return None,
        };
        if let Some(put_error) = target {
            let [lib, reason, line, _] = vals;
            return (file_in_rcx).then_some(Site {
                lea: lea.ip(),
                file,
                lib: lib?,
                reason: reason?,
                line: line?,
                put_error,
            });
        }
        let imm = match ins.code() {
            Code::Mov_r32_imm32 | Code::Mov_r64_imm64 | Code::Mov_rm64_imm32
                if ins.op0_kind() == OpKind::Register =>
            {
                ins.try_immediate(1).ok()
            }
            Code::Xor_r32_rm32 | Code::Xor_r64_rm64
                if ins.op1_kind() == OpKind::Register
                    && ins.op0_register() == ins.op1_register() =>
            {
                Some(0)
            }
            _ => None,
        };
        for r in factory.info(ins).used_registers() {
            if matches!(
                r.access(),
                OpAccess::Write
                    | OpAccess::ReadWrite
                    | OpAccess::CondWrite
                    | OpAccess::ReadCondWrite
            ) {
                let full = r.register().full_register();
                if let Some(i) = TRACKED.iter().position(|&t| t == full) {
                    vals[i] = None;
                }
                if full == Register::RCX {
                    file_in_rcx = false;
                }
            }
        }
        if let Some(v) = imm {
            let dst = ins.op0_register().full_register();
            if let Some(i) = TRACKED.iter().position(|&t| t == dst) {
                vals[i] = Some(v);
            }
        }
        ip = ins.next_ip();
    }
    None
}

/// Every error report of `func` that names a source-file string; an error
/// when a reference to the string cannot be followed to its call.
fn sites_of(func: &Func, is_source: &mut impl FnMut(u64) -> bool) -> Result<Vec<Site>, String> {
    let mut factory = InstructionInfoFactory::new();
    let mut sites = Vec::new();
    for ins in func.insns.values() {
        if ins.mnemonic() != Mnemonic::Lea || !ins.is_ip_rel_memory_operand() {
            continue;
        }
        if !is_source(ins.ip_rel_memory_address()) {
            continue;
        }
        let site = trace_site(func, ins, &mut factory).ok_or_else(|| {
            format!(
                "the error report at {:#x} (function {:#x}) does not load constant \
                 library, reason and line before its call",
                ins.ip(),
                func.start
            )
        })?;
        sites.push(site);
    }
    sites.sort_by_key(|s| (s.line, s.lea));
    Ok(sites)
}

// ---------------------------------------------------------------------------
// Roles and their verification (shared by known builds and the search)
// ---------------------------------------------------------------------------

struct Analyzed {
    func: Func,
    sites: Vec<Site>,
}

impl Analyzed {
    fn reasons(&self) -> Vec<u64> {
        self.sites.iter().map(|s| s.reason).collect()
    }
}

type Assignment = BTreeMap<Role, Analyzed>;

/// Check the candidates against each other and the data's roles; returns the
/// probe points, or why not. `notes` collects why an optional probe was left out.
fn verify(
    img: &Image<'_>,
    data: &Data,
    assign: &Assignment,
    notes: &mut Vec<String>,
) -> Result<Vec<Probe>, String> {
    let get = |r: Role| {
        assign
            .get(&r)
            .ok_or_else(|| format!("{}: no candidate", r.name()))
    };
    let (write, read, hs, read_impl) = (
        get(Role::Write)?,
        get(Role::Read)?,
        get(Role::DoHandshake)?,
        get(Role::ReadImpl)?,
    );
    // Each role's error reports, in source order.
    for (role, a) in assign {
        let want = data.roles.get(role).map(Vec::as_slice).unwrap_or(&[]);
        if a.reasons() != want {
            return Err(format!(
                "{} at {:#x}: error reasons {:?} (by line), expected {:?}",
                role.name(),
                a.func.start,
                a.reasons(),
                want
            ));
        }
    }
    // One library code, one file string, one ERR_put_error across all.
    let all: Vec<&Site> = assign.values().flat_map(|a| &a.sites).collect();
    let first = all.first().ok_or("no error reports at all")?;
    for s in &all {
        if s.lib != data.err_lib_ssl {
            return Err(format!(
                "the error report at {:#x} is for library {}, not ERR_LIB_SSL ({})",
                s.lea, s.lib, data.err_lib_ssl
            ));
        }
        if s.put_error != first.put_error || s.file != first.file {
            return Err(format!(
                "the error reports at {:#x} and {:#x} call different functions or name \
                 different files",
                first.lea, s.lea
            ));
        }
    }
    let mut starts = HashSet::new();
    for (role, a) in assign {
        if !starts.insert(a.func.start) {
            return Err(format!(
                "{} at {:#x} is also another function's candidate",
                role.name(),
                a.func.start
            ));
        }
        if a.func.indirect_jumps > 0 && *role != Role::Free {
            return Err(format!(
                "{} at {:#x} has indirect jumps (its extent is uncertain)",
                role.name(),
                a.func.start
            ));
        }
    }
    let relation = |ok: bool, what: &str| if ok { Ok(()) } else { Err(what.to_string()) };
    relation(
        write.func.calls_to(hs.func.start),
        "SSL_write does not call SSL_do_handshake",
    )?;
    relation(
        write.func.indirect_calls > 0,
        "SSL_write makes no call through the method table",
    )?;
    relation(
        read_impl.func.calls_to(hs.func.start),
        "ssl_read_impl does not call SSL_do_handshake",
    )?;
    relation(
        read.func.calls_to(read_impl.func.start),
        "SSL_read does not call ssl_read_impl",
    )?;
    relation(
        read.func.stores > 0,
        "SSL_read does not consume the buffered data (it looks like SSL_peek)",
    )?;
    if let Some(peek) = assign.get(&Role::Peek) {
        relation(
            peek.func.calls_to(read_impl.func.start) && peek.func.stores == 0,
            "SSL_peek does not look like SSL_peek",
        )?;
    }
    let free_ok = match (assign.get(&Role::Free), assign.get(&Role::New)) {
        (Some(free), Some(new)) => match free_shape(&free.func, &new.func) {
            Ok(()) => true,
            Err(e) => {
                notes.push(format!("SSL_free left out: {e}"));
                false
            }
        },
        (Some(_), None) => {
            notes.push("SSL_free left out: SSL_new not found to check it against".into());
            false
        }
        (None, _) => {
            notes.push("SSL_free not found".into());
            false
        }
    };
    let mut out = Vec::new();
    for role in PROBED {
        if role == Role::Free && !free_ok {
            continue;
        }
        let a = get(role)?;
        notes.push(format!(
            "{} starts at a function start per {}",
            role.name(),
            match a.func.entry {
                Entry::Unwind => ".eh_frame",
                Entry::Padding => "padding and frame setup",
            }
        ));
        let offset = img
            .file_offset(a.func.start)
            .ok_or_else(|| format!("{} at {:#x} is not in the file", role.name(), a.func.start))?;
        out.push(Probe {
            symbol: SymbolOffset {
                name: role.name().to_owned(),
                offset,
            },
            size: a.func.size(),
            fnv1a64: a.func.fnv1a64,
        });
    }
    Ok(out)
}

/// `SSL_free(ssl) { if (ssl) { ssl->~ssl_st(); OPENSSL_free(ssl); } }`: one
/// call, one tail call, and `SSL_new` makes the same two calls in a row when
/// it gives up on a half-built `SSL`.
fn free_shape(free: &Func, new: &Func) -> Result<(), String> {
    let [(_, dtor)] = free.calls.as_slice() else {
        return Err(format!("{} direct calls, expected 1", free.calls.len()));
    };
    let [dealloc] = free.tail_jumps.as_slice() else {
        return Err(format!("{} tail calls, expected 1", free.tail_jumps.len()));
    };
    if free.insns.len() > 24 || free.indirect_calls > 0 || free.indirect_jumps > 0 {
        return Err("larger than SSL_free is".into());
    }
    if !new_frees_with(new, *dtor, *dealloc) {
        return Err(format!(
            "SSL_new does not call {dtor:#x} then {dealloc:#x} on its failure path"
        ));
    }
    Ok(())
}

/// `new` calls `dtor` and, within the next three instructions, `dealloc`.
fn new_frees_with(new: &Func, dtor: u64, dealloc: u64) -> bool {
    new.calls.iter().any(|&(at, t)| {
        t == dtor
            && new.insns.range(at..).skip(1).take(3).any(|(_, ins)| {
                matches!(
                    ins.flow_control(),
                    FlowControl::Call | FlowControl::UnconditionalBranch
                ) && ins.near_branch_target() == dealloc
            })
    })
}

// ---------------------------------------------------------------------------
// Known builds
// ---------------------------------------------------------------------------

fn analyze(
    func: Func,
    img: &Image<'_>,
    suffix: &[u8],
    strings: &mut HashMap<u64, bool>,
) -> Result<Analyzed, String> {
    let mut is_source = |va: u64| {
        *strings
            .entry(va)
            .or_insert_with(|| img.string_ends_with(va, suffix))
    };
    let sites = sites_of(&func, &mut is_source)?;
    Ok(Analyzed { func, sites })
}

fn locate_known(
    img: &Image<'_>,
    data: &Data,
    build: &KnownBuild,
    notes: &mut Vec<String>,
) -> Result<Vec<Probe>, String> {
    let mut strings = HashMap::new();
    let mut assign = Assignment::new();
    for k in &build.functions {
        let name = k.role.name();
        let start = img
            .vaddr_of_offset(k.offset)
            .ok_or_else(|| format!("{name}: offset {:#x} is not in the file", k.offset))?;
        let win = img.window(
            start,
            start.saturating_sub(16),
            start.saturating_add(MAX_FUNCTION),
        )?;
        let func =
            decode_function(&win, start, img.eh.as_ref()).map_err(|e| format!("{name}: {e}"))?;
        if func.size() != k.size || func.fnv1a64 != k.fnv1a64 {
            return Err(format!(
                "{name} at file offset {:#x}: {} bytes with FNV-1a {:#x}, the table says {} \
                 bytes with {:#x}",
                k.offset,
                func.size(),
                func.fnv1a64,
                k.size,
                k.fnv1a64
            ));
        }
        let a =
            analyze(func, img, &data.suffix, &mut strings).map_err(|e| format!("{name}: {e}"))?;
        let got: Vec<(u64, u64)> = a.sites.iter().map(|s| (s.reason, s.line)).collect();
        if got != k.errors {
            return Err(format!(
                "{name}: error reports {got:?}, the table says {:?}",
                k.errors
            ));
        }
        assign.insert(k.role, a);
    }
    verify(img, data, &assign, notes)
}

// ---------------------------------------------------------------------------
// Unknown builds: the pattern search
// ---------------------------------------------------------------------------

/// Addresses of the NUL-terminated strings that end with `suffix`.
fn find_source_strings(img: &Image<'_>, suffix: &[u8]) -> Result<Vec<u64>, String> {
    let mut needle = suffix.to_vec();
    needle.push(0);
    let finder = memchr::memmem::Finder::new(&needle);
    const BACK: u64 = 4096; // longest path kept before the suffix
    let mut found = HashSet::new();
    let total = img.rodata.iter().fold(0u64, |t, r| t.saturating_add(r.1));
    if total > MAX_SEARCH {
        return Err(format!(
            "{total} bytes of read-only data is more than searched"
        ));
    }
    for &(va, size) in &img.rodata {
        let mut pos = 0;
        while pos < size {
            let lo = pos.saturating_sub(BACK);
            let hi = (pos + CHUNK).min(size);
            let buf = img.read(va.saturating_add(lo), hi - lo)?;
            for hit in finder.find_iter(&buf) {
                let start = buf[..hit]
                    .iter()
                    .rposition(|&b| b == 0)
                    .map_or(0, |n| n + 1);
                // A string that starts before the piece read is cut: skip it
                // unless the piece starts at the beginning of the section.
                if start == 0 && lo > 0 {
                    continue;
                }
                found.insert(va.saturating_add(lo) + start as u64);
            }
            pos = hi;
        }
    }
    let mut v: Vec<u64> = found.into_iter().collect();
    v.sort_unstable();
    Ok(v)
}

/// Addresses of `lea r64, [rip + disp32]` instructions whose target is one
/// of `targets`, over all the code.
fn find_references(img: &Image<'_>, targets: &[u64]) -> Result<Vec<u64>, String> {
    const OVERLAP: u64 = 7;
    let total = img.code.iter().fold(0u64, |t, r| t.saturating_add(r.1));
    if total > MAX_SEARCH {
        return Err(format!("{total} bytes of code is more than searched"));
    }
    let mut out = Vec::new();
    for &(va, size) in &img.code {
        let mut pos = 0;
        while pos < size {
            let hi = (pos + CHUNK).min(size);
            let read_hi = (hi + OVERLAP).min(size);
            let buf = img.read(va.saturating_add(pos), read_hi - pos)?;
            let own = usize::try_from(hi - pos).map_err(|_| "chunk too large")?;
            for i in memchr::memchr_iter(0x8D, &buf) {
                // REX.W (+R) 8D modrm(mod=00, rm=101) disp32: lea r64, [rip+disp32]
                let Some(start) = i.checked_sub(1) else {
                    continue;
                };
                if start >= own || (buf[start] != 0x48 && buf[start] != 0x4C) {
                    continue;
                }
                let Some(&[modrm, d0, d1, d2, d3]) = buf
                    .get(i + 1..i + 6)
                    .and_then(|s| <&[u8; 5]>::try_from(s).ok())
                else {
                    continue;
                };
                if modrm & 0xC7 != 0x05 {
                    continue;
                }
                let disp = i64::from(i32::from_le_bytes([d0, d1, d2, d3]));
                let at = va.saturating_add(pos).saturating_add(start as u64);
                let target = (at + 7).wrapping_add_signed(disp);
                if targets.binary_search(&target).is_ok() {
                    out.push(at);
                }
            }
            pos = hi;
        }
    }
    Ok(out)
}

/// The function containing the instruction at `site`: the nearest function
/// start before it whose decoding reaches it.
fn function_around(win: &Window, site: u64, eh: Option<&Eh>) -> Option<Func> {
    let reaches = |f: &Func| f.insns.contains_key(&site);
    match eh.map_or(Unwind::NotCovered, |e| e.lookup(site)) {
        Unwind::Inside(begin) => return decode_function(win, begin, eh).ok().filter(reaches),
        Unwind::Starts(_) => return decode_function(win, site, eh).ok().filter(reaches),
        Unwind::NotCovered => {}
    }
    let mut p = site & !15;
    let mut tries = 0;
    while p >= win.base && site - p <= MAX_FUNCTION && tries < 64 {
        if win.is_boundary(p) {
            tries += 1;
            if let Ok(f) = decode_function(win, p, eh)
                && reaches(&f)
            {
                return Some(f);
            }
        }
        p = p.checked_sub(16)?;
    }
    None
}

fn locate_by_pattern(
    img: &Image<'_>,
    data: &Data,
    notes: &mut Vec<String>,
) -> Result<Vec<Probe>, String> {
    let assign = search(img, data, notes)?;
    verify(img, data, &assign, notes)
}

/// The candidate of each role, from the error reports that name the
/// source file; each must fit its role's reasons uniquely.
fn search(img: &Image<'_>, data: &Data, notes: &mut Vec<String>) -> Result<Assignment, String> {
    let strings = find_source_strings(img, &data.suffix)?;
    if strings.is_empty() {
        return Err(format!(
            "BoringSSL's functions: no string ending in {:?} in the read-only data (not \
             BoringSSL, or built without file names)",
            String::from_utf8_lossy(&data.suffix)
        ));
    }
    let refs = find_references(img, &strings)?;
    let (Some(&lo), Some(&hi)) = (refs.iter().min(), refs.iter().max()) else {
        return Err("BoringSSL's functions: no code refers to the ssl_lib.cc string".into());
    };
    let win = img.window(
        lo,
        lo.saturating_sub(REGION_MARGIN),
        hi.saturating_add(REGION_MARGIN),
    )?;
    let eh = img.eh.as_ref();
    let mut funcs: BTreeMap<u64, Func> = BTreeMap::new();
    for &site in &refs {
        if funcs.values().any(|f| f.insns.contains_key(&site)) {
            continue;
        }
        if let Some(f) = function_around(&win, site, eh) {
            funcs.insert(f.start, f);
        }
    }
    let mut string_cache: HashMap<u64, bool> = strings.iter().map(|&s| (s, true)).collect();
    let mut analyzed = Vec::new();
    for (_, f) in funcs {
        // A function whose reports cannot all be read is no candidate.
        if let Ok(a) = analyze(f, img, &data.suffix, &mut string_cache) {
            analyzed.push(a);
        }
    }
    let role_sig = |r: Role| data.roles.get(&r).cloned().unwrap_or_default();
    let mut assign = Assignment::new();
    let take_unique = |role: Role, list: &mut Vec<Analyzed>, pred: &dyn Fn(&Analyzed) -> bool| {
        let idx: Vec<usize> = (0..list.len()).filter(|&i| pred(&list[i])).collect();
        match idx.as_slice() {
            [i] => Ok(list.remove(*i)),
            [] => Err(format!(
                "{}: no function reports exactly {:?}",
                role.name(),
                role_sig(role)
            )),
            many => Err(format!(
                "{}: {} functions fit ({})",
                role.name(),
                many.len(),
                many.iter()
                    .map(|&i| format!("{:#x}", list[i].func.start))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    };
    for role in [Role::DoHandshake, Role::Write, Role::ReadImpl, Role::New] {
        let sig = role_sig(role);
        match take_unique(role, &mut analyzed, &|a: &Analyzed| a.reasons() == sig) {
            Ok(a) => {
                assign.insert(role, a);
            }
            // SSL_new only anchors the check of SSL_free, which is optional.
            Err(e) if role == Role::New => notes.push(e),
            Err(e) => return Err(e),
        }
    }
    let read_impl = assign
        .get(&Role::ReadImpl)
        .map(|a| a.func.start)
        .ok_or("ssl_read_impl missing")?;
    let read_sig = role_sig(Role::Read);
    let is_read_family = |a: &Analyzed| a.reasons() == read_sig && a.func.calls_to(read_impl);
    let read = take_unique(Role::Read, &mut analyzed, &|a: &Analyzed| {
        is_read_family(a) && a.func.stores > 0
    })?;
    assign.insert(Role::Read, read);
    if let Ok(peek) = take_unique(Role::Peek, &mut analyzed, &|a: &Analyzed| {
        is_read_family(a) && a.func.stores == 0
    }) {
        assign.insert(Role::Peek, peek);
    }
    if let Some(new) = assign.get(&Role::New) {
        match find_free(&win, &new.func, eh) {
            Ok(f) => {
                assign.insert(
                    Role::Free,
                    Analyzed {
                        func: f,
                        sites: Vec::new(),
                    },
                );
            }
            Err(e) => notes.push(format!("SSL_free not found: {e}")),
        }
    }
    Ok(assign)
}

/// `SSL_free` near `SSL_new`: a small function whose only call is to a
/// function `SSL_new` calls right before a deallocation.
fn find_free(win: &Window, new: &Func, eh: Option<&Eh>) -> Result<Func, String> {
    let dtors: HashSet<u64> = new.calls.iter().map(|&(_, t)| t).collect();
    let mut found = Vec::new();
    let mut p = win.base.next_multiple_of(16);
    while p < win.end() {
        if win.is_boundary(p)
            && calls_within(win, p, 64, &dtors)
            && let Ok(f) = decode_function(win, p, eh)
            && f.calls.len() == 1
            && free_shape(&f, new).is_ok()
        {
            found.push(f);
        }
        let Some(next) = p.checked_add(16) else { break };
        p = next;
    }
    match found.len() {
        1 => found.pop().ok_or_else(|| "unreachable".to_string()),
        n => Err(format!("{n} candidates")),
    }
}

/// A `call rel32` to one of `targets` within `len` bytes of `start`.
fn calls_within(win: &Window, start: u64, len: u64, targets: &HashSet<u64>) -> bool {
    let Some(bytes) = win.slice(start, start.saturating_add(len).min(win.end())) else {
        return false;
    };
    bytes.windows(5).enumerate().any(|(i, w)| {
        w[0] == 0xE8 && {
            let disp = i64::from(i32::from_le_bytes([w[1], w[2], w[3], w[4]]));
            targets.contains(&start.wrapping_add(i as u64 + 5).wrapping_add_signed(disp))
        }
    })
}

// ---------------------------------------------------------------------------
// Entry point and per-build cache
// ---------------------------------------------------------------------------

type Outcome = Result<Vec<Probe>, LocateError>;

/// A verified probe point, with what identifies its function's bytes (so a
/// cached result is reused only for a file with the very same code there).
#[derive(Debug, Clone)]
struct Probe {
    symbol: SymbolOffset,
    size: u64,
    fnv1a64: u64,
}

/// The bytes behind each probe are still the ones verified.
fn still_there(file: &File, probes: &[Probe]) -> bool {
    probes.iter().all(|p| {
        let Ok(n) = usize::try_from(p.size) else {
            return false;
        };
        let mut buf = vec![0; n];
        file.read_exact_at(&mut buf, p.symbol.offset).is_ok() && fnv1a64(&buf) == p.fnv1a64
    })
}

fn found(probes: &[Probe], build_id: Option<Vec<u8>>) -> Found {
    Found {
        library: TlsLibrary::BoringSsl,
        symbols: probes.iter().map(|p| p.symbol.clone()).collect(),
        build_id,
    }
}

/// Outcomes by (build-id, file length).
type Cache = HashMap<(Vec<u8>, u64), Outcome>;

fn cache() -> &'static Mutex<Cache> {
    static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// How the offsets were found, for the tests and the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Known,
    Pattern,
}

/// Recognise BoringSSL in a file whose symbols did not name a TLS library.
/// `Ok(None)`: not an executable to look into (neither a known build-id nor
/// an embedder's name). `Err`: it is one, and no offset could be verified
/// (logged as a warning once per build).
pub(crate) fn inspect(
    file: &File,
    file_name: &str,
    path: &Path,
) -> Result<Option<Found>, LocateError> {
    let Some(data) = data() else {
        return Ok(None);
    };
    let named = data.is_embedder(file_name);
    let mut img = match Image::open(file) {
        Ok(Some(img)) => img,
        Ok(None) => return Ok(None),
        Err(reason) if named => {
            return Err(LocateError {
                path: path.display().to_string(),
                build_id: "unknown".into(),
                source_of_offsets: "unreadable ELF".into(),
                reason,
            });
        }
        Err(_) => return Ok(None),
    };
    let known = img.build_id.as_ref().and_then(|id| data.builds.get(id));
    if known.is_none() && !named {
        return Ok(None);
    }
    // A build seen before: reuse its outcome, a success only if the code at
    // each probe still hashes the same (a truncated or altered copy with the
    // same build-id is verified afresh).
    let key = img
        .build_id
        .clone()
        .map(|id| (id, file.metadata().map_or(0, |m| m.len())));
    let cached = key
        .as_ref()
        .and_then(|k| cache().lock().ok()?.get(k).cloned());
    match cached {
        Some(Err(e)) => {
            return Err(LocateError {
                path: path.display().to_string(),
                ..e
            });
        }
        Some(Ok(probes)) if still_there(file, &probes) => {
            let mut f = found(&probes, img.build_id.clone());
            add_keylog_point(&mut f, &mut img, file, path);
            return Ok(Some(f));
        }
        _ => {}
    }
    let (outcome, _) = locate(&mut img, data, path, None);
    if let Some(key) = key
        && let Ok(mut cache) = cache().lock()
    {
        // A failure never replaces a success (an altered copy of a good file).
        let keep = matches!(cache.get(&key), Some(Ok(_))) && outcome.is_err();
        if !keep {
            cache.insert(key, outcome.clone());
        }
    }
    outcome.map(|probes| {
        let mut f = found(&probes, img.build_id.clone());
        add_keylog_point(&mut f, &mut img, file, path);
        Some(f)
    })
}

/// A BoringSSL recognised by the functions it exports (a shared
/// `libssl.so` such as Debian's `android-libboringssl`, or an unstripped
/// embedder): add its verified `ssl_log_secret`, from `.symtab` when the
/// file names it, else as for a stripped build (known build-id, then the
/// label search); warn and leave it out when unsure.
pub(crate) fn add_keylog_by_symbols(f: &mut Found, file: &File, path: &Path) {
    match Image::open(file) {
        Ok(Some(mut img)) => add_keylog_point(f, &mut img, file, path),
        Ok(None) => {}
        Err(e) => tracing::warn!(
            path = %path.display(),
            "--keylog will not see this BoringSSL's sessions: {e}"
        ),
    }
}

/// Key-log outcomes by (build-id, file length).
type KeylogCache = HashMap<(Vec<u8>, u64), Result<keylog::KeylogPoint, String>>;

fn keylog_cache() -> &'static Mutex<KeylogCache> {
    static CACHE: OnceLock<Mutex<KeylogCache>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Add `ssl_log_secret` (the `--keylog` hook, `boringssl/keylog.rs`) to a
/// verified BoringSSL; when it cannot be verified, warn once per build and
/// leave it out (the plaintext is captured all the same).
fn add_keylog_point(f: &mut Found, img: &mut Image<'_>, file: &File, path: &Path) {
    let key = img
        .build_id
        .clone()
        .map(|id| (id, file.metadata().map_or(0, |m| m.len())));
    let cached = key
        .as_ref()
        .and_then(|k| keylog_cache().lock().ok()?.get(k).cloned());
    let outcome = match cached {
        Some(Ok(p))
            if still_there(
                file,
                &[Probe {
                    symbol: SymbolOffset {
                        name: String::new(),
                        offset: p.offset,
                    },
                    size: p.size,
                    fnv1a64: p.fnv1a64,
                }],
            ) =>
        {
            Ok(p)
        }
        Some(Err(e)) => Err(e),
        _ => {
            let started = Instant::now();
            // The sections are read already unless the probes came from the cache.
            let sections = if img.code.is_empty() {
                img.read_sections()
            } else {
                Ok(())
            };
            let symbol = file
                .try_clone()
                .ok()
                .and_then(|f| super::elf::find_function(f, keylog::MANGLED).ok().flatten());
            let outcome = sections.and_then(|()| keylog::locate(img, symbol));
            match &outcome {
                Ok(p) => tracing::info!(
                    path = %path.display(),
                    ms = started.elapsed().as_millis() as u64,
                    "BoringSSL key-log point verified: {}@{:#x}",
                    p.symbol(),
                    p.offset
                ),
                Err(e) => tracing::warn!(
                    path = %path.display(),
                    "--keylog will not see this BoringSSL's sessions: not probing ssl_log_secret \
                     (a wrong offset would crash the process): {e}"
                ),
            }
            if let Some(key) = key
                && let Ok(mut cache) = keylog_cache().lock()
            {
                cache.insert(key, outcome.clone());
            }
            outcome
        }
    };
    if let Ok(p) = outcome {
        f.symbols.push(SymbolOffset {
            name: p.symbol(),
            offset: p.offset,
        });
    }
}

/// Locate and verify, logging the outcome. `force` overrides the choice
/// between the known table and the pattern search (tests).
fn locate(
    img: &mut Image<'_>,
    data: &Data,
    path: &Path,
    force: Option<Method>,
) -> (Outcome, Method) {
    let started = Instant::now();
    let sections = img.read_sections();
    let img = &*img;
    let id = img
        .build_id
        .as_deref()
        .map_or_else(|| "none".to_string(), hex);
    let known = img.build_id.as_ref().and_then(|b| data.builds.get(b));
    let method = force.unwrap_or(if known.is_some() {
        Method::Known
    } else {
        Method::Pattern
    });
    let mut notes = Vec::new();
    let (result, source_of_offsets) = match (method, known) {
        _ if let Err(e) = sections => (
            Err(format!("its section headers: {e}")),
            "unreadable sections".to_string(),
        ),
        (Method::Known, Some(build)) => (
            locate_known(img, data, build, &mut notes),
            format!("known build: {}", build.package),
        ),
        (Method::Known, None) => (
            Err("its offsets: the build is not in data/boringssl.json".to_string()),
            "unknown build".to_string(),
        ),
        (Method::Pattern, _) => (
            locate_by_pattern(img, data, &mut notes),
            "not in data/boringssl.json, pattern search".to_string(),
        ),
    };
    let elapsed = started.elapsed();
    let outcome = match result {
        Ok(symbols) => {
            let list = symbols
                .iter()
                .map(|p| format!("{}@{:#x}", p.symbol.name, p.symbol.offset))
                .collect::<Vec<_>>()
                .join(" ");
            tracing::info!(
                path = %path.display(),
                build_id = %id,
                how = %source_of_offsets,
                ms = elapsed.as_millis() as u64,
                notes = %notes.join("; "),
                "BoringSSL located and verified: {list}"
            );
            Ok(symbols)
        }
        Err(reason) => {
            let e = LocateError {
                path: path.display().to_string(),
                build_id: id,
                source_of_offsets,
                reason,
            };
            tracing::warn!("{e}");
            Err(e)
        }
    };
    (outcome, method)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may panic
mod tests {
    use super::*;
    use std::io::Write as _;

    const CHROMIUM: &str = "/usr/lib/chromium/chromium";

    fn chromium() -> File {
        File::open(CHROMIUM).unwrap_or_else(|e| {
            panic!("test fixture {CHROMIUM} is missing ({e}): install the Debian package chromium")
        })
    }

    fn expected(name: &str) -> u64 {
        let data = data().unwrap();
        let file = chromium();
        let img = Image::open(&file).unwrap().unwrap();
        let build = data
            .builds
            .get(img.build_id.as_ref().unwrap())
            .expect("the installed chromium is a known build: update data/boringssl.json");
        build
            .functions
            .iter()
            .find(|f| f.role.name() == name)
            .unwrap()
            .offset
    }

    #[test]
    fn data_table_parses() {
        let d = Data::parse(DATA_JSON).unwrap();
        assert!(!d.builds.is_empty());
        assert!(d.is_embedder("chromium"));
        assert!(!d.is_embedder("node"));
        assert!(Data::parse("{}").is_err());
        assert!(Data::parse(&DATA_JSON.replace("\"schema\": 1", "\"schema\": 9")).is_err());
    }

    #[test]
    fn known_chromium_build_verifies() {
        let file = chromium();
        let started = Instant::now();
        let found = inspect(&file, "chromium", Path::new(CHROMIUM))
            .unwrap()
            .expect("chromium embeds BoringSSL");
        eprintln!("known-build locate took {:?}", started.elapsed());
        assert_eq!(found.library, TlsLibrary::BoringSsl);
        let names: Vec<&str> = found.symbols.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "SSL_write",
                "SSL_read",
                "SSL_do_handshake",
                "SSL_free",
                "ssl_log_secret@s3=0x30@client_random=0x30"
            ]
        );
        for s in found.symbols.iter().filter(|s| s.name.starts_with("SSL_")) {
            assert_eq!(s.offset, expected(&s.name), "{}", s.name);
        }
        // The same file under a name no embedder has is still recognised
        // (by build-id): a renamed or map_files path.
        assert!(
            inspect(&file, "7f00-8000", Path::new("x"))
                .unwrap()
                .is_some()
        );
    }

    /// The discovery scan's entry point gives chromium a BoringSSL target
    /// when BoringSSL is among the libraries asked for, and nothing otherwise.
    #[test]
    fn discovery_scan_yields_a_boringssl_target() {
        use super::super::{ALL_LIBRARIES, DEFAULT_LIBRARIES, inspect_file};
        let _ = chromium();
        let t = inspect_file(Path::new(CHROMIUM), ALL_LIBRARIES)
            .unwrap()
            .expect("chromium is a BoringSSL target");
        assert_eq!(t.library, TlsLibrary::BoringSsl);
        assert_eq!(t.offset("SSL_write"), Some(expected("SSL_write")));
        assert_eq!(t.offset("SSL_read"), Some(expected("SSL_read")));
        assert_eq!(t.build_id.as_ref().map(Vec::len), Some(20));
        let only_openssl = DEFAULT_LIBRARIES
            .iter()
            .all(|l| l.library != TlsLibrary::BoringSsl);
        if only_openssl {
            assert!(
                inspect_file(Path::new(CHROMIUM), DEFAULT_LIBRARIES)
                    .unwrap()
                    .is_none()
            );
        }
    }

    #[test]
    fn pattern_search_agrees_with_the_table() {
        let file = chromium();
        let data = data().unwrap();
        let mut img = Image::open(&file).unwrap().unwrap();
        img.read_sections().unwrap();
        let started = Instant::now();
        let (outcome, method) = locate(&mut img, data, Path::new(CHROMIUM), Some(Method::Pattern));
        eprintln!("pattern search took {:?}", started.elapsed());
        assert_eq!(method, Method::Pattern);
        let probes = outcome.unwrap();
        assert_eq!(probes.len(), 4);
        for p in &probes {
            assert_eq!(
                p.symbol.offset,
                expected(&p.symbol.name),
                "{}",
                p.symbol.name
            );
        }
    }

    #[test]
    fn wrong_offsets_are_refused() {
        let file = chromium();
        let data = data().unwrap();
        let mut img = Image::open(&file).unwrap().unwrap();
        img.read_sections().unwrap();
        let build = data.builds.get(img.build_id.as_ref().unwrap()).unwrap();
        let moved = |role: Role, f: &dyn Fn(&mut KnownFunction)| {
            let mut b = build.clone();
            for k in b.functions.iter_mut().filter(|k| k.role == role) {
                f(k);
            }
            locate_known(&img, data, &b, &mut Vec::new())
        };
        // One byte into SSL_write: not a function start.
        let e = moved(Role::Write, &|k| k.offset += 1).unwrap_err();
        assert!(e.contains("SSL_write"), "{e}");
        // SSL_peek passed off as SSL_read, with its own size and hash: the
        // shapes tell them apart.
        let peek = build
            .functions
            .iter()
            .find(|k| k.role == Role::Peek)
            .unwrap()
            .clone();
        let e = moved(Role::Read, &|k| {
            k.offset = peek.offset;
            k.size = peek.size;
            k.fnv1a64 = peek.fnv1a64;
            k.errors = peek.errors.clone();
        })
        .unwrap_err();
        assert!(e.contains("SSL_read") || e.contains("SSL_peek"), "{e}");
        // A stale hash.
        let e = moved(Role::DoHandshake, &|k| k.fnv1a64 ^= 1).unwrap_err();
        assert!(e.contains("FNV-1a"), "{e}");
        // Swapped roles.
        let hs = build
            .functions
            .iter()
            .find(|k| k.role == Role::DoHandshake)
            .unwrap()
            .clone();
        let e = moved(Role::Write, &|k| {
            k.offset = hs.offset;
            k.size = hs.size;
            k.fnv1a64 = hs.fnv1a64;
            k.errors = hs.errors.clone();
        })
        .unwrap_err();
        assert!(!e.is_empty());
    }

    /// Files that are not Chromium, or are broken Chromiums: no panic, no probe.
    #[test]
    fn garbage_is_refused_without_panicking() {
        let dir = std::env::temp_dir().join(format!("weft-boringssl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut noise = |n: usize| -> Vec<u8> {
            (0..n)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect()
        };
        let real = {
            let mut v = vec![0; 4 << 20];
            chromium().read_exact_at(&mut v, 0).unwrap();
            v
        };
        let mut cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", Vec::new()),
            ("noise", noise(1 << 20)),
            ("elf-magic-then-noise", {
                let mut v = b"\x7fELF\x02\x01\x01".to_vec();
                v.extend(noise(64 << 10));
                v
            }),
            // Chromium's headers, program headers and notes, cut short.
            ("truncated-chromium", real.clone()),
        ];
        // A minimal ELF64 x86-64 header with one executable PT_LOAD at the top
        // of the address space (sizes that overflow when added).
        let mut top = vec![0u8; 4096];
        top[..7].copy_from_slice(b"\x7fELF\x02\x01\x01");
        top[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        top[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
        top[20..24].copy_from_slice(&1u32.to_le_bytes());
        top[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
        top[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
        top[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
        top[56..58].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
        let ph = &mut top[64..120];
        ph[0..4].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
        ph[4..8].copy_from_slice(&5u32.to_le_bytes()); // R+X
        ph[16..24].copy_from_slice(&(u64::MAX - 64).to_le_bytes()); // p_vaddr
        ph[32..40].copy_from_slice(&4096u64.to_le_bytes()); // p_filesz
        ph[40..48].copy_from_slice(&4096u64.to_le_bytes()); // p_memsz
        cases.push(("top-of-address-space", top));
        // Chromium's first 4 MiB with noise over the ELF header fields.
        let mut bent = real;
        let n = noise(48);
        bent[16..64].copy_from_slice(&n);
        cases.push(("bent-header", bent));
        for (name, bytes) in cases {
            let p = dir.join(name);
            File::create(&p).unwrap().write_all(&bytes).unwrap();
            let f = File::open(&p).unwrap();
            // Named like a browser, so the search is tried.
            let r = inspect(&f, "chromium", &p);
            assert!(!matches!(r, Ok(Some(_))), "{name}: {r:?}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn decoder_refuses_a_mid_instruction_start() {
        // push rbp; mov rbp, rsp; mov eax, 0x11223344; pop rbp; ret, after padding.
        let mut bytes = vec![0xCC; 16];
        bytes.extend([
            0x55, 0x48, 0x89, 0xE5, 0xB8, 0x44, 0x33, 0x22, 0x11, 0x5D, 0xC3,
        ]);
        bytes.extend([0xCC; 5]);
        let win = Window {
            base: 0x1000,
            bytes,
        };
        let f = decode_function(&win, 0x1010, None).unwrap();
        assert_eq!((f.start, f.end), (0x1010, 0x101b));
        assert!(decode_function(&win, 0x1011, None).is_err());
        assert!(decode_function(&win, 0x1000, None).is_err());
        assert!(decode_function(&win, 0x5000, None).is_err());
    }

    /// Prints the data-file entry for the chromium installed here, found by
    /// the pattern search: `cargo test -p weft-core print_chromium_entry --
    /// --ignored --nocapture`. Check it with the privileged test before
    /// adding it to data/boringssl.json.
    #[test]
    #[ignore]
    fn print_chromium_entry() {
        let file = chromium();
        let data = data().unwrap();
        let mut img = Image::open(&file).unwrap().unwrap();
        img.read_sections().unwrap();
        let mut notes = Vec::new();
        let assign = search(&img, data, &mut notes).unwrap();
        let symbols = verify(&img, data, &assign, &mut notes).unwrap();
        eprintln!("notes: {notes:?}; probes: {symbols:?}");
        println!("\"build_id\": \"{}\",", hex(img.build_id.as_ref().unwrap()));
        for (role, a) in &assign {
            let errors: Vec<String> = a
                .sites
                .iter()
                .map(|s| format!("[{}, {}]", s.reason, s.line))
                .collect();
            println!(
                "{{\"name\": \"{}\", \"offset\": \"{:#x}\", \"size\": {}, \"fnv1a64\": \
                 \"{:#x}\", \"errors\": [{}]}},",
                role.name(),
                img.file_offset(a.func.start).unwrap(),
                a.func.size(),
                a.func.fnv1a64,
                errors.join(", ")
            );
        }
    }
}
